//! The RIMs layer on the GPU against the f64 reference: states, masks (exactly), and every
//! gradient, over several configurations.

use rims::Context;
use rims::Tensor;
use rims::device::DeviceKind;
use rims::nn::rims::param_specs;
use rims::nn::{CellKind, ParamStore, Rims, RimsConfig, RimsOptions};
use rims::rng::Rng;
use rims::tape::Tape;

use crate::common::fresh;

fn tiny(cell: CellKind, n: usize, k: usize) -> RimsConfig {
    RimsConfig {
        mechanisms: n,
        active: k,
        hidden: 5,
        input: 7,
        input_key: 4,
        input_value: 6,
        input_heads: 1,
        comm_heads: 2,
        comm_key: 3,
        comm_value: 3,
        cell,
        dropout: 0.0,
        variant: rims::nn::Variant::Authors,
    }
}

device_test!(forward_and_backward_run_and_respect_the_tie_rule);
fn forward_and_backward_run_and_respect_the_tie_rule(ctx: &Context) {
    for cell in [CellKind::Lstm, CellKind::Gru] {
        let cfg = tiny(cell, 4, 2);
        let layer = Rims::new(cfg.clone()).unwrap();
        let store = ParamStore::new(ctx, &param_specs(&cfg), 3).unwrap();
        let (t_len, b) = (3, 2);
        let mut rng = Rng::new(4);
        let x = Tensor::from_slice(
            ctx,
            &[t_len, b, cfg.input],
            &rng.vec_f32(t_len * b * cfg.input, -1.0, 1.0),
        )
        .unwrap();
        let mut tape = Tape::new();
        let xv = tape.constant(x);
        let out = layer
            .forward(ctx, &mut tape, &store, xv, &RimsOptions::default())
            .unwrap();
        let masks = out.masks.to_vec(ctx).unwrap();
        // t = 0 from a zero state: every score ties, so mechanisms 0..k-1 are active.
        assert_eq!(&masks[..4], &[1.0, 1.0, 0.0, 0.0]);
        assert_eq!(&masks[4..8], &[1.0, 1.0, 0.0, 0.0]);
        for t in 0..t_len {
            for row in 0..b {
                let active: f32 = masks[(t * b + row) * 4..(t * b + row + 1) * 4].iter().sum();
                assert_eq!(active, 2.0);
            }
        }
        let h = tape.value(out.h).to_vec(ctx).unwrap();
        assert!(h.iter().all(|v| v.is_finite()) && h.iter().any(|v| *v != 0.0));
        let s = tape.sum(ctx, out.h).unwrap();
        store.zero_grads(ctx).unwrap();
        tape.backward(ctx, s).unwrap();
        let g = store.flat_grads().to_vec(ctx).unwrap();
        assert!(g.iter().all(|v| v.is_finite()) && g.iter().any(|v| *v != 0.0));
    }
}

/// Dispatches of a forward (and of forward + backward) over `t_len` steps.
fn count_dispatches(ctx: &rims::Context, cfg: &RimsConfig, t_len: usize) -> (u64, u64) {
    let layer = Rims::new(cfg.clone()).unwrap();
    let store = ParamStore::new(ctx, &param_specs(cfg), 1).unwrap();
    let b = 2;
    let x = Tensor::zeros(ctx, &[t_len, b, cfg.input]).unwrap();
    ctx.submit().unwrap();
    let start = ctx.recorder_stats().dispatches;
    let mut tape = Tape::new();
    let xv = tape.constant(x);
    let out = layer
        .forward(ctx, &mut tape, &store, xv, &RimsOptions::default())
        .unwrap();
    let forward = ctx.recorder_stats().dispatches - start;
    let before_backward = ctx.recorder_stats().dispatches;
    let loss = tape.sum(ctx, out.h).unwrap();
    let after_sum = ctx.recorder_stats().dispatches;
    tape.backward(ctx, loss).unwrap();
    let backward = ctx.recorder_stats().dispatches - after_sum;
    let _ = before_backward;
    ctx.synchronize().unwrap();
    (forward, backward)
}

