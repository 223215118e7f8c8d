//! Dense LSTM and GRU sequence layers, the paper's baselines, on the same engine as RIMs: a
//! [T, B, D] input runs through PyTorch's LSTMCell or GRUCell (gate orders [i, f, g, o] and
//! [r, z, n]), recorded as ONE tape node for the whole sequence. Oracle: `reference::recurrent`;
//! gate kernels: `ops::recurrent`.
//!
//! Forward: x·Wx + bx for every step is one product over all T·B rows before the loop; per step
//! one product h·Wh + bh (LSTM: accumulated onto the step's x·Wx + bx) and one gate kernel that
//! writes h_t (and c_t) straight into the [T+1, B, H] state buffers: 2 dispatches per step.
//! Backward per step: one gate kernel (dz of the step and the carried gradients) and one
//! product dh_{t-1} (+)= dzh·Whᵀ: 2 dispatches (1 at t = 0). The weight and bias gradients and
//! dx are single products over all T·B rows after the loop.

use crate::device::Context;
use crate::error::{Error, Result};
use crate::nn::config::CellKind;
use crate::nn::params::{Init, ParamSpec, ParamStore};
use crate::ops::elementwise;
use crate::ops::matmul::{self, Gemm, MatView};
use crate::ops::recurrent::{self, Dims};
use crate::tape::{Backward, Grads, Tape, Var};
use crate::tensor::{DType, Tensor, VIEW_ALIGN};

/// A dense LSTM or GRU layer of `hidden` units over inputs of `input` features. Parameters
/// live in a [`ParamStore`] under the names of [`Recurrent::param_specs`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recurrent {
    /// LSTM or GRU.
    pub kind: CellKind,
    /// D: input features.
    pub input: usize,
    /// H: hidden units.
    pub hidden: usize,
}

/// Where a sequence's state (h_0, or c_0 of an LSTM) starts.
#[derive(Clone, Debug, Default)]
pub enum Start {
    /// Zeros.
    #[default]
    Zeros,
    /// A tensor [B, H], not on the tape: no gradient reaches it.
    Given(Tensor),
    /// A tape value of B·H values: dL/dh_0 (dL/dc_0) is added to it, so a sequence can start
    /// where a previous step of the tape left off (recurrent PPO steps one frame at a time and
    /// resets the state between episodes).
    Tape(Var),
}

impl Start {
    /// From a tensor or a tape value (the form [`RimsOptions`](crate::nn::RimsOptions) keeps
    /// them in): at most one of the two, Zeros when neither. `name` is the state's, for the error.
    pub fn from_parts(name: &str, tensor: Option<Tensor>, var: Option<Var>) -> Result<Start> {
        match (tensor, var) {
            (Some(_), Some(_)) => Err(Error::invalid(
                "model",
                format!("give {name} or {name}_var, not both"),
            )),
            (Some(t), None) => Ok(Start::Given(t)),
            (None, Some(v)) => Ok(Start::Tape(v)),
            (None, None) => Ok(Start::Zeros),
        }
    }

    /// The tensor or the tape value, as [`RimsOptions`](crate::nn::RimsOptions) keeps them.
    pub fn into_parts(self) -> (Option<Tensor>, Option<Var>) {
        match self {
            Start::Zeros => (None, None),
            Start::Given(t) => (Some(t), None),
            Start::Tape(v) => (None, Some(v)),
        }
    }

    /// The tensor to copy into row 0, and the tape value (with its shape) the gradient goes to.
    fn resolve(self, tape: &Tape) -> (Option<Tensor>, Option<(Var, Vec<usize>)>) {
        match self {
            Start::Zeros => (None, None),
            Start::Given(t) => (Some(t), None),
            Start::Tape(v) => {
                let t = tape.value(v).clone();
                let shape = t.shape().to_vec();
                (Some(t), Some((v, shape)))
            }
        }
    }
}

