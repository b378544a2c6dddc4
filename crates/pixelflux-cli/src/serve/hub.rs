//! Fan-out of encoded stripes to any number of viewers.
//!
//! The capture thread hands every stripe to [`Hub::publish`], which wraps it in a `Bytes` once
//! and appends a cheap clone to each viewer's queue. Publishing never waits: each queue is
//! bounded (bytes and messages), and a viewer whose queue would overflow has it emptied and
//! stops receiving until its writer has sent what was in flight — then it is resynced with a
//! full refresh of the capture. A slow viewer therefore costs at most its queue budget of
//! memory and never delays the capture or the other viewers.
//!
//! H.264 stripes depend on the previous picture of the same stripe: after a gap (joining,
//! overflow, size change) a viewer is sent a stripe only once an IDR of that stripe has passed,
//! so its decoders never see a broken reference chain.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::extract::ws::Message;
use bytes::Bytes;
use pixelflux::{Codec, Stripe, StripeKind};
use serde::Serialize;
use tokio::sync::Notify;

/// Limits of one viewer's queue. Both grow to twice a full frame when the picture is larger
/// (a 7680x4320 screen at JPEG quality 100 is over 8 MiB), so a full refresh always fits and
/// a viewer is never caught in a loop of refresh, overflow, refresh.
#[derive(Debug, Clone, Copy)]
pub struct HubConfig {
    /// Bytes of stripes a viewer may have waiting before it is dropped to a resync (at least
    /// twice the latest full frame).
    pub max_queue_bytes: usize,
    /// Messages a viewer may have waiting before it is dropped to a resync (at least twice a
    /// full frame's stripes and notes).
    pub max_queue_messages: usize,
    /// Full refreshes of the capture (every stripe re-encoded, H.264 as IDRs, sent to every
    /// viewer) happen at most once per this interval, whoever asks: requests in between are
    /// coalesced into one at the interval's end. One viewer (or many connections) asking
    /// again and again therefore cannot make the stream heavy for the others.
    pub min_refresh_interval: std::time::Duration,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            // A few full 1080p JPEG refreshes; enough to ride out a short network hiccup.
            max_queue_bytes: 8 << 20,
            max_queue_messages: 2048,
            min_refresh_interval: std::time::Duration::from_secs(1),
        }
    }
}

/// What the client is told first, and again whenever the picture changes size or codec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hello {
    /// Picture width in pixels.
    pub width: u32,
    /// Picture height in pixels.
    pub height: u32,
    /// Sent as its name, `"jpeg"` or `"h264"`.
    #[serde(serialize_with = "serde_display")]
    pub codec: Codec,
    /// H.264 in 4:4:4 (High 4:4:4 profile) rather than 4:2:0 (baseline).
    pub fullcolor: bool,
    /// Rows per stripe (the last one may be shorter).
    pub stripe_height: u32,
}

#[derive(Serialize)]
struct HelloMsg<'a> {
    r#type: &'static str,
    #[serde(flatten)]
    hello: &'a Hello,
}

/// Serializes a value as its `Display` string.
fn serde_display<T: std::fmt::Display, S: serde::Serializer>(
    value: &T,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

#[derive(Serialize)]
struct FrameMsg {
    r#type: &'static str,
    /// Frame counter modulo 65536, as in the stripe headers.
    id: u16,
    /// Capture time, milliseconds since the Unix epoch (server clock).
    t: f64,
}

/// Milliseconds since the Unix epoch on the server clock, the unit the client sees.
pub fn epoch_ms(at: SystemTime) -> f64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

/// Converts a monotonic instant in the past to wall-clock milliseconds.
fn instant_to_epoch_ms(at: Instant) -> f64 {
    let age = at.elapsed();
    epoch_ms(SystemTime::now().checked_sub(age).unwrap_or(UNIX_EPOCH))
}

/// Counters of one viewer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ViewerStats {
    /// Messages handed to the writer.
    pub sent: u64,
    /// Messages dropped (overflow, resync, waiting for an IDR).
    pub dropped: u64,
    /// Times the queue overflowed.
    pub overflows: u64,
    /// Full refreshes asked for after catching up.
    pub resyncs: u64,
}

