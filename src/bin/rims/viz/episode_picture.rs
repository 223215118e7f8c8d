//! Drawing the episode picture: the world before each action as MiniGrid draws it (walls grey,
//! floor black, goal green, lava orange, keys, balls, boxes and doors in their colours, the
//! agent a red triangle pointing where it faces, its 7×7 view lightened), rows of frames with
//! the action under each, and below them the mechanism map: one row per mechanism, one column
//! per step, filled where the mechanism was active.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use rims::rl::env::DIR_TO_VEC;
use rims::rl::view::{VIEW, view_to_world};
use rims::rl::{Color as Hue, DoorState, Env, Object};

use super::draw::{ACTIVE, Area, Drawn, INACTIVE, PHASE_LINE, WIDTH, Y_LABELS, centred, text};
use super::episode::EpisodeFigure;

/// Space left and right of the frames.
const MARGIN: u32 = 16;
/// Pixels between frames, and between rows of frames.
const GAP: u32 = 10;
/// Height of the action label under a frame.
const LABEL_H: u32 = 18;
/// The two title lines.
const HEAD_H: u32 = 58;
/// The two lines of notes between the frames and the map.
const NOTE_H: u32 = 44;
/// Where the map's columns end (the activity percentages go to the right).
const MAP_RIGHT: u32 = WIDTH - 80;

const FLOOR: RGBColor = RGBColor(0, 0, 0);
const GRID_LINE: RGBColor = RGBColor(48, 48, 48);
const LAVA: RGBColor = RGBColor(255, 128, 0);
const AGENT: RGBColor = RGBColor(255, 0, 0);
const VIEW_EDGE: RGBColor = RGBColor(215, 215, 215);
/// How far the agent's view is lightened towards white.
const VIEW_LIGHT: f64 = 0.22;

/// MiniGrid's `COLORS`.
fn colour(c: Hue) -> RGBColor {
    match c {
        Hue::Red => RGBColor(255, 0, 0),
        Hue::Green => RGBColor(0, 255, 0),
        Hue::Blue => RGBColor(0, 0, 255),
        Hue::Purple => RGBColor(112, 39, 195),
        Hue::Yellow => RGBColor(255, 255, 0),
        Hue::Grey => RGBColor(100, 100, 100),
    }
}

/// `c` moved the fraction `f` of the way to `to`.
fn towards(c: RGBColor, to: RGBColor, f: f64) -> RGBColor {
    let m = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * f).round() as u8;
    RGBColor(m(c.0, to.0), m(c.1, to.1), m(c.2, to.2))
}

impl EpisodeFigure {
    /// The grid's columns and rows.
    fn grid_dims(&self) -> (u32, u32) {
        self.envs.first().map_or((1, 1), |e| {
            (e.grid().width() as u32, e.grid().height() as u32)
        })
    }

    /// Side of one grid cell in pixels.
    fn cell_px(&self) -> u32 {
        let (w, h) = self.grid_dims();
        (100 / w.max(h).max(1)).clamp(3, 24)
    }

    fn frame_px(&self) -> (u32, u32) {
        let (w, h) = self.grid_dims();
        (w * self.cell_px(), h * self.cell_px())
    }

    fn per_row(&self) -> usize {
        let (fw, _) = self.frame_px();
        (((WIDTH - 2 * MARGIN + GAP) / (fw + GAP)) as usize).max(1)
    }

    fn frames_h(&self) -> u32 {
        let rows = self.envs.len().div_ceil(self.per_row()) as u32;
        rows * (self.frame_px().1 + LABEL_H + GAP)
    }

    fn map_row_h(&self) -> u32 {
        (160 / self.mechanisms.max(1) as u32).clamp(6, 18)
    }

    fn map_h(&self) -> u32 {
        24 + self.map_row_h() * self.mechanisms as u32 + 44
    }

    pub(super) fn size(&self) -> (u32, u32) {
        (WIDTH, HEAD_H + self.frames_h() + NOTE_H + self.map_h() + 8)
    }
}

