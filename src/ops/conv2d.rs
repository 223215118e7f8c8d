//! Conv2d family: 2-D convolution as PyTorch's `conv2d` computes it (cross-correlation, NCHW,
//! f32) and its three gradients, one dispatch each. Kernels: `shaders/conv2d.wgsl`; oracle:
//! `reference::conv2d`.

use crate::device::{Context, grid};
use crate::error::{Error, Result};
use crate::kernels::conv2d::{FLAG_BIAS, Params, WG};
use crate::tensor::{DType, Tensor};

pub use crate::spec::conv2d::Conv2dSpec;

/// The sizes of one convolution, checked against each other and the kernels' limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dShape {
    /// Images.
    pub n: usize,
    /// Input channels.
    pub c_in: usize,
    /// Input height and width.
    pub h: usize,
    #[allow(missing_docs)]
    pub w: usize,
    /// Output channels.
    pub c_out: usize,
    /// Kernel height and width.
    pub kh: usize,
    #[allow(missing_docs)]
    pub kw: usize,
    /// Output height and width.
    pub h_out: usize,
    #[allow(missing_docs)]
    pub w_out: usize,
    /// Stride and padding.
    pub spec: Conv2dSpec,
}

/// Most floats of one output row's windows (C_in·KH·KW × W_out, 1 GiB): the CPU twin's
/// scratch holds at least one such row.
const MAX_ROW_WINDOWS: u64 = 1 << 28;

impl Conv2dShape {
    /// The sizes of x `[N, C_in, H, W]` convolved with a weight `[C_out, C_in, KH, KW]`, or the
    /// error naming what does not fit: a rank, a zero size, a stride of 0, the channels, a
    /// kernel larger than the padded input, or a size past the kernels' 32-bit indices.
    pub fn new(x: &[usize], weight: &[usize], spec: Conv2dSpec) -> Result<Self> {
        const OP: &str = "conv2d";
        let [n, c_in, h, w] = four(OP, "x [N, C_in, H, W]", x)?;
        let [c_out, wc_in, kh, kw] = four(OP, "weight [C_out, C_in, KH, KW]", weight)?;
        if spec.stride == 0 {
            return Err(Error::invalid(OP, "the stride must be at least 1"));
        }
        if wc_in != c_in {
            return Err(Error::shape(
                OP,
                format!("weight {weight:?} takes {wc_in} input channels, x {x:?} has {c_in}"),
            ));
        }
        let (h_out, w_out) = match (spec.output_len(h, kh), spec.output_len(w, kw)) {
            (Some(ho), Some(wo)) => (ho, wo),
            _ => {
                return Err(Error::shape(
                    OP,
                    format!(
                        "kernel {kh}×{kw} is larger than the input {h}×{w} padded by {} before \
                         and {} after",
                        spec.pad_before, spec.pad_after
                    ),
                ));
            }
        };
        let shape = Conv2dShape {
            n,
            c_in,
            h,
            w,
            c_out,
            kh,
            kw,
            h_out,
            w_out,
            spec,
        };
        shape.check_limits()?;
        Ok(shape)
    }

    /// The output's shape `[N, C_out, H_out, W_out]`.
    pub fn output(&self) -> [usize; 4] {
        [self.n, self.c_out, self.h_out, self.w_out]
    }

    /// The input's shape `[N, C_in, H, W]`.
    pub fn input(&self) -> [usize; 4] {
        [self.n, self.c_in, self.h, self.w]
    }

    /// The weight's shape `[C_out, C_in, KH, KW]`.
    pub fn weight(&self) -> [usize; 4] {
        [self.c_out, self.c_in, self.kh, self.kw]
    }

    /// Multiply-adds of the forward (and of each of the two large gradients).
    pub fn multiply_adds(&self) -> usize {
        self.n * self.c_out * self.h_out * self.w_out * self.c_in * self.kh * self.kw
    }

