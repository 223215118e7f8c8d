//! What a training run is: task, model sizes, optimiser and schedule. Saved as JSON beside
//! every checkpoint, and compared on `--resume`.

use std::path::PathBuf;

pub mod new_run;

use serde::{Deserialize, Serialize};

use crate::data::{Copying, adding};
use crate::error::{Error, Result};
use crate::nn::frames::FrameNet;
use crate::nn::model::{Backbone, InputLayer, ModelConfig, Readout};
use crate::nn::{CellKind, RimsConfig};

/// Vocabulary of the copying task: the authors' `ntokens = 20`, although only tokens 0..=9 occur.
pub const COPYING_VOCAB: usize = 20;

/// The experiments of `docs/spec.md` §2 (`rims train --task`, named in train.json the same way).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Copy S symbols (10 in the paper) after a gap of T steps.
    Copying,
    /// Sequential MNIST, one pixel per step, trained at one resolution and tested at several.
    Smnist,
    /// The adding problem: sum the two marked values of a sequence of length T (real-valued
    /// inputs through a linear layer, a regression head, mean squared error).
    Adding,
    /// Bouncing balls: next-frame prediction of S×S frames through a convolutional encoder
    /// and decoder around the recurrent core, rolled out on 4, 6–8 and curtained balls.
    Balls,
}

impl Task {
    /// The task's name, as `--task` and train.json write it.
    pub fn name(self) -> &'static str {
        match self {
            Task::Copying => "copying",
            Task::Smnist => "smnist",
            Task::Adding => "adding",
            Task::Balls => "balls",
        }
    }
}

/// How the learning rate moves over a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    /// `lr` at every step (the authors').
    #[default]
    Constant,
    /// From `lr` at the first step down to 0 at the last, along a half cosine: fast early
    /// progress without the late blow-ups a high constant rate gives.
    Cosine,
}

fn one() -> f32 {
    1.0
}

fn default_true() -> bool {
    true
}

fn default_symbols() -> usize {
    // Runs saved before the field existed copied the paper's 10 symbols.
    crate::data::copying::PAPER_SYMBOLS
}

fn default_model() -> String {
    "rims".into()
}

fn default_variant() -> String {
    "authors".into()
}

fn one_head() -> usize {
    1
}

fn default_balls() -> String {
    "4".into()
}

fn default_frame_size() -> usize {
    FrameNet::R_NEM.size
}

fn default_frame_channels() -> [usize; 3] {
    FrameNet::R_NEM.channels
}

fn default_frame_dense() -> usize {
    FrameNet::R_NEM.dense
}

/// The settings that decide the model's parameters and what they compute: a run started with
/// `init` must agree with its source in all of them.
pub const MODEL_FIELDS: [&str; 17] = [
    "task",
    "frame_size",
    "frame_channels",
    "frame_dense",
    "model",
    "cell",
    "variant",
    "mechanisms",
    "active",
    "hidden",
    "embed",
    "input_key",
    "input_value",
    "input_heads",
    "comm_heads",
    "comm_key",
    "comm_value",
];

