//! Cursor and watermark compositing, checked end to end: a real Xvfb, a cursor defined and
//! moved through the X server, PNG files on disk, every stripe decoded with libjpeg-turbo and
//! compared with the expected composite computed here in floating point.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use pixelflux::overlay::OverlayError;
use pixelflux::{
    CaptureError, CaptureSettings, OwnedFrame, Scene, ScreenCapture, SourceSpec, Stripe,
    WatermarkLocation,
};
use support::*;
use x11rb::connection::{Connection, RequestConnection as _};
use x11rb::protocol::xfixes::ConnectionExt as _;
use x11rb::protocol::xproto::{
    ChangeWindowAttributesAux, ConnectionExt as _, CreateGCAux, Rectangle, MOTION_NOTIFY_EVENT,
};
use x11rb::protocol::xtest::ConnectionExt as _;

fn start(
    spec: SourceSpec,
    settings: CaptureSettings,
) -> Result<(ScreenCapture, Log), CaptureError> {
    start_logged(spec, settings)
}

fn x11(xvfb: &Xvfb) -> SourceSpec {
    SourceSpec::X11 {
        display: Some(xvfb.display.clone()),
    }
}

/// High quality (4:4:4 from q90 up) so decoded pixels are close to the composite; no
/// paint-over and no damage throttling, so every sent stripe is a real change.
fn settings(w: u32, h: u32) -> CaptureSettings {
    CaptureSettings {
        capture_width: w,
        capture_height: h,
        target_fps: 60.0,
        jpeg_quality: 95,
        paint_over_jpeg_quality: 95,
        damage_block_threshold: 100_000,
        ..Default::default()
    }
}

/// What a viewer sees: the stripes of a log applied in order.
struct Viewer<'a> {
    log: &'a [Stripe],
    next: usize,
    canvas: OwnedFrame,
}

impl<'a> Viewer<'a> {
    fn new(log: &'a [Stripe], w: u32, h: u32) -> Self {
        Self {
            log,
            next: 0,
            canvas: OwnedFrame::new(w, h),
        }
    }

    /// The picture after every stripe of frames `..= frame_id` (called with rising ids).
    fn at(&mut self, frame_id: u64) -> &OwnedFrame {
        let stride = self.canvas.stride();
        while let Some(s) = self.log.get(self.next).filter(|s| s.frame_id <= frame_id) {
            let img = decode_jpeg(s.payload());
            assert_eq!((img.width, img.height), (self.canvas.width, s.height));
            let start = s.y as usize * stride;
            self.canvas.data[start..start + img.data.len()].copy_from_slice(&img.data);
            self.next += 1;
        }
        &self.canvas
    }
}

/// The picture a viewer has after applying every stripe of frames `..= frame_id`.
fn canvas_at(log: &[Stripe], frame_id: u64, w: u32, h: u32) -> OwnedFrame {
    Viewer::new(log, w, h).at(frame_id).clone()
}

/// Rows of the stripes sent in frame `frame_id`.
fn sent_in(log: &[Stripe], frame_id: u64) -> Vec<u32> {
    log.iter()
        .filter(|s| s.frame_id == frame_id)
        .map(|s| s.y)
        .collect()
}

/// The first rows of the 64-row stripes a rectangle at rows `y .. y + h` touches.
fn stripes_under(y: i64, h: i64, region_h: u32) -> Vec<u32> {
    let (top, bottom) = (y.max(0), (y + h).min(region_h as i64));
    (0..region_h)
        .step_by(64)
        .filter(|&s| (s as i64) < bottom && s as i64 + 64 > top)
        .collect()
}

/// An image to composite in the test: premultiplied `[b, g, r, a]` as floats.
struct Sprite {
    w: u32,
    h: u32,
    px: Vec<[f64; 4]>,
}

impl Sprite {
    fn from_straight_rgba(w: u32, h: u32, rgba: &[u8]) -> Self {
        let px = rgba
            .chunks_exact(4)
            .map(|p| {
                let a = p[3] as f64 / 255.0;
                [
                    p[2] as f64 * a,
                    p[1] as f64 * a,
                    p[0] as f64 * a,
                    p[3] as f64,
                ]
            })
            .collect();
        Self { w, h, px }
    }

    fn from_argb(w: u32, h: u32, argb: &[u32]) -> Self {
        let px = argb
            .iter()
            .map(|&p| {
                let c = |s: u32| ((p >> s) & 0xff) as f64;
                [c(0), c(8), c(16), c(24)]
            })
            .collect();
        Self { w, h, px }
    }

