//! The pseudo-gradient of `reference::rims_dido` (the module's docs give the maths).

// Index loops spell out the formulas; they are the point of this file.
#![allow(clippy::needless_range_loop)]

use super::{CellKind, RimsConfig};
use super::{DROPOUT_COMM_PROBS, DROPOUT_IN_PROBS, DidoParams, Forward, Gradients, cell_params};
use crate::reference::dropout::factor;
use crate::reference::rims::shared::{
    CellParamGrads, CellsSaved, Dims, before, cells_backward, input_products_backward,
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
    let (t_len, batch) = (fwd.t_len, fwd.batch);
    let dm = Dims::of(cfg, batch);
    let Dims {
        b: bsz,
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
    let lstm = cfg.cell == CellKind::Lstm;
    let nh = n * h;
    let st = bsz * nh;
    assert_eq!(dh.len(), t_len * st, "dh");
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
    let mut dx = vec![0.0; t_len * bsz * d];
    let mut du = vec![0.0; t_len * bsz * n * a];
    let mut dh_prime = vec![0.0; t_len * st];
    let mut dh_carry = vec![0.0; st];
    let mut dc_carry = match (lstm, dc_last) {
        (true, Some(dc)) => dc.to_vec(),
        (true, None) => vec![0.0; st],
        (false, _) => Vec::new(),
    };

    for t in (0..t_len).rev() {
        let step = step0.wrapping_add(t as u32);
        let (h_prev, c_prev) = before(lstm, t, st, (h0, c0), (&fwd.h, &fwd.c));
        let mut dh_prev = vec![0.0; st];
        let mut dc_prev = vec![0.0; if lstm { st } else { 0 }];
        for b in 0..bsz {
            let tb = t * bsz + b;
            let xr = &x[tb * d..(tb + 1) * d];
            let hr = &h_prev[b * nh..(b + 1) * nh];
            let mask = &fwd.masks[tb * n..(tb + 1) * n];

            // 8-7. The merge and plain residual: ĥ = h' + ctx·W_out passes dĥ to h' and to o.
            let dht: Vec<f64> = (0..nh)
                .map(|e| dh[tb * nh + e] + dh_carry[b * nh + e])
                .collect();
            let dct = lstm.then(|| &dc_carry[b * nh..(b + 1) * nh]);
            let mg = merge::backward_dido(mask, &dht, dct);
            for x in 0..nh {
                dh_prev[b * nh + x] += mg.dh_prev[x];
                if lstm {
                    dc_prev[b * nh + x] += mg.dc_prev[x];
                }
            }
            let dcp = mg.dc_prime;
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
            dh_prime[tb * nh..(tb + 1) * nh].copy_from_slice(&dhp);

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
                (hr, c_prev),
                (&dhp, &dcp),
                &mut du,
                (&mut dh_prev, &mut dc_prev),
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
                &du[tb * n * a..(tb + 1) * n * a],
                keep_in,
            );
            queries_backward(&dm, b, hr, &ig.dq, (&p.in_q, &mut g.in_q), &mut dh_prev);
            for col in 0..wq {
                g.in_k_b[col] += ig.dk[col] + ig.dk_null[col];
            }
            for col in 0..wvin {
                g.in_v_b[col] += ig.dv[col] + ig.dv_null[col];
            }
            input_products_backward(
                xr,
                (&ig.dk, &ig.dv),
                (&p.in_k_w, &p.in_v_w),
                (&mut g.in_k_w, &mut g.in_v_w),
                &mut dx[tb * d..(tb + 1) * d],
            );
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
