//! CPU twins of `forward_dido` and `backward_dido` in `shaders/input_attention.wgsl`: the
//! input attention of variant D (docs/spec.md §3) for one time step, with the WGSL's order of
//! operations. One iteration per batch row (the GPU's workgroup).
//!
//! Layouts: kv [1 + T·B, h_in·d_k + h_in·d_vin] (row 0 the null input's b_k | b_v, row
//! 1 + t·B + b x_t's keys and values); q [T, B, N, h_in·d_k]; alpha [T, B, N] (α_x before
//! dropout); mask [T, B, N]; u [T, B, N, d_vin]. Backward: du [B, N, d_vin]; dkv
//! [T, B, h_in·d_k + 2·h_in·d_vin] = (dk_x | dv_x | dv_∅). No gradient for the null key: the
//! softmax sees s_x − s_∅, from which b_k cancels.

use super::{Dims, Params, step_rows, vec_mat};
use crate::kernels::common::{DropoutStream, sigmoid};
use crate::kernels::{KernelArgs, par_for};

/// Dropout tensor id of the input attention's two probabilities (index (b·N + i)·2 + slot).
const TENSOR_PROBS: u32 = 4;

/// Row 1 + `row` of kv (x's) and row 0 (the null input's).
fn kv_rows<'a>(kv: &'a [f32], d: &Dims, row: usize) -> (&'a [f32], &'a [f32]) {
    let w = d.wq + d.heads * d.dv;
    (&kv[(1 + row) * w..(2 + row) * w], &kv[..w])
}

/// v̄ at column c: (Σ_e v[wq + e·d_v + c]) · (1/h_in), summed in order of e.
#[inline]
fn head_mean(kv_row: &[f32], d: &Dims, c: usize, inv_heads: f32) -> f32 {
    let mut s = 0.0f32;
    for e in 0..d.heads {
        s += kv_row[d.wq + e * d.dv + c];
    }
    s * inv_heads
}

pub(super) fn forward(args: &KernelArgs<'_>) {
    let p: Params = args.params();
    let d = Dims::of(&p);
    let [hs, in_q, kv, mask_in] = args.reads([0, 1, 2, 3]);
    let (n, h, wq, dv) = (d.n, d.h, d.wq, d.dv);
    let q = step_rows(&d, args.write(4), n * wq);
    let alpha = step_rows(&d, args.write(5), n);
    let mask = step_rows(&d, args.write(6), n);
    let u = step_rows(&d, args.write(7), n * dv);
    let in_q = &in_q[..n * h * wq];
    let drop = DropoutStream::new(p.seed, p.step, TENSOR_PROBS, p.threshold, p.scale);
    let scale = p.inv_sqrt_dk * p.inv_heads;
    let work = d.batch * n * (h * wq + 2 * wq + 2 * d.heads * dv);
    par_for(args, args.parallel(work), d.batch, |b| {
        let row = d.row0 + b;
        let h_row = &hs[row * n * h..(row + 1) * n * h];
        let (kx_row, kn_row) = kv_rows(kv, &d, row);
        // SAFETY: row b of each output belongs to this iteration only.
        let (q, alpha, mask, u) = unsafe { (q.row(b), alpha.row(b), mask.row(b), u.row(b)) };
        for i in 0..n {
            vec_mat(
                &mut q[i * wq..(i + 1) * wq],
                &h_row[i * h..(i + 1) * h],
                &in_q[i * h * wq..(i + 1) * h * wq],
                wq,
            );
        }
        // Head-averaged scores on x and on the null input.
        let mut sx = [0.0f32; super::MAX_SCORES];
        let mut sn = [0.0f32; super::MAX_SCORES];
        for i in 0..n {
            let qi = &q[i * wq..(i + 1) * wq];
            let (mut ax, mut an) = (0.0f32, 0.0f32);
            for c in 0..wq {
                ax += qi[c] * kx_row[c];
                an += qi[c] * kn_row[c];
            }
            sx[i] = ax * scale;
            sn[i] = an * scale;
            alpha[i] = sigmoid(sx[i] - sn[i]);
        }
        // The mask: the k largest raw s_x, ties to the lower index (or the override).
        for i in 0..n {
            mask[i] = if p.use_override != 0 {
                if mask_in[row * n + i] > 0.5 { 1.0 } else { 0.0 }
            } else {
                let rank = (0..n)
                    .filter(|&j| sx[j] > sx[i] || (sx[j] == sx[i] && j < i))
                    .count();
                if rank < p.k_active as usize { 1.0 } else { 0.0 }
            };
        }
        // u_i = m_i·(α'_x v̄_x + α'_∅ v̄_∅).
        for i in 0..n {
            let ax = sigmoid(sx[i] - sn[i]);
            let kx = drop.factor(((b * n + i) * 2) as u32);
            let kn = drop.factor(((b * n + i) * 2 + 1) as u32);
            for c in 0..dv {
                let vx = head_mean(kx_row, &d, c, p.inv_heads);
                let vn = head_mean(kn_row, &d, c, p.inv_heads);
                u[i * dv + c] = mask[i] * (ax * kx * vx + (1.0 - ax) * kn * vn);
            }
        }
    });
}

