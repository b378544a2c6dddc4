//! A PNG burnt into every frame: at a corner, in the middle, or bouncing around the region.
//!
//! The file is decoded once, at start, and kept premultiplied. It is drawn into every frame
//! before change detection, so a fixed watermark hashes the same every frame and costs no
//! re-encode, and a moving one dirties only the stripes it crosses.

use std::io::BufReader;
use std::ops::Range;
use std::path::Path;

use super::blend::PremultipliedImage;
use super::{changed_rows, Overlay, OverlayError, Placement};
use crate::frame::Frame;
use crate::settings::WatermarkLocation;

/// Pixels the animated watermark moves per frame, along each axis.
pub const ANIMATION_STEP: u32 = 2;

/// A decoded watermark and where it goes.
#[derive(Debug, Clone)]
pub struct Watermark {
    image: PremultipliedImage,
    location: WatermarkLocation,
}

impl Watermark {
    /// Loads the PNG at `path` for a `region_width` x `region_height` capture. Palette,
    /// grey and 16-bit images are converted; the image must fit inside the region.
    ///
    /// # Errors
    /// [`OverlayError::Watermark`] naming the file: missing or a directory, not a PNG, corrupt,
    /// or larger than the region.
    pub fn load(
        path: &Path,
        location: WatermarkLocation,
        region_width: u32,
        region_height: u32,
    ) -> Result<Self, OverlayError> {
        let image = decode_png(path, region_width, region_height)?;
        Ok(Self { image, location })
    }

    /// The decoded image.
    #[cfg(test)]
    pub(crate) fn image(&self) -> &PremultipliedImage {
        &self.image
    }

    /// Top-left corner of the watermark in the `frame_index`-th frame of a
    /// `frame_width` x `frame_height` region. `None` when there is nothing to draw.
    pub fn position(
        &self,
        frame_width: u32,
        frame_height: u32,
        frame_index: u64,
    ) -> Option<(u32, u32)> {
        placement(
            self.location,
            (frame_width, frame_height),
            (self.image.width(), self.image.height()),
            frame_index,
        )
    }
}

impl Overlay for Watermark {
    fn prepare(
        &mut self,
        width: u32,
        height: u32,
        frame_index: u64,
    ) -> Result<Option<Vec<Range<u32>>>, OverlayError> {
        if frame_index == 0 {
            return Ok(None);
        }
        let place = |i| {
            self.position(width, height, i).map(|(x, y)| Placement {
                x: x as i64,
                y: y as i64,
                height: self.image.height(),
                picture: 0,
            })
        };
        Ok(Some(changed_rows(
            place(frame_index - 1),
            place(frame_index),
            height,
        )))
    }

    fn apply(&mut self, frame: &mut Frame<'_>, frame_index: u64) -> Result<(), OverlayError> {
        if let Some((x, y)) = self.position(frame.width, frame.height, frame_index) {
            self.image.draw(frame, x as i64, y as i64);
        }
        Ok(())
    }
}

/// Where an `image`-sized watermark goes in a `region`-sized frame. The animated one is a
/// pure function of the frame index (a triangle wave on each axis), so it needs no state and
/// every frame's position can be predicted.
pub fn placement(
    location: WatermarkLocation,
    region: (u32, u32),
    image: (u32, u32),
    frame_index: u64,
) -> Option<(u32, u32)> {
    // Free room on each axis; an image that does not fit is clipped at the top-left.
    let room_x = region.0.saturating_sub(image.0);
    let room_y = region.1.saturating_sub(image.1);
    Some(match location {
        WatermarkLocation::None => return None,
        WatermarkLocation::TopLeft => (0, 0),
        WatermarkLocation::TopRight => (room_x, 0),
        WatermarkLocation::BottomLeft => (0, room_y),
        WatermarkLocation::BottomRight => (room_x, room_y),
        WatermarkLocation::Middle => (room_x / 2, room_y / 2),
        WatermarkLocation::Animated => (
            bounce(frame_index, room_x, ANIMATION_STEP),
            bounce(frame_index, room_y, ANIMATION_STEP),
        ),
    })
}

