//! `rims viz --checkpoint`: what the mask picture shows, gathered from one eval-mode forward
//! pass of the checkpoint's model over a batch of its task (drawn by `mask_picture.rs`).

use std::ops::Range;
use std::path::Path;

use plotters::style::RGBColor;
use rims::data::SmnistBatches;
use rims::nn::model::{Model, Pass};
use rims::rng::Rng;
use rims::tape::Tape;
use rims::train::{self, Task, TrainConfig, checkpoint};
use rims::{Context, Error, Result, Tensor};

use super::VizArgs;
use super::draw::{beside_run, draw_error, render, write_png};
use super::mask_picture::draw_masks;

/// Everything the mask picture shows, gathered from one forward pass.
pub(super) struct MaskFigure {
    pub(super) title: String,
    pub(super) mechanisms: usize,
    pub(super) t_len: usize,
    /// The drawn example's masks, `[T, N]`: `example[t * N + m]`.
    pub(super) example: Vec<bool>,
    /// Fraction of the batch with mechanism `m` active at step `t`, `[T, N]`.
    pub(super) fraction: Vec<f64>,
    pub(super) batch: usize,
    pub(super) example_index: usize,
    pub(super) marks: Marks,
}

/// One copying example's tokens, `[T]` each.
pub(super) struct Tokens {
    pub(super) input: Vec<u32>,
    pub(super) target: Vec<u32>,
    pub(super) output: Vec<u32>,
}

