//! CPU twin of `shaders/squared_error.wgsl`: elementwise squared error and its gradient in one
//! pass. Wrapper: `ops::squared_error`; oracle: `reference::squared_error`.

use crate::kernels::{CpuKernel, KernelArgs, Rows, par_for};

/// The uniform struct of `squared_error.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    /// Elements of pred, target, loss and dpred.
    pub n: u32,
    /// Factor of the gradient (1 / n for a mean loss).
    pub grad_scale: f32,
    /// Padding to 16 bytes.
    pub _pad0: u32,
    /// Padding to 16 bytes.
    pub _pad1: u32,
}

/// Threads per workgroup in `squared_error.wgsl` (`WG` there).
pub const WG: u64 = 256;

/// Elements per parallel chunk.
const CHUNK: usize = 1 << 14;

/// The twin of each entry point.
pub fn twin(entry: &str) -> Option<CpuKernel> {
    Some(match entry {
        "squared_error" => squared_error,
        _ => return None,
    })
}

/// Bindings: pred, expected (the target), loss, dpred.
fn squared_error(args: &KernelArgs<'_>) {
    let p: Params = args.params();
    let n = p.n as usize;
    let (pred, target) = (&args.read(0)[..n], &args.read(1)[..n]);
    let loss = Rows::new(&mut args.write(2)[..n], CHUNK);
    let dpred = Rows::new(&mut args.write(3)[..n], CHUNK);
    par_for(args, args.parallel(n), n.div_ceil(CHUNK), |c| {
        // SAFETY: par_for visits each chunk index once.
        let (l, g) = unsafe { (loss.row(c), dpred.row(c)) };
        let start = c * CHUNK;
        let (x, t) = (
            &pred[start..start + l.len()],
            &target[start..start + l.len()],
        );
        for (((l, g), &x), &t) in l.iter_mut().zip(g).zip(x).zip(t) {
            let d = x - t;
            *l = d * d;
            *g = 2.0 * d * p.grad_scale;
        }
    });
}
