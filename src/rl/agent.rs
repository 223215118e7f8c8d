//! The actor-critic that recurrent PPO trains (docs/spec.md §7.2): the 7×7×3 observation as
//! ids, each looked up in a shared embedding, one dense layer with ReLU → the recurrent core
//! (RIMs, or a dense LSTM/GRU as in `rims train`) → a policy head and a value head, each a
//! hidden tanh layer then a linear one, reading the core's state. (The policy reads the core,
//! never the encoder's features: the authors' public Atari code feeds its policy the
//! convolutional features, which this deliberately does not repeat.)
//!
//! The core runs one frame per call: between frames a finished episode's state is multiplied
//! by zero on the tape, so a stored sequence that crosses an episode boundary trains as the
//! environment ran it.

use crate::device::Context;
use crate::error::{Error, Result};
use crate::nn::config::{CellKind, RimsConfig};
use crate::nn::params::{Init, ParamSpec, ParamStore};
use crate::nn::recurrent::{Recurrent, Start};
use crate::nn::rims::{self, Rims, RimsOptions};
use crate::rl::env::Action;
use crate::rl::view::IMAGE_LEN;
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

/// Ids per observation channel in MiniGrid's encoding: objects 0..=10, colours 0..=5, door
/// states 0..=2. Each channel's ids get their own rows of the embedding table.
const CHANNEL_IDS: [u32; 3] = [11, 6, 3];
/// Rows of the embedding table: every channel's ids, one after the other.
pub const ID_VOCAB: usize = 20;

/// The recurrent core.
#[derive(Clone, Debug, PartialEq)]
pub enum Core {
    /// RIMs of these sizes (their `input` is the encoder's width).
    Rims(RimsConfig),
    /// A dense LSTM or GRU of `hidden` units.
    Dense {
        /// LSTM or GRU.
        kind: CellKind,
        /// Hidden units.
        hidden: usize,
    },
}

/// The agent's sizes.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentConfig {
    /// The recurrent core.
    pub core: Core,
    /// Width of each id's embedding.
    pub embed: usize,
    /// Width of the encoder's output, the core's input D.
    pub features: usize,
    /// Hidden width of the policy and value heads.
    pub head_hidden: usize,
}

impl AgentConfig {
    /// Checks every size, naming the first bad one.
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("embed", self.embed),
            ("features", self.features),
            ("head_hidden", self.head_hidden),
        ] {
            if v == 0 {
                return Err(Error::config(name, "must be at least 1"));
            }
        }
        match &self.core {
            Core::Rims(r) => {
                r.validate()?;
                if r.input != self.features {
                    return Err(Error::config(
                        "features",
                        format!(
                            "the RIMs input is {}, the encoder gives {}",
                            r.input, self.features
                        ),
                    ));
                }
            }
            Core::Dense { hidden, .. } => {
                Recurrent::new(CellKind::Lstm, self.features, *hidden)?;
            }
        }
        Ok(())
    }

    /// Width of the core's state, which the heads read: N·H for RIMs, H for a dense core.
    pub fn state_width(&self) -> usize {
        match &self.core {
            Core::Rims(r) => r.mechanisms * r.hidden,
            Core::Dense { hidden, .. } => *hidden,
        }
    }

    /// The cell kind of the core (whether it has a cell state).
    pub fn cell(&self) -> CellKind {
        match &self.core {
            Core::Rims(r) => r.cell,
            Core::Dense { kind, .. } => *kind,
        }
    }

    /// Mechanisms the masks report: N for RIMs, 1 for a dense core.
    pub fn mask_width(&self) -> usize {
        match &self.core {
            Core::Rims(r) => r.mechanisms,
            Core::Dense { .. } => 1,
        }
    }

    /// Every parameter: `obs_embed` [20, E], `enc_w` [147·E, D], `enc_b`, the core's (canonical
    /// RIMs names, or `lstm_*`/`gru_*`), `pi_w1`, `pi_b1`, `pi_w2` [·, 7], `pi_b2`, `v_w1`,
    /// `v_b1`, `v_w2` [·, 1], `v_b2`. Linear layers start as PyTorch's (U(±1/√fan_in)), the
    /// embedding as `nn.Embedding` (N(0, 1)).
    pub fn param_specs(&self) -> Vec<ParamSpec> {
        let linear = |name: &str, fan_in: usize, out: usize| {
            let k = 1.0 / (fan_in as f32).sqrt();
            [
                ParamSpec::new(&format!("{name}_w"), &[fan_in, out], Init::Uniform(-k, k)),
                ParamSpec::new(&format!("{name}_b"), &[out], Init::Uniform(-k, k)),
            ]
        };
        let mut specs = vec![ParamSpec::new(
            "obs_embed",
            &[ID_VOCAB, self.embed],
            Init::Normal(0.0, 1.0),
        )];
        specs.extend(linear("enc", IMAGE_LEN * self.embed, self.features));
        match &self.core {
            Core::Rims(r) => specs.extend(rims::param_specs(r)),
            Core::Dense { kind, hidden } => {
                let layer = Recurrent {
                    kind: *kind,
                    input: self.features,
                    hidden: *hidden,
                };
                specs.extend(layer.param_specs(dense_prefix(*kind)));
            }
        }
        let (s, hh) = (self.state_width(), self.head_hidden);
        for (head, out) in [("pi", Action::COUNT), ("v", 1)] {
            let [w1, b1] = linear(&format!("{head}_1"), s, hh);
            let [w2, b2] = linear(&format!("{head}_2"), hh, out);
            specs.extend([w1, b1, w2, b2]);
        }
        specs
    }
}