device_test!(dispatch_budget_per_step, fresh);
fn dispatch_budget_per_step(kind: DeviceKind) {
    let Some(ctx) = fresh(kind) else {
        return;
    };
    let dido = |cell| RimsConfig {
        variant: rims::nn::Variant::Dido,
        // d_vc = H, as D requires; d_kc = H too, so Q, K and V are one product.
        comm_key: 5,
        comm_value: 5,
        ..tiny(cell, 4, 2)
    };
    for cfg in [
        tiny(CellKind::Lstm, 4, 2),
        tiny(CellKind::Gru, 4, 2),
        dido(CellKind::Lstm),
        dido(CellKind::Gru),
    ] {
        let (cell, variant) = (cfg.cell, cfg.variant);
        let (f2, b2) = count_dispatches(&ctx, &cfg, 2);
        let (f5, b5) = count_dispatches(&ctx, &cfg, 5);
        let (fwd, bwd) = ((f5 - f2) / 3, (b5 - b2) / 3);
        assert_eq!((f5 - f2) % 3, 0);
        eprintln!(
            "{variant:?} {cell:?}: {fwd} dispatches per step forward, {bwd} backward (fixed: {} forward, {} backward)",
            f2 - 2 * fwd,
            b2 - 2 * bwd
        );
        assert!(fwd <= 8, "forward {fwd} per step");
        assert!(bwd <= 14, "backward {bwd} per step");
    }
}

// --- against the f64 reference ------------------------------------------------------------

device_test!(gpu_matches_reference_states_masks_and_gradients);
fn gpu_matches_reference_states_masks_and_gradients(ctx: &Context) {
    let mut cases = rims::verify::standard_cases();
    cases.extend(rims::verify::random_cases(6, 77));
    cases.extend(rims::verify::random_dido_cases(6, 78));
    for case in cases {
        let report = rims::verify::run_case(ctx, &case).unwrap();
        let line: Vec<String> = report
            .errors
            .iter()
            .map(|(n, e)| format!("{n} {e:.1e}"))
            .collect();
        eprintln!(
            "{}: masks equal {}, {}",
            report.case,
            report.masks_equal,
            line.join(", ")
        );
        assert!(
            report.masks_equal,
            "{}: masks must be exactly equal",
            report.case
        );
        // dL/dh_0 always, dL/dc_0 for LSTM: the initial state's gradients are checked too.
        let names: Vec<&str> = report.errors.iter().map(|(n, _)| n.as_str()).collect();
        assert!(
            names.contains(&"dh0"),
            "{}: no dh0 in {names:?}",
            report.case
        );
        assert_eq!(
            names.contains(&"dc0"),
            case.cfg.cell == CellKind::Lstm,
            "{}: dc0 in {names:?}",
            report.case
        );
        for (name, err) in &report.errors {
            assert!(
                *err < 1e-4,
                "{}: {name} differs from the reference by {err:.2e}",
                report.case
            );
        }
    }
}

device_test!(inactive_mechanisms_get_zero_gradient_through_their_input);
fn inactive_mechanisms_get_zero_gradient_through_their_input(ctx: &Context) {
    // With k < N some mechanisms are inactive at every step; their input u gets exactly zero
    // gradient in the reference, and the GPU's weight gradients agree with it (checked above),
    // so here: the rows of d(rnn_wx) of a mechanism that is never active are exactly zero.
    let cfg = RimsConfig {
        dropout: 0.0,
        variant: rims::nn::Variant::Authors,
        ..tiny(CellKind::Lstm, 4, 2)
    };
    let layer = Rims::new(cfg.clone()).unwrap();
    let store = ParamStore::new(ctx, &param_specs(&cfg), 3).unwrap();
    let (t_len, b) = (3, 2);
    // Force mechanisms 0 and 1 active everywhere: 2 and 3 never run.
    let mask: Vec<f32> = (0..t_len * b * 4)
        .map(|i| if i % 4 < 2 { 1.0 } else { 0.0 })
        .collect();
    let mut rng = Rng::new(9);
    let x = Tensor::from_slice(
        ctx,
        &[t_len, b, cfg.input],
        &rng.vec_f32(t_len * b * cfg.input, -1.0, 1.0),
    )
    .unwrap();
    let opts = RimsOptions {
        mask_override: Some(Tensor::from_slice(ctx, &[t_len, b, 4], &mask).unwrap()),
        ..Default::default()
    };
    let mut tape = Tape::new();
    let xv = tape.constant(x);
    let out = layer.forward(ctx, &mut tape, &store, xv, &opts).unwrap();
    assert_eq!(out.masks.to_vec(ctx).unwrap(), mask);
    let s = tape.sum(ctx, out.h).unwrap();
    store.zero_grads(ctx).unwrap();
    tape.backward(ctx, s).unwrap();
    let dwx = store.grad("rnn_wx").unwrap().to_vec(ctx).unwrap();
    let per_mech = dwx.len() / 4;
    assert!(dwx[..2 * per_mech].iter().any(|v| *v != 0.0));
    assert!(
        dwx[2 * per_mech..].iter().all(|v| *v == 0.0),
        "never-active mechanisms get exactly zero gradient"
    );
}

