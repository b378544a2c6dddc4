//! The pointer, blended into each frame of an X11 capture.
//!
//! X servers leave the cursor out of screen grabs (it is a hardware or software sprite), so
//! we draw it ourselves: the image comes from XFixes (premultiplied ARGB plus a hotspot) and
//! is fetched again only when XFixes reports that the cursor changed; the position is asked
//! for every frame. The image goes at pointer position minus hotspot (pixelflux 1.2.2 drew it
//! at the pointer position, so every cursor appeared shifted down and to the right), in
//! region coordinates, clipped to the frame.
//!
//! What the screen shows is drawn, as far as X tells: an application that hides the pointer
//! by defining an invisible cursor (a blank pixmap, the usual way) gets a fully transparent
//! image from XFixes, which draws nothing and re-sends no stripes when the pointer moves. An
//! application that calls XFixes `HideCursor` instead is not visible to other clients: the
//! server keeps reporting the cursor it hides (xserver's `xfixes/cursor.c` tracks the current
//! cursor whether or not it is shown, and no event or request says it is hidden), so that
//! pointer is still drawn. The first frame has the pointer where it is, moved or not: the
//! image and the position are asked for before it is drawn.

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

/// One X cursor image as XFixes reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorShape {
    /// Width in pixels (at least 1).
    pub width: u32,
    /// Height in pixels (at least 1).
    pub height: u32,
    /// The hotspot (the pixel that sits at the pointer position), inside the image.
    pub xhot: u32,
    /// The hotspot's row, inside the image.
    pub yhot: u32,
    /// The server's serial number of this cursor (a new one for each shape).
    pub serial: u32,
    /// Premultiplied ARGB (alpha in the top byte), `width * height` pixels row by row.
    pub argb: Vec<u32>,
}

impl CursorShape {
    /// Whether any pixel is not fully transparent. Applications hide the pointer by defining
    /// an invisible cursor (a blank pixmap), which XFixes reports as a transparent image.
    pub fn is_visible(&self) -> bool {
        self.argb.iter().any(|p| p >> 24 != 0)
    }

    /// The pixels as straight-alpha RGBA bytes (what browsers and PNG files take).
    pub fn to_rgba(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.argb.len() * 4);
        for &p in &self.argb {
            let [a, r, g, b] = p.to_be_bytes();
            let un = |c: u8| -> u8 {
                (u32::from(c) * 255 + u32::from(a) / 2)
                    .checked_div(u32::from(a))
                    .map_or(0, |v| u8::try_from(v).unwrap_or(u8::MAX))
            };
            out.extend_from_slice(&[un(r), un(g), un(b), a]);
        }
        out
    }

    /// A shape from an XFixes reply; `None` (and a warning) for an empty or malformed one.
    fn from_reply(reply: xfixes::GetCursorImageReply) -> Option<Self> {
        let (w, h) = (u32::from(reply.width), u32::from(reply.height));
        let n = (w as usize) * (h as usize);
        if n == 0 || reply.cursor_image.len() != n {
            tracing::warn!(
                "cursor image of {w}x{h} came with {} pixels; not drawing it",
                reply.cursor_image.len()
            );
            return None;
        }
        tracing::debug!(
            "cursor changed: {w}x{h}, hotspot ({}, {}), serial {}",
            reply.xhot,
            reply.yhot,
            reply.cursor_serial
        );
        Some(Self {
            width: w,
            height: h,
            xhot: u32::from(reply.xhot).min(w - 1),
            yhot: u32::from(reply.yhot).min(h - 1),
            serial: reply.cursor_serial,
            argb: reply.cursor_image,
        })
    }
}

/// Follows the X cursor's shape: a connection of its own to the display, subscribed to
/// XFixes cursor notifications. The one cursor follower behind the `capture_cursor` overlay,
/// `serve`'s browser-drawn pointer and Python's cursor callback.
pub struct CursorWatcher {
    conn: RustConnection,
    root: Window,
}

impl std::fmt::Debug for CursorWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CursorWatcher")
            .field("root", &self.root)
            .finish()
    }
}

impl CursorWatcher {
    /// Connects to `display` (`None`: `$DISPLAY`), checks for XFixes 2.0 or later (cursor
    /// images and notifications) and subscribes to cursor changes.
    ///
    /// # Errors
    /// [`SourceError`] when the display cannot be reached, has no such screen, lacks XFixes
    /// 2.0 ([`SourceError::MissingExtension`]) or refuses the subscription.
    pub fn open(display: Option<&str>) -> Result<Self, crate::SourceError> {
        let (conn, root, major) = x11::connect_xfixes(display)?;
        if major < 2 {
            return Err(crate::SourceError::MissingExtension("XFIXES 2.0"));
        }
        conn.xfixes_select_cursor_input(root, CursorNotifyMask::DISPLAY_CURSOR)
            .map_err(x11::gone)?
            .check()
            .map_err(x11::reply_err("XFixesSelectCursorInput"))?;
        Ok(Self { conn, root })
    }

    /// Whether the server reported a cursor change among the events that arrived so far
    /// (does not wait).
    ///
    /// # Errors
    /// [`SourceError::ServerGone`](crate::SourceError::ServerGone) when the connection broke.
    pub fn changed(&self) -> Result<bool, crate::SourceError> {
        let mut changed = false;
        while let Some(event) = self.conn.poll_for_event().map_err(x11::gone)? {
            changed |= Self::is_change(event);
        }
        Ok(changed)
    }

