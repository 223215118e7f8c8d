//! Weights in and out of the two PyTorch RIMs codes (`docs/spec.md` §3-4): a state_dict saved as
//! safetensors becomes a run directory that `eval`, `infer`, `viz`, the `Runner` and
//! `rims train --init` accept, and a checkpoint becomes the state_dict the PyTorch module
//! loads with `load_state_dict(strict=True)`.
//!
//! - [`import`] finds the cell in a state_dict (the authors' `BlocksCore`, bare or inside their
//!   `RNNModel`; dido's `RIMCell`, bare or inside a model with a `Linear` readout), infers every
//!   size from the shapes (k and the authors' head count come from the caller), and gives the
//!   canonical tensors. Keys it does not understand are an error that names them.
//! - [`export`] is the way back, for the variant the code computes.
//! - [`run::write_run`] and [`run::read_checkpoint`] connect both to run directories.
//!
//! ```no_run
//! use rims::interop::{self, Code, ImportOptions, state_dict::StateDict};
//! let mut sd = StateDict::read(std::path::Path::new("rimcell.safetensors"))?;
//! let imported = interop::import(&mut sd, &ImportOptions::new(Code::Dido, 3))?;
//! println!("N = {}, H = {}", imported.rims.mechanisms, imported.rims.hidden);
//! # Ok::<(), rims::Error>(())
//! ```

pub mod authors;
pub mod dido;
pub mod run;
pub mod state_dict;

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::nn::RimsConfig;
use state_dict::{Entry, StateDict};

/// A cell's tensors under their canonical names and shapes (`docs/spec.md` §4), as f64.
pub type Canonical = BTreeMap<String, Entry>;

/// Which PyTorch code a state_dict comes from or goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// anirudh9119/RIMs (`BlocksCore`, `RNNModel`): variant A.
    Authors,
    /// dido1998/Recurrent-Independent-Mechanisms (`RIMCell`): variant D.
    Dido,
}

impl Code {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Code::Authors => "authors",
            Code::Dido => "dido",
        }
    }

    fn module(self) -> &'static str {
        match self {
            Code::Authors => "BlocksCore",
            Code::Dido => "RIMCell",
        }
    }
}

/// What [`import`] needs besides the file.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// The code the state_dict comes from.
    pub code: Code,
    /// k, the active mechanisms per step: no state_dict holds it.
    pub active: usize,
    /// The authors' communication heads (default 4, what `BlocksCore` builds): the shapes give
    /// only heads × size. dido's follow from d_vc = H.
    pub comm_heads: Option<usize>,
    /// Where the cell's keys start (e.g. `bc_lst.0.`); found by itself when None.
    pub prefix: Option<String>,
}

impl ImportOptions {
    /// The options for `code` with k = `active`, everything else found from the file.
    pub fn new(code: Code, active: usize) -> Self {
        ImportOptions {
            code,
            active,
            comm_heads: None,
            prefix: None,
        }
    }
}

/// What [`import`] read.
#[derive(Clone, Debug)]
pub struct Imported {
    /// The cell's sizes and variant.
    pub rims: RimsConfig,
    /// The cell's canonical tensors.
    pub cell: Canonical,
    /// The token embedding [V, D] of a whole model (the authors' `encoder.weight`).
    pub embed: Option<Entry>,
    /// The decoder `dec_w` [N·H, C] and `dec_b` [C] of a whole model.
    pub decoder: Option<(Entry, Entry)>,
    /// Where the cell's keys started.
    pub prefix: String,
    /// What the user should know (entries dropped, tensors ignored).
    pub notes: Vec<String>,
}

/// The transpose of a row-major [rows, cols] matrix.
pub(crate) fn transpose(v: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    let mut out = vec![0.0; v.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = v[r * cols + c];
        }
    }
    out
}

