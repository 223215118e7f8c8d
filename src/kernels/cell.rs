//! CPU twins of `shaders/cell.wgsl`: the gates of every RIMs mechanism's LSTM or GRU for one
//! step, after the grouped matmuls, forward and backward. Wrapper: `ops::cell`; oracle:
//! `reference::cell`.
//!
//! One iteration per (batch row, mechanism) = row q = b·N + i: its gate block of G·H values and
//! its H units are contiguous in every tensor, so each loop runs over contiguous H-long slices.
//! Layouts as in the shader: zx, zh, act, dz, dzh [T, B, N, G·H]; hs, cs [T+1, B, N·H];
//! hp, cp [T, B, N, H]; mask [T, B, N]; dres [3, B, N, H]; dcarry [B, N·H].

use crate::kernels::gates::{
    GruSaved, LstmSaved, RowKernel, Step, StepParams, add, blocks, blocks_mut, for_rows, gather,
    gru_step, lstm_step, scatter, units,
};
use crate::kernels::{CpuKernel, KernelArgs, Rows};

/// The uniform struct of every entry point of `cell.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    /// B: batch rows.
    pub batch: u32,
    /// N: mechanisms.
    pub n: u32,
    /// H: hidden units per mechanism.
    pub h: u32,
    /// The time step t.
    pub t: u32,
}

impl StepParams for Params {
    fn step(&self) -> Step {
        Step::new(self.batch, self.n, self.h, self.t)
    }
}

/// Work per unit (for [`KernelArgs::parallel`]) of a kernel with a few exp calls per unit.
const EXP_WORK: usize = 16;

/// The twin of each entry point.
pub fn twin(entry: &str) -> Option<CpuKernel> {
    Some(match entry {
        "lstm_forward" => lstm_forward,
        "gru_forward" => gru_forward,
        "lstm_backward" => lstm_backward,
        "gru_backward" => gru_backward,
        _ => return None,
    })
}

/// lstm_forward: act, h', c' of row q from zx + zh and c.
struct LstmForward<'a> {
    h: usize,
    zx: &'a [f32],
    zh: &'a [f32],
    cs: &'a [f32],
    act: Rows<'a, f32>,
    hp: Rows<'a, f32>,
    cp: Rows<'a, f32>,
}

impl RowKernel for LstmForward<'_> {
    #[inline(always)]
    unsafe fn row(&self, q: usize) {
        let h = self.h;
        let (zx, zh) = (blocks::<4>(self.zx, q, h), blocks::<4>(self.zh, q, h));
        let c_prev = units(self.cs, q, h);
        // SAFETY: row q is visited once.
        let (act, hp, cp) = unsafe { (self.act.row(q), self.hp.row(q), self.cp.row(q)) };
        let mut act = blocks_mut::<4>(act, h);
        let (hp, cp) = (&mut hp[..h], &mut cp[..h]);
        for r in 0..h {
            let u = lstm_step(add(gather(&zx, r), gather(&zh, r)), c_prev[r]);
            scatter(&mut act, r, u.act);
            (cp[r], hp[r]) = (u.c, u.h);
        }
    }
}

fn lstm_forward(args: &KernelArgs<'_>) {
    let (_, s) = Step::of::<Params>(args);
    let k = LstmForward {
        h: s.h,
        zx: s.read(args, 0, 4),
        zh: s.read(args, 1, 4),
        cs: s.read(args, 2, 1),
        act: s.rows(args, 3, 4),
        hp: s.rows(args, 4, 1),
        cp: s.rows(args, 5, 1),
    };
    for_rows(args, args.parallel(s.units() * EXP_WORK), s.rows, &k);
}

/// gru_forward: act and h' of row q from zx, zh and h.
struct GruForward<'a> {
    h: usize,
    zx: &'a [f32],
    zh: &'a [f32],
    hs: &'a [f32],
    act: Rows<'a, f32>,
    hp: Rows<'a, f32>,
}

impl RowKernel for GruForward<'_> {
    #[inline(always)]
    unsafe fn row(&self, q: usize) {
        let h = self.h;
        let (zx, zh) = (blocks::<3>(self.zx, q, h), blocks::<3>(self.zh, q, h));
        let h_prev = units(self.hs, q, h);
        // SAFETY: row q is visited once.
        let (act, hp) = unsafe { (self.act.row(q), self.hp.row(q)) };
        let mut act = blocks_mut::<3>(act, h);
        let hp = &mut hp[..h];
        for r in 0..h {
            let u = gru_step(gather(&zx, r), gather(&zh, r), h_prev[r]);
            scatter(&mut act, r, u.act);
            hp[r] = u.h;
        }
    }
}

