//! Unblocking a capture thread that waits for a server that stopped answering.

use std::net::Shutdown;
use std::os::fd::BorrowedFd;
use std::os::unix::net::UnixStream;

/// Makes a connection's pending and future requests fail at once, from any thread: it shuts
/// the connection's socket down, which wakes a thread blocked on a reply from a server that
/// no longer answers (an X server stopped with SIGSTOP, or hung). Used by
/// [`crate::ScreenCapture::stop`] so that a stop is bounded whatever the server does.
///
/// It holds a duplicate of the socket's descriptor: the socket stays open until both the
/// connection and this handle are dropped.
#[derive(Debug)]
pub struct Interrupter {
    // shutdown(2) acts on the socket, not on the descriptor, and works the same on Unix and
    // TCP stream sockets; `UnixStream` only owns the duplicate and offers `shutdown`.
    socket: UnixStream,
}

impl Interrupter {
    /// A handle on the socket `fd` refers to.
    ///
    /// # Errors
    /// When the descriptor cannot be duplicated (out of descriptors).
    pub fn for_socket(fd: BorrowedFd<'_>) -> std::io::Result<Self> {
        Ok(Self {
            socket: UnixStream::from(fd.try_clone_to_owned()?),
        })
    }

    /// Shuts the connection down: every read or write on it fails from now on.
    pub fn interrupt(&self) {
        if let Err(e) = self.socket.shutdown(Shutdown::Both) {
            tracing::debug!("shutting a source connection down: {e}");
        }
    }
}
