//! Step-by-step inference for embedding a model in an application: load a checkpoint with
//! [`train::checkpoint::load_model`](crate::train::checkpoint::load_model), make a [`Runner`]
//! for a batch size, and feed it ONE time step at a time.
//!
//! The runner keeps the recurrent state (h, and c for LSTM cells) on the device between steps.
//! A step records the embedding, the backbone (RIMs, or a dense LSTM/GRU baseline) for one time
//! step and the decoder — all on an untracked tape, so nothing is saved for a backward pass —
//! and reads back only the step's outputs: the logits and the masks, packed into one buffer, so
//! a step is exactly one queue submit (the read-back). Every buffer a step needs comes from the
//! engine's pool, which serves all of them from its free lists after the first step: a
//! steady-state step creates no device buffer. The per-step cost is dominated by dispatch
//! overhead at small batch sizes; `docs/perf.md` ("RIMs steps") has the figures.
//!
//! Stepping T times gives the same states, masks and logits as running the whole sequence at
//! once ([`Model::run_features`], or [`Model::forward`] in evaluation mode): the step runs the
//! same kernels on the same values.
//!
//! ```no_run
//! use rims::Context;
//! use rims::nn::Runner;
//! use rims::train::checkpoint::load_model;
//!
//! fn main() -> rims::Result<()> {
//!     let ctx = Context::from_env()?;
//!     let model = load_model(&ctx, std::path::Path::new("runs/copying"))?;
//!     let mut runner = Runner::new(&ctx, &model, 1)?;
//!     for token in [3u32, 1, 4, 1, 5] {
//!         let out = runner.step(&ctx, &[token])?;
//!         println!("in={token} out={} active={:?}", out.predicted(0), out.active_mechanisms(0));
//!     }
//!     runner.reset(); // start a new sequence from the zero state
//!     Ok(())
//! }
//! ```

use crate::device::Context;
use crate::error::{Error, Result};
use crate::nn::config::CellKind;
use crate::nn::model::Model;
use crate::tensor::{DType, Tensor};

const OP: &str = "runner";

/// The recurrent state of every batch row, on the device.
#[derive(Clone)]
pub struct RunnerState {
    /// h [B, N·H]: the mechanisms' hidden states, mechanism-major within a row ([B, H] for a
    /// dense baseline).
    pub h: Tensor,
    /// c, shaped like h, for LSTM cells; `None` for GRU cells.
    pub c: Option<Tensor>,
}

/// What one [`Runner::step`] reads back.
#[derive(Clone, Debug, PartialEq)]
pub struct StepOutput {
    /// B: batch rows.
    pub batch: usize,
    /// V: classes of the decoder.
    pub classes: usize,
    /// N: mechanisms (1 for a dense baseline).
    pub mechanisms: usize,
    /// The decoder's logits for this step, [B, V] row-major. For a model trained to classify
    /// at the last step (sMNIST), the logits after the last step are the classification.
    pub logits: Vec<f32>,
    /// Which mechanisms were active (chosen by the input attention) at this step, [B, N]. A
    /// dense baseline reports one mechanism that is always active.
    pub active: Vec<bool>,
}

impl StepOutput {
    /// The logits of batch row `row` (panics if `row >= batch`).
    ///
    /// ```no_run
    /// # fn demo(out: &rims::nn::runner::StepOutput) {
    /// let scores: &[f32] = out.logits_of(0);
    /// # }
    /// ```
    pub fn logits_of(&self, row: usize) -> &[f32] {
        &self.logits[row * self.classes..(row + 1) * self.classes]
    }

    /// The class with the largest logit in batch row `row` (the first one on ties; panics if
    /// `row >= batch`).
    ///
    /// ```no_run
    /// # fn demo(out: &rims::nn::runner::StepOutput) {
    /// let token = out.predicted(0);
    /// # }
    /// ```
    pub fn predicted(&self, row: usize) -> usize {
        let logits = self.logits_of(row);
        let mut best = 0;
        for (i, &v) in logits.iter().enumerate() {
            if v > logits[best] {
                best = i;
            }
        }
        best
    }

