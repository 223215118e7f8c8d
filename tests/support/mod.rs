//! Helpers shared by the tests that drive the `rims` binary: running it (in a memory cap, so a
//! size check that regresses cannot take the machine down), tiny runs, copies of run
//! directories, snapshots that show no file changed, and safetensors inputs.
#![allow(dead_code)] // each test binary uses its own part

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::SystemTime;

/// The flags of a tiny copying run on the CPU device, evaluated and saved every epoch (with
/// `--iterations 2`, a fraction of a second an epoch).
pub const TINY: [&str; 20] = [
    "--device",
    "cpu",
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
    "--symbols",
    "5",
    "--train-len",
    "2",
    "--test-len",
    "5",
    "--eval-every",
    "1",
];

/// TINY's flags, less those `extra` sets itself, and less the RIMs ones when `extra` asks for
/// a dense model (which refuses them).
pub fn tiny_flags<'a>(extra: &[&str]) -> impl Iterator<Item = &'a str> {
    let dense = extra
        .windows(2)
        .any(|w| w[0] == "--model" && w[1] != "rims");
    let set: Vec<String> = extra.iter().map(|x| x.to_string()).collect();
    TINY.chunks(2)
        .filter(move |kv| !set.contains(&kv[0].to_string()))
        .filter(move |kv| !(dense && ["--mechanisms", "--active"].contains(&kv[0])))
        .flatten()
        .copied()
}

/// What a finished `rims` process said.
#[derive(Debug)]
pub struct Outcome {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// A command running the built binary with `args`, under a 4 GiB address-space limit where
/// the shell can set one, with the environment's device choices cleared.
pub fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let bin = env!("CARGO_BIN_EXE_rims");
    let mut c = if cfg!(unix) {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg("ulimit -v 4194304 2>/dev/null; exec \"$0\" \"$@\"")
            .arg(bin);
        c
    } else {
        Command::new(bin)
    };
    c.args(args).env("XDG_RUNTIME_DIR", std::env::temp_dir());
    for var in [
        "RIMS_DEVICE",
        "RIMS_ADAPTER",
        "RIMS_BACKEND",
        "RIMS_THREADS",
        "RIMS_FAULT_SAVE",
    ] {
        c.env_remove(var);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.stdin(Stdio::null());
    c
}

/// Runs the binary to the end.
pub fn rims_env(args: &[&str], env: &[(&str, &str)]) -> Outcome {
    let out = command(args, env).output().expect("the rims binary runs");
    Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

pub fn rims(args: &[&str]) -> Outcome {
    rims_env(args, &[])
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// A fresh, empty directory for this test process. The ones earlier test processes left
/// under the same tag are removed (the shared fixtures have no moment to clean up after).
pub fn scratch(tag: &str) -> PathBuf {
    let prefix = format!("rims-{tag}-");
    if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let pid = name
                .strip_prefix(&prefix)
                .and_then(|p| p.parse::<u32>().ok());
            let gone = pid.is_some_and(|p| {
                p != std::process::id() && !Path::new("/proc").join(p.to_string()).exists()
            });
            if gone {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let d = std::env::temp_dir().join(format!("rims-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Trains a tiny run of `epochs` epochs of 2 steps into `out`, `extra` flags overriding.
pub fn train_tiny(out: &Path, epochs: usize, extra: &[&str]) {
    let e = epochs.to_string();
    let mut args = vec![
        "train",
        "--out",
        s(out),
        "--epochs",
        &e,
        "--iterations",
        "2",
    ];
    args.extend(tiny_flags(extra));
    args.extend(extra);
    let o = rims(&args);
    assert_eq!(o.code, 0, "training {out:?} failed: {o:?}");
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Every file under `root` with a hash of its bytes and its modification time.
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, (u64, SystemTime)> {
    let mut files = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                stack.push(path);
            } else {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                std::fs::read(&path).unwrap().hash(&mut h);
                let mtime = entry.metadata().unwrap().modified().unwrap();
                files.insert(path, (h.finish(), mtime));
            }
        }
    }
    files
}

/// Asserts that every file of `before` is still there, with the same bytes and time.
pub fn assert_unchanged(before: &BTreeMap<PathBuf, (u64, SystemTime)>, root: &Path, what: &str) {
    let after = snapshot(root);
    for (path, stamp) in before {
        assert_eq!(
            after.get(path),
            Some(stamp),
            "{what}: {path:?} was changed or removed"
        );
    }
}

/// The entries directly in `dir`, sorted.
pub fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The epochs of the records in `DIR/metrics.jsonl`, in file order.
pub fn metric_epochs(dir: &Path) -> Vec<u64> {
    let text = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap_or_default();
    text.lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["epoch"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

/// One tensor of a safetensors file: name, dtype, shape and little-endian bytes.
pub type Raw = (String, safetensors::Dtype, Vec<usize>, Vec<u8>);

pub fn f32_tensor(name: &str, shape: &[usize], values: &[f32]) -> Raw {
    let bytes = values.iter().flat_map(|x| x.to_le_bytes()).collect();
    (name.into(), safetensors::Dtype::F32, shape.to_vec(), bytes)
}

pub fn u32_tensor(name: &str, shape: &[usize], values: &[u32]) -> Raw {
    let bytes = values.iter().flat_map(|x| x.to_le_bytes()).collect();
    (name.into(), safetensors::Dtype::U32, shape.to_vec(), bytes)
}

pub fn i32_tensor(name: &str, shape: &[usize], values: &[i32]) -> Raw {
    let bytes = values.iter().flat_map(|x| x.to_le_bytes()).collect();
    (name.into(), safetensors::Dtype::I32, shape.to_vec(), bytes)
}

/// Writes a safetensors file of `tensors` with `meta`.
pub fn write_tensors(path: &Path, tensors: &[Raw], meta: Option<BTreeMap<String, String>>) {
    let views: Vec<_> = tensors
        .iter()
        .map(|(n, dt, shape, d)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*dt, shape.clone(), d).unwrap(),
            )
        })
        .collect();
    let meta = meta.map(|m| m.into_iter().collect());
    std::fs::write(path, safetensors::serialize(views, meta).unwrap()).unwrap();
}

/// The flags of a tiny RL run: 4 environments × 32 frames, minibatches of 64, sequences of 16.
pub const TINY_RL: [&str; 10] = [
    "--envs",
    "4",
    "--steps",
    "32",
    "--batch",
    "64",
    "--recurrence",
    "16",
    "--device",
    "cpu",
];
