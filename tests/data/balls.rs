//! Bouncing balls: the physics conserves what it must and keeps the balls apart and in the box,
//! the frames show what the physics says, the seeds reproduce, the config refuses bad values.

use rims::Error;
use rims::data::balls::{
    self, Ball, BallsConfig, BallsStream, Curtain, MassRule, Span, Split, World, render,
};
use rims::rng::Rng;

/// A world from `cfg`'s first training sequence under `seed`.
fn world(cfg: &BallsConfig, seed: u64) -> World {
    balls::initial_world(cfg, &mut balls::sequence_rng(seed, Split::Train, 0)).unwrap()
}

/// Unequal radii and masses, so the collision formula is tested beyond equal masses.
fn mixed() -> BallsConfig {
    BallsConfig {
        balls: Span { lo: 6, hi: 8 },
        radius: Span { lo: 0.06, hi: 0.12 },
        mass: MassRule::Area,
        ..BallsConfig::default()
    }
}

fn norm(p: [f64; 2]) -> f64 {
    p[0].hypot(p[1])
}

#[test]
fn collisions_conserve_momentum_and_energy() {
    let cfg = mixed();
    let dt = 1.0 / cfg.substeps as f64;
    let (mut pair_steps, mut wall_steps) = (0, 0);
    for seed in 0..20 {
        let mut w = world(&cfg, seed);
        let e0 = w.kinetic_energy();
        for _ in 0..200 * cfg.substeps {
            let p = w.momentum();
            let c = w.substep(dt);
            // Energy is conserved by every bounce; momentum when no wall pushed.
            let e = w.kinetic_energy();
            assert!(
                (e - e0).abs() <= 1e-12 * e0,
                "seed {seed}: energy {e0} -> {e}"
            );
            if c.walls == 0 {
                let q = w.momentum();
                let moved = norm([q[0] - p[0], q[1] - p[1]]);
                assert!(
                    moved <= 1e-12 * (1.0 + norm(p)),
                    "seed {seed}: {p:?} -> {q:?}"
                );
            }
            pair_steps += usize::from(c.pairs > 0 && c.walls == 0);
            wall_steps += usize::from(c.walls > 0);
        }
    }
    // The check saw many collisions of both kinds.
    assert!(
        pair_steps > 100 && wall_steps > 100,
        "{pair_steps} {wall_steps}"
    );
}

#[test]
fn one_collision_matches_the_textbook_formula() {
    // Head-on along x, masses 1 and 3: v1' = (m1-m2)/(m1+m2) v1 + 2 m2/(m1+m2) v2, and so on.
    let mut a = Ball {
        pos: [0.4, 0.5],
        vel: [1.0, 0.0],
        radius: 0.1,
        mass: 1.0,
    };
    let mut b = Ball {
        pos: [0.59, 0.5],
        vel: [-1.0, 0.0],
        radius: 0.1,
        mass: 3.0,
    };
    assert!(balls::physics::collide(&mut a, &mut b));
    let (m1, m2, v1, v2) = (1.0, 3.0, 1.0, -1.0);
    let va = (m1 - m2) / (m1 + m2) * v1 + 2.0 * m2 / (m1 + m2) * v2;
    let vb = 2.0 * m1 / (m1 + m2) * v1 + (m2 - m1) / (m1 + m2) * v2;
    assert!((a.vel[0] - va).abs() < 1e-15 && (b.vel[0] - vb).abs() < 1e-15);
    assert_eq!((a.vel[1], b.vel[1]), (0.0, 0.0));
    // Pushed apart to touching, the heavier one moving a third as far.
    let gap = b.pos[0] - a.pos[0];
    assert!((gap - 0.2).abs() < 1e-15, "{gap}");
    assert!(((0.4 - a.pos[0]) - 3.0 * (b.pos[0] - 0.59)).abs() < 1e-15);
    // Separating balls that touch are moved apart but not bounced again.
    assert!(!balls::physics::collide(&mut a, &mut b));
}

