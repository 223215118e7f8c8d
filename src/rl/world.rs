//! The worlds by name (`empty-8x8`, `doorkey-8x8`, `memory-s7`) and each episode's layout,
//! drawn from the episode's generator with MiniGrid's layouts (`minigrid/envs/empty.py`,
//! `doorkey.py`, `memory.py`). MiniGrid draws from numpy; here the project's SplitMix64 draws
//! the same choices from the same ranges, so layouts follow the same distribution but not
//! numpy's sequence.

use std::fmt;

use super::env::{Env, Exits, Rules};
use super::grid::{Color, DoorState, Grid, Object};
use crate::error::{Error, Result};
use crate::rng::Rng;

/// Largest world side accepted by [`World::parse`] and [`World::validate`].
pub const MAX_SIZE: usize = 64;

/// The standard names, MiniGrid's registered sizes of the three families.
pub const NAMES: &[&str] = &[
    "empty-5x5",
    "empty-6x6",
    "empty-8x8",
    "empty-16x16",
    "doorkey-5x5",
    "doorkey-6x6",
    "doorkey-8x8",
    "doorkey-16x16",
    "memory-s7",
];

/// A family of layouts and its size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum World {
    /// MiniGrid-Empty-NxN: an empty walled room, the agent at (1, 1) facing right, the goal in
    /// the bottom-right corner. Sizes 4 to [`MAX_SIZE`].
    Empty {
        /// Side, walls included.
        size: usize,
    },
    /// MiniGrid-DoorKey-NxN: a vertical wall splits the room, a locked yellow door in it, the
    /// yellow key and the agent (anywhere, any direction) on the left, the goal in the
    /// bottom-right corner. Sizes 5 to [`MAX_SIZE`].
    DoorKey {
        /// Side, walls included.
        size: usize,
    },
    /// MiniGrid-MemoryS`size`: a green key or ball in the start room, a hallway to a
    /// crossing with a key above and a ball below; walking next to the one that matches the
    /// start room's wins. Odd sizes 7 to [`MAX_SIZE`].
    Memory {
        /// Side, walls included.
        size: usize,
    },
}

fn parse_error(name: &str, why: impl fmt::Display) -> Error {
    Error::config(
        "world",
        format!(
            "'{name}' {why}; worlds are empty-NxN, doorkey-NxN and memory-sN (e.g. {})",
            NAMES.join(", ")
        ),
    )
}

impl World {
    /// A world from its command-line name: `empty-NxN`, `doorkey-NxN`, `memory-sN`.
    pub fn parse(name: &str) -> Result<World> {
        let text = name.trim().to_ascii_lowercase();
        let Some((family, size)) = text.split_once('-') else {
            return Err(parse_error(name, "is not FAMILY-SIZE"));
        };
        let side = |s: &str| -> Result<usize> {
            s.parse::<usize>()
                .map_err(|_| parse_error(name, format!("has a size '{s}' that is not a number")))
        };
        let world = match family {
            "empty" | "doorkey" => {
                let Some((w, h)) = size.split_once('x') else {
                    return Err(parse_error(name, "has no NxN size"));
                };
                let (w, h) = (side(w)?, side(h)?);
                if w != h {
                    return Err(parse_error(name, "is not square (MiniGrid's are)"));
                }
                if family == "empty" {
                    World::Empty { size: w }
                } else {
                    World::DoorKey { size: w }
                }
            }
            "memory" => {
                let Some(n) = size.strip_prefix('s') else {
                    return Err(parse_error(name, "has no sN size"));
                };
                World::Memory { size: side(n)? }
            }
            _ => {
                return Err(parse_error(
                    name,
                    format!("names no world family '{family}'"),
                ));
            }
        };
        world.validate().map_err(|e| match e {
            Error::Config { reason, .. } => parse_error(name, reason),
            e => e,
        })?;
        Ok(world)
    }

    /// Checks the size against the family's smallest layout and [`MAX_SIZE`].
    pub fn validate(&self) -> Result<()> {
        let (size, lo, why) = match *self {
            World::Empty { size } => (size, 4, "the agent and the goal need 2x2 inside walls"),
            World::DoorKey { size } => (size, 5, "a wall, a key and a room each side need 5"),
            World::Memory { size } => {
                if size % 2 == 0 {
                    return Err(Error::config(
                        "world",
                        format!(
                            "has size {size}; Memory's side is odd (the hallway is its middle row)"
                        ),
                    ));
                }
                (size, 7, "the start room and the crossing need 7")
            }
        };
        if size < lo || size > MAX_SIZE {
            return Err(Error::config(
                "world",
                format!("has size {size}, outside {lo}..={MAX_SIZE} ({why})"),
            ));
        }
        Ok(())
    }

    /// The side, walls included.
    pub fn size(&self) -> usize {
        match *self {
            World::Empty { size } | World::DoorKey { size } | World::Memory { size } => size,
        }
    }

    /// MiniGrid's step limit: 4·size² (Empty), 10·size² (DoorKey), 5·size² (Memory).
    pub fn max_steps(&self) -> u32 {
        let s = self.size() as u32;
        match self {
            World::Empty { .. } => 4 * s * s,
            World::DoorKey { .. } => 10 * s * s,
            World::Memory { .. } => 5 * s * s,
        }
    }

