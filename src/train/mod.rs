//! Training and evaluation of the experiments (`docs/spec.md` §2): the loop, evaluation,
//! metrics as JSON lines, checkpoints that survive a crash, and resuming.
//!
//! Determinism: every random choice is drawn from a generator seeded by (run seed, epoch), and
//! dropout masks are keyed by (run seed, optimiser step), so a run resumed from a checkpoint
//! (taken at an epoch boundary) repeats exactly what the uninterrupted run would have done on
//! the same device.
//!
//! Data parallelism ([`train_dist`], [`dist`]): P ranks split each global batch into equal
//! shards and average their gradients, so a run on P ranks takes the steps of a one-process
//! run on the whole batch (up to the order of the sums; dropout masks excepted, see
//! [`dist`]), and resumes with any P.

pub mod balls;
pub mod bench;
pub mod budget;
pub mod checkpoint;
pub mod config;
pub mod dist;
pub mod step;

use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::data::{self, SmnistBatches};
use crate::device::Context;
use crate::error::{Error, Result};
use crate::nn::model::{Model, Pass};
use crate::ops::optim::{Adam, AdamConfig};
use crate::rng::Rng;
use crate::tape::Tape;
use crate::tensor::Tensor;
use checkpoint::Progress;
pub use config::{LrSchedule, Task, TrainConfig};
use dist::{Dist, Part, rows_of};
use step::Stepper;
pub use step::{Target, record_step};

/// Something that wants to hear about progress (the CLI's progress bar; nothing in tests).
pub trait Reporter {
    /// Called once before the first step with the number of steps this call will take.
    fn started(&mut self, _steps: u64) {}
    /// Called after every optimiser step with the step's loss.
    fn step(&mut self, epoch: usize, iteration: usize, of: usize, loss: f32, sequences: usize);
    /// Called after each evaluation.
    fn evaluated(&mut self, record: &EvalRecord);
    /// Asked after every step whether to go on: an error (`Error::Stopped`) stops the run
    /// there, with the last checkpoint kept (a signal, or an exception in a Python progress
    /// callback).
    fn keep_going(&mut self) -> Result<()> {
        Ok(())
    }
}

/// A reporter that says nothing.
pub struct Quiet;

impl Reporter for Quiet {
    fn step(&mut self, _: usize, _: usize, _: usize, _: f32, _: usize) {}
    fn evaluated(&mut self, _: &EvalRecord) {}
}

/// One evaluation on one split at one length (or resolution).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalResult {
    /// Name of the evaluated split.
    pub split: String,
    /// Copying: the gap T; sMNIST: the resolution S; adding: the sequence length T.
    pub size: usize,
    /// Mean loss per example: cross-entropy in nats (copying, sMNIST) or squared error
    /// (adding).
    pub loss: f64,
    /// Copying: accuracy on the copied segment; sMNIST: classification accuracy; adding: the
    /// fraction of sums predicted within [`ADDING_TOLERANCE`].
    pub accuracy: f64,
}

/// One line of `metrics.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalRecord {
    /// Epochs completed when the evaluation ran.
    pub epoch: usize,
    /// Optimiser steps taken when the evaluation ran.
    pub step: u64,
    /// Wall time spent training so far, in seconds.
    pub seconds: f64,
    /// Mean training loss since the previous record, in nats.
    pub train_loss: f64,
    /// One result per split and length (or resolution).
    pub eval: Vec<EvalResult>,
}

/// The final state of a run.
#[derive(Debug)]
pub struct Summary {
    /// Where the run stopped.
    pub progress: Progress,
    /// Every evaluation record this call made (a resumed run: from where it resumed), oldest
    /// first.
    pub history: Vec<EvalRecord>,
}

/// The optimizer a run of `cfg` uses (its learning rate and clipping, PyTorch's Adam defaults
/// otherwise).
pub fn adam_config(cfg: &TrainConfig) -> AdamConfig {
    AdamConfig {
        lr: cfg.lr,
        clip_norm: cfg.clip,
        ..AdamConfig::default()
    }
}

/// A generator for epoch `epoch` of a run seeded `seed` (independent of where a run resumed).
fn epoch_rng(seed: u64, epoch: usize, salt: u64) -> Rng {
    Rng::new(seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt)
}