#[test]
fn balls_stay_in_the_box_and_apart() {
    let cfg = mixed();
    let mut worst = 0.0f64;
    for seed in 0..30 {
        let mut w = world(&cfg, seed);
        for frame in 0..300 {
            w.advance_frame(cfg.substeps);
            for b in &w.balls {
                for x in b.pos {
                    assert!(
                        x >= b.radius - 1e-12 && x <= 1.0 - b.radius + 1e-12,
                        "seed {seed} frame {frame}: {b:?} left the box"
                    );
                }
            }
            worst = worst.max(w.max_overlap());
        }
    }
    // A crowd can leave a sliver of overlap when the relaxation passes run out (one pair's push
    // re-overlapping another, a wall pushing back): far below one substep's travel (measured:
    // 3e-6 against 7e-3).
    let travel = mixed().speed.hi / mixed().substeps as f64;
    assert!(
        worst <= 0.01 * travel,
        "overlap {worst} vs substep travel {travel}"
    );
}

#[test]
fn same_seed_same_data_other_seed_other_data() {
    let cfg = BallsConfig {
        length: 12,
        ..mixed()
    };
    let a = balls::generate(&cfg, 5, Split::Train, 4, |_| {}).unwrap();
    let b = balls::generate(&cfg, 5, Split::Train, 4, |_| {}).unwrap();
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&a.frames), bits(&b.frames));
    assert_eq!(bits(&a.positions), bits(&b.positions));
    assert_eq!(bits(&a.velocities), bits(&b.velocities));
    assert_eq!(a.ball_count, b.ball_count);
    let c = balls::generate(&cfg, 6, Split::Train, 4, |_| {}).unwrap();
    assert_ne!(a.positions, c.positions);
    let val = balls::generate(&cfg, 5, Split::Val, 4, |_| {}).unwrap();
    assert_ne!(a.positions, val.positions);
    assert_eq!(a.frames.len(), 4 * 12 * 32 * 32);
    assert_eq!(a.positions.len(), 4 * 12 * 8 * 2);
}

#[test]
fn a_stream_draws_the_files_sequences_time_major() {
    let cfg = BallsConfig {
        length: 5,
        size: 16,
        ..mixed()
    };
    let file = balls::generate(&cfg, 9, Split::Test, 5, |_| {}).unwrap();
    let mut stream = BallsStream::new(cfg, 9, Split::Test).unwrap();
    let first = stream.next_batch(2).unwrap();
    let second = stream.next_batch(3).unwrap();
    assert_eq!(stream.position(), 5);
    let (t_len, px, m) = (5, 16 * 16, 8);
    for (batch, offset) in [(&first, 0), (&second, 2)] {
        for b in 0..batch.batch {
            let i = offset + b;
            assert_eq!(batch.ball_count[b], file.ball_count[i]);
            for t in 0..t_len {
                let got = &batch.frames[(t * batch.batch + b) * px..][..px];
                assert_eq!(got, &file.frames[(i * t_len + t) * px..][..px]);
                let got = &batch.positions[(t * batch.batch + b) * m * 2..][..m * 2];
                assert_eq!(got, &file.positions[(i * t_len + t) * m * 2..][..m * 2]);
            }
        }
    }
    stream.seek(0);
    assert_eq!(stream.next_batch(2).unwrap(), first);
}

#[test]
fn a_range_gives_every_count_and_absent_balls_are_zero() {
    let cfg = BallsConfig {
        length: 2,
        size: 8,
        ..mixed()
    };
    let d = balls::generate(&cfg, 1, Split::Train, 200, |_| {}).unwrap();
    for n in 6..=8 {
        let seen = d.ball_count.iter().filter(|&&c| c == n).count();
        assert!(seen > 30, "count {n} drawn {seen} times of 200");
    }
    assert!(d.ball_count.iter().all(|c| (6..=8).contains(c)));
    for (i, &n) in d.ball_count.iter().enumerate() {
        for t in 0..2 {
            let row = &d.positions[(i * 2 + t) * 16..][..16];
            assert!(row[..2 * n as usize].iter().all(|&x| x > 0.0 && x < 1.0));
            assert!(row[2 * n as usize..].iter().all(|&x| x == 0.0));
            let vel = &d.velocities[(i * 2 + t) * 16..][..16];
            assert!(vel[2 * n as usize..].iter().all(|&x| x == 0.0));
        }
    }
}

