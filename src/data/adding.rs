//! The adding problem (Hochreiter & Schmidhuber 1997, in the form of Le et al. 2015 and the
//! unitary-RNN papers; RIM follow-ups use it too).
//!
//! One example of length `T ≥ 2` has two input channels per step:
//!
//! - channel 0: a value drawn uniformly from `[0, 1)`, at every step;
//! - channel 1: the marker, `1.0` at exactly two steps and `0.0` elsewhere: one step `i1` in the
//!   first half `0..⌊T/2⌋`, one step `i2` in the second half `⌊T/2⌋..T` (for odd `T` the second
//!   half is one step longer).
//!
//! The target is the sum of the two marked values, `x[i1] + x[i2]` (computed in `f32` from the
//! stored `f32` values, so it equals the sum of the inputs exactly as the model sees them), in
//! `[0, 2)`. Always predicting 1 gives a mean squared error of about 1/6, the usual baseline.
//!
//! (The authors' unused `add_data` in `copying_data.py` puts the two markers in two separate
//! channels and never marks the last step for odd `T`; this module uses the classic two-channel
//! form.)
//!
//! Random draws, per example in batch order: the `T` values in step order
//! (`rng.next_f64()` rounded to `f32`, mapped to the largest `f32` below 1 if rounding reaches
//! 1), then `i1 = rng.below(⌊T/2⌋)`, then `i2 = ⌊T/2⌋ + rng.below(T − ⌊T/2⌋)`.

use crate::error::{Error, Result};
use crate::rng::Rng;

/// Input channels per step: value, marker.
pub const CHANNELS: usize = 2;

/// A batch of adding-problem sequences.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// `[t_len, batch, 2]`, time-major: example `b` at step `s` has value
    /// `inputs[(s * batch + b) * 2]` and marker `inputs[(s * batch + b) * 2 + 1]`.
    pub inputs: Vec<f32>,
    /// `[batch]`: the sum of the two marked values.
    pub targets: Vec<f32>,
    /// `[batch]`: the two marked steps `[i1, i2]` of each example (`i1 < T/2 ≤ i2`).
    pub markers: Vec<[usize; 2]>,
    /// Sequence length `T`.
    pub t_len: usize,
    /// Batch size.
    pub batch: usize,
}

/// Draws a batch of `batch` adding-problem sequences of length `t` (see the module docs).
///
/// Errors ([`Error::Config`]): `t < 2` (each half needs a step) or `batch == 0`.
pub fn adding_batch(rng: &mut Rng, t: usize, batch: usize) -> Result<Batch> {
    if t < 2 {
        return Err(Error::config(
            "t",
            format!("the adding problem needs length T >= 2, got {t}"),
        ));
    }
    if batch == 0 {
        return Err(Error::config("batch_size", "must be at least 1"));
    }
    let half = t / 2;
    let below_one = 1.0f32 - f32::EPSILON / 2.0;
    let mut inputs = vec![0f32; t * batch * CHANNELS];
    let mut targets = Vec::with_capacity(batch);
    let mut markers = Vec::with_capacity(batch);
    for b in 0..batch {
        for s in 0..t {
            let v = (rng.next_f64() as f32).min(below_one);
            inputs[(s * batch + b) * CHANNELS] = v;
        }
        let i1 = rng.below(half as u64) as usize;
        let i2 = half + rng.below((t - half) as u64) as usize;
        inputs[(i1 * batch + b) * CHANNELS + 1] = 1.0;
        inputs[(i2 * batch + b) * CHANNELS + 1] = 1.0;
        targets.push(inputs[(i1 * batch + b) * CHANNELS] + inputs[(i2 * batch + b) * CHANNELS]);
        markers.push([i1, i2]);
    }
    Ok(Batch {
        inputs,
        targets,
        markers,
        t_len: t,
        batch,
    })
}
