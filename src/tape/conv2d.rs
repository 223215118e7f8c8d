//! The convolution on the tape: forward through `ops::conv2d`, a node holding the input and the
//! weight its gradients read.

use super::{Backward, Grads, Tape, Var};
use crate::device::Context;
use crate::error::Result;
use crate::ops::conv2d::{self, Conv2dSpec};
use crate::tensor::Tensor;

struct Conv2dNode {
    x: Var,
    weight: Var,
    bias: Option<Var>,
    /// The forward's input, kept only when the weight wants a gradient (dweight reads it).
    x_val: Option<Tensor>,
    /// The weight, kept only when x wants a gradient (dx reads it).
    w_val: Option<Tensor>,
    x_shape: Vec<usize>,
    w_shape: Vec<usize>,
    spec: Conv2dSpec,
}

impl Backward for Conv2dNode {
    fn backward(self: Box<Self>, ctx: &Context, g: Tensor, grads: &mut Grads) -> Result<()> {
        if let Some(w) = &self.w_val
            && grads.wants(self.x)
        {
            let dx = conv2d::backward_input(ctx, &g, w, &self.x_shape, self.spec)?;
            grads.add(ctx, self.x, dx)?;
        }
        if let Some(x) = &self.x_val
            && grads.wants(self.weight)
        {
            let dw = conv2d::backward_weight(ctx, x, &g, &self.w_shape, self.spec)?;
            grads.add(ctx, self.weight, dw)?;
        }
        if let Some(bias) = self.bias
            && grads.wants(bias)
        {
            grads.add(ctx, bias, conv2d::backward_bias(ctx, &g)?)?;
        }
        Ok(())
    }
}

impl Tape {
    /// `conv2d(x, weight) (+ bias)`: x `[N, C_in, H, W]`, weight `[C_out, C_in, KH, KW]`, bias
    /// `[C_out]`, output `[N, C_out, H_out, W_out]` (see [`conv2d::forward`]).
    pub fn conv2d(
        &mut self,
        ctx: &Context,
        x: Var,
        weight: Var,
        bias: Option<Var>,
        spec: Conv2dSpec,
    ) -> Result<Var> {
        let (x_val, w_val) = (self.value(x).clone(), self.value(weight).clone());
        let b_val = bias.map(|b| self.value(b).clone());
        let y = conv2d::forward(ctx, &x_val, &w_val, b_val.as_ref(), spec)?;
        let node = Conv2dNode {
            x,
            weight,
            bias,
            x_shape: x_val.shape().to_vec(),
            w_shape: w_val.shape().to_vec(),
            x_val: self.tracked(weight).then_some(x_val),
            w_val: self.tracked(x).then_some(w_val),
            spec,
        };
        let inputs: Vec<Var> = [x, weight].into_iter().chain(bias).collect();
        Ok(self.record(y, &inputs, Box::new(node)))
    }
}
