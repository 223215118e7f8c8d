//! CPU twin of `shaders/dropout.wgsl`, with the counter-based mask of `lib/common.wgsl`
//! (`hash32`, `dropout_factor`) bit for bit through [`DropoutStream`]. Wrapper:
//! `ops::dropout`; oracle: `reference::dropout` (the same hash).

use crate::kernels::common::DropoutStream;
use crate::kernels::{CpuKernel, KernelArgs, Rows, par_for};

/// The uniform struct of `dropout.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    /// Elements of x and out.
    pub n: u32,
    /// Run seed.
    pub seed: u32,
    /// Training step; a new step draws a new mask.
    pub step: u32,
    /// Dropout site within the model.
    pub tensor: u32,
    /// An element is kept iff its 24-bit draw >= threshold = round(p · 2^24); 0 keeps all.
    pub threshold: u32,
    /// Factor of kept elements, 1 / (1 − p).
    pub scale: f32,
    /// Padding to 32 bytes.
    pub _pad: [u32; 2],
}

/// Threads per workgroup in `dropout.wgsl`.
const WG: usize = 256;
/// Elements per parallel chunk.
const CHUNK: usize = 1 << 14;

/// The twin of each entry point.
pub fn twin(entry: &str) -> Option<CpuKernel> {
    Some(match entry {
        "apply" => apply,
        _ => return None,
    })
}

/// Bindings: x, out. `out[i] = x[i] · dropout_factor(…, i, …)` for i < n.
fn apply(args: &KernelArgs<'_>) {
    let p: Params = args.params();
    let x = args.read(0);
    let out = args.write(1);
    let [gx, gy, _] = args.groups();
    // i = (wid.x + wid.y · nwg.x) · WG + lid, kept while i < n.
    let n = (p.n as usize).min(gx as usize * gy as usize * WG);
    let out = Rows::new(&mut out[..n], CHUNK);
    let mask = DropoutStream::new(p.seed, p.step, p.tensor, p.threshold, p.scale);
    par_for(args, args.parallel(n), n.div_ceil(CHUNK), |c| {
        // SAFETY: par_for visits each chunk once.
        let o = unsafe { out.row(c) };
        let start = c * CHUNK;
        let x = &x[start..start + o.len()];
        if mask.is_identity() {
            // Every factor is 1: x · 1 = x.
            o.copy_from_slice(x);
            return;
        }
        mask.fill(start as u32, o);
        o.iter_mut().zip(x).for_each(|(o, &v)| *o *= v);
    });
}
