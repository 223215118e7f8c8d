//! The threads a CPU twin's loop is split over: the calling thread and `threads - 1` helpers
//! that wait for work by spinning for a short while before they sleep.
//!
//! Why not the rayon pool for this: entering a rayon pool from outside it hands the job to a
//! worker and puts the caller to sleep until it is done, two thread wake-ups per dispatch
//! (tens of microseconds on a virtual machine), which is more than the arithmetic of most
//! dispatches of a small model. Here the caller does its share itself and the helpers, hot
//! from the previous dispatch, pick theirs up within a fraction of a microsecond; a helper that
//! has seen no work for [`SPIN`] parks, so an idle device costs nothing.
//!
//! Iterations are claimed one at a time from a shared counter, so each runs exactly once,
//! on whichever thread claims it; twins compute every output from one iteration in a fixed
//! order, so the results do not depend on which thread that was.
//!
//! Also here: the floating-point mode every kernel of the CPU device runs in, on the caller
//! and the helpers alike ([`flushing_subnormals`]).

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Runs `f` with subnormal floats flushed to zero (inputs and results: MXCSR's DAZ and FTZ
/// bits on x86-64), the calling thread's mode restored after.
///
/// Why: on Intel cores an arithmetic instruction that meets a subnormal takes a microcode
/// assist of about a hundred cycles. The gradients of a long sequence shrink into that range,
/// and a dense LSTM-600's backward ran 20 times slower there (`rims bench --device cpu --config
/// paper` on a 2-core Xeon). GPUs flush subnormals too, so the CPU device now computes what
/// they compute; values below 1.2e-38 are zero either way.
pub fn flushing_subnormals<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[allow(deprecated)] // the intrinsics are deprecated in favour of inline asm, not unsound
        // SAFETY: reading and writing MXCSR has no memory effects; the old mode is restored.
        unsafe {
            use std::arch::x86_64::{_mm_getcsr, _mm_setcsr};
            const DAZ_FTZ: u32 = 0x0040 | 0x8000;
            let old = _mm_getcsr();
            _mm_setcsr(old | DAZ_FTZ);
            let r = f();
            _mm_setcsr(old);
            r
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    f()
}

/// How long an idle helper spins before it parks: longer than the gap between two dispatches
/// of a training step, far shorter than anything a person would notice.
const SPIN: Duration = Duration::from_micros(200);

/// One split loop: `body(i)` for i < n.
#[derive(Clone, Copy)]
struct Job {
    /// The caller's closure, alive until every helper has finished the job (the caller waits).
    body: *const (dyn Fn(usize) + Sync),
    n: usize,
}

/// What the caller and the helpers share.
struct Shared {
    /// Bumped by the caller for each job; a helper works on a job when it sees a new value.
    epoch: AtomicU64,
    /// The current job; written by the caller before it bumps `epoch`.
    job: Mutex<Option<Job>>,
    /// The next iteration to claim.
    next: AtomicUsize,
    /// Helpers done with the current epoch.
    finished: AtomicUsize,
    /// A panic message from a helper's iteration, re-raised on the caller.
    panic: Mutex<Option<String>>,
    /// Helpers asleep; the caller wakes them under `sleep` when this is non-zero.
    sleepers: AtomicUsize,
    sleep: Mutex<()>,
    wake: Condvar,
    stop: AtomicBool,
}

// SAFETY: `Job::body` is only dereferenced while the caller that owns it waits in `run`.
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

/// The calling thread plus `threads - 1` spinning helpers.
pub struct Team {
    shared: Arc<Shared>,
    helpers: Vec<std::thread::JoinHandle<()>>,
    /// One job at a time: a second caller (another thread using the same device) runs its
    /// loop on its own thread instead of waiting.
    busy: Mutex<()>,
}

thread_local! {
    /// Set while this thread runs an iteration of a team's job: a loop nested inside one runs
    /// serially instead of deadlocking on the busy team.
    static INSIDE: Cell<bool> = const { Cell::new(false) };
}

impl Team {
    /// A team of `threads` threads in all (the caller counts as one).
    pub fn new(threads: usize) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            epoch: AtomicU64::new(0),
            job: Mutex::new(None),
            next: AtomicUsize::new(0),
            finished: AtomicUsize::new(0),
            panic: Mutex::new(None),
            sleepers: AtomicUsize::new(0),
            sleep: Mutex::new(()),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let mut helpers = Vec::new();
        for i in 1..threads.max(1) {
            let s = shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("rims-team-{i}"))
                .spawn(move || helper(&s));
            match spawned {
                Ok(h) => helpers.push(h),
                Err(e) => {
                    // Stop the ones already started before reporting.
                    drop(Team {
                        shared,
                        helpers,
                        busy: Mutex::new(()),
                    });
                    return Err(e);
                }
            }
        }
        Ok(Team {
            shared,
            helpers,
            busy: Mutex::new(()),
        })
    }

    /// Threads in the team, the caller included.
    pub fn threads(&self) -> usize {
        self.helpers.len() + 1
    }

    /// Runs `body(i)` once for every i < n, over the team; returns when all have run. A panic
    /// in any iteration is raised here, after every thread has stopped touching `body`.
    pub fn run(&self, n: usize, body: &(dyn Fn(usize) + Sync)) {
        if self.helpers.is_empty() || n < 2 || INSIDE.with(Cell::get) {
            return (0..n).for_each(body);
        }
        let Ok(_busy) = self.busy.try_lock() else {
            return (0..n).for_each(body);
        };
        let s = &*self.shared;
        // SAFETY of the lifetime erasure: the helpers dereference `body` only between seeing
        // the new epoch and counting themselves finished, and this function does not return
        // before every helper has counted itself finished.
        let body_static: *const (dyn Fn(usize) + Sync) = unsafe {
            std::mem::transmute::<*const (dyn Fn(usize) + Sync + '_), *const (dyn Fn(usize) + Sync)>(
                body as *const _,
            )
        };
        *lock(&s.job) = Some(Job {
            body: body_static,
            n,
        });
        s.next.store(0, Ordering::Relaxed);
        s.finished.store(0, Ordering::Relaxed);
        s.epoch.fetch_add(1, Ordering::Release);
        if s.sleepers.load(Ordering::SeqCst) > 0 {
            let _g = lock(&s.sleep);
            s.wake.notify_all();
        }
        let mine = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| claim(s, n, body)));
        let helpers = self.helpers.len();
        let mut spins = 0u32;
        while s.finished.load(Ordering::Acquire) < helpers {
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(64) {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        *lock(&s.job) = None;
        if let Err(e) = mine {
            std::panic::resume_unwind(e);
        }
        if let Some(msg) = lock(&s.panic).take() {
            panic!("{msg}");
        }
    }
}