device_test!(dido_mask_override_and_ties_match_the_reference);
fn dido_mask_override_and_ties_match_the_reference(ctx: &Context) {
    // Variant D, N = 5, k = 2, H = 3, two input heads: a caller's mask replaces the selection
    // and the states follow the f64 reference under the same mask; from a zero state every
    // raw score ties at t = 0 and mechanisms 0..k-1 are active.
    use rims::reference::rims_dido::{self as rd, DidoParams};
    for cell in [CellKind::Lstm, CellKind::Gru] {
        let cfg = RimsConfig {
            mechanisms: 5,
            active: 2,
            hidden: 3,
            input: 4,
            input_key: 3,
            input_value: 2,
            input_heads: 2,
            comm_heads: 2,
            comm_key: 2,
            comm_value: 3,
            cell,
            dropout: 0.0,
            variant: rims::nn::Variant::Dido,
        };
        let (t_len, b, n, nh) = (4, 2, 5, 15);
        let mut rng = Rng::new(21);
        let p = DidoParams::random(&cfg, &mut rng, 0.7);
        let store = ParamStore::new(ctx, &param_specs(&cfg), 0).unwrap();
        for (name, v) in p.names_and_values() {
            let v: Vec<f32> = v.iter().map(|&x| x as f32).collect();
            store.set(ctx, name, &v).unwrap();
        }
        let x: Vec<f64> = (0..t_len * b * cfg.input)
            .map(|_| rng.uniform(-1.0, 1.0))
            .collect();
        let masks: Vec<f64> = (0..t_len * b * n).map(|_| rng.below(2) as f64).collect();
        let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        let layer = Rims::new(cfg.clone()).unwrap();
        let run = |mask: Option<&[f64]>| {
            let mut tape = Tape::untracked();
            let xv =
                tape.constant(Tensor::from_slice(ctx, &[t_len, b, cfg.input], &f32s(&x)).unwrap());
            let opts = RimsOptions {
                mask_override: mask
                    .map(|m| Tensor::from_slice(ctx, &[t_len, b, n], &f32s(m)).unwrap()),
                ..Default::default()
            };
            let out = layer.forward(ctx, &mut tape, &store, xv, &opts).unwrap();
            let h = tape.value(out.h).to_vec(ctx).unwrap();
            (h, out.masks.to_vec(ctx).unwrap())
        };
        let zeros = vec![0.0; b * nh];
        for mask in [None, Some(&masks[..])] {
            let want = rd::forward(&cfg, &p, &x, &zeros, &zeros, 0, 0, mask, t_len, b);
            let (h, got_masks) = run(mask);
            assert_eq!(got_masks, f32s(&want.masks), "{cell:?} masks");
            if mask.is_none() {
                assert_eq!(
                    &got_masks[..2 * n],
                    &[1., 1., 0., 0., 0., 1., 1., 0., 0., 0.]
                );
            }
            let err = rims::verify::relative_error(&h, &want.h);
            assert!(
                err < 1e-5,
                "{cell:?} override {}: h error {err:e}",
                mask.is_some()
            );
        }
    }
}

