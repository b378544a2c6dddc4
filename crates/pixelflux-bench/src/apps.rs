//! Real applications as workloads, beside the synthetic scenes: a terminal scrolling a log
//! (xterm), an idle desktop with a clock (xclock), a video playing in a window (ffplay of a clip
//! ffmpeg makes from its `testsrc2` pattern). Each runs on the benchmark's X display; there is
//! no reference picture, so these runs have no PSNR in `pixelflux-bench` itself;
//! `bench/compare.py` measures it by freezing the application (SIGSTOP to its process group),
//! taking a screenshot (`pixelflux-bench snap`) and comparing it with what each library
//! delivered by then (`pixelflux-bench psnr --shots`). Install them with
//! `scripts/install-deps.sh bench` (Debian: xterm, x11-apps, ffmpeg).
//!
//! The workload is the same in every run: the terminal's log comes from `pixelflux-bench
//! lines`, a fixed number of lines per second (not as fast as xterm can draw, which would
//! depend on how much CPU the capture leaves it), the clip restarts with the player, and each
//! run starts the application afresh.

use std::io::{BufRead, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::ValueEnum;

/// A real application to capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum App {
    /// xterm filling the region, printing a build log in a loop at [`TERMINAL_LINES_PER_S`]
    /// (scrolls every frame).
    Terminal,
    /// xterm filling the region, printing the same log at a compiler's pace: 4 lines every
    /// 20 ms or so (about 200 lines/s), so consecutive frames share most of their rows, moved
    /// up by a line or a few (what scroll detection is for).
    Log,
    /// xclock (digital, seconds) in a corner of an otherwise still screen.
    Clock,
    /// ffplay playing a 1280x720 30 fps clip in a window in the middle of the region.
    Video,
}

impl App {
    /// The name in the results (`app-` and the option's value).
    pub fn name(self) -> &'static str {
        match self {
            Self::Terminal => "app-terminal",
            Self::Log => "app-log",
            Self::Clock => "app-clock",
            Self::Video => "app-video",
        }
    }
}

/// The `log` application's loop: the log file (`$0`) 4 lines at a time, with a 20 ms pause.
const PACED: &str = "while :; do n=0; while IFS= read -r l; do printf '%s\\n' \"$l\"; \
                     n=$((n+1)); if [ $n -ge 4 ]; then n=0; sleep 0.02; fi; done < \"$0\"; done";

/// How long an application gets to put its first picture up.
const SETTLE: Duration = Duration::from_millis(1500);

/// Lines the terminal prints per second: 4 per frame at 60 fps, a fast build log.
pub const TERMINAL_LINES_PER_S: f64 = 240.0;

/// Batches per second the log is written in (one `write` each, so xterm scrolls once per
/// batch, as a program printing line-buffered bursts makes it).
const LINE_BATCHES_PER_S: f64 = 60.0;

/// A running application; killed (and reaped) when dropped.
pub struct AppRun {
    child: Child,
    dir: PathBuf,
}

