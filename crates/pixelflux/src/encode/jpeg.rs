//! JPEG stripes through libjpeg-turbo, fed BGRX directly (no conversion pass of ours).
//!
//! Chroma follows [`JpegSubsampling`]: 4:2:0, 4:4:4, or (the default) `Auto`: 4:4:4 from
//! quality [`FULL_CHROMA_MIN_QUALITY`] up, and below it per stripe, 4:4:4 where the stripe's fine
//! detail is largely colour (coloured text, UI) and 4:2:0 where it is mostly brightness (grey
//! text, photo-like texture), measured again every [`CHROMA_CHOICE_FRAMES`] frames and for
//! every paint-over and refresh. `Auto` encodes a stripe with no colour at all (every pixel
//! grey: blue = green = red) as a one-component (grayscale) JPEG at the quality its 4:2:0 or
//! 4:4:4 would have had: it decodes to the same pixels, for fewer bytes and less CPU time.
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

/// Quality steps `Auto` adds where it chooses 4:2:0, so that a stripe gets at least the PSNR
/// 4:4:4 would at the asked quality, for about its bytes or fewer. Measured on 1080p scenes in
/// 64-row stripes, 4:2:0 at q + 2 against 4:4:4 at q, for q 75, 80 and 85: grey text on white
/// +0.5 to +0.6 dB for 1-2% fewer bytes, a scrolling page +0.6 to +0.9 dB for 1% fewer to 1%
/// more, photo-like texture -0.1 to +0.2 dB for 7-8% fewer (docs/PERFORMANCE.md, "JPEG:
/// chroma measured every 8 frames, 4:2:0 two steps up").
pub const AUTO_420_QUALITY_STEP: u8 = 2;

/// Frames for which `Auto` keeps a stripe's measured chroma choice before measuring again
/// (133 ms at 60 fps). A stripe that changes frame after frame (a scrolling terminal, a video)
/// keeps its kind of content, and measuring it cost a third of a JPEG frame's CPU time
/// (docs/PERFORMANCE.md, "JPEG: the cost of choosing chroma"). A paint-over or a refresh
/// always measures: those are the pictures that stay on screen.
pub const CHROMA_CHOICE_FRAMES: u64 = 8;

/// Frames for which `Auto` skips looking for an all-grey stripe after it last found colour in
/// it (the check stops at the first coloured pixel, but a stripe coloured only near its
/// bottom is read almost whole). Only the finding of colour is kept: a grey stripe is checked
/// every frame, since a grayscale JPEG cannot carry a pixel of colour.
pub const GREY_CHECK_SKIP_FRAMES: u64 = 8;

/// One libjpeg-turbo compressor, remembering the quality and subsampling it was last set to.
pub struct JpegEncoder {
    compressor: Compressor,
    quality: u8,
    subsamp: Option<Subsamp>,
    subsampling: JpegSubsampling,
    format: WireFormat,
    /// Row buffers for [`chroma_detail`], reused from stripe to stripe.
    detail: DetailRows,
    /// `Auto`'s last measured choice below [`FULL_CHROMA_MIN_QUALITY`]: the frame it was
    /// measured on and whether the stripe's detail was colour (4:4:4).
    measured: Option<(u64, bool)>,
    /// The frame on which `Auto` last found colour in the stripe ([`GREY_CHECK_SKIP_FRAMES`]).
    colour_seen: Option<u64>,
}

/// Whether every pixel of `pixels` (BGRX) is grey: blue = green = red. libjpeg-turbo's luma
/// of such a pixel is exactly its level (its BT.601 weights, 19595 + 38470 + 7471, sum to 1
/// in 16-bit fixed point), so a grayscale JPEG of the stripe decodes to the pixels a
/// three-component one does at the same quality and luma sampling (chroma at 128 is coded
/// without loss). Stops at the first row with colour.
pub fn is_grey(pixels: FrameRef<'_>) -> bool {
    const GREY_PAIR: u64 = 0x0000_ffff_0000_ffff;
    (0..pixels.height).all(|y| {
        let row = pixels.row(y);
        // Two pixels a 64-bit word, branch-free over the row (the compiler vectorises it):
        // blue ^ green and green ^ red are 0 exactly for grey.
        let pairs = row.chunks_exact(8);
        let last = pairs.remainder();
        let mut colour = pairs.fold(0u64, |acc, p| {
            let mut word = [0u8; 8];
            word.copy_from_slice(p);
            let v = u64::from_le_bytes(word);
            acc | (v ^ (v >> 8)) & GREY_PAIR
        });
        if let [b, g, r, _] = *last {
            colour |= u64::from((b ^ g) | (g ^ r));
        }
        colour == 0
    })
}