#[test]
fn positions_and_velocities_follow_the_frames() {
    // Between two frames without a bounce, a ball moves by its velocity.
    let cfg = BallsConfig {
        balls: Span::fixed(1),
        length: 40,
        ..BallsConfig::default()
    };
    let d = balls::generate(&cfg, 3, Split::Train, 1, |_| {}).unwrap();
    let mut free = 0;
    for t in 1..40 {
        let (p0, p1) = (&d.positions[(t - 1) * 2..][..2], &d.positions[t * 2..][..2]);
        let (v0, v1) = (
            &d.velocities[(t - 1) * 2..][..2],
            &d.velocities[t * 2..][..2],
        );
        if v0 == v1 {
            free += 1;
            for k in 0..2 {
                assert!((p1[k] - p0[k] - v0[k]).abs() < 1e-6, "frame {t}");
            }
        }
    }
    assert!(free > 20);
}

#[test]
fn frames_are_in_range_and_a_ball_covers_its_area() {
    let cfg = BallsConfig {
        length: 20,
        ..mixed()
    };
    let d = balls::generate(&cfg, 2, Split::Train, 3, |_| {}).unwrap();
    assert!(d.frames.iter().all(|&x| (0.0..=1.0).contains(&x)));
    assert!(d.frames.contains(&1.0));
    for (size, r) in [(32, 0.1), (64, 0.1), (32, 0.15), (64, 0.07)] {
        let mut rng = Rng::new(size as u64);
        for _ in 0..10 {
            let c = [rng.uniform(r, 1.0 - r), rng.uniform(r, 1.0 - r)];
            let ball = Ball {
                pos: c,
                vel: [0.0; 2],
                radius: r,
                mass: 1.0,
            };
            let mut frame = vec![0.0f32; size * size];
            render(&[ball], size, None, &mut frame);
            let sum: f64 = frame.iter().map(|&x| f64::from(x)).sum();
            let area = std::f64::consts::PI * (r * size as f64).powi(2);
            assert!(
                (sum - area).abs() < 0.02 * area,
                "S={size} r={r}: {sum} vs {area}"
            );
        }
    }
}

#[test]
fn the_curtain_hides_a_ball_behind_it() {
    let size = 32;
    let mut empty = vec![0.0f32; size * size];
    render(&[], size, Some(&Curtain::MIDDLE), &mut empty);
    // Columns 12..20 (the middle quarter) are 1, the rest 0.
    for i in 0..size {
        for j in 0..size {
            let want = if (12..20).contains(&j) { 1.0 } else { 0.0 };
            assert_eq!(empty[i * size + j], want, "({i}, {j})");
        }
    }
    let behind = Ball {
        pos: [0.5, 0.3],
        vel: [0.0; 2],
        radius: 0.1,
        mass: 1.0,
    };
    let mut frame = vec![0.0f32; size * size];
    render(&[behind], size, Some(&Curtain::MIDDLE), &mut frame);
    assert_eq!(frame, empty, "a ball behind the curtain shows");
    let beside = Ball {
        pos: [0.2, 0.3],
        ..behind
    };
    render(&[beside], size, Some(&Curtain::MIDDLE), &mut frame);
    assert_ne!(frame, empty);
    // In a data set the band is 1 in every frame.
    let cfg = BallsConfig {
        balls: Span::fixed(3),
        curtain: Some(Curtain::MIDDLE),
        length: 10,
        ..BallsConfig::default()
    };
    let d = balls::generate(&cfg, 4, Split::Test, 2, |_| {}).unwrap();
    for f in d.frames.chunks(size * size) {
        assert!((0..size).all(|i| (12..20).all(|j| f[i * size + j] == 1.0)));
    }
}

/// `cfg` is refused with a config error on `field` whose message has `words`.
fn refused(cfg: BallsConfig, field: &str, words: &str) {
    match cfg.validate() {
        Err(Error::Config { field: f, reason }) => {
            assert_eq!(f, field, "{reason}");
            assert!(reason.contains(words), "'{words}' not in: {reason}");
        }
        other => panic!("{cfg:?}: expected a config error on {field}, got {other:?}"),
    }
}

