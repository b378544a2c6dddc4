//! `pixelflux-bench`: every synthetic scene through the whole pipeline, from the synthetic
//! source and from a real X server (a private Xvfb fed by the scene driver), with CPU, rate,
//! size, quality (PSNR after real decoding), latency and per-stage figures.
//!
//! A developer tool, not part of the `pixelflux` command users install. Sub-tools: `drive`
//! (the scene driver alone; the benchmark runs it as a child process, and so does
//! `bench/compare.py`), `psnr` (PSNR of a stripe dump from another capture library), `chart`
//! (the comparison SVG).

mod apps;
mod chart;
mod dump;
mod quality;
mod report;
mod scene_driver;
mod stats;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use apps::{App, AppRun};
use clap::{Parser, Subcommand, ValueEnum};
use pixelflux::source::synthetic::SyntheticSource;
use pixelflux::source::x11::{Region, X11Source};
use pixelflux::source::Damage;
use pixelflux::{
    CaptureSettings, Codec, Frame, FrameSource, OwnedFrame, Scene, ScreenCapture, SourceError,
    Stripe, StripeKind, WireFormat,
};
use pixelflux_cli::options::{self, EncodeOptions, RegionArg};
use pixelflux_testkit::psnr::mse_bgrx;
use pixelflux_testkit::xvfb::Xvfb;
use quality::Received;
use report::{BenchReport, LatencyMs, Machine, SceneResult, StageMs};
use stats::{percentile, process_cpu_seconds, process_cpu_seconds_of, psnr_summary};

fn main() -> std::process::ExitCode {
    pixelflux_cli::init_logging();
    pixelflux_cli::exit_code(run(BenchArgs::parse()))
}
/// Which sources to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SourceChoice {
    /// Frames rendered in-process (no X server): the pipeline alone.
    Synthetic,
    /// A private Xvfb (or `--display`) fed by the scene driver: the real capture path.
    X11,
    Both,
}

/// Benchmark every scene through the pipeline (synthetic and X11; JPEG and H.264).
#[derive(Debug, Parser)]
#[command(
    name = "pixelflux-bench",
    version,
    args_conflicts_with_subcommands = true
)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub tool: Option<Tool>,
    /// Seconds measured per scene (after the warm-up): more than 0, at most an hour.
    #[arg(long, default_value_t = 5.0, allow_negative_numbers = true,
          value_parser = |t: &str| options::float_in(t, 0.0, 3600.0, true, "seconds"))]
    pub seconds: f64,
    /// Seconds run before measuring (first full frame, encoder start-up): 0 to 600.
    #[arg(long, default_value_t = 0.5, allow_negative_numbers = true,
          value_parser = |t: &str| options::float_in(t, 0.0, 600.0, false, "seconds"))]
    pub warmup: f64,
    /// Codecs to run, comma-separated: jpeg, h264 (default: both).
    #[arg(long, value_delimiter = ',')]
    pub codec: Vec<Codec>,
    /// Scenes to run, comma-separated (default: all, unless --app is given).
    #[arg(long, value_delimiter = ',', value_parser = options::scene())]
    pub scene: Vec<Scene>,
    /// Real applications to run on the X display, comma-separated (x11 source only; no PSNR):
    /// terminal (xterm scrolling a log), clock (xclock), video (ffplay of a clip).
    #[arg(long, value_delimiter = ',')]
    pub app: Vec<App>,
    /// Sources to run.
    #[arg(long, value_enum, default_value = "both")]
    pub source: SourceChoice,
    /// Picture size, WxH.
    #[arg(long, default_value = "1920x1080")]
    pub size: RegionArg,
    /// Rate (capture and driver) and quality.
    #[command(flatten)]
    pub encode: EncodeOptions,
    /// Frames compared with the source for PSNR, per scene (0: no PSNR; at most 10000).
    #[arg(long, default_value_t = 10, allow_negative_numbers = true,
          value_parser = |t: &str| options::int_in::<usize>(t, 0, 10_000))]
    pub psnr_samples: usize,
    /// X display for the X11 path instead of a private Xvfb (it must be at least --size).
    #[arg(long)]
    pub display: Option<String>,
    /// Frames the X11 scene driver draws per second (default: the capture's --fps). Lower
    /// than --fps, every drawn frame is captured once even when the capture runs slowly
    /// (under `valgrind --tool=callgrind`: instructions per frame on the same pixels as
    /// upstream's, docs/PERFORMANCE.md).
    #[arg(long, allow_negative_numbers = true,
          value_parser = |t: &str| options::float_in(t, 0.0, 1000.0, true, "frames per second"))]
    pub driver_fps: Option<f64>,
    /// Start the scene driver by this program's path instead of /proc/self/exe (needed under
    /// valgrind, where /proc/self/exe is valgrind itself).
    #[arg(long)]
    pub valgrind_self: bool,
    /// Write the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Serve's stream: the tagged wire format (`--wire tagged`), here with scroll detection
    /// (JPEG: copy-rows for rows that moved, only exposed rows encoded). Compare with
    /// `--wire tagged` alone, interleaved.
    #[arg(long)]
    pub scroll_detection: bool,
    /// Stripe headers: compat (1.2.2's, the Python module's) or tagged (serve's).
    #[arg(long, value_enum, default_value = "compat")]
    pub wire: WireChoice,
}