    /// The indices of the mechanisms active in batch row `row`, ascending (panics if
    /// `row >= batch`).
    ///
    /// ```no_run
    /// # fn demo(out: &rims::nn::runner::StepOutput) {
    /// let active: Vec<usize> = out.active_mechanisms(0); // e.g. [0, 2]
    /// # }
    /// ```
    pub fn active_mechanisms(&self, row: usize) -> Vec<usize> {
        self.active[row * self.mechanisms..(row + 1) * self.mechanisms]
            .iter()
            .enumerate()
            .filter_map(|(i, &on)| on.then_some(i))
            .collect()
    }
}

/// Runs a [`Model`] one time step at a time for a fixed batch size, keeping the recurrent
/// state on the device. Borrow the model for as long as the runner lives; parameters are read
/// at every step, so a model updated in between (by training) is seen by the next step.
///
/// ```no_run
/// use rims::Context;
/// use rims::nn::Runner;
/// use rims::nn::model::Model;
/// use rims::train::TrainConfig;
///
/// let ctx = Context::from_env()?;
/// // The default run's model: copying task (20 tokens), 4 mechanisms of 16 units, k = 2.
/// let cfg = TrainConfig::default().model()?;
/// let model = Model::new(&ctx, cfg, 7)?;
/// let mut runner = Runner::new(&ctx, &model, 2)?;
/// let out = runner.step(&ctx, &[4, 9])?; // one token per batch row
/// assert_eq!(out.logits.len(), 2 * 20);
/// assert_eq!(out.active.len(), 2 * 4);
/// # Ok::<(), rims::Error>(())
/// ```
pub struct Runner<'m> {
    model: ModelRef<'m>,
    batch: usize,
    /// Width of a row of the state: N·H for RIMs, H for a dense baseline.
    width: usize,
    state: RunnerState,
    /// The zero state [`Runner::reset`] returns to (never written).
    zero: RunnerState,
    steps: u64,
}

/// The model a runner steps: borrowed ([`Runner::new`]) or shared ([`Runner::shared`], for a
/// runner that must own what it steps, as one held by a Python object does).
enum ModelRef<'m> {
    Borrowed(&'m Model),
    Shared(std::sync::Arc<Model>),
}

impl std::ops::Deref for ModelRef<'_> {
    type Target = Model;

    fn deref(&self) -> &Model {
        match self {
            ModelRef::Borrowed(m) => m,
            ModelRef::Shared(m) => m,
        }
    }
}

impl Runner<'static> {
    /// A runner that shares ownership of its model: the same as [`Runner::new`], for callers
    /// that cannot hold a borrow for the runner's life.
    pub fn shared(ctx: &Context, model: std::sync::Arc<Model>, batch: usize) -> Result<Self> {
        Self::with_model(ctx, ModelRef::Shared(model), batch)
    }
}

impl<'m> Runner<'m> {
    /// A runner for `batch` independent sequences, starting from the zero state. Allocates the
    /// zero state; nothing is submitted.
    ///
    /// Errors when `batch` is 0 or the state exceeds the device's limits.
    ///
    /// ```no_run
    /// # fn demo(ctx: &rims::Context, model: &rims::nn::model::Model) -> rims::Result<()> {
    /// let mut runner = rims::nn::Runner::new(ctx, model, 1)?;
    /// # Ok(()) }
    /// ```
    pub fn new(ctx: &Context, model: &'m Model, batch: usize) -> Result<Self> {
        Self::with_model(ctx, ModelRef::Borrowed(model), batch)
    }

