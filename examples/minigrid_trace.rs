//! Plays MiniGrid layouts in rims's environments and prints what each step gives, for
//! `tools/minigrid_check.py`, which plays the same layouts and actions in the `minigrid` Python
//! package and compares the two step by step (docs/spec.md §7). Uses only the public API
//! (`rims::rl`).
//!
//! ```sh
//! cargo run --release --example minigrid_trace < episodes.jsonl > steps.jsonl
//! cargo run --release --example minigrid_trace -- --layouts doorkey-8x8 1000 0 > layouts.jsonl
//! ```
//!
//! **Trace mode** (default): stdin holds one episode per line (JSON):
//!
//! ```json
//! {"id": 7, "grid": [[[2,5,0], ...], ...], "agent_pos": [1,1], "agent_dir": 0,
//!  "max_steps": 100, "see_through_walls": true, "pickup_is_toggle": false,
//!  "exits": {"success": [5,2], "failure": [5,4]}, "actions": [2, 2, 1, 2]}
//! ```
//!
//! `grid[x][y]` is the cell's MiniGrid encoding (object, colour, state), as numpy's
//! `env.grid.encode().tolist()` gives it; `id` is echoed back (any JSON value);
//! `see_through_walls`, `pickup_is_toggle` and `exits` may be left out (false, false, none).
//! For each episode it prints one JSON line per step, step 0 being the first observation:
//! `{"id", "step", "image", "direction", "reward", "terminated", "truncated", "pos", "dir",
//! "carrying"}`, `image` the 147 bytes of the 7×7×3 view in MiniGrid's `obs["image"]` order
//! (`image[x, y, c]` at (x·7 + y)·3 + c), `carrying` an encoding or null. It stops at the end of
//! the episode (terminated or truncated) or of the actions.
//!
//! **Layout mode** (`--layouts WORLD N SEED`): prints the first `N` layouts rims's
//! `World::generate` draws for `WORLD` (episode k of environment 0 under `SEED`, as
//! `EnvBatch` draws them), one JSON line each in the input's form without actions.

use std::io::{self, BufRead, BufWriter, Write};
use std::process::ExitCode;

use rims::rl::grid::encode_cell;
use rims::rl::{
    Action, Cell, Color, DoorState, Env, Exits, Grid, Object, Observation, Rules, World,
    episode_rng,
};
use rims::{Error, Result};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
struct Episode {
    #[serde(default)]
    id: Value,
    grid: Vec<Vec<[u8; 3]>>,
    agent_pos: [i64; 2],
    agent_dir: u8,
    max_steps: u32,
    #[serde(default)]
    see_through_walls: bool,
    #[serde(default)]
    pickup_is_toggle: bool,
    #[serde(default)]
    exits: Option<ExitsIn>,
    #[serde(default)]
    actions: Vec<u32>,
}

#[derive(Deserialize)]
struct ExitsIn {
    success: [i64; 2],
    failure: [i64; 2],
}

fn bad(detail: String) -> Error {
    Error::invalid("minigrid_trace", detail)
}

/// MiniGrid's `WorldObj.decode`, for the objects rims has.
fn decode(code: [u8; 3]) -> Result<Cell> {
    let [object, color, state] = code;
    let colour = || {
        Color::ALL
            .get(color as usize)
            .copied()
            .ok_or_else(|| bad(format!("colour {color} in {code:?} is not 0..=5")))
    };
    Ok(Some(match object {
        1 => return Ok(None),
        2 => Object::Wall(colour()?),
        3 => Object::Floor(colour()?),
        4 => {
            let s = match state {
                0 => DoorState::Open,
                1 => DoorState::Closed,
                2 => DoorState::Locked,
                _ => return Err(bad(format!("door state {state} in {code:?}"))),
            };
            Object::Door(colour()?, s)
        }
        5 => Object::Key(colour()?),
        6 => Object::Ball(colour()?),
        7 => Object::Box(colour()?),
        8 | 9 => {
            let obj = if object == 8 {
                Object::Goal
            } else {
                Object::Lava
            };
            if obj.color().id() != color {
                return Err(bad(format!(
                    "{obj:?} of colour {color} (rims has one colour)"
                )));
            }
            obj
        }
        _ => {
            return Err(bad(format!(
                "object {object} in {code:?} is not a grid object"
            )));
        }
    }))
}

