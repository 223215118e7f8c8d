//! `rims rl`: reinforcement learning on the MiniGrid worlds of `rims::rl`. `rims rl train`
//! runs recurrent PPO with a RIMs or LSTM agent into a run directory (crash-safe checkpoints,
//! `--resume`); `rims rl eval` measures a checkpoint's success on a world.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use rims::rl::World;
use rims::rl::config::RlConfig;
use rims::rl::eval::{Policy, evaluate};
use rims::rl::train::{RlReporter, UpdateRecord, load_agent, read_rl_state, train};
use rims::train::checkpoint;
use rims::{Error, Result};

use crate::progress::{catch_interrupts, interrupted};
use crate::shared::{DeviceArg, emit};

#[derive(Debug, Args)]
pub struct RlArgs {
    #[command(subcommand)]
    command: RlCommand,
}

#[derive(Debug, Subcommand)]
enum RlCommand {
    /// Train an agent with recurrent PPO (torch_ac's settings) on a world, e.g.
    /// `rims rl train --env doorkey-5x5 --model rims --seed 1 --out runs/dk-rims-s1`.
    Train(Box<TrainArgs>),
    /// Play a checkpoint's agent on a world: mean return, success rate and episode length
    /// over `--episodes` episodes (each environment's first, on evaluation layouts).
    Eval(EvalArgs),
}

pub fn run_rl(args: &RlArgs) -> Result<()> {
    match &args.command {
        RlCommand::Train(a) => run_train(a),
        RlCommand::Eval(a) => run_eval(a),
    }
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The world: empty-NxN, doorkey-NxN (N ≥ 5) or memory-sN (N ≥ 7, odd).
    #[arg(long, default_value = "doorkey-5x5")]
    env: String,
    /// The agent's core: rims, lstm or gru.
    #[arg(long, default_value = "rims")]
    model: String,
    /// Frames to train for, all environments together (default 300000; on --resume, the
    /// run's own unless given, and only ever raised).
    #[arg(long)]
    frames: Option<u64>,
    /// Seeds the parameters, the environments and the sampling.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The run directory.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the run in this directory (its own settings; `--frames` may raise its length).
    #[arg(long, conflicts_with_all = ["out", "env", "model"])]
    resume: Option<PathBuf>,
    /// Hidden units: per mechanism for rims (default 16), of the layer for lstm/gru (64).
    #[arg(long)]
    hidden: Option<usize>,
    /// N, mechanisms (rims).
    #[arg(long, default_value_t = 4)]
    mechanisms: usize,
    /// k, active mechanisms per frame (rims).
    #[arg(long, default_value_t = 3)]
    active: usize,
    /// The mechanisms' cell (rims): lstm or gru.
    #[arg(long, default_value = "lstm")]
    cell: String,
    /// The RIMs variant: authors or dido.
    #[arg(long, default_value = "authors")]
    variant: String,
    /// Environments stepped together.
    #[arg(long, default_value_t = 16)]
    envs: usize,
    /// Frames per environment per update.
    #[arg(long, default_value_t = 128)]
    steps: usize,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 1e-4)]
    lr: f32,
    /// PPO epochs per update.
    #[arg(long, default_value_t = 4)]
    epochs: usize,
    /// Frames per minibatch.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Frames per sequence (truncated BPTT).
    #[arg(long, default_value_t = 32)]
    recurrence: usize,
    /// Entropy bonus weight.
    #[arg(long, default_value_t = 0.01)]
    entropy: f32,
    /// Updates between checkpoints.
    #[arg(long, default_value_t = 10)]
    checkpoint_every: u64,
    #[command(flatten)]
    device: DeviceArg,
}

impl TrainArgs {
    fn config(&self) -> RlConfig {
        let base = RlConfig::for_model(&self.model);
        RlConfig {
            env: self.env.clone(),
            model: self.model.clone(),
            cell: self.cell.clone(),
            variant: self.variant.clone(),
            mechanisms: self.mechanisms,
            active: self.active,
            hidden: self.hidden.unwrap_or(base.hidden),
            envs: self.envs,
            steps: self.steps,
            epochs: self.epochs,
            batch: self.batch,
            recurrence: self.recurrence,
            lr: self.lr,
            entropy_coef: self.entropy,
            frames: self.frames.unwrap_or(base.frames),
            seed: self.seed,
            checkpoint_every: self.checkpoint_every,
            ..base
        }
    }
}

/// The progress bar of a run: frames, frames per second, the last update's mean return and
/// success rate.
struct RlBar {
    bar: ProgressBar,
    frames_per_update: u64,
    last: u64,
}

impl RlReporter for RlBar {
    fn started(&mut self, from: u64, total: u64) {
        self.bar.set_length(total * self.frames_per_update);
        self.bar.set_position(from * self.frames_per_update);
    }

    fn update(&mut self, r: &UpdateRecord) {
        self.last = r.update;
        self.bar.set_position(r.frames);
        self.bar.set_message(format!(
            "{:.0} frames/s | return {:.3} | success {:.0}% | entropy {:.2}",
            r.fps,
            r.mean_return,
            100.0 * r.success_rate,
            r.entropy
        ));
        if self.bar.is_hidden() && r.update.is_multiple_of(10) {
            println!(
                "update {:>5}  frames {:>8}  {:>6.0} frames/s  return {:.3}  success {:.1}%  \
                 length {:.1}  entropy {:.3}",
                r.update,
                r.frames,
                r.fps,
                r.mean_return,
                100.0 * r.success_rate,
                r.mean_length,
                r.entropy
            );
        }
    }