#[derive(Default)]
struct Queue {
    /// Hello and pong: tiny, never dropped for size, sent before stripes.
    control: VecDeque<Message>,
    /// Stripes and frame notes, bounded.
    data: VecDeque<Message>,
    bytes: usize,
    /// Overflowed: drop everything until the writer has caught up.
    dropping: bool,
    /// Stripes (by y) that have had a key picture since the last gap.
    keyed: HashSet<u32>,
    closed: bool,
    stats: ViewerStats,
}

impl Queue {
    fn reset_stream(&mut self) {
        self.stats.dropped += self.data.len() as u64;
        self.data.clear();
        self.bytes = 0;
        self.keyed.clear();
    }
}

/// Pending pongs beyond this are not answered (a client flooding pings gets fewer replies).
const MAX_CONTROL: usize = 16;

struct ViewerShared {
    queue: Mutex<Queue>,
    notify: Notify,
}

impl ViewerShared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic elsewhere while holding it leaves a consistent queue: keep going.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn message_len(m: &Message) -> usize {
    match m {
        Message::Binary(b) => b.len(),
        Message::Text(t) => t.len(),
        _ => 0,
    }
}

struct Inner {
    viewers: Vec<(u64, Arc<ViewerShared>)>,
    hello: Option<Message>,
    last_frame: Option<u64>,
    next_id: u64,
    /// Size of the latest stripe at each `y`: together, what a full refresh costs.
    stripe_bytes: HashMap<u32, usize>,
    /// Sum of `stripe_bytes`.
    frame_bytes: usize,
}

/// The queue bounds in force: the configured ones, or twice a full frame if that is larger.
#[derive(Debug, Clone, Copy)]
struct Budget {
    bytes: usize,
    messages: usize,
}

/// Close reason when the session is over (its command exited): the page stops reconnecting.
pub const SESSION_ENDED: &str = "session ended";

/// Close reason when `serve` is stopped by a signal (SIGTERM, Ctrl-C: maybe a restart); the
/// page shows it and reconnects. Other causes (the capture failed) close with their error.
pub const SHUTTING_DOWN: &str = "the server stopped";

/// The shared refresh budget (see [`HubConfig::min_refresh_interval`]).
#[derive(Debug, Default)]
struct RefreshGate {
    last: Option<tokio::time::Instant>,
    scheduled: bool,
}

/// The fan-out point between one capture and its viewers.
pub struct Hub {
    config: HubConfig,
    refresher: Box<dyn Fn() + Send + Sync>,
    /// When the capture was last asked for a refresh, and whether one is scheduled.
    refresh_gate: Mutex<RefreshGate>,
    /// The close frame's reason when the hub closes its viewers.
    close_reason: Mutex<Arc<str>>,
    inner: Mutex<Inner>,
    /// Stripes published so far (for logs and tests).
    published: AtomicU64,
}

