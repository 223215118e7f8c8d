//! The adding task's model path: a linear input layer and a regression head with MSE.
//!
//! The linear input is checked against the embedding path, which the cell reference already
//! covers: one-hot features through `in_w = embed` (and `in_b = 0`) are the embedding lookup,
//! so the two models must agree in outputs and gradients. Then a tiny RIMs model must learn the
//! adding problem well below the always-predict-1 baseline (MSE ≈ 1/6).

use std::path::PathBuf;

use rims::nn::model::{Backbone, InputLayer, Model, ModelConfig, Pass, Readout};
use rims::nn::{CellKind, RimsConfig};
use rims::rng::Rng;
use rims::tape::Tape;
use rims::train::{self, Quiet, Task, TrainConfig};
use rims::{Context, Tensor};

use crate::common::{assert_close, to_f64};

const T: usize = 5;
const B: usize = 3;
const V: usize = 6;

fn config(input: InputLayer, backbone: Backbone, cell: CellKind) -> ModelConfig {
    ModelConfig {
        vocab: V,
        input,
        classes: 1,
        rims: RimsConfig {
            mechanisms: 3,
            active: 2,
            hidden: 4,
            input: 5,
            input_key: 4,
            input_value: 6,
            comm_heads: 2,
            comm_key: 3,
            comm_value: 3,
            cell,
            dropout: 0.0,
            ..RimsConfig::default()
        },
        dropout: 0.0,
        readout: Readout::Last,
        backbone,
    }
}

/// MSE of the last step's output against `target` [B, 1]: (loss, every gradient by name).
fn loss_and_grads(
    ctx: &Context,
    model: &Model,
    inputs: &Tensor,
    target: &Tensor,
) -> (f32, Vec<(String, Vec<f32>)>) {
    model.store.zero_grads(ctx).unwrap();
    let mut tape = Tape::new();
    let out = model
        .forward(ctx, &mut tape, inputs, None, Pass::default())
        .unwrap();
    assert_eq!(tape.value(out.logits).shape(), &[B, 1]);
    let loss = tape.mse(ctx, out.logits, target).unwrap();
    let value = tape.value(loss).to_vec(ctx).unwrap()[0];
    tape.backward(ctx, loss).unwrap();
    let grads = model
        .cfg
        .param_specs()
        .iter()
        // Frozen parameters have no gradient to compare.
        .filter(|p| p.trainable)
        .map(|p| {
            let g = model.store.grad(&p.name).unwrap().to_vec(ctx).unwrap();
            (p.name.clone(), g)
        })
        .collect();
    (value, grads)
}

