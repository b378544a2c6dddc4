//! Capture settings: every field of pixelflux 1.2.2 with its default, plus our own
//! (`stripe_height`, `wire_format`), and `validate()` that names the offending field.

use std::path::PathBuf;

/// A codec: what the stripes are encoded as, JPEG images or H.264 access units.
///
/// The one name for a codec everywhere: settings (`output_mode`, 1.2.2's integers through
/// [`from_index`](Self::from_index)/[`index`](Self::index)), the command line and the stream's
/// hello (`jpeg`, `h264` through [`FromStr`](std::str::FromStr) and [`Display`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Codec {
    /// One JPEG image per changed stripe (1.2.2's `output_mode = 0`).
    #[default]
    Jpeg,
    /// One H.264 access unit per changed stripe (1.2.2's `output_mode = 1`).
    H264,
}

/// 1.2.2's name for [`Codec`] (its setting is `output_mode`).
pub type OutputMode = Codec;

impl Codec {
    /// Every codec, in index order.
    pub const ALL: [Codec; 2] = [Codec::Jpeg, Codec::H264];

    /// Maps 1.2.2's integer (`0` JPEG, `1` H.264).
    pub fn from_index(index: i64) -> Option<Self> {
        match index {
            0 => Some(Self::Jpeg),
            1 => Some(Self::H264),
            _ => None,
        }
    }

    /// The integer 1.2.2 uses for this codec.
    pub fn index(self) -> i64 {
        match self {
            Self::Jpeg => 0,
            Self::H264 => 1,
        }
    }

    /// 1.2.2's `StripeEncodeResult.type` of this codec's stripes (`1` JPEG, `2` H.264).
    pub fn stripe_type(self) -> u8 {
        match self {
            Self::Jpeg => 1,
            Self::H264 => 2,
        }
    }

    /// The name used on the command line and in the stream's hello: `jpeg` or `h264`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Jpeg => "jpeg",
            Self::H264 => "h264",
        }
    }
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A codec name that is not `jpeg` or `h264`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown codec {0:?} (expected jpeg or h264)")]
pub struct UnknownCodec(pub String);

impl std::str::FromStr for Codec {
    type Err = UnknownCodec;

    /// `jpeg` or `h264`, any case (`h.264` too).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "jpeg" => Ok(Self::Jpeg),
            "h264" | "h.264" => Ok(Self::H264),
            _ => Err(UnknownCodec(s.to_string())),
        }
    }
}

/// Where the watermark PNG is drawn (1.2.2's `watermark_location_enum`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WatermarkLocation {
    /// No watermark (0).
    #[default]
    None,
    /// Top-left corner (1).
    TopLeft,
    /// Top-right corner (2).
    TopRight,
    /// Bottom-left corner (3).
    BottomLeft,
    /// Bottom-right corner (4).
    BottomRight,
    /// Centred (5).
    Middle,
    /// Bouncing around the region (6).
    Animated,
}

impl WatermarkLocation {
    /// Maps 1.2.2's integer (0–6).
    pub fn from_index(index: i64) -> Option<Self> {
        Some(match index {
            0 => Self::None,
            1 => Self::TopLeft,
            2 => Self::TopRight,
            3 => Self::BottomLeft,
            4 => Self::BottomRight,
            5 => Self::Middle,
            6 => Self::Animated,
            _ => return None,
        })
    }

    /// The integer 1.2.2 uses for this location.
    pub fn index(self) -> i64 {
        match self {
            Self::None => 0,
            Self::TopLeft => 1,
            Self::TopRight => 2,
            Self::BottomLeft => 3,
            Self::BottomRight => 4,
            Self::Middle => 5,
            Self::Animated => 6,
        }
    }
}

/// Which stripe header goes in front of each payload (see `wire`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WireFormat {
    /// Byte-compatible with pixelflux 1.2.2: JPEG stripes carry a 4-byte untagged header.
    #[default]
    Compat,
    /// JPEG stripes carry a 6-byte header starting with the tag `0x03`, so a client can tell
    /// JPEG from H.264 by the first byte. H.264 stripes are the same in both formats.
    Tagged,
}

