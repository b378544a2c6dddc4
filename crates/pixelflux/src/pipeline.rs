//! `Pipeline`: one frame at a time, synchronously — grab, draw overlays, then per stripe hash,
//! decide and encode (the stripes in parallel on the pipeline's encode pool), and return what
//! the frame produced. No thread of its own, no clock: [`ScreenCapture`](crate::ScreenCapture)
//! is the thread around it (pacing, stop, delivery, stats), and tests step it frame by frame
//! with [`Pipeline::tick`].
//!
//! Ownership: the pipeline owns the source, the overlays and one `StripeSlot` per stripe
//! (its change-detection state and its encoder), so no state is shared between stripes and
//! nothing is locked per stripe.

use std::ops::Range;
use std::panic::AssertUnwindSafe;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::capture::{CaptureError, StageTimes, Stripe};
use crate::config::{Control, ControlError, EncoderConfig, PipelineConfig, StreamFormat};
use crate::detect::{Carried, Decision, DetectConfig, StripeLayout, StripeState};
use crate::encode::{self, EncodeError, StripeEncoder, StripeKind, StripePlace};
use crate::frame::{Frame, FrameRef, OwnedFrame};
use crate::overlay::{self, Overlay};
use crate::scroll::{Role, ScrollDetector};
use crate::settings::SettingsError;
use crate::source::x11::Region;
use crate::source::{Damage, FrameSource, Interrupter, SourceSpec};

/// Every this many frames all stripes are hashed whatever the source's damage report says,
/// so a change the report missed is still sent within a second or so.
const FULL_CHECK_EVERY: u64 = 60;

/// Starts the pipeline's next frame: follows the screen, numbers the frame
/// ([`Pipeline::next_frame`]) and runs [`start_frame`]. Should the grab find that the screen
/// shrank under the region meanwhile (a config that follows the screen), it follows the
/// screen and starts the frame again, as a refresh. Evaluates to `(FrameMeta, Frame)`;
/// an error returns from the calling method.
///
/// A macro rather than a method: the frame borrows only the pipeline's `source`, so the caller
/// goes on using the other fields while it holds the frame; and the retry needs the whole
/// pipeline after a failed first try, which a function returning the first try's frame could
/// not have (the borrow checker keeps a borrow that one path returns alive on every path).
macro_rules! start_next_frame {
    ($pipeline:ident, $refresh:expr) => {{
        $pipeline.follow_screen()?;
        let (frame_id, refresh) = $pipeline.next_frame($refresh);
        let follow = $pipeline.config.follows_screen();
        let format = $pipeline.format();
        let first = start_frame(
            $pipeline.source.as_mut(),
            &mut $pipeline.overlays,
            frame_id,
            refresh,
            format,
            $pipeline.sent_rows,
        );
        match first {
            Ok(started) => started,
            Err(e) if follow && no_longer_fits(&e) => {
                // The screen shrank under the region: follow it and grab again.
                $pipeline.follow_screen()?;
                let format = $pipeline.format();
                start_frame(
                    $pipeline.source.as_mut(),
                    &mut $pipeline.overlays,
                    frame_id,
                    true,
                    format,
                    $pipeline.sent_rows,
                )?
            }
            Err(e) => return Err(e),
        }
    }};
}

/// What one [`Pipeline::tick`] produced.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TickOutput {
    /// The frame's number (0 for the first tick).
    pub frame_id: u64,
    /// Whether this frame was a refresh (the first frame, or one asked for): every stripe
    /// sent, H.264 stripes as IDRs.
    pub refresh: bool,
    /// Whether pixels were read from the source (a tick with no damage reuses the last frame).
    pub grabbed: bool,
    /// The stripes to send, top to bottom.
    pub stripes: Vec<Stripe>,
    /// Time spent per stage in this tick (`deliver` is 0: delivery is the caller's).
    pub times: StageTimes,
}

/// The capture pipeline of one source: see the [module docs](self).
pub struct Pipeline {
    config: PipelineConfig,
    source: Box<dyn FrameSource>,
    overlays: Vec<Box<dyn Overlay>>,
    slots: Vec<StripeSlot>,
    pool: EncodePool,
    /// Row hashes of the last frame, with `scroll_detection` (see [`crate::scroll`]).
    scroll: Option<ScrollDetector>,
    frame_id: u64,
    /// A control asked for every stripe to be sent again (a quality change).
    refresh_pending: bool,
    /// Pipelined capture ([`grab_next`](Self::grab_next)): a frame grabbed and copied,
    /// waiting for the frame before it to finish encoding.
    staged: Option<Staged>,
    /// Pipelined capture: the frame whose stripes are being encoded on the pool (the slots
    /// are with it), or its result.
    in_flight: Option<InFlight>,
    /// The newest copied frame (reused when nothing changed) and a spare buffer.
    last_copy: Option<Arc<OwnedFrame>>,
    spare: Option<OwnedFrame>,
    /// Rows of the stripes the last frame sent (the frame's height before the first): under
    /// a constant bitrate each stripe's share of the rate is its rows over these.
    sent_rows: u32,
    /// The last frame's grab (without the copy) and the wall time of its stripes' work.
    last_grab_ns: u64,
    last_encode_wall_ns: u64,
    /// The machine has a core the encode pool does not use (for the grab, overlays and the
    /// X server while the pool encodes).
    spare_core: bool,
    /// Following the screen: the screen last followed.
    followed: Option<Region>,
    /// Tests: pipeline whenever behind, whatever the machine (see `overlap_pays`).
    #[cfg(test)]
    pub(crate) force_overlap: bool,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("format", &self.format())
            .field("frame_id", &self.frame_id)
            .finish()
    }
}

