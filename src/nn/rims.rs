//! The RIMs sequence layer: runs a [T, B, D] input through the cell of `docs/spec.md` §1
//! (variant A), recorded as ONE tape node for the whole sequence. A variant-D config (§3) goes
//! to `rims_dido.rs`, which follows the same structure with D's kernels. Every activation lives in a
//! [T, ...] buffer allocated once per call, kernels address step t by offset, and nothing is
//! read back inside the time loop.
//!
//! Per step, forward: input attention (1 dispatch, queries and mask fused), the two grouped
//! gate matmuls (2), the gates (1), the communication projections (1 when key and value widths
//! match, else 2), the attention (1), the output and gate Linear layers (1), the merge (1):
//! 8 dispatches. Backward: merge (1), output layers (2), attention (2), projections (3),
//! gates (1), the two input products (2), input attention (1), the query product (1): 13.
//! Weight gradients are not computed per step: each is one product over all T·B rows after
//! the time loop.

use crate::device::Context;
use crate::error::{Error, Result};
use crate::layout;
use crate::nn::config::{CellKind, RimsConfig, Variant};
use crate::nn::params::{Init, ParamSpec, ParamStore};
use crate::ops::communication::{self, qkv_width};
use crate::ops::input_attention::{self, Dropout};
use crate::ops::matmul::{self, Gemm, MatView};
use crate::ops::{cell, merge};
use crate::tape::{Backward, Grads, Tape, Var};
use crate::tensor::Tensor;

/// The canonical parameters of one cell (`docs/spec.md` §4), in an order that keeps the
/// tensors that share a dispatch next to each other in the store. Variant A: `in_k_b` and
/// `in_v_b` are zero and frozen. Variant D has no recurrent biases and no shared output and gate
/// layers; its communication output is the per-mechanism `comm_out_w`.
pub fn param_specs(cfg: &RimsConfig) -> Vec<ParamSpec> {
    match cfg.variant {
        Variant::Authors => authors_param_specs(cfg),
        Variant::Dido => dido_param_specs(cfg),
    }
}

fn authors_param_specs(cfg: &RimsConfig) -> Vec<ParamSpec> {
    let (n, h) = (cfg.mechanisms, cfg.hidden);
    let wv = cfg.comm_heads * cfg.comm_value;
    // The shapes are the canonical layout's, shared with the reference.
    let layout = layout::authors(&cfg.cell_sizes());
    let spec = |name, init| ParamSpec::new(name, layout::shape(&layout, name), init);
    // GroupLinearLayer: 0.01·N(0, 1). LSTMCell: U(±1/√(N·H)). nn.Linear(64, H): U(±1/√64).
    let group = Init::Normal(0.0, 0.01);
    let rnn = 1.0 / ((n * h) as f32).sqrt();
    let lin = 1.0 / (wv as f32).sqrt();
    vec![
        spec("in_q", group),
        spec("in_k_w", group),
        spec("in_v_w", group),
        spec("rnn_wx", Init::Uniform(-rnn, rnn)),
        spec("rnn_wh", Init::Uniform(-rnn, rnn)),
        spec("rnn_bx", Init::Uniform(-rnn, rnn)),
        spec("rnn_bh", Init::Uniform(-rnn, rnn)),
        spec("comm_q", group),
        spec("comm_k", group),
        spec("comm_v", group),
        spec("comm_fc_w", Init::Uniform(-lin, lin)),
        spec("comm_gate_w", Init::Uniform(-lin, lin)),
        spec("comm_fc_b", Init::Uniform(-lin, lin)),
        spec("comm_gate_b", Init::Uniform(-lin, lin)),
        spec("in_k_b", Init::Zeros).frozen(),
        spec("in_v_b", Init::Zeros).frozen(),
    ]
}

