//! `rims train`: the experiments from the command line, with a progress bar, metrics as JSON
//! lines and checkpoints.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use rims::train::config::new_run::new_run;
use rims::train::dist::{self, Dist};
use rims::train::{self, EvalRecord, Reporter, Task, TrainConfig, checkpoint};
use rims::{Context, Error, Result};
use serde::Serialize;

use super::flags::{self, CellArg, ModelArg, Preset, VariantArg};
use super::progress::Bar;

/// Where a run goes without --out.
const DEFAULT_OUT: &str = "runs/main";

/// `rims train`: a new run from a preset and the flags given, or `--resume` of one.
#[derive(Debug, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub(crate) device: super::shared::DeviceArg,
    /// Starting point for every other flag [default: small]. Not with --resume: a resumed run
    /// keeps its checkpoint's settings.
    #[arg(long, value_enum, conflicts_with = "resume")]
    preset: Option<Preset>,
    #[command(flatten)]
    set: ConfigFlags,
    /// Copying: start every batch from a zero state (the small preset does).
    #[arg(long, conflicts_with = "carry")]
    no_carry: bool,
    /// Copying: carry the detached state from batch to batch, as the authors do (the paper
    /// preset does).
    #[arg(long)]
    carry: bool,
    /// Where checkpoints and metrics go (see the README for the layout) [default: runs/main].
    /// A loss that is not a finite number stops the run with an error; the last checkpoint
    /// stays as it was.
    #[arg(long)]
    out: Option<PathBuf>,
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
    /// Data-parallel training: `mpi` makes this process one rank of an MPI job, started as
    /// `mpiexec -n P rims train --dist mpi ...` with the same flags on every rank (a build
    /// with `--features mpi`). --batch is the global batch, split into P equal shards; rank 0
    /// writes the run directory and reports.
    #[arg(long, value_enum, default_value_t = DistArg::None)]
    dist: DistArg,
}

/// `--dist`: whether this process is one rank of a data-parallel job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DistArg {
    /// One process trains on the whole batch.
    None,
    /// One rank of an MPI job (needs `mpiexec` and a build with `--features mpi`).
    Mpi,
}

/// What `rims train` runs: a run, or nothing (a finished run resumed without more epochs).
#[derive(Debug)]
enum Plan {
    Run {
        cfg: Box<TrainConfig>,
        out: PathBuf,
        copy_from: Option<PathBuf>,
    },
    Finished,
}

