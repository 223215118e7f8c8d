//! The element-wise maps, named once for `ops::elementwise` (which runs them) and
//! `reference::elementwise` (which checks them).

/// Maps of one tensor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unary {
    /// 1 / (1 + e^−x).
    Sigmoid,
    /// Hyperbolic tangent.
    Tanh,
    /// Multiply by a constant.
    Scale(f32),
    /// max(x, 0).
    Relu,
    /// x for x > 0, alpha·(e^x − 1) below (Clevert et al.; PyTorch's `elu`, alpha 1 there by
    /// default).
    Elu(f32),
}

/// Maps of two tensors. `b` may be shorter than `a` if its shape equals a's trailing dims
/// (it is then repeated, as for a bias) or if it has one element (a scalar).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Binary {
    /// `a + b`.
    Add,
    /// `a − b`.
    Sub,
    /// `a · b` (elementwise).
    Mul,
    /// `a + alpha * b`.
    AddScaled(f32),
    /// `a` = sigmoid output y, `b` = dy: returns dy·y·(1−y).
    SigmoidBackward,
    /// `a` = tanh output y, `b` = dy: returns dy·(1−y²).
    TanhBackward,
    /// `a` = relu output y, `b` = dy: returns dy where y > 0, else 0.
    ReluBackward,
    /// `a` = elu output y (with this alpha), `b` = dy: returns dy where y > 0, else
    /// dy·(y + alpha), the derivative alpha·e^x written through the output.
    EluBackward(f32),
}
