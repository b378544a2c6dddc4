//! OpenH264 (BSD-2-Clause, Cisco's library built from source by the `openh264` crate) against
//! x264 (ffmpeg's libx264, the library pixelflux links) on pixelflux's synthetic desktop
//! scenes: single-thread encode speed (CPU time, so other load does not skew it), and PSNR at the same bitrate.
//!
//! Per scene: the frames are converted to I420 once (BT.709, limited range, as pixelflux
//! does) and written to `target/openh264/<scene>.yuv`; x264 encodes them as pixelflux
//! configures it (ultrafast, zerolatency, CRF 25, no B-frames, one thread); OpenH264 then
//! encodes the same frames at x264's bitrate (bitrate rate control, screen-content mode, one
//! thread); ffmpeg decodes both streams and measures PSNR (Y, U, V averaged) against the input.
//!
//!   cargo run --release --manifest-path bench/openh264/Cargo.toml -- [WxH] [frames] [scenes]

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, IntraFramePeriod, RateControlMode,
    UsageType,
};
use openh264::formats::YUVSlices;
use openh264::OpenH264API;
use pixelflux::{CaptureSettings, PipelineConfig, Scene, SourceSpec};
use yuv::{BufferStoreMut, YuvConversionMode, YuvPlanarImageMut, YuvRange, YuvStandardMatrix};

const FPS: f64 = 60.0;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let size = args.first().map(String::as_str).unwrap_or("1920x1080");
    let (w, h) = size.split_once('x').context("size is WxH")?;
    let (width, height): (u32, u32) = (w.parse()?, h.parse()?);
    let frames: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(120);
    let scenes = args
        .get(2)
        .map(String::as_str)
        .unwrap_or("typing,scroll,video,full");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/openh264");
    std::fs::create_dir_all(&out)?;
    println!(
        "{size}, {frames} frames at {FPS} fps, one thread per encoder\n\
         scene   encoder   fps(1 thread)  kbit/s   PSNR dB"
    );
    for scene in scenes.split(',') {
        let scene: Scene = scene.parse().map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let yuv = out.join(format!("{scene}.yuv"));
        write_i420(scene, width, height, frames, &yuv)?;

        let x264_out = out.join(format!("{scene}-x264.h264"));
        let x264_secs = x264(&yuv, width, height, &x264_out)?;
        let x264_bytes = std::fs::metadata(&x264_out)?.len();
        let kbps = x264_bytes as f64 * 8.0 / 1000.0 / (frames as f64 / FPS);
        let x264_psnr = psnr(&x264_out, &yuv, width, height)?;
        println!(
            "{scene:7} x264      {:13.1}  {kbps:7.0}  {x264_psnr:6.2}",
            frames as f64 / x264_secs
        );

        let oh_out = out.join(format!("{scene}-openh264.h264"));
        let (oh_secs, oh_bytes) = openh264_encode(&yuv, width, height, frames, kbps, &oh_out)?;
        let oh_psnr = psnr(&oh_out, &yuv, width, height)?;
        println!(
            "{scene:7} openh264  {:13.1}  {:7.0}  {oh_psnr:6.2}",
            frames as f64 / oh_secs,
            oh_bytes as f64 * 8.0 / 1000.0 / (frames as f64 / FPS)
        );
    }
    Ok(())
}

