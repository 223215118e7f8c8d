//! A run directory whose checkpoint survives a crash at any moment:
//!
//! ```text
//! DIR/latest            the name of the current checkpoint, e.g. "epoch-000004"
//! DIR/epoch-000004/     the checkpoint: a complete set of
//!     model.safetensors       the parameters under their canonical names, with the cell metadata
//!     optimizer.safetensors   Adam's moments (`adam.m`, `adam.v`)
//!     train.json              the run's config and progress
//!     metrics.jsonl           the run's evaluation records up to this checkpoint
//! DIR/metrics.jsonl     the same records, for people and `rims viz --metrics`
//!     .rims-set               the run's token: cleaning removes only sets that carry it
//! DIR/.rims.lock        locked by the one process writing the run (`lock.rs`)
//! DIR/.rims-set         the token, only until the run's first set is current
//! ```
//!
//! Nothing else writes into a run directory: an output of another command, or a new run, is
//! refused anywhere inside one (`outputs.rs`).
//!
//! [`save`] writes a whole new set into a temporary directory, flushes it, renames it into
//! place and then switches `latest` to it with one rename (the steps are [`SAVE_STEPS`]). A
//! crash before that rename leaves the previous checkpoint current and untouched; a crash after
//! it, the new one. Only then is the previous set removed and the new record appended to
//! `DIR/metrics.jsonl`, so that file never holds a record whose checkpoint was lost.
//! Whatever a killed save left behind (temporaries, a set that never became current) is removed
//! when a run next starts in the directory ([`open_run`]), and a resumed run rewrites
//! `DIR/metrics.jsonl` from the checkpoint's copy, so no epoch appears twice.
//!
//! Run directories written before this layout (the three files directly in DIR) still load and
//! resume; their next save converts them.
//!
//! This file holds the layout, reading and loading, and what a save writes; `files.rs` how the
//! files are put in place (the crash-safe install, its fault hook) and what a run starts from
//! (clearing leftovers, the metrics file, a new run's directory, copying a run).

mod files;
mod lock;
mod outputs;

pub use files::{copy_run, install, open_run, publish_metrics, read_metrics};
pub use lock::{LOCK_FILE, RunLock, lock_run};
pub use outputs::{check_output, check_run_place};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::device::Context;
use crate::error::{Error, Result};
use crate::io::{Link, is_absent, read_regular, read_regular_string};
use crate::nn::model::Model;
use crate::ops::optim::Adam;
use crate::train::config::TrainConfig;

/// File name of the parameters inside a checkpoint.
pub const MODEL_FILE: &str = "model.safetensors";
/// File name of the optimiser moments inside a checkpoint.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// File name of the run's config and progress inside a checkpoint.
pub const STATE_FILE: &str = "train.json";
/// File name of a reinforcement-learning run's config, progress and environments inside a
/// checkpoint (`rims::rl::train`), which it holds instead of [`STATE_FILE`].
pub const RL_STATE_FILE: &str = "rl.json";
/// File name of the evaluation records, in a checkpoint and in the run directory.
pub const METRICS_FILE: &str = "metrics.jsonl";
/// File in the run directory that names the current checkpoint.
pub const LATEST_FILE: &str = "latest";

/// What [`save`] does, in order. `RIMS_FAULT_SAVE=<i>` (tests only) stops a save right after
/// step `i` (1-based) by exiting the process with [`FAULT_EXIT_CODE`], as a kill would, and
/// `RIMS_FAULT_SAVE=<i>:error` makes it fail there with an error, as a full disk would.
pub const SAVE_STEPS: [&str; 10] = [
    "create the temporary directory .epoch-N.tmp-PID",
    "write model.safetensors into it",
    "write optimizer.safetensors into it",
    "write train.json into it",
    "write metrics.jsonl into it",
    "rename it to epoch-N",
    "write the new pointer .latest.tmp-PID",
    "rename the pointer over latest (the new checkpoint becomes current)",
    "remove the previous checkpoint",
    "bring DIR/metrics.jsonl up to date",
];
/// The step of [`SAVE_STEPS`] (1-based) after which the new checkpoint is the current one.
pub const SWITCH_STEP: usize = 8;
/// Exit code of a process stopped by `RIMS_FAULT_SAVE`.
pub const FAULT_EXIT_CODE: i32 = 86;

