//! CPU twins of `shaders/optim.wgsl`: Adam, SGD (momentum, dampening, Nesterov) and the two
//! passes of the global gradient norm, each update with a `_clip` variant that scales the
//! gradients by `min(1, max_norm / (norm + 1e-6))` as it reads them. Wrapper: `optim`; oracle:
//! `reference::optim`.
//!
//! The norm keeps the GPU's partial structure: one partial Σ g² per chunk of `p.chunk`
//! elements, each added in the order of a 256-thread workgroup ([`workgroup_sum`]), then the
//! partials the same way.

use crate::kernels::reduce::workgroup_sum;
use crate::kernels::{CpuKernel, KernelArgs, Rows, par_for};

/// The uniform struct of every entry point of `optim.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    /// Elements to update (or to reduce).
    pub n: u32,
    /// Partial sums: `sq_partials` workgroups, `norm_finish` inputs.
    pub groups: u32,
    /// Elements per `sq_partials` workgroup.
    pub chunk: u32,
    /// SGD: 1 on the first step (the momentum buffer starts as g).
    pub first: u32,
    /// Adam: step size lr / (1 − beta1^t); SGD: lr.
    pub lr: f32,
    /// L2 penalty: g += weight_decay · p (PyTorch's Adam and SGD).
    pub weight_decay: f32,
    /// Clipping threshold of the `_clip` entry points.
    pub max_norm: f32,
    /// Adam: lerp weight of m, 1 − beta1.
    pub one_minus_beta1: f32,
    /// Adam: decay of v.
    pub beta2: f32,
    /// Adam: 1 − beta2.
    pub one_minus_beta2: f32,
    /// Adam: sqrt(1 − beta2^t).
    pub bc2_sqrt: f32,
    /// Adam: added to the denominator.
    pub eps: f32,
    /// SGD: momentum factor.
    pub momentum: f32,
    /// SGD: 1 − dampening.
    pub damp: f32,
    /// SGD: 1 for Nesterov momentum.
    pub nesterov: u32,
    /// Padding to 64 bytes.
    pub _pad: u32,
}

/// Threads per workgroup in `optim.wgsl`.
const WG: usize = 256;
/// Elements per parallel chunk of an update.
const CHUNK: usize = 1 << 14;
/// Added to the norm before dividing, as in `clip_scale` of the WGSL.
pub use crate::spec::optim::CLIP_EPS;

/// The twin of each entry point.
pub fn twin(entry: &str) -> Option<CpuKernel> {
    Some(match entry {
        "sq_partials" => sq_partials,
        "norm_finish" => norm_finish,
        "adam" => |a| adam(a, false),
        "adam_clip" => |a| adam(a, true),
        "sgd" => |a| sgd(a, false),
        "sgd_clip" => |a| sgd(a, true),
        "sgd_momentum" => |a| sgd_momentum(a, false),
        "sgd_momentum_clip" => |a| sgd_momentum(a, true),
        _ => return None,
    })
}

/// Bindings: grads, partials_out. `partials_out[g] = Σ g²` over elements
/// `[g · chunk, min((g + 1) · chunk, n))`, for g < groups (the workgroup index is `wid.x`).
fn sq_partials(args: &KernelArgs<'_>) {
    let p: Params = args.params();
    let grads = args.read(0);
    let out = args.write(1);
    let groups = (p.groups as usize).min(args.groups()[0] as usize);
    let (n, chunk) = ((p.n as usize).min(grads.len()), p.chunk as usize);
    let out = Rows::new(&mut out[..groups], 1);
    par_for(args, args.parallel(n), groups, |g| {
        let start = (g * chunk).min(n);
        let x = &grads[start..(start + chunk).min(n)];
        // SAFETY: par_for visits each group once.
        let o = unsafe { out.row(g) };
        o[0] = workgroup_sum(WG, x, |x| x * x);
    });
}

/// Bindings: partials_in, norm_out. `norm_out[0] = sqrt(Σ partials)`, one workgroup.
fn norm_finish(args: &KernelArgs<'_>) {
    let p: Params = args.params();
    let partials = args.read(0);
    let out = args.write(1);
    let groups = (p.groups as usize).min(partials.len());
    out[0] = workgroup_sum(WG, &partials[..groups], |x| x).sqrt();
}