/// The flags that set the [`TrainConfig`] field of the same name. Each is None unless given on
/// the command line, and [`ConfigFlags::apply`] writes the ones given over a config through
/// serde, so a flag added here needs nothing else to reach the config, to be told from a
/// default, or to be checked against a checkpoint on --resume (a unit test checks that every
/// name is a field).
#[derive(Debug, Default, Args, Serialize)]
struct ConfigFlags {
    /// The experiment [default: copying].
    #[arg(long, value_enum)]
    task: Option<Task>,
    /// RIMs, or a dense baseline of --hidden units [default: rims].
    #[arg(long, value_enum)]
    model: Option<ModelArg>,
    /// Whose RIMs cell [default: authors].
    #[arg(long, value_enum)]
    variant: Option<VariantArg>,
    /// Mechanism cell.
    #[arg(long, value_enum)]
    cell: Option<CellArg>,
    /// N: mechanisms.
    #[arg(long)]
    mechanisms: Option<usize>,
    /// k: active mechanisms per step.
    #[arg(long)]
    active: Option<usize>,
    /// RIMs: H, the hidden units of each mechanism (the state has N·H). A dense baseline
    /// (--model lstm or gru): the units of its one layer.
    #[arg(long)]
    hidden: Option<usize>,
    /// D: embedding size.
    #[arg(long)]
    embed: Option<usize>,
    /// h_in: heads of the input attention (default 1, the authors'); each head reads values
    /// of the preset's width, so A grows with them.
    #[arg(long)]
    input_heads: Option<usize>,
    #[arg(long, value_parser = flags::finite)]
    lr: Option<f32>,
    /// Learning-rate schedule over the run: constant (the authors') or cosine (from --lr down
    /// to 0 at the last step).
    #[arg(long, value_enum)]
    lr_schedule: Option<rims::train::LrSchedule>,
    /// Gradient-norm clip (a positive number); 0 turns clipping off.
    #[arg(long, value_parser = flags::finite)]
    clip: Option<f32>,
    #[arg(long, value_parser = flags::finite)]
    dropout: Option<f32>,
    #[arg(long)]
    batch: Option<usize>,
    #[arg(long)]
    epochs: Option<usize>,
    /// Copying and adding: iterations per epoch.
    #[arg(long)]
    iterations: Option<usize>,
    /// Added to the LSTM forget gates' initial bias (default 0, the authors' init).
    #[arg(long, allow_hyphen_values = true, value_parser = flags::finite)]
    forget_bias: Option<f32>,
    /// Factor on the initial input-attention weights of a RIMs model (default 1, the
    /// authors' 0.01·N(0, 1)).
    #[arg(long, value_parser = flags::finite)]
    input_gain: Option<f32>,
    /// Evaluate (and checkpoint) every this many epochs; the last epoch always is.
    #[arg(long)]
    eval_every: Option<usize>,
    /// Copying: symbols to copy (the paper's task copies 10).
    #[arg(long)]
    symbols: Option<usize>,
    /// Copying: training gap T; adding: training sequence length T; balls: frames per
    /// training sequence.
    #[arg(long)]
    train_len: Option<usize>,
    /// Copying: test gap T; adding: test sequence length T; balls: frames a rollout predicts
    /// after the 15 given (15, or 35 for the longer rollout).
    #[arg(long)]
    test_len: Option<usize>,
    /// Balls: balls per training sequence, `4` or a range `6-8` [default: 4].
    #[arg(long)]
    balls: Option<String>,
    /// Balls: frames are S×S pixels, S a multiple of 8 [default: 32].
    #[arg(long)]
    frame_size: Option<usize>,
    /// Balls: the encoder's convolution channels `c1,c2,c3`, the decoder's in reverse
    /// (R-NEM's: 16,32,64) [small preset: 8,16,32].
    #[arg(long, value_parser = flags::channels)]
    frame_channels: Option<[usize; 3]>,
    /// Balls: units of the decoder's first dense layer (R-NEM's: 512) [small preset: 128].
    #[arg(long)]
    frame_dense: Option<usize>,
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
}

impl TrainArgs {
    /// The config of a new run: the library's [`new_run`] over the flags given, so a flag
    /// means what the keyword of the same name means to `rims.train` from Python.
    fn config(&self) -> Result<TrainConfig> {
        let json = |e: serde_json::Error| Error::Io(std::io::Error::other(e));
        let mut given = match serde_json::to_value(&self.set).map_err(json)? {
            serde_json::Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        if self.no_carry || self.carry {
            given.insert("carry_state".into(), self.carry.into());
        }
        if let Some(init) = &self.init {
            given.insert("init".into(), init.display().to_string().into());
        }
        new_run(self.preset.unwrap_or_default(), &given)
    }

    /// `c` (a resumed run's config) with every flag given applied.
    fn apply(&self, c: &TrainConfig) -> Result<TrainConfig> {
        let json = |e: serde_json::Error| Error::Io(std::io::Error::other(e));
        let mut merged = serde_json::to_value(c).map_err(json)?;
        let given = serde_json::to_value(&self.set).map_err(json)?;
        // Both serialise to objects; a flag left out is null and keeps the config's value.
        if let (Some(into), Some(given)) = (merged.as_object_mut(), given.as_object()) {
            for (field, value) in given.iter().filter(|(_, v)| !v.is_null()) {
                into.insert(field.clone(), value.clone());
            }
        }
        let mut c: TrainConfig = serde_json::from_value(merged).map_err(json)?;
        if self.set.clip == Some(0.0) {
            // --clip 0 means no clipping; anything else is kept, for validate to refuse what
            // is not a positive number.
            c.clip = None;
        }
        if self.no_carry {
            c.carry_state = false;
        }
        if self.carry {
            c.carry_state = true;
        }
        Ok(c)
    }

    /// The run directory --out names.
    fn out(&self) -> PathBuf {
        self.out
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_OUT))
    }

    /// How errors name the flags: --hidden means H per mechanism for RIMs, the layer's units
    /// for a dense model.
    fn flag_names(&self) -> fn(&str) -> Option<&'static str> {
        match self.set.model {
            Some(ModelArg::Lstm | ModelArg::Gru) => flags::dense_train_flag,
            _ => flags::train_flag,
        }
    }
}