/// What [`Recurrent::forward`] returns.
pub struct RecurrentOutput {
    /// h_t for every step, [T, B, H] (on the tape).
    pub h: Var,
    /// h_T, [B, H], on the tape as a second output: a loss on it, or on a next call started
    /// from it with [`Start::Tape`], flows back through the sequence (its gradient adds to
    /// that of the last row of `h`).
    pub final_h: Var,
    /// c_T for LSTM, [B, H], on the tape like `final_h`; None for GRU.
    pub final_c: Option<Var>,
    /// Every state, [T+1, B, H] (h_0 first).
    pub states: Tensor,
    /// Every cell state for LSTM, [T+1, B, H] (c_0 first); None for GRU.
    pub cells: Option<Tensor>,
}

fn mv(offset: usize, row_stride: usize, col_stride: usize) -> MatView {
    MatView {
        offset,
        batch_stride: 0,
        row_stride,
        col_stride,
        inner_stride: 0,
    }
}

/// One (non-batched) product C (+)= A·B (+ bias) over views.
fn product(
    ctx: &Context,
    (m, n, k): (usize, usize, usize),
    a: (&Tensor, MatView),
    b: (&Tensor, MatView),
    c: (&Tensor, MatView),
    bias: Option<(&Tensor, MatView)>,
    accumulate: bool,
) -> Result<()> {
    let g = Gemm {
        batch: 1,
        inner: 1,
        m,
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

/// Where the layer's parameters start in the store's flat buffers.
#[derive(Clone, Copy, Debug)]
struct Offsets {
    wx: usize,
    wh: usize,
    bx: usize,
    bh: usize,
}

impl Recurrent {
    /// A layer, checked.
    pub fn new(kind: CellKind, input: usize, hidden: usize) -> Result<Self> {
        let layer = Recurrent {
            kind,
            input,
            hidden,
        };
        layer.validate()?;
        Ok(layer)
    }

    /// Errors for zero sizes.
    pub fn validate(&self) -> Result<()> {
        if self.input == 0 {
            return Err(Error::config(
                "input",
                "a recurrent layer needs at least one input feature",
            ));
        }
        if self.hidden == 0 {
            return Err(Error::config(
                "hidden",
                "a recurrent layer needs at least one hidden unit",
            ));
        }
        Ok(())
    }

    /// G·H: 4H for LSTM, 3H for GRU.
    pub fn gate_width(&self) -> usize {
        self.kind.gates() * self.hidden
    }

    /// The parameters `<prefix>wx` [D, G·H], `<prefix>wh` [H, G·H], `<prefix>bx` [G·H] and
    /// `<prefix>bh` [G·H] (weights stored [in, out]), initialised U(±1/√H) like PyTorch's.
    /// The biases are adjacent so that one product computes both gradients.
    pub fn param_specs(&self, prefix: &str) -> Vec<ParamSpec> {
        let (d, h, gw) = (self.input, self.hidden, self.gate_width());
        let k = 1.0 / (h.max(1) as f32).sqrt();
        let init = Init::Uniform(-k, k);
        vec![
            ParamSpec::new(&format!("{prefix}wx"), &[d, gw], init),
            ParamSpec::new(&format!("{prefix}wh"), &[h, gw], init),
            ParamSpec::new(&format!("{prefix}bx"), &[gw], init),
            ParamSpec::new(&format!("{prefix}bh"), &[gw], init),
        ]
    }

    fn offsets(&self, store: &ParamStore, prefix: &str) -> Result<Offsets> {
        for spec in self.param_specs(prefix) {
            let shape = store.shape(&spec.name)?;
            if shape != spec.shape.as_slice() {
                return Err(Error::config(
                    "params",
                    format!(
                        "'{}' has shape {shape:?}, the layer needs {:?}",
                        spec.name, spec.shape
                    ),
                ));
            }
        }
        let o = |n: &str| store.offset(&format!("{prefix}{n}"));
        Ok(Offsets {
            wx: o("wx")?,
            wh: o("wh")?,
            bx: o("bx")?,
            bh: o("bh")?,
        })
    }

    /// Runs the whole sequence `x` [T, B, D] from `h0` (and, LSTM, `c0`), both [B, H] or
    /// zeros when None. Recorded on `tape` as one node whose backward accumulates the
    /// parameters' gradients into `store`'s flat gradient buffer and, if `x` wants one, adds
    /// dx. Everything is checked before anything is recorded.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        ctx: &Context,
        tape: &mut Tape,
        store: &ParamStore,
        x: Var,
        prefix: &str,
        h0: Option<Tensor>,
        c0: Option<Tensor>,
    ) -> Result<RecurrentOutput> {
        let start = |s: Option<Tensor>| s.map_or(Start::Zeros, Start::Given);
        self.forward_from(ctx, tape, store, x, prefix, start(h0), start(c0))
    }

    /// [`Recurrent::forward`] with the initial states given as [`Start`]s: one on the tape
    /// receives its gradient in the backward.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_from(
        &self,
        ctx: &Context,
        tape: &mut Tape,
        store: &ParamStore,
        x: Var,
        prefix: &str,
        h0: Start,
        c0: Start,
    ) -> Result<RecurrentOutput> {
        const OP: &str = "recurrent";
        let (h0, h0_var) = h0.resolve(tape);
        let (c0, c0_var) = c0.resolve(tape);
        self.validate()?;
        let xt = tape.value(x).clone();
        xt.expect_dtype(OP, DType::F32)?;
        let xs = xt.shape();
        if xs.len() != 3 || xs[2] != self.input || xs[0] == 0 || xs[1] == 0 {
            return Err(Error::shape(
                OP,
                format!("x must be [T, B, {}] with T, B > 0, got {xs:?}", self.input),
            ));
        }
        let (t_len, b, h, d) = (xs[0], xs[1], self.hidden, self.input);
        let dims = Dims {
            kind: self.kind,
            steps: t_len,
            batch: b,
            hidden: h,
        };
        dims.validate(OP)?;
        let lstm = self.kind == CellKind::Lstm;
        if c0.is_some() && !lstm {
            return Err(Error::invalid(OP, "c0 is only for LSTM layers"));
        }
        for (name, s) in [("h0", &h0), ("c0", &c0)] {
            if let Some(s) = s {
                s.expect_dtype(OP, DType::F32)?;
                if s.len() != b * h {
                    return Err(Error::shape(
                        OP,
                        format!(
                            "{name} must have B·H = {} values, got {:?}",
                            b * h,
                            s.shape()
                        ),
                    ));
                }
            }
        }
        let off = self.offsets(store, prefix)?;
        let pv = store.flat_values();
        let gw = self.gate_width();
        let rows = t_len * b;

        // The states: row 0 is h_0 (c_0), the gate kernel of step t writes row t+1.
        let initial = |given: Option<Tensor>| -> Result<Tensor> {
            let s = Tensor::uninit(ctx, &[t_len + 1, b, h])?;
            match given {
                Some(v) => s.copy_from(ctx, &v, 0)?,
                None => elementwise::fill(ctx, &s.view(0, &[b, h])?, 0.0)?,
            }
            Ok(s)
        };
        let hs = initial(h0)?;
        let cs = if lstm { Some(initial(c0)?) } else { None };
        // x·Wx + bx for every step; the gate kernels overwrite it with the activations.
        let gates = Tensor::uninit(ctx, &[t_len, b, gw])?;
        product(
            ctx,
            (rows, gw, d),
            (&xt, mv(0, d, 1)),
            (pv, mv(off.wx, gw, 1)),
            (&gates, mv(0, gw, 1)),
            Some((pv, mv(off.bx, 0, 1))),
            false,
        )?;
        // GRU keeps h·Wh + bh apart (r multiplies its n block); LSTM adds it to the gates.
        let gh = if lstm {
            None
        } else {
            Some(Tensor::uninit(ctx, &[t_len, b, gw])?)
        };
        for t in 0..t_len {
            product(
                ctx,
                (b, gw, h),
                (&hs, mv(t * b * h, h, 1)),
                (pv, mv(off.wh, gw, 1)),
                (gh.as_ref().unwrap_or(&gates), mv(t * b * gw, gw, 1)),
                Some((pv, mv(off.bh, 0, 1))),
                lstm,
            )?;
            let f = recurrent::Forward {
                gates: &gates,
                gh: gh.as_ref(),
                hs: &hs,
                cs: cs.as_ref(),
            };
            recurrent::forward(ctx, dims, t, &f)?;
        }
        // h_1..h_T: a view of the states when it can start there, else one copy.
        let out = if (b * h).is_multiple_of(VIEW_ALIGN) {
            hs.view(b * h, &[t_len, b, h])?
        } else {
            hs.slice_copy(ctx, b * h, &[t_len, b, h])?
        };
        let last = |all: &Tensor| all.slice_copy(ctx, t_len * b * h, &[b, h]);
        let final_h = tape.extra_output(last(&hs)?);
        let final_c = match &cs {
            Some(c) => Some(tape.extra_output(last(c)?)),
            None => None,
        };
        let node = RecurrentNode {
            final_h,
            final_c,
            dims,
            input: d,
            off,
            x,
            xt,
            gates,
            gh,
            hs: hs.clone(),
            cs: cs.clone(),
            pv: pv.clone(),
            pg: store.flat_grads().clone(),
            h0_var,
            c0_var,
        };
        let extra: Vec<Var> = std::iter::once(final_h).chain(final_c).collect();
        let hv = tape.record_with_outputs(out, &extra, Box::new(node));
        Ok(RecurrentOutput {
            h: hv,
            final_h,
            final_c,
            states: hs,
            cells: cs,
        })
    }
}

