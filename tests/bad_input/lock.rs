//! One writer per run directory: while a `rims train` runs, a second `rims train` on the same
//! directory (new or `--resume`) is refused at once, naming the holder's pid, and the first
//! run finishes complete; once it has ended, the directory can be resumed.

use std::time::{Duration, Instant};

use super::*;

/// `rims train --out DIR --epochs E --iterations I` with the tiny flags.
fn tiny_train<'a>(dir: &'a std::path::Path, epochs: &'a str, iterations: &'a str) -> Vec<&'a str> {
    let mut args = vec![
        "train",
        "--out",
        s(dir),
        "--epochs",
        epochs,
        "--iterations",
        iterations,
    ];
    args.extend(TINY);
    args
}

#[test]
fn a_second_writer_on_a_live_run_is_refused_and_the_first_run_is_complete() {
    let root = scratch("run-lock");
    let dir = root.join("run");
    // Two epochs of a few seconds each: long enough to race the second writer against.
    let args = tiny_train(&dir, "2", "6000");
    let mut first = command(&args, &[]).spawn().expect("rims starts");
    let pid = first.id().to_string();
    // Wait until the first run has saved its first checkpoint (it holds the lock from its
    // start; a resume then finds a checkpoint to be refused on).
    let lock = dir.join(rims::train::checkpoint::LOCK_FILE);
    let start = Instant::now();
    while !dir.join("latest").is_file() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the first run never locked {lock:?}"
        );
        assert!(
            first.try_wait().unwrap().is_none(),
            "the first run ended before the test could race it"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = tiny_train(&dir, "1", "2");
    let o = rims(&second);
    assert!(
        first.try_wait().unwrap().is_none(),
        "the first run ended during the race"
    );
    assert_eq!(o.code, 1, "{o:?}");
    assert!(
        o.stderr
            .contains(&format!("in use by another rims process (pid {pid})")),
        "{o:?}"
    );
    let o = rims(&["train", "--resume", s(&dir)]);
    assert!(
        first.try_wait().unwrap().is_none(),
        "the first run ended during the race"
    );
    assert_eq!(o.code, 1, "a resume of a live run: {o:?}");
    assert!(o.stderr.contains("in use by"), "{o:?}");
    assert_eq!(
        std::fs::read(&lock).unwrap(),
        b"",
        "the lock file is never written"
    );
    let status = first.wait().unwrap();
    assert!(status.success(), "the first run: {status:?}");
    assert_eq!(
        metric_epochs(&dir),
        [1, 2],
        "the first run's records are complete"
    );
    assert!(dir.join("latest").is_file());
    // The lock went with the process: the run can be continued now.
    let o = rims(&["train", "--resume", s(&dir), "--epochs", "3"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(metric_epochs(&dir), [1, 2, 3]);
}

#[test]
fn a_lock_file_that_is_a_symlink_is_not_followed() {
    let root = scratch("run-lock-link");
    let dir = root.join("run");
    std::fs::create_dir_all(&dir).unwrap();
    let target = root.join("precious.txt");
    std::fs::write(&target, "keep me").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(&target, dir.join(rims::train::checkpoint::LOCK_FILE)).unwrap();
    let args = tiny_train(&dir, "1", "2");
    let o = rims(&args);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains(".rims.lock"), "{o:?}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
}

#[cfg(unix)]
#[test]
fn sigint_and_sigterm_stop_a_run_cleanly_and_say_which_checkpoint_is_kept() {
    for signal in ["INT", "TERM"] {
        let root = scratch(&format!("interrupt-{signal}"));
        let dir = root.join("run");
        let args = tiny_train(&dir, "2", "6000");
        let child = command(&args, &[])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while !dir.join("latest").is_file() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "no first checkpoint"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let sent = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "SIG{signal}: {stderr}");
        assert!(
            stderr.contains(&format!("interrupted by SIG{signal}")),
            "{stderr}"
        );
        assert!(
            stderr.contains("(epoch 1, step 6000)") && stderr.contains("is kept"),
            "{stderr}"
        );
        assert!(stderr.contains("rims train --resume"), "{stderr}");
        assert_eq!(metric_epochs(&dir), [1]);
        let o = rims(&["train", "--resume", s(&dir)]);
        assert_eq!(o.code, 0, "the kept checkpoint resumes: {o:?}");
        assert_eq!(metric_epochs(&dir), [1, 2]);
    }
}
