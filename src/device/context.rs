//! The context: which device runs the engine (a GPU through wgpu, or the CPU device), the
//! device's limits and error capture, and the engine's shared state (kernel registry, buffer
//! pool, recorder).

use std::sync::{Arc, Mutex, MutexGuard};

use crate::device::host::{CpuSummary, HostDevice, threads_from_env};
use crate::device::pool::{BufferPool, PoolStats};
use crate::device::recorder::{Recorder, RecorderStats};
use crate::device::registry::KernelRegistry;
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
    /// Case-insensitive substring of the adapter name that must match (e.g. "llvmpipe", "H100").
    pub adapter: Option<String>,
    /// Restrict to one backend: vulkan, metal, dx12 or gl.
    pub backend: Option<wgpu::Backends>,
    /// Threads of the CPU device (default: `RIMS_THREADS`, else every core).
    pub threads: Option<usize>,
}

impl DeviceRequest {
    /// Reads `RIMS_DEVICE` (cpu|gpu), `RIMS_ADAPTER` (name substring), `RIMS_BACKEND`
    /// (vulkan|metal|dx12|gl) and `RIMS_THREADS`.
    pub fn from_env() -> Result<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|s| !s.trim().is_empty());
        let device = var("RIMS_DEVICE").map(|d| parse_device(&d)).transpose()?;
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
    fn of(adapter: &wgpu::Adapter) -> Self {
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
fn device_rank(t: wgpu::DeviceType) -> u32 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

/// Lower is better: the native compute APIs before GL.
fn backend_rank(b: wgpu::Backend) -> u32 {
    match b {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal => 0,
        wgpu::Backend::Dx12 => 1,
        wgpu::Backend::Gl => 2,
        _ => 3,
    }
}

/// The limits the engine asks for. Everything else stays at the WebGPU defaults, so a kernel
/// that works here works on any conforming adapter.
fn required_limits(adapter: &wgpu::Limits) -> wgpu::Limits {
    wgpu::Limits {
        // Large tensors: take whatever the adapter offers.
        max_buffer_size: adapter.max_buffer_size,
        max_storage_buffer_binding_size: adapter.max_storage_buffer_binding_size,
        max_storage_buffers_per_shader_stage: adapter.max_storage_buffers_per_shader_stage.min(10),
        ..wgpu::Limits::default()
    }
}

/// The compute limits the engine relies on; checked against the adapter before opening it.
fn check_limits(name: &str, have: &wgpu::Limits) -> Result<()> {
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

/// Everything wgpu told us outside an error scope; drained into an `Error` at the next check.
type Uncaptured = Arc<Mutex<Vec<String>>>;

/// A wgpu device and what came with it.
pub(crate) struct GpuBackend {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    adapter: AdapterSummary,
    adapter_index: usize,
    /// A host-visible buffer reused by read-backs (creating one per read costs milliseconds on
    /// the software device); grows to the largest read so far.
    pub(crate) staging: Mutex<Option<wgpu::Buffer>>,
    uncaptured: Uncaptured,
}

/// The device behind a context.
pub(crate) enum Backend {
    Gpu(GpuBackend),
    Cpu(HostDevice),
}

/// The engine's handle on one device (a GPU or the CPU device) and the shared engine state.
///
/// Ops record work into the context; on a GPU nothing runs until [`Context::submit`] or a
/// read-back, on the CPU device each dispatch runs as it is recorded. The context is
/// `Send + Sync`; work from several threads is serialised.
pub struct Context {
    pub(crate) backend: Backend,
    /// Every wgpu adapter that was found (empty when the CPU device was asked for directly).
    adapters: Vec<AdapterSummary>,
    /// Why this device was chosen, for `rims info`.
    reason: String,
    limits: wgpu::Limits,
    pub(crate) kernels: Mutex<KernelRegistry>,
    pub(crate) pool: Arc<Mutex<BufferPool>>,
    /// GPU: the command queue being filled. CPU: the counters, and the lock that orders
    /// execution.
    pub(crate) recorder: Mutex<Recorder>,
    /// When profiling: time per kernel label (count, total). Each dispatch then runs alone
    /// (submit and wait), so totals include that overhead: use them to rank kernels only.
    profile: Mutex<Option<std::collections::BTreeMap<String, (u64, std::time::Duration)>>>,
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it (the data is plain
/// bookkeeping that stays consistent between calls).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every wgpu adapter of `backends`, with its handle.
fn enumerate(backends: wgpu::Backends) -> (Vec<wgpu::Adapter>, Vec<AdapterSummary>) {
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
fn no_adapter_message(backend: Option<wgpu::Backends>, others: &[AdapterSummary]) -> String {
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
fn cpu_limits(memory: u64) -> wgpu::Limits {
    wgpu::Limits {
        max_buffer_size: memory,
        max_storage_buffer_binding_size: memory.min(u32::MAX as u64 * 4),
        max_storage_buffers_per_shader_stage: 10,
        ..wgpu::Limits::default()
    }
}

impl Context {
    /// Opens the device `request` asks for; see [`DeviceRequest`] for the default order.
    pub fn new(request: DeviceRequest) -> Result<Self> {
        let explicit_gpu = request.adapter.is_some() || request.backend.is_some();
        match request.device {
            Some(DeviceKind::Cpu) => {
                Self::open_cpu(request.threads, Vec::new(), "asked for".into())
            }
            Some(DeviceKind::Gpu) => Self::gpu(&request, "asked for"),
            None if explicit_gpu => Self::gpu(&request, "an adapter or backend was asked for"),
            None => {
                let (_, summaries) = enumerate(wgpu::Backends::all());
                if summaries.iter().any(|s| s.compute && !s.is_software()) {
                    Self::gpu(&request, "a hardware GPU was found")
                } else {
                    let reason = if summaries.is_empty() {
                        "no GPU adapter was found".to_string()
                    } else {
                        "no hardware GPU was found (software rasterisers such as llvmpipe run \
                         only when asked for: RIMS_DEVICE=gpu or RIMS_ADAPTER=llvmpipe)"
                            .to_string()
                    };
                    Self::open_cpu(request.threads, summaries, reason)
                }
            }
        }
    }

    fn open_cpu(
        threads: Option<usize>,
        adapters: Vec<AdapterSummary>,
        reason: String,
    ) -> Result<Self> {
        let threads = match threads {
            Some(0) => {
                return Err(Error::config("threads", "must be at least 1"));
            }
            Some(n) => n,
            None => threads_from_env()?,
        };
        let host = HostDevice::new(threads)?;
        let limits = cpu_limits(host.summary.memory);
        Ok(Context {
            backend: Backend::Cpu(host),
            adapters,
            reason,
            limits,
            kernels: Mutex::new(KernelRegistry::new()),
            pool: Arc::new(Mutex::new(BufferPool::new())),
            recorder: Mutex::new(Recorder::new(16)),
            profile: Mutex::new(None),
        })
    }

    fn gpu(request: &DeviceRequest, why: &str) -> Result<Self> {
        let backends = request.backend.unwrap_or(wgpu::Backends::all());
        let (adapters, summaries) = enumerate(backends);
        if adapters.is_empty() {
            // Restricted to one backend: say what the others have before suggesting a driver.
            let others = match request.backend {
                Some(_) => list_adapters(),
                None => Vec::new(),
            };
            return Err(Error::NoAdapter(no_adapter_message(
                request.backend,
                &others,
            )));
        }
        let wanted = request.adapter.as_ref().map(|s| s.to_ascii_lowercase());
        let mut candidates: Vec<usize> = (0..adapters.len())
            .filter(|&i| summaries[i].compute)
            .filter(|&i| match &wanted {
                Some(w) => summaries[i].name.to_ascii_lowercase().contains(w.as_str()),
                None => true,
            })
            .collect();
        if candidates.is_empty() {
            let names: Vec<String> = summaries
                .iter()
                .map(|s| format!("{} ({:?})", s.name, s.backend))
                .collect();
            return Err(Error::NoAdapter(format!(
                "none with compute shaders matches {}; found: {}",
                wanted
                    .map(|w| format!("RIMS_ADAPTER='{w}'"))
                    .unwrap_or_else(|| "the request".into()),
                names.join(", ")
            )));
        }
        candidates.sort_by_key(|&i| {
            (
                device_rank(summaries[i].device_type),
                backend_rank(summaries[i].backend),
                i,
            )
        });
        let chosen = candidates[0];
        let adapter = &adapters[chosen];
        let summary = summaries[chosen].clone();
        check_limits(&summary.name, &adapter.limits())?;
        let limits = required_limits(&adapter.limits());
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("rims"),
            required_features: wgpu::Features::empty(),
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::default(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| Error::DeviceRequest {
            adapter: summary.name.clone(),
            reason: e.to_string(),
        })?;

        // Anything that escapes an error scope lands here instead of aborting the process.
        let uncaptured: Uncaptured = Arc::new(Mutex::new(Vec::new()));
        let sink = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            lock(&sink).push(e.to_string());
        }));

        let min_uniform_align = limits.min_uniform_buffer_offset_alignment;
        let reason = format!("{why}: {} ({:?})", summary.name, summary.backend);
        Ok(Context {
            backend: Backend::Gpu(GpuBackend {
                device,
                queue,
                adapter: summary,
                adapter_index: chosen,
                staging: Mutex::new(None),
                uncaptured,
            }),
            adapters: summaries,
            reason,
            limits,
            kernels: Mutex::new(KernelRegistry::new()),
            pool: Arc::new(Mutex::new(BufferPool::new())),
            recorder: Mutex::new(Recorder::new(min_uniform_align)),
            profile: Mutex::new(None),
        })
    }

    /// Opens the device chosen by the environment (`RIMS_DEVICE`, `RIMS_ADAPTER`,
    /// `RIMS_BACKEND`, `RIMS_THREADS`), or the best one.
    pub fn from_env() -> Result<Self> {
        Self::new(DeviceRequest::from_env()?)
    }

    /// Which kind of device this is.
    pub fn kind(&self) -> DeviceKind {
        match self.backend {
            Backend::Gpu(_) => DeviceKind::Gpu,
            Backend::Cpu(_) => DeviceKind::Cpu,
        }
    }

    /// Whether this is the CPU device.
    pub fn is_cpu(&self) -> bool {
        self.kind() == DeviceKind::Cpu
    }

    /// The wgpu adapter in use (None on the CPU device).
    pub fn adapter(&self) -> Option<&AdapterSummary> {
        match &self.backend {
            Backend::Gpu(g) => Some(&g.adapter),
            Backend::Cpu(_) => None,
        }
    }

    /// The CPU device's processor and threads (None on a GPU).
    pub fn cpu(&self) -> Option<&CpuSummary> {
        match &self.backend {
            Backend::Cpu(h) => Some(&h.summary),
            Backend::Gpu(_) => None,
        }
    }

    /// Whether the device is a software rasteriser (llvmpipe and the like).
    pub fn is_software_gpu(&self) -> bool {
        self.adapter().is_some_and(|a| a.is_software())
    }

    /// One line naming the device: "CPU: model (2 threads ...)" or "GPU: name (Vulkan, Cpu)".
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Cpu(h) => h.summary.describe(),
            Backend::Gpu(g) => format!(
                "GPU: {} ({:?}, {:?})",
                g.adapter.name, g.adapter.backend, g.adapter.device_type
            ),
        }
    }

    /// Why this device was chosen.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// Index of the adapter in use within [`Context::adapters`] (None on the CPU device).
    pub fn adapter_index(&self) -> Option<usize> {
        match &self.backend {
            Backend::Gpu(g) => Some(g.adapter_index),
            Backend::Cpu(_) => None,
        }
    }

    /// Every adapter that was found, usable or not.
    pub fn adapters(&self) -> &[AdapterSummary] {
        &self.adapters
    }

    pub(crate) fn gpu_backend(&self) -> Option<&GpuBackend> {
        match &self.backend {
            Backend::Gpu(g) => Some(g),
            Backend::Cpu(_) => None,
        }
    }

    /// The wgpu device (None on the CPU device).
    pub(crate) fn gpu_device(&self) -> Option<&wgpu::Device> {
        self.gpu_backend().map(|g| &g.device)
    }

    /// The limits the device was opened with.
    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }

    /// Pool counters: bytes allocated, live, reused.
    pub fn pool_stats(&self) -> PoolStats {
        lock(&self.pool).stats()
    }

    /// Recorder counters: dispatches, passes, submits so far.
    pub fn recorder_stats(&self) -> RecorderStats {
        lock(&self.recorder).stats()
    }

    /// Number of compiled pipelines (each (shader, entry, specialisation) once).
    pub fn pipeline_count(&self) -> usize {
        lock(&self.kernels).len()
    }

    /// Submits everything recorded so far as one command buffer. Returns once the GPU has
    /// accepted it (not when it finishes); validation errors come back here.
    /// On the CPU device the work has already run; this only counts the submit.
    pub fn submit(&self) -> Result<()> {
        let mut rec = lock(&self.recorder);
        match &self.backend {
            Backend::Gpu(_) => rec.submit(self, &mut lock(&self.kernels)),
            Backend::Cpu(_) => {
                rec.count_host_submit();
                Ok(())
            }
        }
    }

    /// Submits pending work and blocks until the device has finished all of it.
    pub fn synchronize(&self) -> Result<()> {
        self.submit()?;
        let Some(gpu) = self.gpu_backend() else {
            return Ok(());
        };
        gpu.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu {
                during: "synchronize".into(),
                message: e.to_string(),
            })?;
        self.check_uncaptured("synchronize")
    }

    /// Starts (or stops) per-kernel profiling: every dispatch is submitted and waited for on
    /// its own and its wall time added to its kernel's total. Slow; for finding hot kernels.
    pub fn set_profiling(&self, on: bool) {
        *lock(&self.profile) = on.then(std::collections::BTreeMap::new);
    }

    pub(crate) fn profiling(&self) -> bool {
        lock(&self.profile).is_some()
    }

    /// Kernel label → (dispatches, total time) since profiling started.
    pub fn profile(&self) -> Vec<(String, u64, std::time::Duration)> {
        let mut v: Vec<_> = lock(&self.profile)
            .as_ref()
            .map(|m| m.iter().map(|(k, (n, d))| (k.clone(), *n, *d)).collect())
            .unwrap_or_default();
        v.sort_by_key(|e| std::cmp::Reverse(e.2));
        v
    }

    pub(crate) fn charge(&self, label: &str, elapsed: std::time::Duration) {
        if let Some(m) = lock(&self.profile).as_mut() {
            let e = m.entry(label.to_string()).or_default();
            e.0 += 1;
            e.1 += elapsed;
        }
    }

    /// Turns errors that escaped every error scope into an `Error`.
    pub(crate) fn check_uncaptured(&self, during: &str) -> Result<()> {
        let Some(gpu) = self.gpu_backend() else {
            return Ok(());
        };
        let mut errs = lock(&gpu.uncaptured);
        if errs.is_empty() {
            return Ok(());
        }
        let message = errs.join("; ");
        errs.clear();
        Err(Error::Gpu {
            during: during.to_string(),
            message,
        })
    }

    /// Runs `f` inside validation and out-of-memory error scopes and turns what they catch into
    /// an `Error`.
    /// On the CPU device it just runs `f`.
    pub(crate) fn scoped<T>(&self, during: &str, f: impl FnOnce() -> T) -> Result<T> {
        let Some(device) = self.gpu_device() else {
            return Ok(f());
        };
        let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let out = f();
        let v = pollster::block_on(validation.pop());
        let o = pollster::block_on(oom.pop());
        if let Some(e) = v.or(o) {
            return Err(Error::Gpu {
                during: during.to_string(),
                message: e.to_string(),
            });
        }
        self.check_uncaptured(during)?;
        Ok(out)
    }

    /// Checks a buffer size against the device limits before anything is created.
    pub(crate) fn check_buffer_size(&self, what: &str, bytes: u64) -> Result<()> {
        let limit = self
            .limits
            .max_buffer_size
            .min(self.limits.max_storage_buffer_binding_size);
        if bytes > limit {
            return Err(Error::DeviceLimit {
                what: format!("{what} ({bytes} bytes)"),
                requested: bytes,
                limit,
            });
        }
        Ok(())
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("device", &self.describe())
            .finish_non_exhaustive()
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
