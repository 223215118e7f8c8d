//! f64 oracle for the RIMs cell in dido1998's variant ("variant D", `docs/spec.md` §3) over a
//! sequence, forward and backward. The shape of [`super::rims`] (variant A), with D's maths.
//! Each family's own maths is its file's: steps 2-5 are `reference::input_attention`'s
//! `forward_dido`, the attention of 7 `reference::communication::forward_dido`, the residual
//! and 8 `reference::merge::forward_dido`; this file adds the products between them.
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

use crate::reference::dropout::factor;
use crate::reference::rims::shared::{
    CellParams, Cells, Dims, before, cells_forward, check_inputs, projections_forward, row_times,
};
use crate::reference::{communication, input_attention, merge};
use crate::spec::cell::{CellKind, RimsConfig};

mod backward;
mod params;

pub use backward::backward;
pub use params::DidoParams;

pub use crate::reference::communication::DROPOUT_PROBS as DROPOUT_COMM_PROBS;
pub use crate::reference::input_attention::DROPOUT_PROBS as DROPOUT_IN_PROBS;

/// The cells' weights; D's cells have no biases.
fn cell_params(p: &DidoParams) -> CellParams<'_> {
    CellParams {
        wx: &p.rnn_wx,
        wh: &p.rnn_wh,
        bias: None,
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
    let dm = Dims::of(cfg, batch);
    let shapes = DidoParams::shapes(cfg);
    let len = |name: &str| p.get(name).map(<[f64]>::len);
    check_inputs(
        cfg,
        &dm,
        t_len,
        (x, h0, c0),
        mask_override,
        frozen,
        shapes,
        len,
    );
    let Dims {
        b: bsz,
        n,
        h,
        a,
        gh,
        hc,
        wq,
        wvin,
        wk,
        wv,
        ..
    } = dm;
    let lstm = cfg.cell == CellKind::Lstm;
    let nh = n * h;
    let st = dm.state();
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
    let (ia_sizes, comm_sizes) = (dm.input_attention(), dm.communication());
    let cell_p = cell_params(p);
    for t in 0..t_len {
        let step = step0.wrapping_add(t as u32);
        let (h_prev, c_prev) = before(lstm, t, st, (h0, c0), (&f.h, &f.c));
        let (h_prev, c_prev) = (h_prev.to_vec(), c_prev.to_vec());
        for b in 0..bsz {
            let tb = t * bsz + b;
            let xr = &x[tb * dm.d..(tb + 1) * dm.d];
            let hr = &h_prev[b * nh..(b + 1) * nh];

            // 1. Keys and values of the input (biased products), then 2-5, the input attention.
            let kx = biased(xr, &p.in_k_w, &p.in_k_b);
            let vx = biased(xr, &p.in_v_w, &p.in_v_b);
            let over = mask_override.map(|m| &m[tb * n..(tb + 1) * n]);
            let keep_in =
                |x: usize| factor(seed, step, DROPOUT_IN_PROBS, (b * n * 2 + x) as u32, pd);
            let ia = input_attention::forward_dido(
                &ia_sizes,
                &p.in_q,
                hr,
                (&kx, &p.in_k_b),
                (&vx, &p.in_v_b),
                cfg.active,
                over,
                keep_in,
            );
            f.k[tb * wq..(tb + 1) * wq].copy_from_slice(&kx);
            f.v[tb * wvin..(tb + 1) * wvin].copy_from_slice(&vx);
            f.q[tb * n * wq..(tb + 1) * n * wq].copy_from_slice(&ia.q);
            f.score_x[tb * n..(tb + 1) * n].copy_from_slice(&ia.score_x);
            f.score_null[tb * n..(tb + 1) * n].copy_from_slice(&ia.score_null);
            f.alpha[tb * n..(tb + 1) * n].copy_from_slice(&ia.alpha);
            f.masks[tb * n..(tb + 1) * n].copy_from_slice(&ia.mask);
            f.u[tb * n * a..(tb + 1) * n * a].copy_from_slice(&ia.u);
            let mask = ia.mask;

            // 6. Every mechanism's cell.
            let out = Cells {
                gates: &mut f.gates,
                ghn: &mut f.ghn,
                c_prime: &mut f.c_prime,
                h_prime: &mut f.h_prime,
            };
            cells_forward(cfg, &dm, &cell_p, (tb, b), &f.u, hr, &c_prev, out);

            // 7. Communication: the projections, then the attention (P̃ = P·m_i·dropout).
            let weights = (&p.comm_q[..], &p.comm_k[..], &p.comm_v[..]);
            let qkv = (&mut f.cq[..], &mut f.ck[..], &mut f.cv[..]);
            projections_forward(
                &dm,
                tb,
                &mask,
                frozen,
                &f.h_prime,
                &mut f.comm_in,
                weights,
                qkv,
            );
            let keep_p = |x: usize| {
                let index = (b * hc * n * n + x) as u32;
                factor(seed, step, DROPOUT_COMM_PROBS, index, pd)
            };
            let att = communication::forward_dido(
                &comm_sizes,
                &f.cq[tb * n * wk..(tb + 1) * n * wk],
                &f.ck[tb * n * wk..(tb + 1) * n * wk],
                &f.cv[tb * n * wv..(tb + 1) * n * wv],
                &mask,
                keep_p,
            );
            let probs = tb * hc * n * n..(tb + 1) * hc * n * n;
            f.probs[probs.clone()].copy_from_slice(&att.probs);
            f.probs_used[probs].copy_from_slice(&att.probs_used);
            f.ctx[tb * n * wv..(tb + 1) * n * wv].copy_from_slice(&att.ctx);

            // 7-8. The output's product, then the plain residual and the merge.
            let mut o = vec![0.0; nh];
            for i in 0..n {
                let ci = &att.ctx[i * wv..(i + 1) * wv];
                for e in 0..h {
                    o[i * h + e] = (0..wv)
                        .map(|c| ci[c] * p.comm_out_w[(i * wv + c) * h + e])
                        .sum();
                }
            }
            let rows = tb * nh..(tb + 1) * nh;
            let cells = lstm.then(|| (&f.c_prime[rows.clone()], &c_prev[b * nh..(b + 1) * nh]));
            let mg = merge::forward_dido(&o, &f.h_prime[rows.clone()], &mask, hr, cells);
            f.h_hat[rows.clone()].copy_from_slice(&mg.h_hat);
            f.h[rows.clone()].copy_from_slice(&mg.h);
            if lstm {
                f.c[rows].copy_from_slice(&mg.c);
            }
        }
    }
    f
}

/// x·w + b for one row: x [in], w [in, out], b [out].
fn biased(x: &[f64], w: &[f64], b: &[f64]) -> Vec<f64> {
    let xw = row_times(x, w, b.len());
    (0..b.len()).map(|col| b[col] + xw[col]).collect()
}
