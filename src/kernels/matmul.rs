//! CPU twin of `shaders/matmul.wgsl`: the three GPU kernels (scalar, vec4, tiled) are one
//! strided batched product here, each matrix through the `gemm` crate's SIMD kernels.
//! Wrapper: `ops::matmul`; oracle: `reference::matmul`.

use crate::kernels::{CpuKernel, KernelArgs, par_for};

/// The uniform struct of `matmul.wgsl`. Element (i, k) of A for batch entry `bt` = (outer,
/// inner) = (bt / inner, bt % inner) is `a[a_off + outer*a_bs + inner*a_bs2 + i*a_rs + k*a_cs]`;
/// B, C and the bias likewise (C's column stride is 1, the bias's row stride 0).
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
#[allow(missing_docs)]
pub struct Params {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    /// Outer × inner batch entries.
    pub batch: u32,
    pub a_off: u32,
    pub a_bs: u32,
    pub a_rs: u32,
    pub a_cs: u32,
    pub b_off: u32,
    pub b_bs: u32,
    pub b_rs: u32,
    pub b_cs: u32,
    pub c_off: u32,
    pub c_bs: u32,
    pub c_rs: u32,
    /// [`FLAG_BIAS`] | [`FLAG_ACCUMULATE`].
    pub flags: u32,
    pub bias_off: u32,
    pub bias_bs: u32,
    /// GPU only: workgroup tiling of the output.
    pub tiles_m: u32,
    /// GPU only.
    pub tiles_n: u32,
    /// GPU only.
    pub wg_cols: u32,
    /// Inner batch count.
    pub inner: u32,
    pub a_bs2: u32,
    pub b_bs2: u32,
    pub c_bs2: u32,
    pub bias_bs2: u32,
    pub _pad: [u32; 2],
}

/// Add `bias[j]` to every row.
pub const FLAG_BIAS: u32 = 1;
/// Add the product to C's contents instead of overwriting them.
pub const FLAG_ACCUMULATE: u32 = 2;

/// Multiply-adds per matrix from which one product is cut into parts, one per thread.
const SPLIT_ONE_PRODUCT: usize = crate::kernels::split::ALWAYS_FROM;
/// Rows (or columns) below which a product is never cut into parts.
const MIN_ROWS_TO_SPLIT: usize = 8;

/// The twin of each entry point.
pub fn twin(entry: &str) -> Option<CpuKernel> {
    Some(match entry {
        "gemm_scalar" | "gemm_tiled" => gemm_abc,
        "gemm_vec4" => gemm_vec4,
        _ => return None,
    })
}

/// gemm_scalar and gemm_tiled bind a, b, bias, c.
fn gemm_abc(args: &KernelArgs<'_>) {
    run(
        args,
        args.read(0),
        args.read(1),
        args.read(2),
        args.write(3),
    );
}

/// gemm_vec4 binds bias, c, a (as vec4), b (as vec4).
fn gemm_vec4(args: &KernelArgs<'_>) {
    run(
        args,
        args.read(2),
        args.read(3),
        args.read(0),
        args.write(1),
    );
}

/// A pointer that may cross to a pool thread (each thread writes its own matrices).
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: only used to reach disjoint output matrices from par_for iterations.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

/// Largest index a view touches, checked against its slice so a bad parameter struct panics
/// instead of reading out of bounds.
fn check(what: &str, len: usize, last: usize) {
    assert!(
        last < len,
        "matmul twin: {what} reaches element {last} of {len}"
    );
}

