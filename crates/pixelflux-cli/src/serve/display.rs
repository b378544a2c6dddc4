//! A display of our own for `serve` when there is none: an Xvfb (the project's one launcher,
//! `pixelflux-xvfb`: the server picks a free display number and reports it through
//! `-displayfd`), and the user's command running inside it. Both are stopped when dropped.

use std::io::ErrorKind;
use std::process::{Child, Command, ExitStatus, Stdio};

use std::os::unix::process::CommandExt;

use pixelflux_xvfb::{terminate, Target, GRACE};
pub use pixelflux_xvfb::{Xvfb as OwnXvfb, XvfbError as DisplayError};

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