fn gru_forward(args: &KernelArgs<'_>) {
    let (_, s) = Step::of::<Params>(args);
    let k = GruForward {
        h: s.h,
        zx: s.read(args, 0, 3),
        zh: s.read(args, 1, 3),
        hs: s.read(args, 2, 1),
        act: s.rows(args, 3, 3),
        hp: s.rows(args, 4, 1),
    };
    for_rows(args, args.parallel(s.units() * EXP_WORK), s.rows, &k);
}

/// The three planes of dres (binding 4, [3, B, N, H]): the merge's gradient into h' and c',
/// and communication's into h'.
fn dres_planes<'a>(args: &KernelArgs<'a>, s: Step) -> [&'a [f32]; 3] {
    let bnh = s.units();
    let dres = args.read(4);
    std::array::from_fn(|i| &dres[i * bnh..(i + 1) * bnh])
}

/// lstm_backward: dz of row q; dh' = the merge's residual gradient (dres plane 0) +
/// communication's (plane 2), dc' is plane 1. Inactive mechanisms get zero and leave dcarry
/// alone.
struct LstmBackward<'a> {
    h: usize,
    cs: &'a [f32],
    act: &'a [f32],
    cp: &'a [f32],
    mask: &'a [f32],
    dh_res: &'a [f32],
    dc_res: &'a [f32],
    dh_comm: &'a [f32],
    dz: Rows<'a, f32>,
    dcarry: Rows<'a, f32>,
}

impl RowKernel for LstmBackward<'_> {
    #[inline(always)]
    unsafe fn row(&self, q: usize) {
        let h = self.h;
        // SAFETY: row q is visited once.
        let dz = unsafe { self.dz.row(q) };
        if self.mask[q] < 0.5 {
            dz.fill(0.0);
            return;
        }
        let dh_res = units(self.dh_res, q, h);
        let dc_res = units(self.dc_res, q, h);
        let dh_comm = units(self.dh_comm, q, h);
        // SAFETY: as above.
        let dcarry = unsafe { self.dcarry.row(q) };
        LstmSaved::row(self.act, self.cp, self.cs, q, h).backward(
            dz,
            dcarry,
            |r, _| (dh_res[r] + dh_comm[r], dc_res[r]),
            |carry, dc_prev| carry + dc_prev,
        );
    }
}

fn lstm_backward(args: &KernelArgs<'_>) {
    let (_, s) = Step::of::<Params>(args);
    let bnh = s.units();
    let [dh_res, dc_res, dh_comm] = dres_planes(args, s);
    let k = LstmBackward {
        h: s.h,
        cs: s.read(args, 0, 1),
        act: s.read(args, 1, 4),
        cp: s.read(args, 2, 1),
        mask: &args.read(3)[s.mask()],
        dh_res,
        dc_res,
        dh_comm,
        dz: s.rows(args, 5, 4),
        dcarry: s.carry(args, 6),
    };
    for_rows(args, args.parallel(bnh * EXP_WORK / 2), s.rows, &k);
}

/// gru_backward: as [`LstmBackward`], with separate dzx and dzh (they differ in the n block)
/// and dcarry the gradient of h.
struct GruBackward<'a> {
    h: usize,
    zh: &'a [f32],
    hs: &'a [f32],
    act: &'a [f32],
    mask: &'a [f32],
    dh_res: &'a [f32],
    dh_comm: &'a [f32],
    dzx: Rows<'a, f32>,
    dzh: Rows<'a, f32>,
    dcarry: Rows<'a, f32>,
}

impl RowKernel for GruBackward<'_> {
    #[inline(always)]
    unsafe fn row(&self, q: usize) {
        let h = self.h;
        // SAFETY: row q is visited once.
        let (dzx, dzh) = unsafe { (self.dzx.row(q), self.dzh.row(q)) };
        if self.mask[q] < 0.5 {
            dzx.fill(0.0);
            dzh.fill(0.0);
            return;
        }
        let (dh_res, dh_comm) = (units(self.dh_res, q, h), units(self.dh_comm, q, h));
        // SAFETY: as above.
        let dcarry = unsafe { self.dcarry.row(q) };
        GruSaved::row(self.act, self.zh, self.hs, q, h).backward(
            [dzx, dzh],
            dcarry,
            |r, _| dh_res[r] + dh_comm[r],
            |carry, dh_prev| carry + dh_prev,
        );
    }
}

fn gru_backward(args: &KernelArgs<'_>) {
    let (_, s) = Step::of::<Params>(args);
    let bnh = s.units();
    let [dh_res, _, dh_comm] = dres_planes(args, s);
    let k = GruBackward {
        h: s.h,
        zh: s.read(args, 0, 3),
        hs: s.read(args, 1, 1),
        act: s.read(args, 2, 3),
        mask: &args.read(3)[s.mask()],
        dh_res,
        dh_comm,
        dzx: s.rows(args, 5, 3),
        dzh: s.rows(args, 6, 3),
        dcarry: s.carry(args, 7),
    };
    for_rows(args, args.parallel(bnh * EXP_WORK / 4), s.rows, &k);
}
