//! The forward of a whole sequence, one loop for both variants (the step order is in
//! `nn::rims`'s docs): the states, the gates, the communication and the merge are the same
//! kernels in both; what a variant does differently (its input attention, its output layer, its
//! parameters) comes from its [`VariantSteps`]. Also the offsets, sizes and saved activations
//! the backward shares.

use super::backward::{Finals, SequenceNode, WeightGrads};
use super::{Call, RimsOptions, RimsOutput, comm_groups, grouped, mv, param_specs, with_inner};
use crate::device::Context;
use crate::error::{Error, Result};
use crate::nn::config::{CellKind, RimsConfig, Variant};
use crate::nn::params::ParamStore;
use crate::ops::communication::{self, RowMask, qkv_width};
use crate::ops::input_attention::{self, Dropout};
use crate::ops::{cell, merge};
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

/// What one variant (spec.md §3) does differently inside the shared sequence loops. The
/// forward calls, per step: `ATTEND`, the gates (with `gate_biases`), the communication (with
/// the row mask when `ROW_MASK`), `output_layer`, the merge (with `RESIDUAL`); the backward
/// mirrors them.
pub(super) trait VariantSteps: Sized + Send + 'static {
    /// The merge's residual: A gates h' + o, D adds it.
    const RESIDUAL: merge::Residual;
    /// Whether the communication masks rows by m_i and drops out P (D) or not (A).
    const ROW_MASK: bool;
    /// The store offsets of the parameters only this variant has.
    fn of(store: &ParamStore) -> Result<Self>;
    /// The shapes of the buffers whose layout is the variant's own.
    fn layouts(cfg: &RimsConfig, dm: Dims) -> Layouts;
    /// Fills kv with every input's keys and values, before the time loop.
    fn project_inputs(
        &self,
        ctx: &Context,
        store: &ParamStore,
        off: &Offsets,
        dm: Dims,
        xt: &Tensor,
        kv: &Tensor,
    ) -> Result<()>;
    /// The input attention of step t (queries, mask, cell input u): the kernel entry of
    /// `ops::input_attention` for this variant's layouts.
    const ATTEND: Attend;
    /// Its backward of step t (dq and dkv).
    const ATTEND_BACKWARD: AttendBackward;
    /// The store offsets of (b_x, b_h), if the gate products have biases.
    fn gate_biases(&self) -> Option<[usize; 2]>;
    /// og of step t from the communication's ctx.
    fn output_layer(
        &self,
        ctx: &Context,
        dm: Dims,
        t: usize,
        pv: &Tensor,
        ctxb: &Tensor,
        og: &Tensor,
    ) -> Result<()>;
    /// Row width of dkv: the keys' and values' gradients and whatever else the variant keeps.
    fn dkv_width(dm: Dims) -> usize;
    /// dctx of step t from dog.
    fn output_layer_backward(
        &self,
        ctx: &Context,
        dm: Dims,
        t: usize,
        pv: &Tensor,
        dog: &Tensor,
        dctx: &Tensor,
    ) -> Result<()>;
    /// Every parameter gradient, after the time loop, in the variant's order (the shared ones
    /// are [`WeightGrads`]'s methods).
    fn weight_gradients(&self, ctx: &Context, w: &WeightGrads) -> Result<()>;
}

/// An input-attention forward entry (`ops::input_attention::forward` or `forward_dido`).
pub(super) type Attend = fn(
    &Context,
    &input_attention::Sizes,
    usize,
    usize,
    Dropout,
    &input_attention::Forward<'_>,
) -> Result<()>;

/// An input-attention backward entry (`ops::input_attention::backward` or `backward_dido`).
pub(super) type AttendBackward = fn(
    &Context,
    &input_attention::Sizes,
    usize,
    usize,
    Dropout,
    &input_attention::Backward<'_>,
) -> Result<()>;

/// The shapes of the buffers a variant lays out its own way.
pub(super) struct Layouts {
    pub(super) kv: Vec<usize>,
    pub(super) alpha: Vec<usize>,
    /// og, and dog in the backward.
    pub(super) og: Vec<usize>,
    /// The merge's tg (a placeholder where the merge does not use it).
    pub(super) tg: Vec<usize>,
}

/// The store offsets of the parameters both variants have, after checking every parameter's
/// shape against the config.
#[derive(Clone, Debug)]
pub(super) struct Offsets {
    pub(super) in_q: usize,
    pub(super) in_k_w: usize,
    pub(super) in_v_w: usize,
    pub(super) rnn_wx: usize,
    pub(super) rnn_wh: usize,
    pub(super) comm: [usize; 3],
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
            comm: [o("comm_q")?, o("comm_k")?, o("comm_v")?],
        })
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
    /// h_in·d_k.
    pub(super) wq: usize,
    /// The width of the values in kv: the cell input in A, h_in·d_vin in D (whose heads are
    /// averaged into the cell input).
    pub(super) vw: usize,
    /// The cell input of a mechanism.
    pub(super) a: usize,
    pub(super) gh: usize,
    pub(super) wk: usize,
    /// h_c·d_v.
    pub(super) wv: usize,
    pub(super) w: usize,
    pub(super) hc: usize,
}

