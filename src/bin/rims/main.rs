//! `rims`: the command-line front end of the engine.
//!
//! One subcommand per job: `info`, `train`, `eval`, `infer`, `verify`, `data` (bench and viz join
//! [`Command`] as they are built). Every failure ends the process with a nonzero exit code and
//! a one-line `error: ...` on stderr; nothing here panics on user input.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use rims::device::{AdapterSummary, CpuSummary, DeviceRequest};
use rims::{Context, Error, Result};
use serde::Serialize;

mod bench;
mod data;
mod eval;
mod flags;
mod infer;
mod interop;
mod progress;
mod rl;
mod shared;
mod summary;
mod train;
mod verify;
mod viz;

use shared::{AdapterJson, DeviceArg, emit, one_line};

/// Environment variables that steer the device choice, in the order `rims info` shows them.
const ENV_VARS: [&str; 4] = [
    "RIMS_DEVICE",
    "RIMS_ADAPTER",
    "RIMS_BACKEND",
    "RIMS_THREADS",
];

/// Recurrent Independent Mechanisms on the GPU (wgpu + WGSL), checked against an f64 CPU
/// reference.
#[derive(Debug, Parser)]
#[command(name = "rims", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the devices (the CPU device and every wgpu adapter), mark the one chosen and say
    /// why, and show its limits and the environment that steers the choice.
    Info(InfoArgs),
    /// Train a model (default: the main job, a small RIMs model on the copying task).
    Train(Box<train::TrainArgs>),
    /// Evaluate a checkpoint.
    Eval(eval::EvalArgs),
    /// Run a checkpoint on an input sequence and write every step's state, mask and output.
    Infer(infer::InferArgs),
    /// Time training steps, forwards and batch-1 steps of RIMs and the dense LSTM baseline at
    /// the small and the paper's sizes, with dispatches and submits per time step.
    Bench(bench::BenchArgs),
    /// Compare the GPU with the f64 reference on several RIMs configurations.
    Verify(verify::VerifyArgs),
    /// The final evaluation of several runs as one table: mean ± std over the seeds of each
    /// configuration (directories named NAME-s1, NAME-s2, ...).
    Summary(summary::SummaryArgs),
    /// Draw pictures: which mechanisms are active at each step of a checkpoint's task, or the
    /// training curves of a run.
    Viz(viz::VizArgs),
    /// Read a PyTorch RIMs state_dict (the authors' BlocksCore/RNNModel or dido's RIMCell,
    /// saved as safetensors) into a run directory that eval, infer, viz and train --init accept.
    Import(interop::ImportArgs),
    /// Write a checkpoint as the state_dict the PyTorch module loads with
    /// load_state_dict(strict=True).
    Export(interop::ExportArgs),
    /// Write a data set to a file: `rims data balls` draws bouncing-balls sequences.
    Data(data::DataArgs),
    /// Reinforcement learning on MiniGrid worlds: `rims rl train` (recurrent PPO, RIMs or
    /// LSTM agent) and `rims rl eval`.
    Rl(rl::RlArgs),
}

#[derive(Debug, Args)]
struct InfoArgs {
    /// Print the report as JSON instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    device: DeviceArg,
}

/// The command line's definition. Every flag that takes a value also takes a negative number,
/// so that `--lr -0.01` reaches the flag's own check instead of reading as an unknown flag `-0`,
/// in nested subcommands (`rims data balls --speed -1`) too.
fn cli_command() -> clap::Command {
    negative_numbers(Cli::command())
}

fn negative_numbers(cmd: clap::Command) -> clap::Command {
    cmd.mut_subcommands(|sub| {
        negative_numbers(sub).mut_args(|a| {
            let takes = a.get_action().takes_values();
            a.allow_negative_numbers(takes)
        })
    })
}

