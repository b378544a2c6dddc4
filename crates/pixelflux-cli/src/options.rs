//! Command-line options shared by the subcommands: where to capture from and how to encode.

use anyhow::Context;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::parser::ValueSource;
use clap::{ArgMatches, Args};
use pixelflux::settings::{
    SettingsError, MAX_BITRATE_KBPS, MAX_DIMENSION, MAX_TARGET_FPS, MIN_TARGET_FPS,
};
use pixelflux::{CaptureSettings, Codec, JpegSubsampling, Scene, SourceSpec};

/// Options that cannot run together or with the values given, found after parsing (a setting
/// the options make that the capture refuses, a `$DISPLAY` that is not a display name): the
/// command prints it as a usage error, naming the options, and exits with status 2 like
/// clap's own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Options that only one codec uses: (the argument's id, the option, the codec it is for,
/// what the other codec takes instead).
const CODEC_OPTIONS: [(&str, &str, Codec, &str); 6] = [
    (
        "quality",
        "--quality",
        Codec::Jpeg,
        "H.264's quality is --crf or --bitrate-kbps",
    ),
    (
        "jpeg_subsampling",
        "--jpeg-subsampling",
        Codec::Jpeg,
        "H.264's chroma is 4:2:0, or 4:4:4 with --h264-fullcolor",
    ),
    (
        "no_scroll_detection",
        "--no-scroll-detection",
        Codec::Jpeg,
        "H.264 never detects scrolling",
    ),
    ("crf", "--crf", Codec::H264, "JPEG's quality is --quality"),
    (
        "bitrate_kbps",
        "--bitrate-kbps",
        Codec::H264,
        "JPEG's quality is --quality",
    ),
    (
        "h264_fullcolor",
        "--h264-fullcolor",
        Codec::H264,
        "JPEG's chroma is --jpeg-subsampling",
    ),
];

/// Whether the argument `id` was given (on the command line or by its environment variable),
/// not just defaulted; `false` for an argument the subcommand does not have.
fn given(matches: &ArgMatches, id: &str) -> bool {
    // `value_source` panics (debug builds) for an id the subcommand does not have.
    matches!(matches.try_contains_id(id), Ok(true))
        && matches!(
            matches.value_source(id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        )
}

/// The first pair of options in a subcommand's `matches` where one would be ignored, as the
/// message of a usage error (`the argument '--quality' cannot be used with '--codec h264'…`),
/// in the words of clap's own conflicts: an option of one codec with the other codec (JPEG by
/// default), or a `--region` offset with a `--scene` (a scene plays at the region's size).
/// Conflicts of presence alone (`--scene` with `--display`) are clap's `conflicts_with`.
pub fn ignored_together(matches: &ArgMatches) -> Option<String> {
    if let Ok(Some(codec)) = matches.try_get_one::<Codec>("codec") {
        let named = if given(matches, "codec") {
            format!("'--codec {codec}'")
        } else {
            format!("'--codec {codec}' (the default)")
        };
        for (id, option, for_codec, instead) in CODEC_OPTIONS {
            if for_codec != *codec && given(matches, id) {
                return Some(format!(
                    "the argument '{option}' cannot be used with {named}: it is for {for_codec} \
                     only ({instead})"
                ));
            }
        }
    }
    let scene = matches.try_get_one::<Scene>("scene").ok().flatten();
    let region = matches.try_get_one::<RegionArg>("region").ok().flatten();
    if let (Some(scene), Some(r)) = (scene, region) {
        if (r.x, r.y) != (0, 0) {
            return Some(format!(
                "the argument '--region {}x{}+{}+{}' cannot be used with '--scene {scene}': a \
                 scene plays at the region's size and has no offset (give --region {}x{})",
                r.width, r.height, r.x, r.y, r.width, r.height
            ));
        }
    }
    None
}

/// The options behind a setting the capture refused, in the error instead of the setting's
/// name: `h264_crf` is `--crf`, `h264_fullcolor` is `--h264-fullcolor`, and so on. Errors of
/// settings no option makes are returned as they are.
pub fn options_error(err: SettingsError) -> anyhow::Error {
    let option = match err.field {
        "h264_crf" if err.reason.contains("h264_fullcolor") => {
            return UsageError(
                "--crf 0 (lossless) needs --h264-fullcolor (High 4:4:4): H.264 4:2:0 takes \
                 --crf 1..=51"
                    .into(),
            )
            .into();
        }
        "target_fps" => "--fps",
        "jpeg_quality" => "--quality",
        "h264_crf" => "--crf",
        "video_bitrate_kbps" => "--bitrate-kbps",
        "stripe_height" => "--stripe-height",
        "jpeg_subsampling" => "--jpeg-subsampling",
        "capture_width" | "capture_height" | "capture_x" | "capture_y" => "--region",
        _ => return err.into(),
    };
    let reason = err
        .reason
        .replace("h264_fullcolor", "--h264-fullcolor")
        .replace("video_cbr_mode", "--bitrate-kbps");
    UsageError(format!("{option}: {reason}")).into()
}

/// A region `WxH+X+Y` (or `WxH`, at 0,0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegionArg {
    pub width: u32,
    pub height: u32,
    pub x: i32,
    pub y: i32,
}

