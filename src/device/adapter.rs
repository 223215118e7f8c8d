//! Which device to open: the device kinds, the request (from the environment or the CLI), the
//! wgpu adapters found and how they rank, and the limits the engine asks for and relies on.
//! [`Context::new`](crate::device::Context::new) opens what the request and this ranking choose.

use crate::device::host::threads_from_env;
use crate::error::{Error, Result};

/// The two kinds of device the engine runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeviceKind {
    /// The engine's kernels as Rust code on the host's cores (`kernels::NAME`).
    Cpu,
    /// The WGSL kernels on a wgpu adapter: a hardware GPU, or a software rasteriser such as
    /// llvmpipe when asked for.
    Gpu,
}

impl DeviceKind {
    /// "cpu" or "gpu", as `RIMS_DEVICE` and `--device` spell it.
    pub fn name(self) -> &'static str {
        match self {
            DeviceKind::Cpu => "cpu",
            DeviceKind::Gpu => "gpu",
        }
    }
}

/// Parses a device name as used by `RIMS_DEVICE` and `--device`.
pub fn parse_device(name: &str) -> Result<DeviceKind> {
    match name.trim().to_ascii_lowercase().as_str() {
        "cpu" => Ok(DeviceKind::Cpu),
        "gpu" => Ok(DeviceKind::Gpu),
        other => Err(Error::config(
            "RIMS_DEVICE",
            format!("unknown device '{other}' (expected cpu or gpu)"),
        )),
    }
}

/// Which device to open. `Default` picks the best one: a hardware GPU, else the CPU device; a
/// software rasteriser (llvmpipe) only when asked for by device, adapter or backend.
/// [`DeviceRequest::from_env`] lets the environment force a choice (`RIMS_DEVICE`,
/// `RIMS_ADAPTER`, `RIMS_BACKEND`, `RIMS_THREADS`).
#[derive(Clone, Debug, Default)]
pub struct DeviceRequest {
    /// Force the CPU device or a wgpu adapter.
    pub device: Option<DeviceKind>,
    /// Case-insensitive substring of the adapter name that must match (e.g. "llvmpipe", "H100"),
    /// or `#N`: adapter N as `rims info` numbers them.
    pub adapter: Option<String>,
    /// Restrict to one backend: vulkan, metal, dx12 or gl.
    pub backend: Option<wgpu::Backends>,
    /// Threads of the CPU device (default: `RIMS_THREADS`, else every core).
    pub threads: Option<usize>,
    /// This process's rank among one job's processes on this machine (MPI's local rank): the
    /// machine's alike GPUs are shared out among them, one each, round robin.
    pub node_rank: Option<usize>,
}

impl DeviceRequest {
    /// Reads `RIMS_DEVICE` (cpu|gpu), `RIMS_ADAPTER` (name substring or `#N`), `RIMS_BACKEND`
    /// (vulkan|metal|dx12|gl) and `RIMS_THREADS`.
    pub fn from_env() -> Result<Self> {
        Self::from_env_for(None)
    }

    /// [`DeviceRequest::from_env`] with `device` (a `--device` flag) in the place of
    /// `RIMS_DEVICE`: the flag wins, so the variable is then not read at all, and a bad value
    /// there does not stop a command that names its device.
    pub fn from_env_for(device: Option<DeviceKind>) -> Result<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|s| !s.trim().is_empty());
        let device = match device {
            Some(d) => Some(d),
            None => var("RIMS_DEVICE").map(|d| parse_device(&d)).transpose()?,
        };
        let adapter = var("RIMS_ADAPTER");
        let backend = var("RIMS_BACKEND").map(|b| parse_backend(&b)).transpose()?;
        let threads = var("RIMS_THREADS")
            .map(|_| threads_from_env())
            .transpose()?;
        Ok(DeviceRequest {
            device,
            adapter,
            backend,
            threads,
            node_rank: None,
        })
    }

    /// The same request with the device forced (a `--device` flag over the environment).
    pub fn with_device(self, device: Option<DeviceKind>) -> Self {
        DeviceRequest {
            device: device.or(self.device),
            ..self
        }
    }

    /// The CPU device with `threads` threads (None: `RIMS_THREADS`, else every core).
    pub fn cpu(threads: Option<usize>) -> Self {
        DeviceRequest {
            device: Some(DeviceKind::Cpu),
            threads,
            ..Default::default()
        }
    }

    /// The best wgpu adapter, software rasterisers included.
    pub fn gpu() -> Self {
        DeviceRequest {
            device: Some(DeviceKind::Gpu),
            ..Default::default()
        }
    }
}

