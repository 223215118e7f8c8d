//! Scenes drawn as text, one character a cell, and a breadth-first planner over the agent's
//! turns and moves.

use std::collections::VecDeque;

use rims::rl::{Action, Color, DoorState, Env, Grid, Object, Rules};

/// The object a character stands for: `#` wall, space or `.` nothing, `G` goal, `V` lava,
/// `F` blue floor, `K` yellow key, `k` blue key, `L` locked yellow door, `D` closed yellow
/// door, `O` open yellow door, `A` red ball, `B` purple box. `>`, `v`, `<`, `^` is the agent
/// facing right, down, left, up, on an empty cell.
fn object(c: char) -> Option<Object> {
    Some(match c {
        '#' => Object::WALL,
        'G' => Object::Goal,
        'V' => Object::Lava,
        'F' => Object::Floor(Color::Blue),
        'K' => Object::Key(Color::Yellow),
        'k' => Object::Key(Color::Blue),
        'L' => Object::Door(Color::Yellow, DoorState::Locked),
        'D' => Object::Door(Color::Yellow, DoorState::Closed),
        'O' => Object::Door(Color::Yellow, DoorState::Open),
        'A' => Object::Ball(Color::Red),
        'B' => Object::Box(Color::Purple),
        ' ' | '.' | '>' | 'v' | '<' | '^' => return None,
        other => panic!("no object is drawn as {other:?}"),
    })
}

/// The scene drawn by `rows` under `rules`.
pub fn scene_with(rows: &[&str], rules: Rules) -> Env {
    let mut grid = Grid::new(rows[0].len(), rows.len()).unwrap();
    let mut agent = None;
    for (y, row) in rows.iter().enumerate() {
        assert_eq!(row.len(), rows[0].len(), "row {y} has another width");
        for (x, c) in row.chars().enumerate() {
            grid.set(x as i64, y as i64, object(c)).unwrap();
            if let Some(dir) = ">v<^".find(c) {
                agent = Some(((x as i64, y as i64), dir as u8));
            }
        }
    }
    let (pos, dir) = agent.expect("the picture has no agent");
    Env::new(grid, pos, dir, rules).unwrap()
}

/// The scene drawn by `rows`, 100 steps, with occlusion.
pub fn scene(rows: &[&str]) -> Env {
    scene_with(rows, Rules::new(100))
}

/// Steps `env` through `actions`, asserting that no episode ends on the way.
pub fn play(env: &mut Env, actions: &[Action]) {
    for &a in actions {
        let out = env.step(a);
        assert!(!out.done(), "the episode ended at {a:?}:\n{env}");
    }
}

/// The shortest list of turns and moves that brings the agent to a pose (position,
/// direction) where `arrived` holds, walking only over cells it can overlap (never lava).
pub fn plan(env: &Env, arrived: impl Fn((i64, i64), u8) -> bool) -> Option<Vec<Action>> {
    let (w, h) = (env.grid().width() as i64, env.grid().height() as i64);
    let index = |p: (i64, i64), d: u8| ((p.1 * w + p.0) * 4 + d as i64) as usize;
    let mut came: Vec<Option<(usize, Action)>> = vec![None; (w * h * 4) as usize];
    let mut seen = vec![false; came.len()];
    let start = (env.agent_pos(), env.agent_dir());
    seen[index(start.0, start.1)] = true;
    let mut queue = VecDeque::from([start]);
    let vec = [(1, 0), (0, 1), (-1, 0), (0, -1)];
    while let Some((p, d)) = queue.pop_front() {
        if arrived(p, d) {
            let mut actions = Vec::new();
            let mut at = index(p, d);
            while let Some((from, a)) = came[at] {
                actions.push(a);
                at = from;
            }
            actions.reverse();
            return Some(actions);
        }
        let (dx, dy) = vec[d as usize];
        let front = (p.0 + dx, p.1 + dy);
        let walkable = match env.grid().get(front.0, front.1) {
            None => true,
            Some(Object::Lava) => false,
            Some(o) => o.can_overlap(),
        };
        let mut next = vec![
            ((p, (d + 3) % 4), Action::Left),
            ((p, (d + 1) % 4), Action::Right),
        ];
        if walkable {
            next.push(((front, d), Action::Forward));
        }
        for ((q, e), a) in next {
            let i = index(q, e);
            if !seen[i] {
                seen[i] = true;
                came[i] = Some((index(p, d), a));
                queue.push_back((q, e));
            }
        }
    }
    None
}

/// The first cell holding `object`, scanning rows top to bottom.
pub fn find(env: &Env, object: Object) -> Option<(i64, i64)> {
    let g = env.grid();
    (0..g.height() as i64)
        .flat_map(|y| (0..g.width() as i64).map(move |x| (x, y)))
        .find(|&(x, y)| g.get(x, y) == Some(object))
}

/// The cell in front of pose (p, d).
pub fn ahead(p: (i64, i64), d: u8) -> (i64, i64) {
    let (dx, dy) = [(1, 0), (0, 1), (-1, 0), (0, -1)][d as usize];
    (p.0 + dx, p.1 + dy)
}
