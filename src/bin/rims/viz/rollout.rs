//! The bouncing-balls picture (the paper's fig. 6): one sequence of an evaluation set rolled
//! out, the true frames of the rollout in one row and the model's in the row below (its own
//! predictions fed back after the 15 given frames), and under them which mechanisms were active
//! at every step the model ran (filled = active).

use std::path::Path;

use plotters::prelude::*;
use rims::data::balls::BallsStream;
use rims::nn::model::Model;
use rims::train::TrainConfig;
use rims::train::balls::{self, ROLLOUT_GIVEN};
use rims::train::checkpoint;
use rims::{Error, Result};

use super::VizArgs;
use super::draw::{
    ACTIVE, Area, Drawn, INACTIVE, TITLE_H, WIDTH, Y_LABELS, beside_run, draw_error, render, text,
    write_png,
};

/// Frames drawn per row (the rollout's first ones when it is longer).
const MAX_FRAMES: usize = 15;
/// Pixels between frames.
const GAP: u32 = 4;
/// Height of one row of the activity map.
const MASK_ROW: u32 = 16;

/// What the picture shows.
struct RolloutFigure {
    title: String,
    /// S.
    size: usize,
    /// `[frames, S, S]` each, the rollout's first `frames` frames.
    truth: Vec<f32>,
    predicted: Vec<f32>,
    frames: usize,
    /// `[steps, N]` of the drawn example: 1 where a mechanism was active.
    masks: Vec<f32>,
    steps: usize,
    mechanisms: usize,
}

/// `rims viz --checkpoint DIR` on a balls run.
pub(super) fn picture(args: &VizArgs, dir: &Path, cfg: &TrainConfig, epoch: usize) -> Result<()> {
    let set_name = args.set.as_deref().unwrap_or("test-4");
    let sets = balls::eval_sets(cfg)?;
    let Some(set) = sets.iter().find(|s| s.name == set_name) else {
        let names: Vec<&str> = sets.iter().map(|s| s.name).collect();
        return Err(Error::config(
            "set",
            format!("unknown set '{set_name}' ({})", names.join(", ")),
        ));
    };
    if args.example >= balls::EVAL_SEQUENCES {
        return Err(Error::config(
            "example",
            format!(
                "{} is not below the set's {} sequences",
                args.example,
                balls::EVAL_SEQUENCES
            ),
        ));
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| beside_run(dir, &format!("rollout_{set_name}.png")));
    checkpoint::check_output(&out, &[dir])?;
    let ctx = args.device.open()?;
    rims::train::budget::check(&ctx, cfg, false)?;
    let model = Model::new(&ctx, cfg.model()?, cfg.seed)?;
    checkpoint::load(&ctx, dir, &model, None)?;
    let horizon = cfg.test_len;
    let mut stream = BallsStream::new(balls::set_data(cfg, set), balls::EVAL_DATA_SEED, set.split)?;
    stream.seek(args.example as u64);
    let b = stream.next_batch(1)?;
    let r = balls::rollout(&ctx, &model, &b.frames, 1, ROLLOUT_GIVEN, horizon)?;
    let (s, frames) = (cfg.frame_size, horizon.min(MAX_FRAMES));
    let pixels = s * s;
    let mechanisms = model.cfg.mask_width();
    let fig = RolloutFigure {
        title: format!(
            "{set_name}, sequence {}: rollout frames 1-{frames} after {ROLLOUT_GIVEN} given  \
             ({} {}, epoch {epoch})",
            args.example,
            cfg.model,
            dir.display()
        ),
        size: s,
        truth: b.frames[ROLLOUT_GIVEN * pixels..(ROLLOUT_GIVEN + frames) * pixels].to_vec(),
        predicted: r.predicted[..frames * pixels].to_vec(),
        frames,
        steps: r.masks.len() / mechanisms,
        masks: r.masks,
        mechanisms,
    };
    let (w, h) = fig.size();
    let rgb = render(w, h, |root| draw(root, &fig)).map_err(|e| draw_error(&out, &*e))?;
    write_png(&out, &rgb, w, h)?;
    println!(
        "wrote {} ({w}x{h}): {frames} rollout frames of {set_name} sequence {}, {} mechanisms x {} steps",
        out.display(),
        args.example,
        fig.mechanisms,
        fig.steps
    );
    Ok(())
}

impl RolloutFigure {
    /// Side of one drawn frame.
    fn frame_px(&self) -> u32 {
        ((WIDTH - Y_LABELS - 20) / MAX_FRAMES as u32 - GAP).min(96)
    }

