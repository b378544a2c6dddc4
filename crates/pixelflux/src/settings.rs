//! Capture settings: every field of pixelflux 1.2.2 with its default, plus our own
//! (`stripe_height`, `wire_format`), and `validate()` that names the offending field.

use std::path::PathBuf;

/// A codec: what the stripes are encoded as, JPEG images or H.264 access units.
///
/// The one name for a codec everywhere: settings (`output_mode`, 1.2.2's integers through
/// [`from_index`](Self::from_index)/[`index`](Self::index)), the command line and the stream's
/// hello (`jpeg`, `h264` through [`FromStr`](std::str::FromStr) and [`Display`](std::fmt::Display)).
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

/// Chroma resolution of JPEG stripes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum JpegSubsampling {
    /// 4:4:4 from quality 90 up; below, per stripe: 4:4:4 where the stripe's fine detail is
    /// largely colour (coloured text and UI), 4:2:0 two quality steps higher where it is
    /// brightness (grey text, photos: at least 4:4:4's PSNR for about its bytes), measured again
    /// every 8 frames (`encode::CHROMA_CHOICE_FRAMES`) and for every paint-over
    /// and refresh. Chosen by rate–distortion measurement (docs/PERFORMANCE.md, "JPEG chroma").
    /// A stripe with no colour at all (every pixel grey) is a one-component (grayscale) JPEG
    /// at that quality: the same decoded pixels for fewer bytes and less CPU time
    /// (`encode::is_grey`; docs/PERFORMANCE.md, "JPEG: grey stripes in one component"),
    /// except within `encode::GREY_CHECK_SKIP_FRAMES` frames after colour was seen in it
    /// (not for a paint-over or a refresh).
    #[default]
    Auto,
    /// Chroma at half resolution both ways: fewer bytes, coloured edges bleed. Always three
    /// components.
    S420,
    /// Chroma at full resolution (what pixelflux 1.2.2 always did). Always three components.
    S444,
}

impl JpegSubsampling {
    /// From its index in the settings field table (0 auto, 1 4:2:0, 2 4:4:4).
    fn from_index(index: i64) -> Option<Self> {
        match index {
            0 => Some(Self::Auto),
            1 => Some(Self::S420),
            2 => Some(Self::S444),
            _ => None,
        }
    }

    /// Its index in the settings field table.
    fn index(self) -> i64 {
        match self {
            Self::Auto => 0,
            Self::S420 => 1,
            Self::S444 => 2,
        }
    }

    /// The name `FromStr` accepts: `auto`, `420` or `444`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::S420 => "420",
            Self::S444 => "444",
        }
    }
}

impl std::fmt::Display for JpegSubsampling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for JpegSubsampling {
    type Err = SettingsError;
    /// `auto`, `420` or `444` (also `4:2:0`, `4:4:4`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "420" | "4:2:0" => Ok(Self::S420),
            "444" | "4:4:4" => Ok(Self::S444),
            _ => Err(SettingsError::new(
                "jpeg_subsampling",
                format!("{s:?} is not auto, 420 or 444"),
            )),
        }
    }
}

