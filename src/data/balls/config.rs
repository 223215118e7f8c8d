//! What a bouncing-balls data set is made of, its defaults, and the checks that make every bad
//! value an [`Error::Config`] naming the field.

use std::fmt;
use std::str::FromStr;

use super::physics::World;
use super::render::Curtain;
use crate::error::{Error, Result};
use crate::rng::Rng;

/// Most balls in one sequence.
pub const MAX_BALLS: usize = 32;
/// Largest frame side, pixels.
pub const MAX_SIZE: usize = 1024;
/// Longest sequence, frames.
pub const MAX_LENGTH: usize = 100_000;
/// Most substeps per frame.
pub const MAX_SUBSTEPS: usize = 10_000;
/// The radius at which a ball weighs 1 under [`MassRule::Area`].
pub const UNIT_MASS_RADIUS: f64 = 0.1;

/// An inclusive range `lo..=hi`, written `"4"` or `"6-8"`: the balls of a sequence, or (as
/// f64) a radius or speed drawn uniformly per ball.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Span<T> {
    /// Smallest value.
    pub lo: T,
    /// Largest value.
    pub hi: T,
}

impl<T: Copy> Span<T> {
    /// The range holding `value` only.
    pub const fn fixed(value: T) -> Self {
        Span {
            lo: value,
            hi: value,
        }
    }
}

impl<T: Copy + FromStr> Span<T> {
    /// `"v"` or `"lo-hi"`. The range's dash is the first one both sides of which parse, so
    /// `"1e-3-2e-3"` reads as 0.001 to 0.002. Ordering is checked by the config, not here.
    pub fn parse(text: &str, field: &'static str) -> Result<Self> {
        let text = text.trim();
        if let Ok(v) = text.parse() {
            return Ok(Span::fixed(v));
        }
        let split = text.char_indices().filter(|&(i, c)| i > 0 && c == '-');
        for (i, _) in split {
            if let (Ok(lo), Ok(hi)) = (text[..i].parse(), text[i + 1..].parse()) {
                return Ok(Span { lo, hi });
            }
        }
        Err(Error::config(
            field,
            format!("'{text}' is neither a number nor a range like 6-8"),
        ))
    }
}

impl<T: fmt::Display + PartialEq> fmt::Display for Span<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

/// How a ball's mass follows from its radius.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MassRule {
    /// Every ball weighs 1.
    Equal,
    /// Mass ∝ r² (uniform density discs), 1 at [`UNIT_MASS_RADIUS`].
    Area,
}

impl MassRule {
    /// The mass of a ball of radius `r`.
    pub fn mass(self, r: f64) -> f64 {
        match self {
            MassRule::Equal => 1.0,
            MassRule::Area => (r / UNIT_MASS_RADIUS).powi(2),
        }
    }

    /// Its name in files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            MassRule::Equal => "equal",
            MassRule::Area => "area",
        }
    }
}

/// One bouncing-balls data set's settings (docs/spec.md §2.5). Lengths are box sides (the box
/// is the unit square), speeds box sides per frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BallsConfig {
    /// Balls per sequence, drawn uniformly per sequence (default 4).
    pub balls: Span<usize>,
    /// Radius, drawn uniformly per ball (default 0.1).
    pub radius: Span<f64>,
    /// Mass from radius (default equal masses).
    pub mass: MassRule,
    /// Initial speed, drawn uniformly per ball, in a uniform direction (default 0.03–0.07).
    pub speed: Span<f64>,
    /// Frame side S, pixels (default 32).
    pub size: usize,
    /// Frames per sequence T (default 30).
    pub length: usize,
    /// Integration steps per frame (default 10).
    pub substeps: usize,
    /// The occluding band, if any (default none).
    pub curtain: Option<Curtain>,
}

impl Default for BallsConfig {
    fn default() -> Self {
        BallsConfig {
            balls: Span::fixed(4),
            radius: Span::fixed(0.1),
            mass: MassRule::Equal,
            speed: Span { lo: 0.03, hi: 0.07 },
            size: 32,
            length: 30,
            substeps: 10,
            curtain: None,
        }
    }
}

impl BallsConfig {
    /// Checks every field (see the module docs), and that the most balls at the largest
    /// radius can be placed without overlap.
    pub fn validate(&self) -> Result<()> {
        self.check_counts()?;
        self.check_radius()?;
        self.check_speed()?;
        if let Some(c) = &self.curtain {
            let ok = c.left.is_finite() && c.right.is_finite();
            if !ok || c.left < 0.0 || c.right > 1.0 || c.left >= c.right {
                return Err(Error::config(
                    "curtain",
                    format!(
                        "the band [{}, {}) must satisfy 0 <= left < right <= 1",
                        c.left, c.right
                    ),
                ));
            }
        }
        self.check_packing()
    }

    fn check_counts(&self) -> Result<()> {
        let b = self.balls;
        if b.lo < 1 || b.hi > MAX_BALLS || b.lo > b.hi {
            return Err(Error::config(
                "balls",
                format!("{b} is not a count or range within 1-{MAX_BALLS} (lo <= hi)"),
            ));
        }
        let sized = |field, v: usize, max| {
            if v < 1 || v > max {
                Err(Error::config(field, format!("{v} is outside 1..={max}")))
            } else {
                Ok(())
            }
        };
        sized("size", self.size, MAX_SIZE)?;
        sized("length", self.length, MAX_LENGTH)?;
        sized("substeps", self.substeps, MAX_SUBSTEPS)
    }

    fn check_radius(&self) -> Result<()> {
        let r = self.radius;
        if !(r.lo.is_finite() && r.hi.is_finite() && r.lo > 0.0 && r.lo <= r.hi && r.hi < 0.5) {
            return Err(Error::config(
                "radius",
                format!("{r} must be finite with 0 < lo <= hi < 0.5 (box sides)"),
            ));
        }
        Ok(())
    }

    fn check_speed(&self) -> Result<()> {
        let v = self.speed;
        if !(v.lo.is_finite() && v.hi.is_finite() && v.lo >= 0.0 && v.lo <= v.hi) {
            return Err(Error::config(
                "speed",
                format!("{v} must be finite with 0 <= lo <= hi (box sides per frame)"),
            ));
        }
        // A substep must move a ball less than half the smallest radius, or two balls (or a
        // ball and a wall) could pass through each other between two checks.
        let travel = v.hi / self.substeps as f64;
        if travel >= 0.5 * self.radius.lo {
            return Err(Error::config(
                "substeps",
                format!(
                    "{} substeps let a ball at speed {} move {travel:.4} per substep, not less \
                     than half the radius {}: raise substeps or lower the speed",
                    self.substeps, v.hi, self.radius.lo
                ),
            ));
        }
        Ok(())
    }

    /// The hardest case, tried once with a fixed generator, so that an impossible packing is
    /// refused before any work rather than in the middle of a data set.
    fn check_packing(&self) -> Result<()> {
        let radii = vec![self.radius.hi; self.balls.hi];
        let masses = vec![1.0; radii.len()];
        World::place(&mut Rng::new(0), &radii, &masses, |_| [0.0; 2]).map(|_| ())
    }

    /// The largest count, the second axis of the per-ball outputs.
    pub fn max_balls(&self) -> usize {
        self.balls.hi
    }

    /// The curtain as text: `none` or `left-right`.
    pub fn curtain_text(&self) -> String {
        match &self.curtain {
            None => "none".into(),
            Some(c) => format!("{}-{}", c.left, c.right),
        }
    }
}