device_test!(linear_input_of_one_hot_features_equals_the_embedding);
fn linear_input_of_one_hot_features_equals_the_embedding(ctx: &Context) {
    let mut rng = Rng::new(71);
    for (backbone, cell) in [
        (Backbone::Rims, CellKind::Lstm),
        (Backbone::Rims, CellKind::Gru),
        (Backbone::Dense { hidden: 7 }, CellKind::Lstm),
    ] {
        let emb = Model::new(ctx, config(InputLayer::Embedding, backbone, cell), 9).unwrap();
        let lin = Model::new(ctx, config(InputLayer::Linear, backbone, cell), 9).unwrap();
        // The same backbone and decoder (same seed); the input layer copied across.
        for p in emb.cfg.param_specs() {
            let v = emb.store.value(&p.name).unwrap().to_vec(ctx).unwrap();
            let name = if p.name == "embed" {
                "in_w"
            } else {
                p.name.as_str()
            };
            lin.store.set(ctx, name, &v).unwrap();
        }
        lin.store.set(ctx, "in_b", &[0.0; 5]).unwrap();
        let tokens: Vec<u32> = (0..T * B).map(|_| rng.below(V as u64) as u32).collect();
        let mut onehot = vec![0f32; T * B * V];
        for (i, &t) in tokens.iter().enumerate() {
            onehot[i * V + t as usize] = 1.0;
        }
        let target = Tensor::from_slice(ctx, &[B, 1], &rng.vec_f32(B, 0.0, 2.0)).unwrap();
        let tt = Tensor::from_u32(ctx, &[T, B], &tokens).unwrap();
        let ft = Tensor::from_slice(ctx, &[T, B, V], &onehot).unwrap();
        let (le, ge) = loss_and_grads(ctx, &emb, &tt, &target);
        let (ll, gl) = loss_and_grads(ctx, &lin, &ft, &target);
        let what = format!("{backbone:?} {cell:?}");
        assert!(
            (le - ll).abs() <= 1e-6 * le.abs().max(1.0),
            "{what}: loss {le} vs {ll}"
        );
        let lin_grad = |name: &str| &gl.iter().find(|(n, _)| n == name).unwrap().1;
        for (name, a) in &ge {
            let b = lin_grad(if name == "embed" { "in_w" } else { name });
            assert_close(&format!("{what} d{name}"), b, &to_f64(a), 1e-7, 1e-5);
        }
        // d in_b is the sum over rows of dx: the row sums of d in_w, as each step has one hot.
        let d_in_w = lin_grad("in_w");
        let want_b: Vec<f64> = (0..5)
            .map(|c| (0..V).map(|r| d_in_w[r * 5 + c] as f64).sum())
            .collect();
        assert_close(
            &format!("{what} d in_b"),
            lin_grad("in_b"),
            &want_b,
            1e-6,
            1e-4,
        );
    }
}

device_test!(linear_input_refuses_features_of_the_wrong_width);
fn linear_input_refuses_features_of_the_wrong_width(ctx: &Context) {
    let lin = Model::new(
        ctx,
        config(InputLayer::Linear, Backbone::Rims, CellKind::Lstm),
        1,
    )
    .unwrap();
    let x = Tensor::zeros(ctx, &[T, B, V + 1]).unwrap();
    let mut tape = Tape::untracked();
    let err = lin
        .forward(ctx, &mut tape, &x, None, Pass::default())
        .err()
        .expect("wrong width accepted");
    assert!(err.to_string().contains(&format!("[T, B, {V}]")), "{err}");
    let tokens = Tensor::from_u32(ctx, &[T, B], &[0; T * B]).unwrap();
    assert!(
        lin.forward(ctx, &mut tape, &tokens, None, Pass::default())
            .is_err()
    );
}

fn dir(tag: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("rims-adding-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

device_test!(rims_learns_the_adding_problem);
fn rims_learns_the_adding_problem(ctx: &Context) {
    let cfg = TrainConfig {
        task: Task::Adding,
        mechanisms: 3,
        active: 2,
        hidden: 8,
        embed: 8,
        input_key: 8,
        input_value: 8,
        comm_heads: 1,
        comm_key: 4,
        comm_value: 4,
        batch: 16,
        epochs: 3,
        iterations: 100,
        train_len: 6,
        test_len: 12,
        lr: 1e-2,
        eval_every: 1,
        ..TrainConfig::default()
    };
    let out = dir("learn");
    let s = train::train(ctx, &cfg, &out, false, &mut Quiet).unwrap();
    let first = &s.history[0].eval;
    let last = &s.history.last().unwrap().eval;
    eprintln!("adding: {first:?} -> {last:?}");
    assert_eq!(
        (last[0].split.as_str(), last[0].size, last[1].size),
        ("add", 6, 12)
    );
    // Predicting the mean sum (1) scores 1/6; a model that adds does far better.
    assert!(last[0].loss < 0.05, "MSE at T = 6: {}", last[0].loss);
    assert!(last[0].loss < first[0].loss);
    assert!(last[0].accuracy > 0.2, "within 0.04: {}", last[0].accuracy);
    std::fs::remove_dir_all(&out).unwrap();
}
