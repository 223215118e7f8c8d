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

use super::{Call, RimsOptions, RimsOutput, comm_groups, grouped, mv, param_specs, with_inner};
use crate::device::Context;
use crate::error::{Error, Result};
use crate::nn::config::{CellKind, RimsConfig};
use crate::nn::params::ParamStore;
use crate::ops::communication::{self, RowMask, qkv_width};
use crate::ops::input_attention::{self, Dropout};
use crate::ops::{cell, merge};
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
    in_v_b: usize,
    rnn_wx: usize,
    rnn_wh: usize,
    comm: [usize; 3],
    out_w: usize,
}

impl Offsets {
    fn of(store: &ParamStore, cfg: &RimsConfig) -> Result<Self> {
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
            in_v_b: o("in_v_b")?,
            rnn_wx: o("rnn_wx")?,
            rnn_wh: o("rnn_wh")?,
            comm: [o("comm_q")?, o("comm_k")?, o("comm_v")?],
            out_w: o("comm_out_w")?,
        })
    }
}

/// Sizes used everywhere below.
#[derive(Clone, Copy, Debug)]
struct Dims {
    t: usize,
    b: usize,
    n: usize,
    h: usize,
    d: usize,
    /// h_in·d_k.
    wq: usize,
    /// h_in·d_vin: the values' width (the heads are averaged into the cell input).
    wvin: usize,
    /// d_vin: the cell input of a mechanism.
    a: usize,
    gh: usize,
    wk: usize,
    /// h_c·H.
    wv: usize,
    w: usize,
}

impl Dims {
    fn new(cfg: &RimsConfig, t: usize, b: usize) -> Self {
        Dims {
            t,
            b,
            n: cfg.mechanisms,
            h: cfg.hidden,
            d: cfg.input,
            wq: cfg.input_heads * cfg.input_key,
            wvin: cfg.input_heads * cfg.input_value,
            a: cfg.cell_input(),
            gh: cfg.gate_width(),
            wk: cfg.comm_heads * cfg.comm_key,
            wv: cfg.comm_heads * cfg.comm_value,
            w: qkv_width(&cfg.communication_sizes()),
        }
    }

    fn nh(&self) -> usize {
        self.n * self.h
    }

    /// Row width of kv: k | v.
    fn kvw(&self) -> usize {
        self.wq + self.wvin
    }

    /// Row width of dkv: dk_x | dv_x | dv_∅.
    fn dkvw(&self) -> usize {
        self.wq + 2 * self.wvin
    }

    fn qkv_plane(&self) -> usize {
        self.t * self.b * self.n * self.w
    }
}

/// Activations saved by the forward for the backward.
struct Saved {
    x: Tensor,
    hs: Tensor,
    cs: Tensor,
    kv: Tensor,
    q: Tensor,
    alpha: Tensor,
    mask: Tensor,
    u: Tensor,
    zh: Tensor,
    act: Tensor,
    hp: Tensor,
    cp: Tensor,
    qkv: Tensor,
    probs: Tensor,
    ctxb: Tensor,
}

