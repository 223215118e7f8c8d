//! The models of the experiments (`docs/spec.md` §2): token embedding with dropout, a
//! recurrent backbone (RIMs), dropout, and a linear decoder read at the last step
//! (classification) or at every step (sequence tasks).

use std::collections::BTreeMap;

use crate::device::Context;
use crate::error::{Error, Result};
use crate::nn::config::RimsConfig;
use crate::nn::frames::{self, FrameNet};
use crate::nn::params::{Init, ParamSpec, ParamStore};
use crate::nn::recurrent::Recurrent;
use crate::nn::rims::{self, Rims, RimsOptions};
use crate::ops::dropout::Mask;
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

/// Where the decoder reads the state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readout {
    /// Only the last step (sequential MNIST): logits [B, V].
    Last,
    /// Every step (copying): logits [T·B, V], time-major.
    All,
}

/// The recurrent layer of a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backbone {
    /// The RIMs layer described by [`ModelConfig::rims`].
    Rims,
    /// The paper's baseline: one dense LSTM or GRU of `hidden` units (the cell kind and the
    /// input size come from [`ModelConfig::rims`]).
    Dense {
        /// Hidden units of the dense layer (must be at least 1).
        hidden: usize,
    },
}

/// What turns the task's inputs into the cell input x [T, B, D].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputLayer {
    /// u32 tokens [T, B], each below `vocab`, looked up in the `embed` table [vocab, D]
    /// (copying, sequential MNIST).
    Embedding,
    /// f32 features [T, B, F] with F = `vocab`, through a linear layer `x·in_w + in_b`,
    /// `in_w` [F, D] (the adding task's value and marker channels).
    Linear,
    /// f32 frames [T, B, S, S] through the convolutional encoder of [`frames`]; the decoder is
    /// then that module's convolutional decoder, `classes` and `vocab` are S² (one logit per
    /// pixel of the next frame) and the readout is every step (the bouncing-balls video).
    Frames(FrameNet),
}

/// A model: embedding (or a linear input layer) → dropout → RIMs (or a dense LSTM/GRU) →
/// dropout → linear decoder.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    /// Input vocabulary (tokens are u32 below this); for a [`InputLayer::Linear`] input, the
    /// features per step.
    pub vocab: usize,
    /// How the inputs reach the cell.
    pub input: InputLayer,
    /// Output classes.
    pub classes: usize,
    /// The recurrent layer's sizes (also the cell kind and input size of a dense baseline).
    pub rims: RimsConfig,
    /// Dropout on the embedding and before the decoder (0.5 in the authors' scripts).
    pub dropout: f32,
    /// Which steps the decoder reads.
    pub readout: Readout,
    /// RIMs or a dense LSTM/GRU.
    pub backbone: Backbone,
}

/// Parameter-name prefix of a dense baseline layer.
fn dense_prefix(kind: crate::nn::CellKind) -> &'static str {
    match kind {
        crate::nn::CellKind::Lstm => "lstm_",
        crate::nn::CellKind::Gru => "gru_",
    }
}

/// Dropout site ids of the model (the cell uses 0 and 1).
const EMBED_DROPOUT: u32 = 2;
const DECODER_DROPOUT: u32 = 3;

