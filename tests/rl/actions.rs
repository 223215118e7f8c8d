//! The seven actions under MiniGrid's rules (`MiniGridEnv.step`), one rule a test, in scenes
//! drawn as text.

use rims::Error;
use rims::rl::{Action, Color, DoorState, Env, Grid, Object, Rules};

use super::support::{play, scene, scene_with};

use Action::*;

const YELLOW_DOOR: fn(DoorState) -> Object = |s| Object::Door(Color::Yellow, s);

#[test]
fn action_ids_are_minigrids_and_others_are_errors() {
    for (id, a) in [Left, Right, Forward, Pickup, Drop, Toggle, Done]
        .into_iter()
        .enumerate()
    {
        assert_eq!(a.id(), id as u32);
        assert_eq!(Action::from_id(id as u32).unwrap(), a);
    }
    assert_eq!(Action::COUNT, 7);
    for bad in [7, 8, u32::MAX] {
        assert!(matches!(
            Action::from_id(bad),
            Err(Error::InvalidArgument { .. })
        ));
    }
}

#[test]
fn turning_changes_only_the_direction() {
    let mut env = scene(&["#####", "#   #", "# > #", "#   #", "#####"]);
    let dirs: Vec<u8> = [Left, Left, Left, Left, Right, Right]
        .into_iter()
        .map(|a| {
            env.step(a);
            env.agent_dir()
        })
        .collect();
    assert_eq!(dirs, [3, 2, 1, 0, 1, 2]);
    assert_eq!(env.agent_pos(), (2, 2));
    assert_eq!(env.step_count(), 6);
}

#[test]
fn forward_moves_along_the_direction_and_walls_block() {
    let mut env = scene(&["#####", "#   #", "# > #", "#   #", "#####"]);
    play(&mut env, &[Forward]);
    assert_eq!(env.agent_pos(), (3, 2));
    play(&mut env, &[Forward]); // wall
    assert_eq!(env.agent_pos(), (3, 2));
    play(&mut env, &[Right, Forward, Forward]); // down, then the wall
    assert_eq!(env.agent_pos(), (3, 3));
    play(&mut env, &[Right, Forward, Forward, Forward]); // left, to the wall
    assert_eq!(env.agent_pos(), (1, 3));
    play(&mut env, &[Right, Forward]); // up
    assert_eq!(env.agent_pos(), (1, 2));
}

#[test]
fn forward_enters_only_cells_that_can_be_overlapped() {
    // Each object in front of the agent, and whether the agent ends up on it.
    let cases = [
        ('.', true),
        ('F', true),
        ('O', true),
        ('D', false),
        ('L', false),
        ('K', false),
        ('A', false),
        ('B', false),
        ('#', false),
    ];
    for (c, enters) in cases {
        let row = format!("#>{c} #");
        let mut env = scene(&["#####", &row, "#####"]);
        let out = env.step(Forward);
        assert!(!out.done());
        let want = if enters { (2, 1) } else { (1, 1) };
        assert_eq!(env.agent_pos(), want, "forward into {c:?}");
    }
}

#[test]
fn the_goal_ends_the_episode_with_the_time_discounted_reward() {
    let rows = ["######", "#>  G#", "######"];
    let mut env = scene(&rows);
    play(&mut env, &[Forward, Forward]);
    let out = env.step(Forward);
    assert!(out.terminated && !out.truncated);
    assert_eq!(env.agent_pos(), (4, 1));
    // 1 − 0.9 · 3/100.
    assert_eq!(out.reward, (1.0 - 0.9 * 0.03f64) as f32);

    // With turns on the way the step count includes them: 1 − 0.9 · 7/20.
    let mut env = scene_with(&rows, Rules::new(20));
    play(&mut env, &[Left, Right, Done, Pickup, Forward, Forward]);
    let out = env.step(Forward);
    assert!(out.terminated);
    assert_eq!(out.reward, (1.0 - 0.9 * 7.0 / 20.0f64) as f32);
}

#[test]
fn lava_ends_the_episode_with_zero() {
    let mut env = scene(&["#####", "#>VG#", "#####"]);
    let out = env.step(Forward);
    assert!(out.terminated && !out.truncated);
    assert_eq!(out.reward, 0.0);
    assert_eq!(env.agent_pos(), (2, 1), "the agent walks into the lava");
}

