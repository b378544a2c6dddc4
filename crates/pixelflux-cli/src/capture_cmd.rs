//! `pixelflux capture`: run the pipeline and print per-second figures.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use nix::time::{clock_gettime, ClockId};
use pixelflux::{PipelineConfig, ScreenCapture, SourceSpec};

use crate::options::CaptureOptions;

#[derive(Debug, Args)]
pub struct CaptureArgs {
    #[command(flatten)]
    pub options: CaptureOptions,
    /// Stop after this many seconds (default: until Ctrl-C or SIGTERM; either prints the
    /// summary and exits with status 0). More than 0, at most a year.
    #[arg(long, value_parser = crate::options::seconds, allow_negative_numbers = true)]
    pub seconds: Option<f64>,
}

pub fn run(args: CaptureArgs) -> anyhow::Result<()> {
    let (settings, spec) = args.options.resolve()?;
    println!(
        "capturing {}x{}+{}+{} from {} as {} at {} fps (Ctrl-C or SIGTERM stops)",
        settings.capture_width,
        settings.capture_height,
        settings.capture_x,
        settings.capture_y,
        spec,
        settings.output_mode,
        settings.target_fps
    );
    let interrupted = Arc::new(AtomicBool::new(false));
    ctrlc_flag(Arc::clone(&interrupted))?;
    // Without --region the whole screen, following its size (RandR) instead of failing.
    let follow = args.options.source.region.is_none() && matches!(spec, SourceSpec::X11 { .. });
    let config = PipelineConfig::new(&settings)?.following_screen(follow);
    let capture = ScreenCapture::start_config(config, &spec, |_| {})?;
    let t0 = Instant::now();
    let mut last = capture.stats();
    let mut cpu_last = cpu_seconds();
    let mut tick = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        if interrupted.load(Ordering::Relaxed) || !capture.is_running() {
            break;
        }
        if let Some(limit) = args.seconds {
            if t0.elapsed().as_secs_f64() >= limit {
                break;
            }
        }
        if tick.elapsed() >= Duration::from_secs(1) {
            let now = capture.stats();
            let dt = tick.elapsed().as_secs_f64();
            let cpu = cpu_seconds();
            let frames = now.frames - last.frames;
            println!(
                "{:6.1} fps  {:6.1} stripes/frame  {:9.0} kbit/s  cpu {:5.1}% of a core",
                frames as f64 / dt,
                (now.stripes - last.stripes) as f64 / (frames.max(1)) as f64,
                (now.bytes - last.bytes) as f64 * 8.0 / 1000.0 / dt,
                (cpu - cpu_last) / dt * 100.0
            );
            last = now;
            cpu_last = cpu;
            tick = Instant::now();
        }
    }
    if let Some(err) = capture.stop() {
        anyhow::bail!("capture failed: {err}");
    }
    let s = capture.stats();
    println!(
        "done: {} frames, {} stripes, {} bytes in {:.1} s",
        s.frames,
        s.stripes,
        s.bytes,
        t0.elapsed().as_secs_f64()
    );
    let per_frame = |ns: u64| ns as f64 / 1e6 / s.frames.max(1) as f64;
    let st = s.stage_ns;
    println!(
        "ms per frame: grab {:.2}  overlay {:.2}  detect {:.2}  encode {:.2} (CPU, all stripes)  deliver {:.2}",
        per_frame(st.grab),
        per_frame(st.overlay),
        per_frame(st.detect),
        per_frame(st.encode),
        per_frame(st.deliver)
    );
    Ok(())
}

/// CPU seconds used by this whole process so far (every thread), at nanosecond resolution:
/// `/proc/self/stat`'s 10 ms ticks cannot see what a still screen costs.
fn cpu_seconds() -> f64 {
    clock_gettime(ClockId::CLOCK_PROCESS_CPUTIME_ID)
        .map(|t| t.tv_sec() as f64 + t.tv_nsec() as f64 * 1e-9)
        .unwrap_or(0.0)
}

/// Sets `flag` on the first SIGINT (Ctrl-C) or SIGTERM, using tokio's signal handling on a
/// small runtime thread; the capture loop then stops and prints its summary. Fails when the
/// handlers cannot be installed, so a signal never silently kills the process instead.
fn ctrlc_flag(flag: Arc<AtomicBool>) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Registered here, before the capture runs, so no signal can arrive unhandled.
    let (mut int, mut term) = rt.block_on(async {
        anyhow::Ok((
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
        ))
    })?;
    std::thread::Builder::new()
        .name("pixelflux-signals".into())
        .spawn(move || {
            rt.block_on(async {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            });
            flag.store(true, Ordering::Relaxed);
        })?;
    Ok(())
}
