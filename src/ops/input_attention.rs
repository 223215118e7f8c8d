//! RIMs input attention fused with the queries and the top-k mask, forward and backward, for one
//! time step of a recorded sequence. Kernels: `shaders/input_attention.wgsl`; oracle:
//! `reference::input_attention` (`forward`, `backward` for variant A; `forward_dido`,
//! `backward_dido` for D); tests: `tests/ops/input_attention.rs`.

use crate::device::{Context, grid};
use crate::error::{Error, Result};
use crate::kernels::input_attention::Params;
use crate::tensor::Tensor;

/// Where a step's dropout comes from.
#[derive(Clone, Copy, Debug)]
pub struct Dropout {
    /// Run seed of the counter-based mask (as in [`crate::ops::dropout::Mask`]).
    pub seed: u32,
    /// Training step; a new step draws a new mask.
    pub step: u32,
    /// Drop probability (0 in evaluation).
    pub p: f32,
}

impl Dropout {
    pub(crate) fn threshold(&self) -> u32 {
        crate::kernels::common::dropout_threshold(self.p)
    }

    pub(crate) fn scale(&self) -> f32 {
        if self.p == 0.0 {
            1.0
        } else {
            1.0 / (1.0 - self.p)
        }
    }
}

pub use crate::kernels::input_attention::MAX_SCORES;

/// The sizes the input attention needs (`nn::RimsConfig::input_attention_sizes` gives them for
/// a cell).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sizes {
    /// N: number of mechanisms.
    pub mechanisms: usize,
    /// k: mechanisms active at each step.
    pub active: usize,
    /// H: hidden size per mechanism.
    pub hidden: usize,
    /// h_in: input-attention heads.
    pub heads: usize,
    /// d_k: key/query size per head.
    pub key: usize,
    /// d_vin: value size per head.
    pub value: usize,
}

fn params(sizes: &Sizes, batch: usize, t: usize, use_override: bool, d: Dropout) -> Result<Params> {
    if sizes.mechanisms * sizes.heads > MAX_SCORES {
        return Err(Error::config(
            "input_heads",
            format!("mechanisms × input heads must be at most {MAX_SCORES}"),
        ));
    }
    Ok(Params {
        batch: batch as u32,
        n: sizes.mechanisms as u32,
        h: sizes.hidden as u32,
        heads: sizes.heads as u32,
        dk: sizes.key as u32,
        dv: sizes.value as u32,
        k_active: sizes.active as u32,
        t: t as u32,
        use_override: use_override as u32,
        seed: d.seed,
        step: d.step,
        threshold: d.threshold(),
        scale: d.scale(),
        inv_sqrt_dk: 1.0 / (sizes.key as f32).sqrt(),
        inv_heads: 1.0 / sizes.heads as f32,
        _pad: 0,
    })
}

/// Buffers of the forward step.
pub struct Forward<'a> {
    /// [T+1, B, N·H]: the state before step t is at index t.
    pub hs: &'a Tensor,
    /// [N, H, h_in·d_k].
    pub in_q: &'a Tensor,
    /// [T, B, h_in·d_k + A]: key and value of every input.
    pub kv: &'a Tensor,
    /// [T, B, N] mask override (1 = active), if any.
    pub mask_override: Option<&'a Tensor>,
    /// Outputs: q [T, B, N, h_in·d_k], alpha [T, B, N, h_in], mask [T, B, N], u [T, B, N, A].
    pub q: &'a Tensor,
    /// [T, B, N, h_in]: attention weights on the input (written).
    pub alpha: &'a Tensor,
    /// [T, B, N]: top-k mask, 1 = active (written).
    pub mask: &'a Tensor,
    /// [T, B, N, A]: attended input values (written).
    pub u: &'a Tensor,
}

/// Records step `t`: queries, scores, mask and attended values (one dispatch).
pub fn forward(
    ctx: &Context,
    sizes: &Sizes,
    batch: usize,
    t: usize,
    d: Dropout,
    f: &Forward<'_>,
) -> Result<()> {
    forward_entry(ctx, "forward", sizes, batch, t, d, f)
}

