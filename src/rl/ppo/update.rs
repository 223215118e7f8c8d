//! The PPO update: `epochs` passes over a rollout cut into sequences of `recurrence` frames,
//! shuffled into minibatches; each minibatch re-runs its sequences from their stored initial
//! states, one frame per core call, resetting a row's state on the tape where its episode
//! began, and takes one Adam step on the mean of the frames' PPO losses (truncated BPTT over
//! the sequence).

use crate::device::Context;
use crate::error::{Error, Result};
use crate::nn::recurrent::Start;
use crate::ops::elementwise::{self, Binary};
use crate::ops::optim::Adam;
use crate::ops::ppo_loss::{BATCH_FIELDS, PpoBatch, PpoCoefs, STATS, field};
use crate::rl::agent::{Agent, observation_ids};
use crate::rl::ppo::rollout::Rollout;
use crate::rl::view::IMAGE_LEN;
use crate::rng::Rng;
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

/// How an update cuts and weighs a rollout.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UpdateShape {
    /// Passes over the rollout.
    pub epochs: usize,
    /// Frames per minibatch.
    pub batch: usize,
    /// Frames per sequence (truncated BPTT length).
    pub recurrence: usize,
    /// The loss's coefficients.
    pub coefs: PpoCoefs,
}

/// One sequence of a minibatch: environment `env`'s frames `t0..t0 + recurrence`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sequence {
    /// The environment.
    pub env: usize,
    /// Its first frame.
    pub t0: usize,
}

/// The sequences of a rollout, one per environment and `recurrence` frames.
pub fn sequences(r: &Rollout, recurrence: usize) -> Vec<Sequence> {
    (0..r.steps)
        .step_by(recurrence)
        .flat_map(|t0| (0..r.envs).map(move |env| Sequence { env, t0 }))
        .collect()
}

/// Fisher-Yates with the run's generator.
fn shuffle<T>(v: &mut [T], rng: &mut Rng) {
    for i in (1..v.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        v.swap(i, j);
    }
}

/// Checks that the shape divides the rollout evenly.
pub fn check_shape(shape: &UpdateShape, steps: usize, envs: usize) -> Result<()> {
    shape.coefs.validate()?;
    if shape.epochs == 0 {
        return Err(Error::config("epochs", "must be at least 1"));
    }
    if shape.recurrence == 0 || !steps.is_multiple_of(shape.recurrence) {
        return Err(Error::config(
            "recurrence",
            format!(
                "{} must divide the {steps} frames each environment collects",
                shape.recurrence
            ),
        ));
    }
    if shape.batch == 0
        || !shape.batch.is_multiple_of(shape.recurrence)
        || !(steps * envs).is_multiple_of(shape.batch)
    {
        return Err(Error::config(
            "batch",
            format!(
                "{} must be a multiple of the recurrence {} and divide the {} frames of a rollout",
                shape.batch,
                shape.recurrence,
                steps * envs
            ),
        ));
    }
    Ok(())
}

/// Means over an update of the loss's statistics (`ops::ppo_loss::stat` order) and of the
/// gradient norm before clipping.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UpdateStats {
    /// Means of the loss statistics.
    pub loss: [f32; STATS],
    /// Mean global gradient norm before clipping.
    pub grad_norm: f32,
}

