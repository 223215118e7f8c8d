//! RIMs communication attention for one step, forward and backward (the projections are
//! grouped matmuls around it). Kernels: `shaders/communication.wgsl`; oracle: `reference::rims`.

use crate::device::{Context, grid};
use crate::error::{Error, Result};
use crate::kernels::communication::Params;
use crate::tensor::Tensor;

pub use crate::kernels::communication::MAX_N;

/// The sizes the communication attention needs (`nn::RimsConfig::communication_sizes` gives
/// them for a cell).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sizes {
    /// N: number of mechanisms.
    pub mechanisms: usize,
    /// h_c: communication heads.
    pub heads: usize,
    /// d_kc: key/query size per head.
    pub key: usize,
    /// d_vc: value size per head.
    pub value: usize,
}

/// Row width of the [3, T, B, N, W] projection buffer: the wider of keys and values.
pub fn qkv_width(s: &Sizes) -> usize {
    (s.heads * s.key).max(s.heads * s.value)
}

fn setup(
    ctx: &Context,
    sizes: &Sizes,
    batch: usize,
    steps: usize,
    t: usize,
) -> Result<(Params, [u32; 3])> {
    if sizes.mechanisms > MAX_N {
        return Err(Error::Config {
            field: "mechanisms",
            reason: format!("at most {MAX_N}"),
        });
    }
    let w = qkv_width(sizes);
    let p = Params {
        batch: batch as u32,
        n: sizes.mechanisms as u32,
        heads: sizes.heads as u32,
        dk: sizes.key as u32,
        dv: sizes.value as u32,
        w: w as u32,
        t: t as u32,
        plane: (steps * batch * sizes.mechanisms * w) as u32,
        inv_sqrt_dk: 1.0 / (sizes.key as f32).sqrt(),
        _pad: [0; 3],
    };
    let groups = grid(
        ctx,
        "communication",
        ((batch * sizes.heads * sizes.mechanisms) as u64).div_ceil(64),
    )?;
    Ok((p, groups))
}

/// Records the attention of step t: probs [T, B, h_c, N, N] and ctx [T, B, N, h_c·d_vc] from
/// qkv [3, T, B, N, W].
#[allow(clippy::too_many_arguments)]
pub fn forward(
    ctx: &Context,
    sizes: &Sizes,
    batch: usize,
    steps: usize,
    t: usize,
    qkv: &Tensor,
    probs: &Tensor,
    out: &Tensor,
) -> Result<()> {
    let (p, groups) = setup(ctx, sizes, batch, steps, t)?;
    let k = ctx.kernel("communication", "forward", &[])?;
    ctx.dispatch(k, &p, &[qkv, probs, out], groups)
}

/// Records the attention's backward of step t (two dispatches): from dctx [B, N, h_c·d_vc]
/// to dqkv [3, T, B, N, W] at step t, using the scratch ds [B, h_c, N, N].
#[allow(clippy::too_many_arguments)]
pub fn backward(
    ctx: &Context,
    sizes: &Sizes,
    batch: usize,
    steps: usize,
    t: usize,
    qkv: &Tensor,
    probs: &Tensor,
    dctx: &Tensor,
    ds: &Tensor,
    dqkv: &Tensor,
) -> Result<()> {
    let (p, groups) = setup(ctx, sizes, batch, steps, t)?;
    let rows = ctx.kernel("communication", "backward_rows", &[])?;
    ctx.dispatch(rows, &p, &[qkv, probs, dctx, ds, dqkv], groups)?;
    let cols = ctx.kernel("communication", "backward_cols", &[])?;
    ctx.dispatch(cols, &p, &[qkv, probs, dctx, ds, dqkv], groups)
}