#[test]
fn the_step_limit_truncates() {
    let mut env = scene_with(&["#####", "#>  #", "#####"], Rules::new(5));
    for step in 1..=5 {
        let out = env.step(Done);
        assert_eq!(out.reward, 0.0);
        assert!(!out.terminated);
        assert_eq!(out.truncated, step == 5, "step {step}");
    }

    // Reaching the goal on the last step is both, and still rewarded: 1 − 0.9 · 2/2.
    let mut env = scene_with(&["####", "#>G#", "####"], Rules::new(2));
    play(&mut env, &[Done]);
    let out = env.step(Forward);
    assert!(out.terminated && out.truncated);
    assert_eq!(out.reward, (1.0f64 - 0.9) as f32);
}

#[test]
fn done_changes_nothing_but_the_step_count() {
    let mut env = scene(&["#####", "#>KD#", "#####"]);
    let before = env.clone();
    let out = env.step(Done);
    assert!(!out.done());
    assert_eq!(out.reward, 0.0);
    assert_eq!(env.step_count(), 1);
    assert_eq!(env.grid(), before.grid());
    assert_eq!(env.agent_pos(), before.agent_pos());
    assert_eq!(env.agent_dir(), before.agent_dir());
}

#[test]
fn pickup_takes_keys_balls_and_boxes_into_an_empty_hand() {
    for (c, obj) in [
        ('K', Object::Key(Color::Yellow)),
        ('A', Object::Ball(Color::Red)),
        ('B', Object::Box(Color::Purple)),
    ] {
        let row = format!("#>{c}k#");
        let mut env = scene(&["#####", &row, "#####"]);
        play(&mut env, &[Pickup]);
        assert_eq!(env.carrying(), Some(obj));
        assert_eq!(env.grid().get(2, 1), None);
        // The hand is full: the blue key stays.
        play(&mut env, &[Forward, Pickup]);
        assert_eq!(env.carrying(), Some(obj));
        assert_eq!(env.grid().get(3, 1), Some(Object::Key(Color::Blue)));
    }
    // Nothing else can be picked up.
    for c in ['#', 'D', 'L', 'O', 'G', 'F', 'V', '.'] {
        let row = format!("#>{c}.#");
        let mut env = scene(&["#####", &row, "#####"]);
        let before = env.grid().clone();
        play(&mut env, &[Pickup]);
        assert_eq!(env.carrying(), None, "picked up {c:?}");
        assert_eq!(env.grid(), &before);
    }
}

#[test]
fn drop_puts_the_object_only_on_an_empty_cell_in_front() {
    let mut env = scene(&["######", "#>K  #", "#  G #", "######"]);
    play(&mut env, &[Pickup, Forward, Forward, Right]);
    // Facing down at (3, 1): the goal is in front; nothing is dropped on it.
    play(&mut env, &[Drop]);
    assert_eq!(env.carrying(), Some(Object::Key(Color::Yellow)));
    assert_eq!(env.grid().get(3, 2), Some(Object::Goal));
    // Facing right: an empty cell.
    play(&mut env, &[Left, Drop]);
    assert_eq!(env.carrying(), None);
    assert_eq!(env.grid().get(4, 1), Some(Object::Key(Color::Yellow)));
    // An empty hand drops nothing.
    play(&mut env, &[Left, Left, Drop]);
    assert_eq!(env.grid().get(2, 1), None);
    // Into a wall: nothing happens either.
    let mut env = scene(&["####", "#>K#", "####"]);
    play(&mut env, &[Pickup, Forward, Drop]);
    assert_eq!(env.carrying(), Some(Object::Key(Color::Yellow)));
}

#[test]
fn toggle_opens_and_closes_an_unlocked_door() {
    let mut env = scene(&["#####", "#>D #", "#####"]);
    play(&mut env, &[Toggle]);
    assert_eq!(env.grid().get(2, 1), Some(YELLOW_DOOR(DoorState::Open)));
    play(&mut env, &[Toggle]);
    assert_eq!(env.grid().get(2, 1), Some(YELLOW_DOOR(DoorState::Closed)));
    play(&mut env, &[Forward]);
    assert_eq!(env.agent_pos(), (1, 1), "a closed door blocks");
    play(&mut env, &[Toggle, Forward, Forward]);
    assert_eq!(
        env.agent_pos(),
        (3, 1),
        "an open door lets the agent through"
    );
    // Standing in the doorway and facing back, it can be closed behind.
    let mut env = scene(&["#####", "#>D #", "#####"]);
    play(&mut env, &[Toggle, Forward, Forward, Left, Left, Toggle]);
    assert_eq!(env.grid().get(2, 1), Some(YELLOW_DOOR(DoorState::Closed)));
}

