//! The pointer, blended into each frame of an X11 capture.
//!
//! X servers leave the cursor out of screen grabs (it is a hardware or software sprite), so
//! we draw it ourselves: the image comes from XFixes (premultiplied ARGB plus a hotspot) and
//! is fetched again only when XFixes reports that the cursor changed; the position is asked
//! for every frame. The image goes at pointer position minus hotspot (pixelflux 1.2.2 drew it
//! at the pointer position, so every cursor appeared shifted down and to the right), in
//! region coordinates, clipped to the frame.

use std::ops::Range;
use std::os::fd::AsFd as _;

use x11rb::connection::Connection;
use x11rb::protocol::xfixes::{self, ConnectionExt as _, CursorNotifyMask};
use x11rb::protocol::xproto::{ConnectionExt as _, Window};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;

use x11rb::errors::{ConnectionError, ReplyError};

use super::blend::PremultipliedImage;
use super::{changed_rows, Overlay, OverlayError, Placement};
use crate::frame::Frame;
use crate::source::x11::Region;
use crate::source::{x11, Interrupter};

/// The cursor image and its hotspot (the pixel that sits at the pointer position).
#[derive(Debug, Clone)]
struct CursorImage {
    image: PremultipliedImage,
    xhot: i64,
    yhot: i64,
    serial: u32,
}

/// Draws the X pointer into frames; holds a connection of its own to the captured display.
pub struct CursorOverlay {
    conn: RustConnection,
    root: Window,
    /// Screen coordinates of the region's top-left corner.
    origin: (i64, i64),
    image: Option<CursorImage>,
    /// Whether the server told us the cursor changed since we last fetched it.
    stale: bool,
    /// Where `prepare` placed the image for this frame (region coordinates), `None` when
    /// the pointer is on another screen or there is no image.
    placed: Option<(i64, i64)>,
    /// Where the previous frame's pointer was drawn.
    drawn: Option<Placement>,
}

impl std::fmt::Debug for CursorOverlay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CursorOverlay")
            .field("origin", &self.origin)
            .field("serial", &self.image.as_ref().map(|i| i.serial))
            .finish()
    }
}

/// The cursor connection broke: the server went away.
fn gone(e: ConnectionError) -> OverlayError {
    OverlayError::X(x11::gone(e))
}

/// A cursor request failed: the server gone, or its error for `request`.
fn reply_err(request: &'static str) -> impl Fn(ReplyError) -> OverlayError {
    move |e| OverlayError::X(x11::reply_err(request)(e))
}

impl CursorOverlay {
    /// Connects to `display` (`None`: `$DISPLAY`), checks for XFixes and subscribes to cursor
    /// changes. `origin_x`/`origin_y` is the capture region's corner on the screen.
    ///
    /// # Errors
    /// [`OverlayError::X`] when the display cannot be reached, has no such screen or lacks
    /// XFixes, or a request fails; [`OverlayError::Cursor`] when XFixes is older than 2.0.
    pub fn open(display: Option<&str>, origin_x: i32, origin_y: i32) -> Result<Self, OverlayError> {
        let (conn, root, major) = x11::connect_xfixes(display).map_err(OverlayError::X)?;
        // 2.0 is the version that has cursor images and CursorNotify.
        if major < 2 {
            return Err(OverlayError::Cursor(format!(
                "XFixes {major} is too old (need 2.0)"
            )));
        }
        conn.xfixes_select_cursor_input(root, CursorNotifyMask::DISPLAY_CURSOR)
            .map_err(gone)?
            .check()
            .map_err(reply_err("XFixesSelectCursorInput"))?;
        Ok(Self {
            conn,
            root,
            origin: (origin_x as i64, origin_y as i64),
            image: None,
            stale: true,
            placed: None,
            drawn: None,
        })
    }
}

/// Whether the server reported a cursor change among the events that arrived so far.
fn cursor_changed(conn: &RustConnection) -> Result<bool, OverlayError> {
    let mut changed = false;
    while let Some(event) = conn.poll_for_event().map_err(gone)? {
        match event {
            Event::XfixesCursorNotify(_) => changed = true,
            Event::Error(e) => tracing::debug!("X error on the cursor connection: {e:?}"),
            _ => {}
        }
    }
    Ok(changed)
}

/// Converts a GetCursorImage reply; `None` (and a warning) for a malformed one.
fn cursor_image(reply: xfixes::GetCursorImageReply) -> Option<CursorImage> {
    let (w, h) = (reply.width as u32, reply.height as u32);
    let Some(image) = PremultipliedImage::from_premultiplied_argb(w, h, &reply.cursor_image) else {
        tracing::warn!(
            "cursor image of {w}x{h} came with {} pixels; not drawing it",
            reply.cursor_image.len()
        );
        return None;
    };
    tracing::debug!(
        "cursor changed: {w}x{h}, hotspot ({}, {}), serial {}",
        reply.xhot,
        reply.yhot,
        reply.cursor_serial
    );
    Some(CursorImage {
        image,
        xhot: reply.xhot as i64,
        yhot: reply.yhot as i64,
        serial: reply.cursor_serial,
    })
}

impl Overlay for CursorOverlay {
    fn interrupter(&self) -> Option<Interrupter> {
        Interrupter::for_socket(self.conn.stream().as_fd()).ok()
    }

    fn set_region(&mut self, region: Region) {
        self.origin = (region.x as i64, region.y as i64);
        // Nothing of the old frame is kept: the next one is drawn afresh.
        self.drawn = None;
    }

    fn prepare(
        &mut self,
        _width: u32,
        height: u32,
        frame_index: u64,
    ) -> Result<Option<Vec<Range<u32>>>, OverlayError> {
        // Both requests go out before either reply is awaited: one round trip per frame.
        let pointer = self.conn.query_pointer(self.root).map_err(gone)?;
        self.stale |= cursor_changed(&self.conn)?;
        let image = if self.stale {
            Some(self.conn.xfixes_get_cursor_image().map_err(gone)?)
        } else {
            None
        };
        let pointer = pointer.reply().map_err(reply_err("QueryPointer"))?;
        if let Some(image) = image {
            let reply = image.reply().map_err(reply_err("XFixesGetCursorImage"))?;
            self.image = cursor_image(reply);
            self.stale = false;
        }
        // A pointer on another screen of a multi-screen display is not drawn.
        self.placed = match &self.image {
            Some(cursor) if pointer.same_screen => Some((
                pointer.root_x as i64 - self.origin.0 - cursor.xhot,
                pointer.root_y as i64 - self.origin.1 - cursor.yhot,
            )),
            _ => None,
        };
        let now = self
            .placed
            .zip(self.image.as_ref())
            .map(|((x, y), c)| Placement {
                x,
                y,
                height: c.image.height(),
                picture: c.serial,
            });
        let rows = (frame_index > 0).then(|| changed_rows(self.drawn, now, height));
        self.drawn = now;
        Ok(rows)
    }

    fn apply(&mut self, frame: &mut Frame<'_>, _frame_index: u64) -> Result<(), OverlayError> {
        if let (Some((x, y)), Some(cursor)) = (self.placed, &self.image) {
            cursor.image.draw(frame, x, y);
        }
        Ok(())
    }
}
