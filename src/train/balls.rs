//! The bouncing-balls task (docs/spec.md §2.5): a frame model trained on next-frame prediction
//! with teacher forcing, and evaluated by rolling it out: the first [`ROLLOUT_GIVEN`] true
//! frames in, then its own predictions fed back for `test_len` more frames, the loss of each
//! predicted frame reported on the training distribution (4 balls) and off it (6–8 balls, 3
//! balls behind a curtain).

use crate::data::balls::{BallsConfig, BallsStream, Batch, Curtain, Span, Split};
use crate::device::Context;
use crate::error::{Error, Result};
use crate::nn::model::{InputLayer, Model, Pass};
use crate::ops::binary_cross_entropy;
use crate::ops::elementwise::{self, Unary};
use crate::tape::Tape;
use crate::tensor::Tensor;

use super::dist::Part;
use super::step::{Stepper, Target};
use super::{EvalResult, Sums, TrainConfig};

/// True frames a rollout starts from (the paper's fig. 6: 15 given, 15 predicted).
pub const ROLLOUT_GIVEN: usize = 15;

/// The rollout frames whose loss each evaluation reports (1-based), those within the horizon.
pub const REPORTED_FRAMES: [usize; 5] = [1, 5, 10, 15, 35];

/// Sequences of each evaluation set.
pub const EVAL_SEQUENCES: usize = 64;

/// The seed of every evaluation set's sequences: the same for every run, so that runs of
/// different seeds and models are scored on the same sequences.
pub const EVAL_DATA_SEED: u64 = 0xBA11_5EED;

/// One set the rollout is scored on.
#[derive(Clone, Copy, Debug)]
pub struct EvalSet {
    /// Its name in the metrics (`val`, `test-4`, `test-6-8`, `test-curtain`).
    pub name: &'static str,
    /// Which stream of the evaluation seed.
    pub split: Split,
    /// Balls per sequence.
    pub balls: Span<usize>,
    /// The occluding band, if any.
    pub curtain: Option<Curtain>,
}

/// The sets a run is evaluated on: its own distribution's validation sequences, and the test
/// sequences of the paper's three settings (appendix D.4). Nothing is tuned on the tests.
pub fn eval_sets(cfg: &TrainConfig) -> Result<Vec<EvalSet>> {
    let train = Span::parse(&cfg.balls, "balls")?;
    let set = |name, split, balls, curtain| EvalSet {
        name,
        split,
        balls,
        curtain,
    };
    Ok(vec![
        set("val", Split::Val, train, None),
        set("test-4", Split::Test, Span::fixed(4), None),
        set("test-6-8", Split::Test, Span { lo: 6, hi: 8 }, None),
        set(
            "test-curtain",
            Split::Test,
            Span::fixed(3),
            Some(Curtain::MIDDLE),
        ),
    ])
}

/// The sequences of evaluation set `set`: the run's frame size, 15 given frames and
/// `test_len` to predict.
pub fn set_data(cfg: &TrainConfig, set: &EvalSet) -> BallsConfig {
    BallsConfig {
        curtain: set.curtain,
        ..data_config(cfg, set.balls, ROLLOUT_GIVEN + cfg.test_len)
    }
}

/// The data of a run: its balls and frame size, sequences of `length` frames.
pub fn data_config(cfg: &TrainConfig, balls: Span<usize>, length: usize) -> BallsConfig {
    BallsConfig {
        balls,
        size: cfg.frame_size,
        length,
        ..BallsConfig::default()
    }
}

/// The model's inputs and targets of a batch under teacher forcing: frames 0..T−1 in
/// `[T−1, B, S, S]`, frames 1..T as `[(T−1)·B, S²]` (time-major, so both are contiguous).
fn teacher_forced(ctx: &Context, b: &Batch) -> Result<(Tensor, Tensor)> {
    let (t, n, s) = (b.length, b.batch, b.size);
    if t < 2 {
        return Err(Error::config(
            "train_len",
            "a sequence needs at least 2 frames",
        ));
    }
    let frame = n * s * s;
    let x = Tensor::from_slice(ctx, &[t - 1, n, s, s], &b.frames[..(t - 1) * frame])?;
    let y = Tensor::from_slice(ctx, &[(t - 1) * n, s * s], &b.frames[frame..])?;
    Ok((x, y))
}

/// One epoch of `cfg.iterations` steps, each on fresh sequences: step `i` of the run draws
/// training sequences `i·B .. (i+1)·B`, so a resumed run sees what the uninterrupted one would
/// (and a rank of a distributed run draws only its shard of them, sequences being seeded one
/// by one).
pub(super) fn balls_epoch(st: &mut Stepper<'_>, epoch: usize) -> Result<f64> {
    let (ctx, cfg) = (st.ctx, st.cfg);
    let data = data_config(cfg, Span::parse(&cfg.balls, "balls")?, cfg.train_len);
    let mut stream = BallsStream::new(data, cfg.seed, Split::Train)?;
    let rows = st.rows.clone();
    let mut total = 0.0;
    for it in 0..cfg.iterations {
        stream.seek(st.progress.step * cfg.batch as u64 + rows.start as u64);
        let b = stream.next_batch(rows.len())?;
        let (x, y) = teacher_forced(ctx, &b)?;
        let step = (it + 1, cfg.iterations);
        total += st.step(epoch, step, &x, Target::Frames(&y), None)?.0 as f64;
    }
    Ok(total / cfg.iterations as f64)
}