    /// The rules MiniGrid's class for the family sets.
    pub fn rules(&self) -> Rules {
        Rules {
            // EmptyEnv passes see_through_walls=True "for maximum speed"; the others keep
            // occlusion.
            see_through_walls: matches!(self, World::Empty { .. }),
            pickup_is_toggle: matches!(self, World::Memory { .. }),
            ..Rules::new(self.max_steps())
        }
    }

    /// One episode's layout, drawn from `rng`.
    pub fn generate(&self, rng: &mut Rng) -> Result<Env> {
        self.validate()?;
        let n = self.size();
        let mut grid = Grid::new(n, n)?;
        let n = n as i64;
        match self {
            World::Empty { .. } => {
                grid.wall_border();
                grid.set(n - 2, n - 2, Some(Object::Goal))?;
                Env::new(grid, (1, 1), 0, self.rules())
            }
            World::DoorKey { .. } => doorkey(grid, rng, self.rules()),
            World::Memory { .. } => memory(grid, rng, self.rules()),
        }
    }
}

impl fmt::Display for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            World::Empty { size } => write!(f, "empty-{size}x{size}"),
            World::DoorKey { size } => write!(f, "doorkey-{size}x{size}"),
            World::Memory { size } => write!(f, "memory-s{size}"),
        }
    }
}

/// MiniGrid's `_rand_int(lo, hi)`: uniform in [lo, hi).
fn rand_int(rng: &mut Rng, lo: i64, hi: i64) -> i64 {
    lo + rng.below((hi - lo) as u64) as i64
}

/// MiniGrid's `place_obj` over the rectangle x in [0, w), y in [0, h): a uniformly chosen empty
/// cell other than `avoid`. Its rejection sampling draws the same distribution; choosing among
/// the free cells directly cannot loop.
fn free_cell(grid: &Grid, rng: &mut Rng, w: i64, h: i64, avoid: (i64, i64)) -> Result<(i64, i64)> {
    let free: Vec<(i64, i64)> = (0..h)
        .flat_map(|y| (0..w).map(move |x| (x, y)))
        .filter(|&p| p != avoid && grid.get(p.0, p.1).is_none())
        .collect();
    if free.is_empty() {
        return Err(Error::invalid(
            "rl::World",
            "no free cell to place an object",
        ));
    }
    Ok(free[rng.below(free.len() as u64) as usize])
}

/// DoorKeyEnv's `_gen_grid`.
fn doorkey(mut grid: Grid, rng: &mut Rng, rules: Rules) -> Result<Env> {
    let n = grid.width() as i64;
    grid.wall_border();
    grid.set(n - 2, n - 2, Some(Object::Goal))?;
    let split = rand_int(rng, 2, n - 2);
    for y in 0..n {
        grid.set(split, y, Some(Object::WALL))?;
    }
    let agent = free_cell(&grid, rng, split, n, (-1, -1))?;
    let dir = rand_int(rng, 0, 4) as u8;
    let door = rand_int(rng, 1, n - 2);
    grid.set(
        split,
        door,
        Some(Object::Door(Color::Yellow, DoorState::Locked)),
    )?;
    let key = free_cell(&grid, rng, split, n, agent)?;
    grid.set(key.0, key.1, Some(Object::Key(Color::Yellow)))?;
    Env::new(grid, agent, dir, rules)
}

/// MemoryEnv's `_gen_grid` with `random_length=False`.
fn memory(mut grid: Grid, rng: &mut Rng, mut rules: Rules) -> Result<Env> {
    let n = grid.width() as i64;
    let mid = n / 2;
    grid.wall_border();
    let (upper, lower) = (mid - 2, mid + 2);
    let hallway_end = n - 3;
    let wall = Some(Object::WALL);
    // The start room, walled above and below, with an opening to the hallway.
    for x in 1..5 {
        grid.set(x, upper, wall)?;
        grid.set(x, lower, wall)?;
    }
    grid.set(4, upper + 1, wall)?;
    grid.set(4, lower - 1, wall)?;
    // The hallway, one cell high.
    for x in 5..hallway_end {
        grid.set(x, upper + 1, wall)?;
        grid.set(x, lower - 1, wall)?;
    }
    // The crossing: a column open from top to bottom, entered from the hallway's end.
    for y in 0..n {
        if y != mid {
            grid.set(hallway_end, y, wall)?;
        }
        grid.set(hallway_end + 2, y, wall)?;
    }
    let agent = (rand_int(rng, 1, hallway_end + 1), mid);
    let green = |is_key: bool| {
        Some(if is_key {
            Object::Key(Color::Green)
        } else {
            Object::Ball(Color::Green)
        })
    };
    let start_is_key = rng.below(2) == 0;
    grid.set(1, mid - 1, green(start_is_key))?;
    let top_is_key = rng.below(2) == 1;
    let (top, bottom) = ((hallway_end + 1, mid - 2), (hallway_end + 1, mid + 2));
    grid.set(top.0, top.1, green(top_is_key))?;
    grid.set(bottom.0, bottom.1, green(!top_is_key))?;
    let (beside_top, beside_bottom) = ((top.0, top.1 + 1), (bottom.0, bottom.1 - 1));
    rules.exits = Some(if start_is_key == top_is_key {
        Exits {
            success: beside_top,
            failure: beside_bottom,
        }
    } else {
        Exits {
            success: beside_bottom,
            failure: beside_top,
        }
    });
    Env::new(grid, agent, 0, rules)
}
