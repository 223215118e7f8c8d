//! The optimizers' hyper-parameters (PyTorch's semantics), which `optim` runs and
//! `reference::optim` checks.

use crate::error::{Error, Result};

/// Added to the norm before dividing in global-norm clipping, as PyTorch's
/// `clip_grad_norm_` (and `clip_scale` of `shaders/optim.wgsl`).
pub const CLIP_EPS: f32 = 1e-6;

/// Adam's hyper-parameters; `Default` is PyTorch's (`torch.optim.Adam`) without clipping.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    /// Learning rate (step size).
    pub lr: f32,
    /// Decay rate of the first-moment (mean) estimate, in [0, 1).
    pub beta1: f32,
    /// Decay rate of the second-moment (uncentred variance) estimate, in [0, 1).
    pub beta2: f32,
    /// Added to the denominator `sqrt(v̂) + eps` for numerical stability.
    pub eps: f32,
    /// L2 penalty added to the gradient (`g + wd·p`, PyTorch's Adam), not AdamW's decay.
    pub weight_decay: f32,
    /// Global-norm clipping threshold (`clip_grad_norm_(max_norm)` before the step).
    pub clip_norm: Option<f32>,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            clip_norm: None,
        }
    }
}

/// SGD's hyper-parameters; `Default` is PyTorch's (`torch.optim.SGD`) without clipping.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdConfig {
    /// Learning rate (step size).
    pub lr: f32,
    /// Momentum factor (0: plain SGD).
    pub momentum: f32,
    /// Dampening applied to the gradient when it is added to the momentum buffer.
    pub dampening: f32,
    /// Nesterov momentum; needs `momentum > 0` and `dampening == 0`.
    pub nesterov: bool,
    /// L2 penalty added to the gradient (`g + wd·p`).
    pub weight_decay: f32,
    /// Global-norm clipping threshold (`clip_grad_norm_(max_norm)` before the step).
    pub clip_norm: Option<f32>,
}

impl Default for SgdConfig {
    fn default() -> Self {
        SgdConfig {
            lr: 1e-3,
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
            clip_norm: None,
        }
    }
}

/// A finite value >= 0.
pub(crate) fn non_negative(field: &'static str, v: f32) -> Result<()> {
    if !v.is_finite() || v < 0.0 {
        return Err(Error::config(
            field,
            format!("{v} must be finite and non-negative"),
        ));
    }
    Ok(())
}

/// A finite value in [0, 1).
fn unit_interval(field: &'static str, v: f32) -> Result<()> {
    if !(0.0..1.0).contains(&v) {
        return Err(Error::config(field, format!("{v} must be in [0, 1)")));
    }
    Ok(())
}

fn check_clip(clip: Option<f32>) -> Result<()> {
    match clip {
        Some(c) if !c.is_finite() || c <= 0.0 => Err(Error::config(
            "clip_norm",
            format!("{c} must be finite and positive"),
        )),
        _ => Ok(()),
    }
}

impl AdamConfig {
    /// Errors (naming the field) unless every value can work.
    pub fn validate(&self) -> Result<()> {
        non_negative("lr", self.lr)?;
        unit_interval("beta1", self.beta1)?;
        unit_interval("beta2", self.beta2)?;
        non_negative("eps", self.eps)?;
        non_negative("weight_decay", self.weight_decay)?;
        check_clip(self.clip_norm)
    }
}

impl SgdConfig {
    /// Errors (naming the field) unless every value can work.
    pub fn validate(&self) -> Result<()> {
        non_negative("lr", self.lr)?;
        non_negative("momentum", self.momentum)?;
        if !self.dampening.is_finite() {
            return Err(Error::config(
                "dampening",
                format!("{} must be finite", self.dampening),
            ));
        }
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            return Err(Error::config(
                "nesterov",
                "Nesterov momentum needs momentum > 0 and dampening == 0",
            ));
        }
        non_negative("weight_decay", self.weight_decay)?;
        check_clip(self.clip_norm)
    }
}
