//! `rims viz`: pictures of a run, as PNG files.
//!
//! - `rims viz --checkpoint DIR`: runs one batch of the checkpoint's task through the model
//!   (eval mode: no dropout) and draws which mechanisms are active at each step: one example
//!   (filled = active, pale = inactive) and, below it, the fraction of the batch in which each
//!   mechanism is active (grey levels). Copying marks the phases of the sequence and prints the
//!   example's input and predicted tokens (green where right, red where wrong); sMNIST draws the
//!   image row boundaries, the pixel strip and the digit, with its label in the title.
//! - `rims viz --checkpoint DIR` on a bouncing-balls run: one sequence of an evaluation set
//!   (`--set`, `--example`) rolled out, the true and the predicted frames in two rows and the
//!   mechanisms active at each step below (`rollout.rs`).
//! - `rims viz --metrics DIR`: training curves from `DIR/metrics.jsonl`: train and eval loss
//!   against the step (left), eval accuracy for every (split, size) series (right).
//!   `--metrics DIR1 DIR2 ...` draws several runs on one picture (e.g. RIMs against an LSTM):
//!   one colour per run, one line style per evaluated size, the eval curves only.
//!
//! Text is drawn with DejaVu Sans compiled into the binary, so no system font is needed. The
//! image is rendered into memory and written atomically.
//!
//! The files: this one (flags and dispatch), `masks.rs` (the mask picture's data, from one
//! forward pass), `mask_picture.rs` (drawing it), `curves.rs` (the training curves, read and
//! drawn), `draw.rs` (what both pictures share: sizes, colours, fonts, rendering, PNG).

mod curves;
mod draw;
mod mask_picture;
mod masks;
mod rollout;
#[cfg(test)]
mod tests;

use std::path::PathBuf;

use clap::{ArgGroup, Args};
use rims::{Error, Result};

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
    /// Output PNG, outside every run directory [default: beside the run, DIR-masks_<task>.png
    /// or DIR-curves.png].
    #[arg(long)]
    out: Option<PathBuf>,
    /// copying or smnist (must match the checkpoint) [default: the checkpoint's task].
    #[arg(long, value_enum, conflicts_with = "metrics")]
    task: Option<rims::train::Task>,
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
    /// Balls: the evaluation set whose sequence --example is rolled out: val, test-4,
    /// test-6-8 or test-curtain [default: test-4].
    #[arg(long, conflicts_with = "metrics")]
    set: Option<String>,
}

pub fn run_viz(args: &VizArgs) -> Result<()> {
    match (&args.checkpoint, args.metrics.as_slice()) {
        (Some(dir), []) => masks::masks(args, dir),
        (None, [dir]) => curves::curves(args, dir),
        (None, dirs) if dirs.len() > 1 => curves::compare(args, dirs),
        _ => Err(Error::config(
            "viz",
            "give exactly one of --checkpoint or --metrics",
        )),
    }
}
