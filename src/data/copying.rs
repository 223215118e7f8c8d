//! The copying task (docs/spec.md §2.2; the authors' `copying_data.py`).
//!
//! For `S` symbols to copy and a gap `T ≥ 1`, one example is a sequence of length `T + 2S`:
//!
//! | positions | input | target |
//! |---|---|---|
//! | `0..S` | S symbols, uniform in `1..=8` | 0 |
//! | `S..S+T−1` | 0 (`T − 1` zeros) | 0 |
//! | `S+T−1` | the marker 9 | 0 |
//! | `S+T..T+2S` | 0 (S zeros) | the S symbols, in order |
//!
//! So the model must output the symbols during the S steps right after the marker
//! ([`Copying::copied_positions`]). The authors' task, and the paper's, copies
//! [`PAPER_SYMBOLS`] = 10 symbols; fewer make a task short enough to learn in minutes on a
//! software device (the main job). Chance accuracy is 1/8 whatever S is. Tokens use `0..=9`
//! (the spec's model uses vocabulary V = 20 anyway). Random draws: for each example in batch
//! order, its S symbols in order, each `1 + rng.below(8)`.

use std::ops::Range;

use crate::error::{Error, Result};
use crate::rng::Rng;

/// Number of symbols the authors' task copies.
pub const PAPER_SYMBOLS: usize = 10;
/// Smallest symbol.
pub const SYMBOL_MIN: u32 = 1;
/// Largest symbol.
pub const SYMBOL_MAX: u32 = 8;
/// The "now copy" marker.
pub const MARKER: u32 = 9;

/// One copying task: how many symbols to copy and the gap between them and their recall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Copying {
    /// S: symbols to copy (10 in the paper).
    pub symbols: usize,
    /// T: the gap (T − 1 zeros, then the marker).
    pub gap: usize,
}

impl Copying {
    /// The task with `symbols` symbols and gap `gap`.
    ///
    /// Errors ([`Error::Config`]): `gap == 0` (the layout needs `T − 1 ≥ 0` zeros) or
    /// `symbols == 0`.
    pub fn new(symbols: usize, gap: usize) -> Result<Self> {
        if gap == 0 {
            return Err(Error::config("t", "the copying gap T must be at least 1"));
        }
        if symbols == 0 {
            return Err(Error::config(
                "symbols",
                "the copying task needs at least 1 symbol to copy",
            ));
        }
        Ok(Copying { symbols, gap })
    }

    /// The paper's task: 10 symbols, gap `gap`.
    pub fn paper(gap: usize) -> Result<Self> {
        Copying::new(PAPER_SYMBOLS, gap)
    }

    /// Sequence length: `T + 2S`.
    pub fn sequence_len(&self) -> usize {
        self.gap + 2 * self.symbols
    }

    /// Position of the marker: `S + T − 1`.
    pub fn marker_position(&self) -> usize {
        self.symbols + self.gap - 1
    }

    /// Positions whose target is a copied symbol (the last S): `S + T .. T + 2S`. Every other
    /// position's target is 0.
    pub fn copied_positions(&self) -> Range<usize> {
        self.gap + self.symbols..self.gap + 2 * self.symbols
    }

    /// Draws a batch of `batch` sequences (see the module docs).
    ///
    /// Errors ([`Error::Config`]): `batch == 0`.
    pub fn batch(&self, rng: &mut Rng, batch: usize) -> Result<Batch> {
        if batch == 0 {
            return Err(Error::config("batch_size", "must be at least 1"));
        }
        let t_len = self.sequence_len();
        let mut inputs = vec![0u32; t_len * batch];
        let mut targets = vec![0u32; t_len * batch];
        let marker = self.marker_position();
        let copied = self.copied_positions();
        for b in 0..batch {
            for i in 0..self.symbols {
                let symbol = SYMBOL_MIN + rng.below(u64::from(SYMBOL_MAX - SYMBOL_MIN + 1)) as u32;
                inputs[i * batch + b] = symbol;
                targets[(copied.start + i) * batch + b] = symbol;
            }
            inputs[marker * batch + b] = MARKER;
        }
        Ok(Batch {
            inputs,
            targets,
            task: *self,
            t_len,
            batch,
        })
    }
}

/// A batch of copying sequences.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// `[t_len, batch]`, time-major: example `b` at step `s` is `inputs[s * batch + b]`.
    pub inputs: Vec<u32>,
    /// `[t_len, batch]`, time-major, same layout.
    pub targets: Vec<u32>,
    /// The task the batch was drawn from.
    pub task: Copying,
    /// Sequence length `T + 2S`.
    pub t_len: usize,
    /// Batch size.
    pub batch: usize,
}
