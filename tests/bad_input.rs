//! The `rims` binary against bad input: every case gives its exit code (1 for an error, 2 for
//! a usage error clap reports) with a message naming the flag, tensor or file, never a panic,
//! and leaves every existing file as it was. The few cases with a defined behaviour instead of
//! an error (resuming with flags that match, `--resume R --out O`, `rims viz` on a dense
//! baseline) check that behaviour.
//!
//! One tiny run (and a dense one) is trained once and shared read-only; a case that writes
//! works on a copy.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use support::*;

/// The shared, read-only fixture: runs, crafted checkpoints and input files.
struct Fixture {
    root: PathBuf,
    /// A tiny RIMs copying run, 1 epoch of 2 steps (N = 3, k = 2, H = 4, D = 4).
    run: PathBuf,
    /// A dense LSTM baseline of 5 units, 1 epoch.
    lstm: PathBuf,
    /// Where cases that write are allowed to.
    scratch: PathBuf,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let root = scratch("bad-input");
        let run = root.join("run");
        train_tiny(&run, 1, &[]);
        let lstm = root.join("lstm");
        train_tiny(&lstm, 1, &["--model", "lstm", "--hidden", "5"]);
        let f = Fixture {
            scratch: scratch("bad-input-out"),
            root,
            run,
            lstm,
        };
        f.craft();
        f
    })
}

