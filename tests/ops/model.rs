//! The experiment model (embedding → RIMs → decoder) learns a small memory task.

use rims::Tensor;
use rims::nn::model::{Backbone, Model, ModelConfig, Pass, Readout};
use rims::nn::{CellKind, RimsConfig};
use rims::optim::{Adam, AdamConfig};
use rims::rng::Rng;
use rims::tape::Tape;

use crate::common::ctx;

#[test]
fn rims_model_learns_to_remember_the_first_token() {
    let Some(ctx) = ctx() else { return };
    for cell in [CellKind::Lstm, CellKind::Gru] {
        let rims = RimsConfig {
            mechanisms: 4,
            active: 2,
            hidden: 8,
            input: 8,
            input_key: 8,
            input_value: 8,
            comm_heads: 2,
            comm_key: 4,
            comm_value: 4,
            cell,
            dropout: 0.0,
            ..RimsConfig::default()
        };
        let cfg = ModelConfig {
            vocab: 4,
            classes: 4,
            rims,
            dropout: 0.0,
            readout: Readout::Last,
            backbone: Backbone::Rims,
        };
        let model = Model::new(ctx, cfg, 5).unwrap();
        let mut adam = Adam::new(
            ctx,
            model.store.trainable_len(),
            AdamConfig {
                lr: 2e-2,
                clip_norm: Some(1.0),
                ..Default::default()
            },
        )
        .unwrap();
        let (t_len, b) = (4, 16);
        let mut rng = Rng::new(6);
        let mut losses = Vec::new();
        for step in 0..150 {
            let tokens: Vec<u32> = (0..t_len * b).map(|_| rng.below(4) as u32).collect();
            let labels: Vec<u32> = tokens[..b].to_vec(); // the token at t = 0
            let tt = Tensor::from_u32(ctx, &[t_len, b], &tokens).unwrap();
            let lt = Tensor::from_u32(ctx, &[b], &labels).unwrap();
            model.store.zero_grads(ctx).unwrap();
            let mut tape = Tape::new();
            let out = model
                .forward(
                    ctx,
                    &mut tape,
                    &tt,
                    None,
                    Pass {
                        training: true,
                        seed: 1,
                        step0: step,
                    },
                )
                .unwrap();
            let loss = tape.cross_entropy(ctx, out.logits, &lt).unwrap();
            let value = tape.value(loss).clone();
            tape.backward(ctx, loss).unwrap();
            adam.step(ctx, model.store.flat_values(), model.store.flat_grads())
                .unwrap();
            losses.push(value.to_vec(ctx).unwrap()[0]);
        }
        let first: f32 = losses[..10].iter().sum::<f32>() / 10.0;
        let last: f32 = losses[140..].iter().sum::<f32>() / 10.0;
        eprintln!("{cell:?}: loss {first:.3} -> {last:.3}");
        assert!(
            last < 0.5 * first,
            "{cell:?}: loss should fall well below chance: {first} -> {last}"
        );
    }
}

#[test]
fn dense_lstm_baseline_learns_the_same_task() {
    let Some(ctx) = ctx() else { return };
    let rims = RimsConfig {
        input: 8,
        cell: CellKind::Lstm,
        dropout: 0.0,
        ..RimsConfig::default()
    };
    let cfg = ModelConfig {
        vocab: 4,
        classes: 4,
        rims,
        dropout: 0.0,
        readout: Readout::Last,
        backbone: Backbone::Dense { hidden: 16 },
    };
    let model = Model::new(ctx, cfg, 5).unwrap();
    assert!(model.store.names().contains(&"lstm_wx"));
    let mut adam = Adam::new(
        ctx,
        model.store.trainable_len(),
        AdamConfig {
            lr: 2e-2,
            clip_norm: Some(1.0),
            ..Default::default()
        },
    )
    .unwrap();
    let (t_len, b) = (4, 16);
    let mut rng = Rng::new(6);
    let mut losses = Vec::new();
    for step in 0..100 {
        let tokens: Vec<u32> = (0..t_len * b).map(|_| rng.below(4) as u32).collect();
        let tt = Tensor::from_u32(ctx, &[t_len, b], &tokens).unwrap();
        let lt = Tensor::from_u32(ctx, &[b], &tokens[..b]).unwrap();
        model.store.zero_grads(ctx).unwrap();
        let mut tape = Tape::new();
        let out = model
            .forward(
                ctx,
                &mut tape,
                &tt,
                None,
                Pass {
                    training: true,
                    seed: 1,
                    step0: step,
                },
            )
            .unwrap();
        assert_eq!(out.masks.shape(), &[t_len, b, 1]);
        let loss = tape.cross_entropy(ctx, out.logits, &lt).unwrap();
        let value = tape.value(loss).clone();
        tape.backward(ctx, loss).unwrap();
        adam.step(ctx, model.store.flat_values(), model.store.flat_grads())
            .unwrap();
        losses.push(value.to_vec(ctx).unwrap()[0]);
    }
    let (first, last) = (
        losses[..10].iter().sum::<f32>() / 10.0,
        losses[90..].iter().sum::<f32>() / 10.0,
    );
    eprintln!("dense LSTM: loss {first:.3} -> {last:.3}");
    assert!(last < 0.5 * first, "{first} -> {last}");
}
