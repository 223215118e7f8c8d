use rims::Context;
use rims::ops::squared_error;
use rims::reference::squared_error as reference;
use rims::rng::Rng;
use rims::tape::Tape;
use rims::{Error, Tensor};

use crate::common::{assert_close, to_f64};

/// Odd sizes, sizes around the 256-thread workgroup and one over a parallel chunk.
const SIZES: &[usize] = &[1, 3, 255, 256, 257, 1000, 20_001];

device_test!(squared_error_matches_reference);
fn squared_error_matches_reference(ctx: &Context) {
    let mut rng = Rng::new(41);
    let scale = 0.29f32;
    for &n in SIZES {
        let x = rng.vec_f32(n, -3.0, 3.0);
        let t = rng.vec_f32(n, -3.0, 3.0);
        let tx = Tensor::from_slice(ctx, &[n], &x).unwrap();
        let tt = Tensor::from_slice(ctx, &[n], &t).unwrap();
        let (loss, d) = squared_error::squared_error(ctx, &tx, &tt, scale).unwrap();
        assert_eq!(loss.shape(), &[n]);
        assert_eq!(d.shape(), &[n]);
        let (want_loss, want_d) = reference::squared_error(&to_f64(&x), &to_f64(&t), scale as f64);
        assert_close(
            &format!("loss {n}"),
            &loss.to_vec(ctx).unwrap(),
            &want_loss,
            1e-5,
            1e-5,
        );
        assert_close(
            &format!("dpred {n}"),
            &d.to_vec(ctx).unwrap(),
            &want_d,
            1e-6,
            1e-5,
        );
    }
}

device_test!(mean_squared_error_matches_reference_on_a_matrix);
fn mean_squared_error_matches_reference_on_a_matrix(ctx: &Context) {
    let mut rng = Rng::new(42);
    let (rows, cols) = (37, 3);
    let x = rng.vec_f32(rows * cols, -2.0, 2.0);
    let t = rng.vec_f32(rows * cols, 0.0, 2.0);
    let tx = Tensor::from_slice(ctx, &[rows, cols], &x).unwrap();
    let tt = Tensor::from_slice(ctx, &[rows, cols], &t).unwrap();
    let (mean, d) = squared_error::mean_squared_error(ctx, &tx, &tt).unwrap();
    let (want_mean, want_d) = reference::mean_squared_error(&to_f64(&x), &to_f64(&t));
    let got = mean.to_vec(ctx).unwrap();
    assert_eq!(got.len(), 1);
    assert!(
        (got[0] as f64 - want_mean).abs() <= 1e-5 * want_mean.abs().max(1.0),
        "mean {} against {want_mean}",
        got[0]
    );
    assert_close("dpred", &d.to_vec(ctx).unwrap(), &want_d, 1e-7, 1e-5);
}

device_test!(tape_mse_backward_is_the_fused_gradient_times_the_upstream);
fn tape_mse_backward_is_the_fused_gradient_times_the_upstream(ctx: &Context) {
    // loss = 3 · mse(p, t): the tape must multiply the kernel's gradient by the upstream 3.
    let mut rng = Rng::new(43);
    let (p, t) = (rng.vec_f32(9, -1.0, 1.0), rng.vec_f32(9, -1.0, 1.0));
    let mut tape = Tape::new();
    let pv = tape.input(Tensor::from_slice(ctx, &[9], &p).unwrap());
    let tt = Tensor::from_slice(ctx, &[9], &t).unwrap();
    let loss = tape.mse(ctx, pv, &tt).unwrap();
    let loss = tape.scale(ctx, loss, 3.0).unwrap();
    let grads = tape.backward(ctx, loss).unwrap();
    let (_, want) = reference::mean_squared_error(&to_f64(&p), &to_f64(&t));
    let want: Vec<f64> = want.iter().map(|g| 3.0 * g).collect();
    assert_close(
        "dL/dp",
        &grads.get(pv).unwrap().to_vec(ctx).unwrap(),
        &want,
        1e-7,
        1e-5,
    );
}

device_test!(mismatched_or_empty_operands_are_refused);
fn mismatched_or_empty_operands_are_refused(ctx: &Context) {
    let a = Tensor::from_slice(ctx, &[4], &[1.0; 4]).unwrap();
    let b = Tensor::from_slice(ctx, &[2, 2], &[1.0; 4]).unwrap();
    let err = squared_error::squared_error(ctx, &a, &b, 1.0).unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err}");
    let err = squared_error::squared_error(ctx, &a, &a, f32::NAN).unwrap_err();
    assert!(err.to_string().contains("grad_scale"), "{err}");
    let t = Tensor::from_u32(ctx, &[4], &[1; 4]).unwrap();
    assert!(squared_error::squared_error(ctx, &a, &t, 1.0).is_err());
}