// --- the initial state on the tape (truncated BPTT) ----------------------------------------

/// GRU configurations of both variants, odd sizes, with dropout so that the step index matters.
fn chain_configs() -> Vec<RimsConfig> {
    let a = RimsConfig {
        dropout: 0.25,
        ..tiny(CellKind::Gru, 5, 3)
    };
    let d = RimsConfig {
        mechanisms: 5,
        active: 2,
        hidden: 3,
        input: 4,
        input_key: 3,
        input_value: 2,
        input_heads: 2,
        comm_heads: 2,
        comm_key: 2,
        comm_value: 3,
        cell: CellKind::Gru,
        dropout: 0.25,
        variant: rims::nn::Variant::Dido,
    };
    vec![a, d]
}

device_test!(segments_chained_through_h0_var_equal_one_sequence);
fn segments_chained_through_h0_var_equal_one_sequence(ctx: &Context) {
    // A sequence of T = 5 run as one call, and as two calls (2 + 3 steps) where the second
    // starts from the first one's last h through `h0_var`, on one tape: the states, every
    // parameter gradient and dL/dh_0 agree, so dL/dh_0 flows back across the segment boundary.
    // (GRU; the LSTM case, chained through `final_c`, is the next test.)
    for cfg in chain_configs() {
        let (t_len, t1, b) = (5, 2, 3);
        let nh = cfg.mechanisms * cfg.hidden;
        let layer = Rims::new(cfg.clone()).unwrap();
        let store = ParamStore::new(ctx, &param_specs(&cfg), 11).unwrap();
        let mut rng = Rng::new(12);
        let x = rng.vec_f32(t_len * b * cfg.input, -1.0, 1.0);
        let h0 = rng.vec_f32(b * nh, -0.5, 0.5);
        let r = rng.vec_f32(t_len * b * nh, -1.0, 1.0);
        let up = |shape: &[usize], v: &[f32]| Tensor::from_slice(ctx, shape, v).unwrap();
        let opts = |step0: u32, h0_var| RimsOptions {
            seed: 3,
            step0,
            training: true,
            h0_var: Some(h0_var),
            ..Default::default()
        };
        // Runs steps t0..t0+len from `h`, adds Σ h_t ⊙ r_t to the loss; returns (h, loss).
        let segment = |tape: &mut Tape, h, t0: usize, len: usize| {
            let (xs, rs) = (b * cfg.input, b * nh);
            let xv = tape.constant(up(&[len, b, cfg.input], &x[t0 * xs..(t0 + len) * xs]));
            let out = layer
                .forward(ctx, tape, &store, xv, &opts(t0 as u32, h))
                .unwrap();
            let rv = tape.constant(up(&[len, b, nh], &r[t0 * rs..(t0 + len) * rs]));
            let weighted = tape.mul(ctx, out.h, rv).unwrap();
            (out.h, tape.sum(ctx, weighted).unwrap())
        };
        let run = |split: bool| {
            store.zero_grads(ctx).unwrap();
            let mut tape = Tape::new();
            let h0v = tape.input(up(&[b, nh], &h0));
            let (hs, loss) = if split {
                let (h1, l1) = segment(&mut tape, h0v, 0, t1);
                let last = tape.slice_rows(ctx, h1, t1 - 1, 1).unwrap();
                let (h2, l2) = segment(&mut tape, last, t1, t_len - t1);
                let mut h = tape.value(h1).to_vec(ctx).unwrap();
                h.extend(tape.value(h2).to_vec(ctx).unwrap());
                (h, tape.add(ctx, l1, l2).unwrap())
            } else {
                let (h, l) = segment(&mut tape, h0v, 0, t_len);
                (tape.value(h).to_vec(ctx).unwrap(), l)
            };
            let grads = tape.backward(ctx, loss).unwrap();
            let dh0 = grads.get(h0v).expect("dL/dh0").to_vec(ctx).unwrap();
            let mut pg = Vec::new();
            for name in store.names() {
                if store.is_trainable(name).unwrap() {
                    pg.push((
                        name.to_string(),
                        store.grad(name).unwrap().to_vec(ctx).unwrap(),
                    ));
                }
            }
            (hs, dh0, pg)
        };
        let (h_one, dh0_one, g_one) = run(false);
        let (h_two, dh0_two, g_two) = run(true);
        let what = format!("{:?}", cfg.variant);
        let wide = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<_>>();
        assert!(
            dh0_one.iter().any(|&v| v != 0.0),
            "{what}: dL/dh0 is not zero"
        );
        let close = |name: &str, got: &[f32], want: &[f32]| {
            let err = rims::verify::relative_error(got, &wide(want));
            assert!(err < 1e-5, "{what} {name}: chained differs by {err:e}");
        };
        close("h", &h_two, &h_one);
        close("dh0", &dh0_two, &dh0_one);
        for ((name, got), (_, want)) in g_two.iter().zip(&g_one) {
            close(&format!("d{name}"), got, want);
        }
    }
}

