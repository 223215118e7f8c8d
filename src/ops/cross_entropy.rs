//! Cross-entropy family: softmax cross-entropy of logits against class indices, loss and
//! gradient from one kernel. Kernels: `shaders/cross_entropy.wgsl`; oracle:
//! `reference::cross_entropy`.
//!
//! Targets live on the device and are not read back, so their range cannot be checked here:
//! a target `>= classes` gives that row loss 0 and an all-zero gradient row (the kernel never
//! uses it as an index). This also serves as an "ignore this row" marker, e.g. `u32::MAX`.

use crate::device::{Context, grid};
use crate::error::{Error, Result};
use crate::kernels::cross_entropy::Params;
use crate::kernels::reduce::workgroup_size;
use crate::ops::elementwise::{self, Unary};
use crate::ops::reduce;
use crate::tensor::{DType, Tensor};

/// Checks the operands and returns (rows, classes).
fn check(op: &'static str, logits: &Tensor, targets: &Tensor) -> Result<(u32, u32)> {
    logits.expect_dtype(op, DType::F32)?;
    targets.expect_dtype(op, DType::U32)?;
    let &[rows, classes] = logits.shape() else {
        return Err(Error::shape(
            op,
            format!("logits must be [rows, classes], got {:?}", logits.shape()),
        ));
    };
    if targets.shape() != [rows] {
        return Err(Error::shape(
            op,
            format!(
                "targets {:?} must be [rows] = [{rows}] for logits {:?}",
                targets.shape(),
                logits.shape()
            ),
        ));
    }
    logits.expect_nonempty(op, "logits")?;
    let n = logits.len();
    if u32::try_from(n).is_err() {
        return Err(Error::DeviceLimit {
            what: format!("{op} over {n} logits"),
            requested: n as u64,
            limit: u32::MAX as u64,
        });
    }
    Ok((rows as u32, classes as u32))
}

/// Per-row softmax cross-entropy and its gradient, recorded as one dispatch.
///
/// `logits` is f32 `[rows, classes]`, `targets` u32 `[rows]` (see [`Tensor::from_u32`]).
/// Returns `(loss [rows], dlogits [rows, classes])` with
/// `loss[r] = logsumexp(logits[r]) − logits[r, t_r]` (computed stably, by subtracting the row
/// max) and `dlogits[r] = (softmax(logits[r]) − onehot(t_r)) · grad_scale`, the gradient of
/// `grad_scale · Σ loss`. A target `>= classes` gives loss 0 and a zero gradient row.
pub fn softmax_cross_entropy(
    ctx: &Context,
    logits: &Tensor,
    targets: &Tensor,
    grad_scale: f32,
) -> Result<(Tensor, Tensor)> {
    const OP: &str = "softmax_cross_entropy";
    let (rows, classes) = check(OP, logits, targets)?;
    if !grad_scale.is_finite() {
        return Err(Error::invalid(
            OP,
            format!("grad_scale must be finite, got {grad_scale}"),
        ));
    }
    let loss = Tensor::uninit(ctx, &[rows as usize])?;
    let dlogits = Tensor::uninit(ctx, logits.shape())?;
    let k = ctx.kernel(
        "cross_entropy",
        "softmax_cross_entropy",
        &[("WG", workgroup_size(classes))],
    )?;
    let groups = grid(ctx, OP, rows as u64)?;
    ctx.dispatch(
        k,
        &Params {
            rows,
            classes,
            grad_scale,
            _pad: 0,
        },
        &[logits, targets, &loss, &dlogits],
        groups,
    )?;
    Ok((loss, dlogits))
}

/// Mean softmax cross-entropy over the rows: `(mean loss [1], dlogits [rows, classes])`, the
/// gradient being that of the mean (scaled by 1/rows). Three dispatches: the kernel above,
/// [`reduce::sum_all`] and a scale. Rows with an out-of-range target count in the divisor
/// with loss 0 (unlike PyTorch's `ignore_index`, which divides by the rows it keeps).
pub fn mean_cross_entropy(
    ctx: &Context,
    logits: &Tensor,
    targets: &Tensor,
) -> Result<(Tensor, Tensor)> {
    let (rows, _) = check("mean_cross_entropy", logits, targets)?;
    let inv = 1.0 / rows as f32;
    let (loss, dlogits) = softmax_cross_entropy(ctx, logits, targets, inv)?;
    let total = reduce::sum_all(ctx, &loss)?;
    let mean = elementwise::unary(ctx, Unary::Scale(inv), &total)?;
    Ok((mean, dlogits))
}
