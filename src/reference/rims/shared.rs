//! What variants A (`reference::rims`) and D (`reference::rims_dido`) share over a sequence:
//! the sizes, the input checks, the state before a step, the products around the families
//! (the input's key and value, the queries' backward, the communication projections) and
//! every mechanism's cell, forward and backward. Each variant keeps only what differs.

// Index loops spell out the formulas; they are the point of this file.
#![allow(clippy::needless_range_loop)]

use crate::reference::recurrent::{self, CellGrads, CellSaved, CellWeights};
use crate::reference::{communication, input_attention, merge};
use crate::spec::cell::{CellKind, RimsConfig};

/// Sizes used by the loops.
#[derive(Clone, Copy, Debug)]
pub(in crate::reference) struct Dims {
    pub b: usize,
    pub n: usize,
    pub h: usize,
    pub d: usize,
    pub hin: usize,
    pub dk: usize,
    pub dvin: usize,
    /// The cell input of a mechanism: h_in·d_vin in A, d_vin in D (the heads averaged).
    pub a: usize,
    pub gh: usize,
    pub hc: usize,
    pub dkc: usize,
    pub dvc: usize,
    /// h_in·d_k
    pub wq: usize,
    /// h_in·d_vin
    pub wvin: usize,
    /// h_c·d_kc
    pub wk: usize,
    /// h_c·d_vc
    pub wv: usize,
}

impl Dims {
    pub fn of(cfg: &RimsConfig, batch: usize) -> Self {
        Dims {
            b: batch,
            n: cfg.mechanisms,
            h: cfg.hidden,
            d: cfg.input,
            hin: cfg.input_heads,
            dk: cfg.input_key,
            dvin: cfg.input_value,
            a: cfg.cell_input(),
            gh: cfg.gate_width(),
            hc: cfg.comm_heads,
            dkc: cfg.comm_key,
            dvc: cfg.comm_value,
            wq: cfg.input_heads * cfg.input_key,
            wvin: cfg.input_heads * cfg.input_value,
            wk: cfg.comm_heads * cfg.comm_key,
            wv: cfg.comm_heads * cfg.comm_value,
        }
    }

    /// B·N·H: one state.
    pub fn state(&self) -> usize {
        self.b * self.n * self.h
    }

    /// The input attention's sizes.
    pub fn input_attention(&self) -> input_attention::Sizes {
        input_attention::Sizes {
            n: self.n,
            h: self.h,
            heads: self.hin,
            dk: self.dk,
            dv: self.dvin,
        }
    }

    /// The communication attention's sizes.
    pub fn communication(&self) -> communication::Sizes {
        communication::Sizes {
            n: self.n,
            heads: self.hc,
            dk: self.dkc,
            dv: self.dvc,
        }
    }
}

/// Asserts the shapes of a sequence's inputs: x [T, B, D], h0 and (LSTM) c0 [B, N·H], the
/// mask override [T, B, N], the frozen h' [T, B, N·H], and every parameter (`len(name)` the
/// length of the tensor of that name, `shapes` the canonical ones).
#[allow(clippy::too_many_arguments)]
pub(in crate::reference) fn check_inputs(
    cfg: &RimsConfig,
    dm: &Dims,
    t_len: usize,
    (x, h0, c0): (&[f64], &[f64], &[f64]),
    mask_override: Option<&[f64]>,
    frozen: Option<&[f64]>,
    shapes: Vec<(&'static str, Vec<usize>)>,
    len: impl Fn(&str) -> Option<usize>,
) {
    cfg.validate().expect("invalid RimsConfig");
    let st = dm.state();
    assert_eq!(x.len(), t_len * dm.b * dm.d, "x");
    assert_eq!(h0.len(), st, "h0");
    if cfg.cell == CellKind::Lstm {
        assert_eq!(c0.len(), st, "c0");
    }
    if let Some(m) = mask_override {
        assert_eq!(m.len(), t_len * dm.b * dm.n, "mask_override");
    }
    if let Some(f) = frozen {
        assert_eq!(f.len(), t_len * st, "comm_frozen");
    }
    for (name, shape) in shapes {
        assert_eq!(len(name), Some(shape.iter().product()), "{name}");
    }
}

/// The state before step t: h0 (c0) at t = 0, else step t − 1 of the sequence's h (c), each
/// `st` long; c is empty for GRU.
pub(in crate::reference) fn before<'a>(
    lstm: bool,
    t: usize,
    st: usize,
    (h0, c0): (&'a [f64], &'a [f64]),
    (h, c): (&'a [f64], &'a [f64]),
) -> (&'a [f64], &'a [f64]) {
    let prev = |first: &'a [f64], seq: &'a [f64]| {
        if t == 0 {
            first
        } else {
            &seq[(t - 1) * st..t * st]
        }
    };
    (prev(h0, h), if lstm { prev(c0, c) } else { &[] })
}

