//! f64 oracle for the RIMs cell in dido1998's variant ("variant D", `docs/spec.md` §3) over a
//! sequence, forward and backward. The shape of [`super::rims`] (variant A), with D's maths.
//!
//! One step t (dropout step index `step0 + t`, probability `cfg.dropout`), for each row b:
//! 1. k_x = x_t·in_k_w + in_k_b, k_∅ = in_k_b; v_x = x_t·in_v_w + in_v_b, v_∅ = in_v_b (the
//!    null input is zeros through the biased Linear layers).
//! 2. q_i = h_{t-1,i}·in_q_i; per head s^e_{i,x} = q^e_i·k^e_x/√d_k, s^e_{i,∅} likewise with
//!    k_∅; s̄ = the mean over heads.
//! 3. Mask: the k largest raw s̄_{i,x} are active, ties to the lower index (or the caller's).
//! 4. α_i = softmax(s̄_{i,x}, s̄_{i,∅}), then dropout on the two probabilities (tensor
//!    [`DROPOUT_IN_PROBS`], index (b·N + i)·2 + slot, slot 0 = x, 1 = ∅).
//! 5. u_i = m_i·(α'_{i,x} v̄_x + α'_{i,∅} v̄_∅) with v̄ the mean of the heads' values [d_vin].
//! 6. Every mechanism's cell on u_i with zero biases (inactive ones run on zero input).
//! 7. Communication from h': Q, K, V per mechanism, P = softmax over all N per head, then
//!    P̃_ij = P_ij·m_i·dropout(tensor [`DROPOUT_COMM_PROBS`], index ((b·h_c + m)·N + i)·N + j);
//!    ctx_i = concat_m Σ_j P̃_ij V_j; o_i = ctx_i·comm_out_w_i; ĥ_i = h'_i + o_i.
//! 8. h_t = m⊙ĥ + (1−m)⊙h_{t-1}; LSTM: c_t = m⊙c' + (1−m)⊙c_{t-1}.
//!
//! The backward is the same pseudo-gradient as variant A's: communication's gradient into h'_j
//! is multiplied by m_j (`blocked_grad`), masks and dropout are constants; it is the
//! derivative of [`forward_frozen`]. The key bias `in_k_b` gets a gradient of zero up to
//! rounding: the two-slot softmax only sees s̄_x − s̄_∅, from which the bias cancels, and the
//! selection that does see it is detached.

// Index loops spell out the formulas; they are the point of this file.
#![allow(clippy::needless_range_loop)]

use crate::nn::config::{CellKind, RimsConfig};
use crate::reference::dropout::factor;
use crate::reference::recurrent::{self, CellGrads, CellSaved, CellWeights};
use crate::reference::rims::top_k_mask;
use crate::rng::Rng;

/// Dropout tensor id of the input attention's probabilities (variant D).
pub const DROPOUT_IN_PROBS: u32 = 4;
/// Dropout tensor id of the communication probabilities (variant D).
pub const DROPOUT_COMM_PROBS: u32 = 5;

/// The parameters of one variant-D cell by canonical name (`docs/spec.md` §4).
#[derive(Clone, Debug, PartialEq)]
pub struct DidoParams {
    /// [N, H, h_in·d_k]
    pub in_q: Vec<f64>,
    /// [D, h_in·d_k]
    pub in_k_w: Vec<f64>,
    /// [D, h_in·d_vin]
    pub in_v_w: Vec<f64>,
    /// [h_in·d_k]
    pub in_k_b: Vec<f64>,
    /// [h_in·d_vin]
    pub in_v_b: Vec<f64>,
    /// [N, d_vin, G·H]
    pub rnn_wx: Vec<f64>,
    /// [N, H, G·H]
    pub rnn_wh: Vec<f64>,
    /// [N, H, h_c·d_kc]
    pub comm_q: Vec<f64>,
    /// [N, H, h_c·d_kc]
    pub comm_k: Vec<f64>,
    /// [N, H, h_c·H]
    pub comm_v: Vec<f64>,
    /// [N, h_c·H, H]
    pub comm_out_w: Vec<f64>,
}

impl DidoParams {
    /// The canonical names, in field order.
    pub const NAMES: [&'static str; 11] = [
        "in_q",
        "in_k_w",
        "in_v_w",
        "in_k_b",
        "in_v_b",
        "rnn_wx",
        "rnn_wh",
        "comm_q",
        "comm_k",
        "comm_v",
        "comm_out_w",
    ];

