//! The deterministic scene driver of the X11 benchmark: renders the frames of a synthetic
//! scene and draws them into an X server's root window at a fixed rate, so a capture (ours or
//! upstream's) sees the same screens the synthetic source produces.
//!
//! Only the rows that changed since the previous frame are sent, as one band when it fits a
//! single PutImage request (so the server applies a frame atomically and a grab never sees half
//! of one), else in the largest bands that fit. It runs in a child process of the benchmark
//! (`pixelflux-bench drive`) so its CPU time is not counted as the capture's.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use pixelflux::source::synthetic::SyntheticSource;
use pixelflux::{OwnedFrame, Scene};
use pixelflux_cli::options::RegionArg;
use pixelflux_testkit::Painter;

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
    let painter = Painter::connect(display)?;
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
            Some(rows) => painter.put_rows(frame, 0, 0, rows)?,
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

/// `pixelflux-bench drive`.
#[derive(Debug, Clone, Args)]
pub struct DriveArgs {
    /// X display to draw into (default: $DISPLAY); it must be at least --size.
    #[arg(long)]
    pub display: Option<String>,
    /// The scene to draw.
    #[arg(long)]
    pub scene: Scene,
    /// Picture size, WxH (drawn at the top left).
    #[arg(long, default_value = "1920x1080")]
    pub size: RegionArg,
    /// Frames drawn per second.
    #[arg(long, default_value_t = 60.0)]
    pub fps: f64,
    /// Append `index monotonic_ns` per drawn frame to this file.
    #[arg(long)]
    pub log: Option<PathBuf>,
}

/// `pixelflux-bench drive`: drives until stdin closes, printing `ready` once the first frame is
/// on the screen and a summary line at the end.
pub fn run(opts: DriveArgs) -> anyhow::Result<()> {
    if !(opts.fps.is_finite() && opts.fps > 0.0) {
        anyhow::bail!("--fps must be positive");
    }
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
        (opts.size.width, opts.size.height),
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
    fn summary_line_round_trips() {
        let r = parse_summary("driver frames=300 seconds=5.001 fps=59.99 unchanged=2").unwrap();
        assert_eq!((r.frames, r.unchanged), (300, 2));
        assert!((r.seconds - 5.001).abs() < 1e-9);
        assert!(parse_summary("ready").is_none());
    }
}