impl Hub {
    /// A hub that calls `refresher` when a viewer needs a complete picture (it should ask the
    /// capture for a refresh: every stripe re-sent, H.264 as IDRs).
    pub fn new(config: HubConfig, refresher: impl Fn() + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(Self {
            config,
            refresher: Box::new(refresher),
            refresh_gate: Mutex::new(RefreshGate::default()),
            close_reason: Mutex::new(SHUTTING_DOWN.into()),
            inner: Mutex::new(Inner {
                viewers: Vec::new(),
                hello: None,
                last_frame: None,
                next_id: 0,
                stripe_bytes: HashMap::new(),
                frame_bytes: 0,
            }),
            published: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Announces the picture format: every viewer gets the hello before any stripe of the new
    /// format, and whatever it still had queued of the old one is dropped.
    pub fn set_format(&self, hello: &Hello) {
        let text = serde_json::to_string(&HelloMsg {
            r#type: "hello",
            hello,
        })
        .unwrap_or_default();
        let msg = Message::Text(text.into());
        let mut inner = self.lock();
        inner.hello = Some(msg.clone());
        inner.last_frame = None;
        inner.stripe_bytes.clear();
        inner.frame_bytes = 0;
        for (_, viewer) in &inner.viewers {
            let mut q = viewer.lock();
            q.reset_stream();
            q.dropping = false;
            q.control.push_back(msg.clone());
            drop(q);
            viewer.notify.notify_one();
        }
    }

    /// Hands a stripe to every viewer. Never blocks on a viewer.
    pub fn publish(&self, stripe: Stripe) {
        self.published.fetch_add(1, Ordering::Relaxed);
        let key = stripe.is_keyframe();
        // Copy-rows (scroll detection) is no stripe's picture: not counted as the stripe at
        // its `y`, and never held back waiting for a key picture.
        let picture = stripe.kind != StripeKind::CopyRows;
        let y = stripe.y;
        let frame_id = stripe.frame_id;
        let captured_at = stripe.captured_at;
        let msg = Message::Binary(Bytes::from(stripe.data));
        let mut inner = self.lock();
        let len = message_len(&msg);
        if picture {
            let old = inner.stripe_bytes.insert(y, len).unwrap_or(0);
            inner.frame_bytes = inner.frame_bytes - old + len;
        }
        let budget = Budget {
            bytes: self.config.max_queue_bytes.max(2 * inner.frame_bytes),
            // Each stripe, plus one frame note per frame.
            messages: self
                .config
                .max_queue_messages
                .max(4 * inner.stripe_bytes.len() + 4),
        };
        let note = if inner.last_frame != Some(frame_id) {
            inner.last_frame = Some(frame_id);
            let text = serde_json::to_string(&FrameMsg {
                r#type: "frame",
                id: frame_id as u16,
                t: instant_to_epoch_ms(captured_at),
            })
            .unwrap_or_default();
            Some(Message::Text(text.into()))
        } else {
            None
        };
        for (_, viewer) in &inner.viewers {
            let mut q = viewer.lock();
            if let Some(note) = &note {
                Self::offer(budget, &mut q, note.clone(), true, None);
            }
            if Self::offer(budget, &mut q, msg.clone(), key, picture.then_some(y)) {
                drop(q);
                viewer.notify.notify_one();
            }
        }
    }

    /// Queues one message for a viewer unless it is resyncing, waiting for a key picture of
    /// this stripe, or would overflow (then it starts resyncing). Returns whether it queued.
    fn offer(budget: Budget, q: &mut Queue, msg: Message, key: bool, y: Option<u32>) -> bool {
        if q.closed || q.dropping {
            q.stats.dropped += 1;
            return false;
        }
        if let Some(y) = y {
            if key {
                q.keyed.insert(y);
            } else if !q.keyed.contains(&y) {
                q.stats.dropped += 1;
                return false;
            }
        }
        let len = message_len(&msg);
        if q.data.len() + 1 > budget.messages || q.bytes + len > budget.bytes {
            q.reset_stream();
            q.stats.dropped += 1;
            q.stats.overflows += 1;
            q.dropping = true;
            tracing::debug!("a viewer fell behind: dropping its queue until it catches up");
            return false;
        }
        q.bytes += len;
        q.data.push_back(msg);
        true
    }

    /// Adds a viewer: it gets the current hello first, then a full refresh is asked for so it
    /// has the whole picture at once.
    pub fn join(self: &Arc<Self>) -> Viewer {
        let shared = Arc::new(ViewerShared {
            queue: Mutex::new(Queue::default()),
            notify: Notify::new(),
        });
        let id = {
            let mut inner = self.lock();
            let id = inner.next_id;
            inner.next_id += 1;
            if let Some(hello) = &inner.hello {
                shared.lock().control.push_back(hello.clone());
            }
            inner.viewers.push((id, Arc::clone(&shared)));
            id
        };
        self.request_refresh();
        tracing::info!(viewers = self.viewer_count(), "viewer {id} joined");
        Viewer {
            id,
            shared,
            hub: Arc::clone(self),
        }
    }

    /// Asks the capture for a full refresh, within the shared budget: at once if the last one
    /// was at least [`HubConfig::min_refresh_interval`] ago, else once at the end of that
    /// interval (however many ask meanwhile).
    pub fn request_refresh(self: &Arc<Self>) {
        let interval = self.config.min_refresh_interval;
        let now = tokio::time::Instant::now();
        let mut gate = self.refresh_gate.lock().unwrap_or_else(|e| e.into_inner());
        if gate.scheduled {
            return;
        }
        let due = gate.last.map(|t| t + interval).filter(|due| *due > now);
        let runtime = tokio::runtime::Handle::try_current();
        match (due, runtime) {
            (Some(due), Ok(runtime)) => {
                gate.scheduled = true;
                let hub = Arc::clone(self);
                runtime.spawn(async move {
                    tokio::time::sleep_until(due).await;
                    {
                        let mut gate = hub.refresh_gate.lock().unwrap_or_else(|e| e.into_inner());
                        gate.scheduled = false;
                        gate.last = Some(tokio::time::Instant::now());
                    }
                    (hub.refresher)();
                });
            }
            // Too soon, outside a runtime (nothing can wait): dropped.
            (Some(_), Err(_)) => {}
            (None, _) => {
                gate.last = Some(now);
                drop(gate);
                (self.refresher)();
            }
        }
    }

    /// Why the hub closed its viewers ([`SHUTTING_DOWN`] until [`Hub::close_all`] says).
    pub fn close_reason(&self) -> Arc<str> {
        Arc::clone(&self.close_reason.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Viewers connected now.
    pub fn viewer_count(&self) -> usize {
        self.lock().viewers.len()
    }

    /// Bytes waiting in all viewer queues together.
    #[cfg(test)]
    pub fn queued_bytes(&self) -> usize {
        self.lock()
            .viewers
            .iter()
            .map(|(_, v)| v.lock().bytes)
            .sum()
    }

    /// Stripes published so far.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    /// Ends every viewer's stream: their writers get `None` and close the connection with
    /// close code 1001 and `reason` (see [`Hub::close_reason`]): [`SESSION_ENDED`] tells the
    /// page not to reconnect; any other reason ([`SHUTTING_DOWN`], a capture error) is shown
    /// by the page, which reconnects (a restart is likely).
    pub fn close_all(&self, reason: &str) {
        *self.close_reason.lock().unwrap_or_else(|e| e.into_inner()) = reason.into();
        let inner = self.lock();
        for (_, viewer) in &inner.viewers {
            viewer.lock().closed = true;
            viewer.notify.notify_one();
        }
    }

    fn leave(&self, id: u64, stats: ViewerStats) {
        let mut inner = self.lock();
        inner.viewers.retain(|(vid, _)| *vid != id);
        let left = inner.viewers.len();
        drop(inner);
        tracing::info!(
            viewers = left,
            sent = stats.sent,
            dropped = stats.dropped,
            resyncs = stats.resyncs,
            "viewer {id} left"
        );
    }
}

/// One viewer's end of the hub; leaving is dropping it.
pub struct Viewer {
    id: u64,
    shared: Arc<ViewerShared>,
    hub: Arc<Hub>,
}

impl Viewer {
    /// The next message to send, waiting for one. When the queue runs dry after an overflow,
    /// asks for a full refresh first. `None`: the hub is closing.
    pub async fn next(&self) -> Option<Message> {
        loop {
            let notified = self.shared.notify.notified();
            let resync = {
                let mut q = self.shared.lock();
                if q.closed {
                    return None;
                }
                if let Some(m) = q.control.pop_front() {
                    q.stats.sent += 1;
                    return Some(m);
                }
                if let Some(m) = q.data.pop_front() {
                    q.bytes = q.bytes.saturating_sub(message_len(&m));
                    q.stats.sent += 1;
                    return Some(m);
                }
                if q.dropping {
                    q.dropping = false;
                    q.stats.resyncs += 1;
                    true
                } else {
                    false
                }
            };
            if resync {
                tracing::debug!("viewer {} caught up: full refresh", self.id);
                self.hub.request_refresh();
                continue;
            }
            notified.await;
        }
    }

    /// Like [`next`](Self::next), giving up after `timeout`: `Ok(Some)` a message, `Ok(None)`
    /// the hub closed this viewer, `Err` nothing came (silent, not closed).
    #[cfg(test)]
    pub async fn next_timeout(
        &self,
        timeout: std::time::Duration,
    ) -> Result<Option<Message>, tokio::time::error::Elapsed> {
        tokio::time::timeout(timeout, self.next()).await
    }

    /// Queues a control reply (a pong) unless too many are pending.
    pub fn reply(&self, msg: Message) {
        let mut q = self.shared.lock();
        if q.control.len() < MAX_CONTROL {
            q.control.push_back(msg);
            drop(q);
            self.shared.notify.notify_one();
        }
    }

    /// Asks the capture for a full refresh (the client lost something).
    pub fn request_refresh(&self) {
        self.hub.request_refresh();
    }

    /// Counters so far.
    pub fn stats(&self) -> ViewerStats {
        self.shared.lock().stats
    }

    /// Bytes waiting in this viewer's queue.
    #[cfg(test)]
    pub fn queued_bytes(&self) -> usize {
        self.shared.lock().bytes
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        self.hub.leave(self.id, self.stats());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pixelflux::wire::H264FrameType;
    use pixelflux::StripeKind;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    fn jpeg(frame_id: u64, y: u32, len: usize) -> Stripe {
        let now = Instant::now();
        let mut data = vec![0x03, 0x00];
        data.extend_from_slice(&(frame_id as u16).to_be_bytes());
        data.extend_from_slice(&(y as u16).to_be_bytes());
        data.resize(len.max(6), 0xAB);
        Stripe {
            kind: StripeKind::Jpeg,
            frame_id,
            y,
            width: 64,
            height: 64,
            data,
            header_len: 6,
            paint_over: false,
            captured_at: now,
            encoded_at: now,
            format: pixelflux::PipelineConfig::new(&pixelflux::CaptureSettings::default())
                .unwrap()
                .format(),
        }
    }

    fn h264(frame_id: u64, y: u32, idr: bool) -> Stripe {
        let mut s = jpeg(frame_id, y, 100);
        s.kind = StripeKind::H264(if idr {
            H264FrameType::Idr
        } else {
            H264FrameType::Other
        });
        s.data[0] = 0x04;
        s
    }

    #[test]
    fn the_hello_names_the_codec_as_the_command_line_does() {
        let hello = Hello {
            width: 64,
            height: 32,
            codec: Codec::H264,
            fullcolor: false,
            stripe_height: 32,
        };
        let json = serde_json::to_value(HelloMsg {
            r#type: "hello",
            hello: &hello,
        })
        .unwrap();
        assert_eq!(json["codec"], "h264");
        assert_eq!(json["codec"].as_str().unwrap().parse(), Ok(Codec::H264));
    }

    /// A hub counting its refreshes; with no refresh budget unless `config` is
    /// [`budgeted`].
    fn hub(config: HubConfig) -> (Arc<Hub>, Arc<AtomicUsize>) {
        let config = if config.min_refresh_interval == BUDGETED {
            config
        } else {
            HubConfig {
                min_refresh_interval: Duration::ZERO,
                ..config
            }
        };
        let refreshes = Arc::new(AtomicUsize::new(0));
        let r = Arc::clone(&refreshes);
        let hub = Hub::new(config, move || {
            r.fetch_add(1, Ordering::SeqCst);
        });
        hub.set_format(&Hello {
            width: 64,
            height: 128,
            codec: Codec::Jpeg,
            fullcolor: false,
            stripe_height: 64,
        });
        (hub, refreshes)
    }

    /// Drains what is queued now (does not wait for more); fails if the viewer was closed.
    async fn drain(v: &Viewer) -> Vec<Message> {
        let mut out = Vec::new();
        loop {
            match v.next_timeout(Duration::from_millis(20)).await {
                Ok(Some(m)) => out.push(m),
                Ok(None) => panic!("the viewer was closed while draining"),
                Err(_silent) => return out,
            }
        }
    }

    fn binaries(msgs: &[Message]) -> Vec<Bytes> {
        msgs.iter()
            .filter_map(|m| match m {
                Message::Binary(b) => Some(b.clone()),
                _ => None,
            })
            .collect()
    }

    fn texts(msgs: &[Message]) -> Vec<serde_json::Value> {
        msgs.iter()
            .filter_map(|m| match m {
                Message::Text(t) => serde_json::from_str(t.as_str()).ok(),
                _ => None,
            })
            .collect()
    }

    /// The interval the budget tests use.
    const BUDGETED: Duration = Duration::from_millis(200);

    #[tokio::test]
    async fn a_flood_of_refresh_requests_costs_other_viewers_one_refresh_per_interval() {
        let (hub, refreshes) = hub(HubConfig {
            min_refresh_interval: BUDGETED,
            ..HubConfig::default()
        });
        let t0 = std::time::Instant::now();
        let _watcher = hub.join();
        assert_eq!(refreshes.load(Ordering::SeqCst), 1, "the first one at once");
        let flooder = hub.join();
        // A request every 2 ms, and a viewer joining every 20 ms, from one client.
        let mut joined = Vec::new();
        for i in 0..300 {
            flooder.request_refresh();
            if i % 10 == 0 {
                joined.push(hub.join());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(BUDGETED * 2).await;
        let n = refreshes.load(Ordering::SeqCst);
        let most = t0.elapsed().as_millis() / BUDGETED.as_millis() + 1;
        // At most one per interval: 300 requests and 30 joins made a handful of refreshes.
        assert!(
            n >= 2 && n as u128 <= most,
            "{n} refreshes in {:?}",
            t0.elapsed()
        );
        // A request after a quiet interval is served at once again.
        tokio::time::sleep(BUDGETED).await;
        flooder.request_refresh();
        assert_eq!(refreshes.load(Ordering::SeqCst), n + 1);
        // One just after it waits for the interval's end, but comes.
        flooder.request_refresh();
        assert_eq!(refreshes.load(Ordering::SeqCst), n + 1);
        tokio::time::sleep(BUDGETED * 2).await;
        assert_eq!(refreshes.load(Ordering::SeqCst), n + 2);
    }

    #[tokio::test]
    async fn a_joining_viewer_gets_the_hello_first_and_triggers_a_refresh() {
        let (hub, refreshes) = hub(HubConfig::default());
        let v = hub.join();
        assert_eq!(refreshes.load(Ordering::SeqCst), 1);
        hub.publish(jpeg(5, 0, 50));
        hub.publish(jpeg(5, 64, 50));
        let msgs = drain(&v).await;
        let t = texts(&msgs);
        assert_eq!(t[0]["type"], "hello");
        assert_eq!(
            (t[0]["width"].as_u64(), t[0]["height"].as_u64()),
            (Some(64), Some(128))
        );
        assert_eq!(t[1]["type"], "frame");
        assert_eq!(t[1]["id"], 5);
        assert!(t[1]["t"].as_f64().unwrap() > 1.6e12, "epoch milliseconds");
        assert!(matches!(msgs[0], Message::Text(_)));
        let b = binaries(&msgs);
        assert_eq!(b.len(), 2);
        assert_eq!(&b[1][..6], &[3, 0, 0, 5, 0, 64]);
        // A second viewer joining asks again.
        let _w = hub.join();
        assert_eq!(refreshes.load(Ordering::SeqCst), 2);
        assert_eq!(hub.viewer_count(), 2);
    }

    #[tokio::test]
    async fn viewers_share_the_same_bytes() {
        let (hub, _) = hub(HubConfig::default());
        let a = hub.join();
        let b = hub.join();
        hub.publish(jpeg(1, 0, 1000));
        let (ma, mb) = (binaries(&drain(&a).await), binaries(&drain(&b).await));
        assert_eq!(ma.len(), 1);
        // One allocation fanned out, not a copy per viewer.
        assert_eq!(ma[0].as_ptr(), mb[0].as_ptr());
    }

    #[tokio::test]
    async fn a_slow_viewer_is_bounded_drops_and_resyncs_without_slowing_the_others() {
        let config = HubConfig {
            max_queue_bytes: 64 * 1024,
            max_queue_messages: 1000,
            ..HubConfig::default()
        };
        let (hub, refreshes) = hub(config);
        let slow = hub.join();
        let fast = hub.join();
        let base_refreshes = refreshes.load(Ordering::SeqCst);
        let mut fast_got = 0;
        for frame in 0..200u64 {
            hub.publish(jpeg(frame, 0, 10_000));
            hub.publish(jpeg(frame, 64, 10_000));
            // The fast viewer keeps up; the slow one never reads.
            fast_got += binaries(&drain(&fast).await).len();
            assert!(slow.queued_bytes() <= config.max_queue_bytes);
            assert!(hub.queued_bytes() <= 2 * config.max_queue_bytes);
        }
        assert_eq!(fast_got, 400, "the fast viewer lost nothing");
        assert_eq!(fast.stats().overflows, 0);
        let s = slow.stats();
        assert!(s.overflows >= 1 && s.dropped > 300, "{s:?}");
        // Still dropping: nothing asked for until it has caught up.
        assert_eq!(refreshes.load(Ordering::SeqCst), base_refreshes);
        // It now reads everything that survived; once empty it asks for a refresh.
        let got = drain(&slow).await;
        assert!(binaries(&got).len() <= 64 * 1024 / 10_000 + 1);
        assert_eq!(refreshes.load(Ordering::SeqCst), base_refreshes + 1);
        assert_eq!(slow.stats().resyncs, 1);
        // And it receives again: the refreshed frame arrives in full.
        hub.publish(jpeg(300, 0, 10_000));
        hub.publish(jpeg(300, 64, 10_000));
        let after = binaries(&drain(&slow).await);
        assert_eq!(after.len(), 2);
    }

    #[tokio::test]
    async fn a_full_refresh_larger_than_the_budget_completes_once_and_stops() {
        // Four 40 kB stripes: a full frame of 160 kB against a 64 kB configured budget.
        let config = HubConfig {
            max_queue_bytes: 64 * 1024,
            max_queue_messages: 3,
            ..HubConfig::default()
        };
        let (hub, refreshes) = hub(config);
        hub.set_format(&Hello {
            width: 64,
            height: 256,
            codec: Codec::Jpeg,
            fullcolor: false,
            stripe_height: 64,
        });
        let v = hub.join();
        assert_eq!(
            refreshes.load(Ordering::SeqCst),
            1,
            "joining asks for a refresh"
        );
        // The capture answers with every stripe at once, faster than any socket drains.
        for y in [0, 64, 128, 192] {
            hub.publish(jpeg(1, y, 40_000));
        }
        let got = binaries(&drain(&v).await);
        let ys: Vec<u16> = got
            .iter()
            .map(|b| u16::from_be_bytes([b[4], b[5]]))
            .collect();
        assert_eq!(ys, [0, 64, 128, 192], "the whole refresh arrived");
        assert_eq!(v.stats().overflows, 0);
        // Nothing more is asked for: a still screen now sends nothing.
        assert_eq!(refreshes.load(Ordering::SeqCst), 1, "no refresh loop");
        assert!(v.next_timeout(Duration::from_millis(50)).await.is_err());
        // The scaled budget still bounds a viewer that never reads: twice the frame.
        for frame in 2..50u64 {
            for y in [0, 64, 128, 192] {
                hub.publish(jpeg(frame, y, 40_000));
            }
            assert!(v.queued_bytes() <= 2 * 160_000, "{}", v.queued_bytes());
        }
        assert!(v.stats().overflows >= 1);
    }

    #[tokio::test]
    async fn h264_stripes_wait_for_an_idr_after_a_gap() {
        let (hub, _) = hub(HubConfig::default());
        let v = hub.join();
        hub.publish(h264(1, 0, false)); // no IDR yet for y=0: dropped
        hub.publish(h264(1, 64, true));
        hub.publish(h264(2, 0, true));
        hub.publish(h264(2, 64, false));
        hub.publish(h264(3, 0, false));
        let b = binaries(&drain(&v).await);
        let got: Vec<(u16, u16)> = b
            .iter()
            .map(|m| {
                (
                    u16::from_be_bytes([m[2], m[3]]),
                    u16::from_be_bytes([m[4], m[5]]),
                )
            })
            .collect();
        assert_eq!(got, [(1, 64), (2, 0), (2, 64), (3, 0)]);
        assert_eq!(v.stats().dropped, 1);
    }

    /// Copy-rows (scroll detection) reaches every viewer in order with the stripes, is never
    /// held back as a stripe waiting for its key picture, and is not counted as the picture
    /// of the stripe at its `y` (the queue budget follows a full frame of pictures).
    #[tokio::test]
    async fn copy_rows_pass_through_in_order_and_are_not_a_stripe() {
        let (hub, _) = hub(HubConfig::default());
        let v = hub.join();
        let _ = drain(&v).await;
        hub.publish(jpeg(1, 0, 1000));
        hub.publish(jpeg(1, 64, 1000));
        let before = hub.lock().frame_bytes;
        let mut copy = jpeg(2, 0, 12);
        copy.kind = StripeKind::CopyRows;
        copy.data = vec![0x06, 0, 0, 2, 0, 1, 0, 16, 0, 0, 0, 48];
        hub.publish(copy);
        hub.publish(jpeg(2, 64, 1000));
        assert_eq!(
            hub.lock().frame_bytes,
            before,
            "copy-rows counted as a stripe"
        );
        let b = binaries(&drain(&v).await);
        let tags: Vec<u8> = b.iter().map(|m| m[0]).collect();
        assert_eq!(tags, [0x03, 0x03, 0x06, 0x03]);
        assert_eq!(v.stats().dropped, 0);
    }

    #[tokio::test]
    async fn a_format_change_flushes_old_stripes_and_resends_the_hello() {
        let (hub, _) = hub(HubConfig::default());
        let v = hub.join();
        let _ = drain(&v).await;
        hub.publish(jpeg(1, 0, 100));
        hub.set_format(&Hello {
            width: 32,
            height: 64,
            codec: Codec::Jpeg,
            fullcolor: false,
            stripe_height: 64,
        });
        hub.publish(jpeg(0, 0, 100));
        let msgs = drain(&v).await;
        let t = texts(&msgs);
        assert_eq!(t[0]["type"], "hello");
        assert_eq!(t[0]["width"], 32);
        let b = binaries(&msgs);
        assert_eq!(b.len(), 1, "the old-size stripe was dropped");
        assert_eq!(&b[0][2..4], &[0, 0]);
    }

    #[tokio::test]
    async fn close_all_ends_every_viewer_and_leaving_unregisters() {
        let (hub, _) = hub(HubConfig::default());
        let a = hub.join();
        let b = hub.join();
        drop(b);
        assert_eq!(hub.viewer_count(), 1);
        // Before closing: the hello is queued, then silence (not a close).
        assert!(matches!(
            a.next_timeout(Duration::from_millis(50)).await,
            Ok(Some(Message::Text(_)))
        ));
        assert!(a.next_timeout(Duration::from_millis(50)).await.is_err());
        hub.close_all(SESSION_ENDED);
        assert_eq!(&*hub.close_reason(), SESSION_ENDED);
        // Closed: `next` ends at once (a timeout here would mean close_all did nothing).
        assert!(matches!(
            a.next_timeout(Duration::from_secs(5)).await,
            Ok(None)
        ));
        drop(a);
        assert_eq!(hub.viewer_count(), 0);
    }

    #[tokio::test]
    async fn pongs_are_capped() {
        let (hub, _) = hub(HubConfig::default());
        let v = hub.join();
        assert_eq!(texts(&drain(&v).await)[0]["type"], "hello");
        for _ in 0..100 {
            v.reply(Message::Text("{\"type\":\"pong\"}".into()));
        }
        let msgs = texts(&drain(&v).await);
        assert_eq!(
            msgs.len(),
            MAX_CONTROL,
            "the first {MAX_CONTROL} pongs are sent"
        );
        assert!(msgs.iter().all(|m| m["type"] == "pong"));
        // Once they are out, new ones are answered again.
        v.reply(Message::Text("{\"type\":\"pong\"}".into()));
        assert_eq!(drain(&v).await.len(), 1);
    }
}
