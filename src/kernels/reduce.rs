//! CPU twins of `shaders/reduce.wgsl`: row sum, row max and the subtract-max softmax over the
//! rows of a `[rows, cols]` view. Wrapper: `ops::reduce`; oracle: `reference::reduce`.
//!
//! Sums are added in the order of the GPU's workgroup (`lib/workgroup_reduce.wgsl`): thread `l`
//! of `WG` accumulates elements `l, l + WG, …` of its row, then a tree halves the threads'
//! partials. [`workgroup_sum`] does that here (also for `cross_entropy` and `optim`), so both
//! devices round alike and the result does not depend on the CPU's thread count.

use crate::kernels::{CpuKernel, KernelArgs, Rows, par_for};

/// The uniform struct of every entry point of `reduce.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    /// Rows to reduce (= workgroups that do work).
    pub rows: u32,
    /// Row stride in elements.
    pub cols: u32,
    /// Elements of x; the last row may be shorter than `cols` (`sum_all`'s partial passes).
    pub n: u32,
    /// Padding to 16 bytes.
    pub _pad: u32,
}

/// Threads per workgroup (the `WG` specialisation) for rows shorter than [`WIDE_FROM`]: on a
/// software GPU idle threads in a workgroup still cost time, and typical rows (classes, hidden
/// units) are short.
pub const NARROW: u32 = 64;
/// Threads per workgroup for long rows.
pub const WIDE: u32 = 256;
/// Rows of at least this many columns use [`WIDE`] workgroups.
pub const WIDE_FROM: u32 = 1024;

/// The `WG` specialisation for rows of `cols` elements, chosen by the wrappers of `reduce.wgsl`
/// and `cross_entropy.wgsl` (same structure) and needed by the twins to add in the GPU's order.
pub fn workgroup_size(cols: u32) -> u32 {
    if cols >= WIDE_FROM { WIDE } else { NARROW }
}

/// Largest workgroup [`workgroup_sum`] emulates.
pub(crate) const MAX_WG: usize = 256;

/// Elements of x per parallel block of rows.
const BLOCK: usize = 1 << 13;

/// The twin of each entry point.
pub fn twin(entry: &str) -> Option<CpuKernel> {
    Some(match entry {
        "row_sum" => row_sum,
        "row_max" => row_max,
        "softmax" => softmax,
        _ => return None,
    })
}

/// Σ f(x[i]) added as a `wg`-thread workgroup adds it (see the module docs): per-thread strided
/// sums from 0, then `workgroup_sum`'s tree. Threads that saw no element hold +0, which the tree
/// would add exactly, so the tree leaves them out (and short rows need only a short buffer).
#[inline]
pub(crate) fn workgroup_sum(wg: usize, x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    debug_assert!(wg.is_power_of_two() && wg <= MAX_WG);
    match x.len().min(wg) {
        0..=16 => lanes_sum::<16>(wg, x, f),
        17..=64 => lanes_sum::<64>(wg, x, f),
        _ => lanes_sum::<MAX_WG>(wg, x, f),
    }
}

/// [`workgroup_sum`] with room for `N >= min(len, wg)` threads' partials.
#[inline(always)]
fn lanes_sum<const N: usize>(wg: usize, x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut sh = [0.0f32; N];
    let used = x.len().min(wg);
    let lanes = &mut sh[..used];
    // Element i goes to thread i % wg; when fewer than wg, each thread gets at most one.
    for c in x.chunks(wg) {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l += f(v);
        }
    }
    tree_sum(wg, lanes)
}

/// Σ f(i) for i < len, added as [`workgroup_sum`] adds Σ f(x[i]): for sums of a function of
/// several rows (layer normalisation's backward adds dy·gain·x̂).
#[inline]
pub(crate) fn workgroup_sum_indexed(wg: usize, len: usize, f: impl Fn(usize) -> f32) -> f32 {
    debug_assert!(wg.is_power_of_two() && wg <= MAX_WG);
    match len.min(wg) {
        0..=16 => lanes_sum_indexed::<16>(wg, len, f),
        17..=64 => lanes_sum_indexed::<64>(wg, len, f),
        _ => lanes_sum_indexed::<MAX_WG>(wg, len, f),
    }
}

/// [`workgroup_sum_indexed`] with room for `N >= min(len, wg)` threads' partials.
#[inline(always)]
fn lanes_sum_indexed<const N: usize>(wg: usize, len: usize, f: impl Fn(usize) -> f32) -> f32 {
    let mut sh = [0.0f32; N];
    let used = len.min(wg);
    let lanes = &mut sh[..used];
    for start in (0..len).step_by(wg) {
        let end = (start + used).min(len);
        for (l, i) in lanes.iter_mut().zip(start..end) {
            *l += f(i);
        }
    }
    tree_sum(wg, lanes)
}

