//! `rims train` and `rims eval`: the experiments from the command line, with a progress bar,
//! metrics as JSON lines and checkpoints.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use rims::nn::model::Model;
use rims::train::{self, EvalRecord, EvalResult, Reporter, Task, TrainConfig, checkpoint};
use rims::{Error, Result};

use super::flags;

/// Model and optimiser flags; anything left out keeps the main job's default.
#[derive(Debug, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub(crate) device: super::shared::DeviceArg,
    /// copying, smnist or adding.
    #[arg(long, default_value = "copying")]
    task: String,
    /// rims, or a dense baseline: lstm or gru (of --hidden units).
    #[arg(long, default_value = "rims")]
    model: String,
    /// Starting point for every other flag: small (minutes on a software device; with no
    /// other flag, the main job) or paper (the authors' setting, docs/spec.md §2; hours on a GPU).
    /// Not with --resume: a resumed run keeps its checkpoint's settings.
    #[arg(long, default_value = "small", conflicts_with = "resume")]
    preset: String,
    /// Mechanism cell: lstm or gru.
    #[arg(long)]
    cell: Option<String>,
    /// N: mechanisms.
    #[arg(long)]
    mechanisms: Option<usize>,
    /// k: active mechanisms per step.
    #[arg(long)]
    active: Option<usize>,
    /// H: hidden units per mechanism.
    #[arg(long)]
    hidden: Option<usize>,
    /// D: embedding size.
    #[arg(long)]
    embed: Option<usize>,
    #[arg(long)]
    lr: Option<f32>,
    /// Learning-rate schedule over the run: constant (the authors') or cosine (from --lr down
    /// to 0 at the last step).
    #[arg(long, value_enum)]
    lr_schedule: Option<rims::train::LrSchedule>,
    /// Gradient-norm clip (a positive number); 0 turns clipping off.
    #[arg(long)]
    clip: Option<f32>,
    #[arg(long)]
    dropout: Option<f32>,
    #[arg(long)]
    batch: Option<usize>,
    #[arg(long)]
    epochs: Option<usize>,
    /// Copying and adding: iterations per epoch.
    #[arg(long)]
    iterations: Option<usize>,
    /// Added to the LSTM forget gates' initial bias (default 0, the authors' init).
    #[arg(long, allow_hyphen_values = true)]
    forget_bias: Option<f32>,
    /// Factor on the initial input-attention weights of a RIMs model (default 1, the
    /// authors' 0.01·N(0, 1)).
    #[arg(long)]
    input_gain: Option<f32>,
    /// Evaluate (and checkpoint) every this many epochs; the last epoch always is.
    #[arg(long)]
    eval_every: Option<usize>,
    /// Copying: symbols to copy (the paper's task copies 10).
    #[arg(long)]
    symbols: Option<usize>,
    /// Copying: training gap T; adding: training sequence length T.
    #[arg(long)]
    train_len: Option<usize>,
    /// Copying: start every batch from a zero state (the small preset does).
    #[arg(long, conflicts_with = "carry")]
    no_carry: bool,
    /// Copying: carry the detached state from batch to batch, as the authors do (the paper
    /// preset does).
    #[arg(long)]
    carry: bool,
    /// Copying: test gap T; adding: test sequence length T.
    #[arg(long)]
    test_len: Option<usize>,
    /// sMNIST: training resolution S (S×S pixels).
    #[arg(long)]
    resolution: Option<usize>,
    /// sMNIST: at most this many examples per split.
    #[arg(long)]
    limit: Option<usize>,
    /// sMNIST: directory with the IDX files (default: the bundled 10k subset).
    #[arg(long)]
    mnist_dir: Option<PathBuf>,
    #[arg(long)]
    seed: Option<u64>,
    /// Where checkpoints and metrics go (see the README for the layout). A loss that is not a
    /// finite number stops the run with an error; the last checkpoint stays as it was.
    #[arg(long, default_value = "runs/main")]
    out: PathBuf,
    /// Continue the run whose checkpoint is in this directory. Flags given must match its
    /// config, except --epochs, which may grow (a finished run without a larger --epochs is
    /// left as it is); with --out elsewhere the run is copied there and continues there,
    /// leaving this directory as it is.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Start from the parameters of the run (or `rims import`ed weights) in this directory,
    /// with a fresh optimizer: fine-tuning. The model settings (task, model, cell, variant,
    /// sizes) come from it; flags that name them must agree with it.
    #[arg(long, conflicts_with = "resume")]
    init: Option<PathBuf>,
    /// The flags given on the command line (filled in by main; `--task` and the others with a
    /// default cannot tell otherwise).
    #[arg(skip)]
    pub(crate) given: Vec<String>,
}

