//! The data layer (src/data), CPU only: IDX files built byte by byte, MNIST layouts and splits,
//! the sequential-MNIST transform and batcher, the copying task and the adding problem, all
//! against hand-computed values.
//!
//! One module per part of the data layer; `support` holds the IDX builders and the temp dir.

mod support;

mod balls;
mod idx;
mod mnist;
mod smnist;
mod tasks;
