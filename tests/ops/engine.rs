//! Context, pool, recorder, kernel registry and their error paths.

use rims::Context;
use rims::device::DeviceKind;
use rims::{Error, Tensor};

use crate::common::fresh;

device_test!(upload_download_round_trip_and_shape_errors);
fn upload_download_round_trip_and_shape_errors(ctx: &Context) {
    let data: Vec<f32> = (0..37).map(|i| i as f32 * 0.5 - 3.0).collect();
    let t = Tensor::from_slice(ctx, &[37], &data).unwrap();
    assert_eq!(t.to_vec(ctx).unwrap(), data);
    assert_eq!(t.reshape(&[1, 37]).unwrap().shape(), &[1, 37]);
    assert!(matches!(t.reshape(&[2, 19]), Err(Error::Shape { .. })));
    assert!(matches!(
        Tensor::from_slice(ctx, &[2, 3], &[1.0; 5]),
        Err(Error::Shape { .. })
    ));
    let d = t.duplicate(ctx).unwrap();
    assert!(!d.same_buffer(&t));
    assert_eq!(d.to_vec(ctx).unwrap(), data);
}

device_test!(oversized_tensor_is_an_error_not_a_panic);
fn oversized_tensor_is_an_error_not_a_panic(ctx: &Context) {
    let too_big = (ctx.limits().max_buffer_size / 4 + 1) as usize;
    assert!(matches!(
        Tensor::uninit(ctx, &[too_big]),
        Err(Error::DeviceLimit { .. })
    ));
    assert!(matches!(
        Tensor::uninit(ctx, &[usize::MAX, 4]),
        Err(Error::DeviceLimit { .. })
    ));
}

device_test!(unknown_shader_entry_or_constant_is_an_error);
fn unknown_shader_entry_or_constant_is_an_error(ctx: &Context) {
    assert!(matches!(
        ctx.kernel("nope", "main", &[]),
        Err(Error::Shader { .. })
    ));
    assert!(matches!(
        ctx.kernel("elementwise", "nope", &[]),
        Err(Error::Shader { .. })
    ));
    assert!(matches!(
        ctx.kernel("elementwise", "fill", &[("NOPE", 1)]),
        Err(Error::Shader { .. })
    ));
    // A specialisation that makes the shader invalid is caught by validation, not by a crash.
    assert!(matches!(
        ctx.kernel("elementwise", "fill", &[("WG", 0)]),
        Err(Error::Shader { .. })
    ));
}

device_test!(pipelines_are_compiled_once_per_specialisation);
fn pipelines_are_compiled_once_per_specialisation(ctx: &Context) {
    let a = ctx.kernel("elementwise", "unary", &[]).unwrap();
    let b = ctx.kernel("elementwise", "unary", &[]).unwrap();
    assert!(std::sync::Arc::ptr_eq(&a, &b));
    let c = ctx.kernel("elementwise", "unary", &[("WG", 64)]).unwrap();
    assert!(!std::sync::Arc::ptr_eq(&a, &c));
}

device_test!(wrong_binding_count_is_an_error);
fn wrong_binding_count_is_an_error(ctx: &Context) {
    let k = ctx.kernel("elementwise", "unary", &[]).unwrap();
    let t = Tensor::zeros(ctx, &[4]).unwrap();
    let params = [4u32, 0, 0, 1];
    assert!(matches!(
        ctx.dispatch(k.clone(), &params, &[&t], [1, 1, 1]),
        Err(Error::InvalidArgument { .. })
    ));
    let too_many = ctx.limits().max_compute_workgroups_per_dimension + 1;
    assert!(matches!(
        ctx.dispatch(k, &params, &[&t, &t], [too_many, 1, 1]),
        Err(Error::DeviceLimit { .. })
    ));
}

device_test!(a_buffer_bound_writable_and_read_only_is_refused_when_recorded);
fn a_buffer_bound_writable_and_read_only_is_refused_when_recorded(ctx: &Context) {
    // One buffer bound as read-only input and as writable output in one dispatch: on a GPU a
    // validation error that would invalidate the whole submit (every thread's work in it), so
    // both devices refuse it at once, and the context stays usable.
    let t = Tensor::from_slice(ctx, &[4], &[1.0, 2.0, 3.0, 4.0]).unwrap();
    let k = ctx.kernel("elementwise", "unary", &[]).unwrap();
    let err = ctx
        .dispatch(k.clone(), &[4u32, 0, 0, 1], &[&t, &t], [1, 1, 1])
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
    assert!(err.to_string().contains("views of one buffer"), "{err}");
    // Disjoint views of one buffer are refused too: usage is tracked per buffer.
    let whole = Tensor::zeros(ctx, &[2 * 64]).unwrap();
    let (a, b) = (whole.view(0, &[4]).unwrap(), whole.view(64, &[4]).unwrap());
    let err = ctx
        .dispatch(k, &[4u32, 0, 0, 1], &[&a, &b], [1, 1, 1])
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("binding 1 and read-only binding 0"),
        "{err}"
    );
    let u = Tensor::from_slice(ctx, &[2], &[5.0, 6.0]).unwrap();
    assert_eq!(u.to_vec(ctx).unwrap(), vec![5.0, 6.0]);
}