impl std::str::FromStr for RegionArg {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        let (size, pos) = match s.split_once('+') {
            Some((size, pos)) => (size, Some(pos)),
            None => (s, None),
        };
        let (w, h) = size
            .split_once('x')
            .context("region must look like WxH+X+Y, e.g. 1280x720+0+0")?;
        let (x, y) = match pos {
            Some(pos) => pos
                .split_once('+')
                .context("region must look like WxH+X+Y, e.g. 1280x720+0+0")?,
            None => ("0", "0"),
        };
        // Each part names its range when it is out of it (or not a number at all).
        fn part<T: std::str::FromStr + TryFrom<i64>>(
            name: &str,
            text: &str,
            min: i64,
            max: i64,
        ) -> anyhow::Result<T> {
            text.trim()
                .parse::<i64>()
                .ok()
                .filter(|v| (min..=max).contains(v))
                .and_then(|v| T::try_from(v).ok())
                .with_context(|| {
                    format!("region {name} must be an integer in {min}..={max}, got {text:?}")
                })
        }
        let max_dim = i64::from(MAX_DIMENSION);
        let max_pos = i64::from(i32::MAX);
        let region = Self {
            width: part("width", w, 1, max_dim)?,
            height: part("height", h, 1, max_dim)?,
            x: part("x", x, 0, max_pos)?,
            y: part("y", y, 0, max_pos)?,
        };
        Ok(region)
    }
}

/// Rate and quality options, shared by `capture`, `serve`, `snapshot` and `bench`.
#[derive(Debug, Clone, Args)]
pub struct EncodeOptions {
    /// Target frames per second (0.01-1000).
    #[arg(long, default_value_t = 60.0, value_parser = fps, allow_negative_numbers = true)]
    pub fps: f64,
    /// JPEG quality (1-100).
    #[arg(long, default_value_t = 85, allow_negative_numbers = true,
          value_parser = |t: &str| int_in::<u8>(t, 1, 100))]
    pub quality: u8,
    /// H.264 CRF (0-51).
    #[arg(long, default_value_t = 25, allow_negative_numbers = true,
          value_parser = |t: &str| int_in::<u8>(t, 0, 51))]
    pub crf: u8,
    /// H.264 at a constant bitrate of this many kbit/s (the whole stream, 1-1000000) instead
    /// of --crf.
    #[arg(long, value_name = "KBPS", allow_negative_numbers = true, conflicts_with = "crf",
          value_parser = |t: &str| int_in::<u32>(t, 1, i64::from(MAX_BITRATE_KBPS)))]
    pub bitrate_kbps: Option<u32>,
    /// Rows per stripe (0: per codec, 64 for JPEG and for H.264 one stripe per core, at least
    /// 256 rows; else even, 16-16384).
    #[arg(long, default_value_t = 0, value_parser = stripe_height, allow_negative_numbers = true)]
    pub stripe_height: u32,
    /// JPEG chroma: auto (4:4:4 from quality 90 or for stripes with coloured detail, else
    /// 4:2:0 two quality steps higher; a stripe with no colour as a one-component grayscale
    /// JPEG of the same pixels), 420 or 444 (always three components).
    #[arg(long, default_value = "auto")]
    pub jpeg_subsampling: JpegSubsampling,
}

