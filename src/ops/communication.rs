//! RIMs communication attention for one step, forward and backward (the projections are grouped
//! matmuls around it). Kernels: `shaders/communication.wgsl`; oracle: `reference::communication`
//! (`forward`, `backward` for variant A; `forward_dido`, `backward_dido` for D); tests:
//! `tests/ops/communication.rs`.

use crate::device::{Context, grid};
use crate::error::{Error, Result};
use crate::kernels::communication::Params;
use crate::ops::input_attention::Dropout;
use crate::tensor::Tensor;

/// Variant D's treatment of the probabilities (docs/spec.md §3): each row i of P multiplied
/// by m_i, then dropout (tensor 5). `None` in the calls below is variant A's plain softmax.
#[derive(Clone, Copy)]
pub struct RowMask<'a> {
    /// [T, B, N] of 0/1, this sequence's masks.
    pub mask: &'a Tensor,
    /// The step's dropout on P.
    pub dropout: Dropout,
}

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
    rows: Option<RowMask<'_>>,
) -> Result<(Params, [u32; 3])> {
    if sizes.mechanisms > MAX_N {
        return Err(Error::config("mechanisms", format!("at most {MAX_N}")));
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
        variant: rows.is_some() as u32,
        seed: rows.map_or(0, |r| r.dropout.seed),
        step: rows.map_or(0, |r| r.dropout.step),
        threshold: rows.map_or(0, |r| r.dropout.threshold()),
        scale: rows.map_or(1.0, |r| r.dropout.scale()),
        _pad: [0; 2],
    };
    let groups = grid(
        ctx,
        "communication",
        ((batch * sizes.heads * sizes.mechanisms) as u64).div_ceil(64),
    )?;
    Ok((p, groups))
}

/// Records the attention of step t: probs [T, B, h_c, N, N] (the softmax P) and ctx
/// [T, B, N, h_c·d_vc] from qkv [3, T, B, N, W]; with `rows` (variant D) the contexts use
/// P·m_i·dropout.
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
    rows: Option<RowMask<'_>>,
) -> Result<()> {
    let (p, groups) = setup(ctx, sizes, batch, steps, t, rows)?;
    let k = ctx.kernel("communication", "forward", &[])?;
    // Variant A never reads the mask binding: qkv stands in (read-only twice is fine).
    let mask = rows.map_or(qkv, |r| r.mask);
    ctx.dispatch(k, &p, &[qkv, probs, out, mask], groups)
}

/// Records the attention's backward of step t (two dispatches): from dctx [B, N, h_c·d_vc]
/// to dqkv [3, T, B, N, W] at step t, using the scratch ds [B, h_c, N, N]; `rows` as in
/// [`forward`].
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
    rows: Option<RowMask<'_>>,
) -> Result<()> {
    let (p, groups) = setup(ctx, sizes, batch, steps, t, rows)?;
    let mask = rows.map_or(qkv, |r| r.mask);
    let k_rows = ctx.kernel("communication", "backward_rows", &[])?;
    ctx.dispatch(k_rows, &p, &[qkv, probs, dctx, ds, dqkv, mask], groups)?;
    let k_cols = ctx.kernel("communication", "backward_cols", &[])?;
    ctx.dispatch(k_cols, &p, &[qkv, probs, dctx, ds, dqkv, mask], groups)
}
