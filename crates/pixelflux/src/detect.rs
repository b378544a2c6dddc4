//! Change detection: the stripe layout, and per stripe the decision each frame — skip, encode
//! a change, paint over a static stripe, or refresh on request.
//!
//! Each stripe's pixels are hashed with XXH3-64 and compared with the hash of what was last
//! sent. Every row is hashed (1.2.2's H.264 path sampled every 12th row and missed changes).

use xxhash_rust::xxh3::{xxh3_64, Xxh3};

use crate::encode::EncodeRequest;
use crate::frame::FrameRef;
use crate::settings::{CaptureSettings, Codec};

/// How the region is cut into horizontal stripes (decided by [`crate::config`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StripeLayout {
    /// Region height.
    pub height: u32,
    /// Rows per stripe (the last stripe may be shorter).
    pub stripe_height: u32,
}

impl StripeLayout {
    /// Number of stripes.
    pub fn count(&self) -> usize {
        self.height.div_ceil(self.stripe_height) as usize
    }

    /// First row and height of stripe `index`.
    pub fn stripe(&self, index: usize) -> (u32, u32) {
        let y = index as u32 * self.stripe_height;
        (y, self.stripe_height.min(self.height - y))
    }

    /// Indices of the stripes that cover rows `y0 .. y1`.
    pub fn covering(&self, y0: u32, y1: u32) -> std::ops::Range<usize> {
        let first = (y0 / self.stripe_height) as usize;
        let last = (y1.saturating_sub(1).min(self.height - 1) / self.stripe_height) as usize;
        first..last + 1
    }
}

/// XXH3-64 of a stripe's pixels (row padding excluded).
pub fn hash_pixels(pixels: FrameRef<'_>) -> u64 {
    let row_len = pixels.width as usize * 4;
    if pixels.stride == row_len {
        return xxh3_64(&pixels.data[..row_len * pixels.height as usize]);
    }
    let mut hasher = Xxh3::new();
    for y in 0..pixels.height {
        hasher.update(pixels.row(y));
    }
    hasher.digest()
}

/// JPEG quality lost per consecutive changed frame, down to `jpeg_quality`.
const QUALITY_STEP: u8 = 5;

/// The knobs of the decision, taken from the settings once (by [`crate::config`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetectConfig {
    jpeg_quality: u8,
    /// Quality a change starts at (paint-over quality when paint-over is on).
    start_quality: u8,
    paint_over_quality: u8,
    use_paint_over: bool,
    paint_over_trigger: u32,
    damage_threshold: u32,
    damage_duration: u32,
    jpeg: bool,
    /// Paint-overs are lossless stills (`paint_over_lossless`).
    lossless: bool,
}

impl DetectConfig {
    /// Reads the detection settings.
    pub fn new(settings: &CaptureSettings) -> Self {
        let lossless = settings.use_paint_over_quality && settings.paint_over_lossless;
        // With lossless stills to follow, a change need not start at paint-over quality.
        let start_quality = if settings.use_paint_over_quality && !lossless {
            settings.paint_over_jpeg_quality.max(settings.jpeg_quality)
        } else {
            settings.jpeg_quality
        };
        Self {
            jpeg_quality: settings.jpeg_quality,
            start_quality,
            paint_over_quality: settings.paint_over_jpeg_quality,
            // H.264 at a constant bitrate cleans a still stripe up whatever the setting says
            // (2.2.1's rule: its rate control alone leaves a still screen short of clean).
            use_paint_over: settings.use_paint_over_quality
                || (settings.output_mode == Codec::H264 && settings.video_cbr_mode),
            paint_over_trigger: settings.paint_over_trigger_frames,
            damage_threshold: settings.damage_block_threshold,
            damage_duration: settings.damage_block_duration,
            jpeg: settings.output_mode == Codec::Jpeg,
            lossless,
        }
    }
}

/// What one stripe does this frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Unchanged: send nothing.
    Skip,
    /// Encode with these parameters.
    Encode(EncodeRequest),
}

