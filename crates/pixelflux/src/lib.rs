//! pixelflux: capture a region of an X11 screen, find the horizontal stripes that changed,
//! encode only those — in parallel, to JPEG or H.264 — and hand each encoded stripe to a
//! callback.
//!
//! The pipeline: a [`source`] (an X11 screen region, a synthetic [`Scene`], or a
//! [`FrameSource`] of your own) → [`overlay`]s (cursor, watermark) → change detection →
//! [`encode`] (one encoder per stripe), stepped one frame at a time by a [`Pipeline`];
//! [`ScreenCapture`] is the thread that paces it, applies live changes ([`Control`]) and hands
//! each [`Stripe`] to a callback. [`settings`] holds [`CaptureSettings`], which [`config`]
//! validates once into per-stage parts; [`wire`] documents the stripe headers.
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

#![deny(
    missing_docs,
    unsafe_op_in_unsafe_fn,
    clippy::undocumented_unsafe_blocks,
    clippy::missing_errors_doc
)]

// The public API is what a user of the capture needs; the stages inside it (change detection,
// colour conversion, x264, blending) are the crate's own.
mod capture;
pub mod config;
pub(crate) mod detect;
pub mod encode;
mod frame;
pub mod overlay;
pub mod pipeline;
pub(crate) mod scroll;
pub mod settings;
pub mod source;
pub mod wire;

pub use capture::{CaptureError, CaptureStats, CaptureStatus, ScreenCapture, StageTimes, Stripe};
pub use config::{Control, ControlError, PipelineConfig, StreamFormat};
pub use detect::StripeLayout;
#[cfg(feature = "x264")]
pub use encode::{ColorError, X264Error};
pub use encode::{EncodeError, StripeKind};
pub use frame::{Frame, FrameRef, OwnedFrame, BYTES_PER_PIXEL};
pub use overlay::{Overlay, OverlayError};
pub use pipeline::{Pipeline, TickOutput};
pub use settings::{
    CaptureSettings, Codec, JpegSubsampling, OutputMode, SettingsError, UnknownCodec,
    WatermarkLocation, WireFormat,
};
pub use source::synthetic::{Scene, UnknownScene};
pub use source::{Damage, FrameSource, SourceError, SourceSpec};

/// The README's Rust example, compiled by `cargo test --doc` (not run: it needs an X display)
/// so that it stays in step with the API.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
