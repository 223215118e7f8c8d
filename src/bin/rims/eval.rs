//! `rims eval`: a checkpoint evaluated at its own or other lengths and resolutions, and the
//! accuracy table `rims train` prints at the end too.

use std::path::PathBuf;

use clap::Args;
use rims::nn::model::Model;
use rims::train::{self, EvalResult, Task, TrainConfig, checkpoint};
use rims::{Error, Result};

use super::flags;

/// `rims eval`: evaluates a checkpoint.
#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub(crate) device: super::shared::DeviceArg,
    /// Checkpoint directory (from `rims train --out`).
    #[arg(long)]
    checkpoint: PathBuf,
    /// The checkpoint's task (checked, not changed).
    #[arg(long, value_enum)]
    task: Option<Task>,
    /// sMNIST resolutions, e.g. 16,19,24.
    #[arg(long, value_delimiter = ',')]
    resolutions: Option<Vec<usize>>,
    /// Copying gaps, e.g. 50,200 (the first is reported as train_len, the second as test_len);
    /// balls: the rollout horizon, e.g. 35 frames after the 15 given.
    #[arg(long, value_delimiter = ',')]
    lengths: Option<Vec<usize>>,
}

pub fn run_eval(args: &EvalArgs) -> Result<()> {
    let state = checkpoint::read_state(&args.checkpoint)?;
    let mut cfg = state.config.clone();
    crate::shared::check_task(args.task, cfg.task)?;
    match cfg.task {
        Task::Copying | Task::Adding if args.resolutions.is_some() => {
            return Err(Error::config(
                "--resolutions",
                format!(
                    "is for smnist checkpoints; {} is {} run (its lengths: --lengths)",
                    args.checkpoint.display(),
                    if cfg.task == Task::Adding {
                        "an adding"
                    } else {
                        "a copying"
                    }
                ),
            ));
        }
        Task::Balls if args.resolutions.is_some() => {
            return Err(Error::config(
                "--resolutions",
                format!(
                    "is for smnist checkpoints; {} is a balls run (its rollout horizon: \
                     --lengths 35)",
                    args.checkpoint.display()
                ),
            ));
        }
        Task::Smnist if args.lengths.is_some() => {
            return Err(Error::config(
                "--lengths",
                format!(
                    "is for copying and adding checkpoints; {} is an smnist run (its sizes: \
                     --resolutions)",
                    args.checkpoint.display()
                ),
            ));
        }
        _ => {}
    }
    if let Some(r) = &args.resolutions {
        cfg.eval_resolutions = r.clone();
    }
    if let Some(l) = &args.lengths {
        match l.as_slice() {
            [a] if cfg.task == Task::Balls => cfg.test_len = *a,
            _ if cfg.task == Task::Balls => {
                return Err(Error::config(
                    "--lengths",
                    "a balls run takes one rollout horizon, e.g. --lengths 35",
                ));
            }
            [a] => (cfg.train_len, cfg.test_len) = (*a, *a),
            [a, b] => (cfg.train_len, cfg.test_len) = (*a, *b),
            _ => {
                return Err(Error::config("--lengths", "give one or two gaps"));
            }
        }
    }
    cfg.validate()
        .map_err(|e| flags::name_flag(e, flags::eval_flag))?;
    let ctx = args.device.open()?;
    rims::train::budget::check(&ctx, &cfg, false)
        .map_err(|e| flags::name_flag(e, flags::eval_flag))?;
    let model = Model::new(&ctx, cfg.model()?, cfg.seed)?;
    checkpoint::load(&ctx, &args.checkpoint, &model, None)?;
    let eval = train::evaluate_checkpoint(&ctx, &cfg, &model)?;
    println!(
        "checkpoint {} (epoch {}, step {})",
        args.checkpoint.display(),
        state.progress.epoch,
        state.progress.step
    );
    print_table(&cfg, &eval);
    Ok(())
}

/// Prints evaluation results as the paper's table: one row per split, one column per size
/// (balls: the binary cross-entropy of each rollout frame, summed over its pixels).
pub fn print_table(cfg: &TrainConfig, eval: &[EvalResult]) {
    let what = match cfg.task {
        Task::Copying => "gap T",
        Task::Smnist => "resolution",
        Task::Adding => "length T (within 0.04 of the sum)",
        Task::Balls => "rollout frame",
    };
    let mut sizes: Vec<usize> = eval.iter().map(|e| e.size).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let mut splits: Vec<&str> = Vec::new();
    for e in eval {
        if !splits.contains(&e.split.as_str()) {
            splits.push(&e.split);
        }
    }
    let head: Vec<String> = sizes
        .iter()
        .map(|s| {
            if cfg.task == Task::Smnist {
                format!("{s}x{s}")
            } else if cfg.task == Task::Balls {
                format!("frame {s}")
            } else {
                format!("T={s}")
            }
        })
        .collect();
    let balls = cfg.task == Task::Balls;
    if balls {
        println!("\nbinary cross-entropy per frame (nats, summed over its pixels) by {what}:");
    } else {
        println!("\naccuracy (%) by {what}:");
    }
    println!("| split | {} |", head.join(" | "));
    println!("|---|{}", "---|".repeat(sizes.len()));
    for split in splits {
        let row: Vec<String> = sizes
            .iter()
            .map(|s| {
                eval.iter()
                    .find(|e| e.split == split && e.size == *s)
                    .map_or("-".into(), |e| {
                        if balls {
                            format!("{:.1}", e.loss)
                        } else {
                            format!("{:.1}", 100.0 * e.accuracy)
                        }
                    })
            })
            .collect();
        println!("| {split} | {} |", row.join(" | "));
    }
}
