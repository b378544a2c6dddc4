//! Every resource a client can make `serve` hold, and its bound.
//!
//! A stranger who can reach the port must not be able to exhaust memory, file descriptors or
//! connection slots. Each bound below is per connection or per server; a client over one is
//! disconnected (WebSocket clients with a close code, see [`super::http`]).
//!
//! | resource | bound |
//! |---|---|
//! | connections (HTTP and WebSocket together) | [`Limits::max_connections`], below the fd limit; more are answered `503` and closed |
//! | a request head | complete within [`Limits::header_timeout`], else the connection is closed |
//! | a TLS handshake (HTTPS) | complete within [`Limits::header_timeout`], else the connection is closed |
//! | stripes waiting for a viewer | the hub's queue budget ([`super::hub::HubConfig`]) |
//! | bytes waiting in the WebSocket write buffer | [`Limits::max_write_buffer`] |
//! | one message written to a viewer | done within [`Limits::write_timeout`], else the connection is dropped |
//! | client messages | [`super::http::MAX_CLIENT_MESSAGE`] bytes; a paste [`super::http::MAX_PASTE_MESSAGE`] with at most [`super::clipboard::MAX_CLIPBOARD`] bytes of text (close 1009) |
//! | full refreshes of the capture (every viewer gets them) | one per [`super::hub::HubConfig::min_refresh_interval`] for the whole server, coalesced |
//! | protocol pings from a client | a burst of [`Limits::ping_burst`], then [`Limits::pings_per_second`] (close 1008) |
//! | a silent viewer | pinged every [`Limits::ping_interval`], closed after [`Limits::idle_timeout`] without a pong (close 1008) |

use std::time::Duration;

/// Bounds on what clients can make the server hold. [`Limits::default`] is what `serve` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Concurrent connections (HTTP and WebSocket). Past it, new connections are answered
    /// `503` and closed at once.
    pub max_connections: usize,
    /// Time a connection gets to send a complete request head (the request line and headers),
    /// and over HTTPS to complete the TLS handshake before that.
    pub header_timeout: Duration,
    /// Largest WebSocket write buffer in bytes (frames waiting for the socket): one stripe and
    /// the automatic pongs. A stripe larger than this cannot be sent and ends the connection.
    pub max_write_buffer: usize,
    /// Time one message to a viewer may take to be written; a viewer that does not read for
    /// this long is dropped.
    pub write_timeout: Duration,
    /// WebSocket protocol pings a client may send at once...
    pub ping_burst: u32,
    /// ...and per second after that. Browsers send none; more than this is a flood.
    pub pings_per_second: u32,
    /// How often the server pings a viewer (browsers answer without the page's help).
    pub ping_interval: Duration,
    /// A viewer that has sent no pong for this long is closed (browsers answer every ping).
    pub idle_timeout: Duration,
}

/// Connections `serve` allows by default (when the fd limit permits).
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

/// File descriptors kept free for everything else: X connections, the capture's threads,
/// Xvfb and child pipes, log files.
pub const FD_RESERVE: u64 = 64;

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_timeout: Duration::from_secs(5),
            // Far above any stripe (a 7680-pixel-wide 64-row JPEG stripe at quality 100 is
            // about 1-2 MB), so only a client that stops reading fills it.
            max_write_buffer: 16 << 20,
            write_timeout: Duration::from_secs(30),
            ping_burst: 32,
            pings_per_second: 4,
            ping_interval: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(45),
        }
    }
}

impl Limits {
    /// The defaults with `max_connections` brought under the process's file-descriptor limit,
    /// after raising the soft limit to the hard one (see [`raise_fd_limit`]).
    pub fn for_this_process() -> Self {
        let fds = raise_fd_limit();
        let room = fds.saturating_sub(FD_RESERVE).max(1);
        let max_connections =
            DEFAULT_MAX_CONNECTIONS.min(usize::try_from(room).unwrap_or(usize::MAX));
        if max_connections < DEFAULT_MAX_CONNECTIONS {
            tracing::warn!(
                "the file-descriptor limit ({fds}) allows only {max_connections} connections"
            );
        }
        Self {
            max_connections,
            ..Self::default()
        }
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (many systems start processes at 1024
/// with a hard limit far above) and returns the soft limit now in force. If the limit cannot
/// be read, returns 1024, the common default.
pub fn raise_fd_limit() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 1024;
    };
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        tracing::debug!("raised the file-descriptor limit from {soft} to {hard}");
        return hard;
    }
    soft
}

/// A token bucket for a client's protocol pings: `burst` at once, refilled at `per_second`.
#[derive(Debug, Clone)]
pub struct PingBudget {
    tokens: f64,
    burst: f64,
    per_second: f64,
    last: std::time::Instant,
}

impl PingBudget {
    /// A full bucket.
    pub fn new(limits: &Limits) -> Self {
        Self {
            tokens: f64::from(limits.ping_burst),
            burst: f64::from(limits.ping_burst),
            per_second: f64::from(limits.pings_per_second),
            last: std::time::Instant::now(),
        }
    }

    /// Takes one ping from the bucket; `false` when it is empty (the client floods).
    pub fn take(&mut self) -> bool {
        let now = std::time::Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * self.per_second;
        self.last = now;
        self.tokens = (self.tokens + refill).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fd_limit_is_raised_to_the_hard_limit_and_connections_fit_under_it() {
        use nix::sys::resource::{getrlimit, Resource};
        let limits = Limits::for_this_process();
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        assert_eq!(soft, hard, "the soft limit was raised");
        assert!(limits.max_connections as u64 + FD_RESERVE <= soft.max(FD_RESERVE + 1));
        assert!(limits.max_connections >= 1);
    }

    #[test]
    fn a_ping_flood_empties_the_bucket() {
        let limits = Limits {
            ping_burst: 8,
            pings_per_second: 1,
            ..Limits::default()
        };
        let mut budget = PingBudget::new(&limits);
        // A burst of 8 passes; pinging 1000 times in a row cannot all pass (a refill of one
        // per second would need the loop to take 992 s).
        let passed = (0..1000).filter(|_| budget.take()).count();
        assert!((8..100).contains(&passed), "{passed}");
    }
}
