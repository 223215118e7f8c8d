//! CPU twin of `shaders/binary_cross_entropy.wgsl`: binary cross-entropy on logits against
//! targets in [0, 1], loss and gradient in one pass. Wrapper: `ops::binary_cross_entropy`;
//! oracle: `reference::binary_cross_entropy`.

use crate::kernels::common::exp_neg;
use crate::kernels::{CpuKernel, KernelArgs, Rows, par_for};

/// The uniform struct of `binary_cross_entropy.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    /// Elements of logits, targets, loss and dlogits.
    pub n: u32,
    /// Factor of the gradient (1 / n for a mean loss).
    pub grad_scale: f32,
    /// Padding to 16 bytes.
    pub _pad0: u32,
    /// Padding to 16 bytes.
    pub _pad1: u32,
}

/// Threads per workgroup in `binary_cross_entropy.wgsl` (`WG` there).
pub const WG: u64 = 256;

/// Elements per parallel chunk.
const CHUNK: usize = 1 << 14;

/// The twin of each entry point.
pub fn twin(entry: &str) -> Option<CpuKernel> {
    Some(match entry {
        "with_logits" => with_logits,
        _ => return None,
    })
}

/// Bindings: logits, targets, loss, dlogits.
fn with_logits(args: &KernelArgs<'_>) {
    let p: Params = args.params();
    let n = p.n as usize;
    let (logits, targets) = (&args.read(0)[..n], &args.read(1)[..n]);
    let loss = Rows::new(&mut args.write(2)[..n], CHUNK);
    let dlogits = Rows::new(&mut args.write(3)[..n], CHUNK);
    par_for(args, args.parallel(n), n.div_ceil(CHUNK), |c| {
        // SAFETY: par_for visits each chunk index once.
        let (l, g) = unsafe { (loss.row(c), dlogits.row(c)) };
        let start = c * CHUNK;
        let z = &logits[start..start + l.len()];
        let t = &targets[start..start + l.len()];
        for (((l, g), &z), &t) in l.iter_mut().zip(g).zip(z).zip(t) {
            (*l, *g) = element(z, t, p.grad_scale);
        }
    });
}

/// One element's (loss, gradient), as the WGSL computes it: e = e^(−|z|) ≤ 1 serves both, so
/// nothing overflows.
#[inline(always)]
fn element(z: f32, t: f32, grad_scale: f32) -> (f32, f32) {
    let e = exp_neg(-z.abs());
    let loss = z.max(0.0) - z * t + e.ln_1p();
    let sigmoid = if z >= 0.0 { 1.0 } else { e } / (1.0 + e);
    (loss, (sigmoid - t) * grad_scale)
}
