//! f64 oracle for the recurrent cells: the one-row LSTM/GRU update that every RIMs mechanism
//! runs (`docs/spec.md` §1.4), and plain dense LSTM and GRU layers built from it (the paper's
//! baselines).
//!
//! The gates themselves are `reference::cell`'s (the `cell` op's oracle); this file adds the
//! products around them. Gate orders are PyTorch's: LSTM [i, f, g, o], GRU [r, z, n], each a
//! block of H columns of the [in, G·H] weights. LSTM: z = x·wx + bx + h·wh + bh,
//! c' = σ(f)⊙c + σ(i)⊙tanh(g), h' = σ(o)⊙tanh(c'). GRU: gi = x·wx + bx, gh = h·wh + bh,
//! r = σ(gi_r + gh_r), z = σ(gi_z + gh_z), n = tanh(gi_n + r⊙gh_n), h' = (1 − z)⊙n + z⊙h.

// Index loops spell out the formulas; they are the point of this file.
#![allow(clippy::needless_range_loop)]

use crate::reference::cell;
pub use crate::reference::cell::{CellOut, CellSaved};
use crate::rng::Rng;
use crate::spec::cell::CellKind;

/// The weights of one cell: wx [in, G·H], wh [H, G·H], bx [G·H], bh [G·H].
#[derive(Clone, Copy, Debug)]
pub struct CellWeights<'a> {
    /// [in, G·H].
    pub wx: &'a [f64],
    /// [H, G·H].
    pub wh: &'a [f64],
    /// [G·H].
    pub bx: &'a [f64],
    /// [G·H].
    pub bh: &'a [f64],
}

/// Gradient accumulators of one cell, same shapes as [`CellWeights`] (added to).
#[derive(Debug)]
pub struct CellGrads<'a> {
    /// [in, G·H].
    pub wx: &'a mut [f64],
    /// [H, G·H].
    pub wh: &'a mut [f64],
    /// [G·H].
    pub bx: &'a mut [f64],
    /// [G·H].
    pub bh: &'a mut [f64],
}

/// x·w + b for one row: x [in], w [in, out], b [out].
fn affine(x: &[f64], w: &[f64], b: &[f64], out: usize) -> Vec<f64> {
    let mut y = b[..out].to_vec();
    for (k, &xk) in x.iter().enumerate() {
        for (j, yj) in y.iter_mut().enumerate() {
            *yj += xk * w[k * out + j];
        }
    }
    y
}

/// One cell update of one row: input x [in], state h [H] and (LSTM) c [H]; `c` is ignored for
/// GRU (it may be empty).
pub fn cell_forward(kind: CellKind, w: &CellWeights, x: &[f64], h: &[f64], c: &[f64]) -> CellOut {
    let hd = h.len();
    let gh = kind.gates() * hd;
    let zx = affine(x, w.wx, w.bx, gh);
    let zh = affine(h, w.wh, w.bh, gh);
    cell::forward(kind, &zx, &zh, h, c)
}

/// Backward of [`cell_forward`] for one row, given the gradients `dh_new` of h' and (LSTM)
/// `dc_new` of c'. Adds the weight gradients to `g` and the input/state gradients to `dx`
/// [in], `dh` [H] and (LSTM) `dc` [H]. For GRU `c`, `dc_new` and `dc` are ignored.
#[allow(clippy::too_many_arguments)]
pub fn cell_backward(
    kind: CellKind,
    w: &CellWeights,
    x: &[f64],
    h: &[f64],
    c: &[f64],
    saved: &CellSaved,
    dh_new: &[f64],
    dc_new: &[f64],
    g: &mut CellGrads,
    dx: &mut [f64],
    dh: &mut [f64],
    dc: &mut [f64],
) {
    let hd = h.len();
    let gh = kind.gates() * hd;
    // Gradients of the pre-activations of x·wx + bx (dzx) and h·wh + bh (dzh).
    let cell::PreGrads { dzx, dzh } = cell::backward(kind, h, c, saved, dh_new, dc_new, dh, dc);
    for col in 0..gh {
        g.bx[col] += dzx[col];
        g.bh[col] += dzh[col];
    }
    for (k, &xk) in x.iter().enumerate() {
        for col in 0..gh {
            g.wx[k * gh + col] += xk * dzx[col];
            dx[k] += dzx[col] * w.wx[k * gh + col];
        }
    }
    for (k, &hk) in h.iter().enumerate() {
        for col in 0..gh {
            g.wh[k * gh + col] += hk * dzh[col];
            dh[k] += dzh[col] * w.wh[k * gh + col];
        }
    }
}

/// Sizes of a dense recurrent layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecurrentConfig {
    /// LSTM or GRU.
    pub cell: CellKind,
    /// D: input size.
    pub input: usize,
    /// H: hidden size.
    pub hidden: usize,
}

impl RecurrentConfig {
    /// G·H.
    pub fn gate_width(&self) -> usize {
        self.cell.gates() * self.hidden
    }
}

