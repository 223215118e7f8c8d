//! `rims data`: data sets written to files. `rims data balls` draws bouncing-balls sequences
//! (`rims::data::balls`, docs/spec.md §2.5) into one safetensors file.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use rims::data::balls::{self, BallsConfig, Curtain, MassRule, Sequences, Span, Split};
use rims::{Error, Result};
use safetensors::Dtype;
use safetensors::tensor::TensorView;

use crate::shared::emit;

/// Requests of more pixels than this (sequences × T × S²) show a progress bar: about a second
/// of work.
const BAR_PIXELS: usize = 50_000_000;

#[derive(Debug, Args)]
pub struct DataArgs {
    #[command(subcommand)]
    command: DataCommand,
}

#[derive(Debug, Subcommand)]
enum DataCommand {
    /// Bouncing balls (the paper's fig. 6): elastic discs in a box rendered to S×S frames, with
    /// each ball's position and velocity per frame.
    Balls(BallsArgs),
}

pub fn run_data(args: &DataArgs) -> Result<()> {
    match &args.command {
        DataCommand::Balls(a) => run_balls(a),
    }
}

/// `--mass`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum MassArg {
    /// Every ball weighs 1.
    Equal,
    /// Mass ∝ radius² (1 at radius 0.1).
    Area,
}

/// `--split`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum SplitArg {
    Train,
    Val,
    Test,
}

#[derive(Debug, Args)]
pub struct BallsArgs {
    /// Balls per sequence: a count (4) or a range drawn per sequence (6-8), at most 32.
    #[arg(long, default_value = "4")]
    balls: String,
    /// Sequences to draw.
    #[arg(long)]
    sequences: usize,
    /// Frames per sequence T.
    #[arg(long)]
    length: usize,
    /// Frame side S, pixels.
    #[arg(long, default_value_t = 32)]
    size: usize,
    /// Draw an opaque curtain over the middle quarter of the frame (columns 3S/8 to 5S/8).
    #[arg(long)]
    curtain: bool,
    /// Ball radius in box sides, or a range drawn per ball (0.08-0.12).
    #[arg(long, default_value = "0.1")]
    radius: String,
    /// How mass follows from radius.
    #[arg(long, value_enum, default_value_t = MassArg::Equal)]
    mass: MassArg,
    /// Initial speed in box sides per frame, or a range drawn per ball.
    #[arg(long, default_value = "0.03-0.07")]
    speed: String,
    /// Integration steps per frame.
    #[arg(long, default_value_t = 10)]
    substeps: usize,
    /// Seed: the same seed, split and settings give the same file, bit for bit.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Which of the seed's three disjoint streams of sequences to draw.
    #[arg(long, value_enum, default_value_t = SplitArg::Train)]
    split: SplitArg,
    /// The safetensors file to write (replaced if it is a regular file).
    #[arg(long)]
    out: PathBuf,
}

