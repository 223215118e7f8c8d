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

//!
//! The files: this one (flags, configurations, the run), `measure.rs` (timing and counting one
//! model), `report.rs` (the tables and the JSON file).

mod measure;
mod report;

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use rims::device::DeviceKind;
use rims::nn::CellKind;
use rims::nn::model::{Backbone, ModelConfig};
use rims::train::bench::BenchSetup;
use rims::{Error, Result};

use measure::{measure, sgemm_gflops};
use report::{DeviceInfo, table, write_json};

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

fn setups(which: Which) -> Vec<BenchSetup> {
    match which {
        Which::Small => vec![BenchSetup::small()],
        Which::Paper => vec![BenchSetup::paper()],
        Which::All => vec![BenchSetup::small(), BenchSetup::paper()],
    }
}

/// The three models of a configuration: (label, model config).
fn models(setup: &BenchSetup) -> Vec<(String, ModelConfig)> {
    let nh = setup.dense_hidden();
    vec![
        (
            "RIMs LSTM".into(),
            setup.model(CellKind::Lstm, Backbone::Rims),
        ),
        (
            "RIMs GRU".into(),
            setup.model(CellKind::Gru, Backbone::Rims),
        ),
        (
            format!("LSTM {nh} (dense)"),
            setup.model(CellKind::Lstm, Backbone::Dense { hidden: nh }),
        ),
    ]
}

pub fn run_bench(args: &BenchArgs) -> Result<()> {
    if args.repeats == 0 {
        return Err(Error::config("repeats", "must be at least 1"));
    }
    if let Some(path) = &args.out {
        rims::train::checkpoint::check_output(path, &[])?;
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
            cpu: ctx.cpu(),
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
        write_json(path, args, &devices, &results)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
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
}
