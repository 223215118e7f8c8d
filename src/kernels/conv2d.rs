//! CPU twin of `shaders/conv2d.wgsl`: 2-D convolution (NCHW, f32) and its three gradients.
//! Wrapper: `ops::conv2d`; oracle: `reference::conv2d`.
//!
//! Where the WGSL loops directly, the twin lowers each image to a product (im2col): the
//! windows of one image are copied into a [C_in·KH·KW, positions] matrix, and forward, the
//! input gradient and the weight gradient are products of it through the `gemm` crate. On the
//! encoder's shapes (4×4 kernels, stride 2, 1→16→32→64 channels, 512 frames) this ran
//! 30–70× faster than the WGSL's direct loops written in Rust (split over images and weight
//! rows the same way), in back-to-back runs of `cargo bench --bench engine -- conv2d` on a
//! shared 2-core AVX-512 machine: forward 39–94 GFLOP/s against 1.2–1.4, backward (dx, dw,
//! db) 34–35 against 0.5. The windows are copied a chunk of output rows at a time into a
//! scratch each thread keeps (about 1 MiB, `SCRATCH_FLOATS`, for sane shapes), so no dispatch
//! allocates once a thread has seen the largest chunk. It is not a pool-allocated binding
//! because the device binds only what the WGSL entry point uses (naga reflection): the
//! shaders would have to touch a buffer they do not need, and the GPU hold it for nothing.
//!
//! Determinism: forward and the input gradient are split over images, the weight gradient over
//! fixed column blocks of the weight (never over the images its sums run over); the chunking
//! depends only on the shapes, so every element is computed the same way on any thread count.

use std::cell::RefCell;
use std::ops::Range;

use crate::kernels::{CpuKernel, KernelArgs, par_for};

/// The uniform struct of `conv2d.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    /// Images.
    pub n: u32,
    /// Input channels.
    pub c_in: u32,
    /// Input height.
    pub h: u32,
    /// Input width.
    pub w: u32,
    /// Output channels.
    pub c_out: u32,
    /// Kernel height.
    pub kh: u32,
    /// Kernel width.
    pub kw: u32,
    /// Step between windows (≥ 1).
    pub stride: u32,
    /// Zero rows above and zero columns left of the input (those after only set h_out, w_out).
    pub pad: u32,
    /// Output height.
    pub h_out: u32,
    /// Output width.
    pub w_out: u32,
    /// [`FLAG_BIAS`] or 0.
    pub flags: u32,
}

/// Forward adds the bias.
pub const FLAG_BIAS: u32 = 1;

/// Threads per workgroup in `conv2d.wgsl` (`WG` there).
pub const WG: u64 = 256;

/// Floats of im2col scratch a chunk of output rows aims at (1 MiB: it stays in L2 with the
/// product's panels). A single output row of windows may exceed it; then that is the chunk.
const SCRATCH_FLOATS: usize = 1 << 18;

/// Most column blocks the weight gradient is cut into (its work split over the team).
const WEIGHT_PARTS: usize = 8;
/// Fewest columns of a weight-gradient block: narrower products waste the `gemm` kernels (8
/// splits the encoder's first layer, 16 columns, in two: 38 → 47 GFLOP/s on two threads).
/// Putting several small images side by side so each product sums over more positions was
/// tried and gained under 10% on 8×8 outputs; not kept.
const MIN_WEIGHT_COLS: usize = 8;

/// The twin of each entry point.
pub fn twin(entry: &str) -> Option<CpuKernel> {
    Some(match entry {
        "forward" => forward,
        "backward_input" => backward_input,
        "backward_weight" => backward_weight,
        "backward_bias" => backward_bias,
        _ => return None,
    })
}

/// The sizes of one dispatch, as indices.
#[derive(Clone, Copy)]
struct Geom {
    n: usize,
    c_in: usize,
    h: usize,
    w: usize,
    c_out: usize,
    kh: usize,
    kw: usize,
    stride: usize,
    pad: usize,
    h_out: usize,
    w_out: usize,
}

impl Geom {
    fn of(p: &Params) -> Self {
        Geom {
            n: p.n as usize,
            c_in: p.c_in as usize,
            h: p.h as usize,
            w: p.w as usize,
            c_out: p.c_out as usize,
            kh: p.kh as usize,
            kw: p.kw as usize,
            stride: p.stride.max(1) as usize,
            pad: p.pad as usize,
            h_out: p.h_out as usize,
            w_out: p.w_out as usize,
        }
    }

    /// Elements of one input image.
    fn image(&self) -> usize {
        self.c_in * self.h * self.w
    }

    /// Output positions of one channel.
    fn positions(&self) -> usize {
        self.h_out * self.w_out
    }

    /// Rows of the window matrix: C_in·KH·KW.
    fn taps(&self) -> usize {
        self.c_in * self.kh * self.kw
    }

