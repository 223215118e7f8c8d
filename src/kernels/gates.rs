//! The LSTM and GRU gates of `shaders/lib/gates.wgsl`, forward ([`lstm_step`], [`gru_step`])
//! and derivatives ([`lstm_grads`], [`gru_grads`]), shared (as there) by the twins of
//! `cell.wgsl` (the mechanisms of RIMs) and `recurrent.wgsl` (the dense baselines), so that
//! the two cannot drift apart.
//! Gate orders: LSTM [i, f, g, o] (PyTorch LSTMCell), GRU [r, z, n] (PyTorch GRUCell).
//!
//! Also what the twins of cell, merge and recurrent share to run fast: the helpers that cut a
//! row of G·H gate values into its
//! blocks of H, and [`for_rows`], which runs a [`RowKernel`] once per row (over the team when
//! the work pays), compiled for the widest vector extension the CPU has. IEEE arithmetic gives
//! every variant the same bits, and Rust never contracts a·b + c into an FMA, so the results do
//! not depend on the CPU either.

use std::ops::{Deref, Range};

use crate::kernels::common::{sigmoid, tanh};
use crate::kernels::{CpuKernel, KernelArgs, Rows, par_for};

pub use crate::spec::cell::CellKind;

/// One row of a twin's work (a batch row, or a (batch row, mechanism) pair), run by
/// [`for_rows`].
pub trait RowKernel: Sync {
    /// Computes every output of row `q`. Implementations are `#[inline(always)]`, so that the
    /// body is compiled inside each target-feature variant of [`for_rows`].
    ///
    /// # Safety
    /// Called at most once per row `q` in a dispatch (rows may write their outputs through
    /// [`crate::kernels::Rows`]).
    unsafe fn row(&self, q: usize);
}

/// Runs `kernel.row(q)` once for every q < `rows`, over the team when `parallel` (see
/// [`par_for`]), compiled for AVX-512 or AVX2 when the CPU has them.
pub fn for_rows<K: RowKernel>(args: &KernelArgs<'_>, parallel: bool, rows: usize, kernel: &K) {
    let simd = Simd::detect();
    // SAFETY: par_for visits each q once.
    par_for(args, parallel, rows, |q| unsafe { simd.run(kernel, q) });
}

