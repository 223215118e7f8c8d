//! Layer-normalisation family: each row normalised over the trailing dimensions that `gain`
//! spans (PyTorch's `layer_norm` with `normalized_shape = gain.shape()`), then scaled and
//! shifted per element; and its gradients. Kernels: `shaders/layer_norm.wgsl`; oracle:
//! `reference::layer_norm`.

use crate::device::{Context, grid};
use crate::error::{Error, Result};
use crate::kernels::layer_norm::Params;
use crate::kernels::reduce::workgroup_size;
use crate::tensor::{DType, Tensor};

/// The forward's output and what its backward needs besides x and gain.
#[derive(Debug)]
pub struct Normalised {
    /// `(x − mean)·rstd·gain + bias`, shaped like x.
    pub y: Tensor,
    /// Each row's mean, `[rows]`.
    pub mean: Tensor,
    /// Each row's 1 / √(var + eps), `[rows]`.
    pub rstd: Tensor,
}

/// The gradients of [`forward`]'s inputs.
#[derive(Debug)]
pub struct Gradients {
    /// dL/dx, shaped like x.
    pub dx: Tensor,
    /// dL/dgain, shaped like gain.
    pub dgain: Tensor,
    /// dL/dbias, shaped like gain.
    pub dbias: Tensor,
}

/// Checks x against the normalised shape of `gain`; returns (rows, cols).
fn check(op: &'static str, x: &Tensor, gain: &Tensor) -> Result<(u32, u32)> {
    x.expect_dtype(op, DType::F32)?;
    gain.expect_dtype(op, DType::F32)?;
    gain.expect_nonempty(op, "gain")?;
    x.expect_nonempty(op, "x")?;
    if !x.shape().ends_with(gain.shape()) {
        return Err(Error::shape(
            op,
            format!(
                "x {:?} must end with the normalised shape {:?} of gain",
                x.shape(),
                gain.shape()
            ),
        ));
    }
    let (cols, rows) = (gain.len(), x.len() / gain.len());
    match (u32::try_from(rows), u32::try_from(x.len())) {
        (Ok(rows), Ok(_)) => Ok((rows, cols as u32)),
        _ => Err(Error::DeviceLimit {
            what: format!("{op} over {} elements", x.len()),
            requested: x.len() as u64,
            limit: u32::MAX as u64,
        }),
    }
}

/// Checks that `t` has `shape` (the role named in errors).
fn expect_shape(op: &'static str, what: &str, t: &Tensor, shape: &[usize]) -> Result<()> {
    t.expect_dtype(op, DType::F32)?;
    if t.shape() != shape {
        return Err(Error::shape(
            op,
            format!("{what} {:?} must be {shape:?}", t.shape()),
        ));
    }
    Ok(())
}

/// Layer normalisation of x over the trailing dimensions gain spans. `bias` has gain's shape;
/// `eps` must be positive and finite (PyTorch's default is 1e-5).
pub fn forward(
    ctx: &Context,
    x: &Tensor,
    gain: &Tensor,
    bias: &Tensor,
    eps: f32,
) -> Result<Normalised> {
    const OP: &str = "layer_norm";
    let (rows, cols) = check(OP, x, gain)?;
    expect_shape(OP, "bias", bias, gain.shape())?;
    if !(eps.is_finite() && eps > 0.0) {
        return Err(Error::invalid(
            OP,
            format!("eps must be positive and finite, got {eps}"),
        ));
    }
    let y = Tensor::uninit(ctx, x.shape())?;
    let mean = Tensor::uninit(ctx, &[rows as usize])?;
    let rstd = Tensor::uninit(ctx, &[rows as usize])?;
    let k = ctx.kernel("layer_norm", "forward", &[("WG", workgroup_size(cols))])?;
    let params = Params {
        rows,
        cols,
        eps,
        _pad: 0,
    };
    let groups = grid(ctx, OP, rows as u64)?;
    ctx.dispatch(k, &params, &[x, gain, bias, &y, &mean, &rstd], groups)?;
    Ok(Normalised { y, mean, rstd })
}

/// The gradients of [`forward`] for the output gradient `dy`, from its inputs x and gain and
/// its saved mean and rstd. Two dispatches: the rows' dx, the columns' dgain and dbias.
pub fn backward(
    ctx: &Context,
    x: &Tensor,
    gain: &Tensor,
    dy: &Tensor,
    mean: &Tensor,
    rstd: &Tensor,
) -> Result<Gradients> {
    const OP: &str = "layer_norm_backward";
    let (rows, cols) = check(OP, x, gain)?;
    expect_shape(OP, "dy", dy, x.shape())?;
    expect_shape(OP, "mean", mean, &[rows as usize])?;
    expect_shape(OP, "rstd", rstd, &[rows as usize])?;
    let params = Params {
        rows,
        cols,
        eps: 0.0,
        _pad: 0,
    };
    let wg = workgroup_size(cols);
    let dx = Tensor::uninit(ctx, x.shape())?;
    let k = ctx.kernel("layer_norm", "backward_input", &[("WG", wg)])?;
    let groups = grid(ctx, OP, rows as u64)?;
    ctx.dispatch(k, &params, &[x, gain, dy, mean, rstd, &dx], groups)?;
    let dgain = Tensor::uninit(ctx, gain.shape())?;
    let dbias = Tensor::uninit(ctx, gain.shape())?;
    let k = ctx.kernel("layer_norm", "backward_params", &[("WG", wg)])?;
    let groups = grid(ctx, OP, (cols as u64).div_ceil(wg as u64))?;
    ctx.dispatch(k, &params, &[x, dy, mean, rstd, &dgain, &dbias], groups)?;
    Ok(Gradients { dx, dgain, dbias })
}
