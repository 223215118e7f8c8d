//! The backward of a sequence node, one loop for both variants (the step order is in
//! `nn::rims`'s docs), and the weight gradients both variants have ([`WeightGrads`]).

use super::forward::{Dims, Offsets, Saved, VariantSteps, dropout};
use super::{RimsOptions, StateVars, grouped, mv};
use crate::device::Context;
use crate::error::Result;
use crate::nn::config::{CellKind, RimsConfig};
use crate::ops::communication::{self, RowMask};
use crate::ops::{cell, input_attention, merge};
use crate::tape::{Backward, Grads, Var};
use crate::tensor::Tensor;

/// The tape node of a whole sequence in variant `V`.
pub(super) struct SequenceNode<V> {
    pub(super) cfg: RimsConfig,
    pub(super) dm: Dims,
    pub(super) off: Offsets,
    /// The variant's own parameters.
    pub(super) own: V,
    pub(super) x: Var,
    /// Where dL/dh_0 and dL/dc_0 go.
    pub(super) state_vars: StateVars,
    pub(super) saved: Saved,
    pub(super) store_values: Tensor,
    pub(super) store_grads: Tensor,
    pub(super) opts: RimsOptions,
    /// The node's outputs h_T and c_T, whose gradients start the carries.
    pub(super) finals: Finals,
}

/// The sequence node's extra outputs: the final state h_T and (LSTM) c_T.
pub(super) struct Finals {
    pub(super) h: Var,
    pub(super) c: Option<Var>,
}

impl Finals {
    /// The carries at step T: dL/dh_T and dL/dc_T as the final state's consumers left them
    /// (copies, since the backward accumulates into them), zeros where there were none.
    fn carries(&self, ctx: &Context, grads: &mut Grads, shape: &[usize]) -> Result<[Tensor; 2]> {
        let mut carry = |v: Option<Var>| match v.and_then(|v| grads.take(v)) {
            Some(g) => g.reshape(shape)?.duplicate(ctx),
            None => Tensor::zeros(ctx, shape),
        };
        Ok([carry(Some(self.h))?, carry(self.c)?])
    }
}