impl Pipeline {
    /// Opens the source `spec` names and the overlays `config` asks for.
    ///
    /// # Errors
    /// [`CaptureError::Source`], [`CaptureError::Overlay`] or [`CaptureError::Encode`] when a
    /// part cannot be opened.
    pub fn open(config: PipelineConfig, spec: &SourceSpec) -> Result<Self, CaptureError> {
        let source = spec.open(&config)?;
        let overlays = overlay::build(config.overlays(), config.region(), spec)?;
        Self::new(config, source, overlays)
    }

    /// A pipeline over a source and overlays made by the caller. The source's frames must
    /// have the size of `config`'s region.
    ///
    /// # Errors
    /// [`CaptureError::Settings`] when the source's size is not the region's,
    /// [`CaptureError::Encode`] when an encoder cannot be opened, [`CaptureError::Thread`]
    /// when the encode pool cannot start.
    pub fn new(
        config: PipelineConfig,
        source: Box<dyn FrameSource>,
        overlays: Vec<Box<dyn Overlay>>,
    ) -> Result<Self, CaptureError> {
        let region = config.region();
        let (width, height) = source.size();
        if (width, height) != (region.width, region.height) {
            return Err(SettingsError {
                field: "capture_width",
                reason: format!(
                    "the region is {}x{} but the source's frames are {width}x{height}",
                    region.width, region.height
                ),
            }
            .into());
        }
        let slots = make_slots(&config, width)?;
        let threads = pool_threads(slots.len());
        Ok(Self {
            spare_core: cores() > threads,
            #[cfg(test)]
            force_overlap: false,
            pool: EncodePool::new(threads)?,
            scroll: config.scroll_detection().then(ScrollDetector::default),
            config,
            source,
            overlays,
            slots,
            frame_id: 0,
            sent_rows: height,
            refresh_pending: false,
            staged: None,
            in_flight: None,
            last_copy: None,
            spare: None,
            last_grab_ns: 0,
            last_encode_wall_ns: 0,
            followed: None,
        })
    }

    /// The config in effect (changed by [`apply`](Self::apply)).
    pub fn config(&self) -> &PipelineConfig {
        &self.config
    }

    /// What the stream carries, as encoded: the source's size, the codec, the stripe height.
    pub fn format(&self) -> StreamFormat {
        self.config.format()
    }

    /// The size of the screen the source reads from, as last seen (`None`: a source with no
    /// screen, such as a synthetic scene).
    pub fn screen_size(&self) -> Option<(u32, u32)> {
        self.source.screen_size()
    }

    /// The number the next tick's frame gets.
    pub fn next_frame_id(&self) -> u64 {
        self.frame_id
    }

    /// Handles that unblock the source and overlays when their server stops answering.
    pub fn interrupters(&self) -> Vec<Interrupter> {
        self.source
            .interrupter()
            .into_iter()
            .chain(self.overlays.iter().filter_map(|o| o.interrupter()))
            .collect()
    }

    /// Applies a live change from the next tick on; see [`Control`].
    ///
    /// # Errors
    /// [`ControlError`] when the change is refused (nothing changed) or an encoder could not
    /// be restarted for it.
    pub fn apply(&mut self, control: &Control) -> Result<(), ControlError> {
        if *control == Control::Refresh {
            self.refresh_pending = true;
            return Ok(());
        }
        let config = self.config.with(control)?;
        self.reconfigure(config)
    }

