//! `rims bench`: how long a RIMs model takes to train and to run, how fast that is against a
//! plain 1024³ sgemm on the same device, and how many dispatches, passes and submits it
//! records per time step, on the CPU device, a GPU, or both side by side (`--device all`).
//!
//! Two configurations, each with RIMs over LSTM and over GRU cells and the paper's dense LSTM
//! baseline with as many units as the RIMs state (N·H):
//! - small: B = 16, T = 32, N = 6, H = 32, k = 4, D = A = 32;
//! - paper: B = 64, T = 196 (sMNIST 14×14), N = 6, H = 100, k = 4, A = 400, D = 600 through an
//!   embedding; baseline LSTM of 600 units.
//!
//! Every model is the experiments' model (embedding, backbone, decoder of 10 classes read at
//! the last step, dropout as in training). Figures, per model:
//! - training step: forward + cross-entropy + backward + Adam with global-norm clipping, one
//!   submit, timed from a synchronised device to a synchronised device;
//! - forward: evaluation-mode forward over the whole sequence, synchronised;
//! - batch-1 step: one [`rims::nn::Runner`] step at batch 1 (one token in, logits and masks
//!   read back);
//! - dispatches and passes per time step: the difference between runs at T₀ and 2T₀ steps
//!   divided by T₀ (T₀ = 8 or T/4), from the recorder's counters; submits per training step.
//!
//! Runs that would be long are cut short rather than left to run for minutes: the runs at T₀
//! and 2T₀ give an estimate of the full run; one estimated at over 10 s is timed once without a
//! warm-up, and one estimated at over 60 s (the paper-size training step on a software adapter)
//! is skipped unless `--full` is given. The output says which.

use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, ValueEnum};
use rims::device::{DeviceKind, RecorderStats};
use rims::nn::model::{Backbone, Model, ModelConfig, Pass, Readout};
use rims::nn::{CellKind, RimsConfig, Runner};
use rims::optim::{Adam, AdamConfig};
use rims::rng::Rng;
use rims::tape::Tape;
use rims::{Context, Error, Result, Tensor};
use serde_json::{Value, json};

/// Which configurations to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Which {
    /// B = 16, T = 32, N = 6, H = 32, k = 4, D = 32.
    Small,
    /// B = 64, T = 196, N = 6, H = 100, k = 4, A = 400, D = 600.
    Paper,
    /// Both.
    All,
}

/// Which devices to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BenchDevice {
    /// The CPU device.
    Cpu,
    /// A wgpu adapter (a hardware GPU, else llvmpipe).
    Gpu,
    /// Both, side by side with their ratio.
    All,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Devices to measure (default: `RIMS_DEVICE`, else the one `rims info` chooses).
    #[arg(long, value_enum)]
    device: Option<BenchDevice>,
    /// Configurations to measure.
    #[arg(long, value_enum, default_value_t = Which::All)]
    config: Which,
    /// Timed runs per measurement (the median is reported), after one untimed warm-up run.
    /// Runs estimated at over 10 s are timed once, without a warm-up.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// A quick look: one timed run per measurement, and every run estimated at over 10 s
    /// skipped.
    #[arg(long)]
    quick: bool,
    /// Also measure runs estimated at over 60 s (skipped otherwise).
    #[arg(long)]
    full: bool,
    /// Also write the results as JSON to this file (written atomically).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Runs estimated above this are timed once, without a warm-up.
const ONCE_ABOVE_S: f64 = 10.0;
/// Runs estimated above this are skipped without `--full` (above [`ONCE_ABOVE_S`] with
/// `--quick`).
const SKIP_ABOVE_S: f64 = 60.0;
/// Time spent on the batch-1 step measurement, roughly.
const STEP_BUDGET_S: f64 = 1.0;

/// One configuration's sizes.
struct Setup {
    name: &'static str,
    batch: usize,
    steps: usize,
    rims: RimsConfig,
}

fn setups(which: Which) -> Vec<Setup> {
    let small = Setup {
        name: "small",
        batch: 16,
        steps: 32,
        rims: RimsConfig {
            mechanisms: 6,
            active: 4,
            hidden: 32,
            input: 32,
            input_key: 32,
            input_value: 32,
            ..RimsConfig::default()
        },
    };
    // The defaults are the paper's sMNIST setting: N = 6, k = 4, H = 100, D = 600, A = 400.
    let paper = Setup {
        name: "paper",
        batch: 64,
        steps: 196,
        rims: RimsConfig::default(),
    };
    match which {
        Which::Small => vec![small],
        Which::Paper => vec![paper],
        Which::All => vec![small, paper],
    }
}

