//! Sequential MNIST (docs/spec.md §2.1): binarise, resize, present one pixel per step.
//!
//! - **Binarise:** `round(p / 255)`, i.e. pixel `p ≥ 128 → 1`, else `0` ([`binarise`]).
//! - **Resize:** nearest neighbour from the original `rows × cols` (28 × 28) to `S × S`; output
//!   index `j` reads source index `⌊j · 28 / S⌋`, on both axes ([`resize_indices`]). This is what
//!   `F.upsample(mode='nearest')` does for S = 14, 16, 19, 24. Every resolution is resized from
//!   the 28 × 28 original. Binarising and nearest resizing commute, so the order does not matter.
//! - **Presentation:** one pixel per step in raster (row-major) order, as `u32` tokens `0` or `1`:
//!   sequence length `T = S²` (196 / 256 / 361 / 576).
//!
//! [`SmnistBatches`] turns a [`MnistSplit`] into batches `[T, B]` (time-major) with `drop_last`:
//! an epoch has `⌊n / B⌋` batches. With a shuffle seed, epoch `e` visits the examples in a
//! permutation that depends only on `(seed, e)` (so a run resumed at epoch `e` sees the same
//! order); without one, it visits them in split order (for evaluation).

use crate::data::idx::{MnistSplit, permutation};
use crate::error::{Error, Result};
use crate::rng::Rng;

/// Token for a pixel: `round(p / 255)`, i.e. `1` when `p ≥ 128`, else `0`.
pub fn binarise(p: u8) -> u8 {
    u8::from(p >= 128)
}

/// Nearest-neighbour source indices for resizing an axis of length `src` to length `s`: output
/// index `j` reads `⌊j · src / s⌋`.
pub fn resize_indices(src: usize, s: usize) -> Vec<usize> {
    (0..s).map(|j| j * src / s).collect()
}

/// Offsets into a row-major `rows × cols` image of the `s × s` nearest-neighbour resize, in raster
/// order: element `y · s + x` is `⌊y · rows / s⌋ · cols + ⌊x · cols / s⌋`.
pub fn resize_offsets(rows: usize, cols: usize, s: usize) -> Vec<usize> {
    let ry = resize_indices(rows, s);
    let rx = resize_indices(cols, s);
    ry.iter()
        .flat_map(|&y| rx.iter().map(move |&x| y * cols + x))
        .collect()
}

/// Nearest-neighbour resize of a row-major `rows × cols` image to `s × s` (no binarising).
/// Panics when `image.len() != rows * cols`.
pub fn resize_nearest(image: &[u8], rows: usize, cols: usize, s: usize) -> Vec<u8> {
    assert_eq!(image.len(), rows * cols, "image is not rows x cols");
    resize_offsets(rows, cols, s)
        .into_iter()
        .map(|o| image[o])
        .collect()
}

/// The sequential-MNIST token sequence of one image: binarised, resized to `s × s`, raster order.
/// Panics when `image.len() != rows * cols`.
pub fn pixel_sequence(image: &[u8], rows: usize, cols: usize, s: usize) -> Vec<u32> {
    resize_nearest(image, rows, cols, s)
        .into_iter()
        .map(|p| u32::from(binarise(p)))
        .collect()
}

/// A batch of sequential-MNIST sequences.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// `[t_len, batch]`, time-major: the token of example `b` at step `t` is `tokens[t * batch + b]`.
    pub tokens: Vec<u32>,
    /// `[batch]`, class `0..=9`.
    pub labels: Vec<u32>,
    /// Sequence length `S²`.
    pub t_len: usize,
    /// Batch size.
    pub batch: usize,
}

/// Batches of one split at one resolution (see the module docs).
#[derive(Clone, Debug)]
pub struct SmnistBatches {
    s: usize,
    batch: usize,
    t_len: usize,
    /// `[n, t_len]` tokens 0/1, precomputed.
    sequences: Vec<u8>,
    labels: Vec<u8>,
    shuffle_seed: Option<u64>,
}

