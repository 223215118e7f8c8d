//! The pictures drawn from synthetic data and a hand-written metrics file, without a device.

use std::path::{Path, PathBuf};

use plotters::prelude::*;
use rims::train;

use super::curves::{curves_of, draw_curves};
use super::draw::{WIDTH, render, write_png};
use super::episode::{EpisodeFigure, MAX_FRAMES, figure as episode_figure};
use super::episode_picture::draw_episode;
use super::mask_picture::draw_masks;
use super::masks::{Marks, MaskFigure, Tokens};

fn decode(path: &Path) -> (u32, u32) {
    let file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    let reader = png::Decoder::new(file).read_info().unwrap();
    (reader.info().width, reader.info().height)
}

fn temp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rims-viz-unit-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn figure(marks: Marks, t_len: usize, n: usize) -> MaskFigure {
    MaskFigure {
        title: "synthetic".into(),
        mechanisms: n,
        t_len,
        example: (0..t_len * n)
            .map(|i| (i / n + i % n).is_multiple_of(3))
            .collect(),
        fraction: (0..t_len * n).map(|i| (i % 7) as f64 / 6.0).collect(),
        batch: 8,
        example_index: 0,
        marks,
    }
}

#[test]
fn mask_pictures_draw_without_a_gpu() {
    let dir = temp("masks");
    let copying = figure(
        Marks::Phases {
            phases: vec![
                ("symbols", 0..10, RED),
                ("gap", 10..10, WHITE),
                ("marker", 10..11, BLUE),
                ("recall", 11..21, GREEN),
            ],
            tokens: Tokens {
                input: (0..21).map(|t| t % 10).collect(),
                target: (0..21).map(|t| if t > 10 { t % 8 } else { 0 }).collect(),
                output: (0..21).map(|t| t % 3).collect(),
            },
        },
        21,
        4,
    );
    let smnist = figure(
        Marks::Rows {
            s: 7,
            pixels: (0..49).map(|t| t % 2).collect(),
        },
        49,
        6,
    );
    for (name, fig) in [("c.png", copying), ("s.png", smnist)] {
        let (w, h) = fig.size();
        let rgb = render(w, h, |root| draw_masks(root, &fig)).unwrap();
        let out = dir.join(name);
        write_png(&out, &rgb, w, h).unwrap();
        assert_eq!(decode(&out), (w, h));
    }
}

#[test]
fn metrics_are_read_and_bad_lines_named() {
    let dir = temp("metrics");
    let path = dir.join("metrics.jsonl");
    std::fs::write(
        &path,
        concat!(
            r#"{"epoch":1,"step":10,"seconds":1.0,"train_loss":2.5,"eval":[{"split":"copy","size":5,"loss":2.0,"accuracy":0.1},{"split":"copy","size":10,"loss":2.2,"accuracy":0.05}]}"#,
            "\n",
            r#"{"epoch":2,"step":20,"seconds":2.0,"train_loss":1.5,"eval":[{"split":"copy","size":5,"loss":1.0,"accuracy":0.4},{"split":"copy","size":10,"loss":1.9,"accuracy":0.1}]}"#,
            "\n"
        ),
    )
    .unwrap();
    let records = train::read_records(&path).unwrap();
    let (losses, accuracy) = curves_of(&records);
    assert_eq!(losses.len(), 3);
    assert_eq!(accuracy.len(), 2);
    assert_eq!(accuracy[0].name, "eval T=5");
    assert_eq!(accuracy[0].points, vec![(10.0, 10.0), (20.0, 40.0)]);
    let rgb = render(WIDTH, 520, |root| {
        draw_curves(root, "t", &losses, &accuracy)
    })
    .unwrap();
    assert_eq!(rgb.len(), WIDTH as usize * 520 * 3);

    std::fs::write(&path, "{\"step\": 1}\n").unwrap();
    let e = train::read_records(&path).unwrap_err().to_string();
    assert!(e.contains("line 1"), "{e}");
    std::fs::write(&path, "\n").unwrap();
    let e = train::read_records(&path).unwrap_err().to_string();
    assert!(e.contains("no records"), "{e}");
}

