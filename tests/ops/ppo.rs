//! Recurrent PPO (src/rl): GAE against its definition as a sum, the update's replay of stored
//! sequences against what collection computed (states carried one frame at a time and reset
//! where episodes begin), a run resumed from a checkpoint against the uninterrupted one, a
//! short run that learns Empty-5x5, and bad settings.

use rims::rl::agent::{Agent, HostState};
use rims::rl::config::RlConfig;
use rims::rl::eval::{Policy, evaluate};
use rims::rl::ppo::{Running, Sequence, collect, gae, log_softmax, replay};
use rims::rl::train::{QuietRl, load_agent, read_updates, train};
use rims::rl::{EnvBatch, World};
use rims::rng::Rng;
use rims::tape::Tape;
use rims::{Context, Error};

/// GAE's recursion against its closed form, A_t = Σ_l (γλ)^l δ_{t+l} summed until the
/// episode ends, on random rewards and values with episode ends in the middle.
#[test]
fn gae_is_the_discounted_sum_of_td_errors() {
    let (steps, envs, gamma, lambda) = (9, 3, 0.9, 0.8);
    let mut rng = Rng::new(5);
    let n = steps * envs;
    let rewards: Vec<f32> = rng.vec_f32(n, -1.0, 1.0);
    let values: Vec<f32> = rng.vec_f32(n, -1.0, 1.0);
    let last: Vec<f32> = rng.vec_f32(envs, -1.0, 1.0);
    let dones: Vec<bool> = (0..n).map(|_| rng.below(4) == 0).collect();
    let (adv, ret) = gae(&rewards, &values, &dones, &last, gamma, lambda);
    for (e, &bootstrap) in last.iter().enumerate() {
        for t in 0..steps {
            let mut want = 0.0f64;
            let mut weight = 1.0f64;
            for u in t..steps {
                let k = u * envs + e;
                let next = if u + 1 < steps {
                    values[k + envs]
                } else {
                    bootstrap
                } as f64;
                let keep = if dones[k] { 0.0 } else { 1.0 };
                let delta = rewards[k] as f64 + gamma * next * keep - values[k] as f64;
                want += weight * delta;
                if dones[k] {
                    break;
                }
                weight *= gamma * lambda;
            }
            let k = t * envs + e;
            assert!(
                (adv[k] as f64 - want).abs() < 1e-5,
                "A[{t},{e}] {} vs {want}",
                adv[k]
            );
            assert!((ret[k] - adv[k] - values[k]).abs() < 1e-6);
        }
    }
}