impl Dims {
    pub(super) fn new(cfg: &RimsConfig, t: usize, b: usize) -> Self {
        let vw = match cfg.variant {
            Variant::Authors => cfg.cell_input(),
            Variant::Dido => cfg.input_heads * cfg.input_value,
        };
        Dims {
            t,
            b,
            n: cfg.mechanisms,
            h: cfg.hidden,
            d: cfg.input,
            wq: cfg.input_heads * cfg.input_key,
            vw,
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
        self.wq + self.vw
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

/// The dropout of step t: both variants draw from (seed, step0 + t), and only when training.
pub(super) fn dropout(opts: &RimsOptions, cfg: &RimsConfig, t: usize) -> Dropout {
    Dropout {
        seed: opts.seed,
        step: opts.step0.wrapping_add(t as u32),
        p: if opts.training { cfg.dropout } else { 0.0 },
    }
}

/// The forward of a whole sequence in variant `V`; `x` [T, B, D] and the options were checked
/// by the caller.
pub(super) fn forward<V: VariantSteps>(
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
    let own = V::of(store)?;
    let layouts = V::layouts(cfg, dm);
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
    let kv = un(&layouts.kv)?;
    let q = un(&[t_len, b, n, dm.wq])?;
    let alpha = un(&layouts.alpha)?;
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
    let probs = un(&[t_len, b, dm.hc, n, n])?;
    let ctxb = un(&[t_len, b, n, dm.wv])?;
    let og = un(&layouts.og)?;
    let tg = un(&layouts.tg)?;

    own.project_inputs(ctx, store, &off, dm, &xt, &kv)?;

    let cell_dims = cell::Dims {
        batch: b,
        units: n,
        hidden: h,
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
    let sizes = cfg.input_attention_sizes();
    let bias = |o: usize| (pv, mv(o, dm.gh, 0, 1));
    let gate_biases = own.gate_biases();
    for t in 0..t_len {
        let drop = dropout(opts, cfg, t);
        V::ATTEND(ctx, &sizes, b, t, drop, &attention)?;
        // Gate pre-activations: zx = u·W_x (+ b_x), zh = h·W_h (+ b_h), per mechanism.
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
            gate_biases.map(|[bx, _]| bias(bx)),
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
            gate_biases.map(|[_, bh]| bias(bh)),
            false,
            1,
        )?;
        cell::forward(
            ctx, cfg.cell, cell_dims, t, &zx, &zh, &hs, &cs, &act, &hp, &cp,
        )?;
        // Communication projections of h' (one product for Q, K and V when possible).
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
        let row_mask = V::ROW_MASK.then_some(RowMask {
            mask: &mask,
            dropout: drop,
        });
        communication::forward(
            ctx,
            &cfg.communication_sizes(),
            b,
            t_len,
            t,
            &qkv,
            &probs,
            &ctxb,
            row_mask,
        )?;
        own.output_layer(ctx, dm, t, pv, &ctxb, &og)?;
        let f = merge::Forward {
            residual: V::RESIDUAL,
            og: &og,
            hp: &hp,
            cp: &cp,
            mask: &mask,
            hs: &hs,
            cs: &cs,
            tg: &tg,
        };
        merge::forward(ctx, cfg.cell, b, n, h, t, drop, &f)?;
    }
    let out = hs.slice_copy(ctx, b * nh, &[t_len, b, nh])?;
    // h_T and c_T as outputs of the node, so a loss on the final state (a carried state's
    // gradient, in truncated BPTT) reaches the backward's carries.
    let last = |all: &Tensor| all.slice_copy(ctx, t_len * b * nh, &[b, nh]);
    let final_h = tape.extra_output(last(&hs)?);
    let final_c = if lstm {
        Some(tape.extra_output(last(&cs)?))
    } else {
        None
    };
    let extra: Vec<Var> = std::iter::once(final_h).chain(final_c).collect();
    let finals = Finals {
        h: final_h,
        c: final_c,
    };
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
    let node = SequenceNode {
        cfg: cfg.clone(),
        dm,
        off,
        own,
        x,
        state_vars,
        saved,
        store_values: pv.clone(),
        store_grads: store.flat_grads().clone(),
        opts: opts.clone(),
        finals,
    };
    let h_var = tape.record_with_outputs(out, &extra, Box::new(node));
    Ok(RimsOutput {
        h: h_var,
        final_h,
        final_c,
        states: hs,
        cells: lstm.then_some(cs),
        masks: mask,
    })
}