impl Fixture {
    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// A run directory of the older layout holding only a train.json edited by `edit`.
    fn state_only(&self, name: &str, edit: impl Fn(&mut serde_json::Value)) {
        let set = rims::train::checkpoint::current(&self.run).unwrap();
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(set.join("train.json")).unwrap()).unwrap();
        edit(&mut v);
        let dir = self.path(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("train.json"), v.to_string()).unwrap();
    }

    /// Everything the cases read.
    fn craft(&self) {
        let (t, b, d, n, nh) = (3, 2, 4, 3, 12);
        let x: Vec<f32> = (0..t * b * d).map(|i| (i as f32 * 0.1).sin()).collect();
        let input = |name: &str, tensors: &[Raw]| write_tensors(&self.path(name), tensors, None);
        input("x.safetensors", &[f32_tensor("x", &[t, b, d], &x)]);
        let mut bad_x = x.clone();
        bad_x[5] = f32::NAN;
        input("x-nan.safetensors", &[f32_tensor("x", &[t, b, d], &bad_x)]);
        bad_x[5] = f32::INFINITY;
        input("x-inf.safetensors", &[f32_tensor("x", &[t, b, d], &bad_x)]);
        input(
            "x-wide.safetensors",
            &[f32_tensor("x", &[t, b, d + 1], &vec![0.0; t * b * (d + 1)])],
        );
        input("x-empty.safetensors", &[f32_tensor("x", &[0, b, d], &[])]);
        let with = |name: &str, extra: Raw| {
            input(name, &[f32_tensor("x", &[t, b, d], &x), extra]);
        };
        let mask = |v: f32| {
            let mut m: Vec<f32> = (0..t * b * n).map(|i| (i % 3 == 0) as u8 as f32).collect();
            m[4] = v;
            f32_tensor("mask", &[t, b, n], &m)
        };
        with("mask-half.safetensors", mask(0.5));
        with("mask-nan.safetensors", mask(f32::NAN));
        with("mask-two.safetensors", mask(2.0));
        with(
            "mask-shape.safetensors",
            f32_tensor("mask", &[b, t, n], &vec![1.0; t * b * n]),
        );
        let mut h0 = vec![0.1; b * nh];
        h0[3] = f32::NAN;
        with("h0-nan.safetensors", f32_tensor("h0", &[b, nh], &h0));
        with(
            "h0-shape.safetensors",
            f32_tensor("h0", &[nh, b], &vec![0.0; b * nh]),
        );
        with("typo.safetensors", f32_tensor("X_typo", &[1], &[0.0]));
        with(
            "both.safetensors",
            u32_tensor("tokens", &[t, b], &vec![1; t * b]),
        );
        let tokens = |name: &str, bad: u32| {
            let mut v = vec![3u32; t * b];
            v[2] = bad;
            input(name, &[u32_tensor("tokens", &[t, b], &v)]);
        };
        tokens("tokens-20.safetensors", 20);
        tokens("tokens-max.safetensors", u32::MAX);
        input(
            "tokens-negative.safetensors",
            &[i32_tensor("tokens", &[t, b], &[1, 2, -1, 3, 4, 5])],
        );
        input(
            "tokens-f32.safetensors",
            &[f32_tensor("tokens", &[t, b], &[1.0; 6])],
        );
        input(
            "tokens-3d.safetensors",
            &[u32_tensor("tokens", &[t, b, 1], &[1; 6])],
        );
        let x5: Vec<f32> = vec![0.5; t * b * d];
        write_tensors(
            &self.path("lstm-mask.safetensors"),
            &[
                f32_tensor("x", &[t, b, d], &x5),
                f32_tensor("mask", &[t, b, 1], &vec![1.0; t * b]),
            ],
            None,
        );
        input("only-y.safetensors", &[f32_tensor("y", &[1], &[0.0])]);
        std::fs::write(self.path("garbage.safetensors"), b"not a safetensors file").unwrap();
        std::fs::write(self.path("a-file"), b"a file, not a directory").unwrap();

        // Run directories that are not what they should be.
        let only_metrics = self.path("only-metrics");
        std::fs::create_dir_all(&only_metrics).unwrap();
        std::fs::copy(
            self.run.join("metrics.jsonl"),
            only_metrics.join("metrics.jsonl"),
        )
        .unwrap();
        let bad_pointer = self.path("bad-pointer");
        copy_dir(&self.run, &bad_pointer);
        std::fs::write(bad_pointer.join("latest"), "../run/epoch-000001\n").unwrap();
        let lost_set = self.path("lost-set");
        copy_dir(&self.run, &lost_set);
        std::fs::write(lost_set.join("latest"), "epoch-000007\n").unwrap();
        let corrupt = self.path("corrupt-state");
        copy_dir(&self.run, &corrupt);
        std::fs::write(corrupt.join("epoch-000001/train.json"), b"{").unwrap();
        let truncated = self.path("truncated-model");
        copy_dir(&self.run, &truncated);
        let model = truncated.join("epoch-000001/model.safetensors");
        let bytes = std::fs::read(&model).unwrap();
        std::fs::write(&model, &bytes[..bytes.len() / 2]).unwrap();
        let stepped = self.path("other-step");
        copy_dir(&self.run, &stepped);
        let state = stepped.join("epoch-000001/train.json");
        let text = std::fs::read_to_string(&state).unwrap();
        std::fs::write(&state, text.replace("\"step\": 2", "\"step\": 3")).unwrap();
        self.state_only("smnist-state", |v| v["config"]["task"] = "smnist".into());
        self.state_only("huge-hidden", |v| v["config"]["hidden"] = 100_000.into());
        self.state_only("huge-batch", |v| v["config"]["batch"] = 10_000_000.into());
        self.state_only("zero-batch", |v| v["config"]["batch"] = 0.into());

        // An MNIST directory with 5 images.
        let mnist = self.path("mnist-5");
        std::fs::create_dir_all(&mnist).unwrap();
        let gz = |name: &str, bytes: &[u8]| {
            use std::io::Write;
            let f = std::fs::File::create(mnist.join(name)).unwrap();
            let mut e = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
            e.write_all(bytes).unwrap();
            e.finish().unwrap();
        };
        let mut images = vec![0, 0, 8, 3, 0, 0, 0, 5, 0, 0, 0, 28, 0, 0, 0, 28];
        images.extend((0..5 * 784).map(|i| (i % 251) as u8));
        gz("mnist-10k-images-idx3-ubyte.gz", &images);
        gz(
            "mnist-10k-labels-idx1-ubyte.gz",
            &[0, 0, 8, 1, 0, 0, 0, 5, 1, 2, 3, 4, 5],
        );
    }
}

/// One bad input: the command, its environment, the exit code and a fragment of the message.
struct Case<'a> {
    args: Vec<String>,
    env: Vec<(&'a str, &'a str)>,
    code: i32,
    needle: &'a str,
}

fn case<'a, S: AsRef<str>>(args: &[S], code: i32, needle: &'a str) -> Case<'a> {
    Case {
        args: args.iter().map(|a| a.as_ref().to_string()).collect(),
        env: Vec::new(),
        code,
        needle,
    }
}