    /// The WGSL indexes with u32 and offsets rows and columns by the padding with i32.
    fn check_limits(&self) -> Result<()> {
        let tensors = [
            ("x", self.input()),
            ("weight", self.weight()),
            ("the output", self.output()),
        ];
        for (what, shape) in tensors {
            let len = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d as u64));
            if len.is_none_or(|l| l > u32::MAX as u64) {
                return Err(Error::DeviceLimit {
                    what: format!("conv2d: {what} {shape:?}"),
                    requested: len.unwrap_or(u64::MAX),
                    limit: u32::MAX as u64,
                });
            }
        }
        // The CPU twin unfolds at least one output row's windows at a time into a scratch
        // buffer that a thread keeps; a row needing more than this is refused here, where it
        // can be an error, rather than failing to allocate inside a kernel (an abort).
        let row_windows = (self.c_in * self.kh * self.kw) as u64 * self.w_out as u64;
        if row_windows > MAX_ROW_WINDOWS {
            return Err(Error::DeviceLimit {
                what: "conv2d: one output row's windows (C_in·KH·KW × W_out)".into(),
                requested: row_windows,
                limit: MAX_ROW_WINDOWS,
            });
        }
        let padded =
            self.h.max(self.w) as u64 + self.spec.pad_before as u64 + self.spec.pad_after as u64;
        if padded > i32::MAX as u64 {
            return Err(Error::DeviceLimit {
                what: "conv2d: padded input side".into(),
                requested: padded,
                limit: i32::MAX as u64,
            });
        }
        Ok(())
    }

    fn params(&self, flags: u32) -> Params {
        // Every size fits in u32: check_limits bounds each tensor's elements and the padding.
        Params {
            n: self.n as u32,
            c_in: self.c_in as u32,
            h: self.h as u32,
            w: self.w as u32,
            c_out: self.c_out as u32,
            kh: self.kh as u32,
            kw: self.kw as u32,
            stride: self.spec.stride as u32,
            pad: self.spec.pad_before as u32,
            h_out: self.h_out as u32,
            w_out: self.w_out as u32,
            flags,
        }
    }
}

/// A 4-D shape, or the error naming `what` was expected.
fn four(op: &'static str, what: &str, shape: &[usize]) -> Result<[usize; 4]> {
    let dims: [usize; 4] = shape
        .try_into()
        .map_err(|_| Error::shape(op, format!("{what} must be 4-D, got {shape:?}")))?;
    if dims.contains(&0) {
        return Err(Error::Empty {
            op,
            what: format!("{what} {shape:?}"),
        });
    }
    Ok(dims)
}

/// Errors unless `t` is an f32 tensor of exactly `want`.
fn expect(op: &'static str, what: &str, t: &Tensor, want: &[usize]) -> Result<()> {
    t.expect_dtype(op, DType::F32)?;
    if t.shape() != want {
        return Err(Error::shape(
            op,
            format!("{what} is {:?}, expected {want:?}", t.shape()),
        ));
    }
    Ok(())
}

/// Records one dispatch of `entry` with a thread per element of `threads`.
fn run(
    ctx: &Context,
    op: &'static str,
    entry: &str,
    params: &Params,
    bindings: &[&Tensor],
    threads: usize,
) -> Result<()> {
    let groups = grid(ctx, op, (threads as u64).div_ceil(WG))?;
    let k = ctx.kernel("conv2d", entry, &[])?;
    ctx.dispatch(k, params, bindings, groups)
}

/// y `[N, C_out, H_out, W_out]` of x `[N, C_in, H, W]`, weight `[C_out, C_in, KH, KW]` and an
/// optional bias `[C_out]` (PyTorch's `conv2d` with `spec`'s stride and padding).
pub fn forward(
    ctx: &Context,
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    spec: Conv2dSpec,
) -> Result<Tensor> {
    const OP: &str = "conv2d";
    x.expect_dtype(OP, DType::F32)?;
    weight.expect_dtype(OP, DType::F32)?;
    let s = Conv2dShape::new(x.shape(), weight.shape(), spec)?;
    if let Some(b) = bias {
        expect(OP, "the bias", b, &[s.c_out])?;
    }
    let y = Tensor::uninit(ctx, &s.output())?;
    let flags = if bias.is_some() { FLAG_BIAS } else { 0 };
    // Without a bias the shader still names the binding; the weight stands in, unread.
    let b = bias.unwrap_or(weight);
    run(
        ctx,
        OP,
        "forward",
        &s.params(flags),
        &[x, weight, b, &y],
        y.len(),
    )?;
    Ok(y)
}

