//! Matmul family: batched, strided, transposed and grouped products, C = op(A)·op(B) (+ bias)
//! (+ C). Kernels: `shaders/matmul.wgsl`; oracle: `reference::matmul`.
//!
//! Everything is one primitive, [`gemm`]: a batch of matrices described by strides. A
//! transpose swaps a view's row and column strides; a grouped product (one weight matrix per
//! mechanism, block-diagonal weights) is a batch whose A rows are strided by the group count.

mod tensors;

pub use tensors::{
    MatmulOptions, grouped_matmul, grouped_matmul_grad_w, grouped_matmul_grad_x, matmul,
};

use crate::device::{Context, grid};
use crate::error::{Error, Result};
use crate::kernels::matmul::{FLAG_ACCUMULATE, FLAG_BIAS, Params};
use crate::tensor::{DType, Tensor};

pub use crate::spec::matmul::{Gemm, MatView};

/// Which kernel runs a product.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// Any strides, scalar loads. The fallback.
    Scalar,
    /// vec4 loads and a `rows x cols` register block per invocation (multiples of 4);
    /// needs K % 4 == 0 and a contiguous axis in A and B with offsets and strides divisible
    /// by 4. Best on llvmpipe with 16 x 16 ([`Kernel::VEC4`]).
    Vec4 {
        /// Output rows per invocation (multiple of 4).
        rows: u32,
        /// Output columns per invocation (multiple of 4).
        cols: u32,
    },
    /// Workgroup-shared tiles; for hardware GPUs.
    Tiled,
}

impl Kernel {
    /// The vec4 kernel with the block measured best on llvmpipe.
    pub const VEC4: Kernel = Kernel::Vec4 { rows: 16, cols: 16 };
}

/// Invocations per workgroup in gemm_scalar and gemm_vec4 (`WG` in the shader).
const WG: u64 = 64;
/// Outputs per invocation in gemm_scalar (`SM` x `SN`).
const SCALAR_BLOCK: (usize, usize) = (4, 4);
/// Outputs per workgroup in gemm_tiled (`TS`).
const TILE: usize = 64;

fn to_u32(what: &str, v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::DeviceLimit {
        what: format!("matmul {what}"),
        requested: v as u64,
        limit: u32::MAX as u64,
    })
}

/// Whether `view` can be read as vec4 along its contiguous axis (`contiguous_is_col`: the
/// column axis has stride 1, else the row axis); everything else must be divisible by 4.
fn vec4_ok(view: &MatView, contiguous_is_col: bool, contiguous_len: usize) -> bool {
    let (unit, other) = if contiguous_is_col {
        (view.col_stride, view.row_stride)
    } else {
        (view.row_stride, view.col_stride)
    };
    unit == 1
        && other.is_multiple_of(4)
        && view.offset.is_multiple_of(4)
        && view.batch_stride.is_multiple_of(4)
        && view.inner_stride.is_multiple_of(4)
        && contiguous_len.is_multiple_of(4)
}

/// For the vec4 kernel: (A contiguous along K?, B contiguous along N?), if it can run at all.
fn vec4_layout(g: &Gemm) -> Option<(bool, bool)> {
    if !g.k.is_multiple_of(4) {
        return None;
    }
    let a_k = if vec4_ok(&g.a, true, g.k) {
        true
    } else if vec4_ok(&g.a, false, g.m) {
        false
    } else {
        return None;
    };
    let b_n = if vec4_ok(&g.b, true, g.n) {
        true
    } else if vec4_ok(&g.b, false, g.k) {
        false
    } else {
        return None;
    };
    Some((a_k, b_n))
}

/// Whether `kernel` can run `g` (the vec4 kernel needs an aligned contiguous layout).
pub fn kernel_supports(kernel: Kernel, g: &Gemm) -> bool {
    !matches!(kernel, Kernel::Vec4 { .. }) || vec4_layout(g).is_some()
}