fn dropout(opts: &RimsOptions, cfg: &RimsConfig, t: usize) -> Dropout {
    Dropout {
        seed: opts.seed,
        step: opts.step0.wrapping_add(t as u32),
        p: if opts.training { cfg.dropout } else { 0.0 },
    }
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
    let Call {
        x,
        xt,
        h0,
        c0,
        state_vars,
    } = call;
    let xs = xt.shape();
    let dm = Dims::new(cfg, xs[0], xs[1]);
    let (t_len, b, n, h) = (dm.t, dm.b, dm.n, dm.h);
    let nh = dm.nh();
    let off = Offsets::of(store, cfg)?;
    let pv = store.flat_values();
    let lstm = cfg.cell == CellKind::Lstm;

    let zeros = |shape: &[usize]| Tensor::zeros(ctx, shape);
    let un = |shape: &[usize]| Tensor::uninit(ctx, shape);
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
    let kv = un(&[1 + t_len * b, dm.kvw()])?;
    let q = un(&[t_len, b, n, dm.wq])?;
    let alpha = un(&[t_len, b, n])?;
    let mask = un(&[t_len, b, n])?;
    let u = un(&[t_len, b, n, dm.a])?;
    let zx = un(&[t_len, b, n, dm.gh])?;
    let zh = un(&[t_len, b, n, dm.gh])?;
    let act = un(&[t_len, b, n, dm.gh])?;
    let hp = un(&[t_len, b, n, h])?;
    let cp = if lstm {
        un(&[t_len, b, n, h])?
    } else {
        un(&[1])?
    };
    let qkv = zeros(&[3, t_len, b, n, dm.w])?;
    let probs = un(&[t_len, b, cfg.comm_heads, n, n])?;
    let ctxb = un(&[t_len, b, n, dm.wv])?;
    let og = un(&[t_len, b * n, h])?;
    // The merge's tg binding is not used by variant D.
    let unused = un(&[1])?;

    // Row 0 of kv is the null input's key and value: zeros through the biased Linear layers
    // give exactly the biases. Rows 1.. are every x_t's, two products over T·B rows.
    kv.copy_from(ctx, &store.value("in_k_b")?, 0)?;
    kv.copy_from(ctx, &store.value("in_v_b")?, dm.wq)?;
    let rows = t_len * b;
    let x_rows = mv(0, 0, dm.d, 1);
    let bias = |name: &str| -> Result<_> { Ok((pv, mv(store.offset(name)?, 0, 0, 1))) };
    for (col, width, w, bname) in [
        (0, dm.wq, off.in_k_w, "in_k_b"),
        (dm.wq, dm.wvin, off.in_v_w, "in_v_b"),
    ] {
        grouped(
            ctx,
            rows,
            1,
            dm.d,
            width,
            (&xt, x_rows),
            (pv, mv(w, 0, width, 1)),
            (&kv, mv(dm.kvw() + col, 0, dm.kvw(), 1)),
            Some(bias(bname)?),
            false,
            1,
        )?;
    }

    let cell_dims = cell::Dims {
        batch: b,
        units: n,
        hidden: h,
    };
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
    let sizes = cfg.input_attention_sizes();
    for t in 0..t_len {
        let drop = dropout(opts, cfg, t);
        input_attention::forward_dido(ctx, &sizes, b, t, drop, &attention)?;
        // Gate pre-activations without biases: zx = u·W_x, zh = h·W_h, per mechanism.
        let step_g = t * b * n * dm.gh;
        grouped(
            ctx,
            b,
            n,
            dm.a,
            dm.gh,
            (&u, mv(t * b * n * dm.a, dm.a, n * dm.a, 1)),
            (pv, mv(off.rnn_wx, dm.a * dm.gh, dm.gh, 1)),
            (&zx, mv(step_g, dm.gh, n * dm.gh, 1)),
            None,
            false,
            1,
        )?;
        grouped(
            ctx,
            b,
            n,
            h,
            dm.gh,
            (&hs, mv(t * b * nh, h, nh, 1)),
            (pv, mv(off.rnn_wh, h * dm.gh, dm.gh, 1)),
            (&zh, mv(step_g, dm.gh, n * dm.gh, 1)),
            None,
            false,
            1,
        )?;
        cell::forward(
            ctx, cfg.cell, cell_dims, t, &zx, &zh, &hs, &cs, &act, &hp, &cp,
        )?;
        for (first, count, stride) in comm_groups(off.comm, dm.wk == dm.wv) {
            let width = if first == 2 { dm.wv } else { dm.wk };
            let at = first * dm.qkv_plane() + t * b * n * dm.w;
            grouped(
                ctx,
                b,
                n,
                h,
                width,
                (&hp, mv(t * b * nh, h, nh, 1)),
                (
                    pv,
                    with_inner(mv(off.comm[first], h * width, width, 1), stride),
                ),
                (&qkv, with_inner(mv(at, dm.w, n * dm.w, 1), dm.qkv_plane())),
                None,
                false,
                count,
            )?;
        }
        let row_mask = RowMask {
            mask: &mask,
            dropout: drop,
        };
        communication::forward(
            ctx,
            &cfg.communication_sizes(),
            b,
            t_len,
            t,
            &qkv,
            &probs,
            &ctxb,
            Some(row_mask),
        )?;
        // o_i = ctx_i·comm_out_w_i, per mechanism, no bias.
        grouped(
            ctx,
            b,
            n,
            dm.wv,
            h,
            (&ctxb, mv(t * b * n * dm.wv, dm.wv, n * dm.wv, 1)),
            (pv, mv(off.out_w, dm.wv * h, h, 1)),
            (&og, mv(t * b * nh, h, nh, 1)),
            None,
            false,
            1,
        )?;
        let f = merge::Forward {
            residual: merge::Residual::Plain,
            og: &og,
            hp: &hp,
            cp: &cp,
            mask: &mask,
            hs: &hs,
            cs: &cs,
            tg: &unused,
        };
        merge::forward(ctx, cfg.cell, b, n, h, t, drop, &f)?;
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
    };
    let node = DidoNode {
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
    let h_var = tape.record_always(out, Box::new(node));
    Ok(RimsOutput {
        h: h_var,
        states: hs,
        cells: lstm.then_some(cs),
        masks: mask,
    })
}