/// Everything that shapes a capture. Field names and defaults follow pixelflux 1.2.2.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureSettings {
    /// Width of the captured region in pixels (H.264: rounded down to even, see
    /// [`crate::config`]).
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
    /// JPEG chroma resolution (ours; 1.2.2 always used 4:4:4).
    pub jpeg_subsampling: JpegSubsampling,
    /// Re-send a stripe at higher quality once it has been static for a while.
    pub use_paint_over_quality: bool,
    /// Static frames before a paint-over.
    pub paint_over_trigger_frames: u32,
    /// Paint-overs are lossless PNG stills instead of JPEG or H.264 pictures (ours; needs
    /// [`WireFormat::Tagged`] and `use_paint_over_quality`). See `encode::still`.
    pub paint_over_lossless: bool,
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
    /// per codec: [`DEFAULT_STRIPE_HEIGHT`] for JPEG, [`default_h264_stripe_height`] for H.264
    /// (one stripe per core, at least 256 rows).
    /// Otherwise even and at least 16; the last stripe may be shorter. See the README.
    pub stripe_height: u32,
    /// Which stripe headers to write.
    pub wire_format: WireFormat,
    /// Detect vertical scrolling and send it as copy-rows messages, encoding only the rows the
    /// move does not explain (ours; needs [`WireFormat::Tagged`]; JPEG only: an H.264 capture
    /// ignores it). See `scroll` (the module) and docs/serve.md.
    pub scroll_detection: bool,
    /// H.264 at a constant bitrate (`video_bitrate_kbps`) instead of a constant quality
    /// (`h264_crf`, which is then not used): x264's ABR rate control under a VBV (pixelflux
    /// 2.x name). See docs/h264.md, "Rate control".
    pub video_cbr_mode: bool,
    /// Target bitrate of the whole stream in kbit/s with `video_cbr_mode`, spread over the
    /// stripes that change by their rows (2.x name; 2.2.1's default 4000).
    pub video_bitrate_kbps: u32,
    /// VBV buffer as a multiple of one frame's share of the bitrate with `video_cbr_mode`;
    /// `0` picks 1.5, or 3 with `keyframe_interval_s` (2.2.1's meaning and defaults).
    pub video_vbv_multiplier: f64,
    /// Lowest H.264 quantizer x264 may use (0–51; `0`: x264's default), CRF and CBR alike.
    pub video_min_qp: u8,
    /// Highest H.264 quantizer x264 may use (0–51; `0`: x264's default), CRF and CBR alike.
    pub video_max_qp: u8,
    /// H.264: a key frame (every stripe an IDR) every this many seconds of frames at
    /// `target_fps`; `0` sends key frames only when asked for (2.x name and default).
    pub keyframe_interval_s: f64,
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
            jpeg_subsampling: JpegSubsampling::Auto,
            use_paint_over_quality: false,
            paint_over_trigger_frames: 10,
            paint_over_lossless: false,
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
            scroll_detection: false,
            video_cbr_mode: false,
            video_bitrate_kbps: 4000,
            video_vbv_multiplier: 0.0,
            video_min_qp: 0,
            video_max_qp: 0,
            keyframe_interval_s: 0.0,
        }
    }
}

/// Default rows per JPEG stripe: a multiple of 16, small enough that a caret blink re-sends
/// 1/17 of a 1080p screen, large enough that per-stripe overhead stays small.
pub const DEFAULT_STRIPE_HEIGHT: u32 = 64;

/// Fewest rows per H.264 stripe in the default layout ([`default_h264_stripe_height`]). Each
/// stripe is an encoder that cannot predict across its edges, so on a scroll every stripe
/// intra-codes the rows that came in from below: at 1080p 128-row stripes sent 1.6x the bytes
/// of 256-row ones on a scroll (docs/PERFORMANCE.md, "H.264 stripe height with `mb_info`").
pub const DEFAULT_H264_STRIPE_HEIGHT: u32 = 256;

/// Rows per H.264 stripe when `stripe_height` is 0: one stripe per core (the region's height
/// divided by `cores`, rounded up to a multiple of 16, as 1.2.2 laid stripes out), but at least
/// [`DEFAULT_H264_STRIPE_HEIGHT`]; capped by the caller at the region's height. Tall stripes
/// send far less on scrolls and cost no more on full-screen motion; one stripe per core keeps
/// every core encoding; the price is CPU on small changes, where x264 still converts and sets
/// up the whole stripe (`mb_info` makes its unchanged macroblocks skips). Measured at 1080p on
/// 2 cores, 544 against 128 rows: scrolling terminal 0.49x the bytes and 0.93x the CPU,
/// synthetic scroll 0.41x the bytes, typing 2.1x the CPU (0.66x upstream's per frame).
pub fn default_h264_stripe_height(region_height: u32, cores: u32) -> u32 {
    region_height
        .div_ceil(cores.max(1))
        .next_multiple_of(16)
        .max(DEFAULT_H264_STRIPE_HEIGHT)
}

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

/// Lowest `target_fps`: one frame every 100 s. Slower rates are refused rather than turned
/// into intervals that no clock can add (1e-20 fps is 3e12 years).
pub const MIN_TARGET_FPS: f64 = 0.01;

/// Highest `target_fps`.
pub const MAX_TARGET_FPS: f64 = 1000.0;

/// Highest `video_bitrate_kbps` (1 Gbit/s, Selkies' upper bound).
pub const MAX_BITRATE_KBPS: u32 = 1_000_000;