impl TrainArgs {
    fn config(&self) -> Result<TrainConfig> {
        let task = self.task.parse::<Task>()?;
        let mut c = match self.preset.as_str() {
            "small" => small_preset(task),
            "paper" => TrainConfig::paper(task),
            other => {
                return Err(Error::Config {
                    field: "preset",
                    reason: format!("unknown preset '{other}' (small or paper)"),
                });
            }
        };
        c.model = self.model.clone();
        if c.model != "rims" {
            // The main job's input gain is a RIMs setting: a dense baseline has no input attention.
            c.input_gain = 1.0;
        }
        if self.preset == "paper" && c.model != "rims" {
            // The paper's dense baselines have as many units as the RIMs model: LSTM-600.
            c.hidden *= c.mechanisms;
        }
        if let Some(init) = &self.init {
            let source = rims::train::checkpoint::read_state(init)?.config;
            let mut inherited = c.with_model_of(&source)?;
            // Flags with a default count only when given; the check in train() names them.
            if self.given("task") {
                inherited.task = c.task;
            }
            if self.given("model") {
                inherited.model = c.model.clone();
            }
            inherited.input_gain = 1.0;
            inherited.forget_bias = 0.0;
            inherited.init = Some(init.clone());
            c = inherited;
        }
        let c = self.apply(c);
        c.validate()?;
        Ok(c)
    }

    /// `c` with every flag given applied (the ones left out keep `c`'s value).
    fn apply(&self, mut c: TrainConfig) -> TrainConfig {
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = self.$f.clone() { c.$f = v; } )* };
        }
        set!(
            cell,
            mechanisms,
            active,
            hidden,
            embed,
            lr,
            lr_schedule,
            dropout,
            batch,
            epochs,
            iterations,
            forget_bias,
            input_gain,
            eval_every,
            symbols,
            train_len,
            test_len,
            resolution,
            seed
        );
        if self.no_carry {
            c.carry_state = false;
        }
        if self.carry {
            c.carry_state = true;
        }
        if let Some(clip) = self.clip {
            // Anything but 0 is kept, for validate to refuse what is not a positive number.
            c.clip = (clip != 0.0).then_some(clip);
        }
        if let Some(limit) = self.limit {
            c.limit = Some(limit);
        }
        if self.mnist_dir.is_some() {
            c.mnist_dir = self.mnist_dir.clone();
        }
        c
    }

    /// Whether flag `id` (its field name) was given on the command line.
    fn given(&self, id: &str) -> bool {
        self.given.iter().any(|g| g == id)
    }
}

/// The small preset: the main job for copying; for sequential MNIST and adding, the paper's
/// protocol at a size that runs on the CPU device in minutes.
pub(crate) fn small_preset(task: Task) -> TrainConfig {
    let c = TrainConfig {
        task,
        ..TrainConfig::default()
    };
    match task {
        Task::Copying => c,
        // Sequences of 50 (tested at 200), fresh batches every step.
        Task::Adding => TrainConfig {
            train_len: 50,
            test_len: 200,
            epochs: 10,
            lr: 2e-3,
            ..c
        },
        // The RIMs row of docs/experiments.md: N = 6, k = 4, H = 16 on the bundled subset.
        Task::Smnist => TrainConfig {
            mechanisms: 6,
            active: 4,
            hidden: 16,
            embed: 16,
            epochs: 10,
            eval_every: 5,
            lr: 5e-3,
            forget_bias: 1.0,
            ..c
        },
    }
}

/// The CLI's progress bar: loss, accuracy of the last evaluation, steps per second, ETA.
struct Bar {
    bar: ProgressBar,
    started: Instant,
    steps: usize,
    last_eval: String,
}

impl Bar {
    /// A bar whose length comes with [`Reporter::started`].
    fn new() -> Self {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} epoch {prefix} [{bar:30}] {pos}/{len} {msg} (eta {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        Bar {
            bar,
            started: Instant::now(),
            steps: 0,
            last_eval: String::new(),
        }
    }
}

impl Reporter for Bar {
    fn started(&mut self, steps: u64) {
        self.bar.set_length(steps);
    }

    fn step(&mut self, epoch: usize, _iteration: usize, _of: usize, loss: f32, _sequences: usize) {
        self.steps += 1;
        let rate = self.steps as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
        self.bar.set_prefix(format!("{}", epoch + 1));
        self.bar.set_message(format!(
            "loss {loss:.4} {}{rate:.1} steps/s",
            self.last_eval
        ));
        self.bar.inc(1);
    }