    /// `background` with the sprite drawn at (x, y), clipped, in exact arithmetic.
    fn over(&self, background: &OwnedFrame, x: i64, y: i64) -> OwnedFrame {
        let mut out = background.clone();
        let stride = out.stride();
        for sy in 0..self.h as i64 {
            for sx in 0..self.w as i64 {
                let (fx, fy) = (x + sx, y + sy);
                if fx < 0 || fy < 0 || fx >= out.width as i64 || fy >= out.height as i64 {
                    continue;
                }
                let p = self.px[(sy * self.w as i64 + sx) as usize];
                let inv = 1.0 - p[3] / 255.0;
                let i = fy as usize * stride + fx as usize * 4;
                for (d, s) in out.data[i..i + 3].iter_mut().zip(p) {
                    *d = (s + *d as f64 * inv).round() as u8;
                }
            }
        }
        out
    }

    /// Squared error between `got` and the sprite composited over `background` at (x, y),
    /// over the sprite pixels `which` (indices), clipped to the frame.
    fn error_at(
        &self,
        got: &OwnedFrame,
        background: &OwnedFrame,
        (x, y): (i64, i64),
        which: impl Iterator<Item = usize>,
    ) -> f64 {
        let mut se = 0.0;
        for i in which {
            let (sx, sy) = ((i as u32 % self.w) as i64, (i as u32 / self.w) as i64);
            let (fx, fy) = (x + sx, y + sy);
            if fx < 0 || fy < 0 || fx >= got.width as i64 || fy >= got.height as i64 {
                continue;
            }
            let p = self.px[i];
            let inv = 1.0 - p[3] / 255.0;
            let bg = background.view().pixel(fx as u32, fy as u32);
            let g = got.view().pixel(fx as u32, fy as u32);
            for c in 0..3 {
                let d = g[c] as f64 - (p[c] + bg[c] as f64 * inv);
                se += d * d;
            }
        }
        se
    }

    /// Where in `got` the sprite lies, searching `candidates`: the offset whose composite
    /// over `background` is closest to `got`. A sparse set of pixels ranks the candidates
    /// first (fast even in debug builds); the best few are then compared on every pixel.
    fn locate(
        &self,
        got: &OwnedFrame,
        background: &OwnedFrame,
        candidates: impl IntoIterator<Item = (i64, i64)>,
    ) -> (i64, i64) {
        let n = self.px.len();
        let probes: Vec<usize> = (0..n).step_by((n / 64).max(1)).collect();
        let mut ranked: Vec<(f64, (i64, i64))> = candidates
            .into_iter()
            .map(|at| {
                (
                    self.error_at(got, background, at, probes.iter().copied()),
                    at,
                )
            })
            .collect();
        ranked.sort_by(|a, b| a.0.total_cmp(&b.0));
        ranked
            .iter()
            .take(16)
            .map(|&(_, at)| (self.error_at(got, background, at, 0..n), at))
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .expect("at least one candidate")
            .1
    }
}

/// Offsets within `r` pixels of (x, y).
fn around(x: i64, y: i64, r: i64) -> Vec<(i64, i64)> {
    (-r..=r)
        .flat_map(|dy| (-r..=r).map(move |dx| (x + dx, y + dy)))
        .collect()
}

/// Rectangle `x, y, w, h` of a frame, clipped to it, as a frame of its own.
fn crop(f: &OwnedFrame, x: i64, y: i64, w: u32, h: u32) -> OwnedFrame {
    let (x0, y0) = (x.max(0) as u32, y.max(0) as u32);
    let x1 = ((x + w as i64).min(f.width as i64)) as u32;
    let y1 = ((y + h as i64).min(f.height as i64)) as u32;
    let mut out = OwnedFrame::new(x1 - x0, y1 - y0);
    for row in y0..y1 {
        let src = &f.view().row(row)[x0 as usize * 4..x1 as usize * 4];
        let d = (row - y0) as usize * out.stride();
        out.data[d..d + src.len()].copy_from_slice(src);
    }
    out
}

// ---------------------------------------------------------------------------------------
// Cursor

/// The cursor this test defines: 16x16, hotspot (5, 9), red where the source bitmap is set,
/// blue elsewhere under the mask, transparent outside it. Asymmetric, so a wrong offset shows.
const HOT: (u16, u16) = (5, 9);

