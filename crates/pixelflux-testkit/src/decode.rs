//! Real decoders, as a viewer has them: libjpeg-turbo for JPEG stripes, ffmpeg for H.264.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use pixelflux::OwnedFrame;

use crate::Error;

/// Decodes a JPEG (the stripe's payload, without its header) to packed BGRX.
///
/// # Errors
/// [`Error::Jpeg`] when libjpeg-turbo cannot decode it.
pub fn jpeg(jpeg: &[u8]) -> Result<OwnedFrame, Error> {
    let image: turbojpeg::Image<Vec<u8>> =
        turbojpeg::decompress(jpeg, turbojpeg::PixelFormat::BGRX)?;
    if image.pitch != image.width * 4 {
        return Err(Error::Request(format!(
            "unexpected JPEG pitch {}",
            image.pitch
        )));
    }
    Ok(OwnedFrame {
        data: image.pixels,
        width: u32::try_from(image.width).map_err(|_| Error::Request("JPEG too wide".into()))?,
        height: u32::try_from(image.height).map_err(|_| Error::Request("JPEG too tall".into()))?,
    })
}

/// Decodes an Annex-B H.264 stream of `width` x `height` pictures with ffmpeg. Returns how many
/// pictures it decoded and, as BGRX in output order, those whose index `keep` accepts (the
/// others are not kept, so a long stream does not need all its pictures in memory).
///
/// # Errors
/// [`Error::Ffmpeg`] when ffmpeg is missing or fails; [`Error::Io`] when the stream cannot be
/// handed to it or its output read.
pub fn h264(
    stream: &[u8],
    width: u32,
    height: u32,
    mut keep: impl FnMut(usize) -> bool,
) -> Result<(usize, Vec<(usize, OwnedFrame)>), Error> {
    // A file, not a pipe: ffmpeg reads its input while we read its output, and a file needs
    // no writer thread to avoid a deadlock.
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let path =
        std::env::temp_dir().join(format!("pixelflux-testkit-{}-{n}.h264", std::process::id()));
    std::fs::write(&path, stream)?;
    let result = (|| {
        let mut child = Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-f", "h264", "-i"])
            .arg(&path)
            // Every decoded picture once, none duplicated or dropped to fit a frame rate.
            .args(["-fps_mode", "passthrough"])
            .args(["-f", "rawvideo", "-pix_fmt", "bgr0", "-"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::Ffmpeg(format!("cannot run ffmpeg: {e}")))?;
        let mut stdout = child
            .stdout
            .take()
            .ok_or_else(|| Error::Ffmpeg("no stdout".into()))?;
        let picture = width as usize * height as usize * 4;
        let mut kept = Vec::new();
        let mut index = 0usize;
        let mut buf = vec![0u8; picture];
        let read = loop {
            match read_full(&mut stdout, &mut buf) {
                Ok(0) => break Ok(()),
                Ok(got) if got < picture => {
                    break Err(Error::Ffmpeg(format!(
                        "{got} bytes at the end, not a whole {width}x{height} picture"
                    )))
                }
                Ok(_) => {}
                Err(e) => break Err(e.into()),
            }
            if keep(index) {
                let frame = OwnedFrame {
                    data: buf.clone(),
                    width,
                    height,
                };
                kept.push((index, frame));
            }
            index += 1;
        };
        // Wait (and drain stderr) even when reading failed, so no zombie is left.
        let output = child.wait_with_output()?;
        read?;
        if !output.status.success() {
            return Err(Error::Ffmpeg(format!(
                "failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        Ok((index, kept))
    })();
    let _ = std::fs::remove_file(&path);
    result
}

/// Reads until `buf` is full or the input ends; how many bytes it read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::psnr::{from_mse, mse_bgrx};

    #[test]
    fn jpeg_decodes_what_libjpeg_turbo_encoded() {
        let f = crate::test_pattern(48, 32, 1);
        let back = jpeg(&crate::reference_jpeg(&f, 95)).unwrap();
        assert_eq!((back.width, back.height), (48, 32));
        let db = from_mse(mse_bgrx(&back.data, &f.data));
        // q95 4:4:4: a decoder that got anything wrong lands far below 30 dB.
        assert!(db > 30.0, "{db}");
        assert!(matches!(jpeg(b"not a jpeg"), Err(Error::Jpeg(_))));
    }

    #[test]
    fn h264_streams_decode_with_ffmpeg() {
        // A real x264 stream made by ffmpeg itself (no dependency on our encoder here).
        let out = Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-f", "lavfi"])
            .args(["-i", "testsrc=size=64x32:rate=10", "-frames:v", "3"])
            .args(["-c:v", "libx264", "-f", "h264", "-"])
            .output()
            .expect("ffmpeg is installed (make test installs it)");
        assert!(out.status.success());
        let (n, kept) = h264(&out.stdout, 64, 32, |i| i == 2).unwrap();
        assert_eq!(n, 3);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].0, 2);
        assert_eq!(kept[0].1.data.len(), 64 * 32 * 4);
        // Garbage is an error that carries ffmpeg's reason, not zero pictures.
        let err = h264(b"not h264", 64, 32, |_| true).unwrap_err();
        assert!(matches!(err, Error::Ffmpeg(_)), "{err}");
        assert!(err.to_string().starts_with("ffmpeg: failed"), "{err}");
    }
}
