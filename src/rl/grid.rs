//! The objects of a MiniGrid world with MiniGrid's integer ids (`minigrid/core/constants.py`),
//! what the agent may do with each (`world_object.py`), and the grid that holds them.

use crate::error::{Error, Result};

/// MiniGrid's `OBJECT_TO_IDX`: the first number of an encoded cell.
pub mod object_id {
    /// A cell the agent cannot see (also its colour and state are 0).
    pub const UNSEEN: u8 = 0;
    /// A visible cell with nothing in it.
    pub const EMPTY: u8 = 1;
    /// Wall.
    pub const WALL: u8 = 2;
    /// Floor tile.
    pub const FLOOR: u8 = 3;
    /// Door.
    pub const DOOR: u8 = 4;
    /// Key.
    pub const KEY: u8 = 5;
    /// Ball.
    pub const BALL: u8 = 6;
    /// Box.
    pub const BOX: u8 = 7;
    /// Goal square.
    pub const GOAL: u8 = 8;
    /// Lava.
    pub const LAVA: u8 = 9;
    /// The agent (only in a full-grid encoding; the egocentric view never holds it).
    pub const AGENT: u8 = 10;
}

/// MiniGrid's six colours, numbered as `COLOR_TO_IDX`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Color {
    /// 0.
    Red,
    /// 1.
    Green,
    /// 2.
    Blue,
    /// 3.
    Purple,
    /// 4.
    Yellow,
    /// 5.
    Grey,
}

impl Color {
    /// All colours in id order.
    pub const ALL: [Color; 6] = [
        Color::Red,
        Color::Green,
        Color::Blue,
        Color::Purple,
        Color::Yellow,
        Color::Grey,
    ];

    /// MiniGrid's `COLOR_TO_IDX`.
    pub fn id(self) -> u8 {
        self as u8
    }
}

/// A door's state, numbered as MiniGrid's `STATE_TO_IDX` (the third number of an encoded door).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DoorState {
    /// 0: the agent walks and sees through it.
    Open,
    /// 1: blocks and occludes; `toggle` opens it.
    Closed,
    /// 2: blocks and occludes; `toggle` opens it only with a key of the door's colour.
    Locked,
}

impl DoorState {
    /// MiniGrid's `STATE_TO_IDX`.
    pub fn id(self) -> u8 {
        self as u8
    }
}

/// What a cell holds. MiniGrid's default colours: walls grey, goals green, lava red.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Object {
    /// Blocks and occludes.
    Wall(Color),
    /// Walked over like an empty cell.
    Floor(Color),
    /// A door in one of its [`DoorState`]s.
    Door(Color, DoorState),
    /// Picked up; opens the locked door of its colour.
    Key(Color),
    /// Picked up.
    Ball(Color),
    /// Picked up; `toggle` opens it, which removes it (MiniGrid replaces a box by its
    /// contents, and no world here puts anything in a box).
    Box(Color),
    /// Stepping on it ends the episode with the success reward.
    Goal,
    /// Stepping on it ends the episode with reward 0.
    Lava,
}

/// A cell: an object or nothing (MiniGrid's `None`).
pub type Cell = Option<Object>;

impl Object {
    /// A wall in MiniGrid's default colour, which is also what lies outside the grid.
    pub const WALL: Object = Object::Wall(Color::Grey);

    /// The object's id ([`object_id`]).
    pub fn id(self) -> u8 {
        use object_id::*;
        match self {
            Object::Wall(_) => WALL,
            Object::Floor(_) => FLOOR,
            Object::Door(..) => DOOR,
            Object::Key(_) => KEY,
            Object::Ball(_) => BALL,
            Object::Box(_) => BOX,
            Object::Goal => GOAL,
            Object::Lava => LAVA,
        }
    }

    /// Its colour (goal green and lava red, as MiniGrid draws and encodes them).
    pub fn color(self) -> Color {
        match self {
            Object::Wall(c)
            | Object::Floor(c)
            | Object::Door(c, _)
            | Object::Key(c)
            | Object::Ball(c)
            | Object::Box(c) => c,
            Object::Goal => Color::Green,
            Object::Lava => Color::Red,
        }
    }

    /// MiniGrid's `encode`: (object id, colour id, state), the state 0 except for doors.
    pub fn encode(self) -> [u8; 3] {
        let state = match self {
            Object::Door(_, s) => s.id(),
            _ => 0,
        };
        [self.id(), self.color().id(), state]
    }

    /// Whether the agent may stand on it: floor, goal, lava and open doors.
    pub fn can_overlap(self) -> bool {
        matches!(
            self,
            Object::Floor(_) | Object::Goal | Object::Lava | Object::Door(_, DoorState::Open)
        )
    }

    /// Whether the agent may carry it: keys, balls and boxes.
    pub fn can_pickup(self) -> bool {
        matches!(self, Object::Key(_) | Object::Ball(_) | Object::Box(_))
    }

    /// Whether sight passes through it: everything but walls and closed or locked doors.
    pub fn see_behind(self) -> bool {
        match self {
            Object::Wall(_) => false,
            Object::Door(_, state) => state == DoorState::Open,
            _ => true,
        }
    }
}

/// The encoding of a visible cell: the object's, or (empty, 0, 0) for nothing.
pub fn encode_cell(cell: Cell) -> [u8; 3] {
    cell.map_or([object_id::EMPTY, 0, 0], Object::encode)
}

/// Largest grid side accepted, so sizes and step limits stay small numbers.
pub const MAX_SIDE: usize = 256;

/// A `width × height` grid of cells, x to the right and y down, as MiniGrid's `Grid`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grid {
    width: usize,
    height: usize,
    cells: Vec<Cell>,
}

impl Grid {
    /// An empty grid (no walls). Sides from 1 to [`MAX_SIDE`].
    pub fn new(width: usize, height: usize) -> Result<Self> {
        for (field, side) in [("width", width), ("height", height)] {
            if side == 0 || side > MAX_SIDE {
                return Err(Error::invalid(
                    "rl::Grid",
                    format!("{field} {side} is outside 1..={MAX_SIDE}"),
                ));
            }
        }
        Ok(Grid {
            width,
            height,
            cells: vec![None; width * height],
        })
    }

    /// Columns.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Rows.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Whether (x, y) is inside.
    pub fn contains(&self, x: i64, y: i64) -> bool {
        x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height
    }

    /// The cell at (x, y); outside the grid a grey wall, as MiniGrid pads the agent's view.
    pub fn get(&self, x: i64, y: i64) -> Cell {
        if self.contains(x, y) {
            self.cells[y as usize * self.width + x as usize]
        } else {
            Some(Object::WALL)
        }
    }

    /// Puts `cell` at (x, y); an error outside the grid.
    pub fn set(&mut self, x: i64, y: i64, cell: Cell) -> Result<()> {
        if !self.contains(x, y) {
            return Err(Error::invalid(
                "rl::Grid::set",
                format!(
                    "({x}, {y}) is outside the {}x{} grid",
                    self.width, self.height
                ),
            ));
        }
        self.cells[y as usize * self.width + x as usize] = cell;
        Ok(())
    }

    /// Walls around the border (MiniGrid's `wall_rect(0, 0, width, height)`).
    pub fn wall_border(&mut self) {
        let (w, h) = (self.width, self.height);
        for x in 0..w {
            self.cells[x] = Some(Object::WALL);
            self.cells[(h - 1) * w + x] = Some(Object::WALL);
        }
        for y in 0..h {
            self.cells[y * w] = Some(Object::WALL);
            self.cells[y * w + w - 1] = Some(Object::WALL);
        }
    }
}
