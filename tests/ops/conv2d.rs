//! The conv2d family on both devices against `reference::conv2d` (forward, the three
//! gradients, the tape op), the reference's gradients against finite differences, and the
//! wrapper's refusals.

use rims::ops::conv2d::{self, Conv2dShape, Conv2dSpec};
use rims::reference::{self, conv2d::Sizes};
use rims::rng::Rng;
use rims::tape::Tape;
use rims::{Context, Error, Tensor};

use crate::common::{assert_close, to_f64};

/// (sizes, spec) of each case: N 1 and 3, C_in 1 and 3, C_out 1 and 5, H ≠ W, KH ≠ KW,
/// strides 1 to 3, no, symmetric and asymmetric padding, a kernel as large as the padded
/// input, input rows no window reaches, and the encoder's 4×4 stride-2 pad-1 layer.
fn cases() -> Vec<(Sizes, Conv2dSpec)> {
    let sizes = |n, c_in, h, w, c_out, kh, kw| Sizes {
        n,
        c_in,
        h,
        w,
        c_out,
        kh,
        kw,
    };
    let asym = |stride, pad_before, pad_after| Conv2dSpec {
        stride,
        pad_before,
        pad_after,
    };
    vec![
        (sizes(1, 1, 5, 7, 1, 3, 2), Conv2dSpec::new(1, 0)),
        (sizes(3, 3, 6, 5, 5, 3, 3), Conv2dSpec::new(2, 1)),
        (sizes(3, 1, 7, 6, 5, 4, 4), asym(1, 1, 2)),
        (sizes(1, 3, 4, 5, 1, 2, 3), asym(2, 1, 2)),
        (sizes(3, 3, 3, 4, 5, 5, 6), Conv2dSpec::new(1, 1)),
        (sizes(1, 1, 5, 5, 1, 2, 2), Conv2dSpec::new(2, 0)),
        (sizes(3, 3, 7, 9, 1, 3, 2), asym(3, 0, 2)),
        (sizes(3, 3, 8, 8, 5, 4, 4), Conv2dSpec::new(2, 1)),
    ]
}

fn x_shape(s: &Sizes) -> [usize; 4] {
    [s.n, s.c_in, s.h, s.w]
}

fn w_shape(s: &Sizes) -> [usize; 4] {
    [s.c_out, s.c_in, s.kh, s.kw]
}

/// Random x, weight, bias and dy for a case, as f32.
struct Problem {
    x: Vec<f32>,
    w: Vec<f32>,
    b: Vec<f32>,
    dy: Vec<f32>,
}

fn problem(rng: &mut Rng, s: &Sizes, spec: Conv2dSpec) -> Problem {
    let (ho, wo) = s.output(spec);
    Problem {
        x: rng.vec_f32(s.n * s.c_in * s.h * s.w, -1.0, 1.0),
        w: rng.vec_f32(s.c_out * s.c_in * s.kh * s.kw, -1.0, 1.0),
        b: rng.vec_f32(s.c_out, -1.0, 1.0),
        dy: rng.vec_f32(s.n * s.c_out * ho * wo, -1.0, 1.0),
    }
}

device_test!(conv2d_forward_and_gradients_match_the_reference);
fn conv2d_forward_and_gradients_match_the_reference(ctx: &Context) {
    let mut rng = Rng::new(71);
    for (s, spec) in cases() {
        let what = format!("{s:?} {spec:?}");
        let p = problem(&mut rng, &s, spec);
        let (ho, wo) = s.output(spec);
        let x = Tensor::from_slice(ctx, &x_shape(&s), &p.x).unwrap();
        let w = Tensor::from_slice(ctx, &w_shape(&s), &p.w).unwrap();
        let b = Tensor::from_slice(ctx, &[s.c_out], &p.b).unwrap();
        let dy = Tensor::from_slice(ctx, &[s.n, s.c_out, ho, wo], &p.dy).unwrap();
        let (x64, w64, b64) = (to_f64(&p.x), to_f64(&p.w), to_f64(&p.b));
        for bias in [true, false] {
            let y = conv2d::forward(ctx, &x, &w, bias.then_some(&b), spec).unwrap();
            assert_eq!(y.shape(), &[s.n, s.c_out, ho, wo], "{what}");
            let want = reference::conv2d::forward(s, &x64, &w64, bias.then_some(&b64[..]), spec);
            let got = y.to_vec(ctx).unwrap();
            assert_close(&format!("y {what} bias {bias}"), &got, &want, 1e-5, 1e-5);
        }
        let g = conv2d::backward(ctx, &x, &w, &dy, true, spec).unwrap();
        let (dx, dw, db) = reference::conv2d::backward(s, &x64, &w64, &to_f64(&p.dy), spec);
        let close = |name: &str, t: &Tensor, want: &[f64]| {
            let got = t.to_vec(ctx).unwrap();
            assert_close(&format!("{name} {what}"), &got, want, 1e-5, 1e-5);
        };
        close("dx", &g.dx, &dx);
        close("dw", &g.dw, &dw);
        close("db", g.db.as_ref().unwrap(), &db);
        assert_eq!(g.dx.shape(), &x_shape(&s));
        assert_eq!(g.dw.shape(), &w_shape(&s));
    }
}