    /// Every tensor's canonical name and shape, in [`DidoParams::NAMES`] order.
    pub fn shapes(cfg: &RimsConfig) -> Vec<(&'static str, Vec<usize>)> {
        let (n, h, d) = (cfg.mechanisms, cfg.hidden, cfg.input);
        let wq = cfg.input_heads * cfg.input_key;
        let wvin = cfg.input_heads * cfg.input_value;
        let (a, gh) = (cfg.input_value, cfg.gate_width());
        let wk = cfg.comm_heads * cfg.comm_key;
        let wv = cfg.comm_heads * cfg.comm_value;
        vec![
            ("in_q", vec![n, h, wq]),
            ("in_k_w", vec![d, wq]),
            ("in_v_w", vec![d, wvin]),
            ("in_k_b", vec![wq]),
            ("in_v_b", vec![wvin]),
            ("rnn_wx", vec![n, a, gh]),
            ("rnn_wh", vec![n, h, gh]),
            ("comm_q", vec![n, h, wk]),
            ("comm_k", vec![n, h, wk]),
            ("comm_v", vec![n, h, wv]),
            ("comm_out_w", vec![n, wv, h]),
        ]
    }

    /// All zeros, shaped for `cfg`.
    pub fn zeros(cfg: &RimsConfig) -> Self {
        let z: Vec<Vec<f64>> = Self::shapes(cfg)
            .into_iter()
            .map(|(_, s)| vec![0.0; s.iter().product()])
            .collect();
        let [
            in_q,
            in_k_w,
            in_v_w,
            in_k_b,
            in_v_b,
            rnn_wx,
            rnn_wh,
            comm_q,
            comm_k,
            comm_v,
            comm_out_w,
        ]: [Vec<f64>; 11] = z.try_into().expect("11 shapes");
        DidoParams {
            in_q,
            in_k_w,
            in_v_w,
            in_k_b,
            in_v_b,
            rnn_wx,
            rnn_wh,
            comm_q,
            comm_k,
            comm_v,
            comm_out_w,
        }
    }

    /// Every element uniform in [−scale, scale), drawn tensor by tensor in name order.
    pub fn random(cfg: &RimsConfig, rng: &mut Rng, scale: f64) -> Self {
        let mut p = Self::zeros(cfg);
        for v in p.fields_mut() {
            v.iter_mut().for_each(|e| *e = rng.uniform(-scale, scale));
        }
        p
    }

    /// Zeros with the same shapes (a gradient accumulator).
    pub fn zeros_like(&self) -> Self {
        let mut p = self.clone();
        for v in p.fields_mut() {
            v.iter_mut().for_each(|e| *e = 0.0);
        }
        p
    }

    fn fields_mut(&mut self) -> [&mut Vec<f64>; 11] {
        [
            &mut self.in_q,
            &mut self.in_k_w,
            &mut self.in_v_w,
            &mut self.in_k_b,
            &mut self.in_v_b,
            &mut self.rnn_wx,
            &mut self.rnn_wh,
            &mut self.comm_q,
            &mut self.comm_k,
            &mut self.comm_v,
            &mut self.comm_out_w,
        ]
    }

    fn fields(&self) -> [&Vec<f64>; 11] {
        [
            &self.in_q,
            &self.in_k_w,
            &self.in_v_w,
            &self.in_k_b,
            &self.in_v_b,
            &self.rnn_wx,
            &self.rnn_wh,
            &self.comm_q,
            &self.comm_k,
            &self.comm_v,
            &self.comm_out_w,
        ]
    }

    /// (canonical name, values) for every tensor, in name order.
    pub fn names_and_values(&self) -> Vec<(&'static str, &[f64])> {
        Self::NAMES
            .iter()
            .zip(self.fields())
            .map(|(&n, v)| (n, &v[..]))
            .collect()
    }

    /// The tensor with canonical name `name`.
    pub fn get(&self, name: &str) -> Option<&[f64]> {
        let i = Self::NAMES.iter().position(|&n| n == name)?;
        Some(&self.fields()[i][..])
    }

    /// The tensor with canonical name `name`, mutable.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut [f64]> {
        let i = Self::NAMES.iter().position(|&n| n == name)?;
        self.fields_mut().into_iter().nth(i).map(|v| &mut v[..])
    }
}

/// Sizes used by the loops.
#[derive(Clone, Copy, Debug)]
struct Dims {
    b: usize,
    n: usize,
    h: usize,
    d: usize,
    hin: usize,
    dk: usize,
    /// d_vin: the cell input of a mechanism (the heads' values are averaged).
    a: usize,
    gh: usize,
    hc: usize,
    dkc: usize,
    /// h_in·d_k
    wq: usize,
    /// h_in·d_vin
    wvin: usize,
    /// h_c·d_kc
    wk: usize,
    /// h_c·H
    wv: usize,
}

