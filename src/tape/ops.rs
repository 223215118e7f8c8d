//! The ops on the tape. Each: forward through `ops`, then a node with what its backward needs.

use super::{Backward, Grads, Tape, Var};
use crate::device::Context;
use crate::error::{Error, Result};
use crate::ops::elementwise::{self, Binary, Unary};
use crate::ops::matmul::{self, Gemm, MatView};
use crate::ops::{binary_cross_entropy, cross_entropy, reduce, squared_error};
use crate::tensor::Tensor;

/// Column sums of a [rows, cols] gradient, as a product with a vector of ones (one dispatch;
/// accumulates straight into `target` when given).
fn column_sums(
    ctx: &Context,
    g: &Tensor,
    rows: usize,
    cols: usize,
    target: Option<&Tensor>,
) -> Result<Tensor> {
    let ones = Tensor::full(ctx, &[rows], 1.0)?;
    let out = match target {
        Some(t) => t.clone(),
        None => Tensor::uninit(ctx, &[cols])?,
    };
    let desc = Gemm {
        batch: 1,
        inner: 1,
        m: 1,
        n: cols,
        k: rows,
        a: MatView::row_major(1, rows),
        b: MatView::row_major(rows, cols),
        c: MatView::row_major(1, cols),
        bias: None,
        accumulate: target.is_some(),
    };
    matmul::gemm(ctx, &desc, &ones, g, None, &out)?;
    Ok(out)
}

/// Rows and columns of a value used as a matrix: leading dimensions are flattened into rows.
fn as_matrix(op: &'static str, t: &Tensor) -> Result<(usize, usize)> {
    let s = t.shape();
    match s.len() {
        0 => Err(Error::shape(op, "a scalar is not a matrix")),
        1 => Ok((1, s[0])),
        _ => Ok((s[..s.len() - 1].iter().product(), s[s.len() - 1])),
    }
}

struct MatmulNode {
    a: Var,
    b: Var,
    bias: Option<Var>,
    a_val: Tensor,
    b_val: Tensor,
    m: usize,
    k: usize,
    n: usize,
}

impl Backward for MatmulNode {
    fn backward(self: Box<Self>, ctx: &Context, g: Tensor, grads: &mut Grads) -> Result<()> {
        let (m, k, n) = (self.m, self.k, self.n);
        if grads.wants(self.a) {
            // dA = dC·Bᵀ
            let da = Tensor::uninit(ctx, self.a_val.shape())?;
            let desc = Gemm {
                batch: 1,
                inner: 1,
                m,
                n: k,
                k: n,
                a: MatView::row_major(m, n),
                b: MatView::row_major(k, n).t(),
                c: MatView::row_major(m, k),
                bias: None,
                accumulate: false,
            };
            matmul::gemm(ctx, &desc, &g, &self.b_val, None, &da)?;
            grads.add(ctx, self.a, da)?;
        }
        if grads.wants(self.b) {
            // dB = Aᵀ·dC, accumulated in place into a parameter's gradient.
            let target = grads.target(self.b).cloned();
            let db = target
                .clone()
                .map_or_else(|| Tensor::uninit(ctx, self.b_val.shape()), Ok)?;
            let desc = Gemm {
                batch: 1,
                inner: 1,
                m: k,
                n,
                k: m,
                a: MatView::row_major(m, k).t(),
                b: MatView::row_major(m, n),
                c: MatView::row_major(k, n),
                bias: None,
                accumulate: target.is_some(),
            };
            matmul::gemm(ctx, &desc, &self.a_val, &g, None, &db)?;
            if target.is_none() {
                grads.add(ctx, self.b, db)?;
            }
        }
        if let Some(bias) = self.bias
            && grads.wants(bias)
        {
            let target = grads.target(bias).cloned();
            let db = column_sums(ctx, &g, m, n, target.as_ref())?;
            if target.is_none() {
                grads.add(ctx, bias, db)?;
            }
        }
        Ok(())
    }
}

struct AddNode {
    a: Var,
    b: Var,
    b_shape: Vec<usize>,
    /// -1 for subtraction.
    b_sign: f32,
}

impl Backward for AddNode {
    fn backward(self: Box<Self>, ctx: &Context, g: Tensor, grads: &mut Grads) -> Result<()> {
        let b_len: usize = self.b_shape.iter().product();
        if grads.wants(self.b) {
            let gb = if b_len == g.len() {
                if self.b_sign < 0.0 {
                    elementwise::unary(ctx, Unary::Scale(-1.0), &g)?
                } else {
                    g.clone()
                }
            } else {
                // b was broadcast over leading rows (or was a scalar): sum the rows.
                let cols = b_len;
                let rows = g.len() / cols;
                let sums = column_sums(ctx, &g.reshape(&[rows, cols])?, rows, cols, None)?;
                let sums = if self.b_sign < 0.0 {
                    elementwise::unary(ctx, Unary::Scale(-1.0), &sums)?
                } else {
                    sums
                };
                sums.reshape(&self.b_shape)?
            };
            grads.add(ctx, self.b, gb)?;
        }
        grads.add(ctx, self.a, g)
    }
}