/// Highest `keyframe_interval_s` (an hour).
pub const MAX_KEYFRAME_INTERVAL_S: f64 = 3600.0;

/// Highest `video_vbv_multiplier` (frames of budget in the VBV buffer).
pub const MAX_VBV_MULTIPLIER: f64 = 1000.0;

/// A value for [`CaptureSettings::set_field`], as a binding (Python) or a config file has it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum FieldValue {
    /// An integer field, or an enum by its 1.2.2 index (`output_mode`, `watermark_location`).
    Int(i64),
    /// `target_fps`.
    Float(f64),
    /// A flag.
    Bool(bool),
    /// `watermark_path` (`None`: no watermark).
    Path(Option<PathBuf>),
}

/// The type of a settings field, for bindings that parse values before handing them to
/// [`CaptureSettings::set_field`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FieldKind {
    /// Takes [`FieldValue::Int`].
    Int,
    /// Takes [`FieldValue::Float`].
    Float,
    /// Takes [`FieldValue::Bool`].
    Bool,
    /// Takes [`FieldValue::Path`].
    Path,
}

/// A field's name, kind and, for integers, the range it accepts on its own (inclusive).
type FieldEntry = (&'static str, FieldKind, Option<(i64, i64)>);

/// Every field of [`CaptureSettings`] by name, with its kind and, for integers, the range that
/// field accepts on its own. The one table that [`CaptureSettings::validate`] and
/// [`CaptureSettings::set_field`] (and through it the Python settings) check against.
const FIELDS: [FieldEntry; 30] = {
    use FieldKind::*;
    let dim = Some((1, MAX_DIMENSION as i64));
    let quality = Some((1, 100));
    let position = Some((0, i32::MAX as i64));
    [
        ("capture_width", Int, dim),
        ("capture_height", Int, dim),
        ("capture_x", Int, position),
        ("capture_y", Int, position),
        ("target_fps", Float, None),
        ("capture_cursor", Bool, None),
        ("output_mode", Int, Some((0, 1))),
        ("jpeg_quality", Int, quality),
        ("paint_over_jpeg_quality", Int, quality),
        ("use_paint_over_quality", Bool, None),
        ("paint_over_trigger_frames", Int, Some((1, u32::MAX as i64))),
        ("damage_block_threshold", Int, Some((0, u32::MAX as i64))),
        ("damage_block_duration", Int, Some((0, u32::MAX as i64))),
        ("h264_crf", Int, Some((0, 51))),
        ("h264_fullcolor", Bool, None),
        ("h264_fullframe", Bool, None),
        ("watermark_path", Path, None),
        ("watermark_location", Int, Some((0, 6))),
        (
            "vaapi_render_node_index",
            Int,
            Some((i32::MIN as i64, i32::MAX as i64)),
        ),
        ("stripe_height", Int, Some((0, MAX_DIMENSION as i64))),
        ("wire_format", Int, Some((0, 1))),
        ("jpeg_subsampling", Int, Some((0, 2))),
        ("paint_over_lossless", Bool, None),
        ("scroll_detection", Bool, None),
        ("video_cbr_mode", Bool, None),
        (
            "video_bitrate_kbps",
            Int,
            Some((0, MAX_BITRATE_KBPS as i64)),
        ),
        ("video_vbv_multiplier", Float, None),
        ("video_min_qp", Int, Some((0, 51))),
        ("video_max_qp", Int, Some((0, 51))),
        ("keyframe_interval_s", Float, None),
    ]
};

fn field_entry(field: &str) -> Option<FieldEntry> {
    FIELDS.iter().copied().find(|(name, _, _)| *name == field)
}

impl WireFormat {
    fn from_index(index: i64) -> Option<Self> {
        match index {
            0 => Some(Self::Compat),
            1 => Some(Self::Tagged),
            _ => None,
        }
    }

    fn index(self) -> i64 {
        match self {
            Self::Compat => 0,
            Self::Tagged => 1,
        }
    }
}

impl CaptureSettings {
    /// The fields' names, in declaration order (1.2.2's order, then ours).
    pub fn field_names() -> impl Iterator<Item = &'static str> {
        FIELDS.iter().map(|(name, _, _)| *name)
    }

    /// The type of value `field` takes; `None` for a name that is not a field.
    pub fn field_kind(field: &str) -> Option<FieldKind> {
        field_entry(field).map(|(_, kind, _)| kind)
    }

    /// One field's value by name; `None` for a name that is not a field.
    pub fn field(&self, field: &str) -> Option<FieldValue> {
        let (name, kind, _) = field_entry(field)?;
        Some(match kind {
            FieldKind::Int => FieldValue::Int(self.int(name)?),
            FieldKind::Float => FieldValue::Float(match name {
                "video_vbv_multiplier" => self.video_vbv_multiplier,
                "keyframe_interval_s" => self.keyframe_interval_s,
                _ => self.target_fps,
            }),
            FieldKind::Bool => FieldValue::Bool(match name {
                "capture_cursor" => self.capture_cursor,
                "use_paint_over_quality" => self.use_paint_over_quality,
                "h264_fullcolor" => self.h264_fullcolor,
                "paint_over_lossless" => self.paint_over_lossless,
                "scroll_detection" => self.scroll_detection,
                "video_cbr_mode" => self.video_cbr_mode,
                _ => self.h264_fullframe,
            }),
            FieldKind::Path => FieldValue::Path(self.watermark_path.clone()),
        })
    }

    /// Sets one field, checking the value as far as it can be checked on its own (ranges; the
    /// rules that tie fields together are checked by [`validate`](Self::validate)). On error
    /// the settings are unchanged.
    ///
    /// # Errors
    /// A [`SettingsError`] naming the field: an unknown field, a value of the wrong kind, or a
    /// value out of the field's range.
    pub fn set_field(&mut self, field: &str, value: FieldValue) -> Result<(), SettingsError> {
        let Some((name, kind, range)) = field_entry(field) else {
            return Err(SettingsError::new("field", format!("no field {field:?}")));
        };
        let mut next = self.clone();
        match (kind, value) {
            (FieldKind::Int, FieldValue::Int(v)) => {
                if let Some((min, max)) = range {
                    if !(min..=max).contains(&v) {
                        return Err(SettingsError::new(
                            name,
                            format!("{v} is outside {min}..={max}"),
                        ));
                    }
                }
                next.set_int(name, v);
            }
            (FieldKind::Float, FieldValue::Float(v)) => match name {
                "video_vbv_multiplier" => next.video_vbv_multiplier = v,
                "keyframe_interval_s" => next.keyframe_interval_s = v,
                _ => next.target_fps = v,
            },
            (FieldKind::Bool, FieldValue::Bool(v)) => match name {
                "capture_cursor" => next.capture_cursor = v,
                "use_paint_over_quality" => next.use_paint_over_quality = v,
                "h264_fullcolor" => next.h264_fullcolor = v,
                "paint_over_lossless" => next.paint_over_lossless = v,
                "scroll_detection" => next.scroll_detection = v,
                "video_cbr_mode" => next.video_cbr_mode = v,
                _ => next.h264_fullframe = v,
            },
            (FieldKind::Path, FieldValue::Path(v)) => next.watermark_path = v,
            (kind, value) => {
                return Err(SettingsError::new(
                    name,
                    format!("takes a {kind:?} value, not {value:?}"),
                ))
            }
        }
        next.check_field(name)?;
        *self = next;
        Ok(())
    }

    /// Stores an integer already checked against the field's range (so the casts are exact).
    fn set_int(&mut self, field: &str, v: i64) {
        match field {
            "capture_width" => self.capture_width = v as u32,
            "capture_height" => self.capture_height = v as u32,
            "capture_x" => self.capture_x = v as i32,
            "capture_y" => self.capture_y = v as i32,
            "output_mode" => self.output_mode = Codec::from_index(v).unwrap_or_default(),
            "jpeg_quality" => self.jpeg_quality = v as u8,
            "paint_over_jpeg_quality" => self.paint_over_jpeg_quality = v as u8,
            "paint_over_trigger_frames" => self.paint_over_trigger_frames = v as u32,
            "damage_block_threshold" => self.damage_block_threshold = v as u32,
            "damage_block_duration" => self.damage_block_duration = v as u32,
            "h264_crf" => self.h264_crf = v as u8,
            "watermark_location" => {
                self.watermark_location = WatermarkLocation::from_index(v).unwrap_or_default()
            }
            "vaapi_render_node_index" => self.vaapi_render_node_index = v as i32,
            "stripe_height" => self.stripe_height = v as u32,
            "wire_format" => self.wire_format = WireFormat::from_index(v).unwrap_or_default(),
            "jpeg_subsampling" => {
                self.jpeg_subsampling = JpegSubsampling::from_index(v).unwrap_or_default()
            }
            "video_bitrate_kbps" => self.video_bitrate_kbps = v as u32,
            "video_min_qp" => self.video_min_qp = v as u8,
            "video_max_qp" => self.video_max_qp = v as u8,
            _ => {}
        }
    }

    /// An integer field's value, widened.
    fn int(&self, field: &str) -> Option<i64> {
        Some(match field {
            "capture_width" => self.capture_width.into(),
            "capture_height" => self.capture_height.into(),
            "capture_x" => self.capture_x.into(),
            "capture_y" => self.capture_y.into(),
            "output_mode" => self.output_mode.index(),
            "jpeg_quality" => self.jpeg_quality.into(),
            "paint_over_jpeg_quality" => self.paint_over_jpeg_quality.into(),
            "paint_over_trigger_frames" => self.paint_over_trigger_frames.into(),
            "damage_block_threshold" => self.damage_block_threshold.into(),
            "damage_block_duration" => self.damage_block_duration.into(),
            "h264_crf" => self.h264_crf.into(),
            "watermark_location" => self.watermark_location.index(),
            "vaapi_render_node_index" => self.vaapi_render_node_index.into(),
            "stripe_height" => self.stripe_height.into(),
            "wire_format" => self.wire_format.index(),
            "jpeg_subsampling" => self.jpeg_subsampling.index(),
            "video_bitrate_kbps" => self.video_bitrate_kbps.into(),
            "video_min_qp" => self.video_min_qp.into(),
            "video_max_qp" => self.video_max_qp.into(),
            _ => return None,
        })
    }

    /// Checks one field on its own.
    fn check_field(&self, field: &'static str) -> Result<(), SettingsError> {
        if let Some((_, _, Some((min, max)))) = field_entry(field) {
            if let Some(v) = self.int(field) {
                if !(min..=max).contains(&v) {
                    return Err(SettingsError::new(
                        field,
                        format!("{v} is outside {min}..={max}"),
                    ));
                }
            }
        }
        match field {
            "target_fps" => {
                let fps = self.target_fps;
                if !(MIN_TARGET_FPS..=MAX_TARGET_FPS).contains(&fps) {
                    return Err(SettingsError::new(
                        field,
                        format!("{fps} is outside {MIN_TARGET_FPS}..={MAX_TARGET_FPS}"),
                    ));
                }
            }
            "keyframe_interval_s" | "video_vbv_multiplier" => {
                let (v, max) = if field == "keyframe_interval_s" {
                    (self.keyframe_interval_s, MAX_KEYFRAME_INTERVAL_S)
                } else {
                    (self.video_vbv_multiplier, MAX_VBV_MULTIPLIER)
                };
                if !(0.0..=max).contains(&v) {
                    return Err(SettingsError::new(
                        field,
                        format!(
                            "{v} is outside 0..={max} (0: {})",
                            if field == "keyframe_interval_s" {
                                "key frames only when asked for"
                            } else {
                                "automatic"
                            }
                        ),
                    ));
                }
            }
            "stripe_height" => {
                let rows = self.stripe_height;
                if rows != 0 && (rows < 16 || !rows.is_multiple_of(2)) {
                    return Err(SettingsError::new(
                        field,
                        format!("{rows} must be 0 (per codec) or even and at least 16"),
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Checks every field, then the rules between fields; the first bad field is named in the
    /// error. Settings that pass start a capture (on a source where the region fits).
    ///
    /// # Errors
    /// A [`SettingsError`] naming the field and saying what is wrong with its value.
    pub fn validate(&self) -> Result<(), SettingsError> {
        for (field, _, _) in FIELDS {
            self.check_field(field)?;
        }
        if self.paint_over_lossless && self.wire_format != WireFormat::Tagged {
            return Err(SettingsError::new(
                "paint_over_lossless",
                "lossless stills need the tagged wire format",
            ));
        }
        if self.scroll_detection && self.wire_format != WireFormat::Tagged {
            return Err(SettingsError::new(
                "scroll_detection",
                "copy-rows messages need the tagged wire format",
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
            // x264's 4:2:0 profile (baseline) has no lossless mode, which CRF 0 asks for.
            if self.h264_crf == 0 && !self.h264_fullcolor {
                return Err(SettingsError::new(
                    "h264_crf",
                    "0 (lossless) needs h264_fullcolor (High 4:4:4); 4:2:0 takes 1..=51",
                ));
            }
        }
        if self.video_min_qp != 0 && self.video_max_qp != 0 && self.video_max_qp < self.video_min_qp
        {
            return Err(SettingsError::new(
                "video_max_qp",
                format!(
                    "{} is below video_min_qp {} (0 leaves either to x264)",
                    self.video_max_qp, self.video_min_qp
                ),
            ));
        }
        if self.output_mode == Codec::H264 && self.video_cbr_mode && self.video_bitrate_kbps == 0 {
            return Err(SettingsError::new(
                "video_bitrate_kbps",
                format!("0 with video_cbr_mode: a constant bitrate takes 1..={MAX_BITRATE_KBPS}"),
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jpeg_subsampling_names_round_trip() {
        for s in [
            JpegSubsampling::Auto,
            JpegSubsampling::S420,
            JpegSubsampling::S444,
        ] {
            assert_eq!(s.name().parse::<JpegSubsampling>(), Ok(s));
        }
        assert_eq!("4:4:4".parse(), Ok(JpegSubsampling::S444));
        let err = "422".parse::<JpegSubsampling>().unwrap_err();
        assert_eq!(err.field, "jpeg_subsampling");
    }

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
            (
                "video_min_qp",
                CaptureSettings {
                    video_min_qp: 52,
                    ..Default::default()
                },
            ),
            (
                "video_max_qp",
                CaptureSettings {
                    video_min_qp: 30,
                    video_max_qp: 20,
                    ..Default::default()
                },
            ),
            (
                "video_bitrate_kbps",
                CaptureSettings {
                    video_bitrate_kbps: MAX_BITRATE_KBPS + 1,
                    ..Default::default()
                },
            ),
            (
                "video_bitrate_kbps",
                CaptureSettings {
                    output_mode: Codec::H264,
                    video_cbr_mode: true,
                    video_bitrate_kbps: 0,
                    ..Default::default()
                },
            ),
            (
                "keyframe_interval_s",
                CaptureSettings {
                    keyframe_interval_s: -1.0,
                    ..Default::default()
                },
            ),
            (
                "keyframe_interval_s",
                CaptureSettings {
                    keyframe_interval_s: f64::NAN,
                    ..Default::default()
                },
            ),
            (
                "video_vbv_multiplier",
                CaptureSettings {
                    video_vbv_multiplier: f64::INFINITY,
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
    fn frame_rates_too_slow_for_a_clock_are_refused() {
        for fps in [1e-20, 0.009, -1.0, f64::INFINITY, 1000.5] {
            let s = CaptureSettings {
                target_fps: fps,
                ..Default::default()
            };
            let err = s.validate().unwrap_err();
            assert_eq!(err.field, "target_fps", "{err}");
            assert_eq!(
                err.to_string(),
                format!("invalid setting `target_fps`: {fps} is outside 0.01..=1000")
            );
        }
        let slowest = CaptureSettings {
            target_fps: MIN_TARGET_FPS,
            ..Default::default()
        };
        slowest.validate().unwrap();
        let config = crate::config::PipelineConfig::new(&slowest).unwrap();
        assert_eq!(config.frame_interval().as_secs(), 100);
    }

    #[test]
    fn lossless_h264_needs_full_colour() {
        let mut s = CaptureSettings {
            output_mode: Codec::H264,
            h264_crf: 0,
            ..Default::default()
        };
        let err = s.validate().unwrap_err();
        assert_eq!(err.field, "h264_crf", "{err}");
        assert!(err.to_string().contains("h264_fullcolor"), "{err}");
        s.h264_fullcolor = true;
        s.validate().unwrap();
        // JPEG does not use the CRF.
        s.h264_fullcolor = false;
        s.output_mode = Codec::Jpeg;
        s.validate().unwrap();
    }

    #[test]
    fn set_field_checks_against_the_one_table() {
        let mut s = CaptureSettings::default();
        s.set_field("capture_width", FieldValue::Int(640)).unwrap();
        assert_eq!(s.capture_width, 640);
        let err = s
            .set_field("capture_width", FieldValue::Int(-1))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid setting `capture_width`: -1 is outside 1..=16384"
        );
        assert_eq!(s.capture_width, 640, "unchanged on error");
        let err = s
            .set_field("target_fps", FieldValue::Float(1e-20))
            .unwrap_err();
        assert_eq!(err.field, "target_fps");
        let err = s
            .set_field("stripe_height", FieldValue::Int(17))
            .unwrap_err();
        assert_eq!(err.field, "stripe_height");
        let err = s.set_field("h264_crf", FieldValue::Bool(true)).unwrap_err();
        assert_eq!(err.field, "h264_crf");
        assert!(s.set_field("nope", FieldValue::Int(1)).is_err());
        s.set_field("output_mode", FieldValue::Int(1)).unwrap();
        assert_eq!(s.output_mode, Codec::H264);
        s.set_field("watermark_location", FieldValue::Int(6))
            .unwrap();
        assert_eq!(s.watermark_location, WatermarkLocation::Animated);
        // Every field in the table reads back as the kind it takes, and setting a field to
        // its own value changes nothing.
        let d = CaptureSettings {
            capture_cursor: true,
            h264_fullframe: true,
            watermark_path: Some("/tmp/w.png".into()),
            ..Default::default()
        };
        for field in CaptureSettings::field_names() {
            let value = d.field(field).unwrap();
            let kind = match value {
                FieldValue::Int(_) => FieldKind::Int,
                FieldValue::Float(_) => FieldKind::Float,
                FieldValue::Bool(_) => FieldKind::Bool,
                FieldValue::Path(_) => FieldKind::Path,
            };
            assert_eq!(CaptureSettings::field_kind(field), Some(kind), "{field}");
            let mut copy = d.clone();
            copy.set_field(field, value).unwrap();
            assert_eq!(copy, d, "{field}");
        }
        assert_eq!(d.field("capture_cursor"), Some(FieldValue::Bool(true)));
        assert_eq!(
            d.field("use_paint_over_quality"),
            Some(FieldValue::Bool(false))
        );
        assert_eq!(d.field("nope"), None);
        // The float fields are each their own.
        let mut r = CaptureSettings::default();
        r.set_field("keyframe_interval_s", FieldValue::Float(2.5))
            .unwrap();
        r.set_field("video_vbv_multiplier", FieldValue::Float(3.0))
            .unwrap();
        r.set_field("video_cbr_mode", FieldValue::Bool(true))
            .unwrap();
        assert_eq!(
            (r.keyframe_interval_s, r.video_vbv_multiplier, r.target_fps),
            (2.5, 3.0, 60.0)
        );
        assert_eq!(r.field("keyframe_interval_s"), Some(FieldValue::Float(2.5)));
        assert_eq!(r.field("video_cbr_mode"), Some(FieldValue::Bool(true)));
        let err = r
            .set_field("video_min_qp", FieldValue::Int(52))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid setting `video_min_qp`: 52 is outside 0..=51"
        );
    }

    #[test]
    fn integer_enums_round_trip() {
        // 1.2.2's numbering, written out: a round trip alone would pass for any permutation.
        use WatermarkLocation::*;
        let numbering = [
            (0, None),
            (1, TopLeft),
            (2, TopRight),
            (3, BottomLeft),
            (4, BottomRight),
            (5, Middle),
            (6, Animated),
        ];
        for (i, location) in numbering {
            assert_eq!(WatermarkLocation::from_index(i), Some(location), "{i}");
            assert_eq!(location.index(), i);
        }
        assert!(WatermarkLocation::from_index(7).is_none());
        assert_eq!(Codec::from_index(0), Some(Codec::Jpeg));
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
        assert_eq!(Codec::Jpeg.to_string(), "jpeg");
        assert_eq!("JPEG".parse::<Codec>(), Ok(Codec::Jpeg));
        assert_eq!("H.264".parse::<Codec>(), Ok(Codec::H264));
        let err = "vp8".parse::<Codec>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown codec \"vp8\" (expected jpeg or h264)"
        );
    }
}