impl Dims {
    fn of(cfg: &RimsConfig, batch: usize) -> Self {
        Dims {
            b: batch,
            n: cfg.mechanisms,
            h: cfg.hidden,
            d: cfg.input,
            hin: cfg.input_heads,
            dk: cfg.input_key,
            a: cfg.input_value,
            gh: cfg.gate_width(),
            hc: cfg.comm_heads,
            dkc: cfg.comm_key,
            wq: cfg.input_heads * cfg.input_key,
            wvin: cfg.input_heads * cfg.input_value,
            wk: cfg.comm_heads * cfg.comm_key,
            wv: cfg.comm_heads * cfg.comm_value,
        }
    }
}

/// The weights of mechanism j's cell; D's cells have no biases (`zero` is G·H zeros).
fn cell_weights<'a>(p: &'a DidoParams, dm: &Dims, j: usize, zero: &'a [f64]) -> CellWeights<'a> {
    let (a, h, gh) = (dm.a, dm.h, dm.gh);
    CellWeights {
        wx: &p.rnn_wx[j * a * gh..(j + 1) * a * gh],
        wh: &p.rnn_wh[j * h * gh..(j + 1) * h * gh],
        bx: zero,
        bh: zero,
    }
}

/// The forward of a sequence, with every intermediate (flat, step-major, row-major).
#[derive(Clone, Debug)]
pub struct Forward {
    /// T.
    pub t_len: usize,
    /// B.
    pub batch: usize,
    /// h_t after each step [T, B, N·H].
    pub h: Vec<f64>,
    /// LSTM: c_t [T, B, N·H] (empty for GRU).
    pub c: Vec<f64>,
    /// Masks [T, B, N] (1 = active).
    pub masks: Vec<f64>,
    /// Queries [T, B, N, h_in·d_k].
    pub q: Vec<f64>,
    /// k_x [T, B, h_in·d_k].
    pub k: Vec<f64>,
    /// v_x [T, B, h_in·d_vin].
    pub v: Vec<f64>,
    /// Head-averaged scores on the input, s̄_x [T, B, N] (the ranking).
    pub score_x: Vec<f64>,
    /// Head-averaged scores on the null input, s̄_∅ [T, B, N].
    pub score_null: Vec<f64>,
    /// α_x before dropout [T, B, N] (α_∅ = 1 − α_x).
    pub alpha: Vec<f64>,
    /// Cell inputs u [T, B, N·d_vin] (zero rows for inactive mechanisms).
    pub u: Vec<f64>,
    /// Post-activation gates [T, B, N, G·H].
    pub gates: Vec<f64>,
    /// GRU: h·W_hn [T, B, N·H].
    pub ghn: Vec<f64>,
    /// LSTM: c' [T, B, N·H].
    pub c_prime: Vec<f64>,
    /// h' [T, B, N·H].
    pub h_prime: Vec<f64>,
    /// What communication read in place of h' (frozen values for inactive mechanisms under
    /// [`forward_frozen`]) [T, B, N·H].
    pub comm_in: Vec<f64>,
    /// Communication Q, K [T, B, N, h_c·d_kc] and V [T, B, N, h_c·H].
    pub cq: Vec<f64>,
    /// See `cq`.
    pub ck: Vec<f64>,
    /// See `cq`.
    pub cv: Vec<f64>,
    /// Softmax P [T, B, h_c, N, N], before the row mask and dropout.
    pub probs: Vec<f64>,
    /// P̃ = P·m_i·dropout, what the contexts use [T, B, h_c, N, N].
    pub probs_used: Vec<f64>,
    /// Contexts [T, B, N, h_c·H], head-major.
    pub ctx: Vec<f64>,
    /// ĥ = h' + ctx·comm_out_w [T, B, N·H].
    pub h_hat: Vec<f64>,
}

/// Gradients of a sequence.
#[derive(Clone, Debug)]
pub struct Gradients {
    /// Parameter gradients by canonical name.
    pub params: DidoParams,
    /// [T, B, D].
    pub dx: Vec<f64>,
    /// [B, N·H].
    pub dh0: Vec<f64>,
    /// [B, N·H] (LSTM; empty for GRU).
    pub dc0: Vec<f64>,
    /// Gradient of every step's u [T, B, N·d_vin].
    pub du: Vec<f64>,
    /// Total gradient of every step's h' [T, B, N·H].
    pub dh_prime: Vec<f64>,
}

