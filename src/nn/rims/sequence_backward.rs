//! What the two variants' sequence backwards share: the gradient buffers, the reversed time
//! loop, and the input and weight gradients of the parameters both variants have. A variant
//! supplies its output layer's backward and the gradients of its own parameters.

use super::grouped;
use super::mv;
use super::sequence::{Dims, Saved, Sequence, Variant, dropout};
use crate::device::Context;
use crate::error::Result;
use crate::nn::config::{CellKind, RimsConfig};
use crate::ops::communication::{self, RowMask};
use crate::ops::{cell, input_attention, merge};
use crate::tape::Grads;
use crate::tensor::Tensor;

/// The backward's buffers. `dh` and `dc` carry dL/dh_{t-1} and dL/dc_{t-1} from step to
/// step; the [T, ...] ones keep every step's gradient for the weight products after the loop.
pub(super) struct GradBuffers {
    dh: Tensor,
    dc: Tensor,
    /// The merge's gradients into h' and c', then communication's into h' (plane 2).
    dres: Tensor,
    du: Tensor,
    pub(super) dctx: Tensor,
    ds: Tensor,
    pub(super) dog: Tensor,
    pub(super) dqkv: Tensor,
    /// Gate gradients: dzx, and dzh where it differs (GRU); for LSTM they are equal.
    pub(super) dzx: Tensor,
    dzh_own: Option<Tensor>,
    pub(super) dq: Tensor,
    pub(super) dkv: Tensor,
}

impl GradBuffers {
    /// `dog_shape` and `dkv_width` are the variant's: its output layer's gradient and the
    /// row width of the input keys' and values' gradient.
    fn new(
        ctx: &Context,
        cfg: &RimsConfig,
        dm: Dims,
        dog_shape: &[usize],
        dkv_width: usize,
    ) -> Result<Self> {
        let (t_len, b, n, h) = (dm.t, dm.b, dm.n, dm.h);
        let lstm = cfg.cell == CellKind::Lstm;
        let zeros = |shape: &[usize]| Tensor::zeros(ctx, shape);
        let un = |shape: &[usize]| Tensor::uninit(ctx, shape);
        Ok(GradBuffers {
            dh: zeros(&[b, dm.nh()])?,
            dc: zeros(&[b, dm.nh()])?,
            dres: un(&[3, b, n, h])?,
            du: un(&[b, n, dm.a])?,
            dctx: un(&[b, n, dm.wv])?,
            ds: un(&[b, dm.hc, n, n])?,
            dog: un(dog_shape)?,
            dqkv: zeros(&[3, t_len, b, n, dm.w])?,
            dzx: un(&[t_len, b, n, dm.gh])?,
            dzh_own: if lstm {
                None
            } else {
                Some(un(&[t_len, b, n, dm.gh])?)
            },
            dq: un(&[t_len, b, n, dm.wq])?,
            dkv: un(&[t_len, b, dkv_width])?,
        })
    }

    pub(super) fn dzh(&self) -> &Tensor {
        self.dzh_own.as_ref().unwrap_or(&self.dzx)
    }
}

/// The whole backward of a sequence node, both variants: the buffers (`dog_shape` and
/// `dkv_width` are the variant's), the reversed time loop with the variant's output layer
/// backward (`output_backward(t, buffers)`, dog → dctx), the shared parameters' gradients,
/// the variant's own (`own_weight_gradients`), then dL/dx, dL/dh_0 and dL/dc_0.
#[allow(clippy::too_many_arguments)]
pub(super) fn backward_sequence(
    ctx: &Context,
    seq: &Sequence,
    var: &Variant,
    g: &Tensor,
    grads: &mut Grads,
    dog_shape: &[usize],
    dkv_width: usize,
    output_backward: impl Fn(usize, &GradBuffers) -> Result<()>,
    own_weight_gradients: impl FnOnce(&GradBuffers) -> Result<()>,
) -> Result<()> {
    let dm = seq.dm;
    let gb = GradBuffers::new(ctx, &seq.cfg, dm, dog_shape, dkv_width)?;
    backward_steps(ctx, seq, var, g, &gb, |t| output_backward(t, &gb))?;
    shared_weight_gradients(ctx, dm, var, &seq.saved, &seq.store_grads, &gb, dkv_width)?;
    own_weight_gradients(&gb)?;
    if grads.wants(seq.x) {
        let dx = input_gradient(ctx, dm, &seq.store_values, &gb, dkv_width, var.in_kv)?;
        grads.add(ctx, seq.x, dx)?;
    }
    // After step 1 the carries hold dL/dh_0 and dL/dc_0.
    seq.state_vars.add(ctx, grads, gb.dh, gb.dc)
}

