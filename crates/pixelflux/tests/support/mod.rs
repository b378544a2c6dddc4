//! Test harness shared by the integration tests. The private Xvfb, drawing known pixels into
//! it, the decoders and PSNR come from `pixelflux-testkit` (one copy for the core tests, the
//! benchmark and serve); what is here is about running this crate's capture.
#![allow(dead_code)]

mod deadline;
#[allow(unused_imports)] // not every test binary has a step to bound
pub use deadline::within;

use std::time::{Duration, Instant};

use std::sync::{Arc, Mutex};

use pixelflux::{CaptureError, CaptureSettings, ScreenCapture, SourceSpec, Stripe};

pub use pixelflux_testkit::*;

/// Waits until `cond` holds or `timeout` passes; returns whether it held.
pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < timeout {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    cond()
}

/// Every stripe a capture delivered, in order.
pub type Log = Arc<Mutex<Vec<Stripe>>>;

/// Starts a capture of `spec` whose callback logs every stripe.
pub fn start_logged(
    spec: SourceSpec,
    settings: CaptureSettings,
) -> Result<(ScreenCapture, Log), CaptureError> {
    let log: Log = Arc::default();
    let sink = Arc::clone(&log);
    let cap = ScreenCapture::start(settings, spec, move |s| sink.lock().unwrap().push(s))?;
    Ok((cap, log))
}

/// Starts a capture of the Xvfb's screen whose callback logs every stripe.
pub fn start(xvfb: &Xvfb, settings: CaptureSettings) -> (ScreenCapture, Log) {
    let spec = SourceSpec::X11 {
        display: Some(xvfb.display.clone()),
    };
    start_logged(spec, settings).expect("capture starts")
}

/// Waits until the capture has grabbed `n` more frames.
pub fn frames_pass(cap: &ScreenCapture, n: u64) {
    let target = cap.stats().frames + n;
    assert!(
        wait_for(Duration::from_secs(20), || cap.stats().frames >= target),
        "capture stalled"
    );
}