/// The tree of `workgroup_sum` in lib/workgroup_reduce.wgsl over the first `lanes.len()`
/// threads' partials of a `wg`-thread workgroup (the others hold +0 and are left out).
#[inline(always)]
fn tree_sum(wg: usize, lanes: &mut [f32]) -> f32 {
    let mut used = lanes.len();
    let mut s = wg / 2;
    while s > 0 {
        let k = used.saturating_sub(s);
        let (lo, hi) = lanes.split_at_mut(s.min(used));
        for (a, &b) in lo[..k].iter_mut().zip(&hi[..k]) {
            *a += b;
        }
        used = used.min(s);
        s >>= 1;
    }
    lanes.first().copied().unwrap_or(0.0)
}

/// Max of a non-empty slice (order-free: a max is one of its inputs).
#[inline]
pub(crate) fn max_of(x: &[f32]) -> f32 {
    const L: usize = 16;
    let mut m = [x[0]; L];
    let mut chunks = x.chunks_exact(L);
    for c in &mut chunks {
        for (m, &v) in m.iter_mut().zip(c) {
            *m = m.max(v);
        }
    }
    let r = chunks.remainder().iter().fold(x[0], |a, &b| a.max(b));
    m.iter().fold(r, |a, &b| a.max(b))
}

/// Rows the dispatch reaches: `p.rows`, unless the grid (rows are `wid.x + wid.y · nwg.x`)
/// has fewer workgroups.
fn rows_done(args: &KernelArgs<'_>, rows: u32) -> usize {
    let [gx, gy, _] = args.groups();
    (rows as usize).min(gx as usize * gy as usize)
}

/// Rows per parallel block, and whether to spread the blocks over the team.
fn blocks(args: &KernelArgs<'_>, rows: usize, cols: usize) -> (usize, bool) {
    ((BLOCK / cols.max(1)).max(1), args.parallel(rows * cols))
}

/// Elements `[r · cols, min((r + 1) · cols, n))` of x.
#[inline]
fn row_of(x: &[f32], r: usize, cols: usize, n: usize) -> &[f32] {
    let start = (r * cols).min(n);
    &x[start..(start + cols).min(n)]
}

/// `out[r] = reduce(row r)` for every reached row.
fn per_row(args: &KernelArgs<'_>, reduce: impl Fn(&[f32]) -> f32 + Sync + Send) {
    let p: Params = args.params();
    let x = args.read(0);
    let out = args.write(1);
    let (cols, n) = (p.cols as usize, (p.n as usize).min(x.len()));
    let rows = rows_done(args, p.rows);
    let (per, parallel) = blocks(args, rows, cols);
    let out = Rows::new(&mut out[..rows], per);
    par_for(args, parallel, rows.div_ceil(per), |b| {
        // SAFETY: par_for visits each block once.
        let o = unsafe { out.row(b) };
        for (j, o) in o.iter_mut().enumerate() {
            *o = reduce(row_of(x, b * per + j, cols, n));
        }
    });
}

fn row_sum(args: &KernelArgs<'_>) {
    let wg = workgroup_size(args.params::<Params>().cols) as usize;
    per_row(args, |row| workgroup_sum(wg, row, |v| v));
}

fn row_max(args: &KernelArgs<'_>) {
    // An empty row (cols = 0) reads x[start] on the GPU, past the end: 0 here.
    per_row(args, |row| if row.is_empty() { 0.0 } else { max_of(row) });
}

/// out = exp(x − rowmax) / Σ exp(x − rowmax), the exponentials kept in `out` between passes.
fn softmax(args: &KernelArgs<'_>) {
    let p: Params = args.params();
    let x = args.read(0);
    let out = args.write(1);
    let (cols, n) = (p.cols as usize, (p.n as usize).min(x.len()));
    if cols == 0 {
        return;
    }
    let wg = workgroup_size(p.cols) as usize;
    let rows = rows_done(args, p.rows);
    let end = (rows * cols).min(n);
    let (per, parallel) = blocks(args, rows, cols);
    let out = Rows::new(&mut out[..end], per * cols);
    par_for(args, parallel, rows.div_ceil(per), |b| {
        // SAFETY: par_for visits each block once.
        let o = unsafe { out.row(b) };
        for (xr, or) in x[b * per * cols..end].chunks(cols).zip(o.chunks_mut(cols)) {
            softmax_row(wg, xr, or);
        }
    });
}

/// Softmax of one row into `out` (same length); the subtract-max form of the WGSL.
#[inline]
fn softmax_row(wg: usize, x: &[f32], out: &mut [f32]) {
    let m = max_of(x);
    for (o, &v) in out.iter_mut().zip(x) {
        *o = (v - m).exp();
    }
    // The max element contributes exp(0) = 1, so the sum is >= 1.
    let inv = 1.0 / workgroup_sum(wg, out, |e| e);
    out.iter_mut().for_each(|o| *o *= inv);
}
