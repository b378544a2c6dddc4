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
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use rayon::prelude::*;

use crate::capture::{CaptureError, StageTimes, Stripe};
use crate::config::{Control, ControlError, EncoderConfig, PipelineConfig, StreamFormat};
use crate::detect::{Decision, DetectConfig, StripeState};
use crate::encode::{self, EncodeError, StripeEncoder, StripePlace};
use crate::frame::FrameRef;
use crate::overlay::{self, Overlay};
use crate::settings::SettingsError;
use crate::source::{Damage, FrameSource, Interrupter, SourceSpec};

/// Every this many frames all stripes are hashed whatever the source's damage report says,
/// so a change the report missed is still sent within a second or so.
const FULL_CHECK_EVERY: u64 = 60;

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
    frame_id: u64,
    /// A control asked for every stripe to be sent again (a quality change).
    refresh_pending: bool,
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
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .min(slots.len())
            .max(1);
        Ok(Self {
            pool: EncodePool::new(threads)?,
            config,
            source,
            overlays,
            slots,
            frame_id: 0,
            refresh_pending: false,
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
        self.reconfigure(config)?;
        Ok(())
    }

    /// Switches to `config`, a change of the current one made by [`PipelineConfig::with`].
    /// A new frame rate keeps everything; a new JPEG quality or H.264 rate starts every stripe
    /// over, so each is re-sent once at the new quality (H.264 encoders restart: as IDRs) and a
    /// still picture shows the change too.
    ///
    /// # Errors
    /// When an encoder cannot be opened for the new settings.
    pub fn reconfigure(&mut self, config: PipelineConfig) -> Result<(), EncodeError> {
        let old = std::mem::replace(&mut self.config, config);
        let new = &self.config;
        let restart = match (old.encoder(), new.encoder()) {
            // The frame rate only tunes x264's rate control: not worth a restart.
            (EncoderConfig::H264(a), EncoderConfig::H264(b)) => {
                (a.crf, a.fullcolor, a.threads) != (b.crf, b.fullcolor, b.threads)
            }
            (a, b) => a != b,
        };
        if restart {
            let width = self.source.size().0;
            for slot in &mut self.slots {
                slot.encoder = encode::new_encoder(new.encoder(), width, slot.height)?;
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

    /// Runs one frame: reads what changed (grabbing only if something did), draws the
    /// overlays, decides and encodes every stripe, and returns the stripes to send in order.
    /// `refresh` makes the frame self-contained (as does the first frame).
    ///
    /// # Errors
    /// The first source, overlay or encoder error; the frame's stripes are then dropped. An
    /// encoder that failed starts over on the next tick (its stripe is sent as new).
    pub fn tick(&mut self, refresh: bool) -> Result<TickOutput, CaptureError> {
        let captured_at = Instant::now();
        let frame_id = self.frame_id;
        self.frame_id += 1;
        let pending = std::mem::take(&mut self.refresh_pending);
        let refresh = refresh || pending || frame_id == 0;
        let mut times = StageTimes::default();
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
            self.source.grab()?
        };
        times.grab = elapsed_ns(captured_at);
        if !nothing_changed {
            let t_overlay = Instant::now();
            for overlay in &mut self.overlays {
                overlay.apply(&mut frame, frame_id)?;
            }
            times.overlay = elapsed_ns(t_overlay);
        }
        let view = frame.view();
        let cfg = self.config.detect();
        let tick = Tick {
            refresh,
            frame_id,
            captured_at,
            damage,
        };
        let pool = self.pool.pool.as_ref();
        if let Some(pool) = pool.filter(|_| self.slots.iter().any(|s| s.has_work(nothing_changed)))
        {
            let slots = &mut self.slots;
            pool.install(|| {
                slots
                    .par_iter_mut()
                    .for_each(|s| s.process(view, cfg, &tick))
            });
        } else {
            // Nothing to hash or encode: keep the counters ticking without waking the pool.
            for slot in &mut self.slots {
                slot.process(view, cfg, &tick);
            }
        }
        let mut stripes = Vec::new();
        let mut failure = None;
        for slot in &mut self.slots {
            times.detect += std::mem::take(&mut slot.detect_ns);
            times.encode += std::mem::take(&mut slot.encode_ns);
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
            frame_id,
            refresh,
            grabbed: !nothing_changed,
            stripes,
            times,
        })
    }
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
                output: None,
                detect_ns: 0,
                encode_ns: 0,
            })
        })
        .collect()
}

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

/// A rayon pool whose threads are joined when the pipeline is dropped (rayon itself lets
/// them finish on their own after the pool is dropped).
struct EncodePool {
    /// `None` only while being dropped.
    pool: Option<rayon::ThreadPool>,
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
            threads: handles,
        })
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
