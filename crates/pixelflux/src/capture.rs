//! `ScreenCapture`: the capture thread, frame pacing, the encode pool, in-order delivery,
//! stop/join and error reporting.
//!
//! Per frame, on the capture thread: wait for the deadline, grab, draw overlays, then on the
//! pool every stripe slot hashes its rows, decides and (if needed) encodes; the results are
//! handed to the callback in stripe order. The pipeline holds one frame at a time: a slow
//! callback delays the next grab (ticks are skipped, never queued), so memory stays flat.

use std::ops::Range;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use rayon::prelude::*;

use crate::detect::{Decision, DetectConfig, StripeLayout, StripeState};
use crate::encode::{self, EncodeError, StripeEncoder, StripeKind, StripePlace};
use crate::frame::FrameRef;
use crate::overlay::{self, Overlay, OverlayError};
use crate::settings::{CaptureSettings, SettingsError};
use crate::source::synthetic::SyntheticSource;
use crate::source::x11::{Region, X11Source};
use crate::source::{Damage, FrameSource, SourceError, SourceSpec};
use crate::wire::H264FrameType;

/// One encoded stripe, as handed to the callback.
#[derive(Debug, Clone)]
pub struct Stripe {
    /// JPEG, or H.264 with the picture type x264 produced.
    pub kind: StripeKind,
    /// Frame counter of the capture (the header carries it modulo 65536).
    pub frame_id: u64,
    /// First row of the stripe in the captured region.
    pub y: u32,
    /// Stripe width in pixels.
    pub width: u32,
    /// Stripe height in rows.
    pub height: u32,
    /// Header and payload, as described in [`crate::wire`].
    pub data: Vec<u8>,
    /// Length of the header at the start of `data`.
    pub header_len: usize,
    /// Sent as a paint-over refresh of a static stripe.
    pub paint_over: bool,
    /// When the frame was grabbed.
    pub captured_at: Instant,
    /// When this stripe's encoding finished.
    pub encoded_at: Instant,
}

impl Stripe {
    /// The encoded picture without the header.
    pub fn payload(&self) -> &[u8] {
        &self.data[self.header_len..]
    }

    /// Whether a decoder can start from this stripe (every JPEG; an H.264 IDR).
    pub fn is_keyframe(&self) -> bool {
        match self.kind {
            StripeKind::Jpeg => true,
            StripeKind::H264(frame_type) => frame_type == H264FrameType::Idr,
        }
    }

    /// For H.264, the picture type x264 produced (as in the header); `None` for JPEG.
    pub fn h264_frame_type(&self) -> Option<H264FrameType> {
        self.kind.h264_frame_type()
    }
}

/// Why a capture could not start, or why it ended.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    /// A setting is invalid.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The frame source failed (no display, region outside the screen, server gone).
    #[error(transparent)]
    Source(#[from] SourceError),
    /// An encoder failed.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// An overlay failed (watermark file, cursor).
    #[error(transparent)]
    Overlay(#[from] OverlayError),
    /// The callback panicked; the capture ended.
    #[error("the stripe callback panicked: {0}")]
    CallbackPanicked(String),
    /// A thread could not be started.
    #[error("cannot start a thread: {0}")]
    Thread(String),
}

/// Where a capture stands.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum CaptureStatus {
    /// Capturing.
    Running,
    /// Stopped by `stop()`.
    Stopped,
    /// Ended by an error.
    Failed(Arc<CaptureError>),
}

/// Counters since the start of a capture.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaptureStats {
    /// Frame ticks processed.
    pub frames: u64,
    /// Ticks that grabbed pixels from the source (the others had no damage to read).
    pub grabs: u64,
    /// Frames in which at least one stripe was sent.
    pub frames_sent: u64,
    /// Stripes handed to the callback.
    pub stripes: u64,
    /// Bytes handed to the callback (headers included).
    pub bytes: u64,
    /// Deadlines missed because a frame took longer than the interval.
    pub late_ticks: u64,
    /// Time spent per stage, summed over all frames (and over stripes for detect/encode,
    /// which run in parallel: CPU time, not wall time).
    pub stage_ns: StageTimes,
}