    /// Output rows per chunk when `taps` window rows are copied at a time.
    fn chunk_rows(&self, taps: usize) -> usize {
        (SCRATCH_FLOATS / (taps * self.w_out).max(1)).clamp(1, self.h_out.max(1))
    }

    /// The chunks of output rows, in order.
    fn chunks(&self, taps: usize) -> impl Iterator<Item = Range<usize>> + '_ {
        let rows = self.chunk_rows(taps);
        (0..self.h_out)
            .step_by(rows)
            .map(move |r| r..(r + rows).min(self.h_out))
    }

    /// Window row `tap` as (input channel, ky, kx).
    fn tap(&self, tap: usize) -> (usize, usize, usize) {
        (
            tap / (self.kh * self.kw),
            (tap / self.kw) % self.kh,
            tap % self.kw,
        )
    }

    /// The input row output row `oh` reads at kernel row `ky`, if inside the input.
    fn input_row(&self, oh: usize, ky: usize) -> Option<usize> {
        (oh * self.stride + ky)
            .checked_sub(self.pad)
            .filter(|&r| r < self.h)
    }

    /// The output columns whose kernel column `kx` falls inside the input, and the input
    /// column of the first one.
    fn inside_columns(&self, kx: usize) -> (Range<usize>, usize) {
        let s = self.stride;
        // First ow with ow·s + kx ≥ pad, and the end of those with ow·s + kx − pad < w.
        let lo = self.pad.saturating_sub(kx).div_ceil(s);
        let hi = (self.w + self.pad)
            .saturating_sub(kx)
            .div_ceil(s)
            .min(self.w_out);
        let lo = lo.min(hi);
        (lo..hi, (lo * s + kx).saturating_sub(self.pad))
    }
}

thread_local! {
    /// Each thread's window matrix, grown to the largest chunk it has seen and then reused.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on `len` floats of this thread's scratch (contents unspecified).
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < len {
            s.resize(len, 0.0);
        }
        f(&mut s[..len])
    })
}

/// Copies window rows `taps` of output rows `rows` of one image `x` [C_in, H, W] into `col`
/// [taps, rows·W_out], zeros where a window reaches the padding.
fn im2col(g: &Geom, x: &[f32], taps: Range<usize>, rows: Range<usize>, col: &mut [f32]) {
    let width = rows.len() * g.w_out;
    for (t, tap) in taps.enumerate() {
        let (ci, ky, kx) = g.tap(tap);
        let plane = &x[ci * g.h * g.w..(ci + 1) * g.h * g.w];
        let (inside, first) = g.inside_columns(kx);
        let out = &mut col[t * width..(t + 1) * width];
        for (r, oh) in rows.clone().enumerate() {
            let dst = &mut out[r * g.w_out..(r + 1) * g.w_out];
            let Some(ih) = g.input_row(oh, ky).filter(|_| !inside.is_empty()) else {
                dst.fill(0.0);
                continue;
            };
            let src = &plane[ih * g.w + first..(ih + 1) * g.w];
            dst[..inside.start].fill(0.0);
            dst[inside.end..].fill(0.0);
            let dst = &mut dst[inside.clone()];
            if g.stride == 1 {
                dst.copy_from_slice(&src[..dst.len()]);
            } else {
                dst.iter_mut()
                    .zip(src.iter().step_by(g.stride))
                    .for_each(|(d, &s)| *d = s);
            }
        }
    }
}

/// Adds the window matrix `col` [C_in·KH·KW, rows·W_out] of output rows `rows` back onto the
/// input positions it was copied from, in `dx` [C_in, H, W]: rows of `col` in order, then
/// positions in order.
fn col2im(g: &Geom, col: &[f32], rows: Range<usize>, dx: &mut [f32]) {
    let width = rows.len() * g.w_out;
    for tap in 0..g.taps() {
        let (ci, ky, kx) = g.tap(tap);
        let plane = &mut dx[ci * g.h * g.w..(ci + 1) * g.h * g.w];
        let (inside, first) = g.inside_columns(kx);
        let src = &col[tap * width..(tap + 1) * width];
        for (r, oh) in rows.clone().enumerate() {
            let Some(ih) = g.input_row(oh, ky).filter(|_| !inside.is_empty()) else {
                continue;
            };
            let from = &src[r * g.w_out..(r + 1) * g.w_out][inside.clone()];
            let to = &mut plane[ih * g.w + first..(ih + 1) * g.w];
            to.iter_mut()
                .step_by(g.stride)
                .zip(from)
                .for_each(|(d, &s)| *d += s);
        }
    }
}

/// A matrix operand of [`product`]: its elements and (row, column) strides.
struct Mat<'a> {
    data: &'a [f32],
    rs: usize,
    cs: usize,
}