impl<'a> Case<'a> {
    fn env(mut self, k: &'a str, v: &'a str) -> Self {
        self.env.push((k, v));
        self
    }
}

/// Runs every case against a snapshot of the fixture and the paths in `also`: each must exit
/// with its code, say its fragment in a one-line error (usage errors: on their first line),
/// not panic, and leave every existing file as it was. Returns how many ran.
fn check(cases: &[Case], also: &[&Path]) -> usize {
    let f = fixture();
    let mut roots: Vec<&Path> = vec![&f.root];
    roots.extend(also);
    let before: Vec<BTreeMap<_, _>> = roots.iter().map(|r| snapshot(r)).collect();
    for c in cases {
        let args: Vec<&str> = c.args.iter().map(String::as_str).collect();
        let o = rims_env(&args, &c.env);
        let what = format!("rims {} (env {:?})", args.join(" "), c.env);
        assert!(!o.stderr.contains("panicked"), "{what} panicked: {o:?}");
        assert_eq!(o.code, c.code, "{what}: exit code; {o:?}");
        let lines: Vec<&str> = o.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert!(
            lines.first().is_some_and(|l| l.starts_with("error: ")),
            "{what}: {o:?}"
        );
        if c.code == 1 {
            assert_eq!(lines.len(), 1, "{what}: not one line: {o:?}");
        }
        assert!(
            lines[0].contains(c.needle),
            "{what}: expected '{}' in: {}",
            c.needle,
            lines[0]
        );
        for (root, before) in roots.iter().zip(&before) {
            assert_unchanged(before, root, &what);
        }
    }
    cases.len()
}

/// `rims train` with the tiny flags, writing into a fresh scratch directory, plus `extra`.
fn train(extra: &[&str]) -> Vec<String> {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let out = fixture().scratch.join(format!("train-{n}"));
    let mut a: Vec<String> = ["train", "--out", s(&out)]
        .iter()
        .map(|x| x.to_string())
        .collect();
    if !extra.contains(&"--epochs") {
        a.extend(["--epochs".into(), "1".into()]);
    }
    // Defaults the case does not set itself.
    let tiny = TINY.chunks(2).filter(|kv| !extra.contains(&kv[0]));
    a.extend(tiny.flatten().map(|x| x.to_string()));
    if !extra.contains(&"--iterations") {
        a.extend(["--iterations".into(), "2".into()]);
    }
    a.extend(extra.iter().map(|x| x.to_string()));
    a
}

fn train_case<'a>(extra: &[&str], code: i32, needle: &'a str) -> Case<'a> {
    Case {
        args: train(extra),
        env: Vec::new(),
        code,
        needle,
    }
}