/// dido's initialisation (RIM.py): nn.Linear's U(±1/√D) for the shared key and value layers
/// (weights and biases), GroupLinearLayer's 0.01·N(0, 1), `GroupLSTMCell`'s U(±1/√H), and
/// `GroupGRUCell`'s every weight 1.0.
fn dido_param_specs(cfg: &RimsConfig) -> Vec<ParamSpec> {
    let (h, d) = (cfg.hidden, cfg.input);
    let layout = layout::dido(&cfg.cell_sizes());
    let spec = |name, init| ParamSpec::new(name, layout::shape(&layout, name), init);
    let group = Init::Normal(0.0, 0.01);
    let lin = 1.0 / (d as f32).sqrt();
    let rnn = match cfg.cell {
        CellKind::Lstm => {
            let r = 1.0 / (h as f32).sqrt();
            Init::Uniform(-r, r)
        }
        CellKind::Gru => Init::Constant(1.0),
    };
    vec![
        spec("in_q", group),
        spec("in_k_w", Init::Uniform(-lin, lin)),
        spec("in_v_w", Init::Uniform(-lin, lin)),
        spec("in_k_b", Init::Uniform(-lin, lin)),
        spec("in_v_b", Init::Uniform(-lin, lin)),
        spec("rnn_wx", rnn),
        spec("rnn_wh", rnn),
        spec("comm_q", group),
        spec("comm_k", group),
        spec("comm_v", group),
        spec("comm_out_w", group),
    ]
}

/// Per-call options.
#[derive(Clone, Debug, Default)]
pub struct RimsOptions {
    /// Dropout seed; step t of this call draws with step index `step0 + t`.
    pub seed: u32,
    /// Step index of the call's first time step.
    pub step0: u32,
    /// Apply dropout (training) or not (evaluation).
    pub training: bool,
    /// [T, B, N] of 0/1: use these masks instead of the top-k selection.
    pub mask_override: Option<Tensor>,
    /// Initial state h_0 [B, N·H] (zeros when None).
    pub h0: Option<Tensor>,
    /// Initial cell state c_0 [B, N·H] for LSTM (zeros when None).
    pub c0: Option<Tensor>,
}

/// What a forward call returns.
pub struct RimsOutput {
    /// h_t for every step, [T, B, N·H] (on the tape).
    pub h: Var,
    /// Every state, [T+1, B, N·H] (h_0 first).
    pub states: Tensor,
    /// Every cell state for LSTM, [T+1, B, N·H].
    pub cells: Option<Tensor>,
    /// The masks, [T, B, N] (1 = active).
    pub masks: Tensor,
}

pub(super) fn mv(
    offset: usize,
    batch_stride: usize,
    row_stride: usize,
    col_stride: usize,
) -> MatView {
    MatView {
        offset,
        batch_stride,
        row_stride,
        col_stride,
        inner_stride: 0,
    }
}

pub(super) fn with_inner(v: MatView, inner_stride: usize) -> MatView {
    MatView { inner_stride, ..v }
}

/// The store offsets of the cell's parameters, and which of them can share a dispatch.
#[derive(Clone, Debug)]
struct Offsets {
    in_q: usize,
    in_k_w: usize,
    in_v_w: usize,
    rnn_wx: usize,
    rnn_wh: usize,
    rnn_bx: usize,
    rnn_bh: usize,
    comm: [usize; 3],
    fc_w: usize,
    gate_w: usize,
    fc_b: usize,
    gate_b: usize,
}