/// Uploads time-major u32 tokens [T, B].
fn tokens(ctx: &Context, t_len: usize, b: usize, data: &[u32]) -> Result<Tensor> {
    Tensor::from_u32(ctx, &[t_len, b], data)
}

/// Trains `cfg` into `out` (or continues the checkpoint there when `resume`).
pub fn train(
    ctx: &Context,
    cfg: &TrainConfig,
    out: &Path,
    resume: bool,
    reporter: &mut dyn Reporter,
) -> Result<Summary> {
    train_dist(ctx, cfg, out, resume, reporter, &Dist::single())
}

/// [`train`] as one rank of a data-parallel job: every rank of `dist` calls it with the same
/// `cfg` (checked first: ranks that differ all fail, naming the fields). Rank 0 reads `out`
/// (the checkpoint of a resumed run, an `init` run) and sends the parameters, Adam's state and
/// the progress to the others; each rank trains on its shard of every global batch
/// ([`dist::shard_rows`]), the gradients averaged over the ranks each step, and evaluates its
/// rows of every evaluation batch, the parts added up so that every rank holds the same
/// records. Rank 0 alone writes checkpoints and metrics and should report (the others'
/// `reporter` hears of steps and evaluations too, and is asked [`Reporter::keep_going`]: any
/// rank's stop stops all of them after the same step). A failure on one rank is every rank's
/// error ([`Dist::agree`]), so none is left waiting.
pub fn train_dist(
    ctx: &Context,
    cfg: &TrainConfig,
    out: &Path,
    resume: bool,
    reporter: &mut dyn Reporter,
    dist: &Dist,
) -> Result<Summary> {
    dist.agree_config(cfg)?;
    let rows = dist.agree(
        cfg.validate()
            .and_then(|()| budget::check(ctx, cfg, true))
            .and_then(|()| dist::shard_rows(cfg.batch, dist.rank(), dist.size())),
    )?;
    let (model, mut adam) = dist.agree(build(ctx, cfg))?;
    // The data before the run directory: a missing or disagreeing data set touches nothing.
    let mnist = dist.agree(match cfg.task {
        Task::Smnist => load_mnist(cfg).map(Some),
        Task::Copying | Task::Adding | Task::Balls => Ok(None),
    })?;
    if let Some(m) = mnist.as_ref().filter(|_| dist.size() > 1) {
        // Each rank reads the data itself: the same path on two machines may hold other files.
        dist.agree_same("the MNIST data (--mnist-dir)", &m.fingerprint())?;
    }
    // Rank 0 alone reads and writes the run directory.
    let opened = match dist.is_root() {
        true => open_run_dir(ctx, cfg, out, resume, &model, &mut adam),
        false => Ok((Progress::default(), None, String::new())),
    };
    let (mut progress, _lock, mut metrics) = dist.agree(opened)?;
    if dist.size() > 1 {
        dist.agree(share_start(ctx, dist, &model, &mut adam, &mut progress))?;
    }
    let per_epoch = match &mnist {
        Some(m) => (m.train.labels.len() / cfg.batch) as u64,
        None => cfg.iterations as u64,
    };
    let total_steps = per_epoch * cfg.epochs as u64;
    reporter.started(per_epoch * cfg.epochs.saturating_sub(progress.epoch) as u64);
    let mut history = Vec::new();
    let started = Instant::now();
    let base_seconds = progress.seconds;
    let mut exchange = Vec::new();
    for epoch in progress.epoch..cfg.epochs {
        let mut st = Stepper {
            ctx,
            cfg,
            model: &model,
            adam: &mut adam,
            total_steps,
            progress: &mut progress,
            reporter,
            dist,
            rows: rows.clone(),
            exchange: &mut exchange,
        };
        let train_loss = match (cfg.task, &mnist) {
            (Task::Copying, _) => copying_epoch(&mut st, epoch)?,
            (Task::Adding, _) => adding_epoch(&mut st, epoch)?,
            (Task::Balls, _) => balls::balls_epoch(&mut st, epoch)?,
            (Task::Smnist, Some(mnist)) => smnist_epoch(&mut st, epoch, mnist)?,
            (Task::Smnist, None) => return Err(Error::invalid("train", "MNIST is not loaded")),
        };
        progress.epoch = epoch + 1;
        progress.seconds = base_seconds + started.elapsed().as_secs_f64();
        if progress.epoch % cfg.eval_every == 0 || progress.epoch == cfg.epochs {
            // Each rank evaluates its part; the parts' sums are added up on every rank.
            let eval = evaluate_run(ctx, cfg, &model, mnist.as_ref(), dist);
            let record = dist.agree(eval.and_then(|eval| {
                let record = EvalRecord {
                    epoch: progress.epoch,
                    step: progress.step,
                    seconds: progress.seconds,
                    train_loss,
                    eval,
                };
                check_eval(&record)?;
                Ok(record)
            }))?;
            let saved = match dist.is_root() {
                true => {
                    metrics_line(&out.join(checkpoint::METRICS_FILE), &record).and_then(|line| {
                        metrics.push_str(&line);
                        checkpoint::save(ctx, out, cfg, &model, &adam, &progress, Some(&metrics))
                    })
                }
                false => Ok(()),
            };
            dist.agree(saved)?;
            reporter.evaluated(&record);
            history.push(record);
        }
    }
    Ok(Summary { progress, history })
}