impl Drop for Team {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        {
            let _g = lock(&self.shared.sleep);
            self.shared.wake.notify_all();
        }
        for h in self.helpers.drain(..) {
            let _ = h.join();
        }
    }
}

/// Claims and runs iterations of the current job until none are left.
fn claim(s: &Shared, n: usize, body: &(dyn Fn(usize) + Sync)) {
    /// Clears [`INSIDE`] however the loop ends (a panicking iteration included).
    struct Inside;
    impl Drop for Inside {
        fn drop(&mut self) {
            INSIDE.with(|c| c.set(false));
        }
    }
    INSIDE.with(|c| c.set(true));
    let _inside = Inside;
    loop {
        let i = s.next.fetch_add(1, Ordering::Relaxed);
        if i >= n {
            break;
        }
        body(i);
    }
}

/// A helper's life: wait for a new epoch (spinning, then parked), do its share, count itself
/// finished.
fn helper(s: &Shared) {
    flushing_subnormals(|| helper_loop(s))
}

fn helper_loop(s: &Shared) {
    // The epoch the team was made with, not a load: a job posted before this thread first
    // runs must still be seen as new.
    let mut seen = 0;
    loop {
        let mut idle_since = Instant::now();
        let mut spins = 0u32;
        let epoch = loop {
            let e = s.epoch.load(Ordering::Acquire);
            if e != seen || s.stop.load(Ordering::Relaxed) {
                break e;
            }
            spins = spins.wrapping_add(1);
            if !spins.is_multiple_of(256) {
                std::hint::spin_loop();
                continue;
            }
            if idle_since.elapsed() < SPIN {
                continue;
            }
            // Park until the caller bumps the epoch; re-checked under the lock so a wake-up
            // between the check and the wait is not lost.
            s.sleepers.fetch_add(1, Ordering::SeqCst);
            let mut g = lock(&s.sleep);
            while s.epoch.load(Ordering::SeqCst) == seen && !s.stop.load(Ordering::SeqCst) {
                g = s.wake.wait(g).unwrap_or_else(|p| p.into_inner());
            }
            drop(g);
            s.sleepers.fetch_sub(1, Ordering::SeqCst);
            idle_since = Instant::now();
        };
        if s.stop.load(Ordering::Relaxed) {
            return;
        }
        seen = epoch;
        let job = *lock(&s.job);
        if let Some(job) = job {
            // SAFETY: the caller keeps `body` alive until this helper counts itself finished.
            let body = unsafe { &*job.body };
            let r =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| claim(s, job.n, body)));
            if let Err(e) = r {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|m| m.to_string()))
                    .unwrap_or_else(|| "panic in a CPU kernel".into());
                lock(&s.panic).get_or_insert(msg);
            }
        }
        s.finished.fetch_add(1, Ordering::Release);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_iteration_runs_once() {
        for threads in [1, 2, 3] {
            let team = Team::new(threads).unwrap();
            for n in [0, 1, 2, 7, 1000] {
                let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
                team.run(n, &|i| {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                });
                assert!(
                    hits.iter().all(|h| h.load(Ordering::Relaxed) == 1),
                    "{threads} {n}"
                );
            }
        }
    }

    #[test]
    fn helpers_that_slept_wake_for_the_next_job() {
        let team = Team::new(2).unwrap();
        std::thread::sleep(SPIN * 5);
        let sum = AtomicUsize::new(0);
        team.run(100, &|i| {
            sum.fetch_add(i, Ordering::Relaxed);
        });
        assert_eq!(sum.load(Ordering::Relaxed), 4950);
    }

    #[test]
    fn a_panic_in_an_iteration_reaches_the_caller_and_the_team_still_works() {
        let team = Team::new(2).unwrap();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            team.run(64, &|i| assert!(i != 37, "iteration 37 fails"))
        }));
        let msg = r.unwrap_err();
        let text = msg
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| msg.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap();
        assert!(text.contains("iteration 37 fails"), "{text}");
        let count = AtomicUsize::new(0);
        team.run(10, &|_| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(count.load(Ordering::Relaxed), 10);
    }

    #[test]
    fn subnormals_are_flushed_inside_and_the_mode_restored_after() {
        let tiny = std::hint::black_box(1e-39f32);
        assert!(tiny > 0.0 && !tiny.is_normal());
        let inside = flushing_subnormals(|| std::hint::black_box(tiny) * std::hint::black_box(1.5));
        #[cfg(target_arch = "x86_64")]
        assert_eq!(inside, 0.0);
        let after = std::hint::black_box(tiny) * std::hint::black_box(1.5);
        assert_eq!(after, 1.5e-39, "the caller's mode is back");
        let _ = inside;
    }

    #[test]
    fn a_nested_loop_runs_on_its_thread() {
        let team = Team::new(2).unwrap();
        let count = AtomicUsize::new(0);
        team.run(4, &|_| {
            team.run(3, &|_| {
                count.fetch_add(1, Ordering::Relaxed);
            })
        });
        assert_eq!(count.load(Ordering::Relaxed), 12);
    }
}