/// The reversed time loop: per step, the merge, the variant's output layer backward
/// (`output_backward(t)`), the attention, the projections into h', the gates,
/// the two input products into u and h_{t-1}, input attention and the query product.
fn backward_steps(
    ctx: &Context,
    seq: &Sequence,
    var: &Variant,
    g: &Tensor,
    gb: &GradBuffers,
    output_backward: impl Fn(usize) -> Result<()>,
) -> Result<()> {
    let Sequence {
        cfg,
        dm,
        saved: s,
        store_values: pv,
        opts,
        ..
    } = seq;
    let (t_len, b, n, h) = (dm.t, dm.b, dm.n, dm.h);
    let nh = dm.nh();
    let dhpc_at = 2 * b * nh;
    let dzh = gb.dzh();
    let cell_dims = cell::Dims {
        batch: b,
        units: n,
        hidden: h,
    };
    let carry = if cfg.cell == CellKind::Lstm {
        &gb.dc
    } else {
        &gb.dh
    };
    let sizes = cfg.input_attention_sizes();
    for t in (0..t_len).rev() {
        let drop = dropout(opts, cfg, t);
        let mb = merge::Backward {
            residual: var.residual,
            mask: &s.mask,
            dh_out: g,
            tg: &s.tg,
            dh: &gb.dh,
            dc: &gb.dc,
            dres: &gb.dres,
            dog: &gb.dog,
        };
        merge::backward(ctx, cfg.cell, b, n, h, t, drop, &mb)?;
        output_backward(t)?;
        let row_mask = var.row_mask.then_some(RowMask {
            mask: &s.mask,
            dropout: drop,
        });
        communication::backward(
            ctx,
            &cfg.communication_sizes(),
            b,
            t_len,
            t,
            &s.qkv,
            &s.probs,
            &gb.dctx,
            &gb.ds,
            &gb.dqkv,
            row_mask,
        )?;
        // Communication's gradient into h': Σ over Q, K, V of dP·W_Pᵀ, per mechanism (with a
        // row mask, inactive mechanisms are blocked by the cell's backward, which skips them).
        for (sidx, width) in [(0, dm.wk), (1, dm.wk), (2, dm.wv)] {
            grouped(
                ctx,
                b,
                n,
                width,
                h,
                (
                    &gb.dqkv,
                    mv(sidx * dm.qkv_plane() + t * b * n * dm.w, dm.w, n * dm.w, 1),
                ),
                (pv, mv(var.comm[sidx], h * width, width, 1).t()),
                (&gb.dres, mv(dhpc_at, h, nh, 1)),
                None,
                sidx > 0,
                1,
            )?;
        }
        let cb = cell::Backward {
            zh: &s.zh,
            hs: &s.hs,
            cs: &s.cs,
            act: &s.act,
            cp: &s.cp,
            mask: &s.mask,
            dres: &gb.dres,
            dzx: &gb.dzx,
            dzh,
            carry,
        };
        cell::backward(ctx, cfg.cell, cell_dims, t, &cb)?;
        let step_g = t * b * n * dm.gh;
        // du = dzx·W_xᵀ; dh_{t-1} += dzh·W_hᵀ.
        grouped(
            ctx,
            b,
            n,
            dm.gh,
            dm.a,
            (&gb.dzx, mv(step_g, dm.gh, n * dm.gh, 1)),
            (pv, mv(var.rnn_wx, dm.a * dm.gh, dm.gh, 1).t()),
            (&gb.du, mv(0, dm.a, n * dm.a, 1)),
            None,
            false,
            1,
        )?;
        grouped(
            ctx,
            b,
            n,
            dm.gh,
            h,
            (dzh, mv(step_g, dm.gh, n * dm.gh, 1)),
            (pv, mv(var.rnn_wh, h * dm.gh, dm.gh, 1).t()),
            (&gb.dh, mv(0, h, nh, 1)),
            None,
            true,
            1,
        )?;
        let ib = input_attention::Backward {
            kv: &s.kv,
            du: &gb.du,
            q: &s.q,
            alpha: &s.alpha,
            mask: &s.mask,
            dq: &gb.dq,
            dkv: &gb.dkv,
        };
        (var.attention_backward)(ctx, &sizes, b, t, drop, &ib)?;
        // dh_{t-1} += dq·W_qᵀ.
        grouped(
            ctx,
            b,
            n,
            dm.wq,
            h,
            (&gb.dq, mv(t * b * n * dm.wq, dm.wq, n * dm.wq, 1)),
            (pv, mv(var.in_q, h * dm.wq, dm.wq, 1).t()),
            (&gb.dh, mv(0, h, nh, 1)),
            None,
            true,
            1,
        )?;
    }
    Ok(())
}