/// The model of `cfg` at its initial parameters, and a fresh optimizer for it.
fn build(ctx: &Context, cfg: &TrainConfig) -> Result<(Model, Adam)> {
    let model = Model::new(ctx, cfg.model()?, cfg.seed)?;
    model.add_forget_bias(ctx, cfg.forget_bias)?;
    model.scale_input_attention(ctx, cfg.input_gain)?;
    let adam = Adam::new(ctx, model.store.trainable_len(), adam_config(cfg))?;
    Ok((model, adam))
}

/// What a run does to its directory before the first step (rank 0 of a distributed run, alone):
/// the checkpoint of a resumed run loaded into `model` and `adam`, an `init` run's parameters,
/// the directory locked for the whole run and opened. Returns where the run stands, the lock
/// and the records so far.
fn open_run_dir(
    ctx: &Context,
    cfg: &TrainConfig,
    out: &Path,
    resume: bool,
    model: &Model,
    adam: &mut Adam,
) -> Result<(Progress, Option<checkpoint::RunLock>, String)> {
    let mut progress = Progress::default();
    if resume {
        let state = checkpoint::read_state(out)?;
        let diffs = cfg.mismatches(&state.config);
        if !diffs.is_empty() {
            return Err(Error::config(
                "resume",
                format!(
                    "the checkpoint in {} was made with another config: {}",
                    out.display(),
                    diffs.join("; ")
                ),
            ));
        }
        progress = checkpoint::load(ctx, out, model, Some(adam))?.progress;
    }
    if let (Some(init), false) = (&cfg.init, resume) {
        start_from(ctx, cfg, model, init)?;
    }
    // One writer per run directory, for the whole run.
    let lock = checkpoint::lock_run(out)?;
    // The records of the run so far; each checkpoint carries a copy (see `checkpoint`).
    let metrics = checkpoint::open_run(out, resume)?;
    Ok((progress, Some(lock), metrics))
}

/// Rank 0's start on every rank: the parameters (its initial ones, an `init` run's or a
/// checkpoint's), Adam's moments and step count, and the progress. Initialisation is seeded,
/// so the parameters would agree anyway; what rank 0 read from disk would not.
fn share_start(
    ctx: &Context,
    dist: &Dist,
    model: &Model,
    adam: &mut Adam,
    progress: &mut Progress,
) -> Result<()> {
    // A rank's own failure (its device) must not skip a broadcast the others are in, or they
    // would wait for it for ever: it is kept, every broadcast still happens, and the caller's
    // `agree` then stops all ranks with it.
    let mut failed: Option<Error> = None;
    for t in [
        model.store.flat_values(),
        adam.moments().0,
        adam.moments().1,
    ] {
        let mut values = t.to_vec(ctx).unwrap_or_else(|e| {
            failed.get_or_insert(e);
            vec![0.0; t.len()]
        });
        dist.broadcast_f32(&mut values)?;
        if !dist.is_root() && failed.is_none() {
            failed = t.write(ctx, &values).err();
        }
    }
    let (p, t) =
        dist.broadcast_json(dist.is_root().then_some(&(progress.clone(), adam.steps())))?;
    *progress = p;
    adam.set_steps(t);
    failed.map_or(Ok(()), Err)
}

