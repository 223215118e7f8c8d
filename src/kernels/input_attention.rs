//! CPU twins of `shaders/input_attention.wgsl`: the RIMs input attention of one time step,
//! fused with the queries and the top-k mask, and its backward. One iteration per batch row
//! (the GPU's workgroup), spread over the team when the batch is large enough; every output
//! element is computed by one iteration, with the WGSL's order of operations.
//! Wrapper: `ops::input_attention`; oracle: `reference::input_attention` (variant D's:
//! `reference::rims_dido`).
//!
//! Variant D's twins (`forward_dido`, `backward_dido`) are in `input_attention/dido.rs`.
//!
//! Layouts (row-major, as in the shader): hs [T+1, B, N·H] (h_t at t+1), in_q [N, H, h_in·d_k],
//! kv [T, B, h_in·d_k + A] (k | v), q [T, B, N, h_in·d_k], alpha [T, B, N, h_in],
//! mask [T, B, N], u [T, B, N, A]; backward: du [B, N, A] (this step), dq like q, dkv like kv.

use crate::kernels::common::DropoutStream;
use crate::kernels::common::sigmoid;
use crate::kernels::{CpuKernel, KernelArgs, Rows, par_for};

mod dido;

/// The uniform struct of every entry point of `input_attention.wgsl` (variant A's and D's).
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    /// B: batch rows.
    pub batch: u32,
    /// N: mechanisms.
    pub n: u32,
    /// H: hidden size per mechanism.
    pub h: u32,
    /// h_in: attention heads.
    pub heads: u32,
    /// d_k: key and query size per head.
    pub dk: u32,
    /// d_vin: value size per head; A = heads · dv.
    pub dv: u32,
    /// k: mechanisms the top-k rule makes active.
    pub k_active: u32,
    /// The time step this dispatch works on.
    pub t: u32,
    /// Nonzero: the mask is `mask_in > 0.5` instead of the top-k rule.
    pub use_override: u32,
    /// Dropout on u: run seed.
    pub seed: u32,
    /// Dropout on u: step counter (a new step draws a new mask).
    pub step: u32,
    /// Dropout on u: round(p · 2^24); 0 = no dropout.
    pub threshold: u32,
    /// Dropout on u: factor of kept elements, 1 / (1 − p).
    pub scale: f32,
    /// 1 / sqrt(d_k).
    pub inv_sqrt_dk: f32,
    /// 1 / h_in (variant D's entry points average over the heads; A's ignore it).
    pub inv_heads: f32,
    /// Padding to the WGSL struct's size.
    pub _pad: u32,
}

pub use crate::spec::cell::MAX_SCORES;

/// Dropout tensor id of u (the `tensor` argument of `dropout_factor`).
const TENSOR_U: u32 = 0;

/// Columns of a dropout chunk whose factors are drawn into a stack buffer at once.
const CHUNK: usize = 64;

/// Mechanisms whose backward sums advance together (the code below assumes 4).
const GROUP: usize = 4;

/// The twin of each entry point.
pub fn twin(entry: &str) -> Option<CpuKernel> {
    Some(match entry {
        "forward" => forward,
        "backward" => backward,
        "forward_dido" => dido::forward,
        "backward_dido" => dido::backward,
        _ => return None,
    })
}

/// Sizes of one dispatch, as usize.
#[derive(Clone, Copy)]
struct Dims {
    batch: usize,
    n: usize,
    h: usize,
    heads: usize,
    dk: usize,
    dv: usize,
    /// h_in · d_k.
    wq: usize,
    /// A = h_in · d_v.
    a: usize,
    /// First row (t · B) of this step in the [T, B, …] tensors.
    row0: usize,
}

impl Dims {
    fn of(p: &Params) -> Dims {
        let (heads, dk, dv) = (p.heads as usize, p.dk as usize, p.dv as usize);
        let d = Dims {
            batch: p.batch as usize,
            n: p.n as usize,
            h: p.h as usize,
            heads,
            dk,
            dv,
            wq: heads * dk,
            a: heads * dv,
            row0: p.t as usize * p.batch as usize,
        };
        assert!(
            d.n * heads.max(1) <= MAX_SCORES,
            "input attention twin: N · h_in = {} · {heads} exceeds {MAX_SCORES} scores",
            d.n
        );
        d
    }

    /// Words of one batch row of kv (k | v).
    fn kvw(&self) -> usize {
        self.wq + self.a
    }
}