#[test]
fn train_flags_out_of_range() {
    let cases = [
        train_case(&["--clip=-1"], 1, "--clip: -1 is not a positive number"),
        // Not finite: no setting means it, refused as a usage error.
        train_case(
            &["--clip=NaN"],
            2,
            "invalid value 'NaN' for '--clip <CLIP>': NaN is not a finite number",
        ),
        train_case(
            &["--clip", "inf"],
            2,
            "'--clip <CLIP>': inf is not a finite",
        ),
        train_case(
            &["--lr", "-0.01"],
            1,
            "--lr: -0.01 is not a positive number",
        ),
        train_case(&["--lr=0"], 1, "--lr: 0"),
        train_case(&["--lr", "NaN"], 2, "'--lr <LR>': NaN"),
        train_case(&["--embed", "0"], 1, "--embed: must be at least 1"),
        train_case(&["--batch", "0"], 1, "--batch: must be at least 1"),
        train_case(&["--epochs", "0"], 1, "--epochs: must be at least 1"),
        train_case(
            &["--iterations", "0"],
            1,
            "--iterations: must be at least 1",
        ),
        train_case(
            &["--mechanisms", "0"],
            1,
            "--mechanisms: must be at least 1",
        ),
        train_case(
            &["--mechanisms", "65", "--active", "2"],
            1,
            "--mechanisms: 65",
        ),
        train_case(&["--active", "0"], 1, "--active: must be at least 1"),
        train_case(&["--active", "4"], 1, "--active: k = 4 exceeds"),
        train_case(
            &["--hidden", "0"],
            1,
            "--hidden (H, units per mechanism): must be at least 1",
        ),
        train_case(
            &["--model", "lstm", "--hidden", "0"],
            1,
            "--hidden (units of the dense layer): must be at least 1",
        ),
        train_case(
            &["--input-heads", "0"],
            1,
            "--input-heads: must be at least 1",
        ),
        train_case(
            &["--model", "gru", "--input-heads", "2"],
            1,
            "--input-heads: only a RIMs model has input attention",
        ),
        train_case(
            &["--model", "lstm", "--variant", "dido"],
            1,
            "--variant: dido is a RIMs setting; a dense lstm has none",
        ),
        train_case(&["--dropout", "1"], 1, "--dropout: 1 is not in [0, 1)"),
        train_case(&["--dropout", "-0.1"], 1, "--dropout: -0.1"),
        train_case(&["--dropout", "NaN"], 2, "'--dropout <DROPOUT>': NaN"),
        train_case(
            &["--forget-bias", "inf"],
            2,
            "'--forget-bias <FORGET_BIAS>': inf",
        ),
        train_case(
            &["--input-gain=-inf"],
            2,
            "'--input-gain <INPUT_GAIN>': -inf",
        ),
        train_case(&["--cell", "gru", "--forget-bias", "1"], 1, "forget gate"),
        train_case(
            &["--eval-every", "0"],
            1,
            "--eval-every: must be at least 1",
        ),
        train_case(&["--symbols", "0"], 1, "--symbols: must be at least 1"),
        train_case(&["--train-len", "0"], 1, "--train-len: must be at least 1"),
        train_case(&["--test-len", "0"], 1, "--test-len: must be at least 1"),
        train_case(
            &["--cell", "rnn"],
            2,
            "invalid value 'rnn' for '--cell <CELL>'",
        ),
        train_case(
            &["--model", "transformer"],
            2,
            "invalid value 'transformer' for '--model <MODEL>'",
        ),
        train_case(
            &["--task", "sudoku"],
            2,
            "invalid value 'sudoku' for '--task",
        ),
        train_case(
            &["--preset", "huge"],
            2,
            "invalid value 'huge' for '--preset",
        ),
        train_case(
            &["--variant", "nonsense"],
            2,
            "invalid value 'nonsense' for '--variant <VARIANT>'",
        ),
        train_case(
            &["--task", "smnist", "--resolution", "0"],
            1,
            "--resolution",
        ),
        // Sizes that cannot fit are refused before anything is allocated.
        train_case(&["--batch", "10000000"], 1, "--batch: training on batches"),
        train_case(
            &["--hidden", "100000"],
            1,
            "--hidden (H, units per mechanism): training on batches",
        ),
        train_case(&["--train-len", "1000000000"], 1, "needs at least"),
        // Usage errors: clap names the flag.
        train_case(&["--batch", "-1"], 2, "invalid value '-1' for '--batch"),
        train_case(&["--batch", "many"], 2, "'--batch <BATCH>'"),
        train_case(&["--seed", "-1"], 2, "'--seed <SEED>'"),
        train_case(&["--device", "tpu"], 2, "'--device <DEVICE>'"),
        train_case(&["--carry", "--no-carry"], 2, "cannot be used with"),
        train_case(&["--hiden", "4"], 2, "unexpected argument '--hiden'"),
    ];
    assert!(check(&cases, &[]) >= 44);
}

#[test]
fn train_outputs_and_data() {
    let f = fixture();
    let mnist = f.path("mnist-5");
    let cases = [
        case(
            &["train", "--device", "cpu", "--out", s(&f.run)],
            1,
            "already holds a checkpoint: pass --resume",
        ),
        case(
            &[
                "train",
                "--device",
                "cpu",
                "--out",
                s(&f.path("only-metrics")),
            ],
            1,
            "holds metrics.jsonl of another run but no checkpoint",
        ),
        case(
            &["train", "--device", "cpu", "--out", s(&f.path("a-file"))],
            1,
            "cannot create the directory",
        ),
        train_case(
            &["--task", "smnist", "--mnist-dir", s(&mnist)],
            1,
            "too few images: 4 training, 0 validation and 1 test",
        ),
        train_case(
            &["--task", "smnist", "--mnist-dir", s(&mnist), "--batch", "1"],
            1,
            "too few images",
        ),
        train_case(
            &["--task", "smnist", "--mnist-dir", "/nonexistent/mnist"],
            1,
            "not a directory",
        ),
        train_case(
            &["--task", "smnist", "--limit", "3"],
            1,
            "(at most 3 per split, --limit)",
        ),
        // A loss that stops being a number stops the run, naming the step.
        train_case(
            &["--lr", "1e30"],
            1,
            "training stopped at step 2: the training loss is NaN",
        ),
        train_case(&[], 1, "RIMS_FAULT_SAVE").env("RIMS_FAULT_SAVE", "soon"),
    ];
    assert!(check(&cases, &[]) >= 9);
}

