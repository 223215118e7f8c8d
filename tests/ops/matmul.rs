use rims::ops::matmul::{self, Gemm, Kernel, MatView, MatmulOptions};
use rims::reference::matmul as reference;
use rims::rng::Rng;
use rims::{Context, Error, Tensor};

use crate::common::{assert_close, to_f64};

const KERNELS: [Kernel; 3] = [Kernel::Scalar, Kernel::VEC4, Kernel::Tiled];

/// Runs `g` with every kernel that supports it and compares with the reference. A and B are
/// random; C starts random too so that accumulation is checked.
fn check_gemm(
    ctx: &Context,
    rng: &mut Rng,
    g: &Gemm,
    a_len: usize,
    b_len: usize,
    c_len: usize,
    with_bias: bool,
) {
    let g = &Gemm {
        bias: if with_bias { g.bias } else { None },
        ..*g
    };
    let a = rng.vec_f32(a_len, -1.0, 1.0);
    let b = rng.vec_f32(b_len, -1.0, 1.0);
    let c0 = rng.vec_f32(c_len, -1.0, 1.0);
    let bias_len = g.bias.map_or(1, |v| {
        v.offset + (g.batch - 1) * v.batch_stride + (g.inner - 1) * v.inner_stride + g.n
    });
    let bias = rng.vec_f32(bias_len, -1.0, 1.0);
    let mut want = to_f64(&c0);
    reference::gemm(
        g,
        &to_f64(&a),
        &to_f64(&b),
        with_bias.then(|| to_f64(&bias)).as_deref(),
        &mut want,
    );
    let ta = Tensor::from_slice(ctx, &[a_len], &a).unwrap();
    let tb = Tensor::from_slice(ctx, &[b_len], &b).unwrap();
    let tbias = Tensor::from_slice(ctx, &[bias_len], &bias).unwrap();
    let mut ran = 0;
    for kernel in KERNELS {
        if !matmul::kernel_supports(kernel, g) {
            continue;
        }
        ran += 1;
        let tc = Tensor::from_slice(ctx, &[c_len], &c0).unwrap();
        matmul::gemm_with(ctx, kernel, g, &ta, &tb, with_bias.then_some(&tbias), &tc).unwrap();
        let got = tc.to_vec(ctx).unwrap();
        // Only the elements C's view covers are written; the rest must be untouched.
        let tol = 1e-5 * (g.k as f64).sqrt();
        assert_close(&format!("{kernel:?} {g:?}"), &got, &want, tol, tol);
    }
    assert!(ran >= 2, "at least scalar and tiled always run");
}

fn dense(
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
    trans_a: bool,
    trans_b: bool,
    accumulate: bool,
) -> (Gemm, usize, usize, usize) {
    let a = if trans_a {
        MatView::row_major(k, m).t()
    } else {
        MatView::row_major(m, k)
    };
    let b = if trans_b {
        MatView::row_major(n, k).t()
    } else {
        MatView::row_major(k, n)
    };
    let g = Gemm {
        batch,
        inner: 1,
        m,
        n,
        k,
        a,
        b,
        c: MatView::row_major(m, n),
        bias: Some(MatView {
            offset: 0,
            batch_stride: n,
            row_stride: 0,
            col_stride: 1,
            inner_stride: 0,
        }),
        accumulate,
    };
    (g, batch * m * k, batch * k * n, batch * m * n)
}

device_test!(gemm_all_transposes_odd_and_aligned_sizes);
fn gemm_all_transposes_odd_and_aligned_sizes(ctx: &Context) {
    let mut rng = Rng::new(10);
    let shapes = [
        (1, 1, 1),
        (3, 5, 7),
        (17, 9, 33),
        (4, 4, 4),
        (16, 20, 24),
        (36, 68, 44),
        (70, 65, 130),
    ];
    for &(m, n, k) in &shapes {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let (g, al, bl, cl) = dense(1, m, n, k, ta, tb, false);
            check_gemm(ctx, &mut rng, &g, al, bl, cl, ta);
        }
    }
}

