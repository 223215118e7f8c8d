//! The `rims` binary on bad input: a one-line error, a nonzero exit code, no panic.

mod support;

/// The binary's exit code, stdout and stderr (see `support::rims`).
fn rims(args: &[&str]) -> (i32, String, String) {
    let o = support::rims(args);
    (o.code, o.stdout, o.stderr)
}

fn assert_one_line_error(args: &[&str], needle: &str) {
    let (code, _, err) = rims(args);
    assert_ne!(code, 0, "{args:?} should fail");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        lines.iter().any(|l| l.contains(needle)),
        "{args:?}: expected '{needle}' in: {err}"
    );
}

#[test]
fn bad_flags_and_files_are_one_line_errors() {
    assert_one_line_error(
        &["train", "--task", "nope"],
        "invalid value 'nope' for '--task",
    );
    assert_one_line_error(&["train", "--model", "transformer"], "'--model <MODEL>'");
    assert_one_line_error(&["train", "--cell", "rnn"], "'--cell <CELL>'");
    assert_one_line_error(&["train", "--variant", "nonsense"], "'--variant <VARIANT>'");
    assert_one_line_error(&["train", "--epochs", "0"], "epochs");
    assert_one_line_error(&["train", "--active", "9"], "active");
    assert_one_line_error(&["train", "--lr=-1"], "lr");
    assert_one_line_error(&["train", "--preset", "huge"], "'--preset <PRESET>'");
    assert_one_line_error(&["train", "--symbols", "0"], "symbols");
    assert_one_line_error(
        &["train", "--cell", "gru", "--forget-bias", "1"],
        "forget gate",
    );
    assert_one_line_error(
        &["train", "--resume", "/nonexistent/rims-run"],
        "no checkpoint",
    );
    assert_one_line_error(
        &["eval", "--checkpoint", "/nonexistent/rims-run"],
        "no checkpoint",
    );
    assert_one_line_error(
        &[
            "train",
            "--task",
            "smnist",
            "--mnist-dir",
            "/nonexistent/mnist",
        ],
        "error:",
    );
    for bad in [
        ["--batch", "many"],
        ["--variant", "nonsense"],
        ["--task", "nope"],
    ] {
        let (code, _, err) = rims(&["train", bad[0], bad[1]]);
        assert_eq!(code, 2, "usage errors exit with 2: {err}");
    }
}

#[test]
fn dist_mpi_is_refused_by_a_build_without_mpi_or_outside_a_launcher() {
    let out = temp("dist").join("run");
    let args = ["train", "--dist", "mpi", "--out", out.to_str().unwrap()];
    if cfg!(feature = "mpi") {
        // Tests run without a launcher (`.ci/mpi-test.sh` runs the MPI build under one).
        assert_one_line_error(&args, "mpiexec -n P rims train --dist mpi");
    } else {
        assert_one_line_error(
            &args,
            "this rims was built without MPI: cargo build --release --features mpi",
        );
    }
    assert!(!out.exists(), "nothing was written");
    assert_one_line_error(&["train", "--dist", "slurm"], "'--dist <DIST>'");
    std::fs::remove_dir_all(out.parent().unwrap()).unwrap();
}

