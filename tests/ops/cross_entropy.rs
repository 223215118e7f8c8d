use rims::Context;
use rims::ops::cross_entropy;
use rims::reference::cross_entropy as reference;
use rims::rng::Rng;
use rims::{Error, Tensor};

use crate::common::{assert_close, to_f64};

/// Odd sizes, sizes around the 64-thread workgroup, and rows long enough for the 256-thread one.
const CLASSES: &[usize] = &[1, 2, 7, 63, 65, 257, 1000, 2500];
const ROWS: &[usize] = &[1, 4, 13];

fn random_targets(rng: &mut Rng, rows: usize, classes: usize) -> Vec<u32> {
    (0..rows)
        .map(|_| rng.below(classes as u64) as u32)
        .collect()
}

device_test!(softmax_cross_entropy_matches_reference);
fn softmax_cross_entropy_matches_reference(ctx: &Context) {
    let mut rng = Rng::new(21);
    let scale = 0.37f32;
    for &rows in ROWS {
        for &classes in CLASSES {
            let x = rng.vec_f32(rows * classes, -6.0, 6.0);
            let targets = random_targets(&mut rng, rows, classes);
            let tx = Tensor::from_slice(ctx, &[rows, classes], &x).unwrap();
            let tt = Tensor::from_u32(ctx, &[rows], &targets).unwrap();
            let (loss, dlogits) =
                cross_entropy::softmax_cross_entropy(ctx, &tx, &tt, scale).unwrap();
            assert_eq!(loss.shape(), &[rows]);
            assert_eq!(dlogits.shape(), &[rows, classes]);
            let (want_loss, want_d) = reference::softmax_cross_entropy(
                &to_f64(&x),
                &targets,
                rows,
                classes,
                scale as f64,
            );
            assert_close(
                &format!("loss {rows}x{classes}"),
                &loss.to_vec(ctx).unwrap(),
                &want_loss,
                1e-5,
                1e-5,
            );
            assert_close(
                &format!("dlogits {rows}x{classes}"),
                &dlogits.to_vec(ctx).unwrap(),
                &want_d,
                1e-6,
                1e-5,
            );
        }
    }
}

device_test!(gradient_rows_sum_to_zero);
fn gradient_rows_sum_to_zero(ctx: &Context) {
    // softmax sums to 1 and the one-hot to 1, so each gradient row sums to 0.
    let mut rng = Rng::new(22);
    let (rows, classes) = (5, 257);
    let x = rng.vec_f32(rows * classes, -4.0, 4.0);
    let targets = random_targets(&mut rng, rows, classes);
    let tx = Tensor::from_slice(ctx, &[rows, classes], &x).unwrap();
    let tt = Tensor::from_u32(ctx, &[rows], &targets).unwrap();
    let (_, d) = cross_entropy::softmax_cross_entropy(ctx, &tx, &tt, 1.0).unwrap();
    let d = d.to_vec(ctx).unwrap();
    for r in 0..rows {
        let s: f64 = d[r * classes..(r + 1) * classes]
            .iter()
            .map(|&v| v as f64)
            .sum();
        assert!(s.abs() < 1e-5, "row {r}: gradient sums to {s}");
    }
}

device_test!(out_of_range_targets_give_zero_loss_and_gradient);
fn out_of_range_targets_give_zero_loss_and_gradient(ctx: &Context) {
    let mut rng = Rng::new(23);
    let (rows, classes) = (5, 9);
    let x = rng.vec_f32(rows * classes, -3.0, 3.0);
    // Rows 1, 2 and 4 have targets past the last class (u32::MAX as an "ignore" marker).
    let targets = [3u32, 9, u32::MAX, 0, 1000];
    let tx = Tensor::from_slice(ctx, &[rows, classes], &x).unwrap();
    let tt = Tensor::from_u32(ctx, &[rows], &targets).unwrap();
    let (loss, d) = cross_entropy::softmax_cross_entropy(ctx, &tx, &tt, 2.0).unwrap();
    let loss = loss.to_vec(ctx).unwrap();
    let d = d.to_vec(ctx).unwrap();
    for r in [1, 2, 4] {
        assert_eq!(loss[r], 0.0, "loss of ignored row {r}");
        assert!(
            d[r * classes..(r + 1) * classes].iter().all(|&v| v == 0.0),
            "gradient of ignored row {r}"
        );
    }
    let (want_loss, want_d) =
        reference::softmax_cross_entropy(&to_f64(&x), &targets, rows, classes, 2.0);
    assert_close("loss with ignored rows", &loss, &want_loss, 1e-5, 1e-5);
    assert_close("dlogits with ignored rows", &d, &want_d, 1e-6, 1e-5);
}