pub(super) fn draw_episode(root: &Area<'_>, fig: &EpisodeFigure) -> Drawn {
    let left = Pos::new(HPos::Left, VPos::Center);
    root.draw(&Text::new(
        fig.title.clone(),
        (MARGIN as i32, 18),
        text(19).pos(left),
    ))?;
    root.draw(&Text::new(
        fig.subtitle.clone(),
        (MARGIN as i32, 42),
        text(13).color(&RGBColor(80, 80, 80)).pos(left),
    ))?;
    let (_, rest) = root.split_vertically(HEAD_H);
    let (frames, rest) = rest.split_vertically(fig.frames_h());
    let (note, map) = rest.split_vertically(NOTE_H);
    draw_frames(&frames, fig)?;
    let shown = if fig.envs.len() < fig.total_frames {
        format!(
            "the first {} of the episode's {} frames (up to the orange line on the map), each \
             before the action under it",
            fig.envs.len(),
            fig.total_frames
        )
    } else {
        format!(
            "all {} frames, each before the action under it",
            fig.total_frames
        )
    };
    note.draw(&Text::new(
        format!("{shown}."),
        (MARGIN as i32, 10),
        text(13).pos(left),
    ))?;
    note.draw(&Text::new(
        "Red triangle: the agent, pointing where it faces; lighter cells: its 7x7 view; a locked \
         door is filled, a closed one outlined, an open one a thin frame.",
        (MARGIN as i32, 28),
        text(13).pos(left),
    ))?;
    draw_map(&map, fig)
}

fn draw_frames(area: &Area<'_>, fig: &EpisodeFigure) -> Drawn {
    let (fw, fh) = fig.frame_px();
    let per_row = fig.per_row();
    for (i, (env, label)) in fig.envs.iter().zip(&fig.labels).enumerate() {
        let (row, col) = ((i / per_row) as u32, (i % per_row) as u32);
        let x0 = (MARGIN + col * (fw + GAP)) as i32;
        let y0 = (row * (fh + LABEL_H + GAP)) as i32;
        draw_world(area, env, (x0, y0), fig.cell_px() as i32)?;
        area.draw(&Text::new(
            label.clone(),
            (x0 + fw as i32 / 2, y0 + fh as i32 + LABEL_H as i32 / 2 + 1),
            centred(12),
        ))?;
    }
    Ok(())
}

/// One frame: `env`'s grid with its top-left corner at `at`, `cell` pixels a cell.
fn draw_world(area: &Area<'_>, env: &Env, at: (i32, i32), cell: i32) -> Drawn {
    let grid = env.grid();
    let (w, h) = (grid.width() as i64, grid.height() as i64);
    let mut in_view = vec![false; (w * h) as usize];
    let (mut lo, mut hi) = ((i64::MAX, i64::MAX), (i64::MIN, i64::MIN));
    for vx in 0..VIEW {
        for vy in 0..VIEW {
            let (x, y) = view_to_world(env, vx, vy);
            if grid.contains(x, y) {
                in_view[(y * w + x) as usize] = true;
                lo = (lo.0.min(x), lo.1.min(y));
                hi = (hi.0.max(x), hi.1.max(y));
            }
        }
    }
    // Grid lines where cells are large enough to show them.
    let line = i32::from(cell >= 8);
    let corner = |x: i64, y: i64| (at.0 + x as i32 * cell, at.1 + y as i32 * cell);
    area.draw(&Rectangle::new([at, corner(w, h)], GRID_LINE.filled()))?;
    for y in 0..h {
        for x in 0..w {
            let obj = grid.get(x, y);
            let base = match obj {
                None | Some(Object::Key(_) | Object::Ball(_) | Object::Box(_)) => FLOOR,
                Some(Object::Door(_, DoorState::Open | DoorState::Closed)) => FLOOR,
                Some(Object::Wall(c) | Object::Door(c, DoorState::Locked)) => colour(c),
                Some(Object::Floor(c)) => towards(colour(c), FLOOR, 0.5),
                Some(Object::Goal) => colour(Hue::Green),
                Some(Object::Lava) => LAVA,
            };
            let lit = in_view[(y * w + x) as usize];
            let light = |c: RGBColor| {
                if lit {
                    towards(c, WHITE, VIEW_LIGHT)
                } else {
                    c
                }
            };
            let (px, py) = corner(x, y);
            area.draw(&Rectangle::new(
                [(px, py), (px + cell - 1 - line, py + cell - 1 - line)],
                light(base).filled(),
            ))?;
            if let Some(o) = obj {
                draw_object(area, o, (px, py), cell, &light)?;
            }
        }
    }
    // The view's edge, where it lies inside the grid.
    if lo.0 <= hi.0 {
        area.draw(&Rectangle::new(
            [corner(lo.0, lo.1), corner(hi.0 + 1, hi.1 + 1)],
            VIEW_EDGE.stroke_width(1),
        ))?;
    }
    // The agent: a triangle pointing where it faces.
    let (ax, ay) = env.agent_pos();
    let (dx, dy) = DIR_TO_VEC[env.agent_dir() as usize];
    let (cx, cy) = corner(ax, ay);
    let (cx, cy) = (cx as f64 + cell as f64 / 2.0, cy as f64 + cell as f64 / 2.0);
    let point = |fx: f64, fy: f64| {
        // (fx, fy) in cells, relative to the centre, facing +x; turned to face (dx, dy).
        let (rx, ry) = (
            fx * dx as f64 - fy * dy as f64,
            fx * dy as f64 + fy * dx as f64,
        );
        (
            (cx + rx * cell as f64).round() as i32,
            (cy + ry * cell as f64).round() as i32,
        )
    };
    area.draw(&Polygon::new(
        vec![point(0.38, 0.0), point(-0.3, -0.3), point(-0.3, 0.3)],
        AGENT.filled(),
    ))?;
    // What it carries, as a small swatch of its colour in the cell's corner.
    if let Some(o) = env.carrying().filter(|_| cell >= 8) {
        let (px, py) = corner(ax, ay);
        let s = (cell / 3).max(3);
        area.draw(&Rectangle::new(
            [(px + cell - s - 1, py + 1), (px + cell - 2, py + s)],
            colour(o.color()).filled(),
        ))?;
    }
    Ok(())
}

