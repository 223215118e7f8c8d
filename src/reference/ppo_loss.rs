//! f64 oracle for `ops::ppo_loss`: PPO's clipped actor-critic loss per row, its statistics and
//! its gradient with respect to the logits and the values (docs/spec.md §8), straight from the
//! definitions. `logits` is row-major `[rows, actions]`.
//!
//! At the kinks it takes the sides the kernels take: `min` of the two surrogates and `max` of
//! the two value losses take the unclipped term on ties, and a clamp's derivative is 1 on its
//! closed interval and 0 strictly outside (as `torch.clamp`'s).

use crate::spec::ppo_loss::{PpoCoefs, STATS, stat};

/// The per-row inputs besides the logits and values, each `[rows]`.
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a> {
    /// The action taken; `>= actions` marks a row with zero loss, statistics and gradient.
    pub actions: &'a [u32],
    /// log π_old(a | s).
    pub old_logp: &'a [f64],
    /// The advantages.
    pub advantages: &'a [f64],
    /// The returns the value is fitted to.
    pub returns: &'a [f64],
    /// The values when the actions were taken.
    pub old_values: &'a [f64],
}

/// One row's statistics (indexed by `spec::ppo_loss::stat`) and the gradient of its loss.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// loss, policy loss, value loss, entropy, approx KL, clipped flag.
    pub stats: [f64; STATS],
    /// d(row loss)/d(logits of the row).
    pub dlogits: Vec<f64>,
    /// d(row loss)/d(value).
    pub dvalue: f64,
}

/// The derivative of `clamp(x, lo, hi)`: 1 on the closed interval, 0 strictly outside.
fn clamp_slope(x: f64, lo: f64, hi: f64) -> f64 {
    if lo <= x && x <= hi { 1.0 } else { 0.0 }
}

/// One row: `logits` its `[actions]` logits, the rest its scalars.
#[allow(clippy::too_many_arguments)]
pub fn row(
    logits: &[f64],
    value: f64,
    action: u32,
    old_logp: f64,
    adv: f64,
    ret: f64,
    old_value: f64,
    coefs: &PpoCoefs,
) -> Row {
    let n = logits.len();
    let a = action as usize;
    if a >= n {
        return Row {
            stats: [0.0; STATS],
            dlogits: vec![0.0; n],
            dvalue: 0.0,
        };
    }
    let eps = coefs.clip_eps as f64;
    let (vc, ec) = (coefs.value_coef as f64, coefs.entropy_coef as f64);

    // log softmax, stably.
    let max = logits.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x));
    let lse = max + logits.iter().map(|&x| (x - max).exp()).sum::<f64>().ln();
    let logps: Vec<f64> = logits.iter().map(|&x| x - lse).collect();
    let ps: Vec<f64> = logps.iter().map(|&l| l.exp()).collect();
    let entropy = -ps.iter().zip(&logps).map(|(p, l)| p * l).sum::<f64>();
    let logp = logps[a];

    // Policy: −min(surr1, surr2), the unclipped surr1 on ties.
    let ratio = (logp - old_logp).exp();
    let clamped = ratio.clamp(1.0 - eps, 1.0 + eps);
    let (surr1, surr2) = (ratio * adv, clamped * adv);
    let unclipped = surr1 <= surr2;
    let policy = if unclipped { -surr1 } else { -surr2 };
    let dpolicy_dratio = if unclipped {
        -adv
    } else {
        -adv * clamp_slope(ratio, 1.0 - eps, 1.0 + eps)
    };
    // d ratio / d logp = ratio.
    let dlogp = dpolicy_dratio * ratio;

    // Value: max(l1, l2), the unclipped l1 on ties.
    let delta = value - old_value;
    let v_clipped = old_value + delta.clamp(-eps, eps);
    let (l1, l2) = ((value - ret).powi(2), (v_clipped - ret).powi(2));
    let (value_loss, dvalue_loss) = if l1 >= l2 {
        (l1, 2.0 * (value - ret))
    } else {
        (l2, 2.0 * (v_clipped - ret) * clamp_slope(delta, -eps, eps))
    };

    let mut stats = [0.0; STATS];
    stats[stat::LOSS] = policy - ec * entropy + vc * value_loss;
    stats[stat::POLICY] = policy;
    stats[stat::VALUE] = value_loss;
    stats[stat::ENTROPY] = entropy;
    stats[stat::APPROX_KL] = old_logp - logp;
    stats[stat::CLIPPED] = if unclipped { 0.0 } else { 1.0 };

    // d logp / dx_j = onehot_j − p_j; d entropy / dx_j = −p_j (log p_j + entropy).
    let dlogits = (0..n)
        .map(|j| {
            let onehot = if j == a { 1.0 } else { 0.0 };
            let dentropy = -ps[j] * (logps[j] + entropy);
            dlogp * (onehot - ps[j]) - ec * dentropy
        })
        .collect();
    Row {
        stats,
        dlogits,
        dvalue: vc * dvalue_loss,
    }
}

/// Every row: `(stats [STATS·rows], dlogits [rows·actions], dvalues [rows])`, the stats one
/// statistic after another (`stats[k·rows + r]`, the kernel's `[STATS, rows]` layout) and the
/// gradients those of `grad_scale · Σ_r loss_r`.
pub fn ppo_loss(
    logits: &[f64],
    values: &[f64],
    batch: &Batch<'_>,
    actions: usize,
    coefs: &PpoCoefs,
    grad_scale: f64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let rows = values.len();
    assert_eq!(logits.len(), rows * actions, "logits is not rows x actions");
    for (name, len) in [
        ("actions", batch.actions.len()),
        ("old_logp", batch.old_logp.len()),
        ("advantages", batch.advantages.len()),
        ("returns", batch.returns.len()),
        ("old_values", batch.old_values.len()),
    ] {
        assert_eq!(len, rows, "{name} is not [rows]");
    }
    let mut stats = vec![0.0; STATS * rows];
    let mut dlogits = vec![0.0; rows * actions];
    let mut dvalues = vec![0.0; rows];
    for r in 0..rows {
        let out = row(
            &logits[r * actions..(r + 1) * actions],
            values[r],
            batch.actions[r],
            batch.old_logp[r],
            batch.advantages[r],
            batch.returns[r],
            batch.old_values[r],
            coefs,
        );
        for (k, s) in out.stats.iter().enumerate() {
            stats[k * rows + r] = *s;
        }
        for (d, g) in dlogits[r * actions..].iter_mut().zip(&out.dlogits) {
            *d = g * grad_scale;
        }
        dvalues[r] = out.dvalue * grad_scale;
    }
    (stats, dlogits, dvalues)
}

/// The mean over the rows: `(means [STATS], dlogits, dvalues)`, the gradients those of the mean
/// loss (scale 1/rows). Rows with an out-of-range action count in the divisor with zeros.
pub fn mean_ppo_loss(
    logits: &[f64],
    values: &[f64],
    batch: &Batch<'_>,
    actions: usize,
    coefs: &PpoCoefs,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let rows = values.len();
    let (stats, dlogits, dvalues) =
        ppo_loss(logits, values, batch, actions, coefs, 1.0 / rows as f64);
    let means = stats
        .chunks(rows)
        .map(|s| s.iter().sum::<f64>() / rows as f64)
        .collect();
    (means, dlogits, dvalues)
}
