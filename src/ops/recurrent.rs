//! The gates of the dense LSTM and GRU layers (the paper's baselines) for one time step, forward
//! and backward, after the products: one dispatch each. Kernels: `shaders/recurrent.wgsl`;
//! oracle: `reference::recurrent`; the sequence layer: `nn::recurrent`.
//!
//! Gate blocks of H columns, PyTorch's order: LSTM [i, f, g, o], GRU [r, z, n].

use crate::device::{Context, grid};
use crate::error::{Error, Result};
use crate::kernels::recurrent::Params;
use crate::spec::cell::CellKind;
use crate::tensor::{DType, Tensor};

/// Threads per workgroup (`WG` in the shader).
const WG: u64 = 64;

/// Sizes of a sequence: `steps` time steps of `batch` rows of `hidden` units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    /// LSTM (G = 4) or GRU (G = 3).
    pub kind: CellKind,
    /// T: time steps.
    pub steps: usize,
    /// B: batch rows.
    pub batch: usize,
    /// H: hidden units.
    pub hidden: usize,
}

impl Dims {
    /// G·H: the width of a row of gates.
    pub fn gate_width(&self) -> usize {
        self.kind.gates() * self.hidden
    }

    /// Elements of one [T, B, G·H] plane.
    pub fn plane(&self) -> usize {
        self.steps * self.batch * self.gate_width()
    }

    /// Errors for empty sizes or sizes whose indices overflow the kernels' u32 arithmetic.
    pub fn validate(&self, op: &'static str) -> Result<()> {
        if self.steps == 0 || self.batch == 0 || self.hidden == 0 {
            return Err(Error::Empty {
                op,
                what: format!(
                    "sequence of {} steps, batch {}, hidden {}",
                    self.steps, self.batch, self.hidden
                ),
            });
        }
        // Every index the kernels form stays below the largest buffer: 2·T·B·G·H.
        let largest = [self.steps, self.batch, self.kind.gates(), self.hidden, 2]
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d));
        if largest.is_none_or(|n| n > u32::MAX as usize) {
            return Err(Error::DeviceLimit {
                what: format!(
                    "{op}: 2·T·B·G·H elements for T {}, B {}, H {}",
                    self.steps, self.batch, self.hidden
                ),
                requested: largest.map_or(u64::MAX, |n| n as u64),
                limit: u32::MAX as u64,
            });
        }
        Ok(())
    }

    fn check(&self, op: &'static str, t: usize) -> Result<Params> {
        self.validate(op)?;
        if t >= self.steps {
            return Err(Error::invalid(
                op,
                format!("step {t} of a {}-step sequence", self.steps),
            ));
        }
        Ok(Params {
            batch: self.batch as u32,
            h: self.hidden as u32,
            t: t as u32,
            _pad: 0,
        })
    }

    fn groups(&self, ctx: &Context, op: &str) -> Result<[u32; 3]> {
        grid(ctx, op, ((self.batch * self.hidden) as u64).div_ceil(WG))
    }
}

/// Errors unless `t` is an f32 tensor of exactly `len` elements.
fn expect_len(op: &'static str, what: &str, t: &Tensor, len: usize) -> Result<()> {
    t.expect_dtype(op, DType::F32)?;
    if t.len() != len {
        return Err(Error::shape(
            op,
            format!("{what} must have {len} elements, got {:?}", t.shape()),
        ));
    }
    Ok(())
}

/// The tensor an LSTM-only or GRU-only buffer names, or an error saying which is missing.
fn needed<'a>(op: &'static str, what: &str, t: Option<&'a Tensor>) -> Result<&'a Tensor> {
    t.ok_or_else(|| Error::invalid(op, format!("this cell needs {what}")))
}

/// Buffers of the forward step.
pub struct Forward<'a> {
    /// [T, B, G·H]: pre-activations in (LSTM: both products summed; GRU: x·Wx + bx), the
    /// post-activation gates out (step t only).
    pub gates: &'a Tensor,
    /// GRU: [T, B, G·H], h·Wh + bh.
    pub gh: Option<&'a Tensor>,
    /// [T+1, B, H]: reads h_t (GRU), writes h_{t+1}.
    pub hs: &'a Tensor,
    /// LSTM: [T+1, B, H]: reads c_t, writes c_{t+1}.
    pub cs: Option<&'a Tensor>,
}