pub fn run_train(args: &TrainArgs) -> Result<()> {
    let dist = open_dist(args.dist)?;
    if dist.size() == 1 {
        return run(args, &dist);
    }
    let Err(e) = run(args, &dist) else {
        return Ok(());
    };
    // Every rank holds an error. One the ranks agreed on is printed once, by rank 0, and all
    // of them end normally; one they did not (a rank may be waiting for this one) is printed
    // here and ends the whole job.
    match (dist.failed_together(), dist.is_root()) {
        (true, true) => Err(e),
        (true, false) => {
            drop(dist);
            std::process::exit(1)
        }
        (false, _) => {
            eprintln!(
                "error: rank {}: {}",
                dist.rank(),
                super::shared::one_line(&e.to_string())
            );
            dist.abort(1)
        }
    }
}

/// The ranks this process trains with: itself alone, or the MPI job it belongs to.
fn open_dist(asked: DistArg) -> Result<Dist> {
    match asked {
        DistArg::None => Ok(Dist::single()),
        #[cfg(feature = "mpi")]
        DistArg::Mpi => {
            let dist = Dist::mpi()?;
            dist.abort_on_panic();
            Ok(dist)
        }
        #[cfg(not(feature = "mpi"))]
        DistArg::Mpi => Err(Error::config(
            "--dist",
            "this rims was built without MPI: cargo build --release --features mpi",
        )),
    }
}

/// The plan of this process: rank 0 (or a lone process) makes it from the flags and, resuming,
/// the checkpoint; the other ranks from their flags too, or, resuming or starting from
/// `--init`, from rank 0's config with their flags applied (they do not read the run
/// directory, which need not be on their machine). Ranks whose plans differ fail together,
/// naming the settings.
fn plan(args: &TrainArgs, dist: &Dist) -> Result<Plan> {
    let own = |args: &TrainArgs| -> Result<Plan> {
        match &args.resume {
            Some(dir) => Ok(match resumed(args, dir)? {
                Some((cfg, out, copy_from)) => Plan::Run {
                    cfg: Box::new(cfg),
                    out,
                    copy_from,
                },
                None => Plan::Finished,
            }),
            None => Ok(Plan::Run {
                cfg: Box::new(
                    args.config()
                        .map_err(|e| flags::name_flag(e, args.flag_names()))?,
                ),
                out: args.out(),
                copy_from: None,
            }),
        }
    };
    if dist.size() == 1 {
        return own(args);
    }
    // Only rank 0 reads a run directory: the one resumed, or the `--init` run started from.
    let mine = match (dist.is_root(), &args.resume, &args.init) {
        (false, Some(_), _) | (false, None, Some(_)) => Ok(None),
        _ => own(args).map(Some),
    };
    let mine = dist.agree(mine)?;
    // Rank 0's config (None: its run has finished) and whether it resumes.
    let root_cfg = match (&mine, dist.is_root()) {
        (Some(Plan::Run { cfg, .. }), true) => Some(Some(cfg.as_ref().clone())),
        (_, true) => Some(None),
        (_, false) => None,
    };
    let (root_cfg, root_resumes): (Option<TrainConfig>, bool) =
        dist.broadcast_json(root_cfg.map(|c| (c, args.resume.is_some())).as_ref())?;
    let Some(root_cfg) = root_cfg else {
        return Ok(Plan::Finished);
    };
    let mine = match mine {
        _ if root_resumes != args.resume.is_some() => Err(Error::config(
            "--resume",
            format!(
                "rank 0 {} and rank {} {}: give every rank the same flags",
                if root_resumes {
                    "resumes a run"
                } else {
                    "starts a new run"
                },
                dist.rank(),
                if root_resumes {
                    "starts a new run"
                } else {
                    "resumes one"
                }
            ),
        )),
        Some(plan) => Ok(plan),
        None if args.resume.is_none() && args.init != root_cfg.init => Err(Error::config(
            "--init",
            format!(
                "rank 0 starts from {} and rank {} from {}: give every rank the same flags",
                shown_init(&root_cfg.init),
                dist.rank(),
                shown_init(&args.init)
            ),
        )),
        None => args
            .apply(&root_cfg)
            .map_err(|e| flags::name_flag(e, args.flag_names()))
            .map(|cfg| Plan::Run {
                cfg: Box::new(cfg),
                out: args.out(),
                copy_from: None,
            }),
    };
    let mine = dist.agree(mine)?;
    if let Plan::Run { cfg, .. } = &mine {
        dist.agree_config(cfg)?;
        dist.agree(
            dist::shard_rows(cfg.batch, dist.rank(), dist.size())
                .map(drop)
                .map_err(|e| flags::name_flag(e, flags::train_flags(&cfg.model))),
        )?;
    }
    Ok(mine)
}