/// Loads the parameters of the current checkpoint in `init` into `model` (a fine-tuning start:
/// the optimizer and the step count stay fresh), after checking that the two runs' model
/// settings agree.
fn start_from(ctx: &Context, cfg: &TrainConfig, model: &Model, init: &Path) -> Result<()> {
    let state = checkpoint::read_state(init)?;
    let diffs = cfg.model_mismatches(&state.config);
    if !diffs.is_empty() {
        return Err(Error::config(
            "init",
            format!(
                "{} holds another model: {}",
                init.display(),
                diffs.join("; ")
            ),
        ));
    }
    checkpoint::load(ctx, init, model, None)?;
    Ok(())
}

/// The evaluation records of a `metrics.jsonl` text read from `path` (named in errors): every
/// non-empty line an [`EvalRecord`] with finite losses and accuracies, at least one of them.
pub fn parse_records(text: &str, path: &Path) -> Result<Vec<EvalRecord>> {
    let bad = |reason: String| Error::file(path, reason);
    let mut records = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let r: EvalRecord = serde_json::from_str(line)
            .map_err(|e| bad(format!("line {}: not a metrics record: {e}", i + 1)))?;
        if let Some(why) = impossible(&r) {
            return Err(bad(format!("line {}: {why}", i + 1)));
        }
        records.push(r);
    }
    if records.is_empty() {
        return Err(bad("no records: has an epoch finished yet?".into()));
    }
    Ok(records)
}

/// What makes `r` a record no run writes, if anything: a loss that is not a finite number
/// of at least 0 (cross-entropy and squared error are never negative), an accuracy outside
/// [0, 1], a time that is not a finite number of at least 0. Pictures and tables would
/// otherwise draw such a record as if it were a result.
fn impossible(r: &EvalRecord) -> Option<String> {
    let loss = |x: f64| x.is_finite() && x >= 0.0;
    // 1e300 rather than its 301 digits.
    let shown = |x: f64| {
        if x != 0.0 && !(1e-4..1e6).contains(&x.abs()) {
            format!("{x:e}")
        } else {
            x.to_string()
        }
    };
    if !loss(r.train_loss) {
        return Some(format!(
            "train_loss {} is not a loss (finite, at least 0)",
            shown(r.train_loss)
        ));
    }
    if !(r.seconds.is_finite() && r.seconds >= 0.0) {
        return Some(format!("seconds {} is not a time", shown(r.seconds)));
    }
    for e in &r.eval {
        if !loss(e.loss) {
            return Some(format!(
                "{}@{}: loss {} is not a loss (finite, at least 0)",
                e.split,
                e.size,
                shown(e.loss)
            ));
        }
        if !(0.0..=1.0).contains(&e.accuracy) {
            return Some(format!(
                "{}@{}: accuracy {} is not a fraction in [0, 1]",
                e.split,
                e.size,
                shown(e.accuracy)
            ));
        }
    }
    None
}

/// [`parse_records`] of the file at `path`.
pub fn read_records(path: &Path) -> Result<Vec<EvalRecord>> {
    let text = crate::io::read_regular_string(path, crate::io::Link::Refuse)?;
    parse_records(&text, path)
}

/// `record` as one line of `metrics.jsonl` (newline included).
fn metrics_line(path: &Path, record: &EvalRecord) -> Result<String> {
    let line = serde_json::to_string(record).map_err(|e| Error::file(path, e.to_string()))?;
    Ok(line + "\n")
}

/// An evaluation whose loss is not a finite number means the parameters are: stop the run
/// before they are saved.
fn check_eval(record: &EvalRecord) -> Result<()> {
    match record.eval.iter().find(|e| !e.loss.is_finite()) {
        None => Ok(()),
        Some(e) => Err(Error::Diverged {
            step: record.step,
            what: format!(
                "the {} loss at size {} is {} (the run diverged: a lower learning rate or \
                 gradient clipping may help)",
                e.split, e.size, e.loss
            ),
        }),
    }
}