    /// Switches to `config`, a change of the current one made by [`PipelineConfig::with`].
    /// A new frame rate keeps everything; a new JPEG quality or H.264 rate starts every stripe
    /// over, so each is re-sent once at the new quality (H.264 encoders restart: as IDRs) and a
    /// still picture shows the change too. A new region (or stripe layout) rebuilds the
    /// source's buffers, the stripes and their encoders, and the next frame is complete.
    ///
    /// # Errors
    /// [`ControlError::Encode`] when an encoder cannot be opened for the new settings,
    /// [`ControlError::Source`] when the source refuses the new region (off the screen);
    /// nothing changed then.
    pub fn reconfigure(&mut self, config: PipelineConfig) -> Result<(), ControlError> {
        // The slots must be home (the capture thread reconfigures only between frames).
        self.settle();
        // A config that follows the screen takes the screen's size as it is now, whatever
        // region it was derived with.
        let config = match self.screen_region(&config) {
            Some(region) if region != config.region() => config.with_region(region)?,
            _ => config,
        };
        if (config.region(), config.layout()) != (self.config.region(), self.config.layout()) {
            return self.resize(config);
        }
        let old = std::mem::replace(&mut self.config, config);
        let new = &self.config;
        if new.scroll_detection() != self.scroll.is_some() {
            self.scroll = new.scroll_detection().then(ScrollDetector::default);
        }
        let restart = match (old.encoder(), new.encoder()) {
            // The frame rate and a constant bitrate are retuned in place (no IDR).
            (EncoderConfig::H264(a), EncoderConfig::H264(b)) => !a.retunable_to(b),
            (a, b) => a != b,
        };
        if restart {
            let width = self.source.size().0;
            for slot in &mut self.slots {
                slot.encoder = encode::new_encoder(new.encoder(), width, slot.height)?;
            }
        } else if old.encoder() != new.encoder() {
            for slot in &mut self.slots {
                slot.encoder.retune(new.encoder())?;
            }
        }
        let (a, b) = (old.settings(), new.settings());
        let quality_changed = (a.jpeg_quality, a.paint_over_jpeg_quality)
            != (b.jpeg_quality, b.paint_over_jpeg_quality);
        if restart || quality_changed {
            // Start every stripe over: sent again on the next tick, at the new quality (a
            // plain refresh would keep a stripe's higher old quality).
            for slot in &mut self.slots {
                slot.state.reset();
            }
            self.refresh_pending = true;
        }
        Ok(())
    }

    /// Switches to a config with another region or stripe layout: new stripes and encoders
    /// (made first, so a failure changes nothing), the source and overlays told, and the next
    /// frame a refresh (every stripe; H.264 as IDRs) of the new size. The slots must be home.
    fn resize(&mut self, config: PipelineConfig) -> Result<(), ControlError> {
        let region = config.region();
        let slots = make_slots(&config, region.width)?;
        let threads = pool_threads(slots.len());
        // A pool sized for the new stripe count; the old one stays if a new one cannot start.
        let pool = if threads == self.pool.threads() {
            None
        } else {
            EncodePool::new(threads)
                .map_err(|e| tracing::warn!("keeping the encode pool: {e}"))
                .ok()
        };
        if region != self.config.region() {
            self.source.set_region(region)?;
            for overlay in &mut self.overlays {
                overlay.set_region(region);
            }
        }
        let old = self.config.format();
        self.slots = slots;
        if let Some(pool) = pool {
            self.pool = pool;
        }
        self.config = config;
        self.refresh_pending = true;
        self.last_copy = None;
        self.spare = None;
        self.last_encode_wall_ns = 0;
        let new = self.config.format();
        tracing::info!(
            "capture region now {}x{}+{}+{} (was {}x{})",
            new.width,
            new.height,
            region.x,
            region.y,
            old.width,
            old.height
        );
        Ok(())
    }

    /// For a config that follows the screen, the whole screen as the source last saw it.
    fn screen_region(&self, config: &PipelineConfig) -> Option<Region> {
        if !config.follows_screen() {
            return None;
        }
        let (width, height) = self.source.screen_size()?;
        Some(Region {
            x: 0,
            y: 0,
            width,
            height,
        })
    }

    /// Following the screen: when the source has seen it change size, switches to the whole
    /// new screen before the next frame. Returns whether the region changed.
    fn follow_screen(&mut self) -> Result<bool, CaptureError> {
        let Some(screen) = self.screen_region(&self.config) else {
            return Ok(false);
        };
        if self.followed == Some(screen) {
            // Nothing new since the last look (the common case: no settings work per frame).
            return Ok(false);
        }
        self.followed = Some(screen);
        let config = self.config.with_region(screen)?;
        if config.region() == self.config.region() {
            return Ok(false);
        }
        self.settle();
        self.resize(config).map_err(|e| match e {
            ControlError::Source(e) => CaptureError::Source(e),
            ControlError::Encode(e) => CaptureError::Encode(e),
            ControlError::Invalid(e) => CaptureError::Settings(e),
            other => CaptureError::Thread(other.to_string()),
        })?;
        Ok(true)
    }

    /// Runs one frame: reads what changed (grabbing only if something did), draws the
    /// overlays, decides and encodes every stripe, and returns the stripes to send in order.
    /// `refresh` makes the frame self-contained (as does the first frame).
    ///
    /// # Errors
    /// The first source, overlay or encoder error; the frame's stripes are then dropped. An
    /// encoder that failed starts over on the next tick (its stripe is sent as new).
    pub fn tick(&mut self, refresh: bool) -> Result<TickOutput, CaptureError> {
        if self.in_flight.is_some() || self.staged.is_some() {
            // Left by the pipelined path: finish that frame first, in order.
            return self.finish_pipelined();
        }
        let (mut meta, frame) = start_next_frame!(self, refresh);
        let view = frame.view();
        let cfg = *self.config.detect();
        self.last_grab_ns = meta.times.grab;
        plan_scroll(
            self.scroll.as_mut(),
            &mut self.slots,
            self.config.layout(),
            view,
            &mut meta,
        );
        self.last_encode_wall_ns = run_slots(
            &mut self.slots,
            self.pool.pool.as_ref(),
            view,
            &cfg,
            &meta.tick,
        );
        let out = gather(&mut self.slots, meta);
        self.delivered(out)
    }