/// The memory of one stripe between frames.
#[derive(Debug, Clone, Default)]
pub struct StripeState {
    /// Hash of the pixels last sent (`None`: nothing sent yet, or unknown after damage).
    last_hash: Option<u64>,
    /// Frames in a row the stripe has been unchanged.
    static_frames: u32,
    /// Frames in a row the stripe has changed.
    changed_frames: u32,
    /// Frames left in the damaged state (encoded without hashing).
    damaged_left: u32,
    /// JPEG quality of the next change.
    quality: u8,
    /// Quality of what was last sent (paint-over is needed only if it is lower).
    sent_quality: u8,
    /// A paint-over was sent since the last change.
    painted_over: bool,
}

impl StripeState {
    /// Whether the stripe is in the damaged state (encoded every frame without hashing).
    pub fn is_damaged(&self) -> bool {
        self.damaged_left > 0
    }

    /// Decides what to do with this frame's pixels of the stripe. `refresh` forces a
    /// self-contained send (first frame, a new viewer, `request_idr`). `known_unchanged` says
    /// the source vouches that these rows did not change (X DAMAGE), so hashing is skipped.
    pub fn decide(
        &mut self,
        cfg: &DetectConfig,
        pixels: FrameRef<'_>,
        refresh: bool,
        known_unchanged: bool,
    ) -> Decision {
        self.decide_with(cfg, || hash_pixels(pixels), refresh, known_unchanged)
    }

    /// [`decide`](Self::decide) with the stripe's hash made by `hash` (called at most once,
    /// only when needed): scroll detection derives it from the row hashes it already has. A
    /// stripe's hashes must all come from the same function.
    pub fn decide_with(
        &mut self,
        cfg: &DetectConfig,
        hash: impl FnOnce() -> u64,
        refresh: bool,
        known_unchanged: bool,
    ) -> Decision {
        if self.quality == 0 {
            self.quality = cfg.start_quality;
        }
        if self.damaged_left > 0 {
            self.damaged_left -= 1;
            if self.damaged_left == 0 {
                // Leaving the damaged state: remember what this last send holds so the next
                // frame is checked against it.
                self.last_hash = Some(hash());
                self.changed_frames = 0;
                self.static_frames = 0;
            }
            return Decision::Encode(self.change_request(cfg, refresh));
        }
        let hash = match self.last_hash {
            Some(last) if known_unchanged => last,
            _ => hash(),
        };
        if self.last_hash != Some(hash) {
            // The first send of a stripe is not activity; only changes after it count.
            if self.last_hash.is_some() {
                self.changed_frames += 1;
            }
            self.last_hash = Some(hash);
            self.static_frames = 0;
            self.painted_over = false;
            let request = self.change_request(cfg, refresh);
            if cfg.damage_threshold > 0
                && cfg.damage_duration > 0
                && self.changed_frames >= cfg.damage_threshold
            {
                self.damaged_left = cfg.damage_duration;
                self.changed_frames = 0;
                tracing::trace!("stripe enters damaged state");
            }
            return Decision::Encode(request);
        }
        self.changed_frames = 0;
        self.static_frames = self.static_frames.saturating_add(1);
        if self.static_frames >= cfg.damage_duration.max(1) {
            // Cooled down: the next change starts at high quality again.
            self.quality = cfg.start_quality;
        }
        if refresh {
            // With lossless stills a refresh is sent at `jpeg_quality` (the still follows),
            // not at the quality of the last send, which was the paint-over's.
            let quality = if cfg.lossless {
                cfg.jpeg_quality
            } else {
                self.sent_quality.max(cfg.jpeg_quality)
            };
            let mut request = self.request(cfg, quality, true);
            if cfg.lossless {
                // A key picture for the decoders now, the still again once the stripe has
                // been static for the trigger frames (a joining viewer converges too).
                self.painted_over = false;
                self.static_frames = 0;
            } else {
                request.paint_over = self.painted_over;
            }
            return Decision::Encode(request);
        }
        let needs_paint_over = if cfg.lossless {
            true
        } else if cfg.jpeg {
            self.sent_quality < cfg.paint_over_quality
        } else {
            true
        };
        if cfg.use_paint_over
            && !self.painted_over
            && needs_paint_over
            && self.static_frames >= cfg.paint_over_trigger
        {
            self.painted_over = true;
            let mut request = self.request(cfg, cfg.paint_over_quality, true);
            request.paint_over = true;
            return Decision::Encode(request);
        }
        Decision::Skip
    }

