//! The recorder: ops append dispatches here instead of running; `submit` turns everything
//! recorded into one command buffer with as few compute passes as possible (a pass is only
//! broken by a buffer copy) and one queue submit.
//!
//! Each dispatch's parameters go into one uniform arena, written once per submit and bound
//! with a dynamic offset, so bind groups do not depend on the parameters and stay cached.

use std::sync::Arc;

use crate::device::context::Context;
use crate::device::pool::PooledBuffer;
use crate::device::registry::{Exec, Kernel, KernelRegistry};
use crate::error::{Error, Result};

/// Counters over the context's lifetime.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecorderStats {
    /// Compute dispatches recorded.
    pub dispatches: u64,
    /// Compute passes encoded.
    pub passes: u64,
    /// Queue submits.
    pub submits: u64,
    /// Buffer-to-buffer copies recorded.
    pub copies: u64,
    /// Floating-point operations (2 per multiply-add) of the matrix products recorded, as
    /// counted by the op wrappers from their shapes (the same on every device).
    pub matmul_flops: u64,
}

pub(crate) enum Command {
    Dispatch {
        kernel: Arc<Kernel>,
        /// Held until the submit so no buffer goes back to the pool while work still names it;
        /// each with the (offset, size) in bytes of the bound range.
        buffers: Vec<(Arc<PooledBuffer>, u64, u64)>,
        offset: u32,
        groups: [u32; 3],
    },
    Copy {
        src: Arc<PooledBuffer>,
        src_offset: u64,
        dst: Arc<PooledBuffer>,
        dst_offset: u64,
        bytes: u64,
    },
    /// Copy into a host-visible staging buffer for a read-back.
    ReadBack {
        src: Arc<PooledBuffer>,
        src_offset: u64,
        staging: wgpu::Buffer,
        bytes: u64,
    },
}

/// Queue of recorded dispatches and copies plus their uniform-parameter arena, flushed by
/// `submit` as one command buffer.
pub struct Recorder {
    commands: Vec<Command>,
    arena: Vec<u8>,
    align: u64,
    /// The GPU copy of the arena: (id, buffer, capacity).
    uniform: Option<(u64, wgpu::Buffer, u64)>,
    next_arena_id: u64,
    stats: RecorderStats,
    /// CPU device: work ran since the last submit (so the next submit counts).
    host_pending: bool,
    /// CPU device: a dispatch ran since the last copy or submit (so it is in an open pass).
    host_in_pass: bool,
    /// CPU device: passes opened since the last submit; counted at the submit, as on a GPU.
    host_passes: u64,
}

impl Recorder {
    /// An empty recorder; parameter blocks in the arena are aligned to
    /// `min_uniform_align` bytes (the device's dynamic-offset alignment), at least 16.
    pub fn new(min_uniform_align: u32) -> Self {
        Recorder {
            commands: Vec::new(),
            arena: Vec::new(),
            align: min_uniform_align.max(16) as u64,
            uniform: None,
            next_arena_id: 1 << 40,
            stats: RecorderStats::default(),
            host_pending: false,
            host_in_pass: false,
            host_passes: 0,
        }
    }

    /// A snapshot of the recorder's counters.
    pub fn stats(&self) -> RecorderStats {
        self.stats
    }

    /// Adds the FLOPs of a recorded product.
    pub(crate) fn count_flops(&mut self, flops: u64) {
        self.stats.matmul_flops += flops;
    }

    /// CPU device: counts a dispatch that just ran, as the GPU recorder would count it (a
    /// pass opens at the first dispatch after a copy or a submit).
    pub(crate) fn count_host_dispatch(&mut self) {
        self.stats.dispatches += 1;
        if !self.host_in_pass {
            self.host_passes += 1;
            self.host_in_pass = true;
        }
        self.host_pending = true;
    }

    /// CPU device: counts a buffer copy that just ran.
    pub(crate) fn count_host_copy(&mut self) {
        self.stats.copies += 1;
        self.host_in_pass = false;
        self.host_pending = true;
    }

    /// CPU device: a submit ends the pass and counts when work ran since the last one.
    pub(crate) fn count_host_submit(&mut self) {
        if self.host_pending {
            self.stats.submits += 1;
        }
        self.stats.passes += std::mem::take(&mut self.host_passes);
        self.host_pending = false;
        self.host_in_pass = false;
    }

    /// Commands waiting for the next submit.
    pub fn pending(&self) -> usize {
        self.commands.len()
    }

