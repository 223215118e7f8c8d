//! The backward of the variant-D sequence node (the step order is in `nn::rims::dido`'s docs):
//! D's per-mechanism output layer and the gradients of D's own parameters; the rest is
//! [`crate::nn::rims::sequence_backward::backward_sequence`].

use super::{Offsets, dkvw};
use crate::device::Context;
use crate::error::Result;
use crate::nn::rims::sequence::{Dims, Saved, Sequence};
use crate::nn::rims::sequence_backward::{
    GradBuffers, backward_sequence, per_mechanism_transposed,
};
use crate::nn::rims::{grouped, mv};
use crate::tape::{Backward, Grads};
use crate::tensor::Tensor;

/// The tape node of a whole variant-D sequence.
pub(super) struct DidoNode {
    pub(super) seq: Sequence,
    pub(super) off: Offsets,
}

impl Backward for DidoNode {
    fn backward(self: Box<Self>, ctx: &Context, g: Tensor, grads: &mut Grads) -> Result<()> {
        let DidoNode { seq, off } = *self;
        let dm = seq.dm;
        let (t_len, b, n, h) = (dm.t, dm.b, dm.n, dm.h);
        let nh = dm.nh();
        let (pv, pg) = (&seq.store_values, &seq.store_grads);
        let saved = &seq.saved;
        // dctx_i = do_i·comm_out_w_iᵀ.
        let output_backward = |t: usize, gb: &GradBuffers| {
            grouped(
                ctx,
                b,
                n,
                h,
                dm.wv,
                (&gb.dog, mv(t * b * nh, h, nh, 1)),
                (pv, mv(off.out_w, dm.wv * h, h, 1).t()),
                (&gb.dctx, mv(0, dm.wv, n * dm.wv, 1)),
                None,
                false,
                1,
            )
        };
        let own = |gb: &GradBuffers| own_weight_gradients(ctx, dm, &off, saved, pg, gb);
        let dog_shape = [t_len, b * n, h];
        let var = off.variant();
        backward_sequence(
            ctx,
            &seq,
            &var,
            &g,
            grads,
            &dog_shape,
            dkvw(&dm),
            output_backward,
            own,
        )
    }
}

/// The gradients of D's own parameters, each one product over all T·B rows (accumulated into
/// the store). `in_k_b` gets none: its gradient is exactly zero (the two-slot softmax sees
/// s_x − s_∅, from which the key bias cancels, and the selection is detached).
fn own_weight_gradients(
    ctx: &Context,
    dm: Dims,
    off: &Offsets,
    s: &Saved,
    pg: &Tensor,
    gb: &GradBuffers,
) -> Result<()> {
    let (n, h) = (dm.n, dm.h);
    let rows = dm.t * dm.b;
    let dkv = &gb.dkv;
    // comm_out_w: Σ ctx_iᵀ do_i, per mechanism.
    grouped(
        ctx,
        dm.wv,
        n,
        rows,
        h,
        (&s.ctxb, per_mechanism_transposed(n)(0, dm.wv)),
        (&gb.dog, mv(0, h, n * h, 1)),
        (pg, mv(off.out_w, dm.wv * h, h, 1)),
        None,
        true,
        1,
    )?;
    // in_v_b: column sums of dv_x and dv_∅, as products with a row of ones.
    let ones = Tensor::full(ctx, &[rows], 1.0)?;
    for col in [dm.wq, dm.wq + dm.wvin] {
        grouped(
            ctx,
            1,
            1,
            rows,
            dm.wvin,
            (&ones, mv(0, 0, rows, 1)),
            (dkv, mv(col, 0, dkvw(&dm), 1)),
            (pg, mv(off.in_v_b, 0, dm.wvin, 1)),
            None,
            true,
            1,
        )?;
    }
    Ok(())
}
