//! Gradients: the reference backward of every op against central finite differences (f64), and
//! the GPU tape against the reference backward, op by op and through a 784-step recurrence.

use rims::device::DeviceKind;
use rims::ops::elementwise::{Binary, Unary};
use rims::reference::{self, cross_entropy as ref_ce, elementwise as ref_ew, matmul as ref_mm};
use rims::rng::Rng;
use rims::tape::{Tape, Var};
use rims::{Context, Tensor};

use crate::common::{assert_close, fresh, to_f64};

fn rand64(rng: &mut Rng, n: usize) -> Vec<f64> {
    (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect()
}

fn assert_close64(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "{what}[{i}]: {g} vs {w}"
        );
    }
}

// --- reference backward against finite differences -------------------------------------------

#[test]
fn reference_matmul_backward_matches_finite_differences() {
    let mut rng = Rng::new(20);
    let (m, k, n) = (3, 4, 5);
    let (a, b, r) = (
        rand64(&mut rng, m * k),
        rand64(&mut rng, k * n),
        rand64(&mut rng, m * n),
    );
    // L = Σ C ⊙ R, so dC = R.
    let loss = |a: &[f64], b: &[f64]| {
        ref_mm::matmul(a, b, m, k, n)
            .iter()
            .zip(&r)
            .map(|(c, r)| c * r)
            .sum::<f64>()
    };
    let (da, db) = ref_mm::matmul_backward(&a, &b, &r, m, k, n);
    assert_close64(
        "dA",
        &da,
        &reference::finite_differences(&a, 1e-6, |x| loss(x, &b)),
        1e-7,
    );
    assert_close64(
        "dB",
        &db,
        &reference::finite_differences(&b, 1e-6, |x| loss(&a, x)),
        1e-7,
    );
}

#[test]
fn reference_activation_and_product_backward_match_finite_differences() {
    let mut rng = Rng::new(21);
    let n = 9;
    let (x, r, other) = (
        rand64(&mut rng, n),
        rand64(&mut rng, n),
        rand64(&mut rng, n),
    );
    let weighted = |y: Vec<f64>| y.iter().zip(&r).map(|(y, r)| y * r).sum::<f64>();
    for (op, back) in [
        (Unary::Sigmoid, Binary::SigmoidBackward),
        (Unary::Tanh, Binary::TanhBackward),
    ] {
        let y = ref_ew::unary(op, &x);
        let dx = ref_ew::binary(back, &y, &r);
        let fd = reference::finite_differences(&x, 1e-6, |x| weighted(ref_ew::unary(op, x)));
        assert_close64(&format!("{op:?}"), &dx, &fd, 1e-7);
    }
    let dx = ref_ew::binary(Binary::Mul, &r, &other);
    let fd = reference::finite_differences(&x, 1e-6, |x| {
        weighted(ref_ew::binary(Binary::Mul, x, &other))
    });
    assert_close64("mul", &dx, &fd, 1e-7);
    let dsum = vec![1.0; n];
    let fd = reference::finite_differences(&x, 1e-6, rims::reference::reduce::sum_all);
    assert_close64("sum", &dsum, &fd, 1e-7);
}

#[test]
fn reference_cross_entropy_backward_matches_finite_differences() {
    let mut rng = Rng::new(22);
    let (rows, classes) = (3, 5);
    let logits = rand64(&mut rng, rows * classes);
    let targets = [4u32, 0, 2];
    let (_, dlogits) = ref_ce::mean_cross_entropy(&logits, &targets, rows, classes);
    let fd = reference::finite_differences(&logits, 1e-6, |x| {
        ref_ce::mean_cross_entropy(x, &targets, rows, classes).0
    });
    assert_close64("dlogits", &dlogits, &fd, 1e-7);
}

// --- GPU tape against the reference backward -------------------------------------------------

