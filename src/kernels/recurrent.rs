//! CPU twins of `shaders/recurrent.wgsl`: the gates of one time step of the dense LSTM and GRU
//! layers (the paper's baselines), forward and backward, after the products. Wrapper:
//! `ops::recurrent`; oracle: `reference::recurrent`.
//!
//! One iteration per batch row b, over its H contiguous units (and its G·H gate values).
//! Layouts as in the shader: gates, gh, act, dz, dzh [T, B, G·H]; hs, cs [T+1, B, H];
//! dy [T, B, H]; dh, dc [B, H]. Gate blocks: LSTM [i, f, g, o], GRU [r, z, n].

use crate::kernels::gates::{
    EXP_WORK, GruBackward, GruIncoming, LstmBackward, LstmIncoming, RowKernel, Step, StepParams,
    blocks, blocks_mut, for_rows, gate_twins, gather, gru_step, lstm_step, scatter, units,
};
use crate::kernels::{KernelArgs, Rows};

/// The uniform struct of every entry point of `recurrent.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    /// B: batch rows.
    pub batch: u32,
    /// H: hidden units.
    pub h: u32,
    /// The time step t.
    pub t: u32,
    /// Padding to 16 bytes.
    pub _pad: u32,
}

impl StepParams for Params {
    fn step(&self) -> Step {
        Step::new(self.batch, 1, self.h, self.t)
    }
}

gate_twins!();

/// lstm_forward: row b's gates in place, c_t from row t of cs, c_{t+1} and h_{t+1} written.
struct LstmForward<'a> {
    h: usize,
    gates: Rows<'a, f32>,
    h_next: Rows<'a, f32>,
    c_prev: &'a [f32],
    c_next: Rows<'a, f32>,
}

impl RowKernel for LstmForward<'_> {
    #[inline(always)]
    unsafe fn row(&self, b: usize) {
        let h = self.h;
        let c_prev = units(self.c_prev, b, h);
        // SAFETY: row b is visited once.
        let (gates, h_next, c_next) = unsafe {
            (
                self.gates.row(b),
                &mut self.h_next.row(b)[..h],
                &mut self.c_next.row(b)[..h],
            )
        };
        let mut gates = blocks_mut::<4>(gates, h);
        for r in 0..h {
            let u = lstm_step(gather(&gates, r), c_prev[r]);
            scatter(&mut gates, r, u.act);
            (c_next[r], h_next[r]) = (u.c, u.h);
        }
    }
}

fn lstm_forward(args: &KernelArgs<'_>) {
    let (_, s) = Step::of::<Params>(args);
    let (h, bh) = (s.h, s.units());
    let (c_prev, c_next) = args.write(2)[s.states()].split_at_mut(bh);
    let k = LstmForward {
        h,
        gates: s.rows(args, 0, 4),
        h_next: Rows::new(&mut args.write(1)[s.plane_at(s.t + 1, 1)], h),
        c_prev,
        c_next: Rows::new(c_next, h),
    };
    for_rows(args, args.parallel(bh * EXP_WORK), s.rows, &k);
}

/// gru_forward: row b's gates in place (from x·Wx + bx and gh = h·Wh + bh), h_{t+1} from h_t.
struct GruForward<'a> {
    h: usize,
    gates: Rows<'a, f32>,
    gh: &'a [f32],
    h_prev: &'a [f32],
    h_next: Rows<'a, f32>,
}

impl RowKernel for GruForward<'_> {
    #[inline(always)]
    unsafe fn row(&self, b: usize) {
        let h = self.h;
        let gh = blocks::<3>(self.gh, b, h);
        let h_prev = units(self.h_prev, b, h);
        // SAFETY: row b is visited once.
        let (gates, h_next) = unsafe { (self.gates.row(b), &mut self.h_next.row(b)[..h]) };
        let mut gates = blocks_mut::<3>(gates, h);
        for r in 0..h {
            let u = gru_step(gather(&gates, r), gather(&gh, r), h_prev[r]);
            scatter(&mut gates, r, u.act);
            h_next[r] = u.h;
        }
    }
}

fn gru_forward(args: &KernelArgs<'_>) {
    let (_, s) = Step::of::<Params>(args);
    let (h, bh) = (s.h, s.units());
    let (h_prev, h_next) = args.write(2)[s.states()].split_at_mut(bh);
    let k = GruForward {
        h,
        gates: s.rows(args, 0, 3),
        gh: s.read(args, 1, 3),
        h_prev,
        h_next: Rows::new(h_next, h),
    };
    for_rows(args, args.parallel(bh * EXP_WORK), s.rows, &k);
}

/// What lstm_backward takes in: dh_t = dy_t + dh (dh is only read: the step's product overwrites
/// it) and dc_t, the carry, which becomes the gradient of c_{t-1}.
struct LstmIn<'a> {
    dy: &'a [f32],
    dh: &'a [f32],
}

impl LstmIncoming for LstmIn<'_> {
    #[inline(always)]
    fn row(&self, b: usize, h: usize) -> impl Fn(usize, f32) -> (f32, f32) + '_ {
        let (dy, dh) = (units(self.dy, b, h), units(self.dh, b, h));
        move |r, dc| (dy[r] + dh[r], dc)
    }

    #[inline(always)]
    fn update(_: f32, dc_prev: f32) -> f32 {
        dc_prev
    }
}

fn lstm_backward(args: &KernelArgs<'_>) {
    let (_, s) = Step::of::<Params>(args);
    let (h, bh) = (s.h, s.units());
    let cs = &args.read(1)[s.states()];
    let k = LstmBackward {
        h,
        act: s.read(args, 0, 4),
        c_prev: &cs[..bh],
        c_new: &cs[bh..],
        carry: s.carry(args, 4),
        dz: s.rows(args, 5, 4),
        incoming: LstmIn {
            dy: s.read(args, 2, 1),
            dh: &args.write(3)[..bh],
        },
    };
    for_rows(args, args.parallel(bh * EXP_WORK / 2), s.rows, &k);
}

/// What gru_backward takes in: dh_t = dy_t + dh, the carry, which becomes the direct part of the
/// gradient of h_{t-1}, dh_t ⊙ z (dzx and dzh differ in the n block: dzh_n = dzx_n ⊙ r).
struct GruIn<'a> {
    dy: &'a [f32],
}

impl GruIncoming for GruIn<'_> {
    #[inline(always)]
    fn row(&self, b: usize, h: usize) -> impl Fn(usize, f32) -> f32 + '_ {
        let dy = units(self.dy, b, h);
        move |r, dh| dy[r] + dh
    }

    #[inline(always)]
    fn update(_: f32, dh_prev: f32) -> f32 {
        dh_prev
    }
}

fn gru_backward(args: &KernelArgs<'_>) {
    let (_, s) = Step::of::<Params>(args);
    let bh = s.units();
    let k = GruBackward {
        h: s.h,
        act: s.read(args, 0, 3),
        gh: s.read(args, 1, 3),
        h_prev: s.read(args, 2, 1),
        carry: s.carry(args, 4),
        dzx: s.rows(args, 5, 3),
        dzh: s.rows(args, 6, 3),
        incoming: GruIn {
            dy: s.read(args, 3, 1),
        },
    };
    for_rows(args, args.parallel(bh * EXP_WORK / 4), s.rows, &k);
}
