//! f64 oracle for the whole RIMs cell over a sequence, forward and backward
//! (`docs/spec.md` §1 variant A, generalised to h_in input heads, and §5).
//!
//! One step t (dropout step index `step0 + t`, probability `cfg.dropout`), for each row b:
//! 1. q_i = h_{t-1,i}·in_q_i [h_in·d_k]; k = x_t·in_k_w; v = x_t·in_v_w [A = h_in·d_vin].
//! 2. Per head e: s_i^e = q_i^e·k^e / √d_k, α_i^e = σ(s_i^e) (softmax over {null, x}, zero null
//!    key and value).
//! 3. Ranking r_i = mean_e s_i^e; the k largest are active, ties to the lower index (or the
//!    caller's mask).
//! 4. u_i[e·d_vin + a] = α_i^e · v[e·d_vin + a] · dropout(tensor 0, index (b·N + i)·A + col).
//! 5. Every mechanism runs its cell ([`recurrent::cell_forward`]) on u_i: h'_i (and c'_i).
//! 6. Communication on h': Q, K, V per mechanism, softmax over all N mechanisms per head,
//!    ctx_i head-major; o_i = (ctx_i·fc_w + fc_b) ⊙ dropout(tensor 1, index (b·N + i)·H + e),
//!    γ_i = σ(ctx_i·gate_w + gate_b), ĥ_i = h'_i + γ_i⊙tanh(o_i).
//! 7. h_t = m⊙ĥ + (1−m)⊙h_{t-1}; LSTM: c_t = m⊙c' + (1−m)⊙c_{t-1}.
//!
//! The backward is the project's pseudo-gradient: exact, except that the whole gradient that
//! communication sends into h'_j (through Q_j, K_j and V_j) is multiplied by m_j
//! (`blocked_grad`). It equals the derivative of [`forward_frozen`], which feeds communication
//! fixed values in place of the inactive mechanisms' h'. Masks and dropout are constants.

// Index loops spell out the formulas; they are the point of this file.
#![allow(clippy::needless_range_loop)]

use crate::nn::config::{CellKind, RimsConfig};
use crate::reference::dropout::factor;
use crate::reference::elementwise::sigmoid;
use crate::reference::recurrent::{self, CellGrads, CellSaved, CellWeights};
use crate::rng::Rng;

/// Dropout tensor id of the input-attention output u.
pub const DROPOUT_U: u32 = 0;
/// Dropout tensor id of the communication output o.
pub const DROPOUT_COMM: u32 = 1;

/// The trained parameters of one cell in variant A, by canonical name (`docs/spec.md` §4):
/// row-major, weights [in, out], mechanism axis first. `in_k_b` and `in_v_b` are zero in
/// variant A and are left out.
#[derive(Clone, Debug, PartialEq)]
pub struct RimsParams {
    /// [N, H, h_in·d_k]
    pub in_q: Vec<f64>,
    /// [D, h_in·d_k]
    pub in_k_w: Vec<f64>,
    /// [D, h_in·d_vin]
    pub in_v_w: Vec<f64>,
    /// [N, A, G·H]
    pub rnn_wx: Vec<f64>,
    /// [N, H, G·H]
    pub rnn_wh: Vec<f64>,
    /// [N, G·H]
    pub rnn_bx: Vec<f64>,
    /// [N, G·H]
    pub rnn_bh: Vec<f64>,
    /// [N, H, h_c·d_kc]
    pub comm_q: Vec<f64>,
    /// [N, H, h_c·d_kc]
    pub comm_k: Vec<f64>,
    /// [N, H, h_c·d_vc]
    pub comm_v: Vec<f64>,
    /// [h_c·d_vc, H]
    pub comm_fc_w: Vec<f64>,
    /// [H]
    pub comm_fc_b: Vec<f64>,
    /// [h_c·d_vc, H]
    pub comm_gate_w: Vec<f64>,
    /// [H]
    pub comm_gate_b: Vec<f64>,
}