/// Whether `frame_id` is one of the `frames` frames from `at` on (not before it: frame numbers
/// start again with a new capture).
fn within(at: u64, frames: u64, frame_id: u64) -> bool {
    (at..at.saturating_add(frames)).contains(&frame_id)
}

fn jpeg_err(e: turbojpeg::Error) -> EncodeError {
    EncodeError::Jpeg(e)
}

/// How much of a stripe's fine detail is colour rather than brightness, in percent: the
/// summed absolute second differences (horizontal and vertical) of chroma (approximate BT.601
/// Cb and Cr) over those of luma. Coloured text and UI edges score high (35–270 on the
/// `desktop` scene); grey text, photo-like texture and colourful noise whose detail is mostly
/// brightness score low (0–10), as do smooth colour gradients (4:2:0 keeps those). Every other
/// row is sampled.
///
/// Cost, measured with `perf record` on `pixelflux-bench --source x11 --app terminal --codec
/// jpeg` (1080p, 17 stripes a frame): converting pixel by pixel in the inner loop (each pixel
/// five times) was 50% of the capture's CPU time. Each row is now converted once into
/// [`DetailRow`], in 16-bit lanes (twice as many per SIMD register as 32-bit ones), and the
/// differences run over those arrays in forms the compiler vectorises. (Sampling one row in
/// four instead was measured and not kept: the `desktop` scene's top stripe, coloured UI,
/// fell from 36 to 12 and would have lost its 4:4:4.) An encoder measures a stripe at most
/// once every [`CHROMA_CHOICE_FRAMES`]. Figures in docs/PERFORMANCE.md ("JPEG: the cost of
/// choosing chroma" and "JPEG: chroma measured every 8 frames").
pub fn chroma_detail(pixels: FrameRef<'_>) -> u32 {
    chroma_detail_in(pixels, &mut DetailRows::default())
}

/// [`chroma_detail`] with the encoder's row buffers (no allocation once they have grown).
fn chroma_detail_in(pixels: FrameRef<'_>, rows: &mut DetailRows) -> u32 {
    let (sum, luma_sum) = detail_sums(pixels, rows);
    (sum * 100 / (luma_sum + 1)) as u32
}

/// Three rows' worth of [`DetailRow`], kept by the encoder between stripes.
#[derive(Default)]
struct DetailRows([DetailRow; 3]);

/// [`chroma_detail`]'s two sums: chroma's second differences, luma's.
fn detail_sums(pixels: FrameRef<'_>, rows: &mut DetailRows) -> (u64, u64) {
    let (w, h) = (pixels.width as usize, pixels.height);
    if w < 3 || h < 3 {
        return (0, 0);
    }
    let [up, mid, down] = &mut rows.0;
    let (mut sum, mut luma_sum) = (0u64, 0u64);
    up.convert(pixels.row(0), w);
    let mut y = 1;
    while y + 1 < h {
        mid.convert(pixels.row(y), w);
        down.convert(pixels.row(y + 1), w);
        sum += across(&mid.cb) + across(&mid.cr);
        sum += between(&up.cb, &mid.cb, &down.cb) + between(&up.cr, &mid.cr, &down.cr);
        luma_sum += across(&mid.luma) + between(&up.luma, &mid.luma, &down.luma);
        // The next sample's upper neighbour is this one's lower.
        std::mem::swap(up, down);
        y += 2;
    }
    (sum, luma_sum)
}

