//! Things drawn into each captured frame before change detection: the pointer and a
//! watermark. Drawing before hashing means an unchanged overlay costs no re-encode.

use crate::frame::Frame;
use crate::settings::CaptureSettings;
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
    let _ = (settings, source);
    Ok(Vec::new())
}
