//! PPO's loss (`ops::ppo_loss`, `Tape::ppo_loss`) on both devices against the f64 reference,
//! the reference against finite differences, its kinks, and its error paths.

use rims::ops::ppo_loss::{self, PpoBatch, PpoCoefs, STATS, stat};
use rims::reference::{self, ppo_loss as reference_ppo};
use rims::rng::Rng;
use rims::tape::Tape;
use rims::{Context, Error, Tensor};

use crate::common::{assert_close, to_f64};

/// Odd row counts, one past a 256-row block; action counts from the degenerate 1 up.
const ROWS: &[usize] = &[1, 7, 33, 257];
const ACTIONS: &[usize] = &[1, 3, 7, 13];

/// A large entropy weight, so the entropy's part of the gradient is tested, not drowned.
const COEFS: PpoCoefs = PpoCoefs {
    clip_eps: 0.2,
    value_coef: 0.7,
    entropy_coef: 0.3,
};

/// One rollout's rows, in f32 as the devices get them and in f64 for the reference.
struct Problem {
    rows: usize,
    actions: usize,
    logits: Vec<f32>,
    values: Vec<f32>,
    taken: Vec<u32>,
    /// old_logp, advantages, returns, old_values.
    fields: [Vec<f32>; 4],
    fields64: [Vec<f64>; 4],
}

/// A draw of `f` that `ok` accepts.
fn draw(rng: &mut Rng, f: impl Fn(&mut Rng) -> f64, ok: impl Fn(f64) -> bool) -> f64 {
    loop {
        let v = f(rng);
        if ok(v) {
            return v;
        }
    }
}

impl Problem {
    /// Random rows at least 0.01 away from every kink: no ratio near 1 ± ε, no advantage
    /// near 0, no value step near ±ε, and outside the value clip no near-tie of the two
    /// value losses. Ratios in [0.4, 1.8] clip about half the rows either way.
    fn random(rng: &mut Rng, rows: usize, actions: usize, eps: f32) -> Problem {
        let e = eps as f64;
        let logits = rng.vec_f32(rows * actions, -3.0, 3.0);
        let mut taken = Vec::new();
        let mut fields: [Vec<f32>; 4] = Default::default();
        let mut values = Vec::new();
        for r in 0..rows {
            let a = rng.below(actions as u64) as usize;
            let row = to_f64(&logits[r * actions..(r + 1) * actions]);
            let lse = row.iter().map(|x| x.exp()).sum::<f64>().ln();
            let ratio = draw(
                rng,
                |g| g.uniform(0.4, 1.8),
                |r| (r - (1.0 - e)).abs() > 0.01 && (r - (1.0 + e)).abs() > 0.01,
            );
            let adv = draw(rng, |g| g.uniform(-2.0, 2.0), |a| a.abs() > 0.05);
            let value = rng.uniform(-2.0, 2.0) as f32;
            let old_value = draw(
                rng,
                |g| (value as f64 - g.uniform(-3.0 * e, 3.0 * e)) as f32 as f64,
                |o| ((value as f64 - o).abs() - e).abs() > 0.01,
            );
            let delta = value as f64 - old_value;
            let v_clipped = old_value + delta.clamp(-e, e);
            let ret = draw(
                rng,
                |g| g.uniform(-2.0, 2.0) as f32 as f64,
                |t| {
                    delta.abs() < e
                        || ((value as f64 - t).powi(2) - (v_clipped - t).powi(2)).abs() > 0.01
                },
            );
            taken.push(a as u32);
            values.push(value);
            fields[0].push((row[a] - lse - ratio.ln()) as f32);
            fields[1].push(adv as f32);
            fields[2].push(ret as f32);
            fields[3].push(old_value as f32);
        }
        let fields64 = fields.clone().map(|f| to_f64(&f));
        Problem {
            rows,
            actions,
            logits,
            values,
            taken,
            fields,
            fields64,
        }
    }

    fn batch(&self, ctx: &Context) -> PpoBatch {
        let [o, a, r, v] = &self.fields;
        PpoBatch::from_slices(ctx, &self.taken, o, a, r, v).unwrap()
    }