struct MulNode {
    a: Var,
    b: Var,
    a_val: Tensor,
    b_val: Tensor,
}

impl Backward for MulNode {
    fn backward(self: Box<Self>, ctx: &Context, g: Tensor, grads: &mut Grads) -> Result<()> {
        if grads.wants(self.a) {
            grads.add(
                ctx,
                self.a,
                elementwise::binary(ctx, Binary::Mul, &g, &self.b_val)?,
            )?;
        }
        if grads.wants(self.b) {
            grads.add(
                ctx,
                self.b,
                elementwise::binary(ctx, Binary::Mul, &g, &self.a_val)?,
            )?;
        }
        Ok(())
    }
}

struct ScaleNode {
    a: Var,
    s: f32,
}

impl Backward for ScaleNode {
    fn backward(self: Box<Self>, ctx: &Context, g: Tensor, grads: &mut Grads) -> Result<()> {
        grads.add(
            ctx,
            self.a,
            elementwise::unary(ctx, Unary::Scale(self.s), &g)?,
        )
    }
}

/// Activations whose derivative is a function of the output.
struct ActivationNode {
    a: Var,
    y: Tensor,
    derivative: Binary,
}

impl Backward for ActivationNode {
    fn backward(self: Box<Self>, ctx: &Context, g: Tensor, grads: &mut Grads) -> Result<()> {
        grads.add(
            ctx,
            self.a,
            elementwise::binary(ctx, self.derivative, &self.y, &g)?,
        )
    }
}

struct SumNode {
    a: Var,
    shape: Vec<usize>,
}

impl Backward for SumNode {
    fn backward(self: Box<Self>, ctx: &Context, g: Tensor, grads: &mut Grads) -> Result<()> {
        // Broadcast the scalar gradient: ones ⊙ g.
        let ones = Tensor::full(ctx, &self.shape, 1.0)?;
        grads.add(
            ctx,
            self.a,
            elementwise::binary(ctx, Binary::Mul, &ones, &g)?,
        )
    }
}

/// A loss whose kernel also gave its gradient (cross-entropy, squared error).
struct FusedLossNode {
    input: Var,
    /// d(loss)/d(input), computed by the forward kernel.
    dinput: Tensor,
}

impl Backward for FusedLossNode {
    fn backward(self: Box<Self>, ctx: &Context, g: Tensor, grads: &mut Grads) -> Result<()> {
        grads.add(
            ctx,
            self.input,
            elementwise::binary(ctx, Binary::Mul, &self.dinput, &g)?,
        )
    }
}

impl Tape {
    /// `a·b (+ bias)`: a [..., K] (leading dims flattened), b [K, N], bias [N].
    pub fn matmul(&mut self, ctx: &Context, a: Var, b: Var, bias: Option<Var>) -> Result<Var> {
        let (av, bv) = (self.value(a).clone(), self.value(b).clone());
        let (m, k) = as_matrix("tape.matmul", &av)?;
        if bv.shape().len() != 2 || bv.shape()[0] != k {
            return Err(Error::shape(
                "tape.matmul",
                format!(
                    "b must be [{k}, N] for a {:?}, got {:?}",
                    av.shape(),
                    bv.shape()
                ),
            ));
        }
        let a2 = av.reshape(&[m, k])?;
        let bias_t = bias.map(|v| self.value(v).clone());
        let y = matmul::matmul(
            ctx,
            &a2,
            &bv,
            matmul::MatmulOptions {
                bias: bias_t.as_ref(),
                ..Default::default()
            },
        )?;
        let n = bv.shape()[1];
        let mut out_shape = av.shape()[..av.shape().len().saturating_sub(1)].to_vec();
        out_shape.push(n);
        let y = y.reshape(&out_shape)?;
        let mut inputs = vec![a, b];
        inputs.extend(bias);
        let node = MatmulNode {
            a,
            b,
            bias,
            a_val: a2,
            b_val: bv,
            m,
            k,
            n,
        };
        Ok(self.record(y, &inputs, Box::new(node)))
    }

    fn add_like(&mut self, ctx: &Context, a: Var, b: Var, sign: f32) -> Result<Var> {
        let op = if sign < 0.0 { Binary::Sub } else { Binary::Add };
        let y = elementwise::binary(ctx, op, self.value(a), self.value(b))?;
        let b_shape = self.value(b).shape().to_vec();
        Ok(self.record(
            y,
            &[a, b],
            Box::new(AddNode {
                a,
                b,
                b_shape,
                b_sign: sign,
            }),
        ))
    }