/// What a rollout gives back.
#[derive(Debug)]
pub struct Rollout {
    /// The predicted frames σ(logits), `[horizon, B, S, S]`.
    pub predicted: Vec<f32>,
    /// Each predicted frame's binary cross-entropy against the true one, summed over its
    /// pixels, `[horizon, B]`.
    pub loss: Vec<f64>,
    /// Each predicted frame's pixel accuracy (prediction and truth on the same side of 1/2),
    /// `[horizon, B]`.
    pub accuracy: Vec<f64>,
    /// Which mechanisms were active at each step the model ran, `[given + horizon − 1, B, N]`
    /// (a dense core: one always-active column).
    pub masks: Vec<f32>,
}

/// Rolls `model` out on `frames` (`[given + horizon, B, S, S]`, time-major): the first `given`
/// frames in, then `horizon` frames each predicted from the model's previous prediction.
pub fn rollout(
    ctx: &Context,
    model: &Model,
    frames: &[f32],
    batch: usize,
    given: usize,
    horizon: usize,
) -> Result<Rollout> {
    let InputLayer::Frames(net) = model.cfg.input else {
        return Err(Error::invalid(
            "rollout",
            "only a frame model (the balls task's) predicts frames",
        ));
    };
    let (size, pixels) = (net.size, net.pixels());
    let frame = batch * pixels;
    if given == 0 || horizon == 0 || frames.len() != (given + horizon) * frame {
        return Err(Error::shape(
            "rollout",
            format!(
                "{} values are not {given} given and {horizon} predicted frames of {batch} × \
                 {size}²",
                frames.len()
            ),
        ));
    }
    let mut out = Rollout {
        predicted: Vec::with_capacity(horizon * frame),
        loss: Vec::with_capacity(horizon * batch),
        accuracy: Vec::with_capacity(horizon * batch),
        masks: Vec::new(),
    };
    let mut input = Tensor::from_slice(ctx, &[given, batch, size, size], &frames[..given * frame])?;
    let mut state = None;
    for k in 0..horizon {
        let mut tape = Tape::untracked();
        let run = model.forward(ctx, &mut tape, &input, state.take(), Pass::default())?;
        state = Some((run.h_last, run.c_last));
        // The last step's logits predict frame given + k.
        let steps = tape.value(run.logits).shape()[0] / batch;
        let logits =
            tape.value(run.logits)
                .slice_copy(ctx, (steps - 1) * frame, &[batch, pixels])?;
        let truth = &frames[(given + k) * frame..(given + k + 1) * frame];
        let target = Tensor::from_slice(ctx, &[batch, pixels], truth)?;
        let (loss, _) = binary_cross_entropy::with_logits(ctx, &logits, &target, 1.0)?;
        let predicted = elementwise::unary(ctx, Unary::Sigmoid, &logits)?;
        // Read back once everything of the step is recorded: one submit per rollout step.
        let (loss, probs) = (loss.to_vec(ctx)?, predicted.to_vec(ctx)?);
        out.masks.extend(run.masks.to_vec(ctx)?);
        for e in 0..batch {
            let rows = e * pixels..(e + 1) * pixels;
            out.loss
                .push(loss[rows.clone()].iter().map(|&v| v as f64).sum());
            let right = probs[rows.clone()]
                .iter()
                .zip(&truth[rows])
                .filter(|(p, t)| (**p > 0.5) == (**t > 0.5))
                .count();
            out.accuracy.push(right as f64 / pixels as f64);
        }
        out.predicted.extend_from_slice(&probs);
        input = predicted.reshape(&[1, batch, size, size])?;
    }
    Ok(out)
}

/// The rollout of `model` on each evaluation set: the mean loss and pixel accuracy of rollout
/// frames 1, 5, 10, 15 (and 35), those within `cfg.test_len`; `size` is the rollout frame.
pub fn evaluate_balls(ctx: &Context, cfg: &TrainConfig, model: &Model) -> Result<Vec<EvalResult>> {
    Ok(Sums::results(&balls_sums(ctx, cfg, model, Part::WHOLE)?))
}

/// [`evaluate_balls`]'s sums over `part`'s sequences of each evaluation set.
pub(super) fn balls_sums(
    ctx: &Context,
    cfg: &TrainConfig,
    model: &Model,
    part: Part,
) -> Result<Vec<Sums>> {
    let mut results = Vec::new();
    let frames: Vec<usize> = REPORTED_FRAMES
        .into_iter()
        .filter(|&k| k <= cfg.test_len)
        .collect();
    for set in eval_sets(cfg)? {
        let mut sums: Vec<Sums> = frames.iter().map(|&k| Sums::new(set.name, k)).collect();
        let rows = part.rows(EVAL_SEQUENCES);
        if !rows.is_empty() {
            // Sequences are seeded one by one: a part draws only its own.
            let mut stream = BallsStream::new(set_data(cfg, &set), EVAL_DATA_SEED, set.split)?;
            stream.seek(rows.start as u64);
            let b = stream.next_batch(rows.len())?;
            let r = rollout(ctx, model, &b.frames, b.batch, ROLLOUT_GIVEN, cfg.test_len)?;
            for (s, &k) in sums.iter_mut().zip(&frames) {
                let rows = (k - 1) * b.batch..k * b.batch;
                s.loss = r.loss[rows.clone()].iter().sum();
                s.losses = b.batch as f64;
                s.correct = r.accuracy[rows].iter().sum();
                s.counted = b.batch as f64;
            }
        }
        results.extend(sums);
    }
    Ok(results)
}
