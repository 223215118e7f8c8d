//! Evaluating a trained agent: `episodes` environments each play their first episode at once
//! (so short episodes are not over-counted, as they would be by counting whichever episodes end
//! first), from layouts drawn with an evaluation seed no training run uses; and one episode
//! traced frame by frame for `rims viz`.

use serde::{Deserialize, Serialize};

use crate::device::Context;
use crate::error::{Error, Result};
use crate::rl::agent::{Agent, HostState};
use crate::rl::batch::{EnvBatch, MAX_ENVS};
use crate::rl::env::{Action, Env};
use crate::rl::ppo::rollout::sample;
use crate::rl::world::World;
use crate::rng::Rng;

/// The layouts' seed of every evaluation (training seeds are small integers).
pub const EVAL_SEED: u64 = 0xE7A1_5EED_0000_0001;

/// How an evaluation picks actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Policy {
    /// Sampled from the policy (torch_ac's evaluation default).
    Sample,
    /// The most likely action.
    Greedy,
}

/// What an evaluation measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalSummary {
    /// The world.
    pub env: String,
    /// Episodes played.
    pub episodes: usize,
    /// Mean return.
    pub mean_return: f64,
    /// Fraction of episodes that reached the goal.
    pub success_rate: f64,
    /// Mean length in frames.
    pub mean_length: f64,
}

/// Plays the first episode of `episodes` environments of `world` (1 to 65,536).
pub fn evaluate(
    ctx: &Context,
    agent: &Agent,
    world: World,
    episodes: usize,
    policy: Policy,
) -> Result<EvalSummary> {
    if episodes == 0 || episodes > MAX_ENVS {
        return Err(Error::config(
            "episodes",
            format!("{episodes} is outside 1..={MAX_ENVS}"),
        ));
    }
    let mut batch = EnvBatch::new(world, episodes, EVAL_SEED)?;
    let mut state = HostState::zeros(&agent.cfg, episodes);
    let mut rng = Rng::new(EVAL_SEED);
    let mut result: Vec<Option<(f32, u32)>> = vec![None; episodes];
    let mut returns = vec![0.0f32; episodes];
    let mut images = batch.observe().images;
    // Every episode ends by the step limit; the bound only guards against a broken world.
    for frame in 1..=world.max_steps() as u64 + 1 {
        let act = agent.act(ctx, &images, &state)?;
        let actions: Vec<u32> = act
            .logits
            .chunks(Action::COUNT)
            .map(|row| sample(row, &mut rng, policy == Policy::Greedy).0)
            .collect();
        let tr = batch.step(&actions)?;
        state = act.state;
        for i in 0..episodes {
            if result[i].is_some() {
                continue;
            }
            returns[i] += tr.rewards[i];
            if tr.dones[i] {
                result[i] = Some((returns[i], frame as u32));
            }
        }
        if result.iter().all(Option::is_some) {
            break;
        }
        images = tr.observations.images;
    }
    let done: Vec<(f32, u32)> = result.into_iter().flatten().collect();
    if done.len() != episodes {
        return Err(Error::invalid(
            "rl::evaluate",
            format!(
                "{} episodes did not end within the step limit",
                episodes - done.len()
            ),
        ));
    }
    let n = episodes as f64;
    Ok(EvalSummary {
        env: world.to_string(),
        episodes,
        mean_return: done.iter().map(|d| d.0 as f64).sum::<f64>() / n,
        success_rate: done.iter().filter(|d| d.0 > 0.0).count() as f64 / n,
        mean_length: done.iter().map(|d| d.1 as f64).sum::<f64>() / n,
    })
}

/// One episode frame by frame.
#[derive(Clone, Debug)]
pub struct Trace {
    /// The environment before each frame's action, and after the last.
    pub envs: Vec<Env>,
    /// The action of each frame.
    pub actions: Vec<Action>,
    /// The reward of each frame.
    pub rewards: Vec<f32>,
    /// Which mechanisms were active at each frame ([frames][N]; one always-active unit for a
    /// dense core).
    pub masks: Vec<Vec<f32>>,
}

/// Plays episode `episode` of the evaluation layouts of `world` with `policy`.
pub fn trace(
    ctx: &Context,
    agent: &Agent,
    world: World,
    episode: u64,
    policy: Policy,
) -> Result<Trace> {
    let mut env = world.generate(&mut crate::rl::batch::episode_rng(EVAL_SEED, 0, episode))?;
    let mut state = HostState::zeros(&agent.cfg, 1);
    let mut rng = Rng::new(EVAL_SEED ^ episode);
    let mut t = Trace {
        envs: vec![env.clone()],
        actions: Vec::new(),
        rewards: Vec::new(),
        masks: Vec::new(),
    };
    let mut image = vec![0u8; crate::rl::view::IMAGE_LEN];
    loop {
        crate::rl::view::encode_view(&env, &mut image);
        let act = agent.act(ctx, &image, &state)?;
        let (a, _) = sample(&act.logits, &mut rng, policy == Policy::Greedy);
        let action = Action::from_id(a)?;
        let out = env.step(action);
        state = act.state;
        t.actions.push(action);
        t.rewards.push(out.reward);
        t.masks.push(act.masks);
        t.envs.push(env.clone());
        if out.done() {
            return Ok(t);
        }
    }
}