#[test]
fn bad_configs_are_errors_naming_the_field() {
    let d = BallsConfig::default();
    d.validate().unwrap();
    refused(
        BallsConfig {
            balls: Span::fixed(0),
            ..d
        },
        "balls",
        "1-32",
    );
    refused(
        BallsConfig {
            balls: Span { lo: 8, hi: 6 },
            ..d
        },
        "balls",
        "8-6",
    );
    refused(
        BallsConfig {
            balls: Span::fixed(33),
            ..d
        },
        "balls",
        "1-32",
    );
    refused(
        BallsConfig {
            balls: Span::fixed(30),
            ..d
        },
        "balls",
        "cannot place 30 balls",
    );
    refused(BallsConfig { size: 0, ..d }, "size", "outside");
    refused(BallsConfig { length: 0, ..d }, "length", "outside");
    refused(BallsConfig { substeps: 0, ..d }, "substeps", "outside");
    refused(
        BallsConfig { substeps: 1, ..d },
        "substeps",
        "raise substeps",
    );
    refused(
        BallsConfig {
            radius: Span::fixed(0.0),
            ..d
        },
        "radius",
        "0 < lo",
    );
    refused(
        BallsConfig {
            radius: Span::fixed(f64::NAN),
            ..d
        },
        "radius",
        "finite",
    );
    refused(
        BallsConfig {
            radius: Span::fixed(0.5),
            ..d
        },
        "radius",
        "< 0.5",
    );
    refused(
        BallsConfig {
            radius: Span { lo: 0.2, hi: 0.1 },
            ..d
        },
        "radius",
        "lo <= hi",
    );
    refused(
        BallsConfig {
            speed: Span::fixed(-0.1),
            ..d
        },
        "speed",
        "0 <= lo",
    );
    refused(
        BallsConfig {
            speed: Span::fixed(f64::INFINITY),
            ..d
        },
        "speed",
        "finite",
    );
    let band = |left, right| Some(Curtain { left, right });
    refused(
        BallsConfig {
            curtain: band(0.6, 0.4),
            ..d
        },
        "curtain",
        "left < right",
    );
    refused(
        BallsConfig {
            curtain: band(-0.1, 0.4),
            ..d
        },
        "curtain",
        "0 <= left",
    );
    // generate and the stream check too, and refuse empty requests.
    assert!(balls::generate(&BallsConfig { size: 0, ..d }, 1, Split::Train, 1, |_| {}).is_err());
    let e = balls::generate(&d, 1, Split::Train, 0, |_| {}).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Config {
                field: "sequences",
                ..
            }
        ),
        "{e}"
    );
    let e = BallsStream::new(d, 1, Split::Val)
        .unwrap()
        .next_batch(0)
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Config {
                field: "batch_size",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn spans_parse_counts_and_ranges() {
    assert_eq!(Span::<usize>::parse("4", "balls").unwrap(), Span::fixed(4));
    assert_eq!(
        Span::<usize>::parse("6-8", "balls").unwrap(),
        Span { lo: 6, hi: 8 }
    );
    assert_eq!(
        Span::<usize>::parse("8-6", "balls").unwrap(),
        Span { lo: 8, hi: 6 }
    );
    assert_eq!(
        Span::<f64>::parse("1e-3-2e-3", "speed").unwrap(),
        Span { lo: 1e-3, hi: 2e-3 }
    );
    assert_eq!(
        Span::<f64>::parse("0.1", "radius").unwrap(),
        Span::fixed(0.1)
    );
    for bad in ["", "x", "6-", "-6", "6-8-9", "6..8"] {
        let e = Span::<usize>::parse(bad, "balls").unwrap_err();
        assert!(
            matches!(e, Error::Config { field: "balls", .. }),
            "{bad}: {e}"
        );
    }
    assert_eq!(Span { lo: 6, hi: 8 }.to_string(), "6-8");
    assert_eq!(Span::fixed(4).to_string(), "4");
}
