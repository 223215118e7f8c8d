//! The engine side of `rims.torch.RIMs`: one RIMs layer whose parameters PyTorch owns. Each
//! forward copies the current parameter values into the layer's store and runs the whole
//! sequence as the engine's one tape node; when gradients are wanted the tape is kept in a
//! [`Pending`] until PyTorch calls its backward with dL/dh, dL/dh_T and dL/dc_T, which the
//! engine turns into dL/dx, dL/dh_0, dL/dc_0 and every parameter's gradient.

use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::types::PyDict;
use rims::device::DeviceKind;
use rims::nn::rims::param_specs;
use rims::nn::{CellKind, ParamStore, Rims, RimsConfig, RimsOptions, Variant};
use rims::tape::{Tape, Var};
use rims::{Context, Tensor};

use numpy::PyUntypedArrayMethods;

use crate::arrays::{f32_array, finite_values, to_numpy};
use crate::engine::{Device, device, parse_device};
use crate::errors::{engine_error, value_error};

/// The config of a layer from a dict of the engine's field names (`rims/torch.py` maps the
/// PyTorch-style keywords to these).
pub fn config_from_dict(d: &Bound<'_, PyDict>) -> PyResult<RimsConfig> {
    let mut c = RimsConfig::default();
    for (key, value) in d.iter() {
        let key: String = key.extract()?;
        let size = || -> PyResult<usize> {
            value
                .extract::<usize>()
                .map_err(|_| value_error(format!("{key} must be a non-negative integer")))
        };
        match key.as_str() {
            "mechanisms" => c.mechanisms = size()?,
            "active" => c.active = size()?,
            "hidden" => c.hidden = size()?,
            "input" => c.input = size()?,
            "input_key" => c.input_key = size()?,
            "input_value" => c.input_value = size()?,
            "input_heads" => c.input_heads = size()?,
            "comm_heads" => c.comm_heads = size()?,
            "comm_key" => c.comm_key = size()?,
            "comm_value" => c.comm_value = size()?,
            "dropout" => c.dropout = value.extract()?,
            "cell" => {
                c.cell = match value.extract::<String>()?.to_ascii_uppercase().as_str() {
                    "LSTM" => CellKind::Lstm,
                    "GRU" => CellKind::Gru,
                    other => {
                        return Err(value_error(format!(
                            "rnn_cell must be 'LSTM' or 'GRU', got '{other}'"
                        )));
                    }
                }
            }
            "variant" => {
                c.variant = Variant::parse(&value.extract::<String>()?).map_err(engine_error)?
            }
            other => return Err(value_error(format!("unknown layer setting '{other}'"))),
        }
    }
    c.validate().map_err(engine_error)?;
    Ok(c)
}

/// The engine's field names and values of `c` (what [`config_from_dict`] reads).
pub fn config_to_dict<'py>(py: Python<'py>, c: &RimsConfig) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("mechanisms", c.mechanisms)?;
    d.set_item("active", c.active)?;
    d.set_item("hidden", c.hidden)?;
    d.set_item("input", c.input)?;
    d.set_item("input_key", c.input_key)?;
    d.set_item("input_value", c.input_value)?;
    d.set_item("input_heads", c.input_heads)?;
    d.set_item("comm_heads", c.comm_heads)?;
    d.set_item("comm_key", c.comm_key)?;
    d.set_item("comm_value", c.comm_value)?;
    d.set_item("dropout", c.dropout)?;
    d.set_item("cell", c.cell.name())?;
    d.set_item("variant", c.variant.name())?;
    Ok(d)
}

/// One RIMs layer on an engine device, its parameters given at every call.
#[pyclass(module = "rims._rims", frozen)]
pub struct Layer {
    rims: Rims,
    device: Device,
    /// Every parameter, trainable ones first (the store's order), with shape and whether it
    /// is trainable.
    specs: Vec<(String, Vec<usize>, bool)>,
    /// Where each parameter starts in the store's flat buffers (padding lies between).
    offsets: Vec<usize>,
    /// Seconds of the last forward and backward: (engine work, the whole call), for the
    /// benchmark's account of what the bridge costs (`timings`).
    timings: Mutex<[f64; 4]>,
    store: Mutex<ParamStore>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a forward returns to Python: h, h_T, c_T (LSTM), the masks, and the tape when a
/// backward will follow.
type ForwardResult<'py> = (
    Bound<'py, PyAny>,
    Bound<'py, PyAny>,
    Option<Bound<'py, PyAny>>,
    Bound<'py, PyAny>,
    Option<Pending>,
);

