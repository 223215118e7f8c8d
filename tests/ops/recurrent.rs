//! The dense LSTM and GRU layers (the paper's baselines) on the GPU against the f64 reference:
//! states, cell states and every gradient; a few Adam steps that lower a loss; the dispatch
//! budget per time step; the error paths.

use rims::device::DeviceKind;
use rims::nn::{CellKind, Init, ParamSpec, ParamStore, Recurrent};
use rims::ops::optim::{Adam, AdamConfig};
use rims::reference::recurrent::{self as reference, RecurrentConfig, RecurrentParams};
use rims::rng::Rng;
use rims::tape::Tape;
use rims::{Context, Error, Tensor};

use crate::common::{assert_close, fresh, to_f64};

const PREFIX: &str = "rnn.";

struct Case {
    kind: CellKind,
    t_len: usize,
    batch: usize,
    input: usize,
    hidden: usize,
    /// Start from a random h_0 (and c_0) instead of zeros.
    initial_state: bool,
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for kind in [CellKind::Lstm, CellKind::Gru] {
        let case = |t_len, batch, input, hidden, initial_state| Case {
            kind,
            t_len,
            batch,
            input,
            hidden,
            initial_state,
        };
        out.push(case(5, 3, 4, 6, false));
        // Odd sizes, one row.
        out.push(case(5, 1, 4, 7, true));
        // B·H = 64: h is a view of the states, not a copy.
        out.push(case(3, 4, 5, 16, true));
    }
    out
}

fn host_params(ctx: &Context, store: &ParamStore, cfg: &RecurrentConfig) -> RecurrentParams {
    let host = store.to_host(ctx).unwrap();
    let mut p = RecurrentParams::zeros(cfg);
    for name in RecurrentParams::NAMES {
        let v = to_f64(&host[&format!("{PREFIX}{name}")].1);
        p.get_mut(name).unwrap().copy_from_slice(&v);
    }
    p
}

/// L = Σ_t Σ h_t ⊙ R_t with random R: forward states and every gradient against the reference.
fn check(ctx: &Context, case: &Case, seed: u64) {
    let (t_len, b, d, h) = (case.t_len, case.batch, case.input, case.hidden);
    let lstm = case.kind == CellKind::Lstm;
    let what = format!(
        "{:?} T={t_len} B={b} D={d} H={h} h0={}",
        case.kind, case.initial_state
    );
    let layer = Recurrent::new(case.kind, d, h).unwrap();
    let store = ParamStore::new(ctx, &layer.param_specs(PREFIX), seed).unwrap();
    let cfg = RecurrentConfig {
        cell: case.kind,
        input: d,
        hidden: h,
    };
    let params = host_params(ctx, &store, &cfg);

    let mut rng = Rng::new(seed + 100);
    let x = rng.vec_f32(t_len * b * d, -1.0, 1.0);
    let r = rng.vec_f32(t_len * b * h, -1.0, 1.0);
    let (h0, c0) = if case.initial_state {
        (
            rng.vec_f32(b * h, -0.8, 0.8),
            if lstm {
                rng.vec_f32(b * h, -1.5, 1.5)
            } else {
                Vec::new()
            },
        )
    } else {
        (
            vec![0.0; b * h],
            if lstm { vec![0.0; b * h] } else { Vec::new() },
        )
    };

    let mut tape = Tape::new();
    let xv = tape.input(Tensor::from_slice(ctx, &[t_len, b, d], &x).unwrap());
    let upload = |v: &[f32]| Tensor::from_slice(ctx, &[b, h], v).unwrap();
    let (h0_t, c0_t) = if case.initial_state {
        (Some(upload(&h0)), lstm.then(|| upload(&c0)))
    } else {
        (None, None)
    };
    let out = layer
        .forward(ctx, &mut tape, &store, xv, PREFIX, h0_t, c0_t)
        .unwrap();
    assert_eq!(tape.value(out.h).shape(), [t_len, b, h]);
    assert_eq!(out.states.shape(), [t_len + 1, b, h]);
    assert_eq!(out.cells.is_some(), lstm);
    let rv = tape.constant(Tensor::from_slice(ctx, &[t_len, b, h], &r).unwrap());
    let weighted = tape.mul(ctx, out.h, rv).unwrap();
    let loss = tape.sum(ctx, weighted).unwrap();
    store.zero_grads(ctx).unwrap();
    let h_gpu = tape.value(out.h).to_vec(ctx).unwrap();
    let grads = tape.backward(ctx, loss).unwrap();

    let (xf, h0f, c0f) = (to_f64(&x), to_f64(&h0), to_f64(&c0));
    let fwd = reference::forward(&cfg, &params, &xf, &h0f, &c0f, t_len, b);
    let want = reference::backward(&cfg, &params, &xf, &h0f, &c0f, &fwd, &to_f64(&r), None);

    let (atol, rtol) = (1e-5, 1e-4);
    assert_close(&format!("{what}: h"), &h_gpu, &fwd.h, atol, rtol);
    let states: Vec<f64> = h0f.iter().chain(&fwd.h).copied().collect();
    assert_close(
        &format!("{what}: states"),
        &out.states.to_vec(ctx).unwrap(),
        &states,
        atol,
        rtol,
    );
    if let Some(cells) = &out.cells {
        let want_c: Vec<f64> = c0f.iter().chain(&fwd.c).copied().collect();
        assert_close(
            &format!("{what}: cells"),
            &cells.to_vec(ctx).unwrap(),
            &want_c,
            atol,
            rtol,
        );
    }
    let (gtol, grtol) = (2e-5, 2e-4);
    for name in RecurrentParams::NAMES {
        let gpu = store
            .grad(&format!("{PREFIX}{name}"))
            .unwrap()
            .to_vec(ctx)
            .unwrap();
        assert_close(
            &format!("{what}: d{name}"),
            &gpu,
            want.params.get(name).unwrap(),
            gtol,
            grtol,
        );
    }
    let dx = grads
        .get(xv)
        .expect("x is a tape input")
        .to_vec(ctx)
        .unwrap();
    assert_close(&format!("{what}: dx"), &dx, &want.dx, gtol, grtol);
}

