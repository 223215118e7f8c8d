//! The `input_attention` op (`ops::input_attention`, variant A: queries, scores, top-k mask
//! and the attended values in one dispatch) on both devices against its own oracle,
//! `reference::input_attention`, batch row by batch row, with dropout on u: q, α, the mask
//! (exactly) and u forward; dq and d(k | v) backward. The same for variant D's entry points
//! (`forward_dido`, `backward_dido`) against `reference::input_attention::forward_dido` and
//! `backward_dido`: q, α_x, the mask and u; dq, dk_x, dv_x and dv_∅.

use rims::ops::input_attention::{self as op, Dropout, Sizes};
use rims::reference::dropout::factor;
use rims::reference::input_attention::{self as reference, DROPOUT_PROBS, DROPOUT_U};
use rims::rng::Rng;
use rims::{Context, Tensor};

use crate::common::{assert_close, to_f64};

/// What the op wrote, read back.
struct Got {
    q: Vec<f32>,
    alpha: Vec<f32>,
    mask: Vec<f32>,
    u: Vec<f32>,
    dq: Vec<f32>,
    dkv: Vec<f32>,
}

/// Uploads the inputs, records every step's forward and backward with variant A's entry points
/// or D's, and reads the outputs back. The layouts are the variant's: kv has a null-input row
/// first in D; α is per head in A, one per mechanism in D; u and du are h_in·d_vin wide in A,
/// d_vin in D; dkv holds (dk | dv) in A, (dk_x | dv_x | dv_∅) in D.
fn run_op(
    ctx: &Context,
    s: &Sizes,
    (batch, t_len): (usize, usize),
    drop: Dropout,
    dido: bool,
    (hs, in_q, kv, du): (&[f32], &[f32], &[f32], &[f32]),
    given: Option<&[f32]>,
) -> Got {
    let (n, h, wq, wv) = (s.mechanisms, s.hidden, s.heads * s.key, s.heads * s.value);
    let (kv_rows, alpha_w, a, dkvw) = if dido {
        (1 + t_len * batch, 1, s.value, wq + 2 * wv)
    } else {
        (t_len * batch, s.heads, wv, wq + wv)
    };
    let up = |shape: &[usize], v: &[f32]| Tensor::from_slice(ctx, shape, v).unwrap();
    let zeros = |shape: &[usize]| Tensor::zeros(ctx, shape).unwrap();
    let given = given.map(|g| up(&[t_len, batch, n], g));
    let (hs, in_q) = (up(&[t_len + 1, batch, n * h], hs), up(&[n, h, wq], in_q));
    let (kv, du) = (up(&[kv_rows, wq + wv], kv), up(&[batch, n, a], du));
    let (q, alpha) = (
        zeros(&[t_len, batch, n, wq]),
        zeros(&[t_len, batch, n, alpha_w]),
    );
    let (mask, u) = (zeros(&[t_len, batch, n]), zeros(&[t_len, batch, n, a]));
    let (dq, dkv) = (zeros(&[t_len, batch, n, wq]), zeros(&[t_len, batch, dkvw]));
    let f = op::Forward {
        hs: &hs,
        in_q: &in_q,
        kv: &kv,
        mask_override: given.as_ref(),
        q: &q,
        alpha: &alpha,
        mask: &mask,
        u: &u,
    };
    let bw = op::Backward {
        kv: &kv,
        du: &du,
        q: &q,
        alpha: &alpha,
        mask: &mask,
        dq: &dq,
        dkv: &dkv,
    };
    let (forward, backward) = if dido {
        (
            op::forward_dido as Entry<op::Forward>,
            op::backward_dido as Entry<op::Backward>,
        )
    } else {
        (
            op::forward as Entry<op::Forward>,
            op::backward as Entry<op::Backward>,
        )
    };
    for t in 0..t_len {
        forward(ctx, s, batch, t, drop, &f).unwrap();
        backward(ctx, s, batch, t, drop, &bw).unwrap();
    }
    let read = |t: &Tensor| t.to_vec(ctx).unwrap();
    Got {
        q: read(&q),
        alpha: read(&alpha),
        mask: read(&mask),
        u: read(&u),
        dq: read(&dq),
        dkv: read(&dkv),
    }
}

/// An entry point of the op: forward or backward, A's or D's.
type Entry<B> = for<'a> fn(&Context, &Sizes, usize, usize, Dropout, &B) -> rims::Result<()>;

