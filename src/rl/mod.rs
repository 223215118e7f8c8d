//! Reinforcement learning: MiniGrid's grid worlds (Chevalier-Boisvert et al.,
//! `Farama-Foundation/Minigrid`) written in Rust, deterministic per seed and stepped in
//! batches, and recurrent PPO training a RIMs or LSTM agent on them (docs/spec.md §7). The
//! environments run on the host; the agent on either device. Nothing else in the library uses
//! this layer; the CLI does.
//!
//! - [`grid`]: the objects with MiniGrid's ids, what each lets the agent do, the [`Grid`].
//! - [`env`](mod@env): one environment, the seven [`Action`]s and their rules, reward and step limit.
//! - [`view`]: the 7×7 egocentric, occluded [`Observation`] in MiniGrid's encoding.
//! - [`world`]: the [`World`]s by name (`empty-8x8`, `doorkey-8x8`, `memory-s7`) and each
//!   episode's layout.
//! - [`batch`]: [`EnvBatch`], environments that step together and reset themselves.
//! - [`agent`]: the actor-critic (observation encoder, recurrent core, policy and value heads).
//! - [`ppo`]: collecting rollouts, GAE, the PPO update.
//! - [`config`]: a run's settings; [`train`](mod@train): the run with its checkpoints;
//!   [`eval`]: success rates on a world, and one episode traced for pictures.

pub mod agent;
pub mod batch;
pub mod config;
pub mod env;
pub mod eval;
pub mod grid;
pub mod ppo;
pub mod train;
pub mod view;
pub mod world;

pub use agent::{Agent, AgentConfig, Core};
pub use batch::{EnvBatch, Observations, Transition, episode_rng};
pub use config::RlConfig;
pub use env::{Action, Env, Exits, Outcome, Rules};
pub use eval::{EvalSummary, Policy, evaluate};
pub use grid::{Cell, Color, DoorState, Grid, Object};
pub use train::{RlReporter, UpdateRecord, train};
pub use view::{IMAGE_LEN, Observation, VIEW};
pub use world::World;