/// Which stripe headers the capture writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WireChoice {
    /// pixelflux 1.2.2's (the Python module).
    Compat,
    /// `serve`'s tagged format.
    Tagged,
}

#[derive(Debug, Subcommand)]
pub enum Tool {
    /// Draw a scene into an X display until stdin closes (prints `ready` once the first
    /// frame is up, a summary line at the end).
    Drive(scene_driver::DriveArgs),
    /// Run a private Xvfb until stdin closes (prints its display name once it accepts
    /// connections); bench/compare.py's X server.
    Xvfb(XvfbArgs),
    /// PSNR of a stripe dump (bench/compare.py) against the scene driver's frames.
    Psnr(dump::PsnrArgs),
    /// Draw the comparison chart (SVG) from the JSON bench/compare.py writes.
    Chart(chart::ChartArgs),
    /// Run a real application on an X display until stdin closes (prints `ready PGID` once it
    /// is up; PGID is its process group, which bench/compare.py freezes for screenshots).
    App(AppArgs),
    /// The terminal application's log writer: a file's lines at a fixed rate, in a loop.
    Lines(apps::LinesArgs),
    /// Write the top-left WxH of an X display's screen as raw BGRX rows to a file.
    Snap(SnapArgs),
}

/// `pixelflux-bench app`.
#[derive(Debug, clap::Args)]
pub struct AppArgs {
    /// X display.
    #[arg(long)]
    pub display: String,
    /// The application.
    #[arg(long, value_enum)]
    pub app: App,
    /// The region it fills (from the top left), WxH.
    #[arg(long, default_value = "1920x1080")]
    pub size: RegionArg,
}

/// `pixelflux-bench snap`.
#[derive(Debug, clap::Args)]
pub struct SnapArgs {
    /// X display.
    #[arg(long)]
    pub display: String,
    /// The region (from the top left), WxH.
    #[arg(long, default_value = "1920x1080")]
    pub size: RegionArg,
    /// Output file: height rows of width * 4 bytes.
    #[arg(long)]
    pub out: PathBuf,
}

/// Starts the application, says `ready PGID`, and stops it when stdin closes.
fn run_app(args: &AppArgs) -> anyhow::Result<()> {
    let run = AppRun::start(args.app, &args.display, (args.size.width, args.size.height))?;
    println!("ready {}", run.process_group());
    std::io::stdout().flush()?;
    std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink())?;
    drop(run);
    Ok(())
}

/// Grabs the region once (the capture's own X11 source) and writes its rows.
fn run_snap(args: &SnapArgs) -> anyhow::Result<()> {
    let (w, h) = (args.size.width, args.size.height);
    let mut source = X11Source::open(
        Some(&args.display),
        Region {
            x: 0,
            y: 0,
            width: w,
            height: h,
        },
    )?;
    let frame = source.grab()?;
    let mut out = Vec::with_capacity(w as usize * h as usize * 4);
    let view = frame.view();
    for y in 0..h {
        out.extend_from_slice(view.row(y));
    }
    std::fs::write(&args.out, out).with_context(|| format!("write {}", args.out.display()))
}

