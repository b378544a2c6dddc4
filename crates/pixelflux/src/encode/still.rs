//! Lossless stills: the paint-over of a stripe that stopped changing, as a PNG, so a still
//! screen converges to the exact picture at the viewer whatever the codec of its changes.
//!
//! [`StillEncoder`] wraps a stripe's JPEG or H.264 encoder and takes over only the paint-over
//! requests ([`EncodeRequest::paint_over`]; with lossless stills a refresh never carries it,
//! see `detect`); everything else goes to the inner encoder. An H.264 stripe's decoder never sees the still: its next picture is a P
//! picture against the last H.264 picture, which the client decodes as before and draws over
//! the still (the client draws pictures in arrival order, see docs/serve.md).
//!
//! Why PNG at the `png` crate's default compression (docs/PERFORMANCE.md, "Lossless stills"):
//! on the 1080p `desktop` scene it made 103 KB for the 17 stripes in 38–81 ms of CPU (2–5 ms
//! per 1920x64 stripe, once per stripe that stops changing), where lossless WebP took 141 KB
//! in 25–58 ms (fastest method) or 66 KB in ~375 ms, the crate's fast PNG 297 KB in 15–24 ms
//! and q95 4:4:4 JPEG (not lossless) 623 KB. Every browser decodes PNG with `createImageBitmap`, and
//! the `png` crate is already a dependency. Filter: adaptive per row.

use super::{EncodeError, EncodeOutcome, EncodeRequest, StripeEncoder, StripeKind, StripePlace};
use crate::frame::FrameRef;
use crate::wire;

/// A stripe encoder whose paint-overs are lossless PNG stills.
pub struct StillEncoder {
    inner: Box<dyn StripeEncoder>,
    rgb: Vec<u8>,
}

impl StillEncoder {
    /// Wraps `inner`, which keeps encoding every request that is not a paint-over.
    pub fn new(inner: Box<dyn StripeEncoder>) -> Self {
        Self {
            inner,
            rgb: Vec::new(),
        }
    }
}

/// Encodes BGRX `pixels` as an 8-bit RGB PNG (default compression), appended to `out`;
/// `rgb` is scratch space kept between calls.
///
/// # Errors
/// [`EncodeError::Still`] when the PNG encoder fails.
pub fn encode_png(
    pixels: FrameRef<'_>,
    rgb: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let (w, h) = (pixels.width as usize, pixels.height);
    rgb.clear();
    rgb.reserve(w * h as usize * 3);
    for y in 0..h {
        for px in pixels.row(y)[..w * 4].chunks_exact(4) {
            rgb.extend_from_slice(&[px[2], px[1], px[0]]);
        }
    }
    let png_err = EncodeError::Still;
    let mut encoder = png::Encoder::new(&mut *out, pixels.width, pixels.height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Default);
    encoder.set_adaptive_filter(png::AdaptiveFilterType::Adaptive);
    let mut writer = encoder.write_header().map_err(png_err)?;
    writer.write_image_data(rgb).map_err(png_err)?;
    writer.finish().map_err(png_err)
}

impl StripeEncoder for StillEncoder {
    fn encode(
        &mut self,
        pixels: FrameRef<'_>,
        request: &EncodeRequest,
        place: StripePlace,
        out: &mut Vec<u8>,
    ) -> Result<Option<EncodeOutcome>, EncodeError> {
        if !request.paint_over {
            return self.inner.encode(pixels, request, place, out);
        }
        wire::write_still_header(out, wire::StillFormat::Png, place.frame_id as u32, place.y);
        let header_len = out.len();
        encode_png(pixels, &mut self.rgb, out)?;
        Ok(Some(EncodeOutcome {
            kind: StripeKind::Still,
            header_len,
        }))
    }

    fn retune(&mut self, config: &crate::config::EncoderConfig) -> Result<(), EncodeError> {
        self.inner.retune(config)
    }

    fn set_rate_share(&mut self, fraction: f64) -> Result<(), EncodeError> {
        self.inner.set_rate_share(fraction)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::OwnedFrame;

    struct Never;
    impl StripeEncoder for Never {
        fn encode(
            &mut self,
            _: FrameRef<'_>,
            _: &EncodeRequest,
            _: StripePlace,
            out: &mut Vec<u8>,
        ) -> Result<Option<EncodeOutcome>, EncodeError> {
            out.push(0xAA);
            Ok(Some(EncodeOutcome {
                kind: StripeKind::Jpeg,
                header_len: 0,
            }))
        }
    }

    #[test]
    fn paint_over_is_an_exact_png_and_the_rest_goes_through() {
        let mut f = OwnedFrame::new(37, 5);
        for (i, b) in f.data.iter_mut().enumerate() {
            *b = (i * 7 % 251) as u8;
        }
        let mut enc = StillEncoder::new(Box::new(Never));
        let place = StripePlace {
            frame_id: 70000,
            y: 128,
        };
        let mut out = Vec::new();
        let still = EncodeRequest {
            jpeg_quality: 95,
            paint_over: true,
            keyframe: true,
        };
        let o = enc
            .encode(f.view(), &still, place, &mut out)
            .unwrap()
            .unwrap();
        assert_eq!(o.kind, StripeKind::Still);
        assert_eq!(&out[..o.header_len], &[0x05, 0x01, 0x11, 0x70, 0, 128]);
        let decoder = png::Decoder::new(std::io::Cursor::new(&out[o.header_len..]));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (37, 5));
        for (px, rgb) in f.data.chunks_exact(4).zip(buf.chunks_exact(3)) {
            assert_eq!([px[2], px[1], px[0]], rgb);
        }
        // A refresh (keyframe) and a change go to the inner encoder.
        for request in [
            EncodeRequest {
                paint_over: false,
                ..still
            },
            EncodeRequest {
                paint_over: false,
                keyframe: false,
                ..still
            },
        ] {
            out.clear();
            let o = enc
                .encode(f.view(), &request, place, &mut out)
                .unwrap()
                .unwrap();
            assert_eq!((o.kind, out.as_slice()), (StripeKind::Jpeg, &[0xAA][..]));
        }
    }
}
