//! The pseudo-gradient of variant A's whole cell over a sequence (see `reference::rims`).

// Index loops spell out the formulas; they are the point of this file.
#![allow(clippy::needless_range_loop)]

use super::shared::{
    CellParamGrads, CellsSaved, Dims, backward_steps, cells_backward, input_products_backward,
    projections_backward, queries_backward,
};
use super::{DROPOUT_COMM, DROPOUT_U, Forward, Gradients, RimsConfig, RimsParams, cell_params};
use crate::reference::dropout::factor;
use crate::reference::{communication, input_attention, merge};

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
    let dm = Dims::of(cfg, fwd.batch);
    let Dims {
        n,
        h,
        d,
        hin,
        a,
        hc,
        wq,
        wk,
        wv,
        ..
    } = dm;
    let nh = n * h;
    let p_drop = cfg.dropout;
    let (ia_sizes, comm_sizes) = (dm.input_attention(), dm.communication());
    let cell_p = cell_params(p);
    let saved = CellsSaved {
        gates: &fwd.gates,
        ghn: &fwd.ghn,
        c_prime: &fwd.c_prime,
        u: &fwd.u,
    };
    let mut g = p.zeros_like();
    let states = (&fwd.h[..], &fwd.c[..], &fwd.masks[..]);
    let seq = backward_steps(
        cfg,
        &dm,
        fwd.t_len,
        (x, h0, c0),
        states,
        (dh, dc_last),
        step0,
        |r, out| {
            let (b, tb, step, mask) = (r.b, r.tb, r.step, r.mask);

            // 7-6. The merge and residual, then the output's and gate's products.
            let rows = tb * nh..(tb + 1) * nh;
            let keep_o = |x: usize| factor(seed, step, DROPOUT_COMM, (b * nh + x) as u32, p_drop);
            let (tanh_o, gamma) = (&fwd.tanh_o[rows.clone()], &fwd.gamma[rows]);
            let mg = merge::backward(tanh_o, gamma, mask, &r.dht, r.dct, keep_o);
            out.add_copy_path(b, &mg);
            // The residual ĥ = h' + … passes dĥ straight to h'.
            let mut dhp = mg.dh_prime;
            let mut dctx = vec![0.0; n * wv];
            for i in 0..n {
                let ci = &fwd.ctx[(tb * n + i) * wv..(tb * n + i + 1) * wv];
                for e in 0..h {
                    let (d_fc, d_gate) = (mg.d_o[i * h + e], mg.d_gate[i * h + e]);
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

            // 6. The attention, then the projections' products.
            let cg = communication::backward(
                &comm_sizes,
                &fwd.cq[tb * n * wk..(tb + 1) * n * wk],
                &fwd.ck[tb * n * wk..(tb + 1) * n * wk],
                &fwd.cv[tb * n * wv..(tb + 1) * n * wv],
                &fwd.probs[tb * hc * n * n..(tb + 1) * hc * n * n],
                &dctx,
            );
            let weights = (&p.comm_q[..], &p.comm_k[..], &p.comm_v[..]);
            let grads = (&mut g.comm_q[..], &mut g.comm_k[..], &mut g.comm_v[..]);
            projections_backward(&dm, tb, mask, &fwd.comm_in, &cg, weights, grads, &mut dhp);
            out.dh_prime[tb * nh..(tb + 1) * nh].copy_from_slice(&dhp);

            // 5. The cells.
            let mut cell_g = CellParamGrads {
                wx: &mut g.rnn_wx,
                wh: &mut g.rnn_wh,
                bias: Some((&mut g.rnn_bx, &mut g.rnn_bh)),
            };
            cells_backward(
                cfg,
                &dm,
                &cell_p,
                &mut cell_g,
                (tb, b),
                &saved,
                (r.hr, r.c_prev),
                (&dhp, &mg.dc_prime),
                &mut out.du,
                (&mut out.dh_prev, &mut out.dc_prev),
            );

            // 4-1. Input attention (the mask is a constant), then the queries' product.
            let keep_u = |x: usize| factor(seed, step, DROPOUT_U, (b * n * a + x) as u32, p_drop);
            let ig = input_attention::backward(
                &ia_sizes,
                &fwd.k[tb * wq..(tb + 1) * wq],
                &fwd.v[tb * a..(tb + 1) * a],
                &fwd.q[tb * n * wq..(tb + 1) * n * wq],
                &fwd.alpha[tb * n * hin..(tb + 1) * n * hin],
                mask,
                &out.du[tb * n * a..(tb + 1) * n * a],
                keep_u,
            );
            queries_backward(
                &dm,
                b,
                r.hr,
                &ig.dq,
                (&p.in_q, &mut g.in_q),
                &mut out.dh_prev,
            );
            input_products_backward(
                r.xr,
                (&ig.dk, &ig.dv),
                (&p.in_k_w, &p.in_v_w),
                (&mut g.in_k_w, &mut g.in_v_w),
                &mut out.dx[tb * d..(tb + 1) * d],
            );
        },
    );
    Gradients {
        params: g,
        dx: seq.dx,
        dh0: seq.dh0,
        dc0: seq.dc0,
        du: seq.du,
        dh_prime: seq.dh_prime,
    }
}
