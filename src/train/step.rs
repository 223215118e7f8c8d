//! The training step, written once: [`record_step`] is what `train` runs for every batch and
//! what the benchmarks (`rims bench`, `benches/step.rs`) time, so the figures they report are
//! those of the step a run takes.

use std::ops::Range;
use std::time::Instant;

use crate::device::Context;
use crate::error::{Error, Result};
use crate::nn::model::{Model, Pass};
use crate::ops::optim::Adam;
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

use super::checkpoint::Progress;
use super::dist::Dist;
use super::{Reporter, TrainConfig};

/// What a batch's outputs are compared with.
#[derive(Clone, Copy, Debug)]
pub enum Target<'a> {
    /// u32 class indices, one per logits row: mean cross-entropy.
    Classes(&'a Tensor),
    /// f32 values shaped like the outputs: mean squared error.
    Values(&'a Tensor),
    /// f32 frames in [0, 1] shaped like the pixel logits [rows, S²]: binary cross-entropy,
    /// summed over each frame's pixels and averaged over the frames.
    Frames(&'a Tensor),
}

impl Target<'_> {
    /// The batch's mean loss on the tape.
    fn loss(self, ctx: &Context, tape: &mut Tape, outputs: Var) -> Result<Var> {
        match self {
            Target::Classes(t) => tape.cross_entropy(ctx, outputs, t),
            Target::Values(t) => tape.mse(ctx, outputs, t),
            Target::Frames(t) => {
                let rows = t.shape().first().copied().unwrap_or(0);
                tape.binary_cross_entropy(ctx, outputs, t, rows)
            }
        }
    }
}

/// What a recorded step leaves: the batch's mean loss, `[1]` on the device and not read back,
/// and the final state (h_T, and c_T for LSTM cells), to carry into the next batch.
#[derive(Debug)]
pub struct Recorded {
    /// The mean loss (reading it waits for the step to run).
    pub loss: Tensor,
    /// h_T and c_T.
    pub state: (Tensor, Option<Tensor>),
}

/// One optimiser step on a batch, recorded: the gradients zeroed, the forward in training
/// mode from `state` (zeros when None), the loss against `targets`, the backward and Adam's
/// update (at the rate `adam` holds). Nothing is read back or waited for: a training run
/// reads the loss, a benchmark synchronises with the device.
pub fn record_step(
    ctx: &Context,
    model: &Model,
    adam: &mut Adam,
    inputs: &Tensor,
    targets: Target<'_>,
    state: Option<(Tensor, Option<Tensor>)>,
    pass: Pass,
) -> Result<Recorded> {
    let done = record_gradients(ctx, model, inputs, targets, state, pass)?;
    adam.step(ctx, model.store.flat_values(), model.store.flat_grads())?;
    Ok(done)
}

/// [`record_step`] without the update: the gradients zeroed, the forward, the loss and the
/// backward recorded, so that the gradient in `model.store.flat_grads()` can be changed (a
/// distributed run averages it over the ranks) before Adam's step.
pub fn record_gradients(
    ctx: &Context,
    model: &Model,
    inputs: &Tensor,
    targets: Target<'_>,
    state: Option<(Tensor, Option<Tensor>)>,
    pass: Pass,
) -> Result<Recorded> {
    model.store.zero_grads(ctx)?;
    let mut tape = Tape::new();
    let out = model.forward(ctx, &mut tape, inputs, state, pass)?;
    let loss = targets.loss(ctx, &mut tape, out.logits)?;
    let value = tape.value(loss).clone();
    tape.backward(ctx, loss)?;
    Ok(Recorded {
        loss: value,
        state: (out.h_last, out.c_last),
    })
}

/// The loss of a training step, read back; a loss that is not a finite number stops the run
/// (nothing after the last checkpoint is saved).
fn finite_loss(ctx: &Context, loss: &Tensor, step: u64) -> Result<f32> {
    let value = loss.to_vec(ctx)?[0];
    if value.is_finite() {
        return Ok(value);
    }
    Err(diverged(value, step))
}

/// The error of a training loss `value` that is not a finite number at step `step`.
fn diverged(value: f32, step: u64) -> Error {
    Error::Diverged {
        step,
        what: format!(
            "the training loss is {value} (the run diverged: a lower learning rate or \
             gradient clipping may help)"
        ),
    }
}

/// The error every rank stops with once a step's allreduce said that some rank failed:
/// [`Dist::agree`] gives each the first failing rank's reason (or its own).
fn all_fail<T>(dist: &Dist, local: Result<T>) -> Error {
    match dist.agree(local) {
        Err(e) => e,
        Ok(_) => Error::invalid(
            "train",
            "the ranks' allreduce counted a failure that no rank reports",
        ),
    }
}

/// What every optimiser step of a run shares.
pub(super) struct Stepper<'a> {
    pub(super) ctx: &'a Context,
    pub(super) cfg: &'a TrainConfig,
    pub(super) model: &'a Model,
    pub(super) adam: &'a mut Adam,
    /// Steps of the whole run (the learning-rate schedule's horizon).
    pub(super) total_steps: u64,
    pub(super) progress: &'a mut Progress,
    pub(super) reporter: &'a mut dyn Reporter,
    /// The ranks of the job ([`Dist::single`] for one process).
    pub(super) dist: &'a Dist,
    /// The rows of each global batch this rank trains on (all of them on one process).
    pub(super) rows: Range<usize>,
    /// The host copy of the gradient a distributed step exchanges, kept from step to step.
    pub(super) exchange: &'a mut Vec<f32>,
}