#[test]
fn resume_refusals_name_only_the_flags_given() {
    let f = fixture();
    let run = s(&f.run);
    let resume = |extra: &[&str]| -> Vec<String> {
        let mut a = vec!["train", "--device", "cpu", "--resume", run];
        a.extend(extra);
        a.iter().map(|x| x.to_string()).collect()
    };
    let cases = [
        case(
            &resume(&["--hidden", "5", "--epochs", "2"]),
            1,
            "--hidden (H, units per mechanism): 5 given, the checkpoint has 4",
        ),
        case(
            &resume(&["--variant", "dido", "--epochs", "2"]),
            1,
            "--variant: dido given, the checkpoint has authors",
        ),
        case(
            &resume(&["--input-heads", "2", "--epochs", "2"]),
            1,
            "--input-heads: 2 given, the checkpoint has 1",
        ),
        case(
            &resume(&["--mechanisms", "2", "--epochs", "2"]),
            1,
            "flags disagree with the checkpoint",
        ),
        case(
            &resume(&["--task", "smnist", "--epochs", "2"]),
            1,
            "--task: smnist given, the checkpoint has copying",
        ),
        case(
            &resume(&["--model", "lstm", "--epochs", "2"]),
            1,
            "--model: lstm given, the checkpoint has rims",
        ),
        case(
            &resume(&["--clip", "0", "--epochs", "2"]),
            1,
            "--clip: none given, the checkpoint has 1",
        ),
        case(
            &resume(&["--no-carry", "--lr", "0.5", "--epochs", "2"]),
            1,
            "--lr: 0.5 given, the checkpoint has 0.005",
        ),
        case(&resume(&["--epochs", "1"]), 1, "--epochs: the run in"),
        case(&resume(&["--epochs", "0"]), 1, "--epochs"),
        case(
            &resume(&["--preset", "paper"]),
            2,
            "'--resume <RESUME>' cannot be used with '--preset <PRESET>'",
        ),
        case(
            &resume(&["--out", run, "--embed", "5", "--epochs", "2"]),
            1,
            "--embed: 5 given, the checkpoint has 4",
        ),
        case(
            &resume(&["--out", s(&f.lstm), "--epochs", "2"]),
            1,
            "already holds a checkpoint",
        ),
        case(
            &[
                "train",
                "--device",
                "cpu",
                "--resume",
                "/nonexistent/rims-run",
            ],
            1,
            "no checkpoint here",
        ),
        case(
            &[
                "train",
                "--device",
                "cpu",
                "--resume",
                s(&f.path("huge-hidden")),
                "--epochs",
                "2",
            ],
            1,
            "--hidden (H, units per mechanism): training on batches",
        ),
        case(
            &[
                "train",
                "--resume",
                s(&f.path("bad-pointer")),
                "--epochs",
                "2",
            ],
            1,
            "latest: names '../run/epoch-000001', which is not a checkpoint of this run",
        ),
        case(
            &["train", "--resume", s(&f.path("lost-set")), "--epochs", "2"],
            1,
            "names epoch-000007, which holds no train.json",
        ),
        case(
            &[
                "train",
                "--resume",
                s(&f.path("corrupt-state")),
                "--epochs",
                "2",
            ],
            1,
            "not a valid checkpoint state",
        ),
        case(
            &[
                "train",
                "--device",
                "cpu",
                "--resume",
                s(&f.path("other-step")),
                "--epochs",
                "2",
            ],
            1,
            "belongs to step Some(\"2\"), train.json to step 3",
        ),
        case(
            &[
                "train",
                "--device",
                "cpu",
                "--resume",
                s(&f.path("truncated-model")),
                "--epochs",
                "2",
            ],
            1,
            "model.safetensors",
        ),
    ];
    assert!(check(&cases, &[]) >= 20);
    // A finished run without a larger --epochs is left as it is, and says so.
    let before = snapshot(&f.run);
    let o = rims(&["train", "--device", "cpu", "--resume", run]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.stdout
            .contains("has finished its 1 epochs; nothing to do"),
        "{o:?}"
    );
    assert_unchanged(&before, &f.run, "resuming a finished run");
    // Only the flags given are listed.
    let args = resume(&["--hidden", "5", "--epochs", "2"]);
    let o = rims(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!o.stderr.contains("--batch"), "{o:?}");
    assert!(!o.stderr.contains("--iterations"), "{o:?}");
}

