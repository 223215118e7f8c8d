//! f64 oracle for `ops::layer_norm`: each row of `[rows, cols]` normalised over its elements
//! (biased variance), then `gain` and `bias` applied per column.

/// `(y, mean [rows], rstd [rows])` with `y = (x − mean)·rstd·gain + bias`,
/// `rstd = 1 / √(var + eps)`.
pub fn forward(
    x: &[f64],
    gain: &[f64],
    bias: &[f64],
    cols: usize,
    eps: f64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    assert_eq!(
        (gain.len(), bias.len()),
        (cols, cols),
        "gain and bias are [cols]"
    );
    assert_eq!(x.len() % cols, 0, "x is [rows, cols]");
    let (mut y, mut means, mut rstds) = (Vec::new(), Vec::new(), Vec::new());
    for row in x.chunks(cols) {
        let mean = row.iter().sum::<f64>() / cols as f64;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / cols as f64;
        let rstd = 1.0 / (var + eps).sqrt();
        y.extend((0..cols).map(|j| (row[j] - mean) * rstd * gain[j] + bias[j]));
        means.push(mean);
        rstds.push(rstd);
    }
    (y, means, rstds)
}

/// `(dx, dgain, dbias)` for the output gradient `dy`, from the forward's inputs: x̂ is
/// recomputed, and dx follows from differentiating mean and variance through x̂.
pub fn backward(
    x: &[f64],
    gain: &[f64],
    dy: &[f64],
    cols: usize,
    eps: f64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let zeros = vec![0.0; cols];
    let (_, means, rstds) = forward(x, gain, &zeros, cols, eps);
    let n = cols as f64;
    let (mut dx, mut dgain, mut dbias) = (Vec::new(), vec![0.0; cols], vec![0.0; cols]);
    for (r, (row, dy)) in x.chunks(cols).zip(dy.chunks(cols)).enumerate() {
        let xhat: Vec<f64> = row.iter().map(|v| (v - means[r]) * rstds[r]).collect();
        let g: Vec<f64> = (0..cols).map(|j| dy[j] * gain[j]).collect();
        let mean_g = g.iter().sum::<f64>() / n;
        let mean_gx = g.iter().zip(&xhat).map(|(g, h)| g * h).sum::<f64>() / n;
        dx.extend((0..cols).map(|j| rstds[r] * (g[j] - mean_g - xhat[j] * mean_gx)));
        for j in 0..cols {
            dgain[j] += dy[j] * xhat[j];
            dbias[j] += dy[j];
        }
    }
    (dx, dgain, dbias)
}