#[test]
fn a_locked_door_opens_only_with_the_key_of_its_colour() {
    // No key.
    let mut env = scene(&["######", "#  >L#", "#    #", "######"]);
    play(&mut env, &[Toggle, Toggle]);
    assert_eq!(env.grid().get(4, 1), Some(YELLOW_DOOR(DoorState::Locked)));
    // A blue key does not open a yellow door.
    let mut env = scene(&["######", "# k>L#", "#    #", "######"]);
    play(&mut env, &[Left, Left, Pickup, Right, Right, Toggle]);
    assert_eq!(env.carrying(), Some(Object::Key(Color::Blue)));
    assert_eq!(env.grid().get(4, 1), Some(YELLOW_DOOR(DoorState::Locked)));
    play(&mut env, &[Forward]);
    assert_eq!(env.agent_pos(), (3, 1));
    // A ball of the right colour is no key either.
    let mut env = scene_with(&["######", "# K>L#", "######"], Rules::new(100));
    let mut grid = env.grid().clone();
    grid.set(2, 1, Some(Object::Ball(Color::Yellow))).unwrap();
    env = Env::new(grid, (3, 1), 0, Rules::new(100)).unwrap();
    play(&mut env, &[Left, Left, Pickup, Right, Right, Toggle]);
    assert_eq!(env.grid().get(4, 1), Some(YELLOW_DOOR(DoorState::Locked)));
    // The yellow key opens it, stays in hand, and the door is then an ordinary open door.
    let mut env = scene(&["#######", "# K>L #", "#######"]);
    play(&mut env, &[Left, Left, Pickup, Right, Right, Toggle]);
    assert_eq!(env.grid().get(4, 1), Some(YELLOW_DOOR(DoorState::Open)));
    assert_eq!(env.carrying(), Some(Object::Key(Color::Yellow)));
    play(&mut env, &[Forward, Forward]);
    assert_eq!(env.agent_pos(), (5, 1));
    play(&mut env, &[Left, Left, Toggle]);
    assert_eq!(env.grid().get(4, 1), Some(YELLOW_DOOR(DoorState::Closed)));
}

#[test]
fn toggle_opens_a_box_and_ignores_the_rest() {
    let mut env = scene(&["#####", "#>B #", "#####"]);
    play(&mut env, &[Toggle]);
    assert_eq!(env.grid().get(2, 1), None, "an empty box opens to nothing");
    for c in ['K', 'A', 'G', 'V', 'F', '#', '.'] {
        let row = format!("#>{c}.#");
        let mut env = scene(&["#####", &row, "#####"]);
        let before = env.grid().clone();
        play(&mut env, &[Toggle]);
        assert_eq!(env.grid(), &before, "toggled {c:?}");
    }
}

#[test]
fn memory_rules_turn_pickup_into_toggle_and_end_at_the_exits() {
    let mut rules = Rules::new(50);
    rules.pickup_is_toggle = true;
    rules.exits = Some(rims::rl::Exits {
        success: (3, 1),
        failure: (3, 3),
    });
    let rows = ["#####", "#K..#", "#v..#", "#...#", "#####"];
    let mut env = scene_with(&rows, rules);
    play(&mut env, &[Left, Left, Pickup]);
    assert_eq!(env.carrying(), None, "nothing can be picked up");
    assert_eq!(env.grid().get(1, 1), Some(Object::Key(Color::Yellow)));
    // To (3, 2), then up onto the success exit, the 8th step: 1 − 0.9 · 8/50.
    play(&mut env, &[Right, Forward, Forward, Left]);
    let out = env.step(Forward);
    assert!(out.terminated);
    assert_eq!(out.reward, (1.0 - 0.9 * 8.0 / 50.0f64) as f32);
    // Down onto the failure exit: 0.
    let mut env = scene_with(&rows, rules);
    play(&mut env, &[Left, Forward, Forward, Right]);
    let out = env.step(Forward);
    assert!(out.terminated);
    assert_eq!(out.reward, 0.0);
}

#[test]
fn a_scene_refuses_impossible_agents() {
    let mut grid = Grid::new(4, 3).unwrap();
    grid.wall_border();
    let ok = Rules::new(10);
    assert!(Env::new(grid.clone(), (1, 1), 3, ok).is_ok());
    for (pos, dir) in [((0, 0), 0), ((4, 1), 0), ((-1, 1), 0), ((1, 1), 4)] {
        assert!(
            matches!(
                Env::new(grid.clone(), pos, dir, ok),
                Err(Error::InvalidArgument { .. })
            ),
            "{pos:?} {dir}"
        );
    }
    assert!(matches!(
        Env::new(grid, (1, 1), 0, Rules::new(0)),
        Err(Error::Config { .. })
    ));
}
