//! The observation as MiniGrid's `gen_obs` makes it: 7×7 cells ahead of the agent, turned so
//! it faces up from the bottom centre, hidden cells (0, 0, 0), in `obs["image"][x, y]` order.

use rims::rl::view::{AGENT_IN_VIEW, view_index, view_to_world};
use rims::rl::{Action, EnvBatch, IMAGE_LEN, Observation, Rules, VIEW, World, episode_rng};

use super::support::{play, scene, scene_with};

const UNSEEN: [u8; 3] = [0, 0, 0];
const EMPTY: [u8; 3] = [1, 0, 0];
const WALL: [u8; 3] = [2, 5, 0];
const GOAL: [u8; 3] = [8, 1, 0];

/// The view's object ids as a picture, row vy = 0 (farthest) first: `?` unseen, `.` empty,
/// `#` wall, `G` goal, `D` door, `K` key, `A` ball, `B` box.
fn picture(obs: &Observation) -> Vec<String> {
    (0..VIEW)
        .map(|vy| {
            (0..VIEW)
                .map(|vx| match obs.cell(vx, vy).unwrap()[0] {
                    0 => '?',
                    1 => '.',
                    2 => '#',
                    4 => 'D',
                    5 => 'K',
                    6 => 'A',
                    7 => 'B',
                    8 => 'G',
                    other => char::from_digit(other as u32, 16).unwrap(),
                })
                .collect()
        })
        .collect()
}

#[test]
fn layout_is_minigrids_column_major_image() {
    assert_eq!(IMAGE_LEN, 147);
    assert_eq!(AGENT_IN_VIEW, (3, 6));
    assert_eq!(view_index(0, 0), 0);
    assert_eq!(
        view_index(0, 1),
        3,
        "y is the fast index, as in image[x, y]"
    );
    assert_eq!(view_index(1, 0), 21);
    assert_eq!(view_index(6, 6), 144);
}

#[test]
fn empty_5x5_first_view_pads_with_walls_and_sees_through_them() {
    // Agent at (1, 1) facing right: view cell (vx, vy) is world (7 − vy, vx − 2).
    let batch = EnvBatch::new(World::parse("empty-5x5").unwrap(), 1, 0).unwrap();
    let obs = Observation::of(&batch.envs()[0]);
    assert_eq!(obs.direction, 0);
    let want = [
        "#######", "#######", "#######", "#######", "###..G#", "###...#", "###...#",
    ];
    assert_eq!(picture(&obs), want);
    assert_eq!(obs.cell(5, 4), Some(GOAL));
    assert_eq!(obs.cell(3, 6), Some(EMPTY), "the agent's own cell");
    assert_eq!(obs.cell(0, 0), Some(WALL), "outside the grid: grey walls");
    // The batch's images are the same bytes.
    assert_eq!(batch.observe().image(0).unwrap(), &obs.image[..]);
    assert_eq!(batch.observe().directions, [0]);
}

#[test]
fn the_view_turns_with_the_agent() {
    // A ball east, a key south, a box west and the goal north of the agent, two cells away.
    let rows = [
        "#########",
        "#       #",
        "#   G   #",
        "#       #",
        "# B ^ A #",
        "#       #",
        "#   K   #",
        "#       #",
        "#########",
    ];
    // For each direction, where each object is seen: (object id, vx, vy), None when behind.
    // Ahead is (3, 4); two to the right is (5, 6), two to the left (1, 6).
    type Seen = Option<(usize, usize)>;
    let table: [(u8, [Seen; 4]); 4] = [
        // facing right: ball ahead, key right, box behind, goal left.
        (0, [Some((3, 4)), Some((5, 6)), None, Some((1, 6))]),
        // facing down: ball left, key ahead, box right, goal behind.
        (1, [Some((1, 6)), Some((3, 4)), Some((5, 6)), None]),
        // facing left: ball behind, key left, box ahead, goal right.
        (2, [None, Some((1, 6)), Some((3, 4)), Some((5, 6))]),
        // facing up: ball right, key behind, box left, goal ahead.
        (3, [Some((5, 6)), None, Some((1, 6)), Some((3, 4))]),
    ];
    let codes = [[6, 0, 0], [5, 4, 0], [7, 3, 0], GOAL];
    let mut env = scene(&rows);
    for _ in 0..4 {
        play(&mut env, &[Action::Right]);
        let dir = env.agent_dir();
        let obs = Observation::of(&env);
        assert_eq!(obs.direction, dir);
        let (_, seen) = table.iter().find(|(d, _)| *d == dir).unwrap();
        for (code, at) in codes.iter().zip(seen) {
            let found: Vec<(usize, usize)> = (0..VIEW)
                .flat_map(|vx| (0..VIEW).map(move |vy| (vx, vy)))
                .filter(|&(vx, vy)| obs.cell(vx, vy) == Some(*code))
                .collect();
            assert_eq!(
                found,
                at.iter().copied().collect::<Vec<_>>(),
                "{code:?} facing {dir}"
            );
        }
        // The cell straight ahead is the world's front cell.
        assert_eq!(view_to_world(&env, 3, 5), env.front_pos());
    }
}

