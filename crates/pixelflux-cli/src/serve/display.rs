//! A display of our own for `serve` when there is none: an Xvfb on a free display number, and
//! the user's command running inside it. Both are killed when dropped.

use std::io::ErrorKind;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use std::os::unix::process::CommandExt;

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

/// Why no Xvfb could be started.
#[derive(Debug, thiserror::Error)]
pub enum DisplayError {
    /// The `Xvfb` program is not installed.
    #[error("Xvfb is not installed")]
    NotInstalled,
    /// It is installed but did not come up.
    #[error("cannot start Xvfb: {0}")]
    Failed(String),
}

/// Display numbers tried, from the first.
const FIRST_DISPLAY: u32 = 20;
const LAST_DISPLAY: u32 = 400;
/// How long a starting Xvfb gets to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// An Xvfb server we started.
#[derive(Debug)]
pub struct OwnXvfb {
    child: Child,
    /// Its display name, such as `:20`.
    pub display: String,
}

fn display_taken(n: u32) -> bool {
    Path::new(&format!("/tmp/.X{n}-lock")).exists()
        || Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
}

impl OwnXvfb {
    /// Starts `Xvfb` at `width` x `height` x 24 on the first free display number.
    pub fn start(width: u32, height: u32) -> Result<Self, DisplayError> {
        for n in FIRST_DISPLAY..=LAST_DISPLAY {
            if display_taken(n) {
                continue;
            }
            let display = format!(":{n}");
            let mut child = match Command::new("Xvfb")
                .arg(&display)
                .args(["-screen", "0", &format!("{width}x{height}x24")])
                .args(["-nolisten", "tcp", "-noreset"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
            {
                Ok(child) => child,
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    return Err(DisplayError::NotInstalled)
                }
                Err(e) => return Err(DisplayError::Failed(e.to_string())),
            };
            let t0 = Instant::now();
            let mut exited = false;
            while t0.elapsed() < START_TIMEOUT {
                if let Ok(Some(_)) = child.try_wait() {
                    // Another server took this number between our check and its start.
                    exited = true;
                    break;
                }
                if Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
                    && pixelflux::source::x11::screen_size(Some(&display)).is_ok()
                {
                    let name = display.clone();
                    tracing::info!("started Xvfb {name} at {width}x{height}");
                    return Ok(Self { child, display });
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            terminate(&mut child, GRACE, false);
            if !exited {
                return Err(DisplayError::Failed(format!(
                    "{display} did not accept connections within {START_TIMEOUT:?}"
                )));
            }
        }
        Err(DisplayError::Failed(format!(
            "no free display number in :{FIRST_DISPLAY}..:{LAST_DISPLAY}"
        )))
    }

    /// The server's process id (the benchmark reads its CPU time).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// How long a process gets to exit after SIGTERM before it is killed.
const GRACE: Duration = Duration::from_secs(2);

/// SIGTERM (so Xvfb removes its lock file and socket, and apps can exit cleanly), then
/// SIGKILL after `grace`. With `group`, the signals go to the child's whole process group.
fn terminate(child: &mut Child, grace: Duration, group: bool) {
    let Ok(pid) = i32::try_from(child.id()).map(Pid::from_raw) else {
        let _ = child.kill();
        let _ = child.wait();
        return;
    };
    let signal = |sig| {
        let _ = if group {
            killpg(pid, sig)
        } else {
            kill(pid, sig)
        };
    };
    if let Ok(Some(_)) = child.try_wait() {
        if group {
            // The leader is gone; what it started may not be.
            signal(Signal::SIGKILL);
        }
        return;
    }
    signal(Signal::SIGTERM);
    let t0 = Instant::now();
    while t0.elapsed() < grace {
        if let Ok(Some(_)) = child.try_wait() {
            if group {
                signal(Signal::SIGKILL);
            }
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    signal(Signal::SIGKILL);
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for OwnXvfb {
    fn drop(&mut self) {
        terminate(&mut self.child, GRACE, false);
        tracing::info!("stopped Xvfb {}", self.display);
    }
}

/// How long [`XHold::connect`] keeps trying while the X server resets.
const HOLD_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection to the X server held for as long as `serve` runs.
///
/// A plain X server (started without `-noreset`) resets when its last client disconnects,
/// and a connection made during the reset is dropped ("connection reset by peer"). `serve`
/// opens several connections in turn (the screen size, the capture, size checks, a restarted
/// capture); with this one open underneath, none of their closes can reset the server.
pub struct XHold {
    _conn: x11rb::rust_connection::RustConnection,
}

impl XHold {
    /// Connects to `display` and completes a round trip, retrying while the server is in a
    /// reset (another client, such as a previous `serve`, just left) for up to 5 s.
    pub fn connect(display: &str) -> Result<Self, String> {
        use x11rb::connection::Connection as _;
        use x11rb::protocol::xproto::ConnectionExt as _;
        let t0 = Instant::now();
        loop {
            let attempt = x11rb::connect(Some(display))
                .map_err(|e| e.to_string())
                .and_then(|(conn, _)| {
                    conn.get_input_focus()
                        .map_err(|e| e.to_string())?
                        .reply()
                        .map_err(|e| e.to_string())?;
                    conn.flush().map_err(|e| e.to_string())?;
                    Ok(conn)
                });
            match attempt {
                Ok(conn) => return Ok(Self { _conn: conn }),
                Err(e) if t0.elapsed() >= HOLD_TIMEOUT => return Err(e),
                Err(e) => {
                    let name = display;
                    tracing::debug!("X display {name} not ready ({e}): retrying");
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }
}

/// The user's program, started inside the display.
#[derive(Debug)]
pub struct AppChild {
    child: Child,
    name: String,
}

impl AppChild {
    /// Runs `argv` with `DISPLAY` set to `display`.
    pub fn spawn(argv: &[String], display: &str) -> std::io::Result<Self> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| std::io::Error::new(ErrorKind::InvalidInput, "empty command"))?;
        // A process group of its own, so a shell and whatever it started go away together.
        let child = Command::new(program)
            .args(args)
            .env("DISPLAY", display)
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()?;
        let (pid, on) = (child.id(), display.to_string());
        tracing::info!("started {program:?} (pid {pid}) on {on}");
        Ok(Self {
            child,
            name: program.clone(),
        })
    }

    /// The exit status if it has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The program's name, for log lines.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for AppChild {
    fn drop(&mut self) {
        terminate(&mut self.child, GRACE, true);
        tracing::info!("stopped {:?}", self.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_xvfb_comes_up_and_goes_away_with_its_child() {
        let xvfb = OwnXvfb::start(320, 240).expect("Xvfb is installed here");
        assert_eq!(
            pixelflux::source::x11::screen_size(Some(&xvfb.display)).unwrap(),
            (320, 240)
        );
        let mut child = AppChild::spawn(&["sleep".into(), "30".into()], &xvfb.display).unwrap();
        let pid = child.child.id();
        assert!(child.exited().is_none());
        drop(child);
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .map(|s| s.contains(") Z"))
                    .unwrap_or(true),
            "the child was killed"
        );
        let display = xvfb.display.clone();
        drop(xvfb);
        assert!(
            pixelflux::source::x11::screen_size(Some(&display)).is_err(),
            "Xvfb was stopped"
        );
        let n = &display[1..];
        assert!(
            !Path::new(&format!("/tmp/.X{n}-lock")).exists(),
            "Xvfb cleaned up after SIGTERM"
        );
    }

    #[test]
    fn an_empty_command_is_refused() {
        assert!(AppChild::spawn(&[], ":0").is_err());
    }
}