fn define_test_cursor(painter: &Painter) {
    let conn = &painter.conn;
    let (src, mask, gc) = (
        conn.generate_id().unwrap(),
        conn.generate_id().unwrap(),
        conn.generate_id().unwrap(),
    );
    conn.create_pixmap(1, src, painter.root, 16, 16).unwrap();
    conn.create_pixmap(1, mask, painter.root, 16, 16).unwrap();
    conn.create_gc(gc, src, &CreateGCAux::new().foreground(0))
        .unwrap();
    let rect = |x, y, width, height| Rectangle {
        x,
        y,
        width,
        height,
    };
    for pixmap in [src, mask] {
        conn.change_gc(
            gc,
            &x11rb::protocol::xproto::ChangeGCAux::new().foreground(0),
        )
        .unwrap();
        conn.poly_fill_rectangle(pixmap, gc, &[rect(0, 0, 16, 16)])
            .unwrap();
        conn.change_gc(
            gc,
            &x11rb::protocol::xproto::ChangeGCAux::new().foreground(1),
        )
        .unwrap();
        let shape: &[Rectangle] = if pixmap == mask {
            &[rect(0, 0, 12, 3), rect(0, 0, 3, 16), rect(6, 6, 8, 8)]
        } else {
            &[rect(0, 0, 12, 3), rect(8, 8, 6, 6)]
        };
        conn.poly_fill_rectangle(pixmap, gc, shape).unwrap();
    }
    let cursor = conn.generate_id().unwrap();
    conn.create_cursor(cursor, src, mask, 0xffff, 0, 0, 0, 0, 0xffff, HOT.0, HOT.1)
        .unwrap();
    conn.change_window_attributes(
        painter.root,
        &ChangeWindowAttributesAux::new().cursor(cursor),
    )
    .unwrap();
    painter.sync();
}

/// The server's current cursor image and hotspot, as XFixes reports it.
fn server_cursor(painter: &Painter) -> (Sprite, (i64, i64)) {
    let conn = &painter.conn;
    assert!(conn
        .extension_information(x11rb::protocol::xfixes::X11_EXTENSION_NAME)
        .unwrap()
        .is_some());
    conn.xfixes_query_version(5, 0).unwrap().reply().unwrap();
    let r = conn.xfixes_get_cursor_image().unwrap().reply().unwrap();
    (
        Sprite::from_argb(r.width as u32, r.height as u32, &r.cursor_image),
        (r.xhot as i64, r.yhot as i64),
    )
}

fn move_pointer(painter: &Painter, x: i16, y: i16) {
    painter
        .conn
        .xtest_fake_input(MOTION_NOTIFY_EVENT, 0, 0, painter.root, x, y, 0)
        .unwrap();
    painter.sync();
    let p = painter
        .conn
        .query_pointer(painter.root)
        .unwrap()
        .reply()
        .unwrap();
    assert_eq!((p.root_x, p.root_y), (x, y), "XTest moved the pointer");
}

#[test]
fn the_cursor_is_drawn_at_pointer_minus_hotspot_in_region_coordinates() {
    let xvfb = Xvfb::start(640, 480);
    let painter = xvfb.connect();
    let screen = test_pattern(640, 480, 5);
    painter.put(&screen, 0, 0);
    define_test_cursor(&painter);
    let (sprite, hot) = server_cursor(&painter);
    assert_eq!(hot, (HOT.0 as i64, HOT.1 as i64));
    assert_eq!((sprite.w, sprite.h), (16, 16));
    // The server built the image we asked for: red, blue, transparent.
    assert_eq!(sprite.px[0], [0.0, 0.0, 255.0, 255.0]);
    assert_eq!(sprite.px[15 * 16], [255.0, 0.0, 0.0, 255.0]);
    assert_eq!(sprite.px[15 * 16 + 15][3], 0.0);
    move_pointer(&painter, 250, 170);

    let (ox, oy, w, h) = (40, 30, 400, 300);
    let (cap, log) = start(
        x11(&xvfb),
        CaptureSettings {
            capture_x: ox,
            capture_y: oy,
            capture_cursor: true,
            ..settings(w, h)
        },
    )
    .expect("capture starts");
    frames_pass(&cap, 3);
    // Half outside the region's top-left corner: drawn clipped.
    move_pointer(&painter, 43, 33);
    frames_pass(&cap, 3);
    assert!(cap.stop().is_none());
    let log = log.lock().unwrap();

    let background = crop(&screen, ox as i64, oy as i64, w, h);
    let first = canvas_at(&log, 0, w, h);
    let at = (250 - ox as i64 - hot.0, 170 - oy as i64 - hot.1);
    assert_eq!(at, (205, 131));
    let expected = sprite.over(&background, at.0, at.1);
    let db = psnr(&first, &expected);
    assert!(db >= 38.0, "frame vs composite: {db:.1} dB");
    let db = psnr(
        &crop(&first, at.0, at.1, 16, 16),
        &crop(&expected, at.0, at.1, 16, 16),
    );
    assert!(db >= 32.0, "cursor area vs composite: {db:.1} dB");
    // No other placement fits better: not at the pointer itself (the 1.2.2 bug), not in
    // screen coordinates.
    assert_eq!(
        sprite.locate(&first, &background, around(at.0, at.1, 10)),
        at
    );

    let last_id = log.last().expect("stripes").frame_id;
    let last = canvas_at(&log, last_id, w, h);
    let at = (43 - ox as i64 - hot.0, 33 - oy as i64 - hot.1);
    assert_eq!(at, (-2, -6));
    let expected = sprite.over(&background, at.0, at.1);
    let db = psnr(&last, &expected);
    assert!(db >= 38.0, "clipped cursor: {db:.1} dB");
    assert_eq!(sprite.locate(&last, &background, around(at.0, at.1, 4)), at);
}

