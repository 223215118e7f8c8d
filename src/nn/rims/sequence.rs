//! What the two variants' sequence forwards share: the sizes, the saved activations, the
//! per-call buffers and the time loop. A variant supplies only what differs ([`Variant`]):
//! its input attention kernel, its gate biases, its communication output layer and whether
//! communication masks rows.

use super::with_inner;
use super::{Call, RimsOptions, RimsOutput, StateVars, comm_groups, grouped, mv, param_specs};
use crate::device::Context;
use crate::error::{Error, Result};
use crate::nn::config::{CellKind, RimsConfig};
use crate::nn::params::ParamStore;
use crate::ops::communication::{self, RowMask, qkv_width};
use crate::ops::input_attention::{self, Dropout};
use crate::ops::{cell, merge};
use crate::tape::{Backward, Tape, Var};
use crate::tensor::Tensor;

/// Sizes used everywhere in both variants' passes.
#[derive(Clone, Copy, Debug)]
pub(super) struct Dims {
    pub(super) t: usize,
    pub(super) b: usize,
    pub(super) n: usize,
    pub(super) h: usize,
    pub(super) d: usize,
    /// h_in·d_k.
    pub(super) wq: usize,
    /// h_in·d_vin: the input values' width (variant A concatenates the heads into the cell
    /// input, so there it equals `a`; variant D averages them).
    pub(super) wvin: usize,
    /// The cell input of a mechanism.
    pub(super) a: usize,
    pub(super) gh: usize,
    pub(super) wk: usize,
    /// h_c·d_vc.
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
            wvin: cfg.input_heads * cfg.input_value,
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

    /// Row width of kv: k | v.
    pub(super) fn kvw(&self) -> usize {
        self.wq + self.wvin
    }

    /// Elements of one plane of the [3, T, B, N, W] projection buffers.
    pub(super) fn qkv_plane(&self) -> usize {
        self.t * self.b * self.n * self.w
    }
}

/// Fails unless every parameter the config names has the config's shape in `store`.
pub(super) fn check_shapes(store: &ParamStore, cfg: &RimsConfig) -> Result<()> {
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
    Ok(())
}

