//! MiniGrid's ids (`minigrid/core/constants.py`) and what each object lets the agent do
//! (`world_object.py`).

use rims::Error;
use rims::rl::grid::{MAX_SIDE, encode_cell, object_id};
use rims::rl::{Color, DoorState, Grid, Object};

#[test]
fn ids_are_minigrids() {
    use object_id::*;
    let objects = [
        (UNSEEN, 0),
        (EMPTY, 1),
        (WALL, 2),
        (FLOOR, 3),
        (DOOR, 4),
        (KEY, 5),
        (BALL, 6),
        (BOX, 7),
        (GOAL, 8),
        (LAVA, 9),
        (AGENT, 10),
    ];
    for (id, want) in objects {
        assert_eq!(id, want);
    }
    let colors: Vec<u8> = Color::ALL.iter().map(|c| c.id()).collect();
    assert_eq!(colors, [0, 1, 2, 3, 4, 5]);
    assert_eq!(Color::Red.id(), 0);
    assert_eq!(Color::Green.id(), 1);
    assert_eq!(Color::Blue.id(), 2);
    assert_eq!(Color::Purple.id(), 3);
    assert_eq!(Color::Yellow.id(), 4);
    assert_eq!(Color::Grey.id(), 5);
    assert_eq!(DoorState::Open.id(), 0);
    assert_eq!(DoorState::Closed.id(), 1);
    assert_eq!(DoorState::Locked.id(), 2);
}

#[test]
fn objects_encode_as_minigrid() {
    let y = Color::Yellow;
    let cases = [
        (Some(Object::WALL), [2, 5, 0]),
        (Some(Object::Wall(Color::Red)), [2, 0, 0]),
        (Some(Object::Floor(Color::Blue)), [3, 2, 0]),
        (Some(Object::Door(y, DoorState::Open)), [4, 4, 0]),
        (Some(Object::Door(y, DoorState::Closed)), [4, 4, 1]),
        (Some(Object::Door(y, DoorState::Locked)), [4, 4, 2]),
        (Some(Object::Key(y)), [5, 4, 0]),
        (Some(Object::Ball(Color::Purple)), [6, 3, 0]),
        (Some(Object::Box(Color::Grey)), [7, 5, 0]),
        (Some(Object::Goal), [8, 1, 0]),
        (Some(Object::Lava), [9, 0, 0]),
        (None, [1, 0, 0]),
    ];
    for (cell, code) in cases {
        assert_eq!(encode_cell(cell), code, "{cell:?}");
    }
}

#[test]
fn what_each_object_allows() {
    let c = Color::Blue;
    // (object, can_overlap, can_pickup, see_behind), from world_object.py.
    let table = [
        (Object::Wall(c), false, false, false),
        (Object::Floor(c), true, false, true),
        (Object::Door(c, DoorState::Open), true, false, true),
        (Object::Door(c, DoorState::Closed), false, false, false),
        (Object::Door(c, DoorState::Locked), false, false, false),
        (Object::Key(c), false, true, true),
        (Object::Ball(c), false, true, true),
        (Object::Box(c), false, true, true),
        (Object::Goal, true, false, true),
        (Object::Lava, true, false, true),
    ];
    for (o, overlap, pickup, behind) in table {
        assert_eq!(o.can_overlap(), overlap, "{o:?} can_overlap");
        assert_eq!(o.can_pickup(), pickup, "{o:?} can_pickup");
        assert_eq!(o.see_behind(), behind, "{o:?} see_behind");
    }
}

#[test]
fn outside_the_grid_is_wall_and_cannot_be_set() {
    let mut g = Grid::new(3, 4).unwrap();
    assert_eq!(g.get(1, 1), None);
    for (x, y) in [(-1, 0), (0, -1), (3, 0), (0, 4), (100, 100)] {
        assert_eq!(g.get(x, y), Some(Object::WALL), "({x}, {y})");
        assert!(matches!(
            g.set(x, y, None),
            Err(Error::InvalidArgument { .. })
        ));
    }
    g.set(2, 3, Some(Object::Goal)).unwrap();
    assert_eq!(g.get(2, 3), Some(Object::Goal));
    g.wall_border();
    assert_eq!(g.get(2, 3), Some(Object::WALL));
    assert_eq!(g.get(1, 1), None);
    assert_eq!(g.get(1, 2), None);
    for bad in [(0, 3), (3, 0), (MAX_SIDE + 1, 3)] {
        assert!(matches!(
            Grid::new(bad.0, bad.1),
            Err(Error::InvalidArgument { .. })
        ));
    }
}