/// A destination matrix some other iteration's matrix may interleave with (the weight
/// gradient's column blocks): where it starts, and the end of the buffer it lies in.
#[derive(Clone, Copy)]
struct Dst {
    ptr: *mut f32,
    len: usize,
    /// Row stride.
    rs: usize,
}
// SAFETY: only used to reach disjoint elements from par_for iterations (see backward_weight).
unsafe impl Send for Dst {}
unsafe impl Sync for Dst {}

impl Dst {
    fn of(slice: &mut [f32], rs: usize) -> Self {
        Dst {
            ptr: slice.as_mut_ptr(),
            len: slice.len(),
            rs,
        }
    }
}

/// `dst` (m × n, unit column stride) = a·b, or += a·b when `accumulate`, through `gemm` on
/// the calling thread; `[m, n, k]` are `dims`.
///
/// # Safety
/// No other live reference may touch the m × n elements of `dst` during the call.
unsafe fn product(dims: [usize; 3], dst: Dst, accumulate: bool, a: Mat, b: Mat) {
    let [m, n, k] = dims;
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    // A bad parameter struct panics here rather than reading or writing out of bounds.
    assert!(
        (m - 1) * dst.rs + n - 1 < dst.len,
        "conv2d twin: destination"
    );
    assert!(
        (m - 1) * a.rs + (k - 1) * a.cs < a.data.len(),
        "conv2d twin: A"
    );
    assert!(
        (k - 1) * b.rs + (n - 1) * b.cs < b.data.len(),
        "conv2d twin: B"
    );
    // SAFETY: in bounds by the asserts; the destination is this call's (the caller's
    // contract) and overlaps neither operand (the device refuses overlapping writable bindings,
    // and the scratch is this thread's).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.ptr,
            1,
            dst.rs as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Bindings: x, weight, bias, y.
fn forward(args: &KernelArgs<'_>) {
    let p: Params = args.params();
    let g = Geom::of(&p);
    let [x, w, bias] = args.reads([0, 1, 2]);
    let bias = (p.flags & FLAG_BIAS != 0).then(|| &bias[..g.c_out]);
    let out_image = g.c_out * g.positions();
    let y = args.rows(3, 0..g.n * out_image, out_image);
    let work = g.n * out_image * g.taps();
    par_for(args, args.parallel(work), g.n, |n| {
        // SAFETY: par_for visits each image once.
        let y = unsafe { y.row(n) };
        forward_image(&g, &x[n * g.image()..(n + 1) * g.image()], w, bias, y);
    });
}

/// y [C_out, positions] of one image: W [C_out, taps] times the windows, a chunk of output
/// rows at a time, onto the bias.
fn forward_image(g: &Geom, x: &[f32], w: &[f32], bias: Option<&[f32]>, y: &mut [f32]) {
    let (taps, positions) = (g.taps(), g.positions());
    with_scratch(taps * g.chunk_rows(taps) * g.w_out, |col| {
        for rows in g.chunks(taps) {
            let (first, width) = (rows.start * g.w_out, rows.len() * g.w_out);
            im2col(g, x, 0..taps, rows, col);
            if let Some(bias) = bias {
                for (co, &b) in bias.iter().enumerate() {
                    y[co * positions + first..][..width].fill(b);
                }
            }
            let a = Mat {
                data: w,
                rs: taps,
                cs: 1,
            };
            let b = Mat {
                data: col,
                rs: width,
                cs: 1,
            };
            // SAFETY: y is this image's, borrowed mutably here only.
            unsafe {
                let dst = Dst::of(&mut y[first..], positions);
                product([g.c_out, width, taps], dst, bias.is_some(), a, b);
            }
        }
    });
}

/// Bindings: weight, dy, dx.
fn backward_input(args: &KernelArgs<'_>) {
    let p: Params = args.params();
    let g = Geom::of(&p);
    let [w, dy] = args.reads([0, 1]);
    let out_image = g.c_out * g.positions();
    let dx = args.rows(2, 0..g.n * g.image(), g.image());
    let work = g.n * out_image * g.taps();
    par_for(args, args.parallel(work), g.n, |n| {
        // SAFETY: par_for visits each image once.
        let dx = unsafe { dx.row(n) };
        backward_input_image(&g, w, &dy[n * out_image..(n + 1) * out_image], dx);
    });
}

/// dx [C_in, H, W] of one image: the windows' gradient Wᵀ·dy, a chunk of output rows at a
/// time, added back where each window came from.
fn backward_input_image(g: &Geom, w: &[f32], dy: &[f32], dx: &mut [f32]) {
    let (taps, positions) = (g.taps(), g.positions());
    dx.fill(0.0);
    with_scratch(taps * g.chunk_rows(taps) * g.w_out, |dcol| {
        for rows in g.chunks(taps) {
            let (first, width) = (rows.start * g.w_out, rows.len() * g.w_out);
            let dcol = &mut dcol[..taps * width];
            let a = Mat {
                data: w,
                rs: 1,
                cs: taps,
            };
            let b = Mat {
                data: &dy[first..],
                rs: positions,
                cs: 1,
            };
            // SAFETY: the scratch is this thread's.
            unsafe { product([taps, width, g.c_out], Dst::of(dcol, width), false, a, b) };
            col2im(g, dcol, rows, dx);
        }
    });
}

/// Bindings: x, dy, dw.
fn backward_weight(args: &KernelArgs<'_>) {
    let p: Params = args.params();
    let g = Geom::of(&p);
    let [x, dy] = args.reads([0, 1]);
    let taps = g.taps();
    let dw = args.write(2);
    let dw = Dst::of(&mut dw[..g.c_out * taps], taps);
    // Fixed column blocks, whatever the thread count: each sums over every image itself.
    let parts = (taps / MIN_WEIGHT_COLS).clamp(1, WEIGHT_PARTS);
    let work = g.n * g.c_out * g.positions() * taps;
    par_for(args, args.parallel(work), parts, |part| {
        let cols = taps * part / parts..taps * (part + 1) / parts;
        // SAFETY: the blocks' columns are disjoint, so each element of dw is this block's
        // or another's, never two blocks'.
        unsafe { backward_weight_block(&g, x, dy, cols, dw) };
    });
}

/// Columns `cols` of dw [C_out, taps]: Σ over images, in order, and over chunks of output
/// rows, in order, of dy·(windows)ᵀ.
///
/// # Safety
/// No other thread may touch these columns of `dw` during the call.
unsafe fn backward_weight_block(g: &Geom, x: &[f32], dy: &[f32], cols: Range<usize>, dw: Dst) {
    let (taps, positions) = (g.taps(), g.positions());
    let (out_image, block) = (g.c_out * positions, cols.len());
    let dst = Dst {
        // SAFETY: cols.start < taps ≤ dw.len.
        ptr: unsafe { dw.ptr.add(cols.start) },
        len: dw.len - cols.start,
        rs: taps,
    };
    with_scratch(block * g.chunk_rows(block) * g.w_out, |col| {
        let mut accumulate = false;
        for n in 0..g.n {
            let x = &x[n * g.image()..(n + 1) * g.image()];
            let dy = &dy[n * out_image..(n + 1) * out_image];
            for rows in g.chunks(block) {
                let (first, width) = (rows.start * g.w_out, rows.len() * g.w_out);
                im2col(g, x, cols.clone(), rows, col);
                let a = Mat {
                    data: &dy[first..],
                    rs: positions,
                    cs: 1,
                };
                let b = Mat {
                    data: col,
                    rs: 1,
                    cs: width,
                };
                // SAFETY: the caller's contract.
                unsafe { product([g.c_out, block, width], dst, accumulate, a, b) };
                accumulate = true;
            }
        }
        if !accumulate {
            // No image at all (the wrapper refuses it; kept defined): a zero gradient.
            for co in 0..g.c_out {
                // SAFETY: in bounds (co·taps + block ≤ dst.len); these columns are this call's.
                unsafe { std::slice::from_raw_parts_mut(dst.ptr.add(co * taps), block) }.fill(0.0);
            }
        }
    });
}

/// Bindings: dy, db. Each channel sums its images in order; each image's plane is summed in
/// [`LANES`] interleaved partial sums, added in a fixed order at its end (one running sum, as
/// the WGSL's thread keeps, is a chain of dependent adds: the first layer's 2·10⁶ took longer
/// than its weight gradient's product).
fn backward_bias(args: &KernelArgs<'_>) {
    let p: Params = args.params();
    let g = Geom::of(&p);
    let dy = args.read(0);
    let db = args.rows(1, 0..g.c_out, 1);
    let positions = g.positions();
    let work = g.n * g.c_out * positions;
    par_for(args, args.parallel(work), g.c_out, |co| {
        let mut acc = 0.0f32;
        for n in 0..g.n {
            let start = (n * g.c_out + co) * positions;
            acc += plane_sum(&dy[start..start + positions]);
        }
        // SAFETY: par_for visits each channel once.
        let db = unsafe { db.row(co) };
        db[0] = acc;
    });
}

/// Partial sums of the bias gradient's planes.
const LANES: usize = 8;

/// Σ v: element i into partial sum i mod [`LANES`], the partial sums then added in order, then
/// the tail.
fn plane_sum(v: &[f32]) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let mut chunks = v.chunks_exact(LANES);
    for c in &mut chunks {
        for (l, &x) in lanes.iter_mut().zip(c) {
            *l += x;
        }
    }
    let mut acc = 0.0;
    for l in lanes {
        acc += l;
    }
    for &x in chunks.remainder() {
        acc += x;
    }
    acc
}