fn dense_prefix(kind: CellKind) -> &'static str {
    match kind {
        CellKind::Lstm => "lstm_",
        CellKind::Gru => "gru_",
    }
}

/// Observations (`rows × IMAGE_LEN` bytes in MiniGrid's encoding) as embedding rows: the id of
/// channel c is offset past the ids of the channels before it. An id outside its channel is an
/// error naming the row and cell.
pub fn observation_ids(images: &[u8]) -> Result<Vec<u32>> {
    if !images.len().is_multiple_of(IMAGE_LEN) {
        return Err(Error::shape(
            "rl::observation_ids",
            format!(
                "{} bytes are not whole {IMAGE_LEN}-byte views",
                images.len()
            ),
        ));
    }
    let offsets = [0, CHANNEL_IDS[0], CHANNEL_IDS[0] + CHANNEL_IDS[1]];
    images
        .iter()
        .enumerate()
        .map(|(i, &id)| {
            let c = i % 3;
            if u32::from(id) >= CHANNEL_IDS[c] {
                return Err(Error::invalid(
                    "rl::observation_ids",
                    format!(
                        "view {} cell {} channel {c} holds id {id}, past the channel's {}",
                        i / IMAGE_LEN,
                        (i % IMAGE_LEN) / 3,
                        CHANNEL_IDS[c]
                    ),
                ));
            }
            Ok(offsets[c] + u32::from(id))
        })
        .collect()
}

/// A recurrent state of `rows` environments: h [rows, S] and, for an LSTM core, c.
#[derive(Clone, Debug, PartialEq)]
pub struct HostState {
    /// h, row-major [rows, S].
    pub h: Vec<f32>,
    /// c for an LSTM core.
    pub c: Option<Vec<f32>>,
}

impl HostState {
    /// Zeros for `rows` environments of `cfg`.
    pub fn zeros(cfg: &AgentConfig, rows: usize) -> Self {
        let n = rows * cfg.state_width();
        HostState {
            h: vec![0.0; n],
            c: (cfg.cell() == CellKind::Lstm).then(|| vec![0.0; n]),
        }
    }

    /// Zeroes row `i` (its episode ended: the next starts from zeros).
    pub fn reset_row(&mut self, i: usize, width: usize) {
        self.h[i * width..(i + 1) * width].fill(0.0);
        if let Some(c) = &mut self.c {
            c[i * width..(i + 1) * width].fill(0.0);
        }
    }
}

/// One frame's outputs for acting.
pub struct Act {
    /// Policy logits [rows, 7], row-major.
    pub logits: Vec<f32>,
    /// Values [rows].
    pub values: Vec<f32>,
    /// The state after the frame.
    pub state: HostState,
    /// Active mechanisms [rows, N] (ones for a dense core).
    pub masks: Vec<f32>,
}

/// What one frame of the core gives on the tape.
pub struct CoreStep {
    /// h_t [rows, S].
    pub h: Var,
    /// c_t [rows, S] for an LSTM core.
    pub c: Option<Var>,
}

/// An agent and its parameters.
pub struct Agent {
    /// Its sizes.
    pub cfg: AgentConfig,
    /// Every parameter and gradient.
    pub store: ParamStore,
    rims: Option<Rims>,
}

impl Agent {
    /// A freshly initialised agent (seeded).
    pub fn new(ctx: &Context, cfg: AgentConfig, seed: u64) -> Result<Self> {
        cfg.validate()?;
        let store = ParamStore::new(ctx, &cfg.param_specs(), seed)?;
        let rims = match &cfg.core {
            Core::Rims(r) => Some(Rims::new(r.clone())?),
            Core::Dense { .. } => None,
        };
        Ok(Agent { cfg, store, rims })
    }

