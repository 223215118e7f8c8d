//! The pseudo-gradient of variant A's whole cell over a sequence (see `reference::rims`).

// Index loops spell out the formulas; they are the point of this file.
#![allow(clippy::needless_range_loop)]

use super::shared::{
    CellParamGrads, CellsSaved, Dims, before, cells_backward, input_products_backward,
    projections_backward, queries_backward,
};
use super::{
    CellKind, DROPOUT_COMM, DROPOUT_U, Forward, Gradients, RimsConfig, RimsParams, cell_params,
};
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
    let (t_len, batch) = (fwd.t_len, fwd.batch);
    let dm = Dims::of(cfg, batch);
    let Dims {
        b: bsz,
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
    let lstm = cfg.cell == CellKind::Lstm;
    let nh = n * h;
    let st = dm.state();
    assert_eq!(dh.len(), t_len * st, "dh");
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
        let (h_prev, c_prev) = before(lstm, t, st, (h0, c0), (&fwd.h, &fwd.c));
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

            // 7-6. The merge and residual, then the output's and gate's products.
            let rows = tb * nh..(tb + 1) * nh;
            let keep_o = |x: usize| factor(seed, step, DROPOUT_COMM, (b * nh + x) as u32, p_drop);
            let dct = lstm.then(|| &dc_carry[b * nh..(b + 1) * nh]);
            let mg = merge::backward(
                &fwd.tanh_o[rows.clone()],
                &fwd.gamma[rows],
                mask,
                &dht,
                dct,
                keep_o,
            );
            for x in 0..nh {
                dh_prev[b * nh + x] += mg.dh_prev[x];
                if lstm {
                    dc_prev[b * nh + x] += mg.dc_prev[x];
                }
            }
            let dcp = mg.dc_prime;
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
            dh_prime[tb * nh..(tb + 1) * nh].copy_from_slice(&dhp);

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
                (hr, c_prev),
                (&dhp, &dcp),
                &mut du,
                (&mut dh_prev, &mut dc_prev),
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
                &du[tb * n * a..(tb + 1) * n * a],
                keep_u,
            );
            queries_backward(&dm, b, hr, &ig.dq, (&p.in_q, &mut g.in_q), &mut dh_prev);
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
