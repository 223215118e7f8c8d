//! PPO's loss on the tape: one node for the fused kernel of `ops::ppo_loss`, whose forward
//! already gave both gradients.

use super::{Backward, Grads, Tape, Var};
use crate::device::Context;
use crate::error::Result;
use crate::ops::elementwise::{self, Binary};
use crate::ops::ppo_loss::{self, PpoBatch, PpoCoefs};
use crate::tensor::Tensor;

/// The gradients of the mean loss, computed by the forward kernel; the backward only scales
/// them by the loss's upstream gradient.
struct PpoNode {
    logits: Var,
    values: Var,
    dlogits: Tensor,
    dvalues: Tensor,
}

impl Backward for PpoNode {
    fn backward(self: Box<Self>, ctx: &Context, g: Tensor, grads: &mut Grads) -> Result<()> {
        for (v, d) in [(self.logits, self.dlogits), (self.values, self.dvalues)] {
            if grads.wants(v) {
                grads.add(ctx, v, elementwise::binary(ctx, Binary::Mul, &d, &g)?)?;
            }
        }
        Ok(())
    }
}

impl Tape {
    /// PPO's clipped actor-critic loss (docs/spec.md §8) of `logits` `[rows, actions]` and the
    /// critic's `values` `[rows]` (or `[rows, 1]`) on a rollout's `batch`, averaged over the
    /// rows: returns the loss as a `[1]` value, whose backward gives dL/dlogits and dL/dvalues,
    /// and the `[STATS]` means of the statistics (`ops::ppo_loss::stat`, the loss first), a
    /// plain tensor for logs that is not on the tape.
    pub fn ppo_loss(
        &mut self,
        ctx: &Context,
        logits: Var,
        values: Var,
        batch: &PpoBatch,
        coefs: PpoCoefs,
    ) -> Result<(Var, Tensor)> {
        let out =
            ppo_loss::mean_ppo_loss(ctx, self.value(logits), self.value(values), batch, coefs)?;
        let node = PpoNode {
            logits,
            values,
            dlogits: out.dlogits,
            dvalues: out.dvalues,
        };
        let loss = self.record(out.loss, &[logits, values], Box::new(node));
        Ok((loss, out.stats))
    }
}
