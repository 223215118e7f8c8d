//! What variant A (the authors' code, `docs/spec.md` §1) does differently inside the shared
//! sequence loops: input attention without biases over kv [T·B, h_in·d_k + d_in], gate
//! products with biases, the output and gate Linear layers shared by all mechanisms (og and
//! dog [T, B·N, 2, H] = o | g) and the gated merge.

use super::backward::WeightGrads;
use super::forward::{Attend, AttendBackward, Dims, Layouts, Offsets, VariantSteps};
use super::{grouped, mv, with_inner};
use crate::device::Context;
use crate::error::Result;
use crate::nn::config::RimsConfig;
use crate::nn::params::ParamStore;
use crate::ops::input_attention;
use crate::ops::matmul::{self, Gemm, MatView};
use crate::ops::merge;
use crate::tensor::Tensor;

/// The store offsets of variant A's own parameters.
#[derive(Clone, Debug)]
pub(super) struct Authors {
    rnn_bx: usize,
    rnn_bh: usize,
    fc_w: usize,
    gate_w: usize,
    fc_b: usize,
    gate_b: usize,
}

impl VariantSteps for Authors {
    const RESIDUAL: merge::Residual = merge::Residual::Gated;
    const ATTEND: Attend = input_attention::forward;
    const ATTEND_BACKWARD: AttendBackward = input_attention::backward;
    const ROW_MASK: bool = false;

    fn of(store: &ParamStore) -> Result<Self> {
        let o = |n: &str| store.offset(n);
        Ok(Authors {
            rnn_bx: o("rnn_bx")?,
            rnn_bh: o("rnn_bh")?,
            fc_w: o("comm_fc_w")?,
            gate_w: o("comm_gate_w")?,
            fc_b: o("comm_fc_b")?,
            gate_b: o("comm_gate_b")?,
        })
    }

    fn layouts(cfg: &RimsConfig, dm: Dims) -> Layouts {
        let (t, b, n) = (dm.t, dm.b, dm.n);
        Layouts {
            kv: vec![t, b, dm.kvw()],
            alpha: vec![t, b, n, cfg.input_heads],
            og: vec![t, b * n, 2, dm.h],
            tg: vec![t, b * n, 2, dm.h],
        }
    }

    /// Keys and values of every input: two products over T·B rows (A's key and value layers
    /// have no bias).
    fn project_inputs(
        &self,
        ctx: &Context,
        store: &ParamStore,
        off: &Offsets,
        dm: Dims,
        xt: &Tensor,
        kv: &Tensor,
    ) -> Result<()> {
        let pv = store.flat_values();
        let rows = dm.t * dm.b;
        let x_rows = mv(0, 0, dm.d, 1);
        for (col, width, w) in [(0, dm.wq, off.in_k_w), (dm.wq, dm.a, off.in_v_w)] {
            grouped(
                ctx,
                rows,
                1,
                dm.d,
                width,
                (xt, x_rows),
                (pv, mv(w, 0, width, 1)),
                (kv, mv(col, 0, dm.kvw(), 1)),
                None,
                false,
                1,
            )?;
        }
        Ok(())
    }

    fn gate_biases(&self) -> Option<[usize; 2]> {
        Some([self.rnn_bx, self.rnn_bh])
    }

    /// og = ctx·[W_fc | W_g] + b, shared by all mechanisms: one product when the two layers'
    /// weights and biases are evenly spaced in the store, else one each.
    fn output_layer(
        &self,
        ctx: &Context,
        dm: Dims,
        t: usize,
        pv: &Tensor,
        ctxb: &Tensor,
        og: &Tensor,
    ) -> Result<()> {
        let rows = dm.b * dm.n;
        let a = mv(t * rows * dm.wv, 0, dm.wv, 1);
        let c = mv(t * rows * 2 * dm.h, 0, 2 * dm.h, 1);
        let pairs_even = self.gate_w > self.fc_w && self.gate_b > self.fc_b;
        if pairs_even {
            let g = Gemm {
                batch: 1,
                inner: 2,
                m: rows,
                n: dm.h,
                k: dm.wv,
                a,
                b: with_inner(mv(self.fc_w, 0, dm.h, 1), self.gate_w - self.fc_w),
                c: with_inner(c, dm.h),
                bias: Some(with_inner(mv(self.fc_b, 0, 0, 1), self.gate_b - self.fc_b)),
                accumulate: false,
            };
            return matmul::gemm(ctx, &g, ctxb, pv, Some(pv), og);
        }
        for (s, (w, bias)) in [(self.fc_w, self.fc_b), (self.gate_w, self.gate_b)]
            .into_iter()
            .enumerate()
        {
            let g = Gemm {
                batch: 1,
                inner: 1,
                m: rows,
                n: dm.h,
                k: dm.wv,
                a,
                b: mv(w, 0, dm.h, 1),
                c: MatView {
                    offset: c.offset + s * dm.h,
                    ..c
                },
                bias: Some(mv(bias, 0, 0, 1)),
                accumulate: false,
            };
            matmul::gemm(ctx, &g, ctxb, pv, Some(pv), og)?;
        }
        Ok(())
    }

    fn dkv_width(dm: Dims) -> usize {
        dm.kvw()
    }

    /// dctx = do·W_fcᵀ + dg·W_gᵀ.
    fn output_layer_backward(
        &self,
        ctx: &Context,
        dm: Dims,
        t: usize,
        pv: &Tensor,
        dog: &Tensor,
        dctx: &Tensor,
    ) -> Result<()> {
        let (b, n, h) = (dm.b, dm.n, dm.h);
        for (j, w) in [self.fc_w, self.gate_w].into_iter().enumerate() {
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
            matmul::gemm(ctx, &gm, dog, pv, None, dctx)?;
        }
        Ok(())
    }

    fn weight_gradients(&self, ctx: &Context, w: &WeightGrads) -> Result<()> {
        let dm = w.dm;
        let (n, h) = (dm.n, dm.h);
        let rows = dm.t * dm.b;
        w.inputs_and_gates(ctx)?;
        // Biases: column sums as products with a row of ones.
        let ones = Tensor::full(ctx, &[rows * n], 1.0)?;
        for (plane, o) in [(w.dz[0], self.rnn_bx), (w.dz[1], self.rnn_bh)] {
            grouped(
                ctx,
                1,
                1,
                rows,
                n * dm.gh,
                (&ones, mv(0, 0, rows, 1)),
                (plane, mv(0, 0, n * dm.gh, 1)),
                (w.pg, mv(o, 0, n * dm.gh, 1)),
                None,
                true,
                1,
            )?;
        }
        w.projections(ctx)?;
        // Output and gate layers: Σ ctxᵀ d(o | g) over T·B·N rows, and their biases.
        let bn_rows = rows * n;
        for (j, (wt, bias)) in [(self.fc_w, self.fc_b), (self.gate_w, self.gate_b)]
            .into_iter()
            .enumerate()
        {
            grouped(
                ctx,
                dm.wv,
                1,
                bn_rows,
                h,
                (&w.s.ctxb, mv(0, 0, 1, dm.wv)),
                (w.dog, mv(j * h, 0, 2 * h, 1)),
                (w.pg, mv(wt, 0, h, 1)),
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
                (w.dog, mv(j * h, 0, 2 * h, 1)),
                (w.pg, mv(bias, 0, h, 1)),
                None,
                true,
                1,
            )?;
        }
        Ok(())
    }
}