fn run(args: &KernelArgs<'_>, a: &[f32], b: &[f32], bias: &[f32], c: &mut [f32]) {
    let p: Params = args.params();
    let (m, n, k) = (p.m as usize, p.n as usize, p.k as usize);
    let (batch, inner) = (p.batch as usize, p.inner.max(1) as usize);
    if batch == 0 || m == 0 || n == 0 {
        return;
    }
    let has_bias = p.flags & FLAG_BIAS != 0;
    let accumulate = p.flags & FLAG_ACCUMULATE != 0;
    let offsets = |bt: usize| {
        let (o, i) = (bt / inner, bt % inner);
        (
            p.a_off as usize + o * p.a_bs as usize + i * p.a_bs2 as usize,
            p.b_off as usize + o * p.b_bs as usize + i * p.b_bs2 as usize,
            p.c_off as usize + o * p.c_bs as usize + i * p.c_bs2 as usize,
            p.bias_off as usize + o * p.bias_bs as usize + i * p.bias_bs2 as usize,
        )
    };
    let (ao, bo, co, so) = offsets(batch - 1);
    let km = k.saturating_sub(1);
    if k > 0 {
        check(
            "A",
            a.len(),
            ao + (m - 1) * p.a_rs as usize + km * p.a_cs as usize,
        );
        check(
            "B",
            b.len(),
            bo + km * p.b_rs as usize + (n - 1) * p.b_cs as usize,
        );
    }
    check("C", c.len(), co + (m - 1) * p.c_rs as usize + n - 1);
    if has_bias {
        check("bias", bias.len(), so + n - 1);
    }
    let c_ptr = SendPtr(c.as_mut_ptr());
    let work = m * n * k.max(1);
    let threads = args.threads();
    // A large product is cut into one part per thread along its longer side (rows, or the
    // columns of a batch-1 step's product), each part a `gemm` call of its own on the device's
    // team; a product narrower than MIN_ROWS_TO_SPLIT both ways is left whole.
    let parts = if threads > 1 && work >= SPLIT_ONE_PRODUCT && m.max(n) >= MIN_ROWS_TO_SPLIT {
        threads
    } else {
        1
    };
    let by_rows = m >= n;
    // Part `part` of matrix `bt`: its rows and columns.
    let part_of = |part: usize| {
        let cut = |len: usize| len * part / parts..len * (part + 1) / parts;
        if by_rows {
            (cut(m), 0..n)
        } else {
            (0..m, cut(n))
        }
    };
    let one = |bt: usize, part: usize| {
        let (ao, bo, co, so) = offsets(bt);
        let (rows, cols) = part_of(part);
        let (pm, pn) = (rows.len(), cols.len());
        if pm == 0 || pn == 0 {
            return;
        }
        let c_base = c_ptr;
        // SAFETY: in bounds by the checks above; this block of this matrix belongs to this call.
        let c0 = unsafe { c_base.0.add(co + rows.start * p.c_rs as usize + cols.start) };
        if has_bias {
            // C = bias (+ C): then the product adds onto it.
            let bias = &bias[so + cols.start..so + cols.end];
            for i in 0..pm {
                let row =
                    unsafe { std::slice::from_raw_parts_mut(c0.add(i * p.c_rs as usize), pn) };
                if accumulate {
                    row.iter_mut().zip(bias).for_each(|(c, b)| *c += b);
                } else {
                    row.copy_from_slice(bias);
                }
            }
        }
        if k == 0 {
            if !has_bias && !accumulate {
                for i in 0..pm {
                    unsafe { std::slice::from_raw_parts_mut(c0.add(i * p.c_rs as usize), pn) }
                        .fill(0.0);
                }
            }
            return;
        }
        let a0 = ao + rows.start * p.a_rs as usize;
        let b0 = bo + cols.start * p.b_cs as usize;
        // SAFETY: every index is in bounds (checked above); C does not overlap A or B (the
        // device refuses a writable binding that overlaps another one).
        unsafe {
            gemm::gemm(
                pm,
                pn,
                k,
                c0,
                1,
                p.c_rs as isize,
                has_bias || accumulate,
                a.as_ptr().add(a0),
                p.a_cs as isize,
                p.a_rs as isize,
                b.as_ptr().add(b0),
                p.b_cs as isize,
                p.b_rs as isize,
                1.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    };
    // One iteration per (matrix, part), spread over the team when there is enough in all
    // (at parts > 1 the work is past `split::ALWAYS_FROM`: always split).
    let parallel = args.parallel(work * batch) && (parts > 1 || batch > 1);
    par_for(args, parallel, batch * parts, |q| one(q / parts, q % parts));
}