device_test!(large_logits_have_no_nan);
fn large_logits_have_no_nan(ctx: &Context) {
    let mut rng = Rng::new(24);
    for &classes in &[2, 65, 1000] {
        let rows = 4;
        // ±80: without the max subtraction exp(80)·classes nears the f32 limit; the last two
        // rows go to ±1000, where exp alone overflows.
        let mut x: Vec<f32> = (0..rows * classes)
            .map(|_| if rng.below(2) == 0 { 80.0 } else { -80.0 })
            .collect();
        for v in &mut x[2 * classes..] {
            *v *= 12.5;
        }
        let targets = random_targets(&mut rng, rows, classes);
        let tx = Tensor::from_slice(ctx, &[rows, classes], &x).unwrap();
        let tt = Tensor::from_u32(ctx, &[rows], &targets).unwrap();
        let (loss, d) = cross_entropy::softmax_cross_entropy(ctx, &tx, &tt, 1.0).unwrap();
        let (loss, d) = (loss.to_vec(ctx).unwrap(), d.to_vec(ctx).unwrap());
        assert!(loss.iter().chain(&d).all(|v| v.is_finite()), "non-finite");
        let (want_loss, want_d) =
            reference::softmax_cross_entropy(&to_f64(&x), &targets, rows, classes, 1.0);
        assert_close(
            &format!("large loss c={classes}"),
            &loss,
            &want_loss,
            1e-5,
            1e-5,
        );
        assert_close(
            &format!("large dlogits c={classes}"),
            &d,
            &want_d,
            1e-6,
            1e-5,
        );
    }
}

device_test!(mean_cross_entropy_matches_reference);
fn mean_cross_entropy_matches_reference(ctx: &Context) {
    let mut rng = Rng::new(25);
    for &(rows, classes) in &[(1, 1), (1, 10), (7, 10), (33, 65), (6, 1000)] {
        let x = rng.vec_f32(rows * classes, -5.0, 5.0);
        let targets = random_targets(&mut rng, rows, classes);
        let tx = Tensor::from_slice(ctx, &[rows, classes], &x).unwrap();
        let tt = Tensor::from_u32(ctx, &[rows], &targets).unwrap();
        let (mean, d) = cross_entropy::mean_cross_entropy(ctx, &tx, &tt).unwrap();
        assert_eq!(mean.shape(), &[1]);
        assert_eq!(d.shape(), &[rows, classes]);
        let (want_mean, want_d) =
            reference::mean_cross_entropy(&to_f64(&x), &targets, rows, classes);
        assert_close(
            &format!("mean loss {rows}x{classes}"),
            &mean.to_vec(ctx).unwrap(),
            &[want_mean],
            1e-5,
            1e-5,
        );
        assert_close(
            &format!("mean dlogits {rows}x{classes}"),
            &d.to_vec(ctx).unwrap(),
            &want_d,
            1e-7,
            1e-5,
        );
    }
}

#[test]
fn reference_gradient_matches_finite_differences() {
    // The oracle's gradient is itself checked: d(grad_scale · Σ loss)/dx by central differences.
    let mut rng = Rng::new(26);
    let (rows, classes) = (3, 6);
    let x: Vec<f64> = (0..rows * classes)
        .map(|_| rng.uniform(-3.0, 3.0))
        .collect();
    // The last row is ignored (target out of range): its gradient must be zero too.
    let targets = [2u32, 5, 6];
    let scale = 0.7;
    let (_, grad) = reference::softmax_cross_entropy(&x, &targets, rows, classes, scale);
    let objective = |x: &[f64]| -> f64 {
        let (loss, _) = reference::softmax_cross_entropy(x, &targets, rows, classes, scale);
        scale * loss.iter().sum::<f64>()
    };
    let h = 1e-5;
    for i in 0..x.len() {
        let mut xp = x.clone();
        let mut xm = x.clone();
        xp[i] += h;
        xm[i] -= h;
        let fd = (objective(&xp) - objective(&xm)) / (2.0 * h);
        assert!(
            (fd - grad[i]).abs() < 1e-8,
            "dlogits[{i}]: analytic {} vs finite difference {fd}",
            grad[i]
        );
    }
}

