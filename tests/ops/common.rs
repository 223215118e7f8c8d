//! Shared test helpers: one context per test binary, tolerant comparisons, random data.

use std::sync::OnceLock;

use rims::Context;

/// The test binary's context. Under `CI=true` a missing adapter fails the test; elsewhere the
/// test is skipped with a loud message (returns None).
pub fn ctx() -> Option<&'static Context> {
    static CTX: OnceLock<Result<Context, String>> = OnceLock::new();
    let made = CTX.get_or_init(|| Context::from_env().map_err(|e| e.to_string()));
    match made {
        Ok(c) => Some(c),
        Err(e) => {
            if std::env::var("CI")
                .map(|v| v == "true" || v == "1")
                .unwrap_or(false)
            {
                panic!("CI=true and no GPU adapter could be opened: {e}");
            }
            eprintln!(
                "SKIPPING GPU TEST: no adapter ({e}); install mesa-vulkan-drivers for llvmpipe"
            );
            None
        }
    }
}

/// A context of the test's own, for tests that read global counters (the shared one is used
/// by tests running in parallel).
pub fn fresh_ctx() -> Option<Context> {
    ctx()?;
    Some(Context::from_env().expect("a second context on the same adapter"))
}

/// Asserts |gpu - reference| <= atol + rtol * |reference| elementwise, with a helpful message.
pub fn assert_close(what: &str, gpu: &[f32], reference: &[f64], atol: f64, rtol: f64) {
    assert_eq!(gpu.len(), reference.len(), "{what}: length");
    let mut worst = (0usize, 0.0f64);
    for (i, (&g, &r)) in gpu.iter().zip(reference).enumerate() {
        let err = (g as f64 - r).abs();
        let excess = err - (atol + rtol * r.abs());
        assert!(
            g.is_finite(),
            "{what}[{i}]: gpu value {g} is not finite (reference {r})"
        );
        if excess > worst.1 {
            worst = (i, excess);
        }
    }
    if worst.1 > 0.0 {
        let i = worst.0;
        panic!(
            "{what}[{i}]: gpu {} vs reference {} (atol {atol}, rtol {rtol})",
            gpu[i], reference[i]
        );
    }
}

pub fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}