/// A vector extension the running CPU has, for [`for_rows`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Simd(Level);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Level {
    Baseline,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Simd {
    /// The widest extension of this CPU (cached by the standard library's detection).
    #[inline]
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Simd(Level::Avx512);
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                return Simd(Level::Avx2);
            }
        }
        Simd(Level::Baseline)
    }

    /// Every extension this CPU has, the baseline first (for tests comparing them).
    pub fn available() -> Vec<Self> {
        let mut out = vec![Simd(Level::Baseline)];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                out.push(Simd(Level::Avx2));
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                out.push(Simd(Level::Avx512));
            }
        }
        out
    }

    /// `kernel.row(q)`, compiled for this extension.
    ///
    /// # Safety
    /// As for [`RowKernel::row`].
    #[inline]
    pub unsafe fn run<K: RowKernel>(self, kernel: &K, q: usize) {
        // SAFETY: a Simd is only made for an extension the CPU has; the row contract is the
        // caller's.
        unsafe {
            match self.0 {
                Level::Baseline => kernel.row(q),
                #[cfg(target_arch = "x86_64")]
                Level::Avx2 => row_avx2(kernel, q),
                #[cfg(target_arch = "x86_64")]
                Level::Avx512 => row_avx512(kernel, q),
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn row_avx2<K: RowKernel>(kernel: &K, q: usize) {
    // SAFETY: the caller's.
    unsafe { kernel.row(q) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn row_avx512<K: RowKernel>(kernel: &K, q: usize) {
    // SAFETY: the caller's.
    unsafe { kernel.row(q) }
}

/// Work per unit (for [`KernelArgs::parallel`]) of a gate kernel: a few exp calls per unit.
pub const EXP_WORK: usize = 16;

/// The twin of `entry` among the entry points both gate shaders have, given as `twins`:
/// lstm_forward, gru_forward, lstm_backward, gru_backward.
pub fn gate_twin(entry: &str, twins: [CpuKernel; 4]) -> Option<CpuKernel> {
    let entries = [
        "lstm_forward",
        "gru_forward",
        "lstm_backward",
        "gru_backward",
    ];
    entries.iter().position(|&e| e == entry).map(|i| twins[i])
}

/// Declares a gate shader's `twin(entry)`: its entry points lstm_forward, gru_forward,
/// lstm_backward and gru_backward are the module's functions of those names.
macro_rules! gate_twins {
    () => {
        /// The twin of each entry point.
        pub fn twin(entry: &str) -> Option<$crate::kernels::CpuKernel> {
            $crate::kernels::gates::gate_twin(
                entry,
                [lstm_forward, gru_forward, lstm_backward, gru_backward],
            )
        }
    };
}
pub(crate) use gate_twins;

/// One LSTM unit's step: the activations (saved for the backward), c' and h'.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LstmStep {
    /// The gates [i, f, g, o] after their nonlinearities (sigmoid, sigmoid, tanh, sigmoid).
    pub act: [f32; 4],
    /// c'.
    pub c: f32,
    /// h'.
    pub h: f32,
}

/// `lstm_step` of gates.wgsl: from the four pre-activations `z` [i, f, g, o]
/// (x·W_x + b_x + h·W_h + b_h, summed by the caller) and c.
#[inline(always)]
pub fn lstm_step(z: [f32; 4], c_prev: f32) -> LstmStep {
    let act = [sigmoid(z[0]), sigmoid(z[1]), tanh(z[2]), sigmoid(z[3])];
    let c = act[1] * c_prev + act[0] * act[2];
    LstmStep {
        act,
        c,
        h: act[3] * tanh(c),
    }
}

/// One GRU unit's step: the activations [r, z, n] (saved for the backward) and h'.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GruStep {
    /// Reset gate, update gate (after their sigmoids) and candidate (after its tanh).
    pub act: [f32; 3],
    /// h'.
    pub h: f32,
}

/// `gru_step` of gates.wgsl: from the input side's pre-activations `x` [r, z, n], the
/// recurrent side's `hh` (kept apart: r gates only the recurrent n term) and h.
#[inline(always)]
pub fn gru_step(x: [f32; 3], hh: [f32; 3], h_prev: f32) -> GruStep {
    let rg = sigmoid(x[0] + hh[0]);
    let zg = sigmoid(x[1] + hh[1]);
    let ng = tanh(x[2] + rg * hh[2]);
    GruStep {
        act: [rg, zg, ng],
        h: (1.0 - zg) * ng + zg * h_prev,
    }
}

/// Pre-activation gradients of one LSTM unit, and the gradient flowing to c_{t-1}.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LstmGrads {
    /// The gates' pre-activation gradients [i, f, g, o] (dzx = dzh).
    pub dz: [f32; 4],
    /// Gradient of the previous cell state.
    pub dc_prev: f32,
}

/// `lstm_grads` of gates.wgsl: from the gradients `dh`, `dc` of h' and c', the saved
/// activations `act` (i, f, g, o after their nonlinearities), the new cell state c' and the
/// previous one.
#[inline(always)]
pub fn lstm_grads(dh: f32, dc: f32, act: [f32; 4], c_new: f32, c_prev: f32) -> LstmGrads {
    let [ig, fg, gg, og] = act;
    let tc = tanh(c_new);
    let dc_tot = dc + dh * og * (1.0 - tc * tc);
    LstmGrads {
        dz: [
            dc_tot * gg * ig * (1.0 - ig),
            dc_tot * c_prev * fg * (1.0 - fg),
            dc_tot * ig * (1.0 - gg * gg),
            dh * tc * og * (1.0 - og),
        ],
        dc_prev: dc_tot * fg,
    }
}

/// Pre-activation gradients of one GRU unit: dzx for [r, z, n], and dzh, equal to dzx except
/// in the n block, where it is dn · r. `dh_prev` is the direct part of the gradient of h_{t-1}.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GruGrads {
    /// Input side [r, z, n].
    pub dzx: [f32; 3],
    /// Recurrent side [r, z, n · r].
    pub dzh: [f32; 3],
    /// Direct gradient of the previous state (dh · z).
    pub dh_prev: f32,
}

/// `gru_grads` of gates.wgsl: from the gradient `dh` of h', the saved activations `act`
/// [r, z, n], the recurrent n pre-activation `gh_n` = h·W_hn + b_hn, and the previous state.
#[inline(always)]
pub fn gru_grads(dh: f32, act: [f32; 3], gh_n: f32, h_prev: f32) -> GruGrads {
    let [rg, zg, ng] = act;
    let dn = dh * (1.0 - zg) * (1.0 - ng * ng);
    let dz = dh * (h_prev - ng) * zg * (1.0 - zg);
    let dr = dn * gh_n * rg * (1.0 - rg);
    GruGrads {
        dzx: [dr, dz, dn],
        dzh: [dr, dz, dn * rg],
        dh_prev: dh * zg,
    }
}

/// Unit `r` of each of G gate blocks (the shaders' `vecG(x[g0], x[g0 + h], ...)`).
#[inline(always)]
pub fn gather<const G: usize, B: Deref<Target = [f32]>>(blocks: &[B; G], r: usize) -> [f32; G] {
    std::array::from_fn(|g| blocks[g][r])
}

/// `a + b` element by element (the shaders' vector sum).
#[inline(always)]
pub fn add<const G: usize>(a: [f32; G], b: [f32; G]) -> [f32; G] {
    std::array::from_fn(|g| a[g] + b[g])
}

/// Writes `v` to unit `r` of each of G gate blocks (the shaders' `x[g0 + g * h] = v[g]`).
#[inline(always)]
pub fn scatter<const G: usize>(blocks: &mut [&mut [f32]; G], r: usize, v: [f32; G]) {
    for (block, v) in blocks.iter_mut().zip(v) {
        block[r] = v;
    }
}

/// What differs between the two `lstm_backward`s, row by row: where dh' and dc' come from, which
/// rows are skipped, and whether the gradient carried to c_{t-1} accumulates.
pub trait LstmIncoming: Sync {
    /// Whether row q is skipped: its dz zero and its carry left alone (an inactive mechanism).
    fn skip(&self, _q: usize) -> bool {
        false
    }

    /// Row q's dh' and dc' of unit r, given the carry's value there.
    fn row(&self, q: usize, h: usize) -> impl Fn(usize, f32) -> (f32, f32) + '_;

    /// The carry's new value from its old one and the unit's dc_prev.
    fn update(carry: f32, dc_prev: f32) -> f32;
}

/// `lstm_backward` of cell.wgsl and recurrent.wgsl: dz of row q (4·H) from the saved activations
/// [i, f, g, o], c' and c, and `incoming`; the carry is the gradient flowing to c_{t-1}.
pub struct LstmBackward<'a, I> {
    /// H.
    pub h: usize,
    /// The step's activations [rows, 4·H].
    pub act: &'a [f32],
    /// c' [rows, H].
    pub c_new: &'a [f32],
    /// c [rows, H].
    pub c_prev: &'a [f32],
    /// The step's dz [rows, 4·H] (dzx = dzh).
    pub dz: Rows<'a, f32>,
    /// The gradient carried to c_{t-1} [rows, H].
    pub carry: Rows<'a, f32>,
    /// The kernel's own part.
    pub incoming: I,
}