/// A fresh directory under the system's temporary one, named for the test.
fn scratch(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("rims-ppo-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn tiny(model: &str, env: &str) -> RlConfig {
    RlConfig {
        env: env.into(),
        envs: 4,
        steps: 128,
        batch: 128,
        recurrence: 64,
        frames: 512,
        ..RlConfig::for_model(model)
    }
}

// Before any update, re-running the stored sequences (64 frames each, so that the step limit
// of Empty-5x5 at frame 100 ends an episode inside one) gives back every frame's value and
// action log-probability exactly as collection computed them, one frame at a time with the
// resets on the tape: RIMs with LSTM and GRU cells, and the dense LSTM.
device_test!(replayed_sequences_give_what_collection_saw);
fn replayed_sequences_give_what_collection_saw(ctx: &Context) {
    for (model, cell) in [("rims", "lstm"), ("rims", "gru"), ("lstm", "lstm")] {
        let cfg = RlConfig {
            cell: cell.into(),
            ..tiny(model, "empty-5x5")
        };
        let agent = Agent::new(ctx, cfg.agent().unwrap(), 3).unwrap();
        let mut batch = EnvBatch::new(cfg.world().unwrap(), cfg.envs, 3).unwrap();
        let mut state = HostState::zeros(&agent.cfg, cfg.envs);
        let mut running = Running::default();
        let r = collect(
            ctx,
            &agent,
            &mut batch,
            &mut state,
            &mut running,
            cfg.steps,
            &mut Rng::new(1),
        )
        .unwrap();
        assert!(
            r.starts.iter().skip(cfg.envs).any(|&s| s),
            "{model}: an episode must begin inside the rollout"
        );
        let seqs: Vec<Sequence> = (0..cfg.steps)
            .step_by(cfg.recurrence)
            .flat_map(|t0| (0..cfg.envs).map(move |env| Sequence { env, t0 }))
            .collect();
        let mut tape = Tape::new();
        let frames = replay(ctx, &agent, &mut tape, &r, &seqs, cfg.recurrence).unwrap();
        let mut worst = 0.0f32;
        for (t, (logits, values)) in frames.iter().enumerate() {
            let logits = tape.value(*logits).to_vec(ctx).unwrap();
            let values = tape.value(*values).to_vec(ctx).unwrap();
            for (j, seq) in seqs.iter().enumerate() {
                let k = (seq.t0 + t) * r.envs + seq.env;
                let lp = log_softmax(&logits[j * 7..(j + 1) * 7])[r.actions[k] as usize] as f32;
                worst = worst
                    .max((lp - r.logp[k]).abs())
                    .max((values[j] - r.values[k]).abs());
            }
        }
        assert!(
            worst < 2e-5,
            "{model}/{cell}: replay differs from collection by {worst}"
        );
    }
}

/// A run stopped after 2 updates and resumed gives the parameters and records of the
/// uninterrupted run bit for bit (the environments replayed from their action histories).
#[test]
fn a_resumed_run_repeats_the_uninterrupted_one() {
    let ctx = crate::common::cpu();
    let dir = scratch("resume");
    let cfg = RlConfig {
        frames: 2048,
        checkpoint_every: 2,
        ..tiny("rims", "doorkey-5x5")
    };
    let whole = dir.join("whole");
    let split = dir.join("split");
    train(ctx, &cfg, &whole, false, &mut QuietRl).unwrap();
    let half = RlConfig {
        frames: 1024,
        ..cfg.clone()
    };
    train(ctx, &half, &split, false, &mut QuietRl).unwrap();
    let resumed = train(ctx, &cfg, &split, true, &mut QuietRl).unwrap();
    assert_eq!(resumed.progress.update, 4);
    let params = |d: &std::path::Path| {
        let (agent, _) = load_agent(ctx, d).unwrap();
        agent.store.flat_values().to_vec(ctx).unwrap()
    };
    let (a, b) = (params(&whole), params(&split));
    assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
    let strip = |d: &std::path::Path| {
        read_updates(d)
            .unwrap()
            .into_iter()
            .map(|mut r| {
                (r.fps, r.collect_seconds, r.update_seconds) = (0.0, 0.0, 0.0);
                r
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&whole), strip(&split));
    assert_eq!(strip(&whole).len(), 4);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The smoke run of the issue: a RIMs agent and an LSTM agent each learn Empty-5x5 in 20
/// updates (40,960 frames) at lr 1e-3, where a random policy reaches the goal in about half of
/// its episodes with a mean return near 0.2. CPU device only: it takes seconds there and
/// minutes on llvmpipe.
#[test]
fn ppo_learns_empty_5x5() {
    let ctx = crate::common::cpu();
    for model in ["rims", "lstm"] {
        let dir = scratch(model);
        let cfg = RlConfig {
            env: "empty-5x5".into(),
            lr: 1e-3,
            frames: 40_960,
            checkpoint_every: 100,
            seed: 2,
            ..RlConfig::for_model(model)
        };
        train(ctx, &cfg, &dir, false, &mut QuietRl).unwrap();
        let (agent, _) = load_agent(ctx, &dir).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let world = World::parse("empty-5x5").unwrap();
        let r = evaluate(ctx, &agent, world, 200, Policy::Sample).unwrap();
        assert!(
            r.success_rate > 0.95 && r.mean_return > 0.8,
            "{model}: success {} return {}",
            r.success_rate,
            r.mean_return
        );
    }
}

/// Settings that cannot run are errors naming the setting.
#[test]
fn bad_settings_are_errors() {
    let field = |cfg: RlConfig| match cfg.validate() {
        Err(Error::Config { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    let base = RlConfig::default();
    assert_eq!(
        field(RlConfig {
            recurrence: 48,
            ..base.clone()
        }),
        "recurrence"
    );
    assert_eq!(
        field(RlConfig {
            batch: 100,
            ..base.clone()
        }),
        "batch"
    );
    assert_eq!(
        field(RlConfig {
            model: "cnn".into(),
            ..base.clone()
        }),
        "model"
    );
    assert_eq!(
        field(RlConfig {
            cell: "rnn".into(),
            ..base.clone()
        }),
        "cell"
    );
    assert_eq!(
        field(RlConfig {
            envs: 0,
            ..base.clone()
        }),
        "envs"
    );
    assert_eq!(
        field(RlConfig {
            gamma: 1.5,
            ..base.clone()
        }),
        "gamma"
    );
    assert_eq!(
        field(RlConfig {
            clip: -0.1,
            ..base.clone()
        }),
        "clip_eps"
    );
    assert_eq!(
        field(RlConfig {
            lr: f32::NAN,
            ..base.clone()
        }),
        "lr"
    );
    assert_eq!(
        field(RlConfig {
            active: 5,
            ..base.clone()
        }),
        "active"
    );
    assert!(
        RlConfig {
            env: "doorkey-3x3".into(),
            ..base.clone()
        }
        .validate()
        .is_err()
    );
    assert!(
        RlConfig {
            env: "maze-9".into(),
            ..base
        }
        .validate()
        .is_err()
    );
}