/// Runs `pixelflux-bench` with these arguments.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.tool {
        Some(Tool::Drive(a)) => return scene_driver::run(a),
        Some(Tool::Xvfb(a)) => return run_xvfb(&a),
        Some(Tool::Psnr(a)) => return dump::run(a),
        Some(Tool::Chart(a)) => return chart::run(a),
        Some(Tool::App(a)) => return run_app(&a),
        Some(Tool::Lines(a)) => return apps::run_lines(&a),
        Some(Tool::Snap(a)) => return run_snap(&a),
        None => {}
    }
    let plan = Plan::from_args(&args)?;
    let results = plan.run()?;
    print!("{}", report::table(&results));
    if let Some(path) = &args.json {
        let report = BenchReport {
            version: report::JSON_VERSION,
            tool: "pixelflux-bench".into(),
            machine: Machine::detect(),
            command: std::env::args().collect::<Vec<_>>().join(" "),
            results,
        };
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// `pixelflux-bench xvfb`.
#[derive(Debug, clap::Args)]
pub struct XvfbArgs {
    /// Screen size, WxH.
    #[arg(long, default_value = "1920x1080")]
    pub size: RegionArg,
}

/// Starts the one Xvfb launcher's server, prints its display and keeps it until stdin closes
/// (the parent's way to stop it: nothing is left behind if the parent dies).
fn run_xvfb(args: &XvfbArgs) -> anyhow::Result<()> {
    let xvfb = Xvfb::start(args.size.width, args.size.height)?;
    println!("{}", xvfb.display());
    std::io::stdout().flush()?;
    std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink())?;
    drop(xvfb);
    Ok(())
}

/// Where a run's frames come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SourceKind {
    Synthetic,
    X11,
}

impl SourceKind {
    fn name(self) -> &'static str {
        match self {
            Self::Synthetic => "synthetic",
            Self::X11 => "x11",
        }
    }
}

/// What is on the screen during a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Workload {
    Scene(Scene),
    App(App),
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Self::Scene(s) => s.name(),
            Self::App(a) => a.name(),
        }
    }
}

impl std::fmt::Display for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Everything to run, in order.
struct Plan {
    runs: Vec<(SourceKind, Codec, Workload)>,
    settings: CaptureSettings,
    seconds: f64,
    warmup: f64,
    psnr_samples: usize,
    display: Option<String>,
    driver_fps: Option<f64>,
    valgrind_self: bool,
}

impl Plan {
    fn from_args(args: &BenchArgs) -> anyhow::Result<Self> {
        if !args.seconds.is_finite()
            || args.seconds <= 0.0
            || !args.warmup.is_finite()
            || args.warmup < 0.0
        {
            bail!("--seconds must be positive and --warmup not negative");
        }
        let scenes = if args.scene.is_empty() && args.app.is_empty() {
            Scene::ALL.to_vec()
        } else {
            args.scene.clone()
        };
        if !args.app.is_empty() && args.source == SourceChoice::Synthetic {
            bail!("--app needs the x11 source");
        }
        let codecs = if args.codec.is_empty() {
            Codec::ALL.to_vec()
        } else {
            args.codec.clone()
        };
        let sources = match args.source {
            SourceChoice::Synthetic => vec![SourceKind::Synthetic],
            SourceChoice::X11 => vec![SourceKind::X11],
            SourceChoice::Both => vec![SourceKind::Synthetic, SourceKind::X11],
        };
        let mut runs = Vec::new();
        for &source in &sources {
            for &codec in &codecs {
                for &scene in &scenes {
                    runs.push((source, codec, Workload::Scene(scene)));
                }
                if source == SourceKind::X11 {
                    for &app in &args.app {
                        runs.push((source, codec, Workload::App(app)));
                    }
                }
            }
        }
        let tagged = args.scroll_detection || args.wire == WireChoice::Tagged;
        let settings = CaptureSettings {
            capture_width: args.size.width,
            capture_height: args.size.height,
            wire_format: if tagged {
                WireFormat::Tagged
            } else {
                WireFormat::Compat
            },
            scroll_detection: args.scroll_detection,
            ..args.encode.settings()
        };
        settings.validate()?;
        Ok(Self {
            runs,
            settings,
            seconds: args.seconds,
            warmup: args.warmup,
            psnr_samples: args.psnr_samples,
            display: args.display.clone(),
            driver_fps: args.driver_fps,
            valgrind_self: args.valgrind_self,
        })
    }

