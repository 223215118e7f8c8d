//! Training and evaluation from Python: `rims.train` (a whole run into a run directory, the
//! CLI's settings by name, a progress callback), `rims.evaluate` (a checkpoint at other
//! lengths or resolutions) and `rims.Trainer` (the engine's own model and training step on
//! batches the caller makes). Settings and records cross as JSON text: the Python side turns
//! them into dicts.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use numpy::PyUntypedArrayMethods;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use rims::Tensor;
use rims::device::DeviceKind;
use rims::nn::model::{Model, Pass};
use rims::ops::optim::Adam;
use rims::train::config::new_run::{Preset, new_run};
use rims::train::{
    self as engine_train, EvalRecord, Reporter, Target, Task, TrainConfig, checkpoint, record_step,
};
use serde::Serialize;

use crate::arrays::{f32_array, finite_values, to_numpy, u32_array};
use crate::engine::{Device, device, parse_device};
use crate::errors::{engine_error, value_error};

pub(crate) fn settings(json: &str) -> PyResult<serde_json::Map<String, serde_json::Value>> {
    match serde_json::from_str(json) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        _ => Err(value_error(
            "settings must be a JSON object of setting names",
        )),
    }
}

pub(crate) fn to_json<T: ?Sized + Serialize>(v: &T) -> PyResult<String> {
    serde_json::to_string(v).map_err(|e| value_error(format!("cannot encode: {e}")))
}

/// Calls the Python progress callback (if any) with the GIL held, and stops the run when the
/// callback raised or a signal (Ctrl-C) is pending. `rl.rs` reports through it too.
pub(crate) struct PyReporter {
    callback: Option<Py<PyAny>>,
    /// The first Python error, raised when `train` returns.
    pub(crate) error: Option<PyErr>,
}

impl PyReporter {
    pub(crate) fn new(callback: Option<Py<PyAny>>) -> Self {
        PyReporter {
            callback,
            error: None,
        }
    }

    /// Calls the callback with the argument `event` makes, unless an earlier call failed.
    pub(crate) fn call(&mut self, event: impl FnOnce(Python<'_>) -> PyResult<Bound<'_, PyAny>>) {
        if self.error.is_some() {
            return;
        }
        Python::attach(|py| {
            let result = match &self.callback {
                Some(cb) => event(py).and_then(|e| cb.call1(py, (e,)).map(drop)),
                None => Ok(()),
            };
            if let Err(e) = result.and_then(|_| py.check_signals()) {
                self.error = Some(e);
            }
        });
    }

    /// The engine's `keep_going`: an error once Python raised.
    pub(crate) fn check(&self) -> rims::Result<()> {
        match &self.error {
            None => Ok(()),
            Some(_) => Err(rims::Error::Stopped("stopped from Python".into())),
        }
    }
}

impl Reporter for PyReporter {
    fn started(&mut self, steps: u64) {
        self.call(|py| {
            let d = PyDict::new(py);
            d.set_item("event", "started")?;
            d.set_item("steps", steps)?;
            Ok(d.into_any())
        });
    }

    fn step(&mut self, epoch: usize, iteration: usize, of: usize, loss: f32, _: usize) {
        self.call(|py| {
            let d = PyDict::new(py);
            d.set_item("event", "step")?;
            d.set_item("epoch", epoch)?;
            d.set_item("iteration", iteration)?;
            d.set_item("of", of)?;
            d.set_item("loss", loss)?;
            Ok(d.into_any())
        });
    }

    fn evaluated(&mut self, record: &EvalRecord) {
        let json = serde_json::to_string(record).unwrap_or_default();
        self.call(|py| {
            let d = PyDict::new(py);
            d.set_item("event", "evaluated")?;
            d.set_item("record", json)?;
            Ok(d.into_any())
        });
    }