/// `--init`'s run directory, or that there is none, for a message.
fn shown_init(init: &Option<PathBuf>) -> String {
    init.as_ref()
        .map_or("no --init".into(), |p| format!("--init {}", p.display()))
}

/// The device of this rank: `--device` over the environment; on the CPU device without
/// `RIMS_THREADS`, the machine's cores shared among the job's ranks on it; on GPUs, the
/// machine's alike cards shared out among them (`RIMS_ADAPTER=#N` names one instead).
fn open_device(args: &TrainArgs, dist: &Dist) -> Result<Context> {
    let mut request = args.device.request()?;
    if dist.local_ranks() > 1 {
        request.node_rank = Some(dist.local_rank());
    }
    if request.threads.is_none() && dist.local_ranks() > 1 {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        request.threads = Some((cores / dist.local_ranks()).max(1));
    }
    Context::new(request)
}

fn run(args: &TrainArgs, dist: &Dist) -> Result<()> {
    let (cfg, out, copy_from) = match plan(args, dist)? {
        Plan::Run {
            cfg,
            out,
            copy_from,
        } => (*cfg, out, copy_from),
        Plan::Finished => return Ok(()),
    };
    let flag_names = flags::train_flags(&cfg.model);
    let resume = args.resume.is_some();
    // Refused before the banner: a run directory is never put inside another. Only rank 0
    // writes one.
    dist.agree(match dist.is_root() {
        true => checkpoint::check_run_place(&out).map_err(|e| flags::name_flag(e, flag_names)),
        false => Ok(()),
    })?;
    let ctx = dist.agree(open_device(args, dist))?;
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
        Task::Balls => format!(
            "bouncing balls ({} per sequence), {1}x{1} frames, {2} per sequence; rollouts of \
             15 given + {3} predicted frames; encoder channels {4:?}",
            cfg.balls, cfg.frame_size, cfg.train_len, cfg.test_len, cfg.frame_channels
        ),
    };
    let model = if cfg.model == "rims" {
        format!(
            "RIMs ({} variant) N={} k={} H={} per mechanism, {} cells, D={}",
            cfg.variant, cfg.mechanisms, cfg.active, cfg.hidden, cfg.cell, cfg.embed
        )
    } else {
        format!(
            "dense {} of {} units, D={}",
            cfg.model, cfg.hidden, cfg.embed
        )
    };
    let parameters: usize = cfg
        .model()?
        .param_specs()
        .iter()
        .map(|p| p.shape.iter().product::<usize>())
        .sum();
    let ranks = match dist.size() {
        1 => String::new(),
        p => format!(
            " ({p} ranks over {}, {} rows each)",
            dist.transport(),
            cfg.batch / p
        ),
    };
    if dist.is_root() {
        println!(
            "rims train: {task}; {model}, {parameters} parameters, batch {}{ranks}, {} epochs, \
             on {}; writing to {}",
            cfg.batch,
            cfg.epochs,
            ctx.describe(),
            out.display()
        );
    }
    dist.agree(
        rims::train::budget::check(&ctx, &cfg, true).map_err(|e| flags::name_flag(e, flag_names)),
    )?;
    if let (Some(from), true) = (copy_from, dist.is_root()) {
        dist.agree(checkpoint::copy_run(&from, &out).map(drop))?;
    } else {
        dist.agree(Ok(()))?;
    }
    let timing = std::env::var("RIMS_DIST_TIMING").is_ok_and(|v| !v.is_empty() && v != "0");
    dist.set_timing(timing);
    let mut bar = Bar::new();
    let mut follower = Follower;
    let reporter: &mut dyn Reporter = match dist.is_root() {
        true => &mut bar,
        false => &mut follower,
    };
    super::progress::catch_interrupts();
    let started = Instant::now();
    let trained = train::train_dist(&ctx, &cfg, &out, resume, reporter, dist);
    if !dist.is_root() {
        return trained.map(drop);
    }
    let summary = trained.map_err(|e| match e {
        Error::Diverged { step, what } => Error::Diverged {
            step,
            what: format!("{what}; {}", kept(&out)),
        },
        Error::Stopped(why) => Error::Stopped(format!("{why}: {}", after_stop(&out))),
        other => flags::name_flag(other, flag_names),
    })?;
    bar.bar.finish_and_clear();
    println!(
        "done: {} epochs, {} steps in {:.1} s",
        summary.progress.epoch,
        summary.progress.step,
        started.elapsed().as_secs_f64()
    );
    if let Some(t) = dist.timing() {
        print_timing(&t, dist.size());
    }
    if let Some(last) = summary.history.last() {
        super::eval::print_table(&cfg, &last.eval);
    }
    println!(
        "checkpoint: {}  metrics: {}",
        out.display(),
        out.join("metrics.jsonl").display()
    );
    Ok(())
}