    fn reference_batch(&self) -> reference_ppo::Batch<'_> {
        let [o, a, r, v] = &self.fields64;
        reference_ppo::Batch {
            actions: &self.taken,
            old_logp: o,
            advantages: a,
            returns: r,
            old_values: v,
        }
    }

    fn tensors(&self, ctx: &Context) -> (Tensor, Tensor, PpoBatch) {
        (
            Tensor::from_slice(ctx, &[self.rows, self.actions], &self.logits).unwrap(),
            Tensor::from_slice(ctx, &[self.rows], &self.values).unwrap(),
            self.batch(ctx),
        )
    }

    /// The reference's per-row results with `grad_scale`.
    fn reference(&self, coefs: &PpoCoefs, scale: f64) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let (x, v) = (to_f64(&self.logits), to_f64(&self.values));
        reference_ppo::ppo_loss(&x, &v, &self.reference_batch(), self.actions, coefs, scale)
    }
}

device_test!(ppo_loss_matches_reference);
fn ppo_loss_matches_reference(ctx: &Context) {
    let mut rng = Rng::new(61);
    let scale = 0.37f32;
    // Past the 64-thread workgroup, and long enough for the 256-thread one.
    let wide = [(5, 100), (3, 1100)];
    let shapes = ROWS
        .iter()
        .flat_map(|&r| ACTIONS.iter().map(move |&a| (r, a)))
        .chain(wide);
    for (rows, actions) in shapes {
        let pb = Problem::random(&mut rng, rows, actions, COEFS.clip_eps);
        let (x, v, batch) = pb.tensors(ctx);
        let out = ppo_loss::ppo_loss(ctx, &x, &v, &batch, COEFS, scale).unwrap();
        assert_eq!(out.stats.shape(), &[STATS, rows]);
        assert_eq!(out.dlogits.shape(), &[rows, actions]);
        assert_eq!(out.dvalues.shape(), &[rows]);
        let (stats, dlogits, dvalues) = pb.reference(&COEFS, scale as f64);
        let what = format!("{rows}x{actions}");
        let got = out.stats.to_vec(ctx).unwrap();
        assert_close(&format!("stats {what}"), &got, &stats, 1e-5, 1e-5);
        let got = out.dlogits.to_vec(ctx).unwrap();
        assert_close(&format!("dlogits {what}"), &got, &dlogits, 1e-6, 1e-5);
        let got = out.dvalues.to_vec(ctx).unwrap();
        assert_close(&format!("dvalues {what}"), &got, &dvalues, 1e-6, 1e-5);
    }
}

device_test!(mean_ppo_loss_matches_reference);
fn mean_ppo_loss_matches_reference(ctx: &Context) {
    let mut rng = Rng::new(62);
    let coefs = [PpoCoefs::default(), COEFS];
    for (k, &(rows, actions)) in [(1, 1), (7, 3), (33, 7), (257, 13)].iter().enumerate() {
        let coefs = coefs[k % 2];
        let pb = Problem::random(&mut rng, rows, actions, coefs.clip_eps);
        let (x, _, batch) = pb.tensors(ctx);
        // The critic's [rows, 1] output, taken as it comes; its gradient has its shape.
        let v = Tensor::from_slice(ctx, &[rows, 1], &pb.values).unwrap();
        let out = ppo_loss::mean_ppo_loss(ctx, &x, &v, &batch, coefs).unwrap();
        assert_eq!(out.loss.shape(), &[1]);
        assert_eq!(out.stats.shape(), &[STATS]);
        assert_eq!(out.dvalues.shape(), &[rows, 1]);
        let (x64, v64) = (to_f64(&pb.logits), to_f64(&pb.values));
        let (means, dlogits, dvalues) =
            reference_ppo::mean_ppo_loss(&x64, &v64, &pb.reference_batch(), actions, &coefs);
        let what = format!("{rows}x{actions}");
        let stats = out.stats.to_vec(ctx).unwrap();
        assert_close(&format!("means {what}"), &stats, &means, 1e-5, 1e-5);
        let loss = out.loss.to_vec(ctx).unwrap();
        assert_eq!(loss[0], stats[stat::LOSS], "the loss is the first mean");
        let got = out.dlogits.to_vec(ctx).unwrap();
        assert_close(&format!("mean dlogits {what}"), &got, &dlogits, 1e-7, 1e-5);
        let got = out.dvalues.to_vec(ctx).unwrap();
        assert_close(&format!("mean dvalues {what}"), &got, &dvalues, 1e-7, 1e-5);
    }
}

