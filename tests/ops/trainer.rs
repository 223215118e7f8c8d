//! The training loop: checkpoints round-trip, a resumed run equals an uninterrupted one, and bad
//! checkpoints or mismatched configs are refused without touching anything.

use rims::Context;
use std::path::PathBuf;

use rims::Error;
use rims::train::{self, LrSchedule, Quiet, Task, TrainConfig, checkpoint};

/// A tiny copying run with dropout and a carried state (`tests/ops/dist.rs` takes it without dropout).
pub(crate) fn tiny() -> TrainConfig {
    TrainConfig {
        mechanisms: 3,
        active: 2,
        hidden: 4,
        embed: 4,
        input_key: 4,
        input_value: 4,
        comm_heads: 1,
        comm_key: 4,
        comm_value: 4,
        batch: 4,
        epochs: 2,
        iterations: 3,
        pool: 5,
        train_len: 2,
        test_len: 3,
        dropout: 0.2,
        cell_dropout: 0.1,
        // The authors' mode: resuming must restore the carried state's effect exactly too.
        carry_state: true,
        // A run extended by more epochs repeats the shorter run's steps only at a constant
        // rate (a cosine schedule stretches over the new total).
        lr_schedule: LrSchedule::Constant,
        eval_every: 1,
        ..TrainConfig::default()
    }
}

#[test]
fn paper_preset_is_the_spec_setting() {
    // docs/spec.md §1 (sizes) and §2 (protocols).
    let c = TrainConfig::paper(Task::Copying);
    c.validate().unwrap();
    let m = c.model().unwrap().rims;
    assert_eq!(
        (
            m.mechanisms,
            m.active,
            m.hidden,
            m.input,
            m.input_key,
            m.input_value
        ),
        (6, 4, 100, 600, 64, 400)
    );
    assert_eq!((m.comm_heads, m.comm_key, m.comm_value), (4, 16, 16));
    assert_eq!((m.dropout, c.dropout, c.clip), (0.1, 0.5, Some(1.0)));
    assert_eq!(
        (
            c.symbols,
            c.train_len,
            c.test_len,
            c.batch,
            c.epochs,
            c.iterations
        ),
        (10, 50, 200, 64, 200, 200)
    );
    assert_eq!(c.lr, 1e-3);
    assert!(c.carry_state);
    let s = TrainConfig::paper(Task::Smnist);
    s.validate().unwrap();
    assert_eq!((s.lr, s.epochs, s.batch, s.eval_every), (7e-4, 100, 64, 4));
    assert_eq!(
        (s.resolution, s.eval_resolutions.clone()),
        (14, vec![14, 16, 19, 24])
    );
    assert_eq!(s.limit, None);
}

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "rims-trainer-{tag}-{}-{}",
        std::process::id(),
        unique()
    ));
    let _ = std::fs::remove_dir_all(&d);
    d
}

device_test!(resumed_run_equals_uninterrupted_run);
fn resumed_run_equals_uninterrupted_run(ctx: &Context) {
    assert_resume_repeats_the_run(ctx, &tiny());
}

/// A tiny bouncing-balls run: 8×8 frames, two channels per convolution.
pub(crate) fn tiny_balls() -> TrainConfig {
    TrainConfig {
        task: Task::Balls,
        frame_size: 8,
        frame_channels: [2, 2, 3],
        frame_dense: 4,
        balls: "2".into(),
        train_len: 3,
        test_len: 2,
        carry_state: false,
        dropout: 0.0,
        ..tiny()
    }
}

device_test!(resumed_balls_run_equals_uninterrupted_run);
fn resumed_balls_run_equals_uninterrupted_run(ctx: &Context) {
    // The training stream restarts at the resumed step's sequences.
    assert_resume_repeats_the_run(ctx, &tiny_balls());
}