    fn keep_going(&mut self) -> Result<()> {
        match interrupted() {
            None => Ok(()),
            Some(signal) => {
                self.bar.finish_and_clear();
                Err(Error::Stopped(format!(
                    "interrupted by {signal} after update {}",
                    self.last
                )))
            }
        }
    }
}

/// Where a stopped run stands and, where there is a checkpoint, how to continue it.
fn after_stop(out: &Path) -> String {
    match read_rl_state(out) {
        Ok(_) => format!(
            "{}; continue it with `rims rl train --resume {}`",
            kept(out),
            out.display()
        ),
        Err(_) => kept(out),
    }
}

/// Where a stopped run stands.
fn kept(out: &Path) -> String {
    match read_rl_state(out) {
        Ok(s) => format!(
            "its last checkpoint (update {}, {} frames) in {} is kept",
            s.progress.update,
            s.progress.frames,
            out.display()
        ),
        Err(_) => "no checkpoint had been written yet".into(),
    }
}

fn run_train(args: &TrainArgs) -> Result<()> {
    let (out, resume) = match (&args.resume, &args.out) {
        (Some(dir), _) => (dir.clone(), true),
        (None, Some(dir)) => (dir.clone(), false),
        (None, None) => {
            return Err(Error::config(
                "--out",
                "name the run directory with --out DIR (or --resume DIR)",
            ));
        }
    };
    let cfg = if resume {
        let mut run = read_rl_state(&out)?.config;
        run.frames = run.frames.max(args.frames.unwrap_or(0));
        run
    } else {
        let cfg = args.config();
        cfg.validate()?;
        checkpoint::check_run_place(&out)?;
        cfg
    };
    let ctx = args.device.open()?;
    let agent = cfg.agent()?;
    let parameters: usize = agent
        .param_specs()
        .iter()
        .map(|p| p.shape.iter().product::<usize>())
        .sum();
    let core = match cfg.model.as_str() {
        "rims" => format!(
            "RIMs N={} k={} H={} ({} cells)",
            cfg.mechanisms, cfg.active, cfg.hidden, cfg.cell
        ),
        m => format!("dense {m} of {} units", cfg.hidden),
    };
    println!(
        "rims rl train: {} for {} frames; {core}, {parameters} parameters; PPO {} envs × {} \
         frames, {} epochs, batch {}, recurrence {}, lr {}; on {}; writing to {}",
        cfg.env,
        cfg.frames,
        cfg.envs,
        cfg.steps,
        cfg.epochs,
        cfg.batch,
        cfg.recurrence,
        cfg.lr,
        ctx.describe(),
        out.display()
    );
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} frames {msg} (eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let mut reporter = RlBar {
        bar,
        frames_per_update: cfg.frames_per_update(),
        last: 0,
    };
    catch_interrupts();
    let summary = train(&ctx, &cfg, &out, resume, &mut reporter).map_err(|e| match e {
        Error::Stopped(why) => Error::Stopped(format!("{why}: {}", after_stop(&out))),
        Error::Diverged { step, what } => Error::Diverged {
            step,
            what: format!("{what}; {}", kept(&out)),
        },
        other => other,
    })?;
    reporter.bar.finish_and_clear();
    let p = &summary.progress;
    let fps = p.frames as f64 / p.seconds.max(1e-9);
    let last = summary
        .last
        .map(|r| {
            format!(
                "; last update: return {:.3}, success {:.1}%, length {:.1}",
                r.mean_return,
                100.0 * r.success_rate,
                r.mean_length
            )
        })
        .unwrap_or_default();
    println!(
        "trained {} updates, {} frames, {} episodes in {:.1} s ({fps:.0} frames/s){last}",
        p.update, p.frames, p.episodes, p.seconds
    );
    Ok(())
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The run directory.
    #[arg(long)]
    checkpoint: PathBuf,
    /// The world (default: the one trained on), e.g. doorkey-8x8.
    #[arg(long)]
    env: Option<String>,
    /// Episodes to play (each environment's first), 1 to 65536.
    #[arg(long, default_value_t = 500)]
    episodes: usize,
    /// Take the most likely action instead of sampling.
    #[arg(long)]
    greedy: bool,
    /// Print the result as one JSON object.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    device: DeviceArg,
}

fn run_eval(args: &EvalArgs) -> Result<()> {
    let ctx = args.device.open()?;
    let (agent, state) = load_agent(&ctx, &args.checkpoint)?;
    let env = args.env.clone().unwrap_or(state.config.env.clone());
    let world = World::parse(&env)?;
    let policy = if args.greedy {
        Policy::Greedy
    } else {
        Policy::Sample
    };
    let r = evaluate(&ctx, &agent, world, args.episodes, policy)?;
    if args.json {
        let text = serde_json::to_string(&r)
            .map_err(|e| Error::invalid("rl eval", format!("cannot encode: {e}")))?;
        return emit(&format!("{text}\n"));
    }
    emit(&format!(
        "{}: {} episodes, mean return {:.3}, success {:.1}%, mean length {:.1} (trained on {}, \
         {} frames)\n",
        r.env,
        r.episodes,
        r.mean_return,
        100.0 * r.success_rate,
        r.mean_length,
        state.config.env,
        state.progress.frames
    ))
}