#[test]
fn variant_and_input_heads_reach_the_run_and_its_resume_checks() {
    let dir = temp("variant");
    let run = dir.join("run");
    support::train_tiny(&run, 1, &["--input-heads", "2", "--variant", "authors"]);
    let saved = rims::train::checkpoint::read_state(&run).unwrap().config;
    assert_eq!((saved.input_heads, saved.variant.as_str()), (2, "authors"));
    let run_s = run.to_str().unwrap();
    // Flags that disagree with the checkpoint are refused, naming each.
    for (flag, value, had) in [
        ("--input-heads", "1", "2"),
        ("--variant", "dido", "authors"),
    ] {
        let (code, _, err) = rims(&["train", "--resume", run_s, flag, value, "--epochs", "2"]);
        assert_eq!(code, 1, "{err}");
        let want = format!("{flag}: {value} given, the checkpoint has {had}");
        assert!(err.contains(&want), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    // The same ones are accepted, and the run goes on.
    let (code, out, err) = rims(&[
        "train",
        "--device",
        "cpu",
        "--resume",
        run_s,
        "--input-heads",
        "2",
        "--variant",
        "authors",
        "--epochs",
        "2",
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    let state = rims::train::checkpoint::read_state(&run).unwrap();
    assert_eq!(state.progress.epoch, 2);
    // Variant D: a new run takes dido's d_vc = H (the preset's 8 would be refused), trains,
    // records its variant, and a resume asking for the authors' cell is refused.
    let dido = dir.join("dido");
    support::train_tiny(&dido, 1, &["--variant", "dido"]);
    let saved = rims::train::checkpoint::read_state(&dido).unwrap().config;
    assert_eq!(saved.variant, "dido");
    assert_eq!((saved.comm_value, saved.hidden), (4, 4));
    let dido_s = dido.to_str().unwrap();
    let (code, _, err) = rims(&[
        "train",
        "--resume",
        dido_s,
        "--variant",
        "authors",
        "--epochs",
        "2",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("--variant: authors given, the checkpoint has dido"),
        "{err}"
    );
    // dido's LSTM cells have no biases to add a forget bias to: refused in one line.
    let mut args = vec!["train", "--variant", "dido", "--forget-bias", "1"];
    args.extend(support::TINY);
    let out = dir.join("dido-bias");
    args.extend(["--out", out.to_str().unwrap()]);
    let (code, _, err) = rims(&args);
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("--forget-bias: variant dido's LSTM cells have no biases"),
        "{err}"
    );
    assert!(!out.exists(), "a refused run wrote {out:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn temp(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("rims-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write_f32(path: &std::path::Path, tensors: &[(&str, Vec<usize>, Vec<f32>)]) {
    let raw: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, s, v)| (n.to_string(), s.clone(), bytemuck::cast_slice(v).to_vec()))
        .collect();
    let views: Vec<_> = raw
        .iter()
        .map(|(n, s, d)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d)
                    .unwrap(),
            )
        })
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

/// `rims infer --checkpoint RUN --input IN --out OUT`.
fn infer_args<'a>(
    run: &'a str,
    input: &'a std::path::Path,
    output: &'a std::path::Path,
) -> [&'a str; 7] {
    [
        "infer",
        "--checkpoint",
        run,
        "--input",
        input.to_str().unwrap(),
        "--out",
        output.to_str().unwrap(),
    ]
}

#[test]
fn train_eval_infer_round_trip() {
    let dir = temp("round-trip");
    let run = dir.join("run");
    let run_s = run.to_str().unwrap();
    let tiny = [
        "--mechanisms",
        "3",
        "--active",
        "2",
        "--hidden",
        "4",
        "--embed",
        "4",
        "--batch",
        "4",
        "--iterations",
        "2",
    ];
    let mut args = vec!["train", "--out", run_s, "--epochs", "1"];
    args.extend(tiny);
    let (code, out, err) = rims(&args);
    assert_eq!(code, 0, "train failed: {out}\n{err}");
    assert!(out.contains("accuracy"), "{out}");
    // A new run into the same directory is refused; the checkpoint is untouched.
    let model_file = rims::train::checkpoint::current(&run)
        .unwrap()
        .join("model.safetensors");
    let before = std::fs::read(&model_file).unwrap();
    let (code, _, err) = rims(&args);
    assert_ne!(code, 0);
    assert!(err.contains("--resume"), "{err}");
    // Resume with a different size is refused.
    let (code, _, err) = rims(&["train", "--resume", run_s, "--hidden", "5"]);
    assert_ne!(code, 0);
    assert!(err.contains("hidden"), "{err}");
    assert_eq!(std::fs::read(&model_file).unwrap(), before);
    let (code, out, err) = rims(&["eval", "--checkpoint", run_s, "--lengths", "3,6"]);
    assert_eq!(code, 0, "eval failed: {out}\n{err}");
    assert!(out.contains("T=6"), "{out}");

    // infer: x [T, B, D] with a mask override.
    let (t, b, d, n, nh) = (3, 2, 4, 3, 12);
    let input = dir.join("in.safetensors");
    let mask: Vec<f32> = (0..t * b * n)
        .map(|i| if i % 3 == 2 { 1.0 } else { 0.0 })
        .collect();
    write_f32(
        &input,
        &[
            (
                "x",
                vec![t, b, d],
                (0..t * b * d).map(|i| (i as f32 * 0.1).sin()).collect(),
            ),
            ("mask", vec![t, b, n], mask.clone()),
        ],
    );
    let output = dir.join("out.safetensors");
    let (code, out, err) = rims(&infer_args(run_s, &input, &output));
    assert_eq!(code, 0, "infer failed: {out}\n{err}");
    let bytes = std::fs::read(&output).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.tensor("h").unwrap().shape(), &[t, b, nh]);
    assert_eq!(st.tensor("c").unwrap().shape(), &[t, b, nh]);
    assert_eq!(st.tensor("logits").unwrap().shape(), &[t, b, 20]);
    let got_mask: Vec<f32> = bytemuck::pod_collect_to_vec(st.tensor("mask").unwrap().data());
    assert_eq!(got_mask, mask, "the override decides the masks");
    // Bad inputs: wrong x shape, no input at all, a corrupt file.
    write_f32(
        &input,
        &[("x", vec![t, b, d + 1], vec![0.0; t * b * (d + 1)])],
    );
    assert_one_line_error(&infer_args(run_s, &input, &output), "must be");
    write_f32(&input, &[("y", vec![1], vec![0.0])]);
    assert_one_line_error(&infer_args(run_s, &input, &output), "no input");
    std::fs::write(&input, b"garbage").unwrap();
    assert_one_line_error(&infer_args(run_s, &input, &output), "safetensors");
    // A corrupt checkpoint.
    std::fs::write(model_file.with_file_name("train.json"), b"{").unwrap();
    assert_one_line_error(&["eval", "--checkpoint", run_s], "not a valid checkpoint");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn infer_on_a_dense_baseline_writes_its_own_widths() {
    // A dense LSTM's state is [B, H] and its one "mechanism" is always active.
    let dir = temp("dense-infer");
    let run = dir.join("run");
    let run_s = run.to_str().unwrap();
    let (hidden, d) = (5, 4);
    let args = [
        "train",
        "--model",
        "lstm",
        "--out",
        run_s,
        "--epochs",
        "1",
        "--iterations",
        "2",
        "--hidden",
        "5",
        "--embed",
        "4",
        "--batch",
        "3",
    ];
    let (code, out, err) = rims(&args);
    assert_eq!(code, 0, "train failed: {out}\n{err}");
    let (t, b) = (3, 2);
    let input = dir.join("in.safetensors");
    let x: Vec<f32> = (0..t * b * d).map(|i| (i as f32 * 0.3).cos()).collect();
    write_f32(&input, &[("x", vec![t, b, d], x)]);
    let output = dir.join("out.safetensors");
    let (code, out, err) = rims(&infer_args(run_s, &input, &output));
    assert_eq!(code, 0, "infer failed: {out}\n{err}");
    let bytes = std::fs::read(&output).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.tensor("h").unwrap().shape(), &[t, b, hidden]);
    assert_eq!(st.tensor("c").unwrap().shape(), &[t, b, hidden]);
    let mask = st.tensor("mask").unwrap();
    assert_eq!(mask.shape(), &[t, b, 1]);
    let mask: Vec<f32> = bytemuck::pod_collect_to_vec(mask.data());
    assert!(mask.iter().all(|&m| m == 1.0), "{mask:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `rims data balls` writes the four tensors with their shapes and the settings; the same seed
/// gives the same bytes, another seed other data.
#[test]
fn data_balls_writes_a_reproducible_file() {
    let dir = temp("balls");
    let write = |name: &str, extra: &[&str]| {
        let out = dir.join(name);
        let mut args = vec![
            "data",
            "balls",
            "--balls",
            "6-8",
            "--sequences",
            "5",
            "--length",
            "7",
            "--size",
            "16",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(extra);
        let (code, stdout, err) = rims(&args);
        assert_eq!(code, 0, "{args:?}: {err}");
        assert!(stdout.contains("wrote 5 sequences of 7 frames"), "{stdout}");
        std::fs::read(out).unwrap()
    };
    let a = write("a.safetensors", &["--seed", "3"]);
    let file = safetensors::SafeTensors::deserialize(&a).unwrap();
    let shape = |name: &str| file.tensor(name).unwrap().shape().to_vec();
    assert_eq!(shape("frames"), [5, 7, 16, 16]);
    assert_eq!(shape("positions"), [5, 7, 8, 2]);
    assert_eq!(shape("velocities"), [5, 7, 8, 2]);
    assert_eq!(shape("ball_count"), [5]);
    assert_eq!(
        file.tensor("frames").unwrap().dtype(),
        safetensors::Dtype::F32
    );
    let counts: Vec<i64> = bytemuck::pod_collect_to_vec(file.tensor("ball_count").unwrap().data());
    assert!(counts.iter().all(|c| (6..=8).contains(c)), "{counts:?}");
    let frames: Vec<f32> = bytemuck::pod_collect_to_vec(file.tensor("frames").unwrap().data());
    assert!(frames.iter().all(|x| (0.0..=1.0).contains(x)));
    let (_, meta) = safetensors::SafeTensors::read_metadata(&a).unwrap();
    let meta = meta.metadata().clone().unwrap();
    assert_eq!(meta["balls"], "6-8");
    assert_eq!(meta["seed"], "3");
    assert_eq!(meta["curtain"], "none");
    // The same request again (over the first file: a regular file is replaced) is the same file.
    assert_eq!(write("a.safetensors", &["--seed", "3"]), a);
    assert_ne!(write("b.safetensors", &["--seed", "4"]), a);
    assert_ne!(
        write("c.safetensors", &["--seed", "3", "--split", "test"]),
        a
    );
    let curtain = write("d.safetensors", &["--seed", "3", "--curtain"]);
    let (_, meta) = safetensors::SafeTensors::read_metadata(&curtain).unwrap();
    assert_eq!(meta.metadata().as_ref().unwrap()["curtain"], "0.375-0.625");
}

/// The tiny bouncing-balls settings: 8×8 frames, two channels per convolution.
const TINY_BALLS: [&str; 14] = [
    "--task",
    "balls",
    "--frame-size",
    "8",
    "--frame-channels",
    "2,2,2",
    "--frame-dense",
    "4",
    "--iterations",
    "2",
    "--train-len",
    "3",
    "--test-len",
    "5",
];

#[test]
fn balls_trains_and_evaluates_rollouts_from_the_command_line() {
    let dir = support::scratch("balls-cli");
    let run = dir.join("run");
    let mut args: Vec<&str> = vec!["train", "--epochs", "1", "--out", support::s(&run)];
    args.extend(TINY_BALLS);
    args.extend(support::tiny_flags(&args.clone()));
    let (code, out, err) = rims(&args);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("bouncing balls (4 per sequence), 8x8 frames"),
        "{out}"
    );
    let (code, out, err) = rims(&["eval", "--device", "cpu", "--checkpoint", support::s(&run)]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("binary cross-entropy per frame"), "{out}");
    for row in ["| val |", "| test-4 |", "| test-6-8 |", "| test-curtain |"] {
        assert!(out.contains(row), "no {row} in {out}");
    }
    assert!(out.contains("frame 1 | frame 5 |"), "{out}");
    assert!(
        !out.contains("frame 10"),
        "a 5-frame rollout reports frames 1 and 5: {out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn balls_settings_that_cannot_work_are_named() {
    // TINY_BALLS with `extra`'s flag in place of its own.
    let with = |extra: &[&'static str]| {
        let mut a: Vec<&str> = vec!["train"];
        let kept = TINY_BALLS.chunks(2).filter(|kv| kv[0] != extra[0]);
        a.extend(kept.flatten());
        a.extend(extra);
        a
    };
    assert_one_line_error(&with(&["--frame-size", "12"]), "--frame-size");
    assert_one_line_error(&with(&["--frame-channels", "2,2"]), "three positive widths");
    assert_one_line_error(
        &with(&["--frame-channels", "2,0,2"]),
        "three positive widths",
    );
    assert_one_line_error(&with(&["--balls", "8-6"]), "balls");
    assert_one_line_error(&with(&["--balls", "40"]), "balls");
    assert_one_line_error(&with(&["--train-len", "1"]), "--train-len");
}

#[test]
fn rl_trains_evaluates_and_resumes_from_the_command_line() {
    let dir = support::scratch("rl-cli");
    let run = dir.join("run");
    let mut args = vec!["rl", "train", "--env", "empty-5x5", "--frames", "256"];
    args.extend(["--out", support::s(&run)]);
    args.extend(support::TINY_RL);
    let (code, out, err) = rims(&args);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("rims rl train: empty-5x5 for 256 frames; RIMs N=4 k=3 H=16"),
        "{out}"
    );
    assert!(out.contains("trained 2 updates, 256 frames"), "{out}");
    // A second new run into the same directory is refused; resuming it further works.
    let (code, _, err) = rims(&args);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("already holds a checkpoint"), "{err}");
    let (code, out, err) = rims(&[
        "rl",
        "train",
        "--resume",
        support::s(&run),
        "--frames",
        "512",
        "--device",
        "cpu",
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("trained 4 updates, 512 frames"), "{out}");
    // Without --frames a resume keeps the run's length: a finished run trains no further.
    let (code, out, err) = rims(&[
        "rl",
        "train",
        "--resume",
        support::s(&run),
        "--device",
        "cpu",
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("trained 4 updates, 512 frames"), "{out}");
    let eval = |env: &str| {
        rims(&[
            "rl",
            "eval",
            "--device",
            "cpu",
            "--checkpoint",
            support::s(&run),
            "--env",
            env,
            "--episodes",
            "20",
            "--json",
        ])
    };
    let (code, out, err) = eval("doorkey-6x6");
    assert_eq!(code, 0, "{out}\n{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["env"], "doorkey-6x6");
    assert_eq!(v["episodes"], 20);
    let success = v["success_rate"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&success), "{out}");
    // The other commands say what kind of run this is; bad worlds and counts are named.
    assert_one_line_error(
        &["eval", "--device", "cpu", "--checkpoint", support::s(&run)],
        "is a reinforcement-learning run: use `rims rl eval`",
    );
    let (code, _, err) = eval("maze-5x5");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("maze-5x5"), "{err}");
    assert_one_line_error(
        &[
            "rl",
            "eval",
            "--device",
            "cpu",
            "--checkpoint",
            support::s(&run),
            "--episodes",
            "0",
        ],
        "episodes",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rl_settings_that_cannot_work_are_named() {
    let dir = support::scratch("rl-bad");
    let out = dir.join("run");
    let train = |extra: &[&str]| {
        let mut args = vec!["rl", "train", "--frames", "256", "--out", support::s(&out)];
        args.extend(support::TINY_RL);
        args.extend(extra);
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    for (extra, needle) in [
        (&["--recurrence", "24"][..], "recurrence"),
        (&["--batch", "48"][..], "batch"),
        (
            &["--model", "transformer"][..],
            "unknown model 'transformer'",
        ),
        (&["--env", "doorkey-4x4"][..], "doorkey-4x4"),
        (&["--active", "7"][..], "active"),
        (&["--lr", "-1"][..], "lr"),
    ] {
        let args = train(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_one_line_error(&args, needle);
        assert!(!out.exists(), "{extra:?} left {}", out.display());
    }
    assert_one_line_error(&["rl", "train", "--device", "cpu"], "--out");
    // A `rims train` run is not an RL run to resume.
    let trained = dir.join("copying");
    let mut args = vec!["train", "--epochs", "1", "--out", support::s(&trained)];
    args.extend(support::tiny_flags(&args.clone()));
    assert_eq!(rims(&args).0, 0);
    assert_one_line_error(
        &[
            "rl",
            "train",
            "--device",
            "cpu",
            "--resume",
            support::s(&trained),
        ],
        "not a reinforcement-learning one",
    );
    let _ = std::fs::remove_dir_all(&dir);
}