/// Everything that shapes a capture. Field names and defaults follow pixelflux 1.2.2.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureSettings {
    /// Width of the captured region in pixels (H.264: rounded down to even, see
    /// [`region_size`](Self::region_size)).
    pub capture_width: u32,
    /// Height of the captured region in pixels (H.264: rounded down to even).
    pub capture_height: u32,
    /// Left edge of the region on the screen.
    pub capture_x: i32,
    /// Top edge of the region on the screen.
    pub capture_y: i32,
    /// Frames per second to aim for; a slow frame is not made up for with a burst.
    pub target_fps: f64,
    /// Blend the pointer into the frames.
    pub capture_cursor: bool,
    /// JPEG or H.264.
    pub output_mode: Codec,
    /// JPEG quality (1–100) that changing stripes settle at.
    pub jpeg_quality: u8,
    /// JPEG quality (1–100) for paint-over refreshes and for the first send of a change.
    pub paint_over_jpeg_quality: u8,
    /// Re-send a stripe at higher quality once it has been static for a while.
    pub use_paint_over_quality: bool,
    /// Static frames before a paint-over.
    pub paint_over_trigger_frames: u32,
    /// Consecutive changed frames after which a stripe counts as "damaged".
    pub damage_block_threshold: u32,
    /// Frames a damaged stripe is encoded without hashing before it is checked again.
    pub damage_block_duration: u32,
    /// H.264 constant rate factor (0–51, lower is better quality).
    pub h264_crf: u8,
    /// H.264 in 4:4:4 (High 4:4:4 profile) instead of 4:2:0 (baseline).
    pub h264_fullcolor: bool,
    /// H.264 as one stream of whole frames instead of stripes.
    pub h264_fullframe: bool,
    /// A PNG burnt into every frame.
    pub watermark_path: Option<PathBuf>,
    /// Where the watermark goes.
    pub watermark_location: WatermarkLocation,
    /// Hardware encoder node index of 1.2.2; accepted for compatibility, software encoders are
    /// always used.
    pub vaapi_render_node_index: i32,
    /// Rows per stripe (ours; 1.2.2 used one stripe per CPU core). `0` (the default) picks
    /// per codec: [`DEFAULT_STRIPE_HEIGHT`] for JPEG, [`DEFAULT_H264_STRIPE_HEIGHT`] for H.264.
    /// Otherwise even and at least 16; the last stripe may be shorter. See the README.
    pub stripe_height: u32,
    /// Which stripe headers to write.
    pub wire_format: WireFormat,
}

impl Default for CaptureSettings {
    fn default() -> Self {
        Self {
            capture_width: 1920,
            capture_height: 1080,
            capture_x: 0,
            capture_y: 0,
            target_fps: 60.0,
            capture_cursor: false,
            output_mode: Codec::Jpeg,
            jpeg_quality: 85,
            paint_over_jpeg_quality: 95,
            use_paint_over_quality: false,
            paint_over_trigger_frames: 10,
            damage_block_threshold: 15,
            damage_block_duration: 30,
            h264_crf: 25,
            h264_fullcolor: false,
            h264_fullframe: false,
            watermark_path: None,
            watermark_location: WatermarkLocation::None,
            vaapi_render_node_index: -1,
            stripe_height: 0,
            wire_format: WireFormat::Compat,
        }
    }
}

/// Default rows per JPEG stripe: a multiple of 16, small enough that a caret blink re-sends
/// 1/17 of a 1080p screen, large enough that per-stripe overhead stays small.
pub const DEFAULT_STRIPE_HEIGHT: u32 = 64;

/// Default rows per H.264 stripe. Unchanged macroblocks of a P picture cost almost nothing, so
/// taller stripes lose little on small changes, while each stripe is a separate encoder that
/// cannot predict across its edges. Measured at 1080p against 64-row stripes
/// (docs/PERFORMANCE.md): 128 rows send 0.55x the bytes on a scroll and 0.91x on full-screen
/// motion for 0.85–0.93x the CPU; 256 rows 0.36x and 0.76x, but key frames at the same CRF
/// lose 1.6 dB in the browser (0.7 dB at 128) and typing costs twice the CPU. 128 balances them.
pub const DEFAULT_H264_STRIPE_HEIGHT: u32 = 128;

/// Largest region side we accept (the X protocol's limit).
pub const MAX_DIMENSION: u32 = 16384;