    /// A frame's result on its way out: scroll detection forgets a frame that fails (its
    /// stripes never reach the viewer, so the next frame cannot copy from it).
    fn delivered(
        &mut self,
        out: Result<TickOutput, CaptureError>,
    ) -> Result<TickOutput, CaptureError> {
        self.note_sent(&out);
        if out.is_err() {
            if let Some(scroll) = &mut self.scroll {
                scroll.forget();
            }
        }
        out
    }

    /// Keeps the rows the frame sent for the next frames' rate shares.
    fn note_sent(&mut self, out: &Result<TickOutput, CaptureError>) {
        if let Ok(out) = out {
            let rows: u32 = out.stripes.iter().map(|s| s.height).sum();
            if rows > 0 {
                self.sent_rows = rows;
            }
        }
    }

    /// The next frame's number and whether it is a refresh.
    fn next_frame(&mut self, refresh: bool) -> (u64, bool) {
        let frame_id = self.frame_id;
        self.frame_id += 1;
        let pending = std::mem::take(&mut self.refresh_pending);
        let periodic = self
            .config
            .keyframe_every()
            .is_some_and(|n| frame_id.is_multiple_of(n));
        (frame_id, refresh || pending || periodic || frame_id == 0)
    }

    /// Pipelined capture, step 1: reads what changed, grabs (only if something did), draws the
    /// overlays and copies the frame, so the source can grab again while this frame's stripes
    /// are encoded. The frame waits (at most one) until [`encode_staged`](Self::encode_staged).
    ///
    /// Frames go through [`grab_next`](Self::grab_next), [`encode_staged`](Self::encode_staged)
    /// and [`wait_encoded`](Self::wait_encoded) in order: the next frame can be grabbed while
    /// the one before is encoding (two frames in flight at most, never a queue).
    pub(crate) fn grab_next(&mut self, refresh: bool) -> Result<(), CaptureError> {
        debug_assert!(self.staged.is_none(), "one staged frame at most");
        let (mut meta, frame) = start_next_frame!(self, refresh);
        self.last_grab_ns = meta.times.grab;
        let copy = match &self.last_copy {
            // Nothing changed: the pixels are the last copy's.
            Some(last) if !meta.grabbed => Arc::clone(last),
            _ => {
                let t = Instant::now();
                let copy = Arc::new(copy_into(frame.view(), self.spare.take()));
                meta.times.grab += elapsed_ns(t);
                copy
            }
        };
        self.last_copy = Some(Arc::clone(&copy));
        self.staged = Some(Staged { frame: copy, meta });
        Ok(())
    }

    /// Pipelined capture, step 2: starts encoding the staged frame's stripes on the pool and
    /// returns at once (a frame with nothing to hash or encode is done here). Waits first for
    /// a frame still encoding. Does nothing when no frame is staged.
    pub(crate) fn encode_staged(&mut self) {
        let Some(mut staged) = self.staged.take() else {
            return;
        };
        self.settle();
        let cfg = *self.config.detect();
        plan_scroll(
            self.scroll.as_mut(),
            &mut self.slots,
            self.config.layout(),
            staged.frame.view(),
            &mut staged.meta,
        );
        let nothing_changed = !staged.meta.grabbed;
        let pool = self.pool.pool.as_ref();
        let pool = pool.filter(|_| self.slots.iter().any(|s| s.has_work(nothing_changed)));
        let Some(pool) = pool else {
            self.last_encode_wall_ns = run_slots(
                &mut self.slots,
                None,
                staged.frame.view(),
                &cfg,
                &staged.meta.tick,
            );
            let out = gather(&mut self.slots, staged.meta);
            self.in_flight = Some(InFlight::Done(self.delivered(out)));
            return;
        };
        let mut slots = std::mem::take(&mut self.slots);
        let (tx, rx) = mpsc::channel();
        let Staged { frame, meta } = staged;
        let tick = meta.tick.clone();
        pool.spawn(move || {
            // A panicking encoder must not take the pool thread (and the process) down:
            // the capture ends with an error instead.
            let mut wall_ns = 0;
            let panicked = std::panic::catch_unwind(AssertUnwindSafe(|| {
                wall_ns = run_slots(&mut slots, None, frame.view(), &cfg, &tick);
            }))
            .is_err();
            let _ = tx.send(Encoded {
                slots,
                frame,
                panicked,
                wall_ns,
            });
        });
        self.in_flight = Some(InFlight::Running { rx, meta });
    }

