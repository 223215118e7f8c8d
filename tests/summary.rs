//! `rims summary` and `rims viz --metrics` over several runs: the tools behind the tables and
//! pictures of docs/experiments.md, on two tiny seeds of one configuration and one of another.

use std::path::{Path, PathBuf};
use std::process::Command;

fn rims(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rims"))
        .args(args)
        .env("XDG_RUNTIME_DIR", "/tmp")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn scratch() -> PathBuf {
    let d = std::env::temp_dir().join(format!("rims-summary-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A tiny copying run: 2 epochs of 3 steps, evaluated after each.
fn tiny_run(out: &Path, model: &str, seed: &str) {
    let mut args = vec![
        "train",
        "--device",
        "cpu",
        "--model",
        model,
        "--hidden",
        "8",
        "--embed",
        "4",
        "--symbols",
        "2",
        "--train-len",
        "2",
        "--test-len",
        "4",
        "--batch",
        "4",
        "--epochs",
        "2",
        "--iterations",
        "3",
        "--eval-every",
        "1",
        "--seed",
        seed,
        "--out",
    ];
    let out = out.to_str().unwrap();
    args.push(out);
    if model == "rims" {
        args.extend(["--mechanisms", "3", "--active", "2"]);
    }
    let (code, _, err) = rims(&args);
    assert_eq!(code, 0, "{args:?}: {err}");
}

#[test]
fn summary_pools_seeds_and_viz_compares_runs() {
    let d = scratch();
    let (a1, a2, b) = (
        d.join("tiny-rims-s1"),
        d.join("tiny-rims-s2"),
        d.join("tiny-lstm-s1"),
    );
    tiny_run(&a1, "rims", "1");
    tiny_run(&a2, "rims", "2");
    tiny_run(&b, "lstm", "1");
    let dirs = [
        a1.to_str().unwrap(),
        a2.to_str().unwrap(),
        b.to_str().unwrap(),
    ];

    let mut args = vec!["summary"];
    args.extend(dirs);
    let (code, out, err) = rims(&args);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<&str> = out.lines().filter(|l| l.starts_with("| tiny")).collect();
    assert_eq!(rows.len(), 2, "one row per configuration:\n{out}");
    assert!(
        out.contains("copy@2 acc (%)") && out.contains("copy@4 loss"),
        "{out}"
    );
    let rims_row = rows
        .iter()
        .find(|r| r.starts_with("| tiny-rims |"))
        .unwrap();
    // Two seeds: mean ± std; 6 steps each.
    assert!(
        rims_row.contains("| 2 |") && rims_row.contains(" ± "),
        "{rims_row}"
    );
    assert!(
        rims_row.contains("| 6 |") || rims_row.contains("| 6 ± 0 |"),
        "{rims_row}"
    );
    let lstm_row = rows
        .iter()
        .find(|r| r.starts_with("| tiny-lstm |"))
        .unwrap();
    assert!(
        lstm_row.contains("| 1 |") && !lstm_row.contains(" ± "),
        "{lstm_row}"
    );

    // --split keeps one split's columns; an unknown one is an error.
    let mut args = vec!["summary", "--split", "copy"];
    args.extend(dirs);
    let (code, out, _) = rims(&args);
    assert_eq!(code, 0);
    assert!(out.contains("copy@4 acc (%)"), "{out}");
    let mut args = vec!["summary", "--split", "test"];
    args.extend(dirs);
    let (code, _, err) = rims(&args);
    assert_eq!(code, 1);
    assert!(
        err.contains("no run has evaluated a split named 'test'"),
        "{err}"
    );

    // The accuracy in the table is the last metrics line's, in percent.
    let last = std::fs::read_to_string(b.join("metrics.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(last.lines().last().unwrap()).unwrap();
    let acc = 100.0 * last["eval"][0]["accuracy"].as_f64().unwrap();
    assert!(
        lstm_row.contains(&format!("{acc:.1}")),
        "{acc:.1} in {lstm_row}"
    );

    let png = d.join("compare.png");
    let mut args = vec!["viz", "--metrics"];
    args.extend(dirs);
    args.extend(["--out", png.to_str().unwrap()]);
    let (code, out, err) = rims(&args);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("3 runs"), "{out}");
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[1..4], b"PNG");

    // Several runs need --out; a directory without a run is a one-line error.
    let (code, _, err) = rims(&["viz", "--metrics", dirs[0], dirs[2]]);
    assert_eq!(code, 1);
    assert!(err.contains("--out"), "{err}");
    let (code, _, err) = rims(&["summary", d.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("error:") && !err.contains("panicked"),
        "{err}"
    );
    std::fs::remove_dir_all(&d).unwrap();
}
