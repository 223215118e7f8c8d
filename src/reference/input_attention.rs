//! f64 oracle of the `input_attention` op (`ops::input_attention`,
//! `shaders/input_attention.wgsl`, variant A) for one batch row at one step, with the queries'
//! product and the top-k selection it fuses (`docs/spec.md` §1.2-1.3). The key and value of the
//! input, k = x·in_k_w and v = x·in_v_w, are products of the caller's (`reference::rims`).
//!
//! q_i = h_i·in_q_i [h_in·d_k]; per head e, s_i^e = q_i^e·k^e / √d_k and α_i^e = σ(s_i^e) (the
//! softmax over {null, x} with a zero null key and value); r_i = mean_e s_i^e ranks the
//! mechanisms, the k largest active (ties to the lower index) unless the caller gives the mask;
//! u_i[e·d_vin + c] = α_i^e · v[e·d_vin + c] · keep (dropout tensor [`DROPOUT_U`]).
//!
//! Variant D ([`forward_dido`], [`backward_dido`]; `docs/spec.md` §3, the op's `forward_dido`
//! and `backward_dido`): the null slot has the biases' key k_∅ and value v_∅; per mechanism
//! s̄_x = mean_e q_i^e·k_x^e/√d_k and s̄_∅ likewise; the k largest raw s̄_x are active;
//! α = softmax(s̄_x, s̄_∅), dropout on the two probabilities (tensor [`DROPOUT_PROBS`]);
//! u_i = m_i·(α'_x v̄_x + α'_∅ v̄_∅) [d_vin] with v̄ the mean of the heads' values.

// Index loops spell out the formulas; they are the point of this file.
#![allow(clippy::needless_range_loop)]

use crate::reference::elementwise::sigmoid;

/// Dropout tensor id of the input-attention output u.
pub const DROPOUT_U: u32 = 0;
/// Dropout tensor id of variant D's two probabilities (index (b·N + i)·2 + slot, slot 0 = x,
/// 1 = ∅).
pub const DROPOUT_PROBS: u32 = 4;

/// The sizes of one row's input attention.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sizes {
    /// N: mechanisms.
    pub n: usize,
    /// H: hidden units per mechanism.
    pub h: usize,
    /// h_in: heads.
    pub heads: usize,
    /// d_k: query and key size per head.
    pub dk: usize,
    /// d_vin: value size per head.
    pub dv: usize,
}

impl Sizes {
    /// h_in·d_k: a query (or the key) row.
    pub fn wq(&self) -> usize {
        self.heads * self.dk
    }

    /// A = h_in·d_vin: the value row and each mechanism's u.
    pub fn a(&self) -> usize {
        self.heads * self.dv
    }
}

/// The top-k mask of one row from its ranking scores: the k largest are active, ties go to
/// the lower index.
pub fn top_k_mask(ranking: &[f64], k: usize) -> Vec<f64> {
    (0..ranking.len())
        .map(|i| {
            let ahead = (0..ranking.len())
                .filter(|&j| ranking[j] > ranking[i] || (ranking[j] == ranking[i] && j < i))
                .count();
            if ahead < k { 1.0 } else { 0.0 }
        })
        .collect()
}

/// The queries q_i = h_i·in_q_i of one row [N, h_in·d_k].
fn queries(s: &Sizes, in_q: &[f64], h: &[f64]) -> Vec<f64> {
    let (n, hd, wq) = (s.n, s.h, s.wq());
    let mut q = vec![0.0; n * wq];
    for i in 0..n {
        for col in 0..wq {
            q[i * wq + col] = (0..hd)
                .map(|r| h[i * hd + r] * in_q[(i * hd + r) * wq + col])
                .sum();
        }
    }
    q
}