/// x·w for one row: x [in], w [in, out], each column summed in order of x.
pub(in crate::reference) fn row_times(x: &[f64], w: &[f64], out: usize) -> Vec<f64> {
    (0..out)
        .map(|col| (0..x.len()).map(|e| x[e] * w[e * out + col]).sum())
        .collect()
}

/// The cells' weights: wx [N, A, G·H], wh [N, H, G·H] and, in A, the biases [N, G·H] each.
pub(in crate::reference) struct CellParams<'a> {
    pub wx: &'a [f64],
    pub wh: &'a [f64],
    pub bias: Option<(&'a [f64], &'a [f64])>,
}

impl CellParams<'_> {
    /// Mechanism j's; `zero` (G·H zeros) stands in for absent biases.
    fn of<'a>(&'a self, dm: &Dims, j: usize, zero: &'a [f64]) -> CellWeights<'a> {
        let (a, h, gh) = (dm.a, dm.h, dm.gh);
        let (bx, bh) = match self.bias {
            Some((bx, bh)) => (&bx[j * gh..(j + 1) * gh], &bh[j * gh..(j + 1) * gh]),
            None => (zero, zero),
        };
        CellWeights {
            wx: &self.wx[j * a * gh..(j + 1) * a * gh],
            wh: &self.wh[j * h * gh..(j + 1) * h * gh],
            bx,
            bh,
        }
    }
}

/// What the cells save, whole sequences [T, B, N, …] (written at row tb by [`cells_forward`]).
pub(in crate::reference) struct Cells<'a> {
    pub gates: &'a mut [f64],
    pub ghn: &'a mut [f64],
    pub c_prime: &'a mut [f64],
    pub h_prime: &'a mut [f64],
}

/// Every mechanism's cell at row tb = t·B + b on u [T, B, N·A] from hr [N·H] and the step's
/// c_prev [B, N·H] (LSTM).
#[allow(clippy::too_many_arguments)]
pub(in crate::reference) fn cells_forward(
    cfg: &RimsConfig,
    dm: &Dims,
    p: &CellParams,
    (tb, b): (usize, usize),
    u: &[f64],
    hr: &[f64],
    c_prev: &[f64],
    out: Cells,
) {
    let (n, h, a, gh) = (dm.n, dm.h, dm.a, dm.gh);
    let (lstm, nh, zero) = (cfg.cell == CellKind::Lstm, n * h, vec![0.0; gh]);
    for j in 0..n {
        let w = p.of(dm, j, &zero);
        let uj = &u[(tb * n + j) * a..(tb * n + j + 1) * a];
        let cj = if lstm {
            &c_prev[b * nh + j * h..b * nh + (j + 1) * h]
        } else {
            &[][..]
        };
        let o = recurrent::cell_forward(cfg.cell, &w, uj, &hr[j * h..(j + 1) * h], cj);
        let hs = (tb * n + j) * h..(tb * n + j + 1) * h;
        out.gates[(tb * n + j) * gh..(tb * n + j + 1) * gh].copy_from_slice(&o.gates);
        out.h_prime[hs.clone()].copy_from_slice(&o.h);
        if lstm {
            out.c_prime[hs].copy_from_slice(&o.c);
        } else {
            out.ghn[hs].copy_from_slice(&o.ghn);
        }
    }
}

/// What the cells' backward reads of the forward, whole sequences.
pub(in crate::reference) struct CellsSaved<'a> {
    pub gates: &'a [f64],
    pub ghn: &'a [f64],
    pub c_prime: &'a [f64],
    pub u: &'a [f64],
}

/// The gradient accumulators of the cells' weights (biases in A only).
pub(in crate::reference) struct CellParamGrads<'a> {
    pub wx: &'a mut [f64],
    pub wh: &'a mut [f64],
    pub bias: Option<(&'a mut [f64], &'a mut [f64])>,
}