/// Every setting of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Which experiment to run: copying or sequential MNIST.
    pub task: Task,
    /// "rims", or a dense baseline "lstm" / "gru" of `hidden` units.
    #[serde(default = "default_model")]
    pub model: String,
    /// Mechanism cell: "lstm" or "gru" (for a dense baseline, the model decides).
    pub cell: String,
    /// N, k, H (per mechanism) and D (embedding size).
    pub mechanisms: usize,
    /// k: mechanisms active per step (at most `mechanisms`).
    pub active: usize,
    /// H: hidden units per mechanism.
    pub hidden: usize,
    /// D: token embedding size.
    pub embed: usize,
    /// Width of the input-attention keys (and queries).
    pub input_key: usize,
    /// Width of the input-attention values (per head).
    pub input_value: usize,
    /// h_in: heads of the input attention (1 in the authors' code).
    #[serde(default = "one_head")]
    pub input_heads: usize,
    /// Whose cell semantics a RIMs model follows: "authors" (variant A) or "dido" (variant D,
    /// `docs/spec.md` §3).
    #[serde(default = "default_variant")]
    pub variant: String,
    /// Heads of the communication attention between mechanisms.
    pub comm_heads: usize,
    /// Width of each communication-attention key (and query) head.
    pub comm_key: usize,
    /// Width of each communication-attention value head.
    pub comm_value: usize,
    /// Dropout inside the cell (attention outputs) and on the embedding and decoder input.
    pub cell_dropout: f32,
    /// Dropout probability on the embedding and on the decoder input.
    pub dropout: f32,
    /// Adam learning rate.
    pub lr: f32,
    /// How `lr` changes over the run's steps.
    #[serde(default)]
    pub lr_schedule: LrSchedule,
    /// Global gradient-norm clip (None: no clipping).
    pub clip: Option<f32>,
    /// Examples per batch.
    pub batch: usize,
    /// Epochs to train for.
    pub epochs: usize,
    /// Copying: iterations per epoch, drawn from a pool of `pool` regenerated batches.
    pub iterations: usize,
    /// Copying: how many distinct batches are generated for the pool.
    pub pool: usize,
    /// Copying: carry the (detached) state from batch to batch within an epoch, as the authors
    /// do. Off, every batch starts from zeros.
    #[serde(default = "default_true")]
    pub carry_state: bool,
    /// Added to the LSTM forget gates' initial bias (0: the authors' init).
    #[serde(default)]
    pub forget_bias: f32,
    /// Factor on the initial input-attention weights of a RIMs model (1: the authors' init).
    #[serde(default = "one")]
    pub input_gain: f32,
    /// A run directory whose current checkpoint's parameters start this run (fine-tuning: the
    /// optimizer starts fresh). Its model settings ([`MODEL_FIELDS`]) must equal this run's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<PathBuf>,
    /// Copying: symbols to copy (the paper's task copies 10).
    #[serde(default = "default_symbols")]
    pub symbols: usize,
    /// Copying: the gap T for training and for the second evaluation; adding: the training
    /// sequence length T; balls: frames per training sequence.
    pub train_len: usize,
    /// Copying: the gap T tested for generalisation, evaluated alongside `train_len`; adding:
    /// the longer sequence length tested; balls: the frames a rollout predicts after the 15
    /// given ones.
    pub test_len: usize,
    /// Balls: balls per training sequence, `"4"` or a range `"lo-hi"` drawn per sequence.
    #[serde(default = "default_balls")]
    pub balls: String,
    /// Balls: frames are S×S, S a multiple of 8.
    #[serde(default = "default_frame_size")]
    pub frame_size: usize,
    /// Balls: the encoder's convolution channels c1, c2, c3 (the decoder's in reverse).
    #[serde(default = "default_frame_channels")]
    pub frame_channels: [usize; 3],
    /// Balls: units of the decoder's first dense layer.
    #[serde(default = "default_frame_dense")]
    pub frame_dense: usize,
    /// sMNIST: training resolution and the evaluation resolutions.
    pub resolution: usize,
    /// sMNIST: resolutions evaluated after each `eval_every` epochs.
    pub eval_resolutions: Vec<usize>,
    /// sMNIST: at most this many examples per split (None: all), to keep runs short.
    pub limit: Option<usize>,
    /// sMNIST: directory of IDX files (None: the bundled 10k subset).
    pub mnist_dir: Option<PathBuf>,
    /// Evaluate and checkpoint every this many epochs.
    pub eval_every: usize,
    /// Seed of data generation, initialisation and dropout masks.
    pub seed: u64,
}