/// An object drawn over its cell's background (walls, floor tiles, goal, lava and locked
/// doors are the background itself).
fn draw_object(
    area: &Area<'_>,
    obj: Object,
    (px, py): (i32, i32),
    cell: i32,
    light: &dyn Fn(RGBColor) -> RGBColor,
) -> Drawn {
    let at = |fx: f64, fy: f64| {
        (
            px + (fx * cell as f64).round() as i32,
            py + (fy * cell as f64).round() as i32,
        )
    };
    let stroke = if cell >= 12 { 2 } else { 1 };
    match obj {
        Object::Key(c) => {
            let c = light(colour(c));
            let r = ((cell as f64) * 0.17).round().max(1.0) as i32;
            area.draw(&Circle::new(at(0.5, 0.3), r, c.filled()))?;
            area.draw(&Rectangle::new([at(0.44, 0.4), at(0.56, 0.85)], c.filled()))?;
            area.draw(&Rectangle::new([at(0.56, 0.62), at(0.7, 0.7)], c.filled()))?;
            area.draw(&Rectangle::new(
                [at(0.56, 0.76), at(0.66, 0.84)],
                c.filled(),
            ))?;
        }
        Object::Ball(c) => {
            let r = ((cell as f64) * 0.3).round().max(1.0) as i32;
            area.draw(&Circle::new(at(0.5, 0.5), r, light(colour(c)).filled()))?;
        }
        Object::Box(c) => {
            area.draw(&Rectangle::new(
                [at(0.15, 0.15), at(0.85, 0.85)],
                light(colour(c)).stroke_width(stroke),
            ))?;
        }
        Object::Door(_, DoorState::Locked) => {
            // Filled (the background); a dark keyhole where there is room.
            if cell >= 10 {
                area.draw(&Rectangle::new(
                    [at(0.45, 0.4), at(0.55, 0.62)],
                    light(FLOOR).filled(),
                ))?;
            }
        }
        Object::Door(c, DoorState::Closed) => {
            let c = light(colour(c));
            area.draw(&Rectangle::new(
                [at(0.06, 0.06), at(0.92, 0.92)],
                c.stroke_width(stroke),
            ))?;
            if cell >= 10 {
                let r = ((cell as f64) * 0.07).round().max(1.0) as i32;
                area.draw(&Circle::new(at(0.75, 0.5), r, c.filled()))?;
            }
        }
        Object::Door(c, DoorState::Open) => {
            area.draw(&Rectangle::new(
                [at(0.0, 0.0), at(0.94, 0.94)],
                light(colour(c)).stroke_width(1),
            ))?;
        }
        Object::Wall(_) | Object::Floor(_) | Object::Goal | Object::Lava => {}
    }
    Ok(())
}

