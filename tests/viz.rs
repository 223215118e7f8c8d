//! `rims viz`: the pictures it writes are real PNGs of a sensible size, and bad input is a
//! one-line error with a nonzero exit code, never a panic.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

mod support;

/// The binary's exit code, stdout and stderr (see `support::rims`).
fn rims(args: &[&str]) -> (i32, String, String) {
    let o = support::rims(args);
    (o.code, o.stdout, o.stderr)
}

fn temp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rims-viz-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A tiny copying checkpoint (two epochs, so metrics.jsonl has two records), made once.
fn run_dir() -> &'static Path {
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    RUN.get_or_init(|| {
        let run = temp("run").join("run");
        support::train_tiny(&run, 2, &[]);
        run
    })
}

/// Decodes a PNG: (width, height, number of distinct colours).
fn decode(path: &Path) -> (u32, u32, usize) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is not a PNG",
        path.display()
    );
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let mut colours: Vec<&[u8]> = buf[..info.buffer_size()].chunks(channels).collect();
    colours.sort_unstable();
    colours.dedup();
    (info.width, info.height, colours.len())
}

fn assert_picture(path: &Path) {
    let (w, h, colours) = decode(path);
    assert!(w > 100 && h > 100, "{}: {w}x{h}", path.display());
    // Heatmap or lines, antialiased text: far more than a blank canvas's one colour.
    assert!(colours > 20, "{}: only {colours} colours", path.display());
}

fn assert_one_line_error(args: &[&str], needle: &str) {
    let (code, _, err) = rims(args);
    assert_eq!(code, 1, "{args:?} should fail with 1: {err}");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{args:?}: not one line: {err}");
    assert!(
        lines[0].starts_with("error:") && lines[0].contains(needle),
        "{args:?}: expected 'error: ...{needle}...', got: {err}"
    );
}

fn assert_usage_error(args: &[&str]) {
    let (code, _, err) = rims(args);
    assert_eq!(code, 2, "{args:?} is a usage error: {err}");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
}