    fn evaluated(&mut self, r: &EvalRecord) {
        let acc: Vec<String> = r
            .eval
            .iter()
            .map(|e| format!("{}@{} {:.1}%", e.split, e.size, 100.0 * e.accuracy))
            .collect();
        self.last_eval = format!("| {} | ", acc.join(" "));
        let line = format!(
            "epoch {:>3}  step {:>6}  train loss {:.4}  {}",
            r.epoch,
            r.step,
            r.train_loss,
            r.eval
                .iter()
                .map(|e| format!(
                    "{}@{}: loss {:.4} acc {:.1}%",
                    e.split,
                    e.size,
                    e.loss,
                    100.0 * e.accuracy
                ))
                .collect::<Vec<_>>()
                .join("  ")
        );
        // Without a terminal the bar is hidden, and so would its printed lines be.
        if self.bar.is_hidden() {
            println!("{line}");
        } else {
            self.bar.println(line);
        }
    }
}

pub fn run_train(args: &TrainArgs) -> Result<()> {
    let (cfg, out, copy_from) = match &args.resume {
        Some(dir) => match resumed(args, dir)? {
            Some(plan) => plan,
            None => return Ok(()),
        },
        None => (
            args.config()
                .map_err(|e| flags::name_flag(e, flags::train_flag))?,
            args.out.clone(),
            None,
        ),
    };
    let resume = args.resume.is_some();
    let ctx = args.device.open()?;
    let task = match cfg.task {
        Task::Copying => format!(
            "copying {} symbols, gap {} (also tested at {}), state {}",
            cfg.symbols,
            cfg.train_len,
            cfg.test_len,
            if cfg.carry_state {
                "carried across batches"
            } else {
                "zeroed per batch"
            }
        ),
        Task::Smnist => format!("sequential MNIST at {0}x{0}", cfg.resolution),
        Task::Adding => format!(
            "adding problem, length {} (also tested at {})",
            cfg.train_len, cfg.test_len
        ),
    };
    println!(
        "rims train: {task}; model {} N={} k={} H={} D={} cell {}, batch {}, {} epochs, on {}; writing to {}",
        cfg.model,
        cfg.mechanisms,
        cfg.active,
        cfg.hidden,
        cfg.embed,
        cfg.cell,
        cfg.batch,
        cfg.epochs,
        ctx.describe(),
        out.display()
    );
    rims::train::budget::check(&ctx, &cfg, true)
        .map_err(|e| flags::name_flag(e, flags::train_flag))?;
    if let Some(from) = copy_from {
        checkpoint::copy_run(&from, &out)?;
    }
    let mut bar = Bar::new();
    let started = Instant::now();
    let summary = train::train(&ctx, &cfg, &out, resume, &mut bar).map_err(|e| match e {
        Error::Diverged { step, what } => Error::Diverged {
            step,
            what: format!("{what}; {}", kept(&out)),
        },
        other => flags::name_flag(other, flags::train_flag),
    })?;
    bar.bar.finish_and_clear();
    println!(
        "done: {} epochs, {} steps in {:.1} s",
        summary.progress.epoch,
        summary.progress.step,
        started.elapsed().as_secs_f64()
    );
    if let Some(last) = summary.history.last() {
        print_table(&cfg, &last.eval);
    }
    println!(
        "checkpoint: {}  metrics: {}",
        out.display(),
        out.join("metrics.jsonl").display()
    );
    Ok(())
}

/// What `--resume DIR` runs: the checkpoint's config with the flags given checked against it,
/// the directory to train in, and the run to copy there first (when --out names another one);
/// None when the run has finished and no --epochs asks for more (said on stdout, so that
/// resuming every run of a grid again is harmless).
fn resumed(
    args: &TrainArgs,
    dir: &Path,
) -> Result<Option<(TrainConfig, PathBuf, Option<PathBuf>)>> {
    let state = checkpoint::read_state(dir)?;
    let saved = state.config;
    let mut asked = saved.clone();
    if args.given("task") {
        asked.task = args.task.parse::<Task>()?;
    }
    if args.given("model") {
        asked.model = args.model.clone();
    }
    let asked = args.apply(asked);
    let diffs = flags::differences(&asked, &saved);
    if !diffs.is_empty() {
        return Err(Error::Config {
            field: "--resume",
            reason: format!(
                "flags disagree with the checkpoint in {} (a resumed run keeps its settings; \
                 only --epochs may grow): {}",
                dir.display(),
                diffs.join("; ")
            ),
        });
    }
    asked
        .validate()
        .map_err(|e| flags::name_flag(e, flags::train_flag))?;
    let done = state.progress.epoch;
    if asked.epochs <= done && !args.given("epochs") {
        println!(
            "rims train: the run in {} has finished its {done} epochs; nothing to do (pass \
             --epochs with more than {done} to extend it)",
            dir.display()
        );
        return Ok(None);
    }
    if asked.epochs <= done {
        return Err(Error::Config {
            field: "--epochs",
            reason: format!(
                "the run in {} has already trained {done} of {} epochs: pass --epochs with more \
                 than {done} to continue it",
                dir.display(),
                asked.epochs
            ),
        });
    }
    let elsewhere = args.given("out") && !same_place(&args.out, dir);
    if elsewhere {
        Ok(Some((asked, args.out.clone(), Some(dir.to_path_buf()))))
    } else {
        Ok(Some((asked, dir.to_path_buf(), None)))
    }
}

/// Whether two paths name the same directory (a missing one is compared as written).
fn same_place(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// What a stopped run leaves behind, for its error message.
fn kept(out: &Path) -> String {
    match checkpoint::read_state(out) {
        Ok(s) => format!(
            "its last checkpoint (epoch {}, step {}) in {} is kept",
            s.progress.epoch,
            s.progress.step,
            out.display()
        ),
        Err(_) => "no checkpoint had been written yet".into(),
    }
}

/// Prints evaluation results as the paper's table: one row per split, one column per size.
pub fn print_table(cfg: &TrainConfig, eval: &[EvalResult]) {
    let what = match cfg.task {
        Task::Copying => "gap T",
        Task::Smnist => "resolution",
        Task::Adding => "length T (within 0.04 of the sum)",
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
            } else {
                format!("T={s}")
            }
        })
        .collect();
    println!("\naccuracy (%) by {what}:");
    println!("| split | {} |", head.join(" | "));
    println!("|---|{}", "---|".repeat(sizes.len()));
    for split in splits {
        let row: Vec<String> = sizes
            .iter()
            .map(|s| {
                eval.iter()
                    .find(|e| e.split == split && e.size == *s)
                    .map_or("-".into(), |e| format!("{:.1}", 100.0 * e.accuracy))
            })
            .collect();
        println!("| {split} | {} |", row.join(" | "));
    }
}