fn build(ep: &Episode) -> Result<Env> {
    let width = ep.grid.len();
    let height = ep.grid.first().map_or(0, Vec::len);
    let mut grid = Grid::new(width, height)?;
    for (x, column) in ep.grid.iter().enumerate() {
        if column.len() != height {
            return Err(bad(format!(
                "column {x} has {} cells, not {height}",
                column.len()
            )));
        }
        for (y, &code) in column.iter().enumerate() {
            grid.set(x as i64, y as i64, decode(code)?)?;
        }
    }
    let rules = Rules {
        see_through_walls: ep.see_through_walls,
        pickup_is_toggle: ep.pickup_is_toggle,
        exits: ep.exits.as_ref().map(|e| Exits {
            success: (e.success[0], e.success[1]),
            failure: (e.failure[0], e.failure[1]),
        }),
        ..Rules::new(ep.max_steps)
    };
    Env::new(
        grid,
        (ep.agent_pos[0], ep.agent_pos[1]),
        ep.agent_dir,
        rules,
    )
}

fn step_line(id: &Value, step: usize, env: &Env, reward: f32, term: bool, trunc: bool) -> Value {
    let obs = Observation::of(env);
    let (x, y) = env.agent_pos();
    json!({
        "id": id,
        "step": step,
        "image": obs.image.to_vec(),
        "direction": obs.direction,
        "reward": reward,
        "terminated": term,
        "truncated": trunc,
        "pos": [x, y],
        "dir": env.agent_dir(),
        "carrying": env.carrying().map(|o| o.encode()),
    })
}

fn trace(out: &mut impl Write) -> Result<()> {
    for (n, line) in io::stdin().lock().lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let ep: Episode =
            serde_json::from_str(&line).map_err(|e| bad(format!("input line {}: {e}", n + 1)))?;
        let mut env = build(&ep).map_err(|e| bad(format!("input line {}: {e}", n + 1)))?;
        writeln!(out, "{}", step_line(&ep.id, 0, &env, 0.0, false, false))?;
        for (t, &a) in ep.actions.iter().enumerate() {
            let outcome = env.step(Action::from_id(a)?);
            let line = step_line(
                &ep.id,
                t + 1,
                &env,
                outcome.reward,
                outcome.terminated,
                outcome.truncated,
            );
            writeln!(out, "{line}")?;
            if outcome.done() {
                break;
            }
        }
    }
    Ok(())
}

fn layouts(out: &mut impl Write, world: &str, n: u64, seed: u64) -> Result<()> {
    let world = World::parse(world)?;
    for k in 0..n {
        let env = world.generate(&mut episode_rng(seed, 0, k))?;
        let g = env.grid();
        let grid: Vec<Vec<[u8; 3]>> = (0..g.width() as i64)
            .map(|x| {
                (0..g.height() as i64)
                    .map(|y| encode_cell(g.get(x, y)))
                    .collect()
            })
            .collect();
        let r = env.rules();
        let (x, y) = env.agent_pos();
        let line = json!({
            "id": k,
            "grid": grid,
            "agent_pos": [x, y],
            "agent_dir": env.agent_dir(),
            "max_steps": r.max_steps,
            "see_through_walls": r.see_through_walls,
            "pickup_is_toggle": r.pickup_is_toggle,
            "exits": r.exits.map(|e| json!({
                "success": [e.success.0, e.success.1],
                "failure": [e.failure.0, e.failure.1],
            })),
        });
        writeln!(out, "{line}")?;
    }
    Ok(())
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    match args.as_slice() {
        [] => trace(&mut out)?,
        [flag, world, n, seed] if flag == "--layouts" => {
            let num = |s: &str| {
                s.parse::<u64>()
                    .map_err(|_| bad(format!("'{s}' is not a count")))
            };
            layouts(&mut out, world, num(n)?, num(seed)?)?
        }
        _ => {
            return Err(bad(
                "usage: minigrid_trace < episodes.jsonl | minigrid_trace --layouts WORLD N SEED"
                    .into(),
            ));
        }
    }
    out.flush()?;
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