device_test!(out_of_range_actions_give_zero_rows);
fn out_of_range_actions_give_zero_rows(ctx: &Context) {
    let mut rng = Rng::new(63);
    let (rows, actions) = (6, 5);
    let mut pb = Problem::random(&mut rng, rows, actions, COEFS.clip_eps);
    // Rows 1, 2 and 4 are ignored; row 4's other inputs are NaN, which must not leak.
    for (r, a) in [(1, 5), (2, u32::MAX), (4, 1000)] {
        pb.taken[r] = a;
    }
    pb.values[4] = f32::NAN;
    for f in &mut pb.fields {
        f[4] = f32::NAN;
    }
    pb.fields64 = pb.fields.clone().map(|f| to_f64(&f));
    let (x, v, batch) = pb.tensors(ctx);
    let out = ppo_loss::ppo_loss(ctx, &x, &v, &batch, COEFS, 2.0).unwrap();
    let (stats, d, dv) = (
        out.stats.to_vec(ctx).unwrap(),
        out.dlogits.to_vec(ctx).unwrap(),
        out.dvalues.to_vec(ctx).unwrap(),
    );
    for r in [1, 2, 4] {
        assert!(
            (0..STATS).all(|k| stats[k * rows + r] == 0.0),
            "stats of row {r}"
        );
        assert!(d[r * actions..(r + 1) * actions].iter().all(|&g| g == 0.0));
        assert_eq!(dv[r], 0.0, "dvalue of row {r}");
    }
    let (want_stats, want_d, want_dv) = pb.reference(&COEFS, 2.0);
    assert_close("stats with ignored rows", &stats, &want_stats, 1e-5, 1e-5);
    assert_close("dlogits with ignored rows", &d, &want_d, 1e-6, 1e-5);
    assert_close("dvalues with ignored rows", &dv, &want_dv, 1e-6, 1e-5);
}

/// Rows chosen at the kinks, with exactly representable inputs (one action, so logp = 0 and
/// the ratio is exp(−old_logp)); columns: old_logp, advantage, value, old value, return.
const KINKS: [[f32; 5]; 5] = [
    // ratio e ≈ 2.72 > 1.25 with adv > 0: the clipped surrogate, no policy gradient.
    [-1.0, 1.5, 0.0, 0.0, 0.0],
    // ratio e with adv < 0: the unclipped surrogate (−min takes the larger loss).
    [-1.0, -1.5, 0.0, 0.0, 0.0],
    // Value step 1 past ε = 0.25 with the return midway between v = 1 and v_clipped = 0.25:
    // the two value losses tie at 0.375²; the tie takes the unclipped one, slope 2(v − ret).
    [0.0, 0.0, 1.0, 0.0, 0.625],
    // Value step exactly ε: v_clipped = v, a tie; the closed interval's slope is 1 either way.
    [0.0, 0.0, 1.25, 1.0, 0.5],
    // Value step past ε with the clipped loss larger: its clamp has slope 0, no gradient.
    [0.0, 0.0, 1.0, 0.0, 2.0],
];
const KINK_COEFS: PpoCoefs = PpoCoefs {
    clip_eps: 0.25,
    value_coef: 0.5,
    entropy_coef: 0.0,
};
/// Per row of [`KINKS`]: (clipped flag, value loss, d(row loss)/d value).
const KINK_WANT: [(f64, f64, f64); 5] = [
    (1.0, 0.0, 0.0),
    (0.0, 0.0, 0.0),
    (0.0, 0.140625, 0.5 * 2.0 * 0.375),
    (0.0, 0.5625, 0.5 * 2.0 * 0.75),
    (0.0, 3.0625, 0.0),
];