impl Default for TrainConfig {
    /// The main job: the paper's copying task (10 symbols from 1..8) trained at a gap of 20 and
    /// tested at 80, with a small RIMs model (N = 4, k = 3, H = 64, D = 32, LSTM cells), about
    /// 10 minutes on the 2-core CPU device. It departs from the authors' setting in four ways,
    /// each of which shortened learning in trial runs (docs/experiments.md): the input-attention
    /// weights start 20× larger (`input_gain`), the learning rate 5e-3 decays along a cosine,
    /// each batch starts from a zero state, and there is no dropout.
    fn default() -> Self {
        TrainConfig {
            task: Task::Copying,
            model: "rims".into(),
            cell: "lstm".into(),
            mechanisms: 4,
            active: 3,
            hidden: 64,
            embed: 32,
            input_key: 16,
            input_value: 16,
            input_heads: 1,
            variant: "authors".into(),
            comm_heads: 2,
            comm_key: 8,
            comm_value: 8,
            cell_dropout: 0.0,
            dropout: 0.0,
            lr: 5e-3,
            lr_schedule: LrSchedule::Cosine,
            clip: Some(1.0),
            batch: 32,
            epochs: 60,
            iterations: 200,
            pool: 100,
            carry_state: false,
            forget_bias: 0.0,
            input_gain: 20.0,
            init: None,
            symbols: crate::data::copying::PAPER_SYMBOLS,
            balls: default_balls(),
            frame_size: default_frame_size(),
            frame_channels: default_frame_channels(),
            frame_dense: default_frame_dense(),
            train_len: 20,
            test_len: 80,
            resolution: 14,
            eval_resolutions: vec![14, 16, 19, 24],
            limit: None,
            mnist_dir: None,
            eval_every: 5,
            seed: 1111,
        }
    }
}

impl TrainConfig {
    /// The paper's setting for `task` (docs/spec.md §2): N = 6 mechanisms, k = 4 active, H = 100
    /// (nhid 600), D = 600, A = 400, input key 64, 4 communication heads of 16, dropout 0.5 on
    /// the embedding and readout and 0.1 in the cell, Adam with clip 1.0, batch 64. Copying:
    /// 10 symbols, gap 50 tested at 200, lr 1e-3, 200 epochs of 200 iterations from 200
    /// batches, the state carried across batches. Sequential MNIST: 14×14, lr 7e-4, 100 epochs,
    /// evaluated every 4 at 14, 16, 19 and 24.
    pub fn paper(task: Task) -> TrainConfig {
        let common = TrainConfig {
            task,
            model: "rims".into(),
            cell: "lstm".into(),
            mechanisms: 6,
            active: 4,
            hidden: 100,
            embed: 600,
            input_key: 64,
            input_value: 400,
            input_heads: 1,
            variant: "authors".into(),
            comm_heads: 4,
            comm_key: 16,
            comm_value: 16,
            cell_dropout: 0.1,
            dropout: 0.5,
            clip: Some(1.0),
            batch: 64,
            // The authors' choices where the main job departs from them.
            lr_schedule: LrSchedule::Constant,
            input_gain: 1.0,
            eval_every: 1,
            ..TrainConfig::default()
        };
        match task {
            Task::Copying => TrainConfig {
                lr: 1e-3,
                epochs: 200,
                iterations: 200,
                pool: 200,
                carry_state: true,
                symbols: crate::data::copying::PAPER_SYMBOLS,
                train_len: 50,
                test_len: 200,
                ..common
            },
            Task::Adding => TrainConfig {
                // Not in the paper: the copying task's optimiser and schedule, at T = 50 / 200.
                lr: 1e-3,
                epochs: 200,
                iterations: 200,
                train_len: 50,
                test_len: 200,
                ..common
            },
            // R-NEM's frame networks at 32×32 around the paper's RIMs core; 15 frames given
            // and 15 predicted, as fig. 6 shows. Hours on a GPU.
            Task::Balls => TrainConfig {
                lr: 1e-3,
                dropout: 0.0,
                cell_dropout: 0.0,
                epochs: 100,
                iterations: 200,
                batch: 32,
                train_len: 30,
                test_len: 15,
                ..common
            },
            Task::Smnist => TrainConfig {
                lr: 7e-4,
                epochs: 100,
                resolution: 14,
                eval_resolutions: vec![14, 16, 19, 24],
                eval_every: 4,
                ..common
            },
        }
    }

