//! CPU twins of `shaders/merge.wgsl`: the communication residual ĥ = h' + σ(gate)⊙tanh(dropout(o))
//! and the merge that keeps inactive mechanisms' state, forward and backward. Wrapper:
//! `ops::merge`; oracle: `reference::merge`.
//!
//! One iteration per (batch row, mechanism) = row q = b·N + i, over its H contiguous units.
//! Layouts as in the shader: og, tg, dog [T, B·N, 2, H]; hp, cp [T, B, N, H]; mask [T, B, N];
//! hs, cs [T+1, B, N·H]; dh_out [T, B, N·H]; dh, dc [B, N·H]; dres [2, B, N, H].
//!
//! Variant D (`variant` = 1, docs/spec.md §3): ĥ = h' + o with no gate, tanh or dropout; og
//! and dog are [T, B·N, H] (o only) and tg is neither read nor written.

use crate::kernels::common::DropoutStream;
use crate::kernels::common::{sigmoid, tanh};
use crate::kernels::gates::{RowKernel, Step, blocks, blocks_mut, for_rows, step_params, units};
use crate::kernels::{CpuKernel, KernelArgs, Rows};

step_params! {
    /// The uniform struct of every entry point of `merge.wgsl`: the step's sizes, then these.
    pub struct Params {
        /// Dropout seed of the communication output o.
        pub seed: u32,
        /// Dropout step counter.
        pub step: u32,
        /// Dropout threshold round(p·2²⁴); 0 keeps everything.
        pub threshold: u32,
        /// Factor of kept elements, 1 / (1 − p).
        pub scale: f32,
        /// 0: variant A (ĥ = h' + σ(gate)⊙tanh(dropout(o))); 1: variant D (ĥ = h' + o).
        pub variant: u32,
        /// Padding to the WGSL struct's size.
        pub _pad: [u32; 3],
    }
}

/// The dropout tensor id of o (the `tensor` argument of `dropout_factor`).
const DROPOUT_TENSOR: u32 = 1;

/// Work per unit (for [`KernelArgs::parallel`]) of the forward (two exp calls and a hash).
const FORWARD_WORK: usize = 12;
/// Work per unit of the backward.
const BACKWARD_WORK: usize = 4;

/// The twin of each entry point.
pub fn twin(entry: &str) -> Option<CpuKernel> {
    Some(match entry {
        "forward_lstm" => forward_lstm,
        "forward_gru" => forward_gru,
        "backward_lstm" => backward_lstm,
        "backward_gru" => backward_gru,
        _ => return None,
    })
}

impl Params {
    /// The dropout draws of o at this step (`dropout_factor(seed, step, 1, index, ...)`).
    fn dropout(&self) -> DropoutStream {
        DropoutStream::new(
            self.seed,
            self.step,
            DROPOUT_TENSOR,
            self.threshold,
            self.scale,
        )
    }
}

/// The residual and merge of row q, both cells: ĥ, tanh(o) and γ, h_t; `cells` (LSTM) adds
/// c_t.
struct Forward<'a> {
    h: usize,
    drop: DropoutStream,
    og: &'a [f32],
    hp: &'a [f32],
    mask: &'a [f32],
    h_prev: &'a [f32],
    h_next: Rows<'a, f32>,
    /// Variant A's saved tanh(o) and γ; None in variant D (og then holds o alone).
    tg: Option<Rows<'a, f32>>,
    /// LSTM: c', c_{t-1} and c_t.
    cells: Option<(&'a [f32], &'a [f32], Rows<'a, f32>)>,
}

