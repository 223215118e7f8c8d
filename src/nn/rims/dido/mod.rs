//! The RIMs sequence layer in dido1998's variant ("variant D", `docs/spec.md` §3): the same
//! one-node-per-sequence structure as [`super`] (variant A), with D's kernels and layouts.
//! [`super::Rims::forward`] sends a variant-D config here.
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

use super::sequence::{
    Dims, Sequence, Variant, VariantBuffers, check_shapes, forward_steps, key_value_products,
    record, saved_buffers,
};
use super::{Call, RimsOptions, RimsOutput, grouped, mv};
use crate::device::Context;
use crate::error::Result;
use crate::nn::config::RimsConfig;
use crate::nn::params::ParamStore;
use crate::ops::{input_attention, merge};
use crate::tape::Tape;
use crate::tensor::Tensor;

mod backward;

use backward::DidoNode;

/// Store offsets of the variant-D parameters.
#[derive(Clone, Debug)]
struct Offsets {
    in_q: usize,
    in_k_w: usize,
    in_v_w: usize,
    in_k_b: usize,
    in_v_b: usize,
    rnn_wx: usize,
    rnn_wh: usize,
    comm: [usize; 3],
    out_w: usize,
}

impl Offsets {
    fn of(store: &ParamStore, cfg: &RimsConfig) -> Result<Self> {
        check_shapes(store, cfg)?;
        let o = |n: &str| store.offset(n);
        Ok(Offsets {
            in_q: o("in_q")?,
            in_k_w: o("in_k_w")?,
            in_v_w: o("in_v_w")?,
            in_k_b: o("in_k_b")?,
            in_v_b: o("in_v_b")?,
            rnn_wx: o("rnn_wx")?,
            rnn_wh: o("rnn_wh")?,
            comm: [o("comm_q")?, o("comm_k")?, o("comm_v")?],
            out_w: o("comm_out_w")?,
        })
    }

    /// What the shared time loops need to know of variant D.
    fn variant(&self) -> Variant {
        Variant {
            in_q: self.in_q,
            in_kv: [self.in_k_w, self.in_v_w],
            rnn_wx: self.rnn_wx,
            rnn_wh: self.rnn_wh,
            rnn_b: None,
            comm: self.comm,
            residual: merge::Residual::Plain,
            row_mask: true,
            attention_forward: input_attention::forward_dido,
            attention_backward: input_attention::backward_dido,
        }
    }
}

/// Row width of dkv: dk_x | dv_x | dv_∅.
fn dkvw(dm: &Dims) -> usize {
    dm.wq + 2 * dm.wvin
}

/// The variant-D forward of a whole sequence; `x` [T, B, D] and the options were checked by
/// the caller.
pub(super) fn forward(
    cfg: &RimsConfig,
    ctx: &Context,
    tape: &mut Tape,
    store: &ParamStore,
    call: Call,
    opts: &RimsOptions,
) -> Result<RimsOutput> {
    let xs = call.xt.shape();
    let dm = Dims::new(cfg, xs[0], xs[1]);
    let (t_len, b, n, h) = (dm.t, dm.b, dm.n, dm.h);
    let nh = dm.nh();
    let off = Offsets::of(store, cfg)?;
    let pv = store.flat_values();
    let un = |shape: &[usize]| Tensor::uninit(ctx, shape);
    let own = VariantBuffers {
        kv: un(&[1 + t_len * b, dm.kvw()])?,
        alpha: un(&[t_len, b, n])?,
        og: un(&[t_len, b * n, h])?,
        // The merge's tg binding is not used by variant D.
        tg: un(&[1])?,
    };
    let s = saved_buffers(ctx, cfg, dm, &call, &own)?;
    // Row 0 of kv is the null input's key and value: zeros through the biased Linear layers
    // give exactly the biases. Rows 1.. are every x_t's.
    s.kv.copy_from(ctx, &store.value("in_k_b")?, 0)?;
    s.kv.copy_from(ctx, &store.value("in_v_b")?, dm.wq)?;
    let in_kv = [off.in_k_w, off.in_v_w];
    key_value_products(
        ctx,
        dm,
        pv,
        &s.x,
        &s.kv,
        1,
        in_kv,
        Some([off.in_k_b, off.in_v_b]),
    )?;
    // o_i = ctx_i·comm_out_w_i, per mechanism, no bias.
    let output = |t: usize| {
        grouped(
            ctx,
            b,
            n,
            dm.wv,
            h,
            (&s.ctxb, mv(t * b * n * dm.wv, dm.wv, n * dm.wv, 1)),
            (pv, mv(off.out_w, dm.wv * h, h, 1)),
            (&own.og, mv(t * b * nh, h, nh, 1)),
            None,
            false,
            1,
        )
    };
    forward_steps(
        ctx,
        cfg,
        dm,
        store,
        opts,
        &off.variant(),
        &s,
        &own.og,
        output,
    )?;
    let seq = Sequence::new(cfg, dm, call, s, store, opts);
    record(tape, ctx, seq, |seq| Box::new(DidoNode { seq, off }))
}