/// Rows `rows` of a copying batch (a rank's shard).
fn copying_shard(b: &data::CopyingBatch, rows: std::ops::Range<usize>) -> data::CopyingBatch {
    data::CopyingBatch {
        inputs: rows_of(&b.inputs, b.t_len, b.batch, 1, rows.clone()),
        targets: rows_of(&b.targets, b.t_len, b.batch, 1, rows.clone()),
        batch: rows.len(),
        ..b.clone()
    }
}

fn copying_epoch(st: &mut Stepper<'_>, epoch: usize) -> Result<f64> {
    let (ctx, cfg) = (st.ctx, st.cfg);
    let mut rng = epoch_rng(cfg.seed, epoch, 1);
    // The authors regenerate a pool of batches each epoch and draw iterations from it.
    let task = cfg.copying(cfg.train_len)?;
    // Every rank draws the whole pool, so the batches do not depend on the number of ranks.
    let pool: Vec<data::CopyingBatch> = (0..cfg.pool)
        .map(|_| task.batch(&mut rng, cfg.batch))
        .collect::<Result<_>>()?;
    // The hidden state is zeroed at the start of an epoch and carried (detached) across batches
    // (each rank carries its rows' state: a row is on the same rank in every batch).
    let mut state = None;
    let mut total = 0.0;
    for it in 0..cfg.iterations {
        let whole = &pool[rng.below(cfg.pool as u64) as usize];
        let b = &copying_shard(whole, st.rows.clone());
        let x = tokens(ctx, b.t_len, b.batch, &b.inputs)?;
        let y = Tensor::from_u32(ctx, &[b.t_len * b.batch], &b.targets)?;
        let step = (it + 1, cfg.iterations);
        let (loss, next) = st.step(epoch, step, &x, Target::Classes(&y), state)?;
        state = cfg.carry_state.then_some(next);
        total += loss as f64;
    }
    Ok(total / cfg.iterations as f64)
}

/// Copying evaluation at the training gap and the test gap: loss over all positions and
/// accuracy on the copied segment, over fixed batches (the same every evaluation).
pub fn evaluate_copying(
    ctx: &Context,
    cfg: &TrainConfig,
    model: &Model,
) -> Result<Vec<EvalResult>> {
    Ok(Sums::results(&copying_sums(ctx, cfg, model, Part::WHOLE)?))
}

/// [`evaluate_copying`]'s sums over `part`'s rows of each batch.
fn copying_sums(ctx: &Context, cfg: &TrainConfig, model: &Model, part: Part) -> Result<Vec<Sums>> {
    let mut results = Vec::new();
    for t in [cfg.train_len, cfg.test_len] {
        let split = "copy";
        let task = cfg.copying(t)?;
        let mut rng = Rng::new(cfg.seed ^ 0xE7A1 ^ t as u64);
        let mut sums = Sums::new(split, t);
        let batches = 4;
        let rows = part.rows(cfg.batch);
        // Evaluation treats the state as training does: carried from batch to batch, or not.
        let mut state = None;
        for _ in 0..batches {
            let whole = task.batch(&mut rng, cfg.batch)?;
            // Each batch weighs 1 in the mean over batches: a part's rows their share of it.
            let weight = rows.len() as f64 / whole.batch as f64;
            sums.losses += weight;
            if rows.is_empty() {
                continue;
            }
            let b = &copying_shard(&whole, rows.clone());
            let x = tokens(ctx, b.t_len, b.batch, &b.inputs)?;
            let y = Tensor::from_u32(ctx, &[b.t_len * b.batch], &b.targets)?;
            let mut tape = Tape::untracked();
            let out = model.forward(ctx, &mut tape, &x, state.take(), Pass::default())?;
            if cfg.carry_state {
                state = Some((out.h_last.clone(), out.c_last.clone()));
            }
            let l = tape.cross_entropy(ctx, out.logits, &y)?;
            sums.loss += tape.value(l).to_vec(ctx)?[0] as f64 * weight;
            let logits = tape.value(out.logits).to_vec(ctx)?;
            let classes = model.cfg.classes;
            for pos in task.copied_positions() {
                for e in 0..b.batch {
                    let row = pos * b.batch + e;
                    let pred = argmax(&logits[row * classes..(row + 1) * classes]);
                    sums.correct += f64::from(u8::from(pred as u32 == b.targets[row]));
                    sums.counted += 1.0;
                }
            }
        }
        results.push(sums);
    }
    Ok(results)
}

