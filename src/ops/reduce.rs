//! Reduce family: row sum, row max and row softmax over the last axis, and the sum of a whole
//! tensor. Kernels: `shaders/reduce.wgsl`; oracle: `reference::reduce`.
//!
//! A tensor of shape `[d0, .., dk, cols]` is viewed as `[rows, cols]` with `rows = d0·…·dk`
//! (a 1-D tensor is one row). Each row is reduced by one workgroup, so any `cols` works and
//! rows past the per-dimension workgroup limit use a 2-D grid.

use crate::device::{Context, grid};
use crate::error::{Error, Result};
use crate::kernels::reduce::{Params, workgroup_size};
use crate::tensor::{DType, Tensor};

/// Elements each workgroup sums in the first pass of [`sum_all`]; partial sums are then summed
/// again. Keeps per-thread serial sums short (better accuracy) and uses many workgroups.
const SUM_CHUNK: usize = 4096;

/// Checks `x` and returns it viewed as (rows, cols).
fn rows_cols(op: &'static str, x: &Tensor) -> Result<(u32, u32)> {
    x.expect_dtype(op, DType::F32)?;
    let Some(&cols) = x.shape().last() else {
        return Err(Error::shape(
            op,
            "a 0-D tensor has no last axis to reduce over",
        ));
    };
    x.expect_nonempty(op, "input")?;
    let n = total(op, x.len())?;
    Ok((n / cols as u32, cols as u32))
}

/// `len` as u32: shaders index with u32.
fn total(op: &'static str, len: usize) -> Result<u32> {
    u32::try_from(len).map_err(|_| Error::DeviceLimit {
        what: format!("{op} over {len} elements"),
        requested: len as u64,
        limit: u32::MAX as u64,
    })
}

/// Records one dispatch of `entry`: one workgroup per row.
fn launch(ctx: &Context, entry: &'static str, x: &Tensor, out: &Tensor, p: Params) -> Result<()> {
    let k = ctx.kernel("reduce", entry, &[("WG", workgroup_size(p.cols))])?;
    let groups = grid(ctx, entry, p.rows as u64)?;
    ctx.dispatch(k, &p, &[x, out], groups)
}

/// x's shape without its last axis; `[1]` for a 1-D tensor.
fn reduced_shape(shape: &[usize]) -> Vec<usize> {
    match shape {
        [_] => vec![1],
        _ => shape[..shape.len() - 1].to_vec(),
    }
}

fn reduce_rows(ctx: &Context, op: &'static str, x: &Tensor) -> Result<Tensor> {
    let (rows, cols) = rows_cols(op, x)?;
    let out = Tensor::uninit(ctx, &reduced_shape(x.shape()))?;
    let p = Params {
        rows,
        cols,
        n: rows * cols,
        _pad: 0,
    };
    launch(ctx, op, x, &out, p)?;
    Ok(out)
}

/// Sum over the last axis: shape `x.shape()` without its last dim (`[1]` for a 1-D `x`).
pub fn row_sum(ctx: &Context, x: &Tensor) -> Result<Tensor> {
    reduce_rows(ctx, "row_sum", x)
}

/// Max over the last axis; shape as for [`row_sum`].
pub fn row_max(ctx: &Context, x: &Tensor) -> Result<Tensor> {
    reduce_rows(ctx, "row_max", x)
}

/// Softmax over the last axis, same shape as `x`. Computed as exp(x − rowmax) / Σ, so large
/// logits do not overflow. A row that is entirely −inf has no defined softmax and gives NaN.
pub fn softmax_rows(ctx: &Context, x: &Tensor) -> Result<Tensor> {
    let (rows, cols) = rows_cols("softmax_rows", x)?;
    let out = Tensor::uninit(ctx, x.shape())?;
    let p = Params {
        rows,
        cols,
        n: rows * cols,
        _pad: 0,
    };
    launch(ctx, "softmax", x, &out, p)?;
    Ok(out)
}

/// Sum of every element of `x` (any shape, including 0-D), as a tensor of shape `[1]`.
///
/// Short tensors take one dispatch. Longer ones are summed in chunks of [`SUM_CHUNK`] elements,
/// then the partial sums again (two dispatches up to 16M elements), which spreads the work over
/// many workgroups and keeps the f32 rounding error of long sums small.
pub fn sum_all(ctx: &Context, x: &Tensor) -> Result<Tensor> {
    const OP: &str = "sum_all";
    x.expect_dtype(OP, DType::F32)?;
    x.expect_nonempty(OP, "input")?;
    let mut cur = x.clone();
    loop {
        let n = total(OP, cur.len())?;
        let (rows, cols) = if n as usize <= SUM_CHUNK {
            (1, n)
        } else {
            (n.div_ceil(SUM_CHUNK as u32), SUM_CHUNK as u32)
        };
        let out = Tensor::uninit(ctx, &[rows as usize])?;
        // The last row of a chunked pass may be short; the shader stops at `n`.
        launch(
            ctx,
            "row_sum",
            &cur,
            &out,
            Params {
                rows,
                cols,
                n,
                _pad: 0,
            },
        )?;
        if rows == 1 {
            return Ok(out);
        }
        cur = out;
    }
}