#[test]
fn draws_mechanism_activity_of_a_checkpoint() {
    let run = run_dir();
    let dir = temp("masks");
    let png = dir.join("masks.png");
    let (code, out, err) = rims(&[
        "viz",
        "--checkpoint",
        s(run),
        "--task",
        "copying",
        "--out",
        s(&png),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("3 mechanisms x "), "{out}");
    assert_picture(&png);

    // Another example and gap; the default output goes beside the checkpoint.
    let (code, out, err) = rims(&[
        "viz",
        "--checkpoint",
        s(run),
        "--example",
        "3",
        "--length",
        "12",
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    // Gap 12 plus twice the run's 5 symbols.
    assert!(out.contains("x 22 steps"), "{out}");
    // Beside the run, not inside it: a run directory holds only what its run writes.
    assert_picture(&run.with_file_name("run-masks_copying.png"));
}

#[test]
fn draws_training_curves() {
    let run = run_dir();
    let dir = temp("curves");
    let png = dir.join("curves.png");
    let (code, out, err) = rims(&["viz", "--metrics", s(run), "--out", s(&png)]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("2 evaluations"), "{out}");
    assert_picture(&png);
}

#[test]
fn bad_input_is_a_one_line_error() {
    let run = run_dir();
    let dir = temp("bad");

    // Exactly one of --checkpoint and --metrics; checkpoint flags need a checkpoint.
    assert_usage_error(&["viz"]);
    assert_usage_error(&["viz", "--checkpoint", s(run), "--metrics", s(run)]);
    assert_usage_error(&["viz", "--checkpoint", s(run), "--task", "sudoku"]);
    assert_usage_error(&["viz", "--metrics", s(run), "--task", "copying"]);
    assert_usage_error(&["viz", "--checkpoint", s(run), "--example", "-1"]);

    // Metrics: missing, corrupt, empty, not a number.
    assert_one_line_error(&["viz", "--metrics", s(&dir)], "cannot read");
    let metrics = dir.join("metrics.jsonl");
    std::fs::write(&metrics, "{\"epoch\": 1, \"step\": 2}\nnot json\n").unwrap();
    assert_one_line_error(&["viz", "--metrics", s(&dir)], "line 1");
    std::fs::write(&metrics, "\n\n").unwrap();
    assert_one_line_error(&["viz", "--metrics", s(&dir)], "no records");
    let good = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    std::fs::write(&metrics, format!("{good}{{\"truncated\n")).unwrap();
    assert_one_line_error(&["viz", "--metrics", s(&dir)], "line 3");

    // Checkpoints: missing, corrupt, or asked for what they are not.
    assert_one_line_error(
        &["viz", "--checkpoint", "/nonexistent/rims-run"],
        "no checkpoint",
    );
    let broken = dir.join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    // A run directory of the older layout: the files directly in it.
    let set = rims::train::checkpoint::current(run).unwrap();
    for f in ["train.json", "model.safetensors"] {
        std::fs::copy(set.join(f), broken.join(f)).unwrap();
    }
    std::fs::write(broken.join("model.safetensors"), b"not safetensors").unwrap();
    assert_one_line_error(
        &["viz", "--checkpoint", s(&broken)],
        "not a valid safetensors",
    );
    std::fs::write(broken.join("train.json"), b"{").unwrap();
    assert_one_line_error(
        &["viz", "--checkpoint", s(&broken)],
        "not a valid checkpoint",
    );
    let viz = |extra: &[&str]| {
        let mut a = vec!["viz", "--checkpoint", s(run)];
        a.extend_from_slice(extra);
        a.extend_from_slice(&["--out", "/dev/null/x.png"]);
        a.iter().map(|x| x.to_string()).collect::<Vec<_>>()
    };
    let check = |extra: &[&str], needle: &str| {
        let a = viz(extra);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        assert_one_line_error(&a, needle);
    };
    check(&["--task", "smnist"], "trained on");
    check(&["--resolution", "7"], "smnist");
    check(&["--example", "4"], "out of range");
    check(&["--batch", "0"], "batch");
    check(&["--length", "0"], "at least 1");
    // A place that cannot hold the picture.
    check(&[], "/dev/null/x.png");
}

#[test]
fn draws_a_balls_rollout_and_names_what_does_not_apply() {
    let dir = temp("balls");
    let run = dir.join("run");
    support::train_tiny(
        &run,
        1,
        &[
            "--task",
            "balls",
            "--frame-size",
            "8",
            "--frame-channels",
            "2,2,2",
            "--frame-dense",
            "4",
            "--train-len",
            "3",
            "--test-len",
            "4",
        ],
    );
    let png = dir.join("rollout.png");
    let args = [
        "viz",
        "--checkpoint",
        s(&run),
        "--set",
        "test-curtain",
        "--example",
        "5",
    ];
    let (code, out, err) = rims(&[&args[..], &["--out", s(&png)]].concat());
    assert_eq!(code, 0, "{out}\n{err}");
    // 15 given frames and 4 predicted: the model ran 18 steps.
    assert!(
        out.contains("4 rollout frames of test-curtain sequence 5"),
        "{out}"
    );
    assert!(out.contains("3 mechanisms x 18 steps"), "{out}");
    assert_picture(&png);
    // The default goes beside the run.
    let (code, out, err) = rims(&["viz", "--checkpoint", s(&run)]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_picture(&dir.join("run-rollout_test-4.png"));

    // Its curves: one series per evaluation set, at the last rollout frame.
    let curves = dir.join("curves.png");
    let (code, out, err) = rims(&["viz", "--metrics", s(&run), "--out", s(&curves)]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("4 accuracy series"), "{out}");
    assert_picture(&curves);
    let run_s = s(&run);
    assert_one_line_error(
        &["viz", "--checkpoint", run_s, "--set", "train"],
        "unknown set 'train'",
    );
    assert_one_line_error(
        &["viz", "--checkpoint", run_s, "--example", "64"],
        "64 is not below",
    );
    assert_one_line_error(
        &["viz", "--checkpoint", run_s, "--length", "5"],
        "--set and --example",
    );
    let copying = run_dir();
    assert_one_line_error(
        &["viz", "--checkpoint", s(copying), "--set", "test-4"],
        "for balls checkpoints",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A tiny reinforcement-learning run of `model` on empty-5x5 (four updates of 128 frames),
/// made once per model, in a directory named after the model (so that a comparison of the two
/// does not take them for seeds of one configuration).
fn rl_run(model: &'static str) -> &'static Path {
    static RIMS: OnceLock<PathBuf> = OnceLock::new();
    static LSTM: OnceLock<PathBuf> = OnceLock::new();
    let cell = if model == "rims" { &RIMS } else { &LSTM };
    cell.get_or_init(|| {
        let run = temp(&format!("rl-{model}")).join(model);
        let mut args = vec![
            "rl",
            "train",
            "--env",
            "empty-5x5",
            "--model",
            model,
            "--frames",
            "512",
            "--epochs",
            "1",
            "--out",
            s(&run),
        ];
        args.extend(support::TINY_RL);
        args.extend(if model == "rims" {
            ["--hidden", "8"]
        } else {
            ["--hidden", "16"]
        });
        let (code, out, err) = rims(&args);
        assert_eq!(code, 0, "rl train {model}: {out}\n{err}");
        run
    })
}

/// The episode picture: the frame rows and the mechanism map make it taller than wide only
/// for long episodes; it is always the pictures' width.
fn assert_episode_picture(path: &Path) {
    assert_picture(path);
    let (w, h, _) = decode(path);
    assert_eq!(w, 1200, "{}", path.display());
    assert!((250..3000).contains(&h), "{}: {w}x{h}", path.display());
}

#[test]
fn draws_an_rl_episode_with_its_mechanisms() {
    let dir = temp("episode");
    for (model, n) in [("rims", 4), ("lstm", 1)] {
        let run = rl_run(model);
        let png = dir.join(format!("{model}.png"));
        let (code, out, err) = rims(&["viz", "--checkpoint", s(run), "--out", s(&png)]);
        assert_eq!(code, 0, "{out}\n{err}");
        assert!(out.contains("episode 0 of empty-5x5"), "{out}");
        assert!(out.contains(&format!("; {n} mechanisms x ")), "{out}");
        assert_episode_picture(&png);
    }
    // Another world, episode and policy; the default output goes beside the run.
    let run = rl_run("rims");
    let (code, out, err) = rims(&[
        "viz",
        "--checkpoint",
        s(run),
        "--env",
        "doorkey-6x6",
        "--example",
        "3",
        "--greedy",
        "--device",
        "cpu",
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("episode 3 of doorkey-6x6"), "{out}");
    assert_episode_picture(&run.with_file_name("rims-episode_doorkey-6x6.png"));
}

#[test]
fn draws_rl_curves_of_one_run_and_of_several() {
    let (rims_run, lstm_run) = (rl_run("rims"), rl_run("lstm"));
    let dir = temp("rl-curves");
    let png = dir.join("curves.png");
    let (code, out, err) = rims(&["viz", "--metrics", s(rims_run), "--out", s(&png)]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("1 runs, 4 updates, 512 frames"), "{out}");
    assert_picture(&png);
    let both = dir.join("both.png");
    let (code, out, err) = rims(&[
        "viz",
        "--metrics",
        s(rims_run),
        s(lstm_run),
        "--out",
        s(&both),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("2 runs, 4 updates"), "{out}");
    assert_picture(&both);
    // The metrics file alone (no checkpoint beside it) is recognised by its records.
    let alone = dir.join("alone");
    std::fs::create_dir_all(&alone).unwrap();
    std::fs::copy(rims_run.join("metrics.jsonl"), alone.join("metrics.jsonl")).unwrap();
    let (code, out, err) = rims(&[
        "viz",
        "--metrics",
        s(&alone),
        "--out",
        s(&dir.join("alone.png")),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("4 updates"), "{out}");
}

#[test]
fn bad_rl_input_is_a_one_line_error() {
    let run = rl_run("rims");
    let dir = temp("rl-bad");
    let png = dir.join("x.png");
    let viz = |extra: &[&str]| {
        let mut a = vec!["viz", "--checkpoint", s(run), "--out", s(&png)];
        a.extend_from_slice(extra);
        a.iter().map(|x| x.to_string()).collect::<Vec<_>>()
    };
    let check = |extra: &[&str], needle: &str| {
        let a = viz(extra);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        assert_one_line_error(&a, needle);
    };
    check(&["--example", "65536"], "--example: 65536 is out of range");
    check(
        &["--env", "sudoku-5x5"],
        "--env: 'sudoku-5x5' names no world family",
    );
    check(&["--env", "doorkey-3x3"], "--env");
    check(
        &["--task", "copying"],
        "--task: is not for reinforcement-learning runs",
    );
    check(
        &["--set", "test-4"],
        "--set: is not for reinforcement-learning runs",
    );
    check(&["--length", "4"], "--length");
    // rims train checkpoints have no episodes to play.
    let copying = run_dir();
    assert_one_line_error(
        &["viz", "--checkpoint", s(copying), "--env", "empty-5x5"],
        "--env: is for reinforcement-learning runs",
    );
    assert_one_line_error(
        &["viz", "--checkpoint", s(copying), "--greedy"],
        "--greedy: is for reinforcement-learning runs",
    );
    assert_usage_error(&["viz", "--metrics", s(run), "--greedy"]);
    assert_usage_error(&["viz", "--metrics", s(run), "--env", "empty-5x5"]);
    // Metrics: one kind of run at a time, several need --out, a broken record is named.
    assert_one_line_error(
        &["viz", "--metrics", s(run), s(copying), "--out", s(&png)],
        "compare runs of one kind",
    );
    assert_one_line_error(
        &["viz", "--metrics", s(run), s(rl_run("lstm"))],
        "needs --out",
    );
    let broken = dir.join("broken");
    support::copy_dir(run, &broken);
    let good = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let first = good.lines().next().unwrap();
    std::fs::write(
        broken.join("metrics.jsonl"),
        format!("{first}\n{{\"update\": 2}}\n"),
    )
    .unwrap();
    assert_one_line_error(
        &["viz", "--metrics", s(&broken), "--out", s(&png)],
        "line 2 is not an update record",
    );
    std::fs::write(broken.join("metrics.jsonl"), "").unwrap();
    assert_one_line_error(
        &["viz", "--metrics", s(&broken), "--out", s(&png)],
        "no records",
    );
    assert!(!png.exists());
}