#[test]
fn a_cursor_change_or_move_resends_only_the_stripes_it_touches() {
    let xvfb = Xvfb::start(640, 480);
    let painter = xvfb.connect();
    let screen = test_pattern(640, 480, 6);
    painter.put(&screen, 0, 0);
    move_pointer(&painter, 100, 100);
    // Start with the server's default cursor.
    let (default_sprite, default_hot) = server_cursor(&painter);
    let (cap, log) = start(
        x11(&xvfb),
        CaptureSettings {
            capture_cursor: true,
            ..settings(640, 480)
        },
    )
    .expect("capture starts");
    frames_pass(&cap, 3);
    let n0 = log.lock().unwrap().len();
    let default_at = (100 - default_hot.0, 100 - default_hot.1);

    // A new cursor shape at the same place: the overlay hears of it through XFixes.
    define_test_cursor(&painter);
    let (sprite, hot) = server_cursor(&painter);
    frames_pass(&cap, 3);
    let n1 = log.lock().unwrap().len();
    move_pointer(&painter, 400, 300);
    frames_pass(&cap, 3);
    cap.stop();
    let log = log.lock().unwrap();

    let first = canvas_at(&log, 0, 640, 480);
    assert!(
        psnr(
            &first,
            &default_sprite.over(&screen, default_at.0, default_at.1)
        ) >= 38.0
    );

    let changed: Vec<u32> = log[n0..n1].iter().map(|s| s.y).collect();
    let mut want = stripes_under(default_at.1, default_sprite.h as i64, 480);
    want.extend(stripes_under(100 - hot.1, 16, 480));
    want.sort();
    want.dedup();
    assert_eq!(
        changed, want,
        "stripes re-sent after the cursor changed shape"
    );
    let shape_frame = log[n1 - 1].frame_id;
    let shape = canvas_at(&log, shape_frame, 640, 480);
    let at = (100 - hot.0, 100 - hot.1);
    let db = psnr(&shape, &sprite.over(&screen, at.0, at.1));
    assert!(db >= 38.0, "new cursor shape: {db:.1} dB");

    // The move: rows 91..107 (stripe 64) and 291..307 (stripe 256), nothing else.
    let moved: Vec<u32> = log[n1..].iter().map(|s| s.y).collect();
    assert_eq!(moved, [64, 256], "stripes re-sent after the pointer moved");
    let frame_ids: Vec<u64> = log[n1..].iter().map(|s| s.frame_id).collect();
    assert_eq!(frame_ids[0], frame_ids[1], "both in one frame");
    let last = canvas_at(&log, frame_ids[0], 640, 480);
    let at = (400 - hot.0, 300 - hot.1);
    let db = psnr(&last, &sprite.over(&screen, at.0, at.1));
    assert!(
        db >= 38.0,
        "after the move (old position cleared): {db:.1} dB"
    );
}

/// Where the pointer is now, in screen coordinates.
fn pointer_at(painter: &Painter) -> (i64, i64) {
    let p = painter
        .conn
        .query_pointer(painter.root)
        .unwrap()
        .reply()
        .unwrap();
    (p.root_x as i64, p.root_y as i64)
}

#[test]
fn the_first_frame_has_the_pointer_where_it_is_without_it_moving() {
    // A fresh server: nothing has moved the pointer (Xvfb puts it mid-screen) and no client
    // has defined a cursor; the overlay is told of no change before its first frame.
    let xvfb = Xvfb::start(320, 240);
    let painter = xvfb.connect();
    let screen = test_pattern(320, 240, 9);
    painter.put(&screen, 0, 0);
    let (sprite, hot) = server_cursor(&painter);
    let (px, py) = pointer_at(&painter);
    let (cap, log) = start(
        x11(&xvfb),
        CaptureSettings {
            capture_cursor: true,
            ..settings(320, 240)
        },
    )
    .expect("capture starts");
    frames_pass(&cap, 1);
    cap.stop();
    let log = log.lock().unwrap();
    assert_eq!(pointer_at(&painter), (px, py), "the pointer did not move");
    let first = canvas_at(&log, 0, 320, 240);
    let at = (px - hot.0, py - hot.1);
    let expected = sprite.over(&screen, at.0, at.1);
    let db = psnr(&first, &expected);
    assert!(db >= 38.0, "first frame vs composite: {db:.1} dB");
    assert!(
        psnr(&first, &screen) < db,
        "the pointer is drawn in the first frame"
    );
    assert_eq!(sprite.locate(&first, &screen, around(at.0, at.1, 6)), at);
}

