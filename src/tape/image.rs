//! The tape ops of images, `[batch, channels, height, width]` values: nearest-neighbour
//! upsampling and layer normalisation (the convolution is `conv2d.rs`).

use super::{Backward, Grads, Tape, Var};
use crate::device::Context;
use crate::error::Result;
use crate::ops::{layer_norm, upsample};
use crate::tensor::Tensor;

struct UpsampleNode {
    x: Var,
    shape: Vec<usize>,
    factor: usize,
}

impl Backward for UpsampleNode {
    fn backward(self: Box<Self>, ctx: &Context, g: Tensor, grads: &mut Grads) -> Result<()> {
        let dx = upsample::nearest_backward(ctx, &g, &self.shape, self.factor)?;
        grads.add(ctx, self.x, dx)
    }
}

impl Tape {
    /// Nearest-neighbour upsampling of the last two dimensions by `factor`:
    /// `[..., H, W]` → `[..., H·factor, W·factor]`.
    pub fn upsample_nearest(&mut self, ctx: &Context, x: Var, factor: usize) -> Result<Var> {
        let shape = self.value(x).shape().to_vec();
        let y = upsample::nearest(ctx, self.value(x), factor)?;
        let node = UpsampleNode { x, shape, factor };
        Ok(self.record(y, &[x], Box::new(node)))
    }
}

/// What layer normalisation's backward needs: its inputs x and gain, and the rows' saved
/// statistics.
struct LayerNormNode {
    vars: [Var; 3],
    x: Tensor,
    gain: Tensor,
    mean: Tensor,
    rstd: Tensor,
}

impl Backward for LayerNormNode {
    fn backward(self: Box<Self>, ctx: &Context, g: Tensor, grads: &mut Grads) -> Result<()> {
        let d = layer_norm::backward(ctx, &self.x, &self.gain, &g, &self.mean, &self.rstd)?;
        let [x, gain, bias] = self.vars;
        grads.add(ctx, x, d.dx)?;
        grads.add(ctx, gain, d.dgain)?;
        grads.add(ctx, bias, d.dbias)
    }
}

impl Tape {
    /// Layer normalisation of x over the trailing dimensions `gain` spans, then `· gain + bias`
    /// per element (PyTorch's `LayerNorm(gain.shape())`); `eps` is added to the variance.
    pub fn layer_norm(
        &mut self,
        ctx: &Context,
        x: Var,
        gain: Var,
        bias: Var,
        eps: f32,
    ) -> Result<Var> {
        let (xv, gv) = (self.value(x).clone(), self.value(gain).clone());
        let out = layer_norm::forward(ctx, &xv, &gv, self.value(bias), eps)?;
        let node = LayerNormNode {
            vars: [x, gain, bias],
            x: xv,
            gain: gv,
            mean: out.mean,
            rstd: out.rstd,
        };
        Ok(self.record(out.y, &[x, gain, bias], Box::new(node)))
    }
}
