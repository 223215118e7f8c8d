//! `rims import` and `rims export`: weights in and out of the two PyTorch RIMs codes
//! (`rims::interop`, docs/spec.md §4).

use std::path::PathBuf;

use clap::Args;
use rims::interop::state_dict::StateDict;
use rims::interop::{self, Code, ImportOptions, run};
use rims::train::config::Task;
use rims::{Error, Result};

use crate::shared::{DeviceArg, emit};

/// The PyTorch codes, on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CodeArg {
    /// anirudh9119/RIMs: the authors' `BlocksCore` (variant A), bare or in their `RNNModel`.
    Authors,
    /// dido1998/Recurrent-Independent-Mechanisms: `RIMCell` (variant D).
    Dido,
}

impl CodeArg {
    fn code(self) -> Code {
        match self {
            CodeArg::Authors => Code::Authors,
            CodeArg::Dido => Code::Dido,
        }
    }
}

/// The commits of the two codes the mappings were checked against (tools/pytorch/README.md).
fn source_commit(code: Code) -> &'static str {
    match code {
        Code::Authors => "anirudh9119/RIMs@aa61773",
        Code::Dido => "dido1998/Recurrent-Independent-Mechanisms@26aa871",
    }
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The code the state_dict comes from.
    #[arg(long, value_enum)]
    from: CodeArg,
    /// The state_dict as safetensors (`safetensors.torch.save_file(model.state_dict(), path)`;
    /// tools/pytorch/pt_to_safetensors.py converts a .pt/.pth file).
    state: PathBuf,
    /// The run directory to create (must not hold a run).
    #[arg(long)]
    out: PathBuf,
    /// k, the mechanisms active per step: a state_dict does not hold it.
    #[arg(long)]
    active: usize,
    /// The authors' communication heads (default 4, what BlocksCore builds); dido's follow
    /// from the shapes.
    #[arg(long)]
    comm_heads: Option<usize>,
    /// Where the cell's keys start (e.g. `bc_lst.0.`, `rim_model.`); found by itself when the
    /// file holds one cell.
    #[arg(long)]
    prefix: Option<String>,
    /// The task the run is for: it decides the embedding, the decoder and `rims eval`.
    #[arg(long, value_enum, default_value_t = Task::Copying)]
    task: Task,
    /// Seed of the layers the state_dict does not hold (a bare cell's embedding and decoder)
    /// and of a later `rims train --resume`.
    #[arg(long, default_value_t = 1111)]
    seed: u64,
    #[command(flatten)]
    device: DeviceArg,
}

pub fn run_import(args: &ImportArgs) -> Result<()> {
    let task = args.task;
    let code = args.from.code();
    let mut sd = StateDict::read(&args.state)?;
    let opts = ImportOptions {
        code,
        active: args.active,
        comm_heads: args.comm_heads,
        prefix: args.prefix.clone(),
    };
    if code == Code::Dido && args.comm_heads.is_some() {
        return Err(Error::config(
            "comm-heads",
            "dido's communication heads follow from the shapes (d_vc = H); drop the flag",
        ));
    }
    let imported = interop::import(&mut sd, &opts)?;
    let base = rims::train::config::TrainConfig {
        seed: args.seed,
        ..rims::train::config::new_run::small_preset(task)
    };
    let ctx = args.device.open()?;
    let (cfg, notes) = run::write_run(&ctx, &args.out, &imported, &base)?;
    let r = &imported.rims;
    let mut text = format!(
        "imported the {} {} at '{}' from {} into {}: variant {}, {} cells, N={} k={} H={} D={}, \
         input heads {} (d_k {}, d_vin {}), communication heads {} (d_kc {}, d_vc {}); task {}\n",
        code.name(),
        match code {
            Code::Authors => "BlocksCore",
            Code::Dido => "RIMCell",
        },
        imported.prefix,
        args.state.display(),
        args.out.display(),
        r.variant.letter(),
        cfg.cell,
        r.mechanisms,
        r.active,
        r.hidden,
        r.input,
        r.input_heads,
        r.input_key,
        r.input_value,
        r.comm_heads,
        r.comm_key,
        r.comm_value,
        args.task.name(),
    );
    for n in notes {
        text.push_str(&format!("  note: {n}\n"));
    }
    emit(&text)
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The code to export for: the authors' need variant A at BlocksCore's sizes, dido's
    /// variant D.
    #[arg(long, value_enum)]
    to: CodeArg,
    /// The run directory whose current checkpoint is exported.
    #[arg(long)]
    checkpoint: PathBuf,
    /// The safetensors file to write (refused if it exists, unless --force).
    #[arg(long)]
    out: PathBuf,
    /// Authors: the bare BlocksCore instead of the whole RNNModel (encoder, bc_lst.0., decoder).
    #[arg(long)]
    cell_only: bool,
    /// Overwrite --out if it exists.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    device: DeviceArg,
}

pub fn run_export(args: &ExportArgs) -> Result<()> {
    let code = args.to.code();
    if args.out.exists() && !args.force {
        return Err(Error::config(
            "out",
            format!(
                "{} exists: choose another --out or pass --force",
                args.out.display()
            ),
        ));
    }
    rims::train::checkpoint::check_output(&args.out, &[&args.checkpoint])?;
    let ctx = args.device.open()?;
    let ck = run::read_checkpoint(&ctx, &args.checkpoint, code)?;
    let mut model = ck.model;
    if args.cell_only {
        model = interop::ModelTensors::default();
    }
    let tensors = interop::export(code, &ck.rims, &ck.cell, &model)?;
    let r = &ck.rims;
    // The model's own metadata (variant, cell, sizes), the gate order of the file written (dido's
    // LSTM columns are [i, f, o, g]) and where it is for.
    let mut meta = ck.metadata.clone();
    if code == Code::Dido && r.cell == rims::nn::CellKind::Lstm {
        meta.insert("gate_order".into(), "ifog".into());
    }
    meta.insert("code".into(), code.name().into());
    meta.insert("source".into(), source_commit(code).into());
    meta.insert(
        "made_by".into(),
        format!("rims {}", env!("CARGO_PKG_VERSION")),
    );
    let count = tensors.len();
    let sd = StateDict::from_entries(&args.out, tensors);
    rims::io::write_atomic(&args.out, &sd.encode_f32(&meta)?)?;
    emit(&format!(
        "exported {} ({} tensors, variant {}, {} cells, k={}) for the {} code to {}\n",
        args.checkpoint.display(),
        count,
        r.variant.letter(),
        r.cell.name(),
        r.active,
        code.name(),
        args.out.display()
    ))
}