/// `RIMS_DIST_TIMING`'s report: medians over the steps of this call.
fn print_timing(t: &dist::Timing, ranks: usize) {
    let ms = |v: &[f64]| 1e3 * dist::median(v);
    let mut line = format!(
        "timing: {} steps on {ranks} rank{}: step {:.2} ms (median)",
        t.step.len(),
        if ranks == 1 { "" } else { "s" },
        ms(&t.step)
    );
    if !t.allreduce.is_empty() {
        line += &format!(
            ", gradient allreduce {:.3} ms of {:.2} MB, host copies {:.3} ms",
            ms(&t.allreduce),
            t.bytes as f64 / 1e6,
            ms(&t.host)
        );
    }
    println!("{line}");
}

/// The reporter of ranks other than rank 0: silent, but a signal stops it (and so the job).
struct Follower;

impl Reporter for Follower {
    fn step(&mut self, _: usize, _: usize, _: usize, _: f32, _: usize) {}

    fn evaluated(&mut self, _: &EvalRecord) {}

    fn keep_going(&mut self) -> Result<()> {
        match super::progress::interrupted() {
            None => Ok(()),
            Some(signal) => Err(Error::Stopped(format!("interrupted by {signal}"))),
        }
    }
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
    let asked = args.apply(&saved)?;
    let diffs = flags::differences(&asked, &saved);
    if !diffs.is_empty() {
        return Err(Error::config(
            "--resume",
            format!(
                "flags disagree with the checkpoint in {} (a resumed run keeps its settings; \
                 only --epochs may grow): {}",
                dir.display(),
                diffs.join("; ")
            ),
        ));
    }
    asked
        .validate()
        .map_err(|e| flags::name_flag(e, flags::train_flags(&asked.model)))?;
    let done = state.progress.epoch;
    if asked.epochs <= done && args.set.epochs.is_none() {
        println!(
            "rims train: the run in {} has finished its {done} epochs; nothing to do (pass \
             --epochs with more than {done} to extend it)",
            dir.display()
        );
        return Ok(None);
    }
    if asked.epochs <= done {
        return Err(Error::config(
            "--epochs",
            format!(
                "the run in {} has already trained {done} of {} epochs: pass --epochs with more \
                 than {done} to continue it",
                dir.display(),
                asked.epochs
            ),
        ));
    }
    match &args.out {
        Some(out) if !same_place(out, dir) => {
            Ok(Some((asked, out.clone(), Some(dir.to_path_buf()))))
        }
        _ => Ok(Some((asked, dir.to_path_buf(), None))),
    }
}