/// One row of a stripe as [`chroma_detail`] weighs it: Cb, Cr and luma per pixel, from BGRX
/// (BT.601: Cb = 0.5 B - 0.169 R - 0.331 G, Cr = 0.5 R - 0.419 G - 0.081 B, luma = 0.299 R +
/// 0.587 G + 0.114 B), all scaled by 64 with integer weights that keep each chroma's weights
/// summing to 0 (grey has no chroma). Chroma lies in ±8160 and luma in 0..=16320, so a second
/// difference (`2 m - a - c`) stays within ±32640 and fits `i16`.
#[derive(Default)]
struct DetailRow {
    cb: Vec<i16>,
    cr: Vec<i16>,
    luma: Vec<i16>,
}

impl DetailRow {
    /// Fills the row from the first `w` BGRX pixels of `row`.
    fn convert(&mut self, row: &[u8], w: usize) {
        let w = w.min(row.len() / 4);
        for v in [&mut self.cb, &mut self.cr, &mut self.luma] {
            v.resize(w, 0);
        }
        // Zipped slices of one length, no pushes: the compiler vectorises this.
        let pixels = row[..w * 4].chunks_exact(4);
        let out = self
            .cb
            .iter_mut()
            .zip(self.cr.iter_mut())
            .zip(self.luma.iter_mut());
        for (((cb, cr), luma), p) in out.zip(pixels) {
            let (b, g, r) = (i16::from(p[0]), i16::from(p[1]), i16::from(p[2]));
            *cb = 32 * b - 21 * g - 11 * r;
            *cr = 32 * r - 27 * g - 5 * b;
            *luma = 7 * b + 38 * g + 19 * r;
        }
    }
}

/// Summed absolute horizontal second differences of `v`, at its inner samples.
fn across(v: &[i16]) -> u64 {
    let n = v.len();
    if n < 3 {
        return 0;
    }
    sum_second(&v[..n - 2], &v[1..n - 1], &v[2..])
}

/// Summed absolute vertical second differences at `mid`'s inner samples.
fn between(up: &[i16], mid: &[i16], down: &[i16]) -> u64 {
    fn inner(v: &[i16]) -> &[i16] {
        v.get(1..v.len().saturating_sub(1)).unwrap_or_default()
    }
    sum_second(inner(up), inner(mid), inner(down))
}

