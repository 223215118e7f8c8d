//! Each CPU twin (`rims::kernels::*`, which the CPU device runs) against its WGSL entry point
//! (which the GPU runs), through the op wrapper on both devices, and the twins' independence of
//! the thread count: one file per kernel family. They were the kernel files' unit tests; here
//! they use only the public API, so the kernels layer imports nothing above it.

mod cell;
mod communication;
mod conv2d;
mod image;
mod input_attention;
mod merge;
mod ppo_loss;
mod recurrent;
mod support;
