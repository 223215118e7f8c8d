//! PPO's loss (docs/spec.md §8): its hyper-parameters and the layout of its per-row statistics,
//! named once for `ops::ppo_loss` (which runs it) and `reference::ppo_loss` (which checks it).

use crate::error::{Error, Result};

/// The coefficients of PPO's clipped loss; `Default` is torch_ac's (`PPOAlgo`'s defaults).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PpoCoefs {
    /// ε of the clipped surrogate (ratio kept in [1 − ε, 1 + ε]) and of the value clip
    /// (value kept within ε of the old value), as torch_ac uses one ε for both.
    pub clip_eps: f32,
    /// Weight of the value loss in the total.
    pub value_coef: f32,
    /// Weight of the entropy bonus (subtracted from the total).
    pub entropy_coef: f32,
}

impl Default for PpoCoefs {
    fn default() -> Self {
        PpoCoefs {
            clip_eps: 0.2,
            value_coef: 0.5,
            entropy_coef: 0.01,
        }
    }
}

impl PpoCoefs {
    /// Errors (naming the field) unless every value is finite and non-negative and
    /// `clip_eps > 0` (a zero ε would clip every ratio to 1 and stop all policy learning).
    pub fn validate(&self) -> Result<()> {
        for (field, v) in [
            ("clip_eps", self.clip_eps),
            ("value_coef", self.value_coef),
            ("entropy_coef", self.entropy_coef),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(Error::config(
                    field,
                    format!("{v} must be finite and non-negative"),
                ));
            }
        }
        if self.clip_eps <= 0.0 {
            return Err(Error::config(
                "clip_eps",
                format!("{} must be positive", self.clip_eps),
            ));
        }
        Ok(())
    }
}

/// Per-row statistics the loss kernel writes, in this order (the stats tensor is
/// `[STATS, rows]`, one row per statistic, so each mean is one row sum).
pub const STATS: usize = 6;

/// Index of each statistic in the stats tensor.
pub mod stat {
    /// The row's whole loss: `policy − entropy_coef·entropy + value_coef·value`.
    pub const LOSS: usize = 0;
    /// `−min(ratio·adv, clamp(ratio, 1 − ε, 1 + ε)·adv)`.
    pub const POLICY: usize = 1;
    /// `max((v − ret)², (v_clipped − ret)²)`, unweighted.
    pub const VALUE: usize = 2;
    /// `−Σ p log p` of the row's softmax.
    pub const ENTROPY: usize = 3;
    /// `old_logp − logp`, torch_ac's approximate KL.
    pub const APPROX_KL: usize = 4;
    /// 1 where the clipped surrogate was taken (so the row's policy gradient is zero), else 0.
    pub const CLIPPED: usize = 5;
}

/// The statistics' names, in their order (for logs).
pub const STAT_NAMES: [&str; STATS] = [
    "loss",
    "policy_loss",
    "value_loss",
    "entropy",
    "approx_kl",
    "clipped",
];

/// Columns of the batch's per-row data, `[rows, BATCH_FIELDS]`, in this order: the log
/// probability of the action when it was taken, its advantage, the return the value is fitted
/// to, and the value the critic gave then.
pub const BATCH_FIELDS: usize = 4;

/// Index of each column of the batch's per-row data.
pub mod field {
    /// log π_old(a | s), the action's log probability when it was sampled.
    pub const OLD_LOGP: usize = 0;
    /// The advantage estimate (already normalised, if the caller normalises).
    pub const ADVANTAGE: usize = 1;
    /// The return the critic is fitted to.
    pub const RETURN: usize = 2;
    /// The critic's value when the action was sampled (centre of the value clip).
    pub const OLD_VALUE: usize = 3;
}
