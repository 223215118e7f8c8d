//! Files that are not what they seem (issue 21): a FIFO where rims expects a file is refused
//! at once instead of blocking forever, and a symbolic link planted inside a run directory is
//! not followed: rims neither prints the target's contents nor appends to it.

#[cfg(unix)]
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::time::{Duration, Instant};

use super::*;

/// Runs the binary, failing the test (not hanging it) if it has not finished in 60 s.
fn rims_bounded(args: &[&str]) -> Outcome {
    let mut child = command(args, &[])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("rims {args:?} hung (blocked on a FIFO?)");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

/// `rims import --from dido FILE --out OUT --active 2`.
fn import_dido(file: &Path, out: &Path) -> Outcome {
    rims_bounded(&[
        "import",
        "--from",
        "dido",
        s(file),
        "--out",
        s(out),
        "--active",
        "2",
    ])
}

/// `rims train --resume RUN --epochs EPOCHS` on the CPU device.
fn resume_to(run: &Path, epochs: &str) -> Outcome {
    rims_bounded(&[
        "train",
        "--device",
        "cpu",
        "--resume",
        s(run),
        "--epochs",
        epochs,
    ])
}

fn mkfifo(path: &Path) {
    let ok = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok, "mkfifo {path:?}");
}

fn tiny_run(root: &Path, name: &str) -> std::path::PathBuf {
    let dir = root.join(name);
    train_tiny(&dir, 1, &[]);
    dir
}

#[cfg(unix)]
#[test]
fn fifos_are_refused_not_read() {
    let root = scratch("hostile-fifo");
    let fifo = root.join("state.safetensors");
    mkfifo(&fifo);
    let out = root.join("imported");
    let o = import_dido(&fifo, &out);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("not a regular file"), "{o:?}");

    let run = tiny_run(&root, "latest-fifo");
    std::fs::remove_file(run.join("latest")).unwrap();
    mkfifo(&run.join("latest"));
    let o = rims_bounded(&["eval", "--device", "cpu", "--checkpoint", s(&run)]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("not a regular file"), "{o:?}");

    let run = tiny_run(&root, "metrics-fifo");
    std::fs::remove_file(run.join("metrics.jsonl")).unwrap();
    mkfifo(&run.join("metrics.jsonl"));
    let o = resume_to(&run, "2");
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("not a regular file"), "{o:?}");
}

#[cfg(unix)]
#[test]
fn symlinks_inside_a_run_are_not_followed() {
    let root = scratch("hostile-link");
    let secret = root.join("secret.txt");
    std::fs::write(&secret, "TOP-SECRET-CONTENTS\n").unwrap();

    let run = tiny_run(&root, "latest-link");
    std::fs::remove_file(run.join("latest")).unwrap();
    std::os::unix::fs::symlink(&secret, run.join("latest")).unwrap();
    let o = rims_bounded(&["eval", "--device", "cpu", "--checkpoint", s(&run)]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("symbolic link"), "{o:?}");
    assert!(
        !o.stderr.contains("TOP-SECRET"),
        "the target's contents were printed: {o:?}"
    );

    let run = tiny_run(&root, "metrics-link");
    let target = root.join("elsewhere.jsonl");
    std::fs::copy(run.join("metrics.jsonl"), &target).unwrap();
    let before = std::fs::read(&target).unwrap();
    std::fs::remove_file(run.join("metrics.jsonl")).unwrap();
    std::os::unix::fs::symlink(&target, run.join("metrics.jsonl")).unwrap();
    let o = resume_to(&run, "2");
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("symbolic link"), "{o:?}");
    assert_eq!(
        std::fs::read(&target).unwrap(),
        before,
        "records were appended outside the run"
    );
}

/// A safetensors file with one F64 tensor.
fn f64_file(path: &Path, name: &str, values: &[f64]) {
    let bytes = values.iter().flat_map(|x| x.to_le_bytes()).collect();
    let raw: Raw = (
        name.into(),
        safetensors::Dtype::F64,
        vec![values.len()],
        bytes,
    );
    write_tensors(path, &[raw], None);
}

#[test]
fn values_beyond_f32_and_escape_sequences_in_names_are_refused_and_shown_escaped() {
    let root = scratch("hostile-values");
    let big = root.join("big.safetensors");
    f64_file(&big, "key.weight", &[1.0, 1e300]);
    let out = root.join("imported");
    let o = import_dido(&big, &out);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("beyond f32's range"), "{o:?}");
    assert!(!out.join("latest").exists(), "nothing is written");

    let evil = root.join("evil.safetensors");
    f64_file(&evil, "\u{1b}[2J\u{1b}[31mred", &[1.0]);
    let o = import_dido(&evil, &out);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(
        !o.stderr.contains('\u{1b}'),
        "a raw escape reached the terminal: {o:?}"
    );
    assert!(o.stderr.contains("\\u{1b}[2J"), "{o:?}");
}

