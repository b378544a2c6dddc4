//! BGRX → planar YUV (I420 or I444) for the H.264 encoder, BT.709 limited range, with the
//! `yuv` crate (SIMD, ~0.3 ms for a 1080p frame here).

use std::ops::Range;

use yuv::{BufferStoreMut, YuvConversionMode, YuvPlanarImageMut, YuvRange, YuvStandardMatrix};

use super::x264::{Chroma, Planes};
use crate::frame::FrameRef;

/// Pictures converted whole without a copy of the input after one where every row changed
/// (see [`YuvPlanes::convert_changed`]).
pub const UNTRACKED_AFTER_FULL_CHANGE: u32 = 8;

/// The colour conversion failed (sizes that do not fit).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("colour conversion: {0}")]
pub struct ColorError(String);

/// Reusable Y, U and V planes for pictures of one size and chroma layout.
#[derive(Debug, Clone)]
pub struct YuvPlanes {
    y: Vec<u8>,
    u: Vec<u8>,
    v: Vec<u8>,
    /// Packed copy of the input, for inputs whose last row stops before a full stride.
    scratch: Vec<u8>,
    /// The last picture [`convert_changed`](Self::convert_changed) converted, packed BGRX
    /// rows; empty when the planes may not match it (none yet, or a plain `convert`).
    previous: Vec<u8>,
    /// Pictures left to convert whole without keeping a copy, after one where every row
    /// changed.
    untracked: u32,
    width: u32,
    height: u32,
    chroma: Chroma,
}

impl YuvPlanes {
    /// Planes for `width` x `height` pictures in `chroma`.
    pub fn new(width: u32, height: u32, chroma: Chroma) -> Self {
        let (cw, ch) = chroma.plane_size(width, height);
        let luma = width as usize * height as usize;
        let chroma_len = cw as usize * ch as usize;
        Self {
            y: vec![0; luma],
            u: vec![0; chroma_len],
            v: vec![0; chroma_len],
            scratch: Vec::new(),
            previous: Vec::new(),
            untracked: 0,
            width,
            height,
            chroma,
        }
    }

    /// Picture width.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Picture height.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Chroma layout.
    pub fn chroma(&self) -> Chroma {
        self.chroma
    }

    /// Bytes per chroma row.
    pub fn chroma_stride(&self) -> usize {
        self.chroma.plane_size(self.width, self.height).0 as usize
    }

    /// Converts a BGRX picture of this size (the X byte is ignored).
    pub fn convert(&mut self, pixels: FrameRef<'_>) -> Result<(), ColorError> {
        self.check_size(pixels)?;
        self.previous.clear();
        self.convert_band(pixels, 0..self.height)
    }

    /// Converts only the rows of a BGRX picture of this size that differ from the picture
    /// this was last called with, rounded out to macroblock rows (16), and returns those rows:
    /// the planes outside them are the last picture's, which had the same pixels there. The
    /// first picture (and the first after a plain [`convert`](Self::convert) or an error) is
    /// converted whole. Empty when no row changed. The planes come out exactly as a whole
    /// conversion would make them: every conversion starts on an even row, and a 4:2:0
    /// chroma sample depends on its own two luma rows only.
    ///
    /// When every row changed (motion, a scroll), the next [`UNTRACKED_AFTER_FULL_CHANGE`]
    /// pictures are converted whole without keeping a copy of the input to compare with, as
    /// copying every row costs more than converting it (docs/PERFORMANCE.md); the picture
    /// after them is kept again.
    pub fn convert_changed(&mut self, pixels: FrameRef<'_>) -> Result<Range<u32>, ColorError> {
        self.check_size(pixels)?;
        let (h, row_len) = (self.height, self.width as usize * 4);
        if self.untracked > 0 {
            self.untracked -= 1;
            self.previous.clear();
            self.convert_band(pixels, 0..h)?;
            return Ok(0..h);
        }
        let known = self.previous.len() == row_len * h as usize;
        let changed = if known {
            let previous = &self.previous;
            let same = |y: u32| pixels.row(y) == &previous[y as usize * row_len..][..row_len];
            match (0..h).find(|&y| !same(y)) {
                Some(first) => {
                    let last = (first..h).rev().find(|&y| !same(y)).unwrap_or(first);
                    first..last + 1
                }
                None => 0..0,
            }
        } else {
            0..h
        };
        let rows = changed.start / 16 * 16..changed.end.div_ceil(16).saturating_mul(16).min(h);
        if rows.is_empty() {
            return Ok(0..0);
        }
        if known && rows == (0..h) {
            self.untracked = UNTRACKED_AFTER_FULL_CHANGE;
            self.previous.clear();
            self.convert_band(pixels, 0..h)?;
            return Ok(0..h);
        }
        let converted = self.convert_band(pixels, rows.clone());
        if converted.is_err() {
            self.previous.clear();
        }
        converted?;
        if known {
            for y in rows.clone() {
                self.previous[y as usize * row_len..][..row_len].copy_from_slice(pixels.row(y));
            }
        } else {
            // Every row was converted (nothing known to compare with): the copy is built by
            // appending, without zeroing it first.
            self.previous.clear();
            self.previous.reserve(row_len * h as usize);
            for y in 0..h {
                self.previous.extend_from_slice(pixels.row(y));
            }
        }
        Ok(rows)
    }