device_test!(lstm_and_gru_match_the_reference);
fn lstm_and_gru_match_the_reference(ctx: &Context) {
    for (i, case) in cases().iter().enumerate() {
        check(ctx, case, 10 + i as u64);
    }
}

device_test!(weights_get_gradients_when_x_wants_none);
fn weights_get_gradients_when_x_wants_none(ctx: &Context) {
    for kind in [CellKind::Lstm, CellKind::Gru] {
        let layer = Recurrent::new(kind, 3, 5).unwrap();
        let store = ParamStore::new(ctx, &layer.param_specs(""), 2).unwrap();
        let mut rng = Rng::new(3);
        let x = Tensor::from_slice(ctx, &[4, 2, 3], &rng.vec_f32(24, -1.0, 1.0)).unwrap();
        let mut tape = Tape::new();
        let xv = tape.constant(x);
        let out = layer
            .forward(ctx, &mut tape, &store, xv, "", None, None)
            .unwrap();
        let loss = tape.sum(ctx, out.h).unwrap();
        store.zero_grads(ctx).unwrap();
        let grads = tape.backward(ctx, loss).unwrap();
        assert!(grads.get(xv).is_none());
        for name in ["wx", "wh", "bx", "bh"] {
            let g = store.grad(name).unwrap().to_vec(ctx).unwrap();
            assert!(
                g.iter().all(|v| v.is_finite()) && g.iter().any(|v| *v != 0.0),
                "{kind:?}: d{name} {g:?}"
            );
        }
    }
}