    /// Whether the last frame's grab took at least as long as its stripes' work on the pool:
    /// the source's server, not the encoders, sets the pace. Overlapping the grab with the
    /// encoding would then only take cores from that server, so the capture does not pipeline.
    pub(crate) fn grab_bound(&self) -> bool {
        self.last_grab_ns >= self.last_encode_wall_ns
    }

    /// Whether overlapping the next grab with this frame's encoding can gain anything: the
    /// machine has a core the encode pool leaves free, and the grab is not the slow part.
    /// Without a free core the grab, the copy and the X server only compete with the encoders
    /// (measured on a 2-core machine: no more frames, longer grabs; docs/PERFORMANCE.md).
    pub(crate) fn overlap_pays(&self) -> bool {
        #[cfg(test)]
        if self.force_overlap {
            return true;
        }
        self.spare_core && !self.grab_bound()
    }

    /// Whether a frame is encoding (or encoded and not yet taken by
    /// [`wait_encoded`](Self::wait_encoded)).
    pub(crate) fn in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Pipelined capture, step 3: the frame in flight once it is encoded; waits at most until
    /// `until` (`None`: as long as it takes). `None` when nothing is in flight or `until` came
    /// first.
    pub(crate) fn wait_encoded(
        &mut self,
        until: Option<Instant>,
    ) -> Option<Result<TickOutput, CaptureError>> {
        match self.in_flight.take()? {
            InFlight::Done(out) => Some(out),
            InFlight::Running { rx, meta } => {
                let got = match until {
                    None => rx.recv().map_err(|_| ()),
                    Some(t) => match rx.recv_timeout(t.saturating_duration_since(Instant::now())) {
                        Ok(e) => Ok(e),
                        Err(mpsc::RecvTimeoutError::Timeout) => {
                            self.in_flight = Some(InFlight::Running { rx, meta });
                            return None;
                        }
                        Err(mpsc::RecvTimeoutError::Disconnected) => Err(()),
                    },
                };
                Some(self.home(got, meta))
            }
        }
    }

    /// Takes back the slots from an encode job and collects its stripes.
    fn home(
        &mut self,
        got: Result<Encoded, ()>,
        meta: FrameMeta,
    ) -> Result<TickOutput, CaptureError> {
        let Ok(encoded) = got else {
            return self.delivered(Err(CaptureError::Thread("the encode pool ended".into())));
        };
        self.slots = encoded.slots;
        self.last_encode_wall_ns = encoded.wall_ns;
        if let Ok(frame) = Arc::try_unwrap(encoded.frame) {
            self.spare = Some(frame);
        }
        if encoded.panicked {
            for slot in &mut self.slots {
                slot.state.reset();
                slot.output = None;
            }
            return self.delivered(Err(CaptureError::Thread(
                "a stripe encoder panicked".into(),
            )));
        }
        let out = gather(&mut self.slots, meta);
        self.delivered(out)
    }

    /// Brings the slots home from a frame in flight, keeping its result for
    /// [`wait_encoded`](Self::wait_encoded).
    fn settle(&mut self) {
        if let Some(InFlight::Running { rx, meta }) = self.in_flight.take() {
            let got = rx.recv().map_err(|_| ());
            let out = self.home(got, meta);
            self.in_flight = Some(InFlight::Done(out));
        }
    }

    /// [`tick`](Self::tick) after pipelined use: the oldest frame not yet returned.
    fn finish_pipelined(&mut self) -> Result<TickOutput, CaptureError> {
        if self.in_flight.is_none() {
            self.encode_staged();
        }
        match self.wait_encoded(None) {
            Some(out) => out,
            None => Err(CaptureError::Thread("no frame in flight".into())),
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        // An encode job still running owns the encoders: let it finish (encoding does not
        // wait on any server) before the pool is joined.
        self.settle();
    }
}

/// What is known about a frame before its stripes are processed.
struct FrameMeta {
    tick: Tick,
    grabbed: bool,
    times: StageTimes,
    /// The frame's copy-rows message (scroll detection), sent before its stripes.
    copy: Option<Stripe>,
}

/// A grabbed, copied frame waiting for its encode.
struct Staged {
    frame: Arc<OwnedFrame>,
    meta: FrameMeta,
}

enum InFlight {
    Running {
        rx: mpsc::Receiver<Encoded>,
        meta: FrameMeta,
    },
    Done(Result<TickOutput, CaptureError>),
}

/// What an encode job hands back.
struct Encoded {
    slots: Vec<StripeSlot>,
    frame: Arc<OwnedFrame>,
    panicked: bool,
    /// Wall time the job took.
    wall_ns: u64,
}

/// Damage, grab (skipped when nothing changed) and overlays of one frame.
fn start_frame<'s>(
    source: &'s mut dyn FrameSource,
    overlays: &mut [Box<dyn Overlay>],
    frame_id: u64,
    refresh: bool,
    format: StreamFormat,
    sent_rows: u32,
) -> Result<(FrameMeta, Frame<'s>), CaptureError> {
    let captured_at = Instant::now();
    let mut times = StageTimes::default();
    // What may have changed: the source's damage plus the rows overlays moved in.
    // Trusted except on refreshes and, as a safety net, every FULL_CHECK_EVERY frames.
    let mut damage = source.damage()?;
    let (width, height) = source.size();
    for overlay in overlays.iter_mut() {
        damage = damage.with_rows(overlay.prepare(width, height, frame_id)?);
    }
    if refresh || frame_id.is_multiple_of(FULL_CHECK_EVERY) {
        damage = Damage::Unknown;
    }
    let nothing_changed = damage == Damage::Rows(Vec::new());
    let mut frame = if nothing_changed {
        source.last_frame()
    } else {
        source.grab()?
    };
    times.grab = elapsed_ns(captured_at);
    if !nothing_changed {
        let t_overlay = Instant::now();
        for overlay in overlays.iter_mut() {
            overlay.apply(&mut frame, frame_id)?;
        }
        times.overlay = elapsed_ns(t_overlay);
    }
    let meta = FrameMeta {
        tick: Tick {
            refresh,
            frame_id,
            captured_at,
            damage,
            format,
            sent_rows,
        },
        grabbed: !nothing_changed,
        times,
        copy: None,
    };
    Ok((meta, frame))
}