    /// Forgets the last picture, so that the next
    /// [`convert_changed`](Self::convert_changed) converts every row.
    pub fn forget_previous(&mut self) {
        self.previous.clear();
    }

    fn check_size(&self, pixels: FrameRef<'_>) -> Result<(), ColorError> {
        if (pixels.width, pixels.height) != (self.width, self.height) {
            return Err(ColorError(format!(
                "picture is {}x{}, planes are {}x{}",
                pixels.width, pixels.height, self.width, self.height
            )));
        }
        Ok(())
    }

    /// Converts rows `rows` (starting on an even row) of a picture of this size.
    fn convert_band(&mut self, pixels: FrameRef<'_>, rows: Range<u32>) -> Result<(), ColorError> {
        let band = pixels.rows(rows.start, rows.end - rows.start);
        let height = band.height;
        // The `yuv` crate accepts a last row without padding but then walks rows with
        // `chunks_exact(stride)` and silently skips it (two rows in 4:2:0). A band cut out
        // of a padded frame ends exactly like that, so such input is packed first.
        let row_len = self.width as usize * 4;
        let (data, stride) = if band.data.len() >= band.stride * height as usize {
            (band.data, band.stride)
        } else {
            self.scratch.clear();
            for y in 0..height {
                self.scratch.extend_from_slice(band.row(y));
            }
            (self.scratch.as_slice(), row_len)
        };
        let stride = u32::try_from(stride)
            .map_err(|_| ColorError(format!("row stride {stride} too large")))?;
        let c_stride = self.chroma_stride();
        let (_, c_rows) = self.chroma.plane_size(self.width, rows.start);
        let (_, c_end) = self.chroma.plane_size(self.width, rows.end);
        let width = self.width as usize;
        let y_plane = &mut self.y[rows.start as usize * width..rows.end as usize * width];
        let c_band = c_rows as usize * c_stride..c_end as usize * c_stride;
        let mut image = YuvPlanarImageMut {
            y_plane: BufferStoreMut::Borrowed(y_plane),
            y_stride: self.width,
            u_plane: BufferStoreMut::Borrowed(&mut self.u[c_band.clone()]),
            u_stride: c_stride as u32,
            v_plane: BufferStoreMut::Borrowed(&mut self.v[c_band]),
            v_stride: c_stride as u32,
            width: self.width,
            height,
        };
        let convert = match self.chroma {
            Chroma::I420 => yuv::bgra_to_yuv420,
            Chroma::I444 => yuv::bgra_to_yuv444,
        };
        convert(
            &mut image,
            data,
            stride,
            YuvRange::Limited,
            YuvStandardMatrix::Bt709,
            YuvConversionMode::Balanced,
        )
        .map_err(|e| ColorError(e.to_string()))
    }

