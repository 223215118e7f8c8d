//! Reinforcement-learning environments: MiniGrid's grid worlds (Chevalier-Boisvert et al.,
//! `Farama-Foundation/Minigrid`) written in Rust, deterministic per seed and stepped in
//! batches (docs/spec.md §7). CPU only; it uses only the utilities so far, and nothing in the
//! library uses it.
//!
//! - [`grid`]: the objects with MiniGrid's ids, what each lets the agent do, the [`Grid`].
//! - [`env`](mod@env): one environment, the seven [`Action`]s and their rules, reward and step limit.
//! - [`view`]: the 7×7 egocentric, occluded [`Observation`] in MiniGrid's encoding.
//! - [`world`]: the [`World`]s by name (`empty-8x8`, `doorkey-8x8`, `memory-s7`) and each
//!   episode's layout.
//! - [`batch`]: [`EnvBatch`], environments that step together and reset themselves.

pub mod batch;
pub mod env;
pub mod grid;
pub mod view;
pub mod world;

pub use batch::{EnvBatch, Observations, Transition, episode_rng};
pub use env::{Action, Env, Exits, Outcome, Rules};
pub use grid::{Cell, Color, DoorState, Grid, Object};
pub use view::{IMAGE_LEN, Observation, VIEW};
pub use world::World;