/// Builds `out = f(inputs)` on a tape, takes L = Σ out ⊙ R for a random R, and returns the
/// forward output, R and the gradient of every input.
fn tape_grads(
    ctx: &Context,
    rng: &mut Rng,
    inputs: &[(&[usize], Vec<f32>)],
    f: impl Fn(&Context, &mut Tape, &[Var]) -> Var,
) -> (Vec<f32>, Vec<f64>, Vec<Vec<f32>>) {
    let mut tape = Tape::new();
    let vars: Vec<Var> = inputs
        .iter()
        .map(|(s, d)| tape.input(Tensor::from_slice(ctx, s, d).unwrap()))
        .collect();
    let out = f(ctx, &mut tape, &vars);
    let out_val = tape.value(out).to_vec(ctx).unwrap();
    let r: Vec<f32> = rng.vec_f32(out_val.len(), -1.0, 1.0);
    let rv = tape.constant(Tensor::from_slice(ctx, tape.value(out).shape(), &r).unwrap());
    let prod = tape.mul(ctx, out, rv).unwrap();
    let loss = tape.sum(ctx, prod).unwrap();
    let grads = tape.backward(ctx, loss).unwrap();
    let g = vars
        .iter()
        .map(|&v| grads.get(v).expect("input gradient").to_vec(ctx).unwrap())
        .collect();
    (out_val, to_f64(&r), g)
}

device_test!(tape_matmul_with_bias_matches_reference);
fn tape_matmul_with_bias_matches_reference(ctx: &Context) {
    let mut rng = Rng::new(30);
    for &(m, k, n) in &[(1, 1, 1), (3, 5, 7), (17, 12, 9)] {
        let a = rng.vec_f32(m * k, -1.0, 1.0);
        let b = rng.vec_f32(k * n, -1.0, 1.0);
        let bias = rng.vec_f32(n, -1.0, 1.0);
        let inputs = [
            (&[m, k][..], a.clone()),
            (&[k, n][..], b.clone()),
            (&[n][..], bias),
        ];
        let (_, r, g) = tape_grads(ctx, &mut rng, &inputs, |ctx, t, v| {
            t.matmul(ctx, v[0], v[1], Some(v[2])).unwrap()
        });
        let (da, db) = ref_mm::matmul_backward(&to_f64(&a), &to_f64(&b), &r, m, k, n);
        let dbias: Vec<f64> = (0..n).map(|j| (0..m).map(|i| r[i * n + j]).sum()).collect();
        assert_close("dA", &g[0], &da, 1e-5, 1e-5);
        assert_close("dB", &g[1], &db, 1e-5, 1e-5);
        assert_close("dbias", &g[2], &dbias, 1e-5, 1e-5);
    }
}

