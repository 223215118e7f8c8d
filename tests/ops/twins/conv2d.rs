//! The conv2d twins (im2col and `gemm`) against the WGSL's direct loops, and their
//! independence of the thread count.
use super::support::*;
use rims::Context;
use rims::Tensor;
use rims::ops::conv2d::{self, Conv2dSpec};
use rims::rng::Rng;

/// y (with and without bias), dx, dw and db of one problem.
fn run(ctx: &Context, x: [usize; 4], w: [usize; 4], spec: Conv2dSpec) -> Vec<Vec<f32>> {
    let mut rng = Rng::new(17);
    let mut t = |shape: &[usize]| {
        let len = shape.iter().product();
        Tensor::from_slice(ctx, shape, &rng.vec_f32(len, -1.0, 1.0)).unwrap()
    };
    let (xt, wt, bt) = (t(&x), t(&w), t(&[w[0]]));
    let y = conv2d::forward(ctx, &xt, &wt, Some(&bt), spec).unwrap();
    let y_plain = conv2d::forward(ctx, &xt, &wt, None, spec).unwrap();
    let dy = t(y.shape());
    let g = conv2d::backward(ctx, &xt, &wt, &dy, true, spec).unwrap();
    [&y, &y_plain, &g.dx, &g.dw, g.db.as_ref().unwrap()]
        .iter()
        .map(|t| t.to_vec(ctx).unwrap())
        .collect()
}

/// A small problem for llvmpipe: asymmetric padding, stride 2, KH ≠ KW, H ≠ W.
const SMALL: ([usize; 4], [usize; 4], Conv2dSpec) = (
    [3, 3, 9, 8],
    [5, 3, 4, 3],
    Conv2dSpec {
        stride: 2,
        pad_before: 1,
        pad_after: 2,
    },
);

#[test]
fn twins_match_the_wgsl() {
    let cpu = Context::new(rims::DeviceRequest::cpu(None)).unwrap();
    let Some(gpu) = gpu_or_skip() else { return };
    let (x, w, spec) = SMALL;
    assert_outputs_close("small", &run(&cpu, x, w, spec), &run(&gpu, x, w, spec));
    let (x, w) = ([2, 2, 6, 7], [3, 2, 3, 3]);
    let spec = Conv2dSpec::new(1, 1);
    assert_outputs_close("stride 1", &run(&cpu, x, w, spec), &run(&gpu, x, w, spec));
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let (one, two) = one_and_two_threads();
    let spec = Conv2dSpec::new(2, 1);
    // The encoder's first and second layers (4·10⁶ and 8·10⁶ multiply-adds: split; the first
    // one's weight gradient in two column blocks, the second's in eight), and an image whose
    // windows take more than one chunk of output rows.
    for (x, w) in [
        ([64, 1, 32, 32], [16, 1, 4, 4]),
        ([16, 16, 16, 16], [32, 16, 4, 4]),
        ([2, 64, 66, 66], [4, 64, 3, 3]),
    ] {
        assert_eq!(run(&one, x, w, spec), run(&two, x, w, spec), "{x:?} {w:?}");
    }
}