/// Nanoseconds spent in each pipeline stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageTimes {
    /// Grabbing pixels from the source.
    pub grab: u64,
    /// Drawing overlays (cursor, watermark).
    pub overlay: u64,
    /// Hashing stripes and deciding what to send.
    pub detect: u64,
    /// Encoding (colour conversion included), summed over stripes.
    pub encode: u64,
    /// Inside the callback.
    pub deliver: u64,
}

#[derive(Default)]
struct Counters {
    frames: AtomicU64,
    grabs: AtomicU64,
    frames_sent: AtomicU64,
    stripes: AtomicU64,
    bytes: AtomicU64,
    late_ticks: AtomicU64,
    grab_ns: AtomicU64,
    overlay_ns: AtomicU64,
    detect_ns: AtomicU64,
    encode_ns: AtomicU64,
    deliver_ns: AtomicU64,
}

fn add_elapsed(counter: &AtomicU64, since: Instant) {
    counter.fetch_add(since.elapsed().as_nanos() as u64, Ordering::Relaxed);
}

struct Shared {
    /// `true` once stop was asked for; the condvar wakes a sleeping capture thread.
    stop: Mutex<bool>,
    wake: Condvar,
    refresh: AtomicBool,
    failure: Mutex<Option<Arc<CaptureError>>>,
    finished: AtomicBool,
    counters: Counters,
}

impl Shared {
    fn stop_flag(&self) -> MutexGuard<'_, bool> {
        // A poisoned lock only means a thread panicked while holding it; the bool is intact.
        self.stop.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sleeps until `deadline` or until stop is requested; returns whether to go on.
    fn sleep_until(&self, deadline: Instant) -> bool {
        let mut stop = self.stop_flag();
        loop {
            if *stop {
                return false;
            }
            let now = Instant::now();
            if now >= deadline {
                return true;
            }
            stop = match self.wake.wait_timeout(stop, deadline - now) {
                Ok((guard, _)) => guard,
                Err(e) => e.into_inner().0,
            };
        }
    }
}

/// A running (or ended) capture. Dropping it stops it.
pub struct ScreenCapture {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    thread_id: ThreadId,
    settings: CaptureSettings,
}

impl std::fmt::Debug for ScreenCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScreenCapture")
            .field("status", &self.status())
            .finish()
    }
}

/// Opens the source a spec names, for the region in the settings (H.264: rounded down to
/// even, see [`CaptureSettings::region_size`]).
///
/// # Errors
/// The X11 source's [`SourceError`]s (no server, no such screen, a region off the screen, an
/// unsupported pixel format); a synthetic source cannot fail.
pub fn open_source(
    settings: &CaptureSettings,
    spec: &SourceSpec,
) -> Result<Box<dyn FrameSource>, SourceError> {
    let (width, height) = settings.region_size();
    Ok(match spec {
        SourceSpec::X11 { display } => Box::new(X11Source::open(
            display.as_deref(),
            Region {
                x: settings.capture_x,
                y: settings.capture_y,
                width,
                height,
            },
        )?),
        SourceSpec::Synthetic(scene) => {
            let source = SyntheticSource::new(*scene, width, height);
            // The only overlay that draws on a synthetic scene is the watermark.
            Box::new(if overlay::watermark_wanted(settings) {
                source.with_overlays()
            } else {
                source
            })
        }
    })
}

impl ScreenCapture {
    /// Validates the settings, opens the source and the overlays, and starts capturing on a
    /// thread of its own. `callback` gets every encoded stripe, in stripe order per frame.
    /// Everything that can be checked up front fails here rather than in the thread.
    ///
    /// # Errors
    /// [`CaptureError::Settings`] for settings that do not validate; [`CaptureError::Source`]
    /// when the source cannot be opened (see [`open_source`]); [`CaptureError::Overlay`] for a
    /// watermark file that is missing, not a PNG or larger than the region, or a cursor that
    /// cannot be read; [`CaptureError::Encode`] when an encoder cannot be set up;
    /// [`CaptureError::Thread`] when the capture thread cannot be spawned.
    pub fn start<F>(
        settings: CaptureSettings,
        spec: SourceSpec,
        callback: F,
    ) -> Result<Self, CaptureError>
    where
        F: FnMut(Stripe) + Send + 'static,
    {
        settings.validate()?;
        // H.264 needs an even region: round down here, so `settings()` reports what is captured.
        let (capture_width, capture_height) = settings.region_size();
        let settings = CaptureSettings {
            capture_width,
            capture_height,
            ..settings
        };
        let source = open_source(&settings, &spec)?;
        let overlays = overlay::build(&settings, &spec)?;
        Self::start_with(settings, source, overlays, callback)
    }