device_test!(tape_elementwise_ops_match_reference);
fn tape_elementwise_ops_match_reference(ctx: &Context) {
    let mut rng = Rng::new(31);
    let (rows, cols) = (5, 7);
    let x = rng.vec_f32(rows * cols, -2.0, 2.0);
    let y = rng.vec_f32(rows * cols, -2.0, 2.0);
    let bias = rng.vec_f32(cols, -1.0, 1.0);
    let shape = [rows, cols];
    let xy = [(&shape[..], x.clone()), (&shape[..], y.clone())];
    let (xf, yf) = (to_f64(&x), to_f64(&y));

    let (_, r, g) = tape_grads(ctx, &mut rng, &xy, |ctx, t, v| {
        t.mul(ctx, v[0], v[1]).unwrap()
    });
    assert_close(
        "mul dx",
        &g[0],
        &ref_ew::binary(Binary::Mul, &r, &yf),
        1e-6,
        1e-6,
    );
    assert_close(
        "mul dy",
        &g[1],
        &ref_ew::binary(Binary::Mul, &r, &xf),
        1e-6,
        1e-6,
    );

    let (_, r, g) = tape_grads(ctx, &mut rng, &xy, |ctx, t, v| {
        t.sub(ctx, v[0], v[1]).unwrap()
    });
    assert_close("sub dx", &g[0], &r, 1e-6, 1e-6);
    assert_close(
        "sub dy",
        &g[1],
        &ref_ew::unary(Unary::Scale(-1.0), &r),
        1e-6,
        1e-6,
    );

    let xb = [(&shape[..], x.clone()), (&[cols][..], bias)];
    let (_, r, g) = tape_grads(ctx, &mut rng, &xb, |ctx, t, v| {
        t.add(ctx, v[0], v[1]).unwrap()
    });
    let dbias: Vec<f64> = (0..cols)
        .map(|j| (0..rows).map(|i| r[i * cols + j]).sum())
        .collect();
    assert_close("bias add dx", &g[0], &r, 1e-6, 1e-6);
    assert_close("bias add dbias", &g[1], &dbias, 1e-5, 1e-5);

    let xs = [(&shape[..], x.clone())];
    let (out, r, g) = tape_grads(ctx, &mut rng, &xs, |ctx, t, v| {
        t.sigmoid(ctx, v[0]).unwrap()
    });
    assert_close(
        "sigmoid",
        &g[0],
        &ref_ew::sigmoid_backward(&to_f64(&out), &r),
        1e-6,
        1e-5,
    );
    let (out, r, g) = tape_grads(ctx, &mut rng, &xs, |ctx, t, v| t.tanh(ctx, v[0]).unwrap());
    assert_close(
        "tanh",
        &g[0],
        &ref_ew::tanh_backward(&to_f64(&out), &r),
        1e-6,
        1e-5,
    );
    let (out, r, g) = tape_grads(ctx, &mut rng, &xs, |ctx, t, v| t.relu(ctx, v[0]).unwrap());
    assert_close(
        "relu",
        &g[0],
        &ref_ew::binary(Binary::ReluBackward, &to_f64(&out), &r),
        1e-6,
        1e-6,
    );
    let (out, r, g) = tape_grads(ctx, &mut rng, &xs, |ctx, t, v| {
        t.elu(ctx, v[0], 0.7).unwrap()
    });
    assert_close(
        "elu",
        &g[0],
        &ref_ew::binary(Binary::EluBackward(0.7), &to_f64(&out), &r),
        1e-6,
        1e-5,
    );
    let (_, r, g) = tape_grads(ctx, &mut rng, &xs, |ctx, t, v| {
        t.scale(ctx, v[0], 0.3).unwrap()
    });
    assert_close(
        "scale",
        &g[0],
        &ref_ew::unary(Unary::Scale(0.3), &r),
        1e-6,
        1e-6,
    );

    // A value used twice: gradients from both uses add up.
    let (_, r, g) = tape_grads(ctx, &mut rng, &xs, |ctx, t, v| {
        t.mul(ctx, v[0], v[0]).unwrap()
    });
    let want: Vec<f64> = r.iter().zip(&xf).map(|(r, x)| 2.0 * r * x).collect();
    assert_close("x*x", &g[0], &want, 1e-6, 1e-5);
}