#[pymethods]
impl Layer {
    #[new]
    #[pyo3(signature = (config, device=None))]
    fn new(config: &Bound<'_, PyDict>, device: Option<&str>) -> PyResult<Self> {
        let cfg = config_from_dict(config)?;
        let dev = self::device(parse_device(device, DeviceKind::Cpu)?)?;
        let ctx = dev.ctx()?;
        let rims = Rims::new(cfg.clone()).map_err(engine_error)?;
        let specs = param_specs(&cfg);
        let store = ParamStore::new(ctx, &specs, 0).map_err(engine_error)?;
        let mut listed = Vec::new();
        let mut offsets = Vec::new();
        for name in store.names() {
            let shape = store.shape(name).map_err(engine_error)?.to_vec();
            let trainable = store.is_trainable(name).map_err(engine_error)?;
            listed.push((name.to_string(), shape, trainable));
            offsets.push(store.offset(name).map_err(engine_error)?);
        }
        Ok(Layer {
            rims,
            device: dev,
            specs: listed,
            offsets,
            timings: Mutex::new([0.0; 4]),
            store: Mutex::new(store),
        })
    }

    /// The layer's settings under the engine's names.
    #[getter]
    fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        config_to_dict(py, self.rims.config())
    }

    /// "cpu" or "gpu".
    #[getter]
    fn device(&self) -> &'static str {
        self.device.name()
    }

    /// Seconds of the last forward and backward calls: (forward engine, forward call, backward
    /// engine, backward call). The engine part is the recorded sequence run to completion; the
    /// rest of a call is the bridge: checks, copies in and out, read-backs.
    #[getter]
    fn timings(&self) -> (f64, f64, f64, f64) {
        let t = *lock(&self.timings);
        (t[0], t[1], t[2], t[3])
    }

    /// (name, shape, trainable) of every parameter, in the order `forward` takes them.
    fn param_specs(&self) -> Vec<(String, Vec<usize>, bool)> {
        self.specs.clone()
    }

    /// The engine's initialisation of every parameter (the PyTorch codes' schemes, spec §4),
    /// from `seed`.
    fn initial_params<'py>(&self, py: Python<'py>, seed: u64) -> PyResult<Bound<'py, PyDict>> {
        let ctx = self.device.ctx()?;
        let cfg = self.rims.config();
        let host = py
            .detach(|| ParamStore::new(ctx, &param_specs(cfg), seed).and_then(|s| s.to_host(ctx)))
            .map_err(engine_error)?;
        let out = PyDict::new(py);
        for (name, (shape, values)) in host {
            out.set_item(name, to_numpy(py, values, &shape)?)?;
        }
        Ok(out)
    }

    /// Runs x [T, B, D] from (h0, c0) (None: zeros) with `params` (float32 arrays in
    /// `param_specs` order). Returns (h [T, B, N·H], h_T, c_T or None, masks [T, B, N], pending):
    /// `pending` (when `record`) computes the gradients later.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (x, h0, c0, params, training, seed, record, want_dx))]
    fn forward<'py>(
        slf: &Bound<'py, Self>,
        x: &Bound<'py, PyAny>,
        h0: Option<&Bound<'py, PyAny>>,
        c0: Option<&Bound<'py, PyAny>>,
        params: Vec<Bound<'py, PyAny>>,
        training: bool,
        seed: u32,
        record: bool,
        want_dx: bool,
    ) -> PyResult<ForwardResult<'py>> {
        let py = slf.py();
        let this = slf.get();
        let started = std::time::Instant::now();
        let ctx = this.device.ctx()?;
        let cfg = this.rims.config();
        let lstm = cfg.cell == CellKind::Lstm;
        let xa = f32_array("x", x)?;
        let xs = xa.shape().to_vec();
        if xs.len() != 3 || xs[2] != cfg.input || xs[0] == 0 || xs[1] == 0 {
            return Err(value_error(format!(
                "x must be [T, B, input_size={}] with T, B > 0, got {xs:?}",
                cfg.input
            )));
        }
        let (t, b, nh) = (xs[0], xs[1], cfg.mechanisms * cfg.hidden);
        let xt = upload(ctx, &xs, finite_values("x", &xa, None)?)?;
        let state = |name: &str, a: Option<&Bound<'py, PyAny>>| -> PyResult<Option<Tensor>> {
            let Some(a) = a else { return Ok(None) };
            let arr = f32_array(name, a)?;
            Ok(Some(upload(
                ctx,
                &[b, nh],
                finite_values(name, &arr, Some(&[b, nh]))?,
            )?))
        };
        let h0t = state("h0", h0)?;
        if c0.is_some() && !lstm {
            return Err(value_error(
                "c0 must be None for a GRU layer (it has no cell state)",
            ));
        }
        let c0t = state("c0", c0)?;
        this.set_params(ctx, &params)?;
        let recorded = py
            .detach(|| this.run(ctx, xt, h0t, c0t, training, seed, record, want_dx))
            .map_err(engine_error)?;
        let Ran {
            h,
            h_last,
            c_last,
            masks,
            pending,
            engine: recorded_engine,
        } = recorded;
        let c_last = c_last
            .map(|c| to_numpy(py, c, &[b, nh]).map(Bound::into_any))
            .transpose()?;
        let pending = pending.map(|inner| Pending {
            layer: slf.clone().unbind(),
            inner: Mutex::new(Some(inner)),
        });
        let out = (
            to_numpy(py, h, &[t, b, nh])?.into_any(),
            to_numpy(py, h_last, &[b, nh])?.into_any(),
            c_last,
            to_numpy(py, masks, &[t, b, cfg.mechanisms])?.into_any(),
            pending,
        );
        let mut timings = lock(&this.timings);
        timings[0] = recorded_engine;
        timings[1] = started.elapsed().as_secs_f64();
        Ok(out)
    }
}