fn check(ctx: &Context, s: Sizes, batch: usize, t_len: usize, override_mask: bool, seed: u64) {
    let (n, h) = (s.mechanisms, s.hidden);
    let (wq, a) = (s.heads * s.key, s.heads * s.value);
    let kvw = wq + a;
    let drop = Dropout {
        seed: 11,
        step: 3,
        p: 0.25,
    };
    let mut rng = Rng::new(seed);
    let hs = rng.vec_f32((t_len + 1) * batch * n * h, -1.0, 1.0);
    let in_q = rng.vec_f32(n * h * wq, -1.0, 1.0);
    let kv = rng.vec_f32(t_len * batch * kvw, -1.0, 1.0);
    let du = rng.vec_f32(batch * n * a, -1.0, 1.0);
    let given: Vec<f32> = (0..t_len * batch * n)
        .map(|_| rng.below(2) as f32)
        .collect();
    let given_host = override_mask.then_some(&given[..]);
    let inputs = (&hs[..], &in_q[..], &kv[..], &du[..]);
    let got = run_op(ctx, &s, (batch, t_len), drop, false, inputs, given_host);

    let rs = reference::Sizes {
        n,
        h,
        heads: s.heads,
        dk: s.key,
        dv: s.value,
    };
    let (hs, in_q, kv, du, given) = (
        to_f64(&hs),
        to_f64(&in_q),
        to_f64(&kv),
        to_f64(&du),
        to_f64(&given),
    );
    let mut want: [Vec<f64>; 6] = Default::default();
    let got_mask = &got.mask;
    for t in 0..t_len {
        for b in 0..batch {
            let tb = t * batch + b;
            let (k, v) = kv[tb * kvw..(tb + 1) * kvw].split_at(wq);
            let h_prev = &hs[tb * n * h..(tb + 1) * n * h];
            let keep = |x: usize| {
                factor(
                    drop.seed,
                    drop.step,
                    DROPOUT_U,
                    (b * n * a + x) as u32,
                    drop.p,
                )
            };
            let over = override_mask.then(|| &given[tb * n..(tb + 1) * n]);
            let row = reference::forward(&rs, &in_q, h_prev, k, v, s.active, over, keep);
            // The backward reads the device's mask, so a near tie decided the other way in f32
            // would show up here first, named, rather than as a gradient mismatch.
            assert_eq!(
                got_mask[tb * n..(tb + 1) * n]
                    .iter()
                    .map(|&m| m as f64)
                    .collect::<Vec<_>>(),
                row.mask,
                "{s:?} mask of row {tb}"
            );
            let g = reference::backward(
                &rs,
                k,
                v,
                &row.q,
                &row.alpha,
                &row.mask,
                &du[b * n * a..(b + 1) * n * a],
                keep,
            );
            for (out, part) in want
                .iter_mut()
                .zip([&row.q, &row.alpha, &row.u, &g.dq, &g.dk, &g.dv])
            {
                out.extend_from_slice(part);
            }
        }
    }
    let [want_q, want_alpha, want_u, want_dq, want_dk, want_dv] = want;
    let what = |name: &str| format!("{s:?} B={batch} override={override_mask} {name}");
    assert_close(&what("q"), &got.q, &want_q, 1e-6, 1e-5);
    assert_close(&what("alpha"), &got.alpha, &want_alpha, 1e-6, 1e-5);
    assert_close(&what("u"), &got.u, &want_u, 1e-6, 1e-5);
    assert_close(&what("dq"), &got.dq, &want_dq, 1e-6, 1e-4);
    let dkv = &got.dkv;
    let (mut got_dk, mut got_dv) = (Vec::new(), Vec::new());
    for row in dkv.chunks(kvw) {
        got_dk.extend_from_slice(&row[..wq]);
        got_dv.extend_from_slice(&row[wq..]);
    }
    assert_close(&what("dk"), &got_dk, &want_dk, 1e-6, 1e-4);
    assert_close(&what("dv"), &got_dv, &want_dv, 1e-6, 1e-4);
}

device_test!(input_attention_matches_its_reference);
fn input_attention_matches_its_reference(ctx: &Context) {
    let sizes = |mechanisms, active, hidden, heads, key, value| Sizes {
        mechanisms,
        active,
        hidden,
        heads,
        key,
        value,
    };
    // N = 5, H = 3 with 2 heads; one head; every mechanism active; a caller's mask.
    check(ctx, sizes(5, 2, 3, 2, 3, 4), 3, 2, false, 1);
    check(ctx, sizes(5, 3, 3, 1, 4, 5), 2, 2, false, 2);
    check(ctx, sizes(3, 3, 2, 2, 2, 3), 2, 1, false, 3);
    check(ctx, sizes(5, 2, 3, 2, 3, 4), 2, 2, true, 4);
}

