//! The step-by-step runner against whole-sequence inference: the same states, masks and logits
//! one step at a time, for batch 1 and 3, LSTM and GRU; reset; loading a checkpoint; the
//! error paths; one submit per step.

use rims::device::DeviceKind;
use rims::nn::CellKind;
use rims::nn::model::{Model, Pass};
use rims::nn::runner::{Runner, RunnerState};
use rims::ops::optim::{Adam, AdamConfig};
use rims::rng::Rng;
use rims::tape::Tape;
use rims::train::TrainConfig;
use rims::train::checkpoint::load_model;
use rims::train::checkpoint::{self, Progress};
use rims::{Context, Tensor};

use crate::common::{assert_close, fresh, to_f64};

/// The copying task's vocabulary and classes.
const VOCAB: usize = 20;
const CLASSES: usize = 20;

/// A small copying model: `backbone` is "rims", or "lstm" / "gru" for a dense baseline.
fn config(backbone: &str, cell: &str) -> TrainConfig {
    TrainConfig {
        model: backbone.into(),
        cell: cell.into(),
        mechanisms: 4,
        active: 2,
        hidden: 6,
        embed: 8,
        input_key: 4,
        input_value: 5,
        comm_heads: 2,
        comm_key: 3,
        comm_value: 3,
        // Must not apply: the runner is inference.
        cell_dropout: 0.1,
        dropout: 0.5,
        ..TrainConfig::default()
    }
}

fn model(ctx: &Context, cell: CellKind, seed: u64) -> Model {
    let name = match cell {
        CellKind::Lstm => "lstm",
        CellKind::Gru => "gru",
    };
    Model::new(ctx, config("rims", name).model().unwrap(), seed).unwrap()
}

/// Every step's (h, c, logits, active) from the runner, reading the state after each step.
type Trace = Vec<(Vec<f32>, Option<Vec<f32>>, Vec<f32>, Vec<bool>)>;

fn run_steps(ctx: &Context, runner: &mut Runner, tokens: &[u32], b: usize) -> Trace {
    tokens
        .chunks(b)
        .map(|row| {
            let out = runner.step(ctx, row).unwrap();
            assert_eq!((out.batch, out.classes), (b, CLASSES));
            let s = runner.state();
            let c = s.c.as_ref().map(|c| c.to_vec(ctx).unwrap());
            (s.h.to_vec(ctx).unwrap(), c, out.logits, out.active)
        })
        .collect()
}

/// Steps `m` through T random tokens at batch `b` and compares every step with one
/// whole-sequence `run_features` (and the logits with `Model::forward` in evaluation mode).
fn check_stepping(ctx: &Context, m: &Model, b: usize, what: &str) {
    let t_len = 6;
    let lstm = m.cfg.rims.cell == CellKind::Lstm;
    let nh = m.store.shape("dec_w").unwrap()[0];
    let mut rng = Rng::new(5 + b as u64);
    let tokens: Vec<u32> = (0..t_len * b)
        .map(|_| rng.below(VOCAB as u64) as u32)
        .collect();
    let tt = Tensor::from_u32(ctx, &[t_len, b], &tokens).unwrap();
    // The whole sequence at once.
    let x = m.embed(ctx, &tt).unwrap();
    let whole = m.run_features(ctx, &x, None, None, None).unwrap();
    let h_all = whole.h.to_vec(ctx).unwrap();
    let c_all = whole.c.as_ref().map(|c| c.to_vec(ctx).unwrap());
    let logits_all = whole.logits.to_vec(ctx).unwrap();
    let masks_all = whole.masks.to_vec(ctx).unwrap();
    let n = masks_all.len() / (t_len * b);
    // Model::forward in evaluation mode gives the same logits.
    let mut tape = Tape::untracked();
    let fwd = m
        .forward(ctx, &mut tape, &tt, None, Pass::default())
        .unwrap();
    let fwd_logits = tape.value(fwd.logits).to_vec(ctx).unwrap();
    assert_close(
        &format!("{what}: forward vs run_features"),
        &fwd_logits,
        &to_f64(&logits_all),
        1e-5,
        1e-5,
    );

    let mut runner = Runner::new(ctx, m, b).unwrap();
    let trace = run_steps(ctx, &mut runner, &tokens, b);
    assert_eq!(runner.steps(), t_len as u64);
    for (t, (h, c, logits, active)) in trace.iter().enumerate() {
        let what = format!("{what} t={t}");
        let rows = t * b..(t + 1) * b;
        let hs = &h_all[rows.start * nh..rows.end * nh];
        assert_close(&format!("{what} h"), h, &to_f64(hs), 1e-5, 1e-5);
        assert_eq!(c.is_some(), lstm, "{what}: c state");
        if let (Some(c), Some(c_all)) = (c, &c_all) {
            let cs = &c_all[rows.start * nh..rows.end * nh];
            assert_close(&format!("{what} c"), c, &to_f64(cs), 1e-5, 1e-5);
        }
        let ls = &logits_all[rows.start * CLASSES..rows.end * CLASSES];
        assert_close(&format!("{what} logits"), logits, &to_f64(ls), 1e-5, 1e-5);
        let ms: Vec<bool> = masks_all[rows.start * n..rows.end * n]
            .iter()
            .map(|&v| v > 0.5)
            .collect();
        assert_eq!(active, &ms, "{what}: masks");
    }

    // Raw features give the same as tokens.
    runner.reset();
    let xs = x.to_vec(ctx).unwrap();
    let d = m.cfg.rims.input;
    for (t, step) in trace.iter().enumerate() {
        let out = runner
            .step_features(ctx, &xs[t * b * d..(t + 1) * b * d])
            .unwrap();
        assert_close(
            &format!("{what} t={t} features"),
            &out.logits,
            &to_f64(&step.2),
            1e-6,
            0.0,
        );
    }
}

