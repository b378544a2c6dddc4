//! A private Xvfb server, and stopping the processes we start.
//!
//! This is the one Xvfb launcher of the project: `pixelflux serve` starts one when there is no
//! display (`make run`), and the benchmark and the tests (through `pixelflux-testkit`) start
//! theirs with it. The server is started with `-displayfd`: it picks a free display number
//! itself (it can bind a number's socket only when no other server holds it, so concurrent
//! starts never collide) and writes the number to our pipe once it accepts connections. So
//! there is no scanning of `/tmp/.X*-lock` files, no guessing and no polling for a socket.

use std::io::{BufRead, BufReader, ErrorKind};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

mod randr;
pub use randr::{
    output_mode_count, screen_mode_count, screen_size_range, set_screen_size, ResizeError,
    SizeRange,
};

/// How long a starting Xvfb gets to report its display number.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a process gets to exit after SIGTERM before it is killed.
pub const GRACE: Duration = Duration::from_secs(2);

/// Why no Xvfb could be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum XvfbError {
    /// The `Xvfb` program is not installed (not on `PATH`).
    #[error("Xvfb is not installed")]
    NotInstalled,
    /// It could not be run.
    #[error("cannot run Xvfb: {0}")]
    Spawn(#[source] std::io::Error),
    /// It ended before it reported a display number (a bad screen size, for one).
    #[error("Xvfb exited ({0}) before it reported a display number")]
    Exited(ExitStatus),
    /// It reported nothing within the time allowed (it has been stopped).
    #[error("Xvfb reported no display number within {0:?}")]
    Timeout(Duration),
    /// What it wrote to the display pipe is not a display number.
    #[error("Xvfb wrote {0:?} instead of a display number")]
    BadReply(String),
    /// Setting its screen's first size failed.
    #[error(transparent)]
    Resize(#[from] ResizeError),
}

/// An Xvfb server we started; stopped (SIGTERM, then SIGKILL after [`GRACE`]) when dropped.
#[derive(Debug)]
pub struct Xvfb {
    child: Child,
    display: String,
}

impl Xvfb {
    /// Starts `Xvfb` with one `width` x `height` x 24 screen on a display number it picks
    /// itself, without TCP, and returns once it accepts connections.
    ///
    /// # Errors
    /// [`XvfbError::NotInstalled`] when there is no `Xvfb` program; the other variants when
    /// it does not come up within [`START_TIMEOUT`] (the process is stopped then).
    pub fn start(width: u32, height: u32) -> Result<Self, XvfbError> {
        Self::start_screen(&format!("{width}x{height}x24"))
    }

    /// Starts `Xvfb` whose screen can be resized (RandR) up to `max_width` x `max_height`,
    /// and sets it to `width` x `height` at once. Xvfb's screen cannot grow past the size it
    /// was started with (its framebuffer, `max_width * max_height * 4` bytes of memory), so it
    /// starts at the largest size.
    ///
    /// # Errors
    /// As [`Xvfb::start`]; [`XvfbError::Resize`] when the first resize fails (the server is
    /// stopped then).
    pub fn start_resizable(
        width: u32,
        height: u32,
        max_width: u32,
        max_height: u32,
    ) -> Result<Self, XvfbError> {
        let xvfb = Self::start_screen(&format!(
            "{}x{}x24",
            max_width.max(width),
            max_height.max(height)
        ))?;
        set_screen_size(&xvfb.display, width, height)?;
        Ok(xvfb)
    }

    /// [`Xvfb::start`] (`max` `None`) or [`Xvfb::start_resizable`] (`max` the largest size),
    /// and the server is sent SIGTERM when the thread calling this ends, even by SIGKILL of
    /// the whole process ([`die_with_this_thread`]). Only for a thread that lives as long as
    /// the server should, such as the main thread of `pixelflux serve`.
    ///
    /// # Errors
    /// As [`Xvfb::start_resizable`].
    pub fn start_tied(width: u32, height: u32, max: Option<(u32, u32)>) -> Result<Self, XvfbError> {
        let Some((max_width, max_height)) = max else {
            return Self::start_with(&format!("{width}x{height}x24"), true);
        };
        let xvfb = Self::start_with(
            &format!("{}x{}x24", max_width.max(width), max_height.max(height)),
            true,
        )?;
        set_screen_size(&xvfb.display, width, height)?;
        Ok(xvfb)
    }

    /// [`Xvfb::start`] with the screen given as Xvfb's `WxHxD`.
    fn start_screen(screen: &str) -> Result<Self, XvfbError> {
        Self::start_with(screen, false)
    }

    /// [`Xvfb::start_screen`], tied to this thread ([`die_with_this_thread`]) or not.
    fn start_with(screen: &str, tied: bool) -> Result<Self, XvfbError> {
        // `-displayfd 1`: the number goes to our stdout pipe (std keeps fd 1 open across exec,
        // so no descriptor needs special handling). The server writes nothing else there.
        let mut command = Command::new("Xvfb");
        command
            .args(["-displayfd", "1"])
            .args(["-screen", "0", screen])
            .args(["-nolisten", "tcp", "-noreset"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if tied {
            die_with_this_thread(&mut command);
        }
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) if e.kind() == ErrorKind::NotFound => return Err(XvfbError::NotInstalled),
            Err(e) => return Err(XvfbError::Spawn(e)),
        };
        let reply = match child.stdout.take() {
            Some(stdout) => read_line_within(stdout, START_TIMEOUT),
            None => Err(ReadError::Closed),
        };
        let number = match reply {
            Ok(line) if !line.is_empty() => line
                .trim()
                .parse::<u32>()
                .map_err(|_| XvfbError::BadReply(line.trim().to_owned())),
            // End of file: it exited (or closed the pipe, which only an exit does).
            Ok(_) | Err(ReadError::Closed) => {
                let waited = wait_within(&mut child, GRACE);
                Err(match waited {
                    Some(status) => XvfbError::Exited(status),
                    None => XvfbError::BadReply(String::new()),
                })
            }
            Err(ReadError::Timeout) => Err(XvfbError::Timeout(START_TIMEOUT)),
        };
        match number {
            Ok(n) => {
                let name = format!(":{n}");
                tracing::info!("started Xvfb {name} at {screen}");
                Ok(Self {
                    child,
                    display: name,
                })
            }
            Err(e) => {
                terminate(&mut child, GRACE, Target::Process);
                Err(e)
            }
        }
    }

    /// Its display name, such as `:3`.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// The server's process id (the benchmark reads its CPU time).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's exit status if it has ended (it crashed, or someone killed it).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

/// Makes the process `command` starts get SIGTERM when the thread that spawns it ends
/// (Linux `PR_SET_PDEATHSIG`): so a `pixelflux serve` killed with SIGKILL, which runs no
/// cleanup, leaves no Xvfb or terminal behind. The signal follows the spawning *thread*, not
/// the process: spawn only from a thread that lives as long as the child should (the main
/// thread). If the parent is already gone when the child starts, the child exits at once.
pub fn die_with_this_thread(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = nix::unistd::getpid();
    // SAFETY: the closure runs in the forked child before exec and calls only `prctl`,
    // `getppid` and `_exit`, which are async-signal-safe; it allocates nothing and takes no
    // lock.
    unsafe {
        command.pre_exec(move || {
            if nix::libc::prctl(
                nix::libc::PR_SET_PDEATHSIG,
                nix::libc::SIGTERM as nix::libc::c_ulong,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // The parent died between fork and prctl: the signal will never come.
            if nix::libc::getppid() != parent.as_raw() {
                nix::libc::_exit(1);
            }
            Ok(())
        });
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        terminate(&mut self.child, GRACE, Target::Process);
        tracing::info!("stopped Xvfb {}", self.display);
    }
}

enum ReadError {
    Closed,
    Timeout,
}

/// The first line of `pipe`, waiting at most `timeout`. The reader thread ends by itself once
/// the writer exits (the caller stops it on a timeout).
fn read_line_within(
    pipe: impl std::io::Read + Send + 'static,
    timeout: Duration,
) -> Result<String, ReadError> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let read = BufReader::new(pipe).read_line(&mut line);
        let _ = tx.send(read.map(|_| line));
    });
    match rx.recv_timeout(timeout) {
        Ok(Ok(line)) => Ok(line),
        Ok(Err(_)) | Err(mpsc::RecvTimeoutError::Disconnected) => Err(ReadError::Closed),
        Err(mpsc::RecvTimeoutError::Timeout) => Err(ReadError::Timeout),
    }
}

