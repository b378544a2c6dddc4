//! Stripe encoders: one instance per stripe, kept across frames, owned by that stripe's slot.

#[cfg(feature = "x264")]
pub mod color;
#[cfg(feature = "x264")]
pub mod h264;
pub mod jpeg;
pub mod still;
#[cfg(feature = "x264")]
pub mod x264;

use crate::config::EncoderConfig;
use crate::frame::FrameRef;
use crate::wire::H264FrameType;

/// What kind of payload a stripe carries (the `type` of 1.2.2's `StripeEncodeResult`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StripeKind {
    /// A JPEG image (type 1).
    Jpeg,
    /// An H.264 access unit (type 2).
    H264,
    /// A lossless still (PNG) refreshing a stripe that stopped changing, with
    /// `paint_over_lossless` only (tagged wire format; never on the 1.2.2 path).
    Still,
}

impl StripeKind {
    /// 1.2.2's integer for this kind.
    pub fn code(self) -> u8 {
        match self {
            StripeKind::Jpeg => 1,
            StripeKind::H264 => 2,
            StripeKind::Still => 3,
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
    /// JPEG or H.264.
    pub kind: StripeKind,
    /// For H.264, the picture type the encoder actually produced.
    pub h264_frame_type: Option<H264FrameType>,
    /// Length of the header at the start of the output.
    pub header_len: usize,
}

/// An encoder failed.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// libjpeg-turbo reported an error.
    #[error("JPEG encoder: {0}")]
    Jpeg(String),
    /// libx264 reported an error or could not be opened.
    #[error("H.264 encoder: {0}")]
    H264(String),
    /// The PNG encoder of a lossless still failed.
    #[error("still encoder: {0}")]
    Still(String),
}

/// Encodes one stripe's pixels; keeps whatever state it needs between frames.
pub trait StripeEncoder: Send {
    /// Appends header and payload for `pixels` to `out` (which is empty). Returns `None` when
    /// the encoder produced nothing for this frame.
    fn encode(
        &mut self,
        pixels: FrameRef<'_>,
        request: &EncodeRequest,
        place: StripePlace,
        out: &mut Vec<u8>,
    ) -> Result<Option<EncodeOutcome>, EncodeError>;
}

/// Makes the encoder `config` names for a stripe of `width` x `height`. H.264 stripes must
/// have an even width and height (see `h264`).
///
/// # Errors
/// [`EncodeError`] when the encoder cannot be opened; for H.264 also when the crate was built
/// without its `x264` feature.
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
            return Err(EncodeError::H264(
                "this build has no H.264 encoder (built without the `x264` feature)".into(),
            ));
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
    use crate::settings::{CaptureSettings, OutputMode};

    #[test]
    fn h264_without_the_x264_feature_is_refused_by_name() {
        let settings = CaptureSettings {
            output_mode: OutputMode::H264,
            ..Default::default()
        };
        let config = PipelineConfig::new(&settings).expect("valid settings");
        let err = new_encoder(config.encoder(), 64, 64)
            .err()
            .expect("no H.264 encoder");
        assert!(err.to_string().contains("`x264` feature"), "{err}");
        let jpeg = PipelineConfig::new(&CaptureSettings::default()).expect("valid settings");
        assert!(new_encoder(jpeg.encoder(), 64, 64).is_ok());
    }
}
