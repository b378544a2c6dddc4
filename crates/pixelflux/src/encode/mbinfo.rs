//! Which macroblocks of a stripe's picture did not change since the picture its encoder saw
//! last, for x264's `mb_info` (`X264_MBINFO_CONSTANT`): x264 then codes them as skipped
//! without analysing them (when its reference there is at least as sharp as the picture's
//! quantizer), so the unchanged part of a tall stripe costs next to nothing.
//!
//! The comparison is on the converted planes, exactly what x264 is handed: 16x16 luma blocks
//! and their chroma (8x8 in 4:2:0, 16x16 in 4:4:4). Macroblocks are counted over the size
//! rounded up to 16, as x264 counts them; the padding rows and columns of the last ones are
//! x264's own copies of the edge, which change only when the edge does.

use std::ops::Range;

use super::x264::{Chroma, Planes, MBINFO_CONSTANT};

/// The previous picture's planes and the flags computed against them.
#[derive(Debug, Default)]
pub struct ConstantBlocks {
    prev_y: Vec<u8>,
    prev_u: Vec<u8>,
    prev_v: Vec<u8>,
    /// One byte per macroblock, row by row: `MBINFO_CONSTANT` or 0.
    flags: Vec<u8>,
    /// Whether `prev_*` hold a picture of the current size.
    primed: bool,
}

impl ConstantBlocks {
    /// Forgets the previous picture (a new encoder, a new size).
    pub fn reset(&mut self) {
        self.primed = false;
    }

    /// Compares `planes` (a `width` x `height` picture in `chroma`) with the previous picture,
    /// keeps `planes` as the next one's previous, and returns the flags, or `None` for the
    /// first picture (nothing to compare with).
    ///
    /// Only the luma rows `rows` (even bounds; `0..height` for all) may differ from the
    /// previous picture: the caller vouches that the planes outside them are unchanged since
    /// the last call, so they are neither compared nor copied.
    pub fn update(
        &mut self,
        planes: &Planes<'_>,
        (width, height): (u32, u32),
        chroma: Chroma,
        rows: Range<u32>,
    ) -> Option<&mut [u8]> {
        let (w, h) = (width as usize, height as usize);
        let (mbw, mbh) = (w.div_ceil(16), h.div_ceil(16));
        let (cw, ch) = chroma.plane_size(width, height);
        let (cw, ch) = (cw as usize, ch as usize);
        // Chroma rows and columns per macroblock.
        let (cbw, cbh) = match chroma {
            Chroma::I420 => (8, 8),
            Chroma::I444 => (16, 16),
        };
        let y_len = planes.y_stride * (h - 1) + w;
        let c_len = planes.c_stride * (ch - 1) + cw;
        let compared = self.primed
            && self.prev_y.len() == y_len
            && self.prev_u.len() == c_len
            && self.flags.len() == mbw * mbh;
        // The chroma rows of luma rows `rows`.
        let (_, c_start) = chroma.plane_size(width, rows.start.min(height));
        let (_, c_end) = chroma.plane_size(width, rows.end.min(height));
        let (y_rows, c_rows) = (
            rows.start.min(height) as usize..rows.end.min(height) as usize,
            c_start as usize..c_end as usize,
        );
        if compared {
            self.flags.fill(MBINFO_CONSTANT);
            mark_changed(
                &mut self.flags,
                mbw,
                (&self.prev_y, &planes.y[..y_len]),
                (planes.y_stride, w, y_rows.clone()),
                16,
            );
            for (prev, cur) in [(&self.prev_u, planes.u), (&self.prev_v, planes.v)] {
                mark_changed(
                    &mut self.flags,
                    mbw,
                    (prev, &cur[..c_len]),
                    (planes.c_stride, cw, c_rows.clone()),
                    cbw.min(cbh),
                );
            }
            copy_rows(&mut self.prev_y, planes.y, (planes.y_stride, w, y_rows));
            copy_rows(
                &mut self.prev_u,
                planes.u,
                (planes.c_stride, cw, c_rows.clone()),
            );
            copy_rows(&mut self.prev_v, planes.v, (planes.c_stride, cw, c_rows));
        } else {
            self.flags.clear();
            self.flags.resize(mbw * mbh, 0);
            copy_into(&mut self.prev_y, &planes.y[..y_len]);
            copy_into(&mut self.prev_u, &planes.u[..c_len]);
            copy_into(&mut self.prev_v, &planes.v[..c_len]);
        }
        self.primed = true;
        compared.then_some(self.flags.as_mut_slice())
    }
}