/// A synthetic episode: the agent walks a DoorKey layout (turning, picking up, toggling), with
/// made-up masks; drawn for a RIMs core of 4 and a dense core of 1, and on worlds of every
/// size the picture's layout must handle.
#[test]
fn episode_pictures_draw_without_a_device() {
    use rims::rl::eval::{Policy, Trace};
    use rims::rl::{Action, World};
    let dir = temp("episode");
    for (name, world, steps, n) in [
        ("dk5.png", World::DoorKey { size: 5 }, 30, 4),
        ("dk16.png", World::DoorKey { size: 16 }, 60, 1),
        ("mem.png", World::Memory { size: 13 }, 12, 6),
        ("big.png", World::Empty { size: 64 }, 3, 8),
    ] {
        let mut env = world.generate(&mut rims::rl::episode_rng(7, 0, 0)).unwrap();
        let mut t = Trace {
            envs: vec![env.clone()],
            actions: Vec::new(),
            rewards: Vec::new(),
            masks: Vec::new(),
        };
        for i in 0..steps {
            let a = Action::ALL[[2, 0, 2, 3, 5, 1, 2][i % 7]];
            let out = env.step(a);
            t.actions.push(a);
            t.rewards.push(out.reward);
            t.masks
                .push((0..n).map(|m| ((i + m) % 3 != 0) as u8 as f32).collect());
            t.envs.push(env.clone());
        }
        let fig: EpisodeFigure = episode_figure(&t, world, 0, Policy::Greedy, n == 1, "sub".into());
        assert_eq!(fig.envs.len(), (steps + 1).min(MAX_FRAMES));
        assert_eq!(fig.labels.len(), fig.envs.len());
        assert_eq!(fig.masks.len(), steps);
        assert_eq!(fig.mechanisms, n);
        let (w, h) = fig.size();
        let rgb = render(w, h, |root| draw_episode(root, &fig)).unwrap();
        let out = dir.join(name);
        write_png(&out, &rgb, w, h).unwrap();
        assert_eq!(decode(&out), (w, h));
        // Black floor, grey walls, the red agent, blue active cells: many colours.
        let mut colours: Vec<&[u8]> = rgb.chunks(3).collect();
        colours.sort_unstable();
        colours.dedup();
        assert!(colours.len() > 20, "{name}: {} colours", colours.len());
        assert!(rgb.chunks(3).any(|p| p == [255, 0, 0]), "{name}: no agent");
    }
}

/// Every kind of object and door state, and a carried key, drawn on one hand-made grid.
#[test]
fn every_object_draws() {
    use rims::rl::eval::{Policy, Trace};
    use rims::rl::{Action, Color, DoorState, Env, Grid, Object, Rules, World};
    let mut grid = Grid::new(8, 6).unwrap();
    grid.wall_border();
    let objects = [
        (2, 1, Object::Key(Color::Purple)),
        (3, 1, Object::Ball(Color::Blue)),
        (4, 1, Object::Box(Color::Red)),
        (5, 1, Object::Door(Color::Yellow, DoorState::Locked)),
        (6, 1, Object::Door(Color::Green, DoorState::Closed)),
        (1, 4, Object::Door(Color::Grey, DoorState::Open)),
        (3, 4, Object::Lava),
        (4, 4, Object::Floor(Color::Blue)),
        (6, 4, Object::Goal),
    ];
    for (x, y, o) in objects {
        grid.set(x, y, Some(o)).unwrap();
    }
    // The agent below the key, facing up: it picks the key up and turns.
    let mut env = Env::new(grid, (2, 2), 3, Rules::new(50)).unwrap();
    let mut t = Trace {
        envs: vec![env.clone()],
        actions: Vec::new(),
        rewards: Vec::new(),
        masks: Vec::new(),
    };
    for a in [Action::Pickup, Action::Right, Action::Forward] {
        let out = env.step(a);
        t.actions.push(a);
        t.rewards.push(out.reward);
        t.masks.push(vec![1.0, 0.0, 1.0]);
        t.envs.push(env.clone());
    }
    assert_eq!(env.carrying(), Some(Object::Key(Color::Purple)));
    let world = World::Empty { size: 8 };
    let fig = episode_figure(&t, world, 0, Policy::Sample, false, String::new());
    assert_eq!(fig.labels, ["0 pickup", "1 right", "2 forward", "end, 0"]);
    let (w, h) = fig.size();
    let rgb = render(w, h, |root| draw_episode(root, &fig)).unwrap();
    // Purple (the carried key's swatch, never lightened), blue, yellow and green (lightened
    // where the agent's view covers them).
    type Is = fn(&[u8]) -> bool;
    let hues: [(&str, Is); 4] = [
        ("purple", |p| p == [112, 39, 195]),
        ("blue", |p| p[2] > 200 && p[0] < 80 && p[1] < 80),
        ("yellow", |p| p[0] > 200 && p[1] > 200 && p[2] < 80),
        ("green", |p| p[1] > 200 && p[0] < 80 && p[2] < 80),
    ];
    for (name, is) in hues {
        assert!(rgb.chunks(3).any(is), "no {name} pixel");
    }
    write_png(&temp("objects").join("objects.png"), &rgb, w, h).unwrap();
}
