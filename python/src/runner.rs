//! `rims.Runner`'s engine side: a trained checkpoint stepped one time step at a time
//! ([`rims::nn::Runner`]), its state readable and settable as numpy arrays.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use pyo3::types::PyDict;
use rims::Tensor;
use rims::device::DeviceKind;
use rims::nn::model::InputLayer;
use rims::nn::{RunnerState, StepOutput};
use rims::train::checkpoint::load_model;

use crate::arrays::{f32_array, finite_values, to_numpy, u32_array};
use crate::engine::{Device, device, parse_device};
use crate::errors::{engine_error, value_error};

/// A checkpoint's model stepped for a fixed batch size.
#[pyclass(module = "rims._rims", frozen)]
pub struct Runner {
    device: Device,
    inner: Mutex<rims::nn::Runner<'static>>,
    /// Width of a state row (N·H, or H for a dense baseline).
    width: usize,
    /// Whether the model has LSTM cells (a c state).
    lstm: bool,
    /// The model's input per step: tokens (an embedding) or features.
    tokens: bool,
    /// D: the cell input size (what `step_features` takes per row).
    input: usize,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[pymethods]
impl Runner {
    #[new]
    #[pyo3(signature = (checkpoint, batch=1, device=None))]
    fn new(
        py: Python<'_>,
        checkpoint: PathBuf,
        batch: usize,
        device: Option<&str>,
    ) -> PyResult<Self> {
        let dev = self::device(parse_device(device, DeviceKind::Cpu)?)?;
        let ctx = dev.ctx()?;
        let (runner, width, lstm, tokens, input) = py
            .detach(|| -> rims::Result<_> {
                let model = Arc::new(load_model(ctx, &checkpoint)?);
                let width = model.store.shape("dec_w")?[0];
                let lstm = model.cfg.rims.cell == rims::nn::CellKind::Lstm;
                let tokens = model.cfg.input == InputLayer::Embedding;
                let input = model.cfg.rims.input;
                let runner = rims::nn::Runner::shared(ctx, model, batch)?;
                Ok((runner, width, lstm, tokens, input))
            })
            .map_err(engine_error)?;
        Ok(Runner {
            device: dev,
            inner: Mutex::new(runner),
            width,
            lstm,
            tokens,
            input,
        })
    }

    /// Batch rows.
    #[getter]
    fn batch(&self) -> usize {
        lock(&self.inner).batch()
    }

    /// Steps taken since the runner was made.
    #[getter]
    fn steps(&self) -> u64 {
        lock(&self.inner).steps()
    }

    /// Whether the model reads tokens (through its embedding) rather than features.
    #[getter]
    fn takes_tokens(&self) -> bool {
        self.tokens
    }

    /// "cpu" or "gpu".
    #[getter]
    fn device(&self) -> &'static str {
        self.device.name()
    }