/// The parameters of a dense layer: wx [D, G·H], wh [H, G·H], bx [G·H], bh [G·H].
#[derive(Clone, Debug, PartialEq)]
pub struct RecurrentParams {
    /// [D, G·H].
    pub wx: Vec<f64>,
    /// [H, G·H].
    pub wh: Vec<f64>,
    /// [G·H].
    pub bx: Vec<f64>,
    /// [G·H].
    pub bh: Vec<f64>,
}

impl RecurrentParams {
    /// Field names, in layout order.
    pub const NAMES: [&'static str; 4] = ["wx", "wh", "bx", "bh"];

    /// Every tensor's name and shape.
    pub fn shapes(cfg: &RecurrentConfig) -> Vec<(&'static str, Vec<usize>)> {
        let gh = cfg.gate_width();
        vec![
            ("wx", vec![cfg.input, gh]),
            ("wh", vec![cfg.hidden, gh]),
            ("bx", vec![gh]),
            ("bh", vec![gh]),
        ]
    }

    /// All-zero parameters shaped by `cfg`.
    pub fn zeros(cfg: &RecurrentConfig) -> Self {
        let gh = cfg.gate_width();
        RecurrentParams {
            wx: vec![0.0; cfg.input * gh],
            wh: vec![0.0; cfg.hidden * gh],
            bx: vec![0.0; gh],
            bh: vec![0.0; gh],
        }
    }

    /// Every element uniform in [−scale, scale).
    pub fn random(cfg: &RecurrentConfig, rng: &mut Rng, scale: f64) -> Self {
        let mut p = Self::zeros(cfg);
        for v in [&mut p.wx, &mut p.wh, &mut p.bx, &mut p.bh] {
            v.iter_mut().for_each(|e| *e = rng.uniform(-scale, scale));
        }
        p
    }

    /// All-zero parameters of the same shapes.
    pub fn zeros_like(&self) -> Self {
        RecurrentParams {
            wx: vec![0.0; self.wx.len()],
            wh: vec![0.0; self.wh.len()],
            bx: vec![0.0; self.bx.len()],
            bh: vec![0.0; self.bh.len()],
        }
    }

    /// Each tensor's name and values, in [`RecurrentParams::NAMES`] order.
    pub fn names_and_values(&self) -> Vec<(&'static str, &[f64])> {
        vec![
            ("wx", &self.wx[..]),
            ("wh", &self.wh[..]),
            ("bx", &self.bx[..]),
            ("bh", &self.bh[..]),
        ]
    }

    /// The tensor named `name`, or None for an unknown name.
    pub fn get(&self, name: &str) -> Option<&[f64]> {
        self.names_and_values()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
    }

    /// The tensor named `name`, mutably, or None for an unknown name.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut [f64]> {
        match name {
            "wx" => Some(&mut self.wx),
            "wh" => Some(&mut self.wh),
            "bx" => Some(&mut self.bx),
            "bh" => Some(&mut self.bh),
            _ => None,
        }
    }

    /// Borrows the weights as one cell's.
    pub fn weights(&self) -> CellWeights<'_> {
        CellWeights {
            wx: &self.wx,
            wh: &self.wh,
            bx: &self.bx,
            bh: &self.bh,
        }
    }

    /// Borrows the tensors as gradient accumulators.
    pub fn grads_mut(&mut self) -> CellGrads<'_> {
        CellGrads {
            wx: &mut self.wx,
            wh: &mut self.wh,
            bx: &mut self.bx,
            bh: &mut self.bh,
        }
    }
}

/// A dense layer's forward over a sequence, with what the backward needs.
#[derive(Clone, Debug)]
pub struct RecurrentForward {
    /// T: sequence length.
    pub t_len: usize,
    /// B: batch size.
    pub batch: usize,
    /// h_t after each step [T, B, H].
    pub h: Vec<f64>,
    /// LSTM: c_t after each step [T, B, H] (empty for GRU).
    pub c: Vec<f64>,
    /// Post-activation gates [T, B, G·H].
    pub gates: Vec<f64>,
    /// GRU: gh_n [T, B, H] (empty for LSTM).
    pub ghn: Vec<f64>,
}

/// Gradients of a dense layer.
#[derive(Clone, Debug)]
pub struct RecurrentGradients {
    /// Parameter gradients.
    pub params: RecurrentParams,
    /// [T, B, D].
    pub dx: Vec<f64>,
    /// [B, H].
    pub dh0: Vec<f64>,
    /// [B, H] for LSTM (empty for GRU).
    pub dc0: Vec<f64>,
}

