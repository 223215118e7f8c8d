//! A checkpoint survives a crash at every point of its save. For each step of the save
//! sequence (`checkpoint::SAVE_STEPS`) a resumed run is stopped right after that step
//! (`RIMS_FAULT_SAVE=<step>`: the process exits there, as a kill would, leaving everything as
//! it is) or fails there with an error (`<step>:error`, as a full disk would). Each time the
//! directory still loads, at the previous checkpoint before the switch and at the new one
//! after it; `metrics.jsonl` never holds a record beyond the checkpoint; and a later resume
//! cleans up and finishes with every epoch recorded once. Real SIGKILLs at random moments of a
//! run that saves every few milliseconds complete the picture.

mod support;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use rims::train::checkpoint::{self, FAULT_EXIT_CODE, SAVE_STEPS, SWITCH_STEP};
use support::*;

/// One epoch of the tiny run (2 steps), trained once and copied by each case.
fn base() -> &'static Path {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        let run = scratch("crash-base").join("run");
        train_tiny(&run, 1, &[]);
        run
    })
}

/// The step of the checkpoint in `dir`, loaded the way `--resume` loads it (model and Adam).
fn loaded_step(dir: &Path) -> u64 {
    let ctx = rims::Context::new(rims::DeviceRequest::cpu(Some(1))).unwrap();
    let state = checkpoint::read_state(dir).unwrap();
    let cfg = state.config.model().unwrap();
    let model = rims::nn::model::Model::new(&ctx, cfg, 0).unwrap();
    let mut adam = rims::ops::optim::Adam::new(
        &ctx,
        model.store.trainable_len(),
        rims::ops::optim::AdamConfig::default(),
    )
    .unwrap();
    let loaded = checkpoint::load(&ctx, dir, &model, Some(&mut adam)).unwrap();
    assert_eq!(loaded, state);
    state.progress.step
}

fn resume(dir: &Path, epochs: &str, env: &[(&str, &str)]) -> Outcome {
    rims_env(
        &[
            "train",
            "--device",
            "cpu",
            "--resume",
            s(dir),
            "--epochs",
            epochs,
        ],
        env,
    )
}

/// After a crash: the directory loads (eval too), at `step`, and `metrics.jsonl` holds no
/// record beyond it.
fn assert_loads_at(dir: &Path, step: u64, what: &str) {
    assert_eq!(loaded_step(dir), step, "{what}: the checkpoint in place");
    let eval = rims(&["eval", "--device", "cpu", "--checkpoint", s(dir)]);
    assert_eq!(eval.code, 0, "{what}: eval failed: {eval:?}");
    let epoch = checkpoint::read_state(dir).unwrap().progress.epoch as u64;
    let epochs = metric_epochs(dir);
    assert!(
        epochs.iter().all(|&e| e <= epoch),
        "{what}: metrics.jsonl {epochs:?} is ahead of the checkpoint (epoch {epoch})"
    );
}

/// A later resume removes every leftover and records each epoch once.
fn assert_recovers(dir: &Path, what: &str) {
    let o = resume(dir, "3", &[]);
    assert_eq!(
        o.code, 0,
        "{what}: the resume after the crash failed: {o:?}"
    );
    assert_eq!(metric_epochs(dir), [1, 2, 3], "{what}: metrics.jsonl");
    assert_eq!(
        entries(dir),
        [".rims.lock", "epoch-000003", "latest", "metrics.jsonl"],
        "{what}: leftovers"
    );
    assert_eq!(
        entries(&dir.join("epoch-000003")),
        [
            ".rims-set",
            "metrics.jsonl",
            "model.safetensors",
            "optimizer.safetensors",
            "train.json"
        ]
    );
    assert_eq!(loaded_step(dir), 6);
}

#[test]
fn a_kill_after_any_step_of_a_save_leaves_a_loadable_checkpoint() {
    let root = scratch("crash-kill");
    for step in 1..=SAVE_STEPS.len() {
        let what = format!("killed after step {step} ({})", SAVE_STEPS[step - 1]);
        let dir = root.join(format!("step-{step}"));
        copy_dir(base(), &dir);
        let o = resume(&dir, "2", &[("RIMS_FAULT_SAVE", &step.to_string())]);
        assert_eq!(o.code, FAULT_EXIT_CODE, "{what}: {o:?}");
        let expected = if step >= SWITCH_STEP { 4 } else { 2 };
        assert_loads_at(&dir, expected, &what);
        assert_recovers(&dir, &what);
    }
}

#[test]
fn a_failure_at_any_step_of_a_save_is_an_error_and_leaves_no_trace() {
    let root = scratch("crash-error");
    for step in 1..=SAVE_STEPS.len() {
        let what = format!("failed after step {step} ({})", SAVE_STEPS[step - 1]);
        let dir = root.join(format!("step-{step}"));
        copy_dir(base(), &dir);
        let before = snapshot(&dir);
        let o = resume(&dir, "2", &[("RIMS_FAULT_SAVE", &format!("{step}:error"))]);
        assert_eq!(o.code, 1, "{what}: {o:?}");
        assert!(o.stderr.contains("injected failure"), "{what}: {o:?}");
        if step < SWITCH_STEP {
            // The failed save took back everything it wrote.
            assert_unchanged(&before, &dir, &what);
            assert_eq!(
                entries(&dir),
                [".rims.lock", "epoch-000001", "latest", "metrics.jsonl"],
                "{what}"
            );
            assert_loads_at(&dir, 2, &what);
        } else {
            assert_loads_at(&dir, 4, &what);
        }
        assert_recovers(&dir, &what);
    }
}

