//! The pseudo-gradient of `reference::rims_dido` (the module's docs give the maths).

// Index loops spell out the formulas; they are the point of this file.
#![allow(clippy::needless_range_loop)]

use super::RimsConfig;
use super::{DROPOUT_COMM_PROBS, DROPOUT_IN_PROBS, DidoParams, Forward, Gradients, cell_params};
use crate::reference::dropout::factor;
use crate::reference::rims::shared::{
    CellParamGrads, CellsSaved, Dims, backward_steps, cells_backward, input_products_backward,
    projections_backward, queries_backward,
};
use crate::reference::{communication, input_attention, merge};

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
    let dm = Dims::of(cfg, fwd.batch);
    let Dims {
        n,
        h,
        d,
        a,
        hc,
        wq,
        wvin,
        wk,
        wv,
        ..
    } = dm;
    let pd = cfg.dropout;
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

            // 8-7. The merge and plain residual: ĥ = h' + ctx·W_out passes dĥ to h' and to o.
            let mg = merge::backward_dido(mask, &r.dht, r.dct);
            out.add_copy_path(b, &mg);
            let mut dhp = mg.dh_prime;
            let mut dctx = vec![0.0; n * wv];
            for i in 0..n {
                let ci = &fwd.ctx[(tb * n + i) * wv..(tb * n + i + 1) * wv];
                for c in 0..wv {
                    for e in 0..h {
                        let wi = (i * wv + c) * h + e;
                        g.comm_out_w[wi] += ci[c] * mg.d_o[i * h + e];
                        dctx[i * wv + c] += mg.d_o[i * h + e] * p.comm_out_w[wi];
                    }
                }
            }

            // 7. The attention (P̃ = P·m_i·dropout), then the projections' products.
            let keep_p = |x: usize| {
                let index = (b * hc * n * n + x) as u32;
                factor(seed, step, DROPOUT_COMM_PROBS, index, pd)
            };
            let cg = communication::backward_dido(
                &comm_sizes,
                &fwd.cq[tb * n * wk..(tb + 1) * n * wk],
                &fwd.ck[tb * n * wk..(tb + 1) * n * wk],
                &fwd.cv[tb * n * wv..(tb + 1) * n * wv],
                &fwd.probs[tb * hc * n * n..(tb + 1) * hc * n * n],
                mask,
                &dctx,
                keep_p,
            );
            let weights = (&p.comm_q[..], &p.comm_k[..], &p.comm_v[..]);
            let grads = (&mut g.comm_q[..], &mut g.comm_k[..], &mut g.comm_v[..]);
            projections_backward(&dm, tb, mask, &fwd.comm_in, &cg, weights, grads, &mut dhp);
            out.dh_prime[tb * n * h..(tb + 1) * n * h].copy_from_slice(&dhp);

            // 6. The cells (no biases).
            let mut cell_g = CellParamGrads {
                wx: &mut g.rnn_wx,
                wh: &mut g.rnn_wh,
                bias: None,
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

            // 5-1. Input attention (the mask is a constant), then the products of the queries
            // and of the input's key and value.
            let keep_in =
                |x: usize| factor(seed, step, DROPOUT_IN_PROBS, (b * n * 2 + x) as u32, pd);
            let ig = input_attention::backward_dido(
                &ia_sizes,
                (&fwd.k[tb * wq..(tb + 1) * wq], &p.in_k_b),
                (&fwd.v[tb * wvin..(tb + 1) * wvin], &p.in_v_b),
                &fwd.q[tb * n * wq..(tb + 1) * n * wq],
                &fwd.alpha[tb * n..(tb + 1) * n],
                mask,
                &out.du[tb * n * a..(tb + 1) * n * a],
                keep_in,
            );
            queries_backward(
                &dm,
                b,
                r.hr,
                &ig.dq,
                (&p.in_q, &mut g.in_q),
                &mut out.dh_prev,
            );
            for col in 0..wq {
                g.in_k_b[col] += ig.dk[col] + ig.dk_null[col];
            }
            for col in 0..wvin {
                g.in_v_b[col] += ig.dv[col] + ig.dv_null[col];
            }
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