    /// Like [`start`](Self::start), with a source and overlays made by the caller.
    ///
    /// # Errors
    /// As [`start`](Self::start), less the source's and overlays' own errors.
    pub fn start_with<F>(
        settings: CaptureSettings,
        source: Box<dyn FrameSource>,
        overlays: Vec<Box<dyn Overlay>>,
        callback: F,
    ) -> Result<Self, CaptureError>
    where
        F: FnMut(Stripe) + Send + 'static,
    {
        settings.validate()?;
        let (width, height) = source.size();
        let layout = StripeLayout::for_settings(&settings, height);
        let slots = (0..layout.count())
            .map(|i| {
                let (y, h) = layout.stripe(i);
                Ok(StripeSlot {
                    y,
                    height: h,
                    state: StripeState::default(),
                    encoder: encode::new_encoder(&settings, width, h)?,
                    output: None,
                    detect_ns: 0,
                    encode_ns: 0,
                })
            })
            .collect::<Result<Vec<_>, EncodeError>>()?;
        let shared = Arc::new(Shared {
            stop: Mutex::new(false),
            wake: Condvar::new(),
            refresh: AtomicBool::new(false),
            failure: Mutex::new(None),
            finished: AtomicBool::new(false),
            counters: Counters::default(),
        });
        let worker = CaptureLoop {
            cfg: DetectConfig::new(&settings),
            interval: settings.frame_interval(),
            source,
            overlays,
            slots,
            shared: Arc::clone(&shared),
        };
        let thread = std::thread::Builder::new()
            .name("pixelflux-capture".into())
            .spawn(move || worker.run(callback))
            .map_err(|e| CaptureError::Thread(e.to_string()))?;
        let thread_id = thread.thread().id();
        Ok(Self {
            shared,
            thread: Mutex::new(Some(thread)),
            thread_id,
            settings,
        })
    }

    /// Stops capturing and joins every thread the capture started. Idempotent. Called from
    /// inside the callback it only asks the thread to end after the callback returns; a later
    /// call from elsewhere joins it. Returns the error that ended the capture, if any.
    pub fn stop(&self) -> Option<Arc<CaptureError>> {
        *self.shared.stop_flag() = true;
        self.shared.wake.notify_all();
        if std::thread::current().id() != self.thread_id {
            let handle = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(handle) = handle {
                if handle.join().is_err() {
                    self.fail(CaptureError::Thread("the capture thread panicked".into()));
                }
            }
        }
        self.error()
    }

    fn fail(&self, error: CaptureError) {
        record_failure(&self.shared, error);
    }

    /// Makes every stripe of the next frame self-contained: all stripes re-sent, H.264 as IDRs.
    /// For a viewer that joins late or lost data.
    pub fn request_refresh(&self) {
        self.shared.refresh.store(true, Ordering::Release);
    }

    /// 1.2.2-style name for [`request_refresh`](Self::request_refresh).
    pub fn request_idr(&self) {
        self.request_refresh();
    }

    /// Whether the capture thread is still capturing.
    pub fn is_running(&self) -> bool {
        !self.shared.finished.load(Ordering::Acquire)
    }

