//! The `rims` binary against bad input: every case gives its exit code (1 for an error, 2 for
//! a usage error clap reports) with a message naming the flag, tensor or file, never a panic,
//! and leaves every existing file as it was. The few cases with a defined behaviour instead of
//! an error (resuming with flags that match, `--resume R --out O`, `rims viz` on a dense
//! baseline) check that behaviour.
//!
//! One tiny run (and a dense one) is trained once and shared read-only; a case that writes
//! works on a copy.

#[path = "../support/mod.rs"]
mod support;

// The cases, by subcommand; they share the fixture and `check` below.
mod data;
mod eval_infer;
mod files;
mod lock;
mod resume;
mod run_safety;
mod train;

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
    a.extend(tiny_flags(extra).map(|x| x.to_string()));
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
