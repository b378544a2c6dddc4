//! Capture from a real Xvfb, decode every JPEG stripe with libjpeg-turbo and compare with what
//! was drawn.

mod support;

use std::time::Duration;

use pixelflux::{
    CaptureError, CaptureSettings, CaptureStatus, OwnedFrame, ScreenCapture, SourceError,
    SourceSpec, Stripe, StripeKind,
};
use support::*;

fn settings(w: u32, h: u32) -> CaptureSettings {
    CaptureSettings {
        capture_width: w,
        capture_height: h,
        target_fps: 30.0,
        jpeg_quality: 95,
        paint_over_jpeg_quality: 95,
        ..Default::default()
    }
}

/// Assembles the stripes of one frame into a picture.
fn assemble(stripes: &[Stripe], width: u32, height: u32) -> OwnedFrame {
    let mut out = OwnedFrame::new(width, height);
    let stride = out.stride();
    for s in stripes {
        let img = decode_jpeg(s.payload());
        assert_eq!((img.width, img.height), (width, s.height));
        let start = s.y as usize * stride;
        out.data[start..start + img.data.len()].copy_from_slice(&img.data);
    }
    out
}

#[test]
fn captured_jpeg_stripes_match_the_drawn_pixels() {
    let xvfb = Xvfb::start(640, 480);
    let painter = xvfb.connect();
    let pattern = test_pattern(400, 300, 1);
    painter.put(&pattern, 100, 50);
    let (cap, log) = start(
        &xvfb,
        CaptureSettings {
            capture_x: 100,
            capture_y: 50,
            ..settings(400, 300)
        },
    );
    frames_pass(&cap, 3);
    assert!(cap.stop().is_none());
    let log = log.lock().unwrap();
    let first: Vec<Stripe> = log.iter().filter(|s| s.frame_id == 0).cloned().collect();
    // 300 rows in 64-row stripes: 5 stripes, in order, all JPEG.
    let ys: Vec<u32> = first.iter().map(|s| s.y).collect();
    assert_eq!(ys, [0, 64, 128, 192, 256]);
    assert!(first
        .iter()
        .all(|s| s.kind == StripeKind::Jpeg && s.header_len == 4));
    // The 1.2.2 header: frame_id, y.
    assert_eq!(&first[1].data[..4], &[0, 0, 0, 64]);
    let decoded = assemble(&first, 400, 300);
    let db = psnr(&decoded, &pattern);
    assert!(db >= 38.0, "PSNR {db:.1} dB < 38 dB");
    // Nothing changed after the first frame, so nothing else was sent.
    let again: Vec<(u64, u32, bool)> = log[first.len()..]
        .iter()
        .map(|s| (s.frame_id, s.y, s.paint_over))
        .collect();
    assert!(
        again.is_empty(),
        "an unchanged screen sent stripes again: {again:?}"
    );
}

#[test]
fn a_change_in_a_few_rows_sends_only_the_stripes_covering_them() {
    let xvfb = Xvfb::start(640, 480);
    let painter = xvfb.connect();
    painter.put(&test_pattern(640, 480, 2), 0, 0);
    let (cap, log) = start(&xvfb, settings(640, 480));
    frames_pass(&cap, 3);
    let before = log.lock().unwrap().len();
    assert_eq!(before, 8, "first frame: 480 rows / 64");
    // Rows 130..140 lie in stripe 2 (128..192) only.
    painter.fill(10, 130, 50, 10, 0xff0000);
    frames_pass(&cap, 3);
    // Rows 250..260 straddle stripes 3 and 4 (192..256, 256..320).
    painter.fill(300, 250, 20, 10, 0x00ff00);
    frames_pass(&cap, 3);
    cap.stop();
    let log = log.lock().unwrap();
    let later: Vec<u32> = log[before..].iter().map(|s| s.y).collect();
    assert_eq!(later, [128, 192, 256]);
    // The red block decodes red.
    let red = decode_jpeg(log[before].payload());
    let [b, g, r, _] = red.view().pixel(30, 135 - 128);
    assert!(r > 200 && g < 60 && b < 60, "got {r},{g},{b}");
}

