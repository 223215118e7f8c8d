//! PPO family: the clipped actor-critic loss of PPO (torch_ac's `PPOAlgo`, docs/spec.md §8), its
//! per-row statistics and its gradient with respect to the logits and the values, from one
//! kernel. Kernels: `shaders/ppo_loss.wgsl`; oracle: `reference::ppo_loss`; coefficients and
//! the statistics' layout: `spec::ppo_loss`.
//!
//! Actions live on the device and are not read back, so their range cannot be checked here: an
//! action `>= actions` gives that row zero statistics and zero gradients (the kernel never uses
//! it as an index), an "ignore this row" marker such as `u32::MAX` for padded rollouts.

use crate::device::{Context, grid};
use crate::error::{Error, Result};
use crate::kernels::ppo_loss::Params;
use crate::kernels::reduce::workgroup_size;
use crate::ops::elementwise::{self, Unary};
use crate::ops::{finite_grad_scale, reduce};
pub use crate::spec::ppo_loss::{BATCH_FIELDS, PpoCoefs, STAT_NAMES, STATS, field, stat};
use crate::tensor::{DType, Tensor};

/// The per-row inputs besides the logits and the values: the actions taken, u32 `[rows]`, and
/// f32 `[rows, BATCH_FIELDS]` holding per row old_logp, advantage, return and old value (the
/// columns of [`field`]). The four are packed in one tensor because the kernel may bind only
/// WebGPU's guaranteed 8 storage buffers; [`PpoBatch::from_slices`] packs them from the host.
#[derive(Clone, Debug)]
pub struct PpoBatch {
    actions: Tensor,
    data: Tensor,
}

impl PpoBatch {
    /// A batch of `actions` (u32 `[rows]`) and `data` (f32 `[rows, BATCH_FIELDS]`).
    pub fn new(actions: Tensor, data: Tensor) -> Result<Self> {
        const OP: &str = "PpoBatch::new";
        actions.expect_dtype(OP, DType::U32)?;
        data.expect_dtype(OP, DType::F32)?;
        let &[rows] = actions.shape() else {
            return Err(Error::shape(
                OP,
                format!("actions must be [rows], got {:?}", actions.shape()),
            ));
        };
        if data.shape() != [rows, BATCH_FIELDS] {
            return Err(Error::shape(
                OP,
                format!(
                    "data {:?} must be [rows, {BATCH_FIELDS}] = [{rows}, {BATCH_FIELDS}]",
                    data.shape()
                ),
            ));
        }
        Ok(PpoBatch { actions, data })
    }

    /// Uploads one rollout's rows: `actions` and the four per-row values, all of one length.
    pub fn from_slices(
        ctx: &Context,
        actions: &[u32],
        old_logp: &[f32],
        advantages: &[f32],
        returns: &[f32],
        old_values: &[f32],
    ) -> Result<Self> {
        let rows = actions.len();
        for (name, len) in [
            ("old_logp", old_logp.len()),
            ("advantages", advantages.len()),
            ("returns", returns.len()),
            ("old_values", old_values.len()),
        ] {
            if len != rows {
                return Err(Error::shape(
                    "PpoBatch::from_slices",
                    format!("{name} has {len} rows, actions {rows}"),
                ));
            }
        }
        let mut data = vec![0.0; rows * BATCH_FIELDS];
        for (r, d) in data.chunks_mut(BATCH_FIELDS).enumerate() {
            d[field::OLD_LOGP] = old_logp[r];
            d[field::ADVANTAGE] = advantages[r];
            d[field::RETURN] = returns[r];
            d[field::OLD_VALUE] = old_values[r];
        }
        PpoBatch::new(
            Tensor::from_u32(ctx, &[rows], actions)?,
            Tensor::from_slice(ctx, &[rows, BATCH_FIELDS], &data)?,
        )
    }

    /// Rows in the batch.
    pub fn rows(&self) -> usize {
        self.actions.len()
    }

    /// The actions, u32 `[rows]`.
    pub fn actions(&self) -> &Tensor {
        &self.actions
    }

    /// The per-row values, f32 `[rows, BATCH_FIELDS]`.
    pub fn data(&self) -> &Tensor {
        &self.data
    }
}

/// Per-row results of [`ppo_loss`].
#[derive(Clone, Debug)]
pub struct PpoRows {
    /// `[STATS, rows]`: statistic `k` (see [`stat`]) of row `r` at `k·rows + r`.
    pub stats: Tensor,
    /// The gradient of `grad_scale · Σ loss` with respect to the logits, `[rows, actions]`.
    pub dlogits: Tensor,
    /// The same with respect to the values, shaped like the values.
    pub dvalues: Tensor,
}

// The mean loss is a view of the means' first element: views start at aligned offsets.
const _: () = assert!(stat::LOSS == 0);

