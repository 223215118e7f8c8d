//! CPU twins of `shaders/upsample.wgsl`: nearest-neighbour upsampling of the two spatial
//! dimensions by an integer factor, and its backward (each input pixel's f×f block of the
//! output gradient summed, rows then columns, as the WGSL adds them). Wrapper: `ops::upsample`;
//! oracle: `reference::upsample`.

use crate::kernels::{CpuKernel, KernelArgs, Rows, par_for};

/// The uniform struct of `upsample.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    /// Leading dimensions flattened (batch × channels).
    pub planes: u32,
    /// Rows of the input.
    pub height: u32,
    /// Columns of the input.
    pub width: u32,
    /// The integer factor f.
    pub factor: u32,
}

/// Threads per workgroup in `upsample.wgsl` (`WG` there).
pub const WG: u64 = 256;

/// The twin of each entry point.
pub fn twin(entry: &str) -> Option<CpuKernel> {
    Some(match entry {
        "nearest" => nearest,
        "nearest_backward" => nearest_backward,
        _ => return None,
    })
}

/// Sizes of one plane: (input rows, input columns, factor).
fn sizes(p: &Params) -> (usize, usize, usize) {
    (p.height as usize, p.width as usize, p.factor as usize)
}

/// Bindings: x, y. One plane per parallel iteration.
fn nearest(args: &KernelArgs<'_>) {
    let p: Params = args.params();
    let (h, w, f) = sizes(&p);
    let planes = p.planes as usize;
    let out_plane = h * f * w * f;
    let x = args.read(0);
    let y = Rows::new(&mut args.write(1)[..planes * out_plane], out_plane);
    par_for(args, args.parallel(planes * out_plane), planes, |plane| {
        // SAFETY: par_for visits each plane once.
        let y = unsafe { y.row(plane) };
        let x = &x[plane * h * w..(plane + 1) * h * w];
        for (out_row, x_row) in y.chunks_mut(w * f * f).zip(x.chunks(w)) {
            // The first of the f output rows from this input row, then its copies.
            let (first, copies) = out_row.split_at_mut(w * f);
            for (block, &v) in first.chunks_mut(f).zip(x_row) {
                block.fill(v);
            }
            for copy in copies.chunks_mut(w * f) {
                copy.copy_from_slice(first);
            }
        }
    });
}

/// Bindings: dy, dx. One plane per parallel iteration.
fn nearest_backward(args: &KernelArgs<'_>) {
    let p: Params = args.params();
    let (h, w, f) = sizes(&p);
    let planes = p.planes as usize;
    let out_w = w * f;
    let dy = args.read(0);
    let dx = Rows::new(&mut args.write(1)[..planes * h * w], h * w);
    par_for(
        args,
        args.parallel(planes * h * w * f * f),
        planes,
        |plane| {
            // SAFETY: par_for visits each plane once.
            let dx = unsafe { dx.row(plane) };
            let dy = &dy[plane * h * f * out_w..(plane + 1) * h * f * out_w];
            for (i, dx_row) in dx.chunks_mut(w).enumerate() {
                for (j, d) in dx_row.iter_mut().enumerate() {
                    let first = i * f * out_w + j * f;
                    let mut acc = 0.0f32;
                    for a in 0..f {
                        for &g in &dy[first + a * out_w..first + a * out_w + f] {
                            acc += g;
                        }
                    }
                    *d = acc;
                }
            }
        },
    );
}