    /// `a + b`, b broadcast over a's leading dimensions (a bias) or a scalar.
    pub fn add(&mut self, ctx: &Context, a: Var, b: Var) -> Result<Var> {
        self.add_like(ctx, a, b, 1.0)
    }

    /// `a - b`, with the broadcasting of [`Tape::add`].
    pub fn sub(&mut self, ctx: &Context, a: Var, b: Var) -> Result<Var> {
        self.add_like(ctx, a, b, -1.0)
    }

    /// `a ⊙ b`, same shapes.
    pub fn mul(&mut self, ctx: &Context, a: Var, b: Var) -> Result<Var> {
        let (av, bv) = (self.value(a).clone(), self.value(b).clone());
        if av.shape() != bv.shape() {
            return Err(Error::shape(
                "tape.mul",
                format!("{:?} and {:?} differ", av.shape(), bv.shape()),
            ));
        }
        let y = elementwise::binary(ctx, Binary::Mul, &av, &bv)?;
        Ok(self.record(
            y,
            &[a, b],
            Box::new(MulNode {
                a,
                b,
                a_val: av,
                b_val: bv,
            }),
        ))
    }

    /// `s · a`.
    pub fn scale(&mut self, ctx: &Context, a: Var, s: f32) -> Result<Var> {
        let y = elementwise::unary(ctx, Unary::Scale(s), self.value(a))?;
        Ok(self.record(y, &[a], Box::new(ScaleNode { a, s })))
    }

    /// Logistic sigmoid.
    pub fn sigmoid(&mut self, ctx: &Context, a: Var) -> Result<Var> {
        self.activation(ctx, a, Unary::Sigmoid, Binary::SigmoidBackward)
    }

    /// Hyperbolic tangent.
    pub fn tanh(&mut self, ctx: &Context, a: Var) -> Result<Var> {
        self.activation(ctx, a, Unary::Tanh, Binary::TanhBackward)
    }

    /// max(x, 0).
    pub fn relu(&mut self, ctx: &Context, a: Var) -> Result<Var> {
        self.activation(ctx, a, Unary::Relu, Binary::ReluBackward)
    }

    /// ELU with the given alpha (1 in PyTorch's default and R-NEM's networks).
    pub fn elu(&mut self, ctx: &Context, a: Var, alpha: f32) -> Result<Var> {
        self.activation(ctx, a, Unary::Elu(alpha), Binary::EluBackward(alpha))
    }

    /// An activation whose derivative is `derivative(output, dy)`.
    fn activation(&mut self, ctx: &Context, a: Var, map: Unary, derivative: Binary) -> Result<Var> {
        let y = elementwise::unary(ctx, map, self.value(a))?;
        let node = ActivationNode {
            a,
            y: y.clone(),
            derivative,
        };
        Ok(self.record(y, &[a], Box::new(node)))
    }

    /// Sum of all elements, as a [1] value.
    pub fn sum(&mut self, ctx: &Context, a: Var) -> Result<Var> {
        let y = reduce::sum_all(ctx, self.value(a))?;
        let shape = self.value(a).shape().to_vec();
        Ok(self.record(y, &[a], Box::new(SumNode { a, shape })))
    }

    /// Mean of all elements, as a [1] value.
    pub fn mean(&mut self, ctx: &Context, a: Var) -> Result<Var> {
        let n = self.value(a).len();
        let s = self.sum(ctx, a)?;
        self.scale(ctx, s, 1.0 / n as f32)
    }

    /// Mean squared error between `pred` and a constant `target` of the same shape, as [1]:
    /// one fused kernel gives the loss and its gradient (`ops::squared_error`).
    pub fn mse(&mut self, ctx: &Context, pred: Var, target: &Tensor) -> Result<Var> {
        let (loss, dinput) = squared_error::mean_squared_error(ctx, self.value(pred), target)?;
        Ok(self.record(
            loss,
            &[pred],
            Box::new(FusedLossNode {
                input: pred,
                dinput,
            }),
        ))
    }

    /// Binary cross-entropy of `logits` against a constant `targets` in [0, 1] of the same
    /// shape, summed within each of `rows` equal rows and averaged over the rows, as [1] (a
    /// frame's summed pixel loss averaged over frames); one fused kernel gives the loss and its
    /// gradient (`ops::binary_cross_entropy`).
    pub fn binary_cross_entropy(
        &mut self,
        ctx: &Context,
        logits: Var,
        targets: &Tensor,
        rows: usize,
    ) -> Result<Var> {
        let (loss, dinput) =
            binary_cross_entropy::mean_row_sum_with_logits(ctx, self.value(logits), targets, rows)?;
        Ok(self.record(
            loss,
            &[logits],
            Box::new(FusedLossNode {
                input: logits,
                dinput,
            }),
        ))
    }

