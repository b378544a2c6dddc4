//! A private Xvfb for the X11 path of the benchmark; killed when dropped.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// An Xvfb server of our own.
pub struct Xvfb {
    child: Child,
    /// Display name, e.g. `:417`.
    pub display: String,
}

impl Xvfb {
    /// Starts Xvfb at `width` x `height` x 24 on the first free display number.
    pub fn start(width: u32, height: u32) -> anyhow::Result<Self> {
        let base = 300 + std::process::id() % 300;
        for n in base..base + 200 {
            if Path::new(&format!("/tmp/.X{n}-lock")).exists()
                || Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
            {
                continue;
            }
            let mut child = Command::new("Xvfb")
                .arg(format!(":{n}"))
                .args(["-screen", "0", &format!("{width}x{height}x24")])
                .args(["-nolisten", "tcp", "-noreset"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("cannot start Xvfb (install it: scripts/install-deps.sh run)")?;
            let display = format!(":{n}");
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // another process took this number first
                }
                if Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
                    && x11rb::connect(Some(&display)).is_ok()
                {
                    return Ok(Self { child, display });
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        bail!("no free X display number for Xvfb")
    }

    /// The server's process id (to read its CPU time).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU seconds (user + system) another process has used, from `/proc/PID/stat`; `None` when
/// it cannot be read.
pub fn process_cpu_seconds_of(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is parenthesised and may hold spaces: count fields after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name and state.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // USER_HZ is 100 on every Linux ABI we build for.
    Some((utime + stime) / 100.0)
}