/// Backward of [`cells_forward`] at row tb from dh' `dhp` and (LSTM) dc' `dcp` [N·H]: adds to
/// the weights' gradients, du [T, B, N·A], and the step's dh_prev, dc_prev [B, N·H].
#[allow(clippy::too_many_arguments)]
pub(in crate::reference) fn cells_backward(
    cfg: &RimsConfig,
    dm: &Dims,
    p: &CellParams,
    g: &mut CellParamGrads,
    (tb, b): (usize, usize),
    saved: &CellsSaved,
    (hr, c_prev): (&[f64], &[f64]),
    (dhp, dcp): (&[f64], &[f64]),
    du: &mut [f64],
    (dh_prev, dc_prev): (&mut [f64], &mut [f64]),
) {
    let (n, h, a, gh) = (dm.n, dm.h, dm.a, dm.gh);
    let (lstm, nh, zero) = (cfg.cell == CellKind::Lstm, n * h, vec![0.0; gh]);
    let (mut scratch_x, mut scratch_h) = (vec![0.0; gh], vec![0.0; gh]);
    for j in 0..n {
        let w = p.of(dm, j, &zero);
        let hs = (tb * n + j) * h..(tb * n + j + 1) * h;
        let cell_saved = CellSaved {
            gates: &saved.gates[(tb * n + j) * gh..(tb * n + j + 1) * gh],
            ghn: if lstm { &[] } else { &saved.ghn[hs.clone()] },
            c: if lstm { &saved.c_prime[hs] } else { &[] },
        };
        let js = b * nh + j * h..b * nh + (j + 1) * h;
        let (cj, dcj, dc_out): (&[f64], &[f64], &mut [f64]) = if lstm {
            (
                &c_prev[js.clone()],
                &dcp[j * h..(j + 1) * h],
                &mut dc_prev[js.clone()],
            )
        } else {
            (&[], &[], &mut [])
        };
        let (bx, bh): (&mut [f64], &mut [f64]) = match &mut g.bias {
            Some((bx, bh)) => (&mut bx[j * gh..(j + 1) * gh], &mut bh[j * gh..(j + 1) * gh]),
            // Absent biases: their gradients are dropped.
            None => (&mut scratch_x, &mut scratch_h),
        };
        let mut grads = CellGrads {
            wx: &mut g.wx[j * a * gh..(j + 1) * a * gh],
            wh: &mut g.wh[j * h * gh..(j + 1) * h * gh],
            bx,
            bh,
        };
        recurrent::cell_backward(
            cfg.cell,
            &w,
            &saved.u[(tb * n + j) * a..(tb * n + j + 1) * a],
            &hr[j * h..(j + 1) * h],
            cj,
            &cell_saved,
            &dhp[j * h..(j + 1) * h],
            dcj,
            &mut grads,
            &mut du[(tb * n + j) * a..(tb * n + j + 1) * a],
            &mut dh_prev[js],
            dc_out,
        );
    }
}

/// The communication projections' weights [N, H, h_c·d_kc] (q, k) and [N, H, h_c·d_vc] (v).
pub(in crate::reference) type Projections<'a> = (&'a [f64], &'a [f64], &'a [f64]);

/// What communication reads at row tb (h', or `frozen` for inactive mechanisms) into
/// `comm_in`, then its Q, K, V [T, B, N, …] (whole sequences, written at row tb).
#[allow(clippy::too_many_arguments)]
pub(in crate::reference) fn projections_forward(
    dm: &Dims,
    tb: usize,
    mask: &[f64],
    frozen: Option<&[f64]>,
    h_prime: &[f64],
    comm_in: &mut [f64],
    (wq, wk, wv): Projections,
    (cq, ck, cv): (&mut [f64], &mut [f64], &mut [f64]),
) {
    let (n, h, kw, vw) = (dm.n, dm.h, dm.wk, dm.wv);
    for j in 0..n {
        for r in 0..h {
            let idx = (tb * n + j) * h + r;
            comm_in[idx] = match frozen {
                Some(fz) if mask[j] == 0.0 => fz[idx],
                _ => h_prime[idx],
            };
        }
    }
    for j in 0..n {
        let hj = &comm_in[(tb * n + j) * h..(tb * n + j + 1) * h];
        for col in 0..kw {
            let w = |m: &[f64], r: usize| m[(j * h + r) * kw + col];
            cq[(tb * n + j) * kw + col] = (0..h).map(|r| hj[r] * w(wq, r)).sum();
            ck[(tb * n + j) * kw + col] = (0..h).map(|r| hj[r] * w(wk, r)).sum();
        }
        for col in 0..vw {
            cv[(tb * n + j) * vw + col] = (0..h).map(|r| hj[r] * wv[(j * h + r) * vw + col]).sum();
        }
    }
}

