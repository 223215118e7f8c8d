//! f64 oracle for `ops::matmul`: the strided batched product, written as the definition.

use crate::spec::matmul::{Gemm, MatView};

/// Index of element (i, j) of batch entry `bt` = (outer, inner).
fn at(v: &MatView, inner: usize, bt: usize, i: usize, j: usize) -> usize {
    v.offset
        + (bt / inner) * v.batch_stride
        + (bt % inner) * v.inner_stride
        + i * v.row_stride
        + j * v.col_stride
}

/// Applies `g` to flat buffers: c is updated in place (overwritten, or added to when
/// `g.accumulate`).
pub fn gemm(g: &Gemm, a: &[f64], b: &[f64], bias: Option<&[f64]>, c: &mut [f64]) {
    for bt in 0..g.batch * g.inner {
        for i in 0..g.m {
            for j in 0..g.n {
                let mut s = 0.0;
                for kk in 0..g.k {
                    s += a[at(&g.a, g.inner, bt, i, kk)] * b[at(&g.b, g.inner, bt, kk, j)];
                }
                if let (Some(bias), Some(bv)) = (bias, &g.bias) {
                    s += bias[at(bv, g.inner, bt, 0, j)];
                }
                let idx = at(&g.c, g.inner, bt, i, j);
                c[idx] = if g.accumulate { c[idx] + s } else { s };
            }
        }
    }
}

/// Dense row-major product: a [m, k] · b [k, n] → [m, n].
pub fn matmul(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            c[i * n + j] = (0..k).map(|kk| a[i * k + kk] * b[kk * n + j]).sum();
        }
    }
    c
}

/// Row-major transpose of an [rows, cols] matrix.
pub fn transpose(a: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    let mut t = vec![0.0; rows * cols];
    for i in 0..rows {
        for j in 0..cols {
            t[j * rows + i] = a[i * cols + j];
        }
    }
    t
}

/// Grouped product: x [bsz, g, k], w [g, k, n] (+ bias [g, n]) → [bsz, g, n].
pub fn grouped_matmul(
    x: &[f64],
    w: &[f64],
    bias: Option<&[f64]>,
    bsz: usize,
    g: usize,
    k: usize,
    n: usize,
) -> Vec<f64> {
    let mut y = vec![0.0; bsz * g * n];
    for b in 0..bsz {
        for gi in 0..g {
            for j in 0..n {
                let mut s = bias.map_or(0.0, |bv| bv[gi * n + j]);
                for kk in 0..k {
                    s += x[(b * g + gi) * k + kk] * w[(gi * k + kk) * n + j];
                }
                y[(b * g + gi) * n + j] = s;
            }
        }
    }
    y
}

/// Backward of `matmul`: given dC [m, n], returns (dA = dC·Bᵀ [m, k], dB = Aᵀ·dC [k, n]).
pub fn matmul_backward(
    a: &[f64],
    b: &[f64],
    dc: &[f64],
    m: usize,
    k: usize,
    n: usize,
) -> (Vec<f64>, Vec<f64>) {
    let da = matmul(dc, &transpose(b, k, n), m, n, k);
    let db = matmul(&transpose(a, m, k), dc, k, m, n);
    (da, db)
}
