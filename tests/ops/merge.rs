//! The `merge` op (`ops::merge`, variant A's gated residual and the merge that keeps inactive
//! mechanisms' state) on both devices against its own oracle, `reference::merge`, batch row by
//! batch row over a few steps, with dropout on o: h_t, c_t, tanh(o) and γ forward; the
//! gradients of o, the gate, h', c' and the carried dh, dc backward. Variant D's flag
//! (`Residual::Plain`: ĥ = h' + o) against `reference::merge::{forward_dido, backward_dido}`
//! the same way (og and dog then hold o alone).

use rims::nn::CellKind;
use rims::ops::input_attention::Dropout;
use rims::ops::merge::{self as op, Residual};
use rims::reference::dropout::factor;
use rims::reference::merge::{self as reference, DROPOUT_COMM};
use rims::rng::Rng;
use rims::{Context, Tensor};

use crate::common::{assert_close, to_f64};

/// Variant A's gated residual, or with `dido` variant D's plain one.
fn check(
    ctx: &Context,
    kind: CellKind,
    [b, n, h]: [usize; 3],
    t_len: usize,
    dido: bool,
    seed: u64,
) {
    let lstm = kind == CellKind::Lstm;
    let (residual, width) = if dido {
        (Residual::Plain, 1)
    } else {
        (Residual::Gated, 2)
    };
    let nh = n * h;
    let drop = Dropout {
        seed: 5,
        step: 9,
        p: 0.2,
    };
    let mut rng = Rng::new(seed);
    let og = rng.vec_f32(t_len * b * n * width * h, -2.0, 2.0);
    let hp = rng.vec_f32(t_len * b * nh, -1.0, 1.0);
    let cp = rng.vec_f32(t_len * b * nh, -1.0, 1.0);
    let mask: Vec<f32> = (0..t_len * b * n).map(|_| rng.below(2) as f32).collect();
    let h0 = rng.vec_f32(b * nh, -1.0, 1.0);
    let c0 = rng.vec_f32(b * nh, -1.0, 1.0);
    let dh_out = rng.vec_f32(t_len * b * nh, -1.0, 1.0);
    let dh_last = rng.vec_f32(b * nh, -1.0, 1.0);
    let dc_last = rng.vec_f32(b * nh, -1.0, 1.0);
    let up = |shape: &[usize], v: &[f32]| Tensor::from_slice(ctx, shape, v).unwrap();
    let zeros = |shape: &[usize]| Tensor::zeros(ctx, shape).unwrap();
    let states = |first: &[f32]| {
        let mut v = first.to_vec();
        v.resize((t_len + 1) * b * nh, 0.0);
        up(&[t_len + 1, b, nh], &v)
    };
    let (og_t, hp_t, cp_t) = (
        up(&[t_len, b * n, width, h], &og),
        up(&[t_len, b, n, h], &hp),
        up(&[t_len, b, n, h], &cp),
    );
    let (mask_t, hs, cs) = (up(&[t_len, b, n], &mask), states(&h0), states(&c0));
    let (tg, dog, dres) = (
        zeros(&[t_len, b * n, 2, h]),
        zeros(&[t_len, b * n, width, h]),
        zeros(&[2, b, n, h]),
    );
    let (dh_out_t, dh, dc) = (
        up(&[t_len, b, nh], &dh_out),
        up(&[b, nh], &dh_last),
        up(&[b, nh], &dc_last),
    );
    for t in 0..t_len {
        let f = op::Forward {
            residual,
            og: &og_t,
            hp: &hp_t,
            cp: &cp_t,
            mask: &mask_t,
            hs: &hs,
            cs: &cs,
            tg: &tg,
        };
        op::forward(ctx, kind, b, n, h, t, drop, &f).unwrap();
    }
    for t in (0..t_len).rev() {
        let bw = op::Backward {
            residual,
            mask: &mask_t,
            dh_out: &dh_out_t,
            tg: &tg,
            dh: &dh,
            dc: &dc,
            dres: &dres,
            dog: &dog,
        };
        op::backward(ctx, kind, b, n, h, t, drop, &bw).unwrap();
    }

    // The oracle: every row's forward chained over the steps, then the backward in reverse.
    // o's dropout factor of unit x of batch row bi (index (b·N + i)·H + e, as the op draws it).
    let keep_o = |bi: usize, x: usize| {
        factor(
            drop.seed,
            drop.step,
            DROPOUT_COMM,
            (bi * nh + x) as u32,
            drop.p,
        )
    };
    let (og, hp, cp, mask, dh_out) = (
        to_f64(&og),
        to_f64(&hp),
        to_f64(&cp),
        to_f64(&mask),
        to_f64(&dh_out),
    );
    let (mut h_state, mut c_state) = (vec![to_f64(&h0)], vec![to_f64(&c0)]);
    let mut rows = Vec::new();
    let (mut want_tg, mut want_dog) = (vec![0.0; 2 * og.len() / width], vec![0.0; og.len()]);
    for t in 0..t_len {
        let (mut h_next, mut c_next) = (Vec::new(), Vec::new());
        for bi in 0..b {
            let tb = t * b + bi;
            let (units, mech) = (tb * nh..(tb + 1) * nh, tb * n..(tb + 1) * n);
            // og is [B·N, 2, H]: o then the gate, per mechanism ([B·N, H], o alone, in D).
            let block = |k: usize| -> Vec<f64> {
                (0..nh)
                    .map(|x| og[((tb * n + x / h) * width + k) * h + x % h])
                    .collect()
            };
            let state = bi * nh..(bi + 1) * nh;
            let cells = lstm.then(|| (&cp[units.clone()], &c_state[t][state.clone()]));
            let keep = |x: usize| keep_o(bi, x);
            let (hp, mask, h_prev) = (&hp[units], &mask[mech], &h_state[t][state]);
            let row = if dido {
                reference::forward_dido(&block(0), hp, mask, h_prev, cells)
            } else {
                reference::forward(&block(0), &block(1), hp, mask, h_prev, cells, keep)
            };
            for x in (0..nh).filter(|_| !dido) {
                let at = |k: usize| ((tb * n + x / h) * 2 + k) * h + x % h;
                (want_tg[at(0)], want_tg[at(1)]) = (row.tanh_o[x], row.gamma[x]);
            }
            h_next.extend_from_slice(&row.h);
            c_next.extend_from_slice(&row.c);
            rows.push(row);
        }
        h_state.push(h_next);
        c_state.push(c_next);
    }
    let (mut dh_want, mut dc_want) = (to_f64(&dh_last), to_f64(&dc_last));
    let mut dres_want = vec![0.0; 2 * b * nh];
    for t in (0..t_len).rev() {
        for bi in 0..b {
            let tb = t * b + bi;
            let state = bi * nh..(bi + 1) * nh;
            let dh_t: Vec<f64> = (0..nh)
                .map(|x| dh_want[bi * nh + x] + dh_out[tb * nh + x])
                .collect();
            let keep = |x: usize| keep_o(bi, x);
            let row = &rows[tb];
            let dc_t = lstm.then(|| &dc_want[state.clone()]);
            let mask = &mask[tb * n..(tb + 1) * n];
            let g = if dido {
                reference::backward_dido(mask, &dh_t, dc_t)
            } else {
                reference::backward(&row.tanh_o, &row.gamma, mask, &dh_t, dc_t, keep)
            };
            for x in 0..nh {
                let at = |k: usize| ((tb * n + x / h) * width + k) * h + x % h;
                want_dog[at(0)] = g.d_o[x];
                if !dido {
                    want_dog[at(1)] = g.d_gate[x];
                }
            }
            // dres holds the last step the backward ran (t = 0).
            dres_want[state.clone()].copy_from_slice(&g.dh_prime);
            dh_want[state.clone()].copy_from_slice(&g.dh_prev);
            if lstm {
                dres_want[b * nh + bi * nh..b * nh + (bi + 1) * nh].copy_from_slice(&g.dc_prime);
                dc_want[state].copy_from_slice(&g.dc_prev);
            }
        }
    }
    let what = |name: &str| format!("{kind:?} D={dido} B={b} N={n} H={h} {name}");
    let hs_got = hs.to_vec(ctx).unwrap();
    assert_close(
        &what("h_t"),
        &hs_got[b * nh..],
        &h_state[1..].concat(),
        1e-6,
        1e-5,
    );
    if lstm {
        assert_close(
            &what("c_t"),
            &cs.to_vec(ctx).unwrap()[b * nh..],
            &c_state[1..].concat(),
            1e-6,
            1e-5,
        );
    }
    let got_tg = tg.to_vec(ctx).unwrap();
    if dido {
        assert!(got_tg.iter().all(|&v| v == 0.0), "{}", what("tg written"));
    } else {
        assert_close(&what("tanh(o), γ"), &got_tg, &want_tg, 1e-6, 1e-5);
    }
    assert_close(
        &what("d(o, gate)"),
        &dog.to_vec(ctx).unwrap(),
        &want_dog,
        1e-6,
        1e-4,
    );
    let planes = if lstm { 2 } else { 1 };
    assert_close(
        &what("dres"),
        &dres.to_vec(ctx).unwrap()[..planes * b * nh],
        &dres_want[..planes * b * nh],
        1e-6,
        1e-4,
    );
    assert_close(&what("dh"), &dh.to_vec(ctx).unwrap(), &dh_want, 1e-6, 1e-4);
    if lstm {
        assert_close(&what("dc"), &dc.to_vec(ctx).unwrap(), &dc_want, 1e-6, 1e-4);
    }
}

device_test!(merge_matches_its_reference);
fn merge_matches_its_reference(ctx: &Context) {
    for kind in [CellKind::Lstm, CellKind::Gru] {
        // N = 5, H = 3; one mechanism of one unit; B·N·H past one workgroup of 64 threads.
        check(ctx, kind, [2, 5, 3], 3, false, 1);
        check(ctx, kind, [1, 1, 1], 2, false, 2);
        check(ctx, kind, [3, 4, 7], 2, false, 3);
    }
}

device_test!(merge_dido_matches_its_reference);
fn merge_dido_matches_its_reference(ctx: &Context) {
    for kind in [CellKind::Lstm, CellKind::Gru] {
        check(ctx, kind, [2, 5, 3], 3, true, 4);
        check(ctx, kind, [1, 1, 1], 2, true, 5);
        check(ctx, kind, [3, 4, 7], 2, true, 6);
    }
}