impl SmnistBatches {
    /// Prepares `split` at resolution `s` (`S × S`, resized from the split's image size) for
    /// batches of `batch` examples. `shuffle_seed`: `Some(seed)` shuffles every epoch (training),
    /// `None` keeps split order (evaluation).
    ///
    /// Errors ([`Error::Config`]): `s == 0`, `batch == 0`, or a split with fewer than `batch`
    /// examples (with `drop_last` an epoch would be empty); a split whose labels and images
    /// disagree in count.
    pub fn new(
        split: &MnistSplit,
        s: usize,
        batch: usize,
        shuffle_seed: Option<u64>,
    ) -> Result<Self> {
        if s == 0 {
            return Err(Error::config(
                "resolution",
                "must be at least 1 (S x S pixels)",
            ));
        }
        if batch == 0 {
            return Err(Error::config("batch_size", "must be at least 1"));
        }
        let images = &split.images;
        if images.n != split.labels.len() || images.pixels.len() != images.n * images.image_len() {
            return Err(Error::config(
                "split",
                format!(
                    "{} images ({} pixel bytes for {} x {}) but {} labels",
                    images.n,
                    images.pixels.len(),
                    images.rows,
                    images.cols,
                    split.labels.len()
                ),
            ));
        }
        if split.labels.len() < batch {
            return Err(Error::config(
                "batch_size",
                format!(
                    "{batch} is larger than the split ({} examples); with drop_last no batch would be produced",
                    split.labels.len()
                ),
            ));
        }
        if images.rows == 0 || images.cols == 0 {
            return Err(Error::config(
                "split",
                format!("images are {} x {}", images.rows, images.cols),
            ));
        }
        let offsets = resize_offsets(images.rows, images.cols, s);
        let t_len = offsets.len();
        let mut sequences = Vec::with_capacity(images.n * t_len);
        for i in 0..images.n {
            let image = images.image(i);
            sequences.extend(offsets.iter().map(|&o| binarise(image[o])));
        }
        Ok(SmnistBatches {
            s,
            batch,
            t_len,
            sequences,
            labels: split.labels.clone(),
            shuffle_seed,
        })
    }

    /// Resolution `S`.
    pub fn resolution(&self) -> usize {
        self.s
    }

    /// Sequence length `S²`.
    pub fn t_len(&self) -> usize {
        self.t_len
    }

    /// Batch size `B`.
    pub fn batch_size(&self) -> usize {
        self.batch
    }

    /// Number of examples in the split.
    pub fn num_examples(&self) -> usize {
        self.labels.len()
    }

    /// Batches per epoch, `⌊n / B⌋` (drop_last).
    pub fn batches_per_epoch(&self) -> usize {
        self.labels.len() / self.batch
    }

    /// The token sequence of example `i` (tokens 0/1 as bytes, raster order). Panics on `i ≥ n`.
    pub fn sequence(&self, i: usize) -> &[u8] {
        &self.sequences[i * self.t_len..(i + 1) * self.t_len]
    }

    /// The order in which epoch `epoch` visits the examples: a permutation depending only on
    /// `(seed, epoch)` when shuffling, `0..n` otherwise. The last `n mod B` are dropped.
    pub fn epoch_order(&self, epoch: u64) -> Vec<usize> {
        match self.shuffle_seed {
            Some(seed) => {
                let mut rng =
                    Rng::new(seed.wrapping_add(epoch.wrapping_mul(0xD1B5_4A32_D192_ED03)));
                permutation(&mut rng, self.labels.len())
            }
            None => (0..self.labels.len()).collect(),
        }
    }

    /// A batch of the given examples (any number of them), in that order. Panics on an index
    /// `≥ n`.
    pub fn batch_of(&self, examples: &[usize]) -> Batch {
        let b = examples.len();
        let mut tokens = vec![0u32; self.t_len * b];
        for (col, &i) in examples.iter().enumerate() {
            for (t, &tok) in self.sequence(i).iter().enumerate() {
                tokens[t * b + col] = u32::from(tok);
            }
        }
        Batch {
            tokens,
            labels: examples
                .iter()
                .map(|&i| u32::from(self.labels[i]))
                .collect(),
            t_len: self.t_len,
            batch: b,
        }
    }

    /// The batches of epoch `epoch` (`epoch` counts from 0).
    pub fn epoch(&self, epoch: u64) -> EpochBatches<'_> {
        EpochBatches {
            owner: self,
            order: self.epoch_order(epoch),
            next: 0,
        }
    }
}

/// Iterator over the batches of one epoch; see [`SmnistBatches::epoch`].
#[derive(Clone, Debug)]
pub struct EpochBatches<'a> {
    owner: &'a SmnistBatches,
    order: Vec<usize>,
    next: usize,
}

impl Iterator for EpochBatches<'_> {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        if self.next >= self.owner.batches_per_epoch() {
            return None;
        }
        let b = self.owner.batch;
        let start = self.next * b;
        self.next += 1;
        Some(self.owner.batch_of(&self.order[start..start + b]))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.owner.batches_per_epoch() - self.next;
        (left, Some(left))
    }
}

impl ExactSizeIterator for EpochBatches<'_> {}
