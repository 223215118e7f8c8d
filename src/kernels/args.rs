//! What a CPU twin receives for one dispatch: the op's parameter struct as bytes, the
//! workgroup grid the op asked for, and its storage bindings as host slices, in binding order
//! (the same order the WGSL entry point declares them, read from the shader by reflection).
//!
//! The device checks before a twin runs that every writable binding overlaps no other binding,
//! so handing out `&mut [f32]` for it is sound; a twin asks for each writable binding once.

use std::cell::Cell;
use std::marker::PhantomData;
use std::ops::Range;

use super::split::{self, Plan, SplitPolicy};

/// One storage binding: `len` 32-bit words at `ptr`.
#[derive(Clone, Copy, Debug)]
pub struct Binding {
    /// First word of the bound range.
    pub ptr: *mut u32,
    /// Words in the range.
    pub len: usize,
    /// Whether the shader declares it `read_write`.
    pub writable: bool,
}

/// Storage bindings one dispatch may have (WebGPU guarantees 8 per stage; the engine's widest
/// entry point binds 9, see `max_storage_buffers_per_shader_stage` in the device layer).
pub const MAX_BINDINGS: usize = 16;

/// The arguments of one CPU dispatch. See the module docs.
pub struct KernelArgs<'a> {
    params: &'a [u8],
    groups: [u32; 3],
    bindings: &'a [Binding],
    /// Bit i set once writable binding i has been handed out.
    taken: Cell<u64>,
    team: &'a super::Team,
    /// The dispatch's kernel, which the split policy's choices are kept by.
    label: &'a str,
    split: &'a SplitPolicy,
    /// The work last given to [`KernelArgs::parallel`]: the size of the loop about to run.
    work: Cell<usize>,
    _slices: PhantomData<&'a mut [u32]>,
}

impl<'a> KernelArgs<'a> {
    /// Wraps a dispatch's arguments.
    ///
    /// # Safety
    /// Every binding must point to `len` valid, initialised words that stay alive and are
    /// touched by nobody else for `'a`, and no writable binding may overlap another binding.
    pub unsafe fn new(
        params: &'a [u8],
        groups: [u32; 3],
        bindings: &'a [Binding],
        team: &'a super::Team,
        label: &'a str,
        split: &'a SplitPolicy,
    ) -> Self {
        assert!(
            bindings.len() <= MAX_BINDINGS,
            "at most {MAX_BINDINGS} bindings per dispatch"
        );
        KernelArgs {
            params,
            groups,
            bindings,
            taken: Cell::new(0),
            team,
            label,
            split,
            work: Cell::new(0),
            _slices: PhantomData,
        }
    }

    /// The op's parameter struct (the same `#[repr(C)]` type the op wrapper filled).
    pub fn params<P: bytemuck::Pod>(&self) -> P {
        bytemuck::pod_read_unaligned(&self.params[..std::mem::size_of::<P>()])
    }

    /// The workgroup grid the op dispatched (a few twins, such as partial sums, depend on it).
    pub fn groups(&self) -> [u32; 3] {
        self.groups
    }

    /// Number of storage bindings.
    pub fn len(&self) -> usize {
        self.bindings.len()
    }

    /// Whether the dispatch binds no storage at all.
    pub fn is_empty(&self) -> bool {
        self.bindings.is_empty()
    }

    fn binding(&self, i: usize) -> Binding {
        *self
            .bindings
            .get(i)
            .unwrap_or_else(|| panic!("binding {i} of {}", self.bindings.len()))
    }