    /// Mean softmax cross-entropy of logits [rows, classes] against u32 targets [rows], as [1].
    pub fn cross_entropy(&mut self, ctx: &Context, logits: Var, targets: &Tensor) -> Result<Var> {
        let (loss, dlogits) = cross_entropy::mean_cross_entropy(ctx, self.value(logits), targets)?;
        Ok(self.record(
            loss,
            &[logits],
            Box::new(FusedLossNode {
                input: logits,
                dinput: dlogits,
            }),
        ))
    }
}

struct EmbeddingNode {
    table: Var,
    tokens: Tensor,
    shape: Vec<usize>,
}

impl Backward for EmbeddingNode {
    fn backward(self: Box<Self>, ctx: &Context, g: Tensor, grads: &mut Grads) -> Result<()> {
        match grads.target(self.table).cloned() {
            Some(target) => crate::ops::embedding::backward(ctx, &self.tokens, &g, &target),
            None => {
                let d = Tensor::zeros(ctx, &self.shape)?;
                crate::ops::embedding::backward(ctx, &self.tokens, &g, &d)?;
                grads.add(ctx, self.table, d)
            }
        }
    }
}

struct DropoutNode {
    a: Var,
    mask: crate::ops::dropout::Mask,
}

impl Backward for DropoutNode {
    fn backward(self: Box<Self>, ctx: &Context, g: Tensor, grads: &mut Grads) -> Result<()> {
        grads.add(ctx, self.a, crate::ops::dropout::apply(ctx, &g, self.mask)?)
    }
}

impl Tape {
    /// Rows of `table` [V, D] for u32 `tokens`: output tokens.shape + [D].
    pub fn embedding(&mut self, ctx: &Context, table: Var, tokens: &Tensor) -> Result<Var> {
        let t = self.value(table).clone();
        let y = crate::ops::embedding::forward(ctx, tokens, &t)?;
        let node = EmbeddingNode {
            table,
            tokens: tokens.clone(),
            shape: t.shape().to_vec(),
        };
        Ok(self.record(y, &[table], Box::new(node)))
    }

    /// Dropout with the counter-based mask (identity when `mask.p` is 0).
    pub fn dropout(
        &mut self,
        ctx: &Context,
        a: Var,
        mask: crate::ops::dropout::Mask,
    ) -> Result<Var> {
        if mask.p == 0.0 {
            return Ok(a);
        }
        let y = crate::ops::dropout::apply(ctx, self.value(a), mask)?;
        Ok(self.record(y, &[a], Box::new(DropoutNode { a, mask })))
    }
}

struct SliceNode {
    a: Var,
    shape: Vec<usize>,
    offset: usize,
}

impl Backward for SliceNode {
    fn backward(self: Box<Self>, ctx: &Context, g: Tensor, grads: &mut Grads) -> Result<()> {
        let full = Tensor::zeros(ctx, &self.shape)?;
        full.copy_from(ctx, &g, self.offset)?;
        grads.add(ctx, self.a, full)
    }
}

impl Tape {
    /// Rows `start..start + len` of the first axis of `a` (e.g. the last time step of [T, B, H]).
    pub fn slice_rows(&mut self, ctx: &Context, a: Var, start: usize, len: usize) -> Result<Var> {
        let t = self.value(a).clone();
        let s = t.shape();
        if s.is_empty() || start + len > s[0] || len == 0 {
            return Err(Error::shape(
                "slice_rows",
                format!("rows {start}..{} of {s:?}", start + len),
            ));
        }
        let row: usize = s[1..].iter().product();
        let mut shape = s.to_vec();
        shape[0] = len;
        let y = t.slice_copy(ctx, start * row, &shape)?;
        let node = SliceNode {
            a,
            shape: s.to_vec(),
            offset: start * row,
        };
        Ok(self.record(y, &[a], Box::new(node)))
    }
}

struct ReshapeNode {
    a: Var,
    shape: Vec<usize>,
}

impl Backward for ReshapeNode {
    fn backward(self: Box<Self>, ctx: &Context, g: Tensor, grads: &mut Grads) -> Result<()> {
        grads.add(ctx, self.a, g.reshape(&self.shape)?)
    }
}

impl Tape {
    /// The same values with another shape (no copy).
    pub fn reshape(&mut self, a: Var, shape: &[usize]) -> Result<Var> {
        let t = self.value(a).clone();
        let y = t.reshape(shape)?;
        Ok(self.record(
            y,
            &[a],
            Box::new(ReshapeNode {
                a,
                shape: t.shape().to_vec(),
            }),
        ))
    }
}
