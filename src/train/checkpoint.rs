//! Checkpoints that survive a crash: a directory with
//! - `model.safetensors`: the parameters under their canonical names, with the cell metadata;
//! - `optimizer.safetensors`: Adam's moments (`adam.m`, `adam.v`);
//! - `train.json`: the run's config and progress.
//!
//! Every file is written to a temporary name and renamed into place, `train.json` last. All
//! three carry the step they belong to, and loading refuses a set whose steps disagree (a crash
//! between two renames), so a run resumes from a consistent state or not at all.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::device::Context;
use crate::error::{Error, Result};
use crate::io::write_atomic;
use crate::nn::model::Model;
use crate::optim::Adam;
use crate::train::config::TrainConfig;

/// File name of the parameters inside a checkpoint directory.
pub const MODEL_FILE: &str = "model.safetensors";
/// File name of the optimiser moments inside a checkpoint directory.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// File name of the run's config and progress inside a checkpoint directory; written last.
pub const STATE_FILE: &str = "train.json";

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

fn bad(path: &Path, reason: impl Into<String>) -> Error {
    Error::File {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Writes the checkpoint of `model` and `adam` at `progress` into `dir` (created if needed).
pub fn save(
    ctx: &Context,
    dir: &Path,
    config: &TrainConfig,
    model: &Model,
    adam: &Adam,
    progress: &Progress,
) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| bad(dir, format!("cannot create the directory: {e}")))?;
    let mut meta = model.cfg.metadata();
    meta.insert("step".into(), progress.step.to_string());
    model.store.save(ctx, &dir.join(MODEL_FILE), &meta)?;

    let (m, v) = adam.moments();
    let (m, v) = (m.to_vec(ctx)?, v.to_vec(ctx)?);
    let views = [("adam.m", &m), ("adam.v", &v)];
    let bytes: Vec<(String, Vec<u8>, usize)> = views
        .iter()
        .map(|(n, d)| {
            (
                n.to_string(),
                bytemuck::cast_slice(d.as_slice()).to_vec(),
                d.len(),
            )
        })
        .collect();
    let tensors = bytes
        .iter()
        .map(|(n, b, len)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![*len], b)
                .map(|t| (n.clone(), t))
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| bad(dir, format!("cannot encode the optimizer state: {e}")))?;
    let meta: std::collections::HashMap<String, String> = [
        ("step".to_string(), progress.step.to_string()),
        ("adam_t".to_string(), adam.steps().to_string()),
    ]
    .into();
    let encoded = safetensors::serialize(tensors, Some(meta))
        .map_err(|e| bad(dir, format!("cannot encode: {e}")))?;
    write_atomic(&dir.join(OPTIMIZER_FILE), &encoded)?;

    let state = State {
        config: config.clone(),
        progress: progress.clone(),
        version: env!("CARGO_PKG_VERSION").into(),
    };
    let json = serde_json::to_vec_pretty(&state)
        .map_err(|e| bad(dir, format!("cannot encode the state: {e}")))?;
    write_atomic(&dir.join(STATE_FILE), &json)
}

/// Reads `train.json` of a checkpoint directory.
pub fn read_state(dir: &Path) -> Result<State> {
    let path = dir.join(STATE_FILE);
    let text = std::fs::read(&path).map_err(|e| bad(&path, format!("no checkpoint here ({e})")))?;
    serde_json::from_slice(&text)
        .map_err(|e| bad(&path, format!("not a valid checkpoint state: {e}")))
}

/// Loads the parameters (and, when given, Adam's state) of a checkpoint into `model` and
/// `adam`, after checking that the files belong together. Nothing is changed on error.
pub fn load(ctx: &Context, dir: &Path, model: &Model, adam: Option<&mut Adam>) -> Result<State> {
    let state = read_state(dir)?;
    let step = state.progress.step.to_string();
    let model_path = dir.join(MODEL_FILE);
    // Check the optimizer file before touching anything.
    let mut moments = None;
    if adam.is_some() {
        let path = dir.join(OPTIMIZER_FILE);
        let bytes = std::fs::read(&path).map_err(|e| bad(&path, format!("cannot read: {e}")))?;
        let st = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| bad(&path, format!("not a valid safetensors file: {e}")))?;
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| bad(&path, e.to_string()))?;
        let meta = header.metadata().clone().unwrap_or_default();
        if meta.get("step") != Some(&step) {
            return Err(bad(
                &path,
                format!(
                    "belongs to step {:?}, train.json to step {step}",
                    meta.get("step")
                ),
            ));
        }
        let adam_t: u64 = meta
            .get("adam_t")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(&path, "no adam_t"))?;
        let read = |name: &str| -> Result<Vec<f32>> {
            let t = st
                .tensor(name)
                .map_err(|_| bad(&path, format!("missing tensor '{name}'")))?;
            Ok(t.data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect())
        };
        moments = Some((read("adam.m")?, read("adam.v")?, adam_t));
    }
    let header =
        std::fs::read(&model_path).map_err(|e| bad(&model_path, format!("cannot read: {e}")))?;
    let (_, h) = safetensors::SafeTensors::read_metadata(&header)
        .map_err(|e| bad(&model_path, format!("not a valid safetensors file: {e}")))?;
    let file_step = h.metadata().as_ref().and_then(|m| m.get("step").cloned());
    if file_step.as_ref() != Some(&step) {
        return Err(bad(
            &model_path,
            format!("belongs to step {file_step:?}, train.json to step {step}"),
        ));
    }
    let _meta: BTreeMap<String, String> = model.store.load(ctx, &model_path)?;
    if let (Some(adam), Some((m, v, t))) = (adam, moments) {
        let (mt, vt) = adam.moments();
        if m.len() != mt.len() || v.len() != vt.len() {
            return Err(bad(
                &dir.join(OPTIMIZER_FILE),
                "optimizer state has the wrong size for this model",
            ));
        }
        mt.write(ctx, &m)?;
        vt.write(ctx, &v)?;
        adam.set_steps(t);
    }
    Ok(state)
}
