//! Data for the experiments (docs/spec.md §2), CPU only.
//!
//! - [`idx`]: IDX (MNIST format) reader, gzip or plain, with every bad input an
//!   [`Error::File`](crate::Error::File); [`load_mnist`] finds the full MNIST files or the bundled
//!   10k subset ([`bundled_mnist_dir`]) and splits them into train / val / test (full files:
//!   48,000 / 12,000 / 10,000; bundled subset: 6,400 / 1,600 / 2,000, see [`idx`] for why).
//! - [`smnist`]: sequential MNIST: binarise, nearest resize 28×28 → S×S, one pixel per step,
//!   batched `[T, B]` with seeded per-epoch shuffling ([`SmnistBatches`]).
//! - [`copying`]: the copying task (S symbols, a gap of `T`, a marker, recall).
//! - [`adding`]: the adding problem (sum the two marked values of a length-`T` sequence).
//! - [`balls`]: bouncing balls: elastic discs in the unit box rendered to `S×S` frames, a ball
//!   count or range per sequence, an optional occluding curtain; seeded per sequence, with
//!   disjoint train / val / test streams ([`BallsStream`]) and a file's worth ([`balls::generate`]).
//!
//! All batches are time-major: step `t` of example `b` is element `t * batch + b`.

pub mod adding;
pub mod balls;
pub mod copying;
pub mod idx;
pub mod smnist;

pub use adding::{Batch as AddingBatch, adding_batch};
pub use balls::{BallsConfig, BallsStream, Batch as BallsBatch, Split as BallsSplit};
pub use copying::{Batch as CopyingBatch, Copying};
pub use idx::{
    Images, Mnist, MnistSource, MnistSplit, bundled_mnist_dir, load_mnist, load_mnist_with_seed,
    read_images, read_labels, read_pair,
};
pub use smnist::{
    Batch as SmnistBatch, EpochBatches, SmnistBatches, binarise, pixel_sequence, resize_indices,
};
