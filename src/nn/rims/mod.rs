//! The RIMs sequence layer: runs a [T, B, D] input through the cell of `docs/spec.md` §1
//! (variant A), recorded as ONE tape node for the whole sequence. Every activation lives in a
//! [T, ...] buffer allocated once per call, kernels address step t by offset, and nothing is
//! read back inside the time loop.
//!
//! Where things are: this file holds the parameters ([`param_specs`]), the options and output,
//! the checks every call goes through ([`Rims::forward`]) and the product helpers both variants
//! share; `forward.rs` and `backward.rs` are the two passes of both variants, generic over
//! `VariantSteps`; `authors.rs` (variant A) and `dido.rs` (variant D, §3) hold only what each
//! variant does differently.
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
use crate::nn::recurrent::Start;
use crate::ops::matmul::{self, Gemm, MatView};
use crate::tape::{Grads, Tape, Var};
use crate::tensor::Tensor;

mod authors;
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
///
/// The initial state comes from `h0`/`c0` (tensors, no gradient) or from `h0_var`/`c0_var`
/// (values on the tape, which receive dL/dh_0 and dL/dc_0 in the backward, as truncated BPTT
/// across segments needs): at most one of each pair, both [B, N·H] in any shape with that many
/// values. Zeros when neither is given.
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
    /// Initial state h_0 [B, N·H], no gradient (zeros when None).
    pub h0: Option<Tensor>,
    /// Initial cell state c_0 [B, N·H] for LSTM, no gradient (zeros when None; a GRU ignores it).
    pub c0: Option<Tensor>,
    /// Initial state h_0 as a tape value (e.g. [`Tape::input`], or the last state of the
    /// previous segment sliced from its `h`): dL/dh_0 is added to it. Excludes `h0`.
    pub h0_var: Option<Var>,
    /// Initial cell state c_0 as a tape value, LSTM only (an error for a GRU, which has no cell
    /// state): dL/dc_0 is added to it. Excludes `c0`.
    pub c0_var: Option<Var>,
}

impl RimsOptions {
    /// These options starting from `h0` and `c0` given as the dense layers take them
    /// ([`Start`]), replacing any initial state set before.
    pub fn with_start(self, h0: Start, c0: Start) -> Self {
        let (h0, h0_var) = h0.into_parts();
        let (c0, c0_var) = c0.into_parts();
        RimsOptions {
            h0,
            h0_var,
            c0,
            c0_var,
            ..self
        }
    }

    /// The initial state as the dense layers take it: `(h0, c0)`. An error when a pair gives
    /// both a tensor and a tape value.
    pub fn start(&self) -> Result<(Start, Start)> {
        Ok((
            Start::from_parts("h0", self.h0.clone(), self.h0_var)?,
            Start::from_parts("c0", self.c0.clone(), self.c0_var)?,
        ))
    }
}

/// What a forward call returns. `h` starts at step 1, `states` and `cells` at step 0: for
/// t in 1..=T, h_t is row t−1 of `h` and row t of `states`; row 0 of `states` (and of `cells`)
/// is the initial state the call started from, row T the final one ([`RimsOutput::final_state`]).
pub struct RimsOutput {
    /// h_1 … h_T, [T, B, N·H] (on the tape: the value losses are built from).
    pub h: Var,
    /// h_T, [B, N·H], on the tape as a second output of the layer: a loss on it (or on the
    /// next segment's state, in truncated BPTT) flows back through the sequence. The same
    /// values as the last row of `h`; their gradients add.
    pub final_h: Var,
    /// c_T for LSTM, [B, N·H], on the tape like `final_h` (None for GRU): the cell state a
    /// next segment starts from with `c0_var`, whose gradient dL/dc_T then reaches this one.
    pub final_c: Option<Var>,
    /// h_0 … h_T, [T+1, B, N·H] (not on the tape).
    pub states: Tensor,
    /// c_0 … c_T for LSTM, [T+1, B, N·H] (not on the tape); None for GRU.
    pub cells: Option<Tensor>,
    /// The masks of steps 1 … T, [T, B, N] (1 = active).
    pub masks: Tensor,
}