device_test!(gemm_batched_bias_and_accumulate);
fn gemm_batched_bias_and_accumulate(ctx: &Context) {
    let mut rng = Rng::new(11);
    for &(batch, m, n, k) in &[(3, 5, 6, 7), (2, 20, 16, 12), (5, 1, 33, 8)] {
        let (g, al, bl, cl) = dense(batch, m, n, k, false, false, true);
        check_gemm(ctx, &mut rng, &g, al, bl, cl, true);
        // Shared B (a weight used by the whole batch).
        let shared = Gemm {
            b: g.b.shared(),
            ..g
        };
        check_gemm(ctx, &mut rng, &shared, al, k * n, cl, false);
    }
}

device_test!(gemm_past_one_workgroup_and_tile);
fn gemm_past_one_workgroup_and_tile(ctx: &Context) {
    let mut rng = Rng::new(12);
    // 144 x 132 outputs: more than one 64 x 64 tile and more than 64 invocation blocks.
    let (g, al, bl, cl) = dense(2, 144, 132, 40, false, false, false);
    check_gemm(ctx, &mut rng, &g, al, bl, cl, true);
    let (g, al, bl, cl) = dense(1, 129, 67, 9, true, true, false);
    check_gemm(ctx, &mut rng, &g, al, bl, cl, false);
}

