//! f64 oracle for `ops::squared_error`.

/// Elementwise `(loss, dpred)`: `loss = (pred − target)²`, `dpred = 2 (pred − target)·grad_scale`.
pub fn squared_error(pred: &[f64], target: &[f64], grad_scale: f64) -> (Vec<f64>, Vec<f64>) {
    assert_eq!(pred.len(), target.len(), "pred and target differ in length");
    pred.iter()
        .zip(target)
        .map(|(&x, &t)| ((x - t) * (x - t), 2.0 * (x - t) * grad_scale))
        .unzip()
}

/// Mean loss over every element and its gradient (scale 1/n).
pub fn mean_squared_error(pred: &[f64], target: &[f64]) -> (f64, Vec<f64>) {
    let n = pred.len() as f64;
    let (loss, d) = squared_error(pred, target, 1.0 / n);
    (loss.iter().sum::<f64>() / n, d)
}
