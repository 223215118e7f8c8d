//! f64 oracle of the `cell` op (`ops::cell`, `shaders/cell.wgsl`): the LSTM or GRU gates of
//! one row after its two products, forward and backward (`docs/spec.md` §1.4). The products
//! around it (zx = x·wx + bx, zh = h·wh + bh) are `reference::recurrent::cell_forward`'s, which
//! the dense baselines and every RIMs mechanism run.
//!
//! Gate orders are PyTorch's: LSTM [i, f, g, o], GRU [r, z, n], each a block of H values.
//! LSTM: c' = σ(f)⊙c + σ(i)⊙tanh(g), h' = σ(o)⊙tanh(c'), with every pre-activation zx + zh.
//! GRU: r = σ(zx_r + zh_r), z = σ(zx_z + zh_z), n = tanh(zx_n + r⊙zh_n),
//! h' = (1 − z)⊙n + z⊙h.

// Index loops spell out the formulas; they are the point of this file.
#![allow(clippy::needless_range_loop)]

use crate::reference::elementwise::sigmoid;
use crate::spec::cell::CellKind;

/// What one cell update produces for one row.
#[derive(Clone, Debug, PartialEq)]
pub struct CellOut {
    /// Post-activation gates [G·H]: LSTM [σ(i), σ(f), tanh(g), σ(o)], GRU [r, z, n].
    pub gates: Vec<f64>,
    /// GRU only: gh_n = zh's n block [H] (empty for LSTM).
    pub ghn: Vec<f64>,
    /// LSTM only: the new cell state c' [H] (empty for GRU).
    pub c: Vec<f64>,
    /// The new hidden state h' [H].
    pub h: Vec<f64>,
}

/// What the backward reads from the forward (slices of a [`CellOut`] or of stored copies).
#[derive(Clone, Copy, Debug)]
pub struct CellSaved<'a> {
    /// Post-activation gates [G·H].
    pub gates: &'a [f64],
    /// GRU: gh_n [H] (empty for LSTM).
    pub ghn: &'a [f64],
    /// LSTM: the new cell state c' [H] (empty for GRU).
    pub c: &'a [f64],
}

impl CellOut {
    /// Borrows what [`backward`] needs.
    pub fn saved(&self) -> CellSaved<'_> {
        CellSaved {
            gates: &self.gates,
            ghn: &self.ghn,
            c: &self.c,
        }
    }
}

/// The gates of one row from its pre-activations zx, zh [G·H], the state h [H] and (LSTM)
/// c [H]; `c` is ignored for GRU (it may be empty).
pub fn forward(kind: CellKind, zx: &[f64], zh: &[f64], h: &[f64], c: &[f64]) -> CellOut {
    let hd = h.len();
    let gh = kind.gates() * hd;
    assert_eq!((zx.len(), zh.len()), (gh, gh), "zx, zh");
    let mut gates = vec![0.0; gh];
    let mut h_new = vec![0.0; hd];
    match kind {
        CellKind::Lstm => {
            let mut c_new = vec![0.0; hd];
            for r in 0..hd {
                let pre = |g: usize| zx[g * hd + r] + zh[g * hd + r];
                let (i, f, g, o) = (
                    sigmoid(pre(0)),
                    sigmoid(pre(1)),
                    pre(2).tanh(),
                    sigmoid(pre(3)),
                );
                (
                    gates[r],
                    gates[hd + r],
                    gates[2 * hd + r],
                    gates[3 * hd + r],
                ) = (i, f, g, o);
                c_new[r] = f * c[r] + i * g;
                h_new[r] = o * c_new[r].tanh();
            }
            CellOut {
                gates,
                ghn: Vec::new(),
                c: c_new,
                h: h_new,
            }
        }
        CellKind::Gru => {
            let ghn = zh[2 * hd..].to_vec();
            for j in 0..hd {
                let r = sigmoid(zx[j] + zh[j]);
                let z = sigmoid(zx[hd + j] + zh[hd + j]);
                let n = (zx[2 * hd + j] + r * ghn[j]).tanh();
                (gates[j], gates[hd + j], gates[2 * hd + j]) = (r, z, n);
                h_new[j] = (1.0 - z) * n + z * h[j];
            }
            CellOut {
                gates,
                ghn,
                c: Vec::new(),
                h: h_new,
            }
        }
    }
}

/// The gradients of a row's pre-activations.
#[derive(Clone, Debug, PartialEq)]
pub struct PreGrads {
    /// Of zx [G·H].
    pub dzx: Vec<f64>,
    /// Of zh [G·H] (equal to dzx for LSTM; for GRU the n block is dn·r).
    pub dzh: Vec<f64>,
}

/// Backward of [`forward`] for one row, given the gradients `dh_new` of h' and (LSTM)
/// `dc_new` of c'. Returns the pre-activations' gradients and adds the direct gradients of the
/// previous state to `dh` [H] (GRU: dh'⊙z) and (LSTM) `dc` [H] (dc_tot⊙f); the products'
/// share of dh (dzh·whᵀ) is the caller's. For GRU `c`, `dc_new` and `dc` are ignored.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    kind: CellKind,
    h: &[f64],
    c: &[f64],
    saved: &CellSaved,
    dh_new: &[f64],
    dc_new: &[f64],
    dh: &mut [f64],
    dc: &mut [f64],
) -> PreGrads {
    let hd = h.len();
    let gh = kind.gates() * hd;
    let s = saved.gates;
    let mut dzx = vec![0.0; gh];
    let mut dzh = vec![0.0; gh];
    match kind {
        CellKind::Lstm => {
            for r in 0..hd {
                let (i, f, gg, o) = (s[r], s[hd + r], s[2 * hd + r], s[3 * hd + r]);
                let tc = saved.c[r].tanh();
                let d_o = dh_new[r] * tc;
                let dc_tot = dc_new[r] + dh_new[r] * o * (1.0 - tc * tc);
                dc[r] += dc_tot * f;
                dzx[r] = dc_tot * gg * i * (1.0 - i);
                dzx[hd + r] = dc_tot * c[r] * f * (1.0 - f);
                dzx[2 * hd + r] = dc_tot * i * (1.0 - gg * gg);
                dzx[3 * hd + r] = d_o * o * (1.0 - o);
            }
            dzh.copy_from_slice(&dzx);
        }
        CellKind::Gru => {
            for j in 0..hd {
                let (r, z, n) = (s[j], s[hd + j], s[2 * hd + j]);
                let dn_pre = dh_new[j] * (1.0 - z) * (1.0 - n * n);
                let dz_pre = dh_new[j] * (h[j] - n) * z * (1.0 - z);
                let dr_pre = dn_pre * saved.ghn[j] * r * (1.0 - r);
                dh[j] += dh_new[j] * z;
                (dzx[j], dzx[hd + j], dzx[2 * hd + j]) = (dr_pre, dz_pre, dn_pre);
                (dzh[j], dzh[hd + j], dzh[2 * hd + j]) = (dr_pre, dz_pre, dn_pre * r);
            }
        }
    }
    PreGrads { dzx, dzh }
}