/// Runs the update on `r` with advantages `adv` and returns `ret`; `rng` shuffles.
#[allow(clippy::too_many_arguments)]
pub fn update(
    ctx: &Context,
    agent: &Agent,
    adam: &mut Adam,
    r: &Rollout,
    adv: &[f32],
    ret: &[f32],
    shape: &UpdateShape,
    rng: &mut Rng,
) -> Result<UpdateStats> {
    check_shape(shape, r.steps, r.envs)?;
    let per_batch = shape.batch / shape.recurrence;
    // Sums over the minibatches, kept on the device and read back once at the end: the
    // minibatches follow one another without waiting for the device.
    let mut loss_sum: Option<Tensor> = None;
    let mut norm_sum: Option<Tensor> = None;
    let mut count = 0usize;
    for _ in 0..shape.epochs {
        let mut seqs = sequences(r, shape.recurrence);
        shuffle(&mut seqs, rng);
        for mb in seqs.chunks(per_batch) {
            agent.store.zero_grads(ctx)?;
            let mut tape = Tape::new();
            let (loss, step_stats) = minibatch_loss(ctx, agent, &mut tape, r, adv, ret, mb, shape)?;
            tape.backward(ctx, loss)?;
            adam.step(ctx, agent.store.flat_values(), agent.store.flat_grads())?;
            loss_sum = Some(add_to(ctx, loss_sum, &step_stats)?);
            if let Some(norm) = adam.grad_norm() {
                norm_sum = Some(add_to(ctx, norm_sum, norm)?);
            }
            count += 1;
        }
    }
    let mut stats = UpdateStats::default();
    let wanted: Vec<&Tensor> = loss_sum.iter().chain(&norm_sum).collect();
    let read = Tensor::read_many(ctx, &wanted)?;
    // Per minibatch the statistics are summed over its frames: a mean is over both.
    let n = count.max(1) as f32;
    if let Some(sums) = loss_sum.as_ref().and(read.first()) {
        for (mean, sum) in stats.loss.iter_mut().zip(sums) {
            *mean = sum / (n * shape.recurrence as f32);
        }
    }
    if let Some(sum) = norm_sum.as_ref().and(read.last()) {
        stats.grad_norm = sum[0] / n;
    }
    for v in stats.loss.iter().chain([&stats.grad_norm]) {
        if !v.is_finite() {
            return Err(Error::Diverged {
                step: adam.steps(),
                what: format!(
                    "the PPO loss statistics are {:?} (the run diverged: a lower learning rate may help)",
                    stats.loss
                ),
            });
        }
    }
    Ok(stats)
}

/// `sum + value`, or `value` itself when there is no sum yet.
fn add_to(ctx: &Context, sum: Option<Tensor>, value: &Tensor) -> Result<Tensor> {
    match sum {
        None => value.duplicate(ctx),
        Some(sum) => elementwise::binary(ctx, Binary::Add, &sum, value),
    }
}

/// The agent re-run on the sequences `mb` of `len` frames, on `tape`: per frame, the policy
/// logits [m, 7] and values [m] of its rows (in `mb`'s order). Each sequence starts from the
/// state stored at its first frame; where an episode begins inside it, that row's state is
/// multiplied by zero on the tape, as collection reset it. Before any update this gives back
/// what collection computed.
pub fn replay(
    ctx: &Context,
    agent: &Agent,
    tape: &mut Tape,
    r: &Rollout,
    mb: &[Sequence],
    len: usize,
) -> Result<Vec<(Var, Var)>> {
    let (m, e) = (mb.len(), r.envs);
    let s = agent.cfg.state_width();
    let at = |seq: &Sequence, t: usize| (seq.t0 + t) * e + seq.env;
    if m == 0 || len == 0 || mb.iter().any(|q| q.env >= e || q.t0 + len > r.steps) {
        return Err(Error::invalid(
            "rl::replay",
            format!(
                "sequences of {len} frames outside a rollout of {} × {e}",
                r.steps
            ),
        ));
    }
    // Every frame's observation, time-major [len, m], encoded at once.
    let mut images = Vec::with_capacity(len * m * IMAGE_LEN);
    for t in 0..len {
        for seq in mb {
            let k = at(seq, t);
            images.extend_from_slice(&r.images[k * IMAGE_LEN..(k + 1) * IMAGE_LEN]);
        }
    }
    let ids = Tensor::from_u32(ctx, &[len * m, IMAGE_LEN], &observation_ids(&images)?)?;
    let x = agent.encode(ctx, tape, &ids)?;
    let x = tape.reshape(x, &[len, m, agent.cfg.features])?;
    // The stored initial states of the sequences (no gradient reaches them).
    let rows_of = |all: &[f32]| -> Vec<f32> {
        mb.iter()
            .flat_map(|seq| {
                let k = at(seq, 0);
                all[k * s..(k + 1) * s].iter().copied()
            })
            .collect()
    };
    let upload = |v: &[f32]| Tensor::from_slice(ctx, &[m, s], v);
    let mut h = Start::Given(upload(&rows_of(&r.states.h))?);
    let mut c = match &r.states.c {
        Some(all) => Start::Given(upload(&rows_of(all))?),
        None => Start::Zeros,
    };
    let mut out = Vec::with_capacity(len);
    for t in 0..len {
        if t > 0 {
            // A row whose episode begins at frame t starts from zeros: its state times 0.
            let keep: Vec<f32> = mb
                .iter()
                .flat_map(|seq| {
                    let v = if r.starts[at(seq, t)] { 0.0 } else { 1.0 };
                    std::iter::repeat_n(v, s)
                })
                .collect();
            if keep.contains(&0.0) {
                let mask = tape.constant(upload(&keep)?);
                let reset = |tape: &mut Tape, v: Start| -> Result<Start> {
                    Ok(match v {
                        Start::Tape(var) => Start::Tape(tape.mul(ctx, var, mask)?),
                        other => other,
                    })
                };
                h = reset(tape, h)?;
                c = reset(tape, c)?;
            }
        }
        let xt = tape.slice_rows(ctx, x, t, 1)?;
        let xt = tape.reshape(xt, &[m, agent.cfg.features])?;
        let (step, _) = agent.core_step(ctx, tape, xt, h, c)?;
        let (logits, values) = agent.heads(ctx, tape, step.h)?;
        out.push((logits, tape.reshape(values, &[m])?));
        h = Start::Tape(step.h);
        c = step.c.map_or(Start::Zeros, Start::Tape);
    }
    Ok(out)
}

