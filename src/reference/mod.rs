//! The CPU oracle: every op's forward (and, later, backward) in plain f64 loops, written to be
//! obviously correct rather than fast. GPU results are compared with these at named tolerances.

pub mod binary_cross_entropy;
pub mod cell;
pub mod communication;
pub mod conv2d;
pub mod cross_entropy;
pub mod dropout;
pub mod elementwise;
pub mod embedding;
pub mod input_attention;
pub mod layer_norm;
pub mod matmul;
pub mod merge;
pub mod optim;
pub mod ppo_loss;
pub mod recurrent;
pub mod reduce;
pub mod rims;
pub mod rims_dido;
pub mod squared_error;
pub mod upsample;

/// Central finite differences of a scalar function, for checking gradients: returns
/// d f / d x_i for every i, with step `h`.
pub fn finite_differences(x: &[f64], h: f64, f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    let mut xp = x.to_vec();
    (0..x.len())
        .map(|i| {
            let orig = xp[i];
            xp[i] = orig + h;
            let up = f(&xp);
            xp[i] = orig - h;
            let down = f(&xp);
            xp[i] = orig;
            (up - down) / (2.0 * h)
        })
        .collect()
}
