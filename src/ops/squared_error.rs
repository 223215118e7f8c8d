//! Squared-error family: the regression loss of the adding task, loss and gradient from one
//! kernel. Kernels: `shaders/squared_error.wgsl`; oracle: `reference::squared_error`.

use crate::device::{Context, grid};
use crate::error::Result;
use crate::kernels::squared_error::{Params, WG};
use crate::ops::elementwise::{self, Unary};
use crate::ops::{elementwise_loss_operands, finite_grad_scale, reduce};
use crate::tensor::Tensor;

/// Checks the operands and returns the element count.
fn check(op: &'static str, pred: &Tensor, target: &Tensor) -> Result<u32> {
    elementwise_loss_operands(op, pred, target, ("pred", "target"))
}

/// Elementwise squared error and its gradient, recorded as one dispatch.
///
/// Returns `(loss, dpred)`, both shaped like `pred`, with `loss = (pred − target)²` and
/// `dpred = 2 (pred − target) · grad_scale`, the gradient of `grad_scale · Σ loss`.
pub fn squared_error(
    ctx: &Context,
    pred: &Tensor,
    target: &Tensor,
    grad_scale: f32,
) -> Result<(Tensor, Tensor)> {
    const OP: &str = "squared_error";
    let n = check(OP, pred, target)?;
    let grad_scale = finite_grad_scale(OP, grad_scale)?;
    let loss = Tensor::uninit(ctx, pred.shape())?;
    let dpred = Tensor::uninit(ctx, pred.shape())?;
    let k = ctx.kernel("squared_error", "squared_error", &[])?;
    let groups = grid(ctx, OP, (n as u64).div_ceil(WG))?;
    ctx.dispatch(
        k,
        &Params {
            n,
            grad_scale,
            _pad0: 0,
            _pad1: 0,
        },
        &[pred, target, &loss, &dpred],
        groups,
    )?;
    Ok((loss, dpred))
}

/// Mean squared error over every element: `(mean loss [1], dpred)`, the gradient being that
/// of the mean (scaled by 1/n). Three dispatches: the kernel above, [`reduce::sum_all`] and a
/// scale.
pub fn mean_squared_error(
    ctx: &Context,
    pred: &Tensor,
    target: &Tensor,
) -> Result<(Tensor, Tensor)> {
    let n = check("mean_squared_error", pred, target)?;
    let inv = 1.0 / n as f32;
    let (loss, dpred) = squared_error(ctx, pred, target, inv)?;
    let total = reduce::sum_all(ctx, &loss)?;
    let mean = elementwise::unary(ctx, Unary::Scale(inv), &total)?;
    Ok((mean, dpred))
}
