//! The settings of a new run, as `rims train` and `rims.train` from Python both make them: the
//! preset for the task and model, the settings given by name, the source run of `init`, and
//! variant D's rules. One place, so the CLI's flags and Python's keywords mean the same.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::{Task, TrainConfig};
use crate::error::{Error, Result};

/// The starting point of a new run's settings (`--preset`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    /// Minutes on a software device; with nothing else given, the main job.
    #[default]
    Small,
    /// The authors' setting (docs/spec.md §2); hours on a GPU.
    Paper,
}

impl Preset {
    /// Parses "small" or "paper".
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "small" => Ok(Preset::Small),
            "paper" => Ok(Preset::Paper),
            other => Err(Error::config(
                "preset",
                format!("unknown preset '{other}' (small or paper)"),
            )),
        }
    }
}

/// The small preset: the main job for copying; for sequential MNIST and adding, the paper's
/// protocol at a size that runs on the CPU device in minutes.
pub fn small_preset(task: Task) -> TrainConfig {
    let c = TrainConfig {
        task,
        ..TrainConfig::default()
    };
    match task {
        Task::Copying => c,
        // Sequences of 50 (tested at 200), fresh batches every step.
        Task::Adding => TrainConfig {
            train_len: 50,
            test_len: 200,
            epochs: 10,
            lr: 2e-3,
            ..c
        },
        // The RIMs row of docs/experiments.md: N = 6, k = 4, H = 16 on the bundled subset.
        Task::Smnist => TrainConfig {
            mechanisms: 6,
            active: 4,
            hidden: 16,
            embed: 16,
            epochs: 10,
            eval_every: 5,
            lr: 5e-3,
            forget_bias: 1.0,
            ..c
        },
        // A laptop-scale video model (docs/experiments.md): the frame networks at half R-NEM's
        // channels and a quarter of its dense width, 6 mechanisms of 32 units with 4 active.
        Task::Balls => TrainConfig {
            mechanisms: 6,
            active: 4,
            hidden: 32,
            embed: 128,
            input_key: 32,
            input_value: 64,
            comm_key: 16,
            comm_value: 16,
            frame_channels: [8, 16, 32],
            frame_dense: 128,
            batch: 16,
            train_len: 30,
            test_len: 15,
            epochs: 10,
            iterations: 100,
            eval_every: 5,
            // Chosen on the validation set between 1e-3 and 3e-3 (docs/experiments.md).
            lr: 3e-3,
            input_gain: 1.0,
            ..c
        },
    }
}

/// The config of a new run: `preset` for the task and model `given` names (copying and RIMs
/// when it names none), the source's model settings when `given` has `init`, then every
/// setting in `given` (TrainConfig field names; null values are left out; `clip` 0 means no
/// clipping), then variant D's rules (d_vc = H; no preset forget-gate bias). Validated.
pub fn new_run(preset: Preset, given: &Map<String, Value>) -> Result<TrainConfig> {
    let given: Map<String, Value> = given
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let known = serde_json::to_value(TrainConfig::default()).map_err(json_error)?;
    if let Some(fields) = known.as_object()
        && let Some(unknown) = given
            .keys()
            .find(|k| !fields.contains_key(*k) && *k != "init")
    {
        return Err(Error::config(
            "settings",
            format!("'{unknown}' is not a setting of a run"),
        ));
    }
    let task = match given.get("task") {
        Some(v) => serde_json::from_value(v.clone()).map_err(|_| {
            Error::config(
                "task",
                format!("unknown task {v} (copying, smnist, adding or balls)"),
            )
        })?,
        None => Task::Copying,
    };
    let mut c = match preset {
        Preset::Small => small_preset(task),
        Preset::Paper => TrainConfig::paper(task),
    };
    let model = given.get("model").and_then(Value::as_str).unwrap_or("rims");
    if model != "rims" {
        // The main job's input gain is a RIMs setting: a dense baseline has no input attention.
        c.input_gain = 1.0;
        if preset == Preset::Paper {
            // The paper's dense baselines have as many units as the RIMs model: LSTM-600.
            c.hidden *= c.mechanisms;
        }
    }
    if let Some(init) = given.get("init").and_then(Value::as_str) {
        // The model settings come from the source; settings given still override them below,
        // and train() refuses a model that then differs from the source's, naming them.
        let source = super::super::checkpoint::read_state(Path::new(init))?.config;
        c = TrainConfig {
            input_gain: 1.0,
            forget_bias: 0.0,
            init: Some(PathBuf::from(init)),
            ..c.with_model_of(&source)?
        };
    }
    let mut merged = serde_json::to_value(&c).map_err(json_error)?;
    if let Some(into) = merged.as_object_mut() {
        for (field, value) in &given {
            into.insert(field.clone(), value.clone());
        }
    }
    let mut c: TrainConfig = serde_json::from_value(merged)
        .map_err(|e| Error::config("settings", format!("a setting has the wrong type: {e}")))?;
    refuse_rims_settings_of_dense(&c, &given)?;
    if given.get("clip").and_then(Value::as_f64) == Some(0.0) {
        c.clip = None;
    }
    if c.variant == "dido" {
        // Variant D has no communication value width of its own: d_vc = H (spec §3).
        c.comm_value = c.hidden;
        // Its cells have no biases, so a preset's forget-gate bias does not apply; one given
        // explicitly is still refused by validate.
        if !given.contains_key("forget_bias") {
            c.forget_bias = 0.0;
        }
    }
    c.validate()?;
    Ok(c)
}

/// Settings only a RIMs model has.
const RIMS_ONLY: [&str; 9] = [
    "mechanisms",
    "active",
    "variant",
    "input_heads",
    "input_key",
    "input_value",
    "comm_heads",
    "comm_key",
    "comm_value",
];

/// Refuses a RIMs setting given for a dense model (named, or taken from an `init` run), which
/// would otherwise be ignored or fail a RIMs check that has nothing to do with the run.
fn refuse_rims_settings_of_dense(c: &TrainConfig, given: &Map<String, Value>) -> Result<()> {
    if c.model == "rims" {
        return Ok(());
    }
    let Some(field) = RIMS_ONLY.into_iter().find(|f| given.contains_key(*f)) else {
        return Ok(());
    };
    let whence = match &c.init {
        Some(init) if !given.contains_key("model") => {
            format!(" (the init run {} is a dense {})", init.display(), c.model)
        }
        _ => String::new(),
    };
    Err(Error::config(
        field,
        format!(
            "a RIMs setting, given for a dense {} model{whence}, which has no mechanisms or \
             attention",
            c.model
        ),
    ))
}

fn json_error(e: serde_json::Error) -> Error {
    Error::Io(std::io::Error::other(e))
}
