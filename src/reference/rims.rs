//! f64 oracle for the whole RIMs cell over a sequence, forward and backward
//! (`docs/spec.md` §1 variant A, generalised to h_in input heads, and §5).
//!
//! One step t (dropout step index `step0 + t`, probability `cfg.dropout`), for each row b:
//! Each family's own maths is its file's, at the seams of the engine's ops: steps 1-4 are
//! `reference::input_attention`, 5 `reference::cell` (through `reference::recurrent`), the
//! attention of 6 `reference::communication`, the rest of 6 and 7 `reference::merge`; this file
//! adds the products between them and runs the sequence.
//!
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

use crate::reference::dropout::factor;
use crate::reference::{communication, input_attention, merge};
use crate::spec::cell::{CellKind, RimsConfig};

pub use crate::reference::input_attention::{DROPOUT_U, top_k_mask};
pub use crate::reference::merge::DROPOUT_COMM;

mod backward;
pub(super) mod params;
pub(super) mod shared;

use shared::{
    CellParams, Cells, Dims, before, cells_forward, check_inputs, projections_forward, row_times,
};

pub use backward::backward;
pub use params::RimsParams;

/// The cells' weights, biases included.
fn cell_params(p: &RimsParams) -> CellParams<'_> {
    CellParams {
        wx: &p.rnn_wx,
        wh: &p.rnn_wh,
        bias: Some((&p.rnn_bx, &p.rnn_bh)),
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
    let dm = Dims::of(cfg, batch);
    let shapes = RimsParams::shapes(cfg);
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
        d,
        hin,
        a,
        gh,
        hc,
        wq,
        wk,
        wv,
        ..
    } = dm;
    let lstm = cfg.cell == CellKind::Lstm;
    let nh = n * h;
    let st = dm.state();
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
    let (ia_sizes, comm_sizes) = (dm.input_attention(), dm.communication());
    let cell_p = cell_params(p);
    for t in 0..t_len {
        let step = step0.wrapping_add(t as u32);
        let (h_prev, c_prev) = before(lstm, t, st, (h0, c0), (&f.h, &f.c));
        let (h_prev, c_prev) = (h_prev.to_vec(), c_prev.to_vec());
        for b in 0..bsz {
            let tb = t * bsz + b;
            let xr = &x[tb * d..(tb + 1) * d];
            let hr = &h_prev[b * nh..(b + 1) * nh];

            // 1-4. The input's key and value (products), then the input attention.
            let k = row_times(xr, &p.in_k_w, wq);
            let v = row_times(xr, &p.in_v_w, a);
            let over = mask_override.map(|m| &m[tb * n..(tb + 1) * n]);
            let keep_u = |x: usize| factor(seed, step, DROPOUT_U, (b * n * a + x) as u32, p_drop);
            let ia =
                input_attention::forward(&ia_sizes, &p.in_q, hr, &k, &v, cfg.active, over, keep_u);
            f.k[tb * wq..(tb + 1) * wq].copy_from_slice(&k);
            f.v[tb * a..(tb + 1) * a].copy_from_slice(&v);
            f.q[tb * n * wq..(tb + 1) * n * wq].copy_from_slice(&ia.q);
            f.scores[tb * n * hin..(tb + 1) * n * hin].copy_from_slice(&ia.scores);
            f.alpha[tb * n * hin..(tb + 1) * n * hin].copy_from_slice(&ia.alpha);
            f.ranking[tb * n..(tb + 1) * n].copy_from_slice(&ia.ranking);
            f.masks[tb * n..(tb + 1) * n].copy_from_slice(&ia.mask);
            f.u[tb * n * a..(tb + 1) * n * a].copy_from_slice(&ia.u);
            let mask = ia.mask;

            // 5. Every mechanism's cell.
            let out = Cells {
                gates: &mut f.gates,
                ghn: &mut f.ghn,
                c_prime: &mut f.c_prime,
                h_prime: &mut f.h_prime,
            };
            cells_forward(cfg, &dm, &cell_p, (tb, b), &f.u, hr, &c_prev, out);

            // 6. Communication: the projections, then the attention.
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
            let att = communication::forward(
                &comm_sizes,
                &f.cq[tb * n * wk..(tb + 1) * n * wk],
                &f.ck[tb * n * wk..(tb + 1) * n * wk],
                &f.cv[tb * n * wv..(tb + 1) * n * wv],
            );
            f.probs[tb * hc * n * n..(tb + 1) * hc * n * n].copy_from_slice(&att.probs);
            f.ctx[tb * n * wv..(tb + 1) * n * wv].copy_from_slice(&att.ctx);

            // 6-7. The output's and gate's products, then the residual and merge.
            let (mut o, mut gate) = (vec![0.0; nh], vec![0.0; nh]);
            for i in 0..n {
                let ci = &att.ctx[i * wv..(i + 1) * wv];
                for e in 0..h {
                    o[i * h + e] = p.comm_fc_b[e]
                        + (0..wv).map(|c| ci[c] * p.comm_fc_w[c * h + e]).sum::<f64>();
                    gate[i * h + e] = p.comm_gate_b[e]
                        + (0..wv)
                            .map(|c| ci[c] * p.comm_gate_w[c * h + e])
                            .sum::<f64>();
                }
            }
            let rows = tb * nh..(tb + 1) * nh;
            let cells = lstm.then(|| (&f.c_prime[rows.clone()], &c_prev[b * nh..(b + 1) * nh]));
            let keep_o = |x: usize| factor(seed, step, DROPOUT_COMM, (b * nh + x) as u32, p_drop);
            let mg = merge::forward(
                &o,
                &gate,
                &f.h_prime[rows.clone()],
                &mask,
                hr,
                cells,
                keep_o,
            );
            f.tanh_o[rows.clone()].copy_from_slice(&mg.tanh_o);
            f.gamma[rows.clone()].copy_from_slice(&mg.gamma);
            f.h_hat[rows.clone()].copy_from_slice(&mg.h_hat);
            f.h[rows.clone()].copy_from_slice(&mg.h);
            if lstm {
                f.c[rows].copy_from_slice(&mg.c);
            }
        }
    }
    f
}