/// One row's input attention.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// Queries [N, h_in·d_k].
    pub q: Vec<f64>,
    /// Scores s [N, h_in].
    pub scores: Vec<f64>,
    /// α = σ(s) [N, h_in].
    pub alpha: Vec<f64>,
    /// Ranking scores (mean over heads of s) [N].
    pub ranking: Vec<f64>,
    /// The mask [N] (1 = active).
    pub mask: Vec<f64>,
    /// Cell inputs u (after dropout) [N, A].
    pub u: Vec<f64>,
}

/// The input attention of one row: h [N·H] the state before the step, in_q [N, H, h_in·d_k],
/// k [h_in·d_k] and v [A] the input's key and value, `active` = k of top-k, `mask_override`
/// [N] of 0/1 in place of the top-k selection. `keep(i·A + c)` is the dropout factor of u_i[c].
#[allow(clippy::too_many_arguments)]
pub fn forward(
    s: &Sizes,
    in_q: &[f64],
    h: &[f64],
    k: &[f64],
    v: &[f64],
    active: usize,
    mask_override: Option<&[f64]>,
    keep: impl Fn(usize) -> f64,
) -> Row {
    let (n, hd, hin, dk, dvin, wq, a) = (s.n, s.h, s.heads, s.dk, s.dv, s.wq(), s.a());
    assert_eq!((h.len(), k.len(), v.len()), (n * hd, wq, a), "h, k, v");
    let inv = 1.0 / (dk as f64).sqrt();
    let q = queries(s, in_q, h);
    let mut scores = vec![0.0; n * hin];
    for i in 0..n {
        for e in 0..hin {
            scores[i * hin + e] = (0..dk)
                .map(|c| q[i * wq + e * dk + c] * k[e * dk + c])
                .sum::<f64>()
                * inv;
        }
    }
    let alpha: Vec<f64> = scores.iter().map(|&x| sigmoid(x)).collect();
    let ranking: Vec<f64> = (0..n)
        .map(|i| scores[i * hin..(i + 1) * hin].iter().sum::<f64>() / hin as f64)
        .collect();
    let mask = match mask_override {
        Some(m) => m.to_vec(),
        None => top_k_mask(&ranking, active),
    };
    let mut u = vec![0.0; n * a];
    for i in 0..n {
        for e in 0..hin {
            for c in 0..dvin {
                let col = e * dvin + c;
                u[i * a + col] = alpha[i * hin + e] * v[col] * keep(i * a + col);
            }
        }
    }
    Row {
        q,
        scores,
        alpha,
        ranking,
        mask,
        u,
    }
}

/// The gradients of one row's input attention (the mask is a constant).
#[derive(Clone, Debug, PartialEq)]
pub struct Grads {
    /// Of the queries q [N, h_in·d_k] (the caller takes them through in_q to in_q's and h's
    /// gradients).
    pub dq: Vec<f64>,
    /// Of the input's key k [h_in·d_k].
    pub dk: Vec<f64>,
    /// Of the input's value v [A].
    pub dv: Vec<f64>,
}

/// Backward of [`forward`] from du [N, A], with the forward's k, v, q, α and mask (slices of
/// a [`Row`] or of stored copies). Only active mechanisms' scores get a gradient (the op skips
/// the others: in a RIMs step their du is 0).
#[allow(clippy::too_many_arguments)]
pub fn backward(
    s: &Sizes,
    k: &[f64],
    v: &[f64],
    q: &[f64],
    alpha: &[f64],
    mask: &[f64],
    du: &[f64],
    keep: impl Fn(usize) -> f64,
) -> Grads {
    let (n, hin, dk, dvin, wq, a) = (s.n, s.heads, s.dk, s.dv, s.wq(), s.a());
    assert_eq!(du.len(), n * a, "du");
    let inv = 1.0 / (dk as f64).sqrt();
    let mut g = Grads {
        dq: vec![0.0; n * wq],
        dk: vec![0.0; wq],
        dv: vec![0.0; a],
    };
    for i in 0..n {
        for e in 0..hin {
            let al = alpha[i * hin + e];
            let mut dal = 0.0;
            for c in 0..dvin {
                let col = e * dvin + c;
                let dup = du[i * a + col] * keep(i * a + col);
                dal += dup * v[col];
                g.dv[col] += dup * al;
            }
            if mask[i] < 0.5 {
                continue;
            }
            let ds = dal * al * (1.0 - al) * inv;
            for c in 0..dk {
                let col = e * dk + c;
                g.dq[i * wq + col] = ds * k[col];
                g.dk[col] += ds * q[i * wq + col];
            }
        }
    }
    g
}

