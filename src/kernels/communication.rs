//! CPU twins of `shaders/communication.wgsl`: the RIMs communication attention of one time
//! step (every mechanism attends to every mechanism, per head) and its backward in two passes,
//! rows (dS and dQ) then columns (dK and dV). The GPU runs one thread per (b, head, i); here
//! one iteration per batch row b does every (head, i) of it, spread over the team when the
//! batch is large enough; each output element is computed by one iteration, with the WGSL's
//! order of operations. Wrapper: `ops::communication`; oracle: `reference::communication`.
//!
//! Layouts (row-major, as in the shader): qkv [3, T, B, N, W] (planes Q, K, V; only the first
//! h_c·d_kc or h_c·d_vc columns of a row are used), probs [T, B, h_c, N, N],
//! ctx [T, B, N, h_c·d_vc]; backward: dctx [B, N, h_c·d_vc] (this step), ds [B, h_c, N, N],
//! dqkv like qkv (written at this step only).
//!
//! Variant D (`variant` = 1): each row of P is multiplied by m_i and dropped out before the
//! contexts (P̃ = P·m_i·keep_ij, [`RowWeight`]); probs keeps P and the backward recomputes P̃
//! from the mask [T, B, N], which every entry point binds last (variant A ignores it).

use crate::kernels::common::DropoutStream;
use crate::kernels::input_attention::{dots, vec_mat};
use crate::kernels::{CpuKernel, KernelArgs, Rows, par_for};

/// The uniform struct of every entry point of `communication.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    /// B: batch rows.
    pub batch: u32,
    /// N: mechanisms.
    pub n: u32,
    /// h_c: attention heads.
    pub heads: u32,
    /// d_kc: key and query size per head.
    pub dk: u32,
    /// d_vc: value size per head.
    pub dv: u32,
    /// W: row width of the qkv planes, max(h_c·d_kc, h_c·d_vc).
    pub w: u32,
    /// The time step this dispatch works on.
    pub t: u32,
    /// Words of one qkv plane, T·B·N·W.
    pub plane: u32,
    /// 1 / sqrt(d_kc).
    pub inv_sqrt_dk: f32,
    /// 0: variant A (plain softmax); 1: variant D (row mask and dropout on P).
    pub variant: u32,
    /// Variant D's dropout on P: run seed.
    pub seed: u32,
    /// Variant D's dropout on P: step counter.
    pub step: u32,
    /// Variant D's dropout on P: round(p · 2^24); 0 = none.
    pub threshold: u32,
    /// Variant D's dropout on P: factor of kept elements, 1 / (1 − p).
    pub scale: f32,
    /// Padding to the WGSL struct's size.
    pub _pad: [u32; 2],
}

/// Dropout tensor id of variant D's communication probabilities.
const TENSOR_PROBS: u32 = 5;

/// The factor of P_ij in what the contexts use: m_i·keep_ij in variant D, 1 in variant A
/// (`row_weight` in the WGSL).
#[derive(Clone, Copy)]
struct RowWeight {
    dido: bool,
    drop: DropoutStream,
}

impl RowWeight {
    fn of(p: &Params) -> Self {
        RowWeight {
            dido: p.variant == 1,
            drop: DropoutStream::new(p.seed, p.step, TENSOR_PROBS, p.threshold, p.scale),
        }
    }

    /// `mask_row` is this batch row's N mask values at this step.
    #[inline]
    fn get(&self, d: &Dims, mask_row: &[f32], b: usize, m: usize, i: usize, j: usize) -> f32 {
        if !self.dido {
            return 1.0;
        }
        let index = ((b * d.heads + m) * d.n + i) * d.n + j;
        mask_row[i] * self.drop.factor(index as u32)
    }
}

/// This step's mask values of batch row b (empty in variant A, which does not read them).
fn mask_row<'a>(d: &Dims, mask: &'a [f32], w: &RowWeight, b: usize) -> &'a [f32] {
    if !w.dido {
        return &[];
    }
    let start = (d.row0 + b) * d.n;
    &mask[start..start + d.n]
}

pub use crate::spec::cell::MAX_N;

/// The twin of each entry point.
pub fn twin(entry: &str) -> Option<CpuKernel> {
    Some(match entry {
        "forward" => forward,
        "backward_rows" => backward_rows,
        "backward_cols" => backward_cols,
        _ => return None,
    })
}

/// Sizes of one dispatch, as usize.
#[derive(Clone, Copy)]
struct Dims {
    batch: usize,
    n: usize,
    heads: usize,
    dk: usize,
    dv: usize,
    w: usize,
    plane: usize,
    /// First row (t · B) of this step in the [T, B, …] tensors.
    row0: usize,
}