#[test]
fn paint_over_refreshes_a_static_stripe_once_at_higher_quality() {
    let xvfb = Xvfb::start(320, 128);
    let painter = xvfb.connect();
    painter.put(&test_pattern(320, 128, 3), 0, 0);
    let (cap, log) = start(
        &xvfb,
        CaptureSettings {
            jpeg_quality: 40,
            paint_over_jpeg_quality: 95,
            use_paint_over_quality: true,
            paint_over_trigger_frames: 5,
            damage_block_threshold: 100,
            ..settings(320, 128)
        },
    );
    frames_pass(&cap, 2);
    // Change stripe 0 on several consecutive captures so its quality steps down to 40.
    for i in 0..12u32 {
        painter.put(&test_pattern(320, 40, 10 + i), 0, 10);
        frames_pass(&cap, 1);
    }
    frames_pass(&cap, 12);
    cap.stop();
    let log = log.lock().unwrap();
    let stripe0: Vec<&Stripe> = log.iter().filter(|s| s.y == 0).collect();
    // Every paint-over comes exactly 5 static frames after the change before it, once. (Were
    // this thread stalled between two paints, the stripe would be still for 5 frames and get a
    // paint-over there too: right, so allowed.)
    for (i, s) in stripe0.iter().enumerate().filter(|(_, s)| s.paint_over) {
        let before = stripe0[..i].last().expect("a paint-over follows a send");
        assert!(
            !before.paint_over,
            "two paint-overs in a row at frame {}",
            s.frame_id
        );
        assert_eq!(
            s.frame_id - before.frame_id,
            5,
            "paint-over after 5 static frames"
        );
    }
    // The last change was followed by its paint-over, the last stripe sent.
    let paint = *stripe0.last().expect("stripes");
    assert!(paint.paint_over, "no paint-over after the last change");
    let last_change = stripe0[stripe0.len() - 2];
    // Same pixels, higher quality: bigger and closer to the source.
    assert!(paint.payload().len() > last_change.payload().len());
    let truth = crop_rows(&test_pattern(320, 128, 3), 0, 64);
    let mut truth = truth;
    let last = test_pattern(320, 40, 10 + 11);
    for y in 0..40 {
        let s = (y + 10) as usize * truth.stride();
        truth.data[s..s + 320 * 4].copy_from_slice(last.view().row(y));
    }
    let low = psnr(&decode_jpeg(last_change.payload()), &truth);
    let high = psnr(&decode_jpeg(paint.payload()), &truth);
    assert!(
        high > low + 3.0,
        "paint-over {high:.1} dB vs change {low:.1} dB"
    );
    assert!(high >= 38.0);
}

#[test]
fn no_display_is_a_clear_error() {
    // A display no server has: Xvfb `-displayfd` hands out the lowest free numbers, so a
    // number just freed by a killed server can be taken at once by a parallel test; one this
    // high is never handed out here (and 6000 + N still fits x11rb's u16 TCP port sum).
    let display = ":59000".to_string();
    assert!(
        !std::path::Path::new("/tmp/.X11-unix/X59000").exists(),
        "a server unexpectedly listens on {display}"
    );
    let err = ScreenCapture::start(
        settings(64, 64),
        SourceSpec::X11 {
            display: Some(display.clone()),
        },
        |_| {},
    )
    .unwrap_err();
    assert!(
        matches!(err, CaptureError::Source(SourceError::Connect { .. })),
        "{err}"
    );
    // The display as written (`:N`), not `Some(":N")`.
    assert!(
        err.to_string()
            .starts_with(&format!("cannot connect to X display {display}: ")),
        "{err}"
    );
}

#[test]
fn region_outside_the_screen_is_rejected() {
    let xvfb = Xvfb::start(320, 240);
    for (x, y, w, h) in [(0, 0, 321, 240), (300, 0, 64, 64), (0, 200, 64, 64)] {
        let err = ScreenCapture::start(
            CaptureSettings {
                capture_x: x,
                capture_y: y,
                ..settings(w, h)
            },
            SourceSpec::X11 {
                display: Some(xvfb.display.clone()),
            },
            |_| {},
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                CaptureError::Source(SourceError::RegionOutsideScreen { .. })
            ),
            "{err}"
        );
        assert!(err.to_string().contains("320x240"), "{err}");
    }
}