/// One row's input attention in variant D.
#[derive(Clone, Debug, PartialEq)]
pub struct DidoRow {
    /// Queries [N, h_in·d_k].
    pub q: Vec<f64>,
    /// Head-averaged scores on the input, s̄_x [N] (the ranking).
    pub score_x: Vec<f64>,
    /// Head-averaged scores on the null input, s̄_∅ [N].
    pub score_null: Vec<f64>,
    /// α_x before dropout [N] (α_∅ = 1 − α_x).
    pub alpha: Vec<f64>,
    /// The mask [N] (1 = active).
    pub mask: Vec<f64>,
    /// Cell inputs u [N, d_vin] (zero for inactive mechanisms).
    pub u: Vec<f64>,
}

/// The mean over heads of a value row [h_in·d_vin]: v̄ [d_vin].
fn head_mean(s: &Sizes, v: &[f64]) -> Vec<f64> {
    let (hin, dvin) = (s.heads, s.dv);
    (0..dvin)
        .map(|c| (0..hin).map(|e| v[e * dvin + c]).sum::<f64>() / hin as f64)
        .collect()
}

/// Variant D's input attention of one row: h [N·H], in_q [N, H, h_in·d_k], the input's key
/// `kx` and the null input's `kn` [h_in·d_k], their values `vx`, `vn` [h_in·d_vin];
/// `active` and `mask_override` as in [`forward`]. `keep(i·2 + slot)` is the dropout factor of
/// mechanism i's probability of slot 0 (x) or 1 (∅).
#[allow(clippy::too_many_arguments)]
pub fn forward_dido(
    s: &Sizes,
    in_q: &[f64],
    h: &[f64],
    (kx, kn): (&[f64], &[f64]),
    (vx, vn): (&[f64], &[f64]),
    active: usize,
    mask_override: Option<&[f64]>,
    keep: impl Fn(usize) -> f64,
) -> DidoRow {
    let (n, hin, dk, dvin, wq, a) = (s.n, s.heads, s.dk, s.dv, s.wq(), s.a());
    assert_eq!((h.len(), kx.len(), kn.len()), (n * s.h, wq, wq), "h, k");
    assert_eq!((vx.len(), vn.len()), (a, a), "v");
    let inv = 1.0 / (dk as f64).sqrt();
    let q = queries(s, in_q, h);
    let (vbx, vbn) = (head_mean(s, vx), head_mean(s, vn));
    let score = |qi: &[f64], k: &[f64]| {
        (0..hin)
            .map(|e| (0..dk).map(|c| qi[e * dk + c] * k[e * dk + c]).sum::<f64>())
            .sum::<f64>()
            * inv
            / hin as f64
    };
    let score_x: Vec<f64> = (0..n)
        .map(|i| score(&q[i * wq..(i + 1) * wq], kx))
        .collect();
    let score_null: Vec<f64> = (0..n)
        .map(|i| score(&q[i * wq..(i + 1) * wq], kn))
        .collect();
    let mask = match mask_override {
        Some(m) => m.to_vec(),
        None => top_k_mask(&score_x, active),
    };
    let mut alpha = vec![0.0; n];
    let mut u = vec![0.0; n * dvin];
    for i in 0..n {
        let (sx, sn) = (score_x[i], score_null[i]);
        let top = sx.max(sn);
        let (ex, en) = ((sx - top).exp(), (sn - top).exp());
        let ax = ex / (ex + en);
        alpha[i] = ax;
        let (wx, wn) = (ax * keep(i * 2), (1.0 - ax) * keep(i * 2 + 1));
        for c in 0..dvin {
            u[i * dvin + c] = mask[i] * (wx * vbx[c] + wn * vbn[c]);
        }
    }
    DidoRow {
        q,
        score_x,
        score_null,
        alpha,
        mask,
        u,
    }
}

