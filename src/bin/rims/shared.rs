//! What the subcommands share: the `--device` flag and opening the device, one-line error
//! messages, writing to stdout, and the key a device type has in JSON. `main.rs` and every
//! subcommand use these from here (the subcommands never reach into `main.rs`).

use std::io::Write;

use clap::Args;
use rims::device::{AdapterSummary, DeviceKind, DeviceRequest};
use rims::train::Task;
use rims::{Context, Error, Result};

/// `--device`: which device runs the job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceChoice {
    /// The CPU device: the engine's kernels in Rust on this machine's cores.
    Cpu,
    /// A wgpu adapter: the best hardware GPU, else a software rasteriser (llvmpipe).
    Gpu,
}

impl DeviceChoice {
    fn kind(self) -> DeviceKind {
        match self {
            DeviceChoice::Cpu => DeviceKind::Cpu,
            DeviceChoice::Gpu => DeviceKind::Gpu,
        }
    }
}

/// The `--device` flag shared by train, eval, infer, verify and viz.
#[derive(Clone, Copy, Debug, Default, Args)]
pub struct DeviceArg {
    /// Device to run on (default: `RIMS_DEVICE`, else a hardware GPU if there is one, else the
    /// CPU device). `gpu` without a hardware GPU means a software rasteriser (llvmpipe).
    #[arg(long, value_enum)]
    pub device: Option<DeviceChoice>,
}

impl DeviceArg {
    /// Opens the device asked for, over what the environment asks.
    pub fn open(&self) -> Result<Context> {
        open_device(self.device.map(DeviceChoice::kind))
    }

    /// The request [`DeviceArg::open`] opens: the flag over the environment.
    pub fn request(&self) -> Result<DeviceRequest> {
        DeviceRequest::from_env_for(self.device.map(DeviceChoice::kind))
    }
}

/// Opens `kind` (or the environment's or the default choice when None).
pub fn open_device(kind: Option<DeviceKind>) -> Result<Context> {
    Context::new(DeviceRequest::from_env_for(kind)?)
}

/// Refuses a `--task` that is not the task `trained` (a checkpoint's) was trained on: the flag
/// of `eval` and `viz` checks, it does not change.
pub fn check_task(asked: Option<Task>, trained: Task) -> Result<()> {
    match asked {
        Some(task) if task != trained => Err(Error::config(
            "--task",
            format!(
                "the checkpoint was trained on {}, not {}",
                trained.name(),
                task.name()
            ),
        )),
        _ => Ok(()),
    }
}

/// Folds a possibly multi-line message (wgpu and driver errors can span lines) into one line.
pub fn one_line(message: &str) -> String {
    rims::error::printable(message)
}

/// Writes `text` to stdout. A reader that went away early (`rims info | head`) is not an error.
pub fn emit(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::Io(e)),
        _ => Ok(()),
    }
}

/// The key of a device type in JSON output (`rims info --json`, `rims bench --json`).
pub fn device_type_key(t: wgpu::DeviceType) -> &'static str {
    match t {
        wgpu::DeviceType::DiscreteGpu => "discrete_gpu",
        wgpu::DeviceType::IntegratedGpu => "integrated_gpu",
        wgpu::DeviceType::VirtualGpu => "virtual_gpu",
        wgpu::DeviceType::Cpu => "cpu",
        wgpu::DeviceType::Other => "other",
    }
}

/// An adapter in JSON output (`rims info --json`, `rims bench --out`).
#[derive(serde::Serialize)]
pub struct AdapterJson<'a> {
    pub backend: &'static str,
    pub device_type: &'static str,
    pub driver: &'a str,
    pub driver_info: &'a str,
    pub name: &'a str,
}

impl<'a> From<&'a AdapterSummary> for AdapterJson<'a> {
    fn from(a: &'a AdapterSummary) -> Self {
        AdapterJson {
            backend: a.backend.to_str(),
            device_type: device_type_key(a.device_type),
            driver: &a.driver,
            driver_info: &a.driver_info,
            name: &a.name,
        }
    }
}
