//! The plain types in which docs/spec.md states what is computed: the cell ([`cell`]: its kind,
//! variant, sizes and their rules), the element-wise maps ([`elementwise`]), a 2-D
//! convolution's stride and padding ([`conv2d`]), a batched strided product ([`matmul`]), the
//! optimizers' hyper-parameters ([`optim`]) and PPO's loss coefficients and statistics
//! ([`ppo_loss`]).
//!
//! A utility (docs/design.md, "Layers"): the product (kernels, ops, nn, ...) and its f64
//! checker (`reference`) both use these, so neither has to import the other. Nothing here
//! runs anything.

pub mod cell;
pub mod conv2d;
pub mod elementwise;
pub mod matmul;
pub mod optim;
pub mod ppo_loss;