impl Dims {
    fn of(p: &Params) -> Dims {
        let d = Dims {
            batch: p.batch as usize,
            n: p.n as usize,
            heads: p.heads as usize,
            dk: p.dk as usize,
            dv: p.dv as usize,
            w: p.w as usize,
            plane: p.plane as usize,
            row0: p.t as usize * p.batch as usize,
        };
        assert!(
            d.n <= MAX_N,
            "communication twin: {} mechanisms exceed {MAX_N}",
            d.n
        );
        assert!(
            d.heads * d.dk <= d.w && d.heads * d.dv <= d.w,
            "communication twin: heads exceed the qkv row width"
        );
        d
    }

    /// Words of one batch row (N rows of W) in a qkv plane.
    fn qkv_row(&self) -> usize {
        self.n * self.w
    }

    /// Words of one batch row of probs or ds: h_c · N · N.
    fn prob_row(&self) -> usize {
        self.heads * self.n * self.n
    }

    /// Words of one batch row of ctx or dctx: N · h_c · d_vc.
    fn ctx_row(&self) -> usize {
        self.n * self.heads * self.dv
    }

    /// Batch row b of plane s of qkv at this step: N rows of W.
    fn plane_row<'a>(&self, qkv: &'a [f32], s: usize, b: usize) -> &'a [f32] {
        let start = s * self.plane + (self.row0 + b) * self.qkv_row();
        &qkv[start..start + self.qkv_row()]
    }

    /// This step's rows of plane s of a qkv-shaped output, and where they start.
    fn plane_span(&self, s: usize) -> (usize, usize) {
        (
            s * self.plane + self.row0 * self.qkv_row(),
            self.batch * self.qkv_row(),
        )
    }
}

/// The rows `start .. start + len` of `out`, cut into `count` equal rows.
fn rows_of<'a>(out: &'a mut [f32], start: usize, len: usize, count: usize) -> Rows<'a, f32> {
    assert!(
        start + len <= out.len(),
        "communication twin: an output binding holds {} words, this step needs {}",
        out.len(),
        start + len
    );
    Rows::new(&mut out[start..start + len], len / count.max(1))
}

fn forward(args: &KernelArgs<'_>) {
    let p: Params = args.params();
    let d = Dims::of(&p);
    let [qkv, mask] = args.reads([0, 3]);
    let rw = RowWeight::of(&p);
    let (n, heads, dk, dv, w) = (d.n, d.heads, d.dk, d.dv, d.w);
    let probs = rows_of(
        args.write(1),
        d.row0 * d.prob_row(),
        d.batch * d.prob_row(),
        d.batch,
    );
    let ctx = rows_of(
        args.write(2),
        d.row0 * d.ctx_row(),
        d.batch * d.ctx_row(),
        d.batch,
    );
    let work = d.batch * heads * n * n * (dk + dv);
    par_for(args, args.parallel(work), d.batch, |b| {
        let (qs, ks, vs) = (
            d.plane_row(qkv, 0, b),
            d.plane_row(qkv, 1, b),
            d.plane_row(qkv, 2, b),
        );
        let mrow = mask_row(&d, mask, &rw, b);
        // SAFETY: row b of each output belongs to this iteration only.
        let (probs, ctx) = unsafe { (probs.row(b), ctx.row(b)) };
        let mut s = [0.0f32; MAX_N];
        for m in 0..heads {
            let kc = m * dk..(m + 1) * dk;
            let vc = m * dv..(m + 1) * dv;
            for i in 0..n {
                let qi = &qs[i * w..][kc.clone()];
                let s = &mut s[..n];
                dots(s, qi, &ks[m * dk..], w);
                let mut top = -3.0e38f32;
                for sj in s.iter_mut() {
                    *sj *= p.inv_sqrt_dk;
                    top = top.max(*sj);
                }
                let mut total = 0.0f32;
                for sj in s.iter_mut() {
                    *sj = (*sj - top).exp();
                    total += *sj;
                }
                let pr = &mut probs[(m * n + i) * n..(m * n + i + 1) * n];
                for (j, (sj, o)) in s.iter_mut().zip(pr).enumerate() {
                    *sj /= total;
                    *o = *sj;
                    if rw.dido {
                        *sj *= rw.get(&d, mrow, b, m, i, j);
                    }
                }
                vec_mat(&mut ctx[i * heads * dv..][vc.clone()], s, &vs[m * dv..], w);
            }
        }
    });
}

