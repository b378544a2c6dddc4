//! Drawing known pixels into an X server's root window (tests draw what they then capture;
//! the benchmark's scene driver draws a scene's frames).

use pixelflux::OwnedFrame;
use x11rb::connection::{Connection, RequestConnection};
use x11rb::protocol::xproto::{ConnectionExt as _, CreateGCAux, ImageFormat};
use x11rb::rust_connection::RustConnection;

use crate::Error;

/// Draws into the root window of an X display.
pub struct Painter {
    /// The connection (tests use it for requests of their own, such as XTest).
    pub conn: RustConnection,
    /// The root window of the display's screen.
    pub root: u32,
    gc: u32,
    depth: u8,
    max_request_bytes: usize,
}

impl Painter {
    /// Connects to `display` (`None`: `$DISPLAY`).
    ///
    /// # Errors
    /// [`Error::Connect`] when the server cannot be reached; others when it refuses to create
    /// a graphics context.
    pub fn connect(display: Option<&str>) -> Result<Self, Error> {
        let (conn, screen) = x11rb::connect(display).map_err(|source| Error::Connect {
            display: display.map(str::to_owned),
            source,
        })?;
        let s = conn
            .setup()
            .roots
            .get(screen)
            .ok_or_else(|| Error::Request(format!("the X server has no screen {screen}")))?;
        let (root, depth) = (s.root, s.root_depth);
        let gc = conn
            .generate_id()
            .map_err(|e| Error::Request(format!("no X id for a GC: {e}")))?;
        conn.create_gc(gc, root, &CreateGCAux::new())?.check()?;
        // BIG-REQUESTS lets a whole 1080p frame go in one request on Xvfb.
        let max_request_bytes = conn.maximum_request_bytes();
        Ok(Self {
            conn,
            root,
            gc,
            depth,
            max_request_bytes,
        })
    }

    /// [`Painter::connect`] to `display`.
    ///
    /// # Panics
    /// When it fails.
    pub fn new(display: &str) -> Self {
        Self::connect(Some(display)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Rows of a `width`-pixel image that fit one PutImage request.
    pub fn rows_per_request(&self, width: u32) -> u32 {
        // 24 bytes of PutImage header, 4 more in the BIG-REQUESTS form.
        let stride = (width as usize * 4).max(1);
        u32::try_from(self.max_request_bytes.saturating_sub(32) / stride)
            .unwrap_or(u32::MAX)
            .max(1)
    }

    /// Puts rows `y0 .. y1` of `frame` at (`x`, `y + y0`) of the root window, in as few
    /// requests as fit (one when the rows fit one request, so the server applies them at once
    /// and a grab never sees half of them), and waits until the server has applied them.
    ///
    /// # Errors
    /// When a position or size is out of the protocol's range, or the server fails.
    pub fn put_rows(
        &self,
        frame: &OwnedFrame,
        x: i16,
        y: i16,
        (y0, y1): (u32, u32),
    ) -> Result<(), Error> {
        let stride = frame.stride();
        let range = |what| move |_| Error::Request(format!("{what} out of the X11 range"));
        let width = u16::try_from(frame.width).map_err(range("width"))?;
        for (row, h) in bands(y0, y1.min(frame.height), self.rows_per_request(frame.width)) {
            let start = row as usize * stride;
            let end = start + h as usize * stride;
            let dst_y = i16::try_from(i64::from(y) + i64::from(row)).map_err(range("y"))?;
            self.conn.put_image(
                ImageFormat::Z_PIXMAP,
                self.root,
                self.gc,
                width,
                u16::try_from(h).map_err(range("height"))?,
                x,
                dst_y,
                0,
                self.depth,
                &frame.data[start..end],
            )?;
        }
        // A round trip: every request before it has been processed.
        self.conn.get_input_focus()?.reply()?;
        Ok(())
    }

    /// Puts a whole BGRX frame at (`x`, `y`) of the root window and waits until it is there.
    ///
    /// # Panics
    /// When the server fails.
    pub fn put(&self, frame: &OwnedFrame, x: i16, y: i16) {
        self.put_rows(frame, x, y, (0, frame.height))
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Fills a rectangle with one colour (0xRRGGBB) and waits until it is there.
    ///
    /// # Panics
    /// When the server fails.
    pub fn fill(&self, x: i16, y: i16, w: u16, h: u16, rgb: u32) {
        let mut f = OwnedFrame::new(u32::from(w), u32::from(h));
        let [_, r, g, b] = rgb.to_be_bytes();
        for px in f.data.chunks_exact_mut(4) {
            px.copy_from_slice(&[b, g, r, 0]);
        }
        self.put(&f, x, y);
    }

    /// Waits for the server to have processed everything sent so far.
    ///
    /// # Panics
    /// When the server has gone.
    pub fn sync(&self) {
        let reply = self
            .conn
            .get_input_focus()
            .map_err(Error::from)
            .and_then(|cookie| Ok(cookie.reply()?));
        if let Err(e) = reply {
            panic!("X sync failed: {e}");
        }
    }
}

/// Splits rows `y0 .. y1` into bands of at most `max_rows` rows: `(first row, rows)`.
pub fn bands(y0: u32, y1: u32, max_rows: u32) -> Vec<(u32, u32)> {
    let max_rows = max_rows.max(1);
    let mut out = Vec::new();
    let mut y = y0;
    while y < y1 {
        let h = max_rows.min(y1 - y);
        out.push((y, h));
        y += h;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_cover_the_range_exactly() {
        assert_eq!(bands(0, 10, 4), vec![(0, 4), (4, 4), (8, 2)]);
        assert_eq!(bands(5, 6, 100), vec![(5, 1)]);
        assert!(bands(3, 3, 4).is_empty());
        assert_eq!(bands(0, 2, 0), vec![(0, 1), (1, 1)]);
    }

    #[test]
    fn painted_pixels_read_back_from_xvfb() {
        let xvfb = crate::Xvfb::start(64, 32);
        let painter = xvfb.connect();
        let mut frame = crate::test_pattern(48, 20, 3);
        frame.data.chunks_exact_mut(4).for_each(|px| px[3] = 0);
        painter.put(&frame, 8, 6);
        painter.fill(0, 0, 4, 2, 0x123456);
        let got = painter
            .conn
            .get_image(ImageFormat::Z_PIXMAP, painter.root, 0, 0, 64, 32, !0)
            .unwrap()
            .reply()
            .unwrap();
        let px = |x: usize, y: usize| &got.data[(y * 64 + x) * 4..][..3];
        assert_eq!(px(1, 1), &[0x56, 0x34, 0x12]);
        for (y, x) in [(0, 0), (19, 47), (7, 30)] {
            let i = (y * 48 + x) * 4;
            assert_eq!(px(x + 8, y + 6), &frame.data[i..i + 3], "({x}, {y})");
        }
        // No server at this number (x11rb adds it to the TCP port base: keep it under 59536).
        assert!(Painter::connect(Some(":59000")).is_err());
    }
}
