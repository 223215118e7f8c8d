//! f64 oracle of the `communication` op (`ops::communication`, `shaders/communication.wgsl`,
//! variant A): for one batch row, the attention of every mechanism over all N mechanisms, per
//! head, from the projections Q, K, V (the grouped products around it are the caller's,
//! `reference::rims`). Per head m: s_ij = Q_i^m·K_j^m / √d_kc, P_i = softmax_j(s_i), and the
//! context ctx_i, head-major, is Σ_j P_ij V_j^m.
//!
//! Variant D ([`forward_dido`], [`backward_dido`]; the op's `variant` = 1, `docs/spec.md` §3):
//! the contexts use P̃_ij = P_ij·m_i·keep_ij (inactive queries read nothing, dropout on the
//! probabilities, tensor [`DROPOUT_PROBS`]); the saved probabilities stay P.

// Index loops spell out the formulas; they are the point of this file.
#![allow(clippy::needless_range_loop)]

/// Dropout tensor id of variant D's probabilities (index ((b·h_c + m)·N + i)·N + j).
pub const DROPOUT_PROBS: u32 = 5;

/// The sizes of one row's attention.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sizes {
    /// N: mechanisms.
    pub n: usize,
    /// h_c: heads.
    pub heads: usize,
    /// d_kc: query and key size per head.
    pub dk: usize,
    /// d_vc: value size per head.
    pub dv: usize,
}

impl Sizes {
    /// h_c·d_kc: a mechanism's query (or key) row.
    pub fn wk(&self) -> usize {
        self.heads * self.dk
    }

    /// h_c·d_vc: a mechanism's value (and context) row.
    pub fn wv(&self) -> usize {
        self.heads * self.dv
    }
}

/// One row's attention.
#[derive(Clone, Debug, PartialEq)]
pub struct Attention {
    /// P [h_c, N (query), N (key)].
    pub probs: Vec<f64>,
    /// Contexts [N, h_c·d_vc], head-major.
    pub ctx: Vec<f64>,
}

/// The attention of one row: q, k [N, h_c·d_kc], v [N, h_c·d_vc].
pub fn forward(s: &Sizes, q: &[f64], k: &[f64], v: &[f64]) -> Attention {
    let (probs, _, ctx) = attend(s, q, k, v, |_| 1.0);
    Attention { probs, ctx }
}

/// One row's attention in variant D.
#[derive(Clone, Debug, PartialEq)]
pub struct DidoAttention {
    /// The softmax P [h_c, N (query), N (key)], before the row mask and dropout.
    pub probs: Vec<f64>,
    /// P̃ = P·m_i·keep, what the contexts use [h_c, N, N].
    pub probs_used: Vec<f64>,
    /// Contexts [N, h_c·d_vc], head-major.
    pub ctx: Vec<f64>,
}

/// Variant D's attention of one row: as [`forward`], with the row's mask [N];
/// `keep((m·N + i)·N + j)` is the dropout factor of P_ij in head m.
pub fn forward_dido(
    s: &Sizes,
    q: &[f64],
    k: &[f64],
    v: &[f64],
    mask: &[f64],
    keep: impl Fn(usize) -> f64,
) -> DidoAttention {
    let n = s.n;
    let (probs, probs_used, ctx) = attend(s, q, k, v, |x| mask[x / n % n] * keep(x));
    DidoAttention {
        probs,
        probs_used,
        ctx,
    }
}

