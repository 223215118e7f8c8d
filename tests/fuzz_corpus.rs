//! The fuzz targets' corpora (fuzz/corpus/NAME, seeds and whatever the fuzzer kept or found)
//! run through the targets' own bodies (fuzz/common.rs) on stable Rust: every input must come
//! back as a value or an error, never a panic. `cargo +nightly fuzz run NAME` in fuzz/ explores
//! further (docs/design.md, "Fuzzing").

#[path = "../fuzz/common.rs"]
mod common;

use std::path::Path;

fn run_corpus(target: &str, body: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut ran = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir:?}: {e}"))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| body(&data));
        assert!(outcome.is_ok(), "{target}: {path:?} panicked");
        ran += 1;
    }
    assert!(ran > 0, "{target}: an empty corpus");
}

#[test]
fn state_dict_corpus() {
    run_corpus("state_dict", common::state_dict);
}

#[test]
fn metrics_corpus() {
    run_corpus("metrics", common::metrics);
}

#[test]
fn run_dir_corpus() {
    run_corpus("run_dir", common::run_dir);
}