/// An adding-problem prediction counts as correct within this absolute error (Hochreiter &
/// Schmidhuber 1997 used the same threshold).
pub const ADDING_TOLERANCE: f32 = 0.04;

/// One adding batch on the device: features [T, B, 2] and targets [B, 1].
fn adding_tensors(ctx: &Context, b: &data::AddingBatch) -> Result<(Tensor, Tensor)> {
    let x = Tensor::from_slice(ctx, &[b.t_len, b.batch, data::adding::CHANNELS], &b.inputs)?;
    let y = Tensor::from_slice(ctx, &[b.batch, 1], &b.targets)?;
    Ok((x, y))
}

/// Rows `rows` of an adding batch (a rank's shard).
fn adding_shard(b: &data::AddingBatch, rows: std::ops::Range<usize>) -> data::AddingBatch {
    data::AddingBatch {
        inputs: rows_of(
            &b.inputs,
            b.t_len,
            b.batch,
            data::adding::CHANNELS,
            rows.clone(),
        ),
        targets: b.targets[rows.clone()].to_vec(),
        markers: b.markers[rows.clone()].to_vec(),
        t_len: b.t_len,
        batch: rows.len(),
    }
}

fn adding_epoch(st: &mut Stepper<'_>, epoch: usize) -> Result<f64> {
    let (ctx, cfg) = (st.ctx, st.cfg);
    // A fresh batch every step: the task has no finite training set.
    let mut rng = epoch_rng(cfg.seed, epoch, 3);
    let mut total = 0.0;
    for it in 0..cfg.iterations {
        let whole = data::adding_batch(&mut rng, cfg.train_len, cfg.batch)?;
        let (x, y) = adding_tensors(ctx, &adding_shard(&whole, st.rows.clone()))?;
        let step = (it + 1, cfg.iterations);
        total += st.step(epoch, step, &x, Target::Values(&y), None)?.0 as f64;
    }
    Ok(total / cfg.iterations as f64)
}

/// Adding evaluation at the training length and the test length, over fixed batches (the
/// same every evaluation): mean squared error, and the fraction of sums predicted within
/// [`ADDING_TOLERANCE`].
pub fn evaluate_adding(ctx: &Context, cfg: &TrainConfig, model: &Model) -> Result<Vec<EvalResult>> {
    Ok(Sums::results(&adding_sums(ctx, cfg, model, Part::WHOLE)?))
}

/// [`evaluate_adding`]'s sums over `part`'s rows of each batch.
fn adding_sums(ctx: &Context, cfg: &TrainConfig, model: &Model, part: Part) -> Result<Vec<Sums>> {
    let mut results = Vec::new();
    for t in [cfg.train_len, cfg.test_len] {
        let mut rng = Rng::new(cfg.seed ^ 0xADD1 ^ t as u64);
        let mut sums = Sums::new("add", t);
        let batches = 4;
        let rows = part.rows(cfg.batch);
        for _ in 0..batches {
            let whole = data::adding_batch(&mut rng, t, cfg.batch)?;
            let weight = rows.len() as f64 / whole.batch as f64;
            sums.losses += weight;
            if rows.is_empty() {
                continue;
            }
            let b = adding_shard(&whole, rows.clone());
            let (x, y) = adding_tensors(ctx, &b)?;
            let mut tape = Tape::untracked();
            let out = model.forward(ctx, &mut tape, &x, None, Pass::default())?;
            let l = tape.mse(ctx, out.logits, &y)?;
            sums.loss += tape.value(l).to_vec(ctx)?[0] as f64 * weight;
            let pred = tape.value(out.logits).to_vec(ctx)?;
            sums.correct += pred
                .iter()
                .zip(&b.targets)
                .filter(|(p, t)| (*p - *t).abs() < ADDING_TOLERANCE)
                .count() as f64;
            sums.counted += b.batch as f64;
        }
        results.push(sums);
    }
    Ok(results)
}

/// One evaluation result as sums over the part of the work a rank did, which the ranks add up:
/// the loss is `loss / losses`, the accuracy `correct / counted`.
#[derive(Clone, Debug)]
struct Sums {
    split: String,
    size: usize,
    loss: f64,
    losses: f64,
    correct: f64,
    counted: f64,
}