/// A forward's values read back, and its tape when a backward will follow.
struct Ran {
    /// Seconds the sequence took on the device (forward recorded and run, before read-back).
    engine: f64,
    h: Vec<f32>,
    h_last: Vec<f32>,
    c_last: Option<Vec<f32>>,
    masks: Vec<f32>,
    pending: Option<PendingTape>,
}

fn upload(ctx: &Context, shape: &[usize], values: &[f32]) -> PyResult<Tensor> {
    Tensor::from_slice(ctx, shape, values).map_err(engine_error)
}

impl Layer {
    /// Copies the parameters' current values into the store, checking each.
    fn set_params(&self, ctx: &Context, params: &[Bound<'_, PyAny>]) -> PyResult<()> {
        if params.len() != self.specs.len() {
            return Err(value_error(format!(
                "expected {} parameter arrays, got {}",
                self.specs.len(),
                params.len()
            )));
        }
        let store = lock(&self.store);
        for ((name, shape, _), p) in self.specs.iter().zip(params) {
            let arr = f32_array(name, p)?;
            let v = finite_values(name, &arr, Some(shape))?;
            store.set(ctx, name, v).map_err(engine_error)?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        ctx: &Context,
        x: Tensor,
        h0: Option<Tensor>,
        c0: Option<Tensor>,
        training: bool,
        seed: u32,
        record: bool,
        want_dx: bool,
    ) -> rims::Result<Ran> {
        let store = lock(&self.store);
        let started = std::time::Instant::now();
        let mut tape = if record {
            Tape::new()
        } else {
            Tape::untracked()
        };
        let x = if record && want_dx {
            tape.input(x)
        } else {
            tape.constant(x)
        };
        let mut opts = RimsOptions {
            seed,
            step0: 0,
            training,
            ..Default::default()
        };
        let (mut h0_var, mut c0_var) = (None, None);
        if record {
            h0_var = h0.map(|h| tape.input(h));
            c0_var = c0.map(|c| tape.input(c));
            opts.h0_var = h0_var;
            opts.c0_var = c0_var;
        } else {
            opts.h0 = h0;
            opts.c0 = c0;
        }
        let out = self.rims.forward(ctx, &mut tape, &store, x, &opts)?;
        ctx.synchronize()?;
        let engine = started.elapsed().as_secs_f64();
        let h = tape.value(out.h).to_vec(ctx)?;
        let h_last = tape.value(out.final_h).to_vec(ctx)?;
        let c_last = out.final_c.map(|c| tape.value(c).to_vec(ctx)).transpose()?;
        let masks = out.masks.to_vec(ctx)?;
        let pending = record.then_some(PendingTape {
            tape,
            h: out.h,
            final_h: out.final_h,
            final_c: out.final_c,
            x: want_dx.then_some(x),
            h0: h0_var,
            c0: c0_var,
        });
        Ok(Ran {
            engine,
            h,
            h_last,
            c_last,
            masks,
            pending,
        })
    }
}

/// A recorded forward waiting for its backward.
struct PendingTape {
    tape: Tape,
    h: Var,
    final_h: Var,
    final_c: Option<Var>,
    x: Option<Var>,
    h0: Option<Var>,
    c0: Option<Var>,
}

/// The tape of one forward, kept until PyTorch runs its backward (once).
#[pyclass(module = "rims._rims", frozen)]
pub struct Pending {
    layer: Py<Layer>,
    inner: Mutex<Option<PendingTape>>,
}

/// What a backward returns to Python: dL/dx, dL/dh_0, dL/dc_0 (each None when not asked
/// for) and the trainable parameters' gradients in `param_specs` order.
type BackwardResult<'py> = (
    Option<Bound<'py, PyAny>>,
    Option<Bound<'py, PyAny>>,
    Option<Bound<'py, PyAny>>,
    Vec<Bound<'py, PyAny>>,
);

struct Gradients {
    /// Seconds the backward took on the device (recorded and run, before read-back).
    engine: f64,
    dx: Option<Vec<f32>>,
    dh0: Option<Vec<f32>>,
    dc0: Option<Vec<f32>>,
    flat: Vec<f32>,
}

#[pymethods]
impl Pending {
    /// The gradients of the forward's inputs and parameters given dL/dh [T, B, N·H], dL/dh_T
    /// and dL/dc_T [B, N·H] (each None for zero). Runs once.
    #[pyo3(signature = (gh, ght, gct))]
    fn backward<'py>(
        &self,
        py: Python<'py>,
        gh: Option<&Bound<'py, PyAny>>,
        ght: Option<&Bound<'py, PyAny>>,
        gct: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<BackwardResult<'py>> {
        let layer = self.layer.get();
        let started = std::time::Instant::now();
        let ctx = layer.device.ctx()?;
        let Some(p) = lock(&self.inner).take() else {
            return Err(value_error(
                "this forward's backward already ran (call backward once, or pass \
                 retain_graph=False)",
            ));
        };
        let cfg = layer.rims.config();
        let shape_h = p.tape.value(p.h).shape().to_vec();
        let (t, b, nh) = (shape_h[0], shape_h[1], shape_h[2]);
        let mut seeds = Vec::new();
        let mut seed = |name: &str,
                        a: Option<&Bound<'py, PyAny>>,
                        var: Option<Var>,
                        shape: &[usize]|
         -> PyResult<()> {
            if let (Some(a), Some(var)) = (a, var) {
                let arr = f32_array(name, a)?;
                let v = finite_values(name, &arr, Some(shape))?;
                seeds.push((var, upload(ctx, shape, v)?));
            }
            Ok(())
        };
        seed("grad of h", gh, Some(p.h), &[t, b, nh])?;
        seed("grad of h_T", ght, Some(p.final_h), &[b, nh])?;
        seed("grad of c_T", gct, p.final_c, &[b, nh])?;
        let trainable = layer.specs.iter().filter(|s| s.2).count();
        let grads = py
            .detach(|| -> rims::Result<Gradients> {
                let store = lock(&layer.store);
                store.zero_grads(ctx)?;
                let PendingTape {
                    tape, x, h0, c0, ..
                } = p;
                let lstm = cfg.cell == CellKind::Lstm;
                if seeds.is_empty() {
                    // Nothing flows back: every gradient is zero.
                    let zeros = |n: usize| vec![0.0f32; n];
                    return Ok(Gradients {
                        engine: 0.0,
                        dx: x.map(|_| zeros(t * b * cfg.input)),
                        dh0: h0.map(|_| zeros(b * nh)),
                        dc0: c0.filter(|_| lstm).map(|_| zeros(b * nh)),
                        flat: zeros(store.trainable_len()),
                    });
                }
                let engine_start = std::time::Instant::now();
                let g = tape.backward_from(ctx, seeds)?;
                ctx.synchronize()?;
                let engine = engine_start.elapsed().as_secs_f64();
                let read = |v: Option<Var>, n: usize| -> rims::Result<Option<Vec<f32>>> {
                    match v {
                        None => Ok(None),
                        Some(v) => match g.get(v) {
                            Some(t) => t.to_vec(ctx).map(Some),
                            None => Ok(Some(vec![0.0; n])),
                        },
                    }
                };
                Ok(Gradients {
                    engine,
                    dx: read(x, t * b * cfg.input)?,
                    dh0: read(h0, b * nh)?,
                    dc0: read(c0, b * nh)?,
                    flat: store.flat_grads().to_vec(ctx)?,
                })
            })
            .map_err(engine_error)?;
        let arr = |v: Option<Vec<f32>>, shape: &[usize]| -> PyResult<Option<Bound<'py, PyAny>>> {
            v.map(|v| to_numpy(py, v, shape).map(Bound::into_any))
                .transpose()
        };
        let mut params = Vec::with_capacity(trainable);
        for ((_, shape, is_trainable), &at) in layer.specs.iter().zip(&layer.offsets) {
            if !is_trainable {
                continue;
            }
            let n: usize = shape.iter().product();
            params.push(to_numpy(py, grads.flat[at..at + n].to_vec(), shape)?.into_any());
        }
        let out = (
            arr(grads.dx, &[t, b, cfg.input])?,
            arr(grads.dh0, &[b, nh])?,
            arr(grads.dc0, &[b, nh])?,
            params,
        );
        let mut timings = lock(&layer.timings);
        timings[2] = grads.engine;
        timings[3] = started.elapsed().as_secs_f64();
        Ok(out)
    }
}
