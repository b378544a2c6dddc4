//! Notices that an X server given with `--display` went away while no page watches. The
//! capture then ticks once every 100 s (see `IDLE_FPS`), so its own error would come that
//! late; a private Xvfb is supervised as a process instead.

use x11rb::connection::Connection as _;
use x11rb::rust_connection::RustConnection;

/// A connection of its own to the display, read without blocking on each supervisor tick:
/// the server closing it (it exited or was killed) shows as end-of-file. No request is ever
/// sent, so a hung server (SIGSTOP) is not mistaken for a gone one and costs nothing.
pub struct XAlive {
    conn: RustConnection,
}

impl XAlive {
    /// Connects to `display` (`None`: `$DISPLAY`); `None` when it cannot (the capture, which
    /// connected a moment ago, reports that itself).
    pub fn open(display: Option<&str>) -> Option<Self> {
        match x11rb::connect(display) {
            Ok((conn, _)) => Some(Self { conn }),
            Err(e) => {
                tracing::debug!("X liveness connection: {e}");
                None
            }
        }
    }

    /// Why the server is gone, or `None` while the connection is open. Events are never
    /// selected on this connection, so anything read is discarded.
    pub fn gone(&self) -> Option<String> {
        loop {
            match self.conn.poll_for_event() {
                Ok(Some(_)) => continue,
                Ok(None) => return None,
                Err(e) => return Some(format!("the X server went away ({e})")),
            }
        }
    }
}
