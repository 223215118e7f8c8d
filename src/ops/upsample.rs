//! Upsample family: nearest-neighbour upsampling of the last two (spatial) dimensions by an
//! integer factor, and its backward. Kernels: `shaders/upsample.wgsl`; oracle:
//! `reference::upsample`.

use crate::device::{Context, grid};
use crate::error::{Error, Result};
use crate::kernels::upsample::{Params, WG};
use crate::tensor::{DType, Tensor};

/// Checks an input shape `[..., H, W]` and the factor; returns the kernel's parameters and the
/// output shape `[..., H·f, W·f]`.
fn plan(op: &'static str, shape: &[usize], factor: usize) -> Result<(Params, Vec<usize>)> {
    let &[.., h, w] = shape else {
        return Err(Error::shape(
            op,
            format!("the input must be [..., height, width], got {shape:?}"),
        ));
    };
    if factor == 0 {
        return Err(Error::invalid(op, "the factor must be at least 1"));
    }
    let planes: usize = shape[..shape.len() - 2].iter().product();
    if planes * h * w == 0 {
        return Err(Error::Empty {
            op,
            what: format!("input {shape:?}"),
        });
    }
    let out_len = (planes * h * w).checked_mul(factor * factor);
    let fits = |v: usize| u32::try_from(v).is_ok();
    if !out_len.is_some_and(fits) {
        return Err(Error::DeviceLimit {
            what: format!("{op} of {shape:?} by {factor}"),
            requested: (planes as u64) * (h * w) as u64 * (factor * factor) as u64,
            limit: u32::MAX as u64,
        });
    }
    let mut out = shape.to_vec();
    let n = out.len();
    out[n - 2] = h * factor;
    out[n - 1] = w * factor;
    let params = Params {
        planes: planes as u32,
        height: h as u32,
        width: w as u32,
        factor: factor as u32,
    };
    Ok((params, out))
}

/// `y[..., i, j] = x[..., i / f, j / f]`: x `[..., H, W]` to y `[..., H·f, W·f]`.
pub fn nearest(ctx: &Context, x: &Tensor, factor: usize) -> Result<Tensor> {
    const OP: &str = "upsample_nearest";
    x.expect_dtype(OP, DType::F32)?;
    let (params, out_shape) = plan(OP, x.shape(), factor)?;
    let y = Tensor::uninit(ctx, &out_shape)?;
    let k = ctx.kernel("upsample", "nearest", &[])?;
    let groups = grid(ctx, OP, (y.len() as u64).div_ceil(WG))?;
    ctx.dispatch(k, &params, &[x, &y], groups)?;
    Ok(y)
}

/// The gradient of [`nearest`] for an input of `input_shape`: each input element receives
/// the sum of its f×f block of `dy`.
pub fn nearest_backward(
    ctx: &Context,
    dy: &Tensor,
    input_shape: &[usize],
    factor: usize,
) -> Result<Tensor> {
    const OP: &str = "upsample_nearest_backward";
    dy.expect_dtype(OP, DType::F32)?;
    let (params, out_shape) = plan(OP, input_shape, factor)?;
    if dy.shape() != out_shape.as_slice() {
        return Err(Error::shape(
            OP,
            format!(
                "dy {:?} must be the upsampled shape {out_shape:?} of {input_shape:?}",
                dy.shape()
            ),
        ));
    }
    let dx = Tensor::uninit(ctx, input_shape)?;
    let k = ctx.kernel("upsample", "nearest_backward", &[])?;
    let groups = grid(ctx, OP, (dx.len() as u64).div_ceil(WG))?;
    ctx.dispatch(k, &params, &[dy, &dx], groups)?;
    Ok(dx)
}
