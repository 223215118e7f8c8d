//! The `rims` binary on bad input: a one-line error, a nonzero exit code, no panic.

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
    assert_one_line_error(&["train", "--task", "nope"], "unknown task");
    assert_one_line_error(&["train", "--model", "transformer"], "unknown model");
    assert_one_line_error(&["train", "--cell", "rnn"], "unknown cell");
    assert_one_line_error(&["train", "--epochs", "0"], "epochs");
    assert_one_line_error(&["train", "--active", "9"], "active");
    assert_one_line_error(&["train", "--lr=-1"], "lr");
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
    let (code, _, err) = rims(&["train", "--batch", "many"]);
    assert_eq!(code, 2, "usage errors exit with 2: {err}");
}