impl RimsParams {
    /// The canonical names, in the order of [`RimsParams::names_and_values`].
    pub const NAMES: [&'static str; 14] = [
        "in_q",
        "in_k_w",
        "in_v_w",
        "rnn_wx",
        "rnn_wh",
        "rnn_bx",
        "rnn_bh",
        "comm_q",
        "comm_k",
        "comm_v",
        "comm_fc_w",
        "comm_fc_b",
        "comm_gate_w",
        "comm_gate_b",
    ];

    /// Every tensor's canonical name and shape, in [`RimsParams::NAMES`] order.
    pub fn shapes(cfg: &RimsConfig) -> Vec<(&'static str, Vec<usize>)> {
        let (n, h, d) = (cfg.mechanisms, cfg.hidden, cfg.input);
        let wq = cfg.input_heads * cfg.input_key;
        let a = cfg.cell_input();
        let gh = cfg.gate_width();
        let wk = cfg.comm_heads * cfg.comm_key;
        let wv = cfg.comm_heads * cfg.comm_value;
        vec![
            ("in_q", vec![n, h, wq]),
            ("in_k_w", vec![d, wq]),
            ("in_v_w", vec![d, a]),
            ("rnn_wx", vec![n, a, gh]),
            ("rnn_wh", vec![n, h, gh]),
            ("rnn_bx", vec![n, gh]),
            ("rnn_bh", vec![n, gh]),
            ("comm_q", vec![n, h, wk]),
            ("comm_k", vec![n, h, wk]),
            ("comm_v", vec![n, h, wv]),
            ("comm_fc_w", vec![wv, h]),
            ("comm_fc_b", vec![h]),
            ("comm_gate_w", vec![wv, h]),
            ("comm_gate_b", vec![h]),
        ]
    }

    /// All zeros, shaped for `cfg`.
    pub fn zeros(cfg: &RimsConfig) -> Self {
        let shapes = Self::shapes(cfg);
        let z = |i: usize| vec![0.0; shapes[i].1.iter().product()];
        RimsParams {
            in_q: z(0),
            in_k_w: z(1),
            in_v_w: z(2),
            rnn_wx: z(3),
            rnn_wh: z(4),
            rnn_bx: z(5),
            rnn_bh: z(6),
            comm_q: z(7),
            comm_k: z(8),
            comm_v: z(9),
            comm_fc_w: z(10),
            comm_fc_b: z(11),
            comm_gate_w: z(12),
            comm_gate_b: z(13),
        }
    }

    /// Every element uniform in [−scale, scale), drawn tensor by tensor in
    /// [`RimsParams::NAMES`] order.
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

    fn fields(&self) -> [&Vec<f64>; 14] {
        [
            &self.in_q,
            &self.in_k_w,
            &self.in_v_w,
            &self.rnn_wx,
            &self.rnn_wh,
            &self.rnn_bx,
            &self.rnn_bh,
            &self.comm_q,
            &self.comm_k,
            &self.comm_v,
            &self.comm_fc_w,
            &self.comm_fc_b,
            &self.comm_gate_w,
            &self.comm_gate_b,
        ]
    }

    fn fields_mut(&mut self) -> [&mut Vec<f64>; 14] {
        [
            &mut self.in_q,
            &mut self.in_k_w,
            &mut self.in_v_w,
            &mut self.rnn_wx,
            &mut self.rnn_wh,
            &mut self.rnn_bx,
            &mut self.rnn_bh,
            &mut self.comm_q,
            &mut self.comm_k,
            &mut self.comm_v,
            &mut self.comm_fc_w,
            &mut self.comm_fc_b,
            &mut self.comm_gate_w,
            &mut self.comm_gate_b,
        ]
    }