impl EncodeOptions {
    /// Default settings with these options applied.
    pub fn settings(&self) -> CaptureSettings {
        CaptureSettings {
            target_fps: self.fps,
            jpeg_quality: self.quality,
            h264_crf: self.crf,
            video_cbr_mode: self.bitrate_kbps.is_some(),
            video_bitrate_kbps: self.bitrate_kbps.unwrap_or(4000),
            stripe_height: self.stripe_height,
            jpeg_subsampling: self.jpeg_subsampling,
            ..Default::default()
        }
    }
}

/// Source and encoding options.
#[derive(Debug, Clone, Args)]
pub struct CaptureOptions {
    #[command(flatten)]
    pub source: SourceOptions,
    /// Codec of the stripes: jpeg or h264.
    #[arg(long, default_value_t = Codec::Jpeg)]
    pub codec: Codec,
    #[command(flatten)]
    pub encode: EncodeOptions,
    /// Blend the pointer into the picture (an X display's; a scene has none).
    #[arg(long, conflicts_with = "scene")]
    pub cursor: bool,
    /// H.264 in 4:4:4 (High 4:4:4 profile) instead of 4:2:0 (baseline).
    #[arg(long)]
    pub h264_fullcolor: bool,
}

impl CaptureOptions {
    /// Settings and source for these options. With no scene, the display is asked for its
    /// size when no region is given; with no display at all, the `typing` scene plays.
    pub fn resolve(&self) -> anyhow::Result<(CaptureSettings, SourceSpec)> {
        let mut settings = CaptureSettings {
            capture_cursor: self.cursor,
            h264_fullcolor: self.h264_fullcolor,
            output_mode: self.codec,
            ..self.encode.settings()
        };
        let spec = self.source.resolve(&mut settings)?;
        Ok((settings, spec))
    }

    /// Checks the settings these options make before anything starts (with the region's
    /// size, or any valid size when the display's is not known yet): an error names the
    /// options, e.g. `--crf 0` without `--h264-fullcolor`.
    ///
    /// # Errors
    /// A [`UsageError`] (or, for a setting no option makes, the settings error).
    pub fn check(&self) -> anyhow::Result<()> {
        let region = self.source.region.unwrap_or(RegionArg {
            width: 640,
            height: 480,
            x: 0,
            y: 0,
        });
        CaptureSettings {
            capture_cursor: self.cursor,
            h264_fullcolor: self.h264_fullcolor,
            output_mode: self.codec,
            capture_width: region.width,
            capture_height: region.height,
            capture_x: region.x,
            capture_y: region.y,
            ..self.encode.settings()
        }
        .validate()
        .map_err(options_error)
    }
}

/// Where to capture from: `pixelflux snapshot`'s options, and the first of [`CaptureOptions`].
#[derive(Debug, Clone, Args)]
pub struct SourceOptions {
    /// X display to capture (default: $DISPLAY).
    #[arg(long, value_parser = display_name)]
    pub display: Option<String>,
    /// Region to capture, WxH+X+Y (default: the whole screen).
    #[arg(long)]
    pub region: Option<RegionArg>,
    /// Play a built-in synthetic scene instead of capturing a display.
    #[arg(long, value_parser = scene(), conflicts_with = "display")]
    pub scene: Option<Scene>,
}

