//! The backward of the variant-D sequence node (the step order is in `nn::rims::dido`'s docs).

use super::{Dims, Offsets, Saved, dropout};
use crate::device::Context;
use crate::error::Result;
use crate::nn::config::{CellKind, RimsConfig};
use crate::nn::rims::{RimsOptions, StateVars, grouped, mv};
use crate::ops::communication::{self, RowMask};
use crate::ops::{cell, input_attention, merge};
use crate::tape::{Backward, Grads, Var};
use crate::tensor::Tensor;

/// The tape node of a whole variant-D sequence.
pub(super) struct DidoNode {
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

impl Backward for DidoNode {
    fn backward(self: Box<Self>, ctx: &Context, g: Tensor, grads: &mut Grads) -> Result<()> {
        let DidoNode {
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
        let dhpc_at = 2 * b * nh;
        let du = un(&[b, n, dm.a])?;
        let dctx = un(&[b, n, dm.wv])?;
        let ds = un(&[b, cfg.comm_heads, n, n])?;
        let dog = un(&[t_len, b * n, h])?;
        let dqkv = zeros(&[3, t_len, b, n, dm.w])?;
        let dzx = un(&[t_len, b, n, dm.gh])?;
        let dzh_own = if lstm {
            None
        } else {
            Some(un(&[t_len, b, n, dm.gh])?)
        };
        let dzh = dzh_own.as_ref().unwrap_or(&dzx);
        let dq = un(&[t_len, b, n, dm.wq])?;
        let dkv = un(&[t_len, b, dm.dkvw()])?;
        let unused = un(&[1])?;
        let cell_dims = cell::Dims {
            batch: b,
            units: n,
            hidden: h,
        };
        let carry = if lstm { &dc } else { &dh };
        let sizes = cfg.input_attention_sizes();

        for t in (0..t_len).rev() {
            let drop = dropout(&opts, &cfg, t);
            let mb = merge::Backward {
                residual: merge::Residual::Plain,
                mask: &s.mask,
                dh_out: &g,
                tg: &unused,
                dh: &dh,
                dc: &dc,
                dres: &dres,
                dog: &dog,
            };
            merge::backward(ctx, cfg.cell, b, n, h, t, drop, &mb)?;
            // dctx_i = do_i·comm_out_w_iᵀ.
            grouped(
                ctx,
                b,
                n,
                h,
                dm.wv,
                (&dog, mv(t * b * nh, h, nh, 1)),
                (&pv, mv(off.out_w, dm.wv * h, h, 1).t()),
                (&dctx, mv(0, dm.wv, n * dm.wv, 1)),
                None,
                false,
                1,
            )?;
            let row_mask = RowMask {
                mask: &s.mask,
                dropout: drop,
            };
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
                Some(row_mask),
            )?;
            // Communication's gradient into h' (blocked for inactive mechanisms by the cell's
            // backward, which skips them).
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
            input_attention::backward_dido(ctx, &sizes, b, t, drop, &ib)?;
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
        weight_gradients(ctx, dm, &off, &s, &pg, [&dzx, dzh], &dq, &dkv, &dqkv, &dog)?;
        if grads.wants(x) {
            // dx = dk_x·W_kᵀ + dv_x·W_vᵀ over all T·B rows.
            let dx = un(&[t_len, b, dm.d])?;
            for (col, width, w, acc) in [
                (0, dm.wq, off.in_k_w, false),
                (dm.wq, dm.wvin, off.in_v_w, true),
            ] {
                grouped(
                    ctx,
                    t_len * b,
                    1,
                    width,
                    dm.d,
                    (&dkv, mv(col, 0, dm.dkvw(), 1)),
                    (&pv, mv(w, 0, width, 1).t()),
                    (&dx, mv(0, 0, dm.d, 1)),
                    None,
                    acc,
                    1,
                )?;
            }
            grads.add(ctx, x, dx)?;
        }
        // After step 1 the carries hold dL/dh_0 and dL/dc_0.
        state_vars.add(ctx, grads, dh, dc)
    }
}

/// Every parameter gradient, each one product over all T·B rows (accumulated into the store).
/// `in_k_b` gets none: its gradient is exactly zero (the two-slot softmax sees s_x − s_∅, from
/// which the key bias cancels, and the selection is detached).
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
    let x_t = mv(0, 0, 1, dm.d);
    // (rows of A, groups, A, B, C): C += A·B with k = T·B.
    let products = [
        // in_q: Σ h_{t-1}ᵀ dq.
        (
            h,
            n,
            dm.wq,
            (&s.hs, per_mech_t(0, h)),
            (dq, mv(0, dm.wq, n * dm.wq, 1)),
            mv(off.in_q, h * dm.wq, dm.wq, 1),
        ),
        // in_k_w, in_v_w: xᵀ dk_x and xᵀ dv_x.
        (
            dm.d,
            1,
            dm.wq,
            (&s.x, x_t),
            (dkv, mv(0, 0, dm.dkvw(), 1)),
            mv(off.in_k_w, 0, dm.wq, 1),
        ),
        (
            dm.d,
            1,
            dm.wvin,
            (&s.x, x_t),
            (dkv, mv(dm.wq, 0, dm.dkvw(), 1)),
            mv(off.in_v_w, 0, dm.wvin, 1),
        ),
        // rnn_wx: Σ uᵀ dzx; rnn_wh: Σ h_{t-1}ᵀ dzh.
        (
            dm.a,
            n,
            dm.gh,
            (&s.u, per_mech_t(0, dm.a)),
            (dz[0], mv(0, dm.gh, n * dm.gh, 1)),
            mv(off.rnn_wx, dm.a * dm.gh, dm.gh, 1),
        ),
        (
            h,
            n,
            dm.gh,
            (&s.hs, per_mech_t(0, h)),
            (dz[1], mv(0, dm.gh, n * dm.gh, 1)),
            mv(off.rnn_wh, h * dm.gh, dm.gh, 1),
        ),
        // comm_out_w: Σ ctx_iᵀ do_i, per mechanism.
        (
            dm.wv,
            n,
            h,
            (&s.ctxb, per_mech_t(0, dm.wv)),
            (dog, mv(0, h, n * h, 1)),
            mv(off.out_w, dm.wv * h, h, 1),
        ),
    ];
    for (m, groups, width, a, bm, c) in products {
        grouped(ctx, m, groups, rows, width, a, bm, (pg, c), None, true, 1)?;
    }
    // in_v_b: column sums of dv_x and dv_∅, as products with a row of ones.
    let ones = Tensor::full(ctx, &[rows], 1.0)?;
    for col in [dm.wq, dm.wq + dm.wvin] {
        grouped(
            ctx,
            1,
            1,
            rows,
            dm.wvin,
            (&ones, mv(0, 0, rows, 1)),
            (dkv, mv(col, 0, dm.dkvw(), 1)),
            (pg, mv(off.in_v_b, 0, dm.wvin, 1)),
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
    Ok(())
}