#[cfg(unix)]
#[test]
fn outputs_replace_only_regular_files_and_any_legal_name_works() {
    let root = scratch("hostile-out");
    let run = tiny_run(&root, "run");
    // A FIFO (as /dev/null would be, as root) is not replaced by a file.
    let fifo = root.join("out.png");
    mkfifo(&fifo);
    let o = rims_bounded(&["viz", "--metrics", s(&run), "--out", s(&fifo)]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("not a regular file"), "{o:?}");
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo()
    );
    // A symlink at --out is refused; its target keeps its bytes.
    let target = root.join("precious.png");
    std::fs::write(&target, "keep").unwrap();
    let link = root.join("link.png");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let o = rims_bounded(&["viz", "--metrics", s(&run), "--out", s(&link)]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("symbolic link"), "{o:?}");
    assert_eq!(std::fs::read(&target).unwrap(), b"keep");
    // The longest legal name works (its temporary is short enough beside it).
    let long = root.join(format!("{}.png", "c".repeat(251)));
    let o = rims_bounded(&["viz", "--metrics", s(&run), "--out", s(&long)]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(long.is_file());
    let leftovers: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "temporaries left: {leftovers:?}");
}

#[test]
fn a_resume_refuses_a_corrupt_metrics_copy_before_rewriting_anything() {
    let root = scratch("hostile-metrics-copy");
    let run = root.join("run");
    train_tiny(&run, 2, &[]);
    let set = rims::train::checkpoint::current(&run).unwrap();
    let copy = set.join("metrics.jsonl");
    let text = std::fs::read_to_string(&copy).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[0] = "{\"epoch\": 1, \"step\": 2, \"trunc";
    std::fs::write(&copy, lines.join("\n") + "\n").unwrap();
    let top = std::fs::read(run.join("metrics.jsonl")).unwrap();
    let o = resume_to(&run, "3");
    assert_eq!(o.code, 1, "{o:?}");
    assert!(
        o.stderr.contains(&*copy.to_string_lossy()) && o.stderr.contains("line 1"),
        "{o:?}"
    );
    assert_eq!(
        std::fs::read(run.join("metrics.jsonl")).unwrap(),
        top,
        "the good records were rewritten"
    );
}

/// An edit of an optimizer file's metadata and second moments.
type Edit = fn(&mut std::collections::HashMap<String, String>, &mut Vec<f32>);

/// Rewrites the current checkpoint's optimizer file of `run` with `edit` applied to its
/// metadata and to the second moments.
fn corrupt_optimizer(
    run: &Path,
    edit: impl Fn(&mut std::collections::HashMap<String, String>, &mut Vec<f32>),
) {
    let path = rims::train::checkpoint::current(run)
        .unwrap()
        .join("optimizer.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut meta = header.metadata().clone().unwrap_or_default();
    let m: Vec<f32> = bytemuck::pod_collect_to_vec(st.tensor("adam.m").unwrap().data());
    let mut v: Vec<f32> = bytemuck::pod_collect_to_vec(st.tensor("adam.v").unwrap().data());
    edit(&mut meta, &mut v);
    let t = |name: &str, x: &[f32]| f32_tensor(name, &[x.len()], x);
    let meta = meta.into_iter().collect();
    write_tensors(&path, &[t("adam.m", &m), t("adam.v", &v)], Some(meta));
}

#[test]
fn a_corrupt_optimizer_state_is_refused_on_resume_naming_the_file() {
    let root = scratch("hostile-adam");
    let base = root.join("base");
    train_tiny(&base, 1, &[]);
    let cases: [(&str, Edit, &str); 3] = [
        (
            "huge-t",
            |meta, _| {
                meta.insert("adam_t".into(), u64::MAX.to_string());
            },
            "adam_t is 18446744073709551615",
        ),
        (
            "nan-v",
            |_, v| v[3] = f32::NAN,
            "adam.v holds NaN at index 3",
        ),
        (
            "negative-v",
            |_, v| v[0] = -1.0,
            "adam.v holds -1 at index 0",
        ),
    ];
    for (name, edit, says) in cases {
        let run = root.join(name);
        copy_dir(&base, &run);
        corrupt_optimizer(&run, edit);
        let o = resume_to(&run, "2");
        assert_eq!(o.code, 1, "{name}: {o:?}");
        assert!(
            o.stderr.contains(says) && o.stderr.contains("optimizer.safetensors"),
            "{name}: {o:?}"
        );
        assert_eq!(metric_epochs(&run), [1], "{name}: nothing was trained");
    }
}

#[test]
fn cleaning_a_run_directory_removes_only_its_own_leftovers() {
    let root = scratch("hostile-clean");
    // A user's directory named like a set, in a directory a new run starts in.
    let dir = root.join("run");
    std::fs::create_dir_all(dir.join("epoch-1")).unwrap();
    std::fs::write(dir.join("epoch-1/notes.txt"), "mine").unwrap();
    train_tiny(&dir, 1, &[]);
    assert_eq!(
        std::fs::read_to_string(dir.join("epoch-1/notes.txt")).unwrap(),
        "mine"
    );
    // A complete checkpoint copied in from another run, then a resume: kept too.
    let other = root.join("other");
    train_tiny(&other, 2, &[]);
    copy_dir(&other.join("epoch-000002"), &dir.join("epoch-000007"));
    let o = resume_to(&dir, "2");
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        dir.join("epoch-000007/model.safetensors").is_file(),
        "the copied checkpoint was removed"
    );
    assert!(dir.join("epoch-1/notes.txt").is_file());
    // This run's own sets are still cleaned: only the current one is left of them.
    let sets: Vec<String> = entries(&dir)
        .into_iter()
        .filter(|e| e.starts_with("epoch-0"))
        .collect();
    assert_eq!(sets, ["epoch-000002", "epoch-000007"]);
}