impl Sums {
    fn new(split: &str, size: usize) -> Sums {
        Sums {
            split: split.into(),
            size,
            loss: 0.0,
            losses: 0.0,
            correct: 0.0,
            counted: 0.0,
        }
    }

    fn results(all: &[Sums]) -> Vec<EvalResult> {
        all.iter()
            .map(|s| EvalResult {
                split: s.split.clone(),
                size: s.size,
                loss: s.loss / s.losses.max(1.0),
                accuracy: s.correct / s.counted.max(1.0),
            })
            .collect()
    }
}

/// The evaluation of a training run on the ranks of `dist`: each rank evaluates its rows of
/// every evaluation batch, and one allreduce adds the parts up.
fn evaluate_run(
    ctx: &Context,
    cfg: &TrainConfig,
    model: &Model,
    mnist: Option<&data::Mnist>,
    dist: &Dist,
) -> Result<Vec<EvalResult>> {
    let part = Part {
        index: dist.rank(),
        count: dist.size(),
    };
    let local = match (cfg.task, mnist) {
        (Task::Copying, _) => copying_sums(ctx, cfg, model, part),
        (Task::Adding, _) => adding_sums(ctx, cfg, model, part),
        (Task::Balls, _) => balls::balls_sums(ctx, cfg, model, part),
        (Task::Smnist, Some(m)) => smnist_sums(ctx, cfg, model, m, &["val", "test"], part),
        (Task::Smnist, None) => Err(Error::invalid("train", "MNIST is not loaded")),
    };
    let mut sums = dist.agree(local)?;
    if dist.size() > 1 {
        let mut flat: Vec<f64> = sums
            .iter()
            .flat_map(|s| [s.loss, s.losses, s.correct, s.counted])
            .collect();
        dist.allreduce_sum_f64(&mut flat)?;
        for (s, v) in sums.iter_mut().zip(flat.chunks_exact(4)) {
            (s.loss, s.losses, s.correct, s.counted) = (v[0], v[1], v[2], v[3]);
        }
    }
    Ok(Sums::results(&sums))
}

/// The evaluation of a trained model that `rims eval` and Python's `rims.evaluate` report:
/// copying and adding at the training and test lengths, sMNIST on its test split at every
/// evaluation resolution, bouncing balls' rollouts on the validation and test sets.
pub fn evaluate_checkpoint(
    ctx: &Context,
    cfg: &TrainConfig,
    model: &Model,
) -> Result<Vec<EvalResult>> {
    match cfg.task {
        Task::Copying => evaluate_copying(ctx, cfg, model),
        Task::Adding => evaluate_adding(ctx, cfg, model),
        Task::Balls => balls::evaluate_balls(ctx, cfg, model),
        Task::Smnist => {
            let m = load_mnist(cfg)?;
            evaluate_smnist(ctx, cfg, model, &m, &["test"])
        }
    }
}

/// The index of the largest value (the first of equals; 0 for an empty slice): a prediction
/// from a row of logits.
pub fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold(0, |best, (i, x)| if *x > v[best] { i } else { best })
}

/// The MNIST data of a run: the bundled subset unless `mnist_dir` is set, trimmed to `limit`.
pub fn load_mnist(cfg: &TrainConfig) -> Result<data::Mnist> {
    let dir = cfg
        .mnist_dir
        .clone()
        .unwrap_or_else(data::bundled_mnist_dir);
    let mut m = data::load_mnist(&dir)?;
    let largest = m
        .train
        .labels
        .len()
        .max(m.val.labels.len())
        .max(m.test.labels.len());
    if let Some(limit) = cfg.limit {
        for split in [&mut m.train, &mut m.val, &mut m.test] {
            let keep: Vec<usize> = (0..split.labels.len().min(limit)).collect();
            split.images = split.images.select(&keep);
            split.labels.truncate(keep.len());
            split.source_indices.truncate(keep.len());
        }
    }
    check_splits(cfg, &dir, &m, cfg.limit.is_some_and(|l| l < largest))?;
    Ok(m)
}