impl RowKernel for Forward<'_> {
    #[inline(always)]
    unsafe fn row(&self, q: usize) {
        let h = self.h;
        let m = self.mask[q];
        let (hp, h_prev) = (units(self.hp, q, h), units(self.h_prev, q, h));
        // SAFETY: row q is visited once.
        let h_next = unsafe { &mut self.h_next.row(q)[..h] };
        if let Some(tg) = &self.tg {
            let [o, gate] = blocks::<2>(self.og, q, h);
            // SAFETY: as above.
            let [t_o, t_gamma] = blocks_mut::<2>(unsafe { tg.row(q) }, h);
            let first = (q * h) as u32;
            for e in 0..h {
                let th = tanh(o[e] * self.drop.factor(first + e as u32));
                let gamma = sigmoid(gate[e]);
                t_o[e] = th;
                t_gamma[e] = gamma;
                let h_hat = hp[e] + gamma * th;
                h_next[e] = m * h_hat + (1.0 - m) * h_prev[e];
            }
        } else {
            let o = units(self.og, q, h);
            for e in 0..h {
                let h_hat = hp[e] + o[e];
                h_next[e] = m * h_hat + (1.0 - m) * h_prev[e];
            }
        }
        if let Some((cp, c_prev, c_next)) = &self.cells {
            let (cp, c_prev) = (units(cp, q, h), units(c_prev, q, h));
            // SAFETY: as above.
            let c_next = &mut unsafe { c_next.row(q) }[..h];
            for e in 0..h {
                c_next[e] = m * cp[e] + (1.0 - m) * c_prev[e];
            }
        }
    }
}

/// The forward of both cells; `cells` = (c', cs) for LSTM.
fn forward(
    args: &KernelArgs<'_>,
    og: &[f32],
    hp: &[f32],
    mask: &[f32],
    hs: &mut [f32],
    tg: &mut [f32],
    cells: Option<(&[f32], &mut [f32])>,
) {
    let (p, s) = Step::of::<Params>(args);
    let (h, bnh) = (s.h, s.units());
    // hs[t] is read, hs[t+1] written: two disjoint halves of one binding (cs alike).
    let (h_prev, h_next) = hs[s.states()].split_at_mut(bnh);
    let dido = p.variant == 1;
    let k = Forward {
        h,
        drop: p.dropout(),
        og: &og[s.plane(if dido { 1 } else { 2 })],
        hp: &hp[s.plane(1)],
        mask: &mask[s.mask()],
        h_prev,
        h_next: Rows::new(h_next, h),
        tg: (!dido).then(|| Rows::new(&mut tg[s.plane(2)], 2 * h)),
        cells: cells.map(|(cp, cs)| {
            let (c_prev, c_next) = cs[s.states()].split_at_mut(bnh);
            (&cp[s.plane(1)], &*c_prev, Rows::new(c_next, h))
        }),
    };
    for_rows(args, args.parallel(bnh * FORWARD_WORK), s.rows, &k);
}

fn forward_lstm(args: &KernelArgs<'_>) {
    let [og, hp, cp, mask] = args.reads([0, 1, 2, 3]);
    let [hs, cs, tg] = args.writes([4, 5, 6]);
    forward(args, og, hp, mask, hs, tg, Some((cp, cs)));
}

fn forward_gru(args: &KernelArgs<'_>) {
    let [og, hp, mask] = args.reads([0, 1, 2]);
    let [hs, tg] = args.writes([3, 4]);
    forward(args, og, hp, mask, hs, tg, None);
}

/// The backward of row q, both cells: gradient into h' (dres plane 0), o and the gate (dog),
/// and the copy path to h_{t-1} (dh); `cells` (LSTM) adds dc' = m·dc_t (dres plane 1) and
/// dc ← (1−m)·dc_t.
struct Backward<'a> {
    h: usize,
    drop: DropoutStream,
    mask: &'a [f32],
    dh_out: &'a [f32],
    /// Variant A's saved tanh(o) and γ; None in variant D (dog then holds do alone).
    tg: Option<&'a [f32]>,
    dh: Rows<'a, f32>,
    dres_h: Rows<'a, f32>,
    dog: Rows<'a, f32>,
    /// LSTM: dc and dres plane 1.
    cells: Option<(Rows<'a, f32>, Rows<'a, f32>)>,
}