device_test!(rows_past_one_grid_dimension);
fn rows_past_one_grid_dimension(ctx: &Context) {
    // More rows than workgroups allowed in one dimension: the 2-D grid and its bounds check.
    let rows = ctx.limits().max_compute_workgroups_per_dimension as usize + 3;
    let classes = 3;
    let mut rng = Rng::new(27);
    let x = rng.vec_f32(rows * classes, -2.0, 2.0);
    let targets = random_targets(&mut rng, rows, classes);
    let tx = Tensor::from_slice(ctx, &[rows, classes], &x).unwrap();
    let tt = Tensor::from_u32(ctx, &[rows], &targets).unwrap();
    let (loss, d) = cross_entropy::softmax_cross_entropy(ctx, &tx, &tt, 1.0).unwrap();
    let (want_loss, want_d) =
        reference::softmax_cross_entropy(&to_f64(&x), &targets, rows, classes, 1.0);
    assert_close(
        "loss many rows",
        &loss.to_vec(ctx).unwrap(),
        &want_loss,
        1e-5,
        1e-5,
    );
    assert_close(
        "dlogits many rows",
        &d.to_vec(ctx).unwrap(),
        &want_d,
        1e-6,
        1e-5,
    );
}

device_test!(cross_entropy_rejects_bad_inputs);
fn cross_entropy_rejects_bad_inputs(ctx: &Context) {
    let logits = Tensor::from_slice(ctx, &[2, 3], &[0.0; 6]).unwrap();
    let targets = Tensor::from_u32(ctx, &[2], &[0, 1]).unwrap();
    let ce = cross_entropy::softmax_cross_entropy;
    let shape_err = |r: rims::Result<(Tensor, Tensor)>| matches!(r, Err(Error::Shape { .. }));
    let invalid =
        |r: rims::Result<(Tensor, Tensor)>| matches!(r, Err(Error::InvalidArgument { .. }));
    let empty = |r: rims::Result<(Tensor, Tensor)>| matches!(r, Err(Error::Empty { .. }));

    // Logits not 2-D.
    let flat = Tensor::from_slice(ctx, &[6], &[0.0; 6]).unwrap();
    assert!(shape_err(ce(ctx, &flat, &targets, 1.0)));
    let cube = Tensor::from_slice(ctx, &[1, 2, 3], &[0.0; 6]).unwrap();
    assert!(shape_err(ce(ctx, &cube, &targets, 1.0)));
    // Targets not [rows].
    let three = Tensor::from_u32(ctx, &[3], &[0, 1, 2]).unwrap();
    assert!(shape_err(ce(ctx, &logits, &three, 1.0)));
    let column = Tensor::from_u32(ctx, &[2, 1], &[0, 1]).unwrap();
    assert!(shape_err(ce(ctx, &logits, &column, 1.0)));
    // Wrong element types.
    let f32_targets = Tensor::from_slice(ctx, &[2], &[0.0, 1.0]).unwrap();
    assert!(invalid(ce(ctx, &logits, &f32_targets, 1.0)));
    let u32_logits = Tensor::from_u32(ctx, &[2, 3], &[0; 6]).unwrap();
    assert!(invalid(ce(ctx, &u32_logits, &targets, 1.0)));
    // A scale that would poison every gradient.
    assert!(invalid(ce(ctx, &logits, &targets, f32::NAN)));
    assert!(invalid(ce(ctx, &logits, &targets, f32::INFINITY)));
    // Empty.
    let no_rows = Tensor::from_slice(ctx, &[0, 3], &[]).unwrap();
    let no_targets = Tensor::from_u32(ctx, &[0], &[]).unwrap();
    assert!(empty(ce(ctx, &no_rows, &no_targets, 1.0)));
    let no_classes = Tensor::from_slice(ctx, &[2, 0], &[]).unwrap();
    assert!(empty(ce(ctx, &no_classes, &targets, 1.0)));

    // The mean shares the checks.
    let mean = cross_entropy::mean_cross_entropy;
    assert!(shape_err(mean(ctx, &flat, &targets)));
    assert!(shape_err(mean(ctx, &logits, &three)));
    assert!(invalid(mean(ctx, &logits, &f32_targets)));
    assert!(empty(mean(ctx, &no_rows, &no_targets)));
}