/// Where a run stands.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Epochs completed.
    pub epoch: usize,
    /// Optimiser steps taken.
    pub step: u64,
    /// Wall time spent training so far, in seconds.
    pub seconds: f64,
}

/// The contents of `train.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// The run's settings.
    pub config: TrainConfig,
    /// How far the run had got when the checkpoint was written.
    pub progress: Progress,
    /// The engine version that wrote it.
    pub version: String,
}

/// `epoch-000004`, or `epoch-000004-2` (a second save of the same epoch).
fn is_set_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("epoch-") else {
        return false;
    };
    let mut parts = rest.splitn(2, '-');
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    parts.next().is_some_and(digits) && parts.next().is_none_or(digits)
}

/// The name `latest` gives, if it exists. Errors when it exists but does not name a set.
fn pointer(dir: &Path) -> Result<Option<String>> {
    let path = dir.join(LATEST_FILE);
    if is_absent(&path) {
        return Ok(None);
    }
    let text = read_regular_string(&path, Link::Refuse)?;
    let name = text.trim();
    if !is_set_name(name) {
        // Escaped: the file's bytes reach a terminal.
        let shown: String = name.chars().take(80).flat_map(char::escape_debug).collect();
        return Err(Error::file(
            &path,
            format!("names '{shown}', which is not a checkpoint of this run"),
        ));
    }
    Ok(Some(name.to_string()))
}

/// The directory holding the current checkpoint of the run in `dir`: the set `latest` names,
/// or `dir` itself for a run directory of the older layout.
pub fn current(dir: &Path) -> Result<PathBuf> {
    if let Some(name) = pointer(dir)? {
        let set = dir.join(&name);
        if is_absent(&set) {
            return Err(Error::file(
                dir.join(LATEST_FILE),
                format!("names {name}, which does not exist: the run's current checkpoint is gone"),
            ));
        }
        if !set.join(STATE_FILE).is_file() && !set.join(RL_STATE_FILE).is_file() {
            return Err(Error::file(
                dir.join(LATEST_FILE),
                format!("names {name}, which holds no {STATE_FILE} (nor {RL_STATE_FILE})"),
            ));
        }
        return Ok(set);
    }
    if dir.join(STATE_FILE).is_file() {
        return Ok(dir.to_path_buf());
    }
    Err(Error::file(
        dir,
        format!("no checkpoint here (neither {LATEST_FILE} nor {STATE_FILE})"),
    ))
}

/// Reads `train.json` of the current checkpoint of `dir`.
pub fn read_state(dir: &Path) -> Result<State> {
    let set = current(dir)?;
    let path = set.join(STATE_FILE);
    if !path.exists() && set.join(RL_STATE_FILE).is_file() {
        return Err(Error::file(
            dir,
            "is a reinforcement-learning run: use `rims rl eval` (or `rims rl train --resume`)",
        ));
    }
    let text = read_regular(&path, Link::Refuse)?;
    serde_json::from_slice(&text)
        .map_err(|e| Error::file(&path, format!("not a valid checkpoint state: {e}")))
}

/// Loads the model of a checkpoint directory written by `rims train --out DIR` (or by
/// [`save`]): the configuration from `train.json`, the parameters from
/// `model.safetensors`. The optimizer state is not read.
///
/// Errors when the directory is not a checkpoint, when its files disagree, or when the
/// parameters do not fit the configuration. (For step-by-step inference, hand the model to
/// [`crate::nn::Runner`].)
///
/// ```no_run
/// let ctx = rims::Context::from_env()?;
/// let model = rims::train::checkpoint::load_model(&ctx, std::path::Path::new("runs/copying"))?;
/// println!("{} mechanisms, {} classes", model.cfg.rims.mechanisms, model.cfg.classes);
/// # Ok::<(), rims::Error>(())
/// ```
pub fn load_model(ctx: &Context, dir: &Path) -> Result<Model> {
    let state = read_state(dir)?;
    let cfg = state.config.model()?;
    let model = Model::new(ctx, cfg, 0)?;
    load(ctx, dir, &model, None)?;
    Ok(model)
}

