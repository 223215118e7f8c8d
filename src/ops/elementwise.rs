//! Elementwise family: fill, sigmoid, tanh, scale, relu, elu, add, sub, mul, add-scaled, and the
//! activation derivatives. Kernels: `shaders/elementwise.wgsl`; oracle: `reference::elementwise`.

use crate::device::{Context, grid};
use crate::error::{Error, Result};
use crate::kernels::elementwise::{Params, WG};
use crate::tensor::{DType, Tensor};

pub use crate::spec::elementwise::{Binary, Unary};

fn elements(op: &'static str, t: &Tensor) -> Result<u32> {
    t.expect_dtype(op, DType::F32)?;
    t.expect_nonempty(op, "input")?;
    u32::try_from(t.len()).map_err(|_| Error::DeviceLimit {
        what: format!("{op} over {} elements", t.len()),
        requested: t.len() as u64,
        limit: u32::MAX as u64,
    })
}

/// ELU's alpha, which must be finite (a NaN would poison every negative input silently).
fn finite_alpha(op: &'static str, alpha: f32) -> Result<f32> {
    if alpha.is_finite() {
        Ok(alpha)
    } else {
        Err(Error::invalid(
            op,
            format!("elu's alpha must be finite, got {alpha}"),
        ))
    }
}

/// Sets every element of `t` to `value` (recorded).
pub fn fill(ctx: &Context, t: &Tensor, value: f32) -> Result<()> {
    elements("fill", t)?;
    t.fill(ctx, value)
}

/// `op(x)` as a new tensor.
pub fn unary(ctx: &Context, op: Unary, x: &Tensor) -> Result<Tensor> {
    let n = elements("unary", x)?;
    let (code, alpha) = match op {
        Unary::Sigmoid => (0, 0.0),
        Unary::Tanh => (1, 0.0),
        Unary::Scale(s) => (2, s),
        Unary::Relu => (3, 0.0),
        Unary::Elu(alpha) => (4, finite_alpha("unary", alpha)?),
    };
    let out = Tensor::uninit(ctx, x.shape())?;
    let k = ctx.kernel("elementwise", "unary", &[])?;
    let groups = grid(ctx, "unary", (n as u64).div_ceil(WG))?;
    ctx.dispatch(
        k,
        &Params {
            n,
            op: code,
            alpha,
            b_len: 1,
        },
        &[x, &out],
        groups,
    )?;
    Ok(out)
}

/// `op(a, b)` as a new tensor of a's shape.
pub fn binary(ctx: &Context, op: Binary, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let n = elements("binary", a)?;
    let b_len = elements("binary", b)?;
    if !a.shape().ends_with(b.shape()) && b.len() != 1 {
        return Err(Error::shape(
            "binary",
            format!(
                "b {:?} must equal a {:?} or its trailing dimensions",
                b.shape(),
                a.shape()
            ),
        ));
    }
    let (code, alpha) = match op {
        Binary::Add => (0, 0.0),
        Binary::Sub => (1, 0.0),
        Binary::Mul => (2, 0.0),
        Binary::SigmoidBackward => (3, 0.0),
        Binary::TanhBackward => (4, 0.0),
        Binary::AddScaled(s) => (5, s),
        Binary::ReluBackward => (6, 0.0),
        Binary::EluBackward(alpha) => (7, finite_alpha("binary", alpha)?),
    };
    let out = Tensor::uninit(ctx, a.shape())?;
    let k = ctx.kernel("elementwise", "binary", &[])?;
    let groups = grid(ctx, "binary", (n as u64).div_ceil(WG))?;
    ctx.dispatch(
        k,
        &Params {
            n,
            op: code,
            alpha,
            b_len,
        },
        &[a, b, &out],
        groups,
    )?;
    Ok(out)
}

/// `dst += alpha * src`, in place (gradient accumulation). `dst` and `src` must have the same
/// number of elements and live in different buffers.
pub fn add_assign(ctx: &Context, dst: &Tensor, src: &Tensor, alpha: f32) -> Result<()> {
    let n = elements("add_assign", dst)?;
    elements("add_assign", src)?;
    if dst.len() != src.len() {
        return Err(Error::shape(
            "add_assign",
            format!(
                "dst {:?} and src {:?} differ in size",
                dst.shape(),
                src.shape()
            ),
        ));
    }
    let k = ctx.kernel("elementwise", "add_assign", &[])?;
    let groups = grid(ctx, "add_assign", (n as u64).div_ceil(WG))?;
    let params = Params {
        n,
        op: 0,
        alpha,
        b_len: n,
    };
    ctx.dispatch(k, &params, &[src, dst], groups)
}