    /// (canonical name, values) for every tensor, in [`RimsParams::NAMES`] order.
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
        let [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13] = self.fields_mut();
        let v = match i {
            0 => f0,
            1 => f1,
            2 => f2,
            3 => f3,
            4 => f4,
            5 => f5,
            6 => f6,
            7 => f7,
            8 => f8,
            9 => f9,
            10 => f10,
            11 => f11,
            12 => f12,
            _ => f13,
        };
        Some(&mut v[..])
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
    dvin: usize,
    a: usize,
    gh: usize,
    hc: usize,
    dkc: usize,
    dvc: usize,
    /// h_in·d_k
    wq: usize,
    /// h_c·d_kc
    wk: usize,
    /// h_c·d_vc
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
            dvin: cfg.input_value,
            a: cfg.cell_input(),
            gh: cfg.gate_width(),
            hc: cfg.comm_heads,
            dkc: cfg.comm_key,
            dvc: cfg.comm_value,
            wq: cfg.input_heads * cfg.input_key,
            wk: cfg.comm_heads * cfg.comm_key,
            wv: cfg.comm_heads * cfg.comm_value,
        }
    }

    /// B·N·H: one state.
    fn state(&self) -> usize {
        self.b * self.n * self.h
    }
}

/// The weights of mechanism j's cell.
fn cell_weights<'a>(p: &'a RimsParams, dm: &Dims, j: usize) -> CellWeights<'a> {
    let (a, h, gh) = (dm.a, dm.h, dm.gh);
    CellWeights {
        wx: &p.rnn_wx[j * a * gh..(j + 1) * a * gh],
        wh: &p.rnn_wh[j * h * gh..(j + 1) * h * gh],
        bx: &p.rnn_bx[j * gh..(j + 1) * gh],
        bh: &p.rnn_bh[j * gh..(j + 1) * gh],
    }
}

/// The forward of a sequence, with every intermediate (all flat, step-major, row-major).
#[derive(Clone, Debug)]
pub struct Forward {
    /// T: sequence length.
    pub t_len: usize,
    /// B: batch size.
    pub batch: usize,
    /// h_t after each step [T, B, N·H].
    pub h: Vec<f64>,
    /// LSTM: c_t after each step [T, B, N·H] (empty for GRU).
    pub c: Vec<f64>,
    /// The masks [T, B, N] (1 = active).
    pub masks: Vec<f64>,
    /// Input-attention queries [T, B, N, h_in·d_k].
    pub q: Vec<f64>,
    /// Input-attention key k_x [T, B, h_in·d_k].
    pub k: Vec<f64>,
    /// Input-attention value v_x [T, B, A].
    pub v: Vec<f64>,
    /// Scores s [T, B, N, h_in].
    pub scores: Vec<f64>,
    /// α_x = σ(s) [T, B, N, h_in].
    pub alpha: Vec<f64>,
    /// Ranking scores (mean over heads of s) [T, B, N].
    pub ranking: Vec<f64>,
    /// Cell inputs u (after dropout) [T, B, N·A].
    pub u: Vec<f64>,
    /// Post-activation gates [T, B, N, G·H].
    pub gates: Vec<f64>,
    /// GRU: gh_n [T, B, N·H] (empty for LSTM).
    pub ghn: Vec<f64>,
    /// LSTM: c' [T, B, N·H] (empty for GRU).
    pub c_prime: Vec<f64>,
    /// The cells' outputs h' [T, B, N·H], before communication.
    pub h_prime: Vec<f64>,
    /// What communication read in place of h' [T, B, N·H]: h' itself, except for inactive
    /// mechanisms under [`forward_frozen`].
    pub comm_in: Vec<f64>,
    /// Communication queries [T, B, N, h_c·d_kc].
    pub cq: Vec<f64>,
    /// Communication keys [T, B, N, h_c·d_kc].
    pub ck: Vec<f64>,
    /// Communication values [T, B, N, h_c·d_vc].
    pub cv: Vec<f64>,
    /// Communication probabilities [T, B, h_c, N (query), N (key)].
    pub probs: Vec<f64>,
    /// Contexts [T, B, N, h_c·d_vc], head-major.
    pub ctx: Vec<f64>,
    /// tanh(o) [T, B, N·H] (o after dropout).
    pub tanh_o: Vec<f64>,
    /// γ [T, B, N·H].
    pub gamma: Vec<f64>,
    /// ĥ = h' + γ⊙tanh(o) [T, B, N·H], before the merge.
    pub h_hat: Vec<f64>,
}