    fn keep_going(&mut self) -> rims::Result<()> {
        self.check()
    }
}

/// `train(out, preset, settings_json, resume, device, progress)`: trains a new run (or
/// resumes the one in `out`); returns every evaluation record of the run as JSON.
#[pyfunction]
#[pyo3(signature = (out, preset, settings_json, resume, device=None, progress=None))]
pub fn train(
    py: Python<'_>,
    out: PathBuf,
    preset: &str,
    settings_json: &str,
    resume: bool,
    device: Option<&str>,
    progress: Option<Py<PyAny>>,
) -> PyResult<String> {
    let given = settings(settings_json)?;
    let cfg = if resume {
        resumed_config(&out, &given)?
    } else {
        new_run(Preset::parse(preset).map_err(engine_error)?, &given).map_err(engine_error)?
    };
    let dev = self::device(parse_device(device, DeviceKind::Cpu)?)?;
    let ctx = dev.ctx()?;
    let mut reporter = PyReporter::new(progress);
    let result = py.detach(|| engine_train::train(ctx, &cfg, &out, resume, &mut reporter));
    if let Some(e) = reporter.error {
        return Err(e);
    }
    let summary = result.map_err(engine_error)?;
    to_json(&summary.history)
}

/// A resumed run keeps its checkpoint's settings; only `epochs` may be given (to grow).
fn resumed_config(
    out: &Path,
    given: &serde_json::Map<String, serde_json::Value>,
) -> PyResult<TrainConfig> {
    let mut cfg = checkpoint::read_state(out).map_err(engine_error)?.config;
    for (key, value) in given.iter().filter(|(_, v)| !v.is_null()) {
        match (key.as_str(), value.as_u64()) {
            ("epochs", Some(e)) => cfg.epochs = e as usize,
            _ => {
                return Err(value_error(format!(
                    "resume=True keeps the checkpoint's settings; only epochs may be given, not \
                     '{key}'"
                )));
            }
        }
    }
    Ok(cfg)
}

/// `evaluate(checkpoint, lengths, resolutions, device)`: the checkpoint's evaluation at its
/// own sizes or at the copying/adding `lengths` (one or two) or sMNIST `resolutions`, as JSON.
#[pyfunction]
#[pyo3(signature = (checkpoint, lengths=None, resolutions=None, device=None))]
pub fn evaluate(
    py: Python<'_>,
    checkpoint: PathBuf,
    lengths: Option<Vec<usize>>,
    resolutions: Option<Vec<usize>>,
    device: Option<&str>,
) -> PyResult<String> {
    let state = checkpoint::read_state(&checkpoint).map_err(engine_error)?;
    let mut cfg = state.config;
    match (cfg.task, &lengths, &resolutions) {
        (Task::Smnist, Some(_), _) => {
            return Err(value_error(
                "lengths are for copying and adding runs; this is an smnist run (resolutions=)",
            ));
        }
        (Task::Copying | Task::Adding | Task::Balls, _, Some(_)) => {
            return Err(value_error(
                "resolutions are for smnist runs; this run takes lengths=",
            ));
        }
        (Task::Balls, Some(l), _) if l.len() != 1 => {
            return Err(value_error(
                "a balls run takes one rollout horizon, e.g. lengths=[35]",
            ));
        }
        _ => {}
    }
    if let Some(r) = resolutions {
        cfg.eval_resolutions = r;
    }
    if let Some(l) = lengths {
        match l.as_slice() {
            [a] if cfg.task == Task::Balls => cfg.test_len = *a,
            [a] => (cfg.train_len, cfg.test_len) = (*a, *a),
            [a, b] => (cfg.train_len, cfg.test_len) = (*a, *b),
            _ => return Err(value_error("lengths: give one or two")),
        }
    }
    cfg.validate().map_err(engine_error)?;
    let dev = self::device(parse_device(device, DeviceKind::Cpu)?)?;
    let ctx = dev.ctx()?;
    let results = py
        .detach(|| -> rims::Result<_> {
            rims::train::budget::check(ctx, &cfg, false)?;
            let model = Model::new(ctx, cfg.model()?, cfg.seed)?;
            checkpoint::load(ctx, &checkpoint, &model, None)?;
            engine_train::evaluate_checkpoint(ctx, &cfg, &model)
        })
        .map_err(engine_error)?;
    to_json(&results)
}

/// The engine's model of a run's settings with its Adam, stepped on the caller's batches
/// (`rims.Trainer`): the same training step `rims train` takes (`train::record_step`).
#[pyclass(module = "rims._rims", frozen)]
pub struct Trainer {
    device: Device,
    cfg: TrainConfig,
    state: Mutex<(Model, Adam, u64)>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[pymethods]
impl Trainer {
    #[new]
    #[pyo3(signature = (preset, settings_json, device=None))]
    fn new(preset: &str, settings_json: &str, device: Option<&str>) -> PyResult<Self> {
        let given = settings(settings_json)?;
        let cfg =
            new_run(Preset::parse(preset).map_err(engine_error)?, &given).map_err(engine_error)?;
        let dev = self::device(parse_device(device, DeviceKind::Cpu)?)?;
        let ctx = dev.ctx()?;
        let build = || -> rims::Result<(Model, Adam)> {
            let model = Model::new(ctx, cfg.model()?, cfg.seed)?;
            model.add_forget_bias(ctx, cfg.forget_bias)?;
            model.scale_input_attention(ctx, cfg.input_gain)?;
            let adam = Adam::new(
                ctx,
                model.store.trainable_len(),
                engine_train::adam_config(&cfg),
            )?;
            Ok((model, adam))
        };
        let (model, adam) = build().map_err(engine_error)?;
        Ok(Trainer {
            device: dev,
            cfg,
            state: Mutex::new((model, adam, 0)),
        })
    }

