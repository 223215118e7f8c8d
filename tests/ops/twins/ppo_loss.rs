//! PPO's loss twin against its WGSL (through the op wrapper on both devices), and the twin's
//! independence of the thread count at a size past the split policy's `ALWAYS_FROM` (2²⁰
//! logits), so that two threads really split it.
use super::support::*;
use rims::ops::ppo_loss::{self, PpoBatch, PpoCoefs};
use rims::rng::Rng;
use rims::{Context, DeviceRequest, Tensor};

/// Every output of the kernel on `ctx` for `rows` random rows of `actions` logits, about one
/// in `actions + 1` of them ignored (action = actions).
fn run(ctx: &Context, rows: usize, actions: usize) -> Vec<Vec<f32>> {
    let mut rng = Rng::new(91);
    let logits = rng.vec_f32(rows * actions, -4.0, 4.0);
    let values = rng.vec_f32(rows, -2.0, 2.0);
    let taken: Vec<u32> = (0..rows)
        .map(|_| rng.below(actions as u64 + 1) as u32)
        .collect();
    let old_logp = rng.vec_f32(rows, -3.0, 0.0);
    let adv = rng.vec_f32(rows, -2.0, 2.0);
    let ret = rng.vec_f32(rows, -2.0, 2.0);
    let old_values: Vec<f32> = values
        .iter()
        .map(|v| v + rng.uniform(-0.5, 0.5) as f32)
        .collect();
    let batch = PpoBatch::from_slices(ctx, &taken, &old_logp, &adv, &ret, &old_values).unwrap();
    let x = Tensor::from_slice(ctx, &[rows, actions], &logits).unwrap();
    let v = Tensor::from_slice(ctx, &[rows], &values).unwrap();
    let coefs = PpoCoefs {
        entropy_coef: 0.2,
        ..PpoCoefs::default()
    };
    let out = ppo_loss::ppo_loss(ctx, &x, &v, &batch, coefs, 0.5).unwrap();
    [&out.stats, &out.dlogits, &out.dvalues]
        .iter()
        .map(|t| t.to_vec(ctx).unwrap())
        .collect()
}

#[test]
fn ppo_twin_matches_the_wgsl() {
    let cpu = Context::new(DeviceRequest::cpu(None)).unwrap();
    let Some(gpu) = gpu_or_skip() else { return };
    // The 64-thread workgroup over short rows, and the 256-thread one.
    for (rows, actions) in [(300, 13), (9, 1100)] {
        let what = format!("ppo_loss {rows}x{actions}");
        assert_outputs_close(&what, &run(&cpu, rows, actions), &run(&gpu, rows, actions));
    }
}

#[test]
fn ppo_twin_gives_the_same_bits_on_one_thread_and_two() {
    let (one, two) = one_and_two_threads();
    let (a, b) = (run(&one, 1 << 14, 64), run(&two, 1 << 14, 64));
    for (k, (a, b)) in a.iter().zip(&b).enumerate() {
        let same = a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(same, "output {k} differs between one thread and two");
    }
}
