//! Autograd tape. An op on tracked values records one node that holds exactly what its
//! backward needs; [`Tape::backward`] walks the nodes in reverse, records their backward
//! kernels (into the same recorder as the forward, so forward and backward share one submit),
//! accumulates gradients where a value feeds several ops, and drops each node — and with it the
//! activations it saved — as soon as it has run.
//!
//! Values that need no gradient record nothing: with no tracked input an op only runs its
//! forward (the inference fast path), and [`Tape::untracked`] gives a tape that never records.
//!
//! Parameters come from a [`ParamSource`], in the crate the [`ParamStore`](crate::nn::ParamStore):
//! their gradients accumulate straight into the store's flat gradient buffer, which the
//! optimizer then updates in one dispatch.

mod ops;

use crate::device::Context;
use crate::error::{Error, Result};
use crate::ops::elementwise::{self, Binary};
use crate::tensor::Tensor;

/// A value on the tape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Var(usize);

/// What the backward pass of one op does. `grad_out` is the gradient of the op's output;
/// the op adds its inputs' gradients to `grads`.
pub trait Backward {
    /// Adds the gradients of the op's inputs, given the gradient `grad_out` of its output, to
    /// `grads`. Errors if a dispatch or allocation on the device fails.
    fn backward(self: Box<Self>, ctx: &Context, grad_out: Tensor, grads: &mut Grads) -> Result<()>;
}

struct Slot {
    value: Tensor,
    tracked: bool,
    /// For parameters: the view of the store's gradient buffer to accumulate into.
    grad_target: Option<Tensor>,
}

struct Node {
    output: Var,
    op: Box<dyn Backward>,
}

/// Gradients collected during [`Tape::backward`].
pub struct Grads {
    grads: Vec<Option<Tensor>>,
    tracked: Vec<bool>,
    targets: Vec<Option<Tensor>>,
}

impl Grads {
    /// Whether `v` wants a gradient (skip work for inputs that do not).
    pub fn wants(&self, v: Var) -> bool {
        self.tracked[v.0]
    }

    /// The buffer a parameter's gradient accumulates into, so that an op can accumulate in
    /// place (a weight gradient written by a matmul with accumulate). None for other values.
    pub fn target(&self, v: Var) -> Option<&Tensor> {
        self.targets[v.0].as_ref()
    }

    /// Adds `g` to the gradient of `v`: into the parameter's buffer, or kept until `v`'s own
    /// node runs (summed if several ops contribute).
    pub fn add(&mut self, ctx: &Context, v: Var, g: Tensor) -> Result<()> {
        if !self.tracked[v.0] {
            return Ok(());
        }
        if let Some(target) = &self.targets[v.0] {
            return elementwise::add_assign(ctx, target, &g, 1.0);
        }
        self.grads[v.0] = Some(match self.grads[v.0].take() {
            None => g,
            Some(prev) => elementwise::binary(ctx, Binary::Add, &prev, &g)?,
        });
        Ok(())
    }

    /// The gradient collected for a value (after backward), e.g. of an input.
    pub fn get(&self, v: Var) -> Option<&Tensor> {
        self.grads[v.0].as_ref()
    }
}

/// Where [`Tape::param`] finds a parameter: implemented by [`crate::nn::ParamStore`], so that
/// the tape, below `nn`, does not need to know the store.
pub trait ParamSource {
    /// The value of parameter `name` and, when it is trainable, the view of the gradient buffer
    /// its gradient accumulates into (None for a frozen parameter).
    fn param_views(&self, name: &str) -> Result<(Tensor, Option<Tensor>)>;
}

/// The tape: values and the nodes that produced them.
pub struct Tape {
    slots: Vec<Slot>,
    nodes: Vec<Node>,
    recording: bool,
}

impl Default for Tape {
    fn default() -> Self {
        Self::new()
    }
}

impl Tape {
    /// A tape that records ops on tracked values.
    pub fn new() -> Self {
        Tape {
            slots: Vec::new(),
            nodes: Vec::new(),
            recording: true,
        }
    }

