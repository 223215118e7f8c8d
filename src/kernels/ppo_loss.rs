//! CPU twin of `shaders/ppo_loss.wgsl`: PPO's clipped actor-critic loss per row, its
//! statistics and its gradient with respect to the logits and the value, in one pass per row.
//! Sums are added in the GPU workgroup's order (`kernels::reduce::workgroup_sum`). Wrapper:
//! `ops::ppo_loss`; oracle: `reference::ppo_loss`.

use crate::kernels::reduce::{max_of, workgroup_size, workgroup_sum, workgroup_sum_indexed};
use crate::kernels::{CpuKernel, KernelArgs, Rows, par_for};
use crate::spec::ppo_loss::{BATCH_FIELDS, STATS, field, stat};

/// The uniform struct of `ppo_loss.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    /// Rows (= workgroups that do work, and the stride of the stats tensor).
    pub rows: u32,
    /// Logits per row; an action `>= actions` marks a row with zero results.
    pub actions: u32,
    /// Factor of the gradients (1 / rows for a mean loss).
    pub grad_scale: f32,
    /// ε of both clips.
    pub clip_eps: f32,
    /// Weight of the value loss.
    pub value_coef: f32,
    /// Weight of the entropy bonus.
    pub entropy_coef: f32,
    /// Padding to 32 bytes.
    pub _pad0: u32,
    /// Padding to 32 bytes.
    pub _pad1: u32,
}

/// Elements of logits per parallel block of rows.
const BLOCK: usize = 1 << 13;

/// The twin of each entry point.
pub fn twin(entry: &str) -> Option<CpuKernel> {
    Some(match entry {
        "ppo_loss" => ppo_loss,
        _ => return None,
    })
}

