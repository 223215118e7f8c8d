//! The frame model (the bouncing-balls task's encoder → core → decoder, `nn::frames`): its
//! gradients through every layer against central differences of its own forward, and its
//! shape checks.

use rims::device::DeviceKind;
use rims::nn::frames::FrameNet;
use rims::nn::model::{Backbone, InputLayer, Model, ModelConfig, Pass, Readout};
use rims::nn::{CellKind, RimsConfig};
use rims::ops::optim::{Adam, AdamConfig};
use rims::rng::Rng;
use rims::tape::Tape;
use rims::train::{Target, record_step};
use rims::{Context, Error, Tensor};

use crate::common::fresh;

const NET: FrameNet = FrameNet {
    size: 16,
    channels: [2, 3, 2],
    dense: 5,
};

fn tiny(ctx: &Context, backbone: Backbone) -> Model {
    let pixels = NET.pixels();
    let cfg = ModelConfig {
        vocab: pixels,
        input: InputLayer::Frames(NET),
        classes: pixels,
        rims: RimsConfig {
            mechanisms: 2,
            active: 1,
            hidden: 4,
            input: 6,
            input_key: 4,
            input_value: 4,
            comm_heads: 1,
            comm_key: 4,
            comm_value: 4,
            cell: CellKind::Lstm,
            ..RimsConfig::default()
        },
        dropout: 0.0,
        readout: Readout::All,
        backbone,
    };
    Model::new(ctx, cfg, 5).unwrap()
}

/// Frames [T, B, S, S] in [0, 1] and next-frame targets [T·B, S²].
fn batch(ctx: &Context, t: usize, b: usize) -> (Tensor, Tensor) {
    let mut rng = Rng::new(9);
    let n = t * b * NET.pixels();
    let x = Tensor::from_slice(ctx, &[t, b, NET.size, NET.size], &rng.vec_f32(n, 0.0, 1.0));
    let y = Tensor::from_slice(ctx, &[t * b, NET.pixels()], &rng.vec_f32(n, 0.0, 1.0));
    (x.unwrap(), y.unwrap())
}

/// The loss, and with `grads` every parameter's gradient by name.
fn loss(ctx: &Context, model: &Model, x: &Tensor, y: &Tensor, tracked: bool) -> f32 {
    let mut tape = if tracked {
        Tape::new()
    } else {
        Tape::untracked()
    };
    if tracked {
        model.store.zero_grads(ctx).unwrap();
    }
    let out = model
        .forward(ctx, &mut tape, x, None, Pass::default())
        .unwrap();
    let rows = y.shape()[0];
    let l = tape.binary_cross_entropy(ctx, out.logits, y, rows).unwrap();
    let value = tape.value(l).to_vec(ctx).unwrap()[0];
    if tracked {
        tape.backward(ctx, l).unwrap();
    }
    value
}

device_test!(frame_model_gradients_match_central_differences);
fn frame_model_gradients_match_central_differences(ctx: &Context) {
    // A dense core: RIMs' top-k choice is not differentiable, and the frame networks are what
    // is checked here (the RIMs layer's gradients have tests of their own).
    let model = tiny(ctx, Backbone::Dense { hidden: 5 });
    let (x, y) = batch(ctx, 3, 2);
    loss(ctx, &model, &x, &y, true);
    let base = loss(ctx, &model, &x, &y, false);
    let h = 2e-3f32;
    let (mut worst, mut checked, mut kinked) = ((0.0f32, String::new()), 0, Vec::new());
    for spec in model.cfg.param_specs() {
        let name = &spec.name;
        let grad = model.store.grad(name).unwrap().to_vec(ctx).unwrap();
        let values = model.store.value(name).unwrap().to_vec(ctx).unwrap();
        for i in [0, values.len() / 2, values.len() - 1] {
            let mut v = values.clone();
            v[i] = values[i] + h;
            model.store.set(ctx, name, &v).unwrap();
            let up = loss(ctx, &model, &x, &y, false);
            v[i] = values[i] - h;
            model.store.set(ctx, name, &v).unwrap();
            let down = loss(ctx, &model, &x, &y, false);
            model.store.set(ctx, name, &values).unwrap();
            // A ReLU within h of its kink makes the one-sided slopes disagree: no central
            // difference is a derivative there.
            let (right, left) = ((up - base) / h, (base - down) / h);
            if (right - left).abs() > 0.02 + 0.2 * right.abs().max(left.abs()) {
                kinked.push(format!("{name}[{i}]"));
                continue;
            }
            let fd = (up - down) / (2.0 * h);
            let err = (grad[i] - fd).abs() / (0.02 + 0.05 * fd.abs().max(grad[i].abs()));
            if err > worst.0 {
                worst = (err, format!("{name}[{i}]: tape {} against {fd}", grad[i]));
            }
            checked += 1;
        }
    }
    assert!(
        kinked.len() * 10 <= checked,
        "too many points at a kink: {kinked:?}"
    );
    assert!(worst.0 <= 1.0, "worst gradient: {}", worst.1);
}

