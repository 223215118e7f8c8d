//! CPU twin of `shaders/cross_entropy.wgsl`: softmax cross-entropy of logits `[rows, classes]`
//! against class indices `[rows]`, loss and gradient in one pass per row. Sums are added in the
//! GPU workgroup's order ([`workgroup_sum`]). Wrapper: `ops::cross_entropy`; oracle:
//! `reference::cross_entropy`.

use crate::kernels::reduce::{max_of, workgroup_size, workgroup_sum};
use crate::kernels::{CpuKernel, KernelArgs, Rows, par_for};

/// The uniform struct of `cross_entropy.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    /// Rows of logits (= workgroups that do work).
    pub rows: u32,
    /// Classes per row; a target `>= classes` marks a row with loss 0 and a zero gradient.
    pub classes: u32,
    /// Factor of the gradient rows (1 / rows for a mean loss).
    pub grad_scale: f32,
    /// Padding to 16 bytes.
    pub _pad: u32,
}

/// Elements of logits per parallel block of rows.
const BLOCK: usize = 1 << 13;

/// The twin of each entry point.
pub fn twin(entry: &str) -> Option<CpuKernel> {
    Some(match entry {
        "softmax_cross_entropy" => softmax_cross_entropy,
        _ => return None,
    })
}

/// Bindings: logits, targets (u32), loss, dlogits.
fn softmax_cross_entropy(args: &KernelArgs<'_>) {
    let p: Params = args.params();
    let logits = args.read(0);
    let targets = args.read_u32(1);
    let loss = args.write(2);
    let dlogits = args.write(3);
    let classes = p.classes as usize;
    let [gx, gy, _] = args.groups();
    // Rows are wid.x + wid.y · nwg.x; those past p.rows return.
    let rows = (p.rows as usize).min(gx as usize * gy as usize);
    if rows == 0 || classes == 0 {
        return;
    }
    let wg = workgroup_size(p.classes) as usize;
    let per = (BLOCK / classes).max(1);
    let loss = Rows::new(&mut loss[..rows], per);
    let dlogits = Rows::new(&mut dlogits[..rows * classes], per * classes);
    par_for(
        args,
        args.parallel(rows * classes),
        rows.div_ceil(per),
        |b| {
            // SAFETY: par_for visits each block once.
            let (l, d) = unsafe { (loss.row(b), dlogits.row(b)) };
            let first = b * per;
            let x = &logits[first * classes..(first + l.len()) * classes];
            for (r, ((l, d), x)) in l
                .iter_mut()
                .zip(d.chunks_mut(classes))
                .zip(x.chunks(classes))
                .enumerate()
            {
                *l = row(wg, &p, x, targets[first + r], d);
            }
        },
    );
}

/// One row: writes its gradient into `d` and returns its loss.
#[inline]
fn row(wg: usize, p: &Params, x: &[f32], t: u32, d: &mut [f32]) -> f32 {
    let m = max_of(x);
    for (d, &v) in d.iter_mut().zip(x) {
        *d = (v - m).exp();
    }
    // The max element contributes exp(0) = 1, so sum >= 1: the division and log are safe.
    let sum = workgroup_sum(wg, d, |e| e);
    let valid = t < p.classes;
    // An invalid target zeroes the whole row's gradient (scale 0) and its loss.
    let scale = if valid { p.grad_scale } else { 0.0 };
    let inv = 1.0 / sum;
    // (e / sum − onehot) · scale; subtracting onehot = 0 changes nothing off the target.
    let e_t = if valid { d[t as usize] } else { 0.0 };
    d.iter_mut().for_each(|d| *d = *d * inv * scale);
    if !valid {
        return 0.0;
    }
    let t = t as usize;
    d[t] = (e_t * inv - 1.0) * scale;
    // log(sum) + m − x_t, written so the large terms cancel before rounding.
    sum.ln() - (x[t] - m)
}