/// The rows of this step of a [T, B, width] tensor, one per batch row.
fn step_rows<'a>(d: &Dims, out: &'a mut [f32], width: usize) -> Rows<'a, f32> {
    let (start, len) = (d.row0 * width, d.batch * width);
    assert!(
        start + len <= out.len(),
        "input attention twin: an output binding holds {} words, step {} needs {}",
        out.len(),
        d.row0 / d.batch.max(1),
        start + len
    );
    Rows::new(&mut out[start..start + len], width)
}

/// `out[c] = Σ_r x[r] · w[r · stride + c]` for c < out.len(), summed over r in order from 0
/// as the WGSL loops do, with a block of columns held in registers while w's rows stream by.
/// On processors with AVX the same loop runs 8 lanes wide: separate multiplies and adds in the
/// same order (Rust never fuses them), so the same bits either way.
pub(crate) fn vec_mat(out: &mut [f32], x: &[f32], w: &[f32], stride: usize) {
    if out.is_empty() || x.is_empty() {
        out.fill(0.0);
        return;
    }
    let w = &w[..(x.len() - 1) * stride + out.len()];
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the processor has AVX (just checked).
        unsafe { vec_mat_avx(out, x, w, stride) };
        return;
    }
    vec_mat_body(out, x, w, stride);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
fn vec_mat_avx(out: &mut [f32], x: &[f32], w: &[f32], stride: usize) {
    vec_mat_body(out, x, w, stride);
}

#[inline(always)]
fn vec_mat_body(out: &mut [f32], x: &[f32], w: &[f32], stride: usize) {
    let width = out.len();
    let mut c0 = 0;
    while c0 < width {
        let left = width - c0;
        c0 += if left >= 32 {
            vec_mat_block::<32>(&mut out[c0..], x, &w[c0..], stride)
        } else if left >= 16 {
            vec_mat_block::<16>(&mut out[c0..], x, &w[c0..], stride)
        } else if left >= 8 {
            vec_mat_block::<8>(&mut out[c0..], x, &w[c0..], stride)
        } else {
            let mut acc = [0.0f32; 8];
            for (r, &xr) in x.iter().enumerate() {
                for (a, &wv) in acc[..left].iter_mut().zip(&w[c0 + r * stride..][..left]) {
                    *a += xr * wv;
                }
            }
            out[c0..].copy_from_slice(&acc[..left]);
            left
        };
    }
}

/// The first N columns of [`vec_mat`]; returns N.
#[inline(always)]
fn vec_mat_block<const N: usize>(out: &mut [f32], x: &[f32], w: &[f32], stride: usize) -> usize {
    let mut acc = [0.0f32; N];
    for (r, &xr) in x.iter().enumerate() {
        let wr: &[f32; N] = w[r * stride..r * stride + N].try_into().unwrap();
        for k in 0..N {
            acc[k] += xr * wr[k];
        }
    }
    out[..N].copy_from_slice(&acc);
    N
}

/// `out[j] = Σ_c x[c] · rows[j · stride + c]` for every j < out.len(), each sum in order of c
/// from 0 (the WGSL's dot products), four rows at a time so that four independent sums are in
/// flight in registers.
#[inline]
pub(crate) fn dots(out: &mut [f32], x: &[f32], rows: &[f32], stride: usize) {
    let len = x.len();
    let mut j = 0;
    while j + 4 <= out.len() {
        let (r0, r1, r2, r3) = (
            &rows[j * stride..][..len],
            &rows[(j + 1) * stride..][..len],
            &rows[(j + 2) * stride..][..len],
            &rows[(j + 3) * stride..][..len],
        );
        let mut a = [0.0f32; 4];
        for c in 0..len {
            let xc = x[c];
            a[0] += xc * r0[c];
            a[1] += xc * r1[c];
            a[2] += xc * r2[c];
            a[3] += xc * r3[c];
        }
        out[j..j + 4].copy_from_slice(&a);
        j += 4;
    }
    for (j, o) in out.iter_mut().enumerate().skip(j) {
        let r = &rows[j * stride..][..len];
        let mut s = 0.0f32;
        for c in 0..len {
            s += x[c] * r[c];
        }
        *o = s;
    }
}

