//! `rims summary` and `rims viz --metrics` over several runs: the tools behind the tables and
//! pictures of docs/experiments.md, on two tiny seeds of one configuration and one of another.

mod support;

use std::path::Path;

use support::{rims, s, scratch, train_tiny};

/// A tiny run of 2 epochs of 2 steps, `model` rims or lstm.
fn tiny_run(out: &Path, model: &str, seed: &str) {
    let mut extra = vec![
        "--model",
        model,
        "--seed",
        seed,
        "--hidden",
        "8",
        "--test-len",
        "4",
    ];
    if model == "rims" {
        extra.extend(["--mechanisms", "3", "--active", "2"]);
    }
    train_tiny(out, 2, &extra);
}

#[test]
fn summary_pools_seeds_and_viz_compares_runs() {
    let d = scratch("summary");
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
    let o = rims(&args);
    assert_eq!(o.code, 0, "{o:?}");
    let out = o.stdout;
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
    // Two seeds: mean ± std; 2 epochs of 2 steps each.
    assert!(
        rims_row.contains("| 2 |") && rims_row.contains(" ± "),
        "{rims_row}"
    );
    assert!(rims_row.contains("| 4 ± 0 |"), "{rims_row}");
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
    let o = rims(&args);
    assert_eq!(o.code, 0);
    assert!(o.stdout.contains("copy@4 acc (%)"), "{o:?}");
    let mut args = vec!["summary", "--split", "test"];
    args.extend(dirs);
    let o = rims(&args);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr
            .contains("no run has evaluated a split named 'test'"),
        "{o:?}"
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
    args.extend(["--out", s(&png)]);
    let o = rims(&args);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stdout.contains("3 runs of 2 configurations"), "{o:?}");
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[1..4], b"PNG");

    // Several runs need --out; a directory without a run is a one-line error.
    let o = rims(&["viz", "--metrics", dirs[0], dirs[2]]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("--out"), "{o:?}");
    let o = rims(&["summary", s(&d)]);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.starts_with("error:") && !o.stderr.contains("panicked"),
        "{o:?}"
    );
    std::fs::remove_dir_all(&d).unwrap();
}
