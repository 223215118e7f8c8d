use rims::Context;
use rims::ops::layer_norm;
use rims::reference::finite_differences;
use rims::reference::layer_norm as reference;
use rims::rng::Rng;
use rims::tape::Tape;
use rims::{Error, Tensor};

use crate::common::{assert_close, to_f64};

/// (x's shape, the normalised trailing dimensions): one row of one element, odd sizes, rows
/// shorter and longer than a workgroup (64 and 256 threads), an image normalised over C·H·W,
/// and enough rows to split over threads.
const CASES: &[(&[usize], usize)] = &[
    (&[1, 1], 1),
    (&[3, 7], 1),
    (&[5, 63], 1),
    (&[2, 65], 1),
    (&[3, 1025], 1),
    (&[2, 3, 5, 7], 3),
    (&[64, 16, 4, 4], 3),
];

struct Case {
    x: Vec<f32>,
    gain: Vec<f32>,
    bias: Vec<f32>,
    dy: Vec<f32>,
    shape: Vec<usize>,
    norm: Vec<usize>,
}

fn case(rng: &mut Rng, shape: &[usize], trailing: usize) -> Case {
    let norm = shape[shape.len() - trailing..].to_vec();
    let (n, cols) = (shape.iter().product(), norm.iter().product());
    // An offset, so the mean is far from 0 and the centring matters.
    Case {
        x: rng.vec_f32(n, 1.0, 4.0),
        gain: rng.vec_f32(cols, 0.5, 1.5),
        bias: rng.vec_f32(cols, -0.5, 0.5),
        dy: rng.vec_f32(n, -1.0, 1.0),
        shape: shape.to_vec(),
        norm,
    }
}

device_test!(forward_and_backward_match_reference);
fn forward_and_backward_match_reference(ctx: &Context) {
    let mut rng = Rng::new(71);
    let eps = 1e-5;
    for &(shape, trailing) in CASES {
        let c = case(&mut rng, shape, trailing);
        let cols = c.gain.len();
        let t = |shape: &[usize], v: &[f32]| Tensor::from_slice(ctx, shape, v).unwrap();
        let (x, gain, bias) = (t(&c.shape, &c.x), t(&c.norm, &c.gain), t(&c.norm, &c.bias));
        let out = layer_norm::forward(ctx, &x, &gain, &bias, eps).unwrap();
        let (y, mean, rstd) = reference::forward(
            &to_f64(&c.x),
            &to_f64(&c.gain),
            &to_f64(&c.bias),
            cols,
            eps as f64,
        );
        let what = format!("{shape:?} over {:?}", c.norm);
        assert_eq!(out.y.shape(), shape);
        assert_close(
            &format!("y {what}"),
            &out.y.to_vec(ctx).unwrap(),
            &y,
            1e-5,
            1e-5,
        );
        assert_close(
            &format!("mean {what}"),
            &out.mean.to_vec(ctx).unwrap(),
            &mean,
            1e-6,
            1e-6,
        );
        assert_close(
            &format!("rstd {what}"),
            &out.rstd.to_vec(ctx).unwrap(),
            &rstd,
            1e-4,
            1e-4,
        );

        let dy = t(&c.shape, &c.dy);
        let d = layer_norm::backward(ctx, &x, &gain, &dy, &out.mean, &out.rstd).unwrap();
        let (dx, dgain, dbias) = reference::backward(
            &to_f64(&c.x),
            &to_f64(&c.gain),
            &to_f64(&c.dy),
            cols,
            eps as f64,
        );
        assert_close(
            &format!("dx {what}"),
            &d.dx.to_vec(ctx).unwrap(),
            &dx,
            1e-4,
            1e-4,
        );
        assert_close(
            &format!("dgain {what}"),
            &d.dgain.to_vec(ctx).unwrap(),
            &dgain,
            1e-4,
            1e-4,
        );
        assert_close(
            &format!("dbias {what}"),
            &d.dbias.to_vec(ctx).unwrap(),
            &dbias,
            1e-5,
            1e-5,
        );
        assert_eq!(d.dgain.shape(), c.norm.as_slice());
    }
}

