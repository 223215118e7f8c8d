use rims::Context;
use rims::ops::elementwise::{self, Binary, Unary};
use rims::reference::elementwise as reference;
use rims::rng::Rng;
use rims::{Error, Tensor};

use crate::common::{assert_close, to_f64};

const SIZES: &[usize] = &[1, 3, 255, 256, 257, 1000];

device_test!(unary_ops_match_reference);
fn unary_ops_match_reference(ctx: &Context) {
    let mut rng = Rng::new(1);
    for &n in SIZES {
        let x = rng.vec_f32(n, -6.0, 6.0);
        let t = Tensor::from_slice(ctx, &[n], &x).unwrap();
        for op in [
            Unary::Sigmoid,
            Unary::Tanh,
            Unary::Scale(-2.5),
            Unary::Relu,
            Unary::Elu(1.0),
            Unary::Elu(0.3),
        ] {
            let y = elementwise::unary(ctx, op, &t)
                .unwrap()
                .to_vec(ctx)
                .unwrap();
            assert_close(
                &format!("{op:?} n={n}"),
                &y,
                &reference::unary(op, &to_f64(&x)),
                1e-6,
                1e-5,
            );
        }
    }
}

/// The reference's derivatives through the output are the maps' derivatives: central
/// differences of `reference::unary` at points away from relu's kink.
#[test]
fn reference_derivatives_through_the_output_are_the_maps_derivatives() {
    let mut rng = Rng::new(4);
    let x: Vec<f64> = rng
        .vec_f32(200, -5.0, 5.0)
        .iter()
        .map(|&v| if v.abs() < 1e-3 { 0.5 } else { v as f64 })
        .collect();
    let dy: Vec<f64> = rng
        .vec_f32(200, -1.0, 1.0)
        .iter()
        .map(|&v| v as f64)
        .collect();
    let h = 1e-6;
    for (map, derivative) in [
        (Unary::Relu, Binary::ReluBackward),
        (Unary::Elu(1.0), Binary::EluBackward(1.0)),
        (Unary::Elu(0.3), Binary::EluBackward(0.3)),
        (Unary::Tanh, Binary::TanhBackward),
        (Unary::Sigmoid, Binary::SigmoidBackward),
    ] {
        let y = reference::unary(map, &x);
        let got = reference::binary(derivative, &y, &dy);
        let up: Vec<f64> = x.iter().map(|v| v + h).collect();
        let down: Vec<f64> = x.iter().map(|v| v - h).collect();
        let (yu, yd) = (reference::unary(map, &up), reference::unary(map, &down));
        for i in 0..x.len() {
            let want = dy[i] * (yu[i] - yd[i]) / (2.0 * h);
            assert!(
                (got[i] - want).abs() <= 1e-6 * (1.0 + want.abs()),
                "{map:?} at x = {}: {} against {want}",
                x[i],
                got[i]
            );
        }
    }
}

device_test!(relu_and_elu_are_exact_at_their_edges);
fn relu_and_elu_are_exact_at_their_edges(ctx: &Context) {
    let x = [-200.0f32, -1.0, -0.0, 0.0, 1e-30, 2.5, 1e30];
    let t = Tensor::from_slice(ctx, &[x.len()], &x).unwrap();
    let relu = elementwise::unary(ctx, Unary::Relu, &t).unwrap();
    assert_eq!(
        relu.to_vec(ctx).unwrap(),
        vec![0.0, 0.0, 0.0, 0.0, 1e-30, 2.5, 1e30]
    );
    let elu = elementwise::unary(ctx, Unary::Elu(1.0), &t)
        .unwrap()
        .to_vec(ctx)
        .unwrap();
    assert_eq!(elu[0], -1.0, "elu saturates at -alpha");
    assert!(
        (elu[1] - (-0.632_120_56)).abs() < 1e-6,
        "elu(-1) = {}",
        elu[1]
    );
    assert_eq!(
        &elu[2..],
        &[0.0, 0.0, 1e-30, 2.5, 1e30],
        "elu is x from 0 up"
    );
    let bad = elementwise::unary(ctx, Unary::Elu(f32::NAN), &t);
    assert!(matches!(bad, Err(Error::InvalidArgument { .. })), "{bad:?}");
}

device_test!(tanh_and_sigmoid_saturate_without_nan);
fn tanh_and_sigmoid_saturate_without_nan(ctx: &Context) {
    let x = [-200.0f32, -90.0, 0.0, 90.0, 200.0];
    let t = Tensor::from_slice(ctx, &[5], &x).unwrap();
    let th = elementwise::unary(ctx, Unary::Tanh, &t)
        .unwrap()
        .to_vec(ctx)
        .unwrap();
    assert_eq!(th, vec![-1.0, -1.0, 0.0, 1.0, 1.0]);
    let sg = elementwise::unary(ctx, Unary::Sigmoid, &t)
        .unwrap()
        .to_vec(ctx)
        .unwrap();
    assert_eq!(sg, vec![0.0, 0.0, 0.5, 1.0, 1.0]);
}