    fn change_request(&mut self, cfg: &DetectConfig, keyframe: bool) -> EncodeRequest {
        let quality = self.quality;
        self.quality = quality.saturating_sub(QUALITY_STEP).max(cfg.jpeg_quality);
        self.request(cfg, quality, keyframe)
    }

    fn request(&mut self, _cfg: &DetectConfig, quality: u8, keyframe: bool) -> EncodeRequest {
        self.sent_quality = quality;
        EncodeRequest {
            jpeg_quality: quality,
            paint_over: false,
            keyframe,
        }
    }

    /// Forgets what was sent, so the next frame is encoded as new (after an encoder reset).
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// What the viewer's pixels of this stripe are worth, for rows copied out of it.
    pub fn carried(&self) -> Carried {
        Carried {
            sent_quality: self.sent_quality,
            painted_over: self.painted_over,
        }
    }

    /// The viewer's pixels of this stripe were replaced by rows copied from elsewhere on its
    /// screen (copy-rows), which now match `hash`, the hash of this frame's pixels: nothing is
    /// encoded. The stripe takes on the worth of what was copied (`carried`: the lowest
    /// quality, paint-over only if every source had it), counts as just changed for the
    /// paint-over trigger (a still or paint-over follows once it stays put) and leaves the
    /// damaged state (the rows are hashed every frame while scroll detection is on). A move
    /// is not an encoded change: it neither steps the quality down nor counts towards damage
    /// throttling.
    pub fn moved(&mut self, hash: u64, carried: Carried) {
        self.last_hash = Some(hash);
        self.sent_quality = carried.sent_quality;
        self.painted_over = carried.painted_over;
        self.static_frames = 0;
        self.changed_frames = 0;
        self.damaged_left = 0;
    }
}

/// The worth of pixels a viewer has: the JPEG quality they were sent at and whether a
/// paint-over (or lossless still) has been sent for them. Rows moved by copy-rows carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Carried {
    sent_quality: u8,
    painted_over: bool,
}

impl Carried {
    /// Whether anything was sent for these pixels (a stripe that was reset has nothing the
    /// viewer could copy from).
    pub fn is_sent(&self) -> bool {
        self.sent_quality > 0
    }

