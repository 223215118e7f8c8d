//! The agent's observation as MiniGrid encodes it (`MiniGridEnv.gen_obs`): the 7×7 cells ahead
//! of the agent, turned so that the agent sits at the bottom centre facing up, cells hidden
//! behind walls and closed doors blanked (`Grid.process_vis`), each cell as (object, colour,
//! state).

use super::env::{DIR_TO_VEC, Env};
use super::grid::{Cell, encode_cell};

/// The view's side, MiniGrid's default `agent_view_size`.
pub const VIEW: usize = 7;
/// Bytes of one encoded view: `VIEW × VIEW × 3`.
pub const IMAGE_LEN: usize = VIEW * VIEW * 3;
/// Where the agent is in its own view: column 3 of the bottom row.
pub const AGENT_IN_VIEW: (usize, usize) = (VIEW / 2, VIEW - 1);

/// The byte offset of view cell (column `vx`, row `vy`) in an image: MiniGrid's
/// `obs["image"][vx, vy]` order (column-major, as its arrays are indexed `[i, j]`), so
/// `image[view_index(vx, vy) + c]` is channel `c` (0 object, 1 colour, 2 state).
pub fn view_index(vx: usize, vy: usize) -> usize {
    (vx * VIEW + vy) * 3
}

/// The world cell seen at view cell (vx, vy). Row 6 is the agent's row, row 0 the farthest;
/// column 3 is straight ahead, higher columns to the agent's right. This is what MiniGrid's
/// `get_view_exts` slice turned by `agent_dir + 1` quarter turns to the left gives, written as
/// the map it is: agent + forward·(6 − vy) + right·(vx − 3).
pub fn view_to_world(env: &Env, vx: usize, vy: usize) -> (i64, i64) {
    let (dx, dy) = DIR_TO_VEC[env.agent_dir() as usize];
    let (rx, ry) = (-dy, dx);
    let ahead = (VIEW - 1 - vy) as i64;
    let side = vx as i64 - (VIEW / 2) as i64;
    let (ax, ay) = env.agent_pos();
    (ax + dx * ahead + rx * side, ay + dy * ahead + ry * side)
}

/// The view's cells, indexed `[vx][vy]`, cells outside the grid walls (MiniGrid's `slice`).
fn view_cells(env: &Env) -> [[Cell; VIEW]; VIEW] {
    let mut cells = [[None; VIEW]; VIEW];
    for (vx, column) in cells.iter_mut().enumerate() {
        for (vy, cell) in column.iter_mut().enumerate() {
            let (x, y) = view_to_world(env, vx, vy);
            *cell = env.grid().get(x, y);
        }
    }
    cells
}

/// MiniGrid's `process_vis`: visibility spreads from the agent row by row, from the bottom up,
/// sideways and diagonally forward, out of every visible cell that sight passes through. A
/// wall or closed door is itself seen but hides what lies behind it.
pub fn visibility(cells: &[[Cell; VIEW]; VIEW]) -> [[bool; VIEW]; VIEW] {
    let mut mask = [[false; VIEW]; VIEW];
    let (ax, ay) = AGENT_IN_VIEW;
    mask[ax][ay] = true;
    let clear = |i: usize, j: usize| cells[i][j].is_none_or(|o| o.see_behind());
    for j in (0..VIEW).rev() {
        for i in 0..VIEW - 1 {
            if !mask[i][j] || !clear(i, j) {
                continue;
            }
            mask[i + 1][j] = true;
            if j > 0 {
                mask[i + 1][j - 1] = true;
                mask[i][j - 1] = true;
            }
        }
        for i in (1..VIEW).rev() {
            if !mask[i][j] || !clear(i, j) {
                continue;
            }
            mask[i - 1][j] = true;
            if j > 0 {
                mask[i - 1][j - 1] = true;
                mask[i][j - 1] = true;
            }
        }
    }
    mask
}

/// The encoded view into `image` ([`IMAGE_LEN`] bytes, [`view_index`] order): visible cells
/// as their objects, (1, 0, 0) when empty, hidden ones (0, 0, 0); the agent's own cell shows
/// what it carries (empty when nothing), as MiniGrid puts the carried object there.
pub fn encode_view(env: &Env, image: &mut [u8]) {
    let mut cells = view_cells(env);
    let mask = if env.rules().see_through_walls {
        [[true; VIEW]; VIEW]
    } else {
        visibility(&cells)
    };
    let (ax, ay) = AGENT_IN_VIEW;
    cells[ax][ay] = env.carrying();
    for vx in 0..VIEW {
        for vy in 0..VIEW {
            let at = view_index(vx, vy);
            let code = if mask[vx][vy] {
                encode_cell(cells[vx][vy])
            } else {
                [0; 3]
            };
            image[at..at + 3].copy_from_slice(&code);
        }
    }
}

/// One environment's observation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    /// The encoded view, [`IMAGE_LEN`] bytes in [`view_index`] order.
    pub image: [u8; IMAGE_LEN],
    /// The agent's direction, 0..=3 (MiniGrid's `obs["direction"]`).
    pub direction: u8,
}

impl Observation {
    /// The observation of `env` now.
    pub fn of(env: &Env) -> Self {
        let mut image = [0; IMAGE_LEN];
        encode_view(env, &mut image);
        Observation {
            image,
            direction: env.agent_dir(),
        }
    }

    /// The (object, colour, state) at view cell (vx, vy); `None` outside the view.
    pub fn cell(&self, vx: usize, vy: usize) -> Option<[u8; 3]> {
        if vx >= VIEW || vy >= VIEW {
            return None;
        }
        let at = view_index(vx, vy);
        Some([self.image[at], self.image[at + 1], self.image[at + 2]])
    }
}