/// Loads the parameters (and, when given, Adam's state) of the current checkpoint of `dir` into
/// `model` and `adam`, after checking that the files belong together. Nothing is changed on
/// error.
pub fn load(ctx: &Context, dir: &Path, model: &Model, adam: Option<&mut Adam>) -> Result<State> {
    let set = current(dir)?;
    let state = read_state(dir)?;
    let step = state.progress.step.to_string();
    let model_path = set.join(MODEL_FILE);
    // Check the optimizer file before touching anything.
    let moments = match adam {
        Some(_) => Some(read_optimizer(
            &set.join(OPTIMIZER_FILE),
            state.progress.step,
            STATE_FILE,
            state.progress.step,
        )?),
        None => None,
    };
    let header = read_regular(&model_path, Link::Refuse)?;
    let (_, h) = safetensors::SafeTensors::read_metadata(&header)
        .map_err(|e| Error::file(&model_path, format!("not a valid safetensors file: {e}")))?;
    let file_step = h.metadata().as_ref().and_then(|m| m.get("step").cloned());
    if file_step.as_ref() != Some(&step) {
        return Err(Error::file(
            &model_path,
            format!("belongs to step {file_step:?}, train.json to step {step}"),
        ));
    }
    let _meta: BTreeMap<String, String> = model.store.load(ctx, &model_path)?;
    if let (Some(adam), Some(moments)) = (adam, moments) {
        restore_optimizer(ctx, &set.join(OPTIMIZER_FILE), adam, moments)?;
    }
    Ok(state)
}

/// Adam's moments m, v and step count from the optimizer file of a checkpoint at run step
/// `step` (as the run's `state_file` says), checked ([`check_moments`], at most `most_steps`
/// optimizer steps) before anything uses them.
pub fn read_optimizer(
    path: &Path,
    step: u64,
    state_file: &str,
    most_steps: u64,
) -> Result<(Vec<f32>, Vec<f32>, u64)> {
    let step_text = step.to_string();
    let bytes = read_regular(path, Link::Refuse)?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::file(path, format!("not a valid safetensors file: {e}")))?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| Error::file(path, e.to_string()))?;
    let meta = header.metadata().clone().unwrap_or_default();
    if meta.get("step") != Some(&step_text) {
        return Err(Error::file(
            path,
            format!(
                "belongs to step {:?}, {state_file} to step {step_text}",
                meta.get("step")
            ),
        ));
    }
    let adam_t: u64 = meta
        .get("adam_t")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::file(path, "no adam_t"))?;
    let read = |name: &str| -> Result<Vec<f32>> {
        let t = st
            .tensor(name)
            .map_err(|_| Error::file(path, format!("missing tensor '{name}'")))?;
        // Little-endian f32, possibly unaligned in the file's buffer: copied out.
        Ok(bytemuck::pod_collect_to_vec::<u8, f32>(t.data()))
    };
    let (m, v) = (read("adam.m")?, read("adam.v")?);
    check_moments(path, &m, &v, adam_t, most_steps)?;
    Ok((m, v, adam_t))
}

/// Puts moments read by [`read_optimizer`] into `adam`; an error (naming `path`) when their
/// size is not the model's.
pub fn restore_optimizer(
    ctx: &Context,
    path: &Path,
    adam: &mut Adam,
    (m, v, t): (Vec<f32>, Vec<f32>, u64),
) -> Result<()> {
    let (mt, vt) = adam.moments();
    if m.len() != mt.len() || v.len() != vt.len() {
        return Err(Error::file(
            path,
            "optimizer state has the wrong size for this model",
        ));
    }
    mt.write(ctx, &m)?;
    vt.write(ctx, &v)?;
    adam.set_steps(t);
    Ok(())
}