impl<I: LstmIncoming> RowKernel for LstmBackward<'_, I> {
    #[inline(always)]
    unsafe fn row(&self, q: usize) {
        let h = self.h;
        // SAFETY: row q is visited once.
        let dz = unsafe { self.dz.row(q) };
        if self.incoming.skip(q) {
            dz.fill(0.0);
            return;
        }
        let act = blocks::<4>(self.act, q, h);
        let (c_new, c_prev) = (units(self.c_new, q, h), units(self.c_prev, q, h));
        // SAFETY: as above.
        let carry = &mut unsafe { self.carry.row(q) }[..h];
        let mut dz = blocks_mut::<4>(dz, h);
        let incoming = self.incoming.row(q, h);
        for r in 0..h {
            let (dh, dc) = incoming(r, carry[r]);
            let d = lstm_grads(dh, dc, gather(&act, r), c_new[r], c_prev[r]);
            scatter(&mut dz, r, d.dz);
            carry[r] = I::update(carry[r], d.dc_prev);
        }
    }
}

/// What differs between the two `gru_backward`s, row by row (as [`LstmIncoming`], with dh'
/// alone and the carry the gradient flowing to h_{t-1}).
pub trait GruIncoming: Sync {
    /// Whether row q is skipped: its dzx and dzh zero and its carry left alone.
    fn skip(&self, _q: usize) -> bool {
        false
    }

    /// Row q's dh' of unit r, given the carry's value there.
    fn row(&self, q: usize, h: usize) -> impl Fn(usize, f32) -> f32 + '_;

    /// The carry's new value from its old one and the unit's dh_prev.
    fn update(carry: f32, dh_prev: f32) -> f32;
}

