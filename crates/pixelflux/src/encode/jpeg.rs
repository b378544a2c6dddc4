//! JPEG stripes through libjpeg-turbo, fed BGRX directly (no conversion pass of ours).
//!
//! Chroma follows [`JpegSubsampling`]: 4:2:0, 4:4:4, or (the default) `Auto`: 4:4:4 from
//! quality [`FULL_CHROMA_MIN_QUALITY`] up, and below it per stripe, 4:4:4 where the stripe's fine
//! detail is largely colour (coloured text, UI) and 4:2:0 where it is mostly brightness (grey
//! text, photo-like texture).
//! The rate–distortion measurement behind it is in docs/PERFORMANCE.md ("JPEG chroma").

use turbojpeg::{Compressor, Image, PixelFormat, Subsamp};

use super::{EncodeError, EncodeOutcome, EncodeRequest, StripeEncoder, StripeKind, StripePlace};
use crate::frame::FrameRef;
use crate::settings::{JpegSubsampling, WireFormat};
use crate::wire;

/// Lowest quality `Auto` always encodes in 4:4:4. High quality asks for a sharp picture and
/// 4:2:0 caps it whatever the quality (every colour edge bleeds): on a picture of 16x16 colour
/// blocks and grey text strokes q95 gives 31.6 dB in 4:2:0 and 48.3 dB in 4:4:4. At equal bytes
/// 4:4:4 wins from about q95 on every scene measured, and loses less than 0.5 dB at q90.
pub const FULL_CHROMA_MIN_QUALITY: u8 = 90;

/// Chroma detail (see [`chroma_detail`], percent) from which `Auto` encodes a stripe in
/// 4:4:4. Measured on 1080p scenes (docs/PERFORMANCE.md, "JPEG chroma"): the `desktop` scene's
/// stripes with text and UI score 35–270, where 4:4:4 gives 2–4 dB more at equal bytes; the
/// `static` scene's grey text and the `full` scene's texture score 0–10, where 4:2:0 gives
/// about 1 dB more at equal bytes.
pub const AUTO_FULL_CHROMA_DETAIL: u32 = 20;

/// One libjpeg-turbo compressor, remembering the quality and subsampling it was last set to.
pub struct JpegEncoder {
    compressor: Compressor,
    quality: u8,
    subsamp: Option<Subsamp>,
    subsampling: JpegSubsampling,
    format: WireFormat,
}

fn jpeg_err(e: turbojpeg::Error) -> EncodeError {
    EncodeError::Jpeg(e)
}

/// How much of a stripe's fine detail is colour rather than brightness, in percent: the
/// summed absolute second differences (horizontal and vertical) of chroma (approximate BT.601
/// Cb and Cr) over those of luma. Coloured text and UI edges score high (35–270 on the
/// `desktop` scene); grey text, photo-like texture and colourful noise whose detail is mostly
/// brightness score low (0–10), as do smooth colour gradients (4:2:0 keeps those). Every other
/// row is sampled, about 0.1 ms for a 1920x64 stripe.
pub fn chroma_detail(pixels: FrameRef<'_>) -> u32 {
    // Cb + Cr scaled by 256 from B, G, R (BT.601: Cb = -0.169 R - 0.331 G + 0.5 B,
    // Cr = 0.5 R - 0.419 G - 0.081 B); their sum keeps both kinds of colour edge.
    let chroma = |row: &[u8], x: usize| -> (i32, i32) {
        let p = &row[x * 4..x * 4 + 3];
        let (b, g, r) = (p[0] as i32, p[1] as i32, p[2] as i32);
        (128 * b - 85 * g - 43 * r, 128 * r - 107 * g - 21 * b)
    };
    let luma = |row: &[u8], x: usize| -> i32 {
        let p = &row[x * 4..x * 4 + 3];
        29 * p[0] as i32 + 150 * p[1] as i32 + 77 * p[2] as i32
    };
    let second = |a: (i32, i32), m: (i32, i32), c: (i32, i32)| -> u64 {
        ((2 * m.0 - a.0 - c.0).unsigned_abs() + (2 * m.1 - a.1 - c.1).unsigned_abs()) as u64
    };
    let (w, h) = (pixels.width as usize, pixels.height);
    if w < 3 || h < 3 {
        return 0;
    }
    let mut sum: u64 = 0;
    let mut luma_sum: u64 = 0;
    let mut y = 1;
    while y + 1 < h {
        let (up, row, down) = (pixels.row(y - 1), pixels.row(y), pixels.row(y + 1));
        let mut left = chroma(row, 0);
        let mut mid = chroma(row, 1);
        for x in 1..w - 1 {
            let right = chroma(row, x + 1);
            sum += second(left, mid, right);
            sum += second(chroma(up, x), mid, chroma(down, x));
            let l = luma(row, x);
            luma_sum += (2 * l - luma(row, x - 1) - luma(row, x + 1)).unsigned_abs() as u64;
            luma_sum += (2 * l - luma(up, x) - luma(down, x)).unsigned_abs() as u64;
            (left, mid) = (mid, right);
        }
        y += 2;
    }
    (sum * 100 / (luma_sum + 1)) as u32
}