impl SourceOptions {
    /// The source these options name, with the region written into `settings` (which are then
    /// validated). With no scene, the display is asked for its size when no region is given;
    /// with no display at all, the `typing` scene plays.
    pub fn resolve(&self, settings: &mut CaptureSettings) -> anyhow::Result<SourceSpec> {
        let display = self
            .display
            .clone()
            .or_else(|| std::env::var("DISPLAY").ok().filter(|d| !d.is_empty()));
        if let (None, Some(name)) = (self.scene, &display) {
            // A bad `$DISPLAY` is refused like a bad --display, before anything connects.
            check_display(name).map_err(|e| UsageError(format!("$DISPLAY: {e}")))?;
        }
        let spec = match (self.scene, display) {
            (Some(scene), _) => SourceSpec::Synthetic(scene),
            (None, Some(display)) => SourceSpec::X11 {
                display: Some(display),
            },
            (None, None) => {
                tracing::warn!("no X display ($DISPLAY unset, no --display): playing the synthetic `typing` scene");
                SourceSpec::Synthetic(Scene::Typing)
            }
        };
        match (self.region, &spec) {
            (Some(r), _) => {
                settings.capture_width = r.width;
                settings.capture_height = r.height;
                settings.capture_x = r.x;
                settings.capture_y = r.y;
            }
            (None, SourceSpec::X11 { display }) => {
                let (w, h) = pixelflux::source::x11::screen_size(display.as_deref())?;
                settings.capture_width = w;
                settings.capture_height = h;
            }
            // A synthetic scene plays at the settings' size.
            (None, _) => {}
        }
        settings.validate().map_err(options_error)?;
        Ok(spec)
    }
}

/// `--scene`: the names of [`Scene::ALL`], listed by `--help` and in the error for any other.
pub fn scene() -> impl TypedValueParser<Value = Scene> {
    PossibleValuesParser::new(Scene::ALL.map(Scene::name)).try_map(|name| name.parse::<Scene>())
}

/// A number (of `unit`) that is finite and in `min..=max` (`min` itself excluded when
/// `min_excluded`); the error names the range (clap names the option and the value).
pub fn float_in(
    text: &str,
    min: f64,
    max: f64,
    min_excluded: bool,
    unit: &str,
) -> Result<f64, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("not a number (expected {unit})"))?;
    let low_ok = if min_excluded {
        value > min
    } else {
        value >= min
    };
    if value.is_finite() && low_ok && value <= max {
        Ok(value)
    } else {
        let open = if min_excluded {
            "more than"
        } else {
            "at least"
        };
        Err(format!(
            "out of range: {unit} must be {open} {min} and at most {max}, not {}",
            text.trim()
        ))
    }
}

/// An integer in `min..=max` (which must fit `T`); the error names the range.
pub fn int_in<T: TryFrom<i64>>(text: &str, min: i64, max: i64) -> Result<T, String> {
    let out_of_range = || format!("not an integer in {min}..={max}: {}", text.trim());
    text.trim()
        .parse::<i64>()
        .ok()
        .filter(|v| (min..=max).contains(v))
        .and_then(|v| T::try_from(v).ok())
        .ok_or_else(out_of_range)
}

/// `--fps`: frames per second within the settings' range (`target_fps`).
pub fn fps(text: &str) -> Result<f64, String> {
    float_in(
        text,
        MIN_TARGET_FPS,
        MAX_TARGET_FPS,
        false,
        "frames per second",
    )
}

/// `--stripe-height`: 0 (per codec) or an even number of rows from 16 to the largest
/// dimension, as `stripe_height` takes it.
pub fn stripe_height(text: &str) -> Result<u32, String> {
    let rows: i64 = text.trim().parse().map_err(|_| {
        format!(
            "not an integer: 0 (per codec) or an even number of rows from 16 to {MAX_DIMENSION}"
        )
    })?;
    match u32::try_from(rows) {
        Ok(rows) if rows == 0 || (16..=MAX_DIMENSION).contains(&rows) && rows.is_multiple_of(2) => {
            Ok(rows)
        }
        _ => Err(format!(
            "{rows} is out of range: 0 (per codec) or an even number of rows from 16 to \
             {MAX_DIMENSION}"
        )),
    }
}

/// Longest `--seconds` of `capture` (a year): anything longer is a mistake, not a run.
pub const MAX_SECONDS: f64 = 365.0 * 24.0 * 3600.0;

/// `--seconds`: a run time more than 0 and at most [`MAX_SECONDS`].
pub fn seconds(text: &str) -> Result<f64, String> {
    float_in(text, 0.0, MAX_SECONDS, true, "seconds")
}

