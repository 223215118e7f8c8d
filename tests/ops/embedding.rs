use rims::Context;
use rims::ops::embedding;
use rims::reference::embedding as reference;
use rims::rng::Rng;
use rims::{Error, Tensor};

use crate::common::{assert_close, to_f64};

device_test!(embedding_forward_and_backward_match_reference);
fn embedding_forward_and_backward_match_reference(ctx: &Context) {
    let mut rng = Rng::new(40);
    for &(vocab, dim, rows) in &[(1, 1, 1), (10, 7, 13), (20, 33, 300)] {
        let table = rng.vec_f32(vocab * dim, -1.0, 1.0);
        // Include an out-of-range token: it gives a zero row and no gradient.
        let tokens: Vec<u32> = (0..rows)
            .map(|r| {
                if r == 0 {
                    vocab as u32 + 3
                } else {
                    rng.below(vocab as u64) as u32
                }
            })
            .collect();
        let grad = rng.vec_f32(rows * dim, -1.0, 1.0);
        let tt = Tensor::from_u32(ctx, &[rows], &tokens).unwrap();
        let tab = Tensor::from_slice(ctx, &[vocab, dim], &table).unwrap();
        let out = embedding::forward(ctx, &tt, &tab).unwrap();
        assert_eq!(out.shape(), &[rows, dim]);
        assert_close(
            "embedding",
            &out.to_vec(ctx).unwrap(),
            &reference::forward(&tokens, &to_f64(&table), vocab, dim),
            0.0,
            0.0,
        );
        let d = Tensor::zeros(ctx, &[vocab, dim]).unwrap();
        let g = Tensor::from_slice(ctx, &[rows, dim], &grad).unwrap();
        embedding::backward(ctx, &tt, &g, &d).unwrap();
        assert_close(
            "dtable",
            &d.to_vec(ctx).unwrap(),
            &reference::backward(&tokens, &to_f64(&grad), vocab, dim),
            1e-5,
            1e-5,
        );
    }
    let bad = Tensor::zeros(ctx, &[3]).unwrap();
    let tab = Tensor::zeros(ctx, &[2, 2]).unwrap();
    assert!(matches!(
        embedding::forward(ctx, &bad, &tab),
        Err(Error::InvalidArgument { .. })
    ));
}
