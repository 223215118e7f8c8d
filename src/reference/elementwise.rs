//! f64 oracle for `ops::elementwise`.

use crate::spec::elementwise::{Binary, Unary};

/// σ(x) = 1 / (1 + e^(−x)).
pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Applies `op` to each element of `x`.
pub fn unary(op: Unary, x: &[f64]) -> Vec<f64> {
    x.iter()
        .map(|&v| match op {
            Unary::Sigmoid => sigmoid(v),
            Unary::Tanh => v.tanh(),
            Unary::Scale(s) => s as f64 * v,
            Unary::Relu => v.max(0.0),
            Unary::Elu(alpha) => {
                if v > 0.0 {
                    v
                } else {
                    alpha as f64 * v.exp_m1()
                }
            }
        })
        .collect()
}

/// `b` is repeated over `a` when shorter (trailing broadcast).
pub fn binary(op: Binary, a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter()
        .enumerate()
        .map(|(i, &x)| {
            let y = b[i % b.len()];
            match op {
                Binary::Add => x + y,
                Binary::Sub => x - y,
                Binary::Mul => x * y,
                Binary::AddScaled(s) => x + s as f64 * y,
                Binary::SigmoidBackward => y * x * (1.0 - x),
                Binary::TanhBackward => y * (1.0 - x * x),
                Binary::ReluBackward => {
                    if x > 0.0 {
                        y
                    } else {
                        0.0
                    }
                }
                Binary::EluBackward(alpha) => {
                    if x > 0.0 {
                        y
                    } else {
                        y * (x + alpha as f64)
                    }
                }
            }
        })
        .collect()
}

/// `dst += alpha * src`.
pub fn add_assign(dst: &mut [f64], src: &[f64], alpha: f64) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d += alpha * s;
    }
}

/// Derivative of sigmoid through its output: dx = dy·y·(1−y).
pub fn sigmoid_backward(y: &[f64], dy: &[f64]) -> Vec<f64> {
    y.iter().zip(dy).map(|(y, d)| d * y * (1.0 - y)).collect()
}

/// Derivative of tanh through its output: dx = dy·(1−y²).
pub fn tanh_backward(y: &[f64], dy: &[f64]) -> Vec<f64> {
    y.iter().zip(dy).map(|(y, d)| d * (1.0 - y * y)).collect()
}
