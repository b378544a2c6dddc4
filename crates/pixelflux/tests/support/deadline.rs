//! A deadline for a test step that could block for ever (joining a thread, stopping a
//! capture, waiting on a channel): the step runs on a thread of its own, and a step that
//! overruns fails the test with the test's name instead of hanging `cargo test`.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

/// Runs `step` on a thread of its own and returns what it returns. Panics, naming the running
/// test (libtest names each test's thread after it) and `what`, if `step` has not finished
/// within `limit`; a panic inside `step` is passed on unchanged. The overrunning thread is left
/// behind (a thread cannot be killed); the test fails at once all the same.
pub fn within<T: Send + 'static>(
    what: &str,
    limit: Duration,
    step: impl FnOnce() -> T + Send + 'static,
) -> T {
    let test = std::thread::current()
        .name()
        .unwrap_or("<unnamed test>")
        .to_string();
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::Builder::new()
        .name(format!("{test}: {what}"))
        .spawn(move || {
            // The receiver may have given up already: nothing to do about it then.
            let _ = tx.send(step());
        })
        .expect("spawn a thread for a test step");
    match rx.recv_timeout(limit) {
        Ok(value) => {
            let _ = worker.join();
            value
        }
        Err(RecvTimeoutError::Timeout) => {
            panic!("test {test}: {what} did not finish within {limit:?} (hung?)")
        }
        Err(RecvTimeoutError::Disconnected) => match worker.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the step returned without sending its result"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_value_passes_panics_on_and_fails_a_hang() {
        assert_eq!(within("add", Duration::from_secs(5), || 2 + 2), 4);
        let passed_on = std::panic::catch_unwind(|| {
            within("panic", Duration::from_secs(5), || panic!("inner"));
        })
        .unwrap_err();
        assert_eq!(passed_on.downcast_ref::<&str>(), Some(&"inner"));
        let hung = std::panic::catch_unwind(|| {
            within("sleep", Duration::from_millis(50), || {
                std::thread::sleep(Duration::from_secs(2))
            })
        })
        .unwrap_err();
        let message = hung.downcast_ref::<String>().expect("a formatted message");
        assert!(
            message.contains("returns_the_value_passes_panics_on_and_fails_a_hang")
                && message.contains("sleep did not finish"),
            "{message}"
        );
    }
}
