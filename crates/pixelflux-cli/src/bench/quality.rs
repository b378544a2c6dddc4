//! What a viewer would see: rebuilds the picture from the encoded stripes with real decoders
//! (libjpeg-turbo for JPEG, ffmpeg for H.264), for PSNR against the source.

use std::collections::BTreeMap;
use std::io::Read;
use std::process::{Command, Stdio};

use anyhow::{bail, Context};
use pixelflux::{Codec, OwnedFrame};

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
}

/// Decodes a JPEG to packed BGRX.
pub fn decode_jpeg(jpeg: &[u8]) -> anyhow::Result<OwnedFrame> {
    let image: turbojpeg::Image<Vec<u8>> =
        turbojpeg::decompress(jpeg, turbojpeg::PixelFormat::BGRX).context("JPEG decode")?;
    if image.pitch != image.width * 4 {
        bail!("unexpected JPEG pitch {}", image.pitch);
    }
    Ok(OwnedFrame {
        data: image.pixels,
        width: image.width as u32,
        height: image.height as u32,
    })
}

/// Decodes an Annex-B H.264 stream of `width` x `height` pictures with ffmpeg and returns the
/// pictures whose index (in decode output order) `keep` accepts, as BGRX, in order.
pub fn decode_h264_stream(
    stream: &[u8],
    width: u32,
    height: u32,
    mut keep: impl FnMut(usize) -> bool,
) -> anyhow::Result<(usize, Vec<(usize, OwnedFrame)>)> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path =
        std::env::temp_dir().join(format!("pixelflux-bench-{}-{n}.h264", std::process::id()));
    std::fs::write(&path, stream).context("write H.264 stream for ffmpeg")?;
    let result = (|| {
        let mut child = Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-f", "h264", "-i"])
            .arg(&path)
            .args([
                "-fps_mode",
                "passthrough",
                "-f",
                "rawvideo",
                "-pix_fmt",
                "bgr0",
                "-",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot run ffmpeg (install it: scripts/install-deps.sh test)")?;
        let mut stdout = child.stdout.take().context("ffmpeg stdout")?;
        let picture = width as usize * height as usize * 4;
        let mut kept = Vec::new();
        let mut index = 0usize;
        let mut buf = vec![0u8; picture];
        loop {
            match stdout.read_exact(&mut buf) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(e.into()),
            }
            if keep(index) {
                kept.push((
                    index,
                    OwnedFrame {
                        data: buf.clone(),
                        width,
                        height,
                    },
                ));
            }
            index += 1;
        }
        let output = child.wait_with_output()?;
        if !output.status.success() {
            bail!(
                "ffmpeg failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok((index, kept))
    })();
    let _ = std::fs::remove_file(&path);
    result
}

/// The picture a viewer shows after applying every stripe of frames `<= k`, for each `k` in
/// `samples` (ascending), on a `width` x `height` canvas that starts black.
pub fn reconstruct(
    stripes: &[Received],
    width: u32,
    height: u32,
    samples: &[u64],
) -> anyhow::Result<Vec<OwnedFrame>> {
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
                        out.insert(*i, decode_jpeg(&group[*i].payload)?);
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
                let (decoded, kept) =
                    decode_h264_stream(&stream, width, h, |i| wanted.contains(&i))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::stats::psnr_bgrx;

    fn pattern(width: u32, height: u32, seed: u8) -> OwnedFrame {
        let mut f = OwnedFrame::new(width, height);
        for (i, px) in f.data.chunks_exact_mut(4).enumerate() {
            let (x, y) = (i as u32 % width, i as u32 / width);
            px.copy_from_slice(&[
                (x * 4) as u8 ^ seed,
                (y * 8) as u8,
                ((x + y) * 2) as u8,
                0xff,
            ]);
        }
        f
    }

    fn jpeg(frame: &OwnedFrame) -> Vec<u8> {
        let image = turbojpeg::Image {
            pixels: frame.data.as_slice(),
            width: frame.width as usize,
            pitch: frame.stride(),
            height: frame.height as usize,
            format: turbojpeg::PixelFormat::BGRX,
        };
        turbojpeg::compress(image, 95, turbojpeg::Subsamp::None)
            .unwrap()
            .to_vec()
    }

    #[test]
    fn canvases_follow_the_latest_stripe_per_row() {
        let (w, h) = (64, 32);
        let a = pattern(w, h, 0);
        let b = pattern(w, h, 0x55);
        let stripe = |f: &OwnedFrame, frame_id: u64, y: u32| Received {
            codec: Codec::Jpeg,
            frame_id,
            y,
            height: 16,
            payload: jpeg(&OwnedFrame::from_view(f.view().rows(y, 16))),
        };
        // Frame 0 sends both stripes of `a`; frame 3 only the bottom stripe of `b`.
        let stripes = vec![stripe(&a, 0, 0), stripe(&a, 0, 16), stripe(&b, 3, 16)];
        let canvases = reconstruct(&stripes, w, h, &[0, 2, 3]).unwrap();
        let half = |f: &OwnedFrame, y| OwnedFrame::from_view(f.view().rows(y, 16)).data;
        for (k, canvas) in canvases.iter().enumerate() {
            assert!(psnr_bgrx(&half(canvas, 0), &half(&a, 0)).unwrap() > 40.0);
            let bottom = if k < 2 { &a } else { &b };
            assert!(
                psnr_bgrx(&half(canvas, 16), &half(bottom, 16)).unwrap() > 40.0,
                "sample {k}"
            );
            let other = if k < 2 { &b } else { &a };
            assert!(psnr_bgrx(&half(canvas, 16), &half(other, 16)).unwrap() < 30.0);
        }
        // Before any stripe the canvas is black.
        let none = reconstruct(&stripes[2..], w, h, &[1]).unwrap();
        assert!(none[0].data.iter().all(|&v| v == 0));
    }

    #[test]
    fn h264_streams_decode_with_ffmpeg() {
        // A real x264 stream made by ffmpeg itself (no dependency on our encoder here).
        let out = Command::new("ffmpeg")
            .args([
                "-nostdin",
                "-v",
                "error",
                "-f",
                "lavfi",
                "-i",
                "testsrc=size=64x32:rate=10",
                "-frames:v",
                "3",
                "-c:v",
                "libx264",
                "-f",
                "h264",
                "-",
            ])
            .output()
            .expect("ffmpeg is installed (make test installs it)");
        assert!(out.status.success());
        let (n, kept) = decode_h264_stream(&out.stdout, 64, 32, |i| i == 2).unwrap();
        assert_eq!(n, 3);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].0, 2);
        assert_eq!(kept[0].1.data.len(), 64 * 32 * 4);
        assert!(decode_h264_stream(b"not h264", 64, 32, |_| true)
            .map(|(n, _)| n == 0)
            .unwrap_or(true));
    }
}
