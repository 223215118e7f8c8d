//! A reinforcement-learning run's settings (`rl.json` in its checkpoints): the world, the
//! agent, PPO's hyper-parameters and the run's length. The defaults are torch_ac's PPO as
//! dido1998's MiniGrid runs used it (16 environments × 128 frames, 4 epochs, minibatches of
//! 256 frames, sequences of 32, lr 1e-4, ε 0.2, entropy 0.01, γ 0.99, λ 0.95, gradient norm
//! 0.5), and their sizes: RIMs of 4 mechanisms × 16 units with 3 active, or an LSTM of 64.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::nn::config::{CellKind, RimsConfig, Variant};
use crate::ops::optim::AdamConfig;
use crate::ops::ppo_loss::PpoCoefs;
use crate::rl::agent::{AgentConfig, Core};
use crate::rl::batch::MAX_ENVS;
use crate::rl::ppo::update::{UpdateShape, check_shape};
use crate::rl::world::World;

/// Everything a run is made of.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RlConfig {
    /// The world trained in, e.g. `doorkey-5x5`.
    pub env: String,
    /// `rims`, `lstm` or `gru`.
    pub model: String,
    /// The mechanisms' cell for `rims` (`lstm` or `gru`).
    pub cell: String,
    /// The RIMs variant (`authors` or `dido`).
    pub variant: String,
    /// N.
    pub mechanisms: usize,
    /// k.
    pub active: usize,
    /// H per mechanism (RIMs) or the dense layer's units.
    pub hidden: usize,
    /// Width of each observation id's embedding.
    pub embed: usize,
    /// Width of the encoder's output (the core's input).
    pub features: usize,
    /// Hidden width of the policy and value heads.
    pub head_hidden: usize,
    /// Environments stepped together.
    pub envs: usize,
    /// Frames each environment collects per update.
    pub steps: usize,
    /// Passes over a rollout.
    pub epochs: usize,
    /// Frames per minibatch.
    pub batch: usize,
    /// Frames per sequence (truncated BPTT).
    pub recurrence: usize,
    /// Adam's learning rate.
    pub lr: f32,
    /// Discount γ.
    pub gamma: f64,
    /// GAE's λ.
    pub lambda: f64,
    /// PPO's ε.
    pub clip: f32,
    /// Weight of the value loss.
    pub value_coef: f32,
    /// Weight of the entropy bonus.
    pub entropy_coef: f32,
    /// Global gradient-norm clip.
    pub max_grad_norm: f32,
    /// Frames to train for (all environments together).
    pub frames: u64,
    /// Seeds the parameters, the environments and the sampling.
    pub seed: u64,
    /// Updates between checkpoints.
    pub checkpoint_every: u64,
}

impl Default for RlConfig {
    fn default() -> Self {
        RlConfig {
            env: "doorkey-5x5".into(),
            model: "rims".into(),
            cell: "lstm".into(),
            variant: "authors".into(),
            mechanisms: 4,
            active: 3,
            hidden: 16,
            embed: 8,
            features: 64,
            head_hidden: 64,
            envs: 16,
            steps: 128,
            epochs: 4,
            batch: 256,
            recurrence: 32,
            lr: 1e-4,
            gamma: 0.99,
            lambda: 0.95,
            clip: 0.2,
            value_coef: 0.5,
            entropy_coef: 0.01,
            max_grad_norm: 0.5,
            frames: 300_000,
            seed: 0,
            checkpoint_every: 10,
        }
    }
}

impl RlConfig {
    /// The defaults for `model`: RIMs 4 × 16 with k = 3, or a dense layer of 64 units.
    pub fn for_model(model: &str) -> Self {
        let hidden = if model == "rims" { 16 } else { 64 };
        RlConfig {
            model: model.into(),
            hidden,
            ..RlConfig::default()
        }
    }

    /// The world, parsed.
    pub fn world(&self) -> Result<World> {
        World::parse(&self.env)
    }

    /// The agent's sizes.
    pub fn agent(&self) -> Result<AgentConfig> {
        let parse_cell = |name: &str, field: &'static str| match name {
            "lstm" => Ok(CellKind::Lstm),
            "gru" => Ok(CellKind::Gru),
            other => Err(Error::config(
                field,
                format!("unknown cell '{other}' (lstm or gru)"),
            )),
        };
        let core = match self.model.as_str() {
            "rims" => Core::Rims(RimsConfig {
                mechanisms: self.mechanisms,
                active: self.active,
                hidden: self.hidden,
                input: self.features,
                input_key: 32,
                input_value: 32,
                input_heads: 1,
                comm_heads: 4,
                comm_key: 16,
                comm_value: 16,
                cell: parse_cell(&self.cell, "cell")?,
                dropout: 0.0,
                variant: Variant::parse(&self.variant)?,
            }),
            "lstm" | "gru" => Core::Dense {
                kind: parse_cell(&self.model, "model")?,
                hidden: self.hidden,
            },
            other => {
                return Err(Error::config(
                    "model",
                    format!("unknown model '{other}' (rims, lstm or gru)"),
                ));
            }
        };
        let cfg = AgentConfig {
            core,
            embed: self.embed,
            features: self.features,
            head_hidden: self.head_hidden,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// How an update cuts the rollout.
    pub fn update_shape(&self) -> UpdateShape {
        UpdateShape {
            epochs: self.epochs,
            batch: self.batch,
            recurrence: self.recurrence,
            coefs: PpoCoefs {
                clip_eps: self.clip,
                value_coef: self.value_coef,
                entropy_coef: self.entropy_coef,
            },
        }
    }

    /// Adam with the run's rate and clipping (PyTorch's defaults otherwise).
    pub fn adam(&self) -> AdamConfig {
        AdamConfig {
            lr: self.lr,
            clip_norm: Some(self.max_grad_norm),
            ..AdamConfig::default()
        }
    }

    /// Frames one update collects.
    pub fn frames_per_update(&self) -> u64 {
        (self.envs * self.steps) as u64
    }

    /// Optimizer steps per update.
    pub fn minibatches_per_update(&self) -> u64 {
        (self.epochs as u64 * self.frames_per_update()) / self.batch.max(1) as u64
    }

    /// Updates the run takes: enough for `frames` (the last one may go past it).
    pub fn updates(&self) -> u64 {
        self.frames.div_ceil(self.frames_per_update().max(1))
    }

    /// Checks every setting, naming the first bad one.
    pub fn validate(&self) -> Result<()> {
        self.world()?.validate()?;
        self.agent()?;
        if self.envs == 0 || self.envs > MAX_ENVS {
            return Err(Error::config(
                "envs",
                format!("{} is outside 1..={MAX_ENVS}", self.envs),
            ));
        }
        if self.steps == 0 {
            return Err(Error::config("steps", "must be at least 1"));
        }
        check_shape(&self.update_shape(), self.steps, self.envs)?;
        self.adam().validate()?;
        for (name, v) in [("gamma", self.gamma), ("lambda", self.lambda)] {
            if !(0.0..=1.0).contains(&v) {
                return Err(Error::config(name, format!("{v} is not in [0, 1]")));
            }
        }
        if self.frames == 0 {
            return Err(Error::config("frames", "must be at least 1"));
        }
        if self.checkpoint_every == 0 {
            return Err(Error::config("checkpoint_every", "must be at least 1"));
        }
        Ok(())
    }
}
