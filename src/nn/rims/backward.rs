//! The backward of the variant-A sequence node (the step order is in `nn::rims`'s docs).

use super::forward::{Dims, Offsets, Saved};
use super::{RimsOptions, StateVars, grouped, mv};
use crate::device::Context;
use crate::error::Result;
use crate::nn::config::{CellKind, RimsConfig};
use crate::ops::input_attention::{self, Dropout};
use crate::ops::matmul::{self, Gemm};
use crate::ops::{cell, communication, merge};
use crate::tape::{Backward, Grads, Var};
use crate::tensor::Tensor;

/// The tape node of a whole sequence.
pub(super) struct RimsNode {
    pub(super) cfg: RimsConfig,
    pub(super) dm: Dims,
    pub(super) off: Offsets,
    pub(super) x: Var,
    /// Where dL/dh_0 and dL/dc_0 go.
    pub(super) state_vars: StateVars,
    pub(super) saved: Saved,
    pub(super) store_values: Tensor,
    pub(super) store_grads: Tensor,
    pub(super) opts: RimsOptions,
}

impl Backward for RimsNode {
    fn backward(self: Box<Self>, ctx: &Context, g: Tensor, grads: &mut Grads) -> Result<()> {
        let RimsNode {
            cfg,
            dm,
            off,
            x,
            state_vars,
            saved: s,
            store_values: pv,
            store_grads: pg,
            opts,
        } = *self;
        let (t_len, b, n, h) = (dm.t, dm.b, dm.n, dm.h);
        let nh = dm.nh();
        let lstm = cfg.cell == CellKind::Lstm;
        let zeros = |shape: &[usize]| Tensor::zeros(ctx, shape);
        let un = |shape: &[usize]| Tensor::uninit(ctx, shape);
        let dh = zeros(&[b, nh])?;
        let dc = zeros(&[b, nh])?;
        // The merge's gradients into h' and c', then communication's into h' (plane 2).
        let dres = un(&[3, b, n, h])?;
        let dhpc_at = 2 * b * n * h;
        let du = un(&[b, n, dm.a])?;
        let dctx = un(&[b, n, dm.wv])?;
        let ds = un(&[b, dm.hc, n, n])?;
        let dog = un(&[t_len, b * n, 2, h])?;
        let dqkv = zeros(&[3, t_len, b, n, dm.w])?;
        // Gate gradients: dzx, and dzh where it differs (GRU); for LSTM they are equal.
        let dzx = un(&[t_len, b, n, dm.gh])?;
        let dzh_own = if lstm {
            None
        } else {
            Some(un(&[t_len, b, n, dm.gh])?)
        };
        let dzh = dzh_own.as_ref().unwrap_or(&dzx);
        let dq = un(&[t_len, b, n, dm.wq])?;
        let dkv = un(&[t_len, b, dm.kvw()])?;
        let p = if opts.training { cfg.dropout } else { 0.0 };
        let cell_dims = cell::Dims {
            batch: b,
            units: n,
            hidden: h,
        };
        let carry = if lstm { &dc } else { &dh };

        for t in (0..t_len).rev() {
            let drop = Dropout {
                seed: opts.seed,
                step: opts.step0.wrapping_add(t as u32),
                p,
            };
            let mb = merge::Backward {
                residual: merge::Residual::Gated,
                mask: &s.mask,
                dh_out: &g,
                tg: &s.tg,
                dh: &dh,
                dc: &dc,
                dres: &dres,
                dog: &dog,
            };
            merge::backward(ctx, cfg.cell, b, n, h, t, drop, &mb)?;
            // dctx = do·W_fcᵀ + dg·W_gᵀ.
            for (j, w) in [off.fc_w, off.gate_w].into_iter().enumerate() {
                let gm = Gemm {
                    batch: 1,
                    inner: 1,
                    m: b * n,
                    n: dm.wv,
                    k: h,
                    a: mv(t * b * n * 2 * h + j * h, 0, 2 * h, 1),
                    b: mv(w, 0, h, 1).t(),
                    c: mv(0, 0, dm.wv, 1),
                    bias: None,
                    accumulate: j == 1,
                };
                matmul::gemm(ctx, &gm, &dog, &pv, None, &dctx)?;
            }
            communication::backward(
                ctx,
                &cfg.communication_sizes(),
                b,
                t_len,
                t,
                &s.qkv,
                &s.probs,
                &dctx,
                &ds,
                &dqkv,
                None,
            )?;
            // Communication's gradient into h': Σ over Q, K, V of dP·W_Pᵀ, per mechanism.
            for (sidx, width) in [(0, dm.wk), (1, dm.wk), (2, dm.wv)] {
                grouped(
                    ctx,
                    b,
                    n,
                    width,
                    h,
                    (
                        &dqkv,
                        mv(sidx * dm.qkv_plane() + t * b * n * dm.w, dm.w, n * dm.w, 1),
                    ),
                    (&pv, mv(off.comm[sidx], h * width, width, 1).t()),
                    (&dres, mv(dhpc_at, h, nh, 1)),
                    None,
                    sidx > 0,
                    1,
                )?;
            }
            let cb = cell::Backward {
                zh: &s.zh,
                hs: &s.hs,
                cs: &s.cs,
                act: &s.act,
                cp: &s.cp,
                mask: &s.mask,
                dres: &dres,
                dzx: &dzx,
                dzh,
                carry,
            };
            cell::backward(ctx, cfg.cell, cell_dims, t, &cb)?;
            let step_g = t * b * n * dm.gh;
            // du = dzx·W_xᵀ; dh_{t-1} += dzh·W_hᵀ.
            grouped(
                ctx,
                b,
                n,
                dm.gh,
                dm.a,
                (&dzx, mv(step_g, dm.gh, n * dm.gh, 1)),
                (&pv, mv(off.rnn_wx, dm.a * dm.gh, dm.gh, 1).t()),
                (&du, mv(0, dm.a, n * dm.a, 1)),
                None,
                false,
                1,
            )?;
            grouped(
                ctx,
                b,
                n,
                dm.gh,
                h,
                (dzh, mv(step_g, dm.gh, n * dm.gh, 1)),
                (&pv, mv(off.rnn_wh, h * dm.gh, dm.gh, 1).t()),
                (&dh, mv(0, h, nh, 1)),
                None,
                true,
                1,
            )?;
            let ib = input_attention::Backward {
                kv: &s.kv,
                du: &du,
                q: &s.q,
                alpha: &s.alpha,
                mask: &s.mask,
                dq: &dq,
                dkv: &dkv,
            };
            input_attention::backward(ctx, &cfg.input_attention_sizes(), b, t, drop, &ib)?;
            // dh_{t-1} += dq·W_qᵀ.
            grouped(
                ctx,
                b,
                n,
                dm.wq,
                h,
                (&dq, mv(t * b * n * dm.wq, dm.wq, n * dm.wq, 1)),
                (&pv, mv(off.in_q, h * dm.wq, dm.wq, 1).t()),
                (&dh, mv(0, h, nh, 1)),
                None,
                true,
                1,
            )?;
        }
        let dz = [&dzx, dzh];
        weight_gradients(ctx, dm, &off, &s, &pg, dz, &dq, &dkv, &dqkv, &dog)?;
        if grads.wants(x) {
            // dx = d(k)·W_kᵀ + d(v)·W_vᵀ over all T·B rows.
            let dx = un(&[t_len, b, dm.d])?;
            let rows = t_len * b;
            grouped(
                ctx,
                rows,
                1,
                dm.wq,
                dm.d,
                (&dkv, mv(0, 0, dm.kvw(), 1)),
                (&pv, mv(off.in_k_w, 0, dm.wq, 1).t()),
                (&dx, mv(0, 0, dm.d, 1)),
                None,
                false,
                1,
            )?;
            grouped(
                ctx,
                rows,
                1,
                dm.a,
                dm.d,
                (&dkv, mv(dm.wq, 0, dm.kvw(), 1)),
                (&pv, mv(off.in_v_w, 0, dm.a, 1).t()),
                (&dx, mv(0, 0, dm.d, 1)),
                None,
                true,
                1,
            )?;
            grads.add(ctx, x, dx)?;
        }
        // After step 1 the carries hold dL/dh_0 and dL/dc_0.
        state_vars.add(ctx, grads, dh, dc)
    }
}

