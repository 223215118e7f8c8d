//! The balls' physics, in f64: discs in the unit box `[0, 1]²`, moving in straight lines between
//! elastic collisions with the walls and with each other.
//!
//! Time is measured in frames; a frame is integrated in `substeps` equal steps of `dt = 1 /
//! substeps`. One substep moves every ball by `v·dt`, then resolves ball–ball contacts (pairs in
//! index order), then the walls. A contact changes velocities only when the two are approaching,
//! so a pair still overlapping after a bounce is not bounced back together; the overlap itself
//! is removed by moving the two apart along the line of centres, in inverse proportion to their
//! masses (which leaves the centre of mass where it was). Moving a ball does not change any
//! velocity, so momentum (ball–ball) and kinetic energy (every collision) stay exact up to
//! rounding; only positions carry the integration error, of order one substep's travel.

use crate::error::{Error, Result};
use crate::rng::Rng;

/// Placement tries per ball before the whole placement starts over.
const TRIES_PER_BALL: usize = 1000;
/// Whole placements tried before the packing is called impossible.
const RESTARTS: usize = 20;
/// Most contact passes in one substep (see [`World::substep`]).
pub const RELAXATION_PASSES: usize = 8;

/// One ball: centre and velocity in box units (velocity per frame), radius, mass.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ball {
    /// Centre `[x, y]`: x grows to the right (frame columns), y downwards (frame rows).
    pub pos: [f64; 2],
    /// Velocity `[vx, vy]`, box sides per frame.
    pub vel: [f64; 2],
    /// Radius, box sides.
    pub radius: f64,
    /// Mass (only ratios matter).
    pub mass: f64,
}

impl Ball {
    /// Momentum `m·v`.
    pub fn momentum(&self) -> [f64; 2] {
        [self.mass * self.vel[0], self.mass * self.vel[1]]
    }

    /// Kinetic energy `m·|v|²/2`.
    pub fn kinetic_energy(&self) -> f64 {
        0.5 * self.mass * (self.vel[0] * self.vel[0] + self.vel[1] * self.vel[1])
    }
}

/// What one substep did: how many wall and ball–ball bounces (velocity changes) it made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Contacts {
    /// Velocity components reflected by a wall.
    pub walls: usize,
    /// Pairs whose velocities were exchanged along their line of centres.
    pub pairs: usize,
}

/// The balls in the box.
#[derive(Clone, Debug, PartialEq)]
pub struct World {
    /// The balls, in the order they were placed.
    pub balls: Vec<Ball>,
}

impl World {
    /// Places balls of the given `radii` and `masses` (equal lengths) at uniform positions in
    /// the box without overlap, by rejection, and gives each a velocity from `velocity(rng)`
    /// afterwards. Errors ([`Error::Config`] on `balls`) when [`RESTARTS`] placements of
    /// [`TRIES_PER_BALL`] tries per ball all fail: too many or too large balls for the box.
    pub fn place(
        rng: &mut Rng,
        radii: &[f64],
        masses: &[f64],
        mut velocity: impl FnMut(&mut Rng) -> [f64; 2],
    ) -> Result<World> {
        let centres = place_centres(rng, radii)?;
        let balls = centres
            .iter()
            .zip(radii.iter().zip(masses))
            .map(|(&pos, (&radius, &mass))| Ball {
                pos,
                vel: velocity(rng),
                radius,
                mass,
            })
            .collect();
        Ok(World { balls })
    }

    /// Advances the world by one frame in `substeps` equal steps.
    pub fn advance_frame(&mut self, substeps: usize) -> Contacts {
        let dt = 1.0 / substeps.max(1) as f64;
        let mut total = Contacts::default();
        for _ in 0..substeps.max(1) {
            let c = self.substep(dt);
            total.walls += c.walls;
            total.pairs += c.pairs;
        }
        total
    }

    /// One integration step of `dt` frames: move, then resolve ball–ball contacts and the walls,
    /// repeated (up to [`RELAXATION_PASSES`] times) while a push has left some pair
    /// overlapping: in a crowd, separating one pair, or a wall pushing a ball back, can press
    /// it into another.
    pub fn substep(&mut self, dt: f64) -> Contacts {
        for b in &mut self.balls {
            b.pos[0] += b.vel[0] * dt;
            b.pos[1] += b.vel[1] * dt;
        }
        let mut contacts = Contacts::default();
        for _ in 0..RELAXATION_PASSES {
            contacts.pairs += self.resolve_pairs();
            // Walls last, so every ball ends the substep inside the box.
            for b in &mut self.balls {
                contacts.walls += bounce_off_walls(b);
            }
            if self.max_overlap() <= 0.0 {
                break;
            }
        }
        contacts
    }

    /// One pass over the pairs in index order; returns how many bounced.
    fn resolve_pairs(&mut self) -> usize {
        let mut bounced = 0;
        for i in 0..self.balls.len() {
            for j in i + 1..self.balls.len() {
                let (head, tail) = self.balls.split_at_mut(j);
                bounced += usize::from(collide(&mut head[i], &mut tail[0]));
            }
        }
        bounced
    }