#[test]
fn reference_conv2d_backward_matches_finite_differences() {
    let mut rng = Rng::new(72);
    let rand = |rng: &mut Rng, n| (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect::<Vec<f64>>();
    for (s, spec) in cases().into_iter().take(7) {
        let (ho, wo) = s.output(spec);
        let x = rand(&mut rng, s.n * s.c_in * s.h * s.w);
        let w = rand(&mut rng, s.c_out * s.c_in * s.kh * s.kw);
        let b = rand(&mut rng, s.c_out);
        let r = rand(&mut rng, s.n * s.c_out * ho * wo);
        // L = Σ y ⊙ r, so dy = r.
        let loss = |x: &[f64], w: &[f64], b: &[f64]| {
            let y = reference::conv2d::forward(s, x, w, Some(b), spec);
            y.iter().zip(&r).map(|(y, r)| y * r).sum::<f64>()
        };
        let (dx, dw, db) = reference::conv2d::backward(s, &x, &w, &r, spec);
        let fd_x = reference::finite_differences(&x, 1e-6, |v| loss(v, &w, &b));
        let fd_w = reference::finite_differences(&w, 1e-6, |v| loss(&x, v, &b));
        let fd_b = reference::finite_differences(&b, 1e-6, |v| loss(&x, &w, v));
        for (name, got, want) in [("dx", dx, fd_x), ("dw", dw, fd_w), ("db", db, fd_b)] {
            for (i, (g, f)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - f).abs() <= 1e-6 * (1.0 + f.abs()),
                    "{name}[{i}] of {s:?} {spec:?}: {g} vs finite differences {f}"
                );
            }
        }
    }
}

device_test!(tape_conv2d_gives_the_reference_gradients);
fn tape_conv2d_gives_the_reference_gradients(ctx: &Context) {
    let mut rng = Rng::new(73);
    let (s, spec) = cases()[2];
    let p = problem(&mut rng, &s, spec);
    let (ho, wo) = s.output(spec);
    let target = rng.vec_f32(s.n * s.c_out * ho * wo, -1.0, 1.0);
    let (x64, w64) = (to_f64(&p.x), to_f64(&p.w));
    for bias in [true, false] {
        let mut tape = Tape::new();
        let x = tape.input(Tensor::from_slice(ctx, &x_shape(&s), &p.x).unwrap());
        let w = tape.input(Tensor::from_slice(ctx, &w_shape(&s), &p.w).unwrap());
        let b = bias.then(|| tape.input(Tensor::from_slice(ctx, &[s.c_out], &p.b).unwrap()));
        let y = tape.conv2d(ctx, x, w, b, spec).unwrap();
        let t = Tensor::from_slice(ctx, &[s.n, s.c_out, ho, wo], &target).unwrap();
        let loss = tape.mse(ctx, y, &t).unwrap();
        let grads = tape.backward(ctx, loss).unwrap();
        // L = mean((y − t)²): dy = 2 (y − t) / len.
        let b64 = to_f64(&p.b);
        let y = reference::conv2d::forward(s, &x64, &w64, bias.then_some(&b64[..]), spec);
        let scale = 2.0 / y.len() as f64;
        let dy: Vec<f64> = y
            .iter()
            .zip(&target)
            .map(|(y, &t)| scale * (y - t as f64))
            .collect();
        let (dx, dw, db) = reference::conv2d::backward(s, &x64, &w64, &dy, spec);
        let got = |v| grads.get(v).unwrap().to_vec(ctx).unwrap();
        assert_close(&format!("dL/dx bias {bias}"), &got(x), &dx, 1e-6, 1e-5);
        assert_close(&format!("dL/dw bias {bias}"), &got(w), &dw, 1e-6, 1e-5);
        if let Some(b) = b {
            assert_close("dL/db", &got(b), &db, 1e-6, 1e-5);
        }
    }
}