    fn mask_h(&self) -> u32 {
        MASK_ROW * self.mechanisms as u32 + 40
    }

    fn size(&self) -> (u32, u32) {
        let rows = 2 * (self.frame_px() + GAP + 20);
        (WIDTH, TITLE_H + rows + self.mask_h() + 16)
    }
}

fn draw(root: &Area<'_>, fig: &RolloutFigure) -> Drawn {
    let body = root.titled(&fig.title, text(16))?;
    let row_h = fig.frame_px() + GAP + 20;
    let (truth, rest) = body.split_vertically(row_h);
    let (predicted, masks) = rest.split_vertically(row_h);
    draw_frames(&truth, fig, &fig.truth, "truth", RGBColor(33, 102, 172))?;
    draw_frames(&predicted, fig, &fig.predicted, "model", RGBColor(0, 0, 0))?;
    draw_masks(&masks, fig)
}

/// One row of frames, each pixel's intensity in `ink` on white.
fn draw_frames(
    area: &Area<'_>,
    fig: &RolloutFigure,
    frames: &[f32],
    label: &str,
    ink: RGBColor,
) -> Drawn {
    area.draw_text(label, &text(14), (6, 22))?;
    let (px, s) = (fig.frame_px(), fig.size);
    let cell = px as f64 / s as f64;
    for f in 0..fig.frames {
        let x0 = Y_LABELS as i32 + (f as u32 * (px + GAP)) as i32;
        area.draw_text(
            &format!("{}", f + 1),
            &text(11),
            (x0 + px as i32 / 2 - 4, 2),
        )?;
        let frame = &frames[f * s * s..(f + 1) * s * s];
        for (i, &v) in frame.iter().enumerate() {
            let (row, col) = ((i / s) as f64, (i % s) as f64);
            let c = mix(ink, v.clamp(0.0, 1.0) as f64);
            let top_left = (x0 + (col * cell) as i32, 16 + (row * cell) as i32);
            let bottom_right = (
                x0 + ((col + 1.0) * cell) as i32,
                16 + ((row + 1.0) * cell) as i32,
            );
            area.draw(&Rectangle::new([top_left, bottom_right], c.filled()))?;
        }
        area.draw(&Rectangle::new(
            [(x0, 16), (x0 + px as i32, 16 + px as i32)],
            RGBColor(200, 200, 200).stroke_width(1),
        ))?;
    }
    Ok(())
}

/// White at 0, `ink` at 1.
fn mix(ink: RGBColor, v: f64) -> RGBColor {
    let m = |c: u8| (255.0 - v * (255.0 - c as f64)).round() as u8;
    RGBColor(m(ink.0), m(ink.1), m(ink.2))
}

/// The activity map: one row per mechanism, one column per step the model ran (the given
/// frames, then each predicted one), a line where the rollout starts.
fn draw_masks(area: &Area<'_>, fig: &RolloutFigure) -> Drawn {
    area.draw_text(
        "active mechanisms (given frames | rollout)",
        &text(14),
        (Y_LABELS as i32, 4),
    )?;
    let width = WIDTH - Y_LABELS - 20;
    let col = width as f64 / fig.steps.max(1) as f64;
    for m in 0..fig.mechanisms {
        let y0 = 24 + (m as u32 * MASK_ROW) as i32;
        area.draw_text(&format!("{m}"), &text(12), (Y_LABELS as i32 - 18, y0 + 1))?;
        for t in 0..fig.steps {
            let on = fig.masks[t * fig.mechanisms + m] > 0.5;
            let x0 = Y_LABELS as i32 + (t as f64 * col) as i32;
            let x1 = Y_LABELS as i32 + ((t + 1) as f64 * col) as i32 - 1;
            let colour = if on { ACTIVE } else { INACTIVE };
            area.draw(&Rectangle::new(
                [(x0, y0), (x1, y0 + MASK_ROW as i32 - 2)],
                colour.filled(),
            ))?;
        }
    }
    let x = Y_LABELS as i32 + (ROLLOUT_GIVEN as f64 * col) as i32 - 1;
    let bottom = 24 + (fig.mechanisms as u32 * MASK_ROW) as i32;
    area.draw(&PathElement::new(
        vec![(x, 20), (x, bottom)],
        RGBColor(230, 85, 13).stroke_width(2),
    ))?;
    Ok(())
}
