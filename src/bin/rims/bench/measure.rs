//! Measuring one model: timed runs from a synchronised device to a synchronised device, and
//! the recorder's counters they moved.

use std::time::Instant;

use rims::device::{DeviceKind, RecorderStats};
use rims::nn::Runner;
use rims::nn::model::{Model, ModelConfig, Pass};
use rims::ops::optim::{Adam, AdamConfig};
use rims::rng::Rng;
use rims::tape::Tape;
use rims::train::{Target, record_step};
use rims::{Context, Result, Tensor};

use super::{BenchArgs, ONCE_ABOVE_S, SKIP_ABOVE_S, STEP_BUDGET_S};
use rims::train::bench::BenchSetup;

/// The outcome of one timed measurement.
pub(super) enum Timing {
    /// Seconds of each timed run; `once` when cut to one run because it is long.
    Done {
        runs: Vec<f64>,
        once: bool,
    },
    Skipped {
        estimate_s: f64,
    },
    Failed(String),
}

impl Timing {
    pub(super) fn median_s(&self) -> Option<f64> {
        match self {
            Timing::Done { runs, .. } => {
                let mut v = runs.clone();
                v.sort_by(f64::total_cmp);
                Some(v[v.len() / 2])
            }
            _ => None,
        }
    }
}

/// Counter differences between two recorder snapshots: dispatches, passes, submits, copies,
/// matrix-product FLOPs.
fn delta(a: RecorderStats, b: RecorderStats) -> [u64; 5] {
    [
        b.dispatches - a.dispatches,
        b.passes - a.passes,
        b.submits - a.submits,
        b.copies - a.copies,
        b.matmul_flops - a.matmul_flops,
    ]
}

/// What one model measured.
pub(super) struct Result1 {
    pub(super) device: DeviceKind,
    pub(super) setup: &'static str,
    pub(super) model: String,
    pub(super) batch: usize,
    pub(super) steps: usize,
    pub(super) params: usize,
    pub(super) train: Timing,
    pub(super) forward: Timing,
    /// Batch-1 runner step: median seconds and the steps timed.
    pub(super) step: std::result::Result<(f64, usize), String>,
    /// Per time step, from the runs at T₀ and 2T₀: [dispatches, passes] forward and training.
    pub(super) forward_per_step: [f64; 2],
    pub(super) train_per_step: [f64; 2],
    /// Submits of one training step.
    pub(super) train_submits: u64,
    /// One batch-1 runner step: [dispatches, passes, submits, copies].
    pub(super) step_counts: [u64; 4],
    /// Estimated seconds of the full-length forward and training step.
    pub(super) estimates: [f64; 2],
    /// Matrix-product FLOPs of the full-length forward and training step.
    pub(super) flops: [f64; 2],
}

/// The training and forward work of one model.
struct Bench<'a> {
    ctx: &'a Context,
    model: &'a Model,
    adam: Adam,
    labels: Tensor,
    step: u32,
}

impl Bench<'_> {
    /// One training step over `tokens` (the one `rims train` takes, its loss not read back),
    /// synchronised.
    fn train(&mut self, tokens: &Tensor) -> Result<()> {
        let pass = Pass {
            training: true,
            seed: 7,
            step0: self.step,
        };
        self.step = self.step.wrapping_add(1);
        let labels = Target::Classes(&self.labels);
        record_step(
            self.ctx,
            self.model,
            &mut self.adam,
            tokens,
            labels,
            None,
            pass,
        )?;
        self.ctx.synchronize()
    }

    /// One evaluation-mode forward over `tokens`, synchronised.
    fn forward(&mut self, tokens: &Tensor) -> Result<()> {
        let mut tape = Tape::untracked();
        self.model
            .forward(self.ctx, &mut tape, tokens, None, Pass::default())?;
        self.ctx.synchronize()
    }
}

/// Seconds `f` takes from a synchronised device, and the counters it moved.
fn timed(ctx: &Context, f: impl FnOnce() -> Result<()>) -> Result<(f64, [u64; 5])> {
    ctx.synchronize()?;
    let before = ctx.recorder_stats();
    let start = Instant::now();
    f()?;
    let secs = start.elapsed().as_secs_f64();
    Ok((secs, delta(before, ctx.recorder_stats())))
}

fn random_tokens(ctx: &Context, rng: &mut Rng, steps: usize, batch: usize) -> Result<Tensor> {
    let v: Vec<u32> = (0..steps * batch).map(|_| rng.below(2) as u32).collect();
    Tensor::from_u32(ctx, &[steps, batch], &v)
}

