use rims::Context;
use rims::ops::reduce;
use rims::reference::reduce as reference;
use rims::rng::Rng;
use rims::{Error, Tensor};

use crate::common::{assert_close, to_f64};

/// Odd sizes, sizes around the 64-thread workgroup, and rows long enough for the 256-thread one.
const COLS: &[usize] = &[1, 7, 63, 64, 65, 257, 1000, 1024, 2500];
const ROWS: &[usize] = &[1, 3, 17];

device_test!(row_sum_and_row_max_match_reference);
fn row_sum_and_row_max_match_reference(ctx: &Context) {
    let mut rng = Rng::new(11);
    for &rows in ROWS {
        for &cols in COLS {
            let x = rng.vec_f32(rows * cols, -3.0, 3.0);
            let t = Tensor::from_slice(ctx, &[rows, cols], &x).unwrap();
            let xd = to_f64(&x);
            let sum = reduce::row_sum(ctx, &t).unwrap();
            assert_eq!(sum.shape(), &[rows]);
            assert_close(
                &format!("row_sum {rows}x{cols}"),
                &sum.to_vec(ctx).unwrap(),
                &reference::row_sum(&xd, rows, cols),
                1e-5,
                1e-5,
            );
            let max = reduce::row_max(ctx, &t).unwrap();
            assert_eq!(max.shape(), &[rows]);
            // A max is one of the inputs: exact.
            assert_close(
                &format!("row_max {rows}x{cols}"),
                &max.to_vec(ctx).unwrap(),
                &reference::row_max(&xd, rows, cols),
                0.0,
                0.0,
            );
        }
    }
}

device_test!(row_max_of_negative_rows_is_not_zero);
fn row_max_of_negative_rows_is_not_zero(ctx: &Context) {
    // Threads past the end of a short row must not contribute a 0 (or any other identity).
    let x = [-5.0f32, -3.0, -4.0, -1e30, -2e30, -7.0];
    let t = Tensor::from_slice(ctx, &[2, 3], &x).unwrap();
    assert_eq!(
        reduce::row_max(ctx, &t).unwrap().to_vec(ctx).unwrap(),
        vec![-3.0, -7.0]
    );
}

device_test!(leading_dims_are_flattened_into_rows);
fn leading_dims_are_flattened_into_rows(ctx: &Context) {
    let mut rng = Rng::new(12);
    let x = rng.vec_f32(2 * 3 * 5, -1.0, 1.0);
    let xd = to_f64(&x);
    let t = Tensor::from_slice(ctx, &[2, 3, 5], &x).unwrap();
    let sum = reduce::row_sum(ctx, &t).unwrap();
    assert_eq!(sum.shape(), &[2, 3]);
    assert_close(
        "row_sum [2,3,5]",
        &sum.to_vec(ctx).unwrap(),
        &reference::row_sum(&xd, 6, 5),
        1e-6,
        1e-5,
    );
    let max = reduce::row_max(ctx, &t).unwrap();
    assert_eq!(max.shape(), &[2, 3]);
    let sm = reduce::softmax_rows(ctx, &t).unwrap();
    assert_eq!(sm.shape(), &[2, 3, 5]);
    assert_close(
        "softmax [2,3,5]",
        &sm.to_vec(ctx).unwrap(),
        &reference::softmax_rows(&xd, 6, 5),
        1e-6,
        1e-5,
    );

    // A 1-D tensor is one row and reduces to shape [1].
    let v = Tensor::from_slice(ctx, &[7], &x[..7]).unwrap();
    let s = reduce::row_sum(ctx, &v).unwrap();
    assert_eq!(s.shape(), &[1]);
    assert_close(
        "row_sum [7]",
        &s.to_vec(ctx).unwrap(),
        &reference::row_sum(&xd[..7], 1, 7),
        1e-6,
        1e-5,
    );
    assert_eq!(reduce::row_max(ctx, &v).unwrap().shape(), &[1]);
}

device_test!(softmax_rows_match_reference_and_sum_to_one);
fn softmax_rows_match_reference_and_sum_to_one(ctx: &Context) {
    let mut rng = Rng::new(13);
    for &rows in ROWS {
        for &cols in COLS {
            let x = rng.vec_f32(rows * cols, -8.0, 8.0);
            let t = Tensor::from_slice(ctx, &[rows, cols], &x).unwrap();
            let y = reduce::softmax_rows(ctx, &t).unwrap().to_vec(ctx).unwrap();
            let want = reference::softmax_rows(&to_f64(&x), rows, cols);
            assert_close(&format!("softmax {rows}x{cols}"), &y, &want, 1e-6, 1e-5);
            let sums = reference::row_sum(&to_f64(&y), rows, cols);
            assert_close(
                &format!("softmax row sums {rows}x{cols}"),
                &sums.iter().map(|&s| s as f32).collect::<Vec<_>>(),
                &vec![1.0; rows],
                1e-5,
                0.0,
            );
        }
    }
}

