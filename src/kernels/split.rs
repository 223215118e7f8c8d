//! Whether a twin's loop is split over the team: measured per kernel and size on this
//! machine, at first use, instead of one threshold for every kernel.
//!
//! A loop whose work (multiply-adds or element visits, as the twin counts it) is below
//! [`NEVER_BELOW`] always runs on the calling thread, and one at or above [`ALWAYS_FROM`] is
//! always split. In between, the first runs of each (kernel, power-of-two work size) alternate
//! between the two ways and are timed; after [`SAMPLES`] of each, the faster one (by median) is
//! kept for the life of the device. A split never changes a result: each iteration of
//! [`crate::kernels::par_for`] runs once, and twins compute every output from one iteration in
//! a fixed order, so the choice only changes the time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Work below which splitting never pays: a few microseconds of arithmetic at most.
pub const NEVER_BELOW: usize = 1 << 12;
/// Work from which splitting always pays on any core count (hundreds of microseconds).
pub const ALWAYS_FROM: usize = 1 << 20;
/// Timed runs of each way before the choice.
const SAMPLES: usize = 3;

/// What is known of one (kernel, size).
#[derive(Default)]
struct Trial {
    /// Seconds of the timed runs, on one thread and split.
    serial: Vec<f64>,
    split: Vec<f64>,
    /// The choice, once made: split or not.
    decided: Option<bool>,
}

/// The choices of one device, by kernel and size.
#[derive(Default)]
pub struct SplitPolicy {
    trials: Mutex<HashMap<(u64, u32), Trial>>,
}

/// How one loop is to run.
pub enum Plan {
    /// The choice is made: split or not.
    Decided(bool),
    /// Being measured: run it this way and report the time with [`SplitPolicy::record`].
    Measure {
        /// Split this time or not.
        split: bool,
        /// Which trial the time belongs to.
        key: (u64, u32),
    },
}

impl SplitPolicy {
    /// How a loop of `work` in the kernel `label` runs on a device of `threads` threads.
    pub fn plan(&self, label: &str, work: usize, threads: usize) -> Plan {
        if threads < 2 || work < NEVER_BELOW {
            return Plan::Decided(false);
        }
        if work >= ALWAYS_FROM {
            return Plan::Decided(true);
        }
        let key = (fnv(label), work.ilog2());
        let mut trials = self.trials.lock().unwrap_or_else(|p| p.into_inner());
        let t = trials.entry(key).or_default();
        match t.decided {
            Some(split) => Plan::Decided(split),
            // Alternate, one thread first.
            None => Plan::Measure {
                split: t.split.len() < t.serial.len(),
                key,
            },
        }
    }

    /// The time of a loop run as [`Plan::Measure`] said.
    pub fn record(&self, key: (u64, u32), split: bool, started: Instant) {
        let seconds = started.elapsed().as_secs_f64();
        let mut trials = self.trials.lock().unwrap_or_else(|p| p.into_inner());
        let t = trials.entry(key).or_default();
        if t.decided.is_some() {
            return;
        }
        if split {
            t.split.push(seconds);
        } else {
            t.serial.push(seconds);
        }
        if t.serial.len() >= SAMPLES && t.split.len() >= SAMPLES {
            t.decided = Some(median(&mut t.split) < median(&mut t.serial));
        }
    }

    /// The choices made so far, as (kernel hash, log₂ work, split) (for tests and reports).
    pub fn decisions(&self) -> Vec<(u64, u32, bool)> {
        let trials = self.trials.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<_> = trials
            .iter()
            .filter_map(|(k, t)| t.decided.map(|d| (k.0, k.1, d)))
            .collect();
        v.sort();
        v
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// FNV-1a of a kernel's label: a key without allocating.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_outside_the_measured_range_are_fixed() {
        let p = SplitPolicy::default();
        assert!(matches!(
            p.plan("k", NEVER_BELOW - 1, 2),
            Plan::Decided(false)
        ));
        assert!(matches!(p.plan("k", ALWAYS_FROM, 2), Plan::Decided(true)));
        assert!(matches!(p.plan("k", ALWAYS_FROM, 1), Plan::Decided(false)));
    }

    #[test]
    fn the_faster_way_is_kept_after_alternating_trials() {
        let p = SplitPolicy::default();
        let work = NEVER_BELOW * 4;
        let mut ways = Vec::new();
        for _ in 0..2 * SAMPLES {
            match p.plan("kernel", work, 2) {
                Plan::Measure { split, key } => {
                    ways.push(split);
                    // Splitting "takes" no time, one thread 2 ms.
                    let started = if split {
                        Instant::now()
                    } else {
                        Instant::now() - std::time::Duration::from_millis(2)
                    };
                    p.record(key, split, started);
                }
                Plan::Decided(_) => panic!("decided before its trials"),
            }
        }
        assert_eq!(ways, [false, true, false, true, false, true]);
        assert!(matches!(p.plan("kernel", work, 2), Plan::Decided(true)));
        // Another kernel, or another size of this one, is measured on its own.
        assert!(matches!(p.plan("other", work, 2), Plan::Measure { .. }));
        assert!(matches!(
            p.plan("kernel", work * 2, 2),
            Plan::Measure { .. }
        ));
        assert_eq!(p.decisions().len(), 1);
    }
}