device_test!(tape_losses_match_reference);
fn tape_losses_match_reference(ctx: &Context) {
    let mut rng = Rng::new(32);
    let (rows, classes) = (6, 5);
    let logits = rng.vec_f32(rows * classes, -3.0, 3.0);
    let targets: Vec<u32> = (0..rows)
        .map(|_| rng.below(classes as u64) as u32)
        .collect();
    let mut tape = Tape::new();
    let lv = tape.input(Tensor::from_slice(ctx, &[rows, classes], &logits).unwrap());
    let tt = Tensor::from_u32(ctx, &[rows], &targets).unwrap();
    let loss = tape.cross_entropy(ctx, lv, &tt).unwrap();
    let got_loss = tape.value(loss).to_vec(ctx).unwrap()[0];
    let grads = tape.backward(ctx, loss).unwrap();
    let (want_loss, want_grad) =
        ref_ce::mean_cross_entropy(&to_f64(&logits), &targets, rows, classes);
    assert!((got_loss as f64 - want_loss).abs() < 1e-5);
    assert_close(
        "dlogits",
        &grads.get(lv).unwrap().to_vec(ctx).unwrap(),
        &want_grad,
        1e-6,
        1e-5,
    );

    let pred = rng.vec_f32(10, -1.0, 1.0);
    let target = rng.vec_f32(10, -1.0, 1.0);
    let mut tape = Tape::new();
    let p = tape.input(Tensor::from_slice(ctx, &[10], &pred).unwrap());
    let t = Tensor::from_slice(ctx, &[10], &target).unwrap();
    let loss = tape.mse(ctx, p, &t).unwrap();
    let got = tape.value(loss).to_vec(ctx).unwrap()[0] as f64;
    let grads = tape.backward(ctx, loss).unwrap();
    let want: f64 = pred
        .iter()
        .zip(&target)
        .map(|(p, t)| ((p - t) as f64).powi(2))
        .sum::<f64>()
        / 10.0;
    assert!((got - want).abs() < 1e-6);
    let want_g: Vec<f64> = pred
        .iter()
        .zip(&target)
        .map(|(p, t)| 2.0 * (p - t) as f64 / 10.0)
        .collect();
    assert_close(
        "mse grad",
        &grads.get(p).unwrap().to_vec(ctx).unwrap(),
        &want_g,
        1e-6,
        1e-5,
    );
}

device_test!(untracked_ops_record_no_nodes);
fn untracked_ops_record_no_nodes(ctx: &Context) {
    let mut tape = Tape::new();
    let a = tape.constant(Tensor::full(ctx, &[2, 3], 0.5).unwrap());
    let b = tape.constant(Tensor::full(ctx, &[3, 2], 0.5).unwrap());
    let c = tape.matmul(ctx, a, b, None).unwrap();
    let d = tape.tanh(ctx, c).unwrap();
    assert!(tape.is_empty(), "no tracked input: nothing saved");
    assert_eq!(tape.value(d).shape(), &[2, 2]);
    assert!(
        tape.backward(ctx, d).is_err(),
        "a 4-element value is not a loss"
    );
    let mut inference = Tape::untracked();
    let x = inference.input(Tensor::full(ctx, &[3], 1.0).unwrap());
    let y = inference.sigmoid(ctx, x).unwrap();
    let s = inference.sum(ctx, y).unwrap();
    assert!(inference.is_empty());
    assert!(inference.backward(ctx, s).is_err(), "nothing tracked");
}

// --- a long recurrence ------------------------------------------------------------------------

/// Reference BPTT of h_t = tanh(x_t·W + h_{t-1}·U + b), L = Σ h_T ⊙ R. Returns (dW, dU, db).
fn reference_rnn(
    xs: &[f64],
    w: &[f64],
    u: &[f64],
    b: &[f64],
    r: &[f64],
    (t_len, bsz, d, h): (usize, usize, usize, usize),
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut hs = vec![vec![0.0; bsz * h]];
    for t in 0..t_len {
        let xw = ref_mm::matmul(&xs[t * bsz * d..(t + 1) * bsz * d], w, bsz, d, h);
        let hu = ref_mm::matmul(&hs[t], u, bsz, h, h);
        let next: Vec<f64> = (0..bsz * h)
            .map(|i| (xw[i] + hu[i] + b[i % h]).tanh())
            .collect();
        hs.push(next);
    }
    let (mut dw, mut du, mut db) = (vec![0.0; d * h], vec![0.0; h * h], vec![0.0; h]);
    let mut dh = r.to_vec();
    for t in (0..t_len).rev() {
        let dz = ref_ew::tanh_backward(&hs[t + 1], &dh);
        let (_, dwt) =
            ref_mm::matmul_backward(&xs[t * bsz * d..(t + 1) * bsz * d], w, &dz, bsz, d, h);
        let (dh_prev, dut) = ref_mm::matmul_backward(&hs[t], u, &dz, bsz, h, h);
        for (a, v) in dw.iter_mut().zip(dwt) {
            *a += v;
        }
        for (a, v) in du.iter_mut().zip(dut) {
            *a += v;
        }
        for (i, v) in dz.iter().enumerate() {
            db[i % h] += v;
        }
        dh = dh_prev;
    }
    (dw, du, db)
}

