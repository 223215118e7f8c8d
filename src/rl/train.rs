//! A PPO run: collect, estimate advantages, update, log, checkpoint, until the run's frames are
//! reached. The run directory is `rims train`'s (crash-safe sets, one writer, `latest`), with
//! `rl.json` as the state file: the config, the progress, and what the environments need to
//! continue exactly (each one's episode index and the actions of its unfinished episode, which
//! replay to the same grid; the returns so far; the recurrent state, as f32 bits). A resumed
//! run repeats the uninterrupted one bit for bit: every update draws from generators keyed by
//! (seed, update).

use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::device::Context;
use crate::error::{Error, Result};
use crate::io::{Link, read_regular_string};
use crate::ops::optim::Adam;
use crate::ops::ppo_loss::stat;
use crate::rl::agent::{Agent, HostState};
use crate::rl::batch::EnvBatch;
use crate::rl::config::RlConfig;
use crate::rl::ppo::rollout::{Running, collect, gae};
use crate::rl::ppo::update::update;
use crate::rng::Rng;
use crate::train::checkpoint::{
    self, METRICS_FILE, MODEL_FILE, OPTIMIZER_FILE, encode_optimizer, install, lock_run, open_run,
    read_optimizer, restore_optimizer,
};

pub use crate::train::checkpoint::RL_STATE_FILE;

/// Where a run stands.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RlProgress {
    /// Updates done.
    pub update: u64,
    /// Frames collected.
    pub frames: u64,
    /// Episodes finished.
    pub episodes: u64,
    /// Wall time so far, in seconds.
    pub seconds: f64,
}

/// What the environments and the agent's recurrent state were at a checkpoint.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EnvsState {
    /// Each environment's episode index.
    pub episodes: Vec<u64>,
    /// The actions of each environment's unfinished episode.
    pub histories: Vec<Vec<u8>>,
    /// Returns so far of the unfinished episodes.
    pub returns: Vec<f32>,
    /// Their lengths so far.
    pub lengths: Vec<u32>,
    /// The recurrent state h, [envs, S], as f32 bits (exact through JSON).
    pub h_bits: Vec<u32>,
    /// c for an LSTM core.
    pub c_bits: Option<Vec<u32>>,
}

/// The contents of `rl.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RlState {
    /// The run's settings.
    pub config: RlConfig,
    /// How far it had got.
    pub progress: RlProgress,
    /// The environments and the recurrent state.
    pub envs: EnvsState,
    /// The engine version that wrote it.
    pub version: String,
}

/// One line of `metrics.jsonl`: an update.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateRecord {
    /// Updates done (1 after the first).
    pub update: u64,
    /// Frames collected so far.
    pub frames: u64,
    /// Frames per second of this update (collection and update together).
    pub fps: f64,
    /// Episodes that ended during its rollout.
    pub episodes: usize,
    /// Their mean return (0 when none ended).
    pub mean_return: f64,
    /// The fraction that reached the goal.
    pub success_rate: f64,
    /// Their mean length in frames.
    pub mean_length: f64,
    /// Mean PPO statistics over the update's minibatches.
    pub policy_loss: f32,
    /// Mean value loss.
    pub value_loss: f32,
    /// Mean policy entropy.
    pub entropy: f32,
    /// Mean approximate KL between the old and new policies.
    pub approx_kl: f32,
    /// Fraction of frames whose ratio was clipped.
    pub clipped: f32,
    /// Mean gradient norm before clipping.
    pub grad_norm: f32,
}

/// What a run tells its caller as it goes.
pub trait RlReporter {
    /// Before the first update: the updates this call will run, and the run's total.
    fn started(&mut self, _from: u64, _total: u64) {}
    /// After every update.
    fn update(&mut self, record: &UpdateRecord);
    /// Asked after every update (after a checkpoint, if one was due): an error stops the run
    /// there, the last checkpoint kept.
    fn keep_going(&mut self) -> Result<()> {
        Ok(())
    }
}

/// A reporter that says nothing.
pub struct QuietRl;

impl RlReporter for QuietRl {
    fn update(&mut self, _: &UpdateRecord) {}
}

/// What a finished (or stopped) run reached.
#[derive(Clone, Debug, PartialEq)]
pub struct RlSummary {
    /// Where it stands.
    pub progress: RlProgress,
    /// Its last record.
    pub last: Option<UpdateRecord>,
}

/// The generator of update `update`'s sampling (`salt` 0) or shuffling (`salt` 1).
fn update_rng(seed: u64, update: u64, salt: u64) -> Rng {
    let key = Rng::new(seed ^ 0x005E_ED0F_99C0).next_u64();
    Rng::new(Rng::new(key ^ update.wrapping_mul(0x9E37_79B9_7F4A_7C15)).next_u64() ^ salt)
}