/// Records the gates of step t: the activations over their pre-activations and the new state
/// straight into row t+1 of the state buffers.
pub fn forward(ctx: &Context, d: Dims, t: usize, f: &Forward<'_>) -> Result<()> {
    const OP: &str = "recurrent.forward";
    let p = d.check(OP, t)?;
    let states = (d.steps + 1) * d.batch * d.hidden;
    expect_len(OP, "gates", f.gates, d.plane())?;
    expect_len(OP, "hs", f.hs, states)?;
    match d.kind {
        CellKind::Lstm => {
            let cs = needed(OP, "cs", f.cs)?;
            expect_len(OP, "cs", cs, states)?;
            let k = ctx.kernel("recurrent", "lstm_forward", &[])?;
            ctx.dispatch(k, &p, &[f.gates, f.hs, cs], d.groups(ctx, OP)?)
        }
        CellKind::Gru => {
            let gh = needed(OP, "gh", f.gh)?;
            expect_len(OP, "gh", gh, d.plane())?;
            let k = ctx.kernel("recurrent", "gru_forward", &[])?;
            ctx.dispatch(k, &p, &[f.gates, gh, f.hs], d.groups(ctx, OP)?)
        }
    }
}

/// Buffers of the backward step.
pub struct Backward<'a> {
    /// [T, B, G·H]: the post-activation gates the forward left.
    pub act: &'a Tensor,
    /// GRU: [T, B, G·H], h·Wh + bh.
    pub gh: Option<&'a Tensor>,
    /// [T+1, B, H] states (read by GRU).
    pub hs: &'a Tensor,
    /// LSTM: [T+1, B, H] cell states.
    pub cs: Option<&'a Tensor>,
    /// [T, B, H]: the incoming gradient of every h_t.
    pub dy: &'a Tensor,
    /// [B, H]: in, the gradient of h_t from later steps; out: LSTM leaves it (the step's
    /// product overwrites it), GRU sets it to dh_t ⊙ z (the product adds dzh·Whᵀ).
    pub dh: &'a Tensor,
    /// LSTM: [B, H]: in, the gradient of c_t; out, that of c_{t-1}.
    pub dc: Option<&'a Tensor>,
    /// [T, B, G·H]: step t's gate gradients dzx out (for LSTM also dzh, which is equal).
    pub dz: &'a Tensor,
    /// GRU: [T, B, G·H], step t's dzh out (it differs from dzx in the n block).
    pub dzh: Option<&'a Tensor>,
}

/// Records the gates' backward of step t.
pub fn backward(ctx: &Context, d: Dims, t: usize, b: &Backward<'_>) -> Result<()> {
    const OP: &str = "recurrent.backward";
    let p = d.check(OP, t)?;
    let states = (d.steps + 1) * d.batch * d.hidden;
    let row = d.batch * d.hidden;
    expect_len(OP, "act", b.act, d.plane())?;
    expect_len(OP, "hs", b.hs, states)?;
    expect_len(OP, "dy", b.dy, d.steps * row)?;
    expect_len(OP, "dh", b.dh, row)?;
    expect_len(OP, "dz", b.dz, d.plane())?;
    match d.kind {
        CellKind::Lstm => {
            let cs = needed(OP, "cs", b.cs)?;
            let dc = needed(OP, "dc", b.dc)?;
            expect_len(OP, "cs", cs, states)?;
            expect_len(OP, "dc", dc, row)?;
            let k = ctx.kernel("recurrent", "lstm_backward", &[])?;
            ctx.dispatch(
                k,
                &p,
                &[b.act, cs, b.dy, b.dh, dc, b.dz],
                d.groups(ctx, OP)?,
            )
        }
        CellKind::Gru => {
            let gh = needed(OP, "gh", b.gh)?;
            let dzh = needed(OP, "dzh", b.dzh)?;
            expect_len(OP, "gh", gh, d.plane())?;
            expect_len(OP, "dzh", dzh, d.plane())?;
            let k = ctx.kernel("recurrent", "gru_backward", &[])?;
            ctx.dispatch(
                k,
                &p,
                &[b.act, gh, b.hs, b.dy, b.dh, b.dz, dzh],
                d.groups(ctx, OP)?,
            )
        }
    }
}
