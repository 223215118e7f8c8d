//! `rims viz`: pictures of a run, as PNG files.
//!
//! - `rims viz --checkpoint DIR`: runs one batch of the checkpoint's task through the model
//!   (eval mode: no dropout) and draws which mechanisms are active at each step: one example
//!   (filled = active, pale = inactive) and, below it, the fraction of the batch in which each
//!   mechanism is active (grey levels). Copying marks the phases of the sequence and prints the
//!   example's input and predicted tokens (green where right, red where wrong); sMNIST draws the
//!   image row boundaries, the pixel strip and the digit, with its label in the title.
//! - `rims viz --metrics DIR`: training curves from `DIR/metrics.jsonl`: train and eval loss
//!   against the step (left), eval accuracy for every (split, size) series (right).
//!   `--metrics DIR1 DIR2 ...` draws several runs on one picture (e.g. RIMs against an LSTM):
//!   one colour per run, one line style per evaluated size, the eval curves only.
//!
//! Text is drawn with DejaVu Sans compiled into the binary, so no system font is needed. The
//! image is rendered into memory and written atomically.

use std::error::Error as StdError;
use std::ops::Range;
use std::path::{Path, PathBuf};

use clap::{ArgGroup, Args};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use rims::data::SmnistBatches;
use rims::nn::model::{Model, Pass};
use rims::rng::Rng;
use rims::tape::Tape;
use rims::train::{self, EvalRecord, EvalResult, Task, TrainConfig, checkpoint};
use rims::{Context, Error, Result, Tensor};

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").required(true).args(["checkpoint", "metrics"])))]
pub struct VizArgs {
    #[command(flatten)]
    pub(crate) device: super::shared::DeviceArg,
    /// Checkpoint directory (from `rims train --out`): draw which mechanisms are active at
    /// each step of one batch of the task.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Run directory holding metrics.jsonl: draw the training curves. Several directories
    /// draw their runs on one picture, one colour per run.
    #[arg(long, num_args = 1..)]
    metrics: Vec<PathBuf>,
    /// Output PNG [default: DIR/masks_<task>.png or DIR/curves.png].
    #[arg(long)]
    out: Option<PathBuf>,
    /// copying or smnist (must match the checkpoint) [default: the checkpoint's task].
    #[arg(long, conflicts_with = "metrics")]
    task: Option<String>,
    /// Which example to draw: copying, an index into the batch; sMNIST, into the test split.
    #[arg(long, default_value_t = 0, conflicts_with = "metrics")]
    example: usize,
    /// Sequences over which the activity fractions are taken [default: the training batch].
    #[arg(long, conflicts_with = "metrics")]
    batch: Option<usize>,
    /// sMNIST: resolution S (S×S pixels) [default: the training resolution].
    #[arg(long, conflicts_with = "metrics")]
    resolution: Option<usize>,
    /// Copying: the gap T [default: the training gap].
    #[arg(long, conflicts_with = "metrics")]
    length: Option<usize>,
}

pub fn run_viz(args: &VizArgs) -> Result<()> {
    match (&args.checkpoint, args.metrics.as_slice()) {
        (Some(dir), []) => masks(args, dir),
        (None, [dir]) => curves(args, dir),
        (None, dirs) if dirs.len() > 1 => compare(args, dirs),
        _ => Err(Error::Config {
            field: "viz",
            reason: "give exactly one of --checkpoint or --metrics".into(),
        }),
    }
}

fn config_error(field: &'static str, reason: impl Into<String>) -> Error {
    Error::Config {
        field,
        reason: reason.into(),
    }
}