/// The kernel the engine uses for `g` on this adapter: shared-memory tiles on hardware GPUs,
/// register blocks with vec4 loads on software rasterisers (llvmpipe), where tiling is slower.
///
/// On software adapters the block shrinks for small products: each invocation is one SIMD
/// lane working through its block serially, so a product with fewer blocks than there are
/// lanes to fill (about 64 on a few-core llvmpipe) runs faster with smaller blocks.
pub fn choose_kernel(ctx: &Context, g: &Gemm) -> Kernel {
    if ctx.is_cpu() {
        return Kernel::Scalar; // any layout; the CPU device runs one strided product for all
    }
    if !ctx.is_software_gpu() {
        return Kernel::Tiled;
    }
    if vec4_layout(g).is_none() {
        return Kernel::Scalar;
    }
    const LANES: usize = 64;
    // Block rows never exceed the rows there are (rounded up to 4): a one-row product (batch-1
    // inference) with 16-row blocks would compute 15 rows of padding.
    let row_cap = g.m.next_multiple_of(4).clamp(4, 16);
    let blocks =
        |rows: usize, cols: usize| g.batch * g.inner * g.m.div_ceil(rows) * g.n.div_ceil(cols);
    for (rows, cols) in [(16, 16), (8, 8)] {
        let rows = rows.min(row_cap);
        if blocks(rows, cols) >= LANES || rows < 8 {
            return Kernel::Vec4 {
                rows: rows as u32,
                cols: cols as u32,
            };
        }
    }
    Kernel::Vec4 { rows: 4, cols: 4 }
}

fn check_view(
    what: &str,
    t: &Tensor,
    view: &MatView,
    batch: usize,
    inner: usize,
    rows: usize,
    cols: usize,
) -> Result<()> {
    t.expect_dtype("gemm", DType::F32)?;
    match view.last_index(batch, inner, rows, cols) {
        Some(last) if last < t.len() => Ok(()),
        _ => Err(Error::shape(
            "gemm",
            format!(
                "{what} view {view:?} of {batch} x {rows} x {cols} reaches past the tensor {:?} ({} elements)",
                t.shape(),
                t.len()
            ),
        )),
    }
}

/// Records C = A·B (+ bias) (+ C) for every matrix of the batch, with the kernel
/// [`choose_kernel`] picks.
pub fn gemm(
    ctx: &Context,
    g: &Gemm,
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    c: &Tensor,
) -> Result<()> {
    gemm_with(ctx, choose_kernel(ctx, g), g, a, b, bias, c)
}

