//! Alpha blending of a small premultiplied image into a BGRX frame, in integer math.
//!
//! Images are converted to premultiplied form once (when loaded), so drawing is one multiply
//! per channel: `out = src + dst * (255 - alpha) / 255`, with no per-pixel branches.

use crate::frame::{Frame, BYTES_PER_PIXEL};

/// `round(x / 255)` for `x` in `0..=255 * 255`, without a division.
#[inline]
pub(crate) fn div255(x: u32) -> u32 {
    let x = x + 128;
    (x + (x >> 8)) >> 8
}

/// An image ready to draw, stored as two byte planes laid out like the frame's BGRX pixels:
/// the premultiplied colour (`[b, g, r, 0]`) and the factor that keeps the frame
/// (`[255 - a; 3]` and 255 for the unused byte). Drawing is then the same operation on every
/// byte, `dst = colour + dst * keep / 255`, which the compiler vectorises (16-bit lanes); it is
/// exact at both ends, so transparent pixels and the unused byte stay as they were.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PremultipliedImage {
    width: u32,
    height: u32,
    colour: Vec<u8>,
    keep: Vec<u8>,
}

impl PremultipliedImage {
    /// From premultiplied `[b, g, r, a]` pixels; colour channels above alpha are clamped to
    /// it (they are not valid premultiplied data and would overflow the blend).
    fn from_premultiplied_bgra(
        width: u32,
        height: u32,
        pixels: impl Iterator<Item = [u8; 4]>,
    ) -> Self {
        let len = width as usize * height as usize * BYTES_PER_PIXEL;
        let (mut colour, mut keep) = (Vec::with_capacity(len), Vec::with_capacity(len));
        for [b, g, r, a] in pixels {
            colour.extend_from_slice(&[b.min(a), g.min(a), r.min(a), 0]);
            let k = 255 - a;
            keep.extend_from_slice(&[k, k, k, 255]);
        }
        Self {
            width,
            height,
            colour,
            keep,
        }
    }

    /// From straight-alpha RGBA8 rows (as a PNG decodes), `width * height * 4` bytes.
    /// Returns `None` when the buffer does not have that length.
    pub fn from_straight_rgba(width: u32, height: u32, rgba: &[u8]) -> Option<Self> {
        if rgba.len() != width as usize * height as usize * BYTES_PER_PIXEL {
            return None;
        }
        let pixels = rgba.chunks_exact(4).map(|p| {
            let a = p[3] as u32;
            let pm = |c: u8| div255(c as u32 * a) as u8;
            [pm(p[2]), pm(p[1]), pm(p[0]), p[3]]
        });
        Some(Self::from_premultiplied_bgra(width, height, pixels))
    }

    /// From premultiplied ARGB words (alpha in the top byte), as XFixes hands out cursor
    /// images. Returns `None` when there are not `width * height` words.
    pub fn from_premultiplied_argb(width: u32, height: u32, argb: &[u32]) -> Option<Self> {
        if argb.len() != width as usize * height as usize {
            return None;
        }
        let pixels = argb.iter().map(|&p| {
            let [b, g, r, a] = p.to_le_bytes();
            [b, g, r, a]
        });
        Some(Self::from_premultiplied_bgra(width, height, pixels))
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in rows.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The premultiplied pixel at (x, y) as `[b, g, r, a]`.
    #[cfg(test)]
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 4] {
        let i = (y as usize * self.width as usize + x as usize) * BYTES_PER_PIXEL;
        [
            self.colour[i],
            self.colour[i + 1],
            self.colour[i + 2],
            255 - self.keep[i],
        ]
    }

    /// Blends the image into `frame` with its top-left corner at (x, y), which may lie
    /// partly or wholly outside the frame: only the part inside is drawn. Touches only the
    /// bytes under the image; the frame's fourth (unused) byte is left as it is.
    pub fn draw(&self, frame: &mut Frame<'_>, x: i64, y: i64) {
        let (fw, fh) = (frame.width as i64, frame.height as i64);
        let (iw, ih) = (self.width as i64, self.height as i64);
        // The visible part, in frame coordinates.
        let (x0, y0) = (x.max(0), y.max(0));
        let (x1, y1) = ((x + iw).min(fw), (y + ih).min(fh));
        if x0 >= x1 || y0 >= y1 {
            return;
        }
        let cols = (x1 - x0) as usize * BYTES_PER_PIXEL;
        let src_col = (x0 - x) as usize * BYTES_PER_PIXEL;
        let src_stride = self.width as usize * BYTES_PER_PIXEL;
        for fy in y0..y1 {
            let src_start = (fy - y) as usize * src_stride + src_col;
            let dst_start = fy as usize * frame.stride + x0 as usize * BYTES_PER_PIXEL;
            let src = src_start..src_start + cols;
            let (Some(colour), Some(keep), Some(dst)) = (
                self.colour.get(src.clone()),
                self.keep.get(src),
                frame.data.get_mut(dst_start..dst_start + cols),
            ) else {
                // Only a frame shorter than its stride promises; draw nothing more.
                return;
            };
            blend_row(dst, colour, keep);
        }
    }
}

/// `dst = colour + dst * keep / 255` on every byte of a row (all three the same length).
/// `colour <= 255 - keep` and `dst * keep / 255 <= keep`, so the sum fits a byte.
#[inline]
fn blend_row(dst: &mut [u8], colour: &[u8], keep: &[u8]) {
    for ((d, &c), &k) in dst.iter_mut().zip(colour).zip(keep) {
        *d = c + div255_u16(*d as u16 * k as u16) as u8;
    }
}