#[test]
fn server_going_away_ends_the_capture_with_a_reason() {
    let mut xvfb = Xvfb::start(320, 240);
    let (cap, _log) = start(&xvfb, settings(320, 240));
    frames_pass(&cap, 2);
    xvfb.kill();
    assert!(
        wait_for(Duration::from_secs(5), || !cap.is_running()),
        "capture kept running without a server"
    );
    assert!(matches!(cap.status(), CaptureStatus::Failed(_)));
    // The capture thread has ended: stop only collects it, and returns the reason.
    let (cap, err) = within(
        "stop() after the failure",
        Duration::from_secs(30),
        move || {
            let err = cap.stop();
            (cap, err)
        },
    );
    let err = err.expect("the failure is reported");
    assert!(
        matches!(&*err, CaptureError::Source(SourceError::ServerGone(_))),
        "{err:?}"
    );
    assert!(err.to_string().contains("X server went away"), "{err}");
    assert!(cap.stop().is_some(), "stop stays idempotent");
}

/// Sets the screen of `display` to `width` x `height` with RandR, as `xrandr --output screen
/// --mode WxH` does on Xvfb: a new mode on the output, the CRTC switched to it, then the
/// screen resized (shrinking the screen first would cut through the CRTC: BadMatch).
fn resize_screen(display: &str, width: u16, height: u16) {
    use x11rb::connection::Connection as _;
    use x11rb::protocol::randr::{ConnectionExt as _, ModeInfo, Rotation};
    use x11rb::protocol::xproto::ConnectionExt as _;
    let (conn, screen) = x11rb::connect(Some(display)).unwrap();
    let root = conn.setup().roots[screen].root;
    conn.randr_query_version(1, 3).unwrap().reply().unwrap();
    let res = conn
        .randr_get_screen_resources_current(root)
        .unwrap()
        .reply()
        .unwrap();
    let (crtc, output) = (res.crtcs[0], res.outputs[0]);
    let name = format!("{width}x{height}");
    let info = ModeInfo {
        width,
        height,
        name_len: name.len() as u16,
        ..Default::default()
    };
    let mode = conn
        .randr_create_mode(root, info, name.as_bytes())
        .unwrap()
        .reply()
        .expect("RandR CreateMode")
        .mode;
    conn.randr_add_output_mode(output, mode)
        .unwrap()
        .check()
        .expect("RandR AddOutputMode");
    conn.randr_set_crtc_config(
        crtc,
        res.timestamp,
        res.config_timestamp,
        0,
        0,
        mode,
        Rotation::ROTATE0,
        &[output],
    )
    .unwrap()
    .reply()
    .expect("RandR SetCrtcConfig");
    // 96 dpi for the physical size, which the request needs and nothing here reads.
    let mm = |px: u16| (u32::from(px) * 254 / 960).max(1);
    conn.randr_set_screen_size(root, width, height, mm(width), mm(height))
        .unwrap()
        .check()
        .expect("RandR SetScreenSize");
    let geometry = conn.get_geometry(root).unwrap().reply().unwrap();
    assert_eq!((geometry.width, geometry.height), (width, height));
}

/// Sends `signal` (STOP, CONT) to a process.
fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{signal} {pid}");
}

#[test]
fn stop_is_bounded_when_the_x_server_stops_answering() {
    let xvfb = Xvfb::start(320, 240);
    let pid = xvfb.pid().expect("Xvfb runs");
    // With the pointer drawn, every frame asks the server where it is: the first frame after
    // SIGSTOP waits for a reply that never comes.
    let (cap, _log) = start(
        &xvfb,
        CaptureSettings {
            capture_cursor: true,
            target_fps: 100.0,
            ..settings(320, 240)
        },
    );
    frames_pass(&cap, 2);
    signal(pid, "STOP");
    // Stuck: no frame for a whole second (the capture runs at 100 fps).
    let mut last = cap.stats().frames;
    let stuck = wait_for(Duration::from_secs(20), || {
        std::thread::sleep(Duration::from_secs(1));
        let now = cap.stats().frames;
        std::mem::replace(&mut last, now) == now
    });
    let cap = std::sync::Arc::new(cap);
    let stopper = std::sync::Arc::clone(&cap);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(stopper.stop().map(|e| e.to_string()));
    });
    // Bounded: 2 x STOP_GRACE at most; generous here for a loaded machine.
    let stopped = rx.recv_timeout(Duration::from_secs(30));
    signal(pid, "CONT");
    assert!(stuck, "the capture never blocked on the stopped server");
    let err = stopped
        .expect("stop returned although the X server stopped answering")
        .expect("the capture reports why it ended");
    assert!(err.contains("stopped answering"), "{err}");
    assert!(!cap.is_running());
}

