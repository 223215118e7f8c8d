//! The video model's twins (layer normalisation, nearest upsampling, binary cross-entropy,
//! relu and elu) give the same bits on one thread and on two, at sizes past the split policy's
//! `ALWAYS_FROM` (2²⁰ units of work) so that two threads really split them. Their agreement
//! with the WGSL is checked through the reference on both devices in `tests/ops/NAME.rs`.
use super::support::*;
use rims::ops::elementwise::{self, Binary, Unary};
use rims::ops::{binary_cross_entropy, layer_norm, upsample};
use rims::rng::Rng;
use rims::{Context, Tensor};

/// Every output of the five kernels on `ctx`, from inputs drawn from one seed.
fn run(ctx: &Context) -> Vec<Vec<f32>> {
    let mut rng = Rng::new(81);
    let mut t = |shape: &[usize], lo: f64, hi: f64| {
        let len = shape.iter().product();
        Tensor::from_slice(ctx, shape, &rng.vec_f32(len, lo, hi)).unwrap()
    };
    // 512 frames of 16 × 16 × 16, normalised over each frame: 2²¹ elements.
    let x = t(&[512, 16, 16, 16], -2.0, 2.0);
    let (gain, bias) = (t(&[16, 16, 16], 0.5, 1.5), t(&[16, 16, 16], -0.5, 0.5));
    let dy = t(&[512, 16, 16, 16], -1.0, 1.0);
    let n = layer_norm::forward(ctx, &x, &gain, &bias, 1e-5).unwrap();
    let d = layer_norm::backward(ctx, &x, &gain, &dy, &n.mean, &n.rstd).unwrap();
    let up = upsample::nearest(ctx, &x, 2).unwrap();
    let down = upsample::nearest_backward(ctx, &up, x.shape(), 2).unwrap();
    let targets = t(&[512, 16, 16, 16], 0.0, 1.0);
    let (loss, dlogits) = binary_cross_entropy::with_logits(ctx, &x, &targets, 0.5).unwrap();
    let elu = elementwise::unary(ctx, Unary::Elu(1.0), &x).unwrap();
    let delu = elementwise::binary(ctx, Binary::EluBackward(1.0), &elu, &dy).unwrap();
    let relu = elementwise::unary(ctx, Unary::Relu, &x).unwrap();
    [
        &n.y, &n.mean, &n.rstd, &d.dx, &d.dgain, &d.dbias, &up, &down, &loss, &dlogits, &elu,
        &delu, &relu,
    ]
    .iter()
    .map(|t| t.to_vec(ctx).unwrap())
    .collect()
}

#[test]
fn image_twins_give_the_same_bits_on_one_thread_and_two() {
    let (one, two) = one_and_two_threads();
    let (a, b) = (run(&one), run(&two));
    for (k, (a, b)) in a.iter().zip(&b).enumerate() {
        let same = a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(same, "output {k} differs between one thread and two");
    }
}
