//! The variant-A forward of a whole sequence (the step order is in `nn::rims`'s docs), and the
//! offsets, sizes and saved activations its backward shares.

use super::backward::RimsNode;
use super::{Call, RimsOptions, RimsOutput, comm_groups, grouped, mv, param_specs, with_inner};
use crate::device::Context;
use crate::error::{Error, Result};
use crate::nn::config::{CellKind, RimsConfig};
use crate::nn::params::ParamStore;
use crate::ops::communication::{self, qkv_width};
use crate::ops::input_attention::{self, Dropout};
use crate::ops::matmul::{self, Gemm, MatView};
use crate::ops::{cell, merge};
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
        for spec in param_specs(cfg) {
            let shape = store.shape(&spec.name)?;
            if shape != spec.shape.as_slice() {
                return Err(Error::config(
                    "params",
                    format!(
                        "'{}' has shape {shape:?}, the config needs {:?}",
                        spec.name, spec.shape
                    ),
                ));
            }
        }
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

    fn comm_groups(&self, cfg: &RimsConfig) -> Vec<(usize, usize, usize)> {
        comm_groups(self.comm, cfg.comm_key == cfg.comm_value)
    }
}

/// Sizes used everywhere below.
#[derive(Clone, Copy, Debug)]
pub(super) struct Dims {
    pub(super) t: usize,
    pub(super) b: usize,
    pub(super) n: usize,
    pub(super) h: usize,
    pub(super) d: usize,
    pub(super) wq: usize,
    pub(super) a: usize,
    pub(super) gh: usize,
    pub(super) wk: usize,
    pub(super) wv: usize,
    pub(super) w: usize,
    pub(super) hc: usize,
}

impl Dims {
    pub(super) fn new(cfg: &RimsConfig, t: usize, b: usize) -> Self {
        Dims {
            t,
            b,
            n: cfg.mechanisms,
            h: cfg.hidden,
            d: cfg.input,
            wq: cfg.input_heads * cfg.input_key,
            a: cfg.cell_input(),
            gh: cfg.gate_width(),
            wk: cfg.comm_heads * cfg.comm_key,
            wv: cfg.comm_heads * cfg.comm_value,
            w: qkv_width(&cfg.communication_sizes()),
            hc: cfg.comm_heads,
        }
    }

    pub(super) fn nh(&self) -> usize {
        self.n * self.h
    }

    pub(super) fn kvw(&self) -> usize {
        self.wq + self.a
    }

    /// Elements of one plane of the [3, T, B, N, W] projection buffers.
    pub(super) fn qkv_plane(&self) -> usize {
        self.t * self.b * self.n * self.w
    }
}

/// Activations saved by the forward for the backward.
pub(super) struct Saved {
    pub(super) x: Tensor,
    pub(super) hs: Tensor,
    pub(super) cs: Tensor,
    pub(super) kv: Tensor,
    pub(super) q: Tensor,
    pub(super) alpha: Tensor,
    pub(super) mask: Tensor,
    pub(super) u: Tensor,
    pub(super) zh: Tensor,
    pub(super) act: Tensor,
    pub(super) hp: Tensor,
    pub(super) cp: Tensor,
    pub(super) qkv: Tensor,
    pub(super) probs: Tensor,
    pub(super) ctxb: Tensor,
    pub(super) tg: Tensor,
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
    let Call {
        x,
        xt,
        h0,
        c0,
        state_vars,
    } = call;
    let xs = xt.shape();
    let dm = Dims::new(cfg, xs[0], xs[1]);
    let (t_len, b) = (dm.t, dm.b);
    let nh = dm.nh();
    let off = Offsets::of(store, cfg)?;
    let pv = store.flat_values();
    let lstm = cfg.cell == CellKind::Lstm;

    let zeros = |shape: &[usize]| Tensor::zeros(ctx, shape);
    let hs = zeros(&[t_len + 1, b, nh])?;
    let cs = if lstm {
        zeros(&[t_len + 1, b, nh])?
    } else {
        zeros(&[1])?
    };
    if let Some(h0) = &h0 {
        hs.copy_from(ctx, h0, 0)?;
    }
    if let (Some(c0), true) = (&c0, lstm) {
        cs.copy_from(ctx, c0, 0)?;
    }
    let un = |shape: &[usize]| Tensor::uninit(ctx, shape);
    let kv = un(&[t_len, b, dm.kvw()])?;
    let q = un(&[t_len, b, dm.n, dm.wq])?;
    let alpha = un(&[t_len, b, dm.n, cfg.input_heads])?;
    let mask = un(&[t_len, b, dm.n])?;
    let u = un(&[t_len, b, dm.n, dm.a])?;
    let zx = un(&[t_len, b, dm.n, dm.gh])?;
    let zh = un(&[t_len, b, dm.n, dm.gh])?;
    let act = un(&[t_len, b, dm.n, dm.gh])?;
    let hp = un(&[t_len, b, dm.n, dm.h])?;
    let cp = if lstm {
        un(&[t_len, b, dm.n, dm.h])?
    } else {
        un(&[1])?
    };
    let qkv = zeros(&[3, t_len, b, dm.n, dm.w])?;
    let probs = un(&[t_len, b, dm.hc, dm.n, dm.n])?;
    let ctxb = un(&[t_len, b, dm.n, dm.wv])?;
    let og = un(&[t_len, b * dm.n, 2, dm.h])?;
    let tg = un(&[t_len, b * dm.n, 2, dm.h])?;