fn forward(args: &KernelArgs<'_>) {
    let p: Params = args.params();
    let d = Dims::of(&p);
    let [hs, in_q, kv, mask_in] = args.reads([0, 1, 2, 3]);
    let (n, h, wq, a, heads) = (d.n, d.h, d.wq, d.a, d.heads);
    let q = step_rows(&d, args.write(4), n * wq);
    let alpha = step_rows(&d, args.write(5), n * heads);
    let mask = step_rows(&d, args.write(6), n);
    let u = step_rows(&d, args.write(7), n * a);
    let in_q = &in_q[..n * h * wq];
    let stream = DropoutStream::new(p.seed, p.step, TENSOR_U, p.threshold, p.scale);
    let work = d.batch * n * (h * wq + wq + 2 * a);
    par_for(args, args.parallel(work), d.batch, |b| {
        let row = d.row0 + b;
        let h_row = &hs[row * n * h..(row + 1) * n * h];
        let (key, val) = kv[row * d.kvw()..(row + 1) * d.kvw()].split_at(wq);
        let mask_in = if p.use_override != 0 {
            &mask_in[row * n..(row + 1) * n]
        } else {
            &[][..]
        };
        // SAFETY: row b of each output belongs to this iteration only.
        let (q, alpha, mask, u) = unsafe { (q.row(b), alpha.row(b), mask.row(b), u.row(b)) };
        // 1. Queries of every mechanism: q_i = h_i · in_q_i.
        for i in 0..n {
            vec_mat(
                &mut q[i * wq..(i + 1) * wq],
                &h_row[i * h..(i + 1) * h],
                &in_q[i * h * wq..(i + 1) * h * wq],
                wq,
            );
        }
        // 2. Scores against the input's key, per head, and α = σ(score).
        let mut scores = [0.0f32; MAX_SCORES];
        let mut acc = [0.0f32; MAX_SCORES];
        for e in 0..heads {
            let acc = &mut acc[..n];
            dots(acc, &key[e * d.dk..(e + 1) * d.dk], &q[e * d.dk..], wq);
            for (i, &s) in acc.iter().enumerate() {
                let o = i * heads + e;
                scores[o] = s * p.inv_sqrt_dk;
                alpha[o] = sigmoid(scores[o]);
            }
        }
        // 3. The mask: the k largest summed scores (ties: lower index), or the override.
        if p.use_override != 0 {
            for (m, &x) in mask.iter_mut().zip(mask_in) {
                *m = if x > 0.5 { 1.0 } else { 0.0 };
            }
        } else {
            let mut sums = [0.0f32; MAX_SCORES];
            for (i, r) in sums[..n].iter_mut().enumerate() {
                let mut s = 0.0f32;
                for &x in &scores[i * heads..(i + 1) * heads] {
                    s += x;
                }
                *r = s;
            }
            let sums = &sums[..n];
            for (i, m) in mask.iter_mut().enumerate() {
                let ri = sums[i];
                let rank = sums
                    .iter()
                    .enumerate()
                    .filter(|&(j, &rj)| rj > ri || (rj == ri && j < i))
                    .count();
                *m = if rank < p.k_active as usize { 1.0 } else { 0.0 };
            }
        }
        // 4. Attended values of every mechanism, active or not, with dropout:
        //    u_i[e·d_v + c] = σ(s_i^e) · v^e[c] · keep.
        for i in 0..n {
            let ui = &mut u[i * a..(i + 1) * a];
            for e in 0..heads {
                // σ(s_i^e) is α, just computed.
                let sg = alpha[i * heads + e];
                let cols = e * d.dv..(e + 1) * d.dv;
                for (o, &v) in ui[cols.clone()].iter_mut().zip(&val[cols]) {
                    *o = sg * v;
                }
            }
            if !stream.is_identity() {
                // Element (b, i, col) of this step's u is draw (b·N + i)·A + col.
                let first = ((b * n + i) * a) as u32;
                let mut keep = [0.0f32; CHUNK];
                for (c, chunk) in ui.chunks_mut(CHUNK).enumerate() {
                    let keep = &mut keep[..chunk.len()];
                    stream.fill(first.wrapping_add((c * CHUNK) as u32), keep);
                    for (o, &k) in chunk.iter_mut().zip(keep.iter()) {
                        *o *= k;
                    }
                }
            }
        }
    });
}