/// Backward of [`projections_forward`] at row tb from the attention's gradients: adds to the
/// weights' gradients and, through `blocked_grad` (times m_j), to dh' `dhp` [N·H].
#[allow(clippy::too_many_arguments)]
pub(in crate::reference) fn projections_backward(
    dm: &Dims,
    tb: usize,
    mask: &[f64],
    comm_in: &[f64],
    g: &communication::Grads,
    (wq, wk, wv): Projections,
    (gq, gk, gv): (&mut [f64], &mut [f64], &mut [f64]),
    dhp: &mut [f64],
) {
    let (n, h, kw, vw) = (dm.n, dm.h, dm.wk, dm.wv);
    let (dcq, dck, dcv) = (&g.dq, &g.dk, &g.dv);
    for j in 0..n {
        let hj = &comm_in[(tb * n + j) * h..(tb * n + j + 1) * h];
        for r in 0..h {
            let mut dhc = 0.0;
            for col in 0..kw {
                let wi = (j * h + r) * kw + col;
                gq[wi] += hj[r] * dcq[j * kw + col];
                gk[wi] += hj[r] * dck[j * kw + col];
                dhc += dcq[j * kw + col] * wq[wi] + dck[j * kw + col] * wk[wi];
            }
            for col in 0..vw {
                let wi = (j * h + r) * vw + col;
                gv[wi] += hj[r] * dcv[j * vw + col];
                dhc += dcv[j * vw + col] * wv[wi];
            }
            // blocked_grad: nothing reaches an inactive mechanism through communication.
            dhp[j * h + r] += mask[j] * dhc;
        }
    }
}

/// Backward of the queries' product q_i = h_i·in_q_i of batch row b from dq [N, h_in·d_k]:
/// adds to in_q's gradient and to the step's dh_prev [B, N·H].
pub(in crate::reference) fn queries_backward(
    dm: &Dims,
    b: usize,
    hr: &[f64],
    dq: &[f64],
    (in_q, g_in_q): (&[f64], &mut [f64]),
    dh_prev: &mut [f64],
) {
    let (n, h, wq, nh) = (dm.n, dm.h, dm.wq, dm.n * dm.h);
    for i in 0..n {
        for col in 0..wq {
            let dqv = dq[i * wq + col];
            for r in 0..h {
                let wi = (i * h + r) * wq + col;
                g_in_q[wi] += hr[i * h + r] * dqv;
                dh_prev[b * nh + i * h + r] += dqv * in_q[wi];
            }
        }
    }
}

/// Backward of the input's key k = x·in_k_w and value v = x·in_v_w (one row x [D]) from dk,
/// dv: adds to the weights' gradients and to dx [D].
pub(in crate::reference) fn input_products_backward(
    xr: &[f64],
    (dk, dv): (&[f64], &[f64]),
    (in_k_w, in_v_w): (&[f64], &[f64]),
    (g_k_w, g_v_w): (&mut [f64], &mut [f64]),
    dx: &mut [f64],
) {
    let (wq, wvin) = (dk.len(), dv.len());
    for e in 0..xr.len() {
        for col in 0..wq {
            g_k_w[e * wq + col] += xr[e] * dk[col];
            dx[e] += dk[col] * in_k_w[e * wq + col];
        }
        for col in 0..wvin {
            g_v_w[e * wvin + col] += xr[e] * dv[col];
            dx[e] += dv[col] * in_v_w[e * wvin + col];
        }
    }
}

/// One batch row of one step of the backward: what both variants' steps read.
pub(in crate::reference) struct BackRow<'a> {
    pub b: usize,
    /// t·B + b.
    pub tb: usize,
    /// The dropout step, step0 + t.
    pub step: u32,
    /// x_t [D], h_{t-1} [N·H] of this row, and (LSTM) the step's c_{t-1} [B, N·H].
    pub xr: &'a [f64],
    pub hr: &'a [f64],
    pub c_prev: &'a [f64],
    /// The step's mask [N].
    pub mask: &'a [f64],
    /// dL/dh_t [N·H]: the loss's plus what later steps carried.
    pub dht: Vec<f64>,
    /// LSTM: dL/dc_t carried [N·H].
    pub dct: Option<&'a [f64]>,
}

