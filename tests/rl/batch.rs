//! The batch: seeds reproduce and differ, environment i and episode k do not depend on the
//! rest of the batch, episodes reset themselves, bad actions are errors that change nothing.

use rims::Error;
use rims::rl::{Action, EnvBatch, IMAGE_LEN, Observation, World, episode_rng};
use rims::rng::Rng;

fn world(name: &str) -> World {
    World::parse(name).unwrap()
}

/// `steps` random actions on a fresh batch; every transition.
fn run(name: &str, n: usize, seed: u64, steps: usize) -> Vec<rims::rl::Transition> {
    let mut batch = EnvBatch::new(world(name), n, seed).unwrap();
    let mut rng = Rng::new(99);
    (0..steps)
        .map(|_| {
            let actions: Vec<u32> = (0..n).map(|_| rng.below(7) as u32).collect();
            batch.step(&actions).unwrap()
        })
        .collect()
}

#[test]
fn the_same_seed_reproduces_and_other_seeds_differ() {
    for name in ["doorkey-8x8", "memory-s7", "empty-6x6"] {
        assert_eq!(run(name, 6, 7, 300), run(name, 6, 7, 300), "{name}");
    }
    let firsts = |seed| EnvBatch::new(world("doorkey-8x8"), 8, seed).unwrap();
    let (a, b) = (firsts(1), firsts(2));
    assert_ne!(a.envs(), b.envs());
    assert_ne!(a.observe(), b.observe());
    // Within a batch, environments differ too.
    let envs = a.envs();
    assert!((1..envs.len()).any(|i| envs[i] != envs[0]));
}

#[test]
fn an_environment_does_not_depend_on_the_batch_size() {
    let small = EnvBatch::new(world("doorkey-6x6"), 3, 11).unwrap();
    let large = EnvBatch::new(world("doorkey-6x6"), 9, 11).unwrap();
    assert_eq!(small.envs(), &large.envs()[..3]);
    assert_eq!(
        small.observe().images[..],
        large.observe().images[..3 * IMAGE_LEN]
    );
}

#[test]
fn an_episode_resets_itself_into_its_own_seeded_layout() {
    // Empty 5x5: forward, forward, right, forward, forward reaches the goal in 5 steps.
    let w = world("empty-5x5");
    let mut batch = EnvBatch::new(w, 2, 5).unwrap();
    let first = batch.observe();
    let plan = [2, 2, 1, 2, 2];
    let mut last = None;
    for (t, &a) in plan.iter().enumerate() {
        let tr = batch.step(&[a, Action::Done.id()]).unwrap();
        assert_eq!(tr.dones, [t == 4, false]);
        last = Some(tr);
    }
    let tr = last.unwrap();
    assert_eq!(tr.rewards, [(1.0 - 0.9 * 5.0 / 100.0f64) as f32, 0.0]);
    assert_eq!(tr.truncated, [false, false]);
    assert_eq!(batch.episodes(), [1, 0]);
    assert_eq!(batch.envs()[0].step_count(), 0);
    // The returned observation is the new episode's first (Empty's layout is fixed).
    assert_eq!(tr.observations.image(0), first.image(0));
    assert_eq!(tr.observations.directions[0], 0);

    // DoorKey: the new episode is episode 1 of that environment's stream.
    let w = world("doorkey-5x5");
    let mut batch = EnvBatch::new(w, 3, 8).unwrap();
    let limit = w.max_steps() as usize;
    for t in 1..=limit {
        let tr = batch.step(&[6, 6, 0]).unwrap();
        let end = t == limit;
        assert_eq!(tr.dones, [end; 3], "step {t}");
        assert_eq!(tr.truncated, [end; 3]);
        assert_eq!(tr.rewards, [0.0; 3]);
        if end {
            for i in 0..3 {
                let fresh = w.generate(&mut episode_rng(8, i as u64, 1)).unwrap();
                assert_eq!(batch.envs()[i], fresh);
                assert_eq!(
                    tr.observations.image(i).unwrap(),
                    &Observation::of(&fresh).image[..]
                );
            }
        }
    }
    assert_eq!(batch.episodes(), [1, 1, 1]);
}

#[test]
fn bad_steps_are_errors_that_change_nothing() {
    let mut batch = EnvBatch::new(world("doorkey-8x8"), 3, 0).unwrap();
    batch.step(&[1, 2, 0]).unwrap();
    let before = batch.envs().to_vec();
    assert!(matches!(batch.step(&[0, 1]), Err(Error::Shape { .. })));
    assert!(matches!(
        batch.step(&[0, 1, 2, 3]),
        Err(Error::Shape { .. })
    ));
    match batch.step(&[2, 2, 7]) {
        Err(Error::InvalidArgument { detail, .. }) => assert!(detail.contains("action 7")),
        other => panic!("{other:?}"),
    }
    assert_eq!(batch.envs(), &before[..], "no environment moved");
    for n in [0, rims::rl::batch::MAX_ENVS + 1] {
        assert!(matches!(
            EnvBatch::new(world("empty-5x5"), n, 0),
            Err(Error::Config { .. })
        ));
    }
    assert!(EnvBatch::new(World::Memory { size: 8 }, 1, 0).is_err());
}

#[test]
fn episode_streams_do_not_collide() {
    // Neighbouring (env, episode) pairs draw different first numbers.
    let mut seen = std::collections::BTreeSet::new();
    for env in 0..50 {
        for episode in 0..50 {
            assert!(seen.insert(episode_rng(3, env, episode).next_u64()));
        }
    }
}

/// A batch rebuilt from each environment's episode index and the actions of its unfinished
/// episode (what an RL checkpoint keeps) steps on exactly as the original; histories that
/// cannot be (wrong counts, a bad id, one that ends its episode) are errors.
#[test]
fn a_batch_resumes_from_its_episodes_and_histories() {
    for name in ["doorkey-5x5", "memory-s7", "empty-5x5"] {
        let mut batch = EnvBatch::new(world(name), 5, 3).unwrap();
        let mut rng = Rng::new(4);
        let mut actions = || (0..5).map(|_| rng.below(7) as u32).collect::<Vec<u32>>();
        for _ in 0..400 {
            batch.step(&actions()).unwrap();
        }
        assert!(
            batch.episodes().iter().any(|&k| k > 0),
            "{name}: episodes ended"
        );
        for (env, h) in batch.envs().iter().zip(batch.histories()) {
            assert_eq!(env.step_count() as usize, h.len(), "{name}");
        }
        let mut resumed =
            EnvBatch::resume(world(name), 3, batch.episodes(), batch.histories()).unwrap();
        assert_eq!(resumed.observe(), batch.observe(), "{name}");
        for _ in 0..300 {
            let a = actions();
            assert_eq!(resumed.step(&a).unwrap(), batch.step(&a).unwrap(), "{name}");
        }
    }
    let w = world("empty-5x5");
    let err = EnvBatch::resume(w, 1, &[0, 0], &[vec![]]).unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err}");
    assert!(EnvBatch::resume(w, 1, &[0], &[vec![9]]).is_err());
    // Empty-5x5 from (1, 1) facing right: forward, forward, right, forward, forward reaches
    // the goal, so that history cannot be an unfinished episode.
    let err = EnvBatch::resume(w, 1, &[0], &[vec![2, 2, 1, 2, 2]]).unwrap_err();
    assert!(err.to_string().contains("ends its episode"), "{err}");
}
