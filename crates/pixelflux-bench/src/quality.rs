//! What a viewer would see: rebuilds the picture from the encoded stripes with real decoders
//! (libjpeg-turbo for JPEG, ffmpeg for H.264), and the copy-rows of scroll detection, for PSNR
//! against the source.

use std::collections::BTreeMap;

use anyhow::bail;
use pixelflux::wire::CopyRun;
use pixelflux::{Codec, OwnedFrame};
use pixelflux_testkit::decode;

/// One encoded stripe as a viewer receives it, with the header already taken off.
#[derive(Debug, Clone)]
pub struct Received {
    /// JPEG or H.264.
    pub codec: Codec,
    /// Frame counter of the capture.
    pub frame_id: u64,
    /// First row in the captured region.
    pub y: u32,
    /// Rows.
    pub height: u32,
    /// The encoded picture (JFIF, or Annex-B NAL units of one access unit).
    pub payload: Vec<u8>,
    /// A copy-rows message (scroll detection) instead of a picture: its runs.
    pub copy: Option<Vec<CopyRun>>,
}

/// The picture a viewer shows after applying every stripe of frames `<= k`, for each `k` in
/// `samples` (ascending), on a `width` x `height` canvas that starts black.
pub fn reconstruct(
    stripes: &[Received],
    width: u32,
    height: u32,
    samples: &[u64],
) -> anyhow::Result<Vec<OwnedFrame>> {
    if stripes.iter().any(|s| s.copy.is_some()) {
        return replay(stripes, width, height, samples);
    }
    let mut canvases = vec![OwnedFrame::new(width, height); samples.len()];
    // Each stripe position is its own stream (H.264: its own encoder).
    let mut by_y: BTreeMap<(u32, u32), Vec<&Received>> = BTreeMap::new();
    for s in stripes {
        by_y.entry((s.y, s.height)).or_default().push(s);
    }
    for ((y, h), group) in by_y {
        if y + h > height {
            bail!("stripe at y={y} with {h} rows is outside the {height}-row picture");
        }
        // For each sample, the last stripe of this position sent at or before it.
        let latest: Vec<Option<usize>> = samples
            .iter()
            .map(|&k| group.iter().rposition(|s| s.frame_id <= k))
            .collect();
        let pictures: BTreeMap<usize, OwnedFrame> = match group[0].codec {
            Codec::Jpeg => {
                let mut out = BTreeMap::new();
                for i in latest.iter().flatten() {
                    if !out.contains_key(i) {
                        out.insert(*i, decode::jpeg(&group[*i].payload)?);
                    }
                }
                out
            }
            Codec::H264 => {
                let stream: Vec<u8> = group
                    .iter()
                    .flat_map(|s| s.payload.iter())
                    .copied()
                    .collect();
                let wanted: std::collections::BTreeSet<usize> =
                    latest.iter().flatten().copied().collect();
                let (decoded, kept) = decode::h264(&stream, width, h, |i| wanted.contains(&i))?;
                if decoded != group.len() {
                    bail!(
                        "ffmpeg decoded {decoded} pictures from the {} stripes at y={y}",
                        group.len()
                    );
                }
                kept.into_iter().collect()
            }
            other => bail!("no decoder for {other} stripes"),
        };
        for (canvas, i) in canvases.iter_mut().zip(&latest) {
            let Some(i) = i else { continue };
            let picture = &pictures[i];
            if picture.width != width || picture.height != h {
                bail!(
                    "stripe at y={y} decoded to {}x{}, expected {width}x{h}",
                    picture.width,
                    picture.height
                );
            }
            let stride = canvas.stride();
            let start = y as usize * stride;
            canvas.data[start..start + picture.data.len()].copy_from_slice(&picture.data);
        }
    }
    Ok(canvases)
}