/// The tape node of a whole sequence: what the backward reads.
struct RecurrentNode {
    dims: Dims,
    input: usize,
    off: Offsets,
    x: Var,
    xt: Tensor,
    /// Post-activation gates [T, B, G·H].
    gates: Tensor,
    /// GRU: h·Wh + bh [T, B, G·H].
    gh: Option<Tensor>,
    hs: Tensor,
    cs: Option<Tensor>,
    pv: Tensor,
    pg: Tensor,
    /// The extra outputs h_T and c_T, whose gradients start the carries.
    final_h: Var,
    final_c: Option<Var>,
    /// Where dL/dh_0 and dL/dc_0 go, when the initial state came from the tape.
    h0_var: Option<(Var, Vec<usize>)>,
    c0_var: Option<(Var, Vec<usize>)>,
}

impl Backward for RecurrentNode {
    fn backward(self: Box<Self>, ctx: &Context, g: Tensor, grads: &mut Grads) -> Result<()> {
        const OP: &str = "recurrent.backward";
        let RecurrentNode {
            dims,
            input: d,
            off,
            x,
            xt,
            gates,
            gh,
            hs,
            cs,
            pv,
            pg,
            h0_var,
            c0_var,
            final_h,
            final_c,
        } = *self;
        let wanted =
            |v: &Option<(Var, Vec<usize>)>| v.as_ref().is_some_and(|(v, _)| grads.wants(*v));
        let want_h0 = wanted(&h0_var);
        let (t_len, b, h) = (dims.steps, dims.batch, dims.hidden);
        let gw = dims.gate_width();
        let rows = t_len * b;
        if g.len() != rows * h {
            return Err(Error::shape(
                OP,
                format!(
                    "the gradient of h must have T·B·H = {} values, got {:?}",
                    rows * h,
                    g.shape()
                ),
            ));
        }
        let lstm = dims.kind == CellKind::Lstm;
        // The carries start from what the consumers of h_T and c_T left (copies: the backward
        // accumulates into them), or zeros.
        let mut carry = |v: Option<Var>| match v.and_then(|v| grads.take(v)) {
            Some(g) => g.reshape(&[b, h])?.duplicate(ctx),
            None => Tensor::zeros(ctx, &[b, h]),
        };
        let dh = carry(Some(final_h))?;
        let dc = if lstm { Some(carry(final_c)?) } else { None };
        // Gate gradients dzx, and for GRU dzh (for LSTM they are equal).
        let dz = Tensor::uninit(ctx, &[t_len, b, gw])?;
        let dzh_own = if lstm {
            None
        } else {
            Some(Tensor::uninit(ctx, &[t_len, b, gw])?)
        };
        let dzh = dzh_own.as_ref().unwrap_or(&dz);
        for t in (0..t_len).rev() {
            let step = recurrent::Backward {
                act: &gates,
                gh: gh.as_ref(),
                hs: &hs,
                cs: cs.as_ref(),
                dy: &g,
                dh: &dh,
                dc: dc.as_ref(),
                dz: &dz,
                dzh: dzh_own.as_ref(),
            };
            recurrent::backward(ctx, dims, t, &step)?;
            // dh_{t-1} (+)= dzh_t·Whᵀ; dh_0 only when h_0 came from the tape and wants it.
            if t > 0 || want_h0 {
                product(
                    ctx,
                    (b, h, gw),
                    (dzh, mv(t * b * gw, gw, 1)),
                    (&pv, mv(off.wh, gw, 1).t()),
                    (&dh, mv(0, h, 1)),
                    None,
                    !lstm,
                )?;
            }
        }
        // Wx += xᵀ·dzx and Wh += h_{t-1}ᵀ·dzh over all T·B rows.
        product(
            ctx,
            (d, gw, rows),
            (&xt, mv(0, 1, d)),
            (&dz, mv(0, gw, 1)),
            (&pg, mv(off.wx, gw, 1)),
            None,
            true,
        )?;
        product(
            ctx,
            (h, gw, rows),
            (&hs, mv(0, 1, h)),
            (dzh, mv(0, gw, 1)),
            (&pg, mv(off.wh, gw, 1)),
            None,
            true,
        )?;
        // bx += Σ dzx and bh += Σ dzh: products with a row of ones. For LSTM (dzx = dzh) both
        // are one product when bh follows bx in the store: an inner batch of 2 that reads the
        // same gradient twice.
        let ones = Tensor::full(ctx, &[rows], 1.0)?;
        let sums = |grad: &Tensor, target: usize, inner: usize, stride: usize| {
            let g = Gemm {
                batch: 1,
                inner,
                m: 1,
                n: gw,
                k: rows,
                a: mv(0, rows, 1),
                b: mv(0, gw, 1),
                c: MatView {
                    inner_stride: stride,
                    ..mv(target, gw, 1)
                },
                bias: None,
                accumulate: true,
            };
            matmul::gemm(ctx, &g, &ones, grad, None, &pg)
        };
        if lstm && off.bh > off.bx {
            sums(&dz, off.bx, 2, off.bh - off.bx)?;
        } else {
            sums(&dz, off.bx, 1, 0)?;
            sums(dzh, off.bh, 1, 0)?;
        }
        // After step 0's backward, dh and dc hold dL/dh_0 and dL/dc_0.
        for (var, g) in [(h0_var, Some(dh)), (c0_var, dc)] {
            if let (Some((v, shape)), Some(g)) = (var, g)
                && grads.wants(v)
            {
                grads.add(ctx, v, g.reshape(&shape)?)?;
            }
        }
        if grads.wants(x) {
            // dx = dzx·Wxᵀ over all T·B rows.
            let dx = Tensor::uninit(ctx, &[t_len, b, d])?;
            product(
                ctx,
                (rows, d, gw),
                (&dz, mv(0, gw, 1)),
                (&pv, mv(off.wx, gw, 1).t()),
                (&dx, mv(0, d, 1)),
                None,
                false,
            )?;
            grads.add(ctx, x, dx)?;
        }
        Ok(())
    }
}
