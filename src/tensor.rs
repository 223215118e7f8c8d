//! Device tensors: a pooled storage buffer (GPU memory, or host memory on the CPU device) with
//! a shape. Cloning a tensor shares its buffer.

use std::sync::Arc;

use crate::device::context::{Backend, Context, lock};
use crate::device::host::HostMemory;
use crate::device::pool::{BufferPool, PooledBuffer, Storage};
use crate::error::{Error, Result};
use crate::kernels::elementwise;

/// Element type of a tensor. Values are f32; class indices (targets) are u32.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    /// 32-bit float.
    F32,
    /// 32-bit unsigned integer (class indices).
    U32,
}

/// An f32 (or u32) tensor in device memory, row-major. A tensor may be a view into part of a
/// larger buffer (the parameter store carves every parameter out of one allocation); ops bind
/// exactly the view's range.
#[derive(Clone)]
pub struct Tensor {
    buf: Arc<PooledBuffer>,
    /// Start of the view in the buffer, in elements (a multiple of [`VIEW_ALIGN`]).
    offset: usize,
    shape: Vec<usize>,
    dtype: DType,
}

/// Views start at multiples of this many elements: 256 bytes, WebGPU's largest allowed
/// `min_storage_buffer_offset_alignment`, so a view can be bound on any adapter.
pub const VIEW_ALIGN: usize = 64;

/// Number of elements of `shape`, or an error if it overflows.
pub fn numel(shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::DeviceLimit {
            what: format!("tensor of shape {shape:?}"),
            requested: u64::MAX,
            limit: u64::MAX,
        })
}

impl Tensor {
    /// A tensor whose contents are unspecified (a reused buffer keeps old values). Ops use this
    /// for outputs they overwrite completely.
    pub fn uninit(ctx: &Context, shape: &[usize]) -> Result<Tensor> {
        Self::alloc(ctx, shape, DType::F32)
    }