fn backward(args: &KernelArgs<'_>) {
    let p: Params = args.params();
    let d = Dims::of(&p);
    let [kv, du, q_in, alpha_in, mask_saved] = args.reads([0, 1, 2, 3, 4]);
    let (n, wq, a, heads, dk, dv) = (d.n, d.wq, d.a, d.heads, d.dk, d.dv);
    let dq = step_rows(&d, args.write(5), n * wq);
    let dkv = step_rows(&d, args.write(6), d.kvw());
    let du = &du[..d.batch * n * a];
    let stream = DropoutStream::new(p.seed, p.step, TENSOR_U, p.threshold, p.scale);
    let work = d.batch * n * (3 * a + 2 * wq);
    par_for(args, args.parallel(work), d.batch, |b| {
        let row = d.row0 + b;
        let (key, val) = kv[row * d.kvw()..(row + 1) * d.kvw()].split_at(wq);
        let du_row = &du[b * n * a..(b + 1) * n * a];
        let q_row = &q_in[row * n * wq..(row + 1) * n * wq];
        let alpha_row = &alpha_in[row * n * heads..(row + 1) * n * heads];
        let mask_row = &mask_saved[row * n..(row + 1) * n];
        // SAFETY: row b of each output belongs to this iteration only.
        let (dq, dkv) = unsafe { (dq.row(b), dkv.row(b)) };
        let (dkey, dval) = dkv.split_at_mut(wq);
        // 1. ds = α(1 − α)·<du', v> per active mechanism and head (du' = du · keep), and
        // 2. dv = Σ_i α_i du'_i over every mechanism, summed in order of i.
        //    Mechanisms go in groups of GROUP so that their <du', v> sums (each in order of
        //    the column) advance together, as independent chains.
        let mut ds = [0.0f32; MAX_SCORES];
        dval.fill(0.0);
        let mut kept = [[0.0f32; CHUNK]; GROUP];
        for e in 0..heads {
            let end = (e + 1) * dv;
            for i0 in (0..n).step_by(GROUP) {
                let group = GROUP.min(n - i0);
                let mut da = [0.0f32; GROUP];
                let mut c0 = e * dv;
                while c0 < end {
                    let len = CHUNK.min(end - c0);
                    let cols = c0..c0 + len;
                    for (g, kept) in kept[..group].iter_mut().enumerate() {
                        let i = i0 + g;
                        let al = alpha_row[i * heads + e];
                        let du_i = &du_row[i * a..(i + 1) * a][cols.clone()];
                        let (kept, o) = (&mut kept[..len], &mut dval[cols.clone()]);
                        if stream.is_identity() {
                            for (o, &g) in o.iter_mut().zip(du_i) {
                                *o += al * g;
                            }
                            kept.copy_from_slice(du_i);
                        } else {
                            // Element (b, i, col) of this step's u is draw (b·N + i)·A + col.
                            let first = ((b * n + i) * a) as u32;
                            stream.fill(first.wrapping_add(c0 as u32), kept);
                            for ((o, &g), k) in o.iter_mut().zip(du_i).zip(kept.iter_mut()) {
                                *o += al * g * *k;
                                *k *= g;
                            }
                        }
                    }
                    // All GROUP sums, in registers; those past the group are dropped below.
                    let [k0, k1, k2, k3] = &kept;
                    let (k0, k1, k2, k3) = (&k0[..len], &k1[..len], &k2[..len], &k3[..len]);
                    for (c, &v) in val[cols].iter().enumerate() {
                        da[0] += k0[c] * v;
                        da[1] += k1[c] * v;
                        da[2] += k2[c] * v;
                        da[3] += k3[c] * v;
                    }
                    c0 += len;
                }
                for (g, &da) in da[..group].iter().enumerate() {
                    let i = i0 + g;
                    if mask_row[i] > 0.5 {
                        let al = alpha_row[i * heads + e];
                        ds[i * heads + e] = al * (1.0 - al) * da;
                    }
                }
            }
        }
        // 3. dq_i = ds_i · k / sqrt(d_k).
        for i in 0..n {
            for e in 0..heads {
                let s = ds[i * heads + e];
                let cols = e * dk..(e + 1) * dk;
                for (o, &k) in dq[i * wq..(i + 1) * wq][cols.clone()]
                    .iter_mut()
                    .zip(&key[cols])
                {
                    *o = s * k * p.inv_sqrt_dk;
                }
            }
        }
        // 4. dk = Σ_i ds_i q_i / sqrt(d_k), summed in order of i.
        dkey.fill(0.0);
        for i in 0..n {
            let qi = &q_row[i * wq..(i + 1) * wq];
            for e in 0..heads {
                let s = ds[i * heads + e];
                let cols = e * dk..(e + 1) * dk;
                for (o, &x) in dkey[cols.clone()].iter_mut().zip(&qi[cols]) {
                    *o += s * x;
                }
            }
        }
        for o in dkey.iter_mut() {
            *o *= p.inv_sqrt_dk;
        }
    });
}