/// Remember the first input: after T steps, predict x_0[0] from h_T through a Linear layer.
fn training_loss(ctx: &Context, kind: CellKind) -> (f32, f32) {
    let (t_len, b, d, h) = (4, 8, 2, 8);
    let layer = Recurrent::new(kind, d, h).unwrap();
    let mut specs = layer.param_specs(PREFIX);
    specs.push(ParamSpec::new("out_w", &[h, 1], Init::Uniform(-0.3, 0.3)));
    specs.push(ParamSpec::new("out_b", &[1], Init::Zeros));
    let store = ParamStore::new(ctx, &specs, 5).unwrap();
    let mut opt = Adam::new(
        ctx,
        store.trainable_len(),
        AdamConfig {
            lr: 0.03,
            ..AdamConfig::default()
        },
    )
    .unwrap();
    let mut rng = Rng::new(6);
    let x = rng.vec_f32(t_len * b * d, -1.0, 1.0);
    let y: Vec<f32> = (0..b).map(|i| x[i * d]).collect();
    let xt = Tensor::from_slice(ctx, &[t_len, b, d], &x).unwrap();
    let yt = Tensor::from_slice(ctx, &[b, 1], &y).unwrap();
    let mut losses = Vec::new();
    for _ in 0..40 {
        store.zero_grads(ctx).unwrap();
        let mut tape = Tape::new();
        let xv = tape.constant(xt.clone());
        let out = layer
            .forward(ctx, &mut tape, &store, xv, PREFIX, None, None)
            .unwrap();
        let last = tape.slice_rows(ctx, out.h, t_len - 1, 1).unwrap();
        let last = tape.reshape(last, &[b, h]).unwrap();
        let (w, bias) = (
            tape.param(&store, "out_w").unwrap(),
            tape.param(&store, "out_b").unwrap(),
        );
        let pred = tape.matmul(ctx, last, w, Some(bias)).unwrap();
        let loss = tape.mse(ctx, pred, &yt).unwrap();
        let loss_t = tape.value(loss).clone();
        tape.backward(ctx, loss).unwrap();
        opt.step(ctx, store.flat_values(), store.flat_grads())
            .unwrap();
        losses.push(loss_t.to_vec(ctx).unwrap()[0]);
    }
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    (losses[0], *losses.last().unwrap())
}

device_test!(adam_steps_lower_the_loss);
fn adam_steps_lower_the_loss(ctx: &Context) {
    for kind in [CellKind::Lstm, CellKind::Gru] {
        let (first, last) = training_loss(ctx, kind);
        eprintln!("{kind:?}: loss {first:.4} -> {last:.4} in 40 Adam steps");
        assert!(
            last < 0.5 * first,
            "{kind:?}: loss should fall: {first} -> {last}"
        );
    }
}

/// Dispatches of (forward, backward) of one sequence of `t_len` steps.
fn count_dispatches(ctx: &Context, kind: CellKind, t_len: usize) -> (u64, u64) {
    let (b, d, h) = (2, 3, 5);
    let layer = Recurrent::new(kind, d, h).unwrap();
    let store = ParamStore::new(ctx, &layer.param_specs(PREFIX), 1).unwrap();
    let x = Tensor::zeros(ctx, &[t_len, b, d]).unwrap();
    ctx.submit().unwrap();
    let mut tape = Tape::new();
    let xv = tape.input(x);
    let start = ctx.recorder_stats().dispatches;
    let out = layer
        .forward(ctx, &mut tape, &store, xv, PREFIX, None, None)
        .unwrap();
    let forward = ctx.recorder_stats().dispatches - start;
    let loss = tape.sum(ctx, out.h).unwrap();
    let after_sum = ctx.recorder_stats().dispatches;
    tape.backward(ctx, loss).unwrap();
    let backward = ctx.recorder_stats().dispatches - after_sum;
    ctx.synchronize().unwrap();
    (forward, backward)
}

device_test!(dispatch_budget_per_step, fresh);
fn dispatch_budget_per_step(kind: DeviceKind) {
    let Some(ctx) = fresh(kind) else { return };
    for kind in [CellKind::Lstm, CellKind::Gru] {
        let (f2, b2) = count_dispatches(&ctx, kind, 2);
        let (f4, b4) = count_dispatches(&ctx, kind, 4);
        assert_eq!((f4 - f2) % 2, 0);
        assert_eq!((b4 - b2) % 2, 0);
        let (fwd, bwd) = ((f4 - f2) / 2, (b4 - b2) / 2);
        eprintln!(
            "{kind:?}: {fwd} dispatches per step forward, {bwd} backward \
             (T=2: {f2} forward, {b2} backward in all)"
        );
        assert!(fwd <= 3, "{kind:?}: forward {fwd} per step");
        assert!(bwd <= 3, "{kind:?}: backward {bwd} per step");
    }
}