impl JpegEncoder {
    /// A compressor writing headers in `format`, choosing chroma as `subsampling` says.
    pub fn new(format: WireFormat, subsampling: JpegSubsampling) -> Result<Self, EncodeError> {
        let compressor = Compressor::new().map_err(jpeg_err)?;
        Ok(Self {
            compressor,
            quality: 0,
            subsamp: None,
            subsampling,
            format,
        })
    }
}

impl StripeEncoder for JpegEncoder {
    fn encode(
        &mut self,
        pixels: FrameRef<'_>,
        request: &EncodeRequest,
        place: StripePlace,
        out: &mut Vec<u8>,
    ) -> Result<Option<EncodeOutcome>, EncodeError> {
        if self.quality != request.jpeg_quality {
            self.compressor
                .set_quality(request.jpeg_quality as i32)
                .map_err(jpeg_err)?;
            self.quality = request.jpeg_quality;
        }
        let subsamp = match self.subsampling {
            JpegSubsampling::S420 => Subsamp::Sub2x2,
            JpegSubsampling::S444 => Subsamp::None,
            JpegSubsampling::Auto
                if request.jpeg_quality >= FULL_CHROMA_MIN_QUALITY
                    || chroma_detail(pixels) >= AUTO_FULL_CHROMA_DETAIL =>
            {
                Subsamp::None
            }
            JpegSubsampling::Auto => Subsamp::Sub2x2,
        };
        if self.subsamp != Some(subsamp) {
            self.compressor.set_subsamp(subsamp).map_err(jpeg_err)?;
            self.subsamp = Some(subsamp);
        }
        let image = Image {
            pixels: pixels.data,
            width: pixels.width as usize,
            pitch: pixels.stride,
            height: pixels.height as usize,
            format: PixelFormat::BGRX,
        };
        let jpeg = self.compressor.compress_to_owned(image).map_err(jpeg_err)?;
        // One allocation for header and payload.
        out.reserve_exact(wire::jpeg_header_len(self.format) + jpeg.len());
        wire::write_jpeg_header(out, self.format, place.frame_id as u32, place.y);
        let header_len = out.len();
        out.extend_from_slice(&jpeg);
        Ok(Some(EncodeOutcome {
            kind: StripeKind::Jpeg,
            header_len,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::OwnedFrame;

    #[test]
    fn chroma_detail_sees_colour_edges_not_grey_ones() {
        let mut grey = OwnedFrame::new(64, 16);
        let mut colour = OwnedFrame::new(64, 16);
        for (i, (g, c)) in grey
            .data
            .chunks_exact_mut(4)
            .zip(colour.data.chunks_exact_mut(4))
            .enumerate()
        {
            // Alternating columns: black/white, and red/blue.
            let odd = i % 2 == 1;
            g.copy_from_slice(if odd { &[255; 4] } else { &[0, 0, 0, 255] });
            c.copy_from_slice(if odd {
                &[0, 0, 255, 255]
            } else {
                &[255, 0, 0, 255]
            });
        }
        assert_eq!(chroma_detail(grey.view()), 0);
        assert!(chroma_detail(colour.view()) >= AUTO_FULL_CHROMA_DETAIL);
        assert_eq!(chroma_detail(OwnedFrame::new(1, 1).view()), 0);
        // A smooth colour ramp is kept by 4:2:0: no detail.
        let mut ramp = OwnedFrame::new(64, 16);
        for (i, p) in ramp.data.chunks_exact_mut(4).enumerate() {
            let x = (i % 64) as u8 * 4;
            p.copy_from_slice(&[x, 0, 255 - x, 255]);
        }
        assert_eq!(chroma_detail(ramp.view()), 0);
    }
}
