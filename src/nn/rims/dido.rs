//! What dido1998's variant ("variant D", `docs/spec.md` §3) does differently inside the shared
//! sequence loops of [`super::forward`] and [`super::backward`]; [`super::Rims::forward`] sends
//! a variant-D config there with [`Dido`].
//!
//! Per step, forward: input attention (`forward_dido`, 1 dispatch), the two grouped gate
//! matmuls without biases (2), the gates (1), the communication projections (1 to 3), the
//! attention with the row mask and dropout on P (1), the per-mechanism output layer
//! comm_out_w (1), the merge ĥ = h' + o (1). Backward: merge (1), the output layer (1), the
//! attention (2), the projections (3), gates (1), the two input products (2), input attention
//! (`backward_dido`, 1), the query product (1). Weight gradients are one product each over
//! all T·B rows after the time loop.
//!
//! Layouts particular to D: kv [1 + T·B, h_in·d_k + h_in·d_vin] with the null input's
//! (b_k | b_v) in row 0; alpha [T, B, N]; u [T, B, N, d_vin]; dkv [T, B, h_in·d_k + 2·h_in·d_vin]
//! = (dk_x | dv_x | dv_∅); og and dog [T, B·N, H] (o alone).

use super::backward::WeightGrads;
use super::forward::{Attend, AttendBackward, Dims, Layouts, Offsets, VariantSteps};
use super::{grouped, mv};
use crate::device::Context;
use crate::error::Result;
use crate::nn::config::RimsConfig;
use crate::nn::params::ParamStore;
use crate::ops::input_attention;
use crate::ops::merge;
use crate::tensor::Tensor;

/// The store offsets of variant D's own parameters.
#[derive(Clone, Debug)]
pub(super) struct Dido {
    in_v_b: usize,
    out_w: usize,
}

impl VariantSteps for Dido {
    const RESIDUAL: merge::Residual = merge::Residual::Plain;
    const ATTEND: Attend = input_attention::forward_dido;
    const ATTEND_BACKWARD: AttendBackward = input_attention::backward_dido;
    const ROW_MASK: bool = true;

    fn of(store: &ParamStore) -> Result<Self> {
        Ok(Dido {
            in_v_b: store.offset("in_v_b")?,
            out_w: store.offset("comm_out_w")?,
        })
    }

    fn layouts(_cfg: &RimsConfig, dm: Dims) -> Layouts {
        let (t, b, n) = (dm.t, dm.b, dm.n);
        Layouts {
            kv: vec![1 + t * b, dm.kvw()],
            alpha: vec![t, b, n],
            og: vec![t, b * n, dm.h],
            // The merge's tg binding is not used by variant D.
            tg: vec![1],
        }
    }

    /// Row 0 of kv is the null input's key and value: zeros through the biased Linear layers
    /// give exactly the biases. Rows 1.. are every x_t's, two products over T·B rows.
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
        kv.copy_from(ctx, &store.value("in_k_b")?, 0)?;
        kv.copy_from(ctx, &store.value("in_v_b")?, dm.wq)?;
        let rows = dm.t * dm.b;
        let x_rows = mv(0, 0, dm.d, 1);
        let bias = |name: &str| -> Result<_> { Ok((pv, mv(store.offset(name)?, 0, 0, 1))) };
        for (col, width, w, bname) in [
            (0, dm.wq, off.in_k_w, "in_k_b"),
            (dm.wq, dm.vw, off.in_v_w, "in_v_b"),
        ] {
            grouped(
                ctx,
                rows,
                1,
                dm.d,
                width,
                (xt, x_rows),
                (pv, mv(w, 0, width, 1)),
                (kv, mv(dm.kvw() + col, 0, dm.kvw(), 1)),
                Some(bias(bname)?),
                false,
                1,
            )?;
        }
        Ok(())
    }

    fn gate_biases(&self) -> Option<[usize; 2]> {
        None
    }

    /// o_i = ctx_i·comm_out_w_i, per mechanism, no bias.
    fn output_layer(
        &self,
        ctx: &Context,
        dm: Dims,
        t: usize,
        pv: &Tensor,
        ctxb: &Tensor,
        og: &Tensor,
    ) -> Result<()> {
        let (b, n, h, nh) = (dm.b, dm.n, dm.h, dm.nh());
        grouped(
            ctx,
            b,
            n,
            dm.wv,
            h,
            (ctxb, mv(t * b * n * dm.wv, dm.wv, n * dm.wv, 1)),
            (pv, mv(self.out_w, dm.wv * h, h, 1)),
            (og, mv(t * b * nh, h, nh, 1)),
            None,
            false,
            1,
        )
    }

    /// dk_x | dv_x | dv_∅.
    fn dkv_width(dm: Dims) -> usize {
        dm.wq + 2 * dm.vw
    }

    /// dctx_i = do_i·comm_out_w_iᵀ.
    fn output_layer_backward(
        &self,
        ctx: &Context,
        dm: Dims,
        t: usize,
        pv: &Tensor,
        dog: &Tensor,
        dctx: &Tensor,
    ) -> Result<()> {
        let (b, n, h, nh) = (dm.b, dm.n, dm.h, dm.nh());
        grouped(
            ctx,
            b,
            n,
            h,
            dm.wv,
            (dog, mv(t * b * nh, h, nh, 1)),
            (pv, mv(self.out_w, dm.wv * h, h, 1).t()),
            (dctx, mv(0, dm.wv, n * dm.wv, 1)),
            None,
            false,
            1,
        )
    }

    /// `in_k_b` gets no gradient: it is exactly zero (the two-slot softmax sees s_x − s_∅, from
    /// which the key bias cancels, and the selection is detached).
    fn weight_gradients(&self, ctx: &Context, w: &WeightGrads) -> Result<()> {
        let dm = w.dm;
        let (n, h) = (dm.n, dm.h);
        let rows = dm.t * dm.b;
        w.inputs_and_gates(ctx)?;
        // comm_out_w: Σ ctx_iᵀ do_i, per mechanism.
        w.product(
            ctx,
            dm.wv,
            n,
            h,
            (&w.s.ctxb, w.per_mech_t(0, dm.wv)),
            (w.dog, mv(0, h, n * h, 1)),
            mv(self.out_w, dm.wv * h, h, 1),
        )?;
        // in_v_b: column sums of dv_x and dv_∅, as products with a row of ones.
        let ones = Tensor::full(ctx, &[rows], 1.0)?;
        for col in [dm.wq, dm.wq + dm.vw] {
            grouped(
                ctx,
                1,
                1,
                rows,
                dm.vw,
                (&ones, mv(0, 0, rows, 1)),
                (w.dkv, mv(col, 0, w.dkv_width, 1)),
                (w.pg, mv(self.in_v_b, 0, dm.vw, 1)),
                None,
                true,
                1,
            )?;
        }
        w.projections(ctx)
    }
}
