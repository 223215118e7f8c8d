//! `rims train`'s progress bar, fed by the training loop through [`Reporter`], and what stops
//! a run cleanly on SIGINT or SIGTERM ([`catch_interrupts`]).

use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use rims::train::{EvalRecord, Reporter};

/// The signal that asked the run to stop (0: none yet).
static INTERRUPTED: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(signal: libc::c_int) {
    // Only async-signal-safe work here: remember the signal; a second one ends the process
    // at once, as a user pressing Ctrl-C twice expects.
    if INTERRUPTED.swap(signal, Ordering::SeqCst) != 0 {
        unsafe { libc::_exit(128 + signal) };
    }
}

/// From now on SIGINT and SIGTERM make the training loop stop after the current step (the
/// last checkpoint stays as it is; [`Reporter::keep_going`] reports it), instead of killing
/// the process mid-step with nothing said.
pub fn catch_interrupts() {
    #[cfg(unix)]
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only touches an atomic and calls _exit.
        unsafe { libc::signal(signal, on_signal as *const () as libc::sighandler_t) };
    }
}

/// The signal that asked the run to stop, by name, once one has.
pub fn interrupted() -> Option<&'static str> {
    match INTERRUPTED.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(signal_name(signal)),
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

/// The CLI's progress bar: loss, accuracy of the last evaluation, steps per second, ETA.
pub struct Bar {
    pub bar: ProgressBar,
    started: Instant,
    steps: usize,
    last_eval: String,
}

impl Bar {
    /// A bar whose length comes with [`Reporter::started`].
    pub fn new() -> Self {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} epoch {prefix} [{bar:30}] {pos}/{len} {msg} (eta {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        Bar {
            bar,
            started: Instant::now(),
            steps: 0,
            last_eval: String::new(),
        }
    }
}

impl Reporter for Bar {
    fn started(&mut self, steps: u64) {
        self.bar.set_length(steps);
    }

    fn keep_going(&mut self) -> rims::Result<()> {
        match interrupted() {
            None => Ok(()),
            Some(signal) => {
                self.bar.finish_and_clear();
                Err(rims::Error::Stopped(format!(
                    "interrupted by {signal} after step {}",
                    self.steps
                )))
            }
        }
    }

    fn step(&mut self, epoch: usize, _iteration: usize, _of: usize, loss: f32, _sequences: usize) {
        self.steps += 1;
        let rate = self.steps as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
        self.bar.set_prefix(format!("{}", epoch + 1));
        self.bar.set_message(format!(
            "loss {loss:.4} {}{rate:.1} steps/s",
            self.last_eval
        ));
        self.bar.inc(1);
    }

    fn evaluated(&mut self, r: &EvalRecord) {
        let acc: Vec<String> = r
            .eval
            .iter()
            .map(|e| format!("{}@{} {:.1}%", e.split, e.size, 100.0 * e.accuracy))
            .collect();
        self.last_eval = format!("| {} | ", acc.join(" "));
        let line = format!(
            "epoch {:>3}  step {:>6}  train loss {:.4}  {}",
            r.epoch,
            r.step,
            r.train_loss,
            r.eval
                .iter()
                .map(|e| format!(
                    "{}@{}: loss {:.4} acc {:.1}%",
                    e.split,
                    e.size,
                    e.loss,
                    100.0 * e.accuracy
                ))
                .collect::<Vec<_>>()
                .join("  ")
        );
        // Without a terminal the bar is hidden, and so would its printed lines be.
        if self.bar.is_hidden() {
            println!("{line}");
        } else {
            self.bar.println(line);
        }
    }
}
