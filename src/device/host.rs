//! The CPU device's side of the device layer: host memory for tensors, the threads, what
//! the processor offers (for `rims info`), and running one dispatch through a kernel's CPU twin.
//!
//! The CPU device runs each dispatch when it is recorded (there is no queue to fill), under
//! the context's execution lock, so work stays ordered exactly as recorded and read-backs see
//! everything before them.

use std::alloc::Layout;
use std::ptr::NonNull;

use crate::error::{Error, Result};
use crate::kernels::args::MAX_BINDINGS;
use crate::kernels::split::SplitPolicy;
use crate::kernels::{Binding, CpuKernel, KernelArgs, Team};

/// Alignment of host buffers: a cache line, which also suits every SIMD width in use.
const ALIGN: usize = 64;

/// A zero-initialised, 64-byte-aligned block of host memory holding 32-bit words.
///
/// Access goes through raw pointers under the context's execution lock (see the module docs);
/// the device layer never hands out overlapping mutable slices.
pub(crate) struct HostMemory {
    ptr: NonNull<u32>,
    words: usize,
}

// SAFETY: the memory is plain words; all access is serialised by the context's lock.
unsafe impl Send for HostMemory {}
unsafe impl Sync for HostMemory {}

impl HostMemory {
    /// Allocates `bytes` (a multiple of 4) of zeroed memory, or says why not: an allocation the
    /// system refuses is an error naming `what`, never an abort.
    pub(crate) fn zeroed(what: &str, bytes: u64) -> Result<Self> {
        let words = usize::try_from(bytes / 4).ok();
        let layout = words
            .and_then(|w| w.checked_mul(4))
            .and_then(|b| Layout::from_size_align(b.max(ALIGN), ALIGN).ok());
        let Some((words, layout)) = words.zip(layout) else {
            return Err(Error::DeviceLimit {
                what: format!("{what} ({bytes} bytes)"),
                requested: bytes,
                limit: isize::MAX as u64,
            });
        };
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) } as *mut u32;
        let ptr = NonNull::new(ptr).ok_or_else(|| Error::DeviceLimit {
            what: format!("{what}: the system refused {bytes} bytes of host memory"),
            requested: bytes,
            limit: total_memory_bytes(),
        })?;
        Ok(HostMemory { ptr, words })
    }

    /// Words of the block.
    pub(crate) fn words(&self) -> usize {
        self.words
    }

    /// The first word (valid for [`HostMemory::words`] words).
    pub(crate) fn ptr(&self) -> *mut u32 {
        self.ptr.as_ptr()
    }

    fn layout(&self) -> Layout {
        Layout::from_size_align((self.words * 4).max(ALIGN), ALIGN).expect("checked at allocation")
    }
}

impl Drop for HostMemory {
    fn drop(&mut self) {
        // SAFETY: allocated in `zeroed` with this layout.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr() as *mut u8, self.layout()) }
    }
}

/// Physical memory of the machine in bytes (from /proc/meminfo; 16 GiB where unknown).
pub fn total_memory_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|kib| kib * 1024)
        .unwrap_or(16 << 30)
}

/// What the CPU device runs on, for `rims info` and benchmark records.
#[derive(Clone, Debug)]
pub struct CpuSummary {
    /// Processor model name (from /proc/cpuinfo where available).
    pub model: String,
    /// Logical cores the OS reports.
    pub cores: usize,
    /// Threads of the device's team (`RIMS_THREADS`, default: all cores).
    pub threads: usize,
    /// SIMD features the process can use (detected at run time).
    pub simd: Vec<&'static str>,
    /// Physical memory in bytes.
    pub memory: u64,
}

impl CpuSummary {
    fn detect(threads: usize) -> Self {
        let model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|m| m.trim().to_string())
            })
            .unwrap_or_else(|| std::env::consts::ARCH.to_string());
        CpuSummary {
            model,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            threads,
            simd: simd_features(),
            memory: total_memory_bytes(),
        }
    }

    /// "CPU: model (N threads of M cores; avx2 fma)".
    pub fn describe(&self) -> String {
        format!(
            "CPU: {} ({} thread{} of {} cores; {})",
            self.model,
            self.threads,
            if self.threads == 1 { "" } else { "s" },
            self.cores,
            if self.simd.is_empty() {
                "no SIMD extensions detected".to_string()
            } else {
                self.simd.join(" ")
            }
        )
    }
}

fn simd_features() -> Vec<&'static str> {
    #[allow(unused_mut)]
    let mut v = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        for (name, on) in [
            ("sse4.2", std::arch::is_x86_feature_detected!("sse4.2")),
            ("avx", std::arch::is_x86_feature_detected!("avx")),
            ("avx2", std::arch::is_x86_feature_detected!("avx2")),
            ("fma", std::arch::is_x86_feature_detected!("fma")),
            ("avx512f", std::arch::is_x86_feature_detected!("avx512f")),
        ] {
            if on {
                v.push(name);
            }
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("neon") {
            v.push("neon");
        }
    }
    v
}

