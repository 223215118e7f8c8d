//! The backward of the variant-A sequence node (the step order is in `nn::rims`'s docs): A's
//! output and gate layers and the gradients of A's own parameters; the rest is
//! [`super::sequence_backward::backward_sequence`].

use super::forward::Offsets;
use super::sequence::{Dims, Saved, Sequence};
use super::sequence_backward::{GradBuffers, backward_sequence};
use super::{grouped, mv};
use crate::device::Context;
use crate::error::Result;
use crate::ops::matmul::{self, Gemm};
use crate::tape::{Backward, Grads};
use crate::tensor::Tensor;

/// The tape node of a whole variant-A sequence.
pub(super) struct RimsNode {
    pub(super) seq: Sequence,
    pub(super) off: Offsets,
}

impl Backward for RimsNode {
    fn backward(self: Box<Self>, ctx: &Context, g: Tensor, grads: &mut Grads) -> Result<()> {
        let RimsNode { seq, off } = *self;
        let dm = seq.dm;
        let (t_len, b, n, h) = (dm.t, dm.b, dm.n, dm.h);
        let (pv, pg) = (&seq.store_values, &seq.store_grads);
        let saved = &seq.saved;
        // dctx = do·W_fcᵀ + dg·W_gᵀ.
        let output_backward = |t: usize, gb: &GradBuffers| -> Result<()> {
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
                matmul::gemm(ctx, &gm, &gb.dog, pv, None, &gb.dctx)?;
            }
            Ok(())
        };
        let own = |gb: &GradBuffers| own_weight_gradients(ctx, dm, &off, saved, pg, gb);
        let dog_shape = [t_len, b * n, 2, h];
        let var = off.variant();
        backward_sequence(
            ctx,
            &seq,
            &var,
            &g,
            grads,
            &dog_shape,
            dm.kvw(),
            output_backward,
            own,
        )
    }
}

/// The gradients of A's own parameters, each one product over all T·B rows (accumulated into
/// the store): the recurrent biases and the output and gate layers.
fn own_weight_gradients(
    ctx: &Context,
    dm: Dims,
    off: &Offsets,
    s: &Saved,
    pg: &Tensor,
    gb: &GradBuffers,
) -> Result<()> {
    let (t_len, b, n, h) = (dm.t, dm.b, dm.n, dm.h);
    let rows = t_len * b;
    let dz = [&gb.dzx, gb.dzh()];
    let dog = &gb.dog;
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
