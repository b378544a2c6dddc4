//! Things drawn into each captured frame before change detection: the pointer and a
//! watermark. Drawing before hashing means an unchanged overlay costs no re-encode, and a
//! moving one dirties only the stripes it crosses (old and new position).
//!
//! [`build`] is the one place that decides which overlays a capture gets:
//! - a [`Watermark`] when `watermark_path` is set and `watermark_location` is not `None`
//!   (a path with location `None` draws nothing, as in 1.2.2);
//! - a [`CursorOverlay`] when `capture_cursor` is set and the source is an X11 display. A
//!   synthetic source has no pointer, so `capture_cursor` draws nothing there (logged once).
//!
//! The watermark is drawn first, the pointer on top of it.

mod blend;
pub mod cursor;
pub mod watermark;

pub use blend::PremultipliedImage;
pub use cursor::CursorOverlay;
pub use watermark::Watermark;

use crate::frame::Frame;
use crate::settings::{CaptureSettings, WatermarkLocation};
use crate::source::SourceSpec;

/// Draws into captured frames.
pub trait Overlay: Send {
    /// Draws into `frame`, the `frame_index`-th frame of the capture.
    fn apply(&mut self, frame: &mut Frame<'_>, frame_index: u64) -> Result<(), OverlayError>;
}

/// An overlay could not be set up or drawn.
#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    /// The watermark file is missing, unreadable, not a PNG, or does not fit.
    #[error("watermark {path}: {reason}")]
    Watermark {
        /// The path as given.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The cursor could not be read from the X server.
    #[error("cursor: {0}")]
    Cursor(String),
}

/// The overlays the settings ask for, in drawing order.
pub fn build(
    settings: &CaptureSettings,
    source: &SourceSpec,
) -> Result<Vec<Box<dyn Overlay>>, OverlayError> {
    let mut overlays: Vec<Box<dyn Overlay>> = Vec::new();
    if let Some(path) = &settings.watermark_path {
        if settings.watermark_location != WatermarkLocation::None {
            overlays.push(Box::new(Watermark::load(
                path,
                settings.watermark_location,
                settings.capture_width,
                settings.capture_height,
            )?));
        }
    }
    if settings.capture_cursor {
        match source {
            SourceSpec::X11 { display } => overlays.push(Box::new(CursorOverlay::open(
                display.as_deref(),
                settings.capture_x,
                settings.capture_y,
            )?)),
            SourceSpec::Synthetic(_) => {
                tracing::info!("capture_cursor: a synthetic source has no pointer to draw");
            }
        }
    }
    Ok(overlays)
}