/// Every parameter gradient, each one product over all T·B rows (accumulated into the store).
#[allow(clippy::too_many_arguments)]
fn weight_gradients(
    ctx: &Context,
    dm: Dims,
    off: &Offsets,
    s: &Saved,
    pg: &Tensor,
    dz: [&Tensor; 2],
    dq: &Tensor,
    dkv: &Tensor,
    dqkv: &Tensor,
    dog: &Tensor,
) -> Result<()> {
    let (t_len, b, n, h) = (dm.t, dm.b, dm.n, dm.h);
    let rows = t_len * b;
    // A per-mechanism block of a [rows, N, width] buffer, transposed: (width x rows).
    let per_mech_t = |offset: usize, width: usize| mv(offset, width, 1, n * width);
    // in_q: Σ h_{t-1}ᵀ dq.
    grouped(
        ctx,
        h,
        n,
        rows,
        dm.wq,
        (&s.hs, per_mech_t(0, h)),
        (dq, mv(0, dm.wq, n * dm.wq, 1)),
        (pg, mv(off.in_q, h * dm.wq, dm.wq, 1)),
        None,
        true,
        1,
    )?;
    // in_k_w, in_v_w: xᵀ d(k | v).
    let x_t = mv(0, 0, 1, dm.d);
    grouped(
        ctx,
        dm.d,
        1,
        rows,
        dm.wq,
        (&s.x, x_t),
        (dkv, mv(0, 0, dm.kvw(), 1)),
        (pg, mv(off.in_k_w, 0, dm.wq, 1)),
        None,
        true,
        1,
    )?;
    grouped(
        ctx,
        dm.d,
        1,
        rows,
        dm.a,
        (&s.x, x_t),
        (dkv, mv(dm.wq, 0, dm.kvw(), 1)),
        (pg, mv(off.in_v_w, 0, dm.a, 1)),
        None,
        true,
        1,
    )?;
    // rnn_wx: Σ uᵀ dzx; rnn_wh: Σ h_{t-1}ᵀ dzh.
    grouped(
        ctx,
        dm.a,
        n,
        rows,
        dm.gh,
        (&s.u, per_mech_t(0, dm.a)),
        (dz[0], mv(0, dm.gh, n * dm.gh, 1)),
        (pg, mv(off.rnn_wx, dm.a * dm.gh, dm.gh, 1)),
        None,
        true,
        1,
    )?;
    grouped(
        ctx,
        h,
        n,
        rows,
        dm.gh,
        (&s.hs, per_mech_t(0, h)),
        (dz[1], mv(0, dm.gh, n * dm.gh, 1)),
        (pg, mv(off.rnn_wh, h * dm.gh, dm.gh, 1)),
        None,
        true,
        1,
    )?;
    // Biases: column sums as products with a row of ones.
    let ones = Tensor::full(ctx, &[rows * n], 1.0)?;
    for (plane, o) in [(dz[0], off.rnn_bx), (dz[1], off.rnn_bh)] {
        grouped(
            ctx,
            1,
            1,
            rows,
            n * dm.gh,
            (&ones, mv(0, 0, rows, 1)),
            (plane, mv(0, 0, n * dm.gh, 1)),
            (pg, mv(o, 0, n * dm.gh, 1)),
            None,
            true,
            1,
        )?;
    }
    // Communication projections: Σ h'ᵀ dP.
    for (sidx, width) in [(0, dm.wk), (1, dm.wk), (2, dm.wv)] {
        grouped(
            ctx,
            h,
            n,
            rows,
            width,
            (&s.hp, per_mech_t(0, h)),
            (dqkv, mv(sidx * dm.qkv_plane(), dm.w, n * dm.w, 1)),
            (pg, mv(off.comm[sidx], h * width, width, 1)),
            None,
            true,
            1,
        )?;
    }
    // Output and gate layers: Σ ctxᵀ d(o | g) over T·B·N rows, and their biases.
    let bn_rows = rows * n;
    for (j, (w, bias)) in [(off.fc_w, off.fc_b), (off.gate_w, off.gate_b)]
        .into_iter()
        .enumerate()
    {
        grouped(
            ctx,
            dm.wv,
            1,
            bn_rows,
            h,
            (&s.ctxb, mv(0, 0, 1, dm.wv)),
            (dog, mv(j * h, 0, 2 * h, 1)),
            (pg, mv(w, 0, h, 1)),
            None,
            true,
            1,
        )?;
        grouped(
            ctx,
            1,
            1,
            bn_rows,
            h,
            (&ones, mv(0, 0, bn_rows, 1)),
            (dog, mv(j * h, 0, 2 * h, 1)),
            (pg, mv(bias, 0, h, 1)),
            None,
            true,
            1,
        )?;
    }
    Ok(())
}
