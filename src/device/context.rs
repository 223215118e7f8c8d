//! The context: which device runs the engine (a GPU through wgpu, or the CPU device), the
//! device's limits and error capture, and the engine's shared state (kernel registry, buffer
//! pool, recorder). Which device to open (the request, the adapters and their ranking, the
//! limits) is `adapter.rs`.

use std::sync::{Arc, Mutex, MutexGuard};

pub use crate::device::adapter::{
    AdapterSummary, DeviceKind, DeviceRequest, list_adapters, parse_backend, parse_device,
};
use crate::device::adapter::{
    check_limits, cpu_limits, enumerate, no_adapter_message, required_limits,
};
use crate::device::adapter_choice::choose_adapter;
use crate::device::host::{CpuSummary, HostDevice, threads_from_env};
use crate::device::pool::{BufferPool, PoolStats};
use crate::device::recorder::{Recorder, RecorderStats};
use crate::device::registry::KernelRegistry;
use crate::error::{Error, Result};

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
        let limits = cpu_limits(lock(&host.summary).memory);
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
        let chosen = choose_adapter(&summaries, request.adapter.as_deref(), request.node_rank)?;
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
    pub fn cpu(&self) -> Option<CpuSummary> {
        match &self.backend {
            Backend::Cpu(h) => Some(lock(&h.summary).clone()),
            Backend::Gpu(_) => None,
        }
    }

    /// CPU device: run every later dispatch on `threads` threads (a new pool; work recorded
    /// from now on uses it). An error on a GPU, or for a count outside 1 to 1024.
    pub fn set_threads(&self, threads: usize) -> Result<()> {
        match &self.backend {
            Backend::Cpu(h) => h.set_threads(threads, false),
            Backend::Gpu(_) => Err(Error::invalid(
                "set_threads",
                "a GPU context has no thread pool",
            )),
        }
    }

    /// CPU device, in the child of a `fork()`: the parent's pool threads do not exist here, so
    /// a dispatch would wait for them forever; this gives the context a new pool of the same
    /// size, leaking the old one (never waited for). A GPU context is not usable in a forked
    /// child (its driver's state is the parent's): this returns an error saying so.
    pub fn restart_after_fork(&self) -> Result<()> {
        match &self.backend {
            Backend::Cpu(h) => {
                let threads = lock(&h.summary).threads;
                h.set_threads(threads, true)
            }
            Backend::Gpu(_) => Err(Error::invalid(
                "fork",
                "a GPU context cannot be used in a forked child; open one in the child",
            )),
        }
    }

    /// Whether the device is a software rasteriser (llvmpipe and the like).
    pub fn is_software_gpu(&self) -> bool {
        self.adapter().is_some_and(|a| a.is_software())
    }

    /// One line naming the device: "CPU: model (2 threads ...)" or "GPU: name (Vulkan, Cpu)".
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Cpu(h) => lock(&h.summary).describe(),
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
