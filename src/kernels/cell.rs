//! CPU twins of `shaders/cell.wgsl`: the gates of every RIMs mechanism's LSTM or GRU for one
//! step, after the grouped matmuls, forward and backward. Wrapper: `ops::cell`; oracle:
//! `reference::cell`.
//!
//! One iteration per (batch row, mechanism) = row q = b·N + i: its gate block of G·H values and
//! its H units are contiguous in every tensor, so each loop runs over contiguous H-long slices.
//! Layouts as in the shader: zx, zh, act, dz, dzh [T, B, N, G·H]; hs, cs [T+1, B, N·H];
//! hp, cp [T, B, N, H]; mask [T, B, N]; dres [3, B, N, H]; dcarry [B, N·H].

use crate::kernels::gates::{
    EXP_WORK, GruBackward, GruIncoming, LstmBackward, LstmIncoming, RowKernel, Step, add, blocks,
    blocks_mut, for_rows, gate_twins, gather, gru_step, lstm_step, scatter, step_params, units,
};
use crate::kernels::{KernelArgs, Rows};

step_params! {
    /// The uniform struct of every entry point of `cell.wgsl`: the step's sizes alone.
    pub struct Params {}
}

gate_twins!();

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

/// What the mechanisms' backward takes in: dh' = the merge's residual gradient (dres plane 0) +
/// communication's (plane 2), dc' is plane 1 (LSTM), all accumulated into dcarry. Inactive
/// mechanisms (mask < 0.5) get zero and leave dcarry alone.
struct Incoming<'a> {
    mask: &'a [f32],
    dh_res: &'a [f32],
    dc_res: &'a [f32],
    dh_comm: &'a [f32],
}

impl<'a> Incoming<'a> {
    fn new(args: &KernelArgs<'a>, s: Step) -> Self {
        let [dh_res, dc_res, dh_comm] = dres_planes(args, s);
        Incoming {
            mask: &args.read(3)[s.mask()],
            dh_res,
            dc_res,
            dh_comm,
        }
    }
}

impl LstmIncoming for Incoming<'_> {
    #[inline(always)]
    fn skip(&self, q: usize) -> bool {
        self.mask[q] < 0.5
    }

    #[inline(always)]
    fn row(&self, q: usize, h: usize) -> impl Fn(usize, f32) -> (f32, f32) + '_ {
        let (dh_res, dh_comm) = (units(self.dh_res, q, h), units(self.dh_comm, q, h));
        let dc_res = units(self.dc_res, q, h);
        move |r, _| (dh_res[r] + dh_comm[r], dc_res[r])
    }

    #[inline(always)]
    fn update(carry: f32, dc_prev: f32) -> f32 {
        carry + dc_prev
    }
}

impl GruIncoming for Incoming<'_> {
    #[inline(always)]
    fn skip(&self, q: usize) -> bool {
        self.mask[q] < 0.5
    }

    #[inline(always)]
    fn row(&self, q: usize, h: usize) -> impl Fn(usize, f32) -> f32 + '_ {
        let (dh_res, dh_comm) = (units(self.dh_res, q, h), units(self.dh_comm, q, h));
        move |r, _| dh_res[r] + dh_comm[r]
    }

    #[inline(always)]
    fn update(carry: f32, dh_prev: f32) -> f32 {
        carry + dh_prev
    }
}

fn lstm_backward(args: &KernelArgs<'_>) {
    let (_, s) = Step::of::<Params>(args);
    let k = LstmBackward {
        h: s.h,
        c_prev: s.read(args, 0, 1),
        act: s.read(args, 1, 4),
        c_new: s.read(args, 2, 1),
        dz: s.rows(args, 5, 4),
        carry: s.carry(args, 6),
        incoming: Incoming::new(args, s),
    };
    for_rows(args, args.parallel(s.units() * EXP_WORK / 2), s.rows, &k);
}

fn gru_backward(args: &KernelArgs<'_>) {
    let (_, s) = Step::of::<Params>(args);
    let k = GruBackward {
        h: s.h,
        gh: s.read(args, 0, 3),
        h_prev: s.read(args, 1, 1),
        act: s.read(args, 2, 3),
        dzx: s.rows(args, 5, 3),
        dzh: s.rows(args, 6, 3),
        carry: s.carry(args, 7),
        incoming: Incoming::new(args, s),
    };
    for_rows(args, args.parallel(s.units() * EXP_WORK / 4), s.rows, &k);
}
