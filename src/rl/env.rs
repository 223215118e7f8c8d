//! One environment: the agent in its grid, MiniGrid's seven actions and their rules
//! (`MiniGridEnv.step` in `minigrid/minigrid_env.py`), the reward and the step limit.

use std::fmt;

use super::grid::{Cell, DoorState, Grid, Object};
use crate::error::{Error, Result};

/// MiniGrid's actions, numbered as its `Actions` enum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// 0: turn counter-clockwise.
    Left,
    /// 1: turn clockwise.
    Right,
    /// 2: move one cell forward, if that cell can be overlapped.
    Forward,
    /// 3: pick up the object in front into an empty hand.
    Pickup,
    /// 4: put the carried object on the empty cell in front.
    Drop,
    /// 5: open or close the door in front (a locked one only with its key), open a box.
    Toggle,
    /// 6: nothing.
    Done,
}

impl Action {
    /// How many actions there are.
    pub const COUNT: usize = 7;

    /// All actions in id order.
    pub const ALL: [Action; 7] = [
        Action::Left,
        Action::Right,
        Action::Forward,
        Action::Pickup,
        Action::Drop,
        Action::Toggle,
        Action::Done,
    ];

    /// The action of id `id`; an error for ids of 7 and more.
    pub fn from_id(id: u32) -> Result<Action> {
        Action::ALL.get(id as usize).copied().ok_or_else(|| {
            Error::invalid(
                "rl::Action",
                format!("action {id} is not one of the 7 actions (0..=6)"),
            )
        })
    }

    /// MiniGrid's id.
    pub fn id(self) -> u32 {
        self as u32
    }
}

/// MiniGrid's `DIR_TO_VEC`: direction 0 faces +x (right), 1 +y (down), 2 −x, 3 −y.
pub const DIR_TO_VEC: [(i64, i64); 4] = [(1, 0), (0, 1), (-1, 0), (0, -1)];

/// The Memory task's two cells at the end of the hallway: reaching `success` ends the episode
/// with the success reward, reaching `failure` with 0 (`MemoryEnv.step`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exits {
    /// The cell beside the object that matches the one in the start room.
    pub success: (i64, i64),
    /// The cell beside the other object.
    pub failure: (i64, i64),
}

/// How an environment plays, beyond the grid: what MiniGrid sets per environment class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rules {
    /// Steps after which the episode is truncated.
    pub max_steps: u32,
    /// When true, the view has no occlusion (MiniGrid's `see_through_walls`, true for Empty).
    pub see_through_walls: bool,
    /// When true, `pickup` acts as `toggle`, so nothing can be carried (Memory).
    pub pickup_is_toggle: bool,
    /// The Memory task's exits, if any.
    pub exits: Option<Exits>,
}

impl Rules {
    /// `max_steps` with MiniGrid's defaults otherwise: occlusion on, plain actions, no exits.
    pub fn new(max_steps: u32) -> Self {
        Rules {
            max_steps,
            see_through_walls: false,
            pickup_is_toggle: false,
            exits: None,
        }
    }
}

/// What one step gave.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Outcome {
    /// `1 − 0.9·step_count/max_steps` on success (the step count includes this step), else 0.
    pub reward: f32,
    /// The episode ended in the goal, in lava or at a Memory exit.
    pub terminated: bool,
    /// The step count reached `max_steps` (both may hold at once, as in MiniGrid).
    pub truncated: bool,
}

impl Outcome {
    /// Whether the episode is over either way.
    pub fn done(&self) -> bool {
        self.terminated || self.truncated
    }
}

/// One environment's state: grid, agent, carried object, step count and rules.
#[derive(Clone, Debug, PartialEq)]
pub struct Env {
    grid: Grid,
    pos: (i64, i64),
    dir: u8,
    carrying: Cell,
    step_count: u32,
    rules: Rules,
}

impl Env {
    /// The agent at `pos` facing `dir` (0..=3, [`DIR_TO_VEC`]) in `grid`, carrying nothing.
    /// Errors when the position is outside the grid or on a cell the agent cannot stand on,
    /// when `dir` is not a direction, or when `max_steps` is 0.
    pub fn new(grid: Grid, pos: (i64, i64), dir: u8, rules: Rules) -> Result<Self> {
        if !grid.contains(pos.0, pos.1) {
            return Err(Error::invalid(
                "rl::Env",
                format!(
                    "agent position {pos:?} is outside the {}x{} grid",
                    grid.width(),
                    grid.height()
                ),
            ));
        }
        if let Some(obj) = grid.get(pos.0, pos.1).filter(|o| !o.can_overlap()) {
            return Err(Error::invalid(
                "rl::Env",
                format!("the agent cannot stand at {pos:?}, on {obj:?}"),
            ));
        }
        if dir > 3 {
            return Err(Error::invalid(
                "rl::Env",
                format!("direction {dir} is not one of 0..=3"),
            ));
        }
        if rules.max_steps == 0 {
            return Err(Error::config("max_steps", "must be at least 1"));
        }
        Ok(Env {
            grid,
            pos,
            dir,
            carrying: None,
            step_count: 0,
            rules,
        })
    }

    /// The grid (the agent is not in it; see [`Env::agent_pos`]).
    pub fn grid(&self) -> &Grid {
        &self.grid
    }