fn file_error(path: &Path, reason: impl Into<String>) -> Error {
    Error::File {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// rims viz --checkpoint: mechanism activity
// ---------------------------------------------------------------------------------------------

/// Everything the mask picture shows, gathered from one forward pass.
struct MaskFigure {
    title: String,
    mechanisms: usize,
    t_len: usize,
    /// The drawn example's masks, `[T, N]`: `example[t * N + m]`.
    example: Vec<bool>,
    /// Fraction of the batch with mechanism `m` active at step `t`, `[T, N]`.
    fraction: Vec<f64>,
    batch: usize,
    example_index: usize,
    marks: Marks,
}

/// One copying example's tokens, `[T]` each.
struct Tokens {
    input: Vec<u32>,
    target: Vec<u32>,
    output: Vec<u32>,
}

/// What the time axis is marked with, per task.
enum Marks {
    /// Copying: the phases and the example's input, target and predicted tokens, `[T]` each.
    Phases {
        phases: Vec<(&'static str, Range<usize>, RGBColor)>,
        tokens: Tokens,
    },
    /// sMNIST: resolution S (rows of S steps) and the example's pixels `[S²]` (0/1).
    Rows { s: usize, pixels: Vec<u32> },
}

fn masks(args: &VizArgs, dir: &Path) -> Result<()> {
    let state = checkpoint::read_state(dir)?;
    let cfg = state.config.clone();
    if let Some(t) = &args.task {
        let task = t.parse::<Task>()?;
        if task != cfg.task {
            return Err(config_error(
                "task",
                format!("the checkpoint was trained on {:?}, not {task:?}", cfg.task),
            ));
        }
    }
    match cfg.task {
        Task::Copying if args.resolution.is_some() => {
            return Err(config_error("resolution", "is for smnist checkpoints"));
        }
        Task::Smnist if args.length.is_some() => {
            return Err(config_error("length", "is for copying checkpoints"));
        }
        Task::Adding => {
            return Err(config_error(
                "checkpoint",
                "mask pictures are drawn for copying and smnist runs; for an adding run's curves use rims viz --metrics",
            ));
        }
        Task::Copying | Task::Smnist => {}
    }
    let batch = args.batch.unwrap_or(cfg.batch);
    if batch == 0 {
        return Err(config_error("batch", "must be at least 1"));
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| dir.join(format!("masks_{}.png", task_name(cfg.task))));
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
        Task::Adding => {
            return Err(config_error(
                "checkpoint",
                "adding runs have no mask picture",
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

fn task_name(task: Task) -> &'static str {
    match task {
        Task::Copying => "copying",
        Task::Smnist => "smnist",
        Task::Adding => "adding",
    }
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

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold(0, |best, (i, x)| if *x > v[best] { i } else { best })
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
        return Err(config_error(
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
        argmax(&logits[row * classes..(row + 1) * classes]) as u32
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
        return Err(config_error(
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
    let predicted = argmax(&logits[..classes]);
    let batch_correct = (0..b)
        .filter(|&j| argmax(&logits[j * classes..(j + 1) * classes]) as u32 == data.labels[j])
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

// ---------------------------------------------------------------------------------------------
// Drawing: shared pieces
// ---------------------------------------------------------------------------------------------

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;
type Drawn = std::result::Result<(), Box<dyn StdError>>;

const FONT: &str = "sans-serif";
/// Picture width, and the width of the column on the right for legends.
const WIDTH: u32 = 1200;
const SIDE: u32 = 170;
const TITLE_H: u32 = 44;
/// Left label area of every strip and panel (the same everywhere, so the time axes line up).
const Y_LABELS: u32 = 70;
const ACTIVE: RGBColor = RGBColor(33, 102, 172);
const INACTIVE: RGBColor = RGBColor(236, 240, 245);
/// Copying phase boundaries (visible on blue, white, grey and black).
const PHASE_LINE: RGBColor = RGBColor(230, 85, 13);
/// sMNIST row boundaries.
const ROW_LINE: RGBColor = RGBColor(215, 48, 39);
/// Copying output tokens that match the target, and those that do not.
const RIGHT: RGBColor = RGBColor(161, 217, 155);
const WRONG: RGBColor = RGBColor(252, 146, 114);
const TOKEN: RGBColor = RGBColor(220, 220, 220);

fn register_fonts() -> std::result::Result<(), String> {
    for family in [FONT, "serif", "monospace"] {
        plotters::style::register_font(family, FontStyle::Normal, dejavu::sans::regular())
            .map_err(|_| "the bundled font could not be loaded".to_string())?;
    }
    Ok(())
}

/// Renders a `w`×`h` picture into memory (RGB, 8 bits a channel).
fn render(
    w: u32,
    h: u32,
    draw: impl FnOnce(&Area<'_>) -> Drawn,
) -> Result<Vec<u8>, Box<dyn StdError>> {
    register_fonts()?;
    let mut buf = vec![255u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root)?;
        root.present()?;
    }
    Ok(buf)
}

fn draw_error(out: &Path, e: &dyn StdError) -> Error {
    file_error(out, format!("cannot draw the picture: {e}"))
}

/// Encodes RGB pixels as PNG and writes them atomically.
fn write_png(out: &Path, rgb: &[u8], w: u32, h: u32) -> Result<()> {
    let mut bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut bytes, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png::Compression::High);
        enc.write_header()
            .and_then(|mut w| {
                w.write_image_data(rgb)?;
                w.finish()
            })
            .map_err(|e| file_error(out, format!("cannot encode the PNG: {e}")))?;
    }
    rims::io::write_atomic(out, &bytes)
}

fn text(size: u32) -> TextStyle<'static> {
    TextStyle::from((FONT, size).into_font()).color(&BLACK)
}

fn centred(size: u32) -> TextStyle<'static> {
    text(size).pos(Pos::new(HPos::Center, VPos::Center))
}

/// A label formatter for rows centred on integers `0..names.len()`: integer positions get their
/// name, anything else nothing.
fn row_names(names: &[String]) -> impl Fn(&f64) -> String + '_ {
    move |v: &f64| {
        let r = v.round();
        if (v - r).abs() < 1e-6 && r >= 0.0 && (r as usize) < names.len() {
            names[r as usize].clone()
        } else {
            String::new()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Drawing: the mask picture
// ---------------------------------------------------------------------------------------------

impl MaskFigure {
    /// Height of each heatmap's plotting area.
    fn rows_h(&self) -> u32 {
        (22 * self.mechanisms as u32).clamp(88, 440)
    }

    /// Height of a heatmap panel with its caption and time axis.
    fn panel_h(&self) -> u32 {
        self.rows_h() + 30 + 46
    }

    fn strip_h(&self) -> u32 {
        match self.marks {
            Marks::Phases { .. } => 3 * 24 + 10,
            Marks::Rows { .. } => 34,
        }
    }

    fn size(&self) -> (u32, u32) {
        (WIDTH, TITLE_H + self.strip_h() + 2 * self.panel_h() + 12)
    }

    fn mechanism_names(&self) -> Vec<String> {
        (0..self.mechanisms).map(|m| m.to_string()).collect()
    }

    /// Where vertical lines go on every panel: phase boundaries or image rows.
    fn boundaries(&self) -> Vec<usize> {
        match &self.marks {
            Marks::Phases { phases, .. } => phases
                .iter()
                .skip(1)
                .filter(|(_, r, _)| !r.is_empty())
                .map(|(_, r, _)| r.start)
                .collect(),
            Marks::Rows { s, .. } => (1..self.t_len.div_ceil(*s)).map(|r| r * s).collect(),
        }
    }

    fn boundary_style(&self) -> ShapeStyle {
        match self.marks {
            Marks::Phases { .. } => PHASE_LINE.stroke_width(2),
            Marks::Rows { .. } => ROW_LINE.mix(0.55).stroke_width(1),
        }
    }
}

fn draw_masks(root: &Area<'_>, fig: &MaskFigure) -> Drawn {
    let body = root.titled(&fig.title, text(20))?;
    let (strip, rest) = body.split_vertically(fig.strip_h());
    let (top, bottom) = rest.split_vertically(fig.panel_h());
    let main_w = WIDTH - SIDE;
    let (strip, strip_side) = strip.split_horizontally(main_w);
    let (top, top_side) = top.split_horizontally(main_w);
    let (bottom, bottom_side) = bottom.split_horizontally(main_w);
    match &fig.marks {
        Marks::Phases { phases, tokens } => {
            draw_phase_strip(&strip, fig, phases, tokens)?;
            draw_swatches(
                &strip_side,
                8,
                &[(RIGHT, "output right"), (WRONG, "output wrong")],
            )?;
        }
        Marks::Rows { s, pixels } => {
            draw_pixel_strip(&strip, fig, pixels)?;
            draw_digit(&top_side, *s, pixels)?;
        }
    }
    draw_example(&top, fig)?;
    if let Marks::Phases { .. } = fig.marks {
        draw_swatches(&top_side, 50, &[(ACTIVE, "active"), (INACTIVE, "inactive")])?;
    }
    draw_fraction(&bottom, fig)?;
    draw_colour_bar(&bottom_side)?;
    Ok(())
}

/// The time-axis chart shared by the strips and panels: x = steps `0..T`, y = rows centred on
/// `0..rows`.
fn time_chart<'a, 'b>(
    area: &'a Area<'b>,
    t_len: usize,
    rows: usize,
    caption: Option<&str>,
    x_axis: bool,
) -> std::result::Result<TimeChart<'a, 'b>, Box<dyn StdError>> {
    let mut builder = ChartBuilder::on(area);
    builder
        .margin_right(12)
        .margin_top(4)
        .y_label_area_size(Y_LABELS)
        .x_label_area_size(if x_axis { 44 } else { 0 });
    if let Some(c) = caption {
        builder.caption(c, text(15));
    }
    Ok(builder.build_cartesian_2d(0f64..t_len as f64, -0.5f64..rows as f64 - 0.5)?)
}

fn draw_phase_strip(
    area: &Area<'_>,
    fig: &MaskFigure,
    phases: &[(&'static str, Range<usize>, RGBColor)],
    tokens: &Tokens,
) -> Drawn {
    let names = [
        "output".to_string(),
        "input".to_string(),
        "phase".to_string(),
    ];
    let mut chart = time_chart(area, fig.t_len, 3, None, false)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(3)
        .y_label_formatter(&row_names(&names))
        .y_label_style(text(13))
        .draw()?;
    let cell_px = {
        let (x0, _) = chart.backend_coord(&(0.0, 0.0));
        let (x1, _) = chart.backend_coord(&(1.0, 0.0));
        (x1 - x0) as u32
    };
    for (name, range, colour) in phases.iter().filter(|(_, r, _)| !r.is_empty()) {
        let (x0, x1) = (range.start as f64, range.end as f64);
        chart.draw_series(std::iter::once(Rectangle::new(
            [(x0, 1.55), (x1, 2.45)],
            colour.filled(),
        )))?;
        // The phase's name, or its initial where the name does not fit, or nothing.
        let room = cell_px * range.len() as u32;
        let area = chart.plotting_area();
        let initial = name[..1].to_uppercase();
        let label = if area.estimate_text_size(name, &text(13))?.0 + 4 <= room {
            name.to_string()
        } else if area.estimate_text_size(&initial, &text(13))?.0 + 2 <= room {
            initial
        } else {
            continue;
        };
        chart.draw_series(std::iter::once(Text::new(
            label,
            ((x0 + x1) / 2.0, 2.0),
            centred(13),
        )))?;
    }
    // Input tokens where non-zero; output tokens where they matter (the recall, or anything but
    // the expected 0), green when right and red when wrong. Digits when a cell can hold one.
    let mut cells = Vec::new();
    for t in 0..fig.t_len {
        if tokens.input[t] != 0 {
            cells.push((t, 1.0, tokens.input[t], TOKEN));
        }
        let (out, want) = (tokens.output[t], tokens.target[t]);
        if out != 0 || want != 0 {
            cells.push((t, 0.0, out, if out == want { RIGHT } else { WRONG }));
        }
    }
    for (t, row, token, colour) in cells {
        let x = t as f64;
        chart.draw_series(std::iter::once(Rectangle::new(
            [(x, row - 0.42), (x + 1.0, row + 0.42)],
            colour.filled(),
        )))?;
        if cell_px >= 11 {
            chart.draw_series(std::iter::once(Text::new(
                token.to_string(),
                (x + 0.5, row),
                centred(13),
            )))?;
        }
    }
    draw_boundaries(&mut chart, fig, -0.5, 2.5)?;
    Ok(())
}

fn draw_pixel_strip(area: &Area<'_>, fig: &MaskFigure, pixels: &[u32]) -> Drawn {
    let names = ["pixel".to_string()];
    let mut chart = time_chart(area, fig.t_len, 1, None, false)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(1)
        .y_label_formatter(&row_names(&names))
        .y_label_style(text(13))
        .draw()?;
    chart.draw_series(
        pixels
            .iter()
            .enumerate()
            .filter(|(_, p)| **p != 0)
            .map(|(t, _)| {
                Rectangle::new([(t as f64, -0.45), (t as f64 + 1.0, 0.45)], BLACK.filled())
            }),
    )?;
    draw_boundaries(&mut chart, fig, -0.5, 0.5)?;
    Ok(())
}

type TimeChart<'a, 'b> = ChartContext<
    'a,
    BitMapBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

fn draw_boundaries(chart: &mut TimeChart<'_, '_>, fig: &MaskFigure, y0: f64, y1: f64) -> Drawn {
    let style = fig.boundary_style();
    chart.draw_series(
        fig.boundaries()
            .into_iter()
            .map(|x| PathElement::new(vec![(x as f64, y0), (x as f64, y1)], style)),
    )?;
    Ok(())
}

/// A heatmap panel's axes: time steps along x, mechanisms along y.
fn heatmap_axes(chart: &mut TimeChart<'_, '_>, fig: &MaskFigure) -> Drawn {
    let names = fig.mechanism_names();
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("time step")
        .y_desc("mechanism")
        .x_labels(12)
        .y_labels(fig.mechanisms)
        .x_label_formatter(&|v| format!("{}", v.round() as i64))
        .y_label_formatter(&row_names(&names))
        .label_style(text(13))
        .axis_desc_style(text(14))
        .draw()?;
    Ok(())
}

fn draw_example(area: &Area<'_>, fig: &MaskFigure) -> Drawn {
    let caption = format!(
        "example {}: mechanisms active at each step (top-k selection)",
        fig.example_index
    );
    let mut chart = time_chart(area, fig.t_len, fig.mechanisms, Some(&caption), true)?;
    heatmap_axes(&mut chart, fig)?;
    let n = fig.mechanisms;
    // The background row, then each run of active steps as one bar.
    for m in 0..n {
        let y = m as f64;
        chart.draw_series(std::iter::once(Rectangle::new(
            [(0.0, y - 0.42), (fig.t_len as f64, y + 0.42)],
            INACTIVE.filled(),
        )))?;
        let mut t = 0;
        while t < fig.t_len {
            if !fig.example[t * n + m] {
                t += 1;
                continue;
            }
            let start = t;
            while t < fig.t_len && fig.example[t * n + m] {
                t += 1;
            }
            chart.draw_series(std::iter::once(Rectangle::new(
                [(start as f64, y - 0.42), (t as f64, y + 0.42)],
                ACTIVE.filled(),
            )))?;
        }
    }
    draw_boundaries(&mut chart, fig, -0.5, n as f64 - 0.5)?;
    Ok(())
}

fn grey(fraction: f64) -> RGBColor {
    let v = (255.0 * (1.0 - fraction.clamp(0.0, 1.0))).round() as u8;
    RGBColor(v, v, v)
}

fn draw_fraction(area: &Area<'_>, fig: &MaskFigure) -> Drawn {
    let caption = format!(
        "fraction of the {} sequences in which each mechanism is active",
        fig.batch
    );
    let mut chart = time_chart(area, fig.t_len, fig.mechanisms, Some(&caption), true)?;
    heatmap_axes(&mut chart, fig)?;
    let n = fig.mechanisms;
    chart.draw_series((0..fig.t_len).flat_map(|t| {
        (0..n).map(move |m| {
            let (x, y) = (t as f64, m as f64);
            Rectangle::new(
                [(x, y - 0.5), (x + 1.0, y + 0.5)],
                grey(fig.fraction[t * n + m]).filled(),
            )
        })
    }))?;
    // A frame, so that rows never active still show where the panel is.
    chart.draw_series(std::iter::once(Rectangle::new(
        [(0.0, -0.5), (fig.t_len as f64, n as f64 - 0.5)],
        BLACK.stroke_width(1),
    )))?;
    draw_boundaries(&mut chart, fig, -0.5, n as f64 - 0.5)?;
    Ok(())
}

/// A legend of colour swatches, one a line, starting `top` pixels down the area.
fn draw_swatches(area: &Area<'_>, top: i32, items: &[(RGBColor, &str)]) -> Drawn {
    for (i, (colour, label)) in items.iter().enumerate() {
        let y = top + 28 * i as i32;
        area.draw(&Rectangle::new([(16, y), (36, y + 18)], colour.filled()))?;
        area.draw(&Rectangle::new(
            [(16, y), (36, y + 18)],
            BLACK.stroke_width(1),
        ))?;
        area.draw(&Text::new(
            *label,
            (44, y + 9),
            text(14).pos(Pos::new(HPos::Left, VPos::Center)),
        ))?;
    }
    Ok(())
}

fn draw_colour_bar(area: &Area<'_>) -> Drawn {
    area.draw(&Text::new(
        "fraction active",
        (16, 16),
        text(14).pos(Pos::new(HPos::Left, VPos::Center)),
    ))?;
    let mut chart = ChartBuilder::on(area)
        .margin_top(40)
        .margin_bottom(52)
        .margin_left(16)
        .margin_right(90)
        .set_label_area_size(LabelAreaPosition::Right, 40)
        .build_cartesian_2d(0f64..1f64, 0f64..1f64)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(3)
        .y_label_formatter(&|v| format!("{v:.1}"))
        .label_style(text(13))
        .draw()?;
    let steps = 50;
    chart.draw_series((0..steps).map(|i| {
        let (y0, y1) = (i as f64 / steps as f64, (i + 1) as f64 / steps as f64);
        Rectangle::new([(0.0, y0), (1.0, y1)], grey((y0 + y1) / 2.0).filled())
    }))?;
    chart.draw_series(std::iter::once(Rectangle::new(
        [(0.0, 0.0), (1.0, 1.0)],
        BLACK.stroke_width(1),
    )))?;
    Ok(())
}

/// The example's binarised S×S image, in the side column.
fn draw_digit(area: &Area<'_>, s: usize, pixels: &[u32]) -> Drawn {
    let (w, _) = area.dim_in_pixel();
    let size = (w as i32 - 40).min(130);
    let cell = size as f64 / s as f64;
    let (x0, y0) = (20, 40);
    area.draw(&Text::new(
        format!("input {s}x{s}"),
        (x0, 16),
        text(14).pos(Pos::new(HPos::Left, VPos::Center)),
    ))?;
    for (i, &p) in pixels.iter().enumerate() {
        let (r, c) = (i / s, i % s);
        let colour = if p != 0 {
            BLACK
        } else {
            RGBColor(245, 245, 245)
        };
        let a = (x0 + (c as f64 * cell) as i32, y0 + (r as f64 * cell) as i32);
        let b = (
            x0 + ((c + 1) as f64 * cell) as i32,
            y0 + ((r + 1) as f64 * cell) as i32,
        );
        area.draw(&Rectangle::new([a, b], colour.filled()))?;
    }
    area.draw(&Rectangle::new(
        [(x0, y0), (x0 + size, y0 + size)],
        BLACK.stroke_width(1),
    ))?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// rims viz --metrics: training curves
// ---------------------------------------------------------------------------------------------

/// A named curve of (step, value) points.
struct Series {
    name: String,
    points: Vec<(f64, f64)>,
    /// One colour per size (the train loss is black); a second split is dashed.
    colour: RGBColor,
    dashed: bool,
}

fn series_name(split: &str, size: usize) -> String {
    if split == "copy" {
        format!("eval T={size}")
    } else {
        format!("{split} {size}x{size}")
    }
}

/// Train loss, eval loss per (split, size), and eval accuracy (in %) per (split, size).
fn curves_of(records: &[EvalRecord]) -> (Vec<Series>, Vec<Series>) {
    let mut losses = vec![Series {
        name: "train (epoch mean)".into(),
        points: records
            .iter()
            .map(|r| (r.step as f64, r.train_loss))
            .collect(),
        colour: BLACK,
        dashed: false,
    }];
    let mut accuracy: Vec<Series> = Vec::new();
    let (mut keys, mut splits, mut sizes) = (Vec::new(), Vec::new(), Vec::new());
    for e in records.iter().flat_map(|r| &r.eval) {
        let key = (e.split.clone(), e.size);
        if !keys.contains(&key) {
            keys.push(key);
        }
        if !splits.contains(&e.split) {
            splits.push(e.split.clone());
        }
        if !sizes.contains(&e.size) {
            sizes.push(e.size);
        }
    }
    for (split, size) in keys {
        let of = |f: fn(&EvalResult) -> f64| -> Vec<(f64, f64)> {
            records
                .iter()
                .flat_map(|r| {
                    r.eval
                        .iter()
                        .filter(|e| e.split == split && e.size == size)
                        .map(move |e| (r.step as f64, f(e)))
                })
                .collect()
        };
        let series = |points| Series {
            name: series_name(&split, size),
            points,
            colour: series_colour(sizes.iter().position(|&s| s == size).unwrap_or(0)),
            dashed: splits.iter().position(|s| *s == split).unwrap_or(0) > 0,
        };
        losses.push(series(of(|e| e.loss)));
        accuracy.push(series(of(|e| 100.0 * e.accuracy)));
    }
    (losses, accuracy)
}

fn curves(args: &VizArgs, dir: &Path) -> Result<()> {
    let path = dir.join("metrics.jsonl");
    let records = train::read_records(&path)?;
    let out = args.out.clone().unwrap_or_else(|| dir.join("curves.png"));
    let (losses, accuracy) = curves_of(&records);
    let title = format!(
        "training curves: {} ({} evaluations, {} steps)",
        dir.display(),
        records.len(),
        records.last().map_or(0, |r| r.step)
    );
    let (w, h) = (WIDTH, 520);
    let rgb = render(w, h, |root| draw_curves(root, &title, &losses, &accuracy))
        .map_err(|e| draw_error(&out, &*e))?;
    write_png(&out, &rgb, w, h)?;
    println!(
        "wrote {} ({w}x{h}): {} evaluations, {} accuracy series",
        out.display(),
        records.len(),
        accuracy.len()
    );
    Ok(())
}

/// A run's name on a comparison picture: its directory's last component.
fn run_name(dir: &Path) -> String {
    dir.file_name().map_or_else(
        || dir.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// `rims viz --metrics DIR1 DIR2 ...`: the eval curves of several runs on one picture.
fn compare(args: &VizArgs, dirs: &[PathBuf]) -> Result<()> {
    let out = args
        .out
        .clone()
        .ok_or_else(|| config_error("out", "a comparison of several runs needs --out FILE.png"))?;
    let (mut losses, mut accuracy) = (Vec::new(), Vec::new());
    let mut sizes: Vec<(String, usize)> = Vec::new();
    let mut steps = 0;
    // Seeds of one configuration (NAME-s1, NAME-s2, ...) share a colour and a legend entry.
    let mut groups: Vec<String> = Vec::new();
    for dir in dirs {
        let records = train::read_records(&dir.join("metrics.jsonl"))?;
        steps = steps.max(records.last().map_or(0, |r| r.step));
        let (l, a) = curves_of(&records);
        let group = super::summary::group_name(dir);
        let first = !groups.contains(&group);
        if first {
            groups.push(group.clone());
        }
        let run = groups.iter().position(|g| *g == group).unwrap_or(0);
        let seeds = dirs
            .iter()
            .filter(|d| super::summary::group_name(d) == group)
            .count();
        let name = if seeds > 1 {
            format!("{group} ({seeds} seeds)")
        } else {
            run_name(dir)
        };
        // Skip the train loss (index 0): one per run would crowd the panel.
        for (series, into) in [
            (l.into_iter().skip(1).collect::<Vec<_>>(), &mut losses),
            (a, &mut accuracy),
        ] {
            for mut s in series {
                let key = (s.name.clone(), 0);
                if !sizes.contains(&key) {
                    sizes.push(key.clone());
                }
                s.dashed = sizes.iter().position(|k| *k == key).unwrap_or(0) > 0;
                s.colour = series_colour(run);
                s.name = if first {
                    format!("{name}: {}", s.name)
                } else {
                    String::new()
                };
                into.push(s);
            }
        }
    }
    let title = format!(
        "{} runs of {} configurations compared ({steps} steps)",
        dirs.len(),
        groups.len()
    );
    let (w, h) = (WIDTH, 520);
    let rgb = render(w, h, |root| draw_curves(root, &title, &losses, &accuracy))
        .map_err(|e| draw_error(&out, &*e))?;
    write_png(&out, &rgb, w, h)?;
    println!(
        "wrote {} ({w}x{h}): {} runs of {} configurations, {} accuracy series",
        out.display(),
        dirs.len(),
        groups.len(),
        accuracy.len()
    );
    Ok(())
}

fn series_colour(i: usize) -> RGBColor {
    // A qualitative palette (ColorBrewer Dark2); the train loss is black.
    const COLOURS: [RGBColor; 8] = [
        RGBColor(27, 158, 119),
        RGBColor(217, 95, 2),
        RGBColor(117, 112, 179),
        RGBColor(231, 41, 138),
        RGBColor(102, 166, 30),
        RGBColor(230, 171, 2),
        RGBColor(166, 118, 29),
        RGBColor(102, 102, 102),
    ];
    COLOURS[i % COLOURS.len()]
}

/// The step range of all series, widened when there is a single step.
fn step_range(series: &[Series]) -> Range<f64> {
    let steps = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let hi = steps.fold(0.0f64, f64::max);
    0.0..if hi > 0.0 { hi * 1.04 } else { 1.0 }
}

/// How many step labels to ask for: no more than there are whole steps.
fn step_labels(x: &Range<f64>) -> usize {
    (x.end.floor() as usize + 1).clamp(2, 10)
}

/// Step labels: whole steps only (a short run's axis would otherwise read 0.5, 1.5, ...).
fn integers(v: &f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        String::new()
    }
}

/// A loss value in few characters: 2.5, 0.31, 0.004.
fn short(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let digits = if v.abs() >= 10.0 {
        0
    } else {
        (2 - v.abs().log10().floor() as i32).clamp(1, 6) as usize
    };
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

fn draw_curves(root: &Area<'_>, title: &str, losses: &[Series], accuracy: &[Series]) -> Drawn {
    let body = root.titled(title, text(20))?;
    let panels = body.split_evenly((1, 2));
    draw_loss_panel(&panels[0], losses)?;
    draw_accuracy_panel(&panels[1], accuracy)?;
    Ok(())
}

fn draw_lines<'a, 'b: 'a, X, Y>(
    chart: &mut ChartContext<'a, BitMapBackend<'b>, Cartesian2d<X, Y>>,
    series: &[Series],
) -> Drawn
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for s in series {
        let style = s.colour.stroke_width(2);
        chart.draw_series(
            s.points
                .iter()
                .map(|&p| Circle::new(p, 3, s.colour.filled())),
        )?;
        let drawn = if s.dashed {
            chart.draw_series(DashedLineSeries::new(s.points.clone(), 8, 5, style))?
        } else {
            chart.draw_series(LineSeries::new(s.points.clone(), style))?
        };
        if s.name.is_empty() {
            // A further seed of a group already in the legend.
            continue;
        }
        let dashed = s.dashed;
        drawn.label(s.name.clone()).legend(move |(x, y)| {
            // Two pieces, with a gap between them when the series is dashed.
            let (a, b) = if dashed {
                (x + 9, x + 15)
            } else {
                (x + 12, x + 12)
            };
            EmptyElement::at((0, 0))
                + PathElement::new(vec![(x, y), (a, y)], style)
                + PathElement::new(vec![(b, y), (x + 24, y)], style)
        });
    }
    let position = legend_position(chart, series)?;
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(text(13))
        .position(position)
        .draw()?;
    Ok(())
}

/// The corner of the plot where the legend hides the fewest points of the curves (sampled
/// along every segment), preferring the upper right.
fn legend_position<X, Y>(
    chart: &ChartContext<'_, BitMapBackend<'_>, Cartesian2d<X, Y>>,
    series: &[Series],
) -> std::result::Result<SeriesLabelPosition, Box<dyn StdError>>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    // The legend's size, as plotters lays it out: text, a 30-pixel sample, 10-pixel margins.
    let area = chart.plotting_area();
    let mut text_w = 0;
    for s in series {
        text_w = text_w.max(area.estimate_text_size(&s.name, &text(13))?.0 as i32);
    }
    let line_h = area.estimate_text_size("Ag", &text(13))?.1 as i32 + 4;
    let (w, h) = (text_w + 50, line_h * series.len() as i32 + 20);
    let (xs, ys) = area.get_pixel_range();
    let mut pixels = Vec::new();
    for s in series {
        let p: Vec<(i32, i32)> = s.points.iter().map(|p| chart.backend_coord(p)).collect();
        pixels.extend(p.iter().copied());
        for pair in p.windows(2) {
            let ((x0, y0), (x1, y1)) = (pair[0], pair[1]);
            pixels.extend((1..16).map(|i| (x0 + (x1 - x0) * i / 16, y0 + (y1 - y0) * i / 16)));
        }
    }
    let corners = [
        (
            SeriesLabelPosition::UpperRight,
            xs.end - 5 - w,
            ys.start + 5,
        ),
        (
            SeriesLabelPosition::LowerRight,
            xs.end - 5 - w,
            ys.end - 5 - h,
        ),
        (SeriesLabelPosition::UpperLeft, xs.start + 5, ys.start + 5),
        (SeriesLabelPosition::LowerLeft, xs.start + 5, ys.end - 5 - h),
    ];
    let hidden = |x0: i32, y0: i32| {
        pixels
            .iter()
            .filter(|(x, y)| (x0 - 6..=x0 + w + 6).contains(x) && (y0 - 6..=y0 + h + 6).contains(y))
            .count()
    };
    let best = corners
        .into_iter()
        .min_by_key(|(_, x0, y0)| hidden(*x0, *y0))
        .map_or(SeriesLabelPosition::UpperRight, |(p, ..)| p);
    Ok(best)
}

fn draw_loss_panel(area: &Area<'_>, losses: &[Series]) -> Drawn {
    let values = losses.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let x = step_range(losses);
    let mut builder = ChartBuilder::on(area);
    builder
        .margin(12)
        .caption("cross-entropy loss", text(16))
        .x_label_area_size(44)
        .y_label_area_size(64);
    if lo > 0.0 && hi / lo > 20.0 {
        // Log scale: the loss falls over orders of magnitude.
        let mut chart = builder.build_cartesian_2d(x.clone(), (lo / 1.3..hi * 1.3).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc("loss (log scale)")
            .x_labels(step_labels(&x))
            .x_label_formatter(&integers)
            .y_label_formatter(&|v| short(*v))
            .light_line_style(TRANSPARENT)
            .label_style(text(13))
            .axis_desc_style(text(14))
            .draw()?;
        draw_lines(&mut chart, losses)
    } else {
        let pad = ((hi - lo) * 0.1).max(1e-4 * hi.abs()).max(1e-6);
        let (y0, y1) = ((lo - pad).max(0.0), hi + pad);
        // Enough decimals to tell ten ticks apart.
        let digits = (-((y1 - y0) / 10.0).log10().floor()).clamp(0.0, 8.0) as usize;
        let mut chart = builder.build_cartesian_2d(x.clone(), y0..y1)?;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc("loss")
            .x_labels(step_labels(&x))
            .x_label_formatter(&integers)
            .y_label_formatter(&|v| format!("{v:.digits$}"))
            .light_line_style(TRANSPARENT)
            .label_style(text(13))
            .axis_desc_style(text(14))
            .draw()?;
        draw_lines(&mut chart, losses)
    }
}

fn draw_accuracy_panel(area: &Area<'_>, accuracy: &[Series]) -> Drawn {
    let x = step_range(accuracy);
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .caption("eval accuracy", text(16))
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(x.clone(), 0f64..102f64)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("accuracy (%)")
        .x_labels(step_labels(&x))
        .x_label_formatter(&integers)
        .y_label_formatter(&|v| format!("{v:.0}"))
        .light_line_style(TRANSPARENT)
        .label_style(text(13))
        .axis_desc_style(text(14))
        .draw()?;
    draw_lines(&mut chart, accuracy)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(path: &Path) -> (u32, u32) {
        let file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
        let reader = png::Decoder::new(file).read_info().unwrap();
        (reader.info().width, reader.info().height)
    }

    fn temp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rims-viz-unit-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn figure(marks: Marks, t_len: usize, n: usize) -> MaskFigure {
        MaskFigure {
            title: "synthetic".into(),
            mechanisms: n,
            t_len,
            example: (0..t_len * n)
                .map(|i| (i / n + i % n).is_multiple_of(3))
                .collect(),
            fraction: (0..t_len * n).map(|i| (i % 7) as f64 / 6.0).collect(),
            batch: 8,
            example_index: 0,
            marks,
        }
    }

    #[test]
    fn mask_pictures_draw_without_a_gpu() {
        let dir = temp("masks");
        let copying = figure(
            Marks::Phases {
                phases: vec![
                    ("symbols", 0..10, RED),
                    ("gap", 10..10, WHITE),
                    ("marker", 10..11, BLUE),
                    ("recall", 11..21, GREEN),
                ],
                tokens: Tokens {
                    input: (0..21).map(|t| t % 10).collect(),
                    target: (0..21).map(|t| if t > 10 { t % 8 } else { 0 }).collect(),
                    output: (0..21).map(|t| t % 3).collect(),
                },
            },
            21,
            4,
        );
        let smnist = figure(
            Marks::Rows {
                s: 7,
                pixels: (0..49).map(|t| t % 2).collect(),
            },
            49,
            6,
        );
        for (name, fig) in [("c.png", copying), ("s.png", smnist)] {
            let (w, h) = fig.size();
            let rgb = render(w, h, |root| draw_masks(root, &fig)).unwrap();
            let out = dir.join(name);
            write_png(&out, &rgb, w, h).unwrap();
            assert_eq!(decode(&out), (w, h));
        }
    }

    #[test]
    fn metrics_are_read_and_bad_lines_named() {
        let dir = temp("metrics");
        let path = dir.join("metrics.jsonl");
        std::fs::write(
            &path,
            concat!(
                r#"{"epoch":1,"step":10,"seconds":1.0,"train_loss":2.5,"eval":[{"split":"copy","size":5,"loss":2.0,"accuracy":0.1},{"split":"copy","size":10,"loss":2.2,"accuracy":0.05}]}"#,
                "\n",
                r#"{"epoch":2,"step":20,"seconds":2.0,"train_loss":1.5,"eval":[{"split":"copy","size":5,"loss":1.0,"accuracy":0.4},{"split":"copy","size":10,"loss":1.9,"accuracy":0.1}]}"#,
                "\n"
            ),
        )
        .unwrap();
        let records = train::read_records(&path).unwrap();
        let (losses, accuracy) = curves_of(&records);
        assert_eq!(losses.len(), 3);
        assert_eq!(accuracy.len(), 2);
        assert_eq!(accuracy[0].name, "eval T=5");
        assert_eq!(accuracy[0].points, vec![(10.0, 10.0), (20.0, 40.0)]);
        let rgb = render(WIDTH, 520, |root| {
            draw_curves(root, "t", &losses, &accuracy)
        })
        .unwrap();
        assert_eq!(rgb.len(), WIDTH as usize * 520 * 3);

        std::fs::write(&path, "{\"step\": 1}\n").unwrap();
        let e = train::read_records(&path).unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
        std::fs::write(&path, "\n").unwrap();
        let e = train::read_records(&path).unwrap_err().to_string();
        assert!(e.contains("no records"), "{e}");
    }
}