/// Results of [`mean_ppo_loss`].
#[derive(Clone, Debug)]
pub struct PpoMean {
    /// The mean loss, `[1]` (a view of `stats`' first element).
    pub loss: Tensor,
    /// `[STATS]`: each statistic's mean over the rows, the loss first (one read-back for logs).
    pub stats: Tensor,
    /// The gradient of the mean loss with respect to the logits, `[rows, actions]`.
    pub dlogits: Tensor,
    /// The same with respect to the values, shaped like the values.
    pub dvalues: Tensor,
}

/// Checks the operands and returns (rows, actions).
fn check(
    op: &'static str,
    logits: &Tensor,
    values: &Tensor,
    batch: &PpoBatch,
) -> Result<(u32, u32)> {
    logits.expect_dtype(op, DType::F32)?;
    values.expect_dtype(op, DType::F32)?;
    let &[rows, actions] = logits.shape() else {
        return Err(Error::shape(
            op,
            format!("logits must be [rows, actions], got {:?}", logits.shape()),
        ));
    };
    // A critic head's [rows, 1] output is taken as it comes.
    if values.shape() != [rows] && values.shape() != [rows, 1] {
        return Err(Error::shape(
            op,
            format!(
                "values {:?} must be [rows] or [rows, 1] = [{rows}] for logits {:?}",
                values.shape(),
                logits.shape()
            ),
        ));
    }
    if batch.rows() != rows {
        return Err(Error::shape(
            op,
            format!(
                "the batch has {} rows, logits {:?}",
                batch.rows(),
                logits.shape()
            ),
        ));
    }
    logits.expect_nonempty(op, "logits")?;
    // Shaders index with u32: the logits and the [STATS, rows] statistics must fit.
    for n in [logits.len(), STATS * rows] {
        if u32::try_from(n).is_err() {
            return Err(Error::DeviceLimit {
                what: format!("{op} over {rows} rows of {actions} actions"),
                requested: n as u64,
                limit: u32::MAX as u64,
            });
        }
    }
    Ok((rows as u32, actions as u32))
}

/// PPO's loss per row, its statistics and gradients, recorded as one dispatch.
///
/// `logits` is f32 `[rows, actions]`, `values` f32 `[rows]` (or `[rows, 1]`), `batch` the
/// rollout's rows. Returns the statistics of every row and the gradients of
/// `grad_scale · Σ_r loss_r` (docs/spec.md §8 for the loss and its kinks). A row whose action is
/// `>= actions` has zero statistics and gradients.
pub fn ppo_loss(
    ctx: &Context,
    logits: &Tensor,
    values: &Tensor,
    batch: &PpoBatch,
    coefs: PpoCoefs,
    grad_scale: f32,
) -> Result<PpoRows> {
    const OP: &str = "ppo_loss";
    let (rows, actions) = check(OP, logits, values, batch)?;
    coefs.validate()?;
    let grad_scale = finite_grad_scale(OP, grad_scale)?;
    let stats = Tensor::uninit(ctx, &[STATS, rows as usize])?;
    let dlogits = Tensor::uninit(ctx, logits.shape())?;
    let dvalues = Tensor::uninit(ctx, values.shape())?;
    let k = ctx.kernel("ppo_loss", "ppo_loss", &[("WG", workgroup_size(actions))])?;
    let groups = grid(ctx, OP, rows as u64)?;
    let params = Params {
        rows,
        actions,
        grad_scale,
        clip_eps: coefs.clip_eps,
        value_coef: coefs.value_coef,
        entropy_coef: coefs.entropy_coef,
        _pad0: 0,
        _pad1: 0,
    };
    ctx.dispatch(
        k,
        &params,
        &[
            logits,
            values,
            &batch.actions,
            &batch.data,
            &stats,
            &dlogits,
            &dvalues,
        ],
        groups,
    )?;
    Ok(PpoRows {
        stats,
        dlogits,
        dvalues,
    })
}

/// The mean of PPO's loss over the rows, the means of its statistics and the gradients of the
/// mean loss (scaled by 1/rows). Three dispatches: the kernel above, [`reduce::row_sum`] over
/// the statistics and a scale. Rows with an out-of-range action count in the divisor with zeros.
pub fn mean_ppo_loss(
    ctx: &Context,
    logits: &Tensor,
    values: &Tensor,
    batch: &PpoBatch,
    coefs: PpoCoefs,
) -> Result<PpoMean> {
    let (rows, _) = check("mean_ppo_loss", logits, values, batch)?;
    let inv = 1.0 / rows as f32;
    let per_row = ppo_loss(ctx, logits, values, batch, coefs, inv)?;
    let sums = reduce::row_sum(ctx, &per_row.stats)?;
    let stats = elementwise::unary(ctx, Unary::Scale(inv), &sums)?;
    Ok(PpoMean {
        loss: stats.view(stat::LOSS, &[1])?,
        stats,
        dlogits: per_row.dlogits,
        dvalues: per_row.dvalues,
    })
}
