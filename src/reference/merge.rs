//! f64 oracle of the `merge` op (`ops::merge`, `shaders/merge.wgsl`, variant A's gated
//! residual) for one batch row at one step (`docs/spec.md` §1.5-1.6): the communication
//! residual ĥ_i = h'_i + γ_i⊙tanh(o_i·keep) with γ_i = σ(gate_i), then the merge
//! h_t = m⊙ĥ + (1−m)⊙h_{t-1} and (LSTM) c_t = m⊙c' + (1−m)⊙c_{t-1}. o and gate are the
//! products ctx·fc_w + fc_b and ctx·gate_w + gate_b (the caller's, `reference::rims`).
//!
//! Variant D ([`forward_dido`], [`backward_dido`]; the op's `variant` = 1, `docs/spec.md` §3):
//! the plain residual ĥ_i = h'_i + o_i (no gate, tanh or dropout; o = ctx_i·comm_out_w_i, the
//! caller's), then the same merge.

// Index loops spell out the formulas; they are the point of this file.
#![allow(clippy::needless_range_loop)]

use crate::reference::elementwise::sigmoid;

/// Dropout tensor id of the communication output o.
pub const DROPOUT_COMM: u32 = 1;

/// One row's residual and merge.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// tanh(o·keep) [N·H] (empty in variant D).
    pub tanh_o: Vec<f64>,
    /// γ = σ(gate) [N·H] (empty in variant D).
    pub gamma: Vec<f64>,
    /// ĥ [N·H], before the merge.
    pub h_hat: Vec<f64>,
    /// h_t [N·H].
    pub h: Vec<f64>,
    /// LSTM: c_t [N·H] (empty when `cells` is None).
    pub c: Vec<f64>,
}

/// The residual and merge of one row of N mechanisms of H units: o, gate, h' and h_prev
/// [N·H], mask [N]; `cells` = (c', c_{t-1}) for LSTM. `keep(i·H + e)` is o's dropout factor.
pub fn forward(
    o: &[f64],
    gate: &[f64],
    hp: &[f64],
    mask: &[f64],
    h_prev: &[f64],
    cells: Option<(&[f64], &[f64])>,
    keep: impl Fn(usize) -> f64,
) -> Row {
    let nh = hp.len();
    let tanh_o: Vec<f64> = (0..nh).map(|x| (o[x] * keep(x)).tanh()).collect();
    let gamma: Vec<f64> = gate.iter().map(|&g| sigmoid(g)).collect();
    let h_hat: Vec<f64> = (0..nh).map(|x| hp[x] + gamma[x] * tanh_o[x]).collect();
    merged(tanh_o, gamma, h_hat, mask, h_prev, cells)
}

/// Variant D's residual and merge of one row: ĥ = h' + o, then as [`forward`]; `tanh_o` and
/// `gamma` of the result are empty.
pub fn forward_dido(
    o: &[f64],
    hp: &[f64],
    mask: &[f64],
    h_prev: &[f64],
    cells: Option<(&[f64], &[f64])>,
) -> Row {
    let h_hat: Vec<f64> = (0..hp.len()).map(|x| hp[x] + o[x]).collect();
    merged(Vec::new(), Vec::new(), h_hat, mask, h_prev, cells)
}

/// The merge h_t = m⊙ĥ + (1−m)⊙h_{t-1} (and c_t) of a row whose ĥ is known.
fn merged(
    tanh_o: Vec<f64>,
    gamma: Vec<f64>,
    h_hat: Vec<f64>,
    mask: &[f64],
    h_prev: &[f64],
    cells: Option<(&[f64], &[f64])>,
) -> Row {
    let (n, nh) = (mask.len(), h_hat.len());
    let h = nh / n.max(1);
    let m = |x: usize| mask[x / h];
    let h_new = (0..nh)
        .map(|x| m(x) * h_hat[x] + (1.0 - m(x)) * h_prev[x])
        .collect();
    let c = cells.map_or(Vec::new(), |(cp, c_prev)| {
        (0..nh)
            .map(|x| m(x) * cp[x] + (1.0 - m(x)) * c_prev[x])
            .collect()
    });
    Row {
        tanh_o,
        gamma,
        h_hat,
        h: h_new,
        c,
    }
}

/// The gradients of one row's residual and merge.
#[derive(Clone, Debug, PartialEq)]
pub struct Grads {
    /// Of o [N·H] (through the dropout).
    pub d_o: Vec<f64>,
    /// Of the gate pre-activation [N·H] (empty in variant D).
    pub d_gate: Vec<f64>,
    /// Of h' through the residual: m⊙dh_t [N·H].
    pub dh_prime: Vec<f64>,
    /// Of h_{t-1} through the merge's copy path: (1−m)⊙dh_t [N·H].
    pub dh_prev: Vec<f64>,
    /// LSTM: of c' (m⊙dc_t) and of c_{t-1} ((1−m)⊙dc_t) [N·H] each (empty without `dc`).
    pub dc_prime: Vec<f64>,
    /// See `dc_prime`.
    pub dc_prev: Vec<f64>,
}

/// Backward of [`forward`] from the gradients dh_t and (LSTM) dc_t [N·H] of the step's
/// outputs, with the forward's tanh(o·keep) and γ [N·H].
pub fn backward(
    tanh_o: &[f64],
    gamma: &[f64],
    mask: &[f64],
    dh: &[f64],
    dc: Option<&[f64]>,
    keep: impl Fn(usize) -> f64,
) -> Grads {
    let mut g = copy_path(mask, dh, dc);
    let nh = dh.len();
    g.d_o = (0..nh)
        .map(|x| {
            let (to, gm) = (tanh_o[x], gamma[x]);
            g.dh_prime[x] * gm * (1.0 - to * to) * keep(x)
        })
        .collect();
    g.d_gate = (0..nh)
        .map(|x| {
            let (to, gm) = (tanh_o[x], gamma[x]);
            g.dh_prime[x] * to * gm * (1.0 - gm)
        })
        .collect();
    g
}

/// Backward of [`forward_dido`]: ĥ = h' + o passes m⊙dh_t to h' and to o alike; `d_gate` is
/// empty.
pub fn backward_dido(mask: &[f64], dh: &[f64], dc: Option<&[f64]>) -> Grads {
    let mut g = copy_path(mask, dh, dc);
    g.d_o = g.dh_prime.clone();
    g
}

/// The merge's part of the backward: dĥ = m⊙dh_t (as `dh_prime`), the copy paths to h_{t-1}
/// and c_{t-1}, and dc'; `d_o` and `d_gate` empty.
fn copy_path(mask: &[f64], dh: &[f64], dc: Option<&[f64]>) -> Grads {
    let (n, nh) = (mask.len(), dh.len());
    let h = nh / n.max(1);
    let m = |x: usize| mask[x / h];
    let dh_prime: Vec<f64> = (0..nh).map(|x| m(x) * dh[x]).collect();
    let dh_prev = (0..nh).map(|x| (1.0 - m(x)) * dh[x]).collect();
    let (dc_prime, dc_prev) = match dc {
        Some(dc) => (
            (0..nh).map(|x| m(x) * dc[x]).collect(),
            (0..nh).map(|x| (1.0 - m(x)) * dc[x]).collect(),
        ),
        None => (Vec::new(), Vec::new()),
    };
    Grads {
        d_o: Vec::new(),
        d_gate: Vec::new(),
        dh_prime,
        dh_prev,
        dc_prime,
        dc_prev,
    }
}
