//! f64 oracle for `optim`: PyTorch's `clip_grad_norm_`, `Adam` and `SGD`, written plainly.

use crate::spec::optim::{AdamConfig, CLIP_EPS, SgdConfig};

/// The global L2 norm sqrt(Σ g²).
pub fn grad_norm(grads: &[f64]) -> f64 {
    grads.iter().map(|g| g * g).sum::<f64>().sqrt()
}

/// `torch.nn.utils.clip_grad_norm_(max_norm)`: scales `grads` by
/// min(1, max_norm / (norm + 1e-6)) and returns the norm before clipping.
pub fn clip_grad_norm(grads: &mut [f64], max_norm: f64) -> f64 {
    let total = grad_norm(grads);
    let coef = (max_norm / (total + CLIP_EPS as f64)).min(1.0);
    for g in grads.iter_mut() {
        *g *= coef;
    }
    total
}

/// Adam's state: the moments and the step count.
#[derive(Clone, Debug)]
pub struct AdamState {
    /// First moments, one per parameter.
    pub m: Vec<f64>,
    /// Second moments, one per parameter.
    pub v: Vec<f64>,
    /// Steps taken so far.
    pub t: u64,
}

impl AdamState {
    /// Zeroed state for `n` parameters.
    pub fn new(n: usize) -> Self {
        AdamState {
            m: vec![0.0; n],
            v: vec![0.0; n],
            t: 0,
        }
    }
}

/// One Adam step (clipping first when `cfg.clip_norm` is set); returns the pre-clip norm then.
pub fn adam_step(
    cfg: &AdamConfig,
    state: &mut AdamState,
    params: &mut [f64],
    grads: &[f64],
) -> Option<f64> {
    let mut grads = grads.to_vec();
    let norm = cfg.clip_norm.map(|c| clip_grad_norm(&mut grads, c as f64));
    let (lr, b1, b2) = (cfg.lr as f64, cfg.beta1 as f64, cfg.beta2 as f64);
    let (eps, wd) = (cfg.eps as f64, cfg.weight_decay as f64);
    state.t += 1;
    let t = state.t as f64;
    let bias_correction1 = 1.0 - b1.powf(t);
    let bias_correction2 = 1.0 - b2.powf(t);
    let step_size = lr / bias_correction1;
    for i in 0..params.len() {
        let g = grads[i] + wd * params[i];
        state.m[i] = b1 * state.m[i] + (1.0 - b1) * g;
        state.v[i] = b2 * state.v[i] + (1.0 - b2) * g * g;
        let denom = state.v[i].sqrt() / bias_correction2.sqrt() + eps;
        params[i] -= step_size * state.m[i] / denom;
    }
    norm
}

/// SGD's state: the momentum buffer (None until the first step, as in PyTorch).
#[derive(Clone, Debug, Default)]
pub struct SgdState {
    /// Momentum buffer, one per parameter.
    pub buf: Option<Vec<f64>>,
}

/// One SGD step (clipping first when `cfg.clip_norm` is set); returns the pre-clip norm then.
pub fn sgd_step(
    cfg: &SgdConfig,
    state: &mut SgdState,
    params: &mut [f64],
    grads: &[f64],
) -> Option<f64> {
    let mut grads = grads.to_vec();
    let norm = cfg.clip_norm.map(|c| clip_grad_norm(&mut grads, c as f64));
    let (lr, momentum) = (cfg.lr as f64, cfg.momentum as f64);
    let (dampening, wd) = (cfg.dampening as f64, cfg.weight_decay as f64);
    for (g, p) in grads.iter_mut().zip(params.iter()) {
        *g += wd * p;
    }
    if momentum != 0.0 {
        let buf = match state.buf.take() {
            None => grads.clone(),
            Some(mut buf) => {
                for (b, g) in buf.iter_mut().zip(&grads) {
                    *b = momentum * *b + (1.0 - dampening) * g;
                }
                buf
            }
        };
        for (g, b) in grads.iter_mut().zip(&buf) {
            *g = if cfg.nesterov { *g + momentum * b } else { *b };
        }
        state.buf = Some(buf);
    }
    for (p, g) in params.iter_mut().zip(&grads) {
        *p -= lr * g;
    }
    norm
}