#[test]
fn a_static_screen_is_not_grabbed_again_and_damage_wakes_it() {
    let xvfb = Xvfb::start(320, 240);
    let painter = xvfb.connect();
    painter.put(&test_pattern(320, 240, 4), 0, 0);
    let (cap, log) = start(&xvfb, settings(320, 240));
    frames_pass(&cap, 20);
    let stats = cap.stats();
    // Frame 0 grabs; after that X DAMAGE reports nothing, so nothing is grabbed or hashed
    // (bar the once-a-second safety check at frame 60, not reached here).
    assert!(
        stats.grabs <= 2,
        "{} grabs in {} frames",
        stats.grabs,
        stats.frames
    );
    painter.fill(0, 200, 10, 10, 0x0000ff);
    frames_pass(&cap, 3);
    cap.stop();
    assert!(
        cap.stats().grabs > stats.grabs,
        "damage did not trigger a grab"
    );
    let ys: Vec<u32> = log.lock().unwrap().iter().skip(4).map(|s| s.y).collect();
    assert_eq!(ys, [192], "only the stripe under the change");
}

#[test]
fn a_screen_that_shrinks_under_a_fixed_region_ends_with_the_new_size() {
    let xvfb = Xvfb::start(640, 480);
    let (cap, _log) = start(&xvfb, settings(640, 480));
    frames_pass(&cap, 2);
    resize_screen(&xvfb.display, 320, 240);
    // Something must change for the capture to grab again (DAMAGE skips a still screen);
    // the once-a-second full check would also get there.
    xvfb.connect().fill(0, 0, 10, 10, 0xff0000);
    assert!(
        wait_for(Duration::from_secs(5), || !cap.is_running()),
        "capture kept running on a screen smaller than its region"
    );
    let err = cap.stop().expect("the failure is reported");
    assert!(
        matches!(
            &*err,
            CaptureError::Source(SourceError::RegionNoLongerFits {
                screen_width: 320,
                screen_height: 240
            })
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "the region no longer fits the screen (320x240)"
    );
}

#[test]
fn a_screen_that_shrinks_around_the_region_keeps_capturing() {
    let xvfb = Xvfb::start(640, 480);
    let (cap, log) = start(&xvfb, settings(320, 240));
    frames_pass(&cap, 2);
    resize_screen(&xvfb.display, 400, 300);
    let sent = log.lock().unwrap().len();
    xvfb.connect().fill(0, 0, 10, 10, 0xff0000);
    assert!(
        wait_for(Duration::from_secs(5), || log.lock().unwrap().len() > sent),
        "no stripe after the change"
    );
    assert!(cap.is_running());
    assert!(cap.stop().is_none());
}

#[test]
fn a_screen_number_the_server_does_not_have_is_an_error() {
    let xvfb = Xvfb::start(320, 240);
    let display = format!("{}.3", xvfb.display);
    // x11rb refuses the screen number against the server's setup while connecting.
    let err = pixelflux::source::x11::screen_size(Some(&display)).unwrap_err();
    assert!(matches!(err, SourceError::Connect { .. }), "{err:?}");
    let err = ScreenCapture::start(
        settings(64, 64),
        SourceSpec::X11 {
            display: Some(display.clone()),
        },
        |_| {},
    )
    .unwrap_err();
    assert!(
        matches!(err, CaptureError::Source(SourceError::Connect { .. })),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with(&format!("cannot connect to X display {display}: ")),
        "{err}"
    );
}