/// Variant D's entry points (`forward_dido`, `backward_dido`) against
/// `reference::input_attention::{forward_dido, backward_dido}`: kv [1 + T·B, h_in·d_k + h_in·d_vin]
/// with the null input's key and value in row 0, dropout on the two probabilities.
fn check_dido(ctx: &Context, s: Sizes, batch: usize, t_len: usize, override_mask: bool, seed: u64) {
    let (n, h, dvin) = (s.mechanisms, s.hidden, s.value);
    let (wq, wv) = (s.heads * s.key, s.heads * s.value);
    let kvw = wq + wv;
    let drop = Dropout {
        seed: 13,
        step: 2,
        p: 0.3,
    };
    let mut rng = Rng::new(seed);
    let hs = rng.vec_f32((t_len + 1) * batch * n * h, -1.0, 1.0);
    let in_q = rng.vec_f32(n * h * wq, -1.0, 1.0);
    let kv = rng.vec_f32((1 + t_len * batch) * kvw, -1.0, 1.0);
    let du = rng.vec_f32(batch * n * dvin, -1.0, 1.0);
    let given: Vec<f32> = (0..t_len * batch * n)
        .map(|_| rng.below(2) as f32)
        .collect();
    let given_host = override_mask.then_some(&given[..]);
    let inputs = (&hs[..], &in_q[..], &kv[..], &du[..]);
    let got = run_op(ctx, &s, (batch, t_len), drop, true, inputs, given_host);
    let dkvw = wq + 2 * wv;

    let rs = reference::Sizes {
        n,
        h,
        heads: s.heads,
        dk: s.key,
        dv: s.value,
    };
    let (hs, in_q, kv, du, given) = (
        to_f64(&hs),
        to_f64(&in_q),
        to_f64(&kv),
        to_f64(&du),
        to_f64(&given),
    );
    let (kn, vn) = kv[..kvw].split_at(wq);
    let mut want: [Vec<f64>; 7] = Default::default();
    let got_mask = &got.mask;
    for t in 0..t_len {
        for b in 0..batch {
            let tb = t * batch + b;
            let (kx, vx) = kv[(1 + tb) * kvw..(2 + tb) * kvw].split_at(wq);
            let h_prev = &hs[tb * n * h..(tb + 1) * n * h];
            let keep = |x: usize| {
                let index = (b * n * 2 + x) as u32;
                factor(drop.seed, drop.step, DROPOUT_PROBS, index, drop.p)
            };
            let over = override_mask.then(|| &given[tb * n..(tb + 1) * n]);
            let (k, v) = ((kx, kn), (vx, vn));
            let row = reference::forward_dido(&rs, &in_q, h_prev, k, v, s.active, over, keep);
            assert_eq!(
                got_mask[tb * n..(tb + 1) * n]
                    .iter()
                    .map(|&m| m as f64)
                    .collect::<Vec<_>>(),
                row.mask,
                "{s:?} mask of row {tb}"
            );
            let du_b = &du[b * n * dvin..(b + 1) * n * dvin];
            let g = reference::backward_dido(&rs, k, v, &row.q, &row.alpha, &row.mask, du_b, keep);
            let parts = [&row.q, &row.alpha, &row.u, &g.dq, &g.dk, &g.dv, &g.dv_null];
            for (out, part) in want.iter_mut().zip(parts) {
                out.extend_from_slice(part);
            }
        }
    }
    let [
        want_q,
        want_alpha,
        want_u,
        want_dq,
        want_dk,
        want_dv,
        want_dvn,
    ] = want;
    let what = |name: &str| format!("D {s:?} B={batch} override={override_mask} {name}");
    assert_close(&what("q"), &got.q, &want_q, 1e-6, 1e-5);
    let got_alpha = &got.alpha;
    assert_close(&what("alpha"), got_alpha, &want_alpha, 1e-6, 1e-5);
    assert_close(&what("u"), &got.u, &want_u, 1e-6, 1e-5);
    assert_close(&what("dq"), &got.dq, &want_dq, 1e-6, 1e-4);
    let dkv = &got.dkv;
    let mut got: [Vec<f32>; 3] = Default::default();
    for row in dkv.chunks(dkvw) {
        got[0].extend_from_slice(&row[..wq]);
        got[1].extend_from_slice(&row[wq..wq + wv]);
        got[2].extend_from_slice(&row[wq + wv..]);
    }
    assert_close(&what("dk_x"), &got[0], &want_dk, 1e-6, 1e-4);
    assert_close(&what("dv_x"), &got[1], &want_dv, 1e-6, 1e-4);
    assert_close(&what("dv_null"), &got[2], &want_dvn, 1e-6, 1e-4);
}

device_test!(input_attention_dido_matches_its_reference);
fn input_attention_dido_matches_its_reference(ctx: &Context) {
    let sizes = |mechanisms, active, hidden, heads, key, value| Sizes {
        mechanisms,
        active,
        hidden,
        heads,
        key,
        value,
    };
    // N = 5, H = 3 with 2 heads; one head; every mechanism active; a caller's mask; a batch
    // of many rows (one workgroup each).
    check_dido(ctx, sizes(5, 2, 3, 2, 3, 4), 3, 2, false, 11);
    check_dido(ctx, sizes(5, 3, 3, 1, 4, 5), 2, 2, false, 12);
    check_dido(ctx, sizes(3, 3, 2, 3, 2, 3), 2, 1, false, 13);
    check_dido(ctx, sizes(5, 2, 3, 2, 3, 4), 2, 2, true, 14);
    check_dido(ctx, sizes(4, 2, 5, 2, 2, 3), 17, 1, false, 15);
}