impl BallsArgs {
    fn config(&self) -> Result<BallsConfig> {
        let cfg = BallsConfig {
            balls: Span::parse(&self.balls, "balls")?,
            radius: Span::parse(&self.radius, "radius")?,
            mass: match self.mass {
                MassArg::Equal => MassRule::Equal,
                MassArg::Area => MassRule::Area,
            },
            speed: Span::parse(&self.speed, "speed")?,
            size: self.size,
            length: self.length,
            substeps: self.substeps,
            curtain: self.curtain.then_some(Curtain::MIDDLE),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    fn split(&self) -> Split {
        match self.split {
            SplitArg::Train => Split::Train,
            SplitArg::Val => Split::Val,
            SplitArg::Test => Split::Test,
        }
    }
}

fn run_balls(args: &BallsArgs) -> Result<()> {
    let cfg = args.config()?;
    if args.sequences == 0 {
        return Err(Error::config("sequences", "must be at least 1"));
    }
    rims::train::checkpoint::check_output(&args.out, &[])?;
    let pixels = args
        .sequences
        .saturating_mul(cfg.length)
        .saturating_mul(cfg.size * cfg.size);
    let bar = progress_bar(args.sequences, pixels);
    let data = balls::generate(&cfg, args.seed, args.split(), args.sequences, |done| {
        if let Some(b) = &bar {
            b.set_position(done as u64);
        }
    })?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let bytes = encode(&data, &metadata(args, &cfg))
        .map_err(|e| Error::file(&args.out, format!("cannot encode the data: {e}")))?;
    rims::io::write_atomic(&args.out, &bytes)?;
    emit(&format!(
        "wrote {} sequences of {} frames ({s}x{s}, {} balls, curtain {}, seed {}, split {}) to {}\n",
        data.sequences,
        data.length,
        cfg.balls,
        if cfg.curtain.is_some() { "on" } else { "off" },
        args.seed,
        args.split().name(),
        args.out.display(),
        s = data.size,
    ))
}

/// A bar over the sequences for a request big enough to take a while (hidden without a
/// terminal).
fn progress_bar(sequences: usize, pixels: usize) -> Option<ProgressBar> {
    (pixels > BAR_PIXELS).then(|| {
        let bar = ProgressBar::new(sequences as u64);
        bar.set_style(
            ProgressStyle::with_template("balls [{bar:30}] {pos}/{len} sequences (eta {eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar
    })
}

/// The settings that made the file, enough to draw it again.
fn metadata(args: &BallsArgs, cfg: &BallsConfig) -> BTreeMap<String, String> {
    let entries = [
        ("data", "bouncing balls".to_string()),
        ("balls", cfg.balls.to_string()),
        ("sequences", args.sequences.to_string()),
        ("length", cfg.length.to_string()),
        ("size", cfg.size.to_string()),
        ("radius", cfg.radius.to_string()),
        ("mass", cfg.mass.name().to_string()),
        ("speed", cfg.speed.to_string()),
        ("substeps", cfg.substeps.to_string()),
        ("curtain", cfg.curtain_text()),
        ("seed", args.seed.to_string()),
        ("split", args.split().name().to_string()),
        ("made_by", format!("rims {}", env!("CARGO_PKG_VERSION"))),
    ];
    entries
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

/// The file's bytes: `frames`, `positions`, `velocities` as F32 and `ball_count` as I64 (what
/// torch and numpy index with).
fn encode(
    data: &Sequences,
    meta: &BTreeMap<String, String>,
) -> std::result::Result<Vec<u8>, String> {
    let (n, t, s, m) = (data.sequences, data.length, data.size, data.max_balls);
    let counts: Vec<i64> = data.ball_count.iter().map(|&c| i64::from(c)).collect();
    // Borrowed, not copied: the frames can be most of the memory the command uses.
    let tensors: [(&str, Dtype, Vec<usize>, &[u8]); 4] = [
        ("frames", Dtype::F32, vec![n, t, s, s], bytes(&data.frames)),
        (
            "positions",
            Dtype::F32,
            vec![n, t, m, 2],
            bytes(&data.positions),
        ),
        (
            "velocities",
            Dtype::F32,
            vec![n, t, m, 2],
            bytes(&data.velocities),
        ),
        ("ball_count", Dtype::I64, vec![n], bytes(&counts)),
    ];
    let views = tensors
        .into_iter()
        .map(|(name, dtype, shape, bytes)| {
            TensorView::new(dtype, shape, bytes).map(|v| (name.to_string(), v))
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let meta: HashMap<String, String> = meta.clone().into_iter().collect();
    let mut file = safetensors::serialize(views, Some(meta)).map_err(|e| e.to_string())?;
    sort_header(&mut file)?;
    Ok(file)
}

/// Rewrites a safetensors file's JSON header with its keys sorted, in place: the crate writes
/// the metadata from a `HashMap`, whose order changes from run to run, and the same seed must
/// give the same bytes. Sorting keeps the header's length, so the padding and offsets stay.
fn sort_header(file: &mut [u8]) -> std::result::Result<(), String> {
    let short = || "the header is cut short".to_string();
    let len_bytes: [u8; 8] = file
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(short)?;
    let len = usize::try_from(u64::from_le_bytes(len_bytes)).map_err(|e| e.to_string())?;
    let header = file.get_mut(8..8 + len).ok_or_else(short)?;
    let value: serde_json::Value = serde_json::from_slice(header).map_err(|e| e.to_string())?;
    let text = serde_json::to_vec(&sorted(value)).map_err(|e| e.to_string())?;
    if text.len() > header.len() {
        return Err("the sorted header is longer than the original".into());
    }
    header.fill(b' ');
    header[..text.len()].copy_from_slice(&text);
    Ok(())
}

/// `value` with every object's keys in sorted order (whatever order serde_json's maps keep).
fn sorted(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let entries: BTreeMap<String, serde_json::Value> =
                map.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            serde_json::Value::Object(entries.into_iter().collect())
        }
        other => other,
    }
}

fn bytes<T: bytemuck::Pod>(values: &[T]) -> &[u8] {
    bytemuck::cast_slice(values)
}
