//! World names, MiniGrid's step limits and rules per family, and the layouts MiniGrid's
//! `_gen_grid`s draw (empty.py, doorkey.py, memory.py), checked over many seeds.

use std::collections::BTreeSet;

use rims::Error;
use rims::rl::world::NAMES;
use rims::rl::{Color, DoorState, Env, Object, World, episode_rng};

fn generate(name: &str, seed: u64) -> Env {
    World::parse(name)
        .unwrap()
        .generate(&mut episode_rng(seed, 0, 0))
        .unwrap()
}

#[test]
fn names_parse_and_print_back() {
    for name in NAMES {
        let world = World::parse(name).unwrap();
        assert_eq!(world.to_string(), *name);
    }
    assert_eq!(
        World::parse("DoorKey-8x8").unwrap(),
        World::DoorKey { size: 8 }
    );
    assert_eq!(
        World::parse("memory-s9").unwrap(),
        World::Memory { size: 9 }
    );
    assert_eq!(World::parse("empty-4x4").unwrap(), World::Empty { size: 4 });
}

#[test]
fn bad_names_and_sizes_are_config_errors_naming_them() {
    for bad in [
        "",
        "empty",
        "cave-5x5",
        "empty-5",
        "empty-5x6",
        "empty-axb",
        "empty-3x3",
        "doorkey-4x4",
        "doorkey-65x65",
        "memory-7",
        "memory-s8",
        "memory-s5",
        "memory-sx",
    ] {
        match World::parse(bad) {
            Err(Error::Config { field, reason }) => {
                assert_eq!(field, "world");
                assert!(reason.contains(&format!("'{bad}'")), "{reason}");
                assert!(reason.contains("doorkey-8x8"), "lists the worlds: {reason}");
            }
            other => panic!("{bad:?} gave {other:?}"),
        }
    }
    let err = World::parse("doorkey-4x4").unwrap_err().to_string();
    assert!(err.contains("outside 5..=64"), "{err}");
    assert!(
        World::DoorKey { size: 3 }
            .generate(&mut episode_rng(0, 0, 0))
            .is_err()
    );
}

#[test]
fn step_limits_and_rules_are_minigrids() {
    let limits = [
        ("empty-5x5", 100),
        ("empty-6x6", 144),
        ("empty-8x8", 256),
        ("empty-16x16", 1024),
        ("doorkey-5x5", 250),
        ("doorkey-6x6", 360),
        ("doorkey-8x8", 640),
        ("doorkey-16x16", 2560),
        ("memory-s7", 245),
    ];
    for (name, steps) in limits {
        let world = World::parse(name).unwrap();
        assert_eq!(world.max_steps(), steps, "{name}");
        let rules = world.rules();
        assert_eq!(rules.max_steps, steps);
        assert_eq!(rules.see_through_walls, name.starts_with("empty"), "{name}");
        assert_eq!(rules.pickup_is_toggle, name.starts_with("memory"), "{name}");
        assert_eq!(generate(name, 3).rules().max_steps, steps);
    }
}

/// Every cell's object, as a set of (x, y, object).
fn objects(env: &Env) -> Vec<((i64, i64), Object)> {
    let g = env.grid();
    let mut out = Vec::new();
    for y in 0..g.height() as i64 {
        for x in 0..g.width() as i64 {
            if let Some(o) = g.get(x, y) {
                out.push(((x, y), o));
            }
        }
    }
    out
}

fn is_border(n: i64, (x, y): (i64, i64)) -> bool {
    x == 0 || y == 0 || x == n - 1 || y == n - 1
}

#[test]
fn empty_is_a_walled_room_with_the_goal_in_the_corner() {
    for size in [5, 6, 8, 16] {
        let env = generate(&format!("empty-{size}x{size}"), size as u64);
        let n = size as i64;
        assert_eq!(env.agent_pos(), (1, 1));
        assert_eq!(env.agent_dir(), 0);
        for (p, o) in objects(&env) {
            if is_border(n, p) {
                assert_eq!(o, Object::WALL);
            } else {
                assert_eq!((p, o), ((n - 2, n - 2), Object::Goal));
            }
        }
        assert_eq!(objects(&env).len() as i64, 4 * (n - 1) + 1);
    }
}

