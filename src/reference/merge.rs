//! f64 oracle of the `merge` op (`ops::merge`, `shaders/merge.wgsl`, variant A's gated
//! residual) for one batch row at one step (`docs/spec.md` §1.5-1.6): the communication
//! residual ĥ_i = h'_i + γ_i⊙tanh(o_i·keep) with γ_i = σ(gate_i), then the merge
//! h_t = m⊙ĥ + (1−m)⊙h_{t-1} and (LSTM) c_t = m⊙c' + (1−m)⊙c_{t-1}. o and gate are the
//! products ctx·fc_w + fc_b and ctx·gate_w + gate_b (the caller's, `reference::rims`).

// Index loops spell out the formulas; they are the point of this file.
#![allow(clippy::needless_range_loop)]

use crate::reference::elementwise::sigmoid;

/// Dropout tensor id of the communication output o.
pub const DROPOUT_COMM: u32 = 1;

/// One row's residual and merge.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// tanh(o·keep) [N·H].
    pub tanh_o: Vec<f64>,
    /// γ = σ(gate) [N·H].
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
    let (n, nh) = (mask.len(), hp.len());
    let h = nh / n.max(1);
    let tanh_o: Vec<f64> = (0..nh).map(|x| (o[x] * keep(x)).tanh()).collect();
    let gamma: Vec<f64> = gate.iter().map(|&g| sigmoid(g)).collect();
    let h_hat: Vec<f64> = (0..nh).map(|x| hp[x] + gamma[x] * tanh_o[x]).collect();
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
    /// Of the gate pre-activation [N·H].
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
    let (n, nh) = (mask.len(), dh.len());
    let h = nh / n.max(1);
    let m = |x: usize| mask[x / h];
    let dh_prime: Vec<f64> = (0..nh).map(|x| m(x) * dh[x]).collect();
    let d_o = (0..nh)
        .map(|x| {
            let (to, gm) = (tanh_o[x], gamma[x]);
            dh_prime[x] * gm * (1.0 - to * to) * keep(x)
        })
        .collect();
    let d_gate = (0..nh)
        .map(|x| {
            let (to, gm) = (tanh_o[x], gamma[x]);
            dh_prime[x] * to * gm * (1.0 - gm)
        })
        .collect();
    let dh_prev = (0..nh).map(|x| (1.0 - m(x)) * dh[x]).collect();
    let (dc_prime, dc_prev) = match dc {
        Some(dc) => (
            (0..nh).map(|x| m(x) * dc[x]).collect(),
            (0..nh).map(|x| (1.0 - m(x)) * dc[x]).collect(),
        ),
        None => (Vec::new(), Vec::new()),
    };
    Grads {
        d_o,
        d_gate,
        dh_prime,
        dh_prev,
        dc_prime,
        dc_prev,
    }
}