device_test!(a_refused_dispatch_does_not_drop_work_recorded_before_it);
fn a_refused_dispatch_does_not_drop_work_recorded_before_it(ctx: &Context) {
    // The regression behind a flaky training test: another thread's invalid dispatch went
    // into the shared submit, wgpu ran none of it, and this fill was silently lost.
    let filled = Tensor::zeros(ctx, &[8]).unwrap();
    filled.fill(ctx, 3.5).unwrap();
    let t = Tensor::from_slice(ctx, &[4], &[1.0, 2.0, 3.0, 4.0]).unwrap();
    let k = ctx.kernel("elementwise", "unary", &[]).unwrap();
    assert!(
        ctx.dispatch(k, &[4u32, 0, 0, 1], &[&t, &t], [1, 1, 1])
            .is_err()
    );
    ctx.submit().unwrap();
    assert_eq!(filled.to_vec(ctx).unwrap(), vec![3.5; 8]);
}

device_test!(pool_reuses_buffers_and_counts, fresh);
fn pool_reuses_buffers_and_counts(kind: DeviceKind) {
    let Some(ctx) = fresh(kind) else { return };
    let ctx = &ctx;
    assert_eq!(ctx.pool_stats(), rims::device::PoolStats::default());
    let n = 1000; // 4000 bytes: size class 4096
    {
        let _t = Tensor::uninit(ctx, &[n]).unwrap();
        let s = ctx.pool_stats();
        assert_eq!(
            (
                s.bytes_allocated,
                s.bytes_live,
                s.bytes_free,
                s.allocations,
                s.reuses
            ),
            (4096, 4096, 0, 1, 0)
        );
    }
    let s = ctx.pool_stats();
    assert_eq!((s.bytes_live, s.bytes_free), (0, 4096));
    let t2 = Tensor::uninit(ctx, &[n - 10]).unwrap(); // same class: reused
    let s = ctx.pool_stats();
    assert_eq!(
        (
            s.bytes_allocated,
            s.bytes_live,
            s.bytes_free,
            s.allocations,
            s.reuses
        ),
        (4096, 4096, 0, 1, 1)
    );
    // On a GPU a buffer named by recorded-but-unsubmitted work stays out of the pool until the
    // submit; the CPU device has run the work already, so it comes back at once.
    let y = rims::ops::elementwise::unary(ctx, rims::ops::elementwise::Unary::Tanh, &t2).unwrap();
    drop(t2);
    drop(y);
    let held = if ctx.is_cpu() { 0 } else { 8192 };
    assert_eq!(ctx.pool_stats().bytes_live, held);
    ctx.submit().unwrap();
    assert_eq!(ctx.pool_stats().bytes_live, 0);
}

device_test!(recording_is_one_submit_until_read, fresh);
fn recording_is_one_submit_until_read(kind: DeviceKind) {
    let Some(ctx) = fresh(kind) else { return };
    let ctx = &ctx;
    let t = Tensor::from_slice(ctx, &[8], &[1.0; 8]).unwrap();
    ctx.submit().unwrap();
    let before = ctx.recorder_stats();
    let mut x = t.clone();
    for _ in 0..5 {
        x = rims::ops::elementwise::unary(ctx, rims::ops::elementwise::Unary::Scale(2.0), &x)
            .unwrap();
    }
    let mid = ctx.recorder_stats();
    assert_eq!(mid.submits, before.submits, "ops must only record");
    assert_eq!(mid.dispatches, before.dispatches + 5);
    assert_eq!(x.to_vec(ctx).unwrap(), vec![32.0; 8]);
    let after = ctx.recorder_stats();
    assert_eq!(
        after.submits,
        before.submits + 1,
        "one submit for the whole chain and its read-back"
    );
    assert_eq!(
        after.passes,
        before.passes + 1,
        "the five dispatches share one compute pass"
    );
}

