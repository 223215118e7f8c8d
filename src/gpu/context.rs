//! The GPU context: adapter choice, device with explicit limits, error capture, and the
//! engine's shared state (kernel registry, buffer pool, recorder).

use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::gpu::kernels::KernelRegistry;
use crate::gpu::pool::{BufferPool, PoolStats};
use crate::gpu::recorder::{Recorder, RecorderStats};

/// Which adapter to open. `Default` picks the best one; [`DeviceRequest::from_env`] lets the
/// environment force a choice (`RIMS_ADAPTER`, `RIMS_BACKEND`).
#[derive(Clone, Debug, Default)]
pub struct DeviceRequest {
    /// Case-insensitive substring of the adapter name that must match (e.g. "llvmpipe", "H100").
    pub adapter: Option<String>,
    /// Restrict to one backend: vulkan, metal, dx12 or gl.
    pub backend: Option<wgpu::Backends>,
}

impl DeviceRequest {
    /// Reads `RIMS_ADAPTER` (name substring) and `RIMS_BACKEND` (vulkan|metal|dx12|gl).
    pub fn from_env() -> Result<Self> {
        let adapter = std::env::var("RIMS_ADAPTER").ok().filter(|s| !s.is_empty());
        let backend = match std::env::var("RIMS_BACKEND").ok().filter(|s| !s.is_empty()) {
            None => None,
            Some(name) => Some(parse_backend(&name)?),
        };
        Ok(DeviceRequest { adapter, backend })
    }
}

/// Parses a backend name as used by `RIMS_BACKEND`.
pub fn parse_backend(name: &str) -> Result<wgpu::Backends> {
    match name.to_ascii_lowercase().as_str() {
        "vulkan" | "vk" => Ok(wgpu::Backends::VULKAN),
        "metal" => Ok(wgpu::Backends::METAL),
        "dx12" | "d3d12" => Ok(wgpu::Backends::DX12),
        "gl" | "gles" | "opengl" => Ok(wgpu::Backends::GL),
        other => Err(Error::Config {
            field: "RIMS_BACKEND",
            reason: format!("unknown backend '{other}' (expected vulkan, metal, dx12 or gl)"),
        }),
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

/// The engine's handle on one GPU: device, queue, and the shared engine state.
///
/// Ops record work into the context's recorder; nothing runs until [`Context::submit`] or a
/// read-back. The context is `Send + Sync`; work from several threads is serialised.
pub struct Context {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    adapter: AdapterSummary,
    adapter_index: usize,
    adapters: Vec<AdapterSummary>,
    limits: wgpu::Limits,
    pub(crate) kernels: Mutex<KernelRegistry>,
    pub(crate) pool: Arc<Mutex<BufferPool>>,
    pub(crate) recorder: Mutex<Recorder>,
    /// A host-visible buffer reused by read-backs (creating one per read costs milliseconds on
    /// the software device); grows to the largest read so far.
    pub(crate) staging: Mutex<Option<wgpu::Buffer>>,
    /// When profiling: time per kernel label (count, total). Each dispatch then runs alone
    /// (submit and wait), so totals include that overhead: use them to rank kernels only.
    profile: Mutex<Option<std::collections::BTreeMap<String, (u64, std::time::Duration)>>>,
    uncaptured: Uncaptured,
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it (the data is plain
/// bookkeeping that stays consistent between calls).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Context {
    /// Opens the best adapter that satisfies `request`.
    pub fn new(request: DeviceRequest) -> Result<Self> {
        let backends = request.backend.unwrap_or(wgpu::Backends::all());
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends,
            ..wgpu::InstanceDescriptor::new_without_display_handle()
        });
        let adapters = pollster::block_on(instance.enumerate_adapters(backends));
        let summaries: Vec<AdapterSummary> = adapters.iter().map(AdapterSummary::of).collect();
        if adapters.is_empty() {
            return Err(Error::NoAdapter(
                "no Vulkan, Metal, DX12 or GL adapter found (on a machine without a GPU, install \
                 the software driver: apt-get install -y mesa-vulkan-drivers libvulkan1)"
                    .into(),
            ));
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
        Ok(Context {
            device,
            queue,
            adapter: summary,
            adapter_index: chosen,
            adapters: summaries,
            limits,
            kernels: Mutex::new(KernelRegistry::new()),
            pool: Arc::new(Mutex::new(BufferPool::new())),
            recorder: Mutex::new(Recorder::new(min_uniform_align)),
            staging: Mutex::new(None),
            profile: Mutex::new(None),
            uncaptured,
        })
    }

    /// Opens the adapter chosen by the environment (`RIMS_ADAPTER`, `RIMS_BACKEND`), or the best one.
    pub fn from_env() -> Result<Self> {
        Self::new(DeviceRequest::from_env()?)
    }

    /// The adapter in use.
    pub fn adapter(&self) -> &AdapterSummary {
        &self.adapter
    }

    /// Index of the adapter in use within [`Context::adapters`].
    pub fn adapter_index(&self) -> usize {
        self.adapter_index
    }

    /// Every adapter that was found, usable or not.
    pub fn adapters(&self) -> &[AdapterSummary] {
        &self.adapters
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
    pub fn submit(&self) -> Result<()> {
        let mut rec = lock(&self.recorder);
        rec.submit(self, &mut lock(&self.kernels))
    }

    /// Submits pending work and blocks until the GPU has finished all of it.
    pub fn synchronize(&self) -> Result<()> {
        self.submit()?;
        self.device
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
        let mut errs = lock(&self.uncaptured);
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
    pub(crate) fn scoped<T>(&self, during: &str, f: impl FnOnce() -> T) -> Result<T> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
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
            .field("adapter", &self.adapter)
            .finish_non_exhaustive()
    }
}