/// An invisible cursor as applications define one: a 1-bit pixmap with an all-zero mask.
fn define_blank_cursor(painter: &Painter) {
    let conn = &painter.conn;
    let (pixmap, gc, cursor) = (
        conn.generate_id().unwrap(),
        conn.generate_id().unwrap(),
        conn.generate_id().unwrap(),
    );
    conn.create_pixmap(1, pixmap, painter.root, 8, 8).unwrap();
    conn.create_gc(gc, pixmap, &CreateGCAux::new().foreground(0))
        .unwrap();
    let all = Rectangle {
        x: 0,
        y: 0,
        width: 8,
        height: 8,
    };
    conn.poly_fill_rectangle(pixmap, gc, &[all]).unwrap();
    conn.create_cursor(cursor, pixmap, pixmap, 0, 0, 0, 0, 0, 0, 0, 0)
        .unwrap();
    conn.change_window_attributes(
        painter.root,
        &ChangeWindowAttributesAux::new().cursor(cursor),
    )
    .unwrap();
    painter.sync();
}

#[test]
fn an_invisible_cursor_draws_nothing_and_moving_it_sends_nothing() {
    let xvfb = Xvfb::start(320, 240);
    let painter = xvfb.connect();
    let screen = test_pattern(320, 240, 10);
    painter.put(&screen, 0, 0);
    define_blank_cursor(&painter);
    // What X reports for it: an image, every pixel fully transparent.
    let (sprite, _) = server_cursor(&painter);
    assert!(sprite.w > 0 && sprite.px.iter().all(|p| p[3] == 0.0));
    move_pointer(&painter, 100, 100);
    let (cap, log) = start(
        x11(&xvfb),
        CaptureSettings {
            capture_cursor: true,
            ..settings(320, 240)
        },
    )
    .expect("capture starts");
    frames_pass(&cap, 3);
    let n0 = log.lock().unwrap().len();
    move_pointer(&painter, 200, 150);
    frames_pass(&cap, 3);
    cap.stop();
    let log = log.lock().unwrap();
    // The first frame is the screen alone (as close as JPEG gets: the same as with no
    // overlay at all), and a move of the invisible pointer re-sends no stripe.
    let first = canvas_at(&log, 0, 320, 240);
    let db = psnr(&first, &screen);
    assert!(db >= 38.0, "first frame vs the bare screen: {db:.1} dB");
    let (bare, bare_log) = start(x11(&xvfb), settings(320, 240)).expect("capture starts");
    frames_pass(&bare, 1);
    bare.stop();
    let without = canvas_at(&bare_log.lock().unwrap(), 0, 320, 240);
    assert_eq!(
        first.data, without.data,
        "identical to a capture without --cursor"
    );
    assert_eq!(
        log.len(),
        n0,
        "stripes sent for an invisible pointer's move"
    );
    // Nor is any row even re-checked for it: the overlay reports no rows moved.
    let mut overlay = pixelflux::overlay::CursorOverlay::open(Some(&xvfb.display), 0, 0).unwrap();
    use pixelflux::overlay::Overlay as _;
    overlay.prepare(320, 240, 0).unwrap();
    move_pointer(&painter, 20, 30);
    assert_eq!(overlay.prepare(320, 240, 1).unwrap(), Some(vec![]));
}

