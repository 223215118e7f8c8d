//! RIMs benchmarks: one training step (forward over T steps, backward, Adam) and one forward,
//! at the "small" configuration (B = 16, T = 32, N = 6, H = 32, k = 4). Synchronises with the
//! device before reading the clock. `cargo bench --bench rims`.

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use rims::nn::rims::param_specs;
use rims::nn::{CellKind, ParamStore, Rims, RimsConfig, RimsOptions};
use rims::ops::optim::{Adam, AdamConfig};
use rims::rng::Rng;
use rims::tape::Tape;
use rims::{Context, Tensor};

fn small(cell: CellKind) -> RimsConfig {
    RimsConfig {
        mechanisms: 6,
        active: 4,
        hidden: 32,
        input: 32,
        input_key: 32,
        input_value: 32,
        cell,
        ..RimsConfig::default()
    }
}

fn bench_rims(c: &mut Criterion) {
    let ctx = Context::from_env().expect("a GPU adapter (llvmpipe on machines without a GPU)");
    eprintln!("device: {}", ctx.describe());
    let (t_len, b) = (32, 16);
    let mut group = c.benchmark_group("rims small B=16 T=32 N=6 H=32 k=4");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    for cell in [CellKind::Lstm, CellKind::Gru] {
        let cfg = small(cell);
        let layer = Rims::new(cfg.clone()).unwrap();
        let store = ParamStore::new(&ctx, &param_specs(&cfg), 1).unwrap();
        let mut opt = Adam::new(
            &ctx,
            store.trainable_len(),
            AdamConfig {
                clip_norm: Some(1.0),
                ..Default::default()
            },
        )
        .unwrap();
        let mut rng = Rng::new(2);
        let x = Tensor::from_slice(
            &ctx,
            &[t_len, b, cfg.input],
            &rng.vec_f32(t_len * b * cfg.input, -1.0, 1.0),
        )
        .unwrap();
        let opts = RimsOptions {
            training: true,
            ..Default::default()
        };
        group.bench_function(format!("{cell:?} training step"), |bch| {
            bch.iter_custom(|iters| {
                ctx.synchronize().unwrap();
                let start = Instant::now();
                for _ in 0..iters {
                    store.zero_grads(&ctx).unwrap();
                    let mut tape = Tape::new();
                    let xv = tape.constant(x.clone());
                    let out = layer.forward(&ctx, &mut tape, &store, xv, &opts).unwrap();
                    let loss = tape.mean(&ctx, out.h).unwrap();
                    tape.backward(&ctx, loss).unwrap();
                    opt.step(&ctx, store.flat_values(), store.flat_grads())
                        .unwrap();
                    ctx.submit().unwrap();
                }
                ctx.synchronize().unwrap();
                start.elapsed()
            })
        });
        group.bench_function(format!("{cell:?} forward"), |bch| {
            bch.iter_custom(|iters| {
                ctx.synchronize().unwrap();
                let start = Instant::now();
                for _ in 0..iters {
                    let mut tape = Tape::untracked();
                    let xv = tape.constant(x.clone());
                    layer
                        .forward(&ctx, &mut tape, &store, xv, &RimsOptions::default())
                        .unwrap();
                    ctx.submit().unwrap();
                }
                ctx.synchronize().unwrap();
                start.elapsed()
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    // No plots: criterion's plotting needs system fonts the build machines may lack.
    config = Criterion::default().without_plots();
    targets = bench_rims
}
criterion_main!(benches);