impl RimsOutput {
    /// The final state (h_T, and c_T for LSTM), each [B, N·H]: copies of row T of `states` and
    /// `cells` (recorded like any op), what a call on the following segment takes as `h0` and
    /// `c0`. A copy, not a view: views must start on an aligned offset, row T need not.
    ///
    /// ```
    /// # fn main() -> rims::Result<()> {
    /// use rims::nn::{ParamStore, Rims, RimsConfig, RimsOptions};
    /// use rims::tape::Tape;
    /// let ctx = rims::Context::new(rims::DeviceRequest::cpu(Some(1)))?;
    /// let cfg = RimsConfig { hidden: 4, input: 3, mechanisms: 3, active: 2, ..Default::default() };
    /// let rims = Rims::new(cfg.clone())?;
    /// let store = ParamStore::new(&ctx, &rims::nn::rims::param_specs(&cfg), 7)?;
    /// let (t, b, nh) = (5, 2, 3 * 4);
    /// let mut tape = Tape::untracked();
    /// let x = tape.constant(rims::Tensor::full(&ctx, &[t, b, 3], 0.5)?);
    /// let out = rims.forward(&ctx, &mut tape, &store, x, &RimsOptions::default())?;
    /// let (h_last, c_last) = out.final_state(&ctx)?;
    /// assert_eq!(h_last.shape(), &[b, nh]);
    /// // h_T is the last row of `h` and of `states`; row 0 of `states` is h_0 (zeros here).
    /// let h = tape.value(out.h).to_vec(&ctx)?;
    /// assert_eq!(h_last.to_vec(&ctx)?, h[(t - 1) * b * nh..]);
    /// assert!(out.states.to_vec(&ctx)?[..b * nh].iter().all(|&v| v == 0.0));
    /// assert_eq!(c_last.map(|c| c.shape().to_vec()), Some(vec![b, nh])); // the default cell is an LSTM
    /// # Ok(())
    /// # }
    /// ```
    pub fn final_state(&self, ctx: &Context) -> Result<(Tensor, Option<Tensor>)> {
        let s = self.states.shape();
        let (t, row) = (s[0] - 1, [s[1], s[2]]);
        let at = t * row[0] * row[1];
        let last = |all: &Tensor| all.slice_copy(ctx, at, &row);
        let c = self.cells.as_ref().map(last).transpose()?;
        Ok((last(&self.states)?, c))
    }
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
    /// Checks the configuration ([`RimsConfig::validate`], where every size rule lives).
    pub fn new(cfg: RimsConfig) -> Result<Self> {
        cfg.validate()?;
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
        let lstm = cfg.cell == CellKind::Lstm;
        if opts.c0_var.is_some() && !lstm {
            return Err(Error::invalid(
                "rims",
                "c0_var: GRU cells have no cell state",
            ));
        }
        let (h0, h0_var) = initial(tape, "h0", opts.h0.as_ref(), opts.h0_var, b * nh)?;
        let (c0, c0_var) = initial(tape, "c0", opts.c0.as_ref(), opts.c0_var, b * nh)?;
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
        let call = Call {
            x,
            xt,
            h0,
            c0,
            state_vars: StateVars { h0_var, c0_var },
        };
        match cfg.variant {
            Variant::Dido => forward::forward::<dido::Dido>(cfg, ctx, tape, store, call, opts),
            Variant::Authors => {
                forward::forward::<authors::Authors>(cfg, ctx, tape, store, call, opts)
            }
        }
    }
}

/// One call's inputs, checked: the sequence and the initial state to copy into row 0 of the
/// states (None: zeros).
struct Call {
    x: Var,
    xt: Tensor,
    h0: Option<Tensor>,
    c0: Option<Tensor>,
    state_vars: StateVars,
}

/// The tape values the initial state came from, with their shapes: where the backward puts
/// dL/dh_0 and dL/dc_0.
struct StateVars {
    h0_var: Option<StateVar>,
    c0_var: Option<StateVar>,
}

/// A tape value holding an initial state, and its shape (the gradient is added in it).
type StateVar = (Var, Vec<usize>);

impl StateVars {
    /// Adds `dh` and `dc` ([B, N·H], the backward's carries after step 1, i.e. dL/dh_0 and
    /// dL/dc_0) to the values that want them, in each value's own shape.
    fn add(self, ctx: &Context, grads: &mut Grads, dh: Tensor, dc: Tensor) -> Result<()> {
        for (var, g) in [(self.h0_var, dh), (self.c0_var, dc)] {
            if let Some((v, shape)) = var
                && grads.wants(v)
            {
                grads.add(ctx, v, g.reshape(&shape)?)?;
            }
        }
        Ok(())
    }
}

/// The initial state `name` from its tensor or its tape value (at most one), checked to hold
/// `len` values; with the value's shape when it came from the tape.
fn initial(
    tape: &Tape,
    name: &str,
    tensor: Option<&Tensor>,
    var: Option<Var>,
    len: usize,
) -> Result<(Option<Tensor>, Option<StateVar>)> {
    let value = match (tensor, var) {
        (Some(_), Some(_)) => {
            return Err(Error::invalid(
                "rims",
                format!("give {name} or {name}_var, not both"),
            ));
        }
        (Some(t), None) => Some(t.clone()),
        (None, Some(v)) => Some(tape.value(v).clone()),
        (None, None) => None,
    };
    if let Some(s) = &value
        && s.len() != len
    {
        return Err(Error::shape(
            "rims",
            format!("{name} must have B·N·H = {len} values, got {:?}", s.shape()),
        ));
    }
    let var = var.map(|v| (v, tape.value(v).shape().to_vec()));
    Ok((value, var))
}
