//! Polling until a condition holds, with a deadline.

use std::fmt::Debug;
use std::time::{Duration, Instant};

const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Polls `f` every 100 ms until it returns `Some(T)` or `timeout` passes,
/// then panics naming `what`.
///
/// `f` is always called at least once, and once more after the deadline, so
/// a slow single attempt cannot cause a spurious timeout.
pub fn wait_for<T>(what: &str, timeout: Duration, f: impl FnMut() -> Option<T>) -> T {
    wait_for_described(what, timeout, f, || "(no state recorded)")
}

/// Like [`wait_for`], but on timeout the panic message also carries
/// `describe()` (evaluated once, at the timeout), e.g. the last command
/// output, so a failing test tells why it was still waiting.
pub fn wait_for_described<T, D: Debug>(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> Option<T>,
    describe: impl FnOnce() -> D,
) -> T {
    let start = Instant::now();
    let deadline = start + timeout;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        if let Some(value) = f() {
            return value;
        }
        if Instant::now() >= deadline {
            panic!(
                "timed out after {:?} ({attempts} attempts) waiting for {what}; last state: {:#?}",
                start.elapsed(),
                describe()
            );
        }
        std::thread::sleep(POLL_INTERVAL.min(deadline.saturating_duration_since(Instant::now())));
    }
}
