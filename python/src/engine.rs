//! The engine contexts a Python process shares: one per device kind, opened on first use,
//! with the CPU device's thread count settable (`rims.set_num_threads`) and a forked child
//! given threads of its own (the parent's pool threads do not exist there).

use std::sync::{Arc, Mutex, MutexGuard};

use pyo3::prelude::*;
use rims::device::DeviceKind;
use rims::{Context, DeviceRequest};

use crate::errors::{engine_error, value_error};

struct Engines {
    cpu: Option<Arc<Context>>,
    gpu: Option<Arc<Context>>,
    /// Threads asked for with `set_num_threads` (None: RIMS_THREADS, else every core).
    threads: Option<usize>,
    /// Bumped in a forked child: objects holding a GPU context from before refuse to run.
    generation: u64,
}

static ENGINES: Mutex<Engines> = Mutex::new(Engines {
    cpu: None,
    gpu: None,
    threads: None,
    generation: 0,
});

fn engines() -> MutexGuard<'static, Engines> {
    ENGINES.lock().unwrap_or_else(|e| e.into_inner())
}

/// A context an object was made on, and the fork generation it was made in.
#[derive(Clone)]
pub struct Device {
    ctx: Arc<Context>,
    generation: u64,
}

impl Device {
    /// The context, or an error when it is a GPU context inherited across a fork.
    pub fn ctx(&self) -> PyResult<&Context> {
        if !self.ctx.is_cpu() && self.generation != engines().generation {
            return Err(value_error(
                "this object's GPU context was opened before the process forked; a GPU \
                 cannot be used from a forked child: create the object in the child",
            ));
        }
        Ok(&self.ctx)
    }

    /// "cpu" or "gpu".
    pub fn name(&self) -> &'static str {
        if self.ctx.is_cpu() { "cpu" } else { "gpu" }
    }

    /// One line naming the device.
    pub fn describe(&self) -> String {
        self.ctx.describe()
    }
}

/// Parses a `device=` argument: "cpu", "gpu", or None for what RIMS_DEVICE says (default
/// `fallback`).
pub fn parse_device(device: Option<&str>, fallback: DeviceKind) -> PyResult<DeviceKind> {
    let name = match device {
        Some(d) => d.to_string(),
        None => std::env::var("RIMS_DEVICE").unwrap_or_default(),
    };
    match name.as_str() {
        "" => Ok(fallback),
        "cpu" => Ok(DeviceKind::Cpu),
        "gpu" => Ok(DeviceKind::Gpu),
        "cuda" => Err(value_error(
            "device='cuda': rims runs on its own devices, 'cpu' or 'gpu' (any Vulkan, Metal, DX12 \
             or GL adapter, CUDA GPUs included through their Vulkan driver)",
        )),
        other => Err(value_error(format!(
            "device must be 'cpu' or 'gpu', got '{other}'"
        ))),
    }
}

/// The shared context of `kind`, opened on first use.
pub fn device(kind: DeviceKind) -> PyResult<Device> {
    let mut e = engines();
    let threads = e.threads;
    let generation = e.generation;
    let slot = match kind {
        DeviceKind::Cpu => &mut e.cpu,
        DeviceKind::Gpu => &mut e.gpu,
    };
    if let Some(ctx) = slot {
        return Ok(Device {
            ctx: ctx.clone(),
            generation,
        });
    }
    let request = match kind {
        DeviceKind::Cpu => DeviceRequest::cpu(threads),
        DeviceKind::Gpu => {
            DeviceRequest::from_env_for(Some(DeviceKind::Gpu)).map_err(engine_error)?
        }
    };
    let ctx = Arc::new(Context::new(request).map_err(engine_error)?);
    *slot = Some(ctx.clone());
    Ok(Device { ctx, generation })
}

/// `rims.set_num_threads(n)`: threads of the CPU device, now and for what is made later.
#[pyfunction]
pub fn set_num_threads(n: usize) -> PyResult<()> {
    if !(1..=1024).contains(&n) {
        return Err(value_error(format!(
            "set_num_threads: {n} is not a thread count from 1 to 1024"
        )));
    }
    let mut e = engines();
    if let Some(ctx) = &e.cpu {
        ctx.set_threads(n).map_err(engine_error)?;
    }
    e.threads = Some(n);
    Ok(())
}

/// `rims.get_num_threads()`: threads the CPU device runs on (or will, once opened).
#[pyfunction]
pub fn get_num_threads() -> PyResult<usize> {
    let cpu = device(DeviceKind::Cpu)?;
    Ok(cpu.ctx()?.cpu().map(|c| c.threads).unwrap_or(1))
}

/// Called by `os.register_at_fork(after_in_child=...)`: the CPU context gets a new pool (the
/// parent's threads are not in the child), the GPU context is forgotten (never dropped: its
/// driver state is the parent's) and a later `device("gpu")` opens a new one.
#[pyfunction]
pub fn _after_fork_in_child() {
    let mut e = engines();
    e.generation += 1;
    if let Some(ctx) = &e.cpu {
        // A CPU context cannot fail to restart but for thread creation; then the next
        // dispatch reports it.
        let _ = ctx.restart_after_fork();
    }
    if let Some(gpu) = e.gpu.take() {
        std::mem::forget(gpu);
    }
}

/// `rims.device_info(device=None)`: one line naming the device a call with `device` runs on.
#[pyfunction]
#[pyo3(signature = (device=None))]
pub fn device_info(device: Option<&str>) -> PyResult<String> {
    let d = self::device(parse_device(device, DeviceKind::Cpu)?)?;
    Ok(d.describe())
}
