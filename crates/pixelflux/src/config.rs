//! `PipelineConfig`: the user's [`CaptureSettings`], validated once and split into what each
//! stage takes. This is the one place where settings turn into decisions: the region after
//! rounding (H.264 needs even sizes), the stripe layout (`h264_fullframe` included), the
//! change-detection knobs, the encoder per codec, the overlays and the frame interval. No
//! stage reads `CaptureSettings` itself.
//!
//! Live changes ([`Control`]) go through the same door: [`PipelineConfig::with`] applies the
//! change to a copy of the settings and validates the result like a new capture's, so a value
//! refused at start is refused live too, with the same message.

use std::path::PathBuf;
use std::time::Duration;

use crate::detect::{DetectConfig, StripeLayout};
use crate::encode::EncodeError;
use crate::settings::{
    default_h264_stripe_height, CaptureSettings, Codec, JpegSubsampling, SettingsError,
    WatermarkLocation, WireFormat, DEFAULT_STRIPE_HEIGHT,
};
use crate::source::x11::Region;
use crate::source::SourceError;

/// Settings of the JPEG encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct JpegConfig {
    /// Which stripe header goes in front of each JPEG.
    pub wire_format: WireFormat,
    /// Chroma resolution (`jpeg_subsampling`).
    pub subsampling: JpegSubsampling,
    /// Paint-overs are lossless PNG stills (`paint_over_lossless` with paint-over on).
    pub lossless_stills: bool,
}

/// How H.264 encoders spend bits.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum H264Rate {
    /// Constant quality: x264's CRF at [`H264Config::crf`].
    Crf,
    /// Constant bitrate (`video_cbr_mode`): x264's ABR under a VBV whose rate is the target.
    Cbr {
        /// Target of the whole stream in kbit/s; each stripe's encoder gets its share of the
        /// changed area (its rows over the rows of the stripes sent in the last frame).
        kbps: u32,
        /// VBV buffer in frames of budget (`video_vbv_multiplier`, 0 resolved: 1.5, or 3
        /// with periodic key frames).
        vbv_frames: f64,
    },
}

/// Settings of the H.264 encoder of one stripe (or of the whole frame in full-frame mode).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct H264Config {
    /// Constant rate factor (0–51); not used under [`H264Rate::Cbr`].
    pub crf: u8,
    /// CRF or constant bitrate.
    pub rate: H264Rate,
    /// Lowest quantizer (`video_min_qp`; 0: x264's default).
    pub min_qp: u8,
    /// Highest quantizer (`video_max_qp`; 0: x264's default).
    pub max_qp: u8,
    /// Rows of the whole picture: a stripe's share of a constant bitrate is its rows over
    /// these.
    pub frame_height: u32,
    /// 4:4:4 (High 4:4:4 Predictive) instead of 4:2:0.
    pub fullcolor: bool,
    /// x264's own threads per encoder: one per core for a full-frame stream (one encoder),
    /// 1 for stripes (the stripes already run in parallel). 0 lets x264 choose.
    pub threads: u32,
    /// Frame rate given to x264's rate control.
    pub fps: f64,
    /// Paint-overs are lossless PNG stills (`paint_over_lossless` with paint-over on).
    pub lossless_stills: bool,
}

/// Which encoder each stripe gets, with its settings.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum EncoderConfig {
    /// libjpeg-turbo.
    Jpeg(JpegConfig),
    /// libx264.
    H264(H264Config),
}

impl H264Config {
    /// Whether an encoder opened for `self` can take `other` without being reopened: only
    /// the bitrate, the VBV and the frame rate differ (x264_encoder_reconfig; a frame rate
    /// change under CBR rescales the bitrate given to x264), so no IDR is needed.
    pub fn retunable_to(&self, other: &H264Config) -> bool {
        let same_kind = matches!(
            (self.rate, other.rate),
            (H264Rate::Crf, H264Rate::Crf) | (H264Rate::Cbr { .. }, H264Rate::Cbr { .. })
        );
        let crf_matters = matches!(self.rate, H264Rate::Crf);
        same_kind
            && (!crf_matters || self.crf == other.crf)
            && (
                self.fullcolor,
                self.threads,
                self.min_qp,
                self.max_qp,
                self.frame_height,
            ) == (
                other.fullcolor,
                other.threads,
                other.min_qp,
                other.max_qp,
                other.frame_height,
            )
            && self.lossless_stills == other.lossless_stills
    }
}