/// Scroll detection for one frame, when on: each slot's [`Role`], and the frame's copy-rows
/// message in `meta` when rows moved. Its time counts as detection.
fn plan_scroll(
    scroll: Option<&mut ScrollDetector>,
    slots: &mut [StripeSlot],
    layout: StripeLayout,
    view: FrameRef<'_>,
    meta: &mut FrameMeta,
) {
    let Some(scroll) = scroll else {
        return;
    };
    let t0 = Instant::now();
    let carried: Vec<Carried> = slots.iter().map(|s| s.state.carried()).collect();
    let plan = scroll.frame(view, &meta.tick.damage, layout, &carried, meta.tick.refresh);
    for (slot, role) in slots.iter_mut().zip(plan.roles) {
        slot.role = role;
    }
    if let (Some(first), Some(last)) = (plan.runs.first(), plan.runs.last()) {
        let mut data = Vec::with_capacity(
            crate::wire::COPY_ROWS_HEADER_LEN + plan.runs.len() * crate::wire::COPY_RUN_LEN,
        );
        crate::wire::write_copy_rows(&mut data, meta.tick.frame_id as u32, &plan.runs);
        meta.copy = Some(Stripe {
            kind: StripeKind::CopyRows,
            frame_id: meta.tick.frame_id,
            y: first.dst_y,
            width: view.width,
            height: last.dst_y + last.height - first.dst_y,
            data,
            header_len: crate::wire::COPY_ROWS_HEADER_LEN,
            paint_over: false,
            captured_at: meta.tick.captured_at,
            encoded_at: Instant::now(),
            format: meta.tick.format,
        });
    }
    meta.times.detect += elapsed_ns(t0);
}

/// Hashes, decides and encodes every stripe of `view`: on `pool` when given and some stripe
/// has work, else on the calling thread (which may itself be a pool thread). Stripes are
/// started largest first (by what they cost last frame) so one long stripe does not end
/// the frame alone. Returns the wall time taken.
fn run_slots(
    slots: &mut [StripeSlot],
    pool: Option<&rayon::ThreadPool>,
    view: FrameRef<'_>,
    cfg: &DetectConfig,
    tick: &Tick,
) -> u64 {
    let t0 = Instant::now();
    let nothing_changed = tick.damage == Damage::Rows(Vec::new());
    let mut work: Vec<&mut StripeSlot> = Vec::with_capacity(slots.len());
    for slot in slots.iter_mut() {
        if slot.has_work(nothing_changed) {
            work.push(slot);
        } else {
            // Nothing to hash or encode: keep the counters ticking without waking the pool.
            slot.process(view, cfg, tick);
        }
    }
    if work.len() <= 1 {
        for slot in work {
            slot.process(view, cfg, tick);
        }
        return elapsed_ns(t0);
    }
    work.sort_by_key(|s| std::cmp::Reverse(s.last_cost_ns));
    let run = || {
        rayon::scope_fifo(|scope| {
            for slot in work {
                scope.spawn_fifo(move |_| slot.process(view, cfg, tick));
            }
        })
    };
    match pool {
        Some(pool) => pool.install(run),
        None => run(),
    }
    elapsed_ns(t0)
}

/// The stripes (in order) and stage times of a processed frame.
fn gather(slots: &mut [StripeSlot], meta: FrameMeta) -> Result<TickOutput, CaptureError> {
    let mut times = meta.times;
    // The copy-rows message goes first: the viewer moves its rows, then paints the stripes.
    let mut stripes: Vec<Stripe> = meta.copy.into_iter().collect();
    let mut failure = None;
    for slot in slots.iter_mut() {
        let (detect, encode) = (
            std::mem::take(&mut slot.detect_ns),
            std::mem::take(&mut slot.encode_ns),
        );
        slot.last_cost_ns = detect + encode;
        times.detect += detect;
        times.encode += encode;
        match slot.output.take() {
            Some(Ok(stripe)) => stripes.push(stripe),
            Some(Err(e)) => {
                failure.get_or_insert(e);
            }
            None => {}
        }
    }
    if let Some(e) = failure {
        return Err(e.into());
    }
    Ok(TickOutput {
        frame_id: meta.tick.frame_id,
        refresh: meta.tick.refresh,
        grabbed: meta.grabbed,
        stripes,
        times,
    })
}