    /// The run's settings as JSON.
    #[getter]
    fn config_json(&self) -> PyResult<String> {
        to_json(&self.cfg)
    }

    /// Optimiser steps taken.
    #[getter]
    fn steps(&self) -> u64 {
        lock(&self.state).2
    }

    /// One training step (the run's learning rate, dropout from its seed): `inputs` are
    /// tokens uint32 [T, B] (copying, sMNIST), features float32 [T, B, F] (adding) or frames
    /// float32 [T, B, S, S] (balls); `targets` class indices uint32 (one per logits row), values
    /// float32 shaped like the outputs, or (balls) the next frames [T, B, S, S] in [0, 1].
    /// Returns the batch's loss (before the update).
    fn step(
        &self,
        py: Python<'_>,
        inputs: &Bound<'_, PyAny>,
        targets: &Bound<'_, PyAny>,
    ) -> PyResult<f32> {
        let ctx = self.device.ctx()?;
        let x = match u32_array("inputs", inputs) {
            Ok(a) => {
                let s = a.shape().to_vec();
                let v = a
                    .as_slice()
                    .map_err(|_| value_error("inputs must be contiguous"))?;
                Tensor::from_u32(ctx, &s, v)
            }
            Err(_) => {
                let a = f32_array("inputs", inputs)?;
                Tensor::from_slice(ctx, a.shape(), finite_values("inputs", &a, None)?)
            }
        }
        .map_err(engine_error)?;
        let classes = u32_array("targets", targets).ok();
        let y = match &classes {
            Some(a) => {
                let v = a
                    .as_slice()
                    .map_err(|_| value_error("targets must be contiguous"))?;
                Tensor::from_u32(ctx, &[v.len()], v)
            }
            None => {
                let a = f32_array("targets", targets)?;
                Tensor::from_slice(ctx, a.shape(), finite_values("targets", &a, None)?)
            }
        }
        .map_err(engine_error)?;
        // A frame model's targets are next frames, one row of S² pixels per logits row.
        let balls = self.cfg.task == Task::Balls && classes.is_none();
        let y = if balls {
            let pixels = self.cfg.frame_size * self.cfg.frame_size;
            y.reshape(&[y.len() / pixels.max(1), pixels])
                .map_err(engine_error)?
        } else {
            y
        };
        let target = match (&classes, balls) {
            (Some(_), _) => Target::Classes(&y),
            (None, true) => Target::Frames(&y),
            (None, false) => Target::Values(&y),
        };
        let mut state = lock(&self.state);
        let (model, adam, steps) = &mut *state;
        let t_len = x.shape()[0] as u64;
        let pass = Pass {
            training: true,
            seed: self.cfg.seed as u32,
            step0: steps.wrapping_mul(t_len) as u32,
        };
        let loss = py
            .detach(|| -> rims::Result<f32> {
                let done = record_step(ctx, model, adam, &x, target, None, pass)?;
                Ok(done.loss.to_vec(ctx)?[0])
            })
            .map_err(engine_error)?;
        *steps += 1;
        Ok(loss)
    }

    /// Every parameter of the model by its name (`embed`, the cell's canonical names,
    /// `dec_w`, `dec_b`, ...), float32.
    fn weights<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let ctx = self.device.ctx()?;
        let state = lock(&self.state);
        let host = state.0.store.to_host(ctx).map_err(engine_error)?;
        let out = PyDict::new(py);
        for (name, (shape, values)) in host {
            out.set_item(name, to_numpy(py, values, &shape)?)?;
        }
        Ok(out)
    }

    /// Sets parameters by name (float32 arrays of their shapes); names not given keep their
    /// values.
    fn set_weights(&self, weights: &Bound<'_, PyDict>) -> PyResult<()> {
        let ctx = self.device.ctx()?;
        let state = lock(&self.state);
        let store = &state.0.store;
        for (name, value) in weights.iter() {
            let name: String = name.extract()?;
            let shape = store
                .shape(&name)
                .map_err(|_| value_error(format!("the model has no parameter '{name}'")))?
                .to_vec();
            let arr = f32_array(&name, &value)?;
            store
                .set(ctx, &name, finite_values(&name, &arr, Some(&shape))?)
                .map_err(engine_error)?;
        }
        Ok(())
    }
}
