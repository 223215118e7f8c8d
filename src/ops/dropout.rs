//! Dropout with the counter-based hash mask shared with the reference
//! (`reference::dropout`): the same (seed, step, tensor, index) drops the same element on the
//! GPU and on the CPU. Kernel: `shaders/dropout.wgsl`.

use crate::device::{Context, grid};
use crate::error::{Error, Result};
use crate::kernels::dropout::Params;
use crate::tensor::{DType, Tensor};

/// Which mask: `tensor` tells apart the dropout sites of a model (the RIMs cell uses 0 and 1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mask {
    /// Run seed.
    pub seed: u32,
    /// Training step; a new step draws a new mask.
    pub step: u32,
    /// Dropout site within the model.
    pub tensor: u32,
    /// Drop probability in [0, 1).
    pub p: f32,
}

/// `x ⊙ mask / (1 − p)` as a new tensor; also the backward (apply it to the gradient).
pub fn apply(ctx: &Context, x: &Tensor, m: Mask) -> Result<Tensor> {
    x.expect_dtype("dropout", DType::F32)?;
    x.expect_nonempty("dropout", "input")?;
    if !(0.0..1.0).contains(&m.p) {
        return Err(Error::invalid(
            "dropout",
            format!("p = {} is not in [0, 1)", m.p),
        ));
    }
    let n =
        u32::try_from(x.len()).map_err(|_| Error::invalid("dropout", "more than 2^32 elements"))?;
    let out = Tensor::uninit(ctx, x.shape())?;
    let params = Params {
        n,
        seed: m.seed,
        step: m.step,
        tensor: m.tensor,
        threshold: crate::kernels::common::dropout_threshold(m.p),
        scale: if m.p == 0.0 { 1.0 } else { 1.0 / (1.0 - m.p) },
        _pad: [0; 2],
    };
    let k = ctx.kernel("dropout", "apply", &[])?;
    ctx.dispatch(
        k,
        &params,
        &[x, &out],
        grid(ctx, "dropout", (n as u64).div_ceil(256))?,
    )?;
    Ok(out)
}