pub(super) fn backward(args: &KernelArgs<'_>) {
    let p: Params = args.params();
    let d = Dims::of(&p);
    let [kv, du, q_in, alpha_in, mask_saved] = args.reads([0, 1, 2, 3, 4]);
    let (n, wq, dv) = (d.n, d.wq, d.dv);
    let wv = d.heads * dv;
    let dq = step_rows(&d, args.write(5), n * wq);
    let dkv = step_rows(&d, args.write(6), wq + 2 * wv);
    let du = &du[..d.batch * n * dv];
    let drop = DropoutStream::new(p.seed, p.step, TENSOR_PROBS, p.threshold, p.scale);
    let scale = p.inv_sqrt_dk * p.inv_heads;
    let work = d.batch * n * (3 * wq + 4 * wv);
    par_for(args, args.parallel(work), d.batch, |b| {
        let row = d.row0 + b;
        let (kx_row, kn_row) = kv_rows(kv, &d, row);
        let du_row = &du[b * n * dv..(b + 1) * n * dv];
        let q_row = &q_in[row * n * wq..(row + 1) * n * wq];
        let alpha_row = &alpha_in[row * n..(row + 1) * n];
        let mask_row = &mask_saved[row * n..(row + 1) * n];
        // SAFETY: row b of each output belongs to this iteration only.
        let (dq, dkv) = unsafe { (dq.row(b), dkv.row(b)) };
        let keeps = |i: usize| {
            (
                drop.factor(((b * n + i) * 2) as u32),
                drop.factor(((b * n + i) * 2 + 1) as u32),
            )
        };
        // 1. The two-slot softmax's gradient of every active mechanism.
        let mut dsx = [0.0f32; super::MAX_SCORES];
        let mut dsn = [0.0f32; super::MAX_SCORES];
        for i in 0..n {
            let m = mask_row[i];
            if m <= 0.5 {
                continue;
            }
            let (mut dax, mut dan) = (0.0f32, 0.0f32);
            for c in 0..dv {
                let vx = head_mean(kx_row, &d, c, p.inv_heads);
                let vn = head_mean(kn_row, &d, c, p.inv_heads);
                let g = du_row[i * dv + c];
                dax += g * vx;
                dan += g * vn;
            }
            let (kx, kn) = keeps(i);
            dax *= m * kx;
            dan *= m * kn;
            let ax = alpha_row[i];
            let an = 1.0 - ax;
            let dot = ax * dax + an * dan;
            dsx[i] = ax * (dax - dot);
            dsn[i] = an * (dan - dot);
        }
        // 2. dv_x and dv_∅, each head's column c getting Σ_i α'_i du_i[c] / h_in.
        let (dk, rest) = dkv.split_at_mut(wq);
        let (dvx, dvn) = rest.split_at_mut(wv);
        for col in 0..wv {
            let c = col % dv;
            let (mut sx, mut sn) = (0.0f32, 0.0f32);
            for i in 0..n {
                let m = mask_row[i];
                let g = du_row[i * dv + c];
                let ax = alpha_row[i];
                let (kx, kn) = keeps(i);
                sx += ax * (m * kx) * g;
                sn += (1.0 - ax) * (m * kn) * g;
            }
            dvx[col] = sx * p.inv_heads;
            dvn[col] = sn * p.inv_heads;
        }
        // 3. dq_i = (ds_x k_x + ds_∅ k_∅)·scale.
        for i in 0..n {
            for c in 0..wq {
                dq[i * wq + c] = (dsx[i] * kx_row[c] + dsn[i] * kn_row[c]) * scale;
            }
        }
        // 4. dk_x = Σ_i ds_x,i q_i·scale, summed in order of i.
        for c in 0..wq {
            let mut s = 0.0f32;
            for i in 0..n {
                s += dsx[i] * q_row[i * wq + c];
            }
            dk[c] = s * scale;
        }
    });
}