    fn run(&self) -> anyhow::Result<Vec<SceneResult>> {
        let needs_x = self.runs.iter().any(|r| r.0 == SourceKind::X11);
        // One X server for every X11 run; each run gets a fresh driver.
        let xvfb = match (&self.display, needs_x) {
            (None, true) => Some(Xvfb::start(
                self.settings.capture_width,
                self.settings.capture_height,
            )?),
            _ => None,
        };
        let display = self
            .display
            .clone()
            .or_else(|| xvfb.as_ref().map(|x| x.display().to_owned()));
        let xserver_pid = xvfb.as_ref().map(|x| x.pid());
        let mut results = Vec::new();
        for (n, &(source, codec, scene)) in self.runs.iter().enumerate() {
            let label = format!(
                "[{}/{}] {scene} {} {}",
                n + 1,
                self.runs.len(),
                codec.name(),
                source.name()
            );
            eprintln!("{label}: starting");
            let env = Env {
                display: display.as_deref(),
                xserver_pid,
            };
            let result = self
                .run_one(source, codec, scene, &env, &label)
                .with_context(|| label.clone())?;
            eprintln!(
                "{label}: {:.1} fps ({} late, {} overlapped), {:.3} cores, {:.0} kbit/s, PSNR {}",
                result.capture_fps,
                result.late_ticks,
                result.overlapped,
                result.cpu_cores,
                result.kbit_per_s,
                result
                    .psnr_db
                    .map(|p| format!("{p:.1} dB"))
                    .unwrap_or_else(|| "-".into())
            );
            results.push(result);
        }
        Ok(results)
    }