/// Step t's dropout: the same mask in the forward and the backward, none outside training.
pub(super) fn dropout(opts: &RimsOptions, cfg: &RimsConfig, t: usize) -> Dropout {
    Dropout {
        seed: opts.seed,
        step: opts.step0.wrapping_add(t as u32),
        p: if opts.training { cfg.dropout } else { 0.0 },
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
    /// The merge's saved gate (variant A); a one-element placeholder for variant D, whose
    /// merge binds but never reads it.
    pub(super) tg: Tensor,
}

/// The buffers whose shapes differ between the variants, allocated by the variant.
pub(super) struct VariantBuffers {
    pub(super) kv: Tensor,
    pub(super) alpha: Tensor,
    pub(super) og: Tensor,
    pub(super) tg: Tensor,
}

/// The store offsets the shared loops read, and the variant's behaviour inside them.
pub(super) struct Variant {
    pub(super) in_q: usize,
    /// (in_k_w, in_v_w).
    pub(super) in_kv: [usize; 2],
    pub(super) rnn_wx: usize,
    pub(super) rnn_wh: usize,
    /// (b_x, b_h): variant A's recurrent biases; variant D has none.
    pub(super) rnn_b: Option<[usize; 2]>,
    pub(super) comm: [usize; 3],
    pub(super) residual: merge::Residual,
    /// Variant D masks the communication rows of inactive mechanisms and drops out P.
    pub(super) row_mask: bool,
    pub(super) attention_forward: AttentionForward,
    pub(super) attention_backward: AttentionBackward,
}

type AttentionForward = fn(
    &Context,
    &input_attention::Sizes,
    usize,
    usize,
    Dropout,
    &input_attention::Forward<'_>,
) -> Result<()>;

type AttentionBackward = fn(
    &Context,
    &input_attention::Sizes,
    usize,
    usize,
    Dropout,
    &input_attention::Backward<'_>,
) -> Result<()>;

/// A sequence node's state for the backward, the same for both variants.
pub(super) struct Sequence {
    pub(super) cfg: RimsConfig,
    pub(super) dm: Dims,
    pub(super) x: Var,
    /// Where dL/dh_0 and dL/dc_0 go.
    pub(super) state_vars: StateVars,
    pub(super) saved: Saved,
    pub(super) store_values: Tensor,
    pub(super) store_grads: Tensor,
    pub(super) opts: RimsOptions,
}

impl Sequence {
    /// The node's state after the forward of `call` over `saved`.
    pub(super) fn new(
        cfg: &RimsConfig,
        dm: Dims,
        call: Call,
        saved: Saved,
        store: &ParamStore,
        opts: &RimsOptions,
    ) -> Self {
        Sequence {
            cfg: cfg.clone(),
            dm,
            x: call.x,
            state_vars: call.state_vars,
            saved,
            store_values: store.flat_values().clone(),
            store_grads: store.flat_grads().clone(),
            opts: opts.clone(),
        }
    }
}

/// Allocates the per-call buffers both variants share and copies the initial state into
/// row 0 of the states; `own` are the variant's own buffers.
pub(super) fn saved_buffers(
    ctx: &Context,
    cfg: &RimsConfig,
    dm: Dims,
    call: &Call,
    own: &VariantBuffers,
) -> Result<Saved> {
    let (t_len, b, n) = (dm.t, dm.b, dm.n);
    let lstm = cfg.cell == CellKind::Lstm;
    let zeros = |shape: &[usize]| Tensor::zeros(ctx, shape);
    let un = |shape: &[usize]| Tensor::uninit(ctx, shape);
    let hs = zeros(&[t_len + 1, b, dm.nh()])?;
    let cs = if lstm {
        zeros(&[t_len + 1, b, dm.nh()])?
    } else {
        zeros(&[1])?
    };
    if let Some(h0) = &call.h0 {
        hs.copy_from(ctx, h0, 0)?;
    }
    if let (Some(c0), true) = (&call.c0, lstm) {
        cs.copy_from(ctx, c0, 0)?;
    }
    Ok(Saved {
        x: call.xt.clone(),
        hs,
        cs,
        kv: own.kv.clone(),
        q: un(&[t_len, b, n, dm.wq])?,
        alpha: own.alpha.clone(),
        mask: un(&[t_len, b, n])?,
        u: un(&[t_len, b, n, dm.a])?,
        zh: un(&[t_len, b, n, dm.gh])?,
        act: un(&[t_len, b, n, dm.gh])?,
        hp: un(&[t_len, b, n, dm.h])?,
        cp: if lstm {
            un(&[t_len, b, n, dm.h])?
        } else {
            un(&[1])?
        },
        qkv: zeros(&[3, t_len, b, n, dm.w])?,
        probs: un(&[t_len, b, dm.hc, n, n])?,
        ctxb: un(&[t_len, b, n, dm.wv])?,
        tg: own.tg.clone(),
    })
}

/// The time loop of the forward: per step, input attention, the gate products, the gates,
/// the communication projections and attention, the variant's output layer
/// (`output_layer(t)`, ctxb → og) and the merge.
#[allow(clippy::too_many_arguments)]
pub(super) fn forward_steps(
    ctx: &Context,
    cfg: &RimsConfig,
    dm: Dims,
    store: &ParamStore,
    opts: &RimsOptions,
    var: &Variant,
    s: &Saved,
    og: &Tensor,
    output_layer: impl Fn(usize) -> Result<()>,
) -> Result<()> {
    let (b, n, h) = (dm.b, dm.n, dm.h);
    let nh = dm.nh();
    let pv = store.flat_values();
    let zx = Tensor::uninit(ctx, &[dm.t, b, n, dm.gh])?;
    let cell_dims = cell::Dims {
        batch: b,
        units: n,
        hidden: h,
    };
    // The input-attention kernel indexes in_q from 0: bind the parameter's own view.
    let in_q = store.value("in_q")?;
    let attention = input_attention::Forward {
        hs: &s.hs,
        in_q: &in_q,
        kv: &s.kv,
        mask_override: opts.mask_override.as_ref(),
        q: &s.q,
        alpha: &s.alpha,
        mask: &s.mask,
        u: &s.u,
    };
    let sizes = cfg.input_attention_sizes();
    for t in 0..dm.t {
        let drop = dropout(opts, cfg, t);
        (var.attention_forward)(ctx, &sizes, b, t, drop, &attention)?;
        // Gate pre-activations: zx = u·W_x (+ b_x), zh = h·W_h (+ b_h), per mechanism.
        let step_g = t * b * n * dm.gh;
        let bias = |i: usize| var.rnn_b.map(|o| (pv, mv(o[i], dm.gh, 0, 1)));
        grouped(
            ctx,
            b,
            n,
            dm.a,
            dm.gh,
            (&s.u, mv(t * b * n * dm.a, dm.a, n * dm.a, 1)),
            (pv, mv(var.rnn_wx, dm.a * dm.gh, dm.gh, 1)),
            (&zx, mv(step_g, dm.gh, n * dm.gh, 1)),
            bias(0),
            false,
            1,
        )?;
        grouped(
            ctx,
            b,
            n,
            h,
            dm.gh,
            (&s.hs, mv(t * b * nh, h, nh, 1)),
            (pv, mv(var.rnn_wh, h * dm.gh, dm.gh, 1)),
            (&s.zh, mv(step_g, dm.gh, n * dm.gh, 1)),
            bias(1),
            false,
            1,
        )?;
        cell::forward(
            ctx, cfg.cell, cell_dims, t, &zx, &s.zh, &s.hs, &s.cs, &s.act, &s.hp, &s.cp,
        )?;
        // Communication projections of h' (one product for Q, K and V when possible).
        for (first, count, stride) in comm_groups(var.comm, dm.wk == dm.wv) {
            let width = if first == 2 { dm.wv } else { dm.wk };
            let at = first * dm.qkv_plane() + t * b * n * dm.w;
            grouped(
                ctx,
                b,
                n,
                h,
                width,
                (&s.hp, mv(t * b * nh, h, nh, 1)),
                (
                    pv,
                    with_inner(mv(var.comm[first], h * width, width, 1), stride),
                ),
                (
                    &s.qkv,
                    with_inner(mv(at, dm.w, n * dm.w, 1), dm.qkv_plane()),
                ),
                None,
                false,
                count,
            )?;
        }
        let row_mask = var.row_mask.then_some(RowMask {
            mask: &s.mask,
            dropout: drop,
        });
        communication::forward(
            ctx,
            &cfg.communication_sizes(),
            b,
            dm.t,
            t,
            &s.qkv,
            &s.probs,
            &s.ctxb,
            row_mask,
        )?;
        output_layer(t)?;
        let f = merge::Forward {
            residual: var.residual,
            og,
            hp: &s.hp,
            cp: &s.cp,
            mask: &s.mask,
            hs: &s.hs,
            cs: &s.cs,
            tg: &s.tg,
        };
        merge::forward(ctx, cfg.cell, b, n, h, t, drop, &f)?;
    }
    Ok(())
}

/// The keys and values of every input before the time loop, two products over T·B rows:
/// kv rows `first_row..` get x·W_k (+ b_k) | x·W_v (+ b_v).
#[allow(clippy::too_many_arguments)]
pub(super) fn key_value_products(
    ctx: &Context,
    dm: Dims,
    pv: &Tensor,
    xt: &Tensor,
    kv: &Tensor,
    first_row: usize,
    [in_k_w, in_v_w]: [usize; 2],
    biases: Option<[usize; 2]>,
) -> Result<()> {
    let x_rows = mv(0, 0, dm.d, 1);
    for (i, (col, width, w)) in [(0, dm.wq, in_k_w), (dm.wq, dm.wvin, in_v_w)]
        .into_iter()
        .enumerate()
    {
        grouped(
            ctx,
            dm.t * dm.b,
            1,
            dm.d,
            width,
            (xt, x_rows),
            (pv, mv(w, 0, width, 1)),
            (kv, mv(first_row * dm.kvw() + col, 0, dm.kvw(), 1)),
            biases.map(|o| (pv, mv(o[i], 0, 0, 1))),
            false,
            1,
        )?;
    }
    Ok(())
}

/// Records the sequence on the tape as one node (`node` wraps `seq` in the variant's
/// backward) and returns the layer's output.
pub(super) fn record(
    tape: &mut Tape,
    ctx: &Context,
    seq: Sequence,
    node: impl FnOnce(Sequence) -> Box<dyn Backward>,
) -> Result<RimsOutput> {
    let (dm, s) = (seq.dm, &seq.saved);
    let out =
        s.hs.slice_copy(ctx, dm.b * dm.nh(), &[dm.t, dm.b, dm.nh()])?;
    let lstm = seq.cfg.cell == CellKind::Lstm;
    let (states, cells, masks) = (s.hs.clone(), lstm.then(|| s.cs.clone()), s.mask.clone());
    let h = tape.record_always(out, node(seq));
    Ok(RimsOutput {
        h,
        states,
        cells,
        masks,
    })
}