    /// The model this run trains.
    pub fn model(&self) -> Result<ModelConfig> {
        let backbone = match self.model.as_str() {
            "rims" => Backbone::Rims,
            "lstm" | "gru" => Backbone::Dense {
                hidden: self.hidden,
            },
            other => {
                return Err(Error::config(
                    "model",
                    format!("unknown model '{other}' (rims, lstm or gru)"),
                ));
            }
        };
        let cell_name = if self.model == "rims" {
            self.cell.as_str()
        } else {
            self.model.as_str()
        };
        let cell = match cell_name {
            "lstm" => CellKind::Lstm,
            "gru" => CellKind::Gru,
            other => {
                return Err(Error::config(
                    "cell",
                    format!("unknown cell '{other}' (lstm or gru)"),
                ));
            }
        };
        let rims = RimsConfig {
            mechanisms: self.mechanisms,
            active: self.active,
            hidden: self.hidden,
            input: self.embed,
            input_key: self.input_key,
            input_value: self.input_value,
            input_heads: self.input_heads,
            comm_heads: self.comm_heads,
            comm_key: self.comm_key,
            comm_value: self.comm_value,
            cell,
            dropout: self.cell_dropout,
            variant: crate::nn::Variant::parse(&self.variant)?,
        };
        let (vocab, classes, readout, input) = match self.task {
            Task::Copying => (
                COPYING_VOCAB,
                COPYING_VOCAB,
                Readout::All,
                InputLayer::Embedding,
            ),
            Task::Smnist => (2, 10, Readout::Last, InputLayer::Embedding),
            // Two input channels (value, marker) and one regression output.
            Task::Adding => (adding::CHANNELS, 1, Readout::Last, InputLayer::Linear),
            Task::Balls => {
                let net = FrameNet {
                    size: self.frame_size,
                    channels: self.frame_channels,
                    dense: self.frame_dense,
                };
                let pixels = net.pixels();
                (pixels, pixels, Readout::All, InputLayer::Frames(net))
            }
        };
        let m = ModelConfig {
            backbone,
            vocab,
            input,
            classes,
            rims,
            dropout: self.dropout,
            readout,
        };
        m.validate()?;
        Ok(m)
    }

    /// The learning rate of optimiser step `step` (0-based) of a run of `total` steps. A
    /// resumed run with more epochs stretches the schedule over the new total.
    pub fn lr_at(&self, step: u64, total: u64) -> f32 {
        match self.lr_schedule {
            LrSchedule::Constant => self.lr,
            LrSchedule::Cosine => {
                let frac = step.min(total) as f64 / total.max(1) as f64;
                (self.lr as f64 * 0.5 * (1.0 + (std::f64::consts::PI * frac).cos())) as f32
            }
        }
    }

    /// The copying task with gap `gap` (T) and this run's number of symbols.
    pub fn copying(&self, gap: usize) -> Result<Copying> {
        Copying::new(self.symbols, gap)
    }

