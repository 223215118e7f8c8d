//! f64 oracle for `ops::reduce`. `x` is row-major `[rows, cols]`.

/// Sum of each row.
pub fn row_sum(x: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    assert_eq!(x.len(), rows * cols, "row_sum: x is not rows x cols");
    let mut out = vec![0.0; rows];
    for r in 0..rows {
        for c in 0..cols {
            out[r] += x[r * cols + c];
        }
    }
    out
}

/// Max of each row.
pub fn row_max(x: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    assert_eq!(x.len(), rows * cols, "row_max: x is not rows x cols");
    let mut out = vec![f64::NEG_INFINITY; rows];
    for r in 0..rows {
        for c in 0..cols {
            out[r] = out[r].max(x[r * cols + c]);
        }
    }
    out
}

/// Softmax of each row, exp(x − max) / Σ exp(x − max).
pub fn softmax_rows(x: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    let max = row_max(x, rows, cols);
    let mut out = vec![0.0; rows * cols];
    for r in 0..rows {
        let mut sum = 0.0;
        for c in 0..cols {
            let e = (x[r * cols + c] - max[r]).exp();
            out[r * cols + c] = e;
            sum += e;
        }
        for c in 0..cols {
            out[r * cols + c] /= sum;
        }
    }
    out
}

/// Sum of every element.
pub fn sum_all(x: &[f64]) -> f64 {
    let mut sum = 0.0;
    for &v in x {
        sum += v;
    }
    sum
}