device_test!(softmax_of_large_logits_has_no_nan);
fn softmax_of_large_logits_has_no_nan(ctx: &Context) {
    let mut rng = Rng::new(14);
    for &cols in &[2, 65, 1000] {
        let rows = 4;
        // ±80: without the max subtraction exp(80)·cols nears the f32 limit; the last two rows
        // go to ±1000, where exp alone overflows.
        let mut x: Vec<f32> = (0..rows * cols)
            .map(|i| if rng.below(2) == 0 { 80.0 } else { -80.0 } + (i % 3) as f32)
            .collect();
        for v in &mut x[2 * cols..] {
            *v *= 12.5;
        }
        let t = Tensor::from_slice(ctx, &[rows, cols], &x).unwrap();
        let y = reduce::softmax_rows(ctx, &t).unwrap().to_vec(ctx).unwrap();
        assert!(y.iter().all(|v| v.is_finite()), "non-finite softmax");
        assert_close(
            &format!("softmax large {rows}x{cols}"),
            &y,
            &reference::softmax_rows(&to_f64(&x), rows, cols),
            1e-6,
            1e-5,
        );
    }
}

device_test!(sum_all_matches_reference);
fn sum_all_matches_reference(ctx: &Context) {
    let mut rng = Rng::new(15);
    // Past 4096 elements sum_all takes a second pass over partial sums, with a short last chunk.
    for &n in &[1usize, 5, 64, 1000, 4096, 4097, 12_289, 100_003] {
        let x = rng.vec_f32(n, -1.0, 1.0);
        let t = Tensor::from_slice(ctx, &[n], &x).unwrap();
        let s = reduce::sum_all(ctx, &t).unwrap();
        assert_eq!(s.shape(), &[1]);
        assert_close(
            &format!("sum_all n={n}"),
            &s.to_vec(ctx).unwrap(),
            &[reference::sum_all(&to_f64(&x))],
            1e-5,
            1e-5,
        );
    }
    // Any shape, including 0-D.
    let t = Tensor::from_slice(ctx, &[2, 3, 4], &[0.5; 24]).unwrap();
    assert_eq!(
        reduce::sum_all(ctx, &t).unwrap().to_vec(ctx).unwrap(),
        vec![12.0]
    );
    let t = Tensor::from_slice(ctx, &[], &[2.5]).unwrap();
    assert_eq!(
        reduce::sum_all(ctx, &t).unwrap().to_vec(ctx).unwrap(),
        vec![2.5]
    );
}

device_test!(rows_past_one_grid_dimension);
fn rows_past_one_grid_dimension(ctx: &Context) {
    // More rows than workgroups allowed in one dimension: the 2-D grid and its bounds check.
    let rows = ctx.limits().max_compute_workgroups_per_dimension as usize + 3;
    let cols = 2;
    let mut rng = Rng::new(16);
    let x = rng.vec_f32(rows * cols, -2.0, 2.0);
    let xd = to_f64(&x);
    let t = Tensor::from_slice(ctx, &[rows, cols], &x).unwrap();
    assert_close(
        "row_sum many rows",
        &reduce::row_sum(ctx, &t).unwrap().to_vec(ctx).unwrap(),
        &reference::row_sum(&xd, rows, cols),
        1e-6,
        1e-6,
    );
    assert_close(
        "softmax many rows",
        &reduce::softmax_rows(ctx, &t).unwrap().to_vec(ctx).unwrap(),
        &reference::softmax_rows(&xd, rows, cols),
        1e-6,
        1e-5,
    );
}

device_test!(reduce_rejects_bad_inputs);
fn reduce_rejects_bad_inputs(ctx: &Context) {
    let scalar = Tensor::from_slice(ctx, &[], &[1.0]).unwrap();
    let no_rows = Tensor::from_slice(ctx, &[0, 4], &[]).unwrap();
    let no_cols = Tensor::from_slice(ctx, &[4, 0], &[]).unwrap();
    let idx = Tensor::from_u32(ctx, &[2, 2], &[0, 1, 2, 3]).unwrap();
    type Op = fn(&rims::Context, &Tensor) -> rims::Result<Tensor>;
    let ops: [(&str, Op); 3] = [
        ("row_sum", reduce::row_sum),
        ("row_max", reduce::row_max),
        ("softmax_rows", reduce::softmax_rows),
    ];
    for (name, op) in ops {
        assert!(
            matches!(op(ctx, &scalar), Err(Error::Shape { .. })),
            "{name} 0-D"
        );
        assert!(
            matches!(op(ctx, &no_rows), Err(Error::Empty { .. })),
            "{name} [0, 4]"
        );
        assert!(
            matches!(op(ctx, &no_cols), Err(Error::Empty { .. })),
            "{name} [4, 0]"
        );
        assert!(
            matches!(op(ctx, &idx), Err(Error::InvalidArgument { .. })),
            "{name} u32"
        );
    }
    assert!(matches!(
        reduce::sum_all(ctx, &no_cols),
        Err(Error::Empty { .. })
    ));
    assert!(matches!(
        reduce::sum_all(ctx, &idx),
        Err(Error::InvalidArgument { .. })
    ));
}