#[test]
fn a_pointer_hidden_with_xfixes_hide_cursor_is_still_reported_so_still_drawn() {
    // The documented limit: XFixes HideCursor hides the pointer on the screen, but other
    // clients are told nothing (xserver's xfixes/cursor.c keeps reporting the current cursor).
    // If a server ever reports it hidden (an empty or transparent image), this fails and the
    // docs' limit goes.
    let xvfb = Xvfb::start(320, 240);
    let painter = xvfb.connect();
    let screen = test_pattern(320, 240, 11);
    painter.put(&screen, 0, 0);
    define_test_cursor(&painter);
    move_pointer(&painter, 150, 100);
    let (visible, hot) = server_cursor(&painter);
    painter.conn.xfixes_hide_cursor(painter.root).unwrap();
    painter.sync();
    let (reported, hot_hidden) = server_cursor(&painter);
    assert_eq!(hot_hidden, hot);
    assert_eq!(
        reported.px, visible.px,
        "XFixes reports the hidden cursor unchanged"
    );
    let (cap, log) = start(
        x11(&xvfb),
        CaptureSettings {
            capture_cursor: true,
            ..settings(320, 240)
        },
    )
    .expect("capture starts");
    frames_pass(&cap, 1);
    cap.stop();
    let first = canvas_at(&log.lock().unwrap(), 0, 320, 240);
    let at = (150 - hot.0, 100 - hot.1);
    let db = psnr(&first, &visible.over(&screen, at.0, at.1));
    assert!(db >= 38.0, "drawn although hidden: {db:.1} dB");
    painter.conn.xfixes_show_cursor(painter.root).unwrap();
    painter.sync();
}

#[test]
fn a_cursor_whose_client_has_gone_ends_nothing_and_the_last_one_stays_drawn() {
    // X.Org refuses (BadAccess) the image of a cursor whose client disconnected: what
    // `xsetroot -cursor_name left_ptr` leaves on the root window. It used to end the capture.
    let xvfb = Xvfb::start(320, 240);
    let painter = xvfb.connect();
    painter.put(&test_pattern(320, 240, 12), 0, 0);
    define_test_cursor(&painter);
    move_pointer(&painter, 150, 100);
    let (visible, hot) = server_cursor(&painter);
    let (cap, log) = start(
        x11(&xvfb),
        CaptureSettings {
            capture_cursor: true,
            ..settings(320, 240)
        },
    )
    .expect("capture starts");
    frames_pass(&cap, 2);
    let watcher = pixelflux::overlay::CursorWatcher::open(Some(&xvfb.display)).unwrap();
    {
        let gone = xvfb.connect();
        define_blank_cursor(&gone);
    }
    // Whether this server refuses it (it did on Debian's Xvfb 21.1.7-3+deb12u13): the
    // last cursor drawn stays when it does, the new (invisible) one is drawn when not.
    let refused = wait_for(Duration::from_secs(5), || {
        painter
            .conn
            .xfixes_get_cursor_image()
            .unwrap()
            .reply()
            .is_err()
    });
    let shape = watcher.shape().expect("a refused image is not an error");
    assert_eq!(
        shape.is_none(),
        refused,
        "refused: {refused}, shape: {shape:?}"
    );
    let screen = test_pattern(320, 240, 13);
    painter.put(&screen, 0, 0);
    frames_pass(&cap, 3);
    assert!(
        cap.error().is_none(),
        "the capture ended: {:?}",
        cap.error()
    );
    let last = cap.stats().frames;
    cap.stop();
    let canvas = canvas_at(&log.lock().unwrap(), last, 320, 240);
    let at = (150 - hot.0, 100 - hot.1);
    let expected = if refused {
        visible.over(&screen, at.0, at.1)
    } else {
        screen.clone()
    };
    let db = psnr(&canvas, &expected);
    assert!(db >= 38.0, "refused: {refused}: {db:.1} dB");
}

#[test]
fn capture_cursor_on_a_synthetic_source_draws_nothing() {
    let run = |cursor: bool| {
        let (cap, log) = start(
            SourceSpec::Synthetic(Scene::Static),
            CaptureSettings {
                capture_cursor: cursor,
                ..settings(256, 128)
            },
        )
        .expect("starts");
        frames_pass(&cap, 3);
        assert!(cap.stop().is_none());
        let log = log.lock().unwrap();
        log.iter().map(|s| s.data.clone()).collect::<Vec<_>>()
    };
    assert_eq!(run(true), run(false));
}

// ---------------------------------------------------------------------------------------
// Watermark

/// A 48x32 straight-alpha RGBA test logo: opaque, half and mostly transparent thirds over
/// colour gradients, so every pixel position is distinguishable.
fn logo() -> (u32, u32, Vec<u8>) {
    let (w, h) = (48u32, 32u32);
    let mut rgba = Vec::new();
    for y in 0..h {
        for x in 0..w {
            let a = match x {
                0..=15 => 255,
                16..=31 => 140,
                _ => 60,
            };
            let a = if (x + y) % 9 == 0 { 0 } else { a };
            rgba.extend_from_slice(&[(x * 5) as u8, (y * 7) as u8, (250 - x * 3) as u8, a]);
        }
    }
    (w, h, rgba)
}