device_test!(stepping_matches_the_whole_sequence);
fn stepping_matches_the_whole_sequence(ctx: &Context) {
    for cell in [CellKind::Lstm, CellKind::Gru] {
        for b in [1usize, 3] {
            let m = model(ctx, cell, 11 + b as u64);
            check_stepping(ctx, &m, b, &format!("RIMs {cell:?} B={b}"));
            // k of the N mechanisms are active in every row at every step.
            let mut runner = Runner::new(ctx, &m, b).unwrap();
            for t in 0..3 {
                let out = runner.step(ctx, &vec![t; b]).unwrap();
                assert_eq!(out.mechanisms, m.cfg.rims.mechanisms);
                for row in 0..b {
                    assert_eq!(out.active_mechanisms(row).len(), m.cfg.rims.active);
                }
            }
        }
    }
}

device_test!(stepping_a_dido_model_matches_the_whole_sequence);
fn stepping_a_dido_model_matches_the_whole_sequence(ctx: &Context) {
    for cell in ["lstm", "gru"] {
        // Variant D through the training configuration (`variant`, d_vc = H).
        let cfg = TrainConfig {
            variant: "dido".into(),
            comm_value: 6,
            ..config("rims", cell)
        };
        let m = Model::new(ctx, cfg.model().unwrap(), 13).unwrap();
        assert_eq!(m.cfg.rims.variant, rims::nn::Variant::Dido);
        check_stepping(ctx, &m, 3, &format!("RIMs D {cell} B=3"));
    }
}

device_test!(stepping_a_dense_baseline_matches_the_whole_sequence);
fn stepping_a_dense_baseline_matches_the_whole_sequence(ctx: &Context) {
    for name in ["lstm", "gru"] {
        let m = Model::new(ctx, config(name, "lstm").model().unwrap(), 9).unwrap();
        check_stepping(ctx, &m, 3, &format!("dense {name} B=3"));
        let mut runner = Runner::new(ctx, &m, 1).unwrap();
        let out = runner.step(ctx, &[2]).unwrap();
        assert_eq!(out.active, vec![true]);
        assert_eq!(out.active_mechanisms(0), vec![0]);
    }
}

device_test!(reset_and_set_state);
fn reset_and_set_state(ctx: &Context) {
    for cell in [CellKind::Lstm, CellKind::Gru] {
        let m = model(ctx, cell, 3);
        let b = 2;
        let tokens = [1u32, 2, 3, 4, 5, 6, 0, 1];
        let mut runner = Runner::new(ctx, &m, b).unwrap();
        let first = run_steps(ctx, &mut runner, &tokens, b);
        runner.reset();
        assert_eq!(runner.steps(), 0);
        assert!(
            runner
                .state()
                .h
                .to_vec(ctx)
                .unwrap()
                .iter()
                .all(|&v| v == 0.0)
        );
        let again = run_steps(ctx, &mut runner, &tokens, b);
        assert_eq!(first, again, "{cell:?}: a reset runner repeats itself");

        // Restoring a saved state continues from there.
        runner.reset();
        runner.step(ctx, &tokens[..2]).unwrap();
        let saved = runner.state().clone();
        let next = runner.step(ctx, &tokens[2..4]).unwrap();
        runner.step(ctx, &[0, 0]).unwrap();
        runner.set_state(saved.clone()).unwrap();
        assert_eq!(runner.step(ctx, &tokens[2..4]).unwrap(), next);

        // A state of the wrong size or kind is refused and changes nothing.
        let small = Tensor::zeros(ctx, &[1, 3]).unwrap();
        let bad = RunnerState {
            h: small.clone(),
            c: saved.c.clone(),
        };
        assert!(runner.set_state(bad).is_err());
        let wrong_kind = RunnerState {
            h: saved.h.clone(),
            c: match cell {
                CellKind::Lstm => None,
                CellKind::Gru => Some(saved.h.clone()),
            },
        };
        assert!(runner.set_state(wrong_kind).is_err());
    }
}

