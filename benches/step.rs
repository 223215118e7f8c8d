//! Step benchmarks of the whole model (embedding → RIMs → decoder of 10 classes at the last
//! step), the criterion counterpart of `rims bench`:
//! - batch-1 step latency through [`Runner`] (one token in, logits and masks read back: one
//!   submit), LSTM and GRU cells;
//! - the training step (forward, cross-entropy, backward, Adam with clipping; one submit) at
//!   the small configuration: B = 16, T = 32, N = 6, H = 32, k = 4, D = 32.
//!
//! With `RIMS_BENCH_PAPER=1` also the paper's configuration (B = 64, T = 196, N = 6, H = 100,
//! k = 4, A = 400, D = 600): the batch-1 step, the forward and the training step. Criterion
//! takes at least 10 samples, so on a software adapter that is many minutes (and the training
//! step needs a 241 MB binding, more than llvmpipe's 128 MiB: it is skipped with a message).
//!
//! Every timing synchronises with the device before reading the clock. `cargo bench --bench
//! step`.

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use rims::nn::model::{Backbone, Model, Pass};
use rims::nn::{CellKind, Runner};
use rims::ops::optim::{Adam, AdamConfig};
use rims::rng::Rng;
use rims::tape::Tape;
use rims::train::bench::BenchSetup;
use rims::train::{Target, record_step};
use rims::{Context, Tensor};

fn model(ctx: &Context, setup: &BenchSetup, cell: CellKind) -> Model {
    Model::new(ctx, setup.model(cell, Backbone::Rims), 1).unwrap()
}

fn tokens(ctx: &Context, rng: &mut Rng, steps: usize, batch: usize) -> Tensor {
    let v: Vec<u32> = (0..steps * batch).map(|_| rng.below(2) as u32).collect();
    Tensor::from_u32(ctx, &[steps, batch], &v).unwrap()
}

/// One training step (the library's, as `rims train` takes it), recorded and submitted, not
/// waited for and its loss not read back.
fn train_step(
    ctx: &Context,
    m: &Model,
    adam: &mut Adam,
    x: &Tensor,
    labels: &Tensor,
    step: u32,
) -> rims::Result<()> {
    let pass = Pass {
        training: true,
        seed: 7,
        step0: step,
    };
    record_step(ctx, m, adam, x, Target::Classes(labels), None, pass)?;
    ctx.submit()
}

fn bench_setup(c: &mut Criterion, ctx: &Context, setup: &BenchSetup, heavy: bool) {
    let mut group = c.benchmark_group(setup.label());
    group.sample_size(10).warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(if heavy { 30 } else { 5 }));
    let mut rng = Rng::new(2);
    for cell in [CellKind::Lstm, CellKind::Gru] {
        let m = model(ctx, setup, cell);
        let mut runner = Runner::new(ctx, &m, 1).unwrap();
        group.bench_function(format!("{cell:?} batch-1 step"), |bch| {
            bch.iter_custom(|iters| {
                ctx.synchronize().unwrap();
                let start = Instant::now();
                for i in 0..iters {
                    // The step reads its outputs back: it returns with the device idle.
                    runner.step(ctx, &[(i % 2) as u32]).unwrap();
                }
                start.elapsed()
            })
        });
        let x = tokens(ctx, &mut rng, setup.steps, setup.batch);
        if heavy {
            group.bench_function(format!("{cell:?} forward"), |bch| {
                bch.iter_custom(|iters| {
                    ctx.synchronize().unwrap();
                    let start = Instant::now();
                    for _ in 0..iters {
                        let mut tape = Tape::untracked();
                        m.forward(ctx, &mut tape, &x, None, Pass::default())
                            .unwrap();
                        ctx.submit().unwrap();
                    }
                    ctx.synchronize().unwrap();
                    start.elapsed()
                })
            });
        }
        let labels: Vec<u32> = (0..setup.batch).map(|_| rng.below(10) as u32).collect();
        let labels = Tensor::from_u32(ctx, &[setup.batch], &labels).unwrap();
        let mut adam = Adam::new(
            ctx,
            m.store.trainable_len(),
            AdamConfig {
                clip_norm: Some(1.0),
                ..AdamConfig::default()
            },
        )
        .unwrap();
        // A configuration the device cannot hold (a binding over its limit) is reported, not
        // benchmarked.
        if let Err(e) = train_step(ctx, &m, &mut adam, &x, &labels, 0) {
            eprintln!("{} {cell:?} training step skipped: {e}", setup.name);
            ctx.synchronize().unwrap();
            continue;
        }
        let mut step = 1;
        group.bench_function(format!("{cell:?} training step"), |bch| {
            bch.iter_custom(|iters| {
                ctx.synchronize().unwrap();
                let start = Instant::now();
                for _ in 0..iters {
                    train_step(ctx, &m, &mut adam, &x, &labels, step).unwrap();
                    step += 1;
                }
                ctx.synchronize().unwrap();
                start.elapsed()
            })
        });
    }
    group.finish();
}

fn bench_steps(c: &mut Criterion) {
    let ctx = Context::from_env().expect("a GPU adapter (llvmpipe on machines without a GPU)");
    eprintln!("device: {}", ctx.describe());
    bench_setup(c, &ctx, &BenchSetup::small(), false);
    if std::env::var("RIMS_BENCH_PAPER").is_ok_and(|v| v == "1") {
        bench_setup(c, &ctx, &BenchSetup::paper(), true);
    } else {
        eprintln!("paper configuration skipped (set RIMS_BENCH_PAPER=1 to run it)");
    }
}

// No plots: the HTML report adds nothing to these few figures, and its plotting backend fails
// without system fonts.
criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = bench_steps
}
criterion_main!(benches);