/// Elements an update reaches: i = (wid.x + wid.y · nwg.x) · WG + lid, kept while i < n.
fn elements(args: &KernelArgs<'_>, p: &Params) -> usize {
    let [gx, gy, _] = args.groups();
    (p.n as usize).min(gx as usize * gy as usize * WG)
}

/// The gradient factor: 1, or `clip_scale()` of the WGSL from the norm at binding 1.
fn grad_scale(args: &KernelArgs<'_>, p: &Params, clip: bool) -> f32 {
    if clip {
        (p.max_norm / (args.read(1)[0] + CLIP_EPS)).min(1.0)
    } else {
        1.0
    }
}

/// Bindings: grads, [norm,] params, m, v. PyTorch's single-tensor Adam:
/// g += wd·p; m = lerp(m, g, 1 − beta1); v = beta2·v + (1 − beta2)·g²;
/// p −= step_size · m / (sqrt(v) / sqrt(bc2) + eps).
fn adam(args: &KernelArgs<'_>, clip: bool) {
    let p: Params = args.params();
    let n = elements(args, &p);
    let scale = grad_scale(args, &p, clip);
    let o = clip as usize;
    let grads = &args.read(0)[..n];
    let params = Rows::new(&mut args.write(1 + o)[..n], CHUNK);
    let m = Rows::new(&mut args.write(2 + o)[..n], CHUNK);
    let v = Rows::new(&mut args.write(3 + o)[..n], CHUNK);
    par_for(args, args.parallel(n), n.div_ceil(CHUNK), |c| {
        // SAFETY: par_for visits each chunk once.
        let (xs, ms, vs) = unsafe { (params.row(c), m.row(c), v.row(c)) };
        let gs = &grads[c * CHUNK..c * CHUNK + xs.len()];
        for (((x, m), v), &g) in xs.iter_mut().zip(ms).zip(vs).zip(gs) {
            let g = g * scale + p.weight_decay * *x;
            let m0 = *m;
            let m1 = m0 + p.one_minus_beta1 * (g - m0);
            let v1 = p.beta2 * *v + p.one_minus_beta2 * g * g;
            *m = m1;
            *v = v1;
            let denom = v1.sqrt() / p.bc2_sqrt + p.eps;
            *x -= p.lr * (m1 / denom);
        }
    });
}

/// Bindings: grads, [norm,] params. p −= lr · (g + wd·p).
fn sgd(args: &KernelArgs<'_>, clip: bool) {
    let p: Params = args.params();
    let n = elements(args, &p);
    let scale = grad_scale(args, &p, clip);
    let grads = &args.read(0)[..n];
    let params = Rows::new(&mut args.write(1 + clip as usize)[..n], CHUNK);
    par_for(args, args.parallel(n), n.div_ceil(CHUNK), |c| {
        // SAFETY: par_for visits each chunk once.
        let xs = unsafe { params.row(c) };
        let gs = &grads[c * CHUNK..c * CHUNK + xs.len()];
        for (x, &g) in xs.iter_mut().zip(gs) {
            let g = g * scale + p.weight_decay * *x;
            *x -= p.lr * g;
        }
    });
}

/// Bindings: grads, [norm,] params, buf. buf = g on the first step, else
/// momentum·buf + (1 − dampening)·g; the step is g + momentum·buf (Nesterov) or buf.
fn sgd_momentum(args: &KernelArgs<'_>, clip: bool) {
    let p: Params = args.params();
    let n = elements(args, &p);
    let scale = grad_scale(args, &p, clip);
    let o = clip as usize;
    let grads = &args.read(0)[..n];
    let params = Rows::new(&mut args.write(1 + o)[..n], CHUNK);
    let bufs = Rows::new(&mut args.write(2 + o)[..n], CHUNK);
    let (first, nesterov) = (p.first != 0, p.nesterov != 0);
    par_for(args, args.parallel(n), n.div_ceil(CHUNK), |c| {
        // SAFETY: par_for visits each chunk once.
        let (xs, bs) = unsafe { (params.row(c), bufs.row(c)) };
        let gs = &grads[c * CHUNK..c * CHUNK + xs.len()];
        for ((x, b), &g) in xs.iter_mut().zip(bs).zip(gs) {
            let g = g * scale + p.weight_decay * *x;
            let buf = if first {
                g
            } else {
                p.momentum * *b + p.damp * g
            };
            *b = buf;
            let d = if nesterov { g + p.momentum * buf } else { buf };
            *x -= p.lr * d;
        }
    });
}
