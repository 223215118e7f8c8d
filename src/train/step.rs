//! The training step, written once: [`record_step`] is what `train` runs for every batch and
//! what the benchmarks (`rims bench`, `benches/step.rs`) time, so the figures they report are
//! those of the step a run takes.

use crate::device::Context;
use crate::error::{Error, Result};
use crate::nn::model::{Model, Pass};
use crate::ops::optim::Adam;
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

use super::checkpoint::Progress;
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
    model.store.zero_grads(ctx)?;
    let mut tape = Tape::new();
    let out = model.forward(ctx, &mut tape, inputs, state, pass)?;
    let loss = targets.loss(ctx, &mut tape, out.logits)?;
    let value = tape.value(loss).clone();
    tape.backward(ctx, loss)?;
    adam.step(ctx, model.store.flat_values(), model.store.flat_grads())?;
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
    Err(Error::Diverged {
        step,
        what: format!(
            "the training loss is {value} (the run diverged: a lower learning rate or \
             gradient clipping may help)"
        ),
    })
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
}

impl Stepper<'_> {
    /// One optimiser step on a batch at the schedule's rate, its loss read back and reported:
    /// returns the (finite) loss and the final state. `of` is the number of steps in the
    /// epoch, for the report.
    pub(super) fn step(
        &mut self,
        epoch: usize,
        (iteration, of): (usize, usize),
        inputs: &Tensor,
        targets: Target<'_>,
        state: Option<(Tensor, Option<Tensor>)>,
    ) -> Result<(f32, (Tensor, Option<Tensor>))> {
        let (ctx, cfg) = (self.ctx, self.cfg);
        let step = self.progress.step;
        self.adam.set_lr(cfg.lr_at(step, self.total_steps))?;
        // Steps of one sequence draw distinct masks: step0 advances by the sequence length.
        let t_len = inputs.shape()[0] as u64;
        let pass = Pass {
            training: true,
            seed: cfg.seed as u32,
            step0: (step.wrapping_mul(t_len)) as u32,
        };
        let done = record_step(ctx, self.model, self.adam, inputs, targets, state, pass)?;
        self.progress.step += 1;
        let value = finite_loss(ctx, &done.loss, self.progress.step)?;
        self.reporter.step(epoch, iteration, of, value, cfg.batch);
        self.reporter.keep_going()?;
        Ok((value, done.state))
    }
}