/// `rims eval`: evaluates a checkpoint.
#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub(crate) device: super::shared::DeviceArg,
    /// Checkpoint directory (from `rims train --out`).
    #[arg(long)]
    checkpoint: PathBuf,
    /// copying or smnist (must match the checkpoint).
    #[arg(long)]
    task: Option<String>,
    /// sMNIST resolutions, e.g. 16,19,24.
    #[arg(long, value_delimiter = ',')]
    resolutions: Option<Vec<usize>>,
    /// Copying gaps, e.g. 50,200 (the first is reported as train_len, the second as test_len).
    #[arg(long, value_delimiter = ',')]
    lengths: Option<Vec<usize>>,
}

pub fn run_eval(args: &EvalArgs) -> Result<()> {
    let state = checkpoint::read_state(&args.checkpoint)?;
    let mut cfg = state.config.clone();
    if let Some(t) = &args.task {
        let task = t.parse::<Task>()?;
        if task != cfg.task {
            return Err(Error::Config {
                field: "--task",
                reason: format!("the checkpoint was trained on {:?}, not {task:?}", cfg.task),
            });
        }
    }
    match cfg.task {
        Task::Copying | Task::Adding if args.resolutions.is_some() => {
            return Err(Error::Config {
                field: "--resolutions",
                reason: format!(
                    "is for smnist checkpoints; {} is {} run (its lengths: --lengths)",
                    args.checkpoint.display(),
                    if cfg.task == Task::Adding {
                        "an adding"
                    } else {
                        "a copying"
                    }
                ),
            });
        }
        Task::Smnist if args.lengths.is_some() => {
            return Err(Error::Config {
                field: "--lengths",
                reason: format!(
                    "is for copying and adding checkpoints; {} is an smnist run (its sizes: \
                     --resolutions)",
                    args.checkpoint.display()
                ),
            });
        }
        _ => {}
    }
    if let Some(r) = &args.resolutions {
        cfg.eval_resolutions = r.clone();
    }
    if let Some(l) = &args.lengths {
        match l.as_slice() {
            [a] => (cfg.train_len, cfg.test_len) = (*a, *a),
            [a, b] => (cfg.train_len, cfg.test_len) = (*a, *b),
            _ => {
                return Err(Error::Config {
                    field: "--lengths",
                    reason: "give one or two gaps".into(),
                });
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
    let eval = match cfg.task {
        Task::Copying => train::evaluate_copying(&ctx, &cfg, &model)?,
        Task::Adding => train::evaluate_adding(&ctx, &cfg, &model)?,
        Task::Smnist => {
            let m = train::load_mnist(&cfg)?;
            train::evaluate_smnist(&ctx, &cfg, &model, &m, &["test"])?
        }
    };
    println!(
        "checkpoint {} (epoch {}, step {})",
        args.checkpoint.display(),
        state.progress.epoch,
        state.progress.step
    );
    print_table(&cfg, &eval);
    Ok(())
}
