//! Things drawn into each captured frame before change detection: the pointer and a
//! watermark. Drawing before hashing means an unchanged overlay costs no re-encode, and a
//! moving one dirties only the stripes it crosses (old and new position).
//!
//! `build` makes the overlays a capture's [`OverlayConfig`] names:
//! - a [`Watermark`] when `watermark_path` is set and `watermark_location` is not `None`
//!   (a path with location `None` draws nothing, as in 1.2.2);
//! - a [`CursorOverlay`] when `capture_cursor` is set and the source is an X11 display. A
//!   synthetic source has no pointer, so `capture_cursor` draws nothing there (logged once).
//!
//! The watermark is drawn first, the pointer on top of it.

mod blend;
mod cursor;
mod watermark;

pub use cursor::{CursorOverlay, CursorShape, CursorWatcher};
pub use watermark::Watermark;

use std::ops::Range;

use crate::config::OverlayConfig;
use crate::frame::Frame;
use crate::source::x11::Region;
use crate::source::{Interrupter, SourceError, SourceSpec};

/// Draws into captured frames.
pub trait Overlay: Send {
    /// Gets ready to draw frame `frame_index` of a `width` x `height` region (reads the
    /// pointer, …) and says which rows may differ from what it drew into the previous frame:
    /// the rows it covered then and covers now if it moved or changed, none if it will draw
    /// exactly the same, `None` if it cannot tell. Called once per frame, before `apply`.
    /// This lets a capture with overlays keep skipping grabs on a still screen.
    ///
    /// # Errors
    /// An [`OverlayError`] when what it draws cannot be read (the pointer's X connection
    /// broke); it ends the capture.
    fn prepare(
        &mut self,
        width: u32,
        height: u32,
        frame_index: u64,
    ) -> Result<Option<Vec<Range<u32>>>, OverlayError>;

    /// Draws into `frame`, the `frame_index`-th frame of the capture, as prepared.
    ///
    /// # Errors
    /// An [`OverlayError`]; it ends the capture.
    fn apply(&mut self, frame: &mut Frame<'_>, frame_index: u64) -> Result<(), OverlayError>;

    /// For an overlay that waits on a server (the pointer), a handle that makes a blocked
    /// `prepare` fail at once (see [`Interrupter`]). `None` (the default): it never blocks.
    fn interrupter(&self) -> Option<Interrupter> {
        None
    }

    /// The capture's region changed (a [`Control::SetRegion`](crate::Control::SetRegion) or
    /// the screen it follows); frames from the next one on are `region`-sized. The default
    /// does nothing (an overlay that places itself from the frame's size each time).
    fn set_region(&mut self, region: Region) {
        let _ = region;
    }
}

/// Where an overlay drew in one frame: its top-left corner, its height, and a tag that
/// changes whenever its picture does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Placement {
    pub x: i64,
    pub y: i64,
    pub height: u32,
    pub picture: u32,
}

/// The rows whose overlay pixels differ between drawing at `before` and at `after` (`None`:
/// not drawn): none when both are the same, else the rows of both, clipped to the frame.
pub(crate) fn changed_rows(
    before: Option<Placement>,
    after: Option<Placement>,
    frame_height: u32,
) -> Vec<Range<u32>> {
    if before == after {
        return Vec::new();
    }
    [before, after]
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let start = p.y.max(0);
            let end = (p.y + p.height as i64).min(frame_height as i64);
            (start < end).then_some(start as u32..end as u32)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(x: i64, y: i64) -> Option<Placement> {
        Some(Placement {
            x,
            y,
            height: 10,
            picture: 0,
        })
    }

    #[test]
    fn changed_rows_cover_old_and_new_places_only_when_something_moved() {
        assert!(changed_rows(at(5, 5), at(5, 5), 100).is_empty());
        assert_eq!(changed_rows(at(5, 5), at(9, 5), 100), [5..15, 5..15]);
        assert_eq!(changed_rows(at(0, 0), at(0, 95), 100), [0..10, 95..100]);
        assert_eq!(changed_rows(None, at(0, -5), 100), vec![0..5]);
        let new_picture = Some(Placement {
            picture: 1,
            ..at(5, 5).unwrap()
        });
        assert_eq!(changed_rows(at(5, 5), new_picture, 100), [5..15, 5..15]);
        assert!(changed_rows(None, at(0, 200), 100).is_empty());
    }
}

/// An overlay could not be set up or drawn.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OverlayError {
    /// The watermark file is missing, unreadable, not a PNG, or does not fit.
    #[error("watermark {path}: {reason}")]
    Watermark {
        /// The path as given.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The pointer's X connection failed: no server, no XFixes 2.0 or later
    /// ([`SourceError::MissingExtension`]), the server gone, or a request refused (the X error
    /// kept).
    #[error("cursor: {0}")]
    X(SourceError),
}

/// The overlays `config` asks for, in drawing order, for `region` of the screen `source`
/// names.
///
/// # Errors
/// [`OverlayError`] when the watermark file cannot be used or the pointer cannot be read.
pub(crate) fn build(
    config: &OverlayConfig,
    region: Region,
    source: &SourceSpec,
) -> Result<Vec<Box<dyn Overlay>>, OverlayError> {
    let mut overlays: Vec<Box<dyn Overlay>> = Vec::new();
    if let Some(watermark) = &config.watermark {
        overlays.push(Box::new(Watermark::load(
            &watermark.path,
            watermark.location,
            region.width,
            region.height,
        )?));
    }
    if config.cursor {
        match source {
            SourceSpec::X11 { display } => overlays.push(Box::new(CursorOverlay::open(
                display.as_deref(),
                region.x,
                region.y,
            )?)),
            SourceSpec::Synthetic(_) => {
                tracing::info!("capture_cursor: a synthetic source has no pointer to draw");
            }
        }
    }
    Ok(overlays)
}