impl EncoderConfig {
    /// The codec this encoder produces.
    pub fn codec(&self) -> Codec {
        match self {
            EncoderConfig::Jpeg(_) => Codec::Jpeg,
            EncoderConfig::H264(_) => Codec::H264,
        }
    }

    /// Whether paint-overs are lossless stills instead of this codec's pictures.
    pub fn lossless_stills(&self) -> bool {
        match self {
            EncoderConfig::Jpeg(jpeg) => jpeg.lossless_stills,
            EncoderConfig::H264(h264) => h264.lossless_stills,
        }
    }
}

/// The watermark a capture draws.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WatermarkConfig {
    /// The PNG file.
    pub path: PathBuf,
    /// Where it goes (never [`WatermarkLocation::None`]).
    pub location: WatermarkLocation,
}

/// The overlays a capture draws, in drawing order: watermark, then pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OverlayConfig {
    /// A watermark when `watermark_path` is set and `watermark_location` is not `None` (a
    /// path with location `None` draws nothing, as in 1.2.2).
    pub watermark: Option<WatermarkConfig>,
    /// Draw the pointer (X11 sources only; a synthetic source has no pointer).
    pub cursor: bool,
}

/// What a capture's stream looks like to a decoder: what is actually encoded, after rounding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamFormat {
    /// Picture width in pixels (H.264: even).
    pub width: u32,
    /// Picture height in rows (H.264: even).
    pub height: u32,
    /// JPEG or H.264.
    pub codec: Codec,
    /// Rows per stripe (the last may be shorter); the full height in H.264 full-frame mode.
    pub stripe_height: u32,
    /// H.264 in 4:4:4.
    pub h264_fullcolor: bool,
    /// Which stripe headers are written.
    pub wire_format: WireFormat,
}

/// Validated settings, split per stage. Made by [`PipelineConfig::new`] only, so every
/// instance has passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineConfig {
    settings: CaptureSettings,
    region: Region,
    layout: StripeLayout,
    detect: DetectConfig,
    encoder: EncoderConfig,
    overlays: OverlayConfig,
    frame_interval: Duration,
    /// The region is the whole screen and follows its size (see
    /// [`following_screen`](Self::following_screen)).
    follow_screen: bool,
    /// Every how many frames a periodic IDR is due (`keyframe_interval_s`), if any.
    keyframe_every: Option<u64>,
}

/// Shortest frame interval (`target_fps` is at most 1000).
const MIN_INTERVAL: Duration = Duration::from_millis(1);
/// Longest frame interval: keeps deadline arithmetic finite whatever fps validation lets by.
const MAX_INTERVAL: Duration = Duration::from_secs(24 * 3600);