    /// The worth of pixels made of both: the lower quality, painted over only if both were.
    pub fn merge(self, other: Carried) -> Carried {
        Carried {
            sent_quality: self.sent_quality.min(other.sent_quality),
            painted_over: self.painted_over && other.painted_over,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::OwnedFrame;

    fn settings() -> CaptureSettings {
        CaptureSettings {
            jpeg_quality: 70,
            paint_over_jpeg_quality: 95,
            use_paint_over_quality: true,
            paint_over_trigger_frames: 3,
            damage_block_threshold: 4,
            damage_block_duration: 5,
            ..Default::default()
        }
    }

    fn frame(v: u8) -> OwnedFrame {
        let mut f = OwnedFrame::new(16, 16);
        f.data.fill(v);
        f
    }

    #[test]
    fn layout_covers_every_row_once() {
        let l = StripeLayout {
            height: 1080,
            stripe_height: 64,
        };
        assert_eq!(l.count(), 17);
        assert_eq!(l.stripe(16), (1024, 56));
        assert_eq!(l.covering(60, 70), 0..2);
        assert_eq!(l.covering(1079, 1080), 16..17);
        let total: u32 = (0..l.count()).map(|i| l.stripe(i).1).sum();
        assert_eq!(total, 1080);
    }

    #[test]
    fn first_frame_sends_then_static_skips() {
        let cfg = DetectConfig::new(&CaptureSettings::default());
        let mut s = StripeState::default();
        let f = frame(1);
        assert!(matches!(
            s.decide(&cfg, f.view(), false, false),
            Decision::Encode(_)
        ));
        for _ in 0..50 {
            assert_eq!(s.decide(&cfg, f.view(), false, false), Decision::Skip);
        }
    }

    #[test]
    fn quality_steps_down_and_paint_over_fires_once() {
        let cfg = DetectConfig::new(&settings());
        let mut s = StripeState::default();
        let qualities: Vec<u8> = (0..3)
            .map(|i| match s.decide(&cfg, frame(i).view(), false, false) {
                Decision::Encode(r) => r.jpeg_quality,
                Decision::Skip => panic!("change skipped"),
            })
            .collect();
        assert_eq!(qualities, [95, 90, 85]);
        let f = frame(2);
        assert_eq!(s.decide(&cfg, f.view(), false, false), Decision::Skip);
        assert_eq!(s.decide(&cfg, f.view(), false, false), Decision::Skip);
        match s.decide(&cfg, f.view(), false, false) {
            Decision::Encode(r) => assert!(r.paint_over && r.jpeg_quality == 95),
            Decision::Skip => panic!("no paint-over"),
        }
        for _ in 0..20 {
            assert_eq!(s.decide(&cfg, f.view(), false, false), Decision::Skip);
        }
    }

    #[test]
    fn lossless_stills_fire_after_the_trigger_and_again_after_a_refresh() {
        let cfg = DetectConfig::new(&CaptureSettings {
            paint_over_lossless: true,
            output_mode: Codec::H264,
            ..settings()
        });
        let mut s = StripeState::default();
        let f = frame(1);
        let decide = |s: &mut StripeState, refresh| s.decide(&cfg, f.view(), refresh, false);
        // The first send is at jpeg_quality (no climb from paint-over quality): a still follows.
        match decide(&mut s, false) {
            Decision::Encode(r) => assert_eq!((r.jpeg_quality, r.paint_over), (70, false)),
            Decision::Skip => panic!("first frame skipped"),
        }
        let still = |s: &mut StripeState, refresh| {
            (0..3)
                .map(|_| decide(s, refresh))
                .collect::<Vec<_>>()
                .last()
                .copied()
        };
        // Static for the 3 trigger frames: a paint-over, then nothing.
        match still(&mut s, false) {
            Some(Decision::Encode(r)) => assert!(r.paint_over),
            other => panic!("no still: {other:?}"),
        }
        assert_eq!(decide(&mut s, false), Decision::Skip);
        // A refresh is a key picture without paint-over, and the still comes again after it.
        match decide(&mut s, true) {
            Decision::Encode(r) => {
                assert!(r.keyframe && !r.paint_over);
                assert_eq!(
                    r.jpeg_quality, 70,
                    "refresh at jpeg_quality, not paint-over's"
                );
            }
            Decision::Skip => panic!("refresh skipped"),
        }
        assert_eq!(decide(&mut s, false), Decision::Skip);
        assert_eq!(decide(&mut s, false), Decision::Skip);
        match decide(&mut s, false) {
            Decision::Encode(r) => assert!(r.paint_over),
            Decision::Skip => panic!("no still after the refresh"),
        }
    }

    #[test]
    fn known_unchanged_skips_hashing_but_not_a_first_send() {
        let cfg = DetectConfig::new(&CaptureSettings::default());
        let mut s = StripeState::default();
        // Nothing sent yet: even a vouched-for stripe is sent.
        assert!(matches!(
            s.decide(&cfg, frame(1).view(), false, true),
            Decision::Encode(_)
        ));
        // Vouched unchanged: skipped without looking (the pixels here differ on purpose).
        assert_eq!(s.decide(&cfg, frame(2).view(), false, true), Decision::Skip);
        // Hashed: the difference is seen.
        assert!(matches!(
            s.decide(&cfg, frame(2).view(), false, false),
            Decision::Encode(_)
        ));
    }

    #[test]
    fn damage_throttling_enters_and_leaves() {
        let cfg = DetectConfig::new(&settings());
        let mut s = StripeState::default();
        // The first send, then four changes: the fourth reaches the threshold.
        for i in 0..5 {
            s.decide(&cfg, frame(i).view(), false, false);
        }
        assert!(s.is_damaged());
        // While damaged, even an unchanged stripe is encoded, for exactly the duration.
        let still = frame(4);
        for _ in 0..5 {
            assert!(matches!(
                s.decide(&cfg, still.view(), false, false),
                Decision::Encode(_)
            ));
        }
        assert!(!s.is_damaged());
        assert_eq!(s.decide(&cfg, still.view(), false, false), Decision::Skip);
    }
}