/// LSTM configurations of both variants, odd sizes, with dropout (the chain test's LSTM twins).
fn lstm_chain_configs() -> Vec<RimsConfig> {
    chain_configs()
        .into_iter()
        .map(|c| RimsConfig {
            cell: CellKind::Lstm,
            ..c
        })
        .collect()
}

device_test!(lstm_segments_chained_through_the_final_state_equal_one_sequence);
fn lstm_segments_chained_through_the_final_state_equal_one_sequence(ctx: &Context) {
    // As above for LSTM cells, whose c_T is on the tape as `final_c`: the second segment
    // starts from the first one's `final_h` and `final_c` (h0_var, c0_var), the loss also
    // weighs the last c, and h, dL/dh_0, dL/dc_0 and every parameter gradient agree with one
    // sequence, so dL/dc flows back across the boundary too.
    for cfg in lstm_chain_configs() {
        let (t_len, t1, b) = (5, 3, 2);
        let nh = cfg.mechanisms * cfg.hidden;
        let layer = Rims::new(cfg.clone()).unwrap();
        let store = ParamStore::new(ctx, &param_specs(&cfg), 21).unwrap();
        let mut rng = Rng::new(22);
        let x = rng.vec_f32(t_len * b * cfg.input, -1.0, 1.0);
        let h0 = rng.vec_f32(b * nh, -0.5, 0.5);
        let c0 = rng.vec_f32(b * nh, -0.5, 0.5);
        let r = rng.vec_f32(t_len * b * nh, -1.0, 1.0);
        let rc = rng.vec_f32(b * nh, -1.0, 1.0);
        let up = |shape: &[usize], v: &[f32]| Tensor::from_slice(ctx, shape, v).unwrap();
        // Steps t0..t0+len from (h, c); returns the output and the loss Σ h_t ⊙ r_t.
        let segment = |tape: &mut Tape, h, c, t0: usize, len: usize| {
            let (xs, rs) = (b * cfg.input, b * nh);
            let xv = tape.constant(up(&[len, b, cfg.input], &x[t0 * xs..(t0 + len) * xs]));
            let opts = RimsOptions {
                seed: 5,
                step0: t0 as u32,
                training: true,
                h0_var: Some(h),
                c0_var: Some(c),
                ..Default::default()
            };
            let out = layer.forward(ctx, tape, &store, xv, &opts).unwrap();
            let rv = tape.constant(up(&[len, b, nh], &r[t0 * rs..(t0 + len) * rs]));
            let weighted = tape.mul(ctx, out.h, rv).unwrap();
            let loss = tape.sum(ctx, weighted).unwrap();
            (out, loss)
        };
        let run = |split: bool| {
            store.zero_grads(ctx).unwrap();
            let mut tape = Tape::new();
            let h0v = tape.input(up(&[b, nh], &h0));
            let c0v = tape.input(up(&[b, nh], &c0));
            let (out, loss) = if split {
                let (o1, l1) = segment(&mut tape, h0v, c0v, 0, t1);
                let c1 = o1.final_c.expect("LSTM c_T");
                let (o2, l2) = segment(&mut tape, o1.final_h, c1, t1, t_len - t1);
                (o2, tape.add(ctx, l1, l2).unwrap())
            } else {
                segment(&mut tape, h0v, c0v, 0, t_len)
            };
            let rcv = tape.constant(up(&[b, nh], &rc));
            let cw = tape.mul(ctx, out.final_c.unwrap(), rcv).unwrap();
            let lc = tape.sum(ctx, cw).unwrap();
            let loss = tape.add(ctx, loss, lc).unwrap();
            let grads = tape.backward(ctx, loss).unwrap();
            let get = |v| {
                grads
                    .get(v)
                    .expect("an input gradient")
                    .to_vec(ctx)
                    .unwrap()
            };
            let mut g = vec![("dh0".to_string(), get(h0v)), ("dc0".to_string(), get(c0v))];
            for name in store.names() {
                if store.is_trainable(name).unwrap() {
                    g.push((
                        format!("d{name}"),
                        store.grad(name).unwrap().to_vec(ctx).unwrap(),
                    ));
                }
            }
            g
        };
        let (one, two) = (run(false), run(true));
        let what = format!("{:?}", cfg.variant);
        assert!(one[1].1.iter().any(|&v| v != 0.0), "{what}: dL/dc0 is zero");
        for ((name, got), (_, want)) in two.iter().zip(&one) {
            let wide: Vec<f64> = want.iter().map(|&v| f64::from(v)).collect();
            let err = rims::verify::relative_error(got, &wide);
            assert!(err < 1e-5, "{what} {name}: chained differs by {err:e}");
        }
    }
}