    /// Checks everything that is not the model's business.
    pub fn validate(&self) -> Result<()> {
        // A dense baseline has neither input attention nor mechanisms: settings of the RIMs
        // cell would be ignored, so they are refused instead.
        let dense = matches!(self.model.as_str(), "lstm" | "gru");
        if dense && self.variant != default_variant() {
            return Err(Error::config(
                "variant",
                format!(
                    "{} is a RIMs setting; a dense {} has none",
                    self.variant, self.model
                ),
            ));
        }
        if dense && self.input_heads != one_head() {
            return Err(Error::config(
                "input_heads",
                "only a RIMs model has input attention",
            ));
        }
        self.model()?;
        let positive = [
            ("batch", self.batch),
            ("epochs", self.epochs),
            ("iterations", self.iterations),
            ("pool", self.pool),
            ("symbols", self.symbols),
            ("train_len", self.train_len),
            ("test_len", self.test_len),
            ("resolution", self.resolution),
            ("eval_every", self.eval_every),
        ];
        for (field, v) in positive {
            if v == 0 {
                return Err(Error::config(field, "must be at least 1"));
            }
        }
        if !self.forget_bias.is_finite() {
            return Err(Error::config(
                "forget_bias",
                format!("{} is not a number", self.forget_bias),
            ));
        }
        if self.forget_bias != 0.0 && self.model()?.rims.cell != CellKind::Lstm {
            return Err(Error::config(
                "forget_bias",
                "only LSTM cells have a forget gate",
            ));
        }
        let model = self.model()?;
        if self.forget_bias != 0.0
            && model.backbone == crate::nn::model::Backbone::Rims
            && model.rims.variant == crate::nn::Variant::Dido
        {
            return Err(Error::config(
                "forget_bias",
                "variant dido's LSTM cells have no biases (docs/spec.md §3)",
            ));
        }
        if !(self.input_gain.is_finite() && self.input_gain > 0.0) {
            return Err(Error::config(
                "input_gain",
                format!("{} is not a positive number", self.input_gain),
            ));
        }
        if self.input_gain != 1.0 && self.model != "rims" {
            return Err(Error::config(
                "input_gain",
                "only a RIMs model has input attention",
            ));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::config(
                "lr",
                format!("{} is not a positive number", self.lr),
            ));
        }
        if let Some(c) = self.clip
            && !(c.is_finite() && c > 0.0)
        {
            return Err(Error::config(
                "clip",
                format!("{c} is not a positive number"),
            ));
        }
        if self.task == Task::Adding && self.train_len.min(self.test_len) < 2 {
            return Err(Error::config(
                "train_len",
                format!(
                    "the adding problem needs sequences of at least 2 steps, got --train-len {} --test-len {}",
                    self.train_len, self.test_len
                ),
            ));
        }
        if self.task == Task::Balls {
            if self.train_len < 2 {
                return Err(Error::config(
                    "train_len",
                    "next-frame training needs sequences of at least 2 frames",
                ));
            }
            let balls = crate::data::balls::Span::parse(&self.balls, "balls")?;
            super::balls::data_config(self, balls, self.train_len).validate()?;
        }
        if self.eval_resolutions.contains(&0) {
            return Err(Error::config("eval_resolutions", "a resolution of 0"));
        }
        Ok(())
    }

    /// The settings in which `other` (a checkpoint's config) differs from this run's, as
    /// (field, this run's value, the checkpoint's value), in field order. The number of epochs
    /// may differ: that is how a run is extended.
    pub fn differing_fields(
        &self,
        other: &TrainConfig,
    ) -> Vec<(String, serde_json::Value, serde_json::Value)> {
        let a = serde_json::to_value(self).unwrap_or_default();
        let b = serde_json::to_value(other).unwrap_or_default();
        let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
            return vec![("config".into(), a, b)];
        };
        a.iter()
            .filter(|(k, _)| k.as_str() != "epochs")
            .filter(|(k, v)| b.get(k.as_str()) != Some(v))
            .map(|(k, v)| {
                let had = b.get(k.as_str()).cloned().unwrap_or_default();
                (k.clone(), v.clone(), had)
            })
            .collect()
    }

    /// This config with the model settings ([`MODEL_FIELDS`]) of `other`.
    pub fn with_model_of(&self, other: &TrainConfig) -> Result<TrainConfig> {
        let mut a =
            serde_json::to_value(self).map_err(|e| Error::invalid("config", e.to_string()))?;
        let b = serde_json::to_value(other).map_err(|e| Error::invalid("config", e.to_string()))?;
        for f in MODEL_FIELDS {
            a[f] = b[f].clone();
        }
        serde_json::from_value(a).map_err(|e| Error::invalid("config", e.to_string()))
    }

    /// The model settings in which `other` differs from this config, in words.
    pub fn model_mismatches(&self, other: &TrainConfig) -> Vec<String> {
        self.differing_fields(other)
            .into_iter()
            .filter(|(k, _, _)| MODEL_FIELDS.contains(&k.as_str()))
            .map(|(k, v, had)| {
                format!("{k}: the --init checkpoint has {had}, this run asks for {v}")
            })
            .collect()
    }

    /// [`TrainConfig::differing_fields`] in words: what makes a checkpoint of `other` unusable
    /// for this run.
    pub fn mismatches(&self, other: &TrainConfig) -> Vec<String> {
        self.differing_fields(other)
            .into_iter()
            .map(|(k, v, had)| format!("{k}: checkpoint has {had}, this run asks for {v}"))
            .collect()
    }
}

#[cfg(test)]
mod tests;
