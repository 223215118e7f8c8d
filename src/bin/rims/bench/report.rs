//! What `rims bench` prints (Markdown tables) and writes with `--out` (JSON).

use rims::Result;
use rims::device::DeviceKind;
use serde::Serialize;

use super::measure::{Result1, Timing};
use super::{BenchArgs, ONCE_ABOVE_S, SKIP_ABOVE_S};

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
    let e = crate::shared::one_line(e);
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

/// One measured device.
pub(super) struct DeviceInfo {
    pub(super) kind: DeviceKind,
    pub(super) name: String,
    pub(super) adapter: Option<rims::device::AdapterSummary>,
    pub(super) cpu: Option<rims::device::CpuSummary>,
    /// 1024³ sgemm through the engine's matmul on this device, GFLOP/s.
    pub(super) sgemm_gflops: f64,
}

impl Timing {
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
}

// The JSON file. Fields are declared in alphabetical order, the order the file has always
// had (docs/bench-*.json), so that files old and new compare line by line.

/// The whole file.
#[derive(Serialize)]
struct BenchJson<'a> {
    devices: Vec<DeviceJson<'a>>,
    full: bool,
    quick: bool,
    repeats: usize,
    results: Vec<ResultJson<'a>>,
    version: &'static str,
}

#[derive(Serialize)]
struct DeviceJson<'a> {
    adapter: Option<crate::shared::AdapterJson<'a>>,
    cpu: Option<CpuJson<'a>>,
    kind: &'static str,
    name: &'a str,
    sgemm_1024_gflops: f64,
}

#[derive(Serialize)]
struct CpuJson<'a> {
    cores: usize,
    model: &'a str,
    simd: &'a [&'static str],
    threads: usize,
}

/// A timed measurement: done, skipped or failed.
#[derive(Serialize)]
#[serde(untagged)]
enum TimingJson<'a> {
    Done {
        median_ms: Option<f64>,
        runs_ms: Vec<f64>,
        single_run: bool,
    },
    Skipped {
        estimate_ms: f64,
        skipped: bool,
    },
    Failed {
        error: &'a str,
    },
}

impl<'a> From<&'a Timing> for TimingJson<'a> {
    fn from(t: &'a Timing) -> Self {
        match t {
            Timing::Done { runs, once } => TimingJson::Done {
                median_ms: t.median_s().map(|s| s * 1e3),
                runs_ms: runs.iter().map(|s| s * 1e3).collect(),
                single_run: *once,
            },
            Timing::Skipped { estimate_s } => TimingJson::Skipped {
                estimate_ms: estimate_s * 1e3,
                skipped: true,
            },
            Timing::Failed(e) => TimingJson::Failed { error: e },
        }
    }
}

/// A forward and a training step's figure.
#[derive(Serialize)]
struct FwdTrain {
    forward: f64,
    train_step: f64,
}

#[derive(Serialize)]
struct Counts {
    dispatches: f64,
    passes: f64,
}

#[derive(Serialize)]
struct PerTimeStep {
    forward: Counts,
    train: Counts,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Batch1Json<'a> {
    Done { median_ms: f64, steps_timed: usize },
    Failed { error: &'a str },
}

#[derive(Serialize)]
struct StepCounts {
    copies: u64,
    dispatches: u64,
    passes: u64,
    submits: u64,
}

#[derive(Serialize)]
struct ResultJson<'a> {
    batch: usize,
    batch1_step: Batch1Json<'a>,
    batch1_step_counts: StepCounts,
    config: &'static str,
    device: &'static str,
    estimate_ms: FwdTrain,
    forward: TimingJson<'a>,
    matmul_flops: FwdTrain,
    model: &'a str,
    params: usize,
    per_time_step: PerTimeStep,
    steps: usize,
    train_step: TimingJson<'a>,
    train_step_submits: u64,
}

impl<'a> From<&'a DeviceInfo> for DeviceJson<'a> {
    fn from(d: &'a DeviceInfo) -> Self {
        DeviceJson {
            adapter: d.adapter.as_ref().map(crate::shared::AdapterJson::from),
            cpu: d.cpu.as_ref().map(|c| CpuJson {
                cores: c.cores,
                model: &c.model,
                simd: &c.simd,
                threads: c.threads,
            }),
            kind: d.kind.name(),
            name: &d.name,
            sgemm_1024_gflops: d.sgemm_gflops,
        }
    }
}

impl<'a> From<&'a Result1> for ResultJson<'a> {
    fn from(r: &'a Result1) -> Self {
        let c = r.step_counts;
        ResultJson {
            batch: r.batch,
            batch1_step: match &r.step {
                Ok((s, n)) => Batch1Json::Done {
                    median_ms: s * 1e3,
                    steps_timed: *n,
                },
                Err(e) => Batch1Json::Failed { error: e },
            },
            batch1_step_counts: StepCounts {
                copies: c[3],
                dispatches: c[0],
                passes: c[1],
                submits: c[2],
            },
            config: r.setup,
            device: r.device.name(),
            estimate_ms: FwdTrain {
                forward: r.estimates[0] * 1e3,
                train_step: r.estimates[1] * 1e3,
            },
            forward: (&r.forward).into(),
            matmul_flops: FwdTrain {
                forward: r.flops[0],
                train_step: r.flops[1],
            },
            model: &r.model,
            params: r.params,
            per_time_step: PerTimeStep {
                forward: Counts {
                    dispatches: r.forward_per_step[0],
                    passes: r.forward_per_step[1],
                },
                train: Counts {
                    dispatches: r.train_per_step[0],
                    passes: r.train_per_step[1],
                },
            },
            steps: r.steps,
            train_step: (&r.train).into(),
            train_step_submits: r.train_submits,
        }
    }
}

/// Writes the results to `path` as JSON, atomically.
pub(super) fn write_json(
    path: &std::path::Path,
    args: &BenchArgs,
    devices: &[DeviceInfo],
    results: &[Result1],
) -> Result<()> {
    let json = BenchJson {
        devices: devices.iter().map(DeviceJson::from).collect(),
        full: args.full,
        quick: args.quick,
        repeats: args.repeats,
        results: results.iter().map(ResultJson::from).collect(),
        version: env!("CARGO_PKG_VERSION"),
    };
    let mut bytes =
        serde_json::to_vec_pretty(&json).map_err(|e| rims::Error::Io(std::io::Error::other(e)))?;
    bytes.push(b'\n');
    rims::io::write_atomic(path, &bytes)
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

pub(super) fn table(devices: &[DeviceInfo], args: &BenchArgs, results: &[Result1]) -> String {
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
