//! The deterministic scene driver of the X11 benchmark: renders the frames of a synthetic
//! scene and draws them into an X server's root window at a fixed rate, so a capture (ours or
//! upstream's) sees the same screens the synthetic source produces.
//!
//! Only the rows that changed since the previous frame are sent, as one band when it fits a
//! single PutImage request (so the server applies a frame atomically and a grab never sees half
//! of one), else in the largest bands that fit. It runs in a child process of the benchmark
//! (`pixelflux bench --drive-only`) so its CPU time is not counted as the capture's.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use pixelflux::source::synthetic::SyntheticSource;
use pixelflux::{OwnedFrame, Scene};
use x11rb::connection::{Connection, RequestConnection};
use x11rb::protocol::xproto::{ConnectionExt as _, CreateGCAux, ImageFormat};
use x11rb::rust_connection::RustConnection;

use super::stats::monotonic_ns;

/// Rows `first .. last + 1` that differ between two frames of the same size, or `None` when
/// nothing changed. `prev = None` means everything changed.
pub fn changed_rows(prev: Option<&OwnedFrame>, next: &OwnedFrame) -> Option<(u32, u32)> {
    let Some(prev) = prev else {
        return (next.height > 0).then_some((0, next.height));
    };
    let stride = next.stride();
    let differs = |y: u32| {
        let s = y as usize * stride;
        prev.data[s..s + stride] != next.data[s..s + stride]
    };
    let first = (0..next.height).find(|&y| differs(y))?;
    let last = (first..next.height).rev().find(|&y| differs(y))?;
    Some((first, last + 1))
}

/// Splits rows `y0 .. y1` into bands of at most `max_rows` rows.
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

/// Draws frames into the root window of a display.
pub struct ScreenPainter {
    conn: RustConnection,
    root: u32,
    gc: u32,
    depth: u8,
    max_request_bytes: usize,
}