#[test]
fn reference_takes_the_documented_side_at_kinks() {
    for (k, (&[old_logp, adv, value, old_value, ret], &(clipped, vloss, dv))) in
        KINKS.iter().zip(&KINK_WANT).enumerate()
    {
        let f = |x: f32| x as f64;
        let row = reference_ppo::row(
            &[0.3],
            f(value),
            0,
            f(old_logp),
            f(adv),
            f(ret),
            f(old_value),
            &KINK_COEFS,
        );
        assert_eq!(
            row.stats[stat::CLIPPED],
            clipped,
            "clipped flag of kink {k}"
        );
        assert_eq!(row.stats[stat::VALUE], vloss, "value loss of kink {k}");
        assert_eq!(row.dvalue, dv, "dvalue of kink {k}");
    }
    // Three actions, ratio ≈ 15.8: with adv > 0 the clipped surrogate, whose logit gradient is
    // the entropy's alone (zero here).
    let row = reference_ppo::row(&[0.5, -1.0, 2.0], 0.0, 1, -6.0, 1.0, 0.0, 0.0, &KINK_COEFS);
    assert_eq!(row.stats[stat::CLIPPED], 1.0);
    assert!(row.dlogits.iter().all(|&g| g == 0.0), "{:?}", row.dlogits);
    // The same ratio with a negative advantage keeps the gradient: −adv·ratio·(onehot − p).
    let row = reference_ppo::row(&[0.5, -1.0, 2.0], 0.0, 1, -6.0, -1.0, 0.0, 0.0, &KINK_COEFS);
    assert_eq!(row.stats[stat::CLIPPED], 0.0);
    assert!(row.dlogits[1] > 0.0, "{:?}", row.dlogits);
}

device_test!(kernel_takes_the_documented_side_at_kinks);
fn kernel_takes_the_documented_side_at_kinks(ctx: &Context) {
    let col = |c: usize| KINKS.iter().map(|k| k[c]).collect::<Vec<f32>>();
    let rows = KINKS.len();
    let batch = PpoBatch::from_slices(ctx, &[0; 5], &col(0), &col(1), &col(4), &col(3)).unwrap();
    let x = Tensor::from_slice(ctx, &[rows, 1], &[0.3; 5]).unwrap();
    let v = Tensor::from_slice(ctx, &[rows], &col(2)).unwrap();
    let out = ppo_loss::ppo_loss(ctx, &x, &v, &batch, KINK_COEFS, 1.0).unwrap();
    let stats = out.stats.to_vec(ctx).unwrap();
    let dv = out.dvalues.to_vec(ctx).unwrap();
    for (r, &(clipped, vloss, want_dv)) in KINK_WANT.iter().enumerate() {
        assert_eq!(
            stats[stat::CLIPPED * rows + r] as f64,
            clipped,
            "clipped {r}"
        );
        assert_eq!(
            stats[stat::VALUE * rows + r] as f64,
            vloss,
            "value loss {r}"
        );
        assert_eq!(dv[r] as f64, want_dv, "dvalue {r}");
    }
    // Clipped rows with several actions and no entropy term: exactly zero logit gradients.
    let x = Tensor::from_slice(ctx, &[2, 3], &[0.5, -1.0, 2.0, 0.5, -1.0, 2.0]).unwrap();
    let v = Tensor::zeros(ctx, &[2]).unwrap();
    let batch = PpoBatch::from_slices(ctx, &[1, 1], &[-6.0; 2], &[1.0, -1.0], &[0.0; 2], &[0.0; 2])
        .unwrap();
    let out = ppo_loss::ppo_loss(ctx, &x, &v, &batch, KINK_COEFS, 1.0).unwrap();
    let d = out.dlogits.to_vec(ctx).unwrap();
    assert!(d[..3].iter().all(|&g| g == 0.0), "clipped row: {d:?}");
    assert!(d[4] > 0.0, "unclipped row: {d:?}");
    let stats = out.stats.to_vec(ctx).unwrap();
    assert_eq!(&stats[stat::CLIPPED * 2..][..2], &[1.0, 0.0]);
}

