//! Training with the tape, the parameter store and the GPU optimizer: a small MLP follows the
//! f64 reference's loss trajectory, and memory stays flat over many steps.

use rims::device::DeviceKind;
use rims::nn::{Init, ParamSpec, ParamStore};
use rims::ops::optim::{Adam, AdamConfig};
use rims::reference::optim::{AdamState, adam_step};
use rims::reference::{cross_entropy as ref_ce, elementwise as ref_ew, matmul as ref_mm};
use rims::rng::Rng;
use rims::tape::Tape;
use rims::{Context, Result, Tensor};

use crate::common::fresh;

const B: usize = 8;
const D: usize = 6;
const H: usize = 16;
const C: usize = 4;

fn specs() -> Vec<ParamSpec> {
    vec![
        ParamSpec::new("w1", &[D, H], Init::Uniform(-0.4, 0.4)),
        ParamSpec::new("b1", &[H], Init::Uniform(-0.1, 0.1)),
        ParamSpec::new("w2", &[H, C], Init::Uniform(-0.4, 0.4)),
        ParamSpec::new("b2", &[C], Init::Zeros),
    ]
}

fn data(seed: u64) -> (Vec<f32>, Vec<u32>) {
    let mut rng = Rng::new(seed);
    let x = rng.vec_f32(B * D, -1.0, 1.0);
    // A learnable rule: the class is the index of the largest of the first C features.
    let y = (0..B)
        .map(|b| {
            (0..C)
                .max_by(|&i, &j| x[b * D + i].total_cmp(&x[b * D + j]))
                .unwrap() as u32
        })
        .collect();
    (x, y)
}

/// One training step, recorded; returns the loss tensor (read lazily).
fn train_step(
    ctx: &Context,
    store: &ParamStore,
    opt: &mut Adam,
    x: &Tensor,
    y: &Tensor,
) -> Result<Tensor> {
    store.zero_grads(ctx)?;
    let mut tape = Tape::new();
    let (w1, b1) = (tape.param(store, "w1")?, tape.param(store, "b1")?);
    let (w2, b2) = (tape.param(store, "w2")?, tape.param(store, "b2")?);
    let xv = tape.constant(x.clone());
    let h = tape.matmul(ctx, xv, w1, Some(b1))?;
    let h = tape.tanh(ctx, h)?;
    let logits = tape.matmul(ctx, h, w2, Some(b2))?;
    let loss = tape.cross_entropy(ctx, logits, y)?;
    let loss_t = tape.value(loss).clone();
    tape.backward(ctx, loss)?;
    opt.step(ctx, store.flat_values(), store.flat_grads())?;
    Ok(loss_t)
}

/// The same model in f64: returns the loss and the flat gradient in the store's layout order
/// (w1, b1, w2, b2) for the given parameters.
fn reference_step(p: &[Vec<f64>; 4], x: &[f64], y: &[u32]) -> (f64, [Vec<f64>; 4]) {
    let [w1, b1, w2, b2] = p;
    let pre: Vec<f64> = ref_mm::matmul(x, w1, B, D, H)
        .iter()
        .enumerate()
        .map(|(i, v)| v + b1[i % H])
        .collect();
    let h: Vec<f64> = pre.iter().map(|v| v.tanh()).collect();
    let logits: Vec<f64> = ref_mm::matmul(&h, w2, B, H, C)
        .iter()
        .enumerate()
        .map(|(i, v)| v + b2[i % C])
        .collect();
    let (loss, dlogits) = ref_ce::mean_cross_entropy(&logits, y, B, C);
    let (dh, dw2) = ref_mm::matmul_backward(&h, w2, &dlogits, B, H, C);
    let db2: Vec<f64> = (0..C)
        .map(|j| (0..B).map(|i| dlogits[i * C + j]).sum())
        .collect();
    let dpre = ref_ew::tanh_backward(&h, &dh);
    let (_, dw1) = ref_mm::matmul_backward(x, w1, &dpre, B, D, H);
    let db1: Vec<f64> = (0..H)
        .map(|j| (0..B).map(|i| dpre[i * H + j]).sum())
        .collect();
    (loss, [dw1, db1, dw2, db2])
}