fn write_png(path: &Path, w: u32, h: u32, rgba: &[u8]) {
    let file = std::fs::File::create(path).unwrap();
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w, h);
    enc.set_color(png::ColorType::Rgba);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().unwrap();
    writer.write_image_data(rgba).unwrap();
}

fn logo_file(dir: &tempfile::TempDir) -> (PathBuf, Sprite) {
    let (w, h, rgba) = logo();
    let path = dir.path().join("logo.png");
    write_png(&path, w, h, &rgba);
    (path, Sprite::from_straight_rgba(w, h, &rgba))
}

#[test]
fn each_fixed_location_puts_the_png_in_place_and_never_resends() {
    let (w, h) = (320, 192);
    let xvfb = Xvfb::start(w, h);
    let painter = xvfb.connect();
    let screen = test_pattern(w, h, 7);
    painter.put(&screen, 0, 0);
    let dir = tempfile::tempdir().unwrap();
    let (path, sprite) = logo_file(&dir);
    let (rx, by) = ((w - 48) as i64, (h - 32) as i64);
    for (location, at) in [
        (WatermarkLocation::TopLeft, (0, 0)),
        (WatermarkLocation::TopRight, (rx, 0)),
        (WatermarkLocation::BottomLeft, (0, by)),
        (WatermarkLocation::BottomRight, (rx, by)),
        (WatermarkLocation::Middle, (rx / 2, by / 2)),
    ] {
        let (cap, log) = start(
            x11(&xvfb),
            CaptureSettings {
                watermark_path: Some(path.clone()),
                watermark_location: location,
                ..settings(w, h)
            },
        )
        .expect("capture starts");
        frames_pass(&cap, 20);
        assert!(cap.stop().is_none());
        let log = log.lock().unwrap();
        // A fixed watermark on a static screen: the first frame only.
        let later: Vec<(u64, u32)> = log
            .iter()
            .filter(|s| s.frame_id > 0)
            .map(|s| (s.frame_id, s.y))
            .collect();
        assert!(later.is_empty(), "{location:?} re-sent {later:?}");
        let got = canvas_at(&log, 0, w, h);
        let expected = sprite.over(&screen, at.0, at.1);
        let db = psnr(&got, &expected);
        assert!(db >= 38.0, "{location:?}: {db:.1} dB");
        let db = psnr(
            &crop(&got, at.0, at.1, 48, 32),
            &crop(&expected, at.0, at.1, 48, 32),
        );
        assert!(db >= 35.0, "{location:?} logo area: {db:.1} dB");
        let candidates = (0..=rx).flat_map(|x| (0..=by).map(move |y| (x, y)));
        assert_eq!(sprite.locate(&got, &screen, candidates), at, "{location:?}");
    }
}

#[test]
fn the_animated_watermark_bounces_inside_the_region_dirtying_only_its_stripes() {
    let (w, h) = (160, 128);
    let xvfb = Xvfb::start(w, h);
    let painter = xvfb.connect();
    let screen = test_pattern(w, h, 8);
    painter.put(&screen, 0, 0);
    let dir = tempfile::tempdir().unwrap();
    let (path, sprite) = logo_file(&dir);
    let (cap, log) = start(
        x11(&xvfb),
        CaptureSettings {
            watermark_path: Some(path),
            watermark_location: WatermarkLocation::Animated,
            ..settings(w, h)
        },
    )
    .expect("capture starts");
    // Room: 112 x 96 pixels at 2 a frame; 130 frames cross both axes and come back.
    frames_pass(&cap, 130);
    cap.stop();
    let log = log.lock().unwrap();
    let (room_x, room_y) = ((w - 48) as i64, (h - 32) as i64);
    let everywhere: Vec<(i64, i64)> = (0..=room_x)
        .flat_map(|x| (0..=room_y).map(move |y| (x, y)))
        .collect();
    let mut positions = Vec::new();
    let mut viewer = Viewer::new(&log, w, h);
    for f in 0..=125u64 {
        let sent = sent_in(&log, f);
        assert!(
            !sent.is_empty(),
            "frame {f}: the watermark moves every frame"
        );
        if f % 5 != 0 && !(45..=60).contains(&f) {
            continue;
        }
        let canvas = viewer.at(f);
        let at = sprite.locate(canvas, &screen, everywhere.iter().copied());
        let db = psnr(canvas, &sprite.over(&screen, at.0, at.1));
        assert!(db >= 36.0, "frame {f} at {at:?}: {db:.1} dB");
        positions.push((f, at));
    }
    // Fully inside; moving at most 2 px a frame along each axis; every frame somewhere new.
    for pair in positions.windows(2) {
        let ((f0, (x0, y0)), (f1, (x1, y1))) = (pair[0], pair[1]);
        let dt = (f1 - f0) as i64;
        assert!((x1 - x0).abs() <= 2 * dt && (y1 - y0).abs() <= 2 * dt);
        assert_ne!((x0, y0), (x1, y1), "frames {f0} and {f1}");
    }
    let ys: Vec<i64> = positions.iter().map(|p| p.1 .1).collect();
    let xs: Vec<i64> = positions.iter().map(|p| p.1 .0).collect();
    // It reached each far edge and came back from it.
    let (max_x, max_y) = (*xs.iter().max().unwrap(), *ys.iter().max().unwrap());
    assert!(
        max_x >= room_x - 10 && max_y >= room_y - 10,
        "{positions:?}"
    );
    assert!(*xs.last().unwrap() < max_x && *ys.last().unwrap() < max_y);
    // Dirtied stripes: exactly those under the old or new position (stripes of 64 rows).
    for &(f, (_, y)) in &positions {
        if let Some(&(_, (_, prev_y))) = positions.iter().find(|p| p.0 + 1 == f) {
            let mut want = stripes_under(prev_y, 32, h);
            want.extend(stripes_under(y, 32, h));
            want.sort();
            want.dedup();
            assert_eq!(sent_in(&log, f), want, "frame {f}");
        }
    }
}

