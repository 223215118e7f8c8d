//! Bouncing balls (docs/spec.md §2.5): the data of the paper's bouncing-balls experiment (Goyal
//! et al. 2021, fig. 6 and appendix D.4), in the style of Relational-NEM (van Steenkiste et al.
//! 2018): trained on 4 balls, tested on 6–8 balls, and on 3 balls behind an occluding curtain.
//!
//! - [`config`]: [`BallsConfig`], its defaults and checks, [`Span`] (`"4"` or `"6-8"`).
//! - [`physics`]: the [`World`] of discs in the unit box, elastic collisions, f64.
//! - [`render`]: anti-aliased discs on an `S×S` frame, the [`Curtain`].
//!
//! One sequence: draw its ball count (uniform in the range), each ball's radius (uniform),
//! place the centres without overlap (rejection), give each ball a speed (uniform) in a
//! direction (uniform), then record frame 0 and advance one frame at a time. Frame `t` holds
//! the state after `t` frames of motion. Sequence `i` of a seed and [`Split`] has a generator of
//! its own ([`sequence_rng`]), so it is the same whether it was drawn into a file
//! ([`generate`]), into a training batch ([`BallsStream`]), alone or among others.

pub mod config;
pub mod physics;
pub mod render;

pub use config::{BallsConfig, MassRule, Span};
pub use physics::{Ball, World};
pub use render::{Curtain, render};

use crate::error::{Error, Result};
use crate::rng::Rng;

/// The three disjoint streams of sequences drawn from one seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// Training sequences.
    Train,
    /// Validation sequences.
    Val,
    /// Test sequences.
    Test,
}

impl Split {
    /// Its name in files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }

    fn tag(self) -> u64 {
        match self {
            Split::Train => 0,
            Split::Val => 1,
            Split::Test => 2,
        }
    }
}

/// The generator of sequence `index` of `split` under `seed`. Its state is a bijective mix of
/// `(split, index)` keyed by the seed (SplitMix64's output function is a bijection of u64), so
/// no two sequences of one seed, whatever their splits, start from the same state.
pub fn sequence_rng(seed: u64, split: Split, index: u64) -> Rng {
    let key = Rng::new(seed).next_u64();
    let slot = (split.tag() << 62) | (index & ((1 << 62) - 1));
    Rng::new(Rng::new(slot ^ key).next_u64())
}

/// Draws one sequence's world: count, radii, masses, centres and velocities.
pub fn initial_world(cfg: &BallsConfig, rng: &mut Rng) -> Result<World> {
    let span = (cfg.balls.hi - cfg.balls.lo + 1) as u64;
    let count = cfg.balls.lo + rng.below(span) as usize;
    let radii: Vec<f64> = (0..count)
        .map(|_| rng.uniform(cfg.radius.lo, cfg.radius.hi))
        .collect();
    let masses: Vec<f64> = radii.iter().map(|&r| cfg.mass.mass(r)).collect();
    let speed = cfg.speed;
    World::place(rng, &radii, &masses, |rng| {
        let angle = rng.uniform(0.0, std::f64::consts::TAU);
        let v = rng.uniform(speed.lo, speed.hi);
        [v * angle.cos(), v * angle.sin()]
    })
}

/// Where one sequence's outputs go: for frame `t`, the offsets (in elements) of its frame and
/// of its first ball's `[x, y]`.
trait Layout {
    fn frame(&self, t: usize) -> usize;
    fn ball(&self, t: usize) -> usize;
}

/// Sequence-major (`[sequences, T, ...]`): sequence `i`.
struct SequenceMajor {
    i: usize,
    length: usize,
    pixels: usize,
    max_balls: usize,
}

impl Layout for SequenceMajor {
    fn frame(&self, t: usize) -> usize {
        (self.i * self.length + t) * self.pixels
    }
    fn ball(&self, t: usize) -> usize {
        (self.i * self.length + t) * self.max_balls * 2
    }
}

/// Time-major (`[T, B, ...]`): example `b` of a batch of `batch`.
struct TimeMajor {
    b: usize,
    batch: usize,
    pixels: usize,
    max_balls: usize,
}

impl Layout for TimeMajor {
    fn frame(&self, t: usize) -> usize {
        (t * self.batch + self.b) * self.pixels
    }
    fn ball(&self, t: usize) -> usize {
        (t * self.batch + self.b) * self.max_balls * 2
    }
}

/// The output buffers one or more sequences are written into.
struct Buffers<'a> {
    frames: &'a mut [f32],
    positions: &'a mut [f32],
    velocities: &'a mut [f32],
}

/// Simulates one sequence from `rng` into `out` at `at`; returns its ball count.
fn roll(cfg: &BallsConfig, rng: &mut Rng, at: &impl Layout, out: &mut Buffers) -> Result<usize> {
    let mut world = initial_world(cfg, rng)?;
    let pixels = cfg.size * cfg.size;
    for t in 0..cfg.length {
        if t > 0 {
            world.advance_frame(cfg.substeps);
        }
        let f = at.frame(t);
        render(
            &world.balls,
            cfg.size,
            cfg.curtain.as_ref(),
            &mut out.frames[f..f + pixels],
        );
        let p = at.ball(t);
        for (k, b) in world.balls.iter().enumerate() {
            for d in 0..2 {
                out.positions[p + 2 * k + d] = b.pos[d] as f32;
                out.velocities[p + 2 * k + d] = b.vel[d] as f32;
            }
        }
    }
    Ok(world.balls.len())
}

