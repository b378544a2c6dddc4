//! Stripe encoders: one instance per stripe, kept across frames, owned by that stripe's slot.
//!
//! Public for encoding stripes outside a capture (benchmarks, a pipeline of one's own):
//! [`new_encoder`] makes the encoder a capture would use for a stripe. The codecs' internals
//! (colour conversion, the x264 wrapper) are the crate's own.

#[cfg(feature = "x264")]
pub(crate) mod color;
#[cfg(feature = "x264")]
pub(crate) mod h264;
pub(crate) mod jpeg;
#[cfg(feature = "x264")]
pub(crate) mod mbinfo;
pub(crate) mod still;

// The measurements behind the JPEG chroma choice and the still format (tests/jpeg_chroma.rs,
// docs/PERFORMANCE.md) use these directly, like `new_encoder`.
pub use jpeg::{
    chroma_detail, is_grey, AUTO_420_QUALITY_STEP, AUTO_FULL_CHROMA_DETAIL, CHROMA_CHOICE_FRAMES,
    FULL_CHROMA_MIN_QUALITY, GREY_CHECK_SKIP_FRAMES,
};
pub use still::encode_png;
#[cfg(feature = "x264")]
pub(crate) mod x264;

use crate::config::EncoderConfig;
use crate::frame::FrameRef;
use crate::settings::Codec;
use crate::wire::H264FrameType;
#[cfg(feature = "x264")]
pub use color::ColorError;
#[cfg(feature = "x264")]
pub use x264::X264Error;

/// What a stripe carries: a JPEG image, an H.264 access unit of a given picture type (the
/// `type` of 1.2.2's `StripeEncodeResult`, plus the frame type of the H.264 header), or a
/// lossless still.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StripeKind {
    /// A JPEG image (type 1).
    Jpeg,
    /// An H.264 access unit (type 2) whose picture x264 produced as this type.
    H264(H264FrameType),
    /// A lossless still (PNG) refreshing a stripe that stopped changing, with
    /// `paint_over_lossless` only (tagged wire format; never on the 1.2.2 path).
    Still,
    /// Not a picture: a copy-rows message ([`crate::wire::write_copy_rows`]) moving rows the
    /// viewer already shows, sent before the stripes of its frame (`scroll_detection`, JPEG on
    /// the tagged wire format only).
    CopyRows,
}

impl StripeKind {
    /// 1.2.2's integer for this kind (1 JPEG, 2 H.264: [`Codec::stripe_type`]); 3 for a still
    /// and 4 for copy-rows, which only the tagged wire format carries.
    pub fn code(self) -> u8 {
        match self {
            StripeKind::Still => 3,
            StripeKind::CopyRows => 4,
            StripeKind::Jpeg | StripeKind::H264(_) => self.codec().map_or(3, Codec::stripe_type),
        }
    }

    /// The codec of the payload; `None` for a lossless still (PNG), which refreshes a stripe
    /// of either codec's stream, and for copy-rows (no picture).
    pub fn codec(self) -> Option<Codec> {
        match self {
            StripeKind::Jpeg => Some(Codec::Jpeg),
            StripeKind::H264(_) => Some(Codec::H264),
            StripeKind::Still | StripeKind::CopyRows => None,
        }
    }

    /// For H.264, the picture type; `None` for JPEG and stills.
    pub fn h264_frame_type(self) -> Option<H264FrameType> {
        match self {
            StripeKind::Jpeg | StripeKind::Still | StripeKind::CopyRows => None,
            StripeKind::H264(t) => Some(t),
        }
    }
}

/// Why a stripe is being encoded and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodeRequest {
    /// JPEG quality to use (1–100).
    pub jpeg_quality: u8,
    /// A static stripe's one-time high-quality refresh.
    pub paint_over: bool,
    /// Must be decodable on its own (H.264: an IDR with SPS/PPS).
    pub keyframe: bool,
}

/// Where the stripe sits and which frame it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StripePlace {
    /// Frame counter (the header carries it modulo 65536).
    pub frame_id: u64,
    /// First row of the stripe in the captured region.
    pub y: u32,
}

/// What an encoder produced, besides the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodeOutcome {
    /// JPEG, or H.264 with the picture type the encoder actually produced.
    pub kind: StripeKind,
    /// Length of the header at the start of the output.
    pub header_len: usize,
}

