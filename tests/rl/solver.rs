//! A scripted solver, breadth-first over the agent's poses, finishes every generated layout:
//! DoorKey (fetch the key, open the door, reach the goal) at every size over many seeds, and
//! Empty and Memory (reading the exits from the rules, which a learner must remember instead).

use rims::rl::{Action, Color, DoorState, Env, Object, World, episode_rng};

use super::support::{ahead, find, plan, play};

/// Walks to a pose facing `target` and applies `action` there.
fn face_and(env: &mut Env, target: (i64, i64), action: Action) {
    let path = plan(env, |p, d| ahead(p, d) == target)
        .unwrap_or_else(|| panic!("cannot reach {target:?}:\n{env}"));
    play(env, &path);
    play(env, &[action]);
}

/// Walks onto `target`; returns the last step's reward, which must end the episode.
fn walk_onto(env: &mut Env, target: (i64, i64)) -> f32 {
    let path =
        plan(env, |p, _| p == target).unwrap_or_else(|| panic!("cannot reach {target:?}:\n{env}"));
    let (last, before) = path.split_last().expect("already there");
    play(env, before);
    let out = env.step(*last);
    assert!(out.terminated, "{env}");
    out.reward
}

fn success(env: &Env) -> f32 {
    (1.0 - 0.9 * (env.step_count() as f64 / env.rules().max_steps as f64)) as f32
}

#[test]
fn doorkey_is_solved_for_every_layout() {
    let yellow_key = Object::Key(Color::Yellow);
    for size in [5, 6, 8, 16] {
        let world = World::DoorKey { size };
        for seed in 0..250 {
            let mut env = world.generate(&mut episode_rng(seed, 0, 0)).unwrap();
            let key = find(&env, yellow_key).unwrap();
            let door = find(&env, Object::Door(Color::Yellow, DoorState::Locked)).unwrap();
            let goal = find(&env, Object::Goal).unwrap();
            // The door does not open without the key.
            assert!(plan(&env, |p, _| p == goal).is_none(), "{env}");
            face_and(&mut env, key, Action::Pickup);
            assert_eq!(env.carrying(), Some(yellow_key));
            face_and(&mut env, door, Action::Toggle);
            assert_eq!(
                env.grid().get(door.0, door.1),
                Some(Object::Door(Color::Yellow, DoorState::Open))
            );
            let reward = walk_onto(&mut env, goal);
            assert!(
                reward > 0.0 && reward == success(&env),
                "size {size} seed {seed}"
            );
        }
    }
}

#[test]
fn empty_and_memory_are_solved() {
    for size in [5, 6, 8, 16] {
        let mut env = World::Empty { size }
            .generate(&mut episode_rng(0, 0, 0))
            .unwrap();
        let goal = find(&env, Object::Goal).unwrap();
        let reward = walk_onto(&mut env, goal);
        // Shortest: 2·(size − 3) moves and one turn.
        assert_eq!(env.step_count() as usize, 2 * (size - 3) + 1);
        assert_eq!(reward, success(&env));
    }
    for seed in 0..100 {
        let world = World::Memory { size: 7 };
        let mut env = world.generate(&mut episode_rng(seed, 0, 0)).unwrap();
        let exits = env.rules().exits.unwrap();
        let reward = walk_onto(&mut env, exits.success);
        assert!(reward > 0.0 && reward == success(&env));
        let mut env = world.generate(&mut episode_rng(seed, 0, 0)).unwrap();
        assert_eq!(walk_onto(&mut env, exits.failure), 0.0);
    }
}