device_test!(views_bind_exactly_their_range);
fn views_bind_exactly_their_range(ctx: &Context) {
    let flat = Tensor::zeros(ctx, &[300]).unwrap();
    let first = flat.view(0, &[2, 3]).unwrap();
    let second = flat.view(64, &[3, 2]).unwrap();
    assert!(first.same_buffer(&second));
    assert!(matches!(
        flat.view(10, &[2]),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(flat.view(256, &[64]), Err(Error::Shape { .. })));
    rims::ops::elementwise::fill(ctx, &second, 2.0).unwrap();
    second.write(ctx, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
    first.write(ctx, &[1.0, 0.0, 0.0, 0.0, 1.0, 0.0]).unwrap();
    // A product of two views of one buffer into a view of another (wgpu tracks usage per
    // buffer, so the output may not live in the inputs' buffer).
    let out_flat = Tensor::zeros(ctx, &[200]).unwrap();
    let out = out_flat.view(128, &[2, 2]).unwrap();
    assert!(matches!(
        rims::ops::matmul::gemm(
            ctx,
            &g_of(),
            &first,
            &second,
            None,
            &flat.view(128, &[2, 2]).unwrap()
        ),
        Err(Error::InvalidArgument { .. })
    ));
    let g = g_of();
    rims::ops::matmul::gemm(ctx, &g, &first, &second, None, &out).unwrap();
    assert_eq!(out.to_vec(ctx).unwrap(), vec![1.0, 2.0, 3.0, 4.0]);
    assert_eq!(
        &out_flat.to_vec(ctx).unwrap()[..128],
        &[0.0; 128][..],
        "nothing outside the view was written"
    );
    let all = flat.to_vec(ctx).unwrap();
    assert_eq!(
        &all[6..64],
        &[0.0; 58][..],
        "nothing outside the views was written"
    );
    assert_eq!(
        second.to_vec(ctx).unwrap(),
        vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    );
}

fn g_of() -> rims::ops::matmul::Gemm {
    rims::ops::matmul::Gemm {
        batch: 1,
        inner: 1,
        m: 2,
        n: 2,
        k: 3,
        a: rims::ops::matmul::MatView::row_major(2, 3),
        b: rims::ops::matmul::MatView::row_major(3, 2),
        c: rims::ops::matmul::MatView::row_major(2, 2),
        bias: None,
        accumulate: false,
    }
}

device_test!(read_into_fills_the_callers_buffer_and_checks_its_length);
fn read_into_fills_the_callers_buffer_and_checks_its_length(ctx: &Context) {
    let values: Vec<f32> = (0..1000).map(|i| i as f32 * 0.5 - 7.0).collect();
    let t = Tensor::from_slice(ctx, &[10, 100], &values).unwrap();
    let mut out = vec![f32::NAN; 1000];
    t.read_into(ctx, &mut out).unwrap();
    assert_eq!(out, values);
    // A view reads its own range.
    let v = t.view(256, &[3, 4]).unwrap();
    let mut small = vec![0.0; 12];
    v.read_into(ctx, &mut small).unwrap();
    assert_eq!(small, values[256..268]);
    let err = t.read_into(ctx, &mut vec![0.0; 999]).unwrap_err();
    assert!(err.to_string().contains("1000 values into 999"), "{err}");
    let u = Tensor::from_u32(ctx, &[3], &[1, 2, 3]).unwrap();
    assert!(u.read_into(ctx, &mut [0.0; 3]).is_err());
    assert_eq!(u.to_vec_u32(ctx).unwrap(), [1, 2, 3]);
}

#[test]
fn the_cpu_devices_thread_count_can_change_and_results_do_not() {
    use rims::ops::matmul::{self, Gemm, MatView};
    let ctx = Context::new(rims::DeviceRequest::cpu(Some(1))).unwrap();
    assert_eq!(ctx.cpu().unwrap().threads, 1);
    let n = 96;
    let a: Vec<f32> = (0..n * n).map(|i| ((i * 7) % 13) as f32 - 6.0).collect();
    let at = Tensor::from_slice(&ctx, &[n, n], &a).unwrap();
    let product = |ctx: &Context| {
        let c = Tensor::zeros(ctx, &[n, n]).unwrap();
        let view = MatView {
            offset: 0,
            batch_stride: 0,
            row_stride: n,
            col_stride: 1,
            inner_stride: 0,
        };
        let g = Gemm {
            batch: 1,
            inner: 1,
            m: n,
            n,
            k: n,
            a: view,
            b: view,
            c: view,
            bias: None,
            accumulate: false,
        };
        matmul::gemm(ctx, &g, &at, &at, None, &c).unwrap();
        c.to_vec(ctx).unwrap()
    };
    let one = product(&ctx);
    ctx.set_threads(2).unwrap();
    assert_eq!(ctx.cpu().unwrap().threads, 2);
    assert!(ctx.describe().contains("2 threads"), "{}", ctx.describe());
    assert_eq!(product(&ctx), one);
    assert!(ctx.set_threads(0).is_err());
    assert!(ctx.set_threads(5000).is_err());
    // What a forked child does: a new pool of the same size; the context keeps working.
    ctx.restart_after_fork().unwrap();
    assert_eq!(ctx.cpu().unwrap().threads, 2);
    assert_eq!(product(&ctx), one);
}

/// Products cut into one part per thread (along rows, and along columns when there are more of
/// them), with a bias and accumulated onto, give the same bits on 1, 2 and 3 threads: each
/// output is one `gemm` call's k-sum whatever the part it falls in.
#[test]
fn large_products_give_the_same_bits_on_any_thread_count() {
    use rims::ops::matmul::{self, Gemm, MatView};
    let ctx = Context::new(rims::DeviceRequest::cpu(Some(1))).unwrap();
    let mut rng = rims::rng::Rng::new(11);
    for (m, n, k) in [
        (517, 300, 71),
        (37, 1531, 64),
        (2048, 513, 3),
        (40, 64, 33),
        (9, 300, 700),
        (96, 256, 64),
    ] {
        let a = Tensor::from_slice(&ctx, &[m, k], &rng.vec_f32(m * k, -1.0, 1.0)).unwrap();
        // B as [n, k], read transposed.
        let b = Tensor::from_slice(&ctx, &[n, k], &rng.vec_f32(n * k, -1.0, 1.0)).unwrap();
        let bias = Tensor::from_slice(&ctx, &[n], &rng.vec_f32(n, -1.0, 1.0)).unwrap();
        let start = rng.vec_f32(m * n, -1.0, 1.0);
        let view = |rows: usize, cols: usize, transposed: bool| MatView {
            offset: 0,
            batch_stride: 0,
            row_stride: if transposed { 1 } else { cols },
            col_stride: if transposed { rows } else { 1 },
            inner_stride: 0,
        };
        let product = |ctx: &Context| {
            let c = Tensor::from_slice(ctx, &[m, n], &start).unwrap();
            let g = Gemm {
                batch: 1,
                inner: 1,
                m,
                n,
                k,
                a: view(m, k, false),
                b: MatView {
                    row_stride: 1,
                    col_stride: k,
                    ..view(k, n, false)
                },
                c: view(m, n, false),
                bias: Some(view(1, n, false)),
                accumulate: true,
            };
            matmul::gemm(ctx, &g, &a, &b, Some(&bias), &c).unwrap();
            c.to_vec(ctx).unwrap()
        };
        ctx.set_threads(1).unwrap();
        let one = product(&ctx);
        for threads in [2, 3] {
            ctx.set_threads(threads).unwrap();
            let got = product(&ctx);
            let same = got
                .iter()
                .zip(&one)
                .all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(
                same,
                "{m}x{n}x{k} on {threads} threads differs from 1 thread"
            );
        }
    }
}

device_test!(several_tensors_read_back_in_one_submit, fresh);
fn several_tensors_read_back_in_one_submit(kind: DeviceKind) {
    let Some(ctx) = fresh(kind) else { return };
    let ctx = &ctx;
    let values = |n: usize, base: f32| (0..n).map(|i| base + i as f32 * 0.25).collect::<Vec<_>>();
    let (a, b, c) = (values(7, -1.0), values(1, 9.0), values(130, 3.5));
    let ta = Tensor::from_slice(ctx, &[7], &a).unwrap();
    let tb = Tensor::from_slice(ctx, &[1, 1], &b).unwrap();
    let tc = Tensor::from_slice(ctx, &[13, 10], &c).unwrap();
    let empty = Tensor::zeros(ctx, &[0]).unwrap();
    ctx.submit().unwrap();
    let before = ctx.recorder_stats();
    let got = Tensor::read_many(ctx, &[&ta, &empty, &tb, &tc]).unwrap();
    assert_eq!(got, [a.clone(), vec![], b, c]);
    assert_eq!(
        ctx.recorder_stats().submits,
        before.submits + 1,
        "one read-back"
    );
    // Nothing to read is not an error; a u32 tensor is refused by name.
    assert_eq!(Tensor::read_many(ctx, &[]).unwrap(), Vec::<Vec<f32>>::new());
    let ids = Tensor::from_u32(ctx, &[2], &[1, 2]).unwrap();
    let e = Tensor::read_many(ctx, &[&ta, &ids])
        .unwrap_err()
        .to_string();
    assert!(e.contains("Tensor::read_many"), "{e}");
    assert_eq!(ta.to_vec(ctx).unwrap(), a, "the tensors read are unchanged");
}