fn copy_into(dst: &mut Vec<u8>, src: &[u8]) {
    dst.clear();
    dst.extend_from_slice(src);
}

/// Copies rows `rows` of a plane (`stride`, `width` samples a row) into `dst`, which holds a
/// picture of the same size.
fn copy_rows(dst: &mut [u8], src: &[u8], (stride, width, rows): (usize, usize, Range<usize>)) {
    for row in rows {
        let start = row * stride;
        dst[start..start + width].copy_from_slice(&src[start..start + width]);
    }
}

/// Clears the flag of every macroblock with a differing pixel in this plane, whose blocks are
/// `block` x `block` samples; `(stride, width, rows)` of the plane, `rows` the rows that may
/// differ.
fn mark_changed(
    flags: &mut [u8],
    mbw: usize,
    (prev, cur): (&[u8], &[u8]),
    (stride, width, rows): (usize, usize, Range<usize>),
    block: usize,
) {
    for row in rows {
        let start = row * stride;
        let (a, b) = (&prev[start..start + width], &cur[start..start + width]);
        if a == b {
            continue;
        }
        let line = &mut flags[(row / block) * mbw..][..mbw];
        // The usual block widths compare as fixed-size arrays, which the compiler does in
        // a few instructions instead of a `memcmp` call per block (1.3 M instructions a
        // 1080p picture where every row changed; docs/PERFORMANCE.md).
        match block {
            16 => clear_differing::<16>(a, b, line),
            8 => clear_differing::<8>(a, b, line),
            _ => clear_differing_slices(a, b, line, block),
        }
    }
}

/// [`mark_changed`] on one row whose blocks are `N` samples wide.
fn clear_differing<const N: usize>(a: &[u8], b: &[u8], line: &mut [u8]) {
    let (ca, cb) = (a.chunks_exact(N), b.chunks_exact(N));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    let full = a.len() / N;
    for ((pa, pb), flag) in ca.zip(cb).zip(line.iter_mut()) {
        if *flag != 0 && <&[u8; N]>::try_from(pa).ok() != <&[u8; N]>::try_from(pb).ok() {
            *flag = 0;
        }
    }
    if let Some(flag) = line.get_mut(full) {
        if *flag != 0 && ra != rb {
            *flag = 0;
        }
    }
}