/// Runs the cell over x [T, B, D] from h0 and (LSTM) c0 [B, N·H]; `mask_override` [T, B, N]
/// replaces the selection.
#[allow(clippy::too_many_arguments)]
pub fn forward(
    cfg: &RimsConfig,
    params: &DidoParams,
    x: &[f64],
    h0: &[f64],
    c0: &[f64],
    seed: u32,
    step0: u32,
    mask_override: Option<&[f64]>,
    t_len: usize,
    batch: usize,
) -> Forward {
    let io = (x, h0, c0, seed, step0);
    run(cfg, params, io, mask_override, None, t_len, batch)
}

/// The forward whose derivative is the pseudo-gradient: masks given, and communication reads
/// `comm_frozen` [T, B, N·H] in place of h'_j wherever m_j = 0 (see `reference::rims`).
#[allow(clippy::too_many_arguments)]
pub fn forward_frozen(
    cfg: &RimsConfig,
    params: &DidoParams,
    x: &[f64],
    h0: &[f64],
    c0: &[f64],
    seed: u32,
    step0: u32,
    masks: &[f64],
    comm_frozen: &[f64],
    t_len: usize,
    batch: usize,
) -> Forward {
    let io = (x, h0, c0, seed, step0);
    run(
        cfg,
        params,
        io,
        Some(masks),
        Some(comm_frozen),
        t_len,
        batch,
    )
}

type Io<'a> = (&'a [f64], &'a [f64], &'a [f64], u32, u32);