#[test]
fn reference_backward_matches_finite_differences() {
    let mut rng = Rng::new(72);
    let c = case(&mut rng, &[3, 6], 1);
    let (x, gain, bias, dy) = (
        to_f64(&c.x),
        to_f64(&c.gain),
        to_f64(&c.bias),
        to_f64(&c.dy),
    );
    let eps = 1e-3;
    // L = Σ y ⊙ dy.
    let loss = |x: &[f64], gain: &[f64], bias: &[f64]| -> f64 {
        let (y, _, _) = reference::forward(x, gain, bias, 6, eps);
        y.iter().zip(&dy).map(|(a, b)| a * b).sum()
    };
    let (dx, dgain, dbias) = reference::backward(&x, &gain, &dy, 6, eps);
    let h = 1e-6;
    let close = |what: &str, got: &[f64], want: &[f64]| {
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-6 * (1.0 + w.abs()),
                "{what}[{i}] {g} vs {w}"
            );
        }
    };
    close(
        "dx",
        &dx,
        &finite_differences(&x, h, |x| loss(x, &gain, &bias)),
    );
    close(
        "dgain",
        &dgain,
        &finite_differences(&gain, h, |g| loss(&x, g, &bias)),
    );
    close(
        "dbias",
        &dbias,
        &finite_differences(&bias, h, |b| loss(&x, &gain, b)),
    );
}

device_test!(tape_layer_norm_gives_every_gradient);
fn tape_layer_norm_gives_every_gradient(ctx: &Context) {
    let mut rng = Rng::new(73);
    let c = case(&mut rng, &[4, 2, 3, 3], 3);
    let mut tape = Tape::new();
    let t = |shape: &[usize], v: &[f32]| Tensor::from_slice(ctx, shape, v).unwrap();
    let x = tape.input(t(&c.shape, &c.x));
    let gain = tape.input(t(&c.norm, &c.gain));
    let bias = tape.input(t(&c.norm, &c.bias));
    let y = tape.layer_norm(ctx, x, gain, bias, 1e-5).unwrap();
    let r = tape.constant(t(&c.shape, &c.dy));
    let prod = tape.mul(ctx, y, r).unwrap();
    let loss = tape.sum(ctx, prod).unwrap();
    let grads = tape.backward(ctx, loss).unwrap();
    let (dx, dgain, dbias) =
        reference::backward(&to_f64(&c.x), &to_f64(&c.gain), &to_f64(&c.dy), 18, 1e-5);
    let got = |v| grads.get(v).unwrap().to_vec(ctx).unwrap();
    assert_close("dL/dx", &got(x), &dx, 1e-4, 1e-4);
    assert_close("dL/dgain", &got(gain), &dgain, 1e-4, 1e-4);
    assert_close("dL/dbias", &got(bias), &dbias, 1e-5, 1e-5);
}

device_test!(bad_operands_are_refused);
fn bad_operands_are_refused(ctx: &Context) {
    let x = Tensor::from_slice(ctx, &[2, 3], &[1.0; 6]).unwrap();
    let g3 = Tensor::from_slice(ctx, &[3], &[1.0; 3]).unwrap();
    let g2 = Tensor::from_slice(ctx, &[2], &[1.0; 2]).unwrap();
    let err = layer_norm::forward(ctx, &x, &g2, &g2, 1e-5).unwrap_err();
    assert!(
        matches!(err, Error::Shape { .. }) && err.to_string().contains("end with"),
        "{err}"
    );
    let err = layer_norm::forward(ctx, &x, &g3, &g2, 1e-5).unwrap_err();
    assert!(err.to_string().contains("bias"), "{err}");
    for eps in [0.0, -1.0, f32::NAN] {
        let err = layer_norm::forward(ctx, &x, &g3, &g3, eps).unwrap_err();
        assert!(err.to_string().contains("eps"), "{err}");
    }
    let out = layer_norm::forward(ctx, &x, &g3, &g3, 1e-5).unwrap();
    let err = layer_norm::backward(ctx, &x, &g3, &g3, &out.mean, &out.rstd).unwrap_err();
    assert!(err.to_string().contains("dy"), "{err}");
    let err = layer_norm::backward(ctx, &x, &g3, &x, &out.rstd, &g3).unwrap_err();
    assert!(err.to_string().contains("rstd"), "{err}");
    let e = Tensor::from_slice(ctx, &[0, 3], &[]).unwrap();
    assert!(matches!(
        layer_norm::forward(ctx, &e, &g3, &g3, 1e-5),
        Err(Error::Empty { .. })
    ));
}

device_test!(a_constant_row_normalises_to_the_bias);
fn a_constant_row_normalises_to_the_bias(ctx: &Context) {
    // Variance 0: rstd = 1/√eps and x − mean = 0 exactly, so y is the bias, finite.
    let x = Tensor::from_slice(ctx, &[2, 4], &[3.0; 8]).unwrap();
    let g = Tensor::from_slice(ctx, &[4], &[2.0; 4]).unwrap();
    let b = Tensor::from_slice(ctx, &[4], &[0.5, -0.5, 1.0, 0.0]).unwrap();
    let out = layer_norm::forward(ctx, &x, &g, &b, 1e-5).unwrap();
    assert_eq!(
        out.y.to_vec(ctx).unwrap(),
        [0.5, -0.5, 1.0, 0.0, 0.5, -0.5, 1.0, 0.0]
    );
}