/// Position after `t` steps of `step` pixels along `0..=room`, reversing at both ends.
fn bounce(t: u64, room: u32, step: u32) -> u32 {
    if room == 0 {
        return 0;
    }
    let period = 2 * room as u64;
    let p = (t % period) * step as u64 % period;
    (if p <= room as u64 { p } else { period - p }) as u32
}

fn decode_png(
    path: &Path,
    region_width: u32,
    region_height: u32,
) -> Result<PremultipliedImage, OverlayError> {
    let fail = |reason: String| OverlayError::Watermark {
        path: path.display().to_string(),
        reason,
    };
    if path.is_dir() {
        return Err(fail("is a directory, not a PNG file".into()));
    }
    let file = std::fs::File::open(path).map_err(|e| fail(format!("cannot open: {e}")))?;
    let mut decoder = png::Decoder::new(BufReader::new(file));
    // Palette and low-bit-depth images become 8-bit, tRNS becomes alpha, 16-bit becomes 8-bit.
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder
        .read_info()
        .map_err(|e| fail(format!("not a readable PNG: {e}")))?;
    let (width, height) = reader.info().size();
    // Checked before decoding, so a huge image is refused without allocating for it.
    if width > region_width || height > region_height {
        return Err(fail(format!(
            "the {width}x{height} image does not fit in the {region_width}x{region_height} \
             capture region"
        )));
    }
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader
        .next_frame(&mut buf)
        .map_err(|e| fail(format!("corrupt PNG: {e}")))?;
    let rgba = to_rgba8(&buf, &info).ok_or_else(|| {
        fail(format!(
            "unsupported PNG layout ({:?}, {:?})",
            info.color_type, info.bit_depth
        ))
    })?;
    PremultipliedImage::from_straight_rgba(info.width, info.height, &rgba)
        .ok_or_else(|| fail("decoded size does not match the header".into()))
}