/// Sum of `|2 m - a - c|` over the zipped slices (as long as the shortest), computed in `i16`
/// ([`DetailRow`]'s range keeps it there; wrapping operations only spare the overflow checks)
/// and summed in blocks in `u32` (each term is below 2^15, so 4096 of them fit), which
/// vectorises.
fn sum_second(a: &[i16], m: &[i16], c: &[i16]) -> u64 {
    const BLOCK: usize = 4096;
    let n = a.len().min(m.len()).min(c.len());
    let mut total = 0u64;
    for start in (0..n).step_by(BLOCK) {
        let end = (start + BLOCK).min(n);
        let block: u32 = a[start..end]
            .iter()
            .zip(&m[start..end])
            .zip(&c[start..end])
            .map(|((&a, &m), &c)| {
                u32::from(
                    m.wrapping_mul(2)
                        .wrapping_sub(a)
                        .wrapping_sub(c)
                        .unsigned_abs(),
                )
            })
            .sum();
        total += u64::from(block);
    }
    total
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
            detail: DetailRows::default(),
            measured: None,
            colour_seen: None,
        })
    }

    /// `Auto`: whether the stripe on `frame_id` has no colour ([`is_grey`]).
    /// Not looked at for [`GREY_CHECK_SKIP_FRAMES`] after colour was found, except on a
    /// paint-over or a refresh (`fresh`) or when frame numbers start again.
    fn is_grey(&mut self, pixels: FrameRef<'_>, frame_id: u64, fresh: bool) -> bool {
        if !fresh
            && self
                .colour_seen
                .is_some_and(|at| within(at, GREY_CHECK_SKIP_FRAMES, frame_id))
        {
            return false;
        }
        let grey = is_grey(pixels);
        self.colour_seen = if grey { None } else { Some(frame_id) };
        grey
    }

    /// `Auto`'s choice below [`FULL_CHROMA_MIN_QUALITY`] for this stripe on `frame_id`:
    /// whether its detail is colour, measured again when the last measure is
    /// [`CHROMA_CHOICE_FRAMES`] old or more, from a later frame than this one (frame numbers
    /// start again), or when `fresh` asks.
    fn detail_is_colour(&mut self, pixels: FrameRef<'_>, frame_id: u64, fresh: bool) -> bool {
        match self.measured {
            Some((at, colour)) if !fresh && within(at, CHROMA_CHOICE_FRAMES, frame_id) => colour,
            _ => {
                let colour = chroma_detail_in(pixels, &mut self.detail) >= AUTO_FULL_CHROMA_DETAIL;
                self.measured = Some((frame_id, colour));
                colour
            }
        }
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
        let asked = request.jpeg_quality;
        let fresh = request.paint_over || request.keyframe;
        // A copy to match on: `Auto` looks at the pixels through `&mut self`.
        let subsampling = self.subsampling;
        let (subsamp, quality) = match subsampling {
            JpegSubsampling::S420 => (Subsamp::Sub2x2, asked),
            JpegSubsampling::S444 => (Subsamp::None, asked),
            JpegSubsampling::Auto => {
                // A grey stripe has no chroma detail: it gets the quality 4:2:0 would (4:4:4's
                // from FULL_CHROMA_MIN_QUALITY up), so its luma is the same.
                let grey = self.is_grey(pixels, place.frame_id, fresh);
                let full = asked >= FULL_CHROMA_MIN_QUALITY
                    || (!grey && self.detail_is_colour(pixels, place.frame_id, fresh));
                let quality = if full {
                    asked
                } else {
                    asked.saturating_add(AUTO_420_QUALITY_STEP)
                };
                let subsamp = match (grey, full) {
                    (true, _) => Subsamp::Gray,
                    (false, true) => Subsamp::None,
                    (false, false) => Subsamp::Sub2x2,
                };
                (subsamp, quality)
            }
        };
        if self.quality != quality {
            self.compressor
                .set_quality(i32::from(quality))
                .map_err(jpeg_err)?;
            self.quality = quality;
        }
        if self.subsamp != Some(subsamp) {
            self.compressor.set_subsamp(subsamp).map_err(jpeg_err)?;
            self.subsamp = Some(subsamp);
        }
        // For a grayscale JPEG libjpeg-turbo computes only luma from the BGRX.
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

    /// [`chroma_detail`]'s sums as defined, pixel by pixel (its first, slow form).
    fn detail_sums_by_pixel(pixels: FrameRef<'_>) -> (u64, u64) {
        let chroma = |row: &[u8], x: usize| -> (i32, i32) {
            let p = &row[x * 4..x * 4 + 3];
            let (b, g, r) = (p[0] as i32, p[1] as i32, p[2] as i32);
            (32 * b - 21 * g - 11 * r, 32 * r - 27 * g - 5 * b)
        };
        let luma = |row: &[u8], x: usize| -> i32 {
            let p = &row[x * 4..x * 4 + 3];
            7 * p[0] as i32 + 38 * p[1] as i32 + 19 * p[2] as i32
        };
        let second = |a: (i32, i32), m: (i32, i32), c: (i32, i32)| -> u64 {
            ((2 * m.0 - a.0 - c.0).unsigned_abs() + (2 * m.1 - a.1 - c.1).unsigned_abs()) as u64
        };
        let (w, h) = (pixels.width as usize, pixels.height);
        if w < 3 || h < 3 {
            return (0, 0);
        }
        let (mut sum, mut luma_sum) = (0u64, 0u64);
        let mut y = 1;
        while y + 1 < h {
            let (up, row, down) = (pixels.row(y - 1), pixels.row(y), pixels.row(y + 1));
            for x in 1..w - 1 {
                let mid = chroma(row, x);
                sum += second(chroma(row, x - 1), mid, chroma(row, x + 1));
                sum += second(chroma(up, x), mid, chroma(down, x));
                let l = luma(row, x);
                luma_sum += (2 * l - luma(row, x - 1) - luma(row, x + 1)).unsigned_abs() as u64;
                luma_sum += (2 * l - luma(up, x) - luma(down, x)).unsigned_abs() as u64;
            }
            y += 2;
        }
        (sum, luma_sum)
    }

    /// The row-wise form gives the same sums as the definition, on odd and even sizes,
    /// padded rows (a stripe cut from a wider frame) and content from grey to colourful, and
    /// on saturated noise (every channel 0 or 255), where the second differences reach the
    /// ends of their `i16` range.
    #[test]
    fn chroma_detail_matches_its_definition() {
        let mut seed = 0x9e37_79b9u32;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        // One set of row buffers for every size, as the encoder keeps them between stripes.
        let mut rows = DetailRows::default();
        for (w, h) in [
            (3, 3),
            (4, 5),
            (17, 9),
            (64, 16),
            (1920, 64),
            (333, 64),
            (5, 2),
        ] {
            // 5: saturated noise.
            for colour in [0u32, 1, 4, 5] {
                let mut f = OwnedFrame::new(w + 7, h);
                for p in f.data.chunks_exact_mut(4) {
                    let v = next();
                    if colour == 5 {
                        let full = |bit: u32| if v >> bit & 1 == 1 { 255 } else { 0 };
                        p.copy_from_slice(&[full(3), full(11), full(19), 255]);
                        continue;
                    }
                    let grey = (v & 0xff) as u8;
                    let tint = |shift: u32| {
                        grey.wrapping_add(((v >> shift) & 0xff) as u8 / 4 * colour as u8)
                    };
                    p.copy_from_slice(&[tint(8), grey, tint(16), 255]);
                }
                // A stripe narrower than its rows, as a cut from a wider frame.
                let view = f.view();
                let cut = FrameRef { width: w, ..view };
                assert_eq!(
                    detail_sums(cut, &mut rows),
                    detail_sums_by_pixel(cut),
                    "{w}x{h}, colour {colour}"
                );
            }
        }
    }

    /// Two 64x16 pictures of alternating columns: black and a slightly blue white (detail that
    /// is brightness, with a little colour so that it is no grey stripe), red and blue
    /// (colour detail).
    fn grey_and_colour_columns() -> (OwnedFrame, OwnedFrame) {
        let mut grey = OwnedFrame::new(64, 16);
        let mut colour = OwnedFrame::new(64, 16);
        for (i, (g, c)) in grey
            .data
            .chunks_exact_mut(4)
            .zip(colour.data.chunks_exact_mut(4))
            .enumerate()
        {
            let odd = i % 2 == 1;
            g.copy_from_slice(if odd {
                &[255, 250, 250, 255]
            } else {
                &[0, 0, 0, 255]
            });
            c.copy_from_slice(if odd {
                &[0, 0, 255, 255]
            } else {
                &[255, 0, 0, 255]
            });
        }
        (grey, colour)
    }

    /// Grey text-like strokes at several levels on a lighter ground: every pixel grey.
    fn grey_strokes(w: u32, h: u32) -> OwnedFrame {
        let mut f = OwnedFrame::new(w, h);
        for (i, p) in f.data.chunks_exact_mut(4).enumerate() {
            let (x, y) = (i as u32 % w, i as u32 / w);
            let level = match (x / 3 + y / 5) % 7 {
                0 | 3 => 20 + (x % 40) as u8,
                5 => 128,
                _ => 236,
            };
            p.copy_from_slice(&[level, level, level, (x % 3) as u8 * 100]);
        }
        f
    }

    /// One stripe through a fresh encoder: the JPEG (without the wire header).
    fn encode_once(
        frame: FrameRef<'_>,
        subsampling: JpegSubsampling,
        quality: u8,
        frame_id: u64,
    ) -> Vec<u8> {
        let mut enc = JpegEncoder::new(WireFormat::Tagged, subsampling).expect("encoder");
        encode_with(&mut enc, frame, quality, frame_id, false)
    }

    fn encode_with(
        enc: &mut JpegEncoder,
        frame: FrameRef<'_>,
        quality: u8,
        frame_id: u64,
        paint_over: bool,
    ) -> Vec<u8> {
        let request = EncodeRequest {
            jpeg_quality: quality,
            paint_over,
            keyframe: false,
        };
        let mut out = Vec::new();
        let outcome = enc
            .encode(frame, &request, StripePlace { frame_id, y: 0 }, &mut out)
            .expect("encode")
            .expect("a stripe");
        out.split_off(outcome.header_len)
    }

    fn rgb(jpeg: &[u8]) -> Vec<u8> {
        turbojpeg::decompress(jpeg, PixelFormat::RGB)
            .expect("libjpeg-turbo decodes it")
            .pixels
    }

    #[test]
    fn is_grey_needs_every_pixel_grey_and_ignores_padding() {
        // Odd widths end in a pixel outside the two-pixel words.
        for w in [1, 2, 7, 64, 333] {
            let f = grey_strokes(w, 5);
            assert!(is_grey(f.view()), "{w}");
            for channel in 0..3 {
                for at in [0, (w as usize - 1) * 4, f.data.len() - 4] {
                    let mut tinted = f.clone();
                    let v = &mut tinted.data[at + channel];
                    *v = v.wrapping_add(1);
                    assert!(!is_grey(tinted.view()), "{w}, byte {channel} of {at}");
                }
            }
        }
        // Colour beyond a stripe's width (a cut from a wider frame) is not the stripe's.
        let mut wide = grey_strokes(9, 4);
        for p in wide.data.chunks_exact_mut(4).skip(8).step_by(9) {
            p.copy_from_slice(&[0, 0, 255, 255]);
        }
        let view = wide.view();
        assert!(!is_grey(view));
        assert!(is_grey(FrameRef { width: 8, ..view }));
    }

    /// `Auto` sends an all-grey stripe as a one-component JPEG that libjpeg-turbo decodes to
    /// exactly the pixels of the three-component JPEG it would have sent (4:2:0 two steps up
    /// below FULL_CHROMA_MIN_QUALITY, 4:4:4 from it), in fewer bytes; one coloured pixel
    /// keeps three components.
    #[test]
    fn auto_sends_grey_stripes_as_grayscale_with_the_same_pixels() {
        let grey = grey_strokes(1920, 64);
        for (asked, three, quality) in [
            (60, JpegSubsampling::S420, 60 + AUTO_420_QUALITY_STEP),
            (80, JpegSubsampling::S420, 80 + AUTO_420_QUALITY_STEP),
            (
                FULL_CHROMA_MIN_QUALITY,
                JpegSubsampling::S444,
                FULL_CHROMA_MIN_QUALITY,
            ),
            (100, JpegSubsampling::S444, 100),
        ] {
            let auto = encode_once(grey.view(), JpegSubsampling::Auto, asked, 1);
            let header = turbojpeg::read_header(&auto).expect("a JPEG");
            assert_eq!(header.subsamp, Subsamp::Gray, "q{asked}");
            assert_eq!((header.width, header.height), (1920, 64));
            let reference = encode_once(grey.view(), three, quality, 1);
            assert_eq!(rgb(&auto), rgb(&reference), "q{asked}");
            assert!(auto.len() < reference.len(), "q{asked}");
        }
        let mut dot = grey.clone();
        let last = dot.data.len() - 4;
        dot.data[last..].copy_from_slice(&[0, 0, 200, 255]);
        let auto = encode_once(dot.view(), JpegSubsampling::Auto, 80, 1);
        assert_ne!(
            turbojpeg::read_header(&auto).expect("a JPEG").subsamp,
            Subsamp::Gray
        );
        // The explicit settings always send three components.
        for three in [JpegSubsampling::S420, JpegSubsampling::S444] {
            let jpeg = encode_once(grey.view(), three, 80, 1);
            assert_ne!(
                turbojpeg::read_header(&jpeg).expect("a JPEG").subsamp,
                Subsamp::Gray
            );
        }
    }

    /// After colour is found in a stripe, `Auto` does not look for grey again for
    /// GREY_CHECK_SKIP_FRAMES frames, except for a paint-over (which stays on screen); a grey
    /// stripe is checked every frame.
    #[test]
    fn auto_skips_the_grey_check_only_after_finding_colour() {
        let grey = grey_strokes(64, 16);
        let (_, colour) = grey_and_colour_columns();
        let mut enc = JpegEncoder::new(WireFormat::Tagged, JpegSubsampling::Auto).expect("encoder");
        let mut subsamp = |frame: &OwnedFrame, frame_id: u64, paint_over: bool| {
            let jpeg = encode_with(&mut enc, frame.view(), 80, frame_id, paint_over);
            turbojpeg::read_header(&jpeg).expect("a JPEG").subsamp
        };
        assert_eq!(subsamp(&grey, 1, false), Subsamp::Gray);
        // A grey stripe is checked again the next frame: colour is seen at once.
        assert_eq!(subsamp(&colour, 2, false), Subsamp::None);
        let last = 2 + GREY_CHECK_SKIP_FRAMES - 1;
        assert_ne!(subsamp(&grey, 3, false), Subsamp::Gray);
        assert_ne!(subsamp(&grey, last, false), Subsamp::Gray);
        assert_eq!(subsamp(&grey, last, true), Subsamp::Gray);
        assert_eq!(subsamp(&colour, last, false), Subsamp::None);
        assert_eq!(
            subsamp(&grey, last + GREY_CHECK_SKIP_FRAMES, false),
            Subsamp::Gray
        );
    }

    /// `Auto` keeps a stripe's measured choice for [`CHROMA_CHOICE_FRAMES`] frames, and
    /// measures again after them, on a paint-over, on a refresh and when frame numbers start
    /// again. The choice is read from the JPEG itself (libjpeg-turbo's header reader).
    #[test]
    fn auto_measures_chroma_again_after_its_frames_and_for_lasting_pictures() {
        let (grey, colour) = grey_and_colour_columns();
        let mut enc = JpegEncoder::new(WireFormat::Tagged, JpegSubsampling::Auto).expect("encoder");
        // (picture, frame, paint-over, refresh, quality) -> the JPEG's subsampling.
        let mut subsamp = |frame: &OwnedFrame, frame_id: u64, paint_over, keyframe, quality| {
            let request = EncodeRequest {
                jpeg_quality: quality,
                paint_over,
                keyframe,
            };
            let mut out = Vec::new();
            let outcome = enc
                .encode(
                    frame.view(),
                    &request,
                    StripePlace { frame_id, y: 0 },
                    &mut out,
                )
                .expect("encode")
                .expect("a stripe");
            turbojpeg::read_header(&out[outcome.header_len..])
                .expect("a JPEG")
                .subsamp
        };
        assert_eq!(subsamp(&grey, 10, false, false, 80), Subsamp::Sub2x2);
        // Within the frames the measure holds, coloured content keeps the grey choice...
        let last = 10 + CHROMA_CHOICE_FRAMES - 1;
        assert_eq!(subsamp(&colour, 11, false, false, 80), Subsamp::Sub2x2);
        assert_eq!(subsamp(&colour, last, false, false, 80), Subsamp::Sub2x2);
        // ...except for a paint-over or a refresh, which are measured.
        assert_eq!(subsamp(&colour, last, true, false, 80), Subsamp::None);
        assert_eq!(subsamp(&grey, last, false, true, 80), Subsamp::Sub2x2);
        // After them, it is measured again.
        let after = last + CHROMA_CHOICE_FRAMES;
        assert_eq!(subsamp(&colour, after, false, false, 80), Subsamp::None);
        assert_eq!(subsamp(&grey, after + 1, false, false, 80), Subsamp::None);
        // Frame numbers that start again (a new capture on this encoder) measure too.
        assert_eq!(subsamp(&grey, 0, false, false, 80), Subsamp::Sub2x2);
        // From FULL_CHROMA_MIN_QUALITY up, 4:4:4 whatever was measured.
        let q = FULL_CHROMA_MIN_QUALITY;
        assert_eq!(subsamp(&grey, 1, false, false, q), Subsamp::None);
    }

    #[test]
    fn chroma_detail_sees_colour_edges_not_grey_ones() {
        let (tinted, colour) = grey_and_colour_columns();
        assert_eq!(chroma_detail(grey_strokes(64, 16).view()), 0);
        assert!(chroma_detail(tinted.view()) < AUTO_FULL_CHROMA_DETAIL);
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
