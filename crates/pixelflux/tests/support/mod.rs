//! Test harness shared by the integration tests: a private Xvfb on a free display number,
//! drawing known pixels into it, decoding JPEG stripes, and comparing pixels.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::sync::{Arc, Mutex};

use pixelflux::{CaptureError, CaptureSettings, OwnedFrame, ScreenCapture, SourceSpec, Stripe};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{ConnectionExt as _, CreateGCAux, ImageFormat};
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;

/// An Xvfb server of our own; killed when dropped.
pub struct Xvfb {
    child: Option<Child>,
    pub display: String,
    pub width: u32,
    pub height: u32,
}

impl Xvfb {
    /// Starts Xvfb at `width` x `height` x 24 on the first free display number from a
    /// per-process starting point.
    pub fn start(width: u32, height: u32) -> Self {
        // Tests of one binary run in parallel threads: each takes its own numbers.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let base = 200 + (std::process::id() % 400) * 11;
        for _ in 0..300 {
            let n = base + NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if Path::new(&format!("/tmp/.X{n}-lock")).exists()
                || Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
            {
                continue;
            }
            let mut child = Command::new("Xvfb")
                .arg(format!(":{n}"))
                .args(["-screen", "0", &format!("{width}x{height}x24")])
                .args(["-nolisten", "tcp", "-noreset"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("Xvfb must be installed (make test installs it)");
            let display = format!(":{n}");
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // lost a race for this number; try the next
                }
                if Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
                    && x11rb::connect(Some(&display)).is_ok()
                {
                    return Self {
                        child: Some(child),
                        display,
                        width,
                        height,
                    };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("no free X display number for Xvfb");
    }

    /// Stops the server now (to test a server going away mid-capture). SIGTERM first, so
    /// Xvfb removes its lock file and socket; SIGKILL if it has not gone within 2 s.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let term = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            if term.is_ok_and(|s| s.success()) {
                let t0 = Instant::now();
                while t0.elapsed() < Duration::from_secs(2) {
                    if let Ok(Some(_)) = child.try_wait() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The server's process id (`None` once killed), to signal it (SIGSTOP: a hung server).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// A connection to draw with.
    pub fn connect(&self) -> Painter {
        Painter::new(&self.display)
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Draws into the root window of an X display.
pub struct Painter {
    pub conn: RustConnection,
    pub root: u32,
    gc: u32,
    depth: u8,
}

impl Painter {
    pub fn new(display: &str) -> Self {
        let (conn, screen) = x11rb::connect(Some(display)).expect("connect to Xvfb");
        let s = &conn.setup().roots[screen];
        let (root, depth) = (s.root, s.root_depth);
        let gc = conn.generate_id().unwrap();
        conn.create_gc(gc, root, &CreateGCAux::new()).unwrap();
        Self {
            conn,
            root,
            gc,
            depth,
        }
    }

    /// Puts a BGRX frame at (x, y) of the root window, in bands that fit any request size.
    pub fn put(&self, frame: &OwnedFrame, x: i16, y: i16) {
        let band = (65536 / frame.stride()).max(1) as u32;
        let mut row = 0;
        while row < frame.height {
            let h = band.min(frame.height - row);
            let start = row as usize * frame.stride();
            let end = start + h as usize * frame.stride();
            self.conn
                .put_image(
                    ImageFormat::Z_PIXMAP,
                    self.root,
                    self.gc,
                    frame.width as u16,
                    h as u16,
                    x,
                    y + row as i16,
                    0,
                    self.depth,
                    &frame.data[start..end],
                )
                .unwrap();
            row += h;
        }
        self.conn.sync().unwrap();
    }

    /// Fills a rectangle with one colour (0xRRGGBB).
    pub fn fill(&self, x: i16, y: i16, w: u16, h: u16, rgb: u32) {
        let mut f = OwnedFrame::new(w as u32, h as u32);
        for px in f.data.chunks_exact_mut(4) {
            px.copy_from_slice(&[rgb as u8, (rgb >> 8) as u8, (rgb >> 16) as u8, 0]);
        }
        self.put(&f, x, y);
    }

    /// Waits for the server to have processed everything sent so far.
    pub fn sync(&self) {
        self.conn.sync().unwrap();
    }
}

/// A deterministic test picture with detail: 16x16 blocks of gradients, flat colours and
/// grey text-like strokes (colour edges fall on the 4:2:0 chroma grid, as UI edges mostly do).
pub fn test_pattern(width: u32, height: u32, seed: u32) -> OwnedFrame {
    let mut f = OwnedFrame::new(width, height);
    for y in 0..height {
        for x in 0..width {
            let i = (y * width + x) as usize * 4;
            let block = ((x / 16) * 7 + (y / 16) * 13 + seed) % 5;
            let (b, g, r) = match block {
                0 => (
                    (x * 255 / width.max(1)) as u8,
                    (y * 255 / height.max(1)) as u8,
                    90,
                ),
                1 => (230, 230, 230),
                2 => (40, 120, 200),
                // Grey text-like strokes: detail in luma only, as on a real desktop.
                3 if (x * 7 + y * 3 + seed) % 11 < 3 => (30, 30, 30),
                3 => (225, 225, 225),
                _ => (20, 20, 20),
            };
            f.data[i..i + 4].copy_from_slice(&[b, g, r, 0]);
        }
    }
    f
}

/// Decodes a JPEG (without its stripe header) to packed BGRX.
pub fn decode_jpeg(jpeg: &[u8]) -> OwnedFrame {
    let image: turbojpeg::Image<Vec<u8>> =
        turbojpeg::decompress(jpeg, turbojpeg::PixelFormat::BGRX).expect("valid JPEG");
    assert_eq!(image.pitch, image.width * 4);
    OwnedFrame {
        data: image.pixels,
        width: image.width as u32,
        height: image.height as u32,
    }
}

/// PSNR in dB over the B, G and R channels of two same-sized frames (∞ when identical).
pub fn psnr(a: &OwnedFrame, b: &OwnedFrame) -> f64 {
    assert_eq!((a.width, a.height), (b.width, b.height), "sizes differ");
    let mut se = 0u64;
    let mut n = 0u64;
    for (pa, pb) in a.data.chunks_exact(4).zip(b.data.chunks_exact(4)) {
        for c in 0..3 {
            let d = pa[c] as i64 - pb[c] as i64;
            se += (d * d) as u64;
            n += 1;
        }
    }
    if se == 0 {
        return f64::INFINITY;
    }
    let mse = se as f64 / n as f64;
    10.0 * (255.0 * 255.0 / mse).log10()
}

/// Rows `y .. y + h` of a frame as a frame of their own.
pub fn crop_rows(f: &OwnedFrame, y: u32, h: u32) -> OwnedFrame {
    OwnedFrame::from_view(f.view().rows(y, h))
}

/// Waits until `cond` holds or `timeout` passes; returns whether it held.
pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < timeout {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    cond()
}

/// Every stripe a capture delivered, in order.
pub type Log = Arc<Mutex<Vec<Stripe>>>;

/// Starts a capture of `spec` whose callback logs every stripe.
pub fn start_logged(
    spec: SourceSpec,
    settings: CaptureSettings,
) -> Result<(ScreenCapture, Log), CaptureError> {
    let log: Log = Arc::default();
    let sink = Arc::clone(&log);
    let cap = ScreenCapture::start(settings, spec, move |s| sink.lock().unwrap().push(s))?;
    Ok((cap, log))
}

/// Starts a capture of the Xvfb's screen whose callback logs every stripe.
pub fn start(xvfb: &Xvfb, settings: CaptureSettings) -> (ScreenCapture, Log) {
    let spec = SourceSpec::X11 {
        display: Some(xvfb.display.clone()),
    };
    start_logged(spec, settings).expect("capture starts")
}

/// Waits until the capture has grabbed `n` more frames.
pub fn frames_pass(cap: &ScreenCapture, n: u64) {
    let target = cap.stats().frames + n;
    assert!(
        wait_for(Duration::from_secs(20), || cap.stats().frames >= target),
        "capture stalled"
    );
}