/// Measures one model on a context of its own (so that its buffers go when it is done).
pub(super) fn measure(
    args: &BenchArgs,
    kind: DeviceKind,
    setup: &BenchSetup,
    label: String,
    cfg: ModelConfig,
) -> Result<Result1> {
    let ctx = crate::shared::open_device(Some(kind))?;
    let (b, t_len) = (setup.batch, setup.steps);
    let model = Model::new(&ctx, cfg, 1)?;
    let mut rng = Rng::new(2);
    let labels: Vec<u32> = (0..b).map(|_| rng.below(10) as u32).collect();
    let adam = Adam::new(
        &ctx,
        model.store.trainable_len(),
        AdamConfig {
            clip_norm: Some(1.0),
            ..AdamConfig::default()
        },
    )?;
    let mut bench = Bench {
        ctx: &ctx,
        labels: Tensor::from_u32(&ctx, &[b], &labels)?,
        model: &model,
        adam,
        step: 0,
    };
    let progress = |what: &str| eprintln!("  {} / {} / {label}: {what}", kind.name(), setup.name);

    // Short runs at T₀ and 2T₀: the counters per time step, and estimates of the full runs.
    let t0 = (t_len / 4).clamp(1, 8);
    let short = random_tokens(&ctx, &mut rng, t0, b)?;
    let double = random_tokens(&ctx, &mut rng, 2 * t0, b)?;
    progress(&format!("short runs (T = {t0} and {})", 2 * t0));
    bench.forward(&short)?; // compiles the pipelines
    bench.train(&short)?;
    let (f1, fc1) = timed(&ctx, || bench.forward(&short))?;
    let (f2, fc2) = timed(&ctx, || bench.forward(&double))?;
    let (g1, gc1) = timed(&ctx, || bench.train(&short))?;
    let (g2, gc2) = timed(&ctx, || bench.train(&double))?;
    // Matrix-product FLOPs of the full-length runs, from the shapes the short runs recorded.
    let flops_at = |one: u64, two: u64| {
        let per_step = two.saturating_sub(one) as f64 / t0 as f64;
        one as f64 + (t_len - t0) as f64 * per_step
    };
    let flops = [flops_at(fc1[4], fc2[4]), flops_at(gc1[4], gc2[4])];
    let per_step = |a: [u64; 5], b: [u64; 5], i: usize| (b[i] as f64 - a[i] as f64) / t0 as f64;
    let estimate = |one: f64, two: f64| {
        let slope = (two - one) / t0 as f64;
        let linear = two + (t_len - 2 * t0) as f64 * slope;
        if slope > 0.0 {
            linear
        } else {
            two * t_len as f64 / (2 * t0) as f64
        }
    };
    let estimates = [estimate(f1, f2), estimate(g1, g2)];

    let tokens = random_tokens(&ctx, &mut rng, t_len, b)?;
    let (skip_above, repeats) = if args.quick {
        (ONCE_ABOVE_S, 1)
    } else if args.full {
        (f64::INFINITY, args.repeats)
    } else {
        (SKIP_ABOVE_S, args.repeats)
    };
    let mut run = |what: &str, estimate_s: f64, train: bool| -> Timing {
        if estimate_s > skip_above {
            progress(&format!("{what} skipped (estimated {estimate_s:.0} s)"));
            return Timing::Skipped { estimate_s };
        }
        let once = estimate_s > ONCE_ABOVE_S;
        progress(&format!("{what} (estimated {estimate_s:.1} s per run)"));
        let mut go = || -> Result<f64> {
            let f = || {
                if train {
                    bench.train(&tokens)
                } else {
                    bench.forward(&tokens)
                }
            };
            Ok(timed(&ctx, f)?.0)
        };
        let result = (|| -> Result<Vec<f64>> {
            if once {
                return Ok(vec![go()?]);
            }
            go()?; // warm-up: fills the pool at this size
            (0..repeats).map(|_| go()).collect()
        })();
        match result {
            Ok(runs) => Timing::Done { runs, once },
            Err(e) => Timing::Failed(e.to_string()),
        }
    };
    let forward = run("forward", estimates[0], false);
    let train = run("training step", estimates[1], true);

    // Batch-1 steps through the runner.
    progress("batch-1 steps");
    let mut step_counts = [0; 4];
    let step = (|| -> Result<(f64, usize)> {
        let mut runner = Runner::new(&ctx, &model, 1)?;
        for tok in [1, 0, 1] {
            runner.step(&ctx, &[tok])?;
        }
        let (first, counts) = timed(&ctx, || runner.step(&ctx, &[0]).map(|_| ()))?;
        step_counts = [counts[0], counts[1], counts[2], counts[3]];
        let n = ((STEP_BUDGET_S / first.max(1e-6)) as usize).clamp(5, 200);
        let mut times = Vec::with_capacity(n);
        for i in 0..n {
            let (s, _) = timed(&ctx, || runner.step(&ctx, &[(i % 2) as u32]).map(|_| ()))?;
            times.push(s);
        }
        times.sort_by(f64::total_cmp);
        Ok((times[n / 2], n))
    })()
    .map_err(|e| e.to_string());

    Ok(Result1 {
        device: kind,
        setup: setup.name,
        model: label,
        batch: b,
        steps: t_len,
        params: model.store.count(),
        train,
        forward,
        step,
        forward_per_step: [per_step(fc1, fc2, 0), per_step(fc1, fc2, 1)],
        train_per_step: [per_step(gc1, gc2, 0), per_step(gc1, gc2, 1)],
        train_submits: gc2[2],
        step_counts,
        estimates,
        flops,
    })
}

/// GFLOP/s of a plain 1024³ sgemm through the engine's matmul on `kind` (the gemm crate on the
/// CPU device, the WGSL kernel on a GPU): the roofline the model figures are read against.
pub(super) fn sgemm_gflops(kind: DeviceKind) -> Result<f64> {
    let ctx = crate::shared::open_device(Some(kind))?;
    let n = 1024;
    let mut rng = Rng::new(3);
    let a = Tensor::from_slice(&ctx, &[n, n], &rng.vec_f32(n * n, -1.0, 1.0))?;
    let b = Tensor::from_slice(&ctx, &[n, n], &rng.vec_f32(n * n, -1.0, 1.0))?;
    let product = || -> Result<()> {
        rims::ops::matmul::matmul(&ctx, &a, &b, Default::default())?;
        ctx.synchronize()
    };
    product()?; // warm-up: pipelines, pool
    let mut best = f64::INFINITY;
    let started = Instant::now();
    for _ in 0..20 {
        let (secs, _) = timed(&ctx, product)?;
        best = best.min(secs);
        if started.elapsed().as_secs_f64() > 3.0 {
            break;
        }
    }
    Ok(2.0 * (n * n * n) as f64 / best / 1e9)
}
