//! The `cell` op (`ops::cell`: the mechanisms' LSTM or GRU gates after the grouped products)
//! on both devices against its own oracle, `reference::cell`, row by row: activations, h' and
//! c' forward; dzx, dzh and the carried gradient backward, with inactive mechanisms skipped.

use rims::nn::CellKind;
use rims::ops::cell::{self as op, Backward, Dims};
use rims::reference::cell::{self as reference, CellSaved};
use rims::rng::Rng;
use rims::{Context, Tensor};

use crate::common::{assert_close, to_f64};

fn upload(ctx: &Context, shape: &[usize], v: &[f32]) -> Tensor {
    Tensor::from_slice(ctx, shape, v).unwrap()
}

/// T steps of B rows of N mechanisms of H units, every input random, half the mechanisms
/// inactive; forward then backward of every step.
fn check(ctx: &Context, kind: CellKind, d: Dims, t_len: usize, seed: u64) {
    let lstm = kind == CellKind::Lstm;
    let g = kind.gates();
    let (b, n, h) = (d.batch, d.units, d.hidden);
    let (gw, nh) = (g * h, n * h);
    let mut rng = Rng::new(seed);
    let zx = rng.vec_f32(t_len * b * n * gw, -3.0, 3.0);
    let zh = rng.vec_f32(t_len * b * n * gw, -3.0, 3.0);
    let hs = rng.vec_f32((t_len + 1) * b * nh, -1.0, 1.0);
    let cs = rng.vec_f32((t_len + 1) * b * nh, -2.0, 2.0);
    let dres = rng.vec_f32(3 * b * nh, -1.0, 1.0);
    let carry = rng.vec_f32(b * nh, -1.0, 1.0);
    let mask: Vec<f32> = (0..t_len * b * n).map(|_| rng.below(2) as f32).collect();

    let gate_shape = [t_len, b, n, gw];
    let (zx_t, zh_t) = (upload(ctx, &gate_shape, &zx), upload(ctx, &gate_shape, &zh));
    let hs_t = upload(ctx, &[t_len + 1, b, nh], &hs);
    let cs_t = upload(ctx, &[t_len + 1, b, nh], &cs);
    let zeros = |shape: &[usize]| Tensor::zeros(ctx, shape).unwrap();
    let (act, dzx, dzh) = (zeros(&gate_shape), zeros(&gate_shape), zeros(&gate_shape));
    let (hp, cp) = (zeros(&[t_len, b, n, h]), zeros(&[t_len, b, n, h]));
    let mask_t = upload(ctx, &[t_len, b, n], &mask);
    let dres_t = upload(ctx, &[3, b, n, h], &dres);
    let carry_t = upload(ctx, &[b, nh], &carry);
    for t in 0..t_len {
        op::forward(ctx, kind, d, t, &zx_t, &zh_t, &hs_t, &cs_t, &act, &hp, &cp).unwrap();
    }
    for t in (0..t_len).rev() {
        let bw = Backward {
            zh: &zh_t,
            hs: &hs_t,
            cs: &cs_t,
            act: &act,
            cp: &cp,
            mask: &mask_t,
            dres: &dres_t,
            dzx: &dzx,
            dzh: &dzh,
            carry: &carry_t,
        };
        op::backward(ctx, kind, d, t, &bw).unwrap();
    }

    // The oracle, row (t, b, i) by row.
    let (zx, zh, hs, cs, dres) = (
        to_f64(&zx),
        to_f64(&zh),
        to_f64(&hs),
        to_f64(&cs),
        to_f64(&dres),
    );
    let mut want_act = vec![0.0; zx.len()];
    let mut want_hp = vec![0.0; t_len * b * nh];
    let mut want_cp = vec![0.0; t_len * b * nh];
    let (mut want_dzx, mut want_dzh) = (vec![0.0; zx.len()], vec![0.0; zx.len()]);
    let mut want_carry = to_f64(&carry);
    for t in 0..t_len {
        for q in 0..b * n {
            let row = t * b * n + q;
            let (gates, units) = (row * gw..(row + 1) * gw, row * h..(row + 1) * h);
            let state = (t * b * n + q) * h..(t * b * n + q + 1) * h;
            let (h_prev, c_prev) = (&hs[state.clone()], &cs[state]);
            let out =
                reference::forward(kind, &zx[gates.clone()], &zh[gates.clone()], h_prev, c_prev);
            want_act[gates.clone()].copy_from_slice(&out.gates);
            want_hp[units.clone()].copy_from_slice(&out.h);
            if lstm {
                want_cp[units].copy_from_slice(&out.c);
            }
            if mask[row] < 0.5 {
                continue; // dz stays 0 and the carry is left alone.
            }
            let plane = |k: usize| &dres[k * b * nh + q * h..k * b * nh + (q + 1) * h];
            let dh_new: Vec<f64> = (0..h).map(|r| plane(0)[r] + plane(2)[r]).collect();
            let saved = CellSaved {
                gates: &out.gates,
                ghn: &out.ghn,
                c: &out.c,
            };
            let carried = &mut want_carry[q * h..(q + 1) * h];
            let mut unused = vec![0.0; h];
            let (dh, dc) = if lstm {
                (&mut unused[..], carried)
            } else {
                (carried, &mut unused[..])
            };
            let pre = reference::backward(kind, h_prev, c_prev, &saved, &dh_new, plane(1), dh, dc);
            want_dzx[gates.clone()].copy_from_slice(&pre.dzx);
            want_dzh[gates].copy_from_slice(&pre.dzh);
        }
    }
    let what = |name: &str| format!("{kind:?} {d:?} {name}");
    assert_close(
        &what("act"),
        &act.to_vec(ctx).unwrap(),
        &want_act,
        1e-6,
        1e-5,
    );
    assert_close(&what("h'"), &hp.to_vec(ctx).unwrap(), &want_hp, 1e-6, 1e-5);
    if lstm {
        assert_close(&what("c'"), &cp.to_vec(ctx).unwrap(), &want_cp, 1e-6, 1e-5);
    }
    assert_close(
        &what("dzx"),
        &dzx.to_vec(ctx).unwrap(),
        &want_dzx,
        1e-6,
        1e-4,
    );
    if !lstm {
        // LSTM's dzh equals dzx and is not written (one buffer serves both products).
        assert_close(
            &what("dzh"),
            &dzh.to_vec(ctx).unwrap(),
            &want_dzh,
            1e-6,
            1e-4,
        );
    }
    assert_close(
        &what("carry"),
        &carry_t.to_vec(ctx).unwrap(),
        &want_carry,
        1e-6,
        1e-4,
    );
}

device_test!(cell_matches_its_reference);
fn cell_matches_its_reference(ctx: &Context) {
    for kind in [CellKind::Lstm, CellKind::Gru] {
        for (i, (batch, units, hidden, t_len)) in [(2, 5, 3, 3), (1, 1, 1, 1), (3, 4, 70, 2)]
            .into_iter()
            .enumerate()
        {
            let d = Dims {
                batch,
                units,
                hidden,
            };
            check(ctx, kind, d, t_len, 40 + i as u64);
        }
    }
}