/// [`mark_changed`] on one row, any block width.
fn clear_differing_slices(a: &[u8], b: &[u8], line: &mut [u8], block: usize) {
    for ((pa, pb), flag) in a.chunks(block).zip(b.chunks(block)).zip(line.iter_mut()) {
        if *flag != 0 && pa != pb {
            *flag = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planes<'a>(y: &'a [u8], u: &'a [u8], v: &'a [u8], w: usize, cw: usize) -> Planes<'a> {
        Planes {
            y,
            u,
            v,
            y_stride: w,
            c_stride: cw,
        }
    }

    /// The fixed-width comparison clears exactly the flags the general one clears, on rows
    /// whose width is and is not a multiple of the block, with differences in every block
    /// position (first, middle, last, the partial one) and none.
    #[test]
    fn fixed_width_blocks_compare_as_any_width() {
        for (width, block) in [
            (64usize, 16usize),
            (72, 16),
            (40, 8),
            (44, 8),
            (8, 8),
            (12, 16),
        ] {
            let blocks = width.div_ceil(block);
            let a: Vec<u8> = (0..width).map(|i| (i * 7 % 251) as u8).collect();
            for changed in (0..width).step_by(3).map(Some).chain([None]) {
                let mut b = a.clone();
                if let Some(i) = changed {
                    b[i] ^= 0x10;
                }
                for start in [0u8, MBINFO_CONSTANT] {
                    let mut line = vec![MBINFO_CONSTANT; blocks];
                    line[0] = start;
                    let mut expect = line.clone();
                    clear_differing_slices(&a, &b, &mut expect, block);
                    match block {
                        16 => clear_differing::<16>(&a, &b, &mut line),
                        _ => clear_differing::<8>(&a, &b, &mut line),
                    }
                    assert_eq!(
                        line, expect,
                        "width {width}, block {block}, changed {changed:?}"
                    );
                    let cleared = expect.iter().filter(|&&f| f == 0).count();
                    let want = usize::from(start == 0)
                        + usize::from(changed.is_some_and(|i| i / block != 0 || start != 0));
                    assert_eq!(cleared, want, "width {width}, changed {changed:?}");
                }
            }
        }
    }

    #[test]
    fn only_changed_macroblocks_lose_the_flag() {
        // 40x20: 3x2 macroblocks (the last column and row padded by x264).
        let (w, h) = (40usize, 20usize);
        let (cw, ch) = (20usize, 10usize);
        let mut y = vec![50u8; w * h];
        let mut u = vec![128u8; cw * ch];
        let v = vec![128u8; cw * ch];
        let mut blocks = ConstantBlocks::default();
        // First picture: nothing to compare with.
        assert!(blocks
            .update(&planes(&y, &u, &v, w, cw), (40, 20), Chroma::I420, 0..20)
            .is_none());
        // Unchanged: every block constant.
        let flags = blocks
            .update(&planes(&y, &u, &v, w, cw), (40, 20), Chroma::I420, 0..20)
            .unwrap()
            .to_vec();
        assert_eq!(flags, vec![MBINFO_CONSTANT; 6]);
        // One luma pixel in the second block of the second row (x 16..32, y 16..), one chroma
        // sample in the third block of the first row (chroma x 16.., y 0..8).
        y[17 * w + 20] = 51;
        u[3 * cw + 17] = 1;
        let flags = blocks
            .update(&planes(&y, &u, &v, w, cw), (40, 20), Chroma::I420, 0..20)
            .unwrap()
            .to_vec();
        let c = MBINFO_CONSTANT;
        assert_eq!(flags, vec![c, c, 0, c, 0, c]);
        // Compared with the picture just before (not the first one).
        let flags = blocks
            .update(&planes(&y, &u, &v, w, cw), (40, 20), Chroma::I420, 0..20)
            .unwrap()
            .to_vec();
        assert_eq!(flags, vec![c; 6]);
        // After a reset, nothing to compare with again.
        blocks.reset();
        assert!(blocks
            .update(&planes(&y, &u, &v, w, cw), (40, 20), Chroma::I420, 0..20)
            .is_none());
    }

    #[test]
    fn only_the_given_rows_are_compared_and_kept() {
        // 32x48: 2x3 macroblocks. Changes in the first and the third macroblock row, rows
        // 32..48 given: only the third row's change is seen (and kept as the previous).
        let (w, h) = (32usize, 48usize);
        let (cw, ch) = (16usize, 24usize);
        let mut y = vec![50u8; w * h];
        let u = vec![128u8; cw * ch];
        let v = vec![128u8; cw * ch];
        let mut blocks = ConstantBlocks::default();
        blocks.update(&planes(&y, &u, &v, w, cw), (32, 48), Chroma::I420, 0..48);
        y[3 * w + 1] = 0;
        y[40 * w + 20] = 0;
        let c = MBINFO_CONSTANT;
        let flags = blocks
            .update(&planes(&y, &u, &v, w, cw), (32, 48), Chroma::I420, 32..48)
            .unwrap()
            .to_vec();
        assert_eq!(flags, vec![c, c, c, c, c, 0]);
        // Compared everywhere now: the first row's change was not kept, the third's was.
        let flags = blocks
            .update(&planes(&y, &u, &v, w, cw), (32, 48), Chroma::I420, 0..48)
            .unwrap()
            .to_vec();
        assert_eq!(flags, vec![0, c, c, c, c, c]);
    }

    #[test]
    fn full_colour_chroma_blocks_are_16_wide() {
        let (w, h) = (32usize, 16usize);
        let y = vec![50u8; w * h];
        let mut u = vec![128u8; w * h];
        let v = vec![128u8; w * h];
        let mut blocks = ConstantBlocks::default();
        blocks.update(&planes(&y, &u, &v, w, w), (32, 16), Chroma::I444, 0..16);
        u[5 * w + 15] = 0; // still the first macroblock in 4:4:4
        let flags = blocks
            .update(&planes(&y, &u, &v, w, w), (32, 16), Chroma::I444, 0..16)
            .unwrap()
            .to_vec();
        assert_eq!(flags, vec![0, MBINFO_CONSTANT]);
    }
}