    /// The encoder on u32 ids [rows, 147]: [rows, D].
    pub fn encode(&self, ctx: &Context, tape: &mut Tape, ids: &Tensor) -> Result<Var> {
        let rows = ids.shape().first().copied().unwrap_or(0);
        let table = tape.param(&self.store, "obs_embed")?;
        let e = tape.embedding(ctx, table, ids)?;
        let e = tape.reshape(e, &[rows, IMAGE_LEN * self.cfg.embed])?;
        let (w, b) = (
            tape.param(&self.store, "enc_w")?,
            tape.param(&self.store, "enc_b")?,
        );
        let x = tape.matmul(ctx, e, w, Some(b))?;
        tape.relu(ctx, x)
    }

    /// One frame of the core: x [rows, D] from the state `h0` (and `c0`), each a tape value
    /// or a tensor. Returns the new state on the tape and the masks [1, rows, N].
    pub fn core_step(
        &self,
        ctx: &Context,
        tape: &mut Tape,
        x: Var,
        h0: Start,
        c0: Start,
    ) -> Result<(CoreStep, Tensor)> {
        let rows = tape.value(x).shape()[0];
        let x = tape.reshape(x, &[1, rows, self.cfg.features])?;
        match (&self.cfg.core, &self.rims) {
            (Core::Rims(_), Some(layer)) => {
                let opts = RimsOptions::default().with_start(h0, c0);
                let out = layer.forward(ctx, tape, &self.store, x, &opts)?;
                let step = CoreStep {
                    h: out.final_h,
                    c: out.final_c,
                };
                Ok((step, out.masks))
            }
            (Core::Dense { kind, hidden }, _) => {
                let layer = Recurrent {
                    kind: *kind,
                    input: self.cfg.features,
                    hidden: *hidden,
                };
                let out =
                    layer.forward_from(ctx, tape, &self.store, x, dense_prefix(*kind), h0, c0)?;
                let masks = Tensor::full(ctx, &[1, rows, 1], 1.0)?;
                let step = CoreStep {
                    h: out.final_h,
                    c: out.final_c,
                };
                Ok((step, masks))
            }
            (Core::Rims(_), None) => {
                Err(Error::invalid("rl::Agent", "RIMs core without its layer"))
            }
        }
    }

    /// The heads on states h [rows, S]: policy logits [rows, 7] and values [rows, 1].
    pub fn heads(&self, ctx: &Context, tape: &mut Tape, h: Var) -> Result<(Var, Var)> {
        let mut head = |name: &str| -> Result<Var> {
            let p = |tape: &mut Tape, n: &str| tape.param(&self.store, &format!("{name}_{n}"));
            let (w1, b1, w2, b2) = (
                p(tape, "1_w")?,
                p(tape, "1_b")?,
                p(tape, "2_w")?,
                p(tape, "2_b")?,
            );
            let z = tape.matmul(ctx, h, w1, Some(b1))?;
            let z = tape.tanh(ctx, z)?;
            tape.matmul(ctx, z, w2, Some(b2))
        };
        Ok((head("pi")?, head("v")?))
    }

    /// One frame for `rows` environments, without a tape: their observations
    /// (`rows × IMAGE_LEN` bytes) from `state`. One submit, one read-back.
    pub fn act(&self, ctx: &Context, images: &[u8], state: &HostState) -> Result<Act> {
        let rows = images.len() / IMAGE_LEN;
        let s = self.cfg.state_width();
        if rows == 0 || state.h.len() != rows * s {
            return Err(Error::shape(
                "rl::Agent::act",
                format!(
                    "{} observation bytes and a state of {} values (want {IMAGE_LEN} and {s} per environment)",
                    images.len(),
                    state.h.len()
                ),
            ));
        }
        let ids = Tensor::from_u32(ctx, &[rows, IMAGE_LEN], &observation_ids(images)?)?;
        let mut tape = Tape::untracked();
        let x = self.encode(ctx, &mut tape, &ids)?;
        let upload = |v: &[f32]| Tensor::from_slice(ctx, &[rows, s], v);
        let h0 = Start::Given(upload(&state.h)?);
        let c0 = match &state.c {
            Some(c) => Start::Given(upload(c)?),
            None => Start::Zeros,
        };
        let (step, masks) = self.core_step(ctx, &mut tape, x, h0, c0)?;
        let (logits, values) = self.heads(ctx, &mut tape, step.h)?;
        let mut wanted = vec![
            tape.value(logits),
            tape.value(values),
            &masks,
            tape.value(step.h),
        ];
        if let Some(c) = step.c {
            wanted.push(tape.value(c));
        }
        let mut read = Tensor::read_many(ctx, &wanted)?.into_iter();
        let mut next = || read.next().unwrap_or_default();
        Ok(Act {
            logits: next(),
            values: next(),
            masks: next(),
            state: HostState {
                h: next(),
                c: step.c.map(|_| next()),
            },
        })
    }
}