/// A setting with a value it cannot have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid setting `{field}`: {reason}")]
pub struct SettingsError {
    /// The field's name, as in `CaptureSettings`.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl SettingsError {
    fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

impl CaptureSettings {
    /// Checks every field; the first bad one is named in the error.
    pub fn validate(&self) -> Result<(), SettingsError> {
        for (field, value) in [
            ("capture_width", self.capture_width),
            ("capture_height", self.capture_height),
        ] {
            if value == 0 || value > MAX_DIMENSION {
                return Err(SettingsError::new(
                    field,
                    format!("{value} is outside 1..={MAX_DIMENSION}"),
                ));
            }
        }
        if self.capture_x < 0 {
            return Err(SettingsError::new(
                "capture_x",
                format!("{} is negative", self.capture_x),
            ));
        }
        if self.capture_y < 0 {
            return Err(SettingsError::new(
                "capture_y",
                format!("{} is negative", self.capture_y),
            ));
        }
        if !self.target_fps.is_finite() || self.target_fps <= 0.0 || self.target_fps > 1000.0 {
            return Err(SettingsError::new(
                "target_fps",
                format!("{} is not in (0, 1000]", self.target_fps),
            ));
        }
        for (field, value) in [
            ("jpeg_quality", self.jpeg_quality),
            ("paint_over_jpeg_quality", self.paint_over_jpeg_quality),
        ] {
            if !(1..=100).contains(&value) {
                return Err(SettingsError::new(
                    field,
                    format!("{value} is outside 1..=100"),
                ));
            }
        }
        if self.paint_over_trigger_frames == 0 {
            return Err(SettingsError::new(
                "paint_over_trigger_frames",
                "must be at least 1",
            ));
        }
        if self.h264_crf > 51 {
            return Err(SettingsError::new(
                "h264_crf",
                format!("{} is outside 0..=51", self.h264_crf),
            ));
        }
        if self.output_mode == Codec::H264 {
            for (field, value) in [
                ("capture_width", self.capture_width),
                ("capture_height", self.capture_height),
            ] {
                if value < 2 {
                    return Err(SettingsError::new(
                        field,
                        format!("{value} is too small for H.264 (at least 2)"),
                    ));
                }
            }
        }
        if self.stripe_height != 0
            && (self.stripe_height < 16 || !self.stripe_height.is_multiple_of(2))
        {
            return Err(SettingsError::new(
                "stripe_height",
                format!(
                    "{} must be 0 (per codec) or even and at least 16",
                    self.stripe_height
                ),
            ));
        }
        if self.watermark_location != WatermarkLocation::None && self.watermark_path.is_none() {
            return Err(SettingsError::new(
                "watermark_path",
                "a watermark location is set but no watermark_path",
            ));
        }
        Ok(())
    }

    /// The region size actually captured. In H.264 mode an odd width or height is rounded
    /// down to even (as 1.2.2 did): 4:2:0 chroma covers 2x2 pixels and x264 and browser
    /// decoders need even sizes. JPEG captures the size as given.
    pub fn region_size(&self) -> (u32, u32) {
        match self.output_mode {
            Codec::H264 => (self.capture_width & !1, self.capture_height & !1),
            Codec::Jpeg => (self.capture_width, self.capture_height),
        }
    }

    /// Rows per stripe in effect: `stripe_height`, or the codec's default when it is 0.
    pub fn stripe_rows(&self) -> u32 {
        match (self.stripe_height, self.output_mode) {
            (0, Codec::Jpeg) => DEFAULT_STRIPE_HEIGHT,
            (0, Codec::H264) => DEFAULT_H264_STRIPE_HEIGHT,
            (rows, _) => rows,
        }
    }