/// Row i of each head: dS_i = P_i ⊙ (dP_i − <P_i, dP_i>) / sqrt(d_kc) with dP_ij = dctx_i·V_j,
/// then dQ_i = Σ_j dS_ij K_j.
fn backward_rows(args: &KernelArgs<'_>) {
    let p: Params = args.params();
    let d = Dims::of(&p);
    let [qkv, probs_in, dctx, mask] = args.reads([0, 1, 2, 5]);
    let rw = RowWeight::of(&p);
    let (n, heads, dk, dv, w) = (d.n, d.heads, d.dk, d.dv, d.w);
    let ds = rows_of(args.write(3), 0, d.batch * d.prob_row(), d.batch);
    let (q_start, q_len) = d.plane_span(0);
    let dq = rows_of(args.write(4), q_start, q_len, d.batch);
    let work = d.batch * heads * n * n * (dk + dv);
    par_for(args, args.parallel(work), d.batch, |b| {
        let (ks, vs) = (d.plane_row(qkv, 1, b), d.plane_row(qkv, 2, b));
        let start = (d.row0 + b) * d.prob_row();
        let pb = &probs_in[start..start + d.prob_row()];
        let dctx = &dctx[b * d.ctx_row()..(b + 1) * d.ctx_row()];
        let mrow = mask_row(&d, mask, &rw, b);
        // SAFETY: row b of each output belongs to this iteration only.
        let (ds, dq) = unsafe { (ds.row(b), dq.row(b)) };
        let mut dp = [0.0f32; MAX_N];
        for m in 0..heads {
            let kc = m * dk..(m + 1) * dk;
            let vc = m * dv..(m + 1) * dv;
            for i in 0..n {
                let gi = &dctx[i * heads * dv..][vc.clone()];
                let pi = &pb[(m * n + i) * n..(m * n + i + 1) * n];
                let dp = &mut dp[..n];
                dots(dp, gi, &vs[m * dv..], w);
                if rw.dido {
                    // dP = dP̃·m_i·keep.
                    for (j, dpj) in dp.iter_mut().enumerate() {
                        *dpj *= rw.get(&d, mrow, b, m, i, j);
                    }
                }
                let mut total = 0.0f32;
                for (&dpj, &pij) in dp.iter().zip(pi) {
                    total += dpj * pij;
                }
                let dsi = &mut ds[(m * n + i) * n..(m * n + i + 1) * n];
                for ((dpj, &pij), o) in dp.iter_mut().zip(pi).zip(dsi) {
                    *dpj = pij * (*dpj - total) * p.inv_sqrt_dk;
                    *o = *dpj;
                }
                vec_mat(&mut dq[i * w..][kc.clone()], dp, &ks[m * dk..], w);
            }
        }
    });
}

/// Column j of each head: dK_j = Σ_i dS_ij Q_i and dV_j = Σ_i P_ij dctx_i.
fn backward_cols(args: &KernelArgs<'_>) {
    let p: Params = args.params();
    let d = Dims::of(&p);
    let [qkv, probs_in, dctx, ds_in] = args.reads([0, 1, 2, 3]);
    let mask = args.read(5);
    let rw = RowWeight::of(&p);
    let (n, heads, dk, dv, w) = (d.n, d.heads, d.dk, d.dv, d.w);
    let dqkv = args.write(4);
    let (k_start, len) = d.plane_span(1);
    let (v_start, _) = d.plane_span(2);
    assert!(
        v_start + len <= dqkv.len(),
        "communication twin: dqkv holds {} words, this step needs {}",
        dqkv.len(),
        v_start + len
    );
    // Plane 2 starts past plane 1's end (k_start + len <= plane + plane = v_start's plane).
    let (low, high) = dqkv.split_at_mut(2 * d.plane);
    let dk_rows = rows_of(low, k_start, len, d.batch);
    let dv_rows = rows_of(high, v_start - 2 * d.plane, len, d.batch);
    let work = d.batch * heads * n * n * (dk + dv);
    par_for(args, args.parallel(work), d.batch, |b| {
        let qs = d.plane_row(qkv, 0, b);
        let start = (d.row0 + b) * d.prob_row();
        let pb = &probs_in[start..start + d.prob_row()];
        let sb = &ds_in[b * d.prob_row()..(b + 1) * d.prob_row()];
        let dctx = &dctx[b * d.ctx_row()..(b + 1) * d.ctx_row()];
        let mrow = mask_row(&d, mask, &rw, b);
        // SAFETY: row b of each output belongs to this iteration only.
        let (dks, dvs) = unsafe { (dk_rows.row(b), dv_rows.row(b)) };
        for m in 0..heads {
            let kc = m * dk..(m + 1) * dk;
            let vc = m * dv..(m + 1) * dv;
            let head = m * n * n;
            let mut coef = [0.0f32; MAX_N];
            let coef = &mut coef[..n];
            for j in 0..n {
                // Column j of dS, then of P.
                for (i, c) in coef.iter_mut().enumerate() {
                    *c = sb[head + i * n + j];
                }
                vec_mat(&mut dks[j * w..][kc.clone()], coef, &qs[m * dk..], w);
                for (i, c) in coef.iter_mut().enumerate() {
                    *c = pb[head + i * n + j];
                    if rw.dido {
                        *c *= rw.get(&d, mrow, b, m, i, j);
                    }
                }
                let stride = heads * dv;
                vec_mat(&mut dvs[j * w..][vc.clone()], coef, &dctx[m * dv..], stride);
            }
        }
    });
}
