//! The device layer: the context (a GPU through wgpu, or the CPU device), buffer pool, kernel
//! registry and recorder. It runs the kernel layer (`kernels`, `shaders/`) and knows nothing of
//! ops or models.

pub mod adapter;
mod adapter_choice;
pub mod context;
pub mod host;
pub mod pool;
pub mod recorder;
pub mod registry;

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::kernels::args::MAX_BINDINGS;
pub use context::{
    AdapterSummary, Context, DeviceKind, DeviceRequest, list_adapters, parse_device,
};
pub use host::CpuSummary;
pub use pool::{PoolStats, PooledBuffer};
pub use recorder::RecorderStats;
pub use registry::{Kernel, Spec};

use context::lock;

/// What a dispatch binds: a range of elements (4 bytes each) of a pooled buffer. `Tensor`
/// implements it; the trait lets the device take tensors without naming the layer above.
pub trait StorageView {
    /// The buffer the view lives in.
    fn storage(&self) -> &Arc<PooledBuffer>;
    /// Start of the view in the buffer, in elements.
    fn offset(&self) -> usize;
    /// Elements in the view.
    fn len(&self) -> usize;
    /// Whether the view has no elements.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The byte range a dispatch binds for `view`: the view rounded up to 16 bytes (so vec4
/// arrays cover it), never past the buffer.
fn binding_range(view: &(impl StorageView + ?Sized)) -> (u64, u64) {
    let start = (view.offset() * 4) as u64;
    let size = ((view.len() * 4) as u64).next_multiple_of(16).max(16);
    (start, size.min(view.storage().capacity() - start))
}

/// Splits `groups` workgroups into a grid no dimension of which exceeds the device limit.
/// Shaders recover the flat workgroup index as `wid.x + wid.y * nwg.x` and bounds-check it.
pub fn grid(ctx: &Context, what: &str, groups: u64) -> Result<[u32; 3]> {
    let max = ctx.limits().max_compute_workgroups_per_dimension as u64;
    if groups <= max {
        return Ok([groups as u32, 1, 1]);
    }
    let y = groups.div_ceil(max);
    if y > max {
        return Err(Error::DeviceLimit {
            what: format!("{what}: {groups} workgroups"),
            requested: groups,
            limit: max * max,
        });
    }
    Ok([max as u32, y as u32, 1])
}

impl Context {
    /// The compiled kernel for (shader, entry, specialisation); compiled on first use.
    pub fn kernel(&self, shader: &str, entry: &str, spec: Spec<'_>) -> Result<Arc<Kernel>> {
        lock(&self.kernels).get(self, shader, entry, spec)
    }

    /// Records one dispatch of `kernel` with its parameter struct and storage tensors (in
    /// binding order). Nothing runs until the next submit.
    pub fn dispatch<P: bytemuck::Pod, T: StorageView>(
        &self,
        kernel: Arc<Kernel>,
        params: &P,
        tensors: &[&T],
        groups: [u32; 3],
    ) -> Result<()> {
        let max = self.limits().max_compute_workgroups_per_dimension;
        if let Some(&g) = groups.iter().find(|&&g| g > max) {
            return Err(Error::DeviceLimit {
                what: format!("{} workgroups in one dimension", kernel.label()),
                requested: g as u64,
                limit: max as u64,
            });
        }
        refuse_read_write_sharing(&kernel, tensors)?;
        if let context::Backend::Cpu(host) = &self.backend {
            return self.dispatch_host(host, &kernel, bytemuck::bytes_of(params), tensors, groups);
        }
        let buffers = tensors
            .iter()
            .map(|t| {
                let (offset, size) = binding_range(*t);
                (t.storage().clone(), offset, size)
            })
            .collect();
        let label = self.profiling().then(|| kernel.label().to_string());
        if label.is_some() {
            self.synchronize()?; // earlier work is not charged to this kernel
        }
        lock(&self.recorder).dispatch(kernel, bytemuck::bytes_of(params), buffers, groups)?;
        if let Some(label) = label {
            let start = std::time::Instant::now();
            self.synchronize()?;
            self.charge(&label, start.elapsed());
        }
        Ok(())
    }
}

/// Refuses a dispatch that binds one buffer writable and also read-only. wgpu tracks usage per
/// buffer, not per range, so on a GPU that is a validation error that invalidates the whole
/// submit, and a submit carries every thread's recorded work: one bad dispatch would silently
/// drop the others' (their read-backs then return stale data). So it is refused here, when
/// recorded, and on both devices alike.
fn refuse_read_write_sharing<T: StorageView>(kernel: &Kernel, tensors: &[&T]) -> Result<()> {
    let writable = |i: usize| kernel.writable.get(i).copied().unwrap_or(false);
    for (i, w) in tensors.iter().enumerate().filter(|&(i, _)| writable(i)) {
        for (j, r) in tensors.iter().enumerate().filter(|&(j, _)| !writable(j)) {
            if Arc::ptr_eq(w.storage(), r.storage()) {
                return Err(Error::invalid(
                    "dispatch",
                    format!(
                        "{}: writable binding {i} and read-only binding {j} are views of one \
                         buffer (a GPU tracks usage per buffer; copy one of them first)",
                        kernel.label()
                    ),
                ));
            }
        }
    }
    Ok(())
}

impl Context {
    /// Counts `flops` floating-point operations of a matrix product (for benchmarks' GFLOP/s).
    pub fn count_flops(&self, flops: u64) {
        context::lock(&self.recorder).count_flops(flops);
    }

    /// Runs one dispatch on the CPU device through the kernel's twin, now, under the
    /// recorder's lock (which orders all host work).
    fn dispatch_host<T: StorageView>(
        &self,
        host: &host::HostDevice,
        kernel: &Kernel,
        params: &[u8],
        tensors: &[&T],
        groups: [u32; 3],
    ) -> Result<()> {
        let registry::Exec::Cpu(twin) = kernel.exec else {
            return Err(Error::invalid("dispatch", "a GPU kernel on the CPU device"));
        };
        kernel.check_call(params.len(), tensors.len())?;
        let mut rec = context::lock(&self.recorder);
        if groups.contains(&0) {
            return Ok(()); // nothing to do, as on the GPU
        }
        let mut bound: [Option<host::Bound<'_>>; MAX_BINDINGS] = [None; MAX_BINDINGS];
        if tensors.len() > MAX_BINDINGS {
            return Err(Error::invalid(
                "dispatch",
                format!("more than {MAX_BINDINGS} storage bindings"),
            ));
        }
        for ((slot, t), &writable) in bound.iter_mut().zip(tensors).zip(&kernel.writable) {
            *slot = Some((t.storage().host(), t.offset(), t.len(), writable));
        }
        let start = self.profiling().then(std::time::Instant::now);
        host.run(&kernel.label, twin, params, groups, &bound[..tensors.len()])?;
        rec.count_host_dispatch();
        drop(rec);
        if let Some(start) = start {
            self.charge(kernel.label(), start.elapsed());
        }
        Ok(())
    }
}
