//! Shared test helpers: one context per device per test binary, the macro that runs one test
//! body on every device, tolerant comparisons, random data.

use std::sync::OnceLock;

use rims::Context;
use rims::device::{DeviceKind, DeviceRequest};

/// Runs a test body on both devices: `device_test!(name)` for `fn name(ctx: &Context)` makes
/// the tests `name::cpu` and `name::gpu`; `device_test!(name, fresh)` for
/// `fn name(kind: DeviceKind)` does the same for bodies that open contexts of their own.
macro_rules! device_test {
    ($name:ident) => {
        mod $name {
            #[test]
            fn cpu() {
                super::$name(crate::common::cpu());
            }
            #[test]
            fn gpu() {
                if let Some(ctx) = crate::common::gpu() {
                    super::$name(ctx);
                }
            }
        }
    };
    ($name:ident, fresh) => {
        mod $name {
            #[test]
            fn cpu() {
                super::$name(rims::device::DeviceKind::Cpu);
            }
            #[test]
            fn gpu() {
                if crate::common::gpu().is_some() {
                    super::$name(rims::device::DeviceKind::Gpu);
                }
            }
        }
    };
}

fn request(kind: DeviceKind) -> DeviceRequest {
    match kind {
        DeviceKind::Cpu => DeviceRequest::cpu(None),
        // llvmpipe on machines without a GPU; RIMS_ADAPTER / RIMS_BACKEND still steer it.
        DeviceKind::Gpu => DeviceRequest::from_env()
            .expect("RIMS_* variables parse")
            .with_device(Some(DeviceKind::Gpu)),
    }
}

/// The test binary's CPU device (always present).
pub fn cpu() -> &'static Context {
    static CTX: OnceLock<Context> = OnceLock::new();
    CTX.get_or_init(|| Context::new(request(DeviceKind::Cpu)).expect("the CPU device opens"))
}

/// The test binary's GPU (llvmpipe on machines without one). Under `CI=true` a missing adapter
/// fails the test; elsewhere the GPU half of each test is skipped with a loud message.
pub fn gpu() -> Option<&'static Context> {
    static CTX: OnceLock<Result<Context, String>> = OnceLock::new();
    let made =
        CTX.get_or_init(|| Context::new(request(DeviceKind::Gpu)).map_err(|e| e.to_string()));
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

/// A context of the test's own on `kind`, for tests that read global counters (the shared
/// ones are used by tests running in parallel). None where `gpu()` skips.
pub fn fresh(kind: DeviceKind) -> Option<Context> {
    if kind == DeviceKind::Gpu {
        gpu()?;
    }
    Some(Context::new(request(kind)).expect("a second context on the same device"))
}

/// Asserts |got - reference| <= atol + rtol * |reference| elementwise, with a helpful message.
pub fn assert_close(what: &str, got: &[f32], reference: &[f64], atol: f64, rtol: f64) {
    assert_eq!(got.len(), reference.len(), "{what}: length");
    let mut worst = (0usize, 0.0f64);
    for (i, (&g, &r)) in got.iter().zip(reference).enumerate() {
        let err = (g as f64 - r).abs();
        let excess = err - (atol + rtol * r.abs());
        assert!(
            g.is_finite(),
            "{what}[{i}]: device value {g} is not finite (reference {r})"
        );
        if excess > worst.1 {
            worst = (i, excess);
        }
    }
    if worst.1 > 0.0 {
        let i = worst.0;
        panic!(
            "{what}[{i}]: device {} vs reference {} (atol {atol}, rtol {rtol})",
            got[i], reference[i]
        );
    }
}

pub fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}