#[test]
fn a_watermark_path_without_a_location_draws_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = logo_file(&dir);
    let run = |watermark_path: Option<PathBuf>| {
        let (cap, log) = start(
            SourceSpec::Synthetic(Scene::Static),
            CaptureSettings {
                watermark_path,
                watermark_location: WatermarkLocation::None,
                ..settings(256, 128)
            },
        )
        .expect("starts");
        frames_pass(&cap, 2);
        cap.stop();
        let log = log.lock().unwrap();
        log.iter().map(|s| s.data.clone()).collect::<Vec<_>>()
    };
    assert_eq!(run(Some(path)), run(None));
}

#[test]
fn a_watermark_on_a_synthetic_scene_is_drawn_once_not_accumulated() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = logo_file(&dir);
    let (cap, log) = start(
        SourceSpec::Synthetic(Scene::Static),
        CaptureSettings {
            watermark_path: Some(path),
            watermark_location: WatermarkLocation::Middle,
            ..settings(256, 128)
        },
    )
    .expect("starts");
    frames_pass(&cap, 20);
    cap.stop();
    let log = log.lock().unwrap();
    let later: Vec<(u64, u32)> = log
        .iter()
        .filter(|s| s.frame_id > 0)
        .map(|s| (s.frame_id, s.y))
        .collect();
    assert!(
        later.is_empty(),
        "a half-transparent watermark blended again over itself: {later:?}"
    );
}

#[test]
fn watermark_errors_name_the_file_and_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let (w, h, rgba) = logo();
    let good = dir.path().join("good.png");
    write_png(&good, w, h, &rgba);
    let bytes = std::fs::read(&good).unwrap();

    let missing = dir.path().join("missing.png");
    let text = dir.path().join("notes.png");
    std::fs::write(&text, "this is not an image\n").unwrap();
    let truncated = dir.path().join("truncated.png");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();

    let folder = dir.path().join("folder.png");
    std::fs::create_dir(&folder).unwrap();

    let cases = [
        (&missing, (256, 128), "cannot open"),
        (&folder, (256, 128), "is a directory"),
        (&text, (256, 128), "not a readable PNG"),
        (&truncated, (256, 128), "corrupt PNG"),
        (&good, (47, 128), "does not fit"),
        (&good, (256, 31), "does not fit"),
    ];
    for (path, (cw, ch), what) in cases {
        let err = start(
            SourceSpec::Synthetic(Scene::Static),
            CaptureSettings {
                watermark_path: Some(path.clone()),
                watermark_location: WatermarkLocation::TopLeft,
                ..settings(cw, ch)
            },
        )
        .map(|_| ())
        .expect_err("must not start");
        let msg = err.to_string();
        match &err {
            CaptureError::Overlay(OverlayError::Watermark { path: p, .. }) => {
                assert_eq!(p, &path.display().to_string())
            }
            other => panic!("{}: unexpected error {other:?}", path.display()),
        }
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains(what), "{msg}");
    }
    // The same file in a region it fits starts fine.
    let (cap, _log) = start(
        SourceSpec::Synthetic(Scene::Static),
        CaptureSettings {
            watermark_path: Some(good),
            watermark_location: WatermarkLocation::TopLeft,
            ..settings(48, 32)
        },
    )
    .expect("an exact fit starts");
    assert!(cap.stop().is_none());
}
