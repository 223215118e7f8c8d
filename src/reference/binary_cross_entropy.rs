//! f64 oracle for `ops::binary_cross_entropy`, written from the definition
//! −t·log σ(z) − (1 − t)·log(1 − σ(z)) with the logs taken stably.

/// log σ(z) = −log(1 + e^(−z)), without overflow for either sign.
fn log_sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        -(-z).exp().ln_1p()
    } else {
        z - z.exp().ln_1p()
    }
}

/// Elementwise `(loss, dlogits)`: `loss = −t log σ(z) − (1 − t) log(1 − σ(z))`,
/// `dlogits = (σ(z) − t)·grad_scale`.
pub fn with_logits(logits: &[f64], targets: &[f64], grad_scale: f64) -> (Vec<f64>, Vec<f64>) {
    assert_eq!(
        logits.len(),
        targets.len(),
        "logits and targets differ in length"
    );
    logits
        .iter()
        .zip(targets)
        .map(|(&z, &t)| {
            // log(1 − σ(z)) = log σ(−z).
            let loss = -t * log_sigmoid(z) - (1.0 - t) * log_sigmoid(-z);
            let sigmoid = 1.0 / (1.0 + (-z).exp());
            (loss, (sigmoid - t) * grad_scale)
        })
        .unzip()
}

/// Mean loss over every element and its gradient (scale 1/n).
pub fn mean_with_logits(logits: &[f64], targets: &[f64]) -> (f64, Vec<f64>) {
    let n = logits.len() as f64;
    let (loss, d) = with_logits(logits, targets, 1.0 / n);
    (loss.iter().sum::<f64>() / n, d)
}