impl PipelineConfig {
    /// Validates `settings` and derives every stage's part.
    ///
    /// # Errors
    /// [`SettingsError`] naming the first invalid field.
    pub fn new(settings: &CaptureSettings) -> Result<Self, SettingsError> {
        settings.validate()?;
        let codec = settings.output_mode;
        // H.264 needs an even region: round down here (as 1.2.2 did), so the settings kept
        // here, the source, the encoders and the stream format all agree on what is captured.
        // 4:2:0 chroma covers 2x2 pixels, and x264 and browser decoders need even sizes.
        let (width, height) = match codec {
            Codec::H264 => (settings.capture_width & !1, settings.capture_height & !1),
            Codec::Jpeg => (settings.capture_width, settings.capture_height),
        };
        let settings = CaptureSettings {
            capture_width: width,
            capture_height: height,
            ..settings.clone()
        };
        // The one place that decides full-frame mode.
        let fullframe = codec == Codec::H264 && settings.h264_fullframe;
        let rows = match (settings.stripe_height, codec) {
            _ if fullframe => height,
            (0, Codec::Jpeg) => DEFAULT_STRIPE_HEIGHT,
            (0, Codec::H264) => default_h264_stripe_height(height, cores()),
            (rows, _) => rows,
        };
        let layout = StripeLayout {
            height,
            stripe_height: rows.min(height).max(1),
        };
        let lossless_stills = settings.use_paint_over_quality && settings.paint_over_lossless;
        let encoder = match codec {
            Codec::Jpeg => EncoderConfig::Jpeg(JpegConfig {
                wire_format: settings.wire_format,
                subsampling: settings.jpeg_subsampling,
                lossless_stills,
            }),
            Codec::H264 => EncoderConfig::H264(H264Config {
                crf: settings.h264_crf,
                rate: if settings.video_cbr_mode {
                    H264Rate::Cbr {
                        kbps: settings.video_bitrate_kbps,
                        vbv_frames: match settings.video_vbv_multiplier {
                            m if m > 0.0 => m,
                            _ if settings.keyframe_interval_s > 0.0 => 3.0,
                            _ => 1.5,
                        },
                    }
                } else {
                    H264Rate::Crf
                },
                min_qp: settings.video_min_qp,
                max_qp: settings.video_max_qp,
                frame_height: height,
                fullcolor: settings.h264_fullcolor,
                threads: if fullframe {
                    std::thread::available_parallelism().map_or(0, |n| n.get() as u32)
                } else {
                    1
                },
                fps: settings.target_fps,
                lossless_stills,
            }),
        };
        let watermark = match (&settings.watermark_path, settings.watermark_location) {
            (Some(path), location) if location != WatermarkLocation::None => {
                Some(WatermarkConfig {
                    path: path.clone(),
                    location,
                })
            }
            _ => None,
        };
        let overlays = OverlayConfig {
            watermark,
            cursor: settings.capture_cursor,
        };
        // Periodic key frames: H.264 only, counted in frames at the target rate.
        let keyframe_every =
            (codec == Codec::H264 && settings.keyframe_interval_s > 0.0).then(|| {
                (settings.keyframe_interval_s * settings.target_fps)
                    .round()
                    .max(1.0) as u64
            });
        Ok(Self {
            region: Region {
                x: settings.capture_x,
                y: settings.capture_y,
                width,
                height,
            },
            layout,
            detect: DetectConfig::new(&settings),
            encoder,
            overlays,
            frame_interval: Duration::try_from_secs_f64(1.0 / settings.target_fps)
                .unwrap_or(MAX_INTERVAL)
                .clamp(MIN_INTERVAL, MAX_INTERVAL),
            keyframe_every,
            settings,
            follow_screen: false,
        })
    }

    /// This config, set to follow the screen (`true`) or to keep a fixed region (`false`, the
    /// default). A capture that follows the screen captures all of it: when the screen changes
    /// size (RandR), the region becomes the whole new screen (rounded like any region) before
    /// the next frame, the stripes and encoders are rebuilt, and the frame after the change is
    /// complete (H.264: IDRs); each [`Stripe::format`](crate::Stripe::format) says which size
    /// it belongs to. A fixed region that no longer fits a shrunken screen ends the capture
    /// with [`SourceError::RegionNoLongerFits`](crate::source::SourceError::RegionNoLongerFits).
    /// Only sources that know their screen (X11) follow it; the region given at start should
    /// be the whole screen (`0,0` and the screen's size).
    #[must_use]
    pub fn following_screen(mut self, follow: bool) -> Self {
        self.follow_screen = follow;
        self
    }

    /// Whether the region follows the screen's size (see
    /// [`following_screen`](Self::following_screen)).
    pub fn follows_screen(&self) -> bool {
        self.follow_screen
    }

    /// This config with another region, validated and rounded like a new capture's; whether
    /// it follows the screen is kept.
    pub(crate) fn with_region(&self, region: Region) -> Result<Self, SettingsError> {
        let settings = CaptureSettings {
            capture_x: region.x,
            capture_y: region.y,
            capture_width: region.width,
            capture_height: region.height,
            ..self.settings.clone()
        };
        Ok(Self::new(&settings)?.following_screen(self.follow_screen))
    }

    /// The settings this config was made from, with the region as captured (rounded).
    pub fn settings(&self) -> &CaptureSettings {
        &self.settings
    }

    /// The screen region captured (H.264: rounded down to even sizes).
    pub fn region(&self) -> Region {
        self.region
    }