/// The mean PPO loss of one minibatch of sequences, on `tape`, and the sum over its frames of
/// the statistics' means (a [STATS] tensor).
#[allow(clippy::too_many_arguments)]
fn minibatch_loss(
    ctx: &Context,
    agent: &Agent,
    tape: &mut Tape,
    r: &Rollout,
    adv: &[f32],
    ret: &[f32],
    mb: &[Sequence],
    shape: &UpdateShape,
) -> Result<(Var, Tensor)> {
    let len = shape.recurrence;
    let frames = replay(ctx, agent, tape, r, mb, len)?;
    let mut total: Option<(Var, Tensor)> = None;
    for (t, (logits, values)) in frames.into_iter().enumerate() {
        let ks = mb.iter().map(|seq| (seq.t0 + t) * r.envs + seq.env);
        let batch = frame_batch(ctx, r, adv, ret, ks)?;
        let (loss, st) = tape.ppo_loss(ctx, logits, values, &batch, shape.coefs)?;
        total = Some(match total {
            None => (loss, st),
            Some((sum, stat_sum)) => (tape.add(ctx, sum, loss)?, add_to(ctx, Some(stat_sum), &st)?),
        });
    }
    // `replay` refuses a sequence of no frames, so there was one.
    let (total, stat_sum) = total.expect("replay returns one entry per frame, at least one");
    let mean = tape.scale(ctx, total, 1.0 / len as f32)?;
    Ok((mean, stat_sum))
}

/// The PPO batch of the frames at rollout indices `ks`.
fn frame_batch(
    ctx: &Context,
    r: &Rollout,
    adv: &[f32],
    ret: &[f32],
    ks: impl Iterator<Item = usize>,
) -> Result<PpoBatch> {
    let (mut actions, mut data) = (Vec::new(), Vec::new());
    for k in ks {
        actions.push(r.actions[k]);
        let mut row = [0.0f32; BATCH_FIELDS];
        row[field::OLD_LOGP] = r.logp[k];
        row[field::ADVANTAGE] = adv[k];
        row[field::RETURN] = ret[k];
        row[field::OLD_VALUE] = r.values[k];
        data.extend_from_slice(&row);
    }
    let rows = actions.len();
    PpoBatch::new(
        Tensor::from_u32(ctx, &[rows], &actions)?,
        Tensor::from_slice(ctx, &[rows, BATCH_FIELDS], &data)?,
    )
}