    /// Waits until the server reports a cursor change.
    ///
    /// # Errors
    /// [`SourceError::ServerGone`](crate::SourceError::ServerGone) when the connection broke.
    pub fn wait_for_change(&self) -> Result<(), crate::SourceError> {
        while !Self::is_change(self.conn.wait_for_event().map_err(x11::gone)?) {}
        Ok(())
    }

    fn is_change(event: Event) -> bool {
        match event {
            Event::XfixesCursorNotify(_) => true,
            Event::Error(e) => {
                tracing::debug!("X error on the cursor connection: {e:?}");
                false
            }
            _ => false,
        }
    }

    /// The current cursor; `None` when it cannot be known: an empty or malformed image, or
    /// one the server will not show. Callers keep the last shape they had.
    ///
    /// X.Org (seen on Debian's Xvfb 21.1.7-3+deb12u13) answers `BadAccess` for a cursor
    /// whose client has disconnected: `xsetroot -cursor_name left_ptr`, the classic
    /// `.xinitrc` line, leaves the root window such a cursor. That is a fact about this
    /// cursor, not a broken connection, so it ends nothing.
    ///
    /// # Errors
    /// [`SourceError::ServerGone`](crate::SourceError::ServerGone) when the connection broke.
    pub fn shape(&self) -> Result<Option<CursorShape>, crate::SourceError> {
        let reply = self
            .conn
            .xfixes_get_cursor_image()
            .map_err(x11::gone)?
            .reply();
        match reply {
            Ok(reply) => Ok(CursorShape::from_reply(reply)),
            Err(ReplyError::X11Error(e)) => {
                tracing::debug!(
                    "the X server will not show the cursor image ({:?}); keeping the last one",
                    e.error_kind
                );
                Ok(None)
            }
            Err(ReplyError::ConnectionError(e)) => Err(x11::gone(e)),
        }
    }

    /// A handle that breaks a blocked request on this connection (see [`Interrupter`]).
    pub fn interrupter(&self) -> Option<Interrupter> {
        Interrupter::for_socket(self.conn.stream().as_fd()).ok()
    }
}

/// The cursor image and its hotspot (the pixel that sits at the pointer position).
#[derive(Debug, Clone)]
struct CursorImage {
    image: PremultipliedImage,
    xhot: i64,
    yhot: i64,
    serial: u32,
    /// Whether any pixel is not fully transparent (an invisible cursor draws nothing).
    visible: bool,
}

/// Draws the X pointer into frames; holds a connection of its own to the captured display.
pub struct CursorOverlay {
    watcher: CursorWatcher,
    /// Screen coordinates of the region's top-left corner.
    origin: (i64, i64),
    image: Option<CursorImage>,
    /// Whether the server told us the cursor changed since we last fetched it.
    stale: bool,
    /// Where `prepare` placed the image for this frame (region coordinates), `None` when
    /// the pointer is on another screen, there is no image or it is fully transparent.
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
    /// XFixes 2.0, or a request fails.
    pub fn open(display: Option<&str>, origin_x: i32, origin_y: i32) -> Result<Self, OverlayError> {
        Ok(Self {
            watcher: CursorWatcher::open(display).map_err(OverlayError::X)?,
            origin: (origin_x as i64, origin_y as i64),
            image: None,
            stale: true,
            placed: None,
            drawn: None,
        })
    }
}

/// The overlay's form of a shape: premultiplied for blending.
fn cursor_image(shape: &CursorShape) -> Option<CursorImage> {
    Some(CursorImage {
        image: PremultipliedImage::from_premultiplied_argb(shape.width, shape.height, &shape.argb)?,
        xhot: i64::from(shape.xhot),
        yhot: i64::from(shape.yhot),
        serial: shape.serial,
        visible: shape.is_visible(),
    })
}

impl Overlay for CursorOverlay {
    fn interrupter(&self) -> Option<Interrupter> {
        self.watcher.interrupter()
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
        // The pointer request goes out first; a shape fetched meanwhile shares its round trip.
        let conn = &self.watcher.conn;
        let pointer = conn.query_pointer(self.watcher.root).map_err(gone)?;
        self.stale |= self.watcher.changed().map_err(OverlayError::X)?;
        if self.stale {
            // A cursor that cannot be known leaves the last one drawn.
            let shape = self.watcher.shape().map_err(OverlayError::X)?;
            if let Some(image) = shape.as_ref().and_then(cursor_image) {
                self.image = Some(image);
            }
            self.stale = false;
        }
        let pointer = pointer.reply().map_err(reply_err("QueryPointer"))?;
        // A pointer on another screen of a multi-screen display is not drawn.
        self.placed = match &self.image {
            Some(cursor) if pointer.same_screen && cursor.visible => Some((
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn premultiplied_argb_becomes_straight_rgba_and_transparency_is_invisible() {
        let shape = |argb: Vec<u32>| CursorShape {
            width: argb.len() as u32,
            height: 1,
            xhot: 0,
            yhot: 0,
            serial: 1,
            argb,
        };
        let s = shape(vec![0xff10_2030, 0x0000_0000, 0x8040_2000]);
        assert_eq!(
            s.to_rgba(),
            vec![0x10, 0x20, 0x30, 0xff, 0, 0, 0, 0, 0x80, 0x40, 0, 0x80]
        );
        assert!(s.is_visible());
        assert!(!shape(vec![0; 4]).is_visible());
        // Bad premultiplication (a colour above its alpha) saturates instead of wrapping.
        assert_eq!(shape(vec![0x01ff_ffff]).to_rgba(), vec![255, 255, 255, 1]);
    }
}