fn main() -> ExitCode {
    let matches = cli_command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A closed stderr leaves nothing to report to; the exit code still says it failed.
            let _ = writeln!(std::io::stderr(), "error: {}", one_line(&e.to_string()));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Info(args) => info(&args),
        Command::Train(args) => train::run_train(&args),
        Command::Eval(args) => eval::run_eval(&args),
        Command::Infer(args) => infer::run_infer(&args),
        Command::Bench(args) => bench::run_bench(&args),
        Command::Verify(args) => verify::run_verify(&args),
        Command::Viz(args) => viz::run_viz(&args),
        Command::Summary(args) => summary::run_summary(&args),
        Command::Import(args) => interop::run_import(&args),
        Command::Export(args) => interop::run_export(&args),
        Command::Data(args) => data::run_data(&args),
        Command::Rl(args) => rl::run_rl(&args),
    }
}

// ---------------------------------------------------------------------------------------------
// rims info
// ---------------------------------------------------------------------------------------------

/// How a limit's value reads.
#[derive(Clone, Copy, Debug)]
enum Unit {
    Bytes,
    Count,
}

/// Everything `rims info` reports, gathered once and then rendered as text or JSON.
struct InfoReport {
    adapters: Vec<AdapterSummary>,
    /// Index into `adapters` of the one the context opened (None: the CPU device).
    chosen: Option<usize>,
    /// The CPU device (measured now, whether or not it was chosen).
    cpu: CpuSummary,
    /// "cpu" or "gpu", and why.
    chosen_kind: &'static str,
    reason: String,
    limits: Vec<(&'static str, u64, Unit)>,
    /// Each variable with its raw value; `None` when unset.
    env: Vec<(&'static str, Option<String>)>,
}

fn info(args: &InfoArgs) -> Result<()> {
    let ctx = args.device.open()?;
    let report = InfoReport::gather(&ctx)?;
    if args.json {
        let mut text = serde_json::to_string_pretty(&report.to_json())
            .map_err(|e| Error::Io(std::io::Error::other(e)))?;
        text.push('\n');
        emit(&text)
    } else {
        emit(&report.to_text())
    }
}

impl InfoReport {
    fn gather(ctx: &Context) -> Result<Self> {
        // A context opened straight on the CPU device did not look for adapters: look now.
        let adapters = if ctx.adapters().is_empty() {
            rims::device::list_adapters()
        } else {
            ctx.adapters().to_vec()
        };
        let chosen = ctx.adapter_index();
        let cpu = match ctx.cpu() {
            Some(c) => c,
            None => Context::new(DeviceRequest::cpu(None))?
                .cpu()
                .expect("a CPU context describes its CPU"),
        };
        let l = ctx.limits();
        let limits = vec![
            ("max_buffer_size", l.max_buffer_size, Unit::Bytes),
            (
                "max_storage_buffer_binding_size",
                l.max_storage_buffer_binding_size,
                Unit::Bytes,
            ),
            (
                "max_storage_buffers_per_shader_stage",
                l.max_storage_buffers_per_shader_stage.into(),
                Unit::Count,
            ),
            (
                "max_compute_workgroup_size_x",
                l.max_compute_workgroup_size_x.into(),
                Unit::Count,
            ),
            (
                "max_compute_workgroup_size_y",
                l.max_compute_workgroup_size_y.into(),
                Unit::Count,
            ),
            (
                "max_compute_workgroup_size_z",
                l.max_compute_workgroup_size_z.into(),
                Unit::Count,
            ),
            (
                "max_compute_invocations_per_workgroup",
                l.max_compute_invocations_per_workgroup.into(),
                Unit::Count,
            ),
            (
                "max_compute_workgroup_storage_size",
                l.max_compute_workgroup_storage_size.into(),
                Unit::Bytes,
            ),
            (
                "max_compute_workgroups_per_dimension",
                l.max_compute_workgroups_per_dimension.into(),
                Unit::Count,
            ),
            (
                "min_uniform_buffer_offset_alignment",
                l.min_uniform_buffer_offset_alignment.into(),
                Unit::Bytes,
            ),
            (
                "min_storage_buffer_offset_alignment",
                l.min_storage_buffer_offset_alignment.into(),
                Unit::Bytes,
            ),
        ];
        let env = ENV_VARS
            .iter()
            .map(|&name| {
                (
                    name,
                    std::env::var_os(name).map(|v| v.to_string_lossy().into_owned()),
                )
            })
            .collect();
        Ok(InfoReport {
            adapters,
            chosen,
            cpu,
            chosen_kind: ctx.kind().name(),
            reason: ctx.reason().to_string(),
            limits,
            env,
        })
    }

    fn to_text(&self) -> String {
        let mut s = String::new();
        let mut line = |text: String| {
            s.push_str(&text);
            s.push('\n');
        };
        line(format!("rims {}", env!("CARGO_PKG_VERSION")));
        line(String::new());
        line(format!(
            "chosen: the {} device, because {}",
            self.chosen_kind, self.reason
        ));
        line(String::new());
        let cpu_chosen = self.chosen.is_none();
        line(format!(
            "{} CPU device{}",
            if cpu_chosen { "*" } else { " " },
            if cpu_chosen { "  (chosen)" } else { "" }
        ));
        line(format!("        processor    {}", self.cpu.model));
        line(format!(
            "        threads      {} of {} cores (RIMS_THREADS to change)",
            self.cpu.threads, self.cpu.cores
        ));
        line(format!("        SIMD         {}", self.cpu.simd.join(" ")));
        line(format!(
            "        memory       {}",
            human_bytes(self.cpu.memory)
        ));
        line(String::new());
        line(format!(
            "wgpu adapters ({} found, * = chosen):",
            self.adapters.len()
        ));
        for (i, a) in self.adapters.iter().enumerate() {
            let chosen = self.chosen == Some(i);
            line(format!(
                "{} [{i}] {}{}",
                if chosen { "*" } else { " " },
                a.name,
                if chosen { "  (chosen)" } else { "" }
            ));
            line(format!("        backend      {}", a.backend));
            line(format!(
                "        device type  {}",
                device_type_text(a.device_type)
            ));
            line(format!("        driver       {}", or_dash(&a.driver)));
            line(format!("        driver info  {}", or_dash(&a.driver_info)));
            line(format!(
                "        compute      {}",
                if a.compute { "yes" } else { "no" }
            ));
            line(format!("        features     {}", feature_text(a.features)));
        }
        line(String::new());
        line("device limits (as opened by the engine):".into());
        let width = self
            .limits
            .iter()
            .map(|(name, ..)| name.len())
            .max()
            .unwrap_or(0);
        for &(name, value, unit) in &self.limits {
            let pretty = match unit {
                Unit::Bytes if value >= 1024 => format!("  ({})", human_bytes(value)),
                _ => String::new(),
            };
            line(format!("  {name:<width$}  {value:>12}{pretty}"));
        }
        line(String::new());
        line("environment:".into());
        for (name, value) in &self.env {
            let shown = match value.as_deref() {
                None => "(unset)".to_string(),
                Some("") => "\"\" (empty: ignored)".to_string(),
                Some(v) => format!("{v:?}"),
            };
            line(format!("  {name}  {shown}"));
        }
        s
    }

    fn to_json(&self) -> InfoJson<'_> {
        InfoJson {
            adapters: self
                .adapters
                .iter()
                .enumerate()
                .map(|(i, a)| InfoAdapterJson {
                    adapter: a.into(),
                    chosen: self.chosen == Some(i),
                    compute: a.compute,
                    features: feature_names(a.features),
                    index: i,
                })
                .collect(),
            chosen: self.chosen,
            cpu: InfoCpuJson {
                chosen: self.chosen.is_none(),
                cores: self.cpu.cores,
                memory: self.cpu.memory,
                model: &self.cpu.model,
                simd: &self.cpu.simd,
                threads: self.cpu.threads,
            },
            device: self.chosen_kind,
            env: self.env.iter().map(|(k, v)| (*k, v.as_deref())).collect(),
            limits: self.limits.iter().map(|&(k, v, _)| (k, v)).collect(),
            reason: &self.reason,
            version: env!("CARGO_PKG_VERSION"),
        }
    }
}

// `rims info --json`. Fields in alphabetical order, as the output has always had them.

#[derive(Serialize)]
struct InfoJson<'a> {
    adapters: Vec<InfoAdapterJson<'a>>,
    chosen: Option<usize>,
    cpu: InfoCpuJson<'a>,
    device: &'static str,
    env: BTreeMap<&'static str, Option<&'a str>>,
    limits: BTreeMap<&'static str, u64>,
    reason: &'a str,
    version: &'static str,
}

