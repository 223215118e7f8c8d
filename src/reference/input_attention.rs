//! f64 oracle of the `input_attention` op (`ops::input_attention`,
//! `shaders/input_attention.wgsl`, variant A) for one batch row at one step, with the queries'
//! product and the top-k selection it fuses (`docs/spec.md` §1.2-1.3). The key and value of the
//! input, k = x·in_k_w and v = x·in_v_w, are products of the caller's (`reference::rims`).
//!
//! q_i = h_i·in_q_i [h_in·d_k]; per head e, s_i^e = q_i^e·k^e / √d_k and α_i^e = σ(s_i^e) (the
//! softmax over {null, x} with a zero null key and value); r_i = mean_e s_i^e ranks the
//! mechanisms, the k largest active (ties to the lower index) unless the caller gives the mask;
//! u_i[e·d_vin + c] = α_i^e · v[e·d_vin + c] · keep (dropout tensor [`DROPOUT_U`]). Variant D's
//! input attention is in `reference::rims_dido`.

// Index loops spell out the formulas; they are the point of this file.
#![allow(clippy::needless_range_loop)]

use crate::reference::elementwise::sigmoid;

/// Dropout tensor id of the input-attention output u.
pub const DROPOUT_U: u32 = 0;

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
    let mut q = vec![0.0; n * wq];
    for i in 0..n {
        for col in 0..wq {
            q[i * wq + col] = (0..hd)
                .map(|r| h[i * hd + r] * in_q[(i * hd + r) * wq + col])
                .sum();
        }
    }
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