impl ScreenPainter {
    /// Connects to `display` (`None`: `$DISPLAY`).
    pub fn connect(display: Option<&str>) -> anyhow::Result<Self> {
        let (conn, screen) = x11rb::connect(display).with_context(|| {
            format!(
                "cannot connect to X display {}",
                display.unwrap_or("$DISPLAY")
            )
        })?;
        let s = conn
            .setup()
            .roots
            .get(screen)
            .context("the X server has no such screen")?;
        let (root, depth) = (s.root, s.root_depth);
        let gc = conn.generate_id()?;
        conn.create_gc(gc, root, &CreateGCAux::new())?;
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

    /// Rows of `frame`'s width that fit one PutImage request.
    pub fn rows_per_request(&self, frame: &OwnedFrame) -> u32 {
        // 24 bytes of PutImage header, 4 more in the BIG-REQUESTS form.
        ((self.max_request_bytes.saturating_sub(32)) / frame.stride().max(1)).max(1) as u32
    }

    /// Puts rows `y0 .. y1` of `frame` at the same rows of the root window (x = 0) and waits
    /// until the server has applied them.
    pub fn put_rows(&self, frame: &OwnedFrame, y0: u32, y1: u32) -> anyhow::Result<()> {
        let stride = frame.stride();
        for (y, h) in bands(y0, y1, self.rows_per_request(frame)) {
            let start = y as usize * stride;
            let end = start + h as usize * stride;
            self.conn.put_image(
                ImageFormat::Z_PIXMAP,
                self.root,
                self.gc,
                u16::try_from(frame.width)?,
                u16::try_from(h)?,
                0,
                i16::try_from(y)?,
                0,
                self.depth,
                &frame.data[start..end],
            )?;
        }
        // A round trip: every request before it has been processed.
        self.conn.get_input_focus()?.reply()?;
        Ok(())
    }
}

/// What a driver run did.
#[derive(Debug, Clone, Copy, Default)]
pub struct DriverReport {
    /// Frames drawn.
    pub frames: u64,
    /// Seconds from the first to the last frame.
    pub seconds: f64,
    /// Frames that had nothing to draw (the scene did not change).
    pub unchanged: u64,
}

impl DriverReport {
    /// Frames drawn per second.
    pub fn fps(&self) -> f64 {
        if self.seconds > 0.0 {
            self.frames as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// Drives `scene` into `display` at `fps` until `stop` is set. `on_first` runs once the
/// first frame is on the screen. With `log`, each frame's index and the `CLOCK_MONOTONIC` time
/// it was on the screen are appended to it (`index t_ns` lines), for matching captured frames
/// to source frames.
pub fn drive(
    display: Option<&str>,
    scene: Scene,
    (width, height): (u32, u32),
    fps: f64,
    stop: &AtomicBool,
    log: Option<&mut dyn Write>,
    mut on_first: impl FnMut(),
) -> anyhow::Result<DriverReport> {
    let painter = ScreenPainter::connect(display)?;
    let mut source = SyntheticSource::new(scene, width, height);
    let mut prev: Option<OwnedFrame> = None;
    let interval = Duration::from_secs_f64(1.0 / fps);
    let mut report = DriverReport::default();
    let mut log = log;
    let t0 = Instant::now();
    let mut deadline = t0;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if deadline > now {
            std::thread::sleep(deadline - now);
        }
        let frame = source.advance();
        match changed_rows(prev.as_ref(), frame) {
            Some((y0, y1)) => painter.put_rows(frame, y0, y1)?,
            None => report.unchanged += 1,
        }
        if let Some(log) = log.as_deref_mut() {
            writeln!(log, "{} {}", report.frames, monotonic_ns())?;
        }
        match prev.as_mut() {
            Some(p) => p.data.copy_from_slice(&frame.data),
            None => prev = Some(frame.clone()),
        }
        if report.frames == 0 {
            on_first();
        }
        report.frames += 1;
        deadline += interval;
        let now = Instant::now();
        if deadline < now {
            // Behind: draw the next frame now, without a burst to catch up.
            deadline = now;
        }
    }
    report.seconds = t0.elapsed().as_secs_f64();
    Ok(report)
}

/// Options of `pixelflux bench --drive-only`.
#[derive(Debug, Clone)]
pub struct DriveOnly {
    pub display: Option<String>,
    pub scene: Scene,
    pub size: (u32, u32),
    pub fps: f64,
    pub log: Option<PathBuf>,
}

/// `pixelflux bench --drive-only`: drives until stdin closes, printing
/// `ready` once the first frame is on the screen and a summary line at the end.
pub fn run_drive_only(opts: DriveOnly) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        // The parent ends us by closing our stdin: no signals, nothing left behind.
        std::thread::spawn(move || {
            let stdin = std::io::stdin();
            for line in stdin.lock().lines() {
                if line.is_err() {
                    break;
                }
            }
            stop.store(true, Ordering::Relaxed);
        });
    }
    let mut log_file = match &opts.log {
        Some(path) => Some(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("create {}", path.display()))?,
        )),
        None => None,
    };
    let report = drive(
        opts.display.as_deref(),
        opts.scene,
        opts.size,
        opts.fps,
        &stop,
        log_file.as_mut().map(|f| f as &mut dyn Write),
        || {
            println!("ready");
            let _ = std::io::stdout().flush();
        },
    )?;
    if let Some(mut f) = log_file {
        f.flush()?;
    }
    println!(
        "driver frames={} seconds={:.3} fps={:.2} unchanged={}",
        report.frames,
        report.seconds,
        report.fps(),
        report.unchanged
    );
    Ok(())
}

/// Parses the driver's summary line (`driver frames=N seconds=S fps=F ...`).
pub fn parse_summary(line: &str) -> Option<DriverReport> {
    let rest = line.strip_prefix("driver ")?;
    let mut report = DriverReport::default();
    for field in rest.split_whitespace() {
        let (k, v) = field.split_once('=')?;
        match k {
            "frames" => report.frames = v.parse().ok()?,
            "seconds" => report.seconds = v.parse().ok()?,
            "unchanged" => report.unchanged = v.parse().ok()?,
            _ => {}
        }
    }
    Some(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_rows_bound_the_difference() {
        let a = OwnedFrame::new(4, 10);
        assert_eq!(changed_rows(None, &a), Some((0, 10)));
        assert_eq!(changed_rows(Some(&a), &a), None);
        let mut b = a.clone();
        b.data[3 * 16 + 5] = 1; // row 3
        b.data[6 * 16] = 9; // row 6
        assert_eq!(changed_rows(Some(&a), &b), Some((3, 7)));
    }

    #[test]
    fn bands_cover_the_range_exactly() {
        assert_eq!(bands(0, 10, 4), vec![(0, 4), (4, 4), (8, 2)]);
        assert_eq!(bands(5, 6, 100), vec![(5, 1)]);
        assert!(bands(3, 3, 4).is_empty());
        assert_eq!(bands(0, 2, 0), vec![(0, 1), (1, 1)]);
    }

    #[test]
    fn summary_line_round_trips() {
        let r = parse_summary("driver frames=300 seconds=5.001 fps=59.99 unchanged=2").unwrap();
        assert_eq!((r.frames, r.unchanged), (300, 2));
        assert!((r.seconds - 5.001).abs() < 1e-9);
        assert!(parse_summary("ready").is_none());
    }
}