fn run(
    cfg: &RimsConfig,
    p: &DidoParams,
    (x, h0, c0, seed, step0): Io<'_>,
    mask_override: Option<&[f64]>,
    frozen: Option<&[f64]>,
    t_len: usize,
    batch: usize,
) -> Forward {
    cfg.validate().expect("invalid RimsConfig");
    let dm = Dims::of(cfg, batch);
    let Dims {
        b: bsz,
        n,
        h,
        d,
        hin,
        dk,
        a,
        gh,
        hc,
        dkc,
        wq,
        wvin,
        wk,
        wv,
    } = dm;
    let lstm = cfg.cell == CellKind::Lstm;
    let nh = n * h;
    let st = bsz * nh;
    assert_eq!(x.len(), t_len * bsz * d, "x");
    assert_eq!(h0.len(), st, "h0");
    if lstm {
        assert_eq!(c0.len(), st, "c0");
    }
    if let Some(m) = mask_override {
        assert_eq!(m.len(), t_len * bsz * n, "mask_override");
    }
    for (name, shape) in DidoParams::shapes(cfg) {
        let len: usize = shape.iter().product();
        assert_eq!(p.get(name).map(<[f64]>::len), Some(len), "{name}");
    }
    let pd = cfg.dropout;
    let tb_all = t_len * bsz;
    let z = |len: usize| vec![0.0; len];
    let mut f = Forward {
        t_len,
        batch,
        h: z(t_len * st),
        c: if lstm { z(t_len * st) } else { Vec::new() },
        masks: z(tb_all * n),
        q: z(tb_all * n * wq),
        k: z(tb_all * wq),
        v: z(tb_all * wvin),
        score_x: z(tb_all * n),
        score_null: z(tb_all * n),
        alpha: z(tb_all * n),
        u: z(tb_all * n * a),
        gates: z(tb_all * n * gh),
        ghn: if lstm { Vec::new() } else { z(t_len * st) },
        c_prime: if lstm { z(t_len * st) } else { Vec::new() },
        h_prime: z(t_len * st),
        comm_in: z(t_len * st),
        cq: z(tb_all * n * wk),
        ck: z(tb_all * n * wk),
        cv: z(tb_all * n * wv),
        probs: z(tb_all * hc * n * n),
        probs_used: z(tb_all * hc * n * n),
        ctx: z(tb_all * n * wv),
        h_hat: z(t_len * st),
    };
    let zero_bias = z(gh);
    let inv_dk = 1.0 / (dk as f64).sqrt();
    let inv_dkc = 1.0 / (dkc as f64).sqrt();
    let dvc = h;
    for t in 0..t_len {
        let step = step0.wrapping_add(t as u32);
        let h_prev = if t == 0 {
            h0.to_vec()
        } else {
            f.h[(t - 1) * st..t * st].to_vec()
        };
        let c_prev = match (lstm, t) {
            (false, _) => Vec::new(),
            (true, 0) => c0.to_vec(),
            (true, _) => f.c[(t - 1) * st..t * st].to_vec(),
        };
        for b in 0..bsz {
            let tb = t * bsz + b;
            let xr = &x[tb * d..(tb + 1) * d];
            let hr = &h_prev[b * nh..(b + 1) * nh];

            // 1. Keys and values of the input (biased) and queries.
            for col in 0..wq {
                f.k[tb * wq + col] =
                    p.in_k_b[col] + (0..d).map(|e| xr[e] * p.in_k_w[e * wq + col]).sum::<f64>();
            }
            for col in 0..wvin {
                f.v[tb * wvin + col] = p.in_v_b[col]
                    + (0..d)
                        .map(|e| xr[e] * p.in_v_w[e * wvin + col])
                        .sum::<f64>();
            }
            for i in 0..n {
                for col in 0..wq {
                    f.q[(tb * n + i) * wq + col] = (0..h)
                        .map(|r| hr[i * h + r] * p.in_q[(i * h + r) * wq + col])
                        .sum();
                }
            }
            let vbar =
                |v: &[f64], c: usize| (0..hin).map(|e| v[e * a + c]).sum::<f64>() / hin as f64;
            let vx: Vec<f64> = (0..a)
                .map(|c| vbar(&f.v[tb * wvin..(tb + 1) * wvin], c))
                .collect();
            let vn: Vec<f64> = (0..a).map(|c| vbar(&p.in_v_b, c)).collect();

            // 2. Head-averaged scores on both slots.
            for i in 0..n {
                let qi = &f.q[(tb * n + i) * wq..(tb * n + i + 1) * wq];
                let score = |k: &[f64]| {
                    (0..hin)
                        .map(|e| (0..dk).map(|c| qi[e * dk + c] * k[e * dk + c]).sum::<f64>())
                        .sum::<f64>()
                        * inv_dk
                        / hin as f64
                };
                f.score_x[tb * n + i] = score(&f.k[tb * wq..(tb + 1) * wq]);
                f.score_null[tb * n + i] = score(&p.in_k_b);
            }

            // 3. The mask: the k largest raw s̄_x.
            let mask = match mask_override {
                Some(m) => m[tb * n..(tb + 1) * n].to_vec(),
                None => top_k_mask(&f.score_x[tb * n..(tb + 1) * n], cfg.active),
            };
            f.masks[tb * n..(tb + 1) * n].copy_from_slice(&mask);

            // 4-5. Softmax over the two slots, dropout on the probabilities, masked input.
            for i in 0..n {
                let (sx, sn) = (f.score_x[tb * n + i], f.score_null[tb * n + i]);
                let top = sx.max(sn);
                let (ex, en) = ((sx - top).exp(), (sn - top).exp());
                let ax = ex / (ex + en);
                f.alpha[tb * n + i] = ax;
                let drop = |slot: usize| {
                    factor(
                        seed,
                        step,
                        DROPOUT_IN_PROBS,
                        ((b * n + i) * 2 + slot) as u32,
                        pd,
                    )
                };
                let (wx, wn) = (ax * drop(0), (1.0 - ax) * drop(1));
                for c in 0..a {
                    f.u[(tb * n + i) * a + c] = mask[i] * (wx * vx[c] + wn * vn[c]);
                }
            }

            // 6. Every mechanism's cell.
            for j in 0..n {
                let w = cell_weights(p, &dm, j, &zero_bias);
                let uj = &f.u[(tb * n + j) * a..(tb * n + j + 1) * a];
                let cj = if lstm {
                    &c_prev[b * nh + j * h..b * nh + (j + 1) * h]
                } else {
                    &[][..]
                };
                let out = recurrent::cell_forward(cfg.cell, &w, uj, &hr[j * h..(j + 1) * h], cj);
                let hs = (tb * n + j) * h..(tb * n + j + 1) * h;
                f.gates[(tb * n + j) * gh..(tb * n + j + 1) * gh].copy_from_slice(&out.gates);
                f.h_prime[hs.clone()].copy_from_slice(&out.h);
                if lstm {
                    f.c_prime[hs].copy_from_slice(&out.c);
                } else {
                    f.ghn[hs].copy_from_slice(&out.ghn);
                }
            }

            // 7. Communication.
            for j in 0..n {
                for r in 0..h {
                    let idx = (tb * n + j) * h + r;
                    f.comm_in[idx] = match frozen {
                        Some(fz) if mask[j] == 0.0 => fz[idx],
                        _ => f.h_prime[idx],
                    };
                }
            }
            for j in 0..n {
                let hj = &f.comm_in[(tb * n + j) * h..(tb * n + j + 1) * h];
                for col in 0..wk {
                    let w = |m: &[f64], r: usize| m[(j * h + r) * wk + col];
                    f.cq[(tb * n + j) * wk + col] = (0..h).map(|r| hj[r] * w(&p.comm_q, r)).sum();
                    f.ck[(tb * n + j) * wk + col] = (0..h).map(|r| hj[r] * w(&p.comm_k, r)).sum();
                }
                for col in 0..wv {
                    f.cv[(tb * n + j) * wv + col] = (0..h)
                        .map(|r| hj[r] * p.comm_v[(j * h + r) * wv + col])
                        .sum();
                }
            }
            for m in 0..hc {
                for i in 0..n {
                    let s: Vec<f64> = (0..n)
                        .map(|j| {
                            (0..dkc)
                                .map(|c| {
                                    f.cq[(tb * n + i) * wk + m * dkc + c]
                                        * f.ck[(tb * n + j) * wk + m * dkc + c]
                                })
                                .sum::<f64>()
                                * inv_dkc
                        })
                        .collect();
                    let mx = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let ex: Vec<f64> = s.iter().map(|v| (v - mx).exp()).collect();
                    let zs: f64 = ex.iter().sum();
                    for j in 0..n {
                        let pi = ((tb * hc + m) * n + i) * n + j;
                        let index = (((b * hc + m) * n + i) * n + j) as u32;
                        f.probs[pi] = ex[j] / zs;
                        f.probs_used[pi] = f.probs[pi]
                            * mask[i]
                            * factor(seed, step, DROPOUT_COMM_PROBS, index, pd);
                    }
                    for c in 0..dvc {
                        f.ctx[(tb * n + i) * wv + m * dvc + c] = (0..n)
                            .map(|j| {
                                f.probs_used[((tb * hc + m) * n + i) * n + j]
                                    * f.cv[(tb * n + j) * wv + m * dvc + c]
                            })
                            .sum();
                    }
                }
            }
            for i in 0..n {
                let ci = &f.ctx[(tb * n + i) * wv..(tb * n + i + 1) * wv];
                for e in 0..h {
                    let idx = (tb * n + i) * h + e;
                    let o: f64 = (0..wv)
                        .map(|c| ci[c] * p.comm_out_w[(i * wv + c) * h + e])
                        .sum();
                    f.h_hat[idx] = f.h_prime[idx] + o;
                }
            }

            // 8. Merge.
            for i in 0..n {
                let m = mask[i];
                for e in 0..h {
                    let idx = (tb * n + i) * h + e;
                    let prev = b * nh + i * h + e;
                    f.h[idx] = m * f.h_hat[idx] + (1.0 - m) * h_prev[prev];
                    if lstm {
                        f.c[idx] = m * f.c_prime[idx] + (1.0 - m) * c_prev[prev];
                    }
                }
            }
        }
    }
    f
}