    fn with_model(ctx: &Context, model: ModelRef<'m>, batch: usize) -> Result<Self> {
        if batch == 0 {
            return Err(Error::invalid(OP, "the batch size must be at least 1"));
        }
        // The decoder reads the state: its input width is the state's.
        let width = model.store.shape("dec_w")?[0];
        let zero = RunnerState {
            h: Tensor::zeros(ctx, &[batch, width])?,
            c: match model.cfg.rims.cell {
                CellKind::Lstm => Some(Tensor::zeros(ctx, &[batch, width])?),
                CellKind::Gru => None,
            },
        };
        Ok(Runner {
            model,
            batch,
            width,
            state: zero.clone(),
            zero,
            steps: 0,
        })
    }

    /// Feeds one token per batch row (`tokens.len() == B`) through the embedding, the backbone
    /// and the decoder; returns the logits and the active mechanisms of this step and
    /// advances the state. One submit (the read-back of the outputs).
    ///
    /// Errors, leaving the state unchanged, when `tokens.len() != B` or a token is not below
    /// the model's vocabulary size.
    ///
    /// ```no_run
    /// # fn demo(ctx: &rims::Context, runner: &mut rims::nn::Runner) -> rims::Result<()> {
    /// let out = runner.step(ctx, &[3])?; // batch 1
    /// println!("predicted {}", out.predicted(0));
    /// # Ok(()) }
    /// ```
    pub fn step(&mut self, ctx: &Context, tokens: &[u32]) -> Result<StepOutput> {
        let vocab = self.model.cfg.vocab;
        if tokens.len() != self.batch {
            return Err(Error::shape(
                OP,
                format!(
                    "expected one token per batch row ({}), got {}",
                    self.batch,
                    tokens.len()
                ),
            ));
        }
        if let Some((row, tok)) = tokens
            .iter()
            .enumerate()
            .find(|&(_, &t)| t as usize >= vocab)
        {
            return Err(Error::invalid(
                OP,
                format!("token {tok} in batch row {row} is not below the vocabulary size {vocab}"),
            ));
        }
        let tokens = Tensor::from_u32(ctx, &[1, self.batch], tokens)?;
        let x = self.model.embed(ctx, &tokens)?;
        self.advance(ctx, x)
    }

    /// Feeds raw cell inputs x [B, D] (row-major, `x.len() == B·D`), skipping the embedding:
    /// for models whose inputs are not tokens, or to compare with [`Model::run_features`].
    ///
    /// Errors, leaving the state unchanged, when `x.len() != B·D`.
    ///
    /// ```no_run
    /// # fn demo(ctx: &rims::Context, runner: &mut rims::nn::Runner, d: usize) -> rims::Result<()> {
    /// let out = runner.step_features(ctx, &vec![0.5; d])?; // batch 1, D = d
    /// # Ok(()) }
    /// ```
    pub fn step_features(&mut self, ctx: &Context, x: &[f32]) -> Result<StepOutput> {
        let d = self.model.cfg.rims.input;
        if x.len() != self.batch * d {
            return Err(Error::shape(
                OP,
                format!(
                    "expected B·D = {}·{} = {} features, got {}",
                    self.batch,
                    d,
                    self.batch * d,
                    x.len()
                ),
            ));
        }
        let x = Tensor::from_slice(ctx, &[1, self.batch, d], x)?;
        self.advance(ctx, x)
    }

    /// Runs the backbone and the decoder on x [1, B, D] and reads back the outputs.
    fn advance(&mut self, ctx: &Context, x: Tensor) -> Result<StepOutput> {
        let (b, v, width) = (self.batch, self.model.cfg.classes, self.width);
        let out = self.model.run_features(
            ctx,
            &x,
            Some(self.state.h.clone()),
            self.state.c.clone(),
            None,
        )?;
        // Mechanisms per row: N for RIMs, 1 for a dense baseline (always active).
        let n = out.masks.len() / b;
        // Logits and masks into one buffer, read back in one submit.
        let packed = Tensor::uninit(ctx, &[b * (v + n)])?;
        packed.copy_from(ctx, &out.logits, 0)?;
        packed.copy_from(ctx, &out.masks, b * v)?;
        let read = packed.to_vec(ctx)?;
        // h_1 and c_1 live in buffers of this call that no later step writes: they become the
        // next step's h_0 and c_0 as they are.
        self.state = RunnerState {
            h: out.h.reshape(&[b, width])?,
            c: match out.c {
                Some(c) => Some(c.reshape(&[b, width])?),
                None => None,
            },
        };
        self.steps += 1;
        Ok(StepOutput {
            batch: b,
            classes: v,
            mechanisms: n,
            logits: read[..b * v].to_vec(),
            active: read[b * v..].iter().map(|&m| m > 0.5).collect(),
        })
    }