device_test!(a_seeded_final_state_gradient_equals_one_on_the_last_row);
fn a_seeded_final_state_gradient_equals_one_on_the_last_row(ctx: &Context) {
    // Tape::backward_from with dL/dh [T, B, N·H] and dL/dh_T [B, N·H] seeded separately gives
    // the gradients of seeding dL/dh alone with dL/dh_T added to its last row: h_T is that row.
    let cfg = lstm_chain_configs().remove(0);
    let (t_len, b) = (4, 3);
    let nh = cfg.mechanisms * cfg.hidden;
    let layer = Rims::new(cfg.clone()).unwrap();
    let store = ParamStore::new(ctx, &param_specs(&cfg), 31).unwrap();
    let mut rng = Rng::new(32);
    let x = rng.vec_f32(t_len * b * cfg.input, -1.0, 1.0);
    let gh = rng.vec_f32(t_len * b * nh, -1.0, 1.0);
    let ght = rng.vec_f32(b * nh, -1.0, 1.0);
    let up = |shape: &[usize], v: &[f32]| Tensor::from_slice(ctx, shape, v).unwrap();
    let run = |separately: bool| {
        store.zero_grads(ctx).unwrap();
        let mut tape = Tape::new();
        let xv = tape.input(up(&[t_len, b, cfg.input], &x));
        let out = layer
            .forward(ctx, &mut tape, &store, xv, &RimsOptions::default())
            .unwrap();
        let seeds = if separately {
            vec![
                (out.h, up(&[t_len, b, nh], &gh)),
                (out.final_h, up(&[b, nh], &ght)),
            ]
        } else {
            let mut all = gh.clone();
            let last = (t_len - 1) * b * nh;
            all[last..].iter_mut().zip(&ght).for_each(|(a, g)| *a += g);
            vec![(out.h, up(&[t_len, b, nh], &all))]
        };
        let grads = tape.backward_from(ctx, seeds).unwrap();
        let mut g = grads.get(xv).unwrap().to_vec(ctx).unwrap();
        g.extend(store.flat_grads().to_vec(ctx).unwrap());
        g
    };
    let (a, b2) = (run(true), run(false));
    let wide: Vec<f64> = b2.iter().map(|&v| f64::from(v)).collect();
    let err = rims::verify::relative_error(&a, &wide);
    assert!(err < 1e-6, "seeded h_T differs by {err:e}");
    assert!(a.iter().any(|&v| v != 0.0));
}

