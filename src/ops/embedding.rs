//! Embedding lookup (token → row of a table) and its gradient, accumulated into the table's
//! gradient. Kernels: `shaders/embedding.wgsl`; oracle: `reference::embedding`.

use crate::device::{Context, grid};
use crate::error::{Error, Result};
use crate::kernels::embedding::Params;
use crate::tensor::{DType, Tensor};

fn check(op: &'static str, tokens: &Tensor, table: &Tensor) -> Result<(usize, usize, usize)> {
    tokens.expect_dtype(op, DType::U32)?;
    table.expect_dtype(op, DType::F32)?;
    tokens.expect_nonempty(op, "tokens")?;
    table.expect_nonempty(op, "table")?;
    if table.shape().len() != 2 {
        return Err(Error::shape(
            op,
            format!("the table must be [V, D], got {:?}", table.shape()),
        ));
    }
    Ok((tokens.len(), table.shape()[0], table.shape()[1]))
}

/// Rows of `table` [V, D] for every token: output shape = tokens.shape + [D]. A token ≥ V
/// gives a zero row (the GPU cannot report it without a read-back).
pub fn forward(ctx: &Context, tokens: &Tensor, table: &Tensor) -> Result<Tensor> {
    let (rows, vocab, dim) = check("embedding", tokens, table)?;
    let mut shape = tokens.shape().to_vec();
    shape.push(dim);
    let out = Tensor::uninit(ctx, &shape)?;
    let k = ctx.kernel("embedding", "forward", &[])?;
    let p = Params {
        rows: rows as u32,
        dim: dim as u32,
        vocab: vocab as u32,
        _pad: 0,
    };
    ctx.dispatch(
        k,
        &p,
        &[tokens, table, &out],
        grid(ctx, "embedding", ((rows * dim) as u64).div_ceil(256))?,
    )?;
    Ok(out)
}

/// Adds the gradient of [`forward`] to `dtable` [V, D]: dtable[v] += Σ of `grad` rows whose
/// token is v.
pub fn backward(ctx: &Context, tokens: &Tensor, grad: &Tensor, dtable: &Tensor) -> Result<()> {
    let (rows, vocab, dim) = check("embedding backward", tokens, dtable)?;
    if grad.len() != rows * dim {
        return Err(Error::shape(
            "embedding backward",
            format!(
                "grad {:?} does not match {rows} tokens × {dim}",
                grad.shape()
            ),
        ));
    }
    let k = ctx.kernel("embedding", "backward", &[])?;
    let p = Params {
        rows: rows as u32,
        dim: dim as u32,
        vocab: vocab as u32,
        _pad: 0,
    };
    ctx.dispatch(
        k,
        &p,
        &[tokens, grad, dtable],
        grid(ctx, "embedding", ((vocab * dim) as u64).div_ceil(256))?,
    )
}
