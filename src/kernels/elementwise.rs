//! CPU twins of `shaders/elementwise.wgsl`: fill, unary and binary maps, in-place accumulation.
//! Wrapper: `ops::elementwise`; oracle: `reference::elementwise`.

use crate::kernels::common::{exp_neg, sigmoid, tanh};
use crate::kernels::{CpuKernel, KernelArgs, Rows, par_for};

/// The uniform struct of every entry point of `elementwise.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    /// Elements of the output.
    pub n: u32,
    /// Which map: [`unary_op`] or [`binary_op`] codes.
    pub op: u32,
    /// Fill value or scale factor.
    pub alpha: f32,
    /// Elements of b; b is repeated when shorter (trailing broadcast).
    pub b_len: u32,
}

/// Threads per workgroup in `elementwise.wgsl` (`WG` there).
pub const WG: u64 = 256;

/// Codes of the `unary` entry point's maps (`op`).
pub mod unary_op {
    /// 1 / (1 + e^−x).
    pub const SIGMOID: u32 = 0;
    /// tanh(x).
    pub const TANH: u32 = 1;
    /// alpha · x.
    pub const SCALE: u32 = 2;
    /// max(x, 0).
    pub const RELU: u32 = 3;
    /// x above 0, alpha · (e^x − 1) below.
    pub const ELU: u32 = 4;
}

/// Codes of the `binary` entry point's maps (`op`).
pub mod binary_op {
    /// a + b.
    pub const ADD: u32 = 0;
    /// a − b.
    pub const SUB: u32 = 1;
    /// a · b.
    pub const MUL: u32 = 2;
    /// b · a · (1 − a): a is a sigmoid output.
    pub const SIGMOID_BACKWARD: u32 = 3;
    /// b · (1 − a²): a is a tanh output.
    pub const TANH_BACKWARD: u32 = 4;
    /// a + alpha · b.
    pub const ADD_SCALED: u32 = 5;
    /// b where a > 0, else 0: a is a relu output.
    pub const RELU_BACKWARD: u32 = 6;
    /// b where a > 0, else b · (a + alpha): a is an elu output.
    pub const ELU_BACKWARD: u32 = 7;
}

/// Elements per parallel chunk of a map.
const CHUNK: usize = 1 << 14;

/// The twin of each entry point.
pub fn twin(entry: &str) -> Option<CpuKernel> {
    Some(match entry {
        "fill" => fill,
        "unary" => unary,
        "binary" => binary,
        "add_assign" => add_assign,
        _ => return None,
    })
}

/// Runs `body(start, chunk)` over `out` in chunks of [`CHUNK`] elements, in parallel when large.
fn chunked(args: &KernelArgs<'_>, out: &mut [f32], body: impl Fn(usize, &mut [f32]) + Sync + Send) {
    let n = out.len();
    let rows = Rows::new(out, CHUNK);
    par_for(args, args.parallel(n), n.div_ceil(CHUNK), |c| {
        // SAFETY: par_for visits each chunk index once.
        body(c * CHUNK, unsafe { rows.row(c) })
    });
}

fn fill(args: &KernelArgs<'_>) {
    let p: Params = args.params();
    let out = &mut args.write(0)[..p.n as usize];
    chunked(args, out, |_, o| o.fill(p.alpha));
}

fn unary(args: &KernelArgs<'_>) {
    let p: Params = args.params();
    let a = args.read(0);
    let out = &mut args.write(1)[..p.n as usize];
    chunked(args, out, |start, o| {
        let a = &a[start..start + o.len()];
        match p.op {
            unary_op::SIGMOID => o.iter_mut().zip(a).for_each(|(o, &x)| *o = sigmoid(x)),
            unary_op::TANH => o.iter_mut().zip(a).for_each(|(o, &x)| *o = tanh(x)),
            unary_op::RELU => o.iter_mut().zip(a).for_each(|(o, &x)| *o = x.max(0.0)),
            unary_op::ELU => o.iter_mut().zip(a).for_each(|(o, &x)| *o = elu(p.alpha, x)),
            _ => o.iter_mut().zip(a).for_each(|(o, &x)| *o = p.alpha * x),
        }
    });
}

/// ELU as the WGSL writes it; [`exp_neg`] of min(x, 0) so the branch not taken cannot
/// overflow and the loop vectorises.
#[inline(always)]
fn elu(alpha: f32, x: f32) -> f32 {
    let below = alpha * (exp_neg(x.min(0.0)) - 1.0);
    if x > 0.0 { x } else { below }
}

fn binary(args: &KernelArgs<'_>) {
    let p: Params = args.params();
    let [a, b] = args.reads([0, 1]);
    let b = &b[..p.b_len as usize];
    let out = &mut args.write(2)[..p.n as usize];
    let f = |x: f32, y: f32| match p.op {
        binary_op::ADD => x + y,
        binary_op::SUB => x - y,
        binary_op::MUL => x * y,
        binary_op::SIGMOID_BACKWARD => y * x * (1.0 - x),
        binary_op::TANH_BACKWARD => y * (1.0 - x * x),
        binary_op::RELU_BACKWARD => {
            if x > 0.0 {
                y
            } else {
                0.0
            }
        }
        binary_op::ELU_BACKWARD => {
            if x > 0.0 {
                y
            } else {
                y * (x + p.alpha)
            }
        }
        _ => x + p.alpha * y,
    };
    chunked(args, out, |start, o| {
        let a = &a[start..start + o.len()];
        if b.len() >= p.n as usize {
            let b = &b[start..start + o.len()];
            for ((o, &x), &y) in o.iter_mut().zip(a).zip(b) {
                *o = f(x, y);
            }
        } else {
            // Broadcast: b repeats every b_len elements.
            for (i, (o, &x)) in o.iter_mut().zip(a).enumerate() {
                *o = f(x, b[(start + i) % b.len()]);
            }
        }
    });
}

fn add_assign(args: &KernelArgs<'_>) {
    let p: Params = args.params();
    let a = args.read(0);
    let out = &mut args.write(1)[..p.n as usize];
    chunked(args, out, |start, o| {
        for (o, &x) in o.iter_mut().zip(&a[start..]) {
            *o += p.alpha * x;
        }
    });
}