/// Parses a backend name as used by `RIMS_BACKEND`.
pub fn parse_backend(name: &str) -> Result<wgpu::Backends> {
    match name.to_ascii_lowercase().as_str() {
        "vulkan" | "vk" => Ok(wgpu::Backends::VULKAN),
        "metal" => Ok(wgpu::Backends::METAL),
        "dx12" | "d3d12" => Ok(wgpu::Backends::DX12),
        "gl" | "gles" | "opengl" => Ok(wgpu::Backends::GL),
        other => Err(Error::config(
            "RIMS_BACKEND",
            format!("unknown backend '{other}' (expected vulkan, metal, dx12 or gl)"),
        )),
    }
}

/// What we know about one adapter, for `rims info` and for choosing.
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    /// Adapter name as reported by the driver.
    pub name: String,
    /// Graphics API the adapter runs on (Vulkan, Metal, DX12, GL).
    pub backend: wgpu::Backend,
    /// Discrete, integrated, virtual, CPU (e.g. llvmpipe) or other.
    pub device_type: wgpu::DeviceType,
    /// Driver name (may be empty).
    pub driver: String,
    /// Driver version or extra description (may be empty).
    pub driver_info: String,
    /// Whether the adapter can run compute shaders at all (some GL adapters cannot).
    pub compute: bool,
    /// Optional features the adapter offers (the engine needs none of them).
    pub features: wgpu::Features,
}

impl AdapterSummary {
    pub(super) fn of(adapter: &wgpu::Adapter) -> Self {
        let info = adapter.get_info();
        let compute = adapter
            .get_downlevel_capabilities()
            .flags
            .contains(wgpu::DownlevelFlags::COMPUTE_SHADERS);
        AdapterSummary {
            name: info.name,
            backend: info.backend,
            device_type: info.device_type,
            driver: info.driver,
            driver_info: info.driver_info,
            compute,
            features: adapter.features(),
        }
    }

    /// A software rasteriser (llvmpipe, SwiftShader, WARP) rather than real GPU hardware.
    pub fn is_software(&self) -> bool {
        self.device_type == wgpu::DeviceType::Cpu
    }
}

/// Lower is better: hardware before software, discrete before integrated.
pub(super) fn device_rank(t: wgpu::DeviceType) -> u32 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

/// Lower is better: the native compute APIs before GL.
pub(super) fn backend_rank(b: wgpu::Backend) -> u32 {
    match b {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal => 0,
        wgpu::Backend::Dx12 => 1,
        wgpu::Backend::Gl => 2,
        _ => 3,
    }
}

/// The limits the engine asks for. Everything else stays at the WebGPU defaults, so a kernel
/// that works here works on any conforming adapter.
pub(super) fn required_limits(adapter: &wgpu::Limits) -> wgpu::Limits {
    wgpu::Limits {
        // Large tensors: take whatever the adapter offers.
        max_buffer_size: adapter.max_buffer_size,
        max_storage_buffer_binding_size: adapter.max_storage_buffer_binding_size,
        max_storage_buffers_per_shader_stage: adapter.max_storage_buffers_per_shader_stage.min(10),
        ..wgpu::Limits::default()
    }
}

