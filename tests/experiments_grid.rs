//! `tools/experiments.sh --list`: the grid of docs/experiments.md as one clean `rims train`
//! command per run (own seed, own output), in seed-major order, resuming where a run holds a
//! checkpoint. Only the listing is checked here: running the grid takes an hour.

use std::path::Path;
use std::process::Command;

fn grid(args: &[&str]) -> (i32, Vec<String>, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash")
        .arg(root.join("tools/experiments.sh"))
        .args(args)
        .current_dir(root)
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    (
        out.status.code().unwrap_or(-1),
        stdout.lines().map(String::from).collect(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn flag<'a>(line: &'a str, name: &str) -> &'a str {
    let mut words = line.split_whitespace();
    words.find(|w| *w == name);
    words
        .next()
        .unwrap_or_else(|| panic!("{name} missing in: {line}"))
}

#[test]
fn the_default_grid_is_three_seeds_of_five_configurations() {
    let runs = std::env::temp_dir().join(format!("rims-grid-{}", std::process::id()));
    let (code, lines, err) = grid(&["--list", "--runs", runs.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    // copying: RIMs and LSTM; smnist: RIMs k=4, k=6 and LSTM; seeds 1, 2, 3.
    assert_eq!(lines.len(), 15, "{lines:#?}");
    let outs: Vec<&str> = lines.iter().map(|l| flag(l, "--out")).collect();
    let mut unique = outs.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 15, "every run has its own directory");
    for (i, l) in lines.iter().enumerate() {
        assert!(l.starts_with("RIMS_THREADS=1 "), "{l}");
        assert!(l.contains(" train --device cpu "), "{l}");
        // Seed-major: the first five runs are seed 1, and each directory names its seed.
        let seed = flag(l, "--seed");
        assert_eq!(seed, (i / 5 + 1).to_string(), "{l}");
        assert!(outs[i].ends_with(&format!("-s{seed}")), "{l}");
        // One flag once: clap refuses a repeated flag.
        let mut flags: Vec<&str> = l
            .split_whitespace()
            .filter(|w| w.starts_with("--"))
            .collect();
        let n = flags.len();
        flags.sort();
        flags.dedup();
        assert_eq!(flags.len(), n, "a flag repeats in: {l}");
    }
    assert!(outs.iter().any(|o| o.ends_with("copy-rims-s1")));
    assert!(outs.iter().any(|o| o.ends_with("smnist-rims-k6-s3")));
}

#[test]
fn a_run_with_a_checkpoint_is_resumed_and_bad_arguments_are_usage_errors() {
    let runs = std::env::temp_dir().join(format!("rims-grid-resume-{}", std::process::id()));
    let done = runs.join("hyp-lstm-s1");
    std::fs::create_dir_all(&done).unwrap();
    std::fs::write(done.join("latest"), "epoch-000002\n").unwrap();
    let (code, lines, err) = grid(&[
        "--list",
        "--seeds",
        "1",
        "--runs",
        runs.to_str().unwrap(),
        "hypotheses",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(lines.len(), 7, "{lines:#?}");
    let resumed: Vec<&String> = lines.iter().filter(|l| l.contains("--resume")).collect();
    assert_eq!(resumed.len(), 1, "{lines:#?}");
    assert!(
        resumed[0].ends_with(&format!("--resume {}", done.display())),
        "{}",
        resumed[0]
    );
    std::fs::remove_dir_all(&runs).unwrap();

    let (code, _, err) = grid(&["--list", "nonsense"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown argument 'nonsense'"), "{err}");
}

#[test]
fn the_balls_grid_is_three_seeds_of_rims_and_a_matched_lstm() {
    let runs = std::env::temp_dir().join(format!("rims-grid-balls-{}", std::process::id()));
    let (code, lines, err) = grid(&["--list", "--runs", runs.to_str().unwrap(), "balls"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(lines.len(), 6, "{lines:#?}");
    for l in &lines {
        assert_eq!(flag(l, "--task"), "balls", "{l}");
        assert_eq!(flag(l, "--balls"), "4", "trained on 4 balls only: {l}");
    }
    let models: Vec<&str> = lines.iter().map(|l| flag(l, "--model")).collect();
    assert_eq!(models.iter().filter(|m| **m == "rims").count(), 3);
    assert_eq!(models.iter().filter(|m| **m == "lstm").count(), 3);
}