device_test!(backprop_through_784_steps_in_one_submit, fresh);
fn backprop_through_784_steps_in_one_submit(kind: DeviceKind) {
    let Some(ctx) = fresh(kind) else {
        return;
    };
    let ctx = &ctx;
    let (t_len, bsz, d, h) = (784, 2, 3, 4);
    let mut rng = Rng::new(33);
    let xs = rng.vec_f32(t_len * bsz * d, -1.0, 1.0);
    let w = rng.vec_f32(d * h, -0.5, 0.5);
    let u = rng.vec_f32(h * h, -0.5, 0.5);
    let b = rng.vec_f32(h, -0.1, 0.1);
    let r = rng.vec_f32(bsz * h, -1.0, 1.0);
    let (w_t, u_t, b_t) = (
        Tensor::from_slice(ctx, &[d, h], &w).unwrap(),
        Tensor::from_slice(ctx, &[h, h], &u).unwrap(),
        Tensor::from_slice(ctx, &[h], &b).unwrap(),
    );
    let r_t = Tensor::from_slice(ctx, &[bsz, h], &r).unwrap();
    ctx.submit().unwrap();
    let before = ctx.recorder_stats();

    let mut tape = Tape::new();
    let (wv, uv, bv) = (tape.input(w_t), tape.input(u_t), tape.input(b_t));
    let mut hv = tape.constant(Tensor::zeros(ctx, &[bsz, h]).unwrap());
    for t in 0..t_len {
        let xt = tape.constant(
            Tensor::from_slice(ctx, &[bsz, d], &xs[t * bsz * d..(t + 1) * bsz * d]).unwrap(),
        );
        let xw = tape.matmul(ctx, xt, wv, Some(bv)).unwrap();
        let hu = tape.matmul(ctx, hv, uv, None).unwrap();
        let pre = tape.add(ctx, xw, hu).unwrap();
        hv = tape.tanh(ctx, pre).unwrap();
    }
    let rv = tape.constant(r_t);
    let weighted = tape.mul(ctx, hv, rv).unwrap();
    let loss = tape.sum(ctx, weighted).unwrap();
    let grads = tape.backward(ctx, loss).unwrap();
    let recorded = ctx.recorder_stats();
    assert_eq!(
        recorded.submits, before.submits,
        "forward and backward only record"
    );
    let dw = grads.get(wv).unwrap().to_vec(ctx).unwrap();
    let after = ctx.recorder_stats();
    assert_eq!(
        after.submits,
        before.submits + 1,
        "784 steps forward and back: one submit"
    );
    eprintln!(
        "T = 784: {} dispatches ({:.1} per step) in {} pass(es), one submit",
        after.dispatches - before.dispatches,
        (after.dispatches - before.dispatches) as f64 / t_len as f64,
        after.passes - before.passes
    );
    let du = grads.get(uv).unwrap().to_vec(ctx).unwrap();
    let db = grads.get(bv).unwrap().to_vec(ctx).unwrap();

    let (rdw, rdu, rdb) = reference_rnn(
        &to_f64(&xs),
        &to_f64(&w),
        &to_f64(&u),
        &to_f64(&b),
        &to_f64(&r),
        (t_len, bsz, d, h),
    );
    assert_close("dW", &dw, &rdw, 1e-4, 1e-3);
    assert_close("dU", &du, &rdu, 1e-4, 1e-3);
    assert_close("db", &db, &rdb, 1e-4, 1e-3);
}