/// [`div255`] in 16-bit lanes (every intermediate fits: at most 255 * 255 + 128 + 254).
#[inline]
fn div255_u16(x: u16) -> u16 {
    let x = x + 128;
    (x + (x >> 8)) >> 8
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::OwnedFrame;

    /// The exact straight-alpha "over" of one channel, in floating point.
    fn over(src: u8, alpha: u8, dst: u8) -> f64 {
        let a = alpha as f64 / 255.0;
        src as f64 * a + dst as f64 * (1.0 - a)
    }

    #[test]
    fn div255_rounds_exactly_over_its_whole_range() {
        for x in 0..=255 * 255u32 {
            assert_eq!(div255(x), (x as f64 / 255.0).round() as u32, "x = {x}");
            assert_eq!(div255_u16(x as u16) as u32, div255(x), "x = {x}");
        }
    }

    #[test]
    fn straight_alpha_blend_is_within_one_of_the_exact_result() {
        let mut worst = 0.0f64;
        for alpha in 0..=255u8 {
            for src in (0..=255u8).step_by(3) {
                let img =
                    PremultipliedImage::from_straight_rgba(1, 1, &[src, 0, 0, alpha]).expect("1x1");
                for dst in (0..=255u8).step_by(5) {
                    let mut f = OwnedFrame::new(1, 1);
                    f.data.copy_from_slice(&[0, 0, dst, 0x5a]);
                    img.draw(&mut f.as_frame(), 0, 0);
                    let got = f.data[2] as f64;
                    worst = worst.max((got - over(src, alpha, dst)).abs());
                    // The unused byte is never written.
                    assert_eq!(f.data[3], 0x5a);
                }
            }
        }
        assert!(worst <= 1.0, "worst error {worst}");
    }

    #[test]
    fn opaque_pixels_are_copied_and_transparent_ones_leave_the_frame_alone() {
        let img = PremultipliedImage::from_straight_rgba(
            2,
            1,
            &[10, 20, 30, 255, 200, 200, 200, 0], // RGBA
        )
        .expect("2x1");
        let mut f = OwnedFrame::new(2, 1);
        f.data.copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        img.draw(&mut f.as_frame(), 0, 0);
        assert_eq!(f.data, [30, 20, 10, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn premultiplied_argb_is_read_as_xfixes_packs_it() {
        // Half-transparent red, premultiplied: A=0x80, R=0x80.
        let img = PremultipliedImage::from_premultiplied_argb(1, 1, &[0x8080_0000]).expect("1x1");
        assert_eq!(img.pixel(0, 0), [0, 0, 0x80, 0x80]);
        let mut f = OwnedFrame::new(1, 1);
        f.data.copy_from_slice(&[200, 100, 0, 0]);
        img.draw(&mut f.as_frame(), 0, 0);
        // 0x80 + d * 127 / 255
        assert_eq!(
            f.data[..3],
            [div255(200 * 127) as u8, div255(100 * 127) as u8, 0x80]
        );
        // Colour above alpha is clamped rather than overflowing.
        let bad = PremultipliedImage::from_premultiplied_argb(1, 1, &[0x10ff_ffff]).expect("1x1");
        assert_eq!(bad.pixel(0, 0), [0x10, 0x10, 0x10, 0x10]);
        let mut f = OwnedFrame::new(1, 1);
        f.data.copy_from_slice(&[255, 255, 255, 0]);
        bad.draw(&mut f.as_frame(), 0, 0);
        assert_eq!(f.data[..3], [255, 255, 255]);
    }

    #[test]
    fn wrong_buffer_sizes_are_refused() {
        assert!(PremultipliedImage::from_straight_rgba(2, 2, &[0; 15]).is_none());
        assert!(PremultipliedImage::from_premultiplied_argb(2, 2, &[0; 3]).is_none());
    }

    /// An opaque image whose every pixel is unique, to see exactly which part was drawn.
    fn numbered(w: u32, h: u32) -> PremultipliedImage {
        let rgba: Vec<u8> = (0..w * h)
            .flat_map(|i| [i as u8, (i >> 8) as u8 | 0x80, 7, 255])
            .collect();
        PremultipliedImage::from_straight_rgba(w, h, &rgba).expect("sized")
    }

    #[test]
    fn drawing_is_clipped_to_the_frame_on_every_side() {
        let img = numbered(5, 4);
        for (x, y) in [
            (-3, -2),
            (8, 7),
            (-4, 6),
            (7, -3),
            (2, 2),
            (-20, 0),
            (0, 50),
            (-5, -4),
            (10, 9),
        ] {
            let mut f = OwnedFrame::new(10, 9);
            img.draw(&mut f.as_frame(), x, y);
            for fy in 0..9i64 {
                for fx in 0..10i64 {
                    let (ix, iy) = (fx - x, fy - y);
                    let inside = (0..5).contains(&ix) && (0..4).contains(&iy);
                    let got = f.view().pixel(fx as u32, fy as u32);
                    let want = if inside {
                        let [b, g, r, _] = img.pixel(ix as u32, iy as u32);
                        [b, g, r, 0]
                    } else {
                        [0; 4]
                    };
                    assert_eq!(got, want, "image at ({x}, {y}), pixel ({fx}, {fy})");
                }
            }
        }
    }

    #[test]
    fn a_padded_stride_is_respected() {
        let img = numbered(3, 2);
        let mut data = vec![0xeeu8; 3 * 24];
        let mut f = Frame {
            data: &mut data,
            width: 4,
            height: 3,
            stride: 24,
        };
        img.draw(&mut f, 1, 1);
        // Padding bytes after each row's 16 pixel bytes stay untouched.
        for row in data.chunks_exact(24) {
            assert!(row[16..].iter().all(|&b| b == 0xee));
        }
        assert_eq!(data[24 + 4..24 + 7], img.pixel(0, 0)[..3]);
        assert_eq!(data[48 + 12..48 + 15], img.pixel(2, 1)[..3]);
    }
}