device_test!(frame_model_refuses_frames_of_another_size);
fn frame_model_refuses_frames_of_another_size(ctx: &Context) {
    let model = tiny(ctx, rims::nn::model::Backbone::Rims);
    let x = Tensor::zeros(ctx, &[2, 1, 8, 8]).unwrap();
    let mut tape = Tape::untracked();
    let err = model
        .forward(ctx, &mut tape, &x, None, Pass::default())
        .err()
        .unwrap();
    assert!(matches!(err, Error::Shape { .. }), "{err}");
    assert!(err.to_string().contains("[T, B, 16, 16]"), "{err}");
}

#[test]
fn frame_sizes_are_checked() {
    let bad = FrameNet { size: 12, ..NET };
    let err = bad.validate().unwrap_err();
    assert!(err.to_string().contains("frame_size"), "{err}");
    let bad = FrameNet {
        channels: [2, 0, 2],
        ..NET
    };
    assert!(bad.validate().unwrap_err().to_string().contains("channels"));
    let bad = FrameNet { dense: 0, ..NET };
    assert!(bad.validate().unwrap_err().to_string().contains("dense"));
}

/// Dispatches of one training step (forward, loss, backward, Adam) on `t` frames, after the
/// step has run once (pipelines compiled).
fn step_dispatches(ctx: &Context, model: &Model, adam: &mut Adam, t: usize) -> u64 {
    let (x, y) = batch(ctx, t, 2);
    let mut step = || {
        let before = ctx.recorder_stats();
        let done = record_step(
            ctx,
            model,
            adam,
            &x,
            Target::Frames(&y),
            None,
            Pass::default(),
        );
        let loss = done.unwrap().loss.to_vec(ctx).unwrap()[0];
        assert!(loss.is_finite());
        ctx.recorder_stats().dispatches - before.dispatches
    };
    step();
    step()
}

device_test!(frame_model_step_budget_and_no_allocation_per_step, fresh);
fn frame_model_step_budget_and_no_allocation_per_step(kind: DeviceKind) {
    let Some(ctx) = fresh(kind) else {
        return;
    };
    let model = tiny(&ctx, Backbone::Rims);
    let mut adam = Adam::new(&ctx, model.store.trainable_len(), AdamConfig::default()).unwrap();
    // The frame networks run once over all T·B frames: only the core's per-step dispatches
    // (8 forward and at most 14 backward, tests/ops/rims.rs) grow with T.
    let (d3, d6) = (
        step_dispatches(&ctx, &model, &mut adam, 3),
        step_dispatches(&ctx, &model, &mut adam, 6),
    );
    let per_step = (d6 - d3) / 3;
    eprintln!("{kind:?}: a frame-model step is {d3} dispatches at T = 3, {per_step} more per step");
    assert!(per_step <= 22, "{per_step} dispatches per time step");
    // The pool serves every step once the shapes have been seen.
    step_dispatches(&ctx, &model, &mut adam, 6);
    let seen = ctx.pool_stats();
    for _ in 0..3 {
        step_dispatches(&ctx, &model, &mut adam, 6);
    }
    let now = ctx.pool_stats();
    assert_eq!(
        now.allocations, seen.allocations,
        "no buffer created per step"
    );
    assert_eq!(
        now.bytes_live, seen.bytes_live,
        "nothing kept from step to step"
    );
}

device_test!(a_carried_state_continues_the_sequence);
fn a_carried_state_continues_the_sequence(ctx: &Context) {
    // What a rollout relies on: frames 0..3 in one call equal frames 0..2 and then frame 2 alone
    // from the carried state, for RIMs and for a dense core.
    for backbone in [Backbone::Rims, Backbone::Dense { hidden: 5 }] {
        let model = tiny(ctx, backbone);
        let (x, _) = batch(ctx, 3, 2);
        let frame = 2 * NET.pixels();
        let run = |x: &Tensor, state| {
            let mut tape = Tape::untracked();
            let out = model
                .forward(ctx, &mut tape, x, state, Pass::default())
                .unwrap();
            let logits = tape.value(out.logits).to_vec(ctx).unwrap();
            (logits, (out.h_last, out.c_last))
        };
        let (whole, _) = run(&x, None);
        let first = x.slice_copy(ctx, 0, &[2, 2, NET.size, NET.size]).unwrap();
        let last = x
            .slice_copy(ctx, 2 * frame, &[1, 2, NET.size, NET.size])
            .unwrap();
        let (_, state) = run(&first, None);
        let (stepped, _) = run(&last, Some(state));
        let want = &whole[2 * frame..];
        let worst = stepped
            .iter()
            .zip(want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            worst < 1e-5,
            "{backbone:?}: the stepped logits differ by {worst}"
        );
    }
}

device_test!(only_a_frame_model_rolls_out);
fn only_a_frame_model_rolls_out(ctx: &Context) {
    let frames = tiny(ctx, Backbone::Rims);
    let tokens = Model::new(
        ctx,
        ModelConfig {
            vocab: 4,
            input: InputLayer::Embedding,
            classes: 4,
            ..frames.cfg.clone()
        },
        1,
    )
    .unwrap();
    let err = rims::train::balls::rollout(ctx, &tokens, &[0.0; 16], 1, 2, 2).unwrap_err();
    assert!(err.to_string().contains("only a frame model"), "{err}");
    // Frames that are not given + horizon frames of the model's size are refused too.
    let err = rims::train::balls::rollout(ctx, &frames, &[0.0; 100], 1, 2, 2).unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err}");
}
