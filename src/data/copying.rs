//! The copying task (rims-spec.md §2.2; the authors' `copying_data.py`).
//!
//! For a gap `T ≥ 1`, one example is a sequence of length `T + 20`:
//!
//! | positions | input | target |
//! |---|---|---|
//! | `0..10` | 10 symbols, uniform in `1..=8` | 0 |
//! | `10..T+9` | 0 (`T − 1` zeros) | 0 |
//! | `T+9` | the marker 9 | 0 |
//! | `T+10..T+20` | 0 (10 zeros) | the 10 symbols, in order |
//!
//! So the model must output the symbols during the 10 steps right after the marker
//! ([`copied_positions`]). Tokens use `0..=9` (the spec's model uses vocabulary V = 20 anyway).
//! Random draws: for each example in batch order, its 10 symbols in order, each
//! `1 + rng.below(8)`.

use std::ops::Range;

use crate::error::{Error, Result};
use crate::rng::Rng;

/// Number of symbols to copy.
pub const NUM_SYMBOLS: usize = 10;
/// Smallest symbol.
pub const SYMBOL_MIN: u32 = 1;
/// Largest symbol.
pub const SYMBOL_MAX: u32 = 8;
/// The "now copy" marker.
pub const MARKER: u32 = 9;

/// Sequence length for gap `t`: `t + 20`.
pub fn sequence_len(t: usize) -> usize {
    t + 2 * NUM_SYMBOLS
}

/// Position of the marker for gap `t`: `t + 9`.
pub fn marker_position(t: usize) -> usize {
    NUM_SYMBOLS + t - 1
}

/// Positions whose target is a copied symbol (the last 10): `t + 10 .. t + 20`. Every other
/// position's target is 0.
pub fn copied_positions(t: usize) -> Range<usize> {
    t + NUM_SYMBOLS..t + 2 * NUM_SYMBOLS
}

/// A batch of copying sequences.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// `[t_len, batch]`, time-major: example `b` at step `s` is `inputs[s * batch + b]`.
    pub inputs: Vec<u32>,
    /// `[t_len, batch]`, time-major, same layout.
    pub targets: Vec<u32>,
    /// The gap `T`.
    pub t: usize,
    /// Sequence length `T + 20`.
    pub t_len: usize,
    /// Batch size.
    pub batch: usize,
}

/// Draws a batch of `batch` copying sequences with gap `t` (see the module docs).
///
/// Errors ([`Error::Config`]): `t == 0` (the layout needs `T − 1 ≥ 0` zeros) or `batch == 0`.
pub fn copying_batch(rng: &mut Rng, t: usize, batch: usize) -> Result<Batch> {
    if t == 0 {
        return Err(Error::Config {
            field: "t",
            reason: "the copying gap T must be at least 1".into(),
        });
    }
    if batch == 0 {
        return Err(Error::Config {
            field: "batch_size",
            reason: "must be at least 1".into(),
        });
    }
    let t_len = sequence_len(t);
    let mut inputs = vec![0u32; t_len * batch];
    let mut targets = vec![0u32; t_len * batch];
    let marker = marker_position(t);
    let copied = copied_positions(t);
    for b in 0..batch {
        for i in 0..NUM_SYMBOLS {
            let symbol = SYMBOL_MIN + rng.below(u64::from(SYMBOL_MAX - SYMBOL_MIN + 1)) as u32;
            inputs[i * batch + b] = symbol;
            targets[(copied.start + i) * batch + b] = symbol;
        }
        inputs[marker * batch + b] = MARKER;
    }
    Ok(Batch {
        inputs,
        targets,
        t,
        t_len,
        batch,
    })
}
