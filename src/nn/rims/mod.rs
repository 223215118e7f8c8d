//! The RIMs sequence layer: runs a [T, B, D] input through the cell of `docs/spec.md` §1
//! (variant A), recorded as ONE tape node for the whole sequence. Every activation lives in a
//! [T, ...] buffer allocated once per call, kernels address step t by offset, and nothing is
//! read back inside the time loop.
//!
//! Where things are: this file holds the parameters ([`param_specs`]), the options and output,
//! the checks every call goes through ([`Rims::forward`]) and the product helpers both variants
//! share; `forward.rs` and `backward.rs` are variant A's two passes; `dido/` is variant D (§3),
//! the same structure with D's kernels.
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
use crate::nn::config::{CellKind, RimsConfig, Variant};
use crate::nn::params::{Init, ParamSpec, ParamStore};
use crate::ops::communication;
use crate::ops::input_attention;
use crate::ops::matmul::{self, Gemm, MatView};
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

mod backward;
mod dido;
mod forward;

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
    let (n, h, d) = (cfg.mechanisms, cfg.hidden, cfg.input);
    let wq = cfg.input_heads * cfg.input_key;
    let a = cfg.cell_input();
    let gh = cfg.gate_width();
    let wk = cfg.comm_heads * cfg.comm_key;
    let wv = cfg.comm_heads * cfg.comm_value;
    // GroupLinearLayer: 0.01·N(0, 1). LSTMCell: U(±1/√(N·H)). nn.Linear(64, H): U(±1/√64).
    let group = Init::Normal(0.0, 0.01);
    let rnn = 1.0 / ((n * h) as f32).sqrt();
    let lin = 1.0 / (wv as f32).sqrt();
    vec![
        ParamSpec::new("in_q", &[n, h, wq], group),
        ParamSpec::new("in_k_w", &[d, wq], group),
        ParamSpec::new("in_v_w", &[d, a], group),
        ParamSpec::new("rnn_wx", &[n, a, gh], Init::Uniform(-rnn, rnn)),
        ParamSpec::new("rnn_wh", &[n, h, gh], Init::Uniform(-rnn, rnn)),
        ParamSpec::new("rnn_bx", &[n, gh], Init::Uniform(-rnn, rnn)),
        ParamSpec::new("rnn_bh", &[n, gh], Init::Uniform(-rnn, rnn)),
        ParamSpec::new("comm_q", &[n, h, wk], group),
        ParamSpec::new("comm_k", &[n, h, wk], group),
        ParamSpec::new("comm_v", &[n, h, wv], group),
        ParamSpec::new("comm_fc_w", &[wv, h], Init::Uniform(-lin, lin)),
        ParamSpec::new("comm_gate_w", &[wv, h], Init::Uniform(-lin, lin)),
        ParamSpec::new("comm_fc_b", &[h], Init::Uniform(-lin, lin)),
        ParamSpec::new("comm_gate_b", &[h], Init::Uniform(-lin, lin)),
        ParamSpec::new("in_k_b", &[wq], Init::Zeros).frozen(),
        ParamSpec::new("in_v_b", &[a], Init::Zeros).frozen(),
    ]
}

/// dido's initialisation (RIM.py): nn.Linear's U(±1/√D) for the shared key and value layers
/// (weights and biases), GroupLinearLayer's 0.01·N(0, 1), `GroupLSTMCell`'s U(±1/√H), and
/// `GroupGRUCell`'s every weight 1.0.
fn dido_param_specs(cfg: &RimsConfig) -> Vec<ParamSpec> {
    let (n, h, d) = (cfg.mechanisms, cfg.hidden, cfg.input);
    let wq = cfg.input_heads * cfg.input_key;
    let wvin = cfg.input_heads * cfg.input_value;
    let a = cfg.cell_input();
    let gh = cfg.gate_width();
    let wk = cfg.comm_heads * cfg.comm_key;
    let wv = cfg.comm_heads * cfg.comm_value;
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
        ParamSpec::new("in_q", &[n, h, wq], group),
        ParamSpec::new("in_k_w", &[d, wq], Init::Uniform(-lin, lin)),
        ParamSpec::new("in_v_w", &[d, wvin], Init::Uniform(-lin, lin)),
        ParamSpec::new("in_k_b", &[wq], Init::Uniform(-lin, lin)),
        ParamSpec::new("in_v_b", &[wvin], Init::Uniform(-lin, lin)),
        ParamSpec::new("rnn_wx", &[n, a, gh], rnn),
        ParamSpec::new("rnn_wh", &[n, h, gh], rnn),
        ParamSpec::new("comm_q", &[n, h, wk], group),
        ParamSpec::new("comm_k", &[n, h, wk], group),
        ParamSpec::new("comm_v", &[n, h, wv], group),
        ParamSpec::new("comm_out_w", &[n, wv, h], group),
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
        let (t_len, b, n) = (xs[0], xs[1], cfg.mechanisms);
        let nh = n * cfg.hidden;
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
            && m.shape() != [t_len, b, n]
        {
            return Err(Error::shape(
                "rims",
                format!(
                    "mask override must be [{t_len}, {b}, {n}], got {:?}",
                    m.shape()
                ),
            ));
        }
        match cfg.variant {
            Variant::Dido => dido::forward(cfg, ctx, tape, store, x, xt, opts),
            Variant::Authors => forward::forward(cfg, ctx, tape, store, x, xt, opts),
        }
    }
}