/// The softmax P, the weighted P̃_x = P_x·weight(x) and the contexts from P̃, x = (m·N + i)·N + j.
fn attend(
    s: &Sizes,
    q: &[f64],
    k: &[f64],
    v: &[f64],
    weight: impl Fn(usize) -> f64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (n, hc, dkc, dvc, wk, wv) = (s.n, s.heads, s.dk, s.dv, s.wk(), s.wv());
    assert_eq!(
        (q.len(), k.len(), v.len()),
        (n * wk, n * wk, n * wv),
        "q, k, v"
    );
    let inv = 1.0 / (dkc as f64).sqrt();
    let mut probs = vec![0.0; hc * n * n];
    let mut used = vec![0.0; hc * n * n];
    let mut ctx = vec![0.0; n * wv];
    for m in 0..hc {
        for i in 0..n {
            let scores: Vec<f64> = (0..n)
                .map(|j| {
                    (0..dkc)
                        .map(|c| q[i * wk + m * dkc + c] * k[j * wk + m * dkc + c])
                        .sum::<f64>()
                        * inv
                })
                .collect();
            let mx = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let ex: Vec<f64> = scores.iter().map(|v| (v - mx).exp()).collect();
            let z: f64 = ex.iter().sum();
            for j in 0..n {
                let x = (m * n + i) * n + j;
                probs[x] = ex[j] / z;
                used[x] = probs[x] * weight(x);
            }
            for c in 0..dvc {
                ctx[i * wv + m * dvc + c] = (0..n)
                    .map(|j| used[(m * n + i) * n + j] * v[j * wv + m * dvc + c])
                    .sum();
            }
        }
    }
    (probs, used, ctx)
}

/// The gradients of one row's projections.
#[derive(Clone, Debug, PartialEq)]
pub struct Grads {
    /// Of q [N, h_c·d_kc].
    pub dq: Vec<f64>,
    /// Of k [N, h_c·d_kc].
    pub dk: Vec<f64>,
    /// Of v [N, h_c·d_vc].
    pub dv: Vec<f64>,
}

/// Backward of [`forward`] from the contexts' gradient `dctx` [N, h_c·d_vc], with the
/// forward's projections and probabilities.
pub fn backward(s: &Sizes, q: &[f64], k: &[f64], v: &[f64], probs: &[f64], dctx: &[f64]) -> Grads {
    backward_weighted(s, (q, k, v), probs, dctx, |_| 1.0)
}

/// Backward of [`forward_dido`]: as [`backward`], with the forward's P (not P̃), the row's mask
/// and the same `keep`.
#[allow(clippy::too_many_arguments)]
pub fn backward_dido(
    s: &Sizes,
    q: &[f64],
    k: &[f64],
    v: &[f64],
    probs: &[f64],
    mask: &[f64],
    dctx: &[f64],
    keep: impl Fn(usize) -> f64,
) -> Grads {
    let n = s.n;
    backward_weighted(s, (q, k, v), probs, dctx, |x| mask[x / n % n] * keep(x))
}

/// The backward of [`attend`]: dP̃ = dctx·V, dP = dP̃·weight, then the softmax's.
fn backward_weighted(
    s: &Sizes,
    (q, k, v): (&[f64], &[f64], &[f64]),
    probs: &[f64],
    dctx: &[f64],
    weight: impl Fn(usize) -> f64,
) -> Grads {
    let (n, hc, dkc, dvc, wk, wv) = (s.n, s.heads, s.dk, s.dv, s.wk(), s.wv());
    let inv = 1.0 / (dkc as f64).sqrt();
    let mut g = Grads {
        dq: vec![0.0; n * wk],
        dk: vec![0.0; n * wk],
        dv: vec![0.0; n * wv],
    };
    for m in 0..hc {
        for i in 0..n {
            let x = |j: usize| (m * n + i) * n + j;
            let pr = |j: usize| probs[x(j)];
            let dp: Vec<f64> = (0..n)
                .map(|j| {
                    weight(x(j))
                        * (0..dvc)
                            .map(|c| dctx[i * wv + m * dvc + c] * v[j * wv + m * dvc + c])
                            .sum::<f64>()
                })
                .collect();
            let row: f64 = (0..n).map(|j| pr(j) * dp[j]).sum();
            for j in 0..n {
                let used = pr(j) * weight(x(j));
                for c in 0..dvc {
                    g.dv[j * wv + m * dvc + c] += used * dctx[i * wv + m * dvc + c];
                }
                let ds = pr(j) * (dp[j] - row) * inv;
                for c in 0..dkc {
                    g.dq[i * wk + m * dkc + c] += ds * k[j * wk + m * dkc + c];
                    g.dk[j * wk + m * dkc + c] += ds * q[i * wk + m * dkc + c];
                }
            }
        }
    }
    g
}
