//! The products of whole tensors, each one [`gemm`] over views of its operands: [`matmul`]
//! (batched, transposed through strides, a bias) and the grouped product for per-mechanism
//! weights with its two gradients.

use super::{Gemm, MatView, gemm};
use crate::device::Context;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Options of [`matmul`].
#[derive(Clone, Copy, Debug, Default)]
pub struct MatmulOptions<'a> {
    /// Use Aᵀ: A is stored [..., K, M].
    pub trans_a: bool,
    /// Use Bᵀ: B is stored [..., N, K] (or [N, K] when shared).
    pub trans_b: bool,
    /// Bias [N], added to every row.
    pub bias: Option<&'a Tensor>,
}

fn split_matrix(op: &'static str, what: &str, t: &Tensor) -> Result<(usize, usize, usize)> {
    let s = t.shape();
    if s.len() < 2 {
        return Err(Error::shape(
            op,
            format!("{what} must have at least 2 dimensions, got {s:?}"),
        ));
    }
    let batch = s[..s.len() - 2].iter().product();
    Ok((batch, s[s.len() - 2], s[s.len() - 1]))
}

/// `op(A)·op(B) (+ bias)` as a new tensor. A is [..., M, K]; B is either [K, N] (shared by the
/// whole batch) or has A's leading dimensions. Transposes are read through strides, never copied.
pub fn matmul(ctx: &Context, a: &Tensor, b: &Tensor, opts: MatmulOptions<'_>) -> Result<Tensor> {
    let (batch, ar, ac) = split_matrix("matmul", "A", a)?;
    let (bbatch, br, bc) = split_matrix("matmul", "B", b)?;
    let (m, k) = if opts.trans_a { (ac, ar) } else { (ar, ac) };
    let (kb, n) = if opts.trans_b { (bc, br) } else { (br, bc) };
    if k != kb {
        return Err(Error::shape(
            "matmul",
            format!(
                "inner dimensions differ: A {:?} (trans {}) and B {:?} (trans {})",
                a.shape(),
                opts.trans_a,
                b.shape(),
                opts.trans_b
            ),
        ));
    }
    let shared_b = b.shape().len() == 2;
    if !shared_b && a.shape()[..a.shape().len() - 2] != b.shape()[..b.shape().len() - 2] {
        return Err(Error::shape(
            "matmul",
            format!(
                "batch dimensions differ: A {:?} and B {:?}",
                a.shape(),
                b.shape()
            ),
        ));
    }
    debug_assert!(shared_b || bbatch == batch);
    if let Some(bias) = opts.bias
        && bias.shape() != [n]
    {
        return Err(Error::shape(
            "matmul",
            format!("bias must be [{n}], got {:?}", bias.shape()),
        ));
    }
    let mut out_shape = a.shape()[..a.shape().len() - 2].to_vec();
    out_shape.extend([m, n]);
    let c = Tensor::uninit(ctx, &out_shape)?;
    let av = MatView::row_major(ar, ac);
    let bv = MatView::row_major(br, bc);
    let g = Gemm {
        batch,
        inner: 1,
        m,
        n,
        k,
        a: if opts.trans_a { av.t() } else { av },
        b: {
            let v = if opts.trans_b { bv.t() } else { bv };
            if shared_b { v.shared() } else { v }
        },
        c: MatView::row_major(m, n),
        bias: opts.bias.map(|_| MatView {
            offset: 0,
            batch_stride: 0,
            row_stride: 0,
            col_stride: 1,
            inner_stride: 0,
        }),
        accumulate: false,
    };
    gemm(ctx, &g, a, b, opts.bias, &c)?;
    Ok(c)
}

fn grouped_dims(x: &Tensor, w: &Tensor) -> Result<(usize, usize, usize, usize)> {
    let (xs, ws) = (x.shape(), w.shape());
    if xs.len() != 3 || ws.len() != 3 {
        return Err(Error::shape(
            "grouped_matmul",
            format!("x must be [B, G, K] and w [G, K, N]; got {xs:?} and {ws:?}"),
        ));
    }
    if xs[1] != ws[0] || xs[2] != ws[1] {
        return Err(Error::shape(
            "grouped_matmul",
            format!("x {xs:?} does not fit w {ws:?} (x[1] = G, x[2] = K)"),
        ));
    }
    Ok((xs[0], xs[1], xs[2], ws[2]))
}