device_test!(bad_inputs_are_errors);
fn bad_inputs_are_errors(ctx: &Context) {
    assert!(matches!(
        Recurrent::new(CellKind::Lstm, 0, 4),
        Err(Error::Config { .. })
    ));
    assert!(matches!(
        Recurrent::new(CellKind::Gru, 3, 0),
        Err(Error::Config { .. })
    ));
    let lstm = Recurrent::new(CellKind::Lstm, 3, 4).unwrap();
    let gru = Recurrent::new(CellKind::Gru, 3, 4).unwrap();
    let store = ParamStore::new(ctx, &lstm.param_specs("l."), 1).unwrap();
    let gru_store = ParamStore::new(ctx, &gru.param_specs("g."), 1).unwrap();
    let run = |layer: &Recurrent,
               store: &ParamStore,
               prefix: &str,
               x_shape: &[usize],
               h0: Option<Tensor>,
               c0: Option<Tensor>| {
        // Every call below fails its checks before reading x.
        let x = Tensor::uninit(ctx, x_shape).unwrap();
        let mut tape = Tape::new();
        let xv = tape.constant(x);
        layer
            .forward(ctx, &mut tape, store, xv, prefix, h0, c0)
            .map(|_| ())
    };
    let zeros = |shape: &[usize]| Some(Tensor::zeros(ctx, shape).unwrap());
    // Wrong input width, rank, and an empty sequence or batch.
    for shape in [&[2, 2, 5][..], &[2, 3], &[0, 2, 3], &[2, 0, 3]] {
        let err = run(&lstm, &store, "l.", shape, None, None).unwrap_err();
        assert!(matches!(err, Error::Shape { .. }), "{shape:?}: {err}");
    }
    // h0 and c0 of the wrong size; c0 for a GRU.
    let err = run(&lstm, &store, "l.", &[2, 2, 3], zeros(&[3, 4]), None).unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err}");
    let err = run(&lstm, &store, "l.", &[2, 2, 3], None, zeros(&[2, 5])).unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err}");
    let err = run(&gru, &gru_store, "g.", &[2, 2, 3], None, zeros(&[2, 4])).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
    // Missing parameters (wrong prefix), and a store made for another layer.
    let err = run(&lstm, &store, "x.", &[2, 2, 3], None, None).unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err}");
    let wide = Recurrent::new(CellKind::Lstm, 3, 5).unwrap();
    let err = run(&wide, &store, "l.", &[2, 2, 3], None, None).unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err}");
    // A GRU over an LSTM's parameters: the gate widths differ.
    let gru_over_lstm = Recurrent::new(CellKind::Gru, 3, 4).unwrap();
    let err = run(&gru_over_lstm, &store, "l.", &[2, 2, 3], None, None).unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err}");
    // The fields are public: a zero size set by hand is still caught.
    let zero = Recurrent {
        kind: CellKind::Gru,
        input: 3,
        hidden: 0,
    };
    let err = run(&zero, &gru_store, "g.", &[2, 2, 3], None, None).unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err}");

    // The step kernels check their buffers.
    use rims::ops::recurrent::{self as op, Dims};
    let dims = Dims {
        kind: CellKind::Lstm,
        steps: 2,
        batch: 2,
        hidden: 4,
    };
    let gates = Tensor::zeros(ctx, &[2, 2, 16]).unwrap();
    let hs = Tensor::zeros(ctx, &[3, 2, 4]).unwrap();
    let cs = Tensor::zeros(ctx, &[3, 2, 4]).unwrap();
    let f = op::Forward {
        gates: &gates,
        gh: None,
        hs: &hs,
        cs: Some(&cs),
    };
    assert!(matches!(
        op::forward(ctx, dims, 2, &f),
        Err(Error::InvalidArgument { .. })
    ));
    let no_cells = op::Forward { cs: None, ..f };
    assert!(matches!(
        op::forward(ctx, dims, 0, &no_cells),
        Err(Error::InvalidArgument { .. })
    ));
    let short = Tensor::zeros(ctx, &[2, 4]).unwrap();
    let bad_hs = op::Forward {
        hs: &short,
        cs: Some(&cs),
        ..no_cells
    };
    assert!(matches!(
        op::forward(ctx, dims, 0, &bad_hs),
        Err(Error::Shape { .. })
    ));
    let empty = Dims { steps: 0, ..dims };
    assert!(matches!(
        op::forward(ctx, empty, 0, &f),
        Err(Error::Empty { .. })
    ));
    ctx.synchronize().unwrap();
}

