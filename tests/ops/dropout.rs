use rims::Context;
use rims::ops::dropout::{self, Mask};
use rims::reference::dropout as ref_dropout;
use rims::rng::Rng;
use rims::tape::Tape;
use rims::{Error, Tensor};

use crate::common::assert_close;

device_test!(dropout_matches_the_reference_mask_and_the_tape_backward);
fn dropout_matches_the_reference_mask_and_the_tape_backward(ctx: &Context) {
    let mut rng = Rng::new(41);
    let n = 1000;
    let x = rng.vec_f32(n, -1.0, 1.0);
    let m = Mask {
        seed: 9,
        step: 4,
        tensor: 2,
        p: 0.3,
    };
    let tx = Tensor::from_slice(ctx, &[n], &x).unwrap();
    let got = dropout::apply(ctx, &tx, m).unwrap().to_vec(ctx).unwrap();
    let want: Vec<f64> = (0..n)
        .map(|i| x[i] as f64 * ref_dropout::factor(9, 4, 2, i as u32, 0.3))
        .collect();
    assert_close("dropout", &got, &want, 1e-6, 1e-6);
    let dropped = got.iter().filter(|v| **v == 0.0).count();
    assert!(
        (200..400).contains(&dropped),
        "{dropped} of 1000 dropped at p = 0.3"
    );
    // Backward through the tape: the same mask applied to the gradient.
    let mut tape = Tape::new();
    let xv = tape.input(tx);
    let y = tape.dropout(ctx, xv, m).unwrap();
    let s = tape.sum(ctx, y).unwrap();
    let grads = tape.backward(ctx, s).unwrap();
    let want_g: Vec<f64> = (0..n)
        .map(|i| ref_dropout::factor(9, 4, 2, i as u32, 0.3))
        .collect();
    assert_close(
        "dropout grad",
        &grads.get(xv).unwrap().to_vec(ctx).unwrap(),
        &want_g,
        1e-6,
        1e-6,
    );
    assert!(matches!(
        dropout::apply(
            ctx,
            &Tensor::zeros(ctx, &[2]).unwrap(),
            Mask { p: 1.0, ..m }
        ),
        Err(Error::InvalidArgument { .. })
    ));
}

/// The product's threshold (`kernels::common::dropout_threshold`) and the reference's own copy
/// agree on every probability the engine accepts, near the rounding edges too.
#[test]
fn the_product_and_the_reference_agree_on_the_dropout_threshold() {
    let mut ps: Vec<f32> = vec![0.0, 0.1, 0.25, 0.3, 0.5, 0.9, 0.999_999, f32::MIN_POSITIVE];
    ps.extend((0..1000).map(|i| i as f32 / 1000.0));
    ps.extend((0..1000).map(|i| (i as f32 + 0.5) / 16_777_216.0));
    for p in ps {
        assert_eq!(
            rims::kernels::common::dropout_threshold(p),
            ref_dropout::threshold(p),
            "p = {p}"
        );
    }
}