/// Gradients of a sequence.
#[derive(Clone, Debug)]
pub struct Gradients {
    /// Parameter gradients, by canonical name.
    pub params: RimsParams,
    /// [T, B, D].
    pub dx: Vec<f64>,
    /// [B, N·H].
    pub dh0: Vec<f64>,
    /// [B, N·H] for LSTM (empty for GRU).
    pub dc0: Vec<f64>,
    /// The gradient w.r.t. every step's cell input u [T, B, N·A] (exactly 0 for inactive
    /// mechanisms).
    pub du: Vec<f64>,
    /// The total gradient w.r.t. every step's h' [T, B, N·H] (residual plus blocked
    /// communication).
    pub dh_prime: Vec<f64>,
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

/// Runs the cell over x [T, B, D] from h0 [B, N·H] and (LSTM) c0 [B, N·H] (`c0` is ignored
/// for GRU and may be empty). `mask_override` [T, B, N] of 0/1 replaces the top-k selection.
#[allow(clippy::too_many_arguments)]
pub fn forward(
    cfg: &RimsConfig,
    params: &RimsParams,
    x: &[f64],
    h0: &[f64],
    c0: &[f64],
    seed: u32,
    step0: u32,
    mask_override: Option<&[f64]>,
    t_len: usize,
    batch: usize,
) -> Forward {
    run(
        cfg,
        params,
        x,
        h0,
        c0,
        seed,
        step0,
        mask_override,
        None,
        t_len,
        batch,
    )
}

/// The forward whose derivative is the pseudo-gradient: the masks [T, B, N] are given, and
/// communication reads `comm_frozen` [T, B, N·H] in place of h'_j wherever m_j = 0 (as its
/// queries, keys and values). Use the masks and `h_prime` of an unperturbed [`forward`] run.
#[allow(clippy::too_many_arguments)]
pub fn forward_frozen(
    cfg: &RimsConfig,
    params: &RimsParams,
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
    run(
        cfg,
        params,
        x,
        h0,
        c0,
        seed,
        step0,
        Some(masks),
        Some(comm_frozen),
        t_len,
        batch,
    )
}

#[allow(clippy::too_many_arguments)]
fn run(
    cfg: &RimsConfig,
    p: &RimsParams,
    x: &[f64],
    h0: &[f64],
    c0: &[f64],
    seed: u32,
    step0: u32,
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
        dvin,
        a,
        gh,
        hc,
        dkc,
        dvc,
        wq,
        wk,
        wv,
    } = dm;
    let lstm = cfg.cell == CellKind::Lstm;
    let nh = n * h;
    let st = dm.state();
    assert_eq!(x.len(), t_len * bsz * d, "x");
    assert_eq!(h0.len(), st, "h0");
    if lstm {
        assert_eq!(c0.len(), st, "c0");
    }
    if let Some(m) = mask_override {
        assert_eq!(m.len(), t_len * bsz * n, "mask_override");
    }
    if let Some(f) = frozen {
        assert_eq!(f.len(), t_len * st, "comm_frozen");
    }
    for (name, shape) in RimsParams::shapes(cfg) {
        let len: usize = shape.iter().product();
        assert_eq!(p.get(name).map(<[f64]>::len), Some(len), "{name}");
    }
    let p_drop = cfg.dropout;
    let tt = t_len;
    let mut f = Forward {
        t_len,
        batch,
        h: vec![0.0; tt * st],
        c: if lstm { vec![0.0; tt * st] } else { Vec::new() },
        masks: vec![0.0; tt * bsz * n],
        q: vec![0.0; tt * bsz * n * wq],
        k: vec![0.0; tt * bsz * wq],
        v: vec![0.0; tt * bsz * a],
        scores: vec![0.0; tt * bsz * n * hin],
        alpha: vec![0.0; tt * bsz * n * hin],
        ranking: vec![0.0; tt * bsz * n],
        u: vec![0.0; tt * bsz * n * a],
        gates: vec![0.0; tt * bsz * n * gh],
        ghn: if lstm { Vec::new() } else { vec![0.0; tt * st] },
        c_prime: if lstm { vec![0.0; tt * st] } else { Vec::new() },
        h_prime: vec![0.0; tt * st],
        comm_in: vec![0.0; tt * st],
        cq: vec![0.0; tt * bsz * n * wk],
        ck: vec![0.0; tt * bsz * n * wk],
        cv: vec![0.0; tt * bsz * n * wv],
        probs: vec![0.0; tt * bsz * hc * n * n],
        ctx: vec![0.0; tt * bsz * n * wv],
        tanh_o: vec![0.0; tt * st],
        gamma: vec![0.0; tt * st],
        h_hat: vec![0.0; tt * st],
    };
    let inv_dk = 1.0 / (dk as f64).sqrt();
    let inv_dkc = 1.0 / (dkc as f64).sqrt();
    for t in 0..t_len {
        let step = step0.wrapping_add(t as u32);
        let h_prev: Vec<f64> = if t == 0 {
            h0.to_vec()
        } else {
            f.h[(t - 1) * st..t * st].to_vec()
        };
        let c_prev: Vec<f64> = match (lstm, t) {
            (false, _) => Vec::new(),
            (true, 0) => c0.to_vec(),
            (true, _) => f.c[(t - 1) * st..t * st].to_vec(),
        };
        for b in 0..bsz {
            let tb = t * bsz + b;
            let xr = &x[tb * d..(tb + 1) * d];
            let hr = &h_prev[b * nh..(b + 1) * nh];

            // 1. Key and value of the input, queries of the mechanisms.
            for col in 0..wq {
                f.k[tb * wq + col] = (0..d).map(|e| xr[e] * p.in_k_w[e * wq + col]).sum();
            }
            for col in 0..a {
                f.v[tb * a + col] = (0..d).map(|e| xr[e] * p.in_v_w[e * a + col]).sum();
            }
            for i in 0..n {
                for col in 0..wq {
                    f.q[(tb * n + i) * wq + col] = (0..h)
                        .map(|r| hr[i * h + r] * p.in_q[(i * h + r) * wq + col])
                        .sum();
                }
            }

            // 2. Scores and attention on the input, per head.
            for i in 0..n {
                for e in 0..hin {
                    let s: f64 = (0..dk)
                        .map(|c| f.q[(tb * n + i) * wq + e * dk + c] * f.k[tb * wq + e * dk + c])
                        .sum::<f64>()
                        * inv_dk;
                    f.scores[(tb * n + i) * hin + e] = s;
                    f.alpha[(tb * n + i) * hin + e] = sigmoid(s);
                }
            }

            // 3. Top-k selection (or the caller's mask).
            for i in 0..n {
                let s = &f.scores[(tb * n + i) * hin..(tb * n + i + 1) * hin];
                f.ranking[tb * n + i] = s.iter().sum::<f64>() / hin as f64;
            }
            let mask = match mask_override {
                Some(m) => m[tb * n..(tb + 1) * n].to_vec(),
                None => top_k_mask(&f.ranking[tb * n..(tb + 1) * n], cfg.active),
            };
            f.masks[tb * n..(tb + 1) * n].copy_from_slice(&mask);

            // 4. Cell inputs, for every mechanism.
            for i in 0..n {
                for e in 0..hin {
                    let al = f.alpha[(tb * n + i) * hin + e];
                    for c in 0..dvin {
                        let col = e * dvin + c;
                        let index = ((b * n + i) * a + col) as u32;
                        let keep = factor(seed, step, DROPOUT_U, index, p_drop);
                        f.u[(tb * n + i) * a + col] = al * f.v[tb * a + col] * keep;
                    }
                }
            }

            // 5. Every mechanism's cell.
            for j in 0..n {
                let w = cell_weights(p, &dm, j);
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

            // 6. Communication.
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
                    let z: f64 = ex.iter().sum();
                    for j in 0..n {
                        f.probs[((tb * hc + m) * n + i) * n + j] = ex[j] / z;
                    }
                    for c in 0..dvc {
                        f.ctx[(tb * n + i) * wv + m * dvc + c] = (0..n)
                            .map(|j| {
                                f.probs[((tb * hc + m) * n + i) * n + j]
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
                    let keep = factor(
                        seed,
                        step,
                        DROPOUT_COMM,
                        ((b * n + i) * h + e) as u32,
                        p_drop,
                    );
                    let o = (p.comm_fc_b[e]
                        + (0..wv).map(|c| ci[c] * p.comm_fc_w[c * h + e]).sum::<f64>())
                        * keep;
                    let g = sigmoid(
                        p.comm_gate_b[e]
                            + (0..wv)
                                .map(|c| ci[c] * p.comm_gate_w[c * h + e])
                                .sum::<f64>(),
                    );
                    f.tanh_o[idx] = o.tanh();
                    f.gamma[idx] = g;
                    f.h_hat[idx] = f.h_prime[idx] + g * o.tanh();
                }
            }

            // 7. Merge.
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
/// inputs: `dh` [T, B, N·H] is the loss gradient w.r.t. every step's output h_t, `dc_last`
/// [B, N·H] the gradient w.r.t. the final c_T (LSTM; ignored for GRU). `seed` and `step0`
/// must be the forward's (they redraw the dropout masks).
#[allow(clippy::too_many_arguments)]
pub fn backward(
    cfg: &RimsConfig,
    p: &RimsParams,
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
        dvin,
        a,
        gh,
        hc,
        dkc,
        dvc,
        wq,
        wk,
        wv,
    } = dm;
    let lstm = cfg.cell == CellKind::Lstm;
    let nh = n * h;
    let st = dm.state();
    assert_eq!(dh.len(), t_len * st, "dh");
    let p_drop = cfg.dropout;
    let inv_dk = 1.0 / (dk as f64).sqrt();
    let inv_dkc = 1.0 / (dkc as f64).sqrt();

    let mut g = p.zeros_like();
    let mut dx = vec![0.0; t_len * bsz * d];
    let mut du = vec![0.0; t_len * bsz * n * a];
    let mut dh_prime = vec![0.0; t_len * st];
    // Gradients w.r.t. h_t and c_t coming from later steps (and dc_last).
    let mut dh_carry = vec![0.0; st];
    let mut dc_carry = match (lstm, dc_last) {
        (true, Some(dc)) => {
            assert_eq!(dc.len(), st, "dc_last");
            dc.to_vec()
        }
        (true, None) => vec![0.0; st],
        (false, _) => Vec::new(),
    };

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
            let dht: Vec<f64> = (0..nh)
                .map(|e| dh[tb * nh + e] + dh_carry[b * nh + e])
                .collect();

            // 7. Merge.
            let mut dhhat = vec![0.0; nh];
            let mut dcp = vec![0.0; nh];
            for i in 0..n {
                let m = mask[i];
                for e in 0..h {
                    let ih = i * h + e;
                    dhhat[ih] = m * dht[ih];
                    dh_prev[b * nh + ih] += (1.0 - m) * dht[ih];
                    if lstm {
                        dcp[ih] = m * dc_carry[b * nh + ih];
                        dc_prev[b * nh + ih] += (1.0 - m) * dc_carry[b * nh + ih];
                    }
                }
            }

            // 6. Communication. The residual ĥ = h' + … passes dĥ straight to h'.
            let mut dhp = dhhat.clone();
            let mut dctx = vec![0.0; n * wv];
            for i in 0..n {
                let ci = &fwd.ctx[(tb * n + i) * wv..(tb * n + i + 1) * wv];
                for e in 0..h {
                    let idx = (tb * n + i) * h + e;
                    let (to, gm) = (fwd.tanh_o[idx], fwd.gamma[idx]);
                    let keep = factor(
                        seed,
                        step,
                        DROPOUT_COMM,
                        ((b * n + i) * h + e) as u32,
                        p_drop,
                    );
                    let d_fc = dhhat[i * h + e] * gm * (1.0 - to * to) * keep;
                    let d_gate = dhhat[i * h + e] * to * gm * (1.0 - gm);
                    g.comm_fc_b[e] += d_fc;
                    g.comm_gate_b[e] += d_gate;
                    for c in 0..wv {
                        g.comm_fc_w[c * h + e] += ci[c] * d_fc;
                        g.comm_gate_w[c * h + e] += ci[c] * d_gate;
                        dctx[i * wv + c] +=
                            d_fc * p.comm_fc_w[c * h + e] + d_gate * p.comm_gate_w[c * h + e];
                    }
                }
            }
            let mut dcq = vec![0.0; n * wk];
            let mut dck = vec![0.0; n * wk];
            let mut dcv = vec![0.0; n * wv];
            for m in 0..hc {
                for i in 0..n {
                    let pr = |j: usize| fwd.probs[((tb * hc + m) * n + i) * n + j];
                    let dp: Vec<f64> = (0..n)
                        .map(|j| {
                            (0..dvc)
                                .map(|c| {
                                    dctx[i * wv + m * dvc + c]
                                        * fwd.cv[(tb * n + j) * wv + m * dvc + c]
                                })
                                .sum()
                        })
                        .collect();
                    let row: f64 = (0..n).map(|j| pr(j) * dp[j]).sum();
                    for j in 0..n {
                        for c in 0..dvc {
                            dcv[j * wv + m * dvc + c] += pr(j) * dctx[i * wv + m * dvc + c];
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
                    // blocked_grad: nothing reaches an inactive mechanism through communication.
                    dhp[j * h + r] += mask[j] * dhc;
                }
            }
            dh_prime[tb * nh..(tb + 1) * nh].copy_from_slice(&dhp);

            // 5. The cells.
            for j in 0..n {
                let w = cell_weights(p, &dm, j);
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
                    bx: &mut g.rnn_bx[j * gh..(j + 1) * gh],
                    bh: &mut g.rnn_bh[j * gh..(j + 1) * gh],
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

            // 4-1. Input attention (the mask is a constant).
            let mut dkx = vec![0.0; wq];
            let mut dvx = vec![0.0; a];
            for i in 0..n {
                for e in 0..hin {
                    let al = fwd.alpha[(tb * n + i) * hin + e];
                    let mut dal = 0.0;
                    for c in 0..dvin {
                        let col = e * dvin + c;
                        let index = ((b * n + i) * a + col) as u32;
                        let dup = du[(tb * n + i) * a + col]
                            * factor(seed, step, DROPOUT_U, index, p_drop);
                        dal += dup * fwd.v[tb * a + col];
                        dvx[col] += dup * al;
                    }
                    let ds = dal * al * (1.0 - al) * inv_dk;
                    for c in 0..dk {
                        let col = e * dk + c;
                        let dqv = ds * fwd.k[tb * wq + col];
                        dkx[col] += ds * fwd.q[(tb * n + i) * wq + col];
                        for r in 0..h {
                            let wi = (i * h + r) * wq + col;
                            g.in_q[wi] += hr[i * h + r] * dqv;
                            dh_prev[b * nh + i * h + r] += dqv * p.in_q[wi];
                        }
                    }
                }
            }
            for e in 0..d {
                for col in 0..wq {
                    g.in_k_w[e * wq + col] += xr[e] * dkx[col];
                    dx[tb * d + e] += dkx[col] * p.in_k_w[e * wq + col];
                }
                for col in 0..a {
                    g.in_v_w[e * a + col] += xr[e] * dvx[col];
                    dx[tb * d + e] += dvx[col] * p.in_v_w[e * a + col];
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