    fn run_one(
        &self,
        source_kind: SourceKind,
        codec: Codec,
        workload: Workload,
        env: &Env<'_>,
        label: &str,
    ) -> anyhow::Result<SceneResult> {
        let settings = CaptureSettings {
            output_mode: codec,
            ..self.settings.clone()
        };
        // The size actually captured (H.264 rounds odd sizes down to even).
        let region = pixelflux::PipelineConfig::new(&settings)?.region();
        let (w, h) = (region.width, region.height);
        let mut driver = None;
        let mut app_run = None;
        let inner: Box<dyn FrameSource> = match (source_kind, workload) {
            (SourceKind::Synthetic, Workload::Scene(scene)) => {
                Box::new(SyntheticSource::new(scene, w, h))
            }
            (SourceKind::Synthetic, Workload::App(_)) => bail!("an application needs X11"),
            (SourceKind::X11, _) => {
                let display = env.display.context("no X display")?;
                match workload {
                    Workload::Scene(scene) => {
                        let fps = self.driver_fps.unwrap_or(settings.target_fps);
                        driver = Some(Driver::spawn(
                            display,
                            scene,
                            (w, h),
                            fps,
                            self.valgrind_self,
                        )?);
                    }
                    // No reference frames for an application: no PSNR.
                    Workload::App(app) => app_run = Some(AppRun::start(app, display, (w, h))?),
                }
                Box::new(X11Source::open(
                    Some(display),
                    Region {
                        x: 0,
                        y: 0,
                        width: w,
                        height: h,
                    },
                )?)
            }
        };
        let warmup_frames = (self.warmup * settings.target_fps).round() as u64;
        let measured_frames = (self.seconds * settings.target_fps).max(1.0) as u64;
        let psnr_samples = if app_run.is_some() {
            0
        } else {
            self.psnr_samples
        };
        let tee = Tee::new(
            inner,
            sample_ticks(warmup_frames, measured_frames, psnr_samples),
        );
        let samples = Arc::clone(&tee.samples);
        let copy_ns = Arc::clone(&tee.copy_ns);

        let log: Arc<Mutex<Vec<(Stripe, Instant)>>> = Arc::default();
        let sink = Arc::clone(&log);
        let capture = ScreenCapture::start_with(settings.clone(), Box::new(tee), Vec::new(), {
            move |stripe: Stripe| {
                let now = Instant::now();
                if let Ok(mut log) = sink.lock() {
                    log.push((stripe, now));
                }
            }
        })?;

        sleep_while_running(&capture, Duration::from_secs_f64(self.warmup));
        let x0 = env.xserver_pid.and_then(process_cpu_seconds_of);
        let cpu0 = process_cpu_seconds();
        let copy0 = copy_ns.load();
        let stats0 = capture.stats();
        let t0 = Instant::now();
        let total = Duration::from_secs_f64(self.seconds);
        let mut next_report = Duration::from_secs(1);
        while t0.elapsed() < total && capture.is_running() {
            std::thread::sleep(Duration::from_millis(20));
            if t0.elapsed() >= next_report && t0.elapsed() < total {
                eprintln!(
                    "{label}: {:.0}/{:.0} s",
                    t0.elapsed().as_secs_f64(),
                    self.seconds
                );
                next_report += Duration::from_secs(1);
            }
        }
        let stats1 = capture.stats();
        let cpu1 = process_cpu_seconds();
        let copy1 = copy_ns.load();
        let x1 = env.xserver_pid.and_then(process_cpu_seconds_of);
        let seconds = t0.elapsed().as_secs_f64();
        if let Some(err) = capture.stop() {
            bail!("capture failed: {err}");
        }
        // Frames fully delivered: a stop cuts the frame in flight short, so a sample taken
        // at its grab has no complete picture to be compared with.
        let delivered = capture.stats().frames;
        let driver_report = match driver {
            Some(d) => Some(d.finish()?),
            None => None,
        };
        drop(app_run);

        let frames = stats1.frames - stats0.frames;
        let per_frame = |ns: u64| ns as f64 / 1e6 / frames.max(1) as f64;
        let copy_ms = (copy1 - copy0) as f64 / 1e6;
        let cpu = (cpu1 - cpu0 - copy_ms / 1e3).max(0.0);
        let d = |a: u64, b: u64| a.saturating_sub(b);
        let st = StageMs {
            grab: ((d(stats1.stage_ns.grab, stats0.stage_ns.grab) as f64 / 1e6 - copy_ms)
                / frames.max(1) as f64)
                .max(0.0),
            overlay: per_frame(d(stats1.stage_ns.overlay, stats0.stage_ns.overlay)),
            detect: per_frame(d(stats1.stage_ns.detect, stats0.stage_ns.detect)),
            encode: per_frame(d(stats1.stage_ns.encode, stats0.stage_ns.encode)),
            deliver: per_frame(d(stats1.stage_ns.deliver, stats0.stage_ns.deliver)),
        };

        let log = std::mem::take(&mut *log.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
        if settings.scroll_detection {
            // Scroll detection at work: the copy-rows sent in the measured frames.
            let (mut copies, mut rows) = (0, 0);
            for (s, _) in log.iter().filter(|(s, _)| {
                s.kind == StripeKind::CopyRows
                    && (stats0.frames..stats1.frames).contains(&s.frame_id)
            }) {
                copies += 1;
                let runs = pixelflux::wire::parse_copy_rows(&s.data).map(|r| r.1);
                rows += runs
                    .unwrap_or_default()
                    .iter()
                    .map(|r| r.height)
                    .sum::<u32>();
            }
            eprintln!(
                "{label}: {copies} copy-rows in {} frames, {:.0} rows each",
                stats1.frames - stats0.frames,
                f64::from(rows) / f64::from(copies.max(1))
            );
        }
        let measured_from = stats0.frames;
        let measured_to = stats1.frames;
        let in_window = |s: &Stripe| s.frame_id >= measured_from && s.frame_id < measured_to;
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let encode_lat: Vec<f64> = log
            .iter()
            .filter(|(s, _)| in_window(s))
            .map(|(s, _)| ms(s.encoded_at - s.captured_at))
            .collect();
        let callback_lat: Vec<f64> = log
            .iter()
            .filter(|(s, _)| in_window(s))
            .map(|(s, at)| ms(*at - s.captured_at))
            .collect();
        let lat = |v: &[f64]| LatencyMs {
            p50: percentile(v, 50.0).unwrap_or(0.0),
            p99: percentile(v, 99.0).unwrap_or(0.0),
            max: percentile(v, 100.0).unwrap_or(0.0),
        };

        // Quality: rebuild the viewer's picture at each sampled frame and compare.
        let mut samples =
            std::mem::take(&mut *samples.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
        samples.retain(|(tick, _)| *tick < delivered);
        let received: Vec<Received> = log
            .into_iter()
            // Lossless stills (never on in the bench) have no codec to decode with.
            .filter_map(|(s, _)| {
                let copy = match s.kind {
                    StripeKind::CopyRows => Some(pixelflux::wire::parse_copy_rows(&s.data)?.1),
                    _ => None,
                };
                Some(Received {
                    codec: s.kind.codec().or(copy.as_ref().map(|_| codec))?,
                    frame_id: s.frame_id,
                    y: s.y,
                    height: s.height,
                    payload: s.data[s.header_len..].to_vec(),
                    copy,
                })
            })
            .collect();
        let ticks: Vec<u64> = samples.iter().map(|(k, _)| *k).collect();
        let mses: Vec<f64> = if ticks.is_empty() {
            Vec::new()
        } else {
            let canvases = quality::reconstruct(&received, w, h, &ticks)?;
            canvases
                .iter()
                .zip(&samples)
                .map(|(c, (_, f))| mse_bgrx(&c.data, &f.data))
                .collect()
        };
        let psnr = psnr_summary(&mses).map(|(a, b)| (cap_psnr(a), cap_psnr(b)));

        let bytes = stats1.bytes - stats0.bytes;
        Ok(SceneResult {
            scene: workload.name().into(),
            codec: codec.name().into(),
            source: source_kind.name().into(),
            width: w,
            height: h,
            target_fps: settings.target_fps,
            seconds,
            frames,
            frames_sent: stats1.frames_sent - stats0.frames_sent,
            stripes: stats1.stripes - stats0.stripes,
            bytes,
            capture_fps: frames as f64 / seconds,
            delivered_fps: (stats1.frames_sent - stats0.frames_sent) as f64 / seconds,
            stripes_per_frame: (stats1.stripes - stats0.stripes) as f64 / frames.max(1) as f64,
            kbit_per_s: bytes as f64 * 8.0 / 1000.0 / seconds,
            cpu_ms_per_frame: cpu * 1e3 / frames.max(1) as f64,
            cpu_cores: cpu / seconds,
            xserver_cpu_cores: x0.zip(x1).map(|(a, b)| (b - a) / seconds),
            psnr_db: psnr.map(|p| p.0),
            psnr_min_db: psnr.map(|p| p.1),
            psnr_samples: mses.len(),
            encode_latency_ms: lat(&encode_lat),
            callback_latency_ms: lat(&callback_lat),
            stage_ms_per_frame: st,
            late_ticks: stats1.late_ticks - stats0.late_ticks,
            overlapped: stats1.overlapped - stats0.overlapped,
            driver_fps: driver_report.map(|r| r.fps()),
        })
    }
}

/// JSON has no infinity: identical pictures are reported as 100 dB.
pub const PSNR_IDENTICAL_DB: f64 = 100.0;

fn cap_psnr(db: f64) -> f64 {
    db.min(PSNR_IDENTICAL_DB)
}

/// The ticks to keep a copy of for PSNR: `n` evenly spread over the measured frames.
pub fn sample_ticks(first: u64, frames: u64, n: usize) -> Vec<u64> {
    if n == 0 || frames == 0 {
        return Vec::new();
    }
    let n = (n as u64).min(frames);
    let step = frames / n;
    (0..n).map(|i| first + i * step + step / 2).collect()
}

fn sleep_while_running(capture: &ScreenCapture, d: Duration) {
    let t0 = Instant::now();
    while t0.elapsed() < d && capture.is_running() {
        std::thread::sleep(Duration::from_millis(10));
    }
}

struct Env<'a> {
    display: Option<&'a str>,
    xserver_pid: Option<u32>,
}

/// A shared nanosecond counter.
#[derive(Default)]
struct Counter(std::sync::atomic::AtomicU64);

impl Counter {
    fn load(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
    fn add(&self, v: u64) {
        self.0.fetch_add(v, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Wraps the capture's source and keeps a copy of the frames at chosen ticks: the exact pixels
/// the pipeline encoded, for PSNR. The copies' time is measured and taken out of the figures.
struct Tee {
    inner: Box<dyn FrameSource>,
    keeper: Keeper,
    samples: Arc<Mutex<Vec<(u64, OwnedFrame)>>>,
    copy_ns: Arc<Counter>,
}

/// The tick counter and the ticks still to copy (ascending).
struct Keeper {
    wanted: std::collections::VecDeque<u64>,
    tick: u64,
    samples: Arc<Mutex<Vec<(u64, OwnedFrame)>>>,
    copy_ns: Arc<Counter>,
}

impl Keeper {
    /// Every tick ends in exactly one `grab` or `last_frame`: count it there, and copy.
    fn see(&mut self, frame: &Frame<'_>) {
        let tick = self.tick;
        self.tick += 1;
        if self.wanted.front() != Some(&tick) {
            return;
        }
        self.wanted.pop_front();
        let t = Instant::now();
        let copy = OwnedFrame::from_view(frame.view());
        if let Ok(mut samples) = self.samples.lock() {
            samples.push((tick, copy));
        }
        self.copy_ns.add(t.elapsed().as_nanos() as u64);
    }
}

impl Tee {
    fn new(inner: Box<dyn FrameSource>, wanted: Vec<u64>) -> Self {
        let samples: Arc<Mutex<Vec<(u64, OwnedFrame)>>> = Arc::default();
        let copy_ns: Arc<Counter> = Arc::default();
        Self {
            inner,
            keeper: Keeper {
                wanted: wanted.into(),
                tick: 0,
                samples: Arc::clone(&samples),
                copy_ns: Arc::clone(&copy_ns),
            },
            samples,
            copy_ns,
        }
    }
}

impl FrameSource for Tee {
    fn size(&self) -> (u32, u32) {
        self.inner.size()
    }

    fn grab(&mut self) -> Result<Frame<'_>, SourceError> {
        let frame = self.inner.grab()?;
        self.keeper.see(&frame);
        Ok(frame)
    }

    fn damage(&mut self) -> Result<Damage, SourceError> {
        self.inner.damage()
    }

    fn last_frame(&mut self) -> Frame<'_> {
        let frame = self.inner.last_frame();
        self.keeper.see(&frame);
        frame
    }
}

/// A running scene driver (`pixelflux-bench drive` in a child process, so its CPU time stays
/// out of the capture's).
struct Driver {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<std::process::ChildStdout>,
}

impl Driver {
    /// Starts the driver and waits until its first frame is on the screen.
    fn spawn(
        display: &str,
        scene: Scene,
        (w, h): (u32, u32),
        fps: f64,
        by_path: bool,
    ) -> anyhow::Result<Self> {
        // /proc/self/exe is this very binary even when a rebuild has replaced the file. Under
        // valgrind it is valgrind's own tool: there `--valgrind-self` names this program by
        // its path (std::env::current_exe, which valgrind answers with the client's path).
        let exe = match std::path::Path::new("/proc/self/exe") {
            p if p.exists() && !by_path => p.to_path_buf(),
            _ => std::env::current_exe().context("path of this program")?,
        };
        let mut child = Command::new(exe)
            .args(["drive", "--display", display])
            .args(["--scene", scene.name(), "--size", &format!("{w}x{h}")])
            .args(["--fps", &fps.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("start the scene driver")?;
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().context("driver stdout")?);
        let mut driver = Self {
            child,
            stdin,
            stdout,
        };
        let mut line = String::new();
        driver.stdout.read_line(&mut line)?;
        if line.trim() != "ready" {
            let _ = driver.child.kill();
            let _ = driver.child.wait();
            bail!("the scene driver did not start (said {:?})", line.trim());
        }
        Ok(driver)
    }

    /// Stops the driver (closes its stdin) and reads its summary.
    fn finish(mut self) -> anyhow::Result<scene_driver::DriverReport> {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.flush();
        }
        let mut report = None;
        for line in (&mut self.stdout).lines() {
            let line = line?;
            if let Some(r) = scene_driver::parse_summary(&line) {
                report = Some(r);
            }
        }
        let status = self.child.wait()?;
        match report {
            Some(r) if status.success() => Ok(r),
            _ => bail!("the scene driver failed ({status})"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if self.stdin.is_some() {
            // Not finished normally (an error on the way): do not leave it drawing.
            self.stdin = None;
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_ticks_spread_over_the_measured_frames() {
        assert_eq!(sample_ticks(30, 300, 3), vec![80, 180, 280]);
        assert_eq!(sample_ticks(0, 2, 5), vec![0, 1]);
        assert!(sample_ticks(0, 300, 0).is_empty());
        let t = sample_ticks(10, 100, 10);
        assert!(t.iter().all(|&k| (10..110).contains(&k)));
        assert!(t.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn tee_copies_the_chosen_ticks_and_passes_frames_through() {
        let inner = Box::new(SyntheticSource::new(Scene::Full, 32, 16));
        let mut tee = Tee::new(inner, vec![1, 3]);
        let mut reference = SyntheticSource::new(Scene::Full, 32, 16);
        let mut seen = Vec::new();
        for _ in 0..5 {
            let f = OwnedFrame::from_view(tee.grab().unwrap().view());
            assert_eq!(&f, reference.advance());
            seen.push(f);
        }
        let samples = tee.samples.lock().unwrap();
        assert_eq!(samples.len(), 2);
        assert_eq!((samples[0].0, samples[1].0), (1, 3));
        assert_eq!(samples[0].1, seen[1]);
        assert_eq!(samples[1].1, seen[3]);
    }
}