/// The gradients of one row's variant-D input attention (the mask is a constant).
#[derive(Clone, Debug, PartialEq)]
pub struct DidoGrads {
    /// Of the queries q [N, h_in·d_k].
    pub dq: Vec<f64>,
    /// Of the input's key k_x [h_in·d_k].
    pub dk: Vec<f64>,
    /// Of the null input's key k_∅ [h_in·d_k] (the op leaves it out: summed with `dk` it is
    /// zero up to rounding, since the softmax sees only s̄_x − s̄_∅).
    pub dk_null: Vec<f64>,
    /// Of the input's value v_x [h_in·d_vin] (each head's column gets 1/h_in of v̄'s).
    pub dv: Vec<f64>,
    /// Of the null input's value v_∅ [h_in·d_vin].
    pub dv_null: Vec<f64>,
}

/// Backward of [`forward_dido`] from du [N, d_vin], with the forward's keys, values, q, α and
/// mask; `keep` as in the forward.
#[allow(clippy::too_many_arguments)]
pub fn backward_dido(
    s: &Sizes,
    (kx, kn): (&[f64], &[f64]),
    (vx, vn): (&[f64], &[f64]),
    q: &[f64],
    alpha: &[f64],
    mask: &[f64],
    du: &[f64],
    keep: impl Fn(usize) -> f64,
) -> DidoGrads {
    let (n, hin, dk, dvin, wq, a) = (s.n, s.heads, s.dk, s.dv, s.wq(), s.a());
    assert_eq!(du.len(), n * dvin, "du");
    let inv = 1.0 / (dk as f64).sqrt();
    let (vbx, vbn) = (head_mean(s, vx), head_mean(s, vn));
    let mut dq = vec![0.0; n * wq];
    let (mut dkx, mut dkn) = (vec![0.0; wq], vec![0.0; wq]);
    let (mut dvx, mut dvn) = (vec![0.0; dvin], vec![0.0; dvin]);
    for i in 0..n {
        let ax = alpha[i];
        let an = 1.0 - ax;
        let (kpx, kpn) = (mask[i] * keep(i * 2), mask[i] * keep(i * 2 + 1));
        let dui = &du[i * dvin..(i + 1) * dvin];
        let (mut dax, mut dan) = (0.0, 0.0);
        for c in 0..dvin {
            dax += dui[c] * vbx[c] * kpx;
            dan += dui[c] * vbn[c] * kpn;
            dvx[c] += ax * kpx * dui[c];
            dvn[c] += an * kpn * dui[c];
        }
        let dot = ax * dax + an * dan;
        // d(s̄) per slot, then per head (the mean), then through q·k/√d_k.
        let (dsx, dsn) = (
            ax * (dax - dot) / hin as f64 * inv,
            an * (dan - dot) / hin as f64 * inv,
        );
        for col in 0..wq {
            let qv = q[i * wq + col];
            dq[i * wq + col] = dsx * kx[col] + dsn * kn[col];
            dkx[col] += dsx * qv;
            dkn[col] += dsn * qv;
        }
    }
    // Each head's value enters the mean with weight 1/h_in.
    let per_head =
        |d: &[f64]| -> Vec<f64> { (0..a).map(|col| d[col % dvin] / hin as f64).collect() };
    DidoGrads {
        dq,
        dk: dkx,
        dk_null: dkn,
        dv: per_head(&dvx),
        dv_null: per_head(&dvn),
    }
}