    /// The error that ended the capture, if one did.
    pub fn error(&self) -> Option<Arc<CaptureError>> {
        self.shared
            .failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Running, stopped, or failed (with why).
    pub fn status(&self) -> CaptureStatus {
        match self.error() {
            Some(e) => CaptureStatus::Failed(e),
            None if self.is_running() => CaptureStatus::Running,
            None => CaptureStatus::Stopped,
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> CaptureStats {
        let c = &self.shared.counters;
        CaptureStats {
            frames: c.frames.load(Ordering::Relaxed),
            grabs: c.grabs.load(Ordering::Relaxed),
            frames_sent: c.frames_sent.load(Ordering::Relaxed),
            stripes: c.stripes.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
            late_ticks: c.late_ticks.load(Ordering::Relaxed),
            stage_ns: StageTimes {
                grab: c.grab_ns.load(Ordering::Relaxed),
                overlay: c.overlay_ns.load(Ordering::Relaxed),
                detect: c.detect_ns.load(Ordering::Relaxed),
                encode: c.encode_ns.load(Ordering::Relaxed),
                deliver: c.deliver_ns.load(Ordering::Relaxed),
            },
        }
    }

    /// The settings the capture runs with.
    pub fn settings(&self) -> &CaptureSettings {
        &self.settings
    }
}

impl Drop for ScreenCapture {
    fn drop(&mut self) {
        self.stop();
    }
}

fn record_failure(shared: &Shared, error: CaptureError) {
    tracing::error!("capture ended: {error}");
    let mut failure = shared.failure.lock().unwrap_or_else(|e| e.into_inner());
    if failure.is_none() {
        *failure = Some(Arc::new(error));
    }
}

/// Every this many frames all stripes are hashed whatever the source's damage report says,
/// so a change the report missed is still sent within a second or so.
const FULL_CHECK_EVERY: u64 = 60;

/// What every stripe needs to know about the current frame.
struct Tick {
    refresh: bool,
    frame_id: u64,
    captured_at: Instant,
    damage: Damage,
}

/// One stripe's state and encoder, owned by the slot: no shared maps, no locks per stripe.
struct StripeSlot {
    y: u32,
    height: u32,
    state: StripeState,
    encoder: Box<dyn StripeEncoder>,
    output: Option<Result<Stripe, EncodeError>>,
    /// Time this frame spent hashing/deciding and encoding this stripe.
    detect_ns: u64,
    encode_ns: u64,
}

impl StripeSlot {
    /// Whether any of `rows` overlaps this stripe.
    fn touched_by(&self, rows: &[Range<u32>]) -> bool {
        rows.iter()
            .any(|r| r.start < self.y + self.height && r.end > self.y)
    }

    /// Whether this frame needs the pool for this stripe (hashing or encoding).
    fn has_work(&self, known_unchanged: bool) -> bool {
        !known_unchanged || self.state.is_damaged()
    }

    fn process(&mut self, frame: FrameRef<'_>, cfg: &DetectConfig, tick: &Tick) {
        let (refresh, frame_id, captured_at) = (tick.refresh, tick.frame_id, tick.captured_at);
        let known_unchanged = match &tick.damage {
            Damage::Unknown => false,
            Damage::Rows(rows) => !self.touched_by(rows),
        };
        let pixels = frame.rows(self.y, self.height);
        let t0 = Instant::now();
        let decision = self.state.decide(cfg, pixels, refresh, known_unchanged);
        let t1 = Instant::now();
        self.detect_ns = (t1 - t0).as_nanos() as u64;
        let Decision::Encode(request) = decision else {
            return;
        };
        let place = StripePlace {
            frame_id,
            y: self.y,
        };
        let mut data = Vec::new();
        let result = self.encoder.encode(pixels, &request, place, &mut data);
        let encoded_at = Instant::now();
        self.encode_ns = (encoded_at - t1).as_nanos() as u64;
        self.output = match result {
            Ok(Some(outcome)) => Some(Ok(Stripe {
                kind: outcome.kind,
                frame_id,
                y: self.y,
                width: frame.width,
                height: self.height,
                data,
                header_len: outcome.header_len,
                paint_over: request.paint_over,
                captured_at,
                encoded_at,
            })),
            Ok(None) => None,
            Err(e) => {
                // Whatever the decoder side has is now unknown; start over if we go on.
                self.state.reset();
                Some(Err(e))
            }
        };
    }
}

struct CaptureLoop {
    cfg: DetectConfig,
    interval: Duration,
    source: Box<dyn FrameSource>,
    overlays: Vec<Box<dyn Overlay>>,
    slots: Vec<StripeSlot>,
    shared: Arc<Shared>,
}

/// Join handles of the encode pool's threads, filled as rayon spawns them.
type PoolThreads = Arc<Mutex<Vec<JoinHandle<()>>>>;

/// A rayon pool whose threads we can join when the capture ends (rayon itself lets them
/// finish on their own after the pool is dropped).
fn encode_pool(threads: usize) -> Result<(rayon::ThreadPool, PoolThreads), CaptureError> {
    let handles = Arc::new(Mutex::new(Vec::new()));
    let spawned = Arc::clone(&handles);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("pixelflux-encode-{i}"))
        .spawn_handler(move |thread| {
            let mut builder = std::thread::Builder::new();
            if let Some(name) = thread.name() {
                builder = builder.name(name.to_string());
            }
            let handle = builder.spawn(|| thread.run())?;
            spawned
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(handle);
            Ok(())
        })
        .build()
        .map_err(|e| CaptureError::Thread(e.to_string()))?;
    Ok((pool, handles))
}

impl CaptureLoop {
    fn run<F: FnMut(Stripe)>(mut self, mut callback: F) {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .min(self.slots.len())
            .max(1);
        let shared = Arc::clone(&self.shared);
        match encode_pool(threads) {
            Ok((pool, handles)) => {
                if let Err(e) = self.frames(&pool, &mut callback) {
                    record_failure(&shared, e);
                }
                drop(pool);
                let handles =
                    std::mem::take(&mut *handles.lock().unwrap_or_else(|e| e.into_inner()));
                for handle in handles {
                    let _ = handle.join();
                }
            }
            Err(e) => record_failure(&shared, e),
        }
        // Release the source (SHM segment, X connection) and encoders before reporting done.
        drop(self);
        shared.finished.store(true, Ordering::Release);
    }

    fn frames<F: FnMut(Stripe)>(
        &mut self,
        pool: &rayon::ThreadPool,
        callback: &mut F,
    ) -> Result<(), CaptureError> {
        let counters = &self.shared.counters;
        let mut deadline = Instant::now();
        let mut frame_id: u64 = 0;
        while self.shared.sleep_until(deadline) {
            let captured_at = Instant::now();
            let refresh = frame_id == 0 || self.shared.refresh.swap(false, Ordering::AcqRel);
            // What may have changed: the source's damage plus the rows overlays moved in.
            // Trusted except on refreshes and, as a safety net, every FULL_CHECK_EVERY frames.
            let mut damage = self.source.damage()?;
            let (width, height) = self.source.size();
            for overlay in &mut self.overlays {
                damage = damage.with_rows(overlay.prepare(width, height, frame_id)?);
            }
            if refresh || frame_id.is_multiple_of(FULL_CHECK_EVERY) {
                damage = Damage::Unknown;
            }
            let nothing_changed = damage == Damage::Rows(Vec::new());
            let mut frame = if nothing_changed {
                self.source.last_frame()
            } else {
                counters.grabs.fetch_add(1, Ordering::Relaxed);
                self.source.grab()?
            };
            add_elapsed(&counters.grab_ns, captured_at);
            if !nothing_changed {
                let t_overlay = Instant::now();
                for overlay in &mut self.overlays {
                    overlay.apply(&mut frame, frame_id)?;
                }
                add_elapsed(&counters.overlay_ns, t_overlay);
            }
            let view = frame.view();
            let cfg = &self.cfg;
            let tick = Tick {
                refresh,
                frame_id,
                captured_at,
                damage,
            };
            if self.slots.iter().any(|s| s.has_work(nothing_changed)) {
                pool.install(|| {
                    self.slots
                        .par_iter_mut()
                        .for_each(|slot| slot.process(view, cfg, &tick))
                });
            } else {
                // Nothing to hash or encode: keep the counters ticking without waking the pool.
                for slot in &mut self.slots {
                    slot.process(view, cfg, &tick);
                }
            }
            counters.frames.fetch_add(1, Ordering::Relaxed);
            let mut sent = false;
            for slot in &mut self.slots {
                counters
                    .detect_ns
                    .fetch_add(std::mem::take(&mut slot.detect_ns), Ordering::Relaxed);
                counters
                    .encode_ns
                    .fetch_add(std::mem::take(&mut slot.encode_ns), Ordering::Relaxed);
                if let Some(result) = slot.output.take() {
                    let stripe = result?;
                    counters.stripes.fetch_add(1, Ordering::Relaxed);
                    counters
                        .bytes
                        .fetch_add(stripe.data.len() as u64, Ordering::Relaxed);
                    sent = true;
                    let t_deliver = Instant::now();
                    let delivered = std::panic::catch_unwind(AssertUnwindSafe(|| callback(stripe)))
                        .map_err(|panic| {
                            let msg = panic
                                .downcast_ref::<&str>()
                                .map(|s| s.to_string())
                                .or_else(|| panic.downcast_ref::<String>().cloned())
                                .unwrap_or_default();
                            CaptureError::CallbackPanicked(msg)
                        });
                    add_elapsed(&counters.deliver_ns, t_deliver);
                    delivered?;
                }
            }
            if sent {
                counters.frames_sent.fetch_add(1, Ordering::Relaxed);
            }
            frame_id += 1;
            deadline += self.interval;
            let now = Instant::now();
            if deadline < now {
                // Behind: start the next frame now, but do not burst to catch up.
                counters.late_ticks.fetch_add(1, Ordering::Relaxed);
                deadline = now;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::synthetic::Scene;

    fn small(scene: Scene) -> (CaptureSettings, SourceSpec) {
        (
            CaptureSettings {
                capture_width: 256,
                capture_height: 192,
                target_fps: 200.0,
                ..Default::default()
            },
            SourceSpec::Synthetic(scene),
        )
    }

    #[test]
    fn stop_is_idempotent_and_joins() {
        let (s, spec) = small(Scene::Full);
        let cap = ScreenCapture::start(s, spec, |_| {}).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert!(cap.is_running());
        assert!(cap.stop().is_none());
        assert!(!cap.is_running());
        assert!(cap.stop().is_none());
        assert!(matches!(cap.status(), CaptureStatus::Stopped));
    }

    #[test]
    fn stop_from_inside_the_callback() {
        let (s, spec) = small(Scene::Full);
        let slot: Arc<Mutex<Option<Arc<ScreenCapture>>>> = Arc::new(Mutex::new(None));
        let inner = Arc::clone(&slot);
        let cap = Arc::new(
            ScreenCapture::start(s, spec, move |_| {
                if let Some(c) = inner.lock().unwrap().as_ref() {
                    c.stop();
                }
            })
            .unwrap(),
        );
        *slot.lock().unwrap() = Some(Arc::clone(&cap));
        let t0 = Instant::now();
        while cap.is_running() && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            !cap.is_running(),
            "stop inside the callback did not end the capture"
        );
        slot.lock().unwrap().take();
        cap.stop();
    }

    #[test]
    fn callback_panic_ends_the_capture_with_an_error() {
        let (s, spec) = small(Scene::Static);
        let cap = ScreenCapture::start(s, spec, |_| panic!("boom")).unwrap();
        let t0 = Instant::now();
        while cap.is_running() && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let err = cap.stop().expect("an error");
        assert!(err.to_string().contains("boom"), "{err}");
    }

    #[test]
    fn invalid_settings_are_rejected_at_start() {
        let (mut s, spec) = small(Scene::Static);
        s.jpeg_quality = 0;
        let err = ScreenCapture::start(s, spec, |_| {}).unwrap_err();
        assert!(err.to_string().contains("jpeg_quality"), "{err}");
    }

    #[test]
    fn static_scene_sends_every_stripe_once() {
        let (s, spec) = small(Scene::Static);
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&got);
        let cap = ScreenCapture::start(s, spec, move |st: Stripe| {
            sink.lock().unwrap().push((st.frame_id, st.y))
        })
        .unwrap();
        while cap.stats().frames < 20 {
            std::thread::sleep(Duration::from_millis(5));
        }
        cap.stop();
        let got = got.lock().unwrap();
        assert_eq!(*got, [(0, 0), (0, 64), (0, 128)]);
    }
}