/// The pseudo-gradient of a sequence run by [`forward`] (or [`forward_frozen`]) with the same
/// inputs: `dh` [T, B, N·H] is dL/dh_t for every step, `dc_last` [B, N·H] dL/dc_T (LSTM).
#[allow(clippy::too_many_arguments)]
pub fn backward(
    cfg: &RimsConfig,
    p: &DidoParams,
    x: &[f64],
    h0: &[f64],
    c0: &[f64],
    fwd: &Forward,
    dh: &[f64],
    dc_last: Option<&[f64]>,
    seed: u32,
    step0: u32,
) -> Gradients {
    let (t_len, batch) = (fwd.t_len, fwd.batch);
    let dm = Dims::of(cfg, batch);
    let Dims {
        b: bsz,
        n,
        h,
        d,
        hin,
        dk,
        a,
        gh,
        hc,
        dkc,
        wq,
        wvin,
        wk,
        wv,
    } = dm;
    let lstm = cfg.cell == CellKind::Lstm;
    let nh = n * h;
    let st = bsz * nh;
    assert_eq!(dh.len(), t_len * st, "dh");
    let pd = cfg.dropout;
    let inv_dk = 1.0 / (dk as f64).sqrt();
    let inv_dkc = 1.0 / (dkc as f64).sqrt();
    let dvc = h;
    let zero_bias = vec![0.0; gh];
    let (mut bias_gx, mut bias_gh) = (vec![0.0; gh], vec![0.0; gh]);

    let mut g = p.zeros_like();
    let mut dx = vec![0.0; t_len * bsz * d];
    let mut du = vec![0.0; t_len * bsz * n * a];
    let mut dh_prime = vec![0.0; t_len * st];
    let mut dh_carry = vec![0.0; st];
    let mut dc_carry = match (lstm, dc_last) {
        (true, Some(dc)) => dc.to_vec(),
        (true, None) => vec![0.0; st],
        (false, _) => Vec::new(),
    };
    let vn: Vec<f64> = (0..a)
        .map(|c| (0..hin).map(|e| p.in_v_b[e * a + c]).sum::<f64>() / hin as f64)
        .collect();

    for t in (0..t_len).rev() {
        let step = step0.wrapping_add(t as u32);
        let h_prev: &[f64] = if t == 0 {
            h0
        } else {
            &fwd.h[(t - 1) * st..t * st]
        };
        let c_prev: &[f64] = match (lstm, t) {
            (false, _) => &[],
            (true, 0) => c0,
            (true, _) => &fwd.c[(t - 1) * st..t * st],
        };
        let mut dh_prev = vec![0.0; st];
        let mut dc_prev = vec![0.0; if lstm { st } else { 0 }];
        for b in 0..bsz {
            let tb = t * bsz + b;
            let xr = &x[tb * d..(tb + 1) * d];
            let hr = &h_prev[b * nh..(b + 1) * nh];
            let mask = &fwd.masks[tb * n..(tb + 1) * n];

            // 8. Merge.
            let mut dhhat = vec![0.0; nh];
            let mut dcp = vec![0.0; nh];
            for i in 0..n {
                let m = mask[i];
                for e in 0..h {
                    let ih = i * h + e;
                    let dht = dh[tb * nh + ih] + dh_carry[b * nh + ih];
                    dhhat[ih] = m * dht;
                    dh_prev[b * nh + ih] += (1.0 - m) * dht;
                    if lstm {
                        dcp[ih] = m * dc_carry[b * nh + ih];
                        dc_prev[b * nh + ih] += (1.0 - m) * dc_carry[b * nh + ih];
                    }
                }
            }

            // 7. Communication: ĥ = h' + ctx·W_out passes dĥ to h' and to o.
            let mut dhp = dhhat.clone();
            let mut dctx = vec![0.0; n * wv];
            for i in 0..n {
                let ci = &fwd.ctx[(tb * n + i) * wv..(tb * n + i + 1) * wv];
                for c in 0..wv {
                    for e in 0..h {
                        let wi = (i * wv + c) * h + e;
                        g.comm_out_w[wi] += ci[c] * dhhat[i * h + e];
                        dctx[i * wv + c] += dhhat[i * h + e] * p.comm_out_w[wi];
                    }
                }
            }
            let mut dcq = vec![0.0; n * wk];
            let mut dck = vec![0.0; n * wk];
            let mut dcv = vec![0.0; n * wv];
            for m in 0..hc {
                for i in 0..n {
                    let pr = |j: usize| fwd.probs[((tb * hc + m) * n + i) * n + j];
                    let pu = |j: usize| fwd.probs_used[((tb * hc + m) * n + i) * n + j];
                    // dP̃, then through the row mask and dropout to dP.
                    let dp: Vec<f64> = (0..n)
                        .map(|j| {
                            let index = (((b * hc + m) * n + i) * n + j) as u32;
                            let keep = mask[i] * factor(seed, step, DROPOUT_COMM_PROBS, index, pd);
                            keep * (0..dvc)
                                .map(|c| {
                                    dctx[i * wv + m * dvc + c]
                                        * fwd.cv[(tb * n + j) * wv + m * dvc + c]
                                })
                                .sum::<f64>()
                        })
                        .collect();
                    let row: f64 = (0..n).map(|j| pr(j) * dp[j]).sum();
                    for j in 0..n {
                        for c in 0..dvc {
                            dcv[j * wv + m * dvc + c] += pu(j) * dctx[i * wv + m * dvc + c];
                        }
                        let ds = pr(j) * (dp[j] - row) * inv_dkc;
                        for c in 0..dkc {
                            dcq[i * wk + m * dkc + c] +=
                                ds * fwd.ck[(tb * n + j) * wk + m * dkc + c];
                            dck[j * wk + m * dkc + c] +=
                                ds * fwd.cq[(tb * n + i) * wk + m * dkc + c];
                        }
                    }
                }
            }
            for j in 0..n {
                let hj = &fwd.comm_in[(tb * n + j) * h..(tb * n + j + 1) * h];
                for r in 0..h {
                    let mut dhc = 0.0;
                    for col in 0..wk {
                        let wi = (j * h + r) * wk + col;
                        g.comm_q[wi] += hj[r] * dcq[j * wk + col];
                        g.comm_k[wi] += hj[r] * dck[j * wk + col];
                        dhc += dcq[j * wk + col] * p.comm_q[wi] + dck[j * wk + col] * p.comm_k[wi];
                    }
                    for col in 0..wv {
                        let wi = (j * h + r) * wv + col;
                        g.comm_v[wi] += hj[r] * dcv[j * wv + col];
                        dhc += dcv[j * wv + col] * p.comm_v[wi];
                    }
                    // blocked_grad.
                    dhp[j * h + r] += mask[j] * dhc;
                }
            }
            dh_prime[tb * nh..(tb + 1) * nh].copy_from_slice(&dhp);

            // 6. The cells (zero biases; their gradients are dropped).
            for j in 0..n {
                let w = cell_weights(p, &dm, j, &zero_bias);
                let hs = (tb * n + j) * h..(tb * n + j + 1) * h;
                let saved = CellSaved {
                    gates: &fwd.gates[(tb * n + j) * gh..(tb * n + j + 1) * gh],
                    ghn: if lstm { &[] } else { &fwd.ghn[hs.clone()] },
                    c: if lstm { &fwd.c_prime[hs] } else { &[] },
                };
                let js = b * nh + j * h..b * nh + (j + 1) * h;
                let (cj, dcj, dc_out): (&[f64], &[f64], &mut [f64]) = if lstm {
                    (
                        &c_prev[js.clone()],
                        &dcp[j * h..(j + 1) * h],
                        &mut dc_prev[js.clone()],
                    )
                } else {
                    (&[], &[], &mut [])
                };
                let mut grads = CellGrads {
                    wx: &mut g.rnn_wx[j * a * gh..(j + 1) * a * gh],
                    wh: &mut g.rnn_wh[j * h * gh..(j + 1) * h * gh],
                    bx: &mut bias_gx,
                    bh: &mut bias_gh,
                };
                recurrent::cell_backward(
                    cfg.cell,
                    &w,
                    &fwd.u[(tb * n + j) * a..(tb * n + j + 1) * a],
                    &hr[j * h..(j + 1) * h],
                    cj,
                    &saved,
                    &dhp[j * h..(j + 1) * h],
                    dcj,
                    &mut grads,
                    &mut du[(tb * n + j) * a..(tb * n + j + 1) * a],
                    &mut dh_prev[js],
                    dc_out,
                );
            }

            // 5-1. Input attention (the mask is a constant).
            let vx: Vec<f64> = (0..a)
                .map(|c| (0..hin).map(|e| fwd.v[tb * wvin + e * a + c]).sum::<f64>() / hin as f64)
                .collect();
            let mut dkx = vec![0.0; wq];
            let mut dkn = vec![0.0; wq];
            let mut dvx = vec![0.0; a];
            let mut dvn = vec![0.0; a];
            for i in 0..n {
                let ax = fwd.alpha[tb * n + i];
                let an = 1.0 - ax;
                let drop = |slot: usize| {
                    factor(
                        seed,
                        step,
                        DROPOUT_IN_PROBS,
                        ((b * n + i) * 2 + slot) as u32,
                        pd,
                    )
                };
                let (kx, kn) = (mask[i] * drop(0), mask[i] * drop(1));
                let dui = &du[(tb * n + i) * a..(tb * n + i + 1) * a];
                let (mut dax, mut dan) = (0.0, 0.0);
                for c in 0..a {
                    dax += dui[c] * vx[c] * kx;
                    dan += dui[c] * vn[c] * kn;
                    dvx[c] += ax * kx * dui[c];
                    dvn[c] += an * kn * dui[c];
                }
                let dot = ax * dax + an * dan;
                // d(s̄) per slot, then per head (the mean), then through q·k/√d_k.
                let (dsx, dsn) = (
                    ax * (dax - dot) / hin as f64 * inv_dk,
                    an * (dan - dot) / hin as f64 * inv_dk,
                );
                for col in 0..wq {
                    let dqv = dsx * fwd.k[tb * wq + col] + dsn * p.in_k_b[col];
                    let qv = fwd.q[(tb * n + i) * wq + col];
                    dkx[col] += dsx * qv;
                    dkn[col] += dsn * qv;
                    for r in 0..h {
                        let wi = (i * h + r) * wq + col;
                        g.in_q[wi] += hr[i * h + r] * dqv;
                        dh_prev[b * nh + i * h + r] += dqv * p.in_q[wi];
                    }
                }
            }
            for col in 0..wq {
                g.in_k_b[col] += dkx[col] + dkn[col];
            }
            for col in 0..wvin {
                // Each head's value enters the mean with weight 1/h_in.
                g.in_v_b[col] += (dvx[col % a] + dvn[col % a]) / hin as f64;
            }
            for e in 0..d {
                for col in 0..wq {
                    g.in_k_w[e * wq + col] += xr[e] * dkx[col];
                    dx[tb * d + e] += dkx[col] * p.in_k_w[e * wq + col];
                }
                for col in 0..wvin {
                    let dv = dvx[col % a] / hin as f64;
                    g.in_v_w[e * wvin + col] += xr[e] * dv;
                    dx[tb * d + e] += dv * p.in_v_w[e * wvin + col];
                }
            }
        }
        dh_carry = dh_prev;
        dc_carry = dc_prev;
    }
    Gradients {
        params: g,
        dx,
        dh0: dh_carry,
        dc0: dc_carry,
        du,
        dh_prime,
    }
}