/// An encoder failed. The libraries' own errors are kept (and included in the message).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// libjpeg-turbo reported an error.
    #[error("JPEG encoder: {0}")]
    Jpeg(turbojpeg::Error),
    /// libx264 refused the parameters, could not be opened or failed to encode.
    #[cfg(feature = "x264")]
    #[error("H.264 encoder: {0}")]
    H264(X264Error),
    /// The PNG encoder of a lossless still failed.
    #[error("still encoder: {0}")]
    Still(png::EncodingError),
    /// H.264 was asked of a build without the `x264` feature (no GPL code linked).
    #[error("this build has no H.264 encoder (built without the `x264` feature)")]
    NoH264,
    /// An H.264 stripe with an odd width or height (4:2:0 chroma covers 2x2 pixels).
    #[error(
        "H.264 encoder: a {width}x{height} stripe; H.264 stripes need an even width and height"
    )]
    OddSize {
        /// Stripe width in pixels.
        width: u32,
        /// Stripe height in rows.
        height: u32,
    },
    /// The conversion to YUV for H.264 failed.
    #[cfg(feature = "x264")]
    #[error("H.264 encoder: {0}")]
    Color(ColorError),
}

/// Encodes one stripe's pixels; keeps whatever state it needs between frames.
pub trait StripeEncoder: Send {
    /// Appends header and payload for `pixels` to `out` (which is empty). Returns `None` when
    /// the encoder produced nothing for this frame.
    ///
    /// # Errors
    /// The codec library's error ([`EncodeError`]); the stripe's decoder state is then unknown,
    /// so the next request should be a keyframe.
    fn encode(
        &mut self,
        pixels: FrameRef<'_>,
        request: &EncodeRequest,
        place: StripePlace,
        out: &mut Vec<u8>,
    ) -> Result<Option<EncodeOutcome>, EncodeError>;

    /// Takes a change of `config` that needs no new encoder (H.264: the bitrate and the
    /// frame rate under a constant bitrate, applied through `x264_encoder_reconfig` with no
    /// IDR); see [`crate::config::H264Config::retunable_to`]. The default ignores it.
    ///
    /// # Errors
    /// The codec library refused the change ([`EncodeError`]); the encoder goes on as before.
    fn retune(&mut self, config: &EncoderConfig) -> Result<(), EncodeError> {
        let _ = config;
        Ok(())
    }

    /// The part (0–1] of the stream's rate this stripe may spend on the pictures from now on:
    /// H.264 under a constant bitrate spreads the rate over the stripes by their share of the
    /// changed area (the pipeline passes the stripe's rows over the rows sent in the last
    /// frame). The default ignores it.
    ///
    /// # Errors
    /// The codec library refused the new rate ([`EncodeError`]).
    fn set_rate_share(&mut self, fraction: f64) -> Result<(), EncodeError> {
        let _ = fraction;
        Ok(())
    }
}

/// Makes the encoder `config` names for a stripe of `width` x `height`.
///
/// # Errors
/// [`EncodeError::OddSize`] for an H.264 stripe with an odd width or height;
/// [`EncodeError::Jpeg`] or [`EncodeError::H264`] when libjpeg-turbo or x264 cannot be set up
/// (x264's reason kept); [`EncodeError::NoH264`] for H.264 in a build without the `x264`
/// feature.
pub fn new_encoder(
    config: &EncoderConfig,
    width: u32,
    height: u32,
) -> Result<Box<dyn StripeEncoder>, EncodeError> {
    let inner: Box<dyn StripeEncoder> = match config {
        EncoderConfig::Jpeg(jpeg) => {
            Box::new(jpeg::JpegEncoder::new(jpeg.wire_format, jpeg.subsampling)?)
        }
        #[cfg(feature = "x264")]
        EncoderConfig::H264(h264) => Box::new(h264::H264Encoder::new(h264, width, height)?),
        #[cfg(not(feature = "x264"))]
        EncoderConfig::H264(_) => {
            let _ = (width, height);
            return Err(EncodeError::NoH264);
        }
    };
    if config.lossless_stills() {
        return Ok(Box::new(still::StillEncoder::new(inner)));
    }
    Ok(inner)
}

#[cfg(all(test, not(feature = "x264")))]
mod tests {
    use super::*;
    use crate::config::PipelineConfig;
    use crate::settings::{CaptureSettings, Codec};

    #[test]
    fn h264_without_the_x264_feature_is_refused_by_name() {
        let settings = CaptureSettings {
            output_mode: Codec::H264,
            ..Default::default()
        };
        let config = PipelineConfig::new(&settings).expect("valid settings");
        let err = new_encoder(config.encoder(), 64, 64)
            .err()
            .expect("no H.264 encoder");
        assert!(matches!(err, EncodeError::NoH264), "{err}");
        assert!(err.to_string().contains("`x264` feature"), "{err}");
        let jpeg = PipelineConfig::new(&CaptureSettings::default()).expect("valid settings");
        assert!(new_encoder(jpeg.encoder(), 64, 64).is_ok());
    }
}