    /// How the region is cut into stripes.
    pub fn layout(&self) -> StripeLayout {
        self.layout
    }

    /// The knobs of change detection.
    pub(crate) fn detect(&self) -> &DetectConfig {
        &self.detect
    }

    /// The encoder every stripe gets.
    pub fn encoder(&self) -> &EncoderConfig {
        &self.encoder
    }

    /// Whether frames are checked for vertical moves, sent as copy-rows before the stripes
    /// that still need encoding: `scroll_detection` on a JPEG capture (validation already
    /// asked for the tagged wire format). H.264 stripes carry their own reference pictures, so
    /// an H.264 capture never moves rows under them.
    pub fn scroll_detection(&self) -> bool {
        self.settings.scroll_detection && self.encoder.codec() == Codec::Jpeg
    }

    /// The overlays to draw.
    pub fn overlays(&self) -> &OverlayConfig {
        &self.overlays
    }

    /// Time between frame deadlines.
    pub fn frame_interval(&self) -> Duration {
        self.frame_interval
    }

    /// H.264 with `keyframe_interval_s`: every this many frames is a key frame (frame ids
    /// that are multiples of it: 0, n, 2n, ...), `keyframe_interval_s × target_fps` rounded.
    pub fn keyframe_every(&self) -> Option<u64> {
        self.keyframe_every
    }

    /// What the stream carries: the size after rounding, the codec and the stripe layout.
    pub fn format(&self) -> StreamFormat {
        StreamFormat {
            width: self.region.width,
            height: self.region.height,
            codec: self.encoder.codec(),
            stripe_height: self.layout.stripe_height,
            h264_fullcolor: matches!(self.encoder, EncoderConfig::H264(c) if c.fullcolor),
            wire_format: self.settings.wire_format,
        }
    }

    /// This config with `control` applied, validated like new settings.
    ///
    /// # Errors
    /// [`ControlError::Invalid`] for a value settings would refuse, [`ControlError::NotLive`]
    /// for what cannot change while capturing, [`ControlError::NotApplicable`] for a setting
    /// of the other codec.
    pub fn with(&self, control: &Control) -> Result<Self, ControlError> {
        let mut s = self.settings.clone();
        let codec = self.encoder.codec();
        let needs = |wanted: Codec, field: &'static str| {
            if codec == wanted {
                Ok(())
            } else {
                Err(ControlError::NotApplicable { field, codec })
            }
        };
        match *control {
            Control::SetFps(fps) => s.target_fps = fps,
            Control::SetJpegQuality(q) => {
                needs(Codec::Jpeg, "jpeg_quality")?;
                s.jpeg_quality = q;
            }
            Control::SetPaintOverJpegQuality(q) => {
                needs(Codec::Jpeg, "paint_over_jpeg_quality")?;
                s.paint_over_jpeg_quality = q;
            }
            Control::SetCrf(crf) => {
                needs(Codec::H264, "h264_crf")?;
                s.h264_crf = crf;
            }
            Control::SetBitrate(kbps) => {
                needs(Codec::H264, "video_bitrate_kbps")?;
                s.video_bitrate_kbps = kbps;
            }
            Control::Refresh => {}
            Control::SetRegion {
                x,
                y,
                width,
                height,
            } => {
                // An explicit region ends following the screen.
                let region = Region {
                    x,
                    y,
                    width,
                    height,
                };
                return Ok(self.with_region(region)?.following_screen(false));
            }
        }
        Ok(Self::new(&s)?.following_screen(self.follow_screen))
    }
}