/// `gru_backward` of cell.wgsl and recurrent.wgsl: dzx and dzh of row q (3·H each, they differ
/// in the n block) from the saved activations [r, z, n], gh = h·W_h + b_h (its n block), h and
/// `incoming`; the carry is the gradient flowing to h_{t-1}.
pub struct GruBackward<'a, I> {
    /// H.
    pub h: usize,
    /// The step's activations [rows, 3·H].
    pub act: &'a [f32],
    /// The step's gh [rows, 3·H].
    pub gh: &'a [f32],
    /// h [rows, H].
    pub h_prev: &'a [f32],
    /// The step's dzx [rows, 3·H].
    pub dzx: Rows<'a, f32>,
    /// The step's dzh [rows, 3·H].
    pub dzh: Rows<'a, f32>,
    /// The gradient carried to h_{t-1} [rows, H].
    pub carry: Rows<'a, f32>,
    /// The kernel's own part.
    pub incoming: I,
}

impl<I: GruIncoming> RowKernel for GruBackward<'_, I> {
    #[inline(always)]
    unsafe fn row(&self, q: usize) {
        let h = self.h;
        // SAFETY: row q is visited once.
        let (dzx, dzh) = unsafe { (self.dzx.row(q), self.dzh.row(q)) };
        if self.incoming.skip(q) {
            dzx.fill(0.0);
            dzh.fill(0.0);
            return;
        }
        let act = blocks::<3>(self.act, q, h);
        let gh_n = blocks::<3>(self.gh, q, h)[2];
        let h_prev = units(self.h_prev, q, h);
        // SAFETY: as above.
        let carry = &mut unsafe { self.carry.row(q) }[..h];
        let (mut dzx, mut dzh) = (blocks_mut::<3>(dzx, h), blocks_mut::<3>(dzh, h));
        let incoming = self.incoming.row(q, h);
        for r in 0..h {
            let dh = incoming(r, carry[r]);
            let d = gru_grads(dh, gather(&act, r), gh_n[r], h_prev[r]);
            scatter(&mut dzx, r, d.dzx);
            scatter(&mut dzh, r, d.dzh);
            carry[r] = I::update(carry[r], d.dh_prev);
        }
    }
}

/// Row `q` (G·H values) of a step of gate rows ([rows, G·H]), as its G gate blocks of H.
#[inline(always)]
pub fn blocks<const G: usize>(plane: &[f32], q: usize, h: usize) -> [&[f32]; G] {
    let row = &plane[q * G * h..][..G * h];
    std::array::from_fn(|g| &row[g * h..][..h])
}

/// A writable row of G·H values as its G gate blocks of H.
#[inline(always)]
pub fn blocks_mut<const G: usize>(row: &mut [f32], h: usize) -> [&mut [f32]; G] {
    let mut rest = &mut row[..G * h];
    std::array::from_fn(|_| {
        let (block, tail) = std::mem::take(&mut rest).split_at_mut(h);
        rest = tail;
        block
    })
}

/// Units `q·H .. (q+1)·H` of a step of unit rows ([rows, H]).
#[inline(always)]
pub fn units(plane: &[f32], q: usize, h: usize) -> &[f32] {
    &plane[q * h..][..h]
}

/// The sizes of one step's dispatch: `rows` rows of H units (B·N for the mechanisms of RIMs, B
/// for a dense layer) at time step t, and the ranges of that step in the twins' tensors.
#[derive(Clone, Copy, Debug)]
pub struct Step {
    /// Rows of H units.
    pub rows: usize,
    /// H.
    pub h: usize,
    /// t.
    pub t: usize,
}