    /// Appends a dispatch. `params` must be exactly the kernel's uniform struct.
    pub(crate) fn dispatch(
        &mut self,
        kernel: Arc<Kernel>,
        params: &[u8],
        buffers: Vec<(Arc<PooledBuffer>, u64, u64)>,
        groups: [u32; 3],
    ) -> Result<()> {
        kernel.check_call(params.len(), buffers.len())?;
        let offset = match kernel.uniform {
            Some((_, size)) => {
                let start = self.arena.len().next_multiple_of(self.align as usize);
                self.arena.resize(start, 0);
                self.arena.extend_from_slice(params);
                self.arena.resize(start + size as usize, 0);
                start as u32
            }
            None => 0,
        };
        if groups.contains(&0) {
            return Ok(()); // nothing to do: an empty launch is not an error
        }
        self.commands.push(Command::Dispatch {
            kernel,
            buffers,
            offset,
            groups,
        });
        self.stats.dispatches += 1;
        Ok(())
    }

    pub(crate) fn copy(
        &mut self,
        src: Arc<PooledBuffer>,
        src_offset: u64,
        dst: Arc<PooledBuffer>,
        dst_offset: u64,
        bytes: u64,
    ) {
        if bytes > 0 {
            self.commands.push(Command::Copy {
                src,
                src_offset,
                dst,
                dst_offset,
                bytes,
            });
            self.stats.copies += 1;
        }
    }

    pub(crate) fn read_back(
        &mut self,
        src: Arc<PooledBuffer>,
        src_offset: u64,
        staging: wgpu::Buffer,
        bytes: u64,
    ) {
        self.commands.push(Command::ReadBack {
            src,
            src_offset,
            staging,
            bytes,
        });
    }

    /// Encodes and submits everything recorded, inside error scopes.
    pub(crate) fn submit(&mut self, ctx: &Context, kernels: &mut KernelRegistry) -> Result<()> {
        if self.commands.is_empty() {
            return Ok(());
        }
        let commands = std::mem::take(&mut self.commands);
        let arena = std::mem::take(&mut self.arena);
        let gpu = ctx
            .gpu_backend()
            .ok_or_else(|| Error::invalid("submit", "the GPU recorder ran on the CPU device"))?;
        let device = &gpu.device;

        // Grow the uniform arena's GPU buffer if this submit needs more.
        let need = (arena.len() as u64).max(256);
        if self.uniform.as_ref().is_none_or(|(_, _, cap)| *cap < need) {
            if let Some((old, _, _)) = self.uniform.take() {
                kernels.forget_arena(old);
            }
            let cap = need.next_power_of_two().max(64 * 1024);
            ctx.check_buffer_size("uniform arena", cap)?;
            let buffer = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("rims.uniform_arena"),
                size: cap,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            self.uniform = Some((self.next_arena_id, buffer, cap));
            self.next_arena_id += 1;
        }
        let (arena_id, arena_buf, _) = self.uniform.as_ref().expect("arena allocated above");
        let mut passes = 0;
        ctx.scoped("submit", || {
            if !arena.is_empty() {
                gpu.queue.write_buffer(arena_buf, 0, &arena);
            }
            let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("rims"),
            });
            let mut i = 0;
            while i < commands.len() {
                match &commands[i] {
                    Command::Dispatch { .. } => {
                        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                            label: Some("rims"),
                            timestamp_writes: None,
                        });
                        passes += 1;
                        while let Some(Command::Dispatch {
                            kernel,
                            buffers,
                            offset,
                            groups,
                        }) = commands.get(i)
                        {
                            let bufs: Vec<_> = buffers
                                .iter()
                                .map(|(b, off, size)| (b.id, b.gpu(), *off, *size))
                                .collect();
                            let bg = kernels.bind_group(
                                device,
                                kernel,
                                Some((*arena_id, arena_buf)),
                                &bufs,
                            );
                            let Exec::Gpu { pipeline, .. } = &kernel.exec else {
                                unreachable!("CPU kernels never reach the GPU recorder")
                            };
                            pass.set_pipeline(pipeline);
                            let offsets: &[u32] = if kernel.uniform.is_some() {
                                &[*offset]
                            } else {
                                &[]
                            };
                            pass.set_bind_group(0, &bg, offsets);
                            pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
                            i += 1;
                        }
                    }
                    Command::Copy {
                        src,
                        src_offset,
                        dst,
                        dst_offset,
                        bytes,
                    } => {
                        encoder.copy_buffer_to_buffer(
                            src.gpu(),
                            *src_offset,
                            dst.gpu(),
                            *dst_offset,
                            *bytes,
                        );
                        i += 1;
                    }
                    Command::ReadBack {
                        src,
                        src_offset,
                        staging,
                        bytes,
                    } => {
                        encoder.copy_buffer_to_buffer(src.gpu(), *src_offset, staging, 0, *bytes);
                        i += 1;
                    }
                }
            }
            gpu.queue.submit([encoder.finish()]);
        })?;
        self.stats.passes += passes;
        self.stats.submits += 1;
        // `commands` drops here: buffers go back to the pool, now that the queue orders any
        // later use after this submit.
        Ok(())
    }
}