    /// The agent's cell (x, y).
    pub fn agent_pos(&self) -> (i64, i64) {
        self.pos
    }

    /// The agent's direction, 0..=3 ([`DIR_TO_VEC`]).
    pub fn agent_dir(&self) -> u8 {
        self.dir
    }

    /// The cell in front of the agent (MiniGrid's `front_pos`).
    pub fn front_pos(&self) -> (i64, i64) {
        let (dx, dy) = DIR_TO_VEC[self.dir as usize];
        (self.pos.0 + dx, self.pos.1 + dy)
    }

    /// What the agent carries.
    pub fn carrying(&self) -> Cell {
        self.carrying
    }

    /// Steps taken in this episode.
    pub fn step_count(&self) -> u32 {
        self.step_count
    }

    /// The rules it plays by.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// MiniGrid's success reward after `step_count` steps.
    fn success_reward(&self) -> f32 {
        (1.0 - 0.9 * (self.step_count as f64 / self.rules.max_steps as f64)) as f32
    }

    /// One step of MiniGrid's rules. Stepping an episode that is over is the caller's
    /// business (the batch resets first); the rules simply go on.
    pub fn step(&mut self, action: Action) -> Outcome {
        self.step_count += 1;
        let mut out = Outcome {
            reward: 0.0,
            terminated: false,
            truncated: false,
        };
        let action = match action {
            Action::Pickup if self.rules.pickup_is_toggle => Action::Toggle,
            a => a,
        };
        let (fx, fy) = self.front_pos();
        let front = self.grid.get(fx, fy);
        match action {
            Action::Left => self.dir = (self.dir + 3) % 4,
            Action::Right => self.dir = (self.dir + 1) % 4,
            Action::Forward => {
                if front.is_none_or(Object::can_overlap) {
                    self.pos = (fx, fy);
                }
                match front {
                    Some(Object::Goal) => {
                        out.terminated = true;
                        out.reward = self.success_reward();
                    }
                    Some(Object::Lava) => out.terminated = true,
                    _ => {}
                }
            }
            Action::Pickup => {
                if let Some(obj) = front.filter(|o| o.can_pickup())
                    && self.carrying.is_none()
                    && self.grid.set(fx, fy, None).is_ok()
                {
                    self.carrying = Some(obj);
                }
            }
            Action::Drop => {
                // `get` gives a wall outside the grid, so a drop there never happens.
                if front.is_none()
                    && self.carrying.is_some()
                    && self.grid.set(fx, fy, self.carrying).is_ok()
                {
                    self.carrying = None;
                }
            }
            Action::Toggle => self.toggle(fx, fy, front),
            Action::Done => {}
        }
        if let Some(exits) = self.rules.exits {
            if self.pos == exits.success {
                out.reward = self.success_reward();
                out.terminated = true;
            } else if self.pos == exits.failure {
                out.reward = 0.0;
                out.terminated = true;
            }
        }
        out.truncated = self.step_count >= self.rules.max_steps;
        out
    }

    /// MiniGrid's `Door.toggle` and `Box.toggle`; other objects ignore it.
    fn toggle(&mut self, x: i64, y: i64, front: Cell) {
        let next = match front {
            Some(Object::Door(color, DoorState::Locked))
                if self.carrying == Some(Object::Key(color)) =>
            {
                Some(Object::Door(color, DoorState::Open))
            }
            Some(Object::Door(color, DoorState::Open)) => {
                Some(Object::Door(color, DoorState::Closed))
            }
            Some(Object::Door(color, DoorState::Closed)) => {
                Some(Object::Door(color, DoorState::Open))
            }
            Some(Object::Box(_)) => None,
            // Anything else, a locked door without its key included, stays as it is.
            _ => return,
        };
        // (x, y) held `front`, an object, so it is inside the grid.
        let _ = self.grid.set(x, y, next);
    }
}

/// MiniGrid's `pprint_grid`: two characters a cell, the agent as `>>`, `VV`, `<<` or `^^`.
impl fmt::Display for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for y in 0..self.grid.height() as i64 {
            for x in 0..self.grid.width() as i64 {
                if (x, y) == self.pos {
                    let c = [">>", "VV", "<<", "^^"][self.dir as usize];
                    f.write_str(c)?;
                    continue;
                }
                let Some(obj) = self.grid.get(x, y) else {
                    f.write_str("  ")?;
                    continue;
                };
                let color = ["R", "G", "B", "P", "Y", "G"][obj.color().id() as usize];
                let kind = match obj {
                    Object::Door(_, DoorState::Open) => {
                        f.write_str("__")?;
                        continue;
                    }
                    Object::Door(_, DoorState::Locked) => "L",
                    Object::Door(_, DoorState::Closed) => "D",
                    Object::Wall(_) => "W",
                    Object::Floor(_) => "F",
                    Object::Key(_) => "K",
                    Object::Ball(_) => "A",
                    Object::Box(_) => "B",
                    Object::Goal => "G",
                    Object::Lava => "V",
                };
                write!(f, "{kind}{color}")?;
            }
            if y + 1 < self.grid.height() as i64 {
                writeln!(f)?;
            }
        }
        Ok(())
    }
}