device_test!(conv2d_refuses_operands_that_do_not_fit);
fn conv2d_refuses_operands_that_do_not_fit(ctx: &Context) {
    let t = |shape: &[usize]| {
        let len = shape.iter().product();
        Tensor::from_slice(ctx, shape, &vec![0.5; len]).unwrap()
    };
    let spec = Conv2dSpec::new(1, 0);
    let (x, w, b) = (t(&[2, 3, 5, 4]), t(&[4, 3, 2, 2]), t(&[4]));
    let is_shape = |e: Error, word: &str| {
        assert!(matches!(e, Error::Shape { .. }), "{e}");
        assert!(e.to_string().contains(word), "{e} should name {word}");
    };
    // One output row's windows past the CPU twin's scratch bound, sized without allocating.
    let wide = conv2d::Conv2dShape::new(&[1, 4096, 1, 70_000], &[1, 4096, 1, 1], spec);
    let Err(e) = wide else {
        panic!("a row of 4096 x 70000 windows is refused")
    };
    assert!(matches!(e, Error::DeviceLimit { .. }), "{e}");
    assert!(e.to_string().contains("one output row"), "{e}");
    // Channels, bias length, rank, a kernel larger than the padded input, dy's shape.
    let e = conv2d::forward(ctx, &x, &t(&[4, 2, 2, 2]), None, spec).unwrap_err();
    is_shape(e, "input channels");
    let e = conv2d::forward(ctx, &x, &w, Some(&t(&[3])), spec).unwrap_err();
    is_shape(e, "bias");
    let e = conv2d::forward(ctx, &t(&[3, 5, 4]), &w, None, spec).unwrap_err();
    is_shape(e, "4-D");
    let e = conv2d::forward(ctx, &x, &t(&[4, 3, 6, 2]), None, spec).unwrap_err();
    is_shape(e, "larger than the input");
    let padded = Conv2dSpec {
        stride: 1,
        pad_before: 0,
        pad_after: 1,
    };
    assert!(conv2d::forward(ctx, &x, &t(&[4, 3, 6, 2]), Some(&b), padded).is_ok());
    let e = conv2d::backward(ctx, &x, &w, &t(&[2, 4, 4, 4]), true, spec).unwrap_err();
    is_shape(e, "dy");
    let e = conv2d::backward_input(ctx, &t(&[2, 4, 4, 3]), &w, &[2, 3, 5], spec).unwrap_err();
    is_shape(e, "4-D");
    // Stride 0, a zero size, the wrong element type.
    let e = conv2d::forward(ctx, &x, &w, None, Conv2dSpec::new(0, 1)).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { .. }) && e.to_string().contains("stride"));
    let e = conv2d::forward(ctx, &t(&[0, 3, 5, 4]), &w, None, spec).unwrap_err();
    assert!(matches!(e, Error::Empty { .. }), "{e}");
    let e = conv2d::backward_bias(ctx, &t(&[2, 0, 4, 3])).unwrap_err();
    assert!(matches!(e, Error::Empty { .. }), "{e}");
    let u = Tensor::from_u32(ctx, &[2, 3, 5, 4], &[1; 120]).unwrap();
    let e = conv2d::forward(ctx, &u, &w, None, spec).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
    // Past the kernels' 32-bit indices (checked from the shapes, nothing allocated).
    let e = Conv2dShape::new(&[1 << 16, 1 << 10, 64, 1], &[1, 1 << 10, 1, 1], spec).unwrap_err();
    assert!(matches!(e, Error::DeviceLimit { .. }), "{e}");
    let huge = Conv2dSpec::new(1, 1 << 31);
    let e = Conv2dShape::new(&[1, 1, 2, 2], &[1, 1, 1, 1], huge).unwrap_err();
    assert!(matches!(e, Error::DeviceLimit { .. }), "{e}");
}