/// What the time axis is marked with, per task.
pub(super) enum Marks {
    /// Copying: the phases and the example's input, target and predicted tokens, `[T]` each.
    Phases {
        phases: Vec<(&'static str, Range<usize>, RGBColor)>,
        tokens: Tokens,
    },
    /// sMNIST: resolution S (rows of S steps) and the example's pixels `[S²]` (0/1).
    Rows { s: usize, pixels: Vec<u32> },
}

pub(super) fn masks(args: &VizArgs, dir: &Path) -> Result<()> {
    let state = checkpoint::read_state(dir)?;
    let cfg = state.config.clone();
    crate::shared::check_task(args.task, cfg.task)?;
    if cfg.task == Task::Balls {
        if args.length.is_some() || args.resolution.is_some() || args.batch.is_some() {
            return Err(Error::config(
                "set",
                "a balls picture takes --set and --example (--length, --resolution and --batch \
                 are for copying and smnist)",
            ));
        }
        return super::rollout::picture(args, dir, &cfg, state.progress.epoch);
    }
    if args.set.is_some() {
        return Err(Error::config("set", "is for balls checkpoints"));
    }
    match cfg.task {
        Task::Copying if args.resolution.is_some() => {
            return Err(Error::config("resolution", "is for smnist checkpoints"));
        }
        Task::Smnist if args.length.is_some() => {
            return Err(Error::config("length", "is for copying checkpoints"));
        }
        Task::Adding | Task::Balls => {
            return Err(Error::config(
                "checkpoint",
                format!(
                    "mask pictures are drawn for copying and smnist runs; for a {} run's curves \
                     use rims viz --metrics",
                    cfg.task.name()
                ),
            ));
        }
        Task::Copying | Task::Smnist => {}
    }
    let batch = args.batch.unwrap_or(cfg.batch);
    if batch == 0 {
        return Err(Error::config("batch", "must be at least 1"));
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| beside_run(dir, &format!("masks_{}.png", cfg.task.name())));
    checkpoint::check_output(&out, &[dir])?;
    let ctx = args.device.open()?;
    // The figure's batch, length and resolution, sized before anything is allocated.
    let (len, res) = (args.length.unwrap_or(cfg.train_len), args.resolution);
    let sized = TrainConfig {
        batch,
        train_len: len,
        test_len: len,
        resolution: res.unwrap_or(cfg.resolution),
        eval_resolutions: res.map_or_else(|| vec![cfg.resolution], |r| vec![r]),
        ..cfg.clone()
    };
    rims::train::budget::check(&ctx, &sized, false)?;
    let model = Model::new(&ctx, cfg.model()?, cfg.seed)?;
    checkpoint::load(&ctx, dir, &model, None)?;
    let mut fig = match cfg.task {
        Task::Copying => copying_figure(&ctx, &cfg, &model, args, batch)?,
        Task::Smnist => smnist_figure(&ctx, &cfg, &model, args, batch)?,
        Task::Adding | Task::Balls => {
            return Err(Error::config(
                "checkpoint",
                format!("{} runs have no mask picture", cfg.task.name()),
            ));
        }
    };
    fig.title = format!(
        "{}  (epoch {}, step {})",
        fig.title, state.progress.epoch, state.progress.step
    );
    let (w, h) = fig.size();
    let rgb = render(w, h, |root| draw_masks(root, &fig)).map_err(|e| draw_error(&out, &*e))?;
    write_png(&out, &rgb, w, h)?;
    println!(
        "wrote {} ({w}x{h}): {} mechanisms x {} steps, example {} of {} sequences",
        out.display(),
        fig.mechanisms,
        fig.t_len,
        fig.example_index,
        fig.batch
    );
    Ok(())
}

/// Masks `[T, B, N]` and logits of one eval-mode forward pass over time-major tokens `[T, B]`.
fn run_model(
    ctx: &Context,
    model: &Model,
    tokens: &[u32],
    t_len: usize,
    b: usize,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let x = Tensor::from_u32(ctx, &[t_len, b], tokens)?;
    let mut tape = Tape::untracked();
    let out = model.forward(ctx, &mut tape, &x, None, Pass::default())?;
    let masks = out.masks.to_vec(ctx)?;
    let logits = tape.value(out.logits).to_vec(ctx)?;
    Ok((masks, logits))
}

/// Splits masks `[T, B, N]` into example `e`'s `[T, N]` and the batch fraction `[T, N]`.
fn summarise(masks: &[f32], t_len: usize, b: usize, n: usize, e: usize) -> (Vec<bool>, Vec<f64>) {
    let mut example = vec![false; t_len * n];
    let mut fraction = vec![0.0; t_len * n];
    for t in 0..t_len {
        for m in 0..n {
            example[t * n + m] = masks[(t * b + e) * n + m] > 0.5;
            let active = (0..b).filter(|&j| masks[(t * b + j) * n + m] > 0.5).count();
            fraction[t * n + m] = active as f64 / b as f64;
        }
    }
    (example, fraction)
}

fn copying_figure(
    ctx: &Context,
    cfg: &TrainConfig,
    model: &Model,
    args: &VizArgs,
    b: usize,
) -> Result<MaskFigure> {
    let t = args.length.unwrap_or(cfg.train_len);
    let e = args.example;
    if e >= b {
        return Err(Error::config(
            "example",
            format!("{e} is out of range: the batch has {b} sequences (see --batch)"),
        ));
    }
    let mut rng = Rng::new(cfg.seed ^ 0x5715 ^ t as u64);
    let task = cfg.copying(t)?;
    let data = task.batch(&mut rng, b)?;
    let t_len = data.t_len;
    let n = model.cfg.mask_width();
    let classes = model.cfg.classes;
    let (masks, logits) = run_model(ctx, model, &data.inputs, t_len, b)?;
    let (example, fraction) = summarise(&masks, t_len, b, n, e);
    let predict = |pos: usize, j: usize| {
        let row = pos * b + j;
        train::argmax(&logits[row * classes..(row + 1) * classes]) as u32
    };
    let copied = task.copied_positions();
    let correct = |j: usize| {
        copied
            .clone()
            .filter(|&p| predict(p, j) == data.targets[p * b + j])
            .count()
    };
    let batch_correct: usize = (0..b).map(correct).sum();
    let marker = task.marker_position();
    let symbols = task.symbols;
    let phases = vec![
        ("symbols", 0..symbols, RGBColor(198, 219, 239)),
        ("gap", symbols..marker, RGBColor(235, 235, 235)),
        ("marker", marker..marker + 1, RGBColor(253, 174, 107)),
        ("recall", copied.clone(), RGBColor(199, 233, 192)),
    ];
    Ok(MaskFigure {
        title: format!(
            "copying, gap T={t}: example {e} recalls {}/{symbols} symbols (batch: {:.0}%)",
            correct(e),
            100.0 * batch_correct as f64 / (b * symbols) as f64
        ),
        mechanisms: n,
        t_len,
        example,
        fraction,
        batch: b,
        example_index: e,
        marks: Marks::Phases {
            phases,
            tokens: Tokens {
                input: (0..t_len).map(|p| data.inputs[p * b + e]).collect(),
                target: (0..t_len).map(|p| data.targets[p * b + e]).collect(),
                output: (0..t_len).map(|p| predict(p, e)).collect(),
            },
        },
    })
}

fn smnist_figure(
    ctx: &Context,
    cfg: &TrainConfig,
    model: &Model,
    args: &VizArgs,
    b: usize,
) -> Result<MaskFigure> {
    let s = args.resolution.unwrap_or(cfg.resolution);
    let mnist = train::load_mnist(cfg)?;
    let split = &mnist.test;
    let total = split.labels.len();
    let e = args.example;
    if e >= total {
        return Err(Error::config(
            "example",
            format!("{e} is out of range: the test split has {total} examples"),
        ));
    }
    // The drawn example first, then the first others of the test split.
    let b = b.min(total);
    let order: Vec<usize> = std::iter::once(e)
        .chain((0..total).filter(|&i| i != e))
        .take(b)
        .collect();
    let batches = SmnistBatches::new(split, s, 1, None)?;
    let data = batches.batch_of(&order);
    let n = model.cfg.mask_width();
    let (masks, logits) = run_model(ctx, model, &data.tokens, data.t_len, b)?;
    let (example, fraction) = summarise(&masks, data.t_len, b, n, 0);
    let classes = model.cfg.classes;
    let predicted = train::argmax(&logits[..classes]);
    let batch_correct = (0..b)
        .filter(|&j| {
            train::argmax(&logits[j * classes..(j + 1) * classes]) as u32 == data.labels[j]
        })
        .count();
    Ok(MaskFigure {
        title: format!(
            "sMNIST {s}x{s}, test example {e}: digit {} (predicted {predicted}; batch {:.0}% correct)",
            data.labels[0],
            100.0 * batch_correct as f64 / b as f64
        ),
        mechanisms: n,
        t_len: data.t_len,
        example,
        fraction,
        batch: b,
        example_index: e,
        marks: Marks::Rows {
            s,
            pixels: (0..data.t_len).map(|t| data.tokens[t * b]).collect(),
        },
    })
}
