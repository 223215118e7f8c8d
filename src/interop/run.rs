//! Imported weights as a run directory, and a run directory's weights for export.

use std::path::Path;

use super::state_dict::Entry;
use super::{Canonical, Code, Imported, ModelTensors, transpose};
use crate::device::Context;
use crate::error::{Error, Result};
use crate::nn::model::{Backbone, InputLayer, Model};
use crate::nn::{CellKind, RimsConfig, Variant};
use crate::ops::optim::Adam;
use crate::train::checkpoint::{self, Progress};
use crate::train::config::{Task, TrainConfig};

/// `base` with the imported cell's sizes, cell kind and variant.
pub fn train_config(base: &TrainConfig, rims: &RimsConfig) -> TrainConfig {
    TrainConfig {
        model: "rims".into(),
        cell: match rims.cell {
            CellKind::Lstm => "lstm".into(),
            CellKind::Gru => "gru".into(),
        },
        variant: rims.variant.name().into(),
        mechanisms: rims.mechanisms,
        active: rims.active,
        hidden: rims.hidden,
        embed: rims.input,
        input_key: rims.input_key,
        input_value: rims.input_value,
        input_heads: rims.input_heads,
        comm_heads: rims.comm_heads,
        comm_key: rims.comm_key,
        comm_value: rims.comm_value,
        // The imported weights are the initialisation: nothing may rescale them.
        input_gain: 1.0,
        forget_bias: 0.0,
        ..base.clone()
    }
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// Builds the model of `base` (its task, schedule and seed) around the imported cell, puts the
/// imported tensors in, and saves it into `dir` as the step-0 checkpoint of a new run (a fresh
/// optimizer). The embedding and decoder are the imported ones when the state_dict had them,
/// else freshly initialised from `base.seed`. `dir` must not hold a run; nothing is written when
/// anything is wrong. Returns the run's config and notes for the user.
pub fn write_run(
    ctx: &Context,
    dir: &Path,
    imported: &Imported,
    base: &TrainConfig,
) -> Result<(TrainConfig, Vec<String>)> {
    let cfg = train_config(base, &imported.rims);
    cfg.validate()?;
    let mcfg = cfg.model()?;
    let model = Model::new(ctx, mcfg, cfg.seed)?;
    let mut notes = imported.notes.clone();
    for (name, e) in &imported.cell {
        let want = model.store.shape(name)?;
        if want != e.shape.as_slice() {
            return Err(Error::config(
                "from",
                format!("'{name}' is {:?}, the model needs {want:?}", e.shape),
            ));
        }
        model.store.set(ctx, name, &f32s(&e.values))?;
    }
    match (&imported.embed, model.cfg.input) {
        (Some(embed), InputLayer::Embedding) => {
            let [v, d] = model.store.shape("embed")?.try_into().unwrap_or([0, 0]);
            if embed.shape[0] < v {
                return Err(Error::config(
                    "task",
                    format!(
                        "the state_dict's embedding has {} rows; the {} task reads {v} tokens",
                        embed.shape[0],
                        cfg.task.name()
                    ),
                ));
            }
            if embed.shape[0] > v {
                notes.push(format!(
                    "kept the first {v} of the embedding's {} rows: the {} task only reads \
                     tokens 0..{v}",
                    embed.shape[0],
                    cfg.task.name()
                ));
            }
            model
                .store
                .set(ctx, "embed", &f32s(&embed.values[..v * d]))?;
        }
        (Some(_), InputLayer::Linear) => {
            return Err(Error::config(
                "task",
                "the adding task reads features through a linear layer; this state_dict holds a \
                 token embedding",
            ));
        }
        (Some(_), InputLayer::Frames(_)) => {
            return Err(Error::config(
                "task",
                "the balls task reads frames through a convolutional encoder; this state_dict \
                 holds a token embedding",
            ));
        }
        (None, InputLayer::Embedding)
            if imported.rims.variant == Variant::Dido
                && cfg.task == Task::Smnist
                && imported.rims.input == 1 =>
        {
            // dido's MNIST models read the raw pixel, 0 or 255, as a 1-wide input.
            model.store.set(ctx, "embed", &[0.0, 255.0])?;
            notes.push("embed = [[0], [255]]: dido's MNIST input is the raw pixel value".into());
        }
        (None, _) => notes.push(format!(
            "the state_dict holds only the cell: the {} layer and the decoder are freshly \
             initialised (seed {})",
            match model.cfg.input {
                InputLayer::Embedding => "embedding",
                InputLayer::Linear => "input",
                InputLayer::Frames(_) => "frame encoder",
            },
            cfg.seed
        )),
    }
    if let Some((w, b)) = &imported.decoder {
        if b.shape[0] != model.cfg.classes {
            return Err(Error::config(
                "task",
                format!(
                    "the readout has {} outputs; the {} task has {}",
                    b.shape[0],
                    cfg.task.name(),
                    model.cfg.classes
                ),
            ));
        }
        model.store.set(ctx, "dec_w", &f32s(&w.values))?;
        model.store.set(ctx, "dec_b", &f32s(&b.values))?;
    } else if imported.embed.is_some() {
        notes.push("no decoder in the state_dict: the decoder is freshly initialised".into());
    }
    let adam = Adam::new(
        ctx,
        model.store.trainable_len(),
        crate::train::adam_config(&cfg),
    )?;
    let _lock = checkpoint::lock_run(dir)?;
    checkpoint::open_run(dir, false)?;
    checkpoint::save(
        ctx,
        dir,
        &cfg,
        &model,
        &adam,
        &Progress::default(),
        Some(""),
    )?;
    Ok((cfg, notes))
}

/// What [`read_checkpoint`] gives: the cell's config and canonical tensors, and the model-level
/// tensors in PyTorch's layout.
pub struct Checkpoint {
    /// The run's config.
    pub config: TrainConfig,
    /// The cell's sizes and variant.
    pub rims: RimsConfig,
    /// The cell's canonical tensors.
    pub cell: Canonical,
    /// Embedding and decoder in PyTorch's layout.
    pub model: ModelTensors,
    /// The checkpoint metadata of spec §4 (variant, cell, sizes), as the model writes it.
    pub metadata: std::collections::BTreeMap<String, String>,
}

/// Reads the current checkpoint of the run in `dir` for export to `code`. The authors'
/// `RNNModel` has one vocabulary for the encoder and the decoder, so an embedding with fewer
/// rows than classes (sMNIST's 2 tokens, 10 classes) is padded with zero rows nobody reads.
pub fn read_checkpoint(ctx: &Context, dir: &Path, code: Code) -> Result<Checkpoint> {
    let state = checkpoint::read_state(dir)?;
    let model = checkpoint::load_model(ctx, dir)?;
    if model.cfg.backbone != Backbone::Rims {
        return Err(Error::config(
            "checkpoint",
            format!(
                "{} holds a dense {} baseline, not a RIMs model",
                dir.display(),
                state.config.model
            ),
        ));
    }
    let host = model.store.to_host(ctx)?;
    let entry = |name: &str| -> Result<Entry> {
        let (shape, v) = host.get(name).ok_or_else(|| {
            Error::config("checkpoint", format!("the checkpoint has no '{name}'"))
        })?;
        Ok(Entry::new(shape, v.iter().map(|&x| f64::from(x)).collect()))
    };
    let rims = model.cfg.rims.clone();
    let mut cell = Canonical::new();
    for spec in crate::nn::rims::param_specs(&rims) {
        cell.insert(spec.name.clone(), entry(&spec.name)?);
    }
    let mut tensors = ModelTensors::default();
    if code == Code::Authors && model.cfg.input == InputLayer::Embedding {
        let e = entry("embed")?;
        let (v, d) = (e.shape[0], e.shape[1]);
        let rows = v.max(model.cfg.classes);
        let mut values = e.values;
        values.resize(rows * d, 0.0);
        tensors.embed = Some(Entry::new(&[rows, d], values));
        let w = entry("dec_w")?;
        let (nh, c) = (w.shape[0], w.shape[1]);
        tensors.decoder = Some((
            Entry::new(&[c, nh], transpose(&w.values, nh, c)),
            entry("dec_b")?,
        ));
    }
    Ok(Checkpoint {
        config: state.config,
        rims,
        cell,
        model: tensors,
        metadata: model.cfg.metadata(),
    })
}