/// Reads `rl.json` of the current checkpoint of `dir`.
pub fn read_rl_state(dir: &Path) -> Result<RlState> {
    let set = checkpoint::current(dir)?;
    let path = set.join(RL_STATE_FILE);
    if !path.exists() && set.join(checkpoint::STATE_FILE).exists() {
        return Err(Error::file(
            &path,
            "this is a `rims train` run, not a reinforcement-learning one (use `rims eval`)",
        ));
    }
    let text = read_regular_string(&path, Link::Refuse)?;
    let state: RlState = serde_json::from_str(&text)
        .map_err(|e| Error::file(&path, format!("not a valid RL checkpoint state: {e}")))?;
    state.config.validate()?;
    Ok(state)
}

/// The agent of the current checkpoint of `dir`, and the run's state.
pub fn load_agent(ctx: &Context, dir: &Path) -> Result<(Agent, RlState)> {
    let state = read_rl_state(dir)?;
    let agent = Agent::new(ctx, state.config.agent()?, 0)?;
    load_params(ctx, dir, &agent, state.progress.update)?;
    Ok((agent, state))
}

fn load_params(ctx: &Context, dir: &Path, agent: &Agent, update: u64) -> Result<()> {
    let path = checkpoint::current(dir)?.join(MODEL_FILE);
    let meta = agent.store.load(ctx, &path)?;
    if meta.get("step") != Some(&update.to_string()) {
        return Err(Error::file(
            &path,
            format!(
                "belongs to step {:?}, {RL_STATE_FILE} to update {update}",
                meta.get("step")
            ),
        ));
    }
    Ok(())
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn floats(v: &[u32]) -> Vec<f32> {
    v.iter().map(|&b| f32::from_bits(b)).collect()
}

/// Everything a run carries from update to update.
struct Live {
    agent: Agent,
    adam: Adam,
    batch: EnvBatch,
    state: HostState,
    running: Running,
    progress: RlProgress,
    metrics: String,
}

impl Live {
    fn fresh(ctx: &Context, cfg: &RlConfig) -> Result<Self> {
        let agent = Agent::new(ctx, cfg.agent()?, cfg.seed)?;
        let adam = Adam::new(ctx, agent.store.trainable_len(), cfg.adam())?;
        let batch = EnvBatch::new(cfg.world()?, cfg.envs, cfg.seed)?;
        let state = HostState::zeros(&agent.cfg, cfg.envs);
        Ok(Live {
            agent,
            adam,
            batch,
            state,
            running: Running::default(),
            progress: RlProgress::default(),
            metrics: String::new(),
        })
    }

    fn resumed(ctx: &Context, dir: &Path, st: &RlState, metrics: String) -> Result<Self> {
        let cfg = &st.config;
        let mut live = Live::fresh(ctx, cfg)?;
        let set = checkpoint::current(dir)?;
        let moments = read_optimizer(
            &set.join(OPTIMIZER_FILE),
            st.progress.update,
            RL_STATE_FILE,
            st.progress.update * cfg.minibatches_per_update(),
        )?;
        load_params(ctx, dir, &live.agent, st.progress.update)?;
        restore_optimizer(ctx, &set.join(OPTIMIZER_FILE), &mut live.adam, moments)?;
        let e = &st.envs;
        let bad = |what: &str| Error::file(set.join(RL_STATE_FILE), what.to_string());
        let width = cfg.envs * live.agent.cfg.state_width();
        if e.returns.len() != cfg.envs || e.lengths.len() != cfg.envs || e.h_bits.len() != width {
            return Err(bad("the environments' state does not match the config"));
        }
        if e.c_bits.as_ref().map(Vec::len) != live.state.c.as_ref().map(Vec::len) {
            return Err(bad("the cell state does not match the config"));
        }
        live.batch = EnvBatch::resume(cfg.world()?, cfg.seed, &e.episodes, &e.histories)?;
        live.state = HostState {
            h: floats(&e.h_bits),
            c: e.c_bits.as_deref().map(floats),
        };
        live.running = Running {
            ret: e.returns.clone(),
            length: e.lengths.clone(),
        };
        live.progress = st.progress.clone();
        live.metrics = metrics;
        Ok(live)
    }

    fn save(&self, ctx: &Context, dir: &Path, cfg: &RlConfig) -> Result<()> {
        let step = self.progress.update;
        let meta = [("step".to_string(), step.to_string())].into();
        let model = self
            .agent
            .store
            .encode(ctx, &meta)
            .map_err(|e| Error::file(dir.join(MODEL_FILE), e.to_string()))?;
        let optimizer = encode_optimizer(ctx, &self.adam, step, dir)?;
        let state = RlState {
            config: cfg.clone(),
            progress: self.progress.clone(),
            envs: EnvsState {
                episodes: self.batch.episodes().to_vec(),
                histories: self.batch.histories().to_vec(),
                returns: self.running.ret.clone(),
                lengths: self.running.length.clone(),
                h_bits: bits(&self.state.h),
                c_bits: self.state.c.as_deref().map(bits),
            },
            version: env!("CARGO_PKG_VERSION").into(),
        };
        let json = serde_json::to_vec_pretty(&state)
            .map_err(|e| Error::file(dir, format!("cannot encode the state: {e}")))?;
        let files = [
            (MODEL_FILE, model.as_slice()),
            (OPTIMIZER_FILE, optimizer.as_slice()),
            (RL_STATE_FILE, json.as_slice()),
        ];
        install(dir, step as usize, &files, Some(&self.metrics))
    }

    /// One update: collect, GAE, PPO; the record of it.
    fn update(&mut self, ctx: &Context, cfg: &RlConfig) -> Result<UpdateRecord> {
        let started = Instant::now();
        let u = self.progress.update;
        let rollout = collect(
            ctx,
            &self.agent,
            &mut self.batch,
            &mut self.state,
            &mut self.running,
            cfg.steps,
            &mut update_rng(cfg.seed, u, 0),
        )?;
        let (adv, ret) = gae(
            &rollout.rewards,
            &rollout.values,
            &rollout.dones,
            &rollout.last_values,
            cfg.gamma,
            cfg.lambda,
        );
        let stats = update(
            ctx,
            &self.agent,
            &mut self.adam,
            &rollout,
            &adv,
            &ret,
            &cfg.update_shape(),
            &mut update_rng(cfg.seed, u, 1),
        )?;
        let seconds = started.elapsed().as_secs_f64();
        self.progress.update += 1;
        self.progress.frames += cfg.frames_per_update();
        self.progress.episodes += rollout.episodes.len() as u64;
        self.progress.seconds += seconds;
        let eps = &rollout.episodes;
        let mean = |f: &dyn Fn(&super::ppo::rollout::Episode) -> f64| {
            if eps.is_empty() {
                0.0
            } else {
                eps.iter().map(f).sum::<f64>() / eps.len() as f64
            }
        };
        let record = UpdateRecord {
            update: self.progress.update,
            frames: self.progress.frames,
            fps: cfg.frames_per_update() as f64 / seconds.max(1e-9),
            episodes: eps.len(),
            mean_return: mean(&|e| e.ret as f64),
            success_rate: mean(&|e| if e.success { 1.0 } else { 0.0 }),
            mean_length: mean(&|e| e.length as f64),
            policy_loss: stats.loss[stat::POLICY],
            value_loss: stats.loss[stat::VALUE],
            entropy: stats.loss[stat::ENTROPY],
            approx_kl: stats.loss[stat::APPROX_KL],
            clipped: stats.loss[stat::CLIPPED],
            grad_norm: stats.grad_norm,
        };
        let line = serde_json::to_string(&record)
            .map_err(|e| Error::invalid("rl::train", format!("cannot encode a record: {e}")))?;
        self.metrics.push_str(&line);
        self.metrics.push('\n');
        Ok(record)
    }
}

/// Trains `cfg` into the run directory `out`, or, with `resume`, continues the run there (its
/// own config, with `frames` raised to `more_frames` when given).
pub fn train(
    ctx: &Context,
    cfg: &RlConfig,
    out: &Path,
    resume: bool,
    reporter: &mut dyn RlReporter,
) -> Result<RlSummary> {
    let _lock = lock_run(out)?;
    let metrics = open_run(out, resume)?;
    let (cfg, mut live) = if resume {
        let st = read_rl_state(out)?;
        let mut run_cfg = st.config.clone();
        run_cfg.frames = run_cfg.frames.max(cfg.frames);
        let live = Live::resumed(ctx, out, &st, metrics)?;
        (run_cfg, live)
    } else {
        cfg.validate()?;
        (cfg.clone(), Live::fresh(ctx, cfg)?)
    };
    let total = cfg.updates();
    reporter.started(live.progress.update, total);
    let mut last = None;
    while live.progress.update < total {
        let record = live.update(ctx, &cfg)?;
        reporter.update(&record);
        last = Some(record);
        let u = live.progress.update;
        if u.is_multiple_of(cfg.checkpoint_every) || u == total {
            live.save(ctx, out, &cfg)?;
        }
        reporter.keep_going()?;
    }
    if last.is_none() && !out.join(checkpoint::LATEST_FILE).exists() {
        live.save(ctx, out, &cfg)?;
    }
    Ok(RlSummary {
        progress: live.progress,
        last,
    })
}

/// The records of a run's `metrics.jsonl` text.
pub fn parse_updates(text: &str, path: &Path) -> Result<Vec<UpdateRecord>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| {
                Error::file(path, format!("line {} is not an update record: {e}", i + 1))
            })
        })
        .collect()
}

/// The records of the run in `dir`.
pub fn read_updates(dir: &Path) -> Result<Vec<UpdateRecord>> {
    let path = dir.join(METRICS_FILE);
    parse_updates(&read_regular_string(&path, Link::Refuse)?, &path)
}
