//! The `communication` op (`ops::communication`, variant A: softmax attention of every
//! mechanism over all N, per head) on both devices against its own oracle,
//! `reference::communication`, batch row by batch row: probabilities and contexts forward,
//! the projections' gradients backward.

use rims::ops::communication::{self as op, Sizes};
use rims::reference::communication as reference;
use rims::rng::Rng;
use rims::{Context, Tensor};

use crate::common::{assert_close, to_f64};

fn check(ctx: &Context, s: Sizes, batch: usize, t_len: usize, seed: u64) {
    let (n, hc) = (s.mechanisms, s.heads);
    let (wk, wv, w) = (hc * s.key, hc * s.value, op::qkv_width(&s));
    let mut rng = Rng::new(seed);
    let qkv = rng.vec_f32(3 * t_len * batch * n * w, -1.5, 1.5);
    let dctx = rng.vec_f32(batch * n * wv, -1.0, 1.0);
    let qkv_t = Tensor::from_slice(ctx, &[3, t_len, batch, n, w], &qkv).unwrap();
    let dctx_t = Tensor::from_slice(ctx, &[batch, n, wv], &dctx).unwrap();
    let zeros = |shape: &[usize]| Tensor::zeros(ctx, shape).unwrap();
    let probs = zeros(&[t_len, batch, hc, n, n]);
    let out = zeros(&[t_len, batch, n, wv]);
    let ds = zeros(&[batch, hc, n, n]);
    let dqkv = zeros(&[3, t_len, batch, n, w]);
    for t in 0..t_len {
        op::forward(ctx, &s, batch, t_len, t, &qkv_t, &probs, &out, None).unwrap();
        op::backward(
            ctx, &s, batch, t_len, t, &qkv_t, &probs, &dctx_t, &ds, &dqkv, None,
        )
        .unwrap();
    }

    let rs = reference::Sizes {
        n,
        heads: hc,
        dk: s.key,
        dv: s.value,
    };
    let (qkv, dctx) = (to_f64(&qkv), to_f64(&dctx));
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
        let att = reference::forward(&rs, &q, &k, &v);
        let b = tb % batch;
        let g = reference::backward(
            &rs,
            &q,
            &k,
            &v,
            &att.probs,
            &dctx[b * n * wv..(b + 1) * n * wv],
        );
        want_probs.extend_from_slice(&att.probs);
        want_ctx.extend_from_slice(&att.ctx);
        let what = |name: &str| format!("{s:?} B={batch} row {tb} {name}");
        let got = |k: usize, width: usize| cut(&dqkv, k, tb, width);
        let as_f32 = |v: Vec<f64>| v.iter().map(|&x| x as f32).collect::<Vec<_>>();
        assert_close(&what("dq"), &as_f32(got(0, wk)), &g.dq, 1e-6, 1e-4);
        assert_close(&what("dk"), &as_f32(got(1, wk)), &g.dk, 1e-6, 1e-4);
        assert_close(&what("dv"), &as_f32(got(2, wv)), &g.dv, 1e-6, 1e-4);
    }
    let what = |name: &str| format!("{s:?} B={batch} {name}");
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
    check(ctx, sizes(5, 2, 3, 4), 2, 2, 1);
    check(ctx, sizes(5, 2, 5, 2), 3, 1, 2);
    check(ctx, sizes(1, 1, 2, 3), 2, 2, 3);
    check(ctx, sizes(6, 2, 3, 3), 11, 1, 4);
}