/// `cfg` trained in one call, and in two (one epoch, then resumed), give the same records and
/// the same parameters bit for bit.
fn assert_resume_repeats_the_run(ctx: &Context, cfg: &TrainConfig) {
    let cfg = cfg.clone();
    let straight = dir("straight");
    let a = train::train(ctx, &cfg, &straight, false, &mut Quiet).unwrap();
    let split = dir("split");
    let first = TrainConfig {
        epochs: 1,
        ..cfg.clone()
    };
    train::train(ctx, &first, &split, false, &mut Quiet).unwrap();
    let b = train::train(ctx, &cfg, &split, true, &mut Quiet).unwrap();
    assert_eq!(a.progress.step, b.progress.step);
    assert_eq!(
        a.history.last().unwrap().eval,
        b.history.last().unwrap().eval
    );
    assert_eq!(
        a.history.last().unwrap().train_loss,
        b.history.last().unwrap().train_loss
    );
    let pa = std::fs::read(
        checkpoint::current(&straight)
            .unwrap()
            .join(checkpoint::MODEL_FILE),
    )
    .unwrap();
    let pb = std::fs::read(
        checkpoint::current(&split)
            .unwrap()
            .join(checkpoint::MODEL_FILE),
    )
    .unwrap();
    let (ta, tb) = (
        safetensors::SafeTensors::deserialize(&pa).unwrap(),
        safetensors::SafeTensors::deserialize(&pb).unwrap(),
    );
    let mut names = ta.names();
    names.sort();
    for name in names {
        let same = ta.tensor(name).unwrap().data() == tb.tensor(name).unwrap().data();
        assert!(
            same,
            "parameter {name} differs between the resumed and the uninterrupted run"
        );
    }
    let lines = std::fs::read_to_string(split.join("metrics.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 2, "one metrics line per evaluation");
    std::fs::remove_dir_all(&straight).unwrap();
    std::fs::remove_dir_all(&split).unwrap();
}

device_test!(refuses_mismatched_configs_and_bad_checkpoints_without_damage);
fn refuses_mismatched_configs_and_bad_checkpoints_without_damage(ctx: &Context) {
    let cfg = TrainConfig {
        epochs: 1,
        ..tiny()
    };
    let d = dir("refuse");
    train::train(ctx, &cfg, &d, false, &mut Quiet).unwrap();
    let set = checkpoint::current(&d).unwrap();
    let before: Vec<Vec<u8>> = [
        checkpoint::MODEL_FILE,
        checkpoint::OPTIMIZER_FILE,
        checkpoint::STATE_FILE,
    ]
    .iter()
    .map(|f| std::fs::read(set.join(f)).unwrap())
    .collect();
    // Starting a new run over an existing checkpoint.
    assert!(matches!(
        train::train(ctx, &cfg, &d, false, &mut Quiet),
        Err(Error::Config { field: "out", .. })
    ));
    // Resuming with another model size.
    let other = TrainConfig {
        hidden: 5,
        epochs: 2,
        ..cfg.clone()
    };
    let err = train::train(ctx, &other, &d, true, &mut Quiet).unwrap_err();
    assert!(err.to_string().contains("hidden"), "{err}");
    // A model file from another step (a crash between two renames).
    let model = set.join(checkpoint::MODEL_FILE);
    let good = std::fs::read(&model).unwrap();
    let state = set.join(checkpoint::STATE_FILE);
    let json = std::fs::read_to_string(&state)
        .unwrap()
        .replace("\"step\": 3", "\"step\": 4");
    std::fs::write(&state, &json).unwrap();
    let err = train::train(
        ctx,
        &TrainConfig {
            epochs: 2,
            ..cfg.clone()
        },
        &d,
        true,
        &mut Quiet,
    )
    .unwrap_err();
    assert!(matches!(err, Error::File { .. }), "{err}");
    std::fs::write(&state, &before[2]).unwrap();
    // A truncated model file.
    std::fs::write(&model, &good[..good.len() / 2]).unwrap();
    assert!(matches!(
        train::train(
            ctx,
            &TrainConfig {
                epochs: 2,
                ..cfg.clone()
            },
            &d,
            true,
            &mut Quiet
        ),
        Err(Error::File { .. })
    ));
    std::fs::write(&model, &good).unwrap();
    // Missing checkpoint.
    assert!(matches!(
        train::train(ctx, &cfg, &dir("missing"), true, &mut Quiet),
        Err(Error::File { .. })
    ));
    let after: Vec<Vec<u8>> = [
        checkpoint::MODEL_FILE,
        checkpoint::OPTIMIZER_FILE,
        checkpoint::STATE_FILE,
    ]
    .iter()
    .map(|f| std::fs::read(set.join(f)).unwrap())
    .collect();
    assert_eq!(before, after, "refused runs leave the checkpoint as it was");
    std::fs::remove_dir_all(&d).unwrap();
}

/// A number no other call in this process gets: the CPU and GPU halves of a test run at the
/// same time and must not share a directory.
fn unique() -> usize {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}