device_test!(mlp_follows_the_reference_trajectory_for_50_steps);
fn mlp_follows_the_reference_trajectory_for_50_steps(ctx: &Context) {
    let store = ParamStore::new(ctx, &specs(), 7).unwrap();
    let cfg = AdamConfig {
        lr: 1e-2,
        clip_norm: Some(0.5),
        weight_decay: 1e-3,
        ..AdamConfig::default()
    };
    let mut opt = Adam::new(ctx, store.trainable_len(), cfg).unwrap();
    let (x, y) = data(1);
    let xt = Tensor::from_slice(ctx, &[B, D], &x).unwrap();
    let yt = Tensor::from_u32(ctx, &[B], &y).unwrap();

    // The reference starts from the GPU store's initial values.
    let host = store.to_host(ctx).unwrap();
    let names = ["w1", "b1", "w2", "b2"];
    let mut p: [Vec<f64>; 4] = names.map(|n| host[n].1.iter().map(|&v| v as f64).collect());
    let mut state = AdamState::new(p.iter().map(Vec::len).sum());
    let xf: Vec<f64> = x.iter().map(|&v| v as f64).collect();

    let mut clipped_steps = 0;
    for step in 0..50 {
        let loss = train_step(ctx, &store, &mut opt, &xt, &yt)
            .unwrap()
            .to_vec(ctx)
            .unwrap()[0] as f64;
        let (want, grads) = reference_step(&p, &xf, &y);
        let rel = (loss - want).abs() / want.abs();
        assert!(
            rel < 1e-4,
            "step {step}: gpu loss {loss} vs reference {want} (relative {rel:.2e})"
        );
        let mut flat: Vec<f64> = p.concat();
        let norm = adam_step(&cfg, &mut state, &mut flat, &grads.concat()).unwrap();
        if norm > 0.5 {
            clipped_steps += 1;
        }
        let mut at = 0;
        for t in p.iter_mut() {
            let n = t.len();
            t.copy_from_slice(&flat[at..at + n]);
            at += n;
        }
    }
    assert!(clipped_steps > 0, "the test should exercise clipping");
    let final_loss = reference_step(&p, &xf, &y).0;
    assert!(
        final_loss < 0.5,
        "the model should learn the rule (final loss {final_loss})"
    );
}

device_test!(memory_stays_flat_and_a_step_is_one_submit, fresh);
fn memory_stays_flat_and_a_step_is_one_submit(kind: DeviceKind) {
    let Some(ctx) = fresh(kind) else { return };
    let ctx = &ctx;
    let store = ParamStore::new(ctx, &specs(), 8).unwrap();
    let cfg = AdamConfig {
        lr: 1e-2,
        clip_norm: Some(1.0),
        ..AdamConfig::default()
    };
    let mut opt = Adam::new(ctx, store.trainable_len(), cfg).unwrap();
    let (x, y) = data(2);
    let xt = Tensor::from_slice(ctx, &[B, D], &x).unwrap();
    let yt = Tensor::from_u32(ctx, &[B], &y).unwrap();
    let mut at_step_2 = None;
    let mut first = f32::NAN;
    let mut last = f32::NAN;
    for step in 1..=200 {
        let before = ctx.recorder_stats();
        let loss = train_step(ctx, &store, &mut opt, &xt, &yt).unwrap();
        let recorded = ctx.recorder_stats();
        let value = loss.to_vec(ctx).unwrap()[0];
        let after = ctx.recorder_stats();
        assert_eq!(recorded.submits, before.submits, "a step only records");
        assert_eq!(
            after.submits,
            before.submits + 1,
            "reading the loss submits the whole step once"
        );
        if step == 1 {
            first = value;
            eprintln!(
                "MLP training step: {} dispatches, {} pass(es), 1 submit",
                after.dispatches - before.dispatches,
                after.passes - before.passes
            );
        }
        last = value;
        drop(loss);
        if step == 2 {
            at_step_2 = Some(ctx.pool_stats());
        }
    }
    let s2 = at_step_2.unwrap();
    let s200 = ctx.pool_stats();
    assert_eq!(
        s200.bytes_live, s2.bytes_live,
        "live bytes after step 2 and step 200"
    );
    assert_eq!(
        s200.allocations, s2.allocations,
        "no buffer created after step 2"
    );
    assert_eq!(s200.bytes_allocated, s2.bytes_allocated);
    assert!(last < first, "loss fell: {first} -> {last}");
}