device_test!(backward_from_refuses_a_gradient_of_the_wrong_size);
fn backward_from_refuses_a_gradient_of_the_wrong_size(ctx: &Context) {
    let cfg = tiny(CellKind::Gru, 3, 2);
    let layer = Rims::new(cfg.clone()).unwrap();
    let store = ParamStore::new(ctx, &param_specs(&cfg), 1).unwrap();
    let mut tape = Tape::new();
    let x = tape.constant(Tensor::full(ctx, &[2, 1, cfg.input], 0.3).unwrap());
    let out = layer
        .forward(ctx, &mut tape, &store, x, &RimsOptions::default())
        .unwrap();
    let wrong = Tensor::zeros(ctx, &[3]).unwrap();
    let err = tape.backward_from(ctx, vec![(out.h, wrong)]).err().unwrap();
    assert!(err.to_string().contains("must have"), "{err}");
}

device_test!(initial_state_options_are_checked);
fn initial_state_options_are_checked(ctx: &Context) {
    let (t_len, b) = (2, 2);
    for cell in [CellKind::Lstm, CellKind::Gru] {
        let cfg = tiny(cell, 4, 2);
        let nh = cfg.mechanisms * cfg.hidden;
        let layer = Rims::new(cfg.clone()).unwrap();
        let store = ParamStore::new(ctx, &param_specs(&cfg), 3).unwrap();
        let state = || Tensor::zeros(ctx, &[b, nh]).unwrap();
        let mut tape = Tape::new();
        let xv = tape.constant(Tensor::zeros(ctx, &[t_len, b, cfg.input]).unwrap());
        let sv = tape.input(state());
        let short = tape.input(Tensor::zeros(ctx, &[b, nh - 1]).unwrap());
        let mut check = |opts: RimsOptions, want: &str| {
            let err = match layer.forward(ctx, &mut tape, &store, xv, &opts) {
                Ok(_) => panic!("{cell:?}: {opts:?} must be refused"),
                Err(e) => e.to_string(),
            };
            assert!(err.contains(want), "{cell:?}: '{err}' should say '{want}'");
        };
        let both = RimsOptions {
            h0: Some(state()),
            h0_var: Some(sv),
            ..Default::default()
        };
        check(both, "give h0 or h0_var, not both");
        let wrong = RimsOptions {
            h0_var: Some(short),
            ..Default::default()
        };
        check(wrong, "h0 must have B·N·H");
        let c = RimsOptions {
            c0_var: Some(sv),
            ..Default::default()
        };
        if cell == CellKind::Gru {
            check(c, "GRU cells have no cell state");
        } else {
            layer.forward(ctx, &mut tape, &store, xv, &c).unwrap();
        }
    }
}

#[test]
fn size_limits_are_config_errors_naming_the_field() {
    // The kernels' limits (communication::MAX_N mechanisms, input_attention::MAX_SCORES scores
    // per row) are RimsConfig::validate's, and Rims::new says exactly what validate says.
    use rims::Error;
    use rims::ops::{communication::MAX_N, input_attention::MAX_SCORES};
    let field_of = |cfg: &RimsConfig| match Rims::new(cfg.clone()) {
        Err(Error::Config { field, reason }) => {
            let Err(Error::Config { field: f2, .. }) = cfg.validate() else {
                panic!("validate accepts what Rims::new refuses: {reason}");
            };
            assert_eq!(field, f2);
            field
        }
        other => panic!("expected a config error, got {other:?}"),
    };
    let at_limit = RimsConfig {
        mechanisms: MAX_N,
        ..tiny(CellKind::Gru, 4, 2)
    };
    assert!(Rims::new(at_limit.clone()).is_ok());
    let too_many = RimsConfig {
        mechanisms: MAX_N + 1,
        ..at_limit.clone()
    };
    assert_eq!(field_of(&too_many), "mechanisms");
    let heads = MAX_SCORES / MAX_N;
    let scores_at_limit = RimsConfig {
        input_heads: heads,
        ..at_limit.clone()
    };
    assert!(Rims::new(scores_at_limit).is_ok());
    let too_many_scores = RimsConfig {
        input_heads: heads + 1,
        ..at_limit
    };
    assert_eq!(field_of(&too_many_scores), "input_heads");
}