/// The optimizer file of a checkpoint at run step `step`: Adam's moments and step count.
pub fn encode_optimizer(ctx: &Context, adam: &Adam, step: u64, dir: &Path) -> Result<Vec<u8>> {
    let (m, v) = adam.moments();
    let (m, v) = (m.to_vec(ctx)?, v.to_vec(ctx)?);
    let meta = [
        ("step".to_string(), step.to_string()),
        ("adam_t".to_string(), adam.steps().to_string()),
    ]
    .into();
    crate::io::encode_f32_safetensors(
        &[("adam.m", &[m.len()], &m), ("adam.v", &[v.len()], &v)],
        &meta,
    )
    .map_err(|e| Error::file(dir, format!("cannot encode the optimizer state: {e}")))
}

/// Adam's state as a run can have left it: no more optimiser steps than the run took, finite
/// first moments, finite and non-negative second moments (a square root is taken of them). A
/// corrupt state is refused here, naming the file, rather than surfacing later as a diverged
/// loss blamed on the learning rate.
fn check_moments(path: &Path, m: &[f32], v: &[f32], adam_t: u64, step: u64) -> Result<()> {
    if adam_t > step {
        return Err(Error::file(
            path,
            format!(
                "adam_t is {adam_t}, past the run's step {step}: the optimizer state is corrupt"
            ),
        ));
    }
    if let Some(i) = m.iter().position(|x| !x.is_finite()) {
        return Err(Error::file(
            path,
            format!(
                "adam.m holds {} at index {i}: the optimizer state is corrupt",
                m[i]
            ),
        ));
    }
    if let Some(i) = v.iter().position(|x| !x.is_finite() || *x < 0.0) {
        return Err(Error::file(
            path,
            format!(
                "adam.v holds {} at index {i} (second moments are finite and non-negative): the \
                 optimizer state is corrupt",
                v[i]
            ),
        ));
    }
    Ok(())
}

/// Writes a checkpoint of `model` and `adam` at `progress` into the run directory `dir`
/// (created if needed) and makes it the current one; `metrics` is every evaluation record of
/// the run up to this one (`metrics.jsonl` text), or None to leave the records alone.
pub fn save(
    ctx: &Context,
    dir: &Path,
    config: &TrainConfig,
    model: &Model,
    adam: &Adam,
    progress: &Progress,
    metrics: Option<&str>,
) -> Result<()> {
    let mut meta = model.cfg.metadata();
    meta.insert("step".into(), progress.step.to_string());
    let model_bytes = model
        .store
        .encode(ctx, &meta)
        .map_err(|e| Error::file(dir.join(MODEL_FILE), e.to_string()))?;

    let optimizer_bytes = encode_optimizer(ctx, adam, progress.step, dir)?;

    let state = State {
        config: config.clone(),
        progress: progress.clone(),
        version: env!("CARGO_PKG_VERSION").into(),
    };
    let json = serde_json::to_vec_pretty(&state)
        .map_err(|e| Error::file(dir, format!("cannot encode the state: {e}")))?;
    let files = [
        (MODEL_FILE, model_bytes.as_slice()),
        (OPTIMIZER_FILE, optimizer_bytes.as_slice()),
        (STATE_FILE, json.as_slice()),
    ];
    install(dir, progress.epoch, &files, metrics)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_names() {
        for ok in ["epoch-000004", "epoch-1", "epoch-000004-2"] {
            assert!(is_set_name(ok), "{ok}");
        }
        for no in [
            "epoch-",
            "epoch-4-",
            "epoch-x",
            "epoch-4-2-1",
            "../x",
            "latest",
        ] {
            assert!(!is_set_name(no), "{no}");
        }
    }
}
