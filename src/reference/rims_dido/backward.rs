//! The pseudo-gradient of `reference::rims_dido` (the module's docs give the maths).

// Index loops spell out the formulas; they are the point of this file.
#![allow(clippy::needless_range_loop)]

use super::{CellKind, RimsConfig};
use super::{
    DROPOUT_COMM_PROBS, DROPOUT_IN_PROBS, DidoParams, Dims, Forward, Gradients, cell_weights,
};
use crate::reference::dropout::factor;
use crate::reference::recurrent::{self, CellGrads, CellSaved};

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
