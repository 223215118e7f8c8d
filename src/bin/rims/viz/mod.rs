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
//! - `rims viz --checkpoint DIR` on a reinforcement-learning run (`rims rl train`): one episode
//!   played by the agent (`--example` picks it, `--env` the world, `--greedy` the policy), its
//!   frames drawn as the full grid with the agent and its 7×7 view, the action under each, and
//!   below them which mechanisms were active at every step (`episode.rs`, `episode_picture.rs`).
//! - `rims viz --metrics DIR`: training curves from `DIR/metrics.jsonl`: train and eval loss
//!   against the step (left), eval accuracy for every (split, size) series (right).
//!   `--metrics DIR1 DIR2 ...` draws several runs on one picture (e.g. RIMs against an LSTM):
//!   one colour per run, one line style per evaluated size, the eval curves only. On
//!   reinforcement-learning runs: mean return and success rate against frames, one colour per
//!   run (`rl_curves.rs`).
//!
//! Text is drawn with DejaVu Sans compiled into the binary, so no system font is needed. The
//! image is rendered into memory and written atomically.
//!
//! The files: this one (flags and dispatch), `masks.rs` (the mask picture's data, from one
//! forward pass), `mask_picture.rs` (drawing it), `curves.rs` (the training curves, read and
//! drawn), `rollout.rs` (a balls run's rollout), `episode.rs` (an RL run's episode, traced) and
//! `episode_picture.rs` (drawing it), `rl_curves.rs` (an RL run's curves), `draw.rs` (what the
//! pictures share: sizes, colours, fonts, rendering, PNG).

mod curves;
mod draw;
mod episode;
mod episode_picture;
mod mask_picture;
mod masks;
mod rl_curves;
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
    /// each step of one batch of the task. From `rims rl train --out`: one episode's frames
    /// and the mechanisms active at each step.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Run directory holding metrics.jsonl: draw the training curves. Several directories
    /// draw their runs on one picture, one colour per run.
    #[arg(long, num_args = 1..)]
    metrics: Vec<PathBuf>,
    /// Output PNG, outside every run directory [default: beside the run, DIR-masks_<task>.png,
    /// DIR-rollout_<set>.png, DIR-episode_<world>.png or DIR-curves.png].
    #[arg(long)]
    out: Option<PathBuf>,
    /// copying or smnist (must match the checkpoint) [default: the checkpoint's task].
    #[arg(long, value_enum, conflicts_with = "metrics")]
    task: Option<rims::train::Task>,
    /// Which example to draw: copying, an index into the batch; sMNIST, into the test split;
    /// balls, a sequence of --set; an RL run, the evaluation episode (0 to 65535).
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
    /// RL runs: the world to play the episode on, e.g. doorkey-8x8 [default: the one trained
    /// on].
    #[arg(long, conflicts_with = "metrics")]
    env: Option<String>,
    /// RL runs: take the most likely action at each step instead of sampling.
    #[arg(long, conflicts_with = "metrics")]
    greedy: bool,
}

pub fn run_viz(args: &VizArgs) -> Result<()> {
    match (&args.checkpoint, args.metrics.as_slice()) {
        (Some(dir), []) if episode::is_rl_checkpoint(dir) => episode::picture(args, dir),
        (Some(dir), []) => {
            for (given, flag) in [(args.env.is_some(), "--env"), (args.greedy, "--greedy")] {
                if given {
                    return Err(Error::config(
                        flag,
                        "is for reinforcement-learning runs (from rims rl train)",
                    ));
                }
            }
            masks::masks(args, dir)
        }
        (None, dirs) if !dirs.is_empty() && rl_curves::any_rl(dirs) => {
            rl_curves::curves(args, dirs)
        }
        (None, [dir]) => curves::curves(args, dir),
        (None, dirs) if dirs.len() > 1 => curves::compare(args, dirs),
        _ => Err(Error::config(
            "viz",
            "give exactly one of --checkpoint or --metrics",
        )),
    }
}
