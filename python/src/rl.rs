//! Reinforcement learning from Python: `rims.rl_train` (a PPO run into a run directory, as
//! `rims rl train` makes it, the settings by their `RlConfig` names, a callback per update) and
//! `rims.rl_evaluate` (a checkpoint's agent played on a world, as `rims rl eval`). Settings,
//! records and results cross as JSON text: the Python side turns them into dicts.

use std::path::{Path, PathBuf};

use pyo3::prelude::*;
use pyo3::types::PyString;
use rims::device::DeviceKind;
use rims::rl::World;
use rims::rl::batch::MAX_ENVS;
use rims::rl::config::RlConfig;
use rims::rl::eval::{Policy, evaluate};
use rims::rl::train::{self as rl_train_mod, RlReporter, UpdateRecord, load_agent, read_rl_state};
use serde_json::{Map, Value};

use crate::engine::{device, parse_device};
use crate::errors::{engine_error, value_error};
use crate::training::{PyReporter, settings, to_json};

/// Hands each update's record to the Python callback (as JSON text) and keeps the records of
/// this call.
struct RlPyReporter {
    inner: PyReporter,
    records: Vec<UpdateRecord>,
}

impl RlReporter for RlPyReporter {
    fn update(&mut self, record: &UpdateRecord) {
        self.records.push(record.clone());
        let json = serde_json::to_string(record).unwrap_or_default();
        self.inner
            .call(|py| Ok(PyString::new(py, &json).into_any()));
    }

    fn keep_going(&mut self) -> rims::Result<()> {
        self.inner.check()
    }
}

/// `config` as a JSON object of its fields.
fn fields(config: &RlConfig) -> PyResult<Map<String, Value>> {
    match serde_json::to_value(config) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(value_error("cannot encode the RL settings")),
    }
}

/// The settings given (None-valued ones dropped), each a field of `base` and of its type; then
/// `base` with all of them set.
fn apply(base: &RlConfig, given: &Map<String, Value>) -> PyResult<RlConfig> {
    let mut merged = fields(base)?;
    let mut unknown: Vec<&str> = given
        .keys()
        .filter(|k| !merged.contains_key(k.as_str()))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        unknown.sort_unstable();
        let known: Vec<&str> = merged.keys().map(String::as_str).collect();
        return Err(value_error(format!(
            "unknown RL setting{} {}; the settings are {}",
            if unknown.len() == 1 { "" } else { "s" },
            unknown
                .iter()
                .map(|k| format!("'{k}'"))
                .collect::<Vec<_>>()
                .join(", "),
            known.join(", ")
        )));
    }
    for (key, value) in given.iter().filter(|(_, v)| !v.is_null()) {
        // Each one alone over the base, so that a wrong type names its setting.
        let mut one = merged.clone();
        one.insert(key.clone(), value.clone());
        serde_json::from_value::<RlConfig>(Value::Object(one))
            .map_err(|e| value_error(format!("RL setting '{key}' = {value}: {e}")))?;
    }
    for (key, value) in given.iter().filter(|(_, v)| !v.is_null()) {
        merged.insert(key.clone(), value.clone());
    }
    serde_json::from_value(Value::Object(merged))
        .map_err(|e| value_error(format!("RL settings: {e}")))
}

/// A new run's settings: `RlConfig::for_model(model)` (the CLI's defaults) with the given ones.
fn new_config(given: &Map<String, Value>) -> PyResult<RlConfig> {
    let model = given.get("model").and_then(Value::as_str).unwrap_or("rims");
    let cfg = apply(&RlConfig::for_model(model), given)?;
    cfg.validate().map_err(engine_error)?;
    Ok(cfg)
}

/// A resumed run keeps its own settings, as `rims rl train --resume` does: `frames` may raise
/// its length; any other setting given must be the run's.
fn resumed_config(out: &Path, given: &Map<String, Value>) -> PyResult<RlConfig> {
    let run = read_rl_state(out).map_err(engine_error)?.config;
    let asked = apply(&run, given)?;
    let (was, now) = (fields(&run)?, fields(&asked)?);
    for key in given.keys().filter(|k| k.as_str() != "frames") {
        if was.get(key) != now.get(key) {
            return Err(value_error(format!(
                "resume=True continues the run with its own settings: its {key} is {}, not {}; \
                 only frames may be raised",
                was[key], now[key]
            )));
        }
    }
    Ok(RlConfig {
        frames: run.frames.max(asked.frames),
        ..run
    })
}

/// `rl_train(out, settings_json, resume, device, progress)`: trains a new run (or resumes the
/// one in `out`); `progress` receives each update's record as JSON text. Returns the records of
/// the updates this call made, as JSON.
#[pyfunction]
#[pyo3(signature = (out, settings_json, resume, device=None, progress=None))]
pub fn rl_train(
    py: Python<'_>,
    out: PathBuf,
    settings_json: &str,
    resume: bool,
    device: Option<&str>,
    progress: Option<Py<PyAny>>,
) -> PyResult<String> {
    let given = settings(settings_json)?;
    let cfg = if resume {
        resumed_config(&out, &given)?
    } else {
        new_config(&given)?
    };
    let dev = self::device(parse_device(device, DeviceKind::Cpu)?)?;
    let ctx = dev.ctx()?;
    let mut reporter = RlPyReporter {
        inner: PyReporter::new(progress),
        records: Vec::new(),
    };
    let result = py.detach(|| rl_train_mod::train(ctx, &cfg, &out, resume, &mut reporter));
    if let Some(e) = reporter.inner.error {
        return Err(e);
    }
    result.map_err(engine_error)?;
    to_json(&reporter.records)
}

/// `rl_evaluate(checkpoint, env, episodes, greedy, device)`: the checkpoint's agent playing the
/// first episode of `episodes` environments of `env` (default: the world it trained on), as
/// JSON (`env`, `episodes`, `mean_return`, `success_rate`, `mean_length`).
#[pyfunction]
#[pyo3(signature = (checkpoint, env=None, episodes=500, greedy=false, device=None))]
pub fn rl_evaluate(
    py: Python<'_>,
    checkpoint: PathBuf,
    env: Option<&str>,
    episodes: i64,
    greedy: bool,
    device: Option<&str>,
) -> PyResult<String> {
    let episodes = usize::try_from(episodes)
        .ok()
        .filter(|n| (1..=MAX_ENVS).contains(n))
        .ok_or_else(|| value_error(format!("episodes: {episodes} is outside 1..={MAX_ENVS}")))?;
    let state = read_rl_state(&checkpoint).map_err(engine_error)?;
    let world = World::parse(env.unwrap_or(&state.config.env)).map_err(engine_error)?;
    world.validate().map_err(engine_error)?;
    let policy = if greedy {
        Policy::Greedy
    } else {
        Policy::Sample
    };
    let dev = self::device(parse_device(device, DeviceKind::Cpu)?)?;
    let ctx = dev.ctx()?;
    let summary = py
        .detach(|| {
            let (agent, _) = load_agent(ctx, &checkpoint)?;
            evaluate(ctx, &agent, world, episodes, policy)
        })
        .map_err(engine_error)?;
    to_json(&summary)
}