    /// Read-only binding `i` as f32.
    pub fn read(&self, i: usize) -> &'a [f32] {
        bytemuck::cast_slice(self.read_u32(i))
    }

    /// Read-only binding `i` as u32 (class indices, token ids).
    pub fn read_u32(&self, i: usize) -> &'a [u32] {
        let b = self.binding(i);
        assert!(
            !b.writable,
            "binding {i} is read_write: take it with write()"
        );
        // SAFETY: `new`'s contract: valid for 'a, and no writable binding overlaps it.
        unsafe { std::slice::from_raw_parts(b.ptr, b.len) }
    }

    /// Writable binding `i` as f32; each writable binding may be taken once per dispatch.
    pub fn write(&self, i: usize) -> &'a mut [f32] {
        bytemuck::cast_slice_mut(self.write_u32(i))
    }

    /// Writable binding `i` as u32.
    pub fn write_u32(&self, i: usize) -> &'a mut [u32] {
        let b = self.binding(i);
        assert!(b.writable, "binding {i} is read-only");
        let bit = 1u64 << i;
        assert!(self.taken.get() & bit == 0, "binding {i} was already taken");
        self.taken.set(self.taken.get() | bit);
        // SAFETY: `new`'s contract (nothing else overlaps it) and the bit above (handed out once).
        unsafe { std::slice::from_raw_parts_mut(b.ptr, b.len) }
    }

    /// Read-only bindings `ids` as f32, so a twin names its inputs in one line:
    /// `let [x, w] = args.reads([0, 1]);`.
    pub fn reads<const N: usize>(&self, ids: [usize; N]) -> [&'a [f32]; N] {
        ids.map(|i| self.read(i))
    }

    /// Writable bindings `ids` as f32 (each taken once, as by [`KernelArgs::write`]).
    pub fn writes<const N: usize>(&self, ids: [usize; N]) -> [&'a mut [f32]; N] {
        ids.map(|i| self.write(i))
    }

    /// Words `range` of writable binding `i`, cut into rows of `row_len` for the iterations
    /// of [`par_for`] (what most twins do with each output).
    pub fn rows(&self, i: usize, range: Range<usize>, row_len: usize) -> Rows<'a, f32> {
        Rows::new(&mut self.write(i)[range], row_len)
    }

    /// Threads of the device's team.
    pub fn threads(&self) -> usize {
        self.team.threads()
    }

    /// Whether a loop of `work` (multiply-adds or element visits) may be split over the team:
    /// false for small work or one thread. The loop that follows ([`par_for`]) then asks the
    /// device's [`SplitPolicy`] whether splitting a loop of this size pays for this kernel.
    pub fn parallel(&self, work: usize) -> bool {
        self.work.set(work);
        self.threads() > 1 && work >= split::NEVER_BELOW
    }
}

/// Runs `body(i)` for every i < n: when `parallel` (from [`KernelArgs::parallel`], called for
/// this loop), split over the team if the device's [`SplitPolicy`] finds it pays for this kernel
/// and size; in order on the calling thread otherwise. Each i runs exactly once, and twins
/// compute every output element from one i in a fixed order, so results do not depend on the
/// thread count.
pub fn par_for(
    args: &KernelArgs<'_>,
    parallel: bool,
    n: usize,
    body: impl Fn(usize) + Sync + Send,
) {
    if !parallel || n < 2 {
        return (0..n).for_each(body);
    }
    match args.split.plan(args.label, args.work.get(), args.threads()) {
        Plan::Decided(true) => args.team.run(n, &body),
        Plan::Decided(false) => (0..n).for_each(body),
        Plan::Measure { split, key } => {
            let started = std::time::Instant::now();
            if split {
                args.team.run(n, &body);
            } else {
                (0..n).for_each(&body);
            }
            args.split.record(key, split, started);
        }
    }
}

/// A writable slice cut into rows of `row_len` that the iterations of [`par_for`] fill,
/// each its own rows.
pub struct Rows<'a, T> {
    ptr: *mut T,
    len: usize,
    row_len: usize,
    _slice: PhantomData<&'a mut [T]>,
}

// SAFETY: `Rows` hands out disjoint rows only (see `row`); T itself must be Send.
unsafe impl<T: Send> Send for Rows<'_, T> {}
unsafe impl<T: Send> Sync for Rows<'_, T> {}

impl<'a, T> Rows<'a, T> {
    /// Cuts `slice` into rows of `row_len` (the last may be short).
    pub fn new(slice: &'a mut [T], row_len: usize) -> Self {
        Rows {
            ptr: slice.as_mut_ptr(),
            len: slice.len(),
            row_len: row_len.max(1),
            _slice: PhantomData,
        }
    }

    /// Row `r`, or the rows `r * rows_per .. (r + 1) * rows_per` with [`Rows::span`].
    ///
    /// # Safety
    /// No two live borrows may cover the same row: call it at most once per row, e.g. from the
    /// iteration of [`par_for`] that owns row `r`.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn row(&self, r: usize) -> &'a mut [T] {
        unsafe { self.span(r, 1) }
    }

    /// `count` consecutive rows starting at row `first`, as one slice.
    ///
    /// # Safety
    /// As for [`Rows::row`]: the rows must not be borrowed elsewhere at the same time.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn span(&self, first: usize, count: usize) -> &'a mut [T] {
        let start = (first * self.row_len).min(self.len);
        let end = ((first + count) * self.row_len).min(self.len);
        // SAFETY: in bounds by the clamps; disjointness is the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), end - start) }
    }
}