/// Like [`gemm`] with an explicit kernel (tests and benchmarks compare them).
pub fn gemm_with(
    ctx: &Context,
    kernel: Kernel,
    g: &Gemm,
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    c: &Tensor,
) -> Result<()> {
    if g.batch == 0 || g.inner == 0 || g.m == 0 || g.n == 0 || g.k == 0 {
        return Err(Error::Empty {
            op: "gemm",
            what: format!("product of batch {} m {} n {} k {}", g.batch, g.m, g.n, g.k),
        });
    }
    let inner = g.inner;
    check_view("A", a, &g.a, g.batch, inner, g.m, g.k)?;
    check_view("B", b, &g.b, g.batch, inner, g.k, g.n)?;
    if g.c.col_stride != 1 {
        return Err(Error::invalid("gemm", "C must have column stride 1"));
    }
    check_view("C", c, &g.c, g.batch, inner, g.m, g.n)?;
    let mut flags = if g.accumulate { FLAG_ACCUMULATE } else { 0 };
    let bias_view = match (bias, g.bias) {
        (Some(t), Some(v)) => {
            check_view("bias", t, &v, g.batch, inner, 1, g.n)?;
            flags |= FLAG_BIAS;
            v
        }
        (None, None) => MatView {
            offset: 0,
            batch_stride: 0,
            row_stride: 0,
            col_stride: 0,
            inner_stride: 0,
        },
        _ => {
            return Err(Error::invalid(
                "gemm",
                "a bias tensor needs a bias view and the other way round",
            ));
        }
    };
    for t in [a, b, c] {
        to_u32("tensor length", t.len())?;
    }
    let (bm, bn) = match kernel {
        Kernel::Scalar => SCALAR_BLOCK,
        Kernel::Vec4 { rows, cols } => {
            if rows == 0
                || cols == 0
                || !rows.is_multiple_of(4)
                || !cols.is_multiple_of(4)
                || rows * cols > 512
            {
                return Err(Error::invalid(
                    "gemm",
                    format!(
                        "vec4 block {rows} x {cols}: need multiples of 4 and at most 512 outputs"
                    ),
                ));
            }
            (rows as usize, cols as usize)
        }
        Kernel::Tiled => (TILE, TILE),
    };
    let (blocks_m, blocks_n) = (g.m.div_ceil(bm), g.n.div_ceil(bn));
    // Per-invocation-block kernels: a workgroup takes a (WG / wg_cols) x wg_cols patch of
    // blocks, as square as the matrix allows, so that it streams few rows of A and columns of B.
    let wg = WG as usize;
    let wg_rows = if kernel == Kernel::Tiled {
        1
    } else {
        blocks_m.next_power_of_two().min(8)
    };
    let wg_cols = if kernel == Kernel::Tiled {
        1
    } else {
        wg / wg_rows
    };
    let tiles_m = blocks_m.div_ceil(wg_rows);
    let tiles_n = blocks_n.div_ceil(wg_cols);
    let workgroups = (g.batch as u64) * (g.inner as u64) * (tiles_m as u64) * (tiles_n as u64);
    let params = Params {
        m: to_u32("m", g.m)?,
        n: to_u32("n", g.n)?,
        k: to_u32("k", g.k)?,
        batch: to_u32("batch", g.batch * g.inner)?,
        a_off: to_u32("offset", g.a.offset)?,
        a_bs: to_u32("stride", g.a.batch_stride)?,
        a_rs: to_u32("stride", g.a.row_stride)?,
        a_cs: to_u32("stride", g.a.col_stride)?,
        b_off: to_u32("offset", g.b.offset)?,
        b_bs: to_u32("stride", g.b.batch_stride)?,
        b_rs: to_u32("stride", g.b.row_stride)?,
        b_cs: to_u32("stride", g.b.col_stride)?,
        c_off: to_u32("offset", g.c.offset)?,
        c_bs: to_u32("stride", g.c.batch_stride)?,
        c_rs: to_u32("stride", g.c.row_stride)?,
        flags,
        bias_off: to_u32("offset", bias_view.offset)?,
        bias_bs: to_u32("stride", bias_view.batch_stride)?,
        tiles_m: to_u32("tiles", tiles_m)?,
        tiles_n: to_u32("tiles", tiles_n)?,
        wg_cols: wg_cols as u32,
        inner: to_u32("inner", g.inner)?,
        a_bs2: to_u32("stride", g.a.inner_stride)?,
        b_bs2: to_u32("stride", g.b.inner_stride)?,
        c_bs2: to_u32("stride", g.c.inner_stride)?,
        bias_bs2: to_u32("stride", bias_view.inner_stride)?,
        _pad: [0; 2],
    };
    ctx.count_flops(2 * (g.batch * g.inner * g.m * g.n * g.k) as u64);
    // Without a bias the shader still names the binding; A stands in (read-only twice is fine).
    let bias_t = bias.unwrap_or(a);
    match kernel {
        Kernel::Scalar => {
            let k = ctx.kernel("matmul", "gemm_scalar", &[])?;
            let groups = grid(ctx, "gemm", workgroups)?;
            ctx.dispatch(k, &params, &[a, b, bias_t, c], groups)
        }
        Kernel::Vec4 { rows, cols } => {
            let (a_k, b_n) = vec4_layout(g).ok_or_else(|| {
                Error::invalid(
                    "gemm",
                    format!("the vec4 kernel cannot read this layout: {g:?}"),
                )
            })?;
            let spec = [
                ("TM", rows),
                ("TN", cols),
                ("A_K_CONTIG", a_k as u32),
                ("B_N_CONTIG", b_n as u32),
            ];
            let k = ctx.kernel("matmul", "gemm_vec4", &spec)?;
            let groups = grid(ctx, "gemm", workgroups)?;
            ctx.dispatch(k, &params, &[bias_t, c, a, b], groups)
        }
        Kernel::Tiled => {
            let k = ctx.kernel("matmul", "gemm_tiled", &[])?;
            let groups = grid(ctx, "gemm", workgroups)?;
            ctx.dispatch(k, &params, &[a, b, bias_t, c], groups)
        }
    }
}