/// MiniGrid's own construction: the `get_view_exts` slice of the grid (walls outside), turned
/// `agent_dir + 1` times by `rotate_left`; the cell it puts at `[vx][vy]`.
fn minigrid_view_cell(env: &rims::rl::Env, vx: usize, vy: usize) -> Option<rims::rl::Object> {
    let n = VIEW as i64;
    let (ax, ay) = env.agent_pos();
    let (top_x, top_y) = match env.agent_dir() {
        0 => (ax, ay - n / 2),
        1 => (ax - n / 2, ay),
        2 => (ax - n + 1, ay - n / 2),
        _ => (ax - n / 2, ay - n + 1),
    };
    let mut cells: Vec<Vec<Option<rims::rl::Object>>> = (0..n)
        .map(|i| {
            (0..n)
                .map(|j| env.grid().get(top_x + i, top_y + j))
                .collect()
        })
        .collect();
    for _ in 0..=env.agent_dir() {
        // rotate_left: new[j][n − 1 − i] = old[i][j].
        let mut turned = cells.clone();
        for i in 0..VIEW {
            for j in 0..VIEW {
                turned[j][VIEW - 1 - i] = cells[i][j];
            }
        }
        cells = turned;
    }
    cells[vx][vy]
}

#[test]
fn the_view_map_is_minigrids_slice_and_rotations() {
    for name in ["doorkey-8x8", "doorkey-5x5", "memory-s7"] {
        let world = World::parse(name).unwrap();
        for seed in 0..40 {
            let env = world.generate(&mut episode_rng(seed, 0, 0)).unwrap();
            for vx in 0..VIEW {
                for vy in 0..VIEW {
                    let (x, y) = view_to_world(&env, vx, vy);
                    assert_eq!(
                        env.grid().get(x, y),
                        minigrid_view_cell(&env, vx, vy),
                        "{name} seed {seed} view ({vx}, {vy})"
                    );
                }
            }
        }
    }
}

const DOOR_ROOM: [&str; 8] = [
    "#########",
    "#   G   #",
    "#       #",
    "####D####",
    "#       #",
    "#       #",
    "#   ^   #",
    "#########",
];

#[test]
fn a_closed_door_occludes_until_opened() {
    let mut env = scene(&DOOR_ROOM);
    let obs = Observation::of(&env);
    assert_eq!(
        picture(&obs),
        [
            "???????", "???????", "???????", "###D###", ".......", ".......", "......."
        ]
    );
    assert_eq!(
        obs.cell(3, 3),
        Some([4, 4, 1]),
        "the closed door itself is seen"
    );
    play(
        &mut env,
        &[Action::Forward, Action::Forward, Action::Toggle],
    );
    let obs = Observation::of(&env);
    assert_eq!(obs.cell(3, 5), Some([4, 4, 0]), "open door in front");
    assert_eq!(obs.cell(3, 3), Some(GOAL), "seen through the open door");
    assert_eq!(
        picture(&obs),
        [
            "???????", "???????", "#######", "...G...", ".......", "###D###", "......."
        ]
    );
}

#[test]
fn locked_doors_and_walls_occlude_and_see_through_walls_does_not() {
    let locked: Vec<String> = DOOR_ROOM.iter().map(|r| r.replace('D', "L")).collect();
    let locked: Vec<&str> = locked.iter().map(String::as_str).collect();
    let walled: Vec<String> = DOOR_ROOM.iter().map(|r| r.replace('D', "#")).collect();
    let walled: Vec<&str> = walled.iter().map(String::as_str).collect();
    for (rows, middle) in [(&locked, "D"), (&walled, "#")] {
        let obs = Observation::of(&scene(rows));
        let pic = picture(&obs);
        assert_eq!(pic[..3], ["???????"; 3], "{middle}");
        assert_eq!(pic[3], format!("###{middle}###"));
    }
    assert_eq!(Observation::of(&scene(&locked)).cell(3, 3), Some([4, 4, 2]));
    let mut rules = Rules::new(100);
    rules.see_through_walls = true;
    let obs = Observation::of(&scene_with(&walled, rules));
    assert_eq!(obs.cell(3, 1), Some(GOAL));
    assert_eq!(obs.cell(3, 0), Some(WALL));
}

#[test]
fn a_wall_beside_the_agent_hides_the_far_side() {
    // A wall column right of the agent: MiniGrid's sideways spread stops at it, and the
    // diagonal spread from the row below does too, so nothing right of it is seen.
    let rows = [
        "#########",
        "#   # G #",
        "#   #   #",
        "#   #   #",
        "#   #   #",
        "#   #   #",
        "#  ^#   #",
        "#########",
    ];
    let obs = Observation::of(&scene(&rows));
    for vx in 5..VIEW {
        for vy in 0..VIEW {
            assert_eq!(obs.cell(vx, vy), Some(UNSEEN), "({vx}, {vy})");
        }
    }
    assert!((0..VIEW).all(|vy| obs.cell(4, vy) == Some(WALL)));
}

#[test]
fn the_agents_cell_shows_what_it_carries() {
    let mut env = scene(&["######", "#>K  #", "######"]);
    assert_eq!(Observation::of(&env).cell(3, 6), Some(EMPTY));
    play(&mut env, &[Action::Pickup]);
    let obs = Observation::of(&env);
    assert_eq!(obs.cell(3, 6), Some([5, 4, 0]));
    assert_eq!(obs.cell(3, 5), Some(EMPTY), "the key is no longer in front");
}
