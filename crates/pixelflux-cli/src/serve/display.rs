//! A display of our own for `serve` when there is none: an Xvfb (the project's one launcher,
//! `pixelflux-xvfb`: the server picks a free display number and reports it through
//! `-displayfd`), and the user's command running inside it. Both are stopped when dropped.

use std::io::ErrorKind;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use std::os::unix::process::CommandExt;

use x11rb::errors::ConnectError;

use pixelflux_xvfb::{die_with_this_thread, terminate, Target, GRACE};
pub use pixelflux_xvfb::{Xvfb as OwnXvfb, XvfbError as DisplayError};

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
    /// reset (another client, such as a previous `serve`, just left) for up to 5 s; the retry is
    /// logged once (info). A name that is not a display name fails at once.
    pub fn connect(display: &str) -> Result<Self, String> {
        use x11rb::connection::Connection as _;
        use x11rb::protocol::xproto::ConnectionExt as _;
        pixelflux::source::x11::check_display_name(Some(display)).map_err(|e| e.to_string())?;
        let t0 = Instant::now();
        let mut said = false;
        loop {
            let attempt = x11rb::connect(Some(display))
                .map_err(|e| match e {
                    // A name no retry can make valid fails at once.
                    ConnectError::DisplayParsingError(_) => Err(e.to_string()),
                    e => Ok(e.to_string()),
                })
                .and_then(|(conn, _)| {
                    let again = |e: String| Ok(e);
                    conn.get_input_focus()
                        .map_err(|e| again(e.to_string()))?
                        .reply()
                        .map_err(|e| again(e.to_string()))?;
                    conn.flush().map_err(|e| again(e.to_string()))?;
                    Ok(conn)
                });
            match attempt {
                Ok(conn) => return Ok(Self { _conn: conn }),
                Err(Err(fatal)) => return Err(fatal),
                Err(Ok(e)) if t0.elapsed() >= HOLD_TIMEOUT => return Err(e),
                Err(Ok(e)) => {
                    // Said once, so a display that never answers is not 5 s of silence.
                    if !said {
                        said = true;
                        let (name, secs) = (display, HOLD_TIMEOUT.as_secs());
                        tracing::info!(
                            "X display {name} does not answer ({e}): retrying for up to {secs} s"
                        );
                    }
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
    /// Runs `argv` with `DISPLAY` set to `display`. It gets SIGTERM when the calling thread
    /// ends, even by SIGKILL of `serve` ([`die_with_this_thread`]): call it from the main
    /// thread.
    pub fn spawn(argv: &[String], display: &str) -> std::io::Result<Self> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| std::io::Error::new(ErrorKind::InvalidInput, "empty command"))?;
        // A process group of its own, so a shell and whatever it started go away together.
        let mut command = Command::new(program);
        command
            .args(args)
            .env("DISPLAY", display)
            .stdin(Stdio::null())
            .process_group(0);
        die_with_this_thread(&mut command);
        let child = command.spawn()?;
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
        terminate(&mut self.child, GRACE, Target::Group);
        tracing::info!("stopped {:?}", self.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;

    #[test]
    fn own_xvfb_comes_up_and_goes_away_with_its_child() {
        let xvfb = OwnXvfb::start(320, 240).expect("Xvfb is installed here");
        let display = xvfb.display().to_owned();
        assert_eq!(
            pixelflux::source::x11::screen_size(Some(&display)).unwrap(),
            (320, 240)
        );
        let mut child = AppChild::spawn(&["sleep".into(), "30".into()], &display).unwrap();
        let pid = child.child.id();
        assert!(child.exited().is_none());
        drop(child);
        // Reaped by the drop: no such process any more (not even a zombie).
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "the child was stopped and reaped"
        );
        // Compared by inode and pid: other servers on this machine may take the number at once.
        let socket = format!("/tmp/.X11-unix/X{}", &display[1..]);
        let inode = |path: &str| std::fs::metadata(path).ok().map(|m| m.ino());
        let running = inode(&socket);
        assert!(running.is_some(), "Xvfb has its socket");
        let xvfb_pid = xvfb.pid();
        drop(xvfb);
        assert!(
            !Path::new(&format!("/proc/{xvfb_pid}")).exists(),
            "Xvfb was stopped and reaped"
        );
        assert_ne!(
            inode(&socket),
            running,
            "Xvfb removed its socket after SIGTERM"
        );
    }

    #[test]
    fn an_empty_command_is_refused() {
        assert!(AppChild::spawn(&[], ":0").is_err());
    }
}