/// Where a row's backward adds: the step's dh_{t-1}, dc_{t-1} [B, N·H] and the sequences' dx
/// [T, B, D], du [T, B, N·A], dh' [T, B, N·H].
pub(in crate::reference) struct BackOut {
    pub dh_prev: Vec<f64>,
    pub dc_prev: Vec<f64>,
    pub dx: Vec<f64>,
    pub du: Vec<f64>,
    pub dh_prime: Vec<f64>,
}

impl BackOut {
    /// Adds the merge's copy paths of batch row b to dh_{t-1} and (LSTM) dc_{t-1}.
    pub fn add_copy_path(&mut self, b: usize, g: &merge::Grads) {
        let nh = g.dh_prev.len();
        for x in 0..nh {
            self.dh_prev[b * nh + x] += g.dh_prev[x];
        }
        for x in 0..g.dc_prev.len() {
            self.dc_prev[b * nh + x] += g.dc_prev[x];
        }
    }
}

/// The sequence gradients besides the parameters': dx, dh0, dc0, du, dh'.
pub(in crate::reference) struct BackSeq {
    pub dx: Vec<f64>,
    pub dh0: Vec<f64>,
    pub dc0: Vec<f64>,
    pub du: Vec<f64>,
    pub dh_prime: Vec<f64>,
}

/// Runs `row` over the steps in reverse and the batch rows in order, carrying dL/dh_t and
/// (LSTM) dL/dc_t back: `dh` [T, B, N·H] is the loss's gradient of every h_t, `dc_last`
/// [B, N·H] of c_T; `states` the forward's h and c [T, B, N·H], `masks` [T, B, N].
#[allow(clippy::too_many_arguments)]
pub(in crate::reference) fn backward_steps(
    cfg: &RimsConfig,
    dm: &Dims,
    t_len: usize,
    (x, h0, c0): (&[f64], &[f64], &[f64]),
    (h, c, masks): (&[f64], &[f64], &[f64]),
    (dh, dc_last): (&[f64], Option<&[f64]>),
    step0: u32,
    mut row: impl FnMut(&BackRow, &mut BackOut),
) -> BackSeq {
    let (bsz, n, d) = (dm.b, dm.n, dm.d);
    let (lstm, nh, st) = (cfg.cell == CellKind::Lstm, dm.n * dm.h, dm.state());
    assert_eq!(dh.len(), t_len * st, "dh");
    let mut out = BackOut {
        dh_prev: Vec::new(),
        dc_prev: Vec::new(),
        dx: vec![0.0; t_len * bsz * d],
        du: vec![0.0; t_len * bsz * n * dm.a],
        dh_prime: vec![0.0; t_len * st],
    };
    // Gradients w.r.t. h_t and c_t coming from later steps (and dc_last).
    let mut dh_carry = vec![0.0; st];
    let mut dc_carry = match (lstm, dc_last) {
        (true, Some(dc)) => {
            assert_eq!(dc.len(), st, "dc_last");
            dc.to_vec()
        }
        (true, None) => vec![0.0; st],
        (false, _) => Vec::new(),
    };
    for t in (0..t_len).rev() {
        let step = step0.wrapping_add(t as u32);
        let (h_prev, c_prev) = before(lstm, t, st, (h0, c0), (h, c));
        out.dh_prev = vec![0.0; st];
        out.dc_prev = vec![0.0; if lstm { st } else { 0 }];
        for b in 0..bsz {
            let tb = t * bsz + b;
            let r = BackRow {
                b,
                tb,
                step,
                xr: &x[tb * d..(tb + 1) * d],
                hr: &h_prev[b * nh..(b + 1) * nh],
                c_prev,
                mask: &masks[tb * n..(tb + 1) * n],
                dht: (0..nh)
                    .map(|e| dh[tb * nh + e] + dh_carry[b * nh + e])
                    .collect(),
                dct: lstm.then(|| &dc_carry[b * nh..(b + 1) * nh]),
            };
            row(&r, &mut out);
        }
        dh_carry = std::mem::take(&mut out.dh_prev);
        dc_carry = std::mem::take(&mut out.dc_prev);
    }
    BackSeq {
        dx: out.dx,
        dh0: dh_carry,
        dc0: dc_carry,
        du: out.du,
        dh_prime: out.dh_prime,
    }
}