    fn alloc(ctx: &Context, shape: &[usize], dtype: DType) -> Result<Tensor> {
        let n = numel(shape)?;
        let bytes = (n as u64)
            .checked_mul(4)
            .ok_or_else(|| Error::DeviceLimit {
                what: format!("tensor of shape {shape:?}"),
                requested: u64::MAX,
                limit: ctx.limits().max_buffer_size,
            })?;
        let what = format!("tensor of shape {shape:?}");
        ctx.check_buffer_size(&what, bytes)?;
        let buf = BufferPool::take(&ctx.pool, bytes, |class| match &ctx.backend {
            Backend::Cpu(_) => HostMemory::zeroed(&what, class).map(Storage::Host),
            Backend::Gpu(gpu) => ctx
                .scoped(&format!("allocating {what}"), || {
                    gpu.device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some("rims.pool"),
                        size: class,
                        usage: wgpu::BufferUsages::STORAGE
                            | wgpu::BufferUsages::COPY_SRC
                            | wgpu::BufferUsages::COPY_DST,
                        mapped_at_creation: false,
                    })
                })
                .map(Storage::Gpu),
        })?;
        Ok(Tensor {
            buf,
            offset: 0,
            shape: shape.to_vec(),
            dtype,
        })
    }

    /// Uploads `data` (row-major) as a tensor of `shape`.
    pub fn from_slice(ctx: &Context, shape: &[usize], data: &[f32]) -> Result<Tensor> {
        check_len("Tensor::from_slice", shape, data.len())?;
        let t = Self::alloc(ctx, shape, DType::F32)?;
        t.upload(ctx, bytemuck::cast_slice(data));
        Ok(t)
    }

    /// Uploads u32 values (class indices, for example).
    pub fn from_u32(ctx: &Context, shape: &[usize], data: &[u32]) -> Result<Tensor> {
        check_len("Tensor::from_u32", shape, data.len())?;
        let t = Self::alloc(ctx, shape, DType::U32)?;
        t.upload(ctx, data);
        Ok(t)
    }

    /// A tensor filled with `value` (recorded as a dispatch, like any op).
    pub fn full(ctx: &Context, shape: &[usize], value: f32) -> Result<Tensor> {
        let t = Self::alloc(ctx, shape, DType::F32)?;
        t.fill(ctx, value)?;
        Ok(t)
    }

    /// Sets every element to `value`: one dispatch of `elementwise.wgsl`'s `fill` (recorded).
    /// `ops::elementwise::fill` is this with its op's argument checks.
    pub fn fill(&self, ctx: &Context, value: f32) -> Result<()> {
        self.expect_dtype("fill", DType::F32)?;
        if self.is_empty() {
            return Ok(());
        }
        let n = u32::try_from(self.len()).map_err(|_| Error::DeviceLimit {
            what: format!("fill of {:?}", self.shape),
            requested: self.len() as u64,
            limit: u32::MAX as u64,
        })?;
        let kernel = ctx.kernel("elementwise", "fill", &[])?;
        let groups = crate::device::grid(ctx, "fill", (n as u64).div_ceil(elementwise::WG))?;
        let params = elementwise::Params {
            n,
            op: 0,
            alpha: value,
            b_len: 1,
        };
        ctx.dispatch(kernel, &params, &[self], groups)
    }

    /// A tensor of zeros.
    pub fn zeros(ctx: &Context, shape: &[usize]) -> Result<Tensor> {
        Self::full(ctx, shape, 0.0)
    }

    /// Overwrites the contents with `data`. Work recorded earlier is submitted first so that it
    /// sees the old contents.
    pub fn write(&self, ctx: &Context, data: &[f32]) -> Result<()> {
        check_len("Tensor::write", &self.shape, data.len())?;
        self.expect_dtype("Tensor::write", DType::F32)?;
        ctx.submit()?;
        self.upload(ctx, bytemuck::cast_slice(data));
        Ok(())
    }

    /// Writes `words` at the start of the view: queued before the next submit on a GPU, copied
    /// now (under the execution lock) on the CPU device.
    fn upload(&self, ctx: &Context, words: &[u32]) {
        match &ctx.backend {
            Backend::Gpu(gpu) => gpu.queue.write_buffer(
                self.buf.gpu(),
                self.byte_offset(),
                bytemuck::cast_slice(words),
            ),
            Backend::Cpu(_) => {
                let _order = lock(&ctx.recorder);
                self.host_words()[..words.len()].copy_from_slice(words);
            }
        }
    }

    /// The view's words in host memory (CPU device only). Callers hold the execution lock.
    #[allow(clippy::mut_from_ref)]
    fn host_words(&self) -> &mut [u32] {
        let mem = self.buf.host();
        assert!(
            self.offset + self.len() <= mem.words(),
            "view past its buffer"
        );
        // SAFETY: in bounds (asserted); callers hold the context's execution lock, so no
        // kernel or other copy touches the memory meanwhile.
        unsafe { std::slice::from_raw_parts_mut(mem.ptr().add(self.offset), self.len()) }
    }

    /// Copies `words` words from `src` (at word `src_off` of its view) to this view at word
    /// `dst_off`, on either device (recorded on a GPU).
    fn copy_words(
        &self,
        ctx: &Context,
        dst_off: usize,
        src: &Tensor,
        src_off: usize,
        words: usize,
    ) {
        match &ctx.backend {
            Backend::Gpu(_) => lock(&ctx.recorder).copy(
                src.buf.clone(),
                src.byte_offset() + (src_off * 4) as u64,
                self.buf.clone(),
                self.byte_offset() + (dst_off * 4) as u64,
                (words * 4) as u64,
            ),
            Backend::Cpu(_) => {
                if words == 0 {
                    return;
                }
                let mut rec = lock(&ctx.recorder);
                let (s, d) = (src.buf.host(), self.buf.host());
                let (s0, d0) = (src.offset + src_off, self.offset + dst_off);
                assert!(s0 + words <= s.words() && d0 + words <= d.words());
                // SAFETY: both ranges are in bounds (asserted; callers check the views); the
                // execution lock is held; `copy` allows overlap within one buffer.
                unsafe { std::ptr::copy(s.ptr().add(s0), d.ptr().add(d0), words) };
                rec.count_host_copy();
            }
        }
    }

    /// Submits pending work, waits for it, and reads the tensor back.
    pub fn to_vec(&self, ctx: &Context) -> Result<Vec<f32>> {
        let mut out = vec![0.0f32; self.len()];
        self.read_into(ctx, &mut out)?;
        Ok(out)
    }

    /// Reads several f32 tensors back at once, each as its own vector: copies into one packed
    /// tensor are recorded, then one read-back waits for them. On a GPU every read-back is a
    /// submit, a wait for the queue and a mapped buffer, so a loop that needs several small
    /// results per step (an agent's action, a step's statistics) pays that once, not per tensor.
    pub fn read_many(ctx: &Context, tensors: &[&Tensor]) -> Result<Vec<Vec<f32>>> {
        for t in tensors {
            t.expect_dtype("Tensor::read_many", DType::F32)?;
        }
        let total = tensors
            .iter()
            .try_fold(0usize, |n, t| n.checked_add(t.len()));
        let total = total.ok_or_else(|| Error::shape("Tensor::read_many", "too many values"))?;
        if total == 0 {
            return Ok(tensors.iter().map(|_| Vec::new()).collect());
        }
        let packed = Self::uninit(ctx, &[total])?;
        let mut offset = 0;
        for t in tensors {
            packed.copy_from(ctx, t, offset)?;
            offset += t.len();
        }
        let all = packed.to_vec(ctx)?;
        let mut rest = &all[..];
        Ok(tensors
            .iter()
            .map(|t| {
                let (mine, after) = rest.split_at(t.len());
                rest = after;
                mine.to_vec()
            })
            .collect())
    }

    /// Reads back a u32 tensor.
    pub fn to_vec_u32(&self, ctx: &Context) -> Result<Vec<u32>> {
        self.expect_dtype("Tensor::to_vec_u32", DType::U32)?;
        let mut out = vec![0u32; self.len()];
        self.read_words(ctx, &mut out)?;
        Ok(out)
    }

    /// Submits pending work, waits for it, and reads the f32 tensor into `out` (exactly
    /// [`Tensor::len`] values): one copy, into memory the caller owns (a numpy array, a reused
    /// buffer), where [`Tensor::to_vec`] allocates.
    pub fn read_into(&self, ctx: &Context, out: &mut [f32]) -> Result<()> {
        self.expect_dtype("Tensor::read_into", DType::F32)?;
        if out.len() != self.len() {
            return Err(Error::shape(
                "Tensor::read_into",
                format!("{} values into {} places", self.len(), out.len()),
            ));
        }
        self.read_words(ctx, bytemuck::cast_slice_mut(out))
    }

    fn read_words(&self, ctx: &Context, out: &mut [u32]) -> Result<()> {
        let bytes = (self.len() * 4) as u64;
        if bytes == 0 {
            return Ok(());
        }
        let gpu = match &ctx.backend {
            Backend::Gpu(gpu) => gpu,
            Backend::Cpu(_) => {
                ctx.submit()?; // counted as on a GPU, where a read-back submits
                let _order = lock(&ctx.recorder);
                out.copy_from_slice(self.host_words());
                return Ok(());
            }
        };
        let mut cached = lock(&gpu.staging);
        let staging = match cached.take() {
            Some(b) if b.size() >= bytes => b,
            _ => gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("rims.readback"),
                size: bytes.next_power_of_two().max(4096),
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
        };
        self.read_through(ctx, &staging, bytes, bytemuck::cast_slice_mut(out))?;
        // Only a buffer that was read and unmapped cleanly goes back to the cache.
        *cached = Some(staging);
        Ok(())
    }

    fn read_through(
        &self,
        ctx: &Context,
        staging: &wgpu::Buffer,
        bytes: u64,
        out: &mut [u8],
    ) -> Result<()> {
        let gpu_err = |message: String| Error::Gpu {
            during: "read-back".into(),
            message,
        };
        lock(&ctx.recorder).read_back(self.buf.clone(), self.byte_offset(), staging.clone(), bytes);
        ctx.submit()?;
        let gpu = ctx.gpu_backend().expect("read_through runs on a GPU");
        let slice = staging.slice(..bytes);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        gpu.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| gpu_err(e.to_string()))?;
        match rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(gpu_err(e.to_string())),
            Err(_) => return Err(gpu_err("map callback never ran".into())),
        }
        ctx.check_uncaptured("read-back")?;
        out.copy_from_slice(
            &slice
                .get_mapped_range()
                .map_err(|e| gpu_err(format!("{e:?}")))?,
        );
        staging.unmap();
        Ok(())
    }

    /// Records a copy of all of `src` into this tensor starting at element `offset`.
    pub fn copy_from(&self, ctx: &Context, src: &Tensor, offset: usize) -> Result<()> {
        if offset
            .checked_add(src.len())
            .is_none_or(|end| end > self.len())
        {
            return Err(Error::shape(
                "copy_from",
                format!(
                    "{:?} at offset {offset} does not fit in {:?}",
                    src.shape(),
                    self.shape
                ),
            ));
        }
        self.copy_words(ctx, offset, src, 0, src.len());
        Ok(())
    }

    /// Records a copy of `len` elements of this tensor from element `offset` into a new tensor
    /// of `shape`.
    pub fn slice_copy(&self, ctx: &Context, offset: usize, shape: &[usize]) -> Result<Tensor> {
        let n = numel(shape)?;
        if offset.checked_add(n).is_none_or(|end| end > self.len()) {
            return Err(Error::shape(
                "slice_copy",
                format!("{shape:?} at {offset} is outside {:?}", self.shape),
            ));
        }
        let out = Self::alloc(ctx, shape, self.dtype)?;
        out.copy_words(ctx, 0, self, offset, n);
        Ok(out)
    }

    /// A new tensor with the same contents (a recorded buffer copy).
    pub fn duplicate(&self, ctx: &Context) -> Result<Tensor> {
        let out = Self::alloc(ctx, &self.shape, self.dtype)?;
        out.copy_words(ctx, 0, self, 0, self.len());
        Ok(out)
    }

    /// The same buffer viewed with another shape of the same size.
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        if numel(shape)? != self.len() {
            return Err(Error::shape(
                "reshape",
                format!("{:?} ({} elements) to {shape:?}", self.shape, self.len()),
            ));
        }
        Ok(Tensor {
            buf: self.buf.clone(),
            offset: self.offset,
            shape: shape.to_vec(),
            dtype: self.dtype,
        })
    }

    /// A view of `shape` starting `offset` elements into this tensor (a multiple of
    /// [`VIEW_ALIGN`]), sharing its buffer.
    pub fn view(&self, offset: usize, shape: &[usize]) -> Result<Tensor> {
        let n = numel(shape)?;
        if !offset.is_multiple_of(VIEW_ALIGN) {
            return Err(Error::invalid(
                "view",
                format!("offset {offset} is not a multiple of {VIEW_ALIGN} elements"),
            ));
        }
        if offset.checked_add(n).is_none_or(|end| end > self.len()) {
            return Err(Error::shape(
                "view",
                format!(
                    "{shape:?} at offset {offset} does not fit in {:?} ({} elements)",
                    self.shape,
                    self.len()
                ),
            ));
        }
        Ok(Tensor {
            buf: self.buf.clone(),
            offset: self.offset + offset,
            shape: shape.to_vec(),
            dtype: self.dtype,
        })
    }

    /// Start of the view in its buffer, in bytes.
    pub(crate) fn byte_offset(&self) -> u64 {
        (self.offset * 4) as u64
    }

    /// Dimensions, outermost first (row-major).
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether two tensors share one buffer. wgpu tracks usage per buffer, not per range, so
    /// one dispatch may not write a buffer it also reads, even through disjoint views.
    pub fn same_buffer(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.buf, &other.buf)
    }

    /// Errors unless the tensor has the expected element type.
    pub fn expect_dtype(&self, op: &'static str, dtype: DType) -> Result<()> {
        if self.dtype != dtype {
            return Err(Error::invalid(
                op,
                format!("expected a {dtype:?} tensor, got {:?}", self.dtype),
            ));
        }
        Ok(())
    }

    /// Errors if the tensor has no elements.
    pub fn expect_nonempty(&self, op: &'static str, what: &str) -> Result<()> {
        if self.is_empty() {
            return Err(Error::Empty {
                op,
                what: format!("{what} {:?}", self.shape),
            });
        }
        Ok(())
    }
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor({:?}, {:?})", self.dtype, self.shape)
    }
}

fn check_len(op: &'static str, shape: &[usize], len: usize) -> Result<()> {
    let n = numel(shape)?;
    if n != len {
        return Err(Error::shape(
            op,
            format!("shape {shape:?} has {n} elements but {len} values were given"),
        ));
    }
    Ok(())
}

impl crate::device::StorageView for Tensor {
    fn storage(&self) -> &Arc<PooledBuffer> {
        &self.buf
    }

    fn offset(&self) -> usize {
        self.offset
    }

    fn len(&self) -> usize {
        Tensor::len(self)
    }
}