impl Stepper<'_> {
    /// One optimiser step on a batch (this rank's shard of it) at the schedule's rate, its
    /// loss read back and reported: returns the (finite) loss, the mean over the whole batch,
    /// and the final state. `of` is the number of steps in the epoch, for the report.
    pub(super) fn step(
        &mut self,
        epoch: usize,
        (iteration, of): (usize, usize),
        inputs: &Tensor,
        targets: Target<'_>,
        state: Option<(Tensor, Option<Tensor>)>,
    ) -> Result<(f32, (Tensor, Option<Tensor>))> {
        let (ctx, cfg) = (self.ctx, self.cfg);
        let started = Instant::now();
        let step = self.progress.step;
        self.adam.set_lr(cfg.lr_at(step, self.total_steps))?;
        // Steps of one sequence draw distinct masks: step0 advances by the sequence length.
        let t_len = inputs.shape()[0] as u64;
        let pass = Pass {
            training: true,
            seed: cfg.seed as u32,
            step0: (step.wrapping_mul(t_len)) as u32,
        };
        if self.dist.size() > 1 {
            return self.distributed_step(epoch, (iteration, of), inputs, targets, state, pass);
        }
        let done = record_step(ctx, self.model, self.adam, inputs, targets, state, pass)?;
        self.progress.step += 1;
        let value = finite_loss(ctx, &done.loss, self.progress.step)?;
        self.dist
            .record(started.elapsed().as_secs_f64(), None, None, 0);
        self.reporter.step(epoch, iteration, of, value, cfg.batch);
        self.reporter.keep_going()?;
        Ok((value, done.state))
    }

    /// [`Stepper::step`] on one rank of several: this rank's gradient and loss are read back,
    /// summed over the ranks with one allreduce (which also carries whether any rank failed or
    /// was asked to stop, so that all stop together), divided by P and written back; then the
    /// same Adam step as every other rank.
    fn distributed_step(
        &mut self,
        epoch: usize,
        (iteration, of): (usize, usize),
        inputs: &Tensor,
        targets: Target<'_>,
        state: Option<(Tensor, Option<Tensor>)>,
        pass: Pass,
    ) -> Result<(f32, (Tensor, Option<Tensor>))> {
        let (ctx, cfg, model) = (self.ctx, self.cfg, self.model);
        let started = Instant::now();
        let n = model.store.trainable_len();
        let grads = model.store.flat_grads().view(0, &[n])?;
        // [gradient (n), loss, ranks that failed or were asked to stop]
        let mut buf = std::mem::take(self.exchange);
        buf.resize(n + 2, 0.0);
        let mut host = 0.0;
        let mut local =
            record_gradients(ctx, model, inputs, targets, state, pass).and_then(|done| {
                buf[n] = done.loss.to_vec(ctx)?[0];
                let read = Instant::now();
                grads.read_into(ctx, &mut buf[..n])?;
                host += read.elapsed().as_secs_f64();
                Ok(done.state)
            });
        if local.is_ok()
            && let Err(stop) = self.reporter.keep_going()
        {
            local = Err(stop);
        }
        if local.is_err() {
            buf[..=n].fill(0.0);
        }
        buf[n + 1] = f32::from(local.is_err());
        let reduce = Instant::now();
        let reduced = self.dist.allreduce_sum(&mut buf);
        let allreduce = reduce.elapsed().as_secs_f64();
        let (failed, value) = (buf[n + 1], buf[n] / self.dist.size() as f32);
        if reduced.is_err() || failed > 0.0 {
            *self.exchange = buf;
            reduced?;
            return Err(all_fail(self.dist, local));
        }
        let state = local?;
        let p = self.dist.size() as f32;
        for g in &mut buf[..n] {
            *g /= p;
        }
        let write = Instant::now();
        let written = grads.write(ctx, &buf[..n]);
        host += write.elapsed().as_secs_f64();
        *self.exchange = buf;
        written?;
        self.adam
            .step(ctx, model.store.flat_values(), model.store.flat_grads())?;
        self.progress.step += 1;
        if !value.is_finite() {
            // Every rank holds the same mean loss, so all stop here together.
            return Err(all_fail(
                self.dist,
                Err::<(), _>(diverged(value, self.progress.step)),
            ));
        }
        if self.dist.timing_on() {
            // Wait for the update, so that the time is the whole step's.
            ctx.synchronize()?;
            self.dist.record(
                started.elapsed().as_secs_f64(),
                Some(allreduce),
                Some(host),
                n * 4,
            );
        }
        self.reporter.step(epoch, iteration, of, value, cfg.batch);
        Ok((value, state))
    }
}