#[test]
fn reference_gradient_matches_finite_differences() {
    // d(mean loss)/d(logits, values) by central differences, away from every kink (the
    // generator keeps 0.01 from them; the step is 1e-6).
    let mut rng = Rng::new(64);
    for (rows, actions, coefs) in [(5, 4, COEFS), (9, 1, COEFS), (7, 6, PpoCoefs::default())] {
        let pb = Problem::random(&mut rng, rows, actions, coefs.clip_eps);
        let batch = pb.reference_batch();
        let n = rows * actions;
        let mut xv = to_f64(&pb.logits);
        xv.extend(to_f64(&pb.values));
        let mean = |xv: &[f64]| {
            let (x, v) = xv.split_at(n);
            reference_ppo::mean_ppo_loss(x, v, &batch, actions, &coefs).0[stat::LOSS]
        };
        let fd = reference::finite_differences(&xv, 1e-6, mean);
        let (x, v) = xv.split_at(n);
        let (_, dlogits, dvalues) = reference_ppo::mean_ppo_loss(x, v, &batch, actions, &coefs);
        let analytic: Vec<f64> = dlogits.into_iter().chain(dvalues).collect();
        for (i, (a, f)) in analytic.iter().zip(&fd).enumerate() {
            assert!(
                (a - f).abs() <= 1e-7 * (1.0 + f.abs()),
                "{rows}x{actions} gradient[{i}]: analytic {a} vs finite difference {f}"
            );
        }
    }
}

device_test!(tape_ppo_loss_matches_reference);
fn tape_ppo_loss_matches_reference(ctx: &Context) {
    let mut rng = Rng::new(65);
    let (rows, actions) = (33, 7);
    let pb = Problem::random(&mut rng, rows, actions, COEFS.clip_eps);
    let (x, v, batch) = pb.tensors(ctx);
    let mut tape = Tape::new();
    let (xv, vv) = (tape.input(x), tape.input(v));
    let (loss, stats) = tape.ppo_loss(ctx, xv, vv, &batch, COEFS).unwrap();
    // An upstream factor, so the backward's scaling by its incoming gradient is tested.
    let scaled = tape.scale(ctx, loss, -2.5).unwrap();
    let grads = tape.backward(ctx, scaled).unwrap();
    let (x64, v64) = (to_f64(&pb.logits), to_f64(&pb.values));
    let (means, dlogits, dvalues) =
        reference_ppo::mean_ppo_loss(&x64, &v64, &pb.reference_batch(), actions, &COEFS);
    assert_close(
        "tape stats",
        &stats.to_vec(ctx).unwrap(),
        &means,
        1e-5,
        1e-5,
    );
    let times = |g: Vec<f64>| g.into_iter().map(|g| -2.5 * g).collect::<Vec<_>>();
    let got = grads.get(xv).unwrap().to_vec(ctx).unwrap();
    assert_close("tape dlogits", &got, &times(dlogits), 1e-7, 1e-5);
    let got = grads.get(vv).unwrap().to_vec(ctx).unwrap();
    assert_close("tape dvalues", &got, &times(dvalues), 1e-7, 1e-5);

    // Only the values tracked: the logits get nothing; nothing tracked: no node at all.
    let (x, v, _) = pb.tensors(ctx);
    let mut tape = Tape::new();
    let (xc, vv) = (tape.constant(x), tape.input(v));
    let (loss, _) = tape.ppo_loss(ctx, xc, vv, &batch, COEFS).unwrap();
    let grads = tape.backward(ctx, loss).unwrap();
    assert!(grads.get(xc).is_none());
    assert!(grads.get(vv).is_some());
    let (x, v, _) = pb.tensors(ctx);
    let mut tape = Tape::new();
    let (xc, vc) = (tape.constant(x), tape.constant(v));
    tape.ppo_loss(ctx, xc, vc, &batch, COEFS).unwrap();
    assert!(tape.is_empty(), "an untracked loss records no node");
}

