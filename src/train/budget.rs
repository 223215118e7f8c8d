//! The memory a run needs, checked before anything large is allocated, so that a size that
//! cannot fit (a batch of ten million sequences, H = 100000) is refused at once with the flags
//! to change, instead of the allocator aborting or the machine swapping for minutes.
//!
//! The estimate is a lower bound: the parameters (values and gradients, and Adam's two moments
//! when training) and the data are counted exactly, the activations by the few tensors every
//! step must keep. A run refused here could not have run; one accepted may still need more.

use crate::device::{Context, DeviceKind};
use crate::error::{Error, Result};
use crate::nn::model::{Backbone, InputLayer, ModelConfig, Readout};
use crate::train::config::{Task, TrainConfig};

/// What a model run keeps in memory, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Need {
    /// Parameters and gradients, and Adam's moments when training.
    pub params: u128,
    /// One copy of the parameters: the flat buffer each of those is.
    pub param_buffer: u128,
    /// Activations of one batch (the whole sequence; kept for the backward pass when training).
    pub activations: u128,
    /// Host-side data: the batches of an epoch.
    pub data: u128,
}

impl Need {
    /// All of it.
    pub fn total(&self) -> u128 {
        self.params + self.activations + self.data
    }
}

/// Steps of the longest sequence a run of `cfg` evaluates or trains on, and its host data.
fn task_sizes(cfg: &TrainConfig, training: bool) -> (u128, u128) {
    let (batch, word) = (cfg.batch as u128, 4u128);
    match cfg.task {
        Task::Copying => {
            let longest = cfg.train_len.max(cfg.test_len) as u128 + 2 * cfg.symbols as u128;
            // Inputs and targets, time-major; training draws from a pool of batches.
            let pool = if training { cfg.pool as u128 } else { 1 };
            (longest, pool * batch * longest * 2 * word)
        }
        Task::Adding => {
            let longest = cfg.train_len.max(cfg.test_len) as u128;
            // Value and marker channels, and one target per sequence; a fresh batch each step.
            let channels = crate::data::adding::CHANNELS as u128;
            (longest, batch * (longest * channels + 1) * word)
        }
        Task::Smnist => {
            let s = cfg
                .eval_resolutions
                .iter()
                .copied()
                .chain([cfg.resolution])
                .max()
                .unwrap_or(cfg.resolution) as u128;
            (s * s, batch * s * s * word)
        }
        Task::Balls => {
            let given = crate::train::balls::ROLLOUT_GIVEN;
            let longest = cfg.train_len.max(given + cfg.test_len) as u128;
            // One batch of frames at a time, drawn fresh each step.
            let pixels = (cfg.frame_size * cfg.frame_size) as u128;
            (longest, batch * longest * pixels * word)
        }
    }
}

/// The memory of running `model` on `batch` sequences of `t_len` steps (training or not), with
/// `data` bytes of host data.
pub fn need(model: &ModelConfig, t_len: usize, batch: usize, training: bool, data: u128) -> Need {
    let params: u128 = model
        .param_specs()
        .iter()
        .map(|s| s.shape.iter().map(|&d| d as u128).product::<u128>())
        .sum();
    let copies = if training { 4 } else { 2 };
    let r = &model.rims;
    let (gates, hidden) = (r.cell.gates() as u128, r.hidden as u128);
    // Per sequence and step: gate pre-activations, h and c of every mechanism, the input
    // attention's output, the cell input and the logits of a per-step readout.
    let per_step = match model.backbone {
        Backbone::Rims => {
            r.mechanisms as u128 * (gates * hidden + 2 * hidden + r.cell_input() as u128)
                + r.input as u128
        }
        Backbone::Dense { hidden } => (gates + 2) * hidden as u128 + r.input as u128,
    } + match model.readout {
        Readout::All => model.classes as u128,
        Readout::Last => 0,
    } + match model.input {
        InputLayer::Frames(net) => net.activations_per_frame() as u128,
        _ => 0,
    };
    // A training step keeps them for the backward pass and writes their gradients.
    let passes = if training { 4 } else { 1 };
    Need {
        params: params * copies * 4,
        param_buffer: params * 4,
        activations: t_len as u128 * batch as u128 * per_step * passes * 4,
        data,
    }
}

/// 1536 -> "1.5 KiB".
fn human(bytes: u128) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Refuses `need` when it cannot fit the device of `ctx`: on the CPU device everything lives
/// in the machine's memory; on a GPU the parameters are one buffer (at most the device's
/// largest buffer) and the data lives in the host's memory. `what` says what was sized
/// ("a training step on ..."); the error names the flags to change.
pub fn check_need(ctx: &Context, need: &Need, what: &str) -> Result<()> {
    let host = crate::device::host::total_memory_bytes() as u128;
    let largest = ctx.limits().max_buffer_size as u128;
    let breakdown = || {
        format!(
            "{} of parameters, {} of activations, {} of data",
            human(need.params),
            human(need.activations),
            human(need.data)
        )
    };
    let problem = match ctx.kind() {
        DeviceKind::Cpu if need.total() > largest => format!(
            "{what} needs at least {} ({}), more than the CPU device's memory ({})",
            human(need.total()),
            breakdown(),
            human(largest)
        ),
        DeviceKind::Gpu if need.param_buffer > largest => format!(
            "{what}: the parameters need a buffer of {}, more than the GPU's largest buffer ({})",
            human(need.param_buffer),
            human(largest)
        ),
        DeviceKind::Gpu if need.data > host => format!(
            "{what}: the data needs {} of host memory, more than the host's {}",
            human(need.data),
            human(host)
        ),
        _ => return Ok(()),
    };
    let (field, advice) = if need.params >= need.activations.max(need.data) {
        ("hidden", "lower --hidden, --mechanisms or --embed")
    } else {
        (
            "batch",
            "lower --batch, or the sequence length (--train-len, --test-len, --symbols, \
             --resolution)",
        )
    };
    Err(Error::config(field, format!("{problem}: {advice}")))
}

/// Refuses a run of `cfg` (training, or evaluating only) that cannot fit the device of `ctx`.
pub fn check(ctx: &Context, cfg: &TrainConfig, training: bool) -> Result<()> {
    let model = cfg.model()?;
    let (t_len, data) = task_sizes(cfg, training);
    let need = need(
        &model,
        usize::try_from(t_len).unwrap_or(usize::MAX),
        cfg.batch,
        training,
        data,
    );
    let what = format!(
        "{} batches of {} sequences of up to {t_len} steps",
        if training {
            "training on"
        } else {
            "evaluating"
        },
        cfg.batch
    );
    check_need(ctx, &need, &what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_parameters_exactly_and_scales_with_batch() {
        let cfg = TrainConfig::default();
        let model = cfg.model().unwrap();
        let n: u128 = model
            .param_specs()
            .iter()
            .map(|s| s.shape.iter().product::<usize>() as u128)
            .sum();
        let a = need(&model, 12, 32, true, 0);
        assert_eq!(a.params, n * 16);
        assert_eq!(a.param_buffer, n * 4);
        let b = need(&model, 12, 64, true, 0);
        assert_eq!(b.activations, 2 * a.activations);
        assert_eq!(need(&model, 12, 32, false, 0).params, n * 8);
    }

    #[test]
    fn reads_well() {
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(3 << 30), "3.0 GiB");
    }
}
