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
//! ```
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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::device::Context;
use crate::error::{Error, Result};
use crate::io::{sync_dir, write_atomic, write_synced};
use crate::nn::model::Model;
use crate::optim::Adam;
use crate::train::config::TrainConfig;

/// File name of the parameters inside a checkpoint.
pub const MODEL_FILE: &str = "model.safetensors";
/// File name of the optimiser moments inside a checkpoint.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// File name of the run's config and progress inside a checkpoint.
pub const STATE_FILE: &str = "train.json";
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
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let name = text.trim();
            if !is_set_name(name) {
                return Err(Error::file(
                    &path,
                    format!("names '{name}', which is not a checkpoint of this run"),
                ));
            }
            Ok(Some(name.to_string()))
        }
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                || e.kind() == std::io::ErrorKind::NotADirectory =>
        {
            Ok(None)
        }
        Err(e) => Err(Error::file(&path, format!("cannot read: {e}"))),
    }
}

/// The directory holding the current checkpoint of the run in `dir`: the set `latest` names,
/// or `dir` itself for a run directory of the older layout.
pub fn current(dir: &Path) -> Result<PathBuf> {
    if let Some(name) = pointer(dir)? {
        let set = dir.join(&name);
        if !set.join(STATE_FILE).is_file() {
            return Err(Error::file(
                dir.join(LATEST_FILE),
                format!("names {name}, which holds no {STATE_FILE}"),
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
    let path = current(dir)?.join(STATE_FILE);
    let text = std::fs::read(&path).map_err(Error::io_on(&path, "cannot read"))?;
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
    let mut moments = None;
    if adam.is_some() {
        let path = set.join(OPTIMIZER_FILE);
        let bytes = std::fs::read(&path).map_err(Error::io_on(&path, "cannot read"))?;
        let st = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| Error::file(&path, format!("not a valid safetensors file: {e}")))?;
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| Error::file(&path, e.to_string()))?;
        let meta = header.metadata().clone().unwrap_or_default();
        if meta.get("step") != Some(&step) {
            return Err(Error::file(
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
            .ok_or_else(|| Error::file(&path, "no adam_t"))?;
        let read = |name: &str| -> Result<Vec<f32>> {
            let t = st
                .tensor(name)
                .map_err(|_| Error::file(&path, format!("missing tensor '{name}'")))?;
            Ok(t.data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect())
        };
        moments = Some((read("adam.m")?, read("adam.v")?, adam_t));
    }
    let header = std::fs::read(&model_path).map_err(Error::io_on(&model_path, "cannot read"))?;
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
    if let (Some(adam), Some((m, v, t))) = (adam, moments) {
        let (mt, vt) = adam.moments();
        if m.len() != mt.len() || v.len() != vt.len() {
            return Err(Error::file(
                set.join(OPTIMIZER_FILE),
                "optimizer state has the wrong size for this model",
            ));
        }
        mt.write(ctx, &m)?;
        vt.write(ctx, &v)?;
        adam.set_steps(t);
    }
    Ok(state)
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
        .map_err(|e| Error::file(dir, format!("cannot encode the optimizer state: {e}")))?;
    let meta: std::collections::HashMap<String, String> = [
        ("step".to_string(), progress.step.to_string()),
        ("adam_t".to_string(), adam.steps().to_string()),
    ]
    .into();
    let optimizer_bytes = safetensors::serialize(tensors, Some(meta))
        .map_err(|e| Error::file(dir, format!("cannot encode: {e}")))?;

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

/// The test hook described at [`SAVE_STEPS`].
struct Fault {
    step: usize,
    error: bool,
}

impl Fault {
    fn from_env() -> Result<Option<Fault>> {
        let Some(value) = std::env::var("RIMS_FAULT_SAVE")
            .ok()
            .filter(|v| !v.is_empty())
        else {
            return Ok(None);
        };
        let (step, mode) = value.split_once(':').unwrap_or((&value, "exit"));
        match (step.parse::<usize>(), mode) {
            (Ok(step), "exit" | "error") if (1..=SAVE_STEPS.len()).contains(&step) => {
                Ok(Some(Fault {
                    step,
                    error: mode == "error",
                }))
            }
            _ => Err(Error::config(
                "RIMS_FAULT_SAVE",
                format!(
                    "'{value}' is not a step 1..={} of a save, optionally followed by :error",
                    SAVE_STEPS.len()
                ),
            )),
        }
    }

    fn after(fault: &Option<Fault>, step: usize) -> Result<()> {
        match fault {
            Some(f) if f.step == step && f.error => Err(Error::Io(std::io::Error::other(format!(
                "RIMS_FAULT_SAVE: injected failure after step {step} of a save ({})",
                SAVE_STEPS[step - 1]
            )))),
            Some(f) if f.step == step => {
                eprintln!(
                    "rims: RIMS_FAULT_SAVE: stopping after step {step} of a save ({})",
                    SAVE_STEPS[step - 1]
                );
                std::process::exit(FAULT_EXIT_CODE)
            }
            _ => Ok(()),
        }
    }
}

/// A set name for `epoch` that is not `previous` (the current set is never overwritten).
fn fresh_name(epoch: usize, previous: Option<&str>) -> String {
    let base = format!("epoch-{epoch:06}");
    (1..)
        .map(|n| {
            if n == 1 {
                base.clone()
            } else {
                format!("{base}-{n}")
            }
        })
        .find(|name| Some(name.as_str()) != previous)
        .expect("an unused name")
}

fn remove_any(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Makes the set of `files` (and `metrics`) the current checkpoint of `dir`: the steps of
/// [`SAVE_STEPS`].
fn install(
    dir: &Path,
    epoch: usize,
    files: &[(&str, &[u8]); 3],
    metrics: Option<&str>,
) -> Result<()> {
    let fault = Fault::from_env()?;
    std::fs::create_dir_all(dir).map_err(Error::io_on(dir, "cannot create the directory"))?;
    let previous = pointer(dir)?;
    let name = fresh_name(epoch, previous.as_deref());
    let set = dir.join(&name);
    let pid = std::process::id();
    let tmp = dir.join(format!(".{name}.tmp-{pid}"));
    let pointer_tmp = dir.join(format!(".{LATEST_FILE}.tmp-{pid}"));
    let mut renamed = false;
    let result = (|| -> Result<()> {
        remove_any(&tmp).map_err(Error::io_on(&tmp, "cannot remove"))?;
        std::fs::create_dir(&tmp).map_err(Error::io_on(&tmp, "cannot create the directory"))?;
        Fault::after(&fault, 1)?;
        for (i, (file, bytes)) in files.iter().enumerate() {
            write_synced(&tmp.join(file), bytes)?;
            Fault::after(&fault, 2 + i)?;
        }
        if let Some(text) = metrics {
            write_synced(&tmp.join(METRICS_FILE), text.as_bytes())?;
        }
        Fault::after(&fault, 5)?;
        sync_dir(&tmp)?;
        // A set of this name that is not current was left by a killed save.
        remove_any(&set).map_err(Error::io_on(&set, "cannot remove"))?;
        std::fs::rename(&tmp, &set).map_err(Error::io_on(&set, "cannot rename into place"))?;
        renamed = true;
        sync_dir(dir)?;
        Fault::after(&fault, 6)?;
        write_synced(&pointer_tmp, format!("{name}\n").as_bytes())?;
        Fault::after(&fault, 7)?;
        let latest = dir.join(LATEST_FILE);
        std::fs::rename(&pointer_tmp, &latest)
            .map_err(Error::io_on(&latest, "cannot rename into place"))?;
        sync_dir(dir)?;
        Fault::after(&fault, 8)
    })();
    if result.is_err() && pointer(dir).ok().flatten().as_deref() != Some(name.as_str()) {
        // Not switched: nothing of this save may stay behind.
        let _ = remove_any(&tmp);
        let _ = remove_any(&pointer_tmp);
        if renamed {
            let _ = remove_any(&set);
        }
    }
    result?;
    remove_leftovers(dir)?;
    Fault::after(&fault, 9)?;
    if let Some(text) = metrics {
        publish_metrics(dir, text)?;
    }
    Fault::after(&fault, 10)
}

/// `Some(pid)` for the name of a temporary file or directory this module (or
/// [`crate::io::write_atomic`] on one of its files) creates: `.NAME.tmp-PID`.
fn temporary(name: &str) -> Option<u32> {
    let (base, pid) = name.strip_prefix('.')?.rsplit_once(".tmp-")?;
    let ours = [
        MODEL_FILE,
        OPTIMIZER_FILE,
        STATE_FILE,
        METRICS_FILE,
        LATEST_FILE,
    ]
    .contains(&base)
        || is_set_name(base);
    if ours { pid.parse().ok() } else { None }
}

/// Whether another live process has this id (then its temporaries are still being written).
fn alive_elsewhere(pid: u32) -> bool {
    pid != std::process::id() && Path::new("/proc").join(pid.to_string()).exists()
}

/// Removes what killed saves left in `dir`: temporaries, sets that never became current, and
/// the files of the older layout once a set has replaced them.
fn remove_leftovers(dir: &Path) -> Result<()> {
    let current = pointer(dir)?;
    let entries = std::fs::read_dir(dir).map_err(Error::io_on(dir, "cannot list"))?;
    for entry in entries {
        let entry = entry.map_err(Error::io_on(dir, "cannot list"))?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let stale = match temporary(&name) {
            Some(pid) => !alive_elsewhere(pid),
            None => is_set_name(&name) && current.as_deref() != Some(name.as_str()),
        };
        if stale {
            let path = entry.path();
            remove_any(&path).map_err(Error::io_on(&path, "cannot remove a leftover of a save"))?;
        }
    }
    if current.is_some() {
        for file in [MODEL_FILE, OPTIMIZER_FILE, STATE_FILE] {
            let path = dir.join(file);
            remove_any(&path).map_err(Error::io_on(&path, "cannot remove"))?;
        }
    }
    Ok(())
}

/// The evaluation records the current checkpoint of `dir` vouches for (`metrics.jsonl` text):
/// its own copy, or, for a checkpoint without one (older layout), the records of
/// `DIR/metrics.jsonl` up to its epoch, each epoch once (the last one written).
pub fn read_metrics(dir: &Path) -> Result<String> {
    let set = current(dir)?;
    let copy = set.join(METRICS_FILE);
    if set != dir && copy.is_file() {
        return std::fs::read_to_string(&copy).map_err(Error::io_on(&copy, "cannot read"));
    }
    let epoch = read_state(dir)?.progress.epoch as u64;
    let path = dir.join(METRICS_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::file(&path, format!("cannot read: {e}"))),
    };
    let mut by_epoch = BTreeMap::new();
    for line in text.lines() {
        // A line cut short by a crash has no epoch and is dropped with the rest of its kind.
        let e = serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v.get("epoch").and_then(|e| e.as_u64()));
        if let Some(e) = e.filter(|&e| e <= epoch) {
            by_epoch.insert(e, line);
        }
    }
    Ok(by_epoch.values().map(|l| format!("{l}\n")).collect())
}

/// Makes `DIR/metrics.jsonl` hold exactly `text`: appended to when it holds the beginning of
/// it (the usual case, kind to `tail -f`), rewritten in one rename otherwise.
pub fn publish_metrics(dir: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let path = dir.join(METRICS_FILE);
    let have = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(Error::file(&path, format!("cannot read: {e}"))),
    };
    if have == text.as_bytes() {
        return Ok(());
    }
    let prefix = text.as_bytes().starts_with(&have) && (have.is_empty() || have.ends_with(b"\n"));
    if !prefix {
        return write_atomic(&path, text.as_bytes());
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(Error::io_on(&path, "cannot open"))?;
    f.write_all(&text.as_bytes()[have.len()..])
        .map_err(Error::io_on(&path, "cannot write"))?;
    f.sync_all().map_err(Error::io_on(&path, "cannot flush"))
}

/// Files in a directory with no checkpoint that say another run used it.
fn foreign_files(dir: &Path) -> Vec<&'static str> {
    [METRICS_FILE, MODEL_FILE, OPTIMIZER_FILE]
        .into_iter()
        .filter(|f| dir.join(f).exists())
        .collect()
}

/// Gets the run directory `dir` ready for a run that writes into it, and returns the records
/// its checkpoint vouches for ("" for a new run). A new run (`resume` false) refuses a
/// directory that holds another run's checkpoint or records; a resumed one needs a checkpoint
/// there. Either way, what killed saves left behind is removed, and a resumed run's
/// `metrics.jsonl` is made to match its checkpoint.
pub fn open_run(dir: &Path, resume: bool) -> Result<String> {
    if resume {
        let metrics = read_metrics(dir)?;
        remove_leftovers(dir)?;
        publish_metrics(dir, &metrics)?;
        return Ok(metrics);
    }
    if dir.join(LATEST_FILE).exists() || dir.join(STATE_FILE).exists() {
        return Err(Error::config(
            "out",
            format!(
                "{} already holds a checkpoint: pass --resume to continue it, or choose another --out",
                dir.display()
            ),
        ));
    }
    let foreign = foreign_files(dir);
    if !foreign.is_empty() {
        return Err(Error::config(
            "out",
            format!(
                "{} holds {} of another run but no checkpoint: remove them or choose another --out",
                dir.display(),
                foreign.join(", ")
            ),
        ));
    }
    std::fs::create_dir_all(dir).map_err(Error::io_on(dir, "cannot create the directory"))?;
    remove_leftovers(dir)?;
    Ok(String::new())
}

/// Starts the run directory `to` as a copy of the run in `from` (its current checkpoint and the
/// records it vouches for), so that training continues there and `from` stays as it is. `to`
/// must not hold a run already.
pub fn copy_run(from: &Path, to: &Path) -> Result<State> {
    let set = current(from)?;
    let state = read_state(from)?;
    let metrics = read_metrics(from)?;
    let read = |file: &str| {
        let path = set.join(file);
        std::fs::read(&path).map_err(Error::io_on(&path, "cannot read"))
    };
    let (model, optimizer, json) = (read(MODEL_FILE)?, read(OPTIMIZER_FILE)?, read(STATE_FILE)?);
    open_run(to, false)?;
    let files = [
        (MODEL_FILE, model.as_slice()),
        (OPTIMIZER_FILE, optimizer.as_slice()),
        (STATE_FILE, json.as_slice()),
    ];
    install(to, state.progress.epoch, &files, Some(&metrics))?;
    Ok(state)
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
        assert_eq!(fresh_name(4, None), "epoch-000004");
        assert_eq!(fresh_name(4, Some("epoch-000004")), "epoch-000004-2");
        assert_eq!(fresh_name(4, Some("epoch-000003")), "epoch-000004");
    }

    #[test]
    fn temporaries_are_recognised() {
        assert_eq!(temporary(".epoch-000002.tmp-123"), Some(123));
        assert_eq!(temporary(".model.safetensors.tmp-9"), Some(9));
        assert_eq!(temporary(".latest.tmp-77"), Some(77));
        assert_eq!(temporary(".bashrc"), None);
        assert_eq!(temporary(".notes.tmp-12"), None, "not one of ours");
        assert_eq!(temporary("model.safetensors.tmp-12"), None);
    }
}