#[test]
fn resume_behaviours() {
    let f = fixture();
    let base = f.scratch.join("resume");
    // Flags that match the checkpoint are accepted (N = 3 here; the preset's k = 3 must not
    // be held against it).
    let copy = base.join("copy");
    copy_dir(&f.run, &copy);
    let o = rims(&[
        "train",
        "--device",
        "cpu",
        "--resume",
        s(&copy),
        "--mechanisms",
        "3",
        "--hidden",
        "4",
        "--epochs",
        "2",
    ]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(metric_epochs(&copy), [1, 2]);
    // --resume R --out O continues R's run in O and leaves R as it is.
    let before = snapshot(&f.run);
    let elsewhere = base.join("elsewhere");
    let o = rims(&[
        "train",
        "--device",
        "cpu",
        "--resume",
        s(&f.run),
        "--out",
        s(&elsewhere),
        "--epochs",
        "2",
    ]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.stdout
            .contains(&format!("writing to {}", elsewhere.display())),
        "{o:?}"
    );
    assert_unchanged(&before, &f.run, "--resume R --out O");
    assert_eq!(metric_epochs(&elsewhere), [1, 2]);
    assert_eq!(
        rims::train::checkpoint::read_state(&elsewhere)
            .unwrap()
            .progress
            .step,
        4
    );
    // A run whose loss turns to NaN stops with an error giving the step; its checkpoint stays.
    let poisoned = base.join("poisoned");
    copy_dir(&f.run, &poisoned);
    let opt = poisoned.join("epoch-000001/optimizer.safetensors");
    let bytes = std::fs::read(&opt).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta: BTreeMap<String, String> = header.metadata().clone().unwrap().into_iter().collect();
    let len = st.tensor("adam.m").unwrap().shape()[0];
    write_tensors(
        &opt,
        &[
            f32_tensor("adam.m", &[len], &vec![f32::NAN; len]),
            f32_tensor("adam.v", &[len], &vec![0.0; len]),
        ],
        Some(meta),
    );
    let n = check(
        &[case(
            &[
                "train",
                "--device",
                "cpu",
                "--resume",
                s(&poisoned),
                "--epochs",
                "2",
            ],
            1,
            "training stopped at step 4: the training loss is NaN",
        )],
        &[&poisoned],
    );
    assert_eq!(n, 1);
    let o = rims(&[
        "train",
        "--device",
        "cpu",
        "--resume",
        s(&poisoned),
        "--epochs",
        "2",
    ]);
    assert!(
        o.stderr.contains(&format!(
            "its last checkpoint (epoch 1, step 2) in {} is kept",
            poisoned.display()
        )),
        "{o:?}"
    );
}

#[test]
fn eval_and_viz() {
    let f = fixture();
    let run = s(&f.run);
    let eval = |extra: &[&str]| -> Vec<String> {
        let mut a = vec!["eval", "--device", "cpu", "--checkpoint", run];
        a.extend(extra);
        a.iter().map(|x| x.to_string()).collect()
    };
    let png = f.scratch.join("never.png");
    let cases = [
        case(
            &eval(&["--resolutions", "16"]),
            1,
            "--resolutions: is for smnist checkpoints",
        ),
        case(
            &eval(&["--lengths", "3,4,5"]),
            1,
            "--lengths: give one or two gaps",
        ),
        case(&eval(&["--lengths", "0"]), 1, "--lengths"),
        case(
            &eval(&["--lengths", "-3"]),
            2,
            "invalid value '-3' for '--lengths",
        ),
        case(
            &eval(&["--task", "smnist"]),
            1,
            "--task: the checkpoint was trained on",
        ),
        case(
            &eval(&["--task", "sudoku"]),
            2,
            "invalid value 'sudoku' for '--task <TASK>'",
        ),
        case(
            &[
                "eval",
                "--checkpoint",
                s(&f.path("smnist-state")),
                "--lengths",
                "5",
            ],
            1,
            "--lengths: is for copying and adding checkpoints",
        ),
        case(
            &[
                "eval",
                "--device",
                "cpu",
                "--checkpoint",
                s(&f.path("huge-hidden")),
            ],
            1,
            "needs at least",
        ),
        case(
            &[
                "eval",
                "--device",
                "cpu",
                "--checkpoint",
                s(&f.path("huge-batch")),
            ],
            1,
            "needs at least",
        ),
        case(
            &[
                "eval",
                "--device",
                "cpu",
                "--checkpoint",
                s(&f.path("zero-batch")),
            ],
            1,
            "batch: must be at least 1",
        ),
        case(
            &["eval", "--checkpoint", "/nonexistent/rims-run"],
            1,
            "no checkpoint here",
        ),
        case(
            &["eval", "--checkpoint", s(&f.path("corrupt-state"))],
            1,
            "not a valid checkpoint state",
        ),
        case(
            &[
                "eval",
                "--device",
                "cpu",
                "--checkpoint",
                s(&f.path("truncated-model")),
            ],
            1,
            "model.safetensors",
        ),
        case(
            &["eval", "--checkpoint", s(&f.path("only-metrics"))],
            1,
            "no checkpoint here",
        ),
        case(
            &[
                "viz",
                "--device",
                "cpu",
                "--checkpoint",
                run,
                "--example",
                "99",
                "--out",
                s(&png),
            ],
            1,
            "out of range",
        ),
        case(
            &[
                "viz",
                "--device",
                "cpu",
                "--checkpoint",
                s(&f.path("huge-hidden")),
            ],
            1,
            "needs at least",
        ),
        case(
            &["viz", "--metrics", s(&f.path("a-file"))],
            1,
            "cannot read",
        ),
        case(
            &["verify", "--tolerance", "NaN"],
            2,
            "'--tolerance <TOLERANCE>': NaN",
        ),
        case(
            &["verify", "--tolerance", "-1"],
            2,
            "'--tolerance <TOLERANCE>': -1",
        ),
        case(
            &["verify", "--tolerance", "abc"],
            2,
            "'--tolerance <TOLERANCE>'",
        ),
    ];
    assert!(check(&cases, &[]) >= 20);
    // viz on a dense baseline (masks [T, B, 1]) draws its one always-active layer.
    let out = f.scratch.join("lstm.png");
    let o = rims(&[
        "viz",
        "--device",
        "cpu",
        "--checkpoint",
        s(&f.lstm),
        "--out",
        s(&out),
    ]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stdout.contains("1 mechanisms"), "{o:?}");
    assert!(std::fs::read(&out).unwrap().starts_with(b"\x89PNG"));
}

#[test]
fn infer_inputs() {
    let f = fixture();
    let run = s(&f.run);
    let out = f.scratch.join("infer-out.safetensors");
    let infer = |input: &str| -> Vec<String> {
        [
            "infer",
            "--device",
            "cpu",
            "--checkpoint",
            run,
            "--input",
            s(&f.path(input)),
            "--out",
            s(&out),
        ]
        .iter()
        .map(|a| a.to_string())
        .collect()
    };
    let c = |input: &str, needle: &'static str| Case {
        args: infer(input),
        env: Vec::new(),
        code: 1,
        needle,
    };
    let input_x = f.path("x.safetensors");
    let model_file = rims::train::checkpoint::current(&f.run)
        .unwrap()
        .join("model.safetensors");
    let spelled = format!(
        "{}/../{}/x.safetensors",
        s(&f.root),
        f.root.file_name().unwrap().to_str().unwrap()
    );
    let cases = [
        c(
            "tokens-20.safetensors",
            "tensor 'tokens': 20 at [1, 0] is outside the checkpoint's vocabulary (0..=19)",
        ),
        c(
            "tokens-max.safetensors",
            "tensor 'tokens': 4294967295 at [1, 0] is outside",
        ),
        c(
            "tokens-negative.safetensors",
            "token -1 is negative or too large",
        ),
        c(
            "tokens-f32.safetensors",
            "tensor 'tokens' must be U32, I32 or I64",
        ),
        c("tokens-3d.safetensors", "'tokens' must be [T, B]"),
        c(
            "mask-half.safetensors",
            "tensor 'mask': 0.5 at [0, 1, 1] is neither 0 nor 1",
        ),
        c("mask-nan.safetensors", "tensor 'mask': NaN"),
        c("mask-two.safetensors", "tensor 'mask': 2 at"),
        c(
            "mask-shape.safetensors",
            "'mask' must be [3, 2, 3], is [2, 3, 3]",
        ),
        c(
            "x-nan.safetensors",
            "tensor 'x': NaN at [0, 1, 1] is not a finite number",
        ),
        c("x-inf.safetensors", "tensor 'x': inf at"),
        c("x-wide.safetensors", "'x' must be [T, B, 4], is [3, 2, 5]"),
        c("x-empty.safetensors", "T = 0 steps"),
        c("h0-nan.safetensors", "tensor 'h0': NaN at [0, 3]"),
        c("h0-shape.safetensors", "'h0' must be [2, 12], is [12, 2]"),
        c(
            "typo.safetensors",
            "tensor 'X_typo' is not an input of rims infer",
        ),
        c("both.safetensors", "give either 'x' or 'tokens', not both"),
        c(
            "only-y.safetensors",
            "no input: expected a tensor 'x' [T, B, D] or 'tokens' [T, B], found y",
        ),
        c("garbage.safetensors", "not a valid safetensors file"),
        c("missing.safetensors", "cannot read"),
        case(
            &[
                "infer",
                "--checkpoint",
                run,
                "--input",
                s(&input_x),
                "--out",
                s(&input_x),
            ],
            1,
            "--out: ",
        ),
        case(
            &[
                "infer",
                "--checkpoint",
                run,
                "--input",
                s(&input_x),
                "--out",
                &spelled,
            ],
            1,
            "is the input file (--input)",
        ),
        case(
            &[
                "infer",
                "--checkpoint",
                run,
                "--input",
                s(&input_x),
                "--out",
                s(&model_file),
            ],
            1,
            "is a file of the checkpoint (--checkpoint)",
        ),
        case(
            &[
                "infer",
                "--device",
                "cpu",
                "--checkpoint",
                s(&f.lstm),
                "--input",
                s(&f.path("lstm-mask.safetensors")),
                "--out",
                s(&out),
            ],
            1,
            "no mechanisms to mask",
        ),
        case(
            &[
                "infer",
                "--device",
                "cpu",
                "--checkpoint",
                s(&f.path("huge-hidden")),
                "--input",
                s(&input_x),
                "--out",
                s(&out),
            ],
            1,
            "needs at least",
        ),
        case(
            &[
                "infer",
                "--checkpoint",
                "/nonexistent/run",
                "--input",
                s(&input_x),
                "--out",
                s(&out),
            ],
            1,
            "no checkpoint here",
        ),
    ];
    assert!(check(&cases, &[]) >= 26);
    assert!(!out.exists(), "a refused infer wrote its output");
    // The good input still runs.
    let o = rims(
        &infer("x.safetensors")
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert_eq!(o.code, 0, "{o:?}");
}

#[test]
fn device_environment() {
    let cases = [
        train_case(&[], 1, "RIMS_DEVICE: unknown device 'tpu'").env("RIMS_DEVICE", "tpu"),
        case(&["info"], 1, "RIMS_THREADS: '0' is not a thread count").env("RIMS_THREADS", "0"),
        case(&["info"], 1, "RIMS_THREADS: 'many'").env("RIMS_THREADS", "many"),
        case(&["info"], 1, "RIMS_BACKEND: unknown backend 'quantum'")
            .env("RIMS_BACKEND", "quantum"),
    ];
    assert!(check(&cases, &[]) >= 4);
    // Asked for a backend this machine lacks, the message lists what it has (if anything).
    let o = rims_env(&["info", "--device", "gpu"], &[("RIMS_BACKEND", "metal")]);
    if o.code != 0 {
        assert!(o.stderr.contains("metal backend"), "{o:?}");
        assert_eq!(o.stderr.lines().count(), 1, "{o:?}");
    }
}