    /// One token per batch row (uint32 [B]) through the embedding, the backbone and the decoder.
    fn step_tokens<'py>(
        &self,
        py: Python<'py>,
        tokens: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let ctx = self.device.ctx()?;
        let arr = u32_array("tokens", tokens)?;
        let t = arr
            .as_slice()
            .map_err(|_| value_error("tokens must be a contiguous array"))?
            .to_vec();
        let mut runner = lock(&self.inner);
        let r = &mut *runner;
        let out = py.detach(|| step_and_state(ctx, r, |c, r| r.step(c, &t)));
        self.result(py, out.map_err(engine_error)?)
    }

    /// Raw cell inputs x [B, D] (float32), skipping the input layer.
    fn step_features<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let ctx = self.device.ctx()?;
        let b = self.batch();
        let arr = f32_array("x", x)?;
        let v = finite_values("x", &arr, Some(&[b, self.input]))?.to_vec();
        let mut runner = lock(&self.inner);
        let r = &mut *runner;
        let out = py.detach(|| step_and_state(ctx, r, |c, r| r.step_features(c, &v)));
        self.result(py, out.map_err(engine_error)?)
    }

    /// The state (h, c) as arrays [B, width] (c is None for GRU cells).
    fn get_state<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyAny>, Option<Bound<'py, PyAny>>)> {
        let ctx = self.device.ctx()?;
        let runner = lock(&self.inner);
        let s = runner.state();
        let (h, c) = read_state(ctx, s).map_err(engine_error)?;
        let shape = [runner.batch(), self.width];
        let c = c
            .map(|c| to_numpy(py, c, &shape).map(Bound::into_any))
            .transpose()?;
        Ok((to_numpy(py, h, &shape)?.into_any(), c))
    }

    /// Sets the state from h (and c for LSTM cells), each float32 [B, width].
    #[pyo3(signature = (h, c=None))]
    fn set_state(&self, h: &Bound<'_, PyAny>, c: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let ctx = self.device.ctx()?;
        let mut runner = lock(&self.inner);
        let shape = [runner.batch(), self.width];
        let ha = f32_array("h", h)?;
        let h = Tensor::from_slice(ctx, &shape, finite_values("h", &ha, Some(&shape))?)
            .map_err(engine_error)?;
        let c = match (c, self.lstm) {
            (Some(c), true) => {
                let ca = f32_array("c", c)?;
                Some(
                    Tensor::from_slice(ctx, &shape, finite_values("c", &ca, Some(&shape))?)
                        .map_err(engine_error)?,
                )
            }
            (None, true) => return Err(value_error("an LSTM model's state needs c as well as h")),
            (Some(_), false) => return Err(value_error("a GRU model has no c state: pass c=None")),
            (None, false) => None,
        };
        runner.set_state(RunnerState { h, c }).map_err(engine_error)
    }

    /// Zeroes the state of every row (`rows=None`) or of the rows listed.
    #[pyo3(signature = (rows=None))]
    fn reset(&self, rows: Option<Vec<usize>>) -> PyResult<()> {
        let ctx = self.device.ctx()?;
        let mut runner = lock(&self.inner);
        let Some(rows) = rows else {
            runner.reset();
            return Ok(());
        };
        let b = runner.batch();
        if let Some(r) = rows.iter().find(|&&r| r >= b) {
            return Err(value_error(format!(
                "reset: row {r} is not below the batch size {b}"
            )));
        }
        let (mut h, mut c) = read_state(ctx, runner.state()).map_err(engine_error)?;
        for &r in &rows {
            let span = r * self.width..(r + 1) * self.width;
            h[span.clone()].fill(0.0);
            if let Some(c) = &mut c {
                c[span].fill(0.0);
            }
        }
        let shape = [b, self.width];
        let up = |v: &[f32]| Tensor::from_slice(ctx, &shape, v);
        let state = RunnerState {
            h: up(&h).map_err(engine_error)?,
            c: c.as_deref().map(up).transpose().map_err(engine_error)?,
        };
        runner.set_state(state).map_err(engine_error)
    }
}

/// A step's outputs with h after it, read back (c stays on the device: `get_state` reads it
/// when asked, so a step is two read-backs, not three).
struct Stepped {
    out: StepOutput,
    h: Vec<f32>,
}

fn read_state(ctx: &rims::Context, s: &RunnerState) -> rims::Result<(Vec<f32>, Option<Vec<f32>>)> {
    Ok((
        s.h.to_vec(ctx)?,
        s.c.as_ref().map(|c| c.to_vec(ctx)).transpose()?,
    ))
}

fn step_and_state(
    ctx: &rims::Context,
    runner: &mut rims::nn::Runner<'static>,
    step: impl FnOnce(&rims::Context, &mut rims::nn::Runner<'static>) -> rims::Result<StepOutput>,
) -> rims::Result<Stepped> {
    let out = step(ctx, runner)?;
    let h = runner.state().h.to_vec(ctx)?;
    Ok(Stepped { out, h })
}

impl Runner {
    fn result<'py>(&self, py: Python<'py>, s: Stepped) -> PyResult<Bound<'py, PyDict>> {
        let (b, v, n) = (s.out.batch, s.out.classes, s.out.mechanisms);
        let d = PyDict::new(py);
        d.set_item("h", to_numpy(py, s.h, &[b, self.width])?)?;
        d.set_item("logits", to_numpy(py, s.out.logits, &[b, v])?)?;
        let masks = s
            .out
            .active
            .iter()
            .map(|&a| f32::from(u8::from(a)))
            .collect();
        d.set_item("masks", to_numpy(py, masks, &[b, n])?)?;
        Ok(d)
    }
}
