use rims::Context;
use rims::ops::binary_cross_entropy as bce;
use rims::reference::binary_cross_entropy as reference;
use rims::reference::finite_differences;
use rims::rng::Rng;
use rims::tape::Tape;
use rims::{Error, Tensor};

use crate::common::{assert_close, to_f64};

/// Odd sizes, sizes around the 256-thread workgroup and one over a parallel chunk.
const SIZES: &[usize] = &[1, 3, 255, 256, 257, 1000, 20_001];

device_test!(binary_cross_entropy_matches_reference);
fn binary_cross_entropy_matches_reference(ctx: &Context) {
    let mut rng = Rng::new(51);
    let scale = 0.37f32;
    for &n in SIZES {
        let z = rng.vec_f32(n, -8.0, 8.0);
        // Soft targets, and the hard 0 and 1 of a binarised frame.
        let t: Vec<f32> = rng
            .vec_f32(n, -0.5, 1.5)
            .iter()
            .map(|v| v.clamp(0.0, 1.0))
            .collect();
        let tz = Tensor::from_slice(ctx, &[n], &z).unwrap();
        let tt = Tensor::from_slice(ctx, &[n], &t).unwrap();
        let (loss, d) = bce::with_logits(ctx, &tz, &tt, scale).unwrap();
        assert_eq!((loss.shape(), d.shape()), (&[n][..], &[n][..]));
        let (want_loss, want_d) = reference::with_logits(&to_f64(&z), &to_f64(&t), scale as f64);
        let what = format!("n = {n}");
        assert_close(
            &format!("loss {what}"),
            &loss.to_vec(ctx).unwrap(),
            &want_loss,
            1e-6,
            1e-5,
        );
        assert_close(
            &format!("dlogits {what}"),
            &d.to_vec(ctx).unwrap(),
            &want_d,
            1e-6,
            1e-5,
        );
    }
}

device_test!(saturated_logits_stay_finite_and_exact);
fn saturated_logits_stay_finite_and_exact(ctx: &Context) {
    // |z| large: log(1 + e^−|z|) underflows to 0, σ to 0 or 1; nothing may overflow to inf.
    let z = [-200.0f32, -90.0, 90.0, 200.0, 0.0];
    let t = [0.0f32, 1.0, 0.0, 1.0, 0.5];
    let tz = Tensor::from_slice(ctx, &[5], &z).unwrap();
    let tt = Tensor::from_slice(ctx, &[5], &t).unwrap();
    let (loss, d) = bce::with_logits(ctx, &tz, &tt, 1.0).unwrap();
    let (loss, d) = (loss.to_vec(ctx).unwrap(), d.to_vec(ctx).unwrap());
    assert_eq!(loss[0], 0.0, "a confident right answer costs nothing");
    assert_eq!(loss[1], 90.0, "a confident wrong answer costs |z|");
    assert_eq!(loss[2], 90.0);
    assert_eq!(loss[3], 0.0);
    assert!(
        (loss[4] - std::f32::consts::LN_2).abs() < 1e-6,
        "{}",
        loss[4]
    );
    assert_eq!(d, vec![0.0, -1.0, 1.0, 0.0, 0.0]);
}

#[test]
fn reference_gradient_matches_finite_differences() {
    let mut rng = Rng::new(52);
    let z: Vec<f64> = (0..40).map(|_| rng.uniform(-6.0, 6.0)).collect();
    let t: Vec<f64> = (0..40).map(|_| rng.uniform(0.0, 1.0)).collect();
    let (_, d) = reference::mean_with_logits(&z, &t);
    let fd = finite_differences(&z, 1e-6, |z| reference::mean_with_logits(z, &t).0);
    for (i, (g, w)) in d.iter().zip(&fd).enumerate() {
        assert!((g - w).abs() <= 1e-7 + 1e-6 * w.abs(), "d[{i}] {g} vs {w}");
    }
}

device_test!(tape_loss_is_the_frames_summed_loss_averaged);
fn tape_loss_is_the_frames_summed_loss_averaged(ctx: &Context) {
    // 3 frames of 2×5 pixels; loss = 2 · mean over frames of the frame's summed loss.
    let (frames, pixels) = (3, 10);
    let mut rng = Rng::new(53);
    let z = rng.vec_f32(frames * pixels, -3.0, 3.0);
    let t = rng.vec_f32(frames * pixels, 0.0, 1.0);
    let mut tape = Tape::new();
    let zv = tape.input(Tensor::from_slice(ctx, &[frames, 2, 5], &z).unwrap());
    let tt = Tensor::from_slice(ctx, &[frames, 2, 5], &t).unwrap();
    let loss = tape.binary_cross_entropy(ctx, zv, &tt, frames).unwrap();
    let loss = tape.scale(ctx, loss, 2.0).unwrap();
    let value = tape.value(loss).to_vec(ctx).unwrap();
    let grads = tape.backward(ctx, loss).unwrap();
    let (per, d) = reference::with_logits(&to_f64(&z), &to_f64(&t), 2.0 / frames as f64);
    let want = 2.0 * per.iter().sum::<f64>() / frames as f64;
    assert!(
        (value[0] as f64 - want).abs() <= 1e-5 * want,
        "{} vs {want}",
        value[0]
    );
    assert_close(
        "dL/dz",
        &grads.get(zv).unwrap().to_vec(ctx).unwrap(),
        &d,
        1e-7,
        1e-5,
    );
}

device_test!(mismatched_or_bad_operands_are_refused);
fn mismatched_or_bad_operands_are_refused(ctx: &Context) {
    let a = Tensor::from_slice(ctx, &[4], &[1.0; 4]).unwrap();
    let b = Tensor::from_slice(ctx, &[2, 2], &[1.0; 4]).unwrap();
    let err = bce::with_logits(ctx, &a, &b, 1.0).unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err}");
    assert!(err.to_string().contains("targets"), "{err}");
    let err = bce::with_logits(ctx, &a, &a, f32::INFINITY).unwrap_err();
    assert!(err.to_string().contains("grad_scale"), "{err}");
    let idx = Tensor::from_u32(ctx, &[4], &[1; 4]).unwrap();
    assert!(bce::with_logits(ctx, &a, &idx, 1.0).is_err());
    let err = bce::mean_row_sum_with_logits(ctx, &a, &a, 3).unwrap_err();
    assert!(err.to_string().contains("3 rows"), "{err}");
    assert!(bce::mean_row_sum_with_logits(ctx, &a, &a, 0).is_err());
    let empty = Tensor::from_slice(ctx, &[0], &[]).unwrap();
    assert!(matches!(
        bce::with_logits(ctx, &empty, &empty, 1.0),
        Err(Error::Empty { .. })
    ));
}