device_test!(ppo_loss_rejects_bad_inputs);
fn ppo_loss_rejects_bad_inputs(ctx: &Context) {
    type Out = rims::Result<ppo_loss::PpoRows>;
    let shape_err = |r: Out| matches!(r, Err(Error::Shape { .. }));
    let invalid = |r: Out| matches!(r, Err(Error::InvalidArgument { .. }));
    let empty = |r: Out| matches!(r, Err(Error::Empty { .. }));
    let config = |r: Out, f: &str| matches!(r, Err(Error::Config { field, .. }) if field == f);
    let f32s = |shape: &[usize]| Tensor::zeros(ctx, shape).unwrap();
    let u32s = |shape: &[usize]| {
        let n = shape.iter().product();
        Tensor::from_u32(ctx, shape, &vec![0; n]).unwrap()
    };
    let batch = |rows: usize| PpoBatch::new(u32s(&[rows]), f32s(&[rows, 4])).unwrap();
    let (x, v, b) = (f32s(&[2, 3]), f32s(&[2]), batch(2));
    let c = COEFS;
    let run = |x: &Tensor, v: &Tensor, b: &PpoBatch, c: PpoCoefs| {
        ppo_loss::ppo_loss(ctx, x, v, b, c, 1.0)
    };
    assert!(run(&x, &v, &b, c).is_ok());

    // Logits not 2-D; values not [rows] or [rows, 1]; a batch of other rows.
    assert!(shape_err(run(&f32s(&[6]), &v, &b, c)));
    assert!(shape_err(run(&f32s(&[1, 2, 3]), &v, &b, c)));
    assert!(shape_err(run(&x, &f32s(&[3]), &b, c)));
    assert!(shape_err(run(&x, &f32s(&[2, 2]), &b, c)));
    assert!(shape_err(run(&x, &v, &batch(3), c)));
    // Wrong element types.
    assert!(invalid(run(&u32s(&[2, 3]), &v, &b, c)));
    assert!(invalid(run(&x, &u32s(&[2]), &b, c)));
    // Empty: no rows, no actions.
    assert!(empty(run(&f32s(&[0, 3]), &f32s(&[0]), &batch(0), c)));
    assert!(empty(run(&f32s(&[2, 0]), &v, &b, c)));
    // Coefficients that cannot work, and a gradient factor that would poison every gradient.
    let with = |f: fn(&mut PpoCoefs)| {
        let mut c = COEFS;
        f(&mut c);
        c
    };
    assert!(config(
        run(&x, &v, &b, with(|c| c.clip_eps = 0.0)),
        "clip_eps"
    ));
    assert!(config(
        run(&x, &v, &b, with(|c| c.clip_eps = f32::NAN)),
        "clip_eps"
    ));
    assert!(config(
        run(&x, &v, &b, with(|c| c.value_coef = -0.5)),
        "value_coef"
    ));
    let inf = with(|c| c.entropy_coef = f32::INFINITY);
    assert!(config(run(&x, &v, &b, inf), "entropy_coef"));
    assert!(invalid(ppo_loss::ppo_loss(ctx, &x, &v, &b, c, f32::NAN)));
    // The mean shares the checks.
    assert!(matches!(
        ppo_loss::mean_ppo_loss(ctx, &x, &f32s(&[3]), &b, c),
        Err(Error::Shape { .. })
    ));
    let nan = with(|c| c.value_coef = f32::NAN);
    assert!(ppo_loss::mean_ppo_loss(ctx, &x, &v, &b, nan).is_err());

    // The batch: actions u32 [rows], data f32 [rows, 4], host slices of one length.
    assert!(matches!(
        PpoBatch::new(f32s(&[2]), f32s(&[2, 4])),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        PpoBatch::new(u32s(&[2]), u32s(&[2, 4])),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        PpoBatch::new(u32s(&[2]), f32s(&[2, 3])),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        PpoBatch::new(u32s(&[2, 1]), f32s(&[2, 4])),
        Err(Error::Shape { .. })
    ));
    let one = [0.0f32];
    assert!(matches!(
        PpoBatch::from_slices(ctx, &[0, 1], &[0.0; 2], &one, &[0.0; 2], &[0.0; 2]),
        Err(Error::Shape { .. })
    ));
}