    /// Total momentum.
    pub fn momentum(&self) -> [f64; 2] {
        self.balls.iter().fold([0.0; 2], |acc, b| {
            let p = b.momentum();
            [acc[0] + p[0], acc[1] + p[1]]
        })
    }

    /// Total kinetic energy.
    pub fn kinetic_energy(&self) -> f64 {
        self.balls.iter().map(Ball::kinetic_energy).sum()
    }

    /// The largest overlap `r_i + r_j − |c_i − c_j|` of any pair (0 when none touch).
    pub fn max_overlap(&self) -> f64 {
        let mut worst = 0.0f64;
        for (i, a) in self.balls.iter().enumerate() {
            for b in &self.balls[i + 1..] {
                worst = worst.max(a.radius + b.radius - distance(a.pos, b.pos));
            }
        }
        worst
    }
}

fn distance(a: [f64; 2], b: [f64; 2]) -> f64 {
    (b[0] - a[0]).hypot(b[1] - a[1])
}

/// Centres for discs of `radii`, uniform in `[r, 1 − r]²` each, none overlapping another.
fn place_centres(rng: &mut Rng, radii: &[f64]) -> Result<Vec<[f64; 2]>> {
    'restart: for _ in 0..RESTARTS {
        let mut centres: Vec<[f64; 2]> = Vec::with_capacity(radii.len());
        for (k, &r) in radii.iter().enumerate() {
            let free = (0..TRIES_PER_BALL).find_map(|_| {
                let c = [rng.uniform(r, 1.0 - r), rng.uniform(r, 1.0 - r)];
                let clear = centres
                    .iter()
                    .zip(radii)
                    .all(|(&o, &ro)| distance(c, o) >= r + ro);
                clear.then_some(c)
            });
            match free {
                Some(c) => centres.push(c),
                None if k > 0 => continue 'restart,
                None => break 'restart, // a lone ball that does not fit cannot fit later
            }
        }
        return Ok(centres);
    }
    let largest = radii.iter().copied().fold(0.0, f64::max);
    Err(Error::config(
        "balls",
        format!(
            "cannot place {} balls of radius up to {largest} in the unit box without overlap \
             ({RESTARTS} placements of {TRIES_PER_BALL} tries per ball failed): use fewer or \
             smaller balls",
            radii.len()
        ),
    ))
}

/// The 2-body elastic collision of `a` and `b` along their line of centres, if they overlap.
/// Returns whether velocities changed (they were approaching).
///
/// With `n` the unit vector from a to b and `u = (v_a − v_b)·n` the closing speed, the impulse
/// `J = 2u / (1/m_a + 1/m_b)` along `n` conserves momentum and kinetic energy exactly:
/// `v_a −= (J/m_a) n`, `v_b += (J/m_b) n`.
pub fn collide(a: &mut Ball, b: &mut Ball) -> bool {
    let d = [b.pos[0] - a.pos[0], b.pos[1] - a.pos[1]];
    let dist = d[0].hypot(d[1]);
    let overlap = a.radius + b.radius - dist;
    if overlap <= 0.0 {
        return false;
    }
    // Coincident centres have no line between them; any fixed direction separates them.
    let n = if dist > 0.0 {
        [d[0] / dist, d[1] / dist]
    } else {
        [1.0, 0.0]
    };
    let (wa, wb) = (1.0 / a.mass, 1.0 / b.mass);
    // Positional correction: apart by the overlap, the lighter one moving more.
    let share_a = wa / (wa + wb);
    for (k, nk) in n.iter().enumerate() {
        a.pos[k] -= overlap * share_a * nk;
        b.pos[k] += overlap * (1.0 - share_a) * nk;
    }
    let closing = (a.vel[0] - b.vel[0]) * n[0] + (a.vel[1] - b.vel[1]) * n[1];
    if closing <= 0.0 {
        return false; // already separating: bouncing now would pull them back together
    }
    let impulse = 2.0 * closing / (wa + wb);
    for (k, nk) in n.iter().enumerate() {
        a.vel[k] -= impulse * wa * nk;
        b.vel[k] += impulse * wb * nk;
    }
    true
}

/// Reflects `b` off the walls it crossed: its centre back into `[r, 1 − r]` (mirrored about the
/// wall, as if it had bounced mid-step) and the velocity component pointing out of the box
/// reversed. Returns how many components were reversed.
fn bounce_off_walls(b: &mut Ball) -> usize {
    let (lo, hi) = (b.radius, 1.0 - b.radius);
    let mut bounced = 0;
    for k in 0..2 {
        if b.pos[k] < lo {
            b.pos[k] = 2.0 * lo - b.pos[k];
            if b.vel[k] < 0.0 {
                b.vel[k] = -b.vel[k];
                bounced += 1;
            }
        } else if b.pos[k] > hi {
            b.pos[k] = 2.0 * hi - b.pos[k];
            if b.vel[k] > 0.0 {
                b.vel[k] = -b.vel[k];
                bounced += 1;
            }
        }
        // A push from a collision can exceed the box's free width; the mirror image would
        // then lie past the other wall. (max/min, not clamp: no panic for a ball wider than
        // the box, which the config refuses anyway.)
        b.pos[k] = b.pos[k].max(lo).min(hi);
    }
    bounced
}