/// Variant D's step `t` (docs/spec.md §3): the same buffers with D's layouts, kv
/// [1 + T·B, h_in·d_k + h_in·d_vin] with the null input's (b_k | b_v) in row 0, alpha
/// [T, B, N] and u [T, B, N, d_vin] (see `shaders/input_attention.wgsl`).
pub fn forward_dido(
    ctx: &Context,
    sizes: &Sizes,
    batch: usize,
    t: usize,
    d: Dropout,
    f: &Forward<'_>,
) -> Result<()> {
    forward_entry(ctx, "forward_dido", sizes, batch, t, d, f)
}

fn forward_entry(
    ctx: &Context,
    entry: &str,
    sizes: &Sizes,
    batch: usize,
    t: usize,
    d: Dropout,
    f: &Forward<'_>,
) -> Result<()> {
    let k = ctx.kernel("input_attention", entry, &[])?;
    let params = params(sizes, batch, t, f.mask_override.is_some(), d)?;
    let mask_in = f.mask_override.unwrap_or(f.in_q);
    let groups = grid(ctx, "input attention", batch as u64)?;
    if groups[1] != 1 {
        return Err(Error::DeviceLimit {
            what: "batch rows for input attention".into(),
            requested: batch as u64,
            limit: ctx.limits().max_compute_workgroups_per_dimension as u64,
        });
    }
    ctx.dispatch(
        k,
        &params,
        &[f.hs, f.in_q, f.kv, mask_in, f.q, f.alpha, f.mask, f.u],
        groups,
    )
}

/// Buffers of the backward step.
pub struct Backward<'a> {
    /// [T, B, h_in·d_k + A]: key and value of every input, as in the forward.
    pub kv: &'a Tensor,
    /// [B, N, A]: this step's gradient of u.
    pub du: &'a Tensor,
    /// [T, B, N, h_in·d_k]: queries saved by [`forward`].
    pub q: &'a Tensor,
    /// [T, B, N, h_in]: attention weights saved by [`forward`].
    pub alpha: &'a Tensor,
    /// [T, B, N]: top-k mask saved by [`forward`].
    pub mask: &'a Tensor,
    /// Outputs: dq [T, B, N, h_in·d_k] and d(k | v) [T, B, h_in·d_k + A] at step t.
    pub dq: &'a Tensor,
    /// [T, B, h_in·d_k + A]: gradient of key and value (written at step t).
    pub dkv: &'a Tensor,
}

/// Records the backward of step `t` (one dispatch).
pub fn backward(
    ctx: &Context,
    sizes: &Sizes,
    batch: usize,
    t: usize,
    d: Dropout,
    b: &Backward<'_>,
) -> Result<()> {
    backward_entry(ctx, "backward", sizes, batch, t, d, b)
}

/// Variant D's backward of step `t`: du [B, N, d_vin], and dkv
/// [T, B, h_in·d_k + 2·h_in·d_vin] = (dk_x | dv_x | dv_∅) written at step t.
pub fn backward_dido(
    ctx: &Context,
    sizes: &Sizes,
    batch: usize,
    t: usize,
    d: Dropout,
    b: &Backward<'_>,
) -> Result<()> {
    backward_entry(ctx, "backward_dido", sizes, batch, t, d, b)
}

fn backward_entry(
    ctx: &Context,
    entry: &str,
    sizes: &Sizes,
    batch: usize,
    t: usize,
    d: Dropout,
    b: &Backward<'_>,
) -> Result<()> {
    let k = ctx.kernel("input_attention", entry, &[])?;
    let params = params(sizes, batch, t, false, d)?;
    let groups = grid(ctx, "input attention", batch as u64)?;
    ctx.dispatch(
        k,
        &params,
        &[b.kv, b.du, b.q, b.alpha, b.mask, b.dq, b.dkv],
        groups,
    )
}