/// Thread count from `RIMS_THREADS`, or every core.
pub fn threads_from_env() -> Result<usize> {
    match std::env::var("RIMS_THREADS").ok().filter(|s| !s.is_empty()) {
        None => Ok(std::thread::available_parallelism().map_or(1, |n| n.get())),
        Some(s) => match s.trim().parse::<usize>() {
            Ok(n) if (1..=1024).contains(&n) => Ok(n),
            _ => Err(Error::config(
                "RIMS_THREADS",
                format!("'{s}' is not a thread count from 1 to 1024"),
            )),
        },
    }
}

/// One storage binding of a host dispatch: (memory, first word, words, writable).
pub(crate) type Bound<'a> = (&'a HostMemory, usize, usize, bool);

/// The CPU device: its threads and what it runs on. The threads can be replaced while the
/// device lives ([`HostDevice::set_threads`]), so a long-lived context (a Python process's)
/// can change its thread count, or get threads again in a forked child.
pub(crate) struct HostDevice {
    workers: std::sync::Mutex<std::sync::Arc<Workers>>,
    pub(crate) summary: std::sync::Mutex<CpuSummary>,
}

/// The threads of the CPU device: the team that splits a twin's loops (the caller and
/// spinning helpers, see `kernels::team`), and the choices of which loops to split
/// (`kernels::split`), measured anew for each team.
struct Workers {
    team: Team,
    split: SplitPolicy,
}

fn start_workers(threads: usize) -> Result<Workers> {
    let failed = |e: String| Error::DeviceRequest {
        adapter: "CPU".into(),
        reason: format!("could not start {threads} threads: {e}"),
    };
    let team = Team::new(threads).map_err(|e| failed(e.to_string()))?;
    Ok(Workers {
        team,
        split: SplitPolicy::default(),
    })
}

impl HostDevice {
    pub(crate) fn new(threads: usize) -> Result<Self> {
        Ok(HostDevice {
            workers: std::sync::Mutex::new(std::sync::Arc::new(start_workers(threads)?)),
            summary: std::sync::Mutex::new(CpuSummary::detect(threads)),
        })
    }

    /// Runs the device on new workers of `threads` threads from the next dispatch on. With
    /// `after_fork`, the old ones are leaked rather than dropped: in a forked child their
    /// threads do not exist, and nothing of them may be waited for.
    pub(crate) fn set_threads(&self, threads: usize, after_fork: bool) -> Result<()> {
        if !(1..=1024).contains(&threads) {
            return Err(Error::config(
                "threads",
                format!("{threads} is not a thread count from 1 to 1024"),
            ));
        }
        let new = std::sync::Arc::new(start_workers(threads)?);
        let old = std::mem::replace(&mut *super::context::lock(&self.workers), new);
        if after_fork {
            std::mem::forget(old);
        }
        super::context::lock(&self.summary).threads = threads;
        Ok(())
    }

    /// The current threads (a dispatch holds them for its run).
    fn current_workers(&self) -> std::sync::Arc<Workers> {
        super::context::lock(&self.workers).clone()
    }

    /// Runs `twin` over `bound`, one entry per storage binding (all `Some`). Refuses a
    /// writable binding that overlaps another one (a GPU would refuse it too).
    pub(crate) fn run(
        &self,
        label: &str,
        twin: CpuKernel,
        params: &[u8],
        groups: [u32; 3],
        bound: &[Option<Bound<'_>>],
    ) -> Result<()> {
        let mut bindings = [Binding {
            ptr: std::ptr::null_mut(),
            len: 0,
            writable: false,
        }; MAX_BINDINGS];
        if bound.len() > MAX_BINDINGS {
            return Err(Error::invalid(
                "dispatch",
                format!(
                    "{label} binds {} buffers; at most {MAX_BINDINGS}",
                    bound.len()
                ),
            ));
        }
        for (i, a) in bound.iter().enumerate() {
            let (mem, start, words, writable) = a.expect("every binding filled");
            assert!(
                start + words <= mem.words(),
                "binding {i} of {label} past its buffer"
            );
            bindings[i] = Binding {
                // SAFETY: start + words <= the block's words (asserted above).
                ptr: unsafe { mem.ptr().add(start) },
                len: words,
                writable,
            };
            if !writable {
                continue;
            }
            for (j, b) in bound.iter().enumerate() {
                let (other, o_start, o_words, _) = b.expect("every binding filled");
                let overlap = std::ptr::eq(mem, other)
                    && start < o_start + o_words
                    && o_start < start + words;
                if i != j && overlap {
                    return Err(Error::invalid(
                        "dispatch",
                        format!(
                            "{label}: writable binding {i} overlaps binding {j} (one buffer range \
                             may not be written and bound again in one dispatch)"
                        ),
                    ));
                }
            }
        }
        // SAFETY: the bindings are valid for this call (the caller holds the buffers and the
        // execution lock) and no writable one overlaps another (checked above).
        let workers = self.current_workers();
        let args = unsafe {
            KernelArgs::new(
                params,
                groups,
                &bindings[..bound.len()],
                &workers.team,
                label,
                &workers.split,
            )
        };
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            crate::kernels::team::flushing_subnormals(|| twin(&args))
        }))
        .map_err(|e| {
            let why = e
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| e.downcast_ref::<&str>().copied())
                .unwrap_or("panic");
            Error::Gpu {
                during: format!("CPU kernel {label}"),
                message: why.to_string(),
            }
        })
    }
}