    /// The planes, as the encoder takes them.
    pub fn planes(&self) -> Planes<'_> {
        Planes {
            y: &self.y,
            u: &self.u,
            v: &self.v,
            y_stride: self.width as usize,
            c_stride: self.chroma_stride(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::OwnedFrame;

    fn solid(w: u32, h: u32, rgb: [u8; 3]) -> OwnedFrame {
        let mut f = OwnedFrame::new(w, h);
        for px in f.data.chunks_exact_mut(4) {
            px.copy_from_slice(&[rgb[2], rgb[1], rgb[0], 0xff]);
        }
        f
    }

    /// BT.709 limited range: Y = 16 + 219·Y', Cb = 128 + 224·(B'−Y')/1.8556,
    /// Cr = 128 + 224·(R'−Y')/1.5748 with Y' = 0.2126 R' + 0.7152 G' + 0.0722 B'.
    fn expected(rgb: [u8; 3]) -> [f64; 3] {
        let [r, g, b] = rgb.map(|c| c as f64 / 255.0);
        let y = 0.2126 * r + 0.7152 * g + 0.0722 * b;
        [
            16.0 + 219.0 * y,
            128.0 + 224.0 * (b - y) / 1.8556,
            128.0 + 224.0 * (r - y) / 1.5748,
        ]
    }

    #[test]
    fn known_colours_convert_to_bt709_limited_range() {
        let colours = [
            [255, 255, 255],
            [0, 0, 0],
            [255, 0, 0],
            [0, 255, 0],
            [0, 0, 255],
            [40, 120, 200],
        ];
        for chroma in [Chroma::I420, Chroma::I444] {
            for rgb in colours {
                let f = solid(6, 4, rgb);
                let mut p = YuvPlanes::new(6, 4, chroma);
                p.convert(f.view()).unwrap();
                let want = expected(rgb);
                let planes = p.planes();
                for (plane, want) in [planes.y, planes.u, planes.v].iter().zip(want) {
                    for &got in plane.iter() {
                        assert!(
                            (got as f64 - want).abs() <= 1.0,
                            "{chroma:?} {rgb:?}: got {got}, want {want:.1}"
                        );
                    }
                }
            }
        }
        // Spot values, as a reader would check them by hand.
        let mut p = YuvPlanes::new(2, 2, Chroma::I420);
        p.convert(solid(2, 2, [255, 255, 255]).view()).unwrap();
        assert_eq!((p.y[0], p.u[0], p.v[0]), (235, 128, 128));
        p.convert(solid(2, 2, [0, 0, 0]).view()).unwrap();
        assert_eq!((p.y[0], p.u[0], p.v[0]), (16, 128, 128));
    }

    #[test]
    fn chroma_is_subsampled_in_4_2_0_and_full_in_4_4_4() {
        // Left half red, right half blue: in 4:4:4 chroma keeps the edge per pixel.
        let mut f = solid(4, 2, [255, 0, 0]);
        for y in 0..2 {
            for x in 2..4 {
                let i = (y * 4 + x) * 4;
                f.data[i..i + 4].copy_from_slice(&[255, 0, 0, 0]);
            }
        }
        let mut p = YuvPlanes::new(4, 2, Chroma::I444);
        p.convert(f.view()).unwrap();
        assert_eq!(p.chroma_stride(), 4);
        assert!(p.v[0] > 200 && p.v[3] < 140, "Cr {:?}", &p.v[..4]);
        let mut p = YuvPlanes::new(4, 2, Chroma::I420);
        p.convert(f.view()).unwrap();
        assert_eq!((p.chroma_stride(), p.u.len()), (2, 2));
        // One chroma sample per 2x2 block: the left block is all red, the right all blue, so
        // each sample is that colour's Cb/Cr (BT.709 limited range, worked out by hand from the
        // formula above: red 102/240, blue 240/118), and luma stays per pixel.
        for (i, rgb) in [(0, [255, 0, 0]), (1, [0, 0, 255])] {
            let [y, cb, cr] = expected(rgb);
            assert!(
                (p.u[i] as f64 - cb).abs() <= 1.0,
                "Cb[{i}] {} vs {cb:.1}",
                p.u[i]
            );
            assert!(
                (p.v[i] as f64 - cr).abs() <= 1.0,
                "Cr[{i}] {} vs {cr:.1}",
                p.v[i]
            );
            for (row, col) in [(0, 2 * i), (0, 2 * i + 1), (1, 2 * i), (1, 2 * i + 1)] {
                let got = p.y[row * 4 + col] as f64;
                assert!((got - y).abs() <= 1.0, "Y[{row},{col}] {got} vs {y:.1}");
            }
        }
    }

    #[test]
    fn padded_rows_and_size_mismatch() {
        // A band of a wider frame: stride larger than the row, last row without padding.
        let big = solid(8, 4, [0, 255, 0]);
        let band = crate::frame::FrameRef {
            data: &big.data[..3 * 32 + 4 * 4],
            width: 4,
            height: 4,
            stride: 32,
        };
        let mut p = YuvPlanes::new(4, 4, Chroma::I420);
        p.convert(band).unwrap();
        // Every row converted, the unpadded last two included (the `yuv` crate alone drops them).
        let want = expected([0, 255, 0]);
        for (plane, want) in [&p.y, &p.u, &p.v].into_iter().zip(want) {
            assert!(
                plane.iter().all(|&v| (v as f64 - want).abs() <= 1.0),
                "{plane:?} vs {want:.1}"
            );
        }
        let mut p444 = YuvPlanes::new(4, 4, Chroma::I444);
        p444.convert(band).unwrap();
        assert!((p444.y[15] as f64 - want[0]).abs() <= 1.0, "{:?}", p444.y);
        let mut wrong = YuvPlanes::new(4, 2, Chroma::I420);
        assert!(wrong.convert(band).is_err());
    }

    #[test]
    fn converting_changed_rows_matches_a_whole_conversion() {
        // A band of a wider frame (padded rows, last row without padding), 4:2:0 and 4:4:4.
        let (w, h) = (20u32, 50u32);
        let mut big = OwnedFrame::new(w + 6, h);
        for (i, b) in big.data.iter_mut().enumerate() {
            *b = (i * 37 % 251) as u8;
        }
        for chroma in [Chroma::I420, Chroma::I444] {
            let mut frame = big.clone();
            let mut partial = YuvPlanes::new(w, h, chroma);
            fn band(f: &OwnedFrame, w: u32, h: u32) -> crate::frame::FrameRef<'_> {
                let stride = f.width as usize * 4;
                crate::frame::FrameRef {
                    data: &f.data[..(h as usize - 1) * stride + w as usize * 4],
                    width: w,
                    height: h,
                    stride,
                }
            }
            assert_eq!(partial.convert_changed(band(&frame, w, h)).unwrap(), 0..h);
            assert_eq!(partial.convert_changed(band(&frame, w, h)).unwrap(), 0..0);
            for (y, want) in [(17u32, 16..32), (49, 48..50), (0, 0..16), (31, 16..32)] {
                let i = (y * (w + 6) * 4 + 8) as usize;
                frame.data[i] ^= 0x55;
                assert_eq!(partial.convert_changed(band(&frame, w, h)).unwrap(), want);
                let mut whole = YuvPlanes::new(w, h, chroma);
                whole.convert(band(&frame, w, h)).unwrap();
                assert!(
                    partial.y == whole.y && partial.u == whole.u && partial.v == whole.v,
                    "{chroma:?}, row {y}"
                );
            }
            // Two changes far apart: everything between them is converted too.
            for y in [3usize, 40] {
                frame.data[y * (w as usize + 6) * 4] ^= 1;
            }
            assert_eq!(partial.convert_changed(band(&frame, w, h)).unwrap(), 0..48);
            // A plain conversion in between: the next picture is converted whole.
            partial.convert(band(&frame, w, h)).unwrap();
            assert_eq!(partial.convert_changed(band(&frame, w, h)).unwrap(), 0..h);
            // Every row changed: the next pictures are converted whole, unchanged or not,
            // then one whole again to keep, then only changes.
            for y in [3usize, 49] {
                frame.data[y * (w as usize + 6) * 4] ^= 1;
            }
            assert_eq!(partial.convert_changed(band(&frame, w, h)).unwrap(), 0..h);
            for _ in 0..UNTRACKED_AFTER_FULL_CHANGE + 1 {
                assert_eq!(partial.convert_changed(band(&frame, w, h)).unwrap(), 0..h);
            }
            assert_eq!(partial.convert_changed(band(&frame, w, h)).unwrap(), 0..0);
            frame.data[20 * (w as usize + 6) * 4] ^= 1;
            assert_eq!(partial.convert_changed(band(&frame, w, h)).unwrap(), 16..32);
            let mut whole = YuvPlanes::new(w, h, chroma);
            whole.convert(band(&frame, w, h)).unwrap();
            assert!(partial.y == whole.y && partial.u == whole.u && partial.v == whole.v);
        }
    }

    /// Colour conversion alone, 1920x64 BGRX, 10th percentile of 500 runs (docs/h264.md):
    /// `cargo test --release -p pixelflux --lib -- --ignored --nocapture bench_color`
    #[test]
    #[ignore = "benchmark: run in release with --ignored --nocapture"]
    fn bench_color_conversion() {
        use crate::source::synthetic::{Scene, SyntheticSource};
        use crate::source::FrameSource as _;
        use std::time::Instant;
        let w = 1920;
        let mut source = SyntheticSource::new(Scene::Static, w, 64);
        let stripe = OwnedFrame::from_view(source.grab().unwrap().view());
        for chroma in [Chroma::I420, Chroma::I444] {
            let mut planes = YuvPlanes::new(w, 64, chroma);
            let mut times: Vec<f64> = (0..500)
                .map(|_| {
                    let t = Instant::now();
                    planes.convert(stripe.view()).unwrap();
                    t.elapsed().as_secs_f64() * 1e3
                })
                .collect();
            times.sort_by(|a, b| a.total_cmp(b));
            println!(
                "BGRX -> {chroma:?}, 1920x64: {:.3} ms",
                times[(times.len() - 1) / 10]
            );
        }
    }
}
