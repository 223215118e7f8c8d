//! The bodies of the fuzz targets, shared by `cargo fuzz` (fuzz_targets/) and the corpus
//! regression test (tests/fuzz_corpus.rs). Each takes any bytes and must return, never panic,
//! abort or hang: every reader answers bad bytes with an `Err`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rims::interop::state_dict::StateDict;
use rims::interop::{self, Code, ImportOptions};

/// A safetensors state_dict: parsed, then imported as either code's cell with k = 1 and 2.
pub fn state_dict(data: &[u8]) {
    let Ok(sd) = StateDict::parse(Path::new("fuzz.safetensors"), data) else {
        return;
    };
    for code in [Code::Authors, Code::Dido] {
        for k in [1, 2] {
            let _ = interop::import(&mut sd.clone(), &ImportOptions::new(code, k));
        }
    }
}

/// A `metrics.jsonl` text.
pub fn metrics(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = rims::train::parse_records(text, Path::new("metrics.jsonl"));
    }
}

/// The files of a run directory, as sections of the input separated by [`SEPARATOR`]:
/// `latest`, the set's `train.json`, `model.safetensors`, `optimizer.safetensors`, and
/// `DIR/metrics.jsonl`. Written to a directory of this process, then read as `eval`, `infer`,
/// `--resume` and `rims.Runner` read them.
pub fn run_dir(data: &[u8]) {
    let dir = scratch();
    let _ = std::fs::remove_dir_all(&dir);
    let set = dir.join("epoch-000001");
    std::fs::create_dir_all(&set).expect("a scratch directory");
    let mut parts = split(data).into_iter();
    let mut write = |path: PathBuf| {
        if let Some(bytes) = parts.next() {
            std::fs::write(path, bytes).expect("a scratch file");
        }
    };
    write(dir.join("latest"));
    write(set.join("train.json"));
    write(set.join("model.safetensors"));
    write(set.join("optimizer.safetensors"));
    write(dir.join("metrics.jsonl"));
    let Ok(state) = rims::train::checkpoint::read_state(&dir) else {
        return;
    };
    let _ = rims::train::checkpoint::read_metrics(&dir);
    // What a real command checks before it builds the model.
    if state.config.validate().is_err() {
        return;
    }
    let ctx = context();
    if rims::train::budget::check(ctx, &state.config, false).is_err() {
        return;
    }
    if let Ok(model) = rims::train::checkpoint::load_model(ctx, &dir) {
        let cfg = &state.config;
        if let Ok(mut adam) = rims::ops::optim::Adam::new(
            ctx,
            model.store.trainable_len(),
            rims::train::adam_config(cfg),
        ) {
            let _ = rims::train::checkpoint::load(ctx, &dir, &model, Some(&mut adam));
        }
    }
}

/// What separates the sections of a [`run_dir`] input.
pub const SEPARATOR: &[u8] = b"\n--rims-fuzz--\n";

fn split(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(at) = rest.windows(SEPARATOR.len()).position(|w| w == SEPARATOR) {
        out.push(&rest[..at]);
        rest = &rest[at + SEPARATOR.len()..];
    }
    out.push(rest);
    out
}

fn scratch() -> PathBuf {
    std::env::temp_dir().join(format!("rims-fuzz-run-{}", std::process::id()))
}

fn context() -> &'static rims::Context {
    static CTX: OnceLock<rims::Context> = OnceLock::new();
    CTX.get_or_init(|| {
        rims::Context::new(rims::DeviceRequest::cpu(Some(1))).expect("the CPU device")
    })
}
