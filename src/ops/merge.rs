//! The end of a RIMs step: the communication residual and the merge that keeps inactive mechanisms'
//! state, forward and backward. Kernels: `shaders/merge.wgsl`; oracle: `reference::merge`
//! (`forward`, `backward` for variant A; `forward_dido`, `backward_dido` for D); tests:
//! `tests/ops/merge.rs`.

use crate::device::{Context, grid};
use crate::error::Result;
use crate::kernels::merge::Params;
use crate::ops::input_attention::Dropout;
use crate::spec::cell::CellKind;
use crate::tensor::Tensor;

/// What the communication output adds to h'.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Residual {
    /// Variant A: ĥ = h' + σ(gate)⊙tanh(dropout(o)); og and dog are [T, B·N, 2, H].
    #[default]
    Gated,
    /// Variant D: ĥ = h' + o (no gate, tanh or dropout); og and dog are [T, B·N, H] and tg is
    /// not used (any tensor may be bound).
    Plain,
}

fn setup(
    ctx: &Context,
    batch: usize,
    n: usize,
    h: usize,
    t: usize,
    d: Dropout,
    residual: Residual,
) -> Result<(Params, [u32; 3])> {
    let p = Params {
        batch: batch as u32,
        n: n as u32,
        h: h as u32,
        t: t as u32,
        seed: d.seed,
        step: d.step,
        threshold: d.threshold(),
        scale: d.scale(),
        variant: (residual == Residual::Plain) as u32,
        _pad: [0; 3],
    };
    Ok((
        p,
        grid(ctx, "merge", ((batch * n * h) as u64).div_ceil(64))?,
    ))
}

/// Buffers of the forward merge.
pub struct Forward<'a> {
    /// Variant A's or D's residual (the layouts below are A's).
    pub residual: Residual,
    /// [T, B·N, 2, H]: communication output o and gate pre-activations.
    pub og: &'a Tensor,
    /// [T, B, N, H]: the cell's h'.
    pub hp: &'a Tensor,
    /// [T, B, N, H]: the cell's c' (LSTM only).
    pub cp: &'a Tensor,
    /// [T, B, N]: 1 for active mechanisms, 0 otherwise.
    pub mask: &'a Tensor,
    /// [T+1, B, N·H]: hidden states; h_t is written at index t+1.
    pub hs: &'a Tensor,
    /// [T+1, B, N·H]: cell states; c_t is written at index t+1 (LSTM only).
    pub cs: &'a Tensor,
    /// [T, B·N, 2, H]: saved tanh(o) and γ for the backward (written).
    pub tg: &'a Tensor,
}

/// Records step t's residual and merge: writes h_t (and c_t) at index t+1 of hs (cs).
#[allow(clippy::too_many_arguments)]
pub fn forward(
    ctx: &Context,
    kind: CellKind,
    batch: usize,
    n: usize,
    h: usize,
    t: usize,
    d: Dropout,
    f: &Forward<'_>,
) -> Result<()> {
    let (p, groups) = setup(ctx, batch, n, h, t, d, f.residual)?;
    match kind {
        CellKind::Lstm => {
            let k = ctx.kernel("merge", "forward_lstm", &[])?;
            ctx.dispatch(k, &p, &[f.og, f.hp, f.cp, f.mask, f.hs, f.cs, f.tg], groups)
        }
        CellKind::Gru => {
            let k = ctx.kernel("merge", "forward_gru", &[])?;
            ctx.dispatch(k, &p, &[f.og, f.hp, f.mask, f.hs, f.tg], groups)
        }
    }
}

/// Buffers of the backward merge.
pub struct Backward<'a> {
    /// As in [`Forward`].
    pub residual: Residual,
    /// [T, B, N]: mask saved by [`forward`].
    pub mask: &'a Tensor,
    /// [T, B, N·H]: the loss's gradient of each step's h_t.
    pub dh_out: &'a Tensor,
    /// [T, B·N, 2, H]: tanh(o) and γ saved by [`forward`].
    pub tg: &'a Tensor,
    /// [B, N·H]: gradient of h carried from the step after (read and updated).
    pub dh: &'a Tensor,
    /// [B, N·H]: gradient of c carried from the step after (LSTM only; read and updated).
    pub dc: &'a Tensor,
    /// [2, B, N, H]: gradient into h' and c' (written).
    pub dres: &'a Tensor,
    /// [T, B·N, 2, H]: gradient into o and gate pre-activations at step t (written).
    pub dog: &'a Tensor,
}

/// Records step t's backward merge (one dispatch).
#[allow(clippy::too_many_arguments)]
pub fn backward(
    ctx: &Context,
    kind: CellKind,
    batch: usize,
    n: usize,
    h: usize,
    t: usize,
    d: Dropout,
    b: &Backward<'_>,
) -> Result<()> {
    let (p, groups) = setup(ctx, batch, n, h, t, d, b.residual)?;
    match kind {
        CellKind::Lstm => {
            let k = ctx.kernel("merge", "backward_lstm", &[])?;
            ctx.dispatch(
                k,
                &p,
                &[b.mask, b.dh_out, b.tg, b.dh, b.dc, b.dres, b.dog],
                groups,
            )
        }
        CellKind::Gru => {
            let k = ctx.kernel("merge", "backward_gru", &[])?;
            ctx.dispatch(
                k,
                &p,
                &[b.mask, b.dh_out, b.tg, b.dh, b.dres, b.dog],
                groups,
            )
        }
    }
}