/// A `--display` value, refused at parse time when it is not a display name or its number
/// is out of X's range.
fn display_name(name: &str) -> Result<String, String> {
    check_display(name)?;
    Ok(name.to_string())
}

/// Checks an X display name (`--display` or `$DISPLAY`) the way the connection will read it,
/// so that a malformed one fails at once, saying what names look like, and a number out of
/// range names the range. A socket path (`/…`, `unix:…`) is left to the connection.
///
/// # Errors
/// What is wrong, for a usage error.
pub fn check_display(name: &str) -> Result<(), String> {
    use x11rb::reexports::x11rb_protocol::parse_display;
    if parse_display::parse_display_with_file_exists_callback(name, |_| true).is_err() {
        return Err(format!(
            "{name:?} is not an X display name: names look like :N or host:N[.S] (e.g. :0, \
             :1.0, localhost:10)"
        ));
    }
    pixelflux::source::x11::check_display_name(Some(name)).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--fps 1e-20` once passed and then panicked (exit 101); `--crf 0` with 4:2:0 passed and
    /// x264 refused it at start. Both are refused while resolving, naming the setting.
    #[test]
    fn options_the_capture_cannot_run_are_refused_naming_the_setting() {
        let options = |fps: f64, crf: u8, codec: Codec| CaptureOptions {
            source: SourceOptions {
                display: None,
                region: Some("64x32".parse().unwrap()),
                scene: Some(Scene::Static),
            },
            codec,
            encode: EncodeOptions {
                fps,
                quality: 85,
                crf,
                bitrate_kbps: None,
                stripe_height: 0,
                jpeg_subsampling: JpegSubsampling::Auto,
            },
            cursor: false,
            h264_fullcolor: false,
        };
        let err = options(1e-20, 25, Codec::Jpeg).resolve().unwrap_err();
        assert!(err.to_string().contains("--fps"), "{err}");
        // Named as the options, and a usage error (status 2).
        let err = options(30.0, 0, Codec::H264).resolve().unwrap_err();
        assert!(
            err.to_string().contains("--crf 0") && err.to_string().contains("--h264-fullcolor"),
            "{err}"
        );
        assert!(err.downcast_ref::<UsageError>().is_some(), "{err}");
        let err = options(30.0, 0, Codec::H264).check().unwrap_err();
        assert!(err.downcast_ref::<UsageError>().is_some(), "{err}");
        options(30.0, 0, Codec::Jpeg).resolve().unwrap();
        assert_eq!("h264".parse::<Codec>(), Ok(Codec::H264));
        // --bitrate-kbps: a constant bitrate, checked like the setting.
        let mut cbr = options(30.0, 25, Codec::H264);
        cbr.encode.bitrate_kbps = Some(2500);
        let (settings, _) = cbr.resolve().unwrap();
        assert!(settings.video_cbr_mode);
        assert_eq!(settings.video_bitrate_kbps, 2500);
        cbr.encode.bitrate_kbps = Some(0);
        let err = cbr.resolve().unwrap_err();
        assert!(err.to_string().contains("--bitrate-kbps"), "{err}");
    }

    #[test]
    fn regions_parse() {
        let r: RegionArg = "1280x720+10+20".parse().unwrap();
        assert_eq!((r.width, r.height, r.x, r.y), (1280, 720, 10, 20));
        let r: RegionArg = "640x480".parse().unwrap();
        assert_eq!((r.x, r.y), (0, 0));
        for bad in ["", "x", "10x", "0x10", "10x10+1", "axb"] {
            assert!(bad.parse::<RegionArg>().is_err(), "{bad}");
        }
        let err = "10x10+99999999999+0".parse::<RegionArg>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "region x must be an integer in 0..=2147483647, got \"99999999999\""
        );
        let err = "16385x10".parse::<RegionArg>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "region width must be an integer in 1..=16384, got \"16385\""
        );
        let err = "10x10+-4+0".parse::<RegionArg>().unwrap_err();
        assert!(err.to_string().contains("region x"), "{err}");
    }
}