/// dL/dx `[N, C_in, H, W]` (`x_shape`) from dy `[N, C_out, H_out, W_out]` and the weight.
pub fn backward_input(
    ctx: &Context,
    dy: &Tensor,
    weight: &Tensor,
    x_shape: &[usize],
    spec: Conv2dSpec,
) -> Result<Tensor> {
    const OP: &str = "conv2d backward_input";
    weight.expect_dtype(OP, DType::F32)?;
    let s = Conv2dShape::new(x_shape, weight.shape(), spec)?;
    expect(OP, "dy", dy, &s.output())?;
    let dx = Tensor::uninit(ctx, &s.input())?;
    let p = s.params(0);
    run(ctx, OP, "backward_input", &p, &[weight, dy, &dx], dx.len())?;
    Ok(dx)
}

/// dL/dweight `[C_out, C_in, KH, KW]` (`weight_shape`) from x and dy, summed over the images.
pub fn backward_weight(
    ctx: &Context,
    x: &Tensor,
    dy: &Tensor,
    weight_shape: &[usize],
    spec: Conv2dSpec,
) -> Result<Tensor> {
    const OP: &str = "conv2d backward_weight";
    x.expect_dtype(OP, DType::F32)?;
    let s = Conv2dShape::new(x.shape(), weight_shape, spec)?;
    expect(OP, "dy", dy, &s.output())?;
    let dw = Tensor::uninit(ctx, &s.weight())?;
    let p = s.params(0);
    run(ctx, OP, "backward_weight", &p, &[x, dy, &dw], dw.len())?;
    Ok(dw)
}

/// dL/dbias `[C_out]` from dy `[N, C_out, H_out, W_out]`: its sum over images and positions.
pub fn backward_bias(ctx: &Context, dy: &Tensor) -> Result<Tensor> {
    const OP: &str = "conv2d backward_bias";
    dy.expect_dtype(OP, DType::F32)?;
    let [n, c_out, h_out, w_out] = four(OP, "dy [N, C_out, H_out, W_out]", dy.shape())?;
    if dy.len() > u32::MAX as usize {
        return Err(Error::DeviceLimit {
            what: format!("{OP}: dy {:?}", dy.shape()),
            requested: dy.len() as u64,
            limit: u32::MAX as u64,
        });
    }
    // The bias gradient reads only these sizes of the struct.
    let p = Params {
        n: n as u32,
        c_out: c_out as u32,
        h_out: h_out as u32,
        w_out: w_out as u32,
        stride: 1,
        ..bytemuck::Zeroable::zeroed()
    };
    let db = Tensor::uninit(ctx, &[c_out])?;
    run(ctx, OP, "backward_bias", &p, &[dy, &db], c_out)?;
    Ok(db)
}

/// The three gradients of [`forward`] at once.
#[derive(Debug)]
pub struct Conv2dGrads {
    /// dL/dx, shaped like x.
    pub dx: Tensor,
    /// dL/dweight, shaped like the weight.
    pub dw: Tensor,
    /// dL/dbias `[C_out]`, when asked for.
    pub db: Option<Tensor>,
}

/// dx, dweight and (with `bias`) dbias of [`forward`] from dy: three or four dispatches.
pub fn backward(
    ctx: &Context,
    x: &Tensor,
    weight: &Tensor,
    dy: &Tensor,
    bias: bool,
    spec: Conv2dSpec,
) -> Result<Conv2dGrads> {
    // Everything checked before the first dispatch is recorded.
    const OP: &str = "conv2d backward";
    x.expect_dtype(OP, DType::F32)?;
    weight.expect_dtype(OP, DType::F32)?;
    let s = Conv2dShape::new(x.shape(), weight.shape(), spec)?;
    expect(OP, "dy", dy, &s.output())?;
    let dx = backward_input(ctx, dy, weight, x.shape(), spec)?;
    let dw = backward_weight(ctx, x, dy, weight.shape(), spec)?;
    let db = bias.then(|| backward_bias(ctx, dy)).transpose()?;
    Ok(Conv2dGrads { dx, dw, db })
}
