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

mod conv2d;
mod image;
mod ops;
mod ppo;

use crate::device::Context;
use crate::error::{Error, Result};
use crate::ops::elementwise::{self, Binary};
use crate::tensor::Tensor;

/// A value on the tape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Var(usize);

/// What the backward pass of one op does. `grad_out` is the gradient of the op's output;
/// the op adds its inputs' gradients to `grads`.
pub trait Backward: Send {
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
    /// Further outputs of the same op ([`Tape::record_with_outputs`]): the op takes their
    /// gradients itself ([`Grads::take`]); the node runs when any output got a gradient.
    extra: Vec<Var>,
    /// The main output's shape, for a zero gradient when only an extra output got one (empty
    /// for a node without extra outputs).
    shape: Vec<usize>,
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

    /// Takes the gradient collected for `v`, leaving none: how an op with several outputs
    /// ([`Tape::record_with_outputs`]) reads the gradients of its extra outputs.
    pub fn take(&mut self, v: Var) -> Option<Tensor> {
        self.grads[v.0].take()
    }

    fn has(&self, v: Var) -> bool {
        self.grads[v.0].is_some()
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
            self.push_node(out, Vec::new(), op);
        }
        out
    }

    fn push_node(&mut self, output: Var, extra: Vec<Var>, op: Box<dyn Backward>) {
        let shape = if extra.is_empty() {
            Vec::new()
        } else {
            self.slots[output.0].value.shape().to_vec()
        };
        self.nodes.push(Node {
            output,
            extra,
            shape,
            op,
        });
    }

    /// Records an op whose backward must run whenever the tape records, tracked inputs or not
    /// (a layer whose parameters live in a store and always want gradients).
    pub fn record_always(&mut self, value: Tensor, op: Box<dyn Backward>) -> Var {
        self.record_with_outputs(value, &[], op)
    }

    /// A further output of the op about to be recorded with [`Tape::record_with_outputs`]:
    /// make it first, so the op can hold its `Var` and take its gradient in its backward.
    pub fn extra_output(&mut self, value: Tensor) -> Var {
        self.push(value, self.recording, None)
    }

    /// Like [`Tape::record_always`], for an op with further outputs `extra` (made with
    /// [`Tape::extra_output`]). The op's backward gets the main output's gradient (zeros when
    /// only an extra output got one) and takes the extra outputs' own with [`Grads::take`].
    pub fn record_with_outputs(
        &mut self,
        value: Tensor,
        extra: &[Var],
        op: Box<dyn Backward>,
    ) -> Var {
        let out = self.push(value, self.recording, None);
        if self.recording {
            self.push_node(out, extra.to_vec(), op);
        }
        out
    }

    /// Runs the backward pass from `loss` (a one-element value): records every node's backward
    /// kernels in reverse order and consumes the tape. Parameter gradients are added to the
    /// store's gradient buffer (zero it first with `ParamStore::zero_grads` unless you mean to
    /// accumulate); gradients of [`Tape::input`] values are returned.
    pub fn backward(self, ctx: &Context, loss: Var) -> Result<Grads> {
        if self.slots[loss.0].value.len() != 1 {
            return Err(Error::shape(
                "backward",
                format!(
                    "the loss must have one element, got {:?}",
                    self.slots[loss.0].value.shape()
                ),
            ));
        }
        if !self.slots[loss.0].tracked {
            return Err(Error::invalid(
                "backward",
                "the loss does not depend on any tracked value",
            ));
        }
        let seed = Tensor::full(ctx, &[1], 1.0)?;
        self.backward_from(ctx, vec![(loss, seed)])
    }

    /// The backward pass from given output gradients (a vector-Jacobian product, as
    /// `torch.autograd.backward(outputs, grad_outputs)`): each `(value, gradient)` pair seeds
    /// dL/dvalue with a tensor of the value's element count. How a caller whose loss lives
    /// elsewhere (PyTorch) hands the engine dL/dh. Consumes the tape, as [`Tape::backward`].
    pub fn backward_from(self, ctx: &Context, seeds: Vec<(Var, Tensor)>) -> Result<Grads> {
        for (v, g) in &seeds {
            let value = &self.slots[v.0].value;
            if g.len() != value.len() {
                return Err(Error::shape(
                    "backward",
                    format!(
                        "the gradient of a {:?} value must have {} elements, got {:?}",
                        value.shape(),
                        value.len(),
                        g.shape()
                    ),
                ));
            }
        }
        let n = self.slots.len();
        let mut grads = Grads {
            grads: vec![None; n],
            tracked: self.slots.iter().map(|s| s.tracked).collect(),
            targets: self.slots.iter().map(|s| s.grad_target.clone()).collect(),
        };
        let shapes: Vec<Vec<usize>> = seeds
            .iter()
            .map(|(v, _)| self.slots[v.0].value.shape().to_vec())
            .collect();
        // The forward values are no longer needed: what a backward needs, its node saved.
        drop(self.slots);
        for ((v, g), shape) in seeds.into_iter().zip(shapes) {
            grads.add(ctx, v, g.reshape(&shape)?)?;
        }
        let mut nodes = self.nodes;
        while let Some(node) = nodes.pop() {
            // A node none of whose outputs got a gradient contributes nothing.
            let g = match grads.grads[node.output.0].take() {
                Some(g) => g,
                None if node.extra.iter().any(|&v| grads.has(v)) => {
                    Tensor::zeros(ctx, &node.shape)?
                }
                None => continue,
            };
            node.op.backward(ctx, g, &mut grads)?;
        }
        Ok(grads)
    }
}