/// A change to a running capture, applied between two frames.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Control {
    /// New `target_fps`.
    SetFps(f64),
    /// New `jpeg_quality` (JPEG captures). Every stripe is re-sent once at the new quality.
    SetJpegQuality(u8),
    /// New `paint_over_jpeg_quality` (JPEG captures).
    SetPaintOverJpegQuality(u8),
    /// New `h264_crf` (H.264 captures). The encoders restart, so every stripe is re-sent as
    /// an IDR at the new rate.
    SetCrf(u8),
    /// New `video_bitrate_kbps` (H.264 captures). Under `video_cbr_mode` the encoders take
    /// it from the next frame on without restarting (no IDR); under CRF it is only stored.
    SetBitrate(u32),
    /// Make the next frame self-contained (every stripe; H.264 as IDRs).
    Refresh,
    /// Move or resize the captured region (screen coordinates), validated and rounded like
    /// the settings (H.264: even sizes) and checked against the screen. Applied between two
    /// frames: the source's buffers, the stripe layout and every encoder are rebuilt, and the
    /// next frame is complete (every stripe, H.264 as IDRs); [`StreamFormat`] and each
    /// [`Stripe::format`](crate::Stripe::format) report the new size. Ends following the
    /// screen ([`PipelineConfig::following_screen`]).
    SetRegion {
        /// Left edge on the screen.
        x: i32,
        /// Top edge on the screen.
        y: i32,
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
    },
}