device_test!(matmul_api_matches_reference);
fn matmul_api_matches_reference(ctx: &Context) {
    let mut rng = Rng::new(13);
    let (bsz, m, k, n) = (3, 7, 12, 8);
    let a = rng.vec_f32(bsz * m * k, -1.0, 1.0);
    let w = rng.vec_f32(k * n, -1.0, 1.0);
    let bias = rng.vec_f32(n, -1.0, 1.0);
    let ta = Tensor::from_slice(ctx, &[bsz, m, k], &a).unwrap();
    let tw = Tensor::from_slice(ctx, &[k, n], &w).unwrap();
    let tbias = Tensor::from_slice(ctx, &[n], &bias).unwrap();
    let y = matmul::matmul(
        ctx,
        &ta,
        &tw,
        MatmulOptions {
            bias: Some(&tbias),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(y.shape(), &[bsz, m, n]);
    let mut want = reference::matmul(&to_f64(&a), &to_f64(&w), bsz * m, k, n);
    for (i, v) in want.iter_mut().enumerate() {
        *v += bias[i % n] as f64;
    }
    assert_close(
        "matmul with bias",
        &y.to_vec(ctx).unwrap(),
        &want,
        1e-5,
        1e-5,
    );

    // dA = dC·Bᵀ and dB = Aᵀ·dC, the backward products, through the transpose flags.
    let a2 = rng.vec_f32(m * k, -1.0, 1.0);
    let dc = rng.vec_f32(m * n, -1.0, 1.0);
    let t_a2 = Tensor::from_slice(ctx, &[m, k], &a2).unwrap();
    let t_dc = Tensor::from_slice(ctx, &[m, n], &dc).unwrap();
    let da = matmul::matmul(
        ctx,
        &t_dc,
        &tw,
        MatmulOptions {
            trans_b: true,
            ..Default::default()
        },
    )
    .unwrap();
    let want_da = reference::matmul(
        &to_f64(&dc),
        &reference::transpose(&to_f64(&w), k, n),
        m,
        n,
        k,
    );
    assert_close("dA = dC·Bᵀ", &da.to_vec(ctx).unwrap(), &want_da, 1e-5, 1e-5);
    let db = matmul::matmul(
        ctx,
        &t_a2,
        &t_dc,
        MatmulOptions {
            trans_a: true,
            ..Default::default()
        },
    )
    .unwrap();
    let want_db = reference::matmul(
        &reference::transpose(&to_f64(&a2), m, k),
        &to_f64(&dc),
        k,
        m,
        n,
    );
    assert_close("dB = Aᵀ·dC", &db.to_vec(ctx).unwrap(), &want_db, 1e-5, 1e-5);
}

device_test!(grouped_matmul_and_its_gradients);
fn grouped_matmul_and_its_gradients(ctx: &Context) {
    let mut rng = Rng::new(14);
    for &(bsz, g, k, n) in &[(1, 1, 1, 1), (3, 6, 10, 7), (4, 6, 16, 20), (5, 4, 33, 17)] {
        let x = rng.vec_f32(bsz * g * k, -1.0, 1.0);
        let w = rng.vec_f32(g * k * n, -1.0, 1.0);
        let bias = rng.vec_f32(g * n, -1.0, 1.0);
        let dy = rng.vec_f32(bsz * g * n, -1.0, 1.0);
        let (xf, wf, dyf) = (to_f64(&x), to_f64(&w), to_f64(&dy));
        let tx = Tensor::from_slice(ctx, &[bsz, g, k], &x).unwrap();
        let tw = Tensor::from_slice(ctx, &[g, k, n], &w).unwrap();
        let tb = Tensor::from_slice(ctx, &[g, n], &bias).unwrap();
        let tdy = Tensor::from_slice(ctx, &[bsz, g, n], &dy).unwrap();

        let y = matmul::grouped_matmul(ctx, &tx, &tw, Some(&tb)).unwrap();
        let want = reference::grouped_matmul(&xf, &wf, Some(&to_f64(&bias)), bsz, g, k, n);
        assert_close("grouped y", &y.to_vec(ctx).unwrap(), &want, 1e-5, 1e-5);

        // dx[b, gi, kk] = Σ_j dy[b, gi, j] w[gi, kk, j]
        let mut want_dx = vec![0.0; bsz * g * k];
        let mut want_dw = vec![0.0; g * k * n];
        for b in 0..bsz {
            for gi in 0..g {
                for kk in 0..k {
                    for j in 0..n {
                        want_dx[(b * g + gi) * k + kk] +=
                            dyf[(b * g + gi) * n + j] * wf[(gi * k + kk) * n + j];
                        want_dw[(gi * k + kk) * n + j] +=
                            xf[(b * g + gi) * k + kk] * dyf[(b * g + gi) * n + j];
                    }
                }
            }
        }
        let dx = matmul::grouped_matmul_grad_x(ctx, &tdy, &tw).unwrap();
        assert_close("grouped dx", &dx.to_vec(ctx).unwrap(), &want_dx, 1e-5, 1e-5);
        let dw = matmul::grouped_matmul_grad_w(ctx, &tx, &tdy, None).unwrap();
        assert_close("grouped dw", &dw.to_vec(ctx).unwrap(), &want_dw, 1e-5, 1e-5);
        // Accumulating twice doubles it.
        matmul::grouped_matmul_grad_w(ctx, &tx, &tdy, Some(&dw)).unwrap();
        let twice: Vec<f64> = want_dw.iter().map(|v| 2.0 * v).collect();
        assert_close(
            "grouped dw accumulated",
            &dw.to_vec(ctx).unwrap(),
            &twice,
            1e-5,
            1e-5,
        );
    }
}

device_test!(matmul_errors_are_values);
fn matmul_errors_are_values(ctx: &Context) {
    let a = Tensor::zeros(ctx, &[3, 4]).unwrap();
    let b = Tensor::zeros(ctx, &[5, 2]).unwrap();
    let opts = MatmulOptions::default();
    assert!(matches!(
        matmul::matmul(ctx, &a, &b, opts),
        Err(Error::Shape { .. })
    ));
    let v = Tensor::zeros(ctx, &[4]).unwrap();
    assert!(matches!(
        matmul::matmul(ctx, &v, &b, opts),
        Err(Error::Shape { .. })
    ));
    let b_ok = Tensor::zeros(ctx, &[4, 2]).unwrap();
    let bad_bias = Tensor::zeros(ctx, &[3]).unwrap();
    let with_bad_bias = MatmulOptions {
        bias: Some(&bad_bias),
        ..opts
    };
    assert!(matches!(
        matmul::matmul(ctx, &a, &b_ok, with_bad_bias),
        Err(Error::Shape { .. })
    ));
    let batched_a = Tensor::zeros(ctx, &[2, 3, 4]).unwrap();
    let batched_b = Tensor::zeros(ctx, &[3, 4, 2]).unwrap();
    assert!(matches!(
        matmul::matmul(ctx, &batched_a, &batched_b, opts),
        Err(Error::Shape { .. })
    ));
    let empty = Tensor::zeros(ctx, &[0, 4])
        .unwrap_or_else(|_| Tensor::from_slice(ctx, &[0, 4], &[]).unwrap());
    assert!(matches!(
        matmul::matmul(ctx, &empty, &b_ok, opts),
        Err(Error::Empty { .. })
    ));
    // A view that reaches past its tensor.
    let (g, _, _, _) = dense(1, 3, 2, 4, false, false, false);
    let c = Tensor::zeros(ctx, &[6]).unwrap();
    let short = Tensor::zeros(ctx, &[11]).unwrap();
    let g_nobias = Gemm { bias: None, ..g };
    assert!(matches!(
        matmul::gemm(ctx, &g_nobias, &short, &b_ok, None, &c),
        Err(Error::Shape { .. })
    ));
    // Output aliasing an input.
    let a12 = Tensor::zeros(ctx, &[12]).unwrap();
    assert!(matches!(
        matmul::gemm(ctx, &g_nobias, &a12, &b_ok, None, &a12),
        Err(Error::InvalidArgument { .. })
    ));
    // vec4 on an unaligned layout.
    let (g3, ..) = dense(1, 3, 3, 3, false, false, false);
    let g3 = Gemm { bias: None, ..g3 };
    let t9 = Tensor::zeros(ctx, &[9]).unwrap();
    let o9 = Tensor::zeros(ctx, &[9]).unwrap();
    assert!(matches!(
        matmul::gemm_with(ctx, Kernel::VEC4, &g3, &t9, &t9, None, &o9),
        Err(Error::InvalidArgument { .. })
    ));
    // Grouped shapes.
    let x = Tensor::zeros(ctx, &[2, 3, 4]).unwrap();
    let w = Tensor::zeros(ctx, &[2, 4, 5]).unwrap();
    assert!(matches!(
        matmul::grouped_matmul(ctx, &x, &w, None),
        Err(Error::Shape { .. })
    ));
}

device_test!(gemm_inner_batch_covers_several_weight_sets);
fn gemm_inner_batch_covers_several_weight_sets(ctx: &Context) {
    let mut rng = Rng::new(15);
    // Like the communication projections: for mechanism j (outer) and projection s (inner),
    // C[s, :, j] = A[:, j] · W_s[j], A shared by the inner index.
    for &(rows, groups, projections, k, n) in &[(5, 3, 3, 4, 8), (4, 6, 2, 16, 16), (3, 2, 3, 7, 5)]
    {
        let g = Gemm {
            batch: groups,
            inner: projections,
            m: rows,
            n,
            k,
            a: MatView {
                offset: 0,
                batch_stride: k,
                row_stride: groups * k,
                col_stride: 1,
                inner_stride: 0,
            },
            b: MatView {
                offset: 0,
                batch_stride: k * n,
                row_stride: n,
                col_stride: 1,
                inner_stride: groups * k * n,
            },
            c: MatView {
                offset: 0,
                batch_stride: n,
                row_stride: groups * n,
                col_stride: 1,
                inner_stride: rows * groups * n,
            },
            bias: Some(MatView {
                offset: 0,
                batch_stride: 0,
                row_stride: 0,
                col_stride: 1,
                inner_stride: n,
            }),
            accumulate: false,
        };
        let (al, bl, cl) = (
            rows * groups * k,
            projections * groups * k * n,
            projections * rows * groups * n,
        );
        check_gemm(ctx, &mut rng, &g, al, bl, cl, true);
    }
}