fn find_prefix(sd: &StateDict, opts: &ImportOptions) -> Result<String> {
    let found = match opts.code {
        Code::Authors => authors::cell_prefixes(sd),
        Code::Dido => dido::cell_prefixes(sd),
    };
    if let Some(p) = &opts.prefix {
        if found.contains(p) {
            return Ok(p.clone());
        }
        return Err(sd.bad(format!(
            "no {} under the prefix '{p}'; found {}",
            opts.code.module(),
            describe(&found)
        )));
    }
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => {
            let sample: Vec<&str> = sd.keys().take(6).collect();
            Err(sd.bad(format!(
                "no {} of the {} code in this state_dict (its keys begin {:?}); is --from right?",
                opts.code.module(),
                opts.code.name(),
                sample
            )))
        }
        many => Err(sd.bad(format!(
            "{} {}s in this state_dict ({}): only one cell (one layer) can be imported; pick \
             one with --prefix",
            many.len(),
            opts.code.module(),
            describe(many)
        ))),
    }
}

fn describe(prefixes: &[String]) -> String {
    if prefixes.is_empty() {
        return "none".into();
    }
    prefixes
        .iter()
        .map(|p| format!("'{p}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads the cell (and, for a whole model, the embedding and the decoder) of a state_dict.
/// Every tensor must be understood: unknown, missing or mis-shaped keys are errors that name
/// them.
pub fn import(sd: &mut StateDict, opts: &ImportOptions) -> Result<Imported> {
    let prefix = find_prefix(sd, opts)?;
    let (rims, cell, mut notes) = match opts.code {
        Code::Authors => authors::import_cell(sd, &prefix, opts.active, opts.comm_heads)?,
        Code::Dido => dido::import_cell(sd, &prefix, opts.active)?,
    };
    let nh = rims.mechanisms * rims.hidden;
    set_aside_other_layers(sd, opts.code, &prefix, rims.input, nh, &mut notes);
    if opts.code == Code::Authors && sd.contains("decoder.weight") && !sd.contains("decoder.bias") {
        return Err(sd.bad(
            "'decoder.weight' without 'decoder.bias': the authors' decoder is an nn.Linear with \
             a bias, so the file is incomplete",
        ));
    }
    let mut embed = None;
    let mut decoder = None;
    if opts.code == Code::Authors && sd.contains("encoder.weight") {
        if sd.contains("encoder.bias") {
            return Err(sd.bad(
                "the model's encoder is an nn.Linear (discrete_input=False); only the embedding \
                 encoder of the copying and sMNIST scripts can be imported",
            ));
        }
        let v = sd.shape("encoder.weight")?.first().copied().unwrap_or(0);
        embed = Some(sd.take("encoder.weight", Some(&[v, rims.input]))?);
    }
    // The readout: the authors' `decoder`, or any one nn.Linear(N·H, C) beside dido's cell.
    let linear_names: Vec<String> = sd
        .untaken("")
        .into_iter()
        .filter_map(|k| k.strip_suffix(".weight"))
        .filter(|p| {
            sd.shape(&format!("{p}.weight"))
                .is_ok_and(|s| s.len() == 2 && s[1] == nh)
                && sd.contains(&format!("{p}.bias"))
        })
        .map(str::to_string)
        .collect();
    let readout = match opts.code {
        Code::Authors => linear_names.iter().find(|p| *p == "decoder").cloned(),
        Code::Dido => match linear_names.as_slice() {
            [] => None,
            [one] => Some(one.clone()),
            many => {
                return Err(sd.bad(format!(
                    "several nn.Linear({nh}, C) layers could be the readout: {}",
                    describe(many)
                )));
            }
        },
    };
    if let Some(p) = readout {
        let w = sd.take(&format!("{p}.weight"), None)?;
        let classes = w.shape[0];
        let b = sd.take(&format!("{p}.bias"), Some(&[classes]))?;
        let dec_w = Entry::new(&[nh, classes], transpose(&w.values, classes, nh));
        decoder = Some((dec_w, b));
        notes.push(format!("the readout is '{p}' ({classes} outputs)"));
    }
    let unknown = sd.untaken("");
    if !unknown.is_empty() {
        return Err(sd.bad(format!(
            "{} tensor(s) that a {} import does not understand: {}",
            unknown.len(),
            opts.code.name(),
            unknown.join(", ")
        )));
    }
    Ok(Imported {
        rims,
        cell,
        embed,
        decoder,
        prefix,
        notes,
    })
}

/// With several cells (layers) in `sd`, only the one under `prefix` is imported: the others'
/// tensors are left out, and so are an authors' encoder or decoder that do not fit this cell
/// (input `input`, state `nh`) because they belong to the first or last of the other layers.
/// Each is said in `notes`.
fn set_aside_other_layers(
    sd: &mut StateDict,
    code: Code,
    prefix: &str,
    input: usize,
    nh: usize,
    notes: &mut Vec<String>,
) {
    let cells = match code {
        Code::Authors => authors::cell_prefixes(sd),
        Code::Dido => dido::cell_prefixes(sd),
    };
    let others: Vec<String> = cells.into_iter().filter(|p| p != prefix).collect();
    if others.is_empty() {
        return;
    }
    let n: usize = others.iter().map(|p| sd.set_aside(p)).sum();
    notes.push(format!(
        "left out {n} tensors of the other {}(s) {}: one layer is imported",
        code.module(),
        describe(&others)
    ));
    if code != Code::Authors {
        return;
    }
    let fits = |sd: &StateDict, key: &str, want: usize| {
        !sd.contains(key) || sd.shape(key).is_ok_and(|s| s.get(1) == Some(&want))
    };
    if !fits(sd, "encoder.weight", input) {
        sd.set_aside("encoder.");
        notes.push(format!(
            "left out the encoder: it feeds another layer, not {prefix} (input {input})"
        ));
    }
    if !fits(sd, "decoder.weight", nh) {
        sd.set_aside("decoder.");
        notes.push(format!(
            "left out the decoder: it reads another layer, not {prefix} ({nh} units)"
        ));
    }
}

/// The model-level tensors of an export, in PyTorch's layout.
#[derive(Clone, Debug, Default)]
pub struct ModelTensors {
    /// The embedding [V, D] (`encoder.weight`).
    pub embed: Option<Entry>,
    /// The decoder as PyTorch holds it: weight [C, N·H] and bias [C].
    pub decoder: Option<(Entry, Entry)>,
}

/// The state_dict of `cfg`'s cell `c` for `code`: the authors' whole `RNNModel` (cell under
/// `bc_lst.0.`, with `encoder` and `decoder`) when `model` has both, else the bare cell.
/// dido's export is always the bare `RIMCell` (its models take raw pixel values, no embedding).
pub fn export(
    code: Code,
    cfg: &RimsConfig,
    c: &Canonical,
    model: &ModelTensors,
) -> Result<BTreeMap<String, Entry>> {
    match code {
        Code::Authors => match (&model.embed, &model.decoder) {
            (Some(embed), Some((w, b))) => {
                let mut out = authors::export_cell(cfg, c, "bc_lst.0.")?;
                out.insert("encoder.weight".into(), embed.clone());
                out.insert("decoder.weight".into(), w.clone());
                out.insert("decoder.bias".into(), b.clone());
                Ok(out)
            }
            _ => authors::export_cell(cfg, c, ""),
        },
        Code::Dido => dido::export_cell(cfg, c, ""),
    }
}

/// The canonical tensor `name` of `c`, or an error naming it (an export from a checkpoint that
/// lacks it).
pub(crate) fn canonical<'a>(c: &'a Canonical, name: &str) -> Result<&'a Entry> {
    c.get(name)
        .ok_or_else(|| Error::config("checkpoint", format!("the checkpoint has no '{name}'")))
}
