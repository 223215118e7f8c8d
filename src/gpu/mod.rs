//! The GPU layer: context, buffer pool, kernel registry and recorder.

pub mod context;
pub mod kernels;
pub mod pool;
pub mod recorder;

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::tensor::Tensor;
pub use context::{AdapterSummary, Context, DeviceRequest};
pub use kernels::{Kernel, Spec};
pub use pool::PoolStats;
pub use recorder::RecorderStats;

use context::lock;

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
    pub fn dispatch<P: bytemuck::Pod>(
        &self,
        kernel: Arc<Kernel>,
        params: &P,
        tensors: &[&Tensor],
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
        let buffers = tensors
            .iter()
            .map(|t| {
                let (offset, size) = t.binding_range();
                (t.buffer().clone(), offset, size)
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
