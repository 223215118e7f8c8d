//! The `communication` op (`ops::communication`, variant A: softmax attention of every
//! mechanism over all N, per head) on both devices against its own oracle,
//! `reference::communication`, batch row by batch row: probabilities and contexts forward,
//! the projections' gradients backward. Variant D's flag (`RowMask`: each row of P times m_i,
//! then dropout) against `reference::communication::{forward_dido, backward_dido}` the same way.

use rims::ops::communication::{self as op, RowMask, Sizes};
use rims::ops::input_attention::Dropout;
use rims::reference::communication::{self as reference, DROPOUT_PROBS};
use rims::reference::dropout::factor;
use rims::rng::Rng;
use rims::{Context, Tensor};

use crate::common::{assert_close, to_f64};

/// Variant A's plain softmax, or with `dido` variant D's row mask and dropout on P.
fn check(ctx: &Context, s: Sizes, batch: usize, t_len: usize, dido: bool, seed: u64) {
    let (n, hc) = (s.mechanisms, s.heads);
    let (wk, wv, w) = (hc * s.key, hc * s.value, op::qkv_width(&s));
    let mut rng = Rng::new(seed);
    let qkv = rng.vec_f32(3 * t_len * batch * n * w, -1.5, 1.5);
    let dctx = rng.vec_f32(batch * n * wv, -1.0, 1.0);
    let masks: Vec<f32> = (0..t_len * batch * n)
        .map(|_| rng.below(2) as f32)
        .collect();
    let drop = Dropout {
        seed: 21,
        step: 4,
        p: 0.25,
    };
    let masks_t = Tensor::from_slice(ctx, &[t_len, batch, n], &masks).unwrap();
    let rows = dido.then_some(RowMask {
        mask: &masks_t,
        dropout: drop,
    });
    let qkv_t = Tensor::from_slice(ctx, &[3, t_len, batch, n, w], &qkv).unwrap();
    let dctx_t = Tensor::from_slice(ctx, &[batch, n, wv], &dctx).unwrap();
    let zeros = |shape: &[usize]| Tensor::zeros(ctx, shape).unwrap();
    let probs = zeros(&[t_len, batch, hc, n, n]);
    let out = zeros(&[t_len, batch, n, wv]);
    let ds = zeros(&[batch, hc, n, n]);
    let dqkv = zeros(&[3, t_len, batch, n, w]);
    for t in 0..t_len {
        op::forward(ctx, &s, batch, t_len, t, &qkv_t, &probs, &out, rows).unwrap();
        op::backward(
            ctx, &s, batch, t_len, t, &qkv_t, &probs, &dctx_t, &ds, &dqkv, rows,
        )
        .unwrap();
    }

    let rs = reference::Sizes {
        n,
        heads: hc,
        dk: s.key,
        dv: s.value,
    };
    let (qkv, dctx, masks) = (to_f64(&qkv), to_f64(&dctx), to_f64(&masks));
    // Row (t, b)'s first `width` columns of each mechanism in plane `k` of a [3, T, B, N, W].
    let cut = |v: &[f64], k: usize, tb: usize, width: usize| -> Vec<f64> {
        (0..n)
            .flat_map(|i| {
                let at = ((k * t_len * batch + tb) * n + i) * w;
                v[at..at + width].to_vec()
            })
            .collect()
    };
    let (mut want_probs, mut want_ctx) = (Vec::new(), Vec::new());
    let dqkv = to_f64(&dqkv.to_vec(ctx).unwrap());
    for tb in 0..t_len * batch {
        let (q, k, v) = (
            cut(&qkv, 0, tb, wk),
            cut(&qkv, 1, tb, wk),
            cut(&qkv, 2, tb, wv),
        );
        let b = tb % batch;
        let dctx = &dctx[b * n * wv..(b + 1) * n * wv];
        // P_ij's dropout factor in head m at x = (m·N + i)·N + j, as the op draws it.
        let keep = |x: usize| {
            let index = (b * hc * n * n + x) as u32;
            factor(drop.seed, drop.step, DROPOUT_PROBS, index, drop.p)
        };
        let mask = &masks[tb * n..(tb + 1) * n];
        let (probs, ctx, g) = if dido {
            let att = reference::forward_dido(&rs, &q, &k, &v, mask, keep);
            let g = reference::backward_dido(&rs, &q, &k, &v, &att.probs, mask, dctx, keep);
            (att.probs, att.ctx, g)
        } else {
            let att = reference::forward(&rs, &q, &k, &v);
            let g = reference::backward(&rs, &q, &k, &v, &att.probs, dctx);
            (att.probs, att.ctx, g)
        };
        want_probs.extend_from_slice(&probs);
        want_ctx.extend_from_slice(&ctx);
        let what = |name: &str| format!("{s:?} B={batch} D={dido} row {tb} {name}");
        let got = |k: usize, width: usize| cut(&dqkv, k, tb, width);
        let as_f32 = |v: Vec<f64>| v.iter().map(|&x| x as f32).collect::<Vec<_>>();
        assert_close(&what("dq"), &as_f32(got(0, wk)), &g.dq, 1e-6, 1e-4);
        assert_close(&what("dk"), &as_f32(got(1, wk)), &g.dk, 1e-6, 1e-4);
        assert_close(&what("dv"), &as_f32(got(2, wv)), &g.dv, 1e-6, 1e-4);
    }
    let what = |name: &str| format!("{s:?} B={batch} D={dido} {name}");
    assert_close(
        &what("probs"),
        &probs.to_vec(ctx).unwrap(),
        &want_probs,
        1e-6,
        1e-5,
    );
    assert_close(
        &what("ctx"),
        &out.to_vec(ctx).unwrap(),
        &want_ctx,
        1e-6,
        1e-5,
    );
}

device_test!(communication_matches_its_reference);
fn communication_matches_its_reference(ctx: &Context) {
    let sizes = |mechanisms, heads, key, value| Sizes {
        mechanisms,
        heads,
        key,
        value,
    };
    // N = 5 with 2 heads, keys narrower than values (W = h_c·d_vc) and the other way round,
    // one mechanism alone, and a batch past one workgroup of (b, head, i) threads.
    check(ctx, sizes(5, 2, 3, 4), 2, 2, false, 1);
    check(ctx, sizes(5, 2, 5, 2), 3, 1, false, 2);
    check(ctx, sizes(1, 1, 2, 3), 2, 2, false, 3);
    check(ctx, sizes(6, 2, 3, 3), 11, 1, false, 4);
}

device_test!(communication_dido_matches_its_reference);
fn communication_dido_matches_its_reference(ctx: &Context) {
    let sizes = |mechanisms, heads, key, value| Sizes {
        mechanisms,
        heads,
        key,
        value,
    };
    // D's shapes: d_vc = H (here 3 or 4) past d_kc, one head, and a batch past one workgroup.
    check(ctx, sizes(5, 2, 2, 3), 2, 2, true, 5);
    check(ctx, sizes(4, 1, 3, 4), 3, 2, true, 6);
    check(ctx, sizes(1, 1, 2, 3), 2, 1, true, 7);
    check(ctx, sizes(6, 2, 3, 3), 11, 1, true, 8);
}