/// Runs x [T, B, D] from h0 [B, H] and (LSTM) c0 [B, H]; `c0` is ignored for GRU.
pub fn forward(
    cfg: &RecurrentConfig,
    params: &RecurrentParams,
    x: &[f64],
    h0: &[f64],
    c0: &[f64],
    t_len: usize,
    batch: usize,
) -> RecurrentForward {
    let (d, hd, gh) = (cfg.input, cfg.hidden, cfg.gate_width());
    let lstm = cfg.cell == CellKind::Lstm;
    assert_eq!(x.len(), t_len * batch * d, "x");
    assert_eq!(h0.len(), batch * hd, "h0");
    if lstm {
        assert_eq!(c0.len(), batch * hd, "c0");
    }
    let w = params.weights();
    let mut out = RecurrentForward {
        t_len,
        batch,
        h: vec![0.0; t_len * batch * hd],
        c: if lstm {
            vec![0.0; t_len * batch * hd]
        } else {
            Vec::new()
        },
        gates: vec![0.0; t_len * batch * gh],
        ghn: if lstm {
            Vec::new()
        } else {
            vec![0.0; t_len * batch * hd]
        },
    };
    for t in 0..t_len {
        for b in 0..batch {
            let row = t * batch + b;
            let (h_prev, c_prev) = if t == 0 {
                (
                    &h0[b * hd..(b + 1) * hd],
                    if lstm {
                        &c0[b * hd..(b + 1) * hd]
                    } else {
                        &[][..]
                    },
                )
            } else {
                let prev = (row - batch) * hd..(row - batch + 1) * hd;
                (
                    &out.h[prev.clone()],
                    if lstm { &out.c[prev] } else { &[][..] },
                )
            };
            let xr = &x[row * d..(row + 1) * d];
            let cell = cell_forward(cfg.cell, &w, xr, h_prev, c_prev);
            out.h[row * hd..(row + 1) * hd].copy_from_slice(&cell.h);
            out.gates[row * gh..(row + 1) * gh].copy_from_slice(&cell.gates);
            if lstm {
                out.c[row * hd..(row + 1) * hd].copy_from_slice(&cell.c);
            } else {
                out.ghn[row * hd..(row + 1) * hd].copy_from_slice(&cell.ghn);
            }
        }
    }
    out
}

/// Backward of [`forward`]: `dh` [T, B, H] is the loss gradient w.r.t. every step's output
/// h_t, `dc_last` [B, H] the gradient w.r.t. the final c_T (LSTM; ignored for GRU).
#[allow(clippy::too_many_arguments)]
pub fn backward(
    cfg: &RecurrentConfig,
    params: &RecurrentParams,
    x: &[f64],
    h0: &[f64],
    c0: &[f64],
    fwd: &RecurrentForward,
    dh: &[f64],
    dc_last: Option<&[f64]>,
) -> RecurrentGradients {
    let (d, hd, gh) = (cfg.input, cfg.hidden, cfg.gate_width());
    let (t_len, batch) = (fwd.t_len, fwd.batch);
    let lstm = cfg.cell == CellKind::Lstm;
    assert_eq!(dh.len(), t_len * batch * hd, "dh");
    let w = params.weights();
    let mut grads = params.zeros_like();
    let mut dx = vec![0.0; t_len * batch * d];
    // The gradients flowing into h_t and c_t from later steps (and dc_last).
    let mut dh_carry = vec![0.0; batch * hd];
    let mut dc_carry = match (lstm, dc_last) {
        (true, Some(dc)) => dc.to_vec(),
        (true, None) => vec![0.0; batch * hd],
        (false, _) => Vec::new(),
    };
    for t in (0..t_len).rev() {
        let mut dh_prev = vec![0.0; batch * hd];
        let mut dc_prev = vec![0.0; if lstm { batch * hd } else { 0 }];
        for b in 0..batch {
            let row = t * batch + b;
            let hs = b * hd..(b + 1) * hd;
            let (h_prev, c_prev) = if t == 0 {
                (
                    &h0[hs.clone()],
                    if lstm { &c0[hs.clone()] } else { &[][..] },
                )
            } else {
                let prev = (row - batch) * hd..(row - batch + 1) * hd;
                (
                    &fwd.h[prev.clone()],
                    if lstm { &fwd.c[prev] } else { &[][..] },
                )
            };
            let dh_new: Vec<f64> = (0..hd)
                .map(|r| dh[row * hd + r] + dh_carry[b * hd + r])
                .collect();
            let saved = CellSaved {
                gates: &fwd.gates[row * gh..(row + 1) * gh],
                ghn: if lstm {
                    &[]
                } else {
                    &fwd.ghn[row * hd..(row + 1) * hd]
                },
                c: if lstm {
                    &fwd.c[row * hd..(row + 1) * hd]
                } else {
                    &[]
                },
            };
            let (dc_new, dc_out): (&[f64], &mut [f64]) = if lstm {
                (&dc_carry[hs.clone()], &mut dc_prev[hs.clone()])
            } else {
                (&[], &mut [])
            };
            cell_backward(
                cfg.cell,
                &w,
                &x[row * d..(row + 1) * d],
                h_prev,
                c_prev,
                &saved,
                &dh_new,
                dc_new,
                &mut grads.grads_mut(),
                &mut dx[row * d..(row + 1) * d],
                &mut dh_prev[hs],
                dc_out,
            );
        }
        dh_carry = dh_prev;
        dc_carry = dc_prev;
    }
    RecurrentGradients {
        params: grads,
        dx,
        dh0: dh_carry,
        dc0: dc_carry,
    }
}