    /// Seconds between frame deadlines.
    pub fn frame_interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(1.0 / self.target_fps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_pixelflux_1_2_2_and_validate() {
        let s = CaptureSettings::default();
        assert_eq!((s.capture_width, s.capture_height), (1920, 1080));
        assert_eq!(s.target_fps, 60.0);
        assert_eq!((s.jpeg_quality, s.paint_over_jpeg_quality), (85, 95));
        assert_eq!(s.paint_over_trigger_frames, 10);
        assert_eq!(
            (s.damage_block_threshold, s.damage_block_duration),
            (15, 30)
        );
        assert_eq!(s.h264_crf, 25);
        assert_eq!(s.vaapi_render_node_index, -1);
        s.validate().unwrap();
    }

    #[test]
    fn each_bad_value_names_its_field() {
        let cases: Vec<(&str, CaptureSettings)> = vec![
            (
                "capture_width",
                CaptureSettings {
                    capture_width: 0,
                    ..Default::default()
                },
            ),
            (
                "capture_height",
                CaptureSettings {
                    capture_height: 20000,
                    ..Default::default()
                },
            ),
            (
                "capture_x",
                CaptureSettings {
                    capture_x: -1,
                    ..Default::default()
                },
            ),
            (
                "capture_y",
                CaptureSettings {
                    capture_y: -5,
                    ..Default::default()
                },
            ),
            (
                "target_fps",
                CaptureSettings {
                    target_fps: 0.0,
                    ..Default::default()
                },
            ),
            (
                "target_fps",
                CaptureSettings {
                    target_fps: f64::NAN,
                    ..Default::default()
                },
            ),
            (
                "jpeg_quality",
                CaptureSettings {
                    jpeg_quality: 0,
                    ..Default::default()
                },
            ),
            (
                "paint_over_jpeg_quality",
                CaptureSettings {
                    paint_over_jpeg_quality: 101,
                    ..Default::default()
                },
            ),
            (
                "paint_over_trigger_frames",
                CaptureSettings {
                    paint_over_trigger_frames: 0,
                    ..Default::default()
                },
            ),
            (
                "h264_crf",
                CaptureSettings {
                    h264_crf: 52,
                    ..Default::default()
                },
            ),
            (
                "stripe_height",
                CaptureSettings {
                    stripe_height: 15,
                    ..Default::default()
                },
            ),
            (
                "watermark_path",
                CaptureSettings {
                    watermark_location: WatermarkLocation::TopLeft,
                    ..Default::default()
                },
            ),
        ];
        for (field, settings) in cases {
            let err = settings.validate().unwrap_err();
            assert_eq!(err.field, field, "{err}");
            assert!(err.to_string().contains(field));
        }
    }

    #[test]
    fn h264_rounds_odd_regions_down_and_rejects_tiny_ones() {
        let mut s = CaptureSettings {
            output_mode: Codec::H264,
            capture_width: 641,
            capture_height: 481,
            ..Default::default()
        };
        s.validate().unwrap();
        assert_eq!(s.region_size(), (640, 480));
        s.output_mode = Codec::Jpeg;
        assert_eq!(s.region_size(), (641, 481));
        s.output_mode = Codec::H264;
        s.capture_height = 1;
        let err = s.validate().unwrap_err();
        assert_eq!(err.field, "capture_height", "{err}");
    }

    #[test]
    fn stripe_height_zero_picks_per_codec() {
        let jpeg = CaptureSettings::default();
        assert_eq!(jpeg.stripe_rows(), DEFAULT_STRIPE_HEIGHT);
        let h264 = CaptureSettings {
            output_mode: Codec::H264,
            ..Default::default()
        };
        assert_eq!(h264.stripe_rows(), DEFAULT_H264_STRIPE_HEIGHT);
        let fixed = CaptureSettings {
            stripe_height: 32,
            ..h264
        };
        assert_eq!(fixed.stripe_rows(), 32);
        fixed.validate().unwrap();
    }

    #[test]
    fn integer_enums_round_trip() {
        for i in 0..=6 {
            assert_eq!(WatermarkLocation::from_index(i).unwrap().index(), i);
        }
        assert!(WatermarkLocation::from_index(7).is_none());
        assert_eq!(Codec::from_index(1), Some(Codec::H264));
        assert!(Codec::from_index(2).is_none());
        for codec in Codec::ALL {
            assert_eq!(Codec::from_index(codec.index()), Some(codec));
            assert_eq!(codec.to_string().parse::<Codec>(), Ok(codec));
        }
    }

    #[test]
    fn codec_names() {
        assert_eq!(Codec::H264.to_string(), "h264");
        assert_eq!("JPEG".parse::<Codec>(), Ok(Codec::Jpeg));
        assert_eq!("H.264".parse::<Codec>(), Ok(Codec::H264));
        let err = "vp8".parse::<Codec>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown codec \"vp8\" (expected jpeg or h264)"
        );
    }
}
