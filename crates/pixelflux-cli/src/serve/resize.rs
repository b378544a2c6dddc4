//! The private display follows the page's window: a page with control sends the size of its
//! canvas area in device pixels (`{"type":"resize","width":W,"height":H}`), and the private
//! Xvfb's screen is set to it through RandR (`pixelflux_xvfb::set_screen_size`). The capture
//! follows the screen by itself (the core reads RandR's `ConfigureNotify`) and the hub sends
//! every viewer a new hello before the first stripe of the new size.
//!
//! Only on the Xvfb `serve` started itself without `--size` or `--region` (never a user's
//! display; with `--region` the screen is fixed, so no page can shrink it under the region); the
//! size is clamped to [`MIN_SIZE`]..=[`MAX_SIZE`] and rounded down to the codec's alignment
//! (H.264: even); with several pages the last request wins; one resize runs at a time.

use std::sync::Mutex;

use pixelflux::Codec;
use tokio::sync::watch;

/// The largest screen a page may ask for (the private Xvfb is started with a framebuffer of
/// this size: 32 MiB).
pub const MAX_SIZE: (u32, u32) = (3840, 2160);

/// The smallest screen a page may ask for.
pub const MIN_SIZE: (u32, u32) = (64, 64);

/// At most one resize this often: each rebuilds the capture's stripes and encoders, so a page
/// sending sizes in a loop cannot keep the capture busy.
pub const MIN_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

/// Resize requests for one private display.
pub struct Resizer {
    display: String,
    /// Sizes are multiples of this (2 for H.264's 4:2:0, 1 for JPEG).
    align: u32,
    wanted: watch::Sender<Option<(u32, u32)>>,
    /// The size last handed to RandR, and when.
    applied: Mutex<Option<((u32, u32), std::time::Instant)>>,
}

impl Resizer {
    /// Requests for `display`, captured as `codec`.
    pub fn new(display: String, codec: Codec) -> Self {
        Self {
            display,
            align: match codec {
                Codec::H264 => 2,
                _ => 1,
            },
            wanted: watch::channel(None).0,
            applied: Mutex::new(None),
        }
    }

    /// What a request for `width` x `height` becomes: clamped to the limits and rounded down
    /// to the alignment.
    pub fn fit(&self, width: u32, height: u32) -> (u32, u32) {
        let fit = |v: u32, min: u32, max: u32| {
            let v = v.clamp(min, max);
            v - v % self.align
        };
        (
            fit(width, MIN_SIZE.0, MAX_SIZE.0),
            fit(height, MIN_SIZE.1, MAX_SIZE.1),
        )
    }

    /// A page asks for its size; the newest request replaces one not yet applied.
    pub fn request(&self, width: u32, height: u32) {
        let size = self.fit(width, height);
        self.wanted.send_if_modified(|w| {
            let changed = *w != Some(size);
            *w = Some(size);
            changed
        });
    }

    /// Wakes on each new request.
    pub fn subscribe(&self) -> watch::Receiver<Option<(u32, u32)>> {
        self.wanted.subscribe()
    }

    /// The size to apply now: one asked for and not applied yet, when the last resize is
    /// [`MIN_INTERVAL`] ago (else a later call takes it). Marks it applied.
    fn take_pending(&self) -> Option<(u32, u32)> {
        let wanted = (*self.wanted.borrow())?;
        let mut applied = self.applied.lock().unwrap_or_else(|e| e.into_inner());
        match *applied {
            Some((size, _)) if size == wanted => return None,
            Some((_, at)) if at.elapsed() < MIN_INTERVAL => return None,
            _ => {}
        }
        *applied = Some((wanted, std::time::Instant::now()));
        Some(wanted)
    }

    /// Starts resizing the screen (in the background: it is X I/O) to the size
    /// [`take_pending`](Self::take_pending) gives; returns the task.
    pub fn apply_pending(&self) -> Option<tokio::task::JoinHandle<()>> {
        let wanted = self.take_pending()?;
        let name = self.display.clone();
        Some(tokio::task::spawn_blocking(move || {
            let (w, h) = wanted;
            match pixelflux_xvfb::set_screen_size(&name, w, h) {
                Ok(()) => tracing::info!("resized {name} to {w}x{h} for the page"),
                Err(e) => tracing::warn!("cannot resize {name} to {w}x{h}: {e}"),
            }
        }))
    }
}

/// Resolves when `rx` sees a new request; never without one.
pub async fn changed(rx: &mut Option<watch::Receiver<Option<(u32, u32)>>>) -> Option<()> {
    match rx {
        Some(rx) => rx.changed().await.ok(),
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_clamped_and_aligned_for_the_codec() {
        let h264 = Resizer::new(":65000".into(), Codec::H264);
        assert_eq!(h264.fit(1001, 701), (1000, 700));
        assert_eq!(h264.fit(10, 0), MIN_SIZE);
        assert_eq!(h264.fit(u32::MAX, 99999), MAX_SIZE);
        let jpeg = Resizer::new(":65000".into(), Codec::Jpeg);
        assert_eq!(jpeg.fit(1001, 701), (1001, 701));
    }

    #[tokio::test]
    async fn the_last_request_wins_and_wakes_the_supervisor() {
        let r = Resizer::new(":65000".into(), Codec::Jpeg);
        let mut rx = Some(r.subscribe());
        r.request(800, 600);
        r.request(1024, 768);
        changed(&mut rx).await.unwrap();
        assert_eq!(*r.wanted.borrow(), Some((1024, 768)));
        // The same size again wakes nobody.
        r.request(1024, 768);
        assert!(!rx.as_mut().unwrap().has_changed().unwrap());
    }

    #[test]
    fn resizes_are_at_most_one_per_interval_and_never_repeated() {
        let r = Resizer::new(":65000".into(), Codec::Jpeg);
        assert_eq!(r.take_pending(), None, "nothing asked");
        r.request(800, 600);
        assert_eq!(r.take_pending(), Some((800, 600)));
        assert_eq!(r.take_pending(), None, "applied already");
        r.request(1024, 768);
        assert_eq!(r.take_pending(), None, "too soon after the last");
        std::thread::sleep(MIN_INTERVAL);
        assert_eq!(r.take_pending(), Some((1024, 768)));
    }
}