    /// Returns every batch row to the zero state (the start of a new sequence). Records and
    /// submits nothing.
    ///
    /// ```no_run
    /// # fn demo(runner: &mut rims::nn::Runner) {
    /// runner.reset();
    /// assert_eq!(runner.steps(), 0);
    /// # }
    /// ```
    pub fn reset(&mut self) {
        self.state = self.zero.clone();
        self.steps = 0;
    }

    /// The current recurrent state (after the last step), on the device. Read it with
    /// [`Tensor::to_vec`] (one more submit), or keep it to restore with
    /// [`Runner::set_state`].
    ///
    /// ```no_run
    /// # fn demo(ctx: &rims::Context, runner: &rims::nn::Runner) -> rims::Result<()> {
    /// let h: Vec<f32> = runner.state().h.to_vec(ctx)?; // [B, N·H]
    /// # Ok(()) }
    /// ```
    pub fn state(&self) -> &RunnerState {
        &self.state
    }

    /// Continues from `state` (e.g. one saved with [`Runner::state`]). The tensors are used as
    /// they are, not copied: steps never write into a state they were given.
    ///
    /// Errors, leaving the state unchanged, when a tensor is not f32 with B·N·H values, or when
    /// `c` is missing for an LSTM cell or given for a GRU cell.
    ///
    /// ```no_run
    /// # fn demo(runner: &mut rims::nn::Runner) -> rims::Result<()> {
    /// let saved = runner.state().clone();
    /// // ... run other inputs ...
    /// runner.set_state(saved)?;
    /// # Ok(()) }
    /// ```
    pub fn set_state(&mut self, state: RunnerState) -> Result<()> {
        let nh = self.width;
        let want = self.batch * nh;
        let lstm = self.model.cfg.rims.cell == CellKind::Lstm;
        match (&state.c, lstm) {
            (None, true) => return Err(Error::invalid(OP, "an LSTM cell needs c in its state")),
            (Some(_), false) => return Err(Error::invalid(OP, "a GRU cell has no c state")),
            _ => {}
        }
        for (name, t) in [("h", Some(&state.h)), ("c", state.c.as_ref())] {
            if let Some(t) = t {
                t.expect_dtype(OP, DType::F32)?;
                if t.len() != want {
                    return Err(Error::shape(
                        OP,
                        format!(
                            "{name} must have B·N·H = {want} values, got {:?}",
                            t.shape()
                        ),
                    ));
                }
            }
        }
        self.state = RunnerState {
            h: state.h.reshape(&[self.batch, nh])?,
            c: match state.c {
                Some(c) => Some(c.reshape(&[self.batch, nh])?),
                None => None,
            },
        };
        Ok(())
    }

    /// B: the batch size this runner was made for.
    ///
    /// ```no_run
    /// # fn demo(runner: &rims::nn::Runner) {
    /// assert_eq!(runner.batch(), 1);
    /// # }
    /// ```
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Steps taken since the runner was made or last reset.
    ///
    /// ```no_run
    /// # fn demo(runner: &rims::nn::Runner) {
    /// println!("{} steps so far", runner.steps());
    /// # }
    /// ```
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The model this runner steps.
    ///
    /// ```no_run
    /// # fn demo(runner: &rims::nn::Runner) {
    /// let vocab = runner.model().cfg.vocab;
    /// # }
    /// ```
    pub fn model(&self) -> &Model {
        &self.model
    }
}
