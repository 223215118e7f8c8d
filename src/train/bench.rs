//! The two configurations the benchmarks time, defined once for `rims bench` and
//! `benches/step.rs` (docs/perf.md reports both), and the experiments' model built on one.
//!
//! - small: B = 16, T = 32, N = 6, H = 32, k = 4, D = A = d_k = 32;
//! - paper: B = 64, T = 196 (sMNIST 14×14), N = 6, H = 100, k = 4, A = 400, D = 600 (the
//!   defaults of [`RimsConfig`]).
//!
//! The model is the experiments' one: a 2-symbol embedding, the backbone, a decoder of 10
//! classes read at the last step, dropout 0.5 as in training.

use crate::nn::model::{Backbone, InputLayer, ModelConfig, Readout};
use crate::nn::{CellKind, RimsConfig};

/// One benchmark configuration's sizes.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchSetup {
    /// "small" or "paper".
    pub name: &'static str,
    /// B: batch rows.
    pub batch: usize,
    /// T: time steps.
    pub steps: usize,
    /// The cell (its `cell` field is overridden by [`BenchSetup::model`]).
    pub rims: RimsConfig,
}

impl BenchSetup {
    /// B = 16, T = 32, N = 6, H = 32, k = 4, D = A = d_k = 32.
    pub fn small() -> Self {
        BenchSetup {
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
        }
    }

    /// The paper's sMNIST setting: B = 64, T = 196, N = 6, H = 100, k = 4, A = 400, D = 600.
    pub fn paper() -> Self {
        BenchSetup {
            name: "paper",
            batch: 64,
            steps: 196,
            rims: RimsConfig::default(),
        }
    }

    /// The name with its sizes, e.g. "small B=16 T=32 N=6 H=32 k=4".
    pub fn label(&self) -> String {
        let r = &self.rims;
        format!(
            "{} B={} T={} N={} H={} k={}",
            self.name, self.batch, self.steps, r.mechanisms, r.hidden, r.active
        )
    }

    /// The experiments' model on this configuration with `cell` cells and `backbone`.
    pub fn model(&self, cell: CellKind, backbone: Backbone) -> ModelConfig {
        ModelConfig {
            vocab: 2,
            input: InputLayer::Embedding,
            classes: 10,
            rims: RimsConfig {
                cell,
                ..self.rims.clone()
            },
            dropout: 0.5,
            readout: Readout::Last,
            backbone,
        }
    }

    /// The dense LSTM baseline's width: as many units as the RIMs state, N·H.
    pub fn dense_hidden(&self) -> usize {
        self.rims.mechanisms * self.rims.hidden
    }
}