/// `n` zeros, or an error naming `field` when `n` (the product of `dims`) overflows or does not
/// fit in memory, instead of an abort.
fn zeros(dims: &[usize], field: &'static str) -> Result<Vec<f32>> {
    let n = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|n| n.checked_mul(4).is_some())
        .ok_or_else(|| Error::config(field, format!("{dims:?} is too many values to hold")))?;
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| {
        Error::config(
            field,
            format!("{dims:?} needs {} bytes, more than memory allows", n * 4),
        )
    })?;
    v.resize(n, 0.0);
    Ok(v)
}

/// Sequences in sequence-major order, as `rims data balls` writes them.
#[derive(Clone, Debug, PartialEq)]
pub struct Sequences {
    /// `[sequences, T, S, S]`, intensities in `[0, 1]`.
    pub frames: Vec<f32>,
    /// `[sequences, T, max_balls, 2]`: each ball's centre `[x, y]`, box units; absent balls 0.
    pub positions: Vec<f32>,
    /// `[sequences, T, max_balls, 2]`: each ball's velocity, box sides per frame; absent 0.
    pub velocities: Vec<f32>,
    /// `[sequences]`: the balls in each sequence.
    pub ball_count: Vec<u32>,
    /// Sequences.
    pub sequences: usize,
    /// Frames per sequence T.
    pub length: usize,
    /// Frame side S.
    pub size: usize,
    /// The per-ball axis: the largest count the config allows.
    pub max_balls: usize,
}

/// Sequences `0..count` of `seed` and `split` under `cfg`. `progress` is called with the number
/// of sequences done after each one.
pub fn generate(
    cfg: &BallsConfig,
    seed: u64,
    split: Split,
    count: usize,
    mut progress: impl FnMut(usize),
) -> Result<Sequences> {
    cfg.validate()?;
    if count == 0 {
        return Err(Error::config("sequences", "must be at least 1"));
    }
    let (t, s, m) = (cfg.length, cfg.size, cfg.max_balls());
    let mut frames = zeros(&[count, t, s, s], "sequences")?;
    let mut positions = zeros(&[count, t, m, 2], "sequences")?;
    let mut velocities = zeros(&[count, t, m, 2], "sequences")?;
    let mut ball_count = Vec::with_capacity(count);
    let mut out = Buffers {
        frames: &mut frames,
        positions: &mut positions,
        velocities: &mut velocities,
    };
    for i in 0..count {
        let at = SequenceMajor {
            i,
            length: t,
            pixels: s * s,
            max_balls: m,
        };
        let mut rng = sequence_rng(seed, split, i as u64);
        ball_count.push(roll(cfg, &mut rng, &at, &mut out)? as u32);
        progress(i + 1);
    }
    Ok(Sequences {
        frames,
        positions,
        velocities,
        ball_count,
        sequences: count,
        length: t,
        size: s,
        max_balls: m,
    })
}

/// A time-major batch for the model: step `t` of example `b` is element `t * batch + b` of the
/// leading two axes.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// `[T, batch, S, S]`.
    pub frames: Vec<f32>,
    /// `[T, batch, max_balls, 2]`.
    pub positions: Vec<f32>,
    /// `[T, batch, max_balls, 2]`.
    pub velocities: Vec<f32>,
    /// `[batch]`.
    pub ball_count: Vec<u32>,
    /// Frames per sequence T.
    pub length: usize,
    /// Batch size.
    pub batch: usize,
    /// Frame side S.
    pub size: usize,
    /// The per-ball axis.
    pub max_balls: usize,
}

/// An endless stream of fresh sequences of one seed and split, drawn in batches: training draws
/// a new batch per step, and train, val and test never share a sequence.
#[derive(Clone, Debug)]
pub struct BallsStream {
    cfg: BallsConfig,
    seed: u64,
    split: Split,
    next: u64,
}

impl BallsStream {
    /// The stream of `split` under `seed`, from its first sequence. Checks `cfg`.
    pub fn new(cfg: BallsConfig, seed: u64, split: Split) -> Result<Self> {
        cfg.validate()?;
        Ok(BallsStream {
            cfg,
            seed,
            split,
            next: 0,
        })
    }

    /// The index of the next sequence this stream draws.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// Restarts the stream at sequence `index` (fixed evaluation batches start again at 0).
    pub fn seek(&mut self, index: u64) {
        self.next = index;
    }

    /// The next `batch` sequences, time-major.
    pub fn next_batch(&mut self, batch: usize) -> Result<Batch> {
        if batch == 0 {
            return Err(Error::config("batch_size", "must be at least 1"));
        }
        let (t, s, m) = (self.cfg.length, self.cfg.size, self.cfg.max_balls());
        let mut frames = zeros(&[t, batch, s, s], "batch_size")?;
        let mut positions = zeros(&[t, batch, m, 2], "batch_size")?;
        let mut velocities = zeros(&[t, batch, m, 2], "batch_size")?;
        let mut ball_count = Vec::with_capacity(batch);
        let mut out = Buffers {
            frames: &mut frames,
            positions: &mut positions,
            velocities: &mut velocities,
        };
        for b in 0..batch {
            let at = TimeMajor {
                b,
                batch,
                pixels: s * s,
                max_balls: m,
            };
            let mut rng = sequence_rng(self.seed, self.split, self.next + b as u64);
            ball_count.push(roll(&self.cfg, &mut rng, &at, &mut out)? as u32);
        }
        self.next += batch as u64;
        Ok(Batch {
            frames,
            positions,
            velocities,
            ball_count,
            length: t,
            batch,
            size: s,
            max_balls: m,
        })
    }
}
