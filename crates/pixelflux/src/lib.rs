//! pixelflux: capture a region of an X11 screen, find the horizontal stripes that changed,
//! encode only those — in parallel, to JPEG or H.264 — and hand each encoded stripe to a
//! callback.
//!
//! The modules follow the pipeline: [`config`] (settings validated once and split per stage)
//! → [`source`] (capture) → [`overlay`] (cursor, watermark) → [`detect`] (change detection) →
//! [`encode`], stepped one frame at a time by [`pipeline`]; [`capture`] is the thread that
//! paces it, applies live changes and delivers stripes. [`wire`] documents the stripe headers.
//! docs/ARCHITECTURE.md has the whole picture.
//!
//! ```no_run
//! use pixelflux::{CaptureSettings, ScreenCapture, SourceSpec};
//!
//! let settings = CaptureSettings { capture_width: 1280, capture_height: 720, ..Default::default() };
//! let capture = ScreenCapture::start(settings, SourceSpec::x11_default(), |stripe| {
//!     println!("frame {} y={} {} bytes", stripe.frame_id, stripe.y, stripe.data.len());
//! })?;
//! std::thread::sleep(std::time::Duration::from_secs(1));
//! if let Some(error) = capture.stop() {
//!     eprintln!("capture failed: {error}");
//! }
//! # Ok::<(), pixelflux::CaptureError>(())
//! ```

pub mod capture;
pub mod config;
pub mod detect;
pub mod encode;
pub mod frame;
pub mod overlay;
pub mod pipeline;
pub mod settings;
pub mod source;
pub mod wire;

pub use capture::{CaptureError, CaptureStats, CaptureStatus, ScreenCapture, StageTimes, Stripe};
pub use config::{Control, ControlError, PipelineConfig, StreamFormat};
pub use encode::StripeKind;
pub use frame::{Frame, FrameRef, OwnedFrame};
pub use pipeline::{Pipeline, TickOutput};
pub use settings::{
    CaptureSettings, JpegSubsampling, OutputMode, SettingsError, WatermarkLocation, WireFormat,
};
pub use source::synthetic::Scene;
pub use source::{FrameSource, SourceError, SourceSpec};

/// The README's Rust example, compiled by `cargo test --doc` (not run: it needs an X display)
/// so that it stays in step with the API.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
