//! `rims verify`: the GPU against the f64 reference on several RIMs configurations; prints the
//! largest relative error of every tensor and fails above the tolerance.

use clap::Args;
use rims::{Error, Result};

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub(crate) device: super::shared::DeviceArg,
    /// Random configurations to add to the standard ones.
    #[arg(long, default_value_t = 4)]
    random: usize,
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// Largest accepted error, relative to the largest value of each reference tensor (a
    /// finite number, at least 0).
    #[arg(long, default_value_t = 1e-4, value_parser = tolerance)]
    tolerance: f64,
}

/// A tolerance that a comparison can be held to: NaN would pass nothing, a negative one too.
fn tolerance(text: &str) -> std::result::Result<f64, String> {
    let t: f64 = text.parse().map_err(|e| format!("{e}"))?;
    if t.is_finite() && t >= 0.0 {
        Ok(t)
    } else {
        Err(format!("{t} is not a finite number of at least 0"))
    }
}

pub fn run_verify(args: &VerifyArgs) -> Result<()> {
    let ctx = args.device.open()?;
    println!(
        "rims verify on {}, tolerance {:.0e}",
        ctx.describe(),
        args.tolerance
    );
    let mut cases = rims::verify::standard_cases();
    cases.extend(rims::verify::random_cases(args.random, args.seed));
    let mut failed = Vec::new();
    for case in &cases {
        let report = rims::verify::run_case(&ctx, case)?;
        let status = if report.passed(args.tolerance) {
            "ok  "
        } else {
            "FAIL"
        };
        println!(
            "{status} {:<44} masks {:<9} worst {:.1e}",
            report.case,
            if report.masks_equal {
                "equal"
            } else {
                "DIFFER"
            },
            report.worst()
        );
        let cells: Vec<String> = report
            .errors
            .iter()
            .map(|(n, e)| format!("{n} {e:.1e}"))
            .collect();
        for chunk in cells.chunks(6) {
            println!("       {}", chunk.join("  "));
        }
        if !report.passed(args.tolerance) {
            failed.push(report.case);
        }
    }
    if failed.is_empty() {
        println!(
            "all {} configurations agree with the reference",
            cases.len()
        );
        Ok(())
    } else {
        Err(Error::Gpu {
            during: "verify".into(),
            message: format!(
                "{} configuration(s) above tolerance: {}",
                failed.len(),
                failed.join("; ")
            ),
        })
    }
}