device_test!(bad_inputs_are_errors_and_change_nothing);
fn bad_inputs_are_errors_and_change_nothing(ctx: &Context) {
    let m = model(ctx, CellKind::Lstm, 4);
    assert!(Runner::new(ctx, &m, 0).is_err());
    let mut runner = Runner::new(ctx, &m, 3).unwrap();
    runner.step(ctx, &[1, 2, 3]).unwrap();
    let h = runner.state().h.to_vec(ctx).unwrap();
    let e = runner.step(ctx, &[1, 2]).unwrap_err().to_string();
    assert!(e.contains("one token per batch row"), "{e}");
    assert!(runner.step(ctx, &[1, 2, 3, 4]).is_err());
    let e = runner
        .step(ctx, &[1, VOCAB as u32, 2])
        .unwrap_err()
        .to_string();
    assert!(e.contains("vocabulary") && e.contains("row 1"), "{e}");
    assert!(runner.step(ctx, &[u32::MAX, 0, 0]).is_err());
    let e = runner
        .step_features(ctx, &[0.0; 5])
        .unwrap_err()
        .to_string();
    assert!(e.contains("features"), "{e}");
    assert_eq!(runner.steps(), 1);
    assert_eq!(runner.state().h.to_vec(ctx).unwrap(), h);
    // Still usable.
    runner.step(ctx, &[0, 0, 0]).unwrap();
    assert_eq!(runner.steps(), 2);
}

device_test!(one_submit_per_step_and_no_allocation_after_the_first, fresh);
fn one_submit_per_step_and_no_allocation_after_the_first(kind: DeviceKind) {
    let Some(ctx) = fresh(kind) else { return };
    let m = model(&ctx, CellKind::Lstm, 6);
    let mut runner = Runner::new(&ctx, &m, 1).unwrap();
    runner.step(&ctx, &[1]).unwrap();
    runner.step(&ctx, &[2]).unwrap();
    let (r0, p0) = (ctx.recorder_stats(), ctx.pool_stats());
    for t in 0..5 {
        runner.step(&ctx, &[t]).unwrap();
    }
    let (r1, p1) = (ctx.recorder_stats(), ctx.pool_stats());
    assert_eq!(r1.submits - r0.submits, 5, "one submit per step");
    assert_eq!(p1.allocations, p0.allocations, "the pool serves every step");
}

device_test!(load_model_reads_a_checkpoint);
fn load_model_reads_a_checkpoint(ctx: &Context) {
    let dir = std::env::temp_dir().join(format!(
        "rims-runner-ckpt-{}-{}",
        ctx.kind().name(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let config = TrainConfig::default();
    let trained = Model::new(ctx, config.model().unwrap(), 77).unwrap();
    let adam = Adam::new(ctx, trained.store.trainable_len(), AdamConfig::default()).unwrap();
    let progress = Progress {
        epoch: 1,
        step: 3,
        seconds: 0.5,
    };
    checkpoint::save(ctx, &dir, &config, &trained, &adam, &progress, None).unwrap();
    let loaded = load_model(ctx, &dir).unwrap();
    assert_eq!(loaded.cfg, trained.cfg);
    assert_eq!(
        loaded.store.flat_values().to_vec(ctx).unwrap(),
        trained.store.flat_values().to_vec(ctx).unwrap()
    );
    let tokens = [3u32, 1, 4, 1, 5];
    let mut a = Runner::new(ctx, &trained, 1).unwrap();
    let mut b = Runner::new(ctx, &loaded, 1).unwrap();
    for &t in &tokens {
        assert_eq!(a.step(ctx, &[t]).unwrap(), b.step(ctx, &[t]).unwrap());
    }
    // Not a checkpoint: an error naming the file.
    let e = load_model(ctx, &dir.join("nowhere"))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("train.json"), "{e}");
    std::fs::remove_file(
        checkpoint::current(&dir)
            .unwrap()
            .join(checkpoint::MODEL_FILE),
    )
    .unwrap();
    assert!(load_model(ctx, &dir).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}