/// Cores of this machine (2 when unknown).
fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

/// Encode pool threads for `stripes` stripes: one per stripe and per core.
fn pool_threads(stripes: usize) -> usize {
    cores().min(stripes).max(1)
}

/// Whether `e` says the screen shrank under the region (a grab answered `BadMatch`).
fn no_longer_fits(e: &CaptureError) -> bool {
    matches!(
        e,
        CaptureError::Source(crate::source::SourceError::RegionNoLongerFits { .. })
    )
}

/// A copy of `view` in `spare`'s buffer when it has the size (the pipelined capture's frames).
fn copy_into(view: FrameRef<'_>, spare: Option<OwnedFrame>) -> OwnedFrame {
    let mut frame = spare
        .filter(|f| (f.width, f.height) == (view.width, view.height))
        .unwrap_or_else(|| OwnedFrame::new(view.width, view.height));
    let stride = frame.stride();
    if stride > 0 {
        for (y, row) in frame.data.chunks_exact_mut(stride).enumerate() {
            row.copy_from_slice(view.row(y as u32));
        }
    }
    frame
}

fn elapsed_ns(since: Instant) -> u64 {
    since.elapsed().as_nanos() as u64
}

fn make_slots(config: &PipelineConfig, width: u32) -> Result<Vec<StripeSlot>, EncodeError> {
    let layout = config.layout();
    (0..layout.count())
        .map(|i| {
            let (y, h) = layout.stripe(i);
            Ok(StripeSlot {
                y,
                height: h,
                state: StripeState::default(),
                encoder: encode::new_encoder(config.encoder(), width, h)?,
                role: Role::Normal,
                output: None,
                detect_ns: 0,
                encode_ns: 0,
                last_cost_ns: 0,
            })
        })
        .collect()
}

/// What every stripe needs to know about the current frame.
#[derive(Clone)]
struct Tick {
    refresh: bool,
    frame_id: u64,
    captured_at: Instant,
    damage: Damage,
    format: StreamFormat,
    /// Rows the last frame sent (rate shares under a constant bitrate).
    sent_rows: u32,
}