impl ModelConfig {
    /// Checks every size; returns `Error::Config` naming the first bad field.
    pub fn validate(&self) -> Result<()> {
        self.rims.validate()?;
        if self.backbone == (Backbone::Dense { hidden: 0 }) {
            return Err(Error::config("hidden", "must be at least 1"));
        }
        if self.vocab == 0 {
            return Err(Error::config("vocab", "must be at least 1"));
        }
        if self.classes == 0 {
            return Err(Error::config("classes", "must be at least 1"));
        }
        if let InputLayer::Frames(net) = self.input {
            net.validate()?;
            if (self.vocab, self.classes) != (net.pixels(), net.pixels()) {
                return Err(Error::config(
                    "classes",
                    format!(
                        "a frame model reads and predicts {} pixels, not {} and {}",
                        net.pixels(),
                        self.vocab,
                        self.classes
                    ),
                ));
            }
            if self.readout != Readout::All {
                return Err(Error::config(
                    "readout",
                    "a frame model predicts the next frame at every step",
                ));
            }
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::config(
                "dropout",
                format!("{} is not in [0, 1)", self.dropout),
            ));
        }
        Ok(())
    }

    /// Mechanisms the masks report: N for RIMs, 1 (always active) for a dense layer.
    pub fn mask_width(&self) -> usize {
        match self.backbone {
            Backbone::Rims => self.rims.mechanisms,
            Backbone::Dense { .. } => 1,
        }
    }

    /// Width of the state the decoder reads: N·H for RIMs, H for a dense layer.
    pub fn state_width(&self) -> usize {
        match self.backbone {
            Backbone::Rims => self.rims.mechanisms * self.rims.hidden,
            Backbone::Dense { hidden } => hidden,
        }
    }

    /// The dense baseline layer, if that is the backbone.
    fn dense(&self) -> Option<Recurrent> {
        match self.backbone {
            Backbone::Rims => None,
            Backbone::Dense { hidden } => Some(Recurrent {
                kind: self.rims.cell,
                input: self.rims.input,
                hidden,
            }),
        }
    }

    /// Every parameter: the backbone's tensors (the cell's canonical names for RIMs, `lstm_*`
    /// or `gru_*` for a dense layer) plus `embed` (or `in_w`, `in_b`), `dec_w`, `dec_b`; a frame
    /// model has the encoder's and decoder's tensors of [`FrameNet::param_specs`] instead.
    pub fn param_specs(&self) -> Vec<ParamSpec> {
        let nh = self.state_width();
        let mut specs = match self.input {
            InputLayer::Frames(_) => Vec::new(),
            InputLayer::Embedding => vec![ParamSpec::new(
                "embed",
                &[self.vocab, self.rims.input],
                Init::Uniform(-0.1, 0.1),
            )],
            InputLayer::Linear => {
                // PyTorch's nn.Linear default: U(±1/√fan_in) for the weight (its bias draws
                // from the same range; zeros keep the marker channel's first steps clean).
                let bound = 1.0 / (self.vocab as f32).sqrt();
                vec![
                    ParamSpec::new(
                        "in_w",
                        &[self.vocab, self.rims.input],
                        Init::Uniform(-bound, bound),
                    ),
                    ParamSpec::new("in_b", &[self.rims.input], Init::Zeros),
                ]
            }
        };
        match self.dense() {
            None => specs.extend(rims::param_specs(&self.rims)),
            Some(layer) => specs.extend(layer.param_specs(dense_prefix(self.rims.cell))),
        }
        if let InputLayer::Frames(net) = self.input {
            specs.extend(net.param_specs(self.rims.input, nh));
            return specs;
        }
        specs.push(ParamSpec::new(
            "dec_w",
            &[nh, self.classes],
            Init::Uniform(-0.1, 0.1),
        ));
        specs.push(ParamSpec::new("dec_b", &[self.classes], Init::Zeros));
        specs
    }

    /// The checkpoint metadata of `docs/spec.md` §4.
    pub fn metadata(&self) -> BTreeMap<String, String> {
        let r = &self.rims;
        let gate_order = match r.cell {
            crate::nn::CellKind::Lstm => "ifgo",
            crate::nn::CellKind::Gru => "rzn",
        };
        let variant = match self.backbone {
            Backbone::Rims => r.variant.letter(),
            Backbone::Dense { .. } => "dense",
        };
        [
            ("variant", variant.to_string()),
            ("cell", r.cell.name().to_string()),
            ("gate_order", gate_order.to_string()),
            ("N", r.mechanisms.to_string()),
            ("k", r.active.to_string()),
            ("H", r.hidden.to_string()),
            ("D", r.input.to_string()),
            ("d_vin", r.input_value.to_string()),
            ("d_k", r.input_key.to_string()),
            ("h_in", r.input_heads.to_string()),
            ("h_c", r.comm_heads.to_string()),
            ("d_kc", r.comm_key.to_string()),
            ("d_vc", r.comm_value.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

/// What one forward call gives back.
pub struct ModelOutput {
    /// Logits on the tape: [B, V] (Last) or [T·B, V] (All).
    pub logits: Var,
    /// The final state h_T (and c_T), to carry into the next batch.
    pub h_last: Tensor,
    /// The final cell state c_T (LSTM only; None for GRU).
    pub c_last: Option<Tensor>,
    /// Masks [T, B, N].
    pub masks: Tensor,
}

/// Per-call settings of [`Model::forward`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Pass {
    /// Apply dropout (training) or not.
    pub training: bool,
    /// Dropout seed and the step index of the first time step (masks are keyed by both).
    pub seed: u32,
    /// Step index of the first time step.
    pub step0: u32,
}

/// A model and its parameters.
pub struct Model {
    /// The configuration the model was built from.
    pub cfg: ModelConfig,
    /// Every parameter and its gradient.
    pub store: ParamStore,
    rims: Rims,
}

/// Everything [`Model::run_features`] produces, per step.
pub struct StepOutputs {
    /// h_t [T, B, N·H].
    pub h: Tensor,
    /// c_t [T, B, N·H] (LSTM).
    pub c: Option<Tensor>,
    /// Masks [T, B, N].
    pub masks: Tensor,
    /// Decoder logits of every step [T, B, V].
    pub logits: Tensor,
}

impl Model {
    /// A freshly initialised model (seeded).
    pub fn new(ctx: &Context, cfg: ModelConfig, seed: u64) -> Result<Self> {
        cfg.validate()?;
        let store = ParamStore::new(ctx, &cfg.param_specs(), seed)?;
        let rims = Rims::new(cfg.rims.clone())?;
        Ok(Model { cfg, store, rims })
    }

    /// Adds `value` to the initial forget-gate bias of every LSTM unit (the `bx` side; the
    /// authors' init has none, so 0 keeps it). A forget gate that starts near σ(1) = 0.73
    /// instead of 0.5 lets a fresh model remember across the blank tail of an sMNIST image long
    /// enough for the first gradients to reach the digit. GRU models are refused.
    pub fn add_forget_bias(&self, ctx: &Context, value: f32) -> Result<()> {
        if value == 0.0 {
            return Ok(());
        }
        if self.cfg.rims.cell != crate::nn::CellKind::Lstm {
            return Err(Error::config(
                "forget_bias",
                "only LSTM cells have a forget gate",
            ));
        }
        if self.cfg.backbone == Backbone::Rims && self.cfg.rims.variant == crate::nn::Variant::Dido
        {
            return Err(Error::config(
                "forget_bias",
                "variant dido's LSTM cells have no biases (docs/spec.md §3)",
            ));
        }
        let (name, h) = match self.cfg.backbone {
            Backbone::Rims => ("rnn_bx".to_string(), self.cfg.rims.hidden),
            Backbone::Dense { hidden } => {
                (format!("{}bx", dense_prefix(self.cfg.rims.cell)), hidden)
            }
        };
        // Rows of [i, f, g, o] gate blocks of H: one row per mechanism (RIMs) or one (dense).
        let mut bias = self.store.value(&name)?.to_vec(ctx)?;
        for row in bias.chunks_mut(4 * h) {
            for b in &mut row[h..2 * h] {
                *b += value;
            }
        }
        self.store.set(ctx, &name, &bias)
    }

    /// Multiplies the initial input-attention weights of a RIMs model (the shared key and
    /// value layers `in_k_w`, `in_v_w`, and the queries `in_q`) by `gain` (1 keeps the authors'
    /// 0.01·N(0, 1)). At that init the attended input u is of order 1e-3 and reaches the
    /// mechanisms' gates far more weakly than a dense LSTM's input does; a gain of 10 to 30
    /// gives the input the scale of the recurrent weights. A dense model is refused.
    pub fn scale_input_attention(&self, ctx: &Context, gain: f32) -> Result<()> {
        if gain == 1.0 {
            return Ok(());
        }
        if self.cfg.backbone != Backbone::Rims {
            return Err(Error::config(
                "input_gain",
                "only a RIMs model has input attention",
            ));
        }
        for name in ["in_q", "in_k_w", "in_v_w"] {
            let mut v = self.store.value(name)?.to_vec(ctx)?;
            v.iter_mut().for_each(|x| *x *= gain);
            self.store.set(ctx, name, &v)?;
        }
        Ok(())
    }

    /// The recurrent layer over x [T, B, D]. A dense baseline reports one always-active
    /// "mechanism": its masks are ones [T, B, 1].
    fn backbone_forward(
        &self,
        ctx: &Context,
        tape: &mut Tape,
        x: Var,
        opts: &RimsOptions,
    ) -> Result<crate::nn::RimsOutput> {
        let Some(layer) = self.cfg.dense() else {
            return self.rims.forward(ctx, tape, &self.store, x, opts);
        };
        if opts.mask_override.is_some() {
            return Err(Error::invalid(
                "model",
                "a dense LSTM/GRU has no mechanisms to mask",
            ));
        }
        let s = tape.value(x).shape().to_vec();
        let (h0, c0) = opts.start()?;
        let prefix = dense_prefix(self.cfg.rims.cell);
        let out = layer.forward_from(ctx, tape, &self.store, x, prefix, h0, c0)?;
        let masks = Tensor::full(ctx, &[s[0], s[1], 1], 1.0)?;
        Ok(crate::nn::RimsOutput {
            h: out.h,
            final_h: out.final_h,
            final_c: out.final_c,
            states: out.states,
            cells: out.cells,
            masks,
        })
    }

    /// Inference on raw cell inputs x [T, B, D] (the embedding is skipped): every step's state,
    /// mask and decoder logits, without dropout. `mask_override` [T, B, N] forces the masks.
    pub fn run_features(
        &self,
        ctx: &Context,
        x: &Tensor,
        h0: Option<Tensor>,
        c0: Option<Tensor>,
        mask_override: Option<Tensor>,
    ) -> Result<StepOutputs> {
        let mut tape = Tape::untracked();
        let xv = tape.constant(x.clone());
        let opts = RimsOptions {
            mask_override,
            h0,
            c0,
            ..RimsOptions::default()
        };
        let out = self.backbone_forward(ctx, &mut tape, xv, &opts)?;
        let s = x.shape();
        let (t_len, b) = (s[0], s[1]);
        let nh = self.cfg.state_width();
        let logits = self.decode(ctx, &mut tape, out.h)?;
        let logits = tape.reshape(logits, &[t_len, b, self.cfg.classes])?;
        let c = match &out.cells {
            Some(c) => Some(c.slice_copy(ctx, b * nh, &[t_len, b, nh])?),
            None => None,
        };
        Ok(StepOutputs {
            h: tape.value(out.h).clone(),
            c,
            masks: out.masks,
            logits: tape.value(logits).clone(),
        })
    }

    /// The decoder on states `h` [..., N·H]: logits [rows, V], rows the leading dimensions
    /// flattened.
    fn decode(&self, ctx: &Context, tape: &mut Tape, h: Var) -> Result<Var> {
        if let InputLayer::Frames(net) = self.cfg.input {
            let rows = tape.value(h).len() / self.cfg.state_width();
            let h = tape.reshape(h, &[rows, self.cfg.state_width()])?;
            return frames::decode(ctx, tape, &self.store, &net, h);
        }
        let (dec_w, dec_b) = (
            tape.param(&self.store, "dec_w")?,
            tape.param(&self.store, "dec_b")?,
        );
        tape.matmul(ctx, h, dec_w, Some(dec_b))
    }

    /// Checks that `inputs` fit the input layer; returns (T, B).
    fn check_inputs(&self, inputs: &Tensor) -> Result<(usize, usize)> {
        let s = inputs.shape();
        match self.cfg.input {
            InputLayer::Embedding => {
                if s.len() != 2 || s[0] == 0 || s[1] == 0 {
                    return Err(Error::shape(
                        "model",
                        format!("tokens must be [T, B] with T, B > 0, got {s:?}"),
                    ));
                }
            }
            InputLayer::Linear => {
                if s.len() != 3 || s[0] == 0 || s[1] == 0 || s[2] != self.cfg.vocab {
                    return Err(Error::shape(
                        "model",
                        format!(
                            "features must be [T, B, {}] with T, B > 0, got {s:?}",
                            self.cfg.vocab
                        ),
                    ));
                }
            }
            InputLayer::Frames(net) => {
                if s.len() != 4 || s[0] == 0 || s[1] == 0 || s[2..] != [net.size, net.size] {
                    return Err(Error::shape(
                        "model",
                        format!(
                            "frames must be [T, B, {0}, {0}] with T, B > 0, got {s:?}",
                            net.size
                        ),
                    ));
                }
            }
        }
        Ok((s[0], s[1]))
    }

    /// Embeds tokens [T, B] (u32) as the cell input x [T, B, D] (no dropout).
    pub fn embed(&self, ctx: &Context, tokens: &Tensor) -> Result<Tensor> {
        crate::ops::embedding::forward(ctx, tokens, &self.store.value("embed")?)
    }

    /// Runs the inputs, time-major: u32 tokens [T, B] for an [`InputLayer::Embedding`] model,
    /// f32 features [T, B, F] for an [`InputLayer::Linear`] one. `state` is (h0, c0) to start
    /// from.
    pub fn forward(
        &self,
        ctx: &Context,
        tape: &mut Tape,
        inputs: &Tensor,
        state: Option<(Tensor, Option<Tensor>)>,
        pass: Pass,
    ) -> Result<ModelOutput> {
        let Pass {
            training,
            seed,
            step0,
        } = pass;
        let (t_len, b) = self.check_inputs(inputs)?;
        let p = if training { self.cfg.dropout } else { 0.0 };
        let x = match self.cfg.input {
            InputLayer::Embedding => {
                let embed = tape.param(&self.store, "embed")?;
                tape.embedding(ctx, embed, inputs)?
            }
            InputLayer::Linear => {
                let (w, bias) = (
                    tape.param(&self.store, "in_w")?,
                    tape.param(&self.store, "in_b")?,
                );
                let v = tape.constant(inputs.clone());
                let x = tape.matmul(ctx, v, w, Some(bias))?;
                tape.reshape(x, &[t_len, b, self.cfg.rims.input])?
            }
            InputLayer::Frames(net) => {
                let v = tape.constant(inputs.clone());
                let x = frames::encode(ctx, tape, &self.store, &net, v)?;
                tape.reshape(x, &[t_len, b, self.cfg.rims.input])?
            }
        };
        let x = tape.dropout(
            ctx,
            x,
            Mask {
                seed,
                step: step0,
                tensor: EMBED_DROPOUT,
                p,
            },
        )?;
        let (h0, c0) = match state {
            Some((h, c)) => (Some(h), c),
            None => (None, None),
        };
        let opts = RimsOptions {
            seed,
            step0,
            training,
            mask_override: None,
            h0,
            c0,
            ..RimsOptions::default()
        };
        let out = self.backbone_forward(ctx, tape, x, &opts)?;
        let nh = self.cfg.state_width();
        let h = match self.cfg.readout {
            Readout::Last => tape.slice_rows(ctx, out.h, t_len - 1, 1)?,
            Readout::All => out.h,
        };
        let h = tape.dropout(
            ctx,
            h,
            Mask {
                seed,
                step: step0,
                tensor: DECODER_DROPOUT,
                p,
            },
        )?;
        let logits = self.decode(ctx, tape, h)?;
        let rows = match self.cfg.readout {
            Readout::Last => b,
            Readout::All => t_len * b,
        };
        let logits = tape.reshape(logits, &[rows, self.cfg.classes])?;
        let h_last = out.states.slice_copy(ctx, t_len * b * nh, &[b, nh])?;
        let c_last = match &out.cells {
            Some(c) => Some(c.slice_copy(ctx, t_len * b * nh, &[b, nh])?),
            None => None,
        };
        Ok(ModelOutput {
            logits,
            h_last,
            c_last,
            masks: out.masks,
        })
    }
}