    /// A tape that never records (inference): ops only run forward.
    pub fn untracked() -> Self {
        Tape {
            recording: false,
            ..Self::new()
        }
    }

    /// Nodes recorded so far.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether no node has been recorded.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    fn push(&mut self, value: Tensor, tracked: bool, grad_target: Option<Tensor>) -> Var {
        self.slots.push(Slot {
            value,
            tracked: tracked && self.recording,
            grad_target,
        });
        Var(self.slots.len() - 1)
    }

    /// A value that needs no gradient (data, targets).
    pub fn constant(&mut self, value: Tensor) -> Var {
        self.push(value, false, None)
    }

    /// A value whose gradient [`Tape::backward`] returns (e.g. an input to check).
    pub fn input(&mut self, value: Tensor) -> Var {
        self.push(value, true, None)
    }

    /// A parameter of `store` (a [`ParamStore`](crate::nn::ParamStore)): its gradient
    /// accumulates into the store's gradient buffer; a frozen one is a constant.
    pub fn param<S: ParamSource + ?Sized>(&mut self, store: &S, name: &str) -> Result<Var> {
        match store.param_views(name)? {
            (value, None) => Ok(self.constant(value)),
            (value, Some(grad)) => Ok(self.push(value, true, Some(grad))),
        }
    }

    /// The tensor behind a value.
    pub fn value(&self, v: Var) -> &Tensor {
        &self.slots[v.0].value
    }

    /// Whether `v` carries a gradient.
    pub fn tracked(&self, v: Var) -> bool {
        self.slots[v.0].tracked
    }

    /// Records the result of an op. With no tracked input nothing is saved: `op` is dropped.
    pub fn record(&mut self, value: Tensor, inputs: &[Var], op: Box<dyn Backward>) -> Var {
        let tracked = self.recording && inputs.iter().any(|&v| self.slots[v.0].tracked);
        let out = self.push(value, tracked, None);
        if tracked {
            self.nodes.push(Node { output: out, op });
        }
        out
    }

    /// Records an op whose backward must run whenever the tape records, tracked inputs or not
    /// (a layer whose parameters live in a store and always want gradients).
    pub fn record_always(&mut self, value: Tensor, op: Box<dyn Backward>) -> Var {
        let out = self.push(value, self.recording, None);
        if self.recording {
            self.nodes.push(Node { output: out, op });
        }
        out
    }

    /// Runs the backward pass from `loss` (a one-element value): records every node's backward
    /// kernels in reverse order and consumes the tape. Parameter gradients are added to the
    /// store's gradient buffer (zero it first with `ParamStore::zero_grads` unless you mean to
    /// accumulate); gradients of [`Tape::input`] values are returned.
    pub fn backward(self, ctx: &Context, loss: Var) -> Result<Grads> {
        let n = self.slots.len();
        if self.slots[loss.0].value.len() != 1 {
            return Err(Error::shape(
                "backward",
                format!(
                    "the loss must have one element, got {:?}",
                    self.slots[loss.0].value.shape()
                ),
            ));
        }
        let mut grads = Grads {
            grads: vec![None; n],
            tracked: self.slots.iter().map(|s| s.tracked).collect(),
            targets: self.slots.iter().map(|s| s.grad_target.clone()).collect(),
        };
        // The forward values are no longer needed: what a backward needs, its node saved.
        drop(self.slots);
        if !grads.tracked[loss.0] {
            return Err(Error::invalid(
                "backward",
                "the loss does not depend on any tracked value",
            ));
        }
        let seed = Tensor::full(ctx, &[1], 1.0)?;
        grads.add(ctx, loss, seed)?;
        let mut nodes = self.nodes;
        while let Some(node) = nodes.pop() {
            // A node whose output got no gradient contributes nothing.
            let Some(g) = grads.grads[node.output.0].take() else {
                continue;
            };
            node.op.backward(ctx, g, &mut grads)?;
        }
        Ok(grads)
    }
}