#[derive(Serialize)]
struct InfoAdapterJson<'a> {
    #[serde(flatten)]
    adapter: AdapterJson<'a>,
    chosen: bool,
    compute: bool,
    features: Vec<&'static str>,
    index: usize,
}

#[derive(Serialize)]
struct InfoCpuJson<'a> {
    chosen: bool,
    cores: usize,
    memory: u64,
    model: &'a str,
    simd: &'a [&'static str],
    threads: usize,
}

/// The adapter features a kernel writer cares about, by name.
fn feature_names(f: wgpu::Features) -> Vec<&'static str> {
    let known = [
        (wgpu::Features::SHADER_F16, "shader-f16"),
        (wgpu::Features::SUBGROUP, "subgroup"),
        (wgpu::Features::TIMESTAMP_QUERY, "timestamp-query"),
        (wgpu::Features::SHADER_F64, "shader-f64"),
        (wgpu::Features::IMMEDIATES, "immediates"),
    ];
    known
        .iter()
        .filter(|(flag, _)| f.contains(*flag))
        .map(|(_, name)| *name)
        .collect()
}

fn feature_text(f: wgpu::Features) -> String {
    let names = feature_names(f);
    if names.is_empty() {
        "-".into()
    } else {
        names.join(", ")
    }
}

fn device_type_text(t: wgpu::DeviceType) -> &'static str {
    match t {
        wgpu::DeviceType::DiscreteGpu => "discrete GPU",
        wgpu::DeviceType::IntegratedGpu => "integrated GPU",
        wgpu::DeviceType::VirtualGpu => "virtual GPU",
        wgpu::DeviceType::Cpu => "CPU (software rasteriser)",
        wgpu::DeviceType::Other => "other",
    }
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() { "-" } else { s }
}