/// Bindings: logits, values, actions (u32), batch `[rows, 4]`, stats `[6, rows]`, dlogits,
/// dvalues.
fn ppo_loss(args: &KernelArgs<'_>) {
    let p: Params = args.params();
    let [logits, values, batch] = args.reads([0, 1, 3]);
    let taken = args.read_u32(2);
    let [stats, dlogits, dvalues] = args.writes([4, 5, 6]);
    let n = p.actions as usize;
    let stride = p.rows as usize;
    let [gx, gy, _] = args.groups();
    // Rows are wid.x + wid.y · nwg.x; those past p.rows return.
    let rows = stride.min(gx as usize * gy as usize);
    if rows == 0 || n == 0 {
        return;
    }
    let wg = workgroup_size(p.actions) as usize;
    let per = (BLOCK / n).max(1);
    // One Rows per statistic: row k of the stats tensor holds statistic k of every row.
    let mut each = stats[..STATS * stride].chunks_mut(stride);
    let stats: [Rows<'_, f32>; STATS] =
        std::array::from_fn(|_| Rows::new(&mut each.next().expect("STATS rows")[..rows], per));
    let dlogits = Rows::new(&mut dlogits[..rows * n], per * n);
    let dvalues = Rows::new(&mut dvalues[..rows], per);
    par_for(args, args.parallel(rows * n), rows.div_ceil(per), |b| {
        // SAFETY: par_for visits each block once.
        let (d, dv) = unsafe { (dlogits.row(b), dvalues.row(b)) };
        let mut s: [&mut [f32]; STATS] = std::array::from_fn(|k| unsafe { stats[k].row(b) });
        let first = b * per;
        for (i, (d, dv)) in d.chunks_mut(n).zip(dv.iter_mut()).enumerate() {
            let r = first + i;
            let x = &logits[r * n..(r + 1) * n];
            let fields = &batch[r * BATCH_FIELDS..(r + 1) * BATCH_FIELDS];
            let (out, g) = row(wg, &p, x, values[r], taken[r], fields, d);
            *dv = g;
            for (s, v) in s.iter_mut().zip(out) {
                s[i] = v;
            }
        }
    });
}

/// What a row's loss does with the log-probability of its action and its value: the WGSL's
/// `Terms`.
struct Terms {
    policy: f32,
    value_loss: f32,
    /// d(row loss) / d logp.
    dlogp: f32,
    /// d(row loss) / d value, value_coef included.
    dvalue: f32,
    clipped: f32,
}

/// WGSL's `clamp` (min(max(x, lo), hi)), which unlike `f32::clamp` cannot panic.
#[inline(always)]
fn clamp(x: f32, lo: f32, hi: f32) -> f32 {
    x.max(lo).min(hi)
}

fn terms(p: &Params, logp: f32, value: f32, fields: &[f32]) -> Terms {
    let old_logp = fields[field::OLD_LOGP];
    let adv = fields[field::ADVANTAGE];
    let ret = fields[field::RETURN];
    let old_value = fields[field::OLD_VALUE];
    let eps = p.clip_eps;

    let ratio = (logp - old_logp).exp();
    let surr1 = ratio * adv;
    let surr2 = clamp(ratio, 1.0 - eps, 1.0 + eps) * adv;
    let unclipped = surr1 <= surr2;
    // The clipped term wins only strictly, so only where clamp changed the ratio: outside the
    // closed interval, where its slope (and so the policy gradient) is 0.
    let (policy, dlogp, clipped) = if unclipped {
        (-surr1, -adv * ratio, 0.0)
    } else {
        (-surr2, 0.0, 1.0)
    };

    let delta = value - old_value;
    let e1 = value - ret;
    let e2 = (old_value + clamp(delta, -eps, eps)) - ret;
    let (l1, l2) = (e1 * e1, e2 * e2);
    // old_v + (v − old_v) need not round back to v, so l2 can win inside the interval too.
    let slope = if -eps <= delta && delta <= eps {
        1.0
    } else {
        0.0
    };
    let (value_loss, dvalue) = if l1 >= l2 {
        (l1, 2.0 * e1)
    } else {
        (l2, 2.0 * e2 * slope)
    };
    Terms {
        policy,
        value_loss,
        dlogp,
        dvalue: p.value_coef * dvalue,
        clipped,
    }
}

/// One row: writes its scaled logit gradient into `d` and returns its statistics and scaled
/// value gradient (all zero for an action `>= actions`).
#[inline]
fn row(
    wg: usize,
    p: &Params,
    x: &[f32],
    value: f32,
    a: u32,
    fields: &[f32],
    d: &mut [f32],
) -> ([f32; STATS], f32) {
    let m = max_of(x);
    for (d, &v) in d.iter_mut().zip(x) {
        *d = (v - m).exp();
    }
    // The max element contributes exp(0) = 1, so sum >= 1: the division and log are safe.
    let sum = workgroup_sum(wg, d, |e| e);
    let e: &[f32] = d;
    let sum_ez = workgroup_sum_indexed(wg, x.len(), |j| e[j] * (x[j] - m));
    let log_sum = sum.ln();
    let inv = 1.0 / sum;
    // mean_z = Σ p·z; entropy = −Σ p (z − log_sum) = log_sum − mean_z, and
    // log p_i + entropy = z_i − mean_z (no log_sum to cancel).
    let mean_z = sum_ez * inv;
    let entropy = log_sum - mean_z;
    let a = a as usize;
    if a >= x.len() {
        d.fill(0.0);
        return ([0.0; STATS], 0.0);
    }
    let logp = (x[a] - m) - log_sum;
    let t = terms(p, logp, value, fields);
    let ec = p.entropy_coef;
    for (j, (d, &v)) in d.iter_mut().zip(x).enumerate() {
        let pj = *d * inv;
        let onehot = if j == a { 1.0 } else { 0.0 };
        // d logp/dz_j = onehot − p_j; d entropy/dz_j = −p_j (log p_j + entropy).
        let g = t.dlogp * (onehot - pj) + ec * (pj * ((v - m) - mean_z));
        *d = g * p.grad_scale;
    }
    let mut s = [0.0; STATS];
    s[stat::LOSS] = (t.policy - ec * entropy) + p.value_coef * t.value_loss;
    s[stat::POLICY] = t.policy;
    s[stat::VALUE] = t.value_loss;
    s[stat::ENTROPY] = entropy;
    s[stat::APPROX_KL] = fields[field::OLD_LOGP] - logp;
    s[stat::CLIPPED] = t.clipped;
    (s, t.dvalue * p.grad_scale)
}