// Recurrent PPO steps a layer one frame at a time, each call starting from the last one's
// final state on the tape (`Start::Tape`). Chained that way, T calls of one step give the
// states, dx and every parameter gradient of one call over the whole sequence (up to
// summation order), for a loss on every h_t and on the final h_T and c_T.
device_test!(steps_chained_on_the_tape_equal_one_sequence);
fn steps_chained_on_the_tape_equal_one_sequence(ctx: &Context) {
    use rims::nn::recurrent::Start;
    for kind in [CellKind::Lstm, CellKind::Gru] {
        let (t_len, b, d, h) = (4, 3, 5, 6);
        let layer = Recurrent::new(kind, d, h).unwrap();
        let store = ParamStore::new(ctx, &layer.param_specs(PREFIX), 7).unwrap();
        let mut rng = Rng::new(11);
        let mut draw = |n: usize| {
            (0..n)
                .map(|_| rng.uniform(-1.0, 1.0) as f32)
                .collect::<Vec<f32>>()
        };
        let x = draw(t_len * b * d);
        let weights = draw(t_len * b * h);
        let final_weights = draw(2 * b * h);
        let lstm = kind == CellKind::Lstm;
        // Loss: Σ h ⊙ W + Σ h_T ⊙ F_h (+ Σ c_T ⊙ F_c).
        let run = |chained: bool| -> (Vec<f32>, Vec<f32>, Vec<f32>) {
            store.zero_grads(ctx).unwrap();
            let mut tape = Tape::new();
            let xv = tape.input(Tensor::from_slice(ctx, &[t_len, b, d], &x).unwrap());
            let segments: Vec<(usize, usize)> = if chained {
                (0..t_len).map(|t| (t, 1)).collect()
            } else {
                vec![(0, t_len)]
            };
            let (mut hs, mut state) = (Vec::new(), (Start::Zeros, Start::Zeros));
            let mut last = None;
            for (t0, len) in segments {
                let xs = tape.slice_rows(ctx, xv, t0, len).unwrap();
                let out = layer
                    .forward_from(ctx, &mut tape, &store, xs, PREFIX, state.0, state.1)
                    .unwrap();
                hs.push(out.h);
                state = (
                    Start::Tape(out.final_h),
                    out.final_c.map_or(Start::Zeros, Start::Tape),
                );
                last = Some((out.final_h, out.final_c));
            }
            let mut loss = None;
            let mut add = |tape: &mut Tape, v, w: &[f32]| {
                let shape = tape.value(v).shape().to_vec();
                let wv = tape.constant(Tensor::from_slice(ctx, &shape, w).unwrap());
                let term = tape.mul(ctx, v, wv).unwrap();
                let term = tape.sum(ctx, term).unwrap();
                loss = Some(match loss {
                    None => term,
                    Some(l) => tape.add(ctx, l, term).unwrap(),
                });
            };
            let rows = hs.len();
            for (i, hv) in hs.iter().enumerate() {
                let per = t_len / rows;
                add(
                    &mut tape,
                    *hv,
                    &weights[i * per * b * h..(i + 1) * per * b * h],
                );
            }
            let (fh, fc) = last.unwrap();
            add(&mut tape, fh, &final_weights[..b * h]);
            if let Some(fc) = fc {
                add(&mut tape, fc, &final_weights[b * h..]);
            }
            let states: Vec<f32> = hs
                .iter()
                .flat_map(|v| tape.value(*v).to_vec(ctx).unwrap())
                .collect();
            let grads = tape.backward(ctx, loss.unwrap()).unwrap();
            let dx = grads.get(xv).unwrap().to_vec(ctx).unwrap();
            (states, dx, store.flat_grads().to_vec(ctx).unwrap())
        };
        let (whole, chained) = (run(false), run(true));
        let f64s = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
        let what = if lstm { "lstm" } else { "gru" };
        assert_close(
            &format!("{what} h"),
            &chained.0,
            &f64s(&whole.0),
            1e-6,
            1e-5,
        );
        assert_close(
            &format!("{what} dx"),
            &chained.1,
            &f64s(&whole.1),
            1e-5,
            1e-4,
        );
        assert_close(
            &format!("{what} dparams"),
            &chained.2,
            &f64s(&whole.2),
            1e-5,
            1e-4,
        );
        assert!(
            whole.2.iter().any(|g| g.abs() > 1e-3),
            "{what}: gradients are real"
        );
    }
}
