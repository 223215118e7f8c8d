//! Binary cross-entropy family: the per-pixel loss of the bouncing-balls video model, on logits
//! (the decoder's sigmoid folded into the loss, as PyTorch's `binary_cross_entropy_with_logits`,
//! so neither the loss nor its gradient loses precision where σ saturates). Loss and gradient
//! come from one kernel. Kernels: `shaders/binary_cross_entropy.wgsl`; oracle:
//! `reference::binary_cross_entropy`.
//!
//! Targets live on the device and are not read back, so their range is not checked here: a
//! target outside [0, 1] gives a finite loss that is no cross-entropy.

use crate::device::{Context, grid};
use crate::error::Result;
use crate::kernels::binary_cross_entropy::{Params, WG};
use crate::ops::elementwise::{self, Unary};
use crate::ops::{elementwise_loss_operands, finite_grad_scale, reduce};
use crate::tensor::Tensor;

/// Elementwise binary cross-entropy of `logits` against `targets` (same shape) and its
/// gradient, recorded as one dispatch.
///
/// Returns `(loss, dlogits)`, both shaped like `logits`, with
/// `loss = −t·log σ(z) − (1 − t)·log(1 − σ(z))` and `dlogits = (σ(z) − t)·grad_scale`, the
/// gradient of `grad_scale · Σ loss`.
pub fn with_logits(
    ctx: &Context,
    logits: &Tensor,
    targets: &Tensor,
    grad_scale: f32,
) -> Result<(Tensor, Tensor)> {
    const OP: &str = "binary_cross_entropy";
    let n = elementwise_loss_operands(OP, logits, targets, ("logits", "targets"))?;
    let grad_scale = finite_grad_scale(OP, grad_scale)?;
    let loss = Tensor::uninit(ctx, logits.shape())?;
    let dlogits = Tensor::uninit(ctx, logits.shape())?;
    let k = ctx.kernel("binary_cross_entropy", "with_logits", &[])?;
    let groups = grid(ctx, OP, (n as u64).div_ceil(WG))?;
    ctx.dispatch(
        k,
        &Params {
            n,
            grad_scale,
            _pad0: 0,
            _pad1: 0,
        },
        &[logits, targets, &loss, &dlogits],
        groups,
    )?;
    Ok((loss, dlogits))
}

/// The loss summed over each row of `[rows, per_row]` logits and averaged over the rows (a
/// frame's summed pixel loss, averaged over frames: how R-NEM and the RIMs paper report it),
/// as `(loss [1], dlogits)`, the gradient of that average (scaled by 1/rows). Three
/// dispatches: the kernel above, [`reduce::sum_all`] and a scale.
pub fn mean_row_sum_with_logits(
    ctx: &Context,
    logits: &Tensor,
    targets: &Tensor,
    rows: usize,
) -> Result<(Tensor, Tensor)> {
    const OP: &str = "mean_row_sum_binary_cross_entropy";
    let n = elementwise_loss_operands(OP, logits, targets, ("logits", "targets"))? as usize;
    if rows == 0 || !n.is_multiple_of(rows) {
        return Err(crate::Error::shape(
            OP,
            format!("{n} logits do not split into {rows} rows"),
        ));
    }
    let inv = 1.0 / rows as f32;
    let (loss, dlogits) = with_logits(ctx, logits, targets, inv)?;
    let total = reduce::sum_all(ctx, &loss)?;
    let mean = elementwise::unary(ctx, Unary::Scale(inv), &total)?;
    Ok((mean, dlogits))
}