/// Declares a shader's uniform struct (`#[repr(C)]`, `Pod`) that starts with a step's sizes
/// `batch`, `n`, `h`, `t` (B, N, H and t, as `Params` of cell.wgsl and merge.wgsl do), then
/// the fields given, and its [`StepParams`].
macro_rules! step_params {
    ($(#[$m:meta])* pub struct $name:ident { $($(#[$fm:meta])* pub $f:ident: $ty:ty,)* }) => {
        $(#[$m])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
        pub struct $name {
            /// B: batch rows.
            pub batch: u32,
            /// N: mechanisms.
            pub n: u32,
            /// H: hidden units per mechanism.
            pub h: u32,
            /// The time step t.
            pub t: u32,
            $($(#[$fm])* pub $f: $ty,)*
        }

        impl $crate::kernels::gates::StepParams for $name {
            fn step(&self) -> $crate::kernels::gates::Step {
                $crate::kernels::gates::Step::new(self.batch, self.n, self.h, self.t)
            }
        }
    };
}
pub(crate) use step_params;

/// A parameter struct that carries a step's sizes (B, N, H, t), so a twin gets both in one
/// line: `let (p, s) = Step::of::<Params>(args);`.
pub trait StepParams: bytemuck::Pod {
    /// The step's sizes.
    fn step(&self) -> Step;
}

impl Step {
    /// The dispatch's parameter struct and its step.
    pub fn of<P: StepParams>(args: &KernelArgs<'_>) -> (P, Step) {
        let p: P = args.params();
        (p, p.step())
    }

    /// Step t of read-only binding `i`, a [T, rows, width·H] tensor.
    pub fn read<'a>(&self, args: &KernelArgs<'a>, i: usize, width: usize) -> &'a [f32] {
        &args.read(i)[self.plane(width)]
    }

    /// Step t of writable binding `i`, a [T, rows, width·H] tensor, in rows of width·H.
    pub fn rows<'a>(&self, args: &KernelArgs<'a>, i: usize, width: usize) -> Rows<'a, f32> {
        args.rows(i, self.plane(width), width * self.h)
    }

    /// Writable binding `i` as one [rows, H] state (a gradient carried between steps).
    pub fn carry<'a>(&self, args: &KernelArgs<'a>, i: usize) -> Rows<'a, f32> {
        args.rows(i, 0..self.units(), self.h)
    }

    /// `batch` · `n` rows of `h` units at step `t` (the parameter structs' fields).
    pub fn new(batch: u32, n: u32, h: u32, t: u32) -> Self {
        Step {
            rows: batch as usize * n as usize,
            h: h as usize,
            t: t as usize,
        }
    }

    /// Units in a step: rows · H.
    pub fn units(&self) -> usize {
        self.rows * self.h
    }

    /// Step `step` of a [steps, rows, width·H] tensor.
    pub fn plane_at(&self, step: usize, width: usize) -> Range<usize> {
        let len = self.units() * width;
        step * len..(step + 1) * len
    }

    /// Step t of a [T, rows, width·H] tensor (width 1: also row t of [T+1, rows, H] states).
    pub fn plane(&self, width: usize) -> Range<usize> {
        self.plane_at(self.t, width)
    }

    /// Rows t and t+1 of [T+1, rows, H] states, as one range (split it to read the state
    /// before the step and write the one after).
    pub fn states(&self) -> Range<usize> {
        self.t * self.units()..(self.t + 2) * self.units()
    }

    /// Step t of a [T, rows] mask.
    pub fn mask(&self) -> Range<usize> {
        self.t * self.rows..(self.t + 1) * self.rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::common::{exp_neg, sigmoid};

    /// sigmoid, tanh and both gradients over a row of inputs, into a row of outputs.
    struct Maths<'a> {
        x: &'a [f32],
        out: crate::kernels::Rows<'a, f32>,
    }

    impl RowKernel for Maths<'_> {
        #[inline(always)]
        unsafe fn row(&self, q: usize) {
            let out = unsafe { self.out.row(q) };
            let n = self.x.len();
            let [s, t, e, di, dn] = blocks_mut::<5>(out, n);
            for i in 0..n {
                let x = self.x[i];
                s[i] = sigmoid(x);
                t[i] = tanh(x);
                e[i] = exp_neg(-x.abs());
                let (a, b) = (sigmoid(x * 0.5), tanh(x * 0.3));
                di[i] = lstm_grads(x, 0.3 * x, [a, b, b, a], x, -x).dz[0];
                dn[i] = gru_grads(x, [a, b, b], x * 0.7, 0.1).dzx[0];
            }
        }
    }

    #[test]
    fn every_vector_extension_gives_the_same_bits() {
        let x: Vec<f32> = (0..20_011)
            .map(|i| (i as f32 - 10_000.0) * 9.3e-3)
            .collect();
        let run = |simd: Simd| {
            let mut out = vec![0.0f32; 5 * x.len()];
            let k = Maths {
                x: &x,
                out: crate::kernels::Rows::new(&mut out, 5 * x.len()),
            };
            unsafe { simd.run(&k, 0) };
            out
        };
        let levels = Simd::available();
        eprintln!("vector extensions: {levels:?}");
        let base: Vec<u32> = run(levels[0]).iter().map(|v| v.to_bits()).collect();
        for &simd in &levels[1..] {
            let got: Vec<u32> = run(simd).iter().map(|v| v.to_bits()).collect();
            assert!(got == base, "{simd:?} differs from the baseline");
        }
    }
}
