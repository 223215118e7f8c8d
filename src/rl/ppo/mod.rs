//! Recurrent PPO (Schulman et al. 2017) on the tape, as torch_ac runs it: `rollout` collects
//! frames from a batch of environments under the current policy and estimates advantages with
//! GAE(λ); `update` trains on them in shuffled minibatches of sequences with truncated BPTT,
//! the loss being the `ppo_loss` op family (clipped surrogate, clipped value loss, entropy
//! bonus) and the step Adam with global-norm clipping.

pub mod rollout;
pub mod update;

pub use rollout::{Episode, Rollout, Running, collect, gae, log_softmax, sample};
pub use update::{Sequence, UpdateShape, UpdateStats, check_shape, replay, sequences, update};