/// Whether two paths name the same directory (a missing one is compared as written).
fn same_place(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// What a stopped run leaves behind and, where there is a checkpoint, how to continue it.
fn after_stop(out: &Path) -> String {
    match checkpoint::read_state(out) {
        Ok(_) => format!(
            "{}; continue it with `rims train --resume {}`",
            kept(out),
            out.display()
        ),
        Err(_) => kept(out),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Command, cli_command};
    use clap::FromArgMatches;

    fn parse(args: &[&str]) -> TrainArgs {
        let m = cli_command()
            .try_get_matches_from(std::iter::once("rims").chain(args.iter().copied()))
            .expect("parses");
        match crate::Cli::from_arg_matches(&m).expect("builds").command {
            Command::Train(t) => *t,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn every_config_flag_names_a_config_field() {
        let flags = serde_json::to_value(ConfigFlags::default()).unwrap();
        let config = serde_json::to_value(TrainConfig::default()).unwrap();
        let fields = config.as_object().unwrap();
        let names = flags.as_object().unwrap();
        assert!(names.len() >= 25, "{names:?}");
        for name in names.keys() {
            assert!(
                fields.contains_key(name),
                "--{name} sets no TrainConfig field"
            );
            // Errors about the field name the flag.
            let flag = format!("--{}", name.replace('_', "-"));
            let named = flags::train_flag(name).unwrap_or_default();
            assert!(
                named.starts_with(&flag),
                "{name} is named {named:?}, not {flag}"
            );
        }
    }

    #[test]
    fn no_config_flag_is_dropped_on_the_way_to_the_config() {
        // A value JSON cannot hold (a NaN) would reach the config as "not given": every flag
        // must refuse it at parsing or carry it into the config.
        let flags = serde_json::to_value(ConfigFlags::default()).unwrap();
        for name in flags.as_object().unwrap().keys() {
            let flag = format!("--{}", name.replace('_', "-"));
            let Ok(m) = cli_command().try_get_matches_from(["rims", "train", &flag, "NaN"]) else {
                continue;
            };
            let Command::Train(a) = crate::Cli::from_arg_matches(&m).unwrap().command else {
                panic!("not train");
            };
            let base = TrainConfig::default();
            assert_ne!(a.apply(&base).unwrap(), base, "{flag} NaN was dropped");
        }
    }

    #[test]
    fn flags_given_and_only_those_reach_the_config() {
        let base = TrainConfig::default();
        let a = parse(&[
            "train",
            "--lr",
            "-0.01",
            "--forget-bias",
            "-1",
            "--variant",
            "dido",
            "--input-heads",
            "2",
            "--cell",
            "gru",
            "--task",
            "adding",
            "--clip",
            "0",
            "--no-carry",
        ]);
        let c = a.apply(&base).unwrap();
        let want = TrainConfig {
            lr: -0.01,
            forget_bias: -1.0,
            variant: "dido".into(),
            input_heads: 2,
            cell: "gru".into(),
            task: Task::Adding,
            clip: None,
            carry_state: false,
            ..base.clone()
        };
        assert_eq!(c, want);
        // Nothing given: the config as it was, including its non-default settings.
        let odd = TrainConfig {
            hidden: 7,
            model: "gru".into(),
            carry_state: true,
            ..base
        };
        assert_eq!(parse(&["train"]).apply(&odd).unwrap(), odd);
    }

    #[test]
    fn variant_dido_drops_the_presets_forget_bias_but_not_an_explicit_one() {
        let c = parse(&["train", "--task", "smnist", "--variant", "dido"])
            .config()
            .unwrap();
        assert_eq!((c.forget_bias, c.comm_value), (0.0, c.hidden));
        let e = parse(&[
            "train",
            "--task",
            "smnist",
            "--variant",
            "dido",
            "--forget-bias",
            "1",
        ])
        .config()
        .unwrap_err()
        .to_string();
        assert!(e.contains("forget_bias") && e.contains("no biases"), "{e}");
    }

    #[test]
    fn a_new_run_starts_from_its_preset() {
        let c = parse(&["train"]).config().unwrap();
        assert_eq!(c, TrainConfig::default());
        let c = parse(&["train", "--preset", "paper", "--model", "lstm"])
            .config()
            .unwrap();
        assert_eq!(
            (c.model.as_str(), c.hidden, c.input_gain),
            ("lstm", 600, 1.0)
        );
        let e = parse(&["train", "--model", "gru", "--hidden", "0"])
            .config()
            .map_err(|e| flags::name_flag(e, flags::dense_train_flag))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid config: --hidden (units of the dense layer): must be at least 1"
        );
    }
}