device_test!(binary_ops_match_reference_with_broadcast);
fn binary_ops_match_reference_with_broadcast(ctx: &Context) {
    let mut rng = Rng::new(2);
    for &(rows, cols) in &[(1, 1), (3, 7), (5, 64), (2, 300)] {
        let n = rows * cols;
        let a = rng.vec_f32(n, -1.0, 1.0);
        let b = rng.vec_f32(n, -1.0, 1.0);
        let bias = rng.vec_f32(cols, -1.0, 1.0);
        let ta = Tensor::from_slice(ctx, &[rows, cols], &a).unwrap();
        let tb = Tensor::from_slice(ctx, &[rows, cols], &b).unwrap();
        let tbias = Tensor::from_slice(ctx, &[cols], &bias).unwrap();
        let ops = [
            Binary::Add,
            Binary::Sub,
            Binary::Mul,
            Binary::AddScaled(0.25),
            Binary::SigmoidBackward,
            Binary::TanhBackward,
            Binary::ReluBackward,
            Binary::EluBackward(1.0),
            Binary::EluBackward(0.3),
        ];
        for op in ops {
            let got = elementwise::binary(ctx, op, &ta, &tb)
                .unwrap()
                .to_vec(ctx)
                .unwrap();
            let want = reference::binary(op, &to_f64(&a), &to_f64(&b));
            assert_close(&format!("{op:?} {rows}x{cols}"), &got, &want, 1e-6, 1e-5);
        }
        let got = elementwise::binary(ctx, Binary::Add, &ta, &tbias)
            .unwrap()
            .to_vec(ctx)
            .unwrap();
        assert_close(
            "bias add",
            &got,
            &reference::binary(Binary::Add, &to_f64(&a), &to_f64(&bias)),
            1e-6,
            1e-6,
        );
    }
}

device_test!(fill_and_zeros);
fn fill_and_zeros(ctx: &Context) {
    let t = Tensor::full(ctx, &[3, 100], 1.5).unwrap();
    assert_eq!(t.to_vec(ctx).unwrap(), vec![1.5; 300]);
    let z = Tensor::zeros(ctx, &[7]).unwrap();
    assert_eq!(z.to_vec(ctx).unwrap(), vec![0.0; 7]);
}

device_test!(elementwise_rejects_bad_shapes_and_empty);
fn elementwise_rejects_bad_shapes_and_empty(ctx: &Context) {
    let a = Tensor::from_slice(ctx, &[2, 3], &[0.0; 6]).unwrap();
    let b = Tensor::from_slice(ctx, &[2], &[0.0; 2]).unwrap();
    assert!(matches!(
        elementwise::binary(ctx, Binary::Add, &a, &b),
        Err(Error::Shape { .. })
    ));
    let e = Tensor::from_slice(ctx, &[0, 3], &[]).unwrap();
    assert!(matches!(
        elementwise::unary(ctx, Unary::Tanh, &e),
        Err(Error::Empty { .. })
    ));
    let idx = Tensor::from_u32(ctx, &[2], &[1, 2]).unwrap();
    assert!(matches!(
        elementwise::unary(ctx, Unary::Tanh, &idx),
        Err(Error::InvalidArgument { .. })
    ));
}

device_test!(add_assign_and_scalar_broadcast);
fn add_assign_and_scalar_broadcast(ctx: &Context) {
    let mut rng = Rng::new(3);
    for &n in SIZES {
        let d = rng.vec_f32(n, -1.0, 1.0);
        let s = rng.vec_f32(n, -1.0, 1.0);
        let td = Tensor::from_slice(ctx, &[n], &d).unwrap();
        let ts = Tensor::from_slice(ctx, &[n], &s).unwrap();
        elementwise::add_assign(ctx, &td, &ts, -0.5).unwrap();
        let mut want = to_f64(&d);
        reference::add_assign(&mut want, &to_f64(&s), -0.5);
        assert_close(
            &format!("add_assign n={n}"),
            &td.to_vec(ctx).unwrap(),
            &want,
            1e-6,
            1e-6,
        );
        let scalar = Tensor::from_slice(ctx, &[1], &[3.0]).unwrap();
        let got = elementwise::binary(ctx, Binary::Mul, &ts, &scalar)
            .unwrap()
            .to_vec(ctx)
            .unwrap();
        let want = reference::binary(Binary::Mul, &to_f64(&s), &[3.0]);
        assert_close("scalar broadcast", &got, &want, 1e-6, 1e-6);
    }
    let a = Tensor::zeros(ctx, &[4]).unwrap();
    let b = Tensor::zeros(ctx, &[5]).unwrap();
    assert!(matches!(
        elementwise::add_assign(ctx, &a, &b, 1.0),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        elementwise::add_assign(ctx, &a, &a, 1.0),
        Err(Error::InvalidArgument { .. })
    ));
}