    // Keys and values of every input, before the time loop: two products over T·B rows.
    let rows = t_len * b;
    let x_rows = mv(0, 0, dm.d, 1);
    grouped(
        ctx,
        rows,
        1,
        dm.d,
        dm.wq,
        (&xt, x_rows),
        (pv, mv(off.in_k_w, 0, dm.wq, 1)),
        (&kv, mv(0, 0, dm.kvw(), 1)),
        None,
        false,
        1,
    )?;
    grouped(
        ctx,
        rows,
        1,
        dm.d,
        dm.a,
        (&xt, x_rows),
        (pv, mv(off.in_v_w, 0, dm.a, 1)),
        (&kv, mv(dm.wq, 0, dm.kvw(), 1)),
        None,
        false,
        1,
    )?;

    let p = if opts.training { cfg.dropout } else { 0.0 };
    let cell_dims = cell::Dims {
        batch: b,
        units: dm.n,
        hidden: dm.h,
    };
    // The input-attention kernel indexes in_q from 0: bind the parameter's own view.
    let in_q = store.value("in_q")?;
    let attention = input_attention::Forward {
        hs: &hs,
        in_q: &in_q,
        kv: &kv,
        mask_override: opts.mask_override.as_ref(),
        q: &q,
        alpha: &alpha,
        mask: &mask,
        u: &u,
    };
    for t in 0..t_len {
        let drop = Dropout {
            seed: opts.seed,
            step: opts.step0.wrapping_add(t as u32),
            p,
        };
        input_attention::forward(ctx, &cfg.input_attention_sizes(), b, t, drop, &attention)?;
        // Gate pre-activations: zx = u·W_x + b_x, zh = h·W_h + b_h, per mechanism.
        let step_g = t * b * dm.n * dm.gh;
        grouped(
            ctx,
            b,
            dm.n,
            dm.a,
            dm.gh,
            (&u, mv(t * b * dm.n * dm.a, dm.a, dm.n * dm.a, 1)),
            (pv, mv(off.rnn_wx, dm.a * dm.gh, dm.gh, 1)),
            (&zx, mv(step_g, dm.gh, dm.n * dm.gh, 1)),
            Some((pv, mv(off.rnn_bx, dm.gh, 0, 1))),
            false,
            1,
        )?;
        grouped(
            ctx,
            b,
            dm.n,
            dm.h,
            dm.gh,
            (&hs, mv(t * b * nh, dm.h, nh, 1)),
            (pv, mv(off.rnn_wh, dm.h * dm.gh, dm.gh, 1)),
            (&zh, mv(step_g, dm.gh, dm.n * dm.gh, 1)),
            Some((pv, mv(off.rnn_bh, dm.gh, 0, 1))),
            false,
            1,
        )?;
        cell::forward(
            ctx, cfg.cell, cell_dims, t, &zx, &zh, &hs, &cs, &act, &hp, &cp,
        )?;
        // Communication projections of h' (one product for Q, K and V when possible).
        for (first, count, stride) in off.comm_groups(cfg) {
            let width = if first == 2 { dm.wv } else { dm.wk };
            grouped(
                ctx,
                b,
                dm.n,
                dm.h,
                width,
                (&hp, mv(t * b * nh, dm.h, nh, 1)),
                (
                    pv,
                    with_inner(mv(off.comm[first], dm.h * width, width, 1), stride),
                ),
                (
                    &qkv,
                    with_inner(
                        mv(
                            first * dm.qkv_plane() + t * b * dm.n * dm.w,
                            dm.w,
                            dm.n * dm.w,
                            1,
                        ),
                        dm.qkv_plane(),
                    ),
                ),
                None,
                false,
                count,
            )?;
        }
        communication::forward(
            ctx,
            &cfg.communication_sizes(),
            b,
            t_len,
            t,
            &qkv,
            &probs,
            &ctxb,
            None,
        )?;
        // Output and gate Linear layers, shared by all mechanisms: og = ctx·[W_fc | W_g] + b.
        output_layers(ctx, &off, dm, t, pv, &ctxb, &og)?;
        let f = merge::Forward {
            residual: merge::Residual::Gated,
            og: &og,
            hp: &hp,
            cp: &cp,
            mask: &mask,
            hs: &hs,
            cs: &cs,
            tg: &tg,
        };
        merge::forward(ctx, cfg.cell, b, dm.n, dm.h, t, drop, &f)?;
    }
    let out = hs.slice_copy(ctx, b * nh, &[t_len, b, nh])?;
    let saved = Saved {
        x: xt,
        hs: hs.clone(),
        cs: cs.clone(),
        kv,
        q,
        alpha,
        mask: mask.clone(),
        u,
        zh,
        act,
        hp,
        cp,
        qkv,
        probs,
        ctxb,
        tg,
    };
    let node = RimsNode {
        cfg: cfg.clone(),
        dm,
        off,
        x,
        state_vars,
        saved,
        store_values: pv.clone(),
        store_grads: store.flat_grads().clone(),
        opts: opts.clone(),
    };
    let h = tape.record_always(out, Box::new(node));
    Ok(RimsOutput {
        h,
        states: hs,
        cells: lstm.then_some(cs),
        masks: mask,
    })
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