/// Why a [`Control`] was refused (the capture goes on unchanged) or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// The new value is one settings refuse.
    #[error(transparent)]
    Invalid(#[from] SettingsError),
    /// This setting cannot change while capturing.
    #[error("`{field}` cannot change while capturing: {reason}")]
    NotLive {
        /// The setting.
        field: &'static str,
        /// Why, and what to do instead.
        reason: &'static str,
    },
    /// The setting belongs to the other codec.
    #[error("`{field}` does not apply to a {codec} capture")]
    NotApplicable {
        /// The setting.
        field: &'static str,
        /// The capture's codec.
        codec: Codec,
    },
    /// The capture has ended.
    #[error("the capture has ended")]
    Ended,
    /// Restarting an encoder for the new value failed.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The source refused the change: a region off the screen
    /// ([`SourceError::RegionOutsideScreen`]), or a source that cannot change its region.
    #[error(transparent)]
    Source(#[from] SourceError),
}

/// Cores of this machine for the default H.264 stripe layout (2 when unknown).
fn cores() -> u32 {
    std::thread::available_parallelism().map_or(2, |n| u32::try_from(n.get()).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h264(width: u32, height: u32) -> CaptureSettings {
        CaptureSettings {
            output_mode: Codec::H264,
            capture_width: width,
            capture_height: height,
            ..Default::default()
        }
    }

    #[test]
    fn h264_rounds_odd_regions_down_and_the_format_says_so() {
        let c = PipelineConfig::new(&h264(1365, 767)).unwrap();
        assert_eq!((c.region().width, c.region().height), (1364, 766));
        assert_eq!(
            (c.settings().capture_width, c.settings().capture_height),
            (1364, 766)
        );
        let f = c.format();
        assert_eq!((f.width, f.height, f.codec), (1364, 766, Codec::H264));
        assert_eq!(f.stripe_height, default_h264_stripe_height(766, cores()));
        let jpeg = PipelineConfig::new(&CaptureSettings {
            output_mode: Codec::Jpeg,
            ..h264(1365, 767)
        })
        .unwrap();
        assert_eq!((jpeg.format().width, jpeg.format().height), (1365, 767));
        let err = PipelineConfig::new(&h264(640, 1)).unwrap_err();
        assert_eq!(err.field, "capture_height", "{err}");
    }

    #[test]
    fn stripe_height_zero_picks_per_codec_and_fullframe_is_one_stripe() {
        // The documented defaults (README, "Settings"): 64 rows for JPEG; for H.264 one
        // stripe per core, at least 256 rows.
        let jpeg = PipelineConfig::new(&CaptureSettings::default()).unwrap();
        assert_eq!(jpeg.layout().stripe_height, 64);
        let h = PipelineConfig::new(&h264(1920, 1080)).unwrap();
        let rows = h.layout().stripe_height;
        assert_eq!(rows, default_h264_stripe_height(1080, cores()));
        assert!(rows >= 256 && rows.is_multiple_of(16), "{rows}");
        assert!(h.layout().count() as u32 <= cores().max(5), "{rows}");
        // A region shorter than the default is one stripe.
        let small = PipelineConfig::new(&h264(320, 240)).unwrap();
        assert_eq!(small.layout().count(), 1);
        let fixed = PipelineConfig::new(&CaptureSettings {
            stripe_height: 32,
            ..h264(1920, 1080)
        })
        .unwrap();
        assert_eq!(fixed.layout().stripe_height, 32);
        let full = PipelineConfig::new(&CaptureSettings {
            h264_fullframe: true,
            stripe_height: 32,
            ..h264(640, 480)
        })
        .unwrap();
        assert_eq!(full.layout().count(), 1);
        assert_eq!(full.format().stripe_height, 480);
        // Full-frame is an H.264 mode: JPEG ignores it.
        let jpeg_full = PipelineConfig::new(&CaptureSettings {
            h264_fullframe: true,
            ..CaptureSettings::default()
        })
        .unwrap();
        assert_eq!(jpeg_full.layout().stripe_height, DEFAULT_STRIPE_HEIGHT);
        // A region shorter than a stripe is one stripe of its height.
        let short = PipelineConfig::new(&CaptureSettings {
            capture_height: 40,
            ..CaptureSettings::default()
        })
        .unwrap();
        assert_eq!(short.layout().stripe_height, 40);
    }

    #[test]
    fn default_h264_stripes_are_one_per_core_and_at_least_256_rows() {
        // 1.2.2's layout on 2 cores (two 540-row stripes, rounded up to 16 here).
        assert_eq!(default_h264_stripe_height(1080, 2), 544);
        assert_eq!(default_h264_stripe_height(1080, 1), 1088);
        assert_eq!(default_h264_stripe_height(1080, 4), 272);
        // Many cores: never below 256 rows (128-row stripes sent 1.6x the bytes on scrolls).
        assert_eq!(default_h264_stripe_height(1080, 16), 256);
        assert_eq!(default_h264_stripe_height(2160, 8), 272);
        assert_eq!(default_h264_stripe_height(2, 0), 256);
        for (height, cores) in [(1080, 2), (1080, 3), (767, 2), (2160, 16), (100, 1)] {
            let rows = default_h264_stripe_height(height, cores);
            let layout = StripeLayout {
                height,
                stripe_height: rows.min(height),
            };
            assert!(layout.count() as u32 <= cores.max(1), "{height} on {cores}");
        }
    }

    #[test]
    fn watermark_only_with_a_location() {
        let path = PathBuf::from("/nonexistent.png");
        let none = PipelineConfig::new(&CaptureSettings {
            watermark_path: Some(path.clone()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(none.overlays().watermark, None);
        let some = PipelineConfig::new(&CaptureSettings {
            watermark_path: Some(path.clone()),
            watermark_location: WatermarkLocation::Middle,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            some.overlays().watermark,
            Some(WatermarkConfig {
                path,
                location: WatermarkLocation::Middle
            })
        );
    }

    #[test]
    fn controls_are_validated_like_settings() {
        let c = PipelineConfig::new(&CaptureSettings::default()).unwrap();
        let faster = c.with(&Control::SetFps(30.0)).unwrap();
        assert_eq!(faster.frame_interval(), Duration::from_secs_f64(1.0 / 30.0));
        assert_eq!(faster.settings().target_fps, 30.0);
        for bad in [
            Control::SetFps(0.0),
            Control::SetFps(f64::NAN),
            Control::SetJpegQuality(0),
            Control::SetPaintOverJpegQuality(101),
        ] {
            match c.with(&bad) {
                Err(ControlError::Invalid(e)) => {
                    assert!(e.to_string().contains(e.field), "{e}")
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        let q = c.with(&Control::SetJpegQuality(40)).unwrap();
        assert_eq!(q.settings().jpeg_quality, 40);
        assert!(matches!(
            c.with(&Control::SetCrf(20)),
            Err(ControlError::NotApplicable {
                field: "h264_crf",
                ..
            })
        ));
        let region = Control::SetRegion {
            x: 0,
            y: 0,
            width: 64,
            height: 64,
        };
        let moved = c.with(&region).unwrap();
        assert_eq!((moved.format().width, moved.format().height), (64, 64));
        assert_eq!(moved.layout().count(), 1);
        let bad = Control::SetRegion {
            x: 0,
            y: 0,
            width: 0,
            height: 64,
        };
        assert!(matches!(c.with(&bad), Err(ControlError::Invalid(_))));
        let h = PipelineConfig::new(&h264(64, 64)).unwrap();
        assert!(matches!(
            h.with(&Control::SetCrf(52)),
            Err(ControlError::Invalid(SettingsError {
                field: "h264_crf",
                ..
            }))
        ));
        let crf = h.with(&Control::SetCrf(30)).unwrap();
        assert!(matches!(crf.encoder(), EncoderConfig::H264(c) if c.crf == 30));
        assert!(matches!(
            h.with(&Control::SetJpegQuality(50)),
            Err(ControlError::NotApplicable { .. })
        ));
        // A bitrate: H.264 only; under CRF stored, under CBR 0 refused.
        assert!(matches!(
            c.with(&Control::SetBitrate(1000)),
            Err(ControlError::NotApplicable {
                field: "video_bitrate_kbps",
                ..
            })
        ));
        assert_eq!(
            h.with(&Control::SetBitrate(0))
                .unwrap()
                .settings()
                .video_bitrate_kbps,
            0
        );
        let cbr = PipelineConfig::new(&CaptureSettings {
            video_cbr_mode: true,
            ..h264(64, 64)
        })
        .unwrap();
        assert!(matches!(
            cbr.with(&Control::SetBitrate(0)),
            Err(ControlError::Invalid(SettingsError {
                field: "video_bitrate_kbps",
                ..
            }))
        ));
        let faster = cbr.with(&Control::SetBitrate(9000)).unwrap();
        let (EncoderConfig::H264(a), EncoderConfig::H264(b)) = (cbr.encoder(), faster.encoder())
        else {
            panic!("H.264")
        };
        assert!(matches!(b.rate, H264Rate::Cbr { kbps: 9000, .. }));
        assert!(a.retunable_to(b), "a bitrate change needs no new encoder");
        let other_fps = cbr.with(&Control::SetFps(30.0)).unwrap();
        let EncoderConfig::H264(c30) = other_fps.encoder() else {
            panic!("H.264")
        };
        assert!(a.retunable_to(c30), "nor a frame rate change");
        let EncoderConfig::H264(crf) = h.encoder() else {
            panic!("H.264")
        };
        assert!(!crf.retunable_to(a), "CRF to CBR opens new encoders");
    }

    #[test]
    fn rate_control_settings_become_the_encoder_config() {
        let c = PipelineConfig::new(&CaptureSettings {
            video_cbr_mode: true,
            video_bitrate_kbps: 2500,
            video_min_qp: 10,
            video_max_qp: 40,
            ..h264(640, 480)
        })
        .unwrap();
        let EncoderConfig::H264(h) = c.encoder() else {
            panic!("H.264")
        };
        assert_eq!(
            h.rate,
            H264Rate::Cbr {
                kbps: 2500,
                vbv_frames: 1.5
            }
        );
        assert_eq!((h.min_qp, h.max_qp, h.frame_height), (10, 40, 480));
        assert_eq!(c.keyframe_every(), None);
        // 2.2.1's automatic VBV: 3 frames with periodic key frames; an explicit one wins.
        let k = PipelineConfig::new(&CaptureSettings {
            video_cbr_mode: true,
            keyframe_interval_s: 2.0,
            target_fps: 30.0,
            ..h264(640, 480)
        })
        .unwrap();
        assert!(matches!(k.encoder(), EncoderConfig::H264(h)
            if h.rate == H264Rate::Cbr { kbps: 4000, vbv_frames: 3.0 }));
        assert_eq!(k.keyframe_every(), Some(60));
        let v = PipelineConfig::new(&CaptureSettings {
            video_cbr_mode: true,
            video_vbv_multiplier: 5.0,
            ..h264(640, 480)
        })
        .unwrap();
        assert!(matches!(v.encoder(), EncoderConfig::H264(h)
            if h.rate == H264Rate::Cbr { kbps: 4000, vbv_frames: 5.0 }));
        // Periodic key frames are an H.264 thing; a tiny interval is every frame.
        let jpeg = PipelineConfig::new(&CaptureSettings {
            keyframe_interval_s: 1.0,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(jpeg.keyframe_every(), None);
        let every = PipelineConfig::new(&CaptureSettings {
            keyframe_interval_s: 0.001,
            ..h264(64, 64)
        })
        .unwrap();
        assert_eq!(every.keyframe_every(), Some(1));
    }
}