/// dx = d(k)·W_kᵀ + d(v)·W_vᵀ over all T·B rows; d(k) and d(v) are the first two column
/// blocks of `dkv` (rows `dkv_width` wide).
fn input_gradient(
    ctx: &Context,
    dm: Dims,
    pv: &Tensor,
    gb: &GradBuffers,
    dkv_width: usize,
    [in_k_w, in_v_w]: [usize; 2],
) -> Result<Tensor> {
    let dx = Tensor::uninit(ctx, &[dm.t, dm.b, dm.d])?;
    for (col, width, w, acc) in [(0, dm.wq, in_k_w, false), (dm.wq, dm.wvin, in_v_w, true)] {
        grouped(
            ctx,
            dm.t * dm.b,
            1,
            width,
            dm.d,
            (&gb.dkv, mv(col, 0, dkv_width, 1)),
            (pv, mv(w, 0, width, 1).t()),
            (&dx, mv(0, 0, dm.d, 1)),
            None,
            acc,
            1,
        )?;
    }
    Ok(dx)
}

/// The gradients of the parameters both variants have: in_q, in_k_w, in_v_w, rnn_wx, rnn_wh
/// and the communication projections, each one product over all T·B rows (accumulated into
/// the store's gradients `pg`; each into its own parameter, so the order of these and the
/// variant's own products does not change a number).
#[allow(clippy::too_many_arguments)]
fn shared_weight_gradients(
    ctx: &Context,
    dm: Dims,
    var: &Variant,
    s: &Saved,
    pg: &Tensor,
    gb: &GradBuffers,
    dkv_width: usize,
) -> Result<()> {
    let (n, h) = (dm.n, dm.h);
    let [in_k_w, in_v_w] = var.in_kv;
    let rows = dm.t * dm.b;
    let per_mech_t = per_mechanism_transposed(n);
    let x_t = mv(0, 0, 1, dm.d);
    // (rows of A, groups, width, A, B, C): C += A·B with k = T·B.
    let products = [
        // in_q: Σ h_{t-1}ᵀ dq.
        (
            h,
            n,
            dm.wq,
            (&s.hs, per_mech_t(0, h)),
            (&gb.dq, mv(0, dm.wq, n * dm.wq, 1)),
            mv(var.in_q, h * dm.wq, dm.wq, 1),
        ),
        // in_k_w, in_v_w: xᵀ d(k) and xᵀ d(v).
        (
            dm.d,
            1,
            dm.wq,
            (&s.x, x_t),
            (&gb.dkv, mv(0, 0, dkv_width, 1)),
            mv(in_k_w, 0, dm.wq, 1),
        ),
        (
            dm.d,
            1,
            dm.wvin,
            (&s.x, x_t),
            (&gb.dkv, mv(dm.wq, 0, dkv_width, 1)),
            mv(in_v_w, 0, dm.wvin, 1),
        ),
        // rnn_wx: Σ uᵀ dzx; rnn_wh: Σ h_{t-1}ᵀ dzh.
        (
            dm.a,
            n,
            dm.gh,
            (&s.u, per_mech_t(0, dm.a)),
            (&gb.dzx, mv(0, dm.gh, n * dm.gh, 1)),
            mv(var.rnn_wx, dm.a * dm.gh, dm.gh, 1),
        ),
        (
            h,
            n,
            dm.gh,
            (&s.hs, per_mech_t(0, h)),
            (gb.dzh(), mv(0, dm.gh, n * dm.gh, 1)),
            mv(var.rnn_wh, h * dm.gh, dm.gh, 1),
        ),
    ];
    for (m, groups, width, a, bm, c) in products {
        grouped(ctx, m, groups, rows, width, a, bm, (pg, c), None, true, 1)?;
    }
    // Communication projections: Σ h'ᵀ dP for P in Q, K, V.
    for (sidx, width) in [(0, dm.wk), (1, dm.wk), (2, dm.wv)] {
        grouped(
            ctx,
            dm.h,
            dm.n,
            dm.t * dm.b,
            width,
            (&s.hp, per_mech_t(0, dm.h)),
            (&gb.dqkv, mv(sidx * dm.qkv_plane(), dm.w, dm.n * dm.w, 1)),
            (pg, mv(var.comm[sidx], dm.h * width, width, 1)),
            None,
            true,
            1,
        )?;
    }
    Ok(())
}

/// A per-mechanism block of a [rows, N, width] buffer, transposed: (width x rows).
pub(super) fn per_mechanism_transposed(
    n: usize,
) -> impl Fn(usize, usize) -> crate::ops::matmul::MatView {
    move |offset, width| mv(offset, width, 1, n * width)
}