/// Training needs a full batch of training examples, evaluation one example of each split.
/// `cut`: `cfg.limit` made a split smaller.
fn check_splits(cfg: &TrainConfig, dir: &Path, m: &data::Mnist, cut: bool) -> Result<()> {
    let (train, val, test) = (
        m.train.labels.len(),
        m.val.labels.len(),
        m.test.labels.len(),
    );
    if train >= cfg.batch && val > 0 && test > 0 {
        return Ok(());
    }
    let limit = match cfg.limit {
        Some(l) if cut => format!(" (at most {l} per split, --limit)"),
        _ => String::new(),
    };
    Err(Error::file(
        dir,
        format!(
            "too few images: {train} training, {val} validation and {test} test examples{limit}; \
             a run needs at least one batch (--batch {}) of training examples and one example \
             in each of the other splits",
            cfg.batch
        ),
    ))
}

fn smnist_epoch(st: &mut Stepper<'_>, epoch: usize, mnist: &data::Mnist) -> Result<f64> {
    let (ctx, cfg) = (st.ctx, st.cfg);
    let batches = SmnistBatches::new(&mnist.train, cfg.resolution, cfg.batch, Some(cfg.seed))?;
    let n = batches.batches_per_epoch();
    let order = batches.epoch_order(epoch as u64);
    let rows = st.rows.clone();
    let mut total = 0.0;
    for i in 0..n {
        // This rank's rows of the i-th batch of the epoch's order.
        let b = batches.batch_of(&order[i * cfg.batch + rows.start..i * cfg.batch + rows.end]);
        let x = tokens(ctx, b.t_len, b.batch, &b.tokens)?;
        let y = Tensor::from_u32(ctx, &[b.batch], &b.labels)?;
        total += st.step(epoch, (i + 1, n), &x, Target::Classes(&y), None)?.0 as f64;
    }
    Ok(total / n.max(1) as f64)
}

/// sMNIST evaluation on `splits` at every evaluation resolution.
pub fn evaluate_smnist(
    ctx: &Context,
    cfg: &TrainConfig,
    model: &Model,
    mnist: &data::Mnist,
    splits: &[&str],
) -> Result<Vec<EvalResult>> {
    Ok(Sums::results(&smnist_sums(
        ctx,
        cfg,
        model,
        mnist,
        splits,
        Part::WHOLE,
    )?))
}

/// [`evaluate_smnist`]'s sums over `part`'s rows of each batch.
fn smnist_sums(
    ctx: &Context,
    cfg: &TrainConfig,
    model: &Model,
    mnist: &data::Mnist,
    splits: &[&str],
    part: Part,
) -> Result<Vec<Sums>> {
    let mut results = Vec::new();
    for &name in splits {
        let split = match name {
            "val" => &mnist.val,
            "test" => &mnist.test,
            "train" => &mnist.train,
            other => {
                return Err(Error::config("split", format!("unknown split '{other}'")));
            }
        };
        for &s in &cfg.eval_resolutions {
            let batches = SmnistBatches::new(split, s, cfg.batch.min(split.labels.len()), None)?;
            let mut sums = Sums::new(name, s);
            let order = batches.epoch_order(0);
            for i in 0..batches.batches_per_epoch() {
                let all = &order[i * batches.batch_size()..(i + 1) * batches.batch_size()];
                let rows = part.rows(all.len());
                if rows.is_empty() {
                    continue;
                }
                let b = batches.batch_of(&all[rows]);
                let x = tokens(ctx, b.t_len, b.batch, &b.tokens)?;
                let y = Tensor::from_u32(ctx, &[b.batch], &b.labels)?;
                let mut tape = Tape::untracked();
                let out = model.forward(ctx, &mut tape, &x, None, Pass::default())?;
                let l = tape.cross_entropy(ctx, out.logits, &y)?;
                sums.loss += tape.value(l).to_vec(ctx)?[0] as f64 * b.batch as f64;
                let logits = tape.value(out.logits).to_vec(ctx)?;
                for e in 0..b.batch {
                    let right = argmax(&logits[e * 10..(e + 1) * 10]) as u32 == b.labels[e];
                    sums.correct += f64::from(u8::from(right));
                }
                sums.counted += b.batch as f64;
                sums.losses += b.batch as f64;
            }
            results.push(sums);
        }
    }
    Ok(results)
}