/// Waits up to `limit` for `child` to exit; its status, or `None` if it is still running.
fn wait_within(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let t0 = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Err(_) => return None,
            Ok(None) if t0.elapsed() >= limit => return None,
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// What [`terminate`] signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The child process alone.
    Process,
    /// The child's whole process group (a child started with `process_group(0)`), so a shell
    /// and whatever it started go away together.
    Group,
}

/// Stops `child`: SIGTERM (so Xvfb removes its socket, and programs can exit cleanly), then
/// SIGKILL if it has not exited after `grace`; reaps it. With [`Target::Group`] the group also
/// gets a SIGKILL once the leader has gone, for what it left behind.
pub fn terminate(child: &mut Child, grace: Duration, target: Target) {
    let Ok(pid) = i32::try_from(child.id()).map(Pid::from_raw) else {
        let _ = child.kill();
        let _ = child.wait();
        return;
    };
    let signal = |sig| {
        let _ = match target {
            Target::Process => kill(pid, sig),
            Target::Group => killpg(pid, sig),
        };
    };
    if !matches!(child.try_wait(), Ok(Some(_))) {
        signal(Signal::SIGTERM);
        if wait_within(child, grace).is_none() {
            signal(Signal::SIGKILL);
            let _ = child.kill();
            let _ = child.wait();
        }
    }
    if target == Target::Group {
        // The leader is gone; what it started may not be.
        signal(Signal::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// The inode of a display's socket, if it exists. Other servers on this machine start
    /// at the same time and may take a freed number at once: an inode tells sockets apart.
    fn socket_inode(display: &str) -> Option<u64> {
        use std::os::unix::fs::MetadataExt;
        let path = Path::new("/tmp/.X11-unix").join(format!("X{}", &display[1..]));
        std::fs::metadata(path).ok().map(|m| m.ino())
    }

    #[test]
    fn servers_started_together_get_different_numbers_and_clean_up() {
        let starts: Vec<_> = (0..3)
            .map(|_| std::thread::spawn(|| Xvfb::start(64, 48)))
            .collect();
        let servers: Vec<Xvfb> = starts
            .into_iter()
            .map(|t| t.join().unwrap().expect("Xvfb is installed here"))
            .collect();
        let mut displays: Vec<String> = servers.iter().map(|s| s.display().to_owned()).collect();
        displays.sort_unstable();
        displays.dedup();
        assert_eq!(displays.len(), 3, "{displays:?}");
        let sockets: Vec<(String, Option<u64>, u32)> = servers
            .iter()
            .map(|s| (s.display().to_owned(), socket_inode(s.display()), s.pid()))
            .collect();
        drop(servers);
        for (display, inode, pid) in sockets {
            assert!(inode.is_some(), "{display} had a socket while running");
            assert_ne!(socket_inode(&display), inode, "{display}: socket removed");
            assert!(
                !Path::new(&format!("/proc/{pid}")).exists(),
                "{display}: reaped"
            );
        }
    }

    #[test]
    fn a_resizable_server_takes_sizes_up_to_its_start_size_and_keeps_one_mode() {
        let xvfb = Xvfb::start_resizable(320, 200, 800, 600).unwrap();
        let d = xvfb.display().to_owned();
        assert_eq!(screen_size_range(&d).unwrap().1, (800, 600));
        let built_in = output_mode_count(&d).unwrap();
        for (w, h) in [(640, 480), (800, 600), (101, 77), (640, 480), (333, 222)] {
            set_screen_size(&d, w, h).unwrap();
        }
        // The last size's mode is the only one added that is left.
        assert!(output_mode_count(&d).unwrap() <= built_in, "modes pile up");
        match set_screen_size(&d, 801, 600) {
            Err(ResizeError::OutOfRange { max_width: 800, .. }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn resizes_destroy_the_modes_of_earlier_sizes() {
        let xvfb = Xvfb::start_resizable(320, 200, 1000, 800).unwrap();
        let d = xvfb.display().to_owned();
        let before = screen_mode_count(&d).unwrap();
        for i in 0..40 {
            set_screen_size(&d, 400 + 10 * i, 300 + 7 * i).unwrap();
        }
        // The screen's list (all modes, on an output or not), not only the output's.
        let after = screen_mode_count(&d).unwrap();
        assert!(after <= before + 1, "{before} modes before, {after} after");
        assert!(output_mode_count(&d).unwrap() <= after);
    }

    #[test]
    fn windows_that_filled_the_screen_follow_its_size_and_others_stay() {
        use x11rb::connection::Connection as _;
        use x11rb::protocol::xproto::{ConnectionExt as _, CreateWindowAux, WindowClass};
        let xvfb = Xvfb::start_resizable(640, 480, 1200, 900).unwrap();
        let d = xvfb.display().to_owned();
        let (conn, screen) = x11rb::connect(Some(&d)).unwrap();
        let root = conn.setup().roots[screen].root;
        // (x, y, width, height, border): filled with its border, filled inside (xterm
        // `-maximized`: the border past the edges), not filling, filling but unmapped.
        let specs = [
            (0, 0, 638, 478, 1),
            (0, 0, 640, 480, 1),
            (10, 10, 300, 200, 0),
            (0, 0, 640, 480, 0),
        ];
        let mut windows = Vec::new();
        for (i, &(x, y, w, h, b)) in specs.iter().enumerate() {
            let id = conn.generate_id().unwrap();
            conn.create_window(
                0,
                id,
                root,
                x,
                y,
                w,
                h,
                b,
                WindowClass::INPUT_OUTPUT,
                0,
                &CreateWindowAux::new(),
            )
            .unwrap();
            if i < 3 {
                conn.map_window(id).unwrap();
            }
            windows.push(id);
        }
        conn.flush().unwrap();
        conn.get_input_focus().unwrap().reply().unwrap();
        let size = |id| {
            let g = conn.get_geometry(id).unwrap().reply().unwrap();
            (g.x, g.y, g.width, g.height)
        };
        for (w, h) in [(1024u16, 700u16), (400, 300)] {
            set_screen_size(&d, w.into(), h.into()).unwrap();
            assert_eq!(size(windows[0]), (0, 0, w - 2, h - 2), "with its border");
            assert_eq!(size(windows[1]), (0, 0, w, h), "inside");
            assert_eq!(size(windows[2]), (10, 10, 300, 200), "not filling: kept");
            assert_eq!(size(windows[3]), (0, 0, 640, 480), "unmapped: kept");
        }
    }

    #[test]
    fn a_tied_server_goes_when_the_thread_that_started_it_ends() {
        let started = std::thread::spawn(|| {
            let xvfb = Xvfb::start_tied(64, 48, None).unwrap();
            let pid = xvfb.pid();
            // Not dropped: the thread's end alone must stop it.
            std::mem::forget(xvfb);
            pid
        });
        let pid = started.join().unwrap();
        let gone = |pid: u32| {
            // Gone, or a zombie (this process never reaps it: the Child was forgotten).
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| {
                    s.rsplit(')')
                        .next()
                        .unwrap_or("")
                        .trim_start()
                        .starts_with('Z')
                })
                .unwrap_or(true)
        };
        let t0 = Instant::now();
        while !gone(pid) && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(gone(pid), "Xvfb {pid} still runs after its thread ended");
    }

    #[test]
    fn a_server_that_cannot_start_is_an_error_not_a_hang() {
        // Depth 7 makes Xvfb exit at once ("Couldn't add screen").
        match Xvfb::start_screen("64x48x7") {
            Err(XvfbError::Exited(status)) => assert!(!status.success()),
            other => panic!("expected Exited, got {other:?}"),
        }
    }

    #[test]
    fn terminate_kills_what_ignores_sigterm() {
        use std::os::unix::process::ExitStatusExt;
        // An ignored SIGTERM stays ignored across exec: `sleep` ignores it too.
        let mut child = Command::new("sh")
            .args(["-c", "trap '' TERM; echo ready; exec sleep 30"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        assert!(matches!(read_line_within(stdout, START_TIMEOUT), Ok(l) if l == "ready\n"));
        terminate(&mut child, Duration::from_millis(300), Target::Process);
        let status = child.try_wait().unwrap().expect("reaped");
        assert_eq!(
            status.signal(),
            Some(9),
            "SIGKILL after SIGTERM was ignored"
        );
    }
}