/// A step interval that puts at most about a dozen labels on the map's time axis.
fn tick_every(steps: usize) -> usize {
    [
        1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000,
    ]
    .into_iter()
    .find(|&t| steps / t <= 12)
    .unwrap_or(10_000)
}

/// The mechanism map: one row per mechanism, one column per step, filled where active; each
/// row's share of active steps on the right.
fn draw_map(area: &Area<'_>, fig: &EpisodeFigure) -> Drawn {
    let steps = fig.masks.len();
    let n = fig.mechanisms;
    let caption = if fig.dense {
        format!(
            "the dense core at each of the {steps} steps (one unit, always active: nothing is \
             selected)"
        )
    } else {
        format!("mechanisms active at each of the {steps} steps (filled = active)")
    };
    area.draw(&Text::new(
        caption,
        (Y_LABELS as i32, 10),
        text(14).pos(Pos::new(HPos::Left, VPos::Center)),
    ))?;
    let row_h = fig.map_row_h() as i32;
    let top = 24;
    let bottom = top + row_h * n as i32;
    let width = (MAP_RIGHT - Y_LABELS) as f64;
    let x_of = |t: usize| Y_LABELS as i32 + (t as f64 * width / steps.max(1) as f64).round() as i32;
    let right = Pos::new(HPos::Right, VPos::Center);
    let label_size = if row_h >= 12 { 12 } else { 10 };
    for m in 0..n {
        let y0 = top + m as i32 * row_h;
        let name = if fig.dense {
            "core".to_string()
        } else {
            m.to_string()
        };
        if row_h >= 10 || m % 2 == 0 {
            area.draw(&Text::new(
                name,
                (Y_LABELS as i32 - 8, y0 + row_h / 2),
                text(label_size).pos(right),
            ))?;
        }
        let gap = i32::from(row_h >= 8);
        area.draw(&Rectangle::new(
            [(x_of(0), y0), (x_of(steps) - 1, y0 + row_h - 1 - gap)],
            INACTIVE.filled(),
        ))?;
        let mut t = 0;
        let mut active = 0;
        while t < steps {
            if !fig.masks[t][m] {
                t += 1;
                continue;
            }
            let start = t;
            while t < steps && fig.masks[t][m] {
                t += 1;
            }
            active += t - start;
            area.draw(&Rectangle::new(
                [
                    (x_of(start), y0),
                    ((x_of(t) - 1).max(x_of(start)), y0 + row_h - 1 - gap),
                ],
                ACTIVE.filled(),
            ))?;
        }
        if row_h >= 10 || m % 2 == 0 {
            area.draw(&Text::new(
                format!("{:.0}%", 100.0 * active as f64 / steps.max(1) as f64),
                (MAP_RIGHT as i32 + 8, y0 + row_h / 2),
                text(label_size).pos(Pos::new(HPos::Left, VPos::Center)),
            ))?;
        }
    }
    // Where the drawn frames end, when the episode is longer.
    let drawn = fig.envs.len();
    if drawn < fig.total_frames && drawn < steps {
        let x = x_of(drawn);
        area.draw(&PathElement::new(
            vec![(x, top - 4), (x, bottom + 3)],
            PHASE_LINE.stroke_width(2),
        ))?;
    }
    // The time axis.
    area.draw(&PathElement::new(
        vec![(x_of(0), bottom + 2), (x_of(steps), bottom + 2)],
        BLACK.stroke_width(1),
    ))?;
    let every = tick_every(steps);
    for t in (0..=steps).step_by(every) {
        let x = x_of(t);
        area.draw(&PathElement::new(
            vec![(x, bottom + 2), (x, bottom + 6)],
            BLACK.stroke_width(1),
        ))?;
        area.draw(&Text::new(t.to_string(), (x, bottom + 15), centred(12)))?;
    }
    area.draw(&Text::new(
        "step",
        ((x_of(0) + x_of(steps)) / 2, bottom + 32),
        centred(13),
    ))?;
    Ok(())
}