/// The three models of a configuration: (label, model config).
fn models(setup: &Setup) -> Vec<(String, ModelConfig)> {
    let nh = setup.rims.mechanisms * setup.rims.hidden;
    let model = |cell: CellKind, backbone: Backbone| ModelConfig {
        vocab: 2,
        input: rims::nn::model::InputLayer::Embedding,
        classes: 10,
        rims: RimsConfig {
            cell,
            ..setup.rims.clone()
        },
        dropout: 0.5,
        readout: Readout::Last,
        backbone,
    };
    vec![
        ("RIMs LSTM".into(), model(CellKind::Lstm, Backbone::Rims)),
        ("RIMs GRU".into(), model(CellKind::Gru, Backbone::Rims)),
        (
            format!("LSTM {nh} (dense)"),
            model(CellKind::Lstm, Backbone::Dense { hidden: nh }),
        ),
    ]
}

/// The outcome of one timed measurement.
enum Timing {
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
    fn median_s(&self) -> Option<f64> {
        match self {
            Timing::Done { runs, .. } => {
                let mut v = runs.clone();
                v.sort_by(f64::total_cmp);
                Some(v[v.len() / 2])
            }
            _ => None,
        }
    }

    fn cell(&self) -> String {
        match self {
            Timing::Done { runs, once } => {
                let mut s = ms(self.median_s().unwrap_or(0.0));
                if *once {
                    s += " (1 run)";
                } else if runs.len() > 1 {
                    let min = runs.iter().copied().fold(f64::INFINITY, f64::min);
                    s += &format!(" (min {})", ms(min));
                }
                s
            }
            Timing::Skipped { estimate_s } => format!("skipped (≈{estimate_s:.0} s est.)"),
            Timing::Failed(e) => format!("error: {}", short(e)),
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Timing::Done { runs, once } => json!({
                "median_ms": self.median_s().map(|s| s * 1e3),
                "runs_ms": runs.iter().map(|s| s * 1e3).collect::<Vec<_>>(),
                "single_run": once,
            }),
            Timing::Skipped { estimate_s } => json!({
                "skipped": true,
                "estimate_ms": estimate_s * 1e3,
            }),
            Timing::Failed(e) => json!({ "error": e }),
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
struct Result1 {
    device: DeviceKind,
    setup: &'static str,
    model: String,
    batch: usize,
    steps: usize,
    params: usize,
    train: Timing,
    forward: Timing,
    /// Batch-1 runner step: median seconds and the steps timed.
    step: std::result::Result<(f64, usize), String>,
    /// Per time step, from the runs at T₀ and 2T₀: [dispatches, passes] forward and training.
    forward_per_step: [f64; 2],
    train_per_step: [f64; 2],
    /// Submits of one training step.
    train_submits: u64,
    /// One batch-1 runner step: [dispatches, passes, submits, copies].
    step_counts: [u64; 4],
    /// Estimated seconds of the full-length forward and training step.
    estimates: [f64; 2],
    /// Matrix-product FLOPs of the full-length forward and training step.
    flops: [f64; 2],
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
    /// One training step over `tokens`, synchronised.
    fn train(&mut self, tokens: &Tensor) -> Result<()> {
        let ctx = self.ctx;
        self.model.store.zero_grads(ctx)?;
        let mut tape = Tape::new();
        let pass = Pass {
            training: true,
            seed: 7,
            step0: self.step,
        };
        self.step = self.step.wrapping_add(1);
        let out = self.model.forward(ctx, &mut tape, tokens, None, pass)?;
        let loss = tape.cross_entropy(ctx, out.logits, &self.labels)?;
        tape.backward(ctx, loss)?;
        self.adam.step(
            ctx,
            self.model.store.flat_values(),
            self.model.store.flat_grads(),
        )?;
        ctx.synchronize()
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
fn measure(
    args: &BenchArgs,
    kind: DeviceKind,
    setup: &Setup,
    label: String,
    cfg: ModelConfig,
) -> Result<Result1> {
    let ctx = super::shared::open_device(Some(kind))?;
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
fn sgemm_gflops(kind: DeviceKind) -> Result<f64> {
    let ctx = super::shared::open_device(Some(kind))?;
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

/// Milliseconds with three significant figures or so.
fn ms(secs: f64) -> String {
    let v = secs * 1e3;
    if v >= 100.0 {
        format!("{v:.0} ms")
    } else if v >= 10.0 {
        format!("{v:.1} ms")
    } else {
        format!("{v:.2} ms")
    }
}

/// An error message short enough for a table cell.
fn short(e: &str) -> String {
    let e = super::shared::one_line(e);
    if e.chars().count() > 60 {
        format!("{}…", e.chars().take(59).collect::<String>())
    } else {
        e
    }
}

fn per_step_text(v: f64) -> String {
    if (v - v.round()).abs() < 0.05 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

pub fn run_bench(args: &BenchArgs) -> Result<()> {
    if args.repeats == 0 {
        return Err(Error::Config {
            field: "repeats",
            reason: "must be at least 1".into(),
        });
    }
    let kinds = match args.device {
        Some(BenchDevice::Cpu) => vec![DeviceKind::Cpu],
        Some(BenchDevice::Gpu) => vec![DeviceKind::Gpu],
        Some(BenchDevice::All) => vec![DeviceKind::Cpu, DeviceKind::Gpu],
        None => vec![super::shared::open_device(None)?.kind()],
    };
    let mut devices = Vec::new();
    for &kind in &kinds {
        let ctx = super::shared::open_device(Some(kind))?;
        let info = DeviceInfo {
            kind,
            name: ctx.describe(),
            adapter: ctx.adapter().cloned(),
            cpu: ctx.cpu().cloned(),
            sgemm_gflops: 0.0,
        };
        drop(ctx);
        eprintln!("rims bench on {}", info.name);
        devices.push(info);
    }
    for d in &mut devices {
        eprintln!("  {}: 1024³ sgemm", d.kind.name());
        d.sgemm_gflops = sgemm_gflops(d.kind)?;
    }
    let mut results = Vec::new();
    for setup in setups(args.config) {
        for (label, cfg) in models(&setup) {
            for &kind in &kinds {
                results.push(measure(args, kind, &setup, label.clone(), cfg.clone())?);
            }
        }
    }
    let text = table(&devices, args, &results);
    super::shared::emit(&text)?;
    if let Some(path) = &args.out {
        let json = json!({
            "version": env!("CARGO_PKG_VERSION"),
            "devices": devices.iter().map(DeviceInfo::to_json).collect::<Vec<_>>(),
            "repeats": args.repeats,
            "quick": args.quick,
            "full": args.full,
            "results": results.iter().map(result_json).collect::<Vec<_>>(),
        });
        let mut bytes =
            serde_json::to_vec_pretty(&json).map_err(|e| Error::Io(std::io::Error::other(e)))?;
        bytes.push(b'\n');
        rims::io::write_atomic(path, &bytes)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// One measured device.
struct DeviceInfo {
    kind: DeviceKind,
    name: String,
    adapter: Option<rims::device::AdapterSummary>,
    cpu: Option<rims::device::CpuSummary>,
    /// 1024³ sgemm through the engine's matmul on this device, GFLOP/s.
    sgemm_gflops: f64,
}

impl DeviceInfo {
    fn to_json(&self) -> Value {
        json!({
            "kind": self.kind.name(),
            "name": self.name,
            "sgemm_1024_gflops": self.sgemm_gflops,
            "adapter": self.adapter.as_ref().map(|adapter| json!({
                "name": adapter.name,
                "backend": adapter.backend.to_str(),
                "device_type": super::shared::device_type_key(adapter.device_type),
                "driver": adapter.driver,
                "driver_info": adapter.driver_info,
            })),
            "cpu": self.cpu.as_ref().map(|c| json!({
                "model": c.model,
                "cores": c.cores,
                "threads": c.threads,
                "simd": c.simd,
            })),
        })
    }
}

fn result_json(r: &Result1) -> Value {
    json!({
        "device": r.device.name(),
        "matmul_flops": { "forward": r.flops[0], "train_step": r.flops[1] },
        "config": r.setup,
        "model": r.model,
        "batch": r.batch,
        "steps": r.steps,
        "params": r.params,
        "train_step": r.train.to_json(),
        "forward": r.forward.to_json(),
        "estimate_ms": { "forward": r.estimates[0] * 1e3, "train_step": r.estimates[1] * 1e3 },
        "batch1_step": match &r.step {
            Ok((s, n)) => json!({ "median_ms": s * 1e3, "steps_timed": n }),
            Err(e) => json!({ "error": e }),
        },
        "per_time_step": {
            "forward": { "dispatches": r.forward_per_step[0], "passes": r.forward_per_step[1] },
            "train": { "dispatches": r.train_per_step[0], "passes": r.train_per_step[1] },
        },
        "train_step_submits": r.train_submits,
        "batch1_step_counts": {
            "dispatches": r.step_counts[0],
            "passes": r.step_counts[1],
            "submits": r.step_counts[2],
            "copies": r.step_counts[3],
        },
    })
}

/// GFLOP/s of `flops` in the timing's median, and its share of the device's sgemm.
fn rate(flops: f64, t: &Timing, sgemm: f64) -> String {
    match t.median_s() {
        Some(secs) if secs > 0.0 => {
            let g = flops / secs / 1e9;
            format!("{g:.1} ({:.0}%)", 100.0 * g / sgemm.max(1e-9))
        }
        _ => "-".into(),
    }
}

fn table(devices: &[DeviceInfo], args: &BenchArgs, results: &[Result1]) -> String {
    let mut s = String::new();
    let mut line = |text: String| {
        s.push_str(&text);
        s.push('\n');
    };
    for d in devices {
        line(format!(
            "{} device: {}; 1024³ sgemm {:.1} GFLOP/s",
            d.kind.name(),
            d.name,
            d.sgemm_gflops
        ));
    }
    line(format!(
        "timings: median of {} synchronised run(s) after a warm-up{}; GFLOP/s counts the \
         matrix products (2 per multiply-add), % is of the 1024³ sgemm on the same device",
        if args.quick { 1 } else { args.repeats },
        if args.quick { " (--quick)" } else { "" }
    ));
    line(String::new());
    line(
        "| config | model | device | params | training step | GFLOP/s (% sgemm) | forward | \
         GFLOP/s (% sgemm) | batch-1 step |"
            .into(),
    );
    line("|---|---|---|---:|---:|---:|---:|---:|---:|".into());
    let sgemm = |k: DeviceKind| {
        devices
            .iter()
            .find(|d| d.kind == k)
            .map_or(0.0, |d| d.sgemm_gflops)
    };
    for r in results {
        line(format!(
            "| {} B={} T={} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.setup,
            r.batch,
            r.steps,
            r.model,
            r.device.name(),
            r.params,
            r.train.cell(),
            rate(r.flops[1], &r.train, sgemm(r.device)),
            r.forward.cell(),
            rate(r.flops[0], &r.forward, sgemm(r.device)),
            match &r.step {
                Ok((secs, _)) => ms(*secs),
                Err(e) => format!("error: {}", short(e)),
            }
        ));
    }
    if devices.len() > 1 {
        line(String::new());
        line("| config | model | CPU speed-up, training step (gpu time / cpu time) | forward | batch-1 step |".into());
        line("|---|---|---:|---:|---:|".into());
        let ratio = |g: Option<f64>, c: Option<f64>| match (g, c) {
            (Some(g), Some(c)) if c > 0.0 => format!("{:.1}×", g / c),
            _ => "-".into(),
        };
        for pair in results.chunks(2) {
            let [c, g] = pair else { continue };
            line(format!(
                "| {} | {} | {} | {} | {} |",
                c.setup,
                c.model,
                ratio(g.train.median_s(), c.train.median_s()),
                ratio(g.forward.median_s(), c.forward.median_s()),
                ratio(
                    g.step.as_ref().ok().map(|s| s.0),
                    c.step.as_ref().ok().map(|s| s.0)
                ),
            ));
        }
    }
    line(String::new());
    line(
        "| config | model | dispatches / time step (fwd, train) | passes / time step (fwd, train) \
         | submits / training step | batch-1 step: dispatches, passes, copies, submits |"
            .into(),
    );
    line("|---|---|---:|---:|---:|---:|".into());
    for r in results {
        let c = r.step_counts;
        line(format!(
            "| {} | {} {} | {}, {} | {}, {} | {} | {}, {}, {}, {} |",
            r.setup,
            r.model,
            r.device.name(),
            per_step_text(r.forward_per_step[0]),
            per_step_text(r.train_per_step[0]),
            per_step_text(r.forward_per_step[1]),
            per_step_text(r.train_per_step[1]),
            r.train_submits,
            c[0],
            c[1],
            c[3],
            c[2]
        ));
    }
    let notes: Vec<String> = results
        .iter()
        .flat_map(|r| {
            [
                ("training step", &r.train, r.estimates[1]),
                ("forward", &r.forward, r.estimates[0]),
            ]
            .into_iter()
            .filter_map(move |(what, t, est)| match t {
                Timing::Done { once: true, .. } => Some(format!(
                    "{} / {}: {what} timed once, without a warm-up (estimated {est:.0} s per run)",
                    r.setup, r.model
                )),
                Timing::Skipped { .. } => Some(format!(
                    "{} / {}: {what} not measured: estimated {est:.0} s from the runs at T₀ and \
                         2T₀, over the {} s limit{}",
                    r.setup,
                    r.model,
                    if args.quick {
                        ONCE_ABOVE_S
                    } else {
                        SKIP_ABOVE_S
                    },
                    if args.quick {
                        " of --quick"
                    } else {
                        " (--full measures it)"
                    }
                )),
                Timing::Failed(e) => Some(format!("{} / {}: {what} failed: {e}", r.setup, r.model)),
                _ => None,
            })
        })
        .collect();
    if !notes.is_empty() {
        line(String::new());
        for n in notes {
            line(format!("- {n}"));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Cli, Command};
    use clap::Parser;

    fn parse(args: &[&str]) -> BenchArgs {
        let cli = Cli::try_parse_from(args).expect("parses");
        match cli.command {
            Command::Bench(b) => b,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn flags_parse_with_their_defaults() {
        let b = parse(&["rims", "bench"]);
        assert_eq!(b.config, Which::All);
        assert_eq!(b.repeats, 3);
        assert!(!b.quick && !b.full && b.out.is_none());
        let b = parse(&[
            "rims",
            "bench",
            "--config",
            "paper",
            "--repeats",
            "5",
            "--quick",
            "--out",
            "x.json",
        ]);
        assert_eq!(b.config, Which::Paper);
        assert_eq!((b.repeats, b.quick), (5, true));
        assert_eq!(b.out.as_deref(), Some(std::path::Path::new("x.json")));
        assert!(Cli::try_parse_from(["rims", "bench", "--config", "huge"]).is_err());
    }

    #[test]
    fn zero_repeats_is_an_error_before_any_device_work() {
        let b = parse(&["rims", "bench", "--repeats", "0"]);
        let e = run_bench(&b).unwrap_err().to_string();
        assert!(e.contains("repeats"), "{e}");
    }

    #[test]
    fn configurations_have_the_stated_sizes() {
        let all = setups(Which::All);
        assert_eq!(all.len(), 2);
        let (s, p) = (&all[0], &all[1]);
        assert_eq!(
            (s.batch, s.steps, s.rims.mechanisms, s.rims.hidden),
            (16, 32, 6, 32)
        );
        assert_eq!((s.rims.active, s.rims.input), (4, 32));
        assert_eq!(
            (p.batch, p.steps, p.rims.mechanisms, p.rims.hidden),
            (64, 196, 6, 100)
        );
        assert_eq!(
            (p.rims.active, p.rims.input, p.rims.cell_input()),
            (4, 600, 400)
        );
        for setup in &all {
            let m = models(setup);
            assert_eq!(m.len(), 3);
            for (_, cfg) in &m {
                cfg.validate().unwrap();
            }
        }
        assert_eq!(
            models(p)[2].1.backbone,
            Backbone::Dense { hidden: 600 },
            "the paper's baseline: one LSTM of 600 units"
        );
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(ms(0.00123), "1.23 ms");
        assert_eq!(ms(0.0456), "45.6 ms");
        assert_eq!(ms(1.5), "1500 ms");
        assert_eq!(per_step_text(21.0), "21");
        assert_eq!(per_step_text(8.5), "8.5");
        assert!(short(&"x".repeat(100)).chars().count() <= 60);
    }
}