impl Offsets {
    fn of(store: &ParamStore, cfg: &RimsConfig) -> Result<Self> {
        for spec in param_specs(cfg) {
            let shape = store.shape(&spec.name)?;
            if shape != spec.shape.as_slice() {
                return Err(Error::Config {
                    field: "params",
                    reason: format!(
                        "'{}' has shape {shape:?}, the config needs {:?}",
                        spec.name, spec.shape
                    ),
                });
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

/// The communication projections at store offsets `comm` (Q, K, V) as (first projection,
/// count, stride between them): all three in one product when they have one width
/// (`same_width`) and even spacing, else Q and K together when K follows Q.
pub(super) fn comm_groups(comm: [usize; 3], same_width: bool) -> Vec<(usize, usize, usize)> {
    let [q, k, v] = comm;
    let even = k > q && v > k && k - q == v - k;
    if same_width && even {
        vec![(0, 3, k - q)]
    } else if k > q {
        vec![(0, 2, k - q), (2, 1, 0)]
    } else {
        vec![(0, 1, 0), (1, 1, 0), (2, 1, 0)]
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
    wq: usize,
    a: usize,
    gh: usize,
    wk: usize,
    wv: usize,
    w: usize,
    hc: usize,
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
            a: cfg.cell_input(),
            gh: cfg.gate_width(),
            wk: cfg.comm_heads * cfg.comm_key,
            wv: cfg.comm_heads * cfg.comm_value,
            w: qkv_width(&cfg.communication_sizes()),
            hc: cfg.comm_heads,
        }
    }

    fn nh(&self) -> usize {
        self.n * self.h
    }

    fn kvw(&self) -> usize {
        self.wq + self.a
    }

    /// Elements of one plane of the [3, T, B, N, W] projection buffers.
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
    tg: Tensor,
}

/// A grouped product over the N mechanisms: for each mechanism j, rows of A (stride
/// `a_row`) times the mechanism's weight block.
#[allow(clippy::too_many_arguments)]
pub(super) fn grouped(
    ctx: &Context,
    rows: usize,
    groups: usize,
    k: usize,
    n: usize,
    a: (&Tensor, MatView),
    b: (&Tensor, MatView),
    c: (&Tensor, MatView),
    bias: Option<(&Tensor, MatView)>,
    accumulate: bool,
    inner: usize,
) -> Result<()> {
    let g = Gemm {
        batch: groups,
        inner,
        m: rows,
        n,
        k,
        a: a.1,
        b: b.1,
        c: c.1,
        bias: bias.map(|x| x.1),
        accumulate,
    };
    matmul::gemm(ctx, &g, a.0, b.0, bias.map(|x| x.0), c.0)
}

/// The RIMs layer for one configuration. Parameters live in a [`ParamStore`] under the
/// canonical names of [`param_specs`].
#[derive(Clone, Debug)]
pub struct Rims {
    cfg: RimsConfig,
}

impl Rims {
    /// Checks the configuration.
    pub fn new(cfg: RimsConfig) -> Result<Self> {
        cfg.validate()?;
        if cfg.mechanisms > communication::MAX_N {
            return Err(Error::Config {
                field: "mechanisms",
                reason: format!("at most {}", communication::MAX_N),
            });
        }
        if cfg.mechanisms * cfg.input_heads > input_attention::MAX_SCORES {
            return Err(Error::Config {
                field: "input_heads",
                reason: format!(
                    "mechanisms × input heads must be at most {}",
                    input_attention::MAX_SCORES
                ),
            });
        }
        Ok(Rims { cfg })
    }

    /// The sizes this layer was built with.
    pub fn config(&self) -> &RimsConfig {
        &self.cfg
    }

    /// Runs the whole sequence `x` [T, B, D] from `opts.h0` (and `c0`), recorded on `tape` as one node whose backward accumulates into `store`'s gradients.
    pub fn forward(
        &self,
        ctx: &Context,
        tape: &mut Tape,
        store: &ParamStore,
        x: Var,
        opts: &RimsOptions,
    ) -> Result<RimsOutput> {
        let cfg = &self.cfg;
        let xt = tape.value(x).clone();
        let xs = xt.shape();
        if xs.len() != 3 || xs[2] != cfg.input || xs[0] == 0 || xs[1] == 0 {
            return Err(Error::shape(
                "rims",
                format!("x must be [T, B, {}] with T, B > 0, got {xs:?}", cfg.input),
            ));
        }
        let dm = Dims::new(cfg, xs[0], xs[1]);
        let (t_len, b) = (dm.t, dm.b);
        let nh = dm.nh();
        let (h0, c0) = (opts.h0.as_ref(), opts.c0.as_ref());
        for (name, s) in [("h0", h0), ("c0", c0)] {
            if let Some(s) = s
                && s.len() != b * nh
            {
                return Err(Error::shape(
                    "rims",
                    format!(
                        "{name} must have B·N·H = {} values, got {:?}",
                        b * nh,
                        s.shape()
                    ),
                ));
            }
        }
        if let Some(m) = &opts.mask_override
            && m.shape() != [t_len, b, dm.n]
        {
            return Err(Error::shape(
                "rims",
                format!(
                    "mask override must be [{t_len}, {b}, {}], got {:?}",
                    dm.n,
                    m.shape()
                ),
            ));
        }
        if cfg.variant == Variant::Dido {
            return super::rims_dido::forward(cfg, ctx, tape, store, x, xt, opts);
        }
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
        if let Some(h0) = h0 {
            hs.copy_from(ctx, h0, 0)?;
        }
        if let (Some(c0), true) = (c0, lstm) {
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
            self.output_layers(ctx, &off, dm, t, pv, &ctxb, &og)?;
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
        &self,
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
}

/// The tape node of a whole sequence.
struct RimsNode {
    cfg: RimsConfig,
    dm: Dims,
    off: Offsets,
    x: Var,
    saved: Saved,
    store_values: Tensor,
    store_grads: Tensor,
    opts: RimsOptions,
}

impl Backward for RimsNode {
    fn backward(self: Box<Self>, ctx: &Context, g: Tensor, grads: &mut Grads) -> Result<()> {
        let RimsNode {
            cfg,
            dm,
            off,
            x,
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
        let dhpc_at = 2 * b * n * h;
        let du = un(&[b, n, dm.a])?;
        let dctx = un(&[b, n, dm.wv])?;
        let ds = un(&[b, dm.hc, n, n])?;
        let dog = un(&[t_len, b * n, 2, h])?;
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
        let dkv = un(&[t_len, b, dm.kvw()])?;
        let p = if opts.training { cfg.dropout } else { 0.0 };
        let cell_dims = cell::Dims {
            batch: b,
            units: n,
            hidden: h,
        };
        let carry = if lstm { &dc } else { &dh };

        for t in (0..t_len).rev() {
            let drop = Dropout {
                seed: opts.seed,
                step: opts.step0.wrapping_add(t as u32),
                p,
            };
            let mb = merge::Backward {
                residual: merge::Residual::Gated,
                mask: &s.mask,
                dh_out: &g,
                tg: &s.tg,
                dh: &dh,
                dc: &dc,
                dres: &dres,
                dog: &dog,
            };
            merge::backward(ctx, cfg.cell, b, n, h, t, drop, &mb)?;
            // dctx = do·W_fcᵀ + dg·W_gᵀ.
            for (j, w) in [off.fc_w, off.gate_w].into_iter().enumerate() {
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
                matmul::gemm(ctx, &gm, &dog, &pv, None, &dctx)?;
            }
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
                None,
            )?;
            // Communication's gradient into h': Σ over Q, K, V of dP·W_Pᵀ, per mechanism.
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
            input_attention::backward(ctx, &cfg.input_attention_sizes(), b, t, drop, &ib)?;
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
        let dz = [&dzx, dzh];
        weight_gradients(ctx, dm, &off, &s, &pg, dz, &dq, &dkv, &dqkv, &dog)?;
        if grads.wants(x) {
            // dx = d(k)·W_kᵀ + d(v)·W_vᵀ over all T·B rows.
            let dx = un(&[t_len, b, dm.d])?;
            let rows = t_len * b;
            grouped(
                ctx,
                rows,
                1,
                dm.wq,
                dm.d,
                (&dkv, mv(0, 0, dm.kvw(), 1)),
                (&pv, mv(off.in_k_w, 0, dm.wq, 1).t()),
                (&dx, mv(0, 0, dm.d, 1)),
                None,
                false,
                1,
            )?;
            grouped(
                ctx,
                rows,
                1,
                dm.a,
                dm.d,
                (&dkv, mv(dm.wq, 0, dm.kvw(), 1)),
                (&pv, mv(off.in_v_w, 0, dm.a, 1).t()),
                (&dx, mv(0, 0, dm.d, 1)),
                None,
                true,
                1,
            )?;
            grads.add(ctx, x, dx)?;
        }
        Ok(())
    }
}

/// Every parameter gradient, each one product over all T·B rows (accumulated into the store).
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
    // in_q: Σ h_{t-1}ᵀ dq.
    grouped(
        ctx,
        h,
        n,
        rows,
        dm.wq,
        (&s.hs, per_mech_t(0, h)),
        (dq, mv(0, dm.wq, n * dm.wq, 1)),
        (pg, mv(off.in_q, h * dm.wq, dm.wq, 1)),
        None,
        true,
        1,
    )?;
    // in_k_w, in_v_w: xᵀ d(k | v).
    let x_t = mv(0, 0, 1, dm.d);
    grouped(
        ctx,
        dm.d,
        1,
        rows,
        dm.wq,
        (&s.x, x_t),
        (dkv, mv(0, 0, dm.kvw(), 1)),
        (pg, mv(off.in_k_w, 0, dm.wq, 1)),
        None,
        true,
        1,
    )?;
    grouped(
        ctx,
        dm.d,
        1,
        rows,
        dm.a,
        (&s.x, x_t),
        (dkv, mv(dm.wq, 0, dm.kvw(), 1)),
        (pg, mv(off.in_v_w, 0, dm.a, 1)),
        None,
        true,
        1,
    )?;
    // rnn_wx: Σ uᵀ dzx; rnn_wh: Σ h_{t-1}ᵀ dzh.
    grouped(
        ctx,
        dm.a,
        n,
        rows,
        dm.gh,
        (&s.u, per_mech_t(0, dm.a)),
        (dz[0], mv(0, dm.gh, n * dm.gh, 1)),
        (pg, mv(off.rnn_wx, dm.a * dm.gh, dm.gh, 1)),
        None,
        true,
        1,
    )?;
    grouped(
        ctx,
        h,
        n,
        rows,
        dm.gh,
        (&s.hs, per_mech_t(0, h)),
        (dz[1], mv(0, dm.gh, n * dm.gh, 1)),
        (pg, mv(off.rnn_wh, h * dm.gh, dm.gh, 1)),
        None,
        true,
        1,
    )?;
    // Biases: column sums as products with a row of ones.
    let ones = Tensor::full(ctx, &[rows * n], 1.0)?;
    for (plane, o) in [(dz[0], off.rnn_bx), (dz[1], off.rnn_bh)] {
        grouped(
            ctx,
            1,
            1,
            rows,
            n * dm.gh,
            (&ones, mv(0, 0, rows, 1)),
            (plane, mv(0, 0, n * dm.gh, 1)),
            (pg, mv(o, 0, n * dm.gh, 1)),
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
    // Output and gate layers: Σ ctxᵀ d(o | g) over T·B·N rows, and their biases.
    let bn_rows = rows * n;
    for (j, (w, bias)) in [(off.fc_w, off.fc_b), (off.gate_w, off.gate_b)]
        .into_iter()
        .enumerate()
    {
        grouped(
            ctx,
            dm.wv,
            1,
            bn_rows,
            h,
            (&s.ctxb, mv(0, 0, 1, dm.wv)),
            (dog, mv(j * h, 0, 2 * h, 1)),
            (pg, mv(w, 0, h, 1)),
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
            (dog, mv(j * h, 0, 2 * h, 1)),
            (pg, mv(bias, 0, h, 1)),
            None,
            true,
            1,
        )?;
    }
    Ok(())
}
