//! CPU twins of `shaders/layer_norm.wgsl`: layer normalisation of the rows of `[rows, cols]`,
//! with a gain and bias per column, its input gradient per row and its parameter gradients per
//! column. Row sums are added in the GPU workgroup's order ([`workgroup_sum`]), so both devices
//! round alike and the thread count changes nothing. Wrapper: `ops::layer_norm`; oracle:
//! `reference::layer_norm`.

use crate::kernels::reduce::{workgroup_size, workgroup_sum, workgroup_sum_indexed};
use crate::kernels::{CpuKernel, KernelArgs, Rows, par_for};

/// The uniform struct of `layer_norm.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    /// Rows normalised independently.
    pub rows: u32,
    /// Elements of a row (the normalised trailing dimensions).
    pub cols: u32,
    /// Added to the variance before the square root.
    pub eps: f32,
    /// Padding to 16 bytes.
    pub _pad: u32,
}

/// Elements per parallel block of rows (or of columns, in `backward_params`).
const BLOCK: usize = 1 << 13;

/// The twin of each entry point.
pub fn twin(entry: &str) -> Option<CpuKernel> {
    Some(match entry {
        "forward" => forward,
        "backward_input" => backward_input,
        "backward_params" => backward_params,
        _ => return None,
    })
}

/// (rows, cols, the WG specialisation the wrapper chose for these rows).
fn sizes(p: &Params) -> (usize, usize, usize) {
    let wg = workgroup_size(p.cols) as usize;
    (p.rows as usize, p.cols as usize, wg)
}

/// Bindings: x, gain, bias, y, mean, rstd.
fn forward(args: &KernelArgs<'_>) {
    let p: Params = args.params();
    let (rows, cols, wg) = sizes(&p);
    let [x, gain, bias] = args.reads([0, 1, 2]);
    let (gain, bias) = (&gain[..cols], &bias[..cols]);
    let per = (BLOCK / cols).max(1);
    let y = Rows::new(&mut args.write(3)[..rows * cols], per * cols);
    let mean = Rows::new(&mut args.write(4)[..rows], per);
    let rstd = Rows::new(&mut args.write(5)[..rows], per);
    par_for(args, args.parallel(rows * cols), rows.div_ceil(per), |b| {
        // SAFETY: par_for visits each block once.
        let (y, mean, rstd) = unsafe { (y.row(b), mean.row(b), rstd.row(b)) };
        let x = &x[b * per * cols..][..y.len()];
        for (((y, x), m_out), r_out) in y.chunks_mut(cols).zip(x.chunks(cols)).zip(mean).zip(rstd) {
            let m = workgroup_sum(wg, x, |v| v) / cols as f32;
            let var = workgroup_sum(wg, x, |v| (v - m) * (v - m)) / cols as f32;
            let r = 1.0 / (var + p.eps).sqrt();
            for (((y, &x), &g), &c) in y.iter_mut().zip(x).zip(gain).zip(bias) {
                *y = (x - m) * r * g + c;
            }
            (*m_out, *r_out) = (m, r);
        }
    });
}

/// Bindings: x, gain, dy, saved mean, saved rstd, dx.
fn backward_input(args: &KernelArgs<'_>) {
    let p: Params = args.params();
    let (rows, cols, wg) = sizes(&p);
    let [x, gain, dy, mean, rstd] = args.reads([0, 1, 2, 3, 4]);
    let gain = &gain[..cols];
    let per = (BLOCK / cols).max(1);
    let dx = Rows::new(&mut args.write(5)[..rows * cols], per * cols);
    par_for(
        args,
        args.parallel(2 * rows * cols),
        rows.div_ceil(per),
        |b| {
            // SAFETY: par_for visits each block once.
            let dx = unsafe { dx.row(b) };
            for (k, dx) in dx.chunks_mut(cols).enumerate() {
                let row = b * per + k;
                let (x, dy) = (&x[row * cols..][..cols], &dy[row * cols..][..cols]);
                let (m, r) = (mean[row], rstd[row]);
                let g = |j: usize| dy[j] * gain[j];
                let mean_g = workgroup_sum_indexed(wg, cols, g) / cols as f32;
                let mean_gx =
                    workgroup_sum_indexed(wg, cols, |j| g(j) * ((x[j] - m) * r)) / cols as f32;
                for (j, dx) in dx.iter_mut().enumerate() {
                    *dx = r * (g(j) - mean_g - (x[j] - m) * r * mean_gx);
                }
            }
        },
    );
}

/// Bindings: x, dy, saved mean, saved rstd, dgain, dbias. Columns split over threads, each
/// column's rows added in order.
fn backward_params(args: &KernelArgs<'_>) {
    let p: Params = args.params();
    let (rows, cols, _) = sizes(&p);
    let [x, dy, mean, rstd] = args.reads([0, 1, 2, 3]);
    // Column blocks wide enough to stream rows, and enough of them to split.
    let width = (BLOCK / rows.max(1)).clamp(16, cols.max(16));
    let dgain = Rows::new(&mut args.write(4)[..cols], width);
    let dbias = Rows::new(&mut args.write(5)[..cols], width);
    par_for(
        args,
        args.parallel(rows * cols),
        cols.div_ceil(width),
        |b| {
            // SAFETY: par_for visits each block once.
            let (dg, db) = unsafe { (dgain.row(b), dbias.row(b)) };
            let first = b * width;
            dg.fill(0.0);
            db.fill(0.0);
            for r in 0..rows {
                let start = r * cols + first;
                let (x, dy) = (&x[start..start + dg.len()], &dy[start..start + dg.len()]);
                let (m, s) = (mean[r], rstd[r]);
                for (((dg, db), &x), &g) in dg.iter_mut().zip(db.iter_mut()).zip(x).zip(dy) {
                    *dg += g * ((x - m) * s);
                    *db += g;
                }
            }
        },
    );
}
