//! What the twin tests share: they run an op wrapper on the CPU device and on the
//! GPU (llvmpipe here) and compare every output the twin writes, and they check that the twins
//! give the same bits on one thread and on two.

use rims::{Context, DeviceRequest};

/// The GPU, or None with a loud message where there is none; under `CI=true` a missing GPU
/// fails the test instead.
pub fn gpu_or_skip() -> Option<Context> {
    match Context::new(DeviceRequest::gpu()) {
        Ok(g) => Some(g),
        Err(e) => {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            assert!(!ci, "CI=true and no GPU adapter could be opened: {e}");
            eprintln!("SKIPPING the GPU comparison: {e}");
            None
        }
    }
}

/// The CPU device on one thread and on two.
pub fn one_and_two_threads() -> (Context, Context) {
    let open = |n| Context::new(DeviceRequest::cpu(Some(n))).expect("the CPU device opens");
    (open(1), open(2))
}

/// Asserts |cpu − gpu| ≤ 1e-5 + 1e-5·|gpu| for every element.
pub fn assert_close(what: &str, cpu: &[f32], gpu: &[f32]) {
    assert_eq!(cpu.len(), gpu.len(), "{what}: lengths");
    for (i, (&x, &y)) in cpu.iter().zip(gpu).enumerate() {
        assert!(
            (x - y).abs() <= 1e-5 + 1e-5 * y.abs(),
            "{what}[{i}]: CPU {x} vs GPU {y}"
        );
    }
}

/// [`assert_close`] for each output of a run.
pub fn assert_outputs_close(what: &str, cpu: &[Vec<f32>], gpu: &[Vec<f32>]) {
    assert_eq!(cpu.len(), gpu.len(), "{what}: outputs");
    for (k, (x, y)) in cpu.iter().zip(gpu).enumerate() {
        assert_close(&format!("{what}: output {k}"), x, y);
    }
}