#[test]
fn an_older_run_directory_resumes_and_is_converted() {
    // The layout before sets: the three files directly in the directory, a record written
    // twice (a crash between its append and its checkpoint, then a resume), and a temporary
    // a kill left behind.
    let dir = scratch("crash-legacy").join("run");
    std::fs::create_dir_all(&dir).unwrap();
    let set = checkpoint::current(base()).unwrap();
    for f in ["model.safetensors", "optimizer.safetensors", "train.json"] {
        std::fs::copy(set.join(f), dir.join(f)).unwrap();
    }
    let record = std::fs::read_to_string(base().join("metrics.jsonl")).unwrap();
    let ahead = record.replace("\"epoch\":1", "\"epoch\":2");
    std::fs::write(
        dir.join("metrics.jsonl"),
        format!("{record}{record}{ahead}"),
    )
    .unwrap();
    std::fs::write(dir.join(".model.safetensors.tmp-999999999"), b"partial").unwrap();
    assert_eq!(loaded_step(&dir), 2);
    let o = resume(&dir, "2", &[]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(metric_epochs(&dir), [1, 2]);
    assert_eq!(
        entries(&dir),
        [".rims.lock", "epoch-000002", "latest", "metrics.jsonl"]
    );
    assert_eq!(loaded_step(&dir), 4);
}

#[test]
fn a_first_save_killed_before_the_switch_leaves_nothing_behind_the_next_start() {
    // Stopped after each step of its first save that comes before `latest` exists: the
    // directory has no checkpoint, so a new run starts there, and its first save removes the
    // set the killed one left (it carries the token `DIR/.rims-set` kept for it).
    let root = scratch("crash-first-save");
    for step in 1..SWITCH_STEP {
        let what = format!(
            "first save killed after step {step} ({})",
            SAVE_STEPS[step - 1]
        );
        let dir = root.join(format!("step-{step}"));
        let mut args = vec![
            "train",
            "--out",
            s(&dir),
            "--epochs",
            "1",
            "--iterations",
            "2",
        ];
        args.extend(tiny_flags(&[]));
        let o = rims_env(&args, &[("RIMS_FAULT_SAVE", &step.to_string())]);
        assert_eq!(o.code, FAULT_EXIT_CODE, "{what}: {o:?}");
        assert!(checkpoint::current(&dir).is_err(), "{what}");
        let o = rims(&args);
        assert_eq!(o.code, 0, "{what}: the new start failed: {o:?}");
        assert_eq!(
            entries(&dir),
            [".rims.lock", "epoch-000001", "latest", "metrics.jsonl"],
            "{what}: leftovers"
        );
        assert_eq!(metric_epochs(&dir), [1], "{what}");
        assert_eq!(loaded_step(&dir), 2, "{what}");
    }
}

#[test]
fn a_directory_where_the_token_goes_is_never_removed() {
    // `DIR/.rims-set` is the file a first save keeps its token in; a directory of that name is
    // somebody else's: the run stops with a clear error and the directory stays as it was.
    let dir = scratch("crash-token-dir").join("run");
    std::fs::create_dir_all(dir.join(".rims-set")).unwrap();
    std::fs::write(dir.join(".rims-set").join("notes.txt"), b"mine").unwrap();
    let mut args = vec![
        "train",
        "--out",
        s(&dir),
        "--epochs",
        "1",
        "--iterations",
        "2",
    ];
    args.extend(tiny_flags(&[]));
    let o = rims(&args);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(
        o.stderr
            .contains("a directory stands where the run keeps its token"),
        "{o:?}"
    );
    assert_eq!(
        std::fs::read(dir.join(".rims-set").join("notes.txt")).unwrap(),
        b"mine"
    );
}

#[test]
fn sigkill_at_random_moments_never_loses_the_checkpoint() {
    // One epoch is one step, an evaluation and a save: a few milliseconds, so the kills land
    // all over the save sequence.
    let dir = scratch("crash-sigkill").join("run");
    let mut fresh = vec![
        "train",
        "--out",
        s(&dir),
        "--epochs",
        "100000",
        "--iterations",
        "1",
    ];
    fresh.extend(TINY);
    let mut seed = 0x9E37_79B9u64;
    let mut last_epoch = 0;
    for round in 0..20 {
        let args: Vec<&str> = if checkpoint::current(&dir).is_ok() {
            vec![
                "train",
                "--device",
                "cpu",
                "--resume",
                s(&dir),
                "--epochs",
                "100000",
            ]
        } else {
            fresh.clone()
        };
        let mut child = command(&args, &[])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_millis(40 + (seed >> 33) % 160));
        child.kill().unwrap();
        child.wait().unwrap();
        if checkpoint::current(&dir).is_err() {
            continue; // killed before its first save
        }
        let epoch = checkpoint::read_state(&dir).unwrap().progress.epoch;
        assert!(
            epoch >= last_epoch,
            "round {round}: went back to epoch {epoch}"
        );
        last_epoch = epoch;
        assert_eq!(loaded_step(&dir), epoch as u64, "round {round}");
        let epochs = metric_epochs(&dir);
        let mut sorted = epochs.clone();
        sorted.dedup();
        assert_eq!(sorted, epochs, "round {round}: an epoch recorded twice");
        assert!(epochs.iter().all(|&e| e <= epoch as u64), "round {round}");
    }
    assert!(last_epoch > 0, "no run got as far as its first checkpoint");
    let target = (last_epoch + 1).to_string();
    let o = resume(&dir, &target, &[]);
    assert_eq!(o.code, 0, "{o:?}");
    let want: Vec<u64> = (1..=last_epoch as u64 + 1).collect();
    assert_eq!(metric_epochs(&dir), want);
    assert_eq!(
        entries(&dir),
        [
            ".rims.lock".into(),
            format!("epoch-{:06}", last_epoch + 1),
            "latest".into(),
            "metrics.jsonl".into()
        ]
    );
}