impl AppRun {
    /// Starts `app` on `display` for a `w`x`h` region at the screen's top left, and waits
    /// [`SETTLE`] for it to come up; fails when it exits in that time or is not installed.
    pub fn start(app: App, display: &str, (w, h): (u32, u32)) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "pixelflux-bench-{}-{}",
            app.name(),
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let mut cmd = match app {
            App::Terminal => {
                let log = dir.join("build.log");
                write_build_log(&log)?;
                // The default font is 6x13: fill the region.
                let me = std::env::current_exe().context("the benchmark's own path")?;
                let mut c = Command::new("xterm");
                c.args(["-geometry", &format!("{}x{}+0+0", w / 6, h / 13)])
                    .arg("-e")
                    .arg(me)
                    .args(["lines", "--rate", &TERMINAL_LINES_PER_S.to_string()])
                    .arg("--file")
                    .arg(&log);
                c
            }
            App::Log => {
                let log = dir.join("build.log");
                write_build_log(&log)?;
                let mut c = Command::new("xterm");
                c.args(["-geometry", &format!("{}x{}+0+0", w / 6, h / 13)])
                    .args(["-e", "sh", "-c", PACED])
                    .arg(&log);
                c
            }
            App::Clock => {
                let mut c = Command::new("xclock");
                c.args(["-digital", "-update", "1"])
                    .args(["-geometry", &format!("+{}+0", w.saturating_sub(300))]);
                c
            }
            App::Video => {
                let clip = dir.join("clip.mp4");
                make_clip(&clip)?;
                let (vw, vh) = (1280.min(w), 720.min(h));
                let mut c = Command::new("ffplay");
                c.args(["-loglevel", "error", "-loop", "0", "-an", "-noborder"])
                    .args(["-x", &vw.to_string(), "-y", &vh.to_string()])
                    .args(["-left", &((w - vw) / 2).to_string()])
                    .args(["-top", &((h - vh) / 2).to_string()])
                    .arg(&clip)
                    .env("SDL_VIDEODRIVER", "x11");
                c
            }
        };
        let program = cmd.get_program().to_string_lossy().into_owned();
        let child = cmd
            .env("DISPLAY", display)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: `bench/compare.py` freezes the whole application
            // (xterm and the log writer) with one signal to the group.
            .process_group(0)
            .spawn()
            .with_context(|| {
                format!("start {program} (install it: scripts/install-deps.sh bench)")
            })?;
        let mut run = Self { child, dir };
        let t0 = Instant::now();
        while t0.elapsed() < SETTLE {
            if let Some(status) = run.child.try_wait()? {
                bail!("{program} exited at start ({status})");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(run)
    }
}

impl AppRun {
    /// The application's process group (its own pid).
    pub fn process_group(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for AppRun {
    fn drop(&mut self) {
        // The whole group (xterm's log writer too), then the child itself.
        if let Ok(pgid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pgid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A log like a build's: lines of varied length, so a scroll moves real text.
fn write_build_log(path: &Path) -> anyhow::Result<()> {
    let mut text = String::new();
    for i in 0..4000u32 {
        let line = match i % 5 {
            0 => format!(
                "   Compiling crate-{i} v0.{}.{} (/src/crates/crate-{i})",
                i % 7,
                i % 13
            ),
            1 => format!(
                "warning: unused variable `x{i}` --> src/module_{}.rs:{}:9",
                i % 31,
                i % 400
            ),
            2 => format!("    Checking dependency-{} v1.{}.0", i * 7 % 97, i % 11),
            3 => format!("test tests::case_{i} ... ok"),
            _ => format!("{:>8} {}", i, "=".repeat((i % 60) as usize)),
        };
        text.push_str(&line);
        text.push('\n');
    }
    std::fs::write(path, text).with_context(|| format!("write {}", path.display()))
}

/// A 10 s 1280x720 30 fps clip of ffmpeg's moving test pattern (MPEG-4 part 2: every ffmpeg
/// build has that encoder).
fn make_clip(path: &Path) -> anyhow::Result<()> {
    let status = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-f", "lavfi"])
        .args(["-i", "testsrc2=size=1280x720:rate=30", "-t", "10"])
        .args(["-c:v", "mpeg4", "-q:v", "4"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .context("run ffmpeg (install it: scripts/install-deps.sh bench)")?;
    if !status.success() {
        bail!("ffmpeg could not make the clip ({status})");
    }
    Ok(())
}

/// `pixelflux-bench lines`: the terminal workload's log writer.
#[derive(Debug, clap::Args)]
pub struct LinesArgs {
    /// The text to print, line by line, from the top again at its end.
    #[arg(long)]
    pub file: PathBuf,
    /// Lines per second.
    #[arg(long, default_value_t = TERMINAL_LINES_PER_S)]
    pub rate: f64,
}

/// Prints `args.file` at `args.rate` lines per second in [`LINE_BATCHES_PER_S`] batches, in a
/// loop, until stdout closes. Behind schedule it skips ahead rather than bursting.
pub fn run_lines(args: &LinesArgs) -> anyhow::Result<()> {
    let file =
        std::fs::File::open(&args.file).with_context(|| format!("open {}", args.file.display()))?;
    let lines: Vec<String> = std::io::BufReader::new(file)
        .lines()
        .collect::<Result<_, _>>()?;
    if lines.is_empty() || !args.rate.is_finite() || args.rate <= 0.0 {
        bail!("nothing to print");
    }
    let period = Duration::from_secs_f64(1.0 / LINE_BATCHES_PER_S);
    let per_batch = args.rate / LINE_BATCHES_PER_S;
    let mut stdout = std::io::stdout().lock();
    let (mut next, mut owed, mut at) = (Instant::now(), 0.0f64, 0usize);
    let mut batch = String::new();
    loop {
        owed += per_batch;
        batch.clear();
        while owed >= 1.0 {
            batch.push_str(&lines[at % lines.len()]);
            batch.push('\n');
            at += 1;
            owed -= 1.0;
        }
        if stdout
            .write_all(batch.as_bytes())
            .and_then(|()| stdout.flush())
            .is_err()
        {
            return Ok(());
        }
        next += period;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
    }
}