/// [`reconstruct`] for a JPEG stream with copy-rows: the messages applied in order (a copy
/// reads the picture before it), every JPEG decoded.
fn replay(
    stripes: &[Received],
    width: u32,
    height: u32,
    samples: &[u64],
) -> anyhow::Result<Vec<OwnedFrame>> {
    let mut canvas = OwnedFrame::new(width, height);
    let stride = canvas.stride();
    let mut out = Vec::with_capacity(samples.len());
    let mut next = samples.iter().copied().peekable();
    for s in stripes {
        // Samples before this message's frame see the picture as it is now.
        while next.next_if(|&k| k < s.frame_id).is_some() {
            out.push(canvas.clone());
        }
        match (&s.copy, s.codec) {
            (Some(runs), _) => {
                let before = canvas.data.clone();
                for run in runs {
                    let (src, dst) = (run.src_y as usize * stride, run.dst_y as usize * stride);
                    let n = run.height as usize * stride;
                    if src + n > before.len() || dst + n > before.len() {
                        bail!("copy-rows outside the {height}-row picture: {run:?}");
                    }
                    canvas.data[dst..dst + n].copy_from_slice(&before[src..src + n]);
                }
            }
            (None, Codec::Jpeg) => {
                let picture = decode::jpeg(&s.payload)?;
                let start = s.y as usize * stride;
                if picture.width != width || start + picture.data.len() > canvas.data.len() {
                    bail!("stripe at y={} does not fit the picture", s.y);
                }
                canvas.data[start..start + picture.data.len()].copy_from_slice(&picture.data);
            }
            (None, other) => bail!("copy-rows in a {other} stream"),
        }
    }
    out.extend(next.map(|_| canvas.clone()));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pixelflux_testkit::{crop_rows, psnr, reference_jpeg, test_pattern};

    #[test]
    fn canvases_follow_the_latest_stripe_per_row() {
        let (w, h) = (64, 32);
        let a = test_pattern(w, h, 0);
        let b = test_pattern(w, h, 2);
        let stripe = |f: &OwnedFrame, frame_id: u64, y: u32| Received {
            codec: Codec::Jpeg,
            frame_id,
            y,
            height: 16,
            payload: reference_jpeg(&crop_rows(f, y, 16), 95),
            copy: None,
        };
        // Frame 0 sends both stripes of `a`; frame 3 only the bottom stripe of `b`.
        let stripes = vec![stripe(&a, 0, 0), stripe(&a, 0, 16), stripe(&b, 3, 16)];
        let canvases = reconstruct(&stripes, w, h, &[0, 2, 3]).unwrap();
        for (k, canvas) in canvases.iter().enumerate() {
            assert!(psnr(&crop_rows(canvas, 0, 16), &crop_rows(&a, 0, 16)) > 30.0);
            let (bottom, other) = if k < 2 { (&a, &b) } else { (&b, &a) };
            let got = crop_rows(canvas, 16, 16);
            assert!(psnr(&got, &crop_rows(bottom, 16, 16)) > 30.0, "sample {k}");
            assert!(psnr(&got, &crop_rows(other, 16, 16)) < 20.0, "sample {k}");
        }
        // Before any stripe the canvas is black.
        let none = reconstruct(&stripes[2..], w, h, &[1]).unwrap();
        assert!(none[0].data.iter().all(|&v| v == 0));
    }

    #[test]
    fn copy_rows_move_what_the_canvas_has_before_the_stripes() {
        let (w, h) = (64, 48);
        let tall = test_pattern(w, h + 16, 3);
        let a = crop_rows(&tall, 0, h);
        let b = crop_rows(&tall, 16, h);
        let jpeg = |f: &OwnedFrame, frame_id: u64, y: u32, rows: u32| Received {
            codec: Codec::Jpeg,
            frame_id,
            y,
            height: rows,
            payload: reference_jpeg(&crop_rows(f, y, rows), 95),
            copy: None,
        };
        // Frame 0: `a` whole. Frame 2: scrolled up 16 rows, the last 16 rows new.
        let copy = Received {
            codec: Codec::Jpeg,
            frame_id: 2,
            y: 0,
            height: 32,
            payload: Vec::new(),
            copy: Some(vec![CopyRun {
                src_y: 16,
                dst_y: 0,
                height: 32,
            }]),
        };
        let stripes = vec![jpeg(&a, 0, 0, h), copy, jpeg(&b, 2, 32, 16)];
        let canvases = reconstruct(&stripes, w, h, &[0, 1, 2, 5]).unwrap();
        assert!(psnr(&canvases[0], &a) > 30.0);
        assert!(psnr(&canvases[1], &a) > 30.0, "frame 1 sent nothing");
        assert!(psnr(&canvases[2], &b) > 30.0);
        assert!(psnr(&canvases[2], &a) < 20.0);
        assert_eq!(canvases[3], canvases[2]);
    }
}
