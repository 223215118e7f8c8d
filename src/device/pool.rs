//! Buffer pool: storage buffers (GPU buffers, or host memory on the CPU device) are reused by
//! size class so that a training loop reaches a steady state after its first step and never
//! allocates again. Creating a buffer on the software device costs milliseconds (it is
//! zero-filled), so reuse matters.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::device::context::lock;
use crate::device::host::HostMemory;
use crate::error::Result;

/// Smallest buffer we hand out, in bytes (also keeps every size a multiple of 16 for vec4 access).
const MIN_CLASS: u64 = 256;

/// Rounds a byte size up to its size class: four classes per power of two, so at most 25%
/// of a buffer is slack.
pub fn size_class(bytes: u64) -> u64 {
    let bytes = bytes.max(MIN_CLASS);
    let top = 63 - (bytes - 1).leading_zeros() as u64; // 2^top < bytes <= 2^(top+1) for non-powers
    let pow = 1u64 << top;
    if pow == bytes {
        return bytes;
    }
    let quarter = pow / 4;
    bytes.div_ceil(quarter) * quarter
}

/// Counters a test or benchmark can read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Bytes of all buffers ever created by the pool.
    pub bytes_allocated: u64,
    /// Bytes currently held by live tensors.
    pub bytes_live: u64,
    /// Bytes sitting in the free lists, ready for reuse.
    pub bytes_free: u64,
    /// Buffers created.
    pub allocations: u64,
    /// Requests served from a free list.
    pub reuses: u64,
}

/// The pool's bookkeeping; buffers come back to it when their last handle drops.
pub struct BufferPool {
    /// Free buffers by size class, each with its id (kept across loans so cached bind groups hit).
    free: HashMap<u64, Vec<(u64, Storage)>>,
    stats: PoolStats,
}

static NEXT_BUFFER_ID: AtomicU64 = AtomicU64::new(1);

/// The memory behind a pooled buffer.
pub(crate) enum Storage {
    /// A wgpu storage buffer.
    Gpu(wgpu::Buffer),
    /// Host memory of the CPU device.
    Host(HostMemory),
}

/// A storage buffer on loan from the pool. Dropping the last `Arc` returns it.
pub struct PooledBuffer {
    storage: Option<Storage>,
    /// Unique per wgpu buffer for the process; keys the bind-group cache.
    pub(crate) id: u64,
    class: u64,
    pool: Arc<Mutex<BufferPool>>,
}

impl PooledBuffer {
    /// The wgpu buffer (GPU contexts only: a tensor never reaches a context of another kind).
    pub(crate) fn gpu(&self) -> &wgpu::Buffer {
        match self.storage.as_ref() {
            Some(Storage::Gpu(b)) => b,
            _ => panic!("a host buffer reached the GPU backend"),
        }
    }

    /// The host memory (CPU contexts only).
    pub(crate) fn host(&self) -> &HostMemory {
        match self.storage.as_ref() {
            Some(Storage::Host(h)) => h,
            _ => panic!("a GPU buffer reached the CPU backend"),
        }
    }

    /// Size of the underlying buffer (the size class), in bytes.
    pub fn capacity(&self) -> u64 {
        self.class
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        let mut pool = lock(&self.pool);
        pool.stats.bytes_live -= self.class;
        pool.stats.bytes_free += self.class;
        pool.free.entry(self.class).or_default().push((
            self.id,
            self.storage.take().expect("storage present until drop"),
        ));
    }
}

impl BufferPool {
    /// An empty pool with zeroed counters; buffers are created on first request.
    pub fn new() -> Self {
        BufferPool {
            free: HashMap::new(),
            stats: PoolStats::default(),
        }
    }

    /// A snapshot of the pool's counters.
    pub fn stats(&self) -> PoolStats {
        self.stats
    }

    /// Takes a buffer of at least `bytes` from the free list or creates one with `create`
    /// (given the size class). Its contents are whatever the last user left (fresh buffers
    /// are zero).
    pub(crate) fn take(
        pool: &Arc<Mutex<BufferPool>>,
        bytes: u64,
        create: impl FnOnce(u64) -> Result<Storage>,
    ) -> Result<Arc<PooledBuffer>> {
        let class = size_class(bytes);
        let mut guard = lock(pool);
        let reused = guard.free.get_mut(&class).and_then(|v| v.pop());
        let (id, buffer) = match reused {
            Some(b) => {
                guard.stats.reuses += 1;
                guard.stats.bytes_free -= class;
                b
            }
            None => {
                drop(guard); // creating can take a while; others may use the pool meanwhile
                let storage = create(class)?;
                guard = lock(pool);
                guard.stats.allocations += 1;
                guard.stats.bytes_allocated += class;
                (NEXT_BUFFER_ID.fetch_add(1, Ordering::Relaxed), storage)
            }
        };
        guard.stats.bytes_live += class;
        drop(guard);
        Ok(Arc::new(PooledBuffer {
            storage: Some(buffer),
            id,
            class,
            pool: pool.clone(),
        }))
    }
}

impl Default for BufferPool {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::size_class;

    #[test]
    fn size_classes_round_up_by_at_most_a_quarter() {
        assert_eq!(size_class(1), 256);
        assert_eq!(size_class(256), 256);
        assert_eq!(size_class(257), 320);
        assert_eq!(size_class(512), 512);
        assert_eq!(size_class(513), 640);
        assert_eq!(size_class(1000), 1024);
        assert_eq!(size_class(1025), 1280);
        for b in [300u64, 4097, 100_000, 12_345_678] {
            let c = size_class(b);
            assert!(c >= b && (c as f64) <= b as f64 * 1.25 + 64.0, "{b} -> {c}");
            assert_eq!(c % 16, 0);
        }
    }
}