#[test]
fn doorkey_layouts_follow_minigrid() {
    for size in [5i64, 6, 8, 16] {
        let name = format!("doorkey-{size}x{size}");
        let (mut splits, mut doors, mut dirs) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
        for seed in 0..300 {
            let env = generate(&name, seed);
            let n = size;
            let objs = objects(&env);
            let door: Vec<_> = objs
                .iter()
                .filter(|(_, o)| matches!(o, Object::Door(..)))
                .collect();
            assert_eq!(door.len(), 1);
            let ((sx, dy), door) = *door[0];
            assert_eq!(door, Object::Door(Color::Yellow, DoorState::Locked));
            assert!((2..=n - 3).contains(&sx), "split {sx}");
            assert!((1..=n - 3).contains(&dy), "door row {dy}");
            let keys: Vec<_> = objs
                .iter()
                .filter(|(_, o)| matches!(o, Object::Key(_)))
                .collect();
            assert_eq!(keys.len(), 1);
            let ((kx, _), key) = *keys[0];
            assert_eq!(key, Object::Key(Color::Yellow));
            assert!(kx >= 1 && kx < sx, "key left of the wall");
            let (ax, ay) = env.agent_pos();
            assert!(
                ax >= 1 && ax < sx && ay >= 1 && ay < n - 1,
                "agent left of the wall"
            );
            assert_eq!(env.grid().get(ax, ay), None);
            for (p, o) in &objs {
                match o {
                    Object::Wall(Color::Grey) => assert!(is_border(n, *p) || p.0 == sx),
                    Object::Goal => assert_eq!(*p, (n - 2, n - 2)),
                    Object::Door(..) | Object::Key(_) => {}
                    other => panic!("{other:?} in a DoorKey layout"),
                }
            }
            // The wall column is whole but for the door.
            for y in 0..n {
                assert!(env.grid().get(sx, y).is_some());
            }
            splits.insert(sx);
            doors.insert(dy);
            dirs.insert(env.agent_dir());
        }
        // The draws cover their ranges (300 seeds).
        // MiniGrid's `_rand_int(2, width - 2)` and `_rand_int(1, height - 2)`.
        assert_eq!(splits.len() as i64, size - 4, "{name} splits");
        assert_eq!(doors.len() as i64, size - 3, "{name} door rows");
        assert_eq!(dirs.len(), 4, "{name} directions");
    }
}

#[test]
fn memory_s7_is_minigrids_hallway() {
    // MemoryS7 without the objects: the start room (x 1..=3, y 2..=4), the gap at (4, 3), the
    // crossing column x = 5.
    let walls = [
        "#######", "#####.#", "#...#.#", "#.....#", "#...#.#", "#####.#", "#######",
    ];
    let mut starts = BTreeSet::new();
    let mut seen_success = BTreeSet::new();
    for seed in 0..200 {
        let env = generate("memory-s7", seed);
        for (y, row) in walls.iter().enumerate() {
            for (x, c) in row.chars().enumerate() {
                let cell = env.grid().get(x as i64, y as i64);
                if c == '#' {
                    assert_eq!(cell, Some(Object::WALL), "({x}, {y})");
                } else if ![(1, 2), (5, 1), (5, 5)].contains(&(x, y)) {
                    assert_eq!(cell, None, "({x}, {y})");
                }
            }
        }
        let (ax, ay) = env.agent_pos();
        assert!((1..=4).contains(&ax) && ay == 3 && env.agent_dir() == 0);
        starts.insert(ax);
        let shown = env.grid().get(1, 2).unwrap();
        let (top, bottom) = (env.grid().get(5, 1).unwrap(), env.grid().get(5, 5).unwrap());
        for o in [shown, top, bottom] {
            assert!(matches!(
                o,
                Object::Key(Color::Green) | Object::Ball(Color::Green)
            ));
        }
        assert_ne!(top, bottom);
        let exits = env.rules().exits.unwrap();
        let want = if shown == top {
            ((5, 2), (5, 4))
        } else {
            ((5, 4), (5, 2))
        };
        assert_eq!((exits.success, exits.failure), want);
        seen_success.insert((shown == Object::Key(Color::Green), exits.success));
    }
    assert_eq!(starts.len(), 4);
    assert_eq!(
        seen_success.len(),
        4,
        "both objects shown, both exits right"
    );
}