impl RowKernel for Backward<'_> {
    #[inline(always)]
    unsafe fn row(&self, q: usize) {
        let h = self.h;
        let m = self.mask[q];
        let dh_out = units(self.dh_out, q, h);
        // SAFETY: row q is visited once.
        let (dh, dog, dres_h) = unsafe {
            (
                &mut self.dh.row(q)[..h],
                self.dog.row(q),
                &mut self.dres_h.row(q)[..h],
            )
        };
        let Some(tg) = self.tg else {
            // Variant D: ĥ = h' + o passes the merged gradient to h' and to o alike.
            let d_o = &mut dog[..h];
            for e in 0..h {
                let grad = dh[e] + dh_out[e];
                if m > 0.5 {
                    d_o[e] = grad;
                    dres_h[e] = grad;
                    dh[e] = 0.0;
                } else {
                    d_o[e] = 0.0;
                    dres_h[e] = 0.0;
                    dh[e] = grad;
                }
            }
            self.cell_state(q, m);
            return;
        };
        let [d_o, d_gate] = blocks_mut::<2>(dog, h);
        if m > 0.5 {
            let [th, gamma] = blocks::<2>(tg, q, h);
            let first = (q * h) as u32;
            for e in 0..h {
                let grad = dh[e] + dh_out[e];
                let (th, gamma) = (th[e], gamma[e]);
                let keep = self.drop.factor(first + e as u32);
                d_o[e] = grad * gamma * (1.0 - th * th) * keep;
                d_gate[e] = grad * th * gamma * (1.0 - gamma);
                dres_h[e] = grad;
                dh[e] = 0.0;
            }
        } else {
            d_o.fill(0.0);
            d_gate.fill(0.0);
            dres_h.fill(0.0);
            for e in 0..h {
                dh[e] += dh_out[e];
            }
        }
        self.cell_state(q, m);
    }
}

impl Backward<'_> {
    /// LSTM: dc' = m·dc_t into dres plane 1, and dc ← (1−m)·dc_t for c_{t-1}.
    #[inline(always)]
    fn cell_state(&self, q: usize, m: f32) {
        let h = self.h;
        if let Some((dc, dres_c)) = &self.cells {
            // SAFETY: row q is visited once (by the caller's iteration).
            let (dc, dres_c) = unsafe { (&mut dc.row(q)[..h], &mut dres_c.row(q)[..h]) };
            for e in 0..h {
                let g = dc[e];
                dres_c[e] = m * g;
                dc[e] = (1.0 - m) * g;
            }
        }
    }
}

/// The backward of both cells; `dc` for LSTM.
#[allow(clippy::too_many_arguments)]
fn backward(
    args: &KernelArgs<'_>,
    mask: &[f32],
    dh_out: &[f32],
    tg: &[f32],
    dh: &mut [f32],
    dc: Option<&mut [f32]>,
    dres: &mut [f32],
    dog: &mut [f32],
) {
    let (p, s) = Step::of::<Params>(args);
    let (h, bnh) = (s.h, s.units());
    let planes = if dc.is_some() { 2 } else { 1 };
    let (dres_h, dres_c) = dres[..planes * bnh].split_at_mut(bnh);
    let dido = p.variant == 1;
    let width = if dido { 1 } else { 2 };
    let k = Backward {
        h,
        drop: p.dropout(),
        mask: &mask[s.mask()],
        dh_out: &dh_out[s.plane(1)],
        tg: (!dido).then(|| &tg[s.plane(2)]),
        dh: Rows::new(&mut dh[..bnh], h),
        dres_h: Rows::new(dres_h, h),
        dog: Rows::new(&mut dog[s.plane(width)], width * h),
        cells: dc.map(|dc| (Rows::new(&mut dc[..bnh], h), Rows::new(dres_c, h))),
    };
    for_rows(args, args.parallel(bnh * BACKWARD_WORK), s.rows, &k);
}

fn backward_lstm(args: &KernelArgs<'_>) {
    let [mask, dh_out, tg] = args.reads([0, 1, 2]);
    let [dh, dc, dres, dog] = args.writes([3, 4, 5, 6]);
    backward(args, mask, dh_out, tg, dh, Some(dc), dres, dog);
}

fn backward_gru(args: &KernelArgs<'_>) {
    let [mask, dh_out, tg] = args.reads([0, 1, 2]);
    let [dh, dres, dog] = args.writes([3, 4, 5]);
    backward(args, mask, dh_out, tg, dh, None, dres, dog);
}
