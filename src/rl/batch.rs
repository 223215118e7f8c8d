//! Environments that step together. Each draws episode `k` of environment `i` from its own
//! generator ([`episode_rng`]), so a batch's episodes are the same whatever else it holds or
//! however its steps interleave, and resets itself when an episode ends.

use super::env::{Action, Env};
use super::view::{IMAGE_LEN, encode_view};
use super::world::World;
use crate::error::{Error, Result};
use crate::rng::Rng;

/// Most environments in one batch.
pub const MAX_ENVS: usize = 1 << 16;

/// The generator of episode `episode` of environment `env` under `seed`: SplitMix64's output
/// function (a bijection of u64) applied to the environment keyed by the seed, then to the
/// episode keyed by that, so neither index aliases the other.
pub fn episode_rng(seed: u64, env: u64, episode: u64) -> Rng {
    let key = Rng::new(seed).next_u64();
    let env_key = Rng::new(env ^ key).next_u64();
    Rng::new(Rng::new(episode ^ env_key).next_u64())
}

/// The observations of a whole batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observations {
    /// `n_envs × IMAGE_LEN` bytes: environment `i`'s view at `i·IMAGE_LEN`, in
    /// [`view_index`](super::view::view_index) order.
    pub images: Vec<u8>,
    /// Each environment's direction, 0..=3.
    pub directions: Vec<u8>,
}

impl Observations {
    /// Environment `i`'s encoded view; `None` past the batch.
    pub fn image(&self, i: usize) -> Option<&[u8]> {
        self.images.get(i * IMAGE_LEN..(i + 1) * IMAGE_LEN)
    }
}

/// What one step of the batch gave.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    /// The observations after the step; where an episode ended, the next episode's first.
    pub observations: Observations,
    /// Each environment's reward for the step.
    pub rewards: Vec<f32>,
    /// Whether each environment's episode ended with this step (terminated or truncated).
    pub dones: Vec<bool>,
    /// Whether it ended only because of the step limit (a bootstrap target for PPO, unlike
    /// the goal, lava or a Memory exit).
    pub truncated: Vec<bool>,
}

/// `n_envs` environments of one world.
#[derive(Clone, Debug)]
pub struct EnvBatch {
    world: World,
    seed: u64,
    envs: Vec<Env>,
    episodes: Vec<u64>,
    /// The actions each environment has taken in its current episode: with the episode's
    /// index, all it takes to rebuild it ([`EnvBatch::resume`]), so a checkpoint holds no
    /// grid.
    histories: Vec<Vec<u8>>,
}

impl EnvBatch {
    /// `n_envs` (1 to [`MAX_ENVS`]) environments of `world`, each in its episode 0.
    pub fn new(world: World, n_envs: usize, seed: u64) -> Result<Self> {
        world.validate()?;
        if n_envs == 0 || n_envs > MAX_ENVS {
            return Err(Error::config(
                "n_envs",
                format!("{n_envs} is outside 1..={MAX_ENVS}"),
            ));
        }
        let envs = (0..n_envs as u64)
            .map(|i| world.generate(&mut episode_rng(seed, i, 0)))
            .collect::<Result<Vec<_>>>()?;
        Ok(EnvBatch {
            world,
            seed,
            envs,
            episodes: vec![0; n_envs],
            histories: vec![Vec::new(); n_envs],
        })
    }

    /// The batch [`EnvBatch::new`] would reach after its environments had taken the steps
    /// that left environment `i` in episode `episodes[i]` after `histories[i]`'s actions. An
    /// action that is not an id, or a history that ends its episode, is an error.
    pub fn resume(
        world: World,
        seed: u64,
        episodes: &[u64],
        histories: &[Vec<u8>],
    ) -> Result<Self> {
        let mut batch = EnvBatch::new(world, episodes.len().max(1), seed)?;
        if episodes.len() != histories.len() || episodes.is_empty() {
            return Err(Error::shape(
                "rl::EnvBatch::resume",
                format!(
                    "{} episode indices and {} histories (one of each per environment)",
                    episodes.len(),
                    histories.len()
                ),
            ));
        }
        for (i, (&k, history)) in episodes.iter().zip(histories).enumerate() {
            let mut env = world.generate(&mut episode_rng(seed, i as u64, k))?;
            for &a in history {
                if env.step(Action::from_id(a as u32)?).done() {
                    return Err(Error::invalid(
                        "rl::EnvBatch::resume",
                        format!("environment {i}'s history ends its episode {k}"),
                    ));
                }
            }
            batch.envs[i] = env;
        }
        batch.episodes = episodes.to_vec();
        batch.histories = histories.to_vec();
        Ok(batch)
    }

    /// The actions each environment has taken in its current episode.
    pub fn histories(&self) -> &[Vec<u8>] {
        &self.histories
    }

    /// The world.
    pub fn world(&self) -> World {
        self.world
    }

    /// How many environments.
    pub fn len(&self) -> usize {
        self.envs.len()
    }

    /// Never true: a batch holds at least one environment.
    pub fn is_empty(&self) -> bool {
        self.envs.is_empty()
    }

    /// The environments' current states.
    pub fn envs(&self) -> &[Env] {
        &self.envs
    }

    /// Which episode each environment is in (0 first).
    pub fn episodes(&self) -> &[u64] {
        &self.episodes
    }

    /// The current observations (after [`EnvBatch::new`], the first episodes' first).
    pub fn observe(&self) -> Observations {
        let mut images = vec![0; self.envs.len() * IMAGE_LEN];
        for (env, image) in self.envs.iter().zip(images.chunks_exact_mut(IMAGE_LEN)) {
            encode_view(env, image);
        }
        Observations {
            images,
            directions: self.envs.iter().map(Env::agent_dir).collect(),
        }
    }

    /// One action per environment (ids 0..=6, [`Action`]). Every action is checked before any
    /// environment moves, so an error leaves the batch as it was. An environment whose
    /// episode ends starts its next episode at once.
    pub fn step(&mut self, actions: &[u32]) -> Result<Transition> {
        if actions.len() != self.envs.len() {
            return Err(Error::shape(
                "rl::EnvBatch::step",
                format!(
                    "{} actions for {} environments",
                    actions.len(),
                    self.envs.len()
                ),
            ));
        }
        let actions = actions
            .iter()
            .map(|&a| Action::from_id(a))
            .collect::<Result<Vec<_>>>()?;
        let n = self.envs.len();
        let (mut rewards, mut dones, mut truncated) =
            (vec![0.0; n], vec![false; n], vec![false; n]);
        for (i, action) in actions.into_iter().enumerate() {
            let out = self.envs[i].step(action);
            rewards[i] = out.reward;
            dones[i] = out.done();
            truncated[i] = out.truncated && !out.terminated;
            self.histories[i].push(action.id() as u8);
            if out.done() {
                self.histories[i].clear();
                self.episodes[i] += 1;
                let mut rng = episode_rng(self.seed, i as u64, self.episodes[i]);
                self.envs[i] = self.world.generate(&mut rng)?;
            }
        }
        Ok(Transition {
            observations: self.observe(),
            rewards,
            dones,
            truncated,
        })
    }
}
