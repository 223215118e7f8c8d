//! The mechanisms' LSTM or GRU gates for one step, forward and backward, after the grouped
//! matmuls. Kernels: `shaders/cell.wgsl`; oracle: `reference::cell`;
//! tests: `tests/ops/cell.rs`.

use crate::device::{Context, grid};
use crate::error::Result;
use crate::kernels::cell::Params;
use crate::spec::cell::CellKind;
use crate::tensor::Tensor;

/// Sizes: `units` mechanisms of `hidden` units for `batch` rows.
#[derive(Clone, Copy, Debug)]
pub struct Dims {
    /// B: batch rows.
    pub batch: usize,
    /// N: mechanisms.
    pub units: usize,
    /// H: hidden units per mechanism.
    pub hidden: usize,
}

fn params(d: Dims, t: usize) -> Params {
    Params {
        batch: d.batch as u32,
        n: d.units as u32,
        h: d.hidden as u32,
        t: t as u32,
    }
}

fn groups(ctx: &Context, d: Dims) -> Result<[u32; 3]> {
    grid(
        ctx,
        "cell",
        ((d.batch * d.units * d.hidden) as u64).div_ceil(64),
    )
}

/// Records the gates of step t: act, h' (and c' for LSTM) from zx, zh and the previous state.
#[allow(clippy::too_many_arguments)]
pub fn forward(
    ctx: &Context,
    kind: CellKind,
    d: Dims,
    t: usize,
    zx: &Tensor,
    zh: &Tensor,
    hs: &Tensor,
    cs: &Tensor,
    act: &Tensor,
    hp: &Tensor,
    cp: &Tensor,
) -> Result<()> {
    let p = params(d, t);
    match kind {
        CellKind::Lstm => {
            let k = ctx.kernel("cell", "lstm_forward", &[])?;
            ctx.dispatch(k, &p, &[zx, zh, cs, act, hp, cp], groups(ctx, d)?)
        }
        CellKind::Gru => {
            let k = ctx.kernel("cell", "gru_forward", &[])?;
            ctx.dispatch(k, &p, &[zx, zh, hs, act, hp], groups(ctx, d)?)
        }
    }
}

/// Buffers of the backward step.
pub struct Backward<'a> {
    /// [T, B, N, G·H]: hidden-side gate pre-activations (read by GRU only).
    pub zh: &'a Tensor,
    /// [T+1, B, N·H]: hidden states; the one before step t is at index t (GRU only).
    pub hs: &'a Tensor,
    /// [T+1, B, N·H]: cell states; the one before step t is at index t (LSTM only).
    pub cs: &'a Tensor,
    /// [T, B, N, G·H]: gate activations saved by [`forward`].
    pub act: &'a Tensor,
    /// [T, B, N, H]: c' saved by [`forward`] (LSTM only).
    pub cp: &'a Tensor,
    /// [T, B, N]: 1 for active mechanisms, 0 otherwise.
    pub mask: &'a Tensor,
    /// [3, B, N, H]: the merge's gradient into h' and c', then communication's into h'.
    pub dres: &'a Tensor,
    /// [T, B, N, G·H]: output dzx (for LSTM also dzh, which is equal).
    pub dzx: &'a Tensor,
    /// [T, B, N, G·H]: output dzh (GRU only; it differs from dzx in the n block).
    pub dzh: &'a Tensor,
    /// [B, N·H]: LSTM adds to dc, GRU to dh.
    pub carry: &'a Tensor,
}

/// Records the gates' backward of step t; inactive mechanisms get zero and are skipped.
pub fn backward(ctx: &Context, kind: CellKind, d: Dims, t: usize, b: &Backward<'_>) -> Result<()> {
    let p = params(d, t);
    match kind {
        CellKind::Lstm => {
            let k = ctx.kernel("cell", "lstm_backward", &[])?;
            ctx.dispatch(
                k,
                &p,
                &[b.cs, b.act, b.cp, b.mask, b.dres, b.dzx, b.carry],
                groups(ctx, d)?,
            )
        }
        CellKind::Gru => {
            let k = ctx.kernel("cell", "gru_backward", &[])?;
            ctx.dispatch(
                k,
                &p,
                &[b.zh, b.hs, b.act, b.mask, b.dres, b.dzx, b.dzh, b.carry],
                groups(ctx, d)?,
            )
        }
    }
}