/// `frames` frames of `scene`, as I420, one after another into `path`.
fn write_i420(
    scene: Scene,
    width: u32,
    height: u32,
    frames: usize,
    path: &Path,
) -> anyhow::Result<()> {
    let settings = CaptureSettings {
        capture_width: width,
        capture_height: height,
        ..Default::default()
    };
    let config = PipelineConfig::new(&settings)?;
    let mut source = SourceSpec::Synthetic(scene).open(&config)?;
    let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
    let mut all = Vec::with_capacity(frames * (width * height + 2 * cw * ch) as usize);
    let mut bgra = Vec::with_capacity((width * height * 4) as usize);
    for _ in 0..frames {
        let frame = source.grab()?;
        let view = frame.view();
        bgra.clear();
        for y in 0..height {
            bgra.extend_from_slice(view.row(y));
        }
        let (mut y, mut u, mut v) = (
            vec![0u8; (width * height) as usize],
            vec![0u8; (cw * ch) as usize],
            vec![0u8; (cw * ch) as usize],
        );
        let mut image = YuvPlanarImageMut {
            y_plane: BufferStoreMut::Borrowed(&mut y),
            y_stride: width,
            u_plane: BufferStoreMut::Borrowed(&mut u),
            u_stride: cw,
            v_plane: BufferStoreMut::Borrowed(&mut v),
            v_stride: cw,
            width,
            height,
        };
        yuv::bgra_to_yuv420(
            &mut image,
            &bgra,
            width * 4,
            YuvRange::Limited,
            YuvStandardMatrix::Bt709,
            YuvConversionMode::Balanced,
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        all.extend_from_slice(&y);
        all.extend_from_slice(&u);
        all.extend_from_slice(&v);
    }
    std::fs::write(path, all)?;
    Ok(())
}

/// Encodes with ffmpeg's libx264 as pixelflux configures x264; returns ffmpeg's user CPU
/// seconds (`-benchmark`).
fn x264(yuv: &Path, width: u32, height: u32, out: &Path) -> anyhow::Result<f64> {
    let o = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-y",
            "-benchmark",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-s", &format!("{width}x{height}"), "-framerate", "60", "-i"])
        .arg(yuv)
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
        ])
        .args([
            "-crf",
            "25",
            "-bf",
            "0",
            "-threads",
            "1",
            "-x264-params",
            "keyint=infinite",
        ])
        .args(["-f", "h264"])
        .arg(out)
        .output()
        .context("run ffmpeg (libx264)")?;
    let err = String::from_utf8_lossy(&o.stderr);
    if !o.status.success() {
        bail!("ffmpeg x264 failed: {err}");
    }
    let utime = err
        .split("utime=")
        .nth(1)
        .and_then(|s| s.split('s').next())
        .context("no -benchmark line")?;
    Ok(utime.parse()?)
}

/// CPU seconds this process has used (all threads): comparable with ffmpeg's `utime` and
/// unaffected by other load on the machine.
fn cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant libc defines.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// Encodes with OpenH264 at `kbps`; returns (CPU seconds spent in the encoder, bytes).
fn openh264_encode(
    yuv: &Path,
    width: u32,
    height: u32,
    frames: usize,
    kbps: f64,
    out: &Path,
) -> anyhow::Result<(f64, u64)> {
    let data = std::fs::read(yuv)?;
    let (w, h) = (width as usize, height as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let frame_len = w * h + 2 * cw * ch;
    let config = EncoderConfig::new()
        .bitrate(BitRate::from_bps((kbps * 1000.0) as u32))
        .max_frame_rate(FrameRate::from_hz(FPS as f32))
        .rate_control_mode(RateControlMode::Bitrate)
        .usage_type(UsageType::ScreenContentRealTime)
        .complexity(Complexity::Low)
        // Frame skipping would drop pictures; pixelflux must deliver every changed frame.
        .skip_frames(false)
        .num_threads(1)
        .intra_frame_period(IntraFramePeriod::from_num_frames(100_000));
    let mut encoder = Encoder::with_api_config(OpenH264API::from_source(), config)?;
    let mut stream = Vec::new();
    let mut spent = 0.0;
    for i in 0..frames {
        let f = &data[i * frame_len..(i + 1) * frame_len];
        let (y, rest) = f.split_at(w * h);
        let (u, v) = rest.split_at(cw * ch);
        let src = YUVSlices::new((y, u, v), (w, h), (w, cw, cw));
        let t0 = cpu_seconds();
        let bits = encoder.encode(&src)?;
        bits.write_vec(&mut stream);
        spent += cpu_seconds() - t0;
    }
    std::fs::write(out, &stream)?;
    Ok((spent, stream.len() as u64))
}

/// ffmpeg's PSNR ("average", over Y, U and V) of `stream` against the I420 input.
fn psnr(stream: &PathBuf, yuv: &Path, width: u32, height: u32) -> anyhow::Result<f64> {
    let o = Command::new("ffmpeg")
        // Both inputs at the same frame rate, so the psnr filter pairs frame n with frame n.
        .args(["-hide_banner", "-framerate", "60", "-f", "h264", "-i"])
        .arg(stream)
        .args([
            "-f",
            "rawvideo",
            "-pix_fmt",
            "yuv420p",
            "-s",
            &format!("{width}x{height}"),
        ])
        .args(["-framerate", "60", "-i"])
        .arg(yuv)
        .args(["-lavfi", "[0:v][1:v]psnr", "-f", "null", "-"])
        .output()
        .context("run ffmpeg (psnr)")?;
    let err = String::from_utf8_lossy(&o.stderr);
    let avg = err
        .split("average:")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .with_context(|| format!("no PSNR in ffmpeg's output: {err}"))?;
    Ok(avg.parse()?)
}