/// One stripe's state and encoder, owned by the slot: no shared maps, no locks per stripe.
struct StripeSlot {
    y: u32,
    height: u32,
    state: StripeState,
    encoder: Box<dyn StripeEncoder>,
    /// What scroll detection said about this stripe this frame (taken by `process`).
    role: Role,
    output: Option<Result<Stripe, EncodeError>>,
    /// Time this frame spent hashing/deciding and encoding this stripe.
    detect_ns: u64,
    encode_ns: u64,
    /// What the last frame cost this stripe (detect + encode): the order stripes start in.
    last_cost_ns: u64,
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
        let role = std::mem::take(&mut self.role);
        let pixels = frame.rows(self.y, self.height);
        let t0 = Instant::now();
        let decision = match (role, &tick.damage) {
            (Role::Normal, Damage::Unknown) => self.state.decide(cfg, pixels, refresh, false),
            (Role::Normal, Damage::Rows(rows)) => {
                let known_unchanged = !self.touched_by(rows);
                self.state.decide(cfg, pixels, refresh, known_unchanged)
            }
            // Scroll detection hashed the rows: the stripe's hash comes from them, and
            // `unchanged` is exactly what hashing the stripe would say.
            (Role::Hashed { hash, unchanged }, _) => {
                self.state.decide_with(cfg, || hash, refresh, unchanged)
            }
            (Role::Moved { hash, carried }, _) => {
                // The viewer copies these rows (the frame's copy-rows): nothing to encode.
                self.state.moved(hash, carried);
                self.detect_ns = elapsed_ns(t0);
                return;
            }
        };
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
        let share = f64::from(self.height) / f64::from(tick.sent_rows.max(self.height));
        let result = self
            .encoder
            .set_rate_share(share)
            .and_then(|()| self.encoder.encode(pixels, &request, place, &mut data));
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
                format: tick.format,
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

/// A rayon pool whose threads are joined when the pipeline is dropped (rayon itself lets
/// them finish on their own after the pool is dropped).
struct EncodePool {
    /// `None` only while being dropped.
    pool: Option<rayon::ThreadPool>,
    /// Threads asked for.
    size: usize,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl EncodePool {
    fn new(threads: usize) -> Result<Self, CaptureError> {
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
        Ok(Self {
            pool: Some(pool),
            size: threads,
            threads: handles,
        })
    }

    /// Threads the pool was made with.
    fn threads(&self) -> usize {
        self.size
    }
}

impl Drop for EncodePool {
    fn drop(&mut self) {
        // Dropping the pool tells its threads to exit; then wait for them.
        drop(self.pool.take());
        let handles = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for handle in handles {
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{CaptureSettings, OutputMode};
    use crate::source::synthetic::Scene;

    fn open(scene: Scene, codec: OutputMode) -> Pipeline {
        open_with(scene, codec, false)
    }

    /// With `scroll`: the tagged format with scroll detection (copy-rows).
    fn open_with(scene: Scene, codec: OutputMode, scroll: bool) -> Pipeline {
        let settings = CaptureSettings {
            capture_width: 256,
            capture_height: 192,
            output_mode: codec,
            wire_format: if scroll {
                crate::WireFormat::Tagged
            } else {
                crate::WireFormat::Compat
            },
            scroll_detection: scroll,
            ..Default::default()
        };
        let config = PipelineConfig::new(&settings).unwrap();
        Pipeline::open(config, &SourceSpec::Synthetic(scene)).unwrap()
    }

    /// (frame, y, bytes, is copy-rows) of every stripe.
    fn key(out: &TickOutput) -> Vec<(u64, u32, Vec<u8>, bool)> {
        out.stripes
            .iter()
            .map(|s| {
                let copy = s.kind == StripeKind::CopyRows;
                (s.frame_id, s.y, s.data.clone(), copy)
            })
            .collect()
    }

    /// The pipelined steps, with the next frame grabbed while the one before encodes, give
    /// exactly what plain ticks give: the same frames in order, the same stripes in stripe
    /// order, byte for byte (the plain path is checked against real decoders in
    /// tests/pipeline.rs), each frame once.
    #[test]
    fn pipelined_frames_are_the_plain_ticks_in_order_each_once() {
        // H.264 only where this build has an encoder for it (the `x264` feature); JPEG also
        // with scroll detection (a copy-rows message first in most scroll frames).
        let mut codecs = vec![(OutputMode::Jpeg, false), (OutputMode::Jpeg, true)];
        if cfg!(feature = "x264") {
            codecs.push((OutputMode::H264, false));
        }
        for (codec, scroll) in codecs {
            for scene in [Scene::Full, Scene::Scroll, Scene::Typing, Scene::Static] {
                let mut plain = open_with(scene, codec, scroll);
                let expected: Vec<_> = (0..12).map(|_| key(&plain.tick(false).unwrap())).collect();
                if scroll && scene == Scene::Scroll {
                    let copies = expected.iter().filter(|f| f.first().is_some_and(|s| s.3));
                    assert!(copies.count() >= 10, "the scroll scene sends copy-rows");
                }
                let mut piped = open_with(scene, codec, scroll);
                let mut got = Vec::new();
                piped.grab_next(false).unwrap();
                piped.encode_staged();
                for _ in 1..12 {
                    // Frame n+1 grabbed while frame n is (or may be) still encoding.
                    piped.grab_next(false).unwrap();
                    let out = piped.wait_encoded(None).expect("a frame in flight");
                    piped.encode_staged();
                    got.push(key(&out.unwrap()));
                }
                got.push(key(&piped.wait_encoded(None).unwrap().unwrap()));
                assert!(piped.wait_encoded(None).is_none(), "a frame returned twice");
                assert_eq!(got.len(), expected.len());
                for (n, (g, e)) in got.iter().zip(&expected).enumerate() {
                    assert!(
                        g == e,
                        "{scene} {codec:?} frame {n} differs from the plain tick"
                    );
                    assert!(
                        g.iter().all(|s| s.0 == n as u64),
                        "frame {n} has stripes of another"
                    );
                    // Copy-rows first, then the stripes top to bottom.
                    let pictures = g.iter().skip_while(|s| s.3).collect::<Vec<_>>();
                    assert!(pictures.iter().all(|s| !s.3), "frame {n}: copy-rows late");
                    assert!(
                        pictures.windows(2).all(|w| w[0].1 < w[1].1),
                        "frame {n}: stripe order"
                    );
                }
            }
        }
    }

    /// A frame left in flight is finished, in order, by the next tick, a reconfigure, or the
    /// drop (which waits for the encode job before joining the pool).
    #[test]
    fn a_frame_in_flight_is_finished_by_tick_reconfigure_and_drop() {
        let mut p = open(Scene::Full, OutputMode::Jpeg);
        p.grab_next(false).unwrap();
        p.encode_staged();
        assert_eq!(p.tick(false).unwrap().frame_id, 0);
        assert_eq!(p.tick(false).unwrap().frame_id, 1);
        p.grab_next(false).unwrap();
        p.encode_staged();
        p.apply(&Control::SetJpegQuality(50)).unwrap();
        let out = p.wait_encoded(None).unwrap().unwrap();
        assert_eq!((out.frame_id, out.stripes.len()), (2, 3));
        p.grab_next(false).unwrap();
        p.encode_staged();
        drop(p);
    }
}