/// Grouped product for per-mechanism weights: x [B, G, K], w [G, K, N] (+ bias [G, N]) →
/// y [B, G, N] with y[b, g] = x[b, g]·w[g] + bias[g]. One dispatch for all groups.
pub fn grouped_matmul(
    ctx: &Context,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
) -> Result<Tensor> {
    let (bsz, g, k, n) = grouped_dims(x, w)?;
    if let Some(bias) = bias
        && bias.shape() != [g, n]
    {
        return Err(Error::shape(
            "grouped_matmul",
            format!("bias must be [{g}, {n}], got {:?}", bias.shape()),
        ));
    }
    let y = Tensor::uninit(ctx, &[bsz, g, n])?;
    let gemm_desc = Gemm {
        batch: g,
        inner: 1,
        m: bsz,
        n,
        k,
        a: MatView {
            offset: 0,
            batch_stride: k,
            row_stride: g * k,
            col_stride: 1,
            inner_stride: 0,
        },
        b: MatView::row_major(k, n),
        c: MatView {
            offset: 0,
            batch_stride: n,
            row_stride: g * n,
            col_stride: 1,
            inner_stride: 0,
        },
        bias: bias.map(|_| MatView {
            offset: 0,
            batch_stride: n,
            row_stride: 0,
            col_stride: 1,
            inner_stride: 0,
        }),
        accumulate: false,
    };
    gemm(ctx, &gemm_desc, x, w, bias, &y)?;
    Ok(y)
}

/// Backward of [`grouped_matmul`] with respect to x: dx[b, g] = dy[b, g]·w[g]ᵀ.
pub fn grouped_matmul_grad_x(ctx: &Context, dy: &Tensor, w: &Tensor) -> Result<Tensor> {
    let ws = w.shape();
    let ds = dy.shape();
    if ws.len() != 3 || ds.len() != 3 || ds[1] != ws[0] || ds[2] != ws[2] {
        return Err(Error::shape(
            "grouped_matmul_grad_x",
            format!("dy must be [B, G, N] for w [G, K, N]; got {ds:?} and {ws:?}"),
        ));
    }
    let (bsz, g, k, n) = (ds[0], ws[0], ws[1], ws[2]);
    let dx = Tensor::uninit(ctx, &[bsz, g, k])?;
    let desc = Gemm {
        batch: g,
        inner: 1,
        m: bsz,
        n: k,
        k: n,
        a: MatView {
            offset: 0,
            batch_stride: n,
            row_stride: g * n,
            col_stride: 1,
            inner_stride: 0,
        },
        b: MatView::row_major(k, n).t(),
        c: MatView {
            offset: 0,
            batch_stride: k,
            row_stride: g * k,
            col_stride: 1,
            inner_stride: 0,
        },
        bias: None,
        accumulate: false,
    };
    gemm(ctx, &desc, dy, w, None, &dx)?;
    Ok(dx)
}

/// Backward of [`grouped_matmul`] with respect to w: dw[g] = Σ_b x[b, g]ᵀ·dy[b, g]. With
/// `accumulate_into`, adds into that [G, K, N] tensor (gradient accumulation over time steps)
/// and returns it; otherwise returns a new tensor.
pub fn grouped_matmul_grad_w(
    ctx: &Context,
    x: &Tensor,
    dy: &Tensor,
    accumulate_into: Option<&Tensor>,
) -> Result<Tensor> {
    let (xs, ds) = (x.shape(), dy.shape());
    if xs.len() != 3 || ds.len() != 3 || xs[0] != ds[0] || xs[1] != ds[1] {
        return Err(Error::shape(
            "grouped_matmul_grad_w",
            format!("x [B, G, K] and dy [B, G, N] must agree on B and G; got {xs:?} and {ds:?}"),
        ));
    }
    let (bsz, g, k, n) = (xs[0], xs[1], xs[2], ds[2]);
    let dw = match accumulate_into {
        Some(t) if t.shape() == [g, k, n] => t.clone(),
        Some(t) => {
            return Err(Error::shape(
                "grouped_matmul_grad_w",
                format!("accumulator must be [{g}, {k}, {n}], got {:?}", t.shape()),
            ));
        }
        None => Tensor::uninit(ctx, &[g, k, n])?,
    };
    let desc = Gemm {
        batch: g,
        inner: 1,
        m: k,
        n,
        k: bsz,
        a: MatView {
            offset: 0,
            batch_stride: k,
            row_stride: 1,
            col_stride: g * k,
            inner_stride: 0,
        },
        b: MatView {
            offset: 0,
            batch_stride: n,
            row_stride: g * n,
            col_stride: 1,
            inner_stride: 0,
        },
        c: MatView::row_major(k, n),
        bias: None,
        accumulate: accumulate_into.is_some(),
    };
    gemm(ctx, &desc, x, dy, None, &dw)?;
    Ok(dw)
}
