//! f64 oracle for `ops::cross_entropy`. `logits` is row-major `[rows, classes]`.

/// Per-row softmax cross-entropy and its gradient: `(loss [rows], dlogits [rows·classes])`,
/// `loss[r] = log Σ_c exp(x[r,c]) − x[r,t_r]`, `dlogits[r] = (softmax(x[r]) − onehot(t_r))·grad_scale`.
/// A target `>= classes` gives loss 0 and a zero gradient row, as on the GPU.
pub fn softmax_cross_entropy(
    logits: &[f64],
    targets: &[u32],
    rows: usize,
    classes: usize,
    grad_scale: f64,
) -> (Vec<f64>, Vec<f64>) {
    assert_eq!(logits.len(), rows * classes, "logits is not rows x classes");
    assert_eq!(targets.len(), rows, "targets is not [rows]");
    let mut loss = vec![0.0; rows];
    let mut dlogits = vec![0.0; rows * classes];
    for r in 0..rows {
        let t = targets[r] as usize;
        if t >= classes {
            continue;
        }
        let row = &logits[r * classes..(r + 1) * classes];
        let mut max = f64::NEG_INFINITY;
        for &v in row {
            max = max.max(v);
        }
        let mut sum = 0.0;
        for &v in row {
            sum += (v - max).exp();
        }
        let lse = max + sum.ln();
        loss[r] = lse - row[t];
        for c in 0..classes {
            let p = (row[c] - lse).exp();
            let onehot = if c == t { 1.0 } else { 0.0 };
            dlogits[r * classes + c] = (p - onehot) * grad_scale;
        }
    }
    (loss, dlogits)
}

/// Mean loss over the rows and its gradient (scale 1/rows); rows with an out-of-range target
/// count in the divisor with loss 0.
pub fn mean_cross_entropy(
    logits: &[f64],
    targets: &[u32],
    rows: usize,
    classes: usize,
) -> (f64, Vec<f64>) {
    let (loss, dlogits) = softmax_cross_entropy(logits, targets, rows, classes, 1.0 / rows as f64);
    let mut sum = 0.0;
    for l in loss {
        sum += l;
    }
    (sum / rows as f64, dlogits)
}
