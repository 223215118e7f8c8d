//! The variant-A forward of a whole sequence (the step order is in `nn::rims`'s docs): A's
//! parameters, its buffers and its output and gate layers; the time loop is
//! [`super::sequence::forward_steps`].

use super::backward::RimsNode;
use super::sequence::{
    Dims, Sequence, Variant, VariantBuffers, check_shapes, forward_steps, key_value_products,
    record, saved_buffers,
};
use super::{Call, RimsOptions, RimsOutput, mv, with_inner};
use crate::device::Context;
use crate::error::Result;
use crate::nn::config::RimsConfig;
use crate::nn::params::ParamStore;
use crate::ops::input_attention;
use crate::ops::matmul::{self, Gemm, MatView};
use crate::ops::merge;
use crate::tape::Tape;
use crate::tensor::Tensor;

/// The store offsets of the cell's parameters, and which of them can share a dispatch.
#[derive(Clone, Debug)]
pub(super) struct Offsets {
    pub(super) in_q: usize,
    pub(super) in_k_w: usize,
    pub(super) in_v_w: usize,
    pub(super) rnn_wx: usize,
    pub(super) rnn_wh: usize,
    pub(super) rnn_bx: usize,
    pub(super) rnn_bh: usize,
    pub(super) comm: [usize; 3],
    pub(super) fc_w: usize,
    pub(super) gate_w: usize,
    pub(super) fc_b: usize,
    pub(super) gate_b: usize,
}

impl Offsets {
    pub(super) fn of(store: &ParamStore, cfg: &RimsConfig) -> Result<Self> {
        check_shapes(store, cfg)?;
        let o = |n: &str| store.offset(n);
        Ok(Offsets {
            in_q: o("in_q")?,
            in_k_w: o("in_k_w")?,
            in_v_w: o("in_v_w")?,
            rnn_wx: o("rnn_wx")?,
            rnn_wh: o("rnn_wh")?,
            rnn_bx: o("rnn_bx")?,
            rnn_bh: o("rnn_bh")?,
            comm: [o("comm_q")?, o("comm_k")?, o("comm_v")?],
            fc_w: o("comm_fc_w")?,
            gate_w: o("comm_gate_w")?,
            fc_b: o("comm_fc_b")?,
            gate_b: o("comm_gate_b")?,
        })
    }

    /// What the shared time loops need to know of variant A.
    pub(super) fn variant(&self) -> Variant {
        Variant {
            in_q: self.in_q,
            in_kv: [self.in_k_w, self.in_v_w],
            rnn_wx: self.rnn_wx,
            rnn_wh: self.rnn_wh,
            rnn_b: Some([self.rnn_bx, self.rnn_bh]),
            comm: self.comm,
            residual: merge::Residual::Gated,
            row_mask: false,
            attention_forward: input_attention::forward,
            attention_backward: input_attention::backward,
        }
    }
}

/// The variant-A forward of a whole sequence; `x` [T, B, D] and the options were checked by
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
    let (t_len, b, n) = (dm.t, dm.b, dm.n);
    let off = Offsets::of(store, cfg)?;
    let pv = store.flat_values();
    let un = |shape: &[usize]| Tensor::uninit(ctx, shape);
    let own = VariantBuffers {
        kv: un(&[t_len, b, dm.kvw()])?,
        alpha: un(&[t_len, b, n, cfg.input_heads])?,
        og: un(&[t_len, b * n, 2, dm.h])?,
        tg: un(&[t_len, b * n, 2, dm.h])?,
    };
    let s = saved_buffers(ctx, cfg, dm, &call, &own)?;
    // Keys and values of every input, before the time loop (A's key and value layers have no
    // biases).
    key_value_products(ctx, dm, pv, &s.x, &s.kv, 0, [off.in_k_w, off.in_v_w], None)?;
    // Output and gate Linear layers, shared by all mechanisms: og = ctx·[W_fc | W_g] + b.
    let output = |t| output_layers(ctx, &off, dm, t, pv, &s.ctxb, &own.og);
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
    record(tape, ctx, seq, |seq| Box::new(RimsNode { seq, off }))
}

#[allow(clippy::too_many_arguments)]
fn output_layers(
    ctx: &Context,
    off: &Offsets,
    dm: Dims,
    t: usize,
    pv: &Tensor,
    ctxb: &Tensor,
    og: &Tensor,
) -> Result<()> {
    let rows = dm.b * dm.n;
    let a = mv(t * rows * dm.wv, 0, dm.wv, 1);
    let c = mv(t * rows * 2 * dm.h, 0, 2 * dm.h, 1);
    let pairs_even = off.gate_w > off.fc_w && off.gate_b > off.fc_b;
    if pairs_even {
        let g = Gemm {
            batch: 1,
            inner: 2,
            m: rows,
            n: dm.h,
            k: dm.wv,
            a,
            b: with_inner(mv(off.fc_w, 0, dm.h, 1), off.gate_w - off.fc_w),
            c: with_inner(c, dm.h),
            bias: Some(with_inner(mv(off.fc_b, 0, 0, 1), off.gate_b - off.fc_b)),
            accumulate: false,
        };
        return matmul::gemm(ctx, &g, ctxb, pv, Some(pv), og);
    }
    for (s, (w, bias)) in [(off.fc_w, off.fc_b), (off.gate_w, off.gate_b)]
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
