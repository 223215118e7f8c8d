use rims::Context;
use rims::ops::upsample;
use rims::reference::upsample as reference;
use rims::rng::Rng;
use rims::tape::Tape;
use rims::{Error, Tensor};

use crate::common::{assert_close, to_f64};

/// (shape, factor): one pixel, odd planes and sizes, a factor of 1, a plane count past a
/// workgroup, and one large enough to split over threads.
const CASES: &[(&[usize], usize)] = &[
    (&[1, 1, 1, 1], 2),
    (&[2, 3, 5, 7], 2),
    (&[3, 4, 3], 3),
    (&[5, 2], 1),
    (&[1, 300, 2, 2], 2),
    (&[4, 16, 8, 8], 2),
];

device_test!(nearest_and_its_backward_match_reference);
fn nearest_and_its_backward_match_reference(ctx: &Context) {
    let mut rng = Rng::new(61);
    for &(shape, f) in CASES {
        let (h, w) = (shape[shape.len() - 2], shape[shape.len() - 1]);
        let planes: usize = shape[..shape.len() - 2].iter().product();
        let x = rng.vec_f32(planes * h * w, -1.0, 1.0);
        let tx = Tensor::from_slice(ctx, shape, &x).unwrap();
        let y = upsample::nearest(ctx, &tx, f).unwrap();
        let mut want_shape = shape.to_vec();
        want_shape[shape.len() - 2] *= f;
        want_shape[shape.len() - 1] *= f;
        assert_eq!(y.shape(), want_shape.as_slice());
        // A copy: exact.
        let want = reference::nearest(&to_f64(&x), planes, h, w, f);
        assert_close(
            &format!("y {shape:?} f={f}"),
            &y.to_vec(ctx).unwrap(),
            &want,
            0.0,
            0.0,
        );

        let dy = rng.vec_f32(y.len(), -1.0, 1.0);
        let tdy = Tensor::from_slice(ctx, &want_shape, &dy).unwrap();
        let dx = upsample::nearest_backward(ctx, &tdy, shape, f).unwrap();
        assert_eq!(dx.shape(), shape);
        let want = reference::nearest_backward(&to_f64(&dy), planes, h, w, f);
        assert_close(
            &format!("dx {shape:?} f={f}"),
            &dx.to_vec(ctx).unwrap(),
            &want,
            1e-6,
            1e-6,
        );
    }
}

#[test]
fn reference_backward_is_the_adjoint_of_the_forward() {
    // <nearest(x), dy> = <x, nearest_backward(dy)> for a linear map and its adjoint.
    let mut rng = Rng::new(62);
    let (planes, h, w, f) = (3, 4, 5, 3);
    let x: Vec<f64> = (0..planes * h * w)
        .map(|_| rng.uniform(-1.0, 1.0))
        .collect();
    let dy: Vec<f64> = (0..planes * h * w * f * f)
        .map(|_| rng.uniform(-1.0, 1.0))
        .collect();
    let y = reference::nearest(&x, planes, h, w, f);
    let dx = reference::nearest_backward(&dy, planes, h, w, f);
    let lhs: f64 = y.iter().zip(&dy).map(|(a, b)| a * b).sum();
    let rhs: f64 = x.iter().zip(&dx).map(|(a, b)| a * b).sum();
    assert!((lhs - rhs).abs() < 1e-12, "{lhs} vs {rhs}");
}

device_test!(tape_upsample_gives_the_block_sums);
fn tape_upsample_gives_the_block_sums(ctx: &Context) {
    let mut rng = Rng::new(63);
    let shape = [2, 3, 4, 5];
    let x = rng.vec_f32(120, -1.0, 1.0);
    let mut tape = Tape::new();
    let xv = tape.input(Tensor::from_slice(ctx, &shape, &x).unwrap());
    let y = tape.upsample_nearest(ctx, xv, 2).unwrap();
    let r = rng.vec_f32(480, -1.0, 1.0);
    // L = Σ y ⊙ r, so dL/dy = r.
    let rv = tape.constant(Tensor::from_slice(ctx, &[2, 3, 8, 10], &r).unwrap());
    let prod = tape.mul(ctx, y, rv).unwrap();
    let loss = tape.sum(ctx, prod).unwrap();
    let grads = tape.backward(ctx, loss).unwrap();
    let want = reference::nearest_backward(&to_f64(&r), 6, 4, 5, 2);
    assert_close(
        "dL/dx",
        &grads.get(xv).unwrap().to_vec(ctx).unwrap(),
        &want,
        1e-6,
        1e-6,
    );
}

device_test!(bad_shapes_and_factors_are_refused);
fn bad_shapes_and_factors_are_refused(ctx: &Context) {
    let x = Tensor::from_slice(ctx, &[2, 2, 2], &[0.0; 8]).unwrap();
    let err = upsample::nearest(ctx, &x, 0).unwrap_err();
    assert!(err.to_string().contains("factor"), "{err}");
    let v = Tensor::from_slice(ctx, &[4], &[0.0; 4]).unwrap();
    assert!(matches!(
        upsample::nearest(ctx, &v, 2),
        Err(Error::Shape { .. })
    ));
    let e = Tensor::from_slice(ctx, &[0, 2, 2], &[]).unwrap();
    assert!(matches!(
        upsample::nearest(ctx, &e, 2),
        Err(Error::Empty { .. })
    ));
    let err = upsample::nearest(ctx, &x, 1 << 20).unwrap_err();
    assert!(matches!(err, Error::DeviceLimit { .. }), "{err}");
    let wrong = Tensor::from_slice(ctx, &[2, 4, 3], &[0.0; 24]).unwrap();
    let err = upsample::nearest_backward(ctx, &wrong, &[2, 2, 2], 2).unwrap_err();
    assert!(err.to_string().contains("upsampled shape"), "{err}");
    let idx = Tensor::from_u32(ctx, &[1, 2, 2], &[0; 4]).unwrap();
    assert!(upsample::nearest(ctx, &idx, 2).is_err());
}
