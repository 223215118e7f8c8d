//! The two devices against each other: a whole RIMs training step (forward, cross-entropy,
//! backward, clipped Adam) on the CPU device and on the GPU (llvmpipe here) from the same
//! seed lands on the same parameters; and the CPU device repeats itself bit for bit.

use rims::nn::model::{Model, ModelConfig, Pass, Readout};
use rims::nn::{CellKind, RimsConfig};
use rims::ops::optim::{Adam, AdamConfig};
use rims::rng::Rng;
use rims::tape::Tape;
use rims::{Context, Tensor};

use crate::common::{assert_close, cpu, gpu, to_f64};

fn config(cell: CellKind) -> ModelConfig {
    ModelConfig {
        vocab: 5,
        input: rims::nn::model::InputLayer::Embedding,
        classes: 3,
        rims: RimsConfig {
            mechanisms: 5,
            active: 3,
            hidden: 12,
            input: 10,
            input_key: 8,
            input_value: 9,
            cell,
            ..RimsConfig::default()
        },
        dropout: 0.25,
        readout: Readout::Last,
        backbone: rims::nn::model::Backbone::Rims,
    }
}

/// Runs `steps` training steps and returns (losses, parameters after the last step).
fn train(ctx: &Context, cell: CellKind, steps: u32) -> (Vec<f32>, Vec<f32>) {
    let (t_len, b) = (7, 6);
    let model = Model::new(ctx, config(cell), 11).unwrap();
    let mut adam = Adam::new(
        ctx,
        model.store.trainable_len(),
        AdamConfig {
            lr: 1e-2,
            clip_norm: Some(0.5),
            ..Default::default()
        },
    )
    .unwrap();
    let mut rng = Rng::new(12);
    let mut losses = Vec::new();
    for step in 0..steps {
        let tokens: Vec<u32> = (0..t_len * b).map(|_| rng.below(5) as u32).collect();
        let labels: Vec<u32> = (0..b).map(|_| rng.below(3) as u32).collect();
        let tokens = Tensor::from_u32(ctx, &[t_len, b], &tokens).unwrap();
        let labels = Tensor::from_u32(ctx, &[b], &labels).unwrap();
        model.store.zero_grads(ctx).unwrap();
        let mut tape = Tape::new();
        let pass = Pass {
            training: true,
            seed: 3,
            step0: step,
        };
        let out = model.forward(ctx, &mut tape, &tokens, None, pass).unwrap();
        let loss = tape.cross_entropy(ctx, out.logits, &labels).unwrap();
        let value = tape.value(loss).clone();
        tape.backward(ctx, loss).unwrap();
        adam.step(ctx, model.store.flat_values(), model.store.flat_grads())
            .unwrap();
        losses.push(value.to_vec(ctx).unwrap()[0]);
    }
    (losses, model.store.flat_values().to_vec(ctx).unwrap())
}

#[test]
fn cpu_training_step_matches_the_gpu() {
    let Some(gpu) = gpu() else { return };
    for cell in [CellKind::Lstm, CellKind::Gru] {
        let (cpu_loss, cpu_params) = train(cpu(), cell, 2);
        let (gpu_loss, gpu_params) = train(gpu, cell, 2);
        assert_close(
            &format!("{cell:?} losses"),
            &cpu_loss,
            &to_f64(&gpu_loss),
            1e-5,
            1e-4,
        );
        assert_close(
            &format!("{cell:?} parameters after 2 steps"),
            &cpu_params,
            &to_f64(&gpu_params),
            1e-5,
            1e-3,
        );
    }
}

#[test]
fn cpu_device_repeats_itself_bit_for_bit() {
    for cell in [CellKind::Lstm, CellKind::Gru] {
        let first = train(cpu(), cell, 3);
        let second = train(cpu(), cell, 3);
        assert_eq!(first.0, second.0, "{cell:?} losses");
        assert!(
            first
                .1
                .iter()
                .zip(&second.1)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{cell:?}: parameters differ between two identical runs"
        );
    }
}