/// 1536 -> "1.5 KiB", 2147483648 -> "2 GiB".
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    let text = format!("{value:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_valid() {
        cli_command().debug_assert();
    }

    #[test]
    fn negative_numbers_reach_the_flags() {
        let m = cli_command()
            .try_get_matches_from(["rims", "train", "--lr", "-0.01", "--forget-bias", "-1"])
            .expect("parses");
        let cli = Cli::from_arg_matches(&m).expect("builds");
        assert!(matches!(cli.command, Command::Train(_)));
        // A nested subcommand's flags too.
        let m = cli_command()
            .try_get_matches_from([
                "rims",
                "data",
                "balls",
                "--speed",
                "-1",
                "--sequences",
                "1",
                "--length",
                "1",
                "--out",
                "x",
            ])
            .expect("parses");
        let cli = Cli::from_arg_matches(&m).expect("builds");
        assert!(matches!(cli.command, Command::Data(_)));
    }

    #[test]
    fn info_parses_with_and_without_json() {
        let cli = Cli::try_parse_from(["rims", "info", "--json"]).expect("parses");
        assert!(matches!(
            cli.command,
            Command::Info(InfoArgs { json: true, .. })
        ));
        let cli = Cli::try_parse_from(["rims", "info"]).expect("parses");
        assert!(matches!(
            cli.command,
            Command::Info(InfoArgs { json: false, .. })
        ));
        assert!(Cli::try_parse_from(["rims"]).is_err());
    }

    #[test]
    fn errors_fold_to_one_line() {
        assert_eq!(one_line("a\n  b\tc\n"), "a b c");
    }

    #[test]
    fn bytes_read_well() {
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(16384), "16 KiB");
        assert_eq!(human_bytes(2147483648), "2 GiB");
        assert_eq!(human_bytes(134217728), "128 MiB");
    }
}