/// Converts decoded 8-bit rows of any colour type to packed straight-alpha RGBA.
fn to_rgba8(buf: &[u8], info: &png::OutputInfo) -> Option<Vec<u8>> {
    use png::ColorType;
    if info.bit_depth != png::BitDepth::Eight {
        return None;
    }
    let channels = match info.color_type {
        ColorType::Grayscale => 1,
        ColorType::GrayscaleAlpha => 2,
        ColorType::Rgb => 3,
        ColorType::Rgba => 4,
        ColorType::Indexed => return None,
    };
    let (w, h) = (info.width as usize, info.height as usize);
    let row_len = w * channels;
    if info.line_size < row_len || buf.len() < info.line_size * h {
        return None;
    }
    let mut out = Vec::with_capacity(w * h * 4);
    for row in buf.chunks_exact(info.line_size).take(h) {
        for p in row[..row_len].chunks_exact(channels) {
            out.extend_from_slice(&match *p {
                [v] => [v, v, v, 255],
                [v, a] => [v, v, v, a],
                [r, g, b] => [r, g, b, 255],
                [r, g, b, a] => [r, g, b, a],
                _ => return None,
            });
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::OwnedFrame;

    fn write_png(
        path: &Path,
        w: u32,
        h: u32,
        color: png::ColorType,
        depth: png::BitDepth,
        data: &[u8],
        setup: impl FnOnce(&mut png::Encoder<'_, std::io::BufWriter<std::fs::File>>),
    ) {
        let file = std::fs::File::create(path).expect("create");
        let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w, h);
        enc.set_color(color);
        enc.set_depth(depth);
        setup(&mut enc);
        let mut writer = enc.write_header().expect("header");
        writer.write_image_data(data).expect("data");
    }

    fn temp_dir() -> tempfile::TempDir {
        tempfile::tempdir().expect("temp dir")
    }

    #[test]
    fn bounce_reverses_at_both_edges_and_stays_inside() {
        let xs: Vec<u32> = (0..12).map(|t| bounce(t, 8, 2)).collect();
        assert_eq!(xs, [0, 2, 4, 6, 8, 6, 4, 2, 0, 2, 4, 6]);
        // An odd room: never past the edge, steps of at most 2.
        let mut last = 0;
        for t in 0..1000 {
            let p = bounce(t, 7, 2);
            assert!(p <= 7);
            assert!(p.abs_diff(last) <= 2);
            last = p;
        }
        assert_eq!(bounce(12345, 0, 2), 0);
        // Far-off frame indices do not overflow.
        assert!(bounce(u64::MAX, 100, 2) <= 100);
    }

    #[test]
    fn fixed_placements_put_the_image_flush_with_their_edges() {
        let r = (100, 50);
        let i = (20, 10);
        let at = |loc| placement(loc, r, i, 7);
        assert_eq!(at(WatermarkLocation::None), None);
        assert_eq!(at(WatermarkLocation::TopLeft), Some((0, 0)));
        assert_eq!(at(WatermarkLocation::TopRight), Some((80, 0)));
        assert_eq!(at(WatermarkLocation::BottomLeft), Some((0, 40)));
        assert_eq!(at(WatermarkLocation::BottomRight), Some((80, 40)));
        assert_eq!(at(WatermarkLocation::Middle), Some((40, 20)));
        assert_eq!(at(WatermarkLocation::Animated), Some((14, 14)));
    }

    #[test]
    fn every_png_colour_type_loads_as_the_same_pixels() {
        let dir = temp_dir();
        // 2x1: a mid grey and a red-ish pixel, written in several layouts.
        let cases: Vec<(&str, png::ColorType, png::BitDepth, Vec<u8>)> = vec![
            (
                "rgba8",
                png::ColorType::Rgba,
                png::BitDepth::Eight,
                vec![128, 128, 128, 255, 200, 10, 20, 100],
            ),
            (
                "rgba16",
                png::ColorType::Rgba,
                png::BitDepth::Sixteen,
                vec![
                    128, 0, 128, 0, 128, 0, 255, 255, 200, 0, 10, 0, 20, 0, 100, 0,
                ],
            ),
            (
                "rgb8",
                png::ColorType::Rgb,
                png::BitDepth::Eight,
                vec![128, 128, 128, 200, 10, 20],
            ),
        ];
        let expect_rgba = |name: &str| -> [[u8; 4]; 2] {
            match name {
                "rgb8" => [[128, 128, 128, 255], [200, 10, 20, 255]],
                _ => [[128, 128, 128, 255], [200, 10, 20, 100]],
            }
        };
        for (name, color, depth, data) in cases {
            let path = dir.path().join(format!("{name}.png"));
            write_png(&path, 2, 1, color, depth, &data, |_| {});
            let wm = Watermark::load(&path, WatermarkLocation::TopLeft, 4, 4).expect(name);
            let want = PremultipliedImage::from_straight_rgba(2, 1, &expect_rgba(name).concat())
                .expect("2x1");
            assert_eq!(wm.image(), &want, "{name}");
        }
        // Grey + alpha.
        let path = dir.path().join("ga.png");
        write_png(
            &path,
            1,
            1,
            png::ColorType::GrayscaleAlpha,
            png::BitDepth::Eight,
            &[90, 60],
            |_| {},
        );
        let wm = Watermark::load(&path, WatermarkLocation::TopLeft, 4, 4).expect("ga");
        let want = PremultipliedImage::from_straight_rgba(1, 1, &[90, 90, 90, 60]).expect("1x1");
        assert_eq!(wm.image(), &want);
        // 1-bit grey: 0 and 1 become 0 and 255.
        let path = dir.path().join("gray1.png");
        write_png(
            &path,
            2,
            1,
            png::ColorType::Grayscale,
            png::BitDepth::One,
            &[0b0100_0000],
            |_| {},
        );
        let wm = Watermark::load(&path, WatermarkLocation::TopLeft, 4, 4).expect("gray1");
        let want =
            PremultipliedImage::from_straight_rgba(2, 1, &[0, 0, 0, 255, 255, 255, 255, 255])
                .expect("2x1");
        assert_eq!(wm.image(), &want);
        // A palette with transparency (tRNS): index 0 opaque blue, index 1 see-through red.
        let path = dir.path().join("palette.png");
        write_png(
            &path,
            2,
            1,
            png::ColorType::Indexed,
            png::BitDepth::Eight,
            &[0, 1],
            |enc| {
                enc.set_palette(vec![0, 0, 255, 255, 0, 0]);
                enc.set_trns(vec![255, 64]);
            },
        );
        let wm = Watermark::load(&path, WatermarkLocation::TopLeft, 4, 4).expect("palette");
        let want = PremultipliedImage::from_straight_rgba(2, 1, &[0, 0, 255, 255, 255, 0, 0, 64])
            .expect("2x1");
        assert_eq!(wm.image(), &want);
    }

    /// A 5x5 Adam7-interlaced RGBA PNG (the png crate cannot write one), made with Python's
    /// zlib: pixel (x, y) = (50x, 50y, 20(x+y), 255 if x+y is odd else 128).
    const INTERLACED_5X5: [u8; 143] = [
        137, 80, 78, 71, 13, 10, 26, 10, 0, 0, 0, 13, 73, 72, 68, 82, 0, 0, 0, 5, 0, 0, 0, 5, 8, 6,
        0, 0, 1, 250, 104, 22, 115, 0, 0, 0, 86, 73, 68, 65, 84, 120, 156, 13, 138, 49, 21, 192,
        48, 16, 66, 17, 17, 17, 153, 153, 35, 34, 34, 16, 209, 241, 4, 116, 102, 174, 156, 115,
        117, 101, 225, 193, 231, 3, 64, 161, 113, 11, 232, 91, 221, 95, 65, 216, 137, 126, 130,
        180, 75, 10, 86, 6, 177, 198, 56, 3, 234, 140, 165, 148, 214, 184, 223, 1, 184, 134, 140,
        203, 60, 140, 207, 188, 240, 25, 250, 150, 28, 203, 79, 181, 223, 249, 1, 221, 192, 45,
        205, 161, 31, 164, 131, 0, 0, 0, 0, 73, 69, 78, 68, 174, 66, 96, 130,
    ];

    #[test]
    fn an_interlaced_png_loads_deinterlaced() {
        let dir = temp_dir();
        let path = dir.path().join("interlaced.png");
        std::fs::write(&path, INTERLACED_5X5).expect("write");
        let wm = Watermark::load(&path, WatermarkLocation::TopLeft, 5, 5).expect("load");
        let rgba: Vec<u8> = (0..5u8)
            .flat_map(|y| (0..5u8).map(move |x| (x, y)))
            .flat_map(|(x, y)| {
                let a = if (x + y) % 2 == 1 { 255 } else { 128 };
                [x * 50, y * 50, (x + y) * 20, a]
            })
            .collect();
        let want = PremultipliedImage::from_straight_rgba(5, 5, &rgba).expect("5x5");
        assert_eq!(wm.image(), &want);
    }

    #[test]
    fn applying_draws_at_the_placement() {
        let dir = temp_dir();
        let path = dir.path().join("red.png");
        write_png(
            &path,
            2,
            2,
            png::ColorType::Rgb,
            png::BitDepth::Eight,
            &[255, 0, 0].repeat(4),
            |_| {},
        );
        let mut wm = Watermark::load(&path, WatermarkLocation::BottomRight, 5, 4).expect("load");
        let mut f = OwnedFrame::new(5, 4);
        wm.apply(&mut f.as_frame(), 0).expect("apply");
        for y in 0..4 {
            for x in 0..5 {
                let red = x >= 3 && y >= 2;
                let want = if red { [0, 0, 255, 0] } else { [0; 4] };
                assert_eq!(f.view().pixel(x, y), want, "({x}, {y})");
            }
        }
    }

    #[test]
    fn an_image_exactly_the_region_size_fits_and_one_pixel_more_does_not() {
        let dir = temp_dir();
        let path = dir.path().join("wide.png");
        write_png(
            &path,
            8,
            3,
            png::ColorType::Rgb,
            png::BitDepth::Eight,
            &[0; 8 * 3 * 3],
            |_| {},
        );
        Watermark::load(&path, WatermarkLocation::Middle, 8, 3).expect("exact fit");
        for (w, h) in [(7, 3), (8, 2)] {
            let err = Watermark::load(&path, WatermarkLocation::Middle, w, h).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains("wide.png") && msg.contains("8x3"), "{msg}");
        }
    }
}