/// The compute limits the engine relies on; checked against the adapter before opening it.
pub(super) fn check_limits(name: &str, have: &wgpu::Limits) -> Result<()> {
    let need = wgpu::Limits::default();
    let checks: [(&str, u64, u64); 5] = [
        (
            "max_storage_buffers_per_shader_stage",
            have.max_storage_buffers_per_shader_stage as u64,
            need.max_storage_buffers_per_shader_stage as u64,
        ),
        (
            "max_compute_invocations_per_workgroup",
            have.max_compute_invocations_per_workgroup as u64,
            need.max_compute_invocations_per_workgroup as u64,
        ),
        (
            "max_compute_workgroup_storage_size",
            have.max_compute_workgroup_storage_size as u64,
            need.max_compute_workgroup_storage_size as u64,
        ),
        (
            "max_compute_workgroups_per_dimension",
            have.max_compute_workgroups_per_dimension as u64,
            need.max_compute_workgroups_per_dimension as u64,
        ),
        (
            "max_dynamic_uniform_buffers_per_pipeline_layout",
            have.max_dynamic_uniform_buffers_per_pipeline_layout as u64,
            1,
        ),
    ];
    for (what, have, need) in checks {
        if have < need {
            return Err(Error::DeviceRequest {
                adapter: name.to_string(),
                reason: format!("{what} is {have}, the engine needs {need}"),
            });
        }
    }
    Ok(())
}

/// Every wgpu adapter of `backends`, with its handle.
pub(super) fn enumerate(backends: wgpu::Backends) -> (Vec<wgpu::Adapter>, Vec<AdapterSummary>) {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    let adapters = pollster::block_on(instance.enumerate_adapters(backends));
    let summaries = adapters.iter().map(AdapterSummary::of).collect();
    (adapters, summaries)
}

/// Why no adapter opened when `backend` (RIMS_BACKEND) found none: the adapters of the other
/// backends if there are any, else how to install a software one.
pub(super) fn no_adapter_message(
    backend: Option<wgpu::Backends>,
    others: &[AdapterSummary],
) -> String {
    let install = "on a machine without a GPU, install the software driver: apt-get install -y \
                   mesa-vulkan-drivers libvulkan1";
    let Some(backend) = backend else {
        return format!("no Vulkan, Metal, DX12 or GL adapter found ({install})");
    };
    let asked = ["vulkan", "metal", "dx12", "gl"]
        .into_iter()
        .find(|name| parse_backend(name).ok() == Some(backend))
        .unwrap_or("the chosen");
    if others.is_empty() {
        return format!(
            "no adapter on the {asked} backend (RIMS_BACKEND), nor on any other ({install})"
        );
    }
    let found: Vec<String> = others
        .iter()
        .map(|a| format!("{} ({})", a.name, a.backend.to_str()))
        .collect();
    format!(
        "no adapter on the {asked} backend (RIMS_BACKEND={asked}); this machine has {}: unset \
         RIMS_BACKEND or set it to one of those backends",
        found.join(", ")
    )
}

/// Every wgpu adapter on this machine, usable or not (for `rims info`).
pub fn list_adapters() -> Vec<AdapterSummary> {
    enumerate(wgpu::Backends::all()).1
}

/// The limits the CPU device reports: the WebGPU defaults that ops read (workgroup grid
/// sizes, so an op splits its work the same way on both devices), and buffers up to the
/// machine's memory.
pub(super) fn cpu_limits(memory: u64) -> wgpu::Limits {
    wgpu::Limits {
        max_buffer_size: memory,
        max_storage_buffer_binding_size: memory.min(u32::MAX as u64 * 4),
        max_storage_buffers_per_shader_stage: 10,
        ..wgpu::Limits::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adapter(name: &str, backend: wgpu::Backend) -> AdapterSummary {
        AdapterSummary {
            name: name.into(),
            backend,
            device_type: wgpu::DeviceType::Cpu,
            driver: String::new(),
            driver_info: String::new(),
            compute: true,
            features: wgpu::Features::empty(),
        }
    }

    #[test]
    fn a_missing_backend_names_the_adapters_there_are() {
        let others = [
            adapter("llvmpipe", wgpu::Backend::Vulkan),
            adapter("llvmpipe (GL)", wgpu::Backend::Gl),
        ];
        let m = no_adapter_message(Some(wgpu::Backends::METAL), &others);
        assert!(m.contains("RIMS_BACKEND=metal"), "{m}");
        assert!(m.contains("llvmpipe (vulkan)"), "{m}");
        assert!(!m.contains("apt-get"), "{m}");
        let m = no_adapter_message(Some(wgpu::Backends::METAL), &[]);
        assert!(m.contains("apt-get"), "{m}");
        let m = no_adapter_message(None, &[]);
        assert!(m.contains("apt-get"), "{m}");
    }
}
