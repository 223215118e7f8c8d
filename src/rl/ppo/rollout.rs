//! Collecting a rollout: every environment of the batch steps `steps` frames under the current
//! policy, and what the update needs is stored time-major ([t, env]); then GAE(λ).

use crate::device::Context;
use crate::error::{Error, Result};
use crate::rl::agent::{Agent, HostState};
use crate::rl::batch::EnvBatch;
use crate::rl::env::Action;
use crate::rl::view::IMAGE_LEN;
use crate::rng::Rng;

/// One finished episode.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Episode {
    /// Sum of its rewards.
    pub ret: f32,
    /// Frames it took.
    pub length: u32,
    /// Whether it reached the goal (a positive reward at its end).
    pub success: bool,
}

/// Each environment's episode so far (for the episodes' returns and lengths).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Running {
    /// Return so far per environment.
    pub ret: Vec<f32>,
    /// Frames so far per environment.
    pub length: Vec<u32>,
}

/// What a rollout stored, time-major: index `t·envs + e`.
#[derive(Clone, Debug)]
pub struct Rollout {
    /// Environments.
    pub envs: usize,
    /// Frames per environment.
    pub steps: usize,
    /// Observations [T, E, 147].
    pub images: Vec<u8>,
    /// The state each frame started from [T, E, S] (zeros at an episode's first frame).
    pub states: HostState,
    /// Whether frame t is an episode's first, its state reset to zeros [T, E].
    pub starts: Vec<bool>,
    /// Actions taken [T, E].
    pub actions: Vec<u32>,
    /// Their log-probabilities under the policy that took them [T, E].
    pub logp: Vec<f32>,
    /// The value estimates [T, E].
    pub values: Vec<f32>,
    /// Rewards [T, E].
    pub rewards: Vec<f32>,
    /// Whether the episode ended with frame t [T, E].
    pub dones: Vec<bool>,
    /// The value of the observation after the last frame, per environment (the bootstrap).
    pub last_values: Vec<f32>,
    /// Episodes that ended during the rollout, in order.
    pub episodes: Vec<Episode>,
}

/// log softmax of one row of logits.
pub fn log_softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits
        .iter()
        .fold(f64::NEG_INFINITY, |m, &x| m.max(x as f64));
    let sum: f64 = logits.iter().map(|&x| (x as f64 - max).exp()).sum();
    let lse = max + sum.ln();
    logits.iter().map(|&x| x as f64 - lse).collect()
}

/// An action drawn from softmax(`logits`) with `rng` (or the most likely one when `greedy`),
/// and its log-probability.
pub fn sample(logits: &[f32], rng: &mut Rng, greedy: bool) -> (u32, f32) {
    let logp = log_softmax(logits);
    let pick = if greedy {
        (0..logp.len()).fold(0, |best, i| if logp[i] > logp[best] { i } else { best })
    } else {
        let u = rng.next_f64();
        let mut acc = 0.0;
        let mut pick = logp.len() - 1;
        for (i, lp) in logp.iter().enumerate() {
            acc += lp.exp();
            if u < acc {
                pick = i;
                break;
            }
        }
        pick
    };
    (pick as u32, logp[pick] as f32)
}

/// Runs `steps` frames of every environment in `batch` from `state` (updated in place) and
/// returns what they stored. `running` carries the unfinished episodes' returns across
/// rollouts.
pub fn collect(
    ctx: &Context,
    agent: &Agent,
    batch: &mut EnvBatch,
    state: &mut HostState,
    running: &mut Running,
    steps: usize,
    rng: &mut Rng,
) -> Result<Rollout> {
    let (e, s) = (batch.len(), agent.cfg.state_width());
    if steps == 0 {
        return Err(Error::config("steps", "a rollout needs at least one frame"));
    }
    running.ret.resize(e, 0.0);
    running.length.resize(e, 0);
    let n = steps * e;
    let mut r = Rollout {
        envs: e,
        steps,
        images: Vec::with_capacity(n * IMAGE_LEN),
        states: HostState {
            h: Vec::with_capacity(n * s),
            c: state.c.as_ref().map(|_| Vec::with_capacity(n * s)),
        },
        starts: Vec::with_capacity(n),
        actions: Vec::with_capacity(n),
        logp: Vec::with_capacity(n),
        values: Vec::with_capacity(n),
        rewards: Vec::with_capacity(n),
        dones: Vec::with_capacity(n),
        last_values: Vec::new(),
        episodes: Vec::new(),
    };
    let mut images = batch.observe().images;
    for _ in 0..steps {
        r.images.extend_from_slice(&images);
        r.states.h.extend_from_slice(&state.h);
        if let (Some(all), Some(c)) = (&mut r.states.c, &state.c) {
            all.extend_from_slice(c);
        }
        r.starts.extend(running.length.iter().map(|&l| l == 0));
        let act = agent.act(ctx, &images, state)?;
        let mut actions = Vec::with_capacity(e);
        for i in 0..e {
            let (a, lp) = sample(
                &act.logits[i * Action::COUNT..(i + 1) * Action::COUNT],
                rng,
                false,
            );
            actions.push(a);
            r.logp.push(lp);
        }
        r.values.extend_from_slice(&act.values);
        let tr = batch.step(&actions)?;
        *state = act.state;
        for i in 0..e {
            running.ret[i] += tr.rewards[i];
            running.length[i] += 1;
            if tr.dones[i] {
                r.episodes.push(Episode {
                    ret: running.ret[i],
                    length: running.length[i],
                    success: tr.rewards[i] > 0.0,
                });
                running.ret[i] = 0.0;
                running.length[i] = 0;
                state.reset_row(i, s);
            }
        }
        r.actions.extend_from_slice(&actions);
        r.rewards.extend_from_slice(&tr.rewards);
        r.dones.extend_from_slice(&tr.dones);
        images = tr.observations.images;
    }
    r.last_values = agent.act(ctx, &images, state)?.values;
    Ok(r)
}

/// Generalised advantage estimation (Schulman et al. 2016) over a time-major rollout:
/// δ_t = r_t + γ·V_{t+1}·(1 − done_t) − V_t, A_t = δ_t + γλ·(1 − done_t)·A_{t+1}, with
/// V_T the bootstrap `last_values`; returns (advantages, returns = A + V). An episode cut by
/// the step limit counts as ended (no bootstrap), as torch_ac does.
pub fn gae(
    rewards: &[f32],
    values: &[f32],
    dones: &[bool],
    last_values: &[f32],
    gamma: f64,
    lambda: f64,
) -> (Vec<f32>, Vec<f32>) {
    let e = last_values.len();
    let n = rewards.len();
    let steps = n / e.max(1);
    let mut adv = vec![0.0f32; n];
    let mut next_adv = vec![0.0f64; e];
    let mut next_value: Vec<f64> = last_values.iter().map(|&v| v as f64).collect();
    for t in (0..steps).rev() {
        for i in 0..e {
            let k = t * e + i;
            let keep = if dones[k] { 0.0 } else { 1.0 };
            let delta = rewards[k] as f64 + gamma * next_value[i] * keep - values[k] as f64;
            let a = delta + gamma * lambda * keep * next_adv[i];
            adv[k] = a as f32;
            next_adv[i] = a;
            next_value[i] = values[k] as f64;
        }
    }
    let returns = adv.iter().zip(values).map(|(a, v)| a + v).collect();
    (adv, returns)
}