impl<V: VariantSteps> Backward for SequenceNode<V> {
    fn backward(self: Box<Self>, ctx: &Context, g: Tensor, grads: &mut Grads) -> Result<()> {
        let SequenceNode {
            cfg,
            dm,
            off,
            own,
            x,
            state_vars,
            saved: s,
            store_values: pv,
            store_grads: pg,
            opts,
            finals,
        } = *self;
        let (t_len, b, n, h) = (dm.t, dm.b, dm.n, dm.h);
        let nh = dm.nh();
        let lstm = cfg.cell == CellKind::Lstm;
        let zeros = |shape: &[usize]| Tensor::zeros(ctx, shape);
        let un = |shape: &[usize]| Tensor::uninit(ctx, shape);
        let [dh, dc] = finals.carries(ctx, grads, &[b, nh])?;
        // The merge's gradients into h' and c', then communication's into h' (plane 2).
        let dres = un(&[3, b, n, h])?;
        let dhpc_at = 2 * b * nh;
        let du = un(&[b, n, dm.a])?;
        let dctx = un(&[b, n, dm.wv])?;
        let ds = un(&[b, dm.hc, n, n])?;
        let dog = un(&V::layouts(&cfg, dm).og)?;
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
        let dkv_width = V::dkv_width(dm);
        let dkv = un(&[t_len, b, dkv_width])?;
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
                residual: V::RESIDUAL,
                mask: &s.mask,
                dh_out: &g,
                tg: &s.tg,
                dh: &dh,
                dc: &dc,
                dres: &dres,
                dog: &dog,
            };
            merge::backward(ctx, cfg.cell, b, n, h, t, drop, &mb)?;
            own.output_layer_backward(ctx, dm, t, &pv, &dog, &dctx)?;
            let row_mask = V::ROW_MASK.then_some(RowMask {
                mask: &s.mask,
                dropout: drop,
            });
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
                row_mask,
            )?;
            // Communication's gradient into h': Σ over Q, K, V of dP·W_Pᵀ, per mechanism
            // (blocked for inactive mechanisms by the cell's backward, which skips them).
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
            V::ATTEND_BACKWARD(ctx, &sizes, b, t, drop, &ib)?;
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
        let wg = WeightGrads {
            dm,
            off: &off,
            s: &s,
            pg: &pg,
            dz: [&dzx, dzh],
            dq: &dq,
            dkv: &dkv,
            dkv_width,
            dqkv: &dqkv,
            dog: &dog,
        };
        own.weight_gradients(ctx, &wg)?;
        if grads.wants(x) {
            // dx = d(k)·W_kᵀ + d(v)·W_vᵀ over all T·B rows.
            let dx = un(&[t_len, b, dm.d])?;
            for (col, width, w, acc) in [
                (0, dm.wq, off.in_k_w, false),
                (dm.wq, dm.vw, off.in_v_w, true),
            ] {
                grouped(
                    ctx,
                    t_len * b,
                    1,
                    width,
                    dm.d,
                    (&dkv, mv(col, 0, dkv_width, 1)),
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

/// What the weight gradients read after the time loop; each gradient is one product over all
/// T·B rows, accumulated into the store's gradients `pg`.
pub(super) struct WeightGrads<'a> {
    pub(super) dm: Dims,
    pub(super) off: &'a Offsets,
    pub(super) s: &'a Saved,
    pub(super) pg: &'a Tensor,
    /// dzx and dzh.
    pub(super) dz: [&'a Tensor; 2],
    pub(super) dq: &'a Tensor,
    pub(super) dkv: &'a Tensor,
    /// Row width of dkv.
    pub(super) dkv_width: usize,
    pub(super) dqkv: &'a Tensor,
    pub(super) dog: &'a Tensor,
}

impl WeightGrads<'_> {
    /// A per-mechanism block of a [rows, N, width] buffer, transposed: (width x rows).
    pub(super) fn per_mech_t(&self, offset: usize, width: usize) -> super::MatView {
        mv(offset, width, 1, self.dm.n * width)
    }

    /// in_q, in_k_w, in_v_w, rnn_wx and rnn_wh.
    pub(super) fn inputs_and_gates(&self, ctx: &Context) -> Result<()> {
        let (dm, off, s) = (self.dm, self.off, self.s);
        let (n, h) = (dm.n, dm.h);
        let x_t = mv(0, 0, 1, dm.d);
        // (rows of A, groups, width, A, B, C): C += A·B with k = T·B.
        let products = [
            // in_q: Σ h_{t-1}ᵀ dq.
            (
                h,
                n,
                dm.wq,
                (&s.hs, self.per_mech_t(0, h)),
                (self.dq, mv(0, dm.wq, n * dm.wq, 1)),
                mv(off.in_q, h * dm.wq, dm.wq, 1),
            ),
            // in_k_w, in_v_w: xᵀ d(k) and xᵀ d(v).
            (
                dm.d,
                1,
                dm.wq,
                (&s.x, x_t),
                (self.dkv, mv(0, 0, self.dkv_width, 1)),
                mv(off.in_k_w, 0, dm.wq, 1),
            ),
            (
                dm.d,
                1,
                dm.vw,
                (&s.x, x_t),
                (self.dkv, mv(dm.wq, 0, self.dkv_width, 1)),
                mv(off.in_v_w, 0, dm.vw, 1),
            ),
            // rnn_wx: Σ uᵀ dzx; rnn_wh: Σ h_{t-1}ᵀ dzh.
            (
                dm.a,
                n,
                dm.gh,
                (&s.u, self.per_mech_t(0, dm.a)),
                (self.dz[0], mv(0, dm.gh, n * dm.gh, 1)),
                mv(off.rnn_wx, dm.a * dm.gh, dm.gh, 1),
            ),
            (
                h,
                n,
                dm.gh,
                (&s.hs, self.per_mech_t(0, h)),
                (self.dz[1], mv(0, dm.gh, n * dm.gh, 1)),
                mv(off.rnn_wh, h * dm.gh, dm.gh, 1),
            ),
        ];
        for (m, groups, width, a, bm, c) in products {
            self.product(ctx, m, groups, width, a, bm, c)?;
        }
        Ok(())
    }

    /// The communication projections: Σ h'ᵀ dP.
    pub(super) fn projections(&self, ctx: &Context) -> Result<()> {
        let (dm, off) = (self.dm, self.off);
        let h = dm.h;
        for (sidx, width) in [(0, dm.wk), (1, dm.wk), (2, dm.wv)] {
            self.product(
                ctx,
                h,
                dm.n,
                width,
                (&self.s.hp, self.per_mech_t(0, h)),
                (self.dqkv, mv(sidx * dm.qkv_plane(), dm.w, dm.n * dm.w, 1)),
                mv(off.comm[sidx], h * width, width, 1),
            )?;
        }
        Ok(())
    }

    /// C (a view of the store's gradients) += A·B over all T·B rows.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn product(
        &self,
        ctx: &Context,
        m: usize,
        groups: usize,
        width: usize,
        a: (&Tensor, super::MatView),
        bm: (&Tensor, super::MatView),
        c: super::MatView,
    ) -> Result<()> {
        let rows = self.dm.t * self.dm.b;
        grouped(
            ctx,
            m,
            groups,
            rows,
            width,
            a,
            bm,
            (self.pg, c),
            None,
            true,
            1,
        )
    }
}
