//! JPEG chroma subsampling: the rate–distortion measurement behind the default of
//! `jpeg_subsampling`, and a test that the default holds on the `desktop` scene.
//!
//! Measurement (prints a table, see docs/PERFORMANCE.md):
//! `cargo test --release -p pixelflux --test jpeg_chroma -- --ignored --nocapture`

mod support;

use std::time::Instant;

use pixelflux::encode::chroma_detail;
use pixelflux::source::synthetic::SyntheticSource;
use pixelflux::{CaptureSettings, JpegSubsampling, OwnedFrame, Scene};
use turbojpeg::{Compressor, Image, PixelFormat, Subsamp};

/// 1080p frame `index` of a scene.
fn scene_frame(scene: Scene, index: u32) -> OwnedFrame {
    let mut s = SyntheticSource::new(scene, 1920, 1080);
    for _ in 0..index {
        s.advance();
    }
    s.advance().clone()
}

/// Encodes `frame` as 64-row JPEG stripes; returns (bytes, PSNR of the decoded frame, CPU ms).
/// `subsamp` `None` decides per stripe as `JpegSubsampling::Auto` does.
fn encode_stripes(
    frame: &OwnedFrame,
    quality: i32,
    subsamp: Option<Subsamp>,
    optimize: bool,
) -> (usize, f64, f64) {
    let mut c = Compressor::new().expect("compressor");
    c.set_quality(quality).expect("quality");
    c.set_optimize(optimize).expect("optimize");
    let mut decoded = OwnedFrame::new(frame.width, frame.height);
    let stride = frame.stride();
    let mut bytes = 0;
    let mut ms = 0.0;
    for y in (0..frame.height).step_by(64) {
        let h = 64.min(frame.height - y);
        let start = y as usize * stride;
        let image = Image {
            pixels: &frame.data[start..start + h as usize * stride],
            width: frame.width as usize,
            pitch: stride,
            height: h as usize,
            format: PixelFormat::BGRX,
        };
        let t = Instant::now();
        let chosen = subsamp.unwrap_or_else(|| {
            let view = frame.view().rows(y, h);
            if quality >= pixelflux::encode::FULL_CHROMA_MIN_QUALITY as i32
                || chroma_detail(view) >= pixelflux::encode::AUTO_FULL_CHROMA_DETAIL
            {
                Subsamp::None
            } else {
                Subsamp::Sub2x2
            }
        });
        c.set_subsamp(chosen).expect("subsamp");
        let jpeg = c.compress_to_owned(image).expect("compress");
        ms += t.elapsed().as_secs_f64() * 1e3;
        bytes += jpeg.len();
        let stripe = support::decode_jpeg(&jpeg);
        decoded.data[start..start + stripe.data.len()].copy_from_slice(&stripe.data);
    }
    (bytes, support::psnr(frame, &decoded), ms)
}

#[test]
#[ignore = "measurement: prints the rate-distortion table"]
fn bench_jpeg_chroma() {
    let scenes = [
        ("desktop", scene_frame(Scene::Desktop, 0)),
        ("static", scene_frame(Scene::Static, 0)),
        ("video", scene_frame(Scene::Video, 5)),
        ("full", scene_frame(Scene::Full, 5)),
    ];
    for (name, frame) in &scenes {
        let details: Vec<u32> = (0..frame.height)
            .step_by(64)
            .map(|y| chroma_detail(frame.view().rows(y, 64.min(frame.height - y))))
            .collect();
        println!("{name}: chroma detail per 64-row stripe {details:?}");
    }
    println!("| scene | quality | 4:2:0 KB | 4:2:0 dB | 4:4:4 KB | 4:4:4 dB | auto KB | auto dB | 4:4:4 optimized KB | ms 4:2:0 / 4:4:4 / auto / opt |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (name, frame) in &scenes {
        for q in [60, 70, 75, 80, 85, 90, 95] {
            let (b420, p420, t420) = encode_stripes(frame, q, Some(Subsamp::Sub2x2), false);
            let (b444, p444, t444) = encode_stripes(frame, q, Some(Subsamp::None), false);
            let (bauto, pauto, tauto) = encode_stripes(frame, q, None, false);
            let (bopt, popt, topt) = encode_stripes(frame, q, Some(Subsamp::None), true);
            assert!(
                (popt - p444).abs() < 1e-9,
                "optimized Huffman tables are lossless"
            );
            println!(
                "| {name} | {q} | {} | {p420:.2} | {} | {p444:.2} | {} | {pauto:.2} | {} | {t420:.1} / {t444:.1} / {tauto:.1} / {topt:.1} |",
                b420 / 1024,
                b444 / 1024,
                bauto / 1024,
                bopt / 1024
            );
        }
    }
}

/// Encodes every 64-row stripe of `frame` with the encoder the settings make (as a capture
/// does), decodes each with libjpeg-turbo; returns (bytes, PSNR, subsampling per stripe).
fn encode_as_capture(
    settings: &CaptureSettings,
    frame: &OwnedFrame,
) -> (usize, f64, Vec<turbojpeg::Subsamp>) {
    use pixelflux::encode::{new_encoder, EncodeRequest, StripePlace};
    let mut decoded = OwnedFrame::new(frame.width, frame.height);
    let mut bytes = 0;
    let mut subsamps = Vec::new();
    let stride = frame.stride();
    for y in (0..frame.height).step_by(64) {
        let h = 64.min(frame.height - y);
        let config = pixelflux::PipelineConfig::new(settings).expect("valid settings");
        let mut enc = new_encoder(config.encoder(), frame.width, h).expect("encoder");
        let request = EncodeRequest {
            jpeg_quality: settings.jpeg_quality,
            paint_over: false,
            keyframe: true,
        };
        let mut out = Vec::new();
        let outcome = enc
            .encode(
                frame.view().rows(y, h),
                &request,
                StripePlace { frame_id: 0, y },
                &mut out,
            )
            .expect("encode")
            .expect("a stripe");
        let jpeg = &out[outcome.header_len..];
        bytes += jpeg.len();
        subsamps.push(turbojpeg::read_header(jpeg).expect("header").subsamp);
        let stripe = support::decode_jpeg(jpeg);
        let start = y as usize * stride;
        decoded.data[start..start + stripe.data.len()].copy_from_slice(&stripe.data);
    }
    (bytes, support::psnr(frame, &decoded), subsamps)
}

/// At default settings (quality 85, `jpeg_subsampling` auto) the coloured desktop gets at
/// least the PSNR of pixelflux 1.2.2's JPEG (4:4:4 at the same quality, same libjpeg-turbo)
/// for no more bytes, with its text stripes in 4:4:4; grey text and texture stay 4:2:0, and
/// get at least 4:4:4's PSNR there too.
#[test]
fn default_chroma_matches_upstream_on_the_desktop_scene() {
    let settings = CaptureSettings::default();
    assert_eq!(settings.jpeg_subsampling, JpegSubsampling::Auto);
    let desktop = scene_frame(Scene::Desktop, 0);
    let (bytes, db, subsamps) = encode_as_capture(&settings, &desktop);
    let (up_bytes, up_db, _) = encode_stripes(&desktop, 85, Some(Subsamp::None), false);
    println!("desktop at defaults: {bytes} B, {db:.2} dB; upstream's 4:4:4 q85: {up_bytes} B, {up_db:.2} dB");
    assert!(db >= up_db - 0.01, "{db:.2} dB < upstream {up_db:.2} dB");
    assert!(bytes <= up_bytes, "{bytes} B > upstream {up_bytes} B");
    // Rows 128..832 hold the windows' text: all 4:4:4.
    for (i, s) in subsamps.iter().enumerate().take(13).skip(2) {
        assert_eq!(*s, Subsamp::None, "desktop stripe {i}");
    }
    // The same at 4:2:0 loses more than 3 dB on this content: the choice matters.
    let s420 = CaptureSettings {
        jpeg_subsampling: JpegSubsampling::S420,
        ..settings.clone()
    };
    let (_, db420, subsamps420) = encode_as_capture(&s420, &desktop);
    assert!(db >= db420 + 3.0, "auto {db:.2} dB vs 4:2:0 {db420:.2} dB");
    assert!(subsamps420.iter().all(|s| *s == Subsamp::Sub2x2));

    // Grey text on white and photo-like texture: 4:2:0 in the middle stripes.
    for scene in [Scene::Static, Scene::Full] {
        let (_, _, subsamps) = encode_as_capture(&settings, &scene_frame(scene, 1));
        for (i, s) in subsamps.iter().enumerate().take(14).skip(3) {
            assert_eq!(*s, Subsamp::Sub2x2, "{scene} stripe {i}");
        }
    }
    // Where it chooses 4:2:0 (AUTO_420_QUALITY_STEP higher), at least 4:4:4's PSNR for about
    // its bytes: within 2%, a quality step being the finest control there is.
    for (scene, index) in [(Scene::Static, 0), (Scene::Full, 5), (Scene::Scroll, 5)] {
        let frame = scene_frame(scene, index);
        let (bytes, db, _) = encode_as_capture(&settings, &frame);
        let (b444, db444, _) = encode_stripes(&frame, 85, Some(Subsamp::None), false);
        println!("{scene} at defaults: {bytes} B, {db:.2} dB; 4:4:4 q85: {b444} B, {db444:.2} dB");
        assert!(db >= db444, "{scene}: {db:.2} dB < 4:4:4's {db444:.2} dB");
        assert!(
            bytes as f64 <= b444 as f64 * 1.02,
            "{scene}: {bytes} B against 4:4:4's {b444} B"
        );
    }
    // From quality 90 up, auto is 4:4:4 everywhere (high quality means sharp).
    let q90 = CaptureSettings {
        jpeg_quality: 90,
        ..settings.clone()
    };
    let (_, _, subsamps90) = encode_as_capture(&q90, &scene_frame(Scene::Full, 1));
    assert!(subsamps90.iter().all(|s| *s == Subsamp::None));
    let s444 = CaptureSettings {
        jpeg_subsampling: JpegSubsampling::S444,
        ..settings
    };
    let (_, _, subsamps444) = encode_as_capture(&s444, &scene_frame(Scene::Static, 0));
    assert!(subsamps444.iter().all(|s| *s == Subsamp::None));
}

/// Lossless (or near) still formats for the refresh of a stripe that stopped changing, on the
/// `desktop` scene at 1080p in 64-row stripes: bytes and encode CPU. PNG and JPEG in process
/// (the `png` crate as `encode::still` uses it, libjpeg-turbo); lossless WebP and QOI through
/// ffmpeg (libwebp; CPU from `-benchmark`, minus the same run writing raw video). With
/// `STILL_OUT=dir` the encoded stripes are kept there for the browser decode timing
/// (`tests/browser/still-decode.mjs`).
#[test]
#[ignore = "measurement: prints the still format table"]
fn bench_still_formats() {
    use pixelflux::encode::encode_png;
    use std::process::Command;
    let frame = scene_frame(Scene::Desktop, 0);
    let keep = std::env::var_os("STILL_OUT").map(std::path::PathBuf::from);
    let dir = tempfile::tempdir().expect("tempdir");
    let stripes: Vec<OwnedFrame> = (0..frame.height)
        .step_by(64)
        .map(|y| support::crop_rows(&frame, y, 64.min(frame.height - y)))
        .collect();
    let save = |name: &str, i: usize, bytes: &[u8]| {
        if let Some(k) = &keep {
            std::fs::create_dir_all(k.join(name)).expect("mkdir");
            std::fs::write(k.join(name).join(format!("{i:02}")), bytes).expect("write");
        }
    };
    println!("| format | KB (17 stripes) | encode ms (whole frame) | lossless |");
    println!("|---|---|---|---|");
    for (name, compression) in [
        ("png-fast", png::Compression::Fast),
        ("png-default", png::Compression::Default),
    ] {
        let (mut bytes, mut best) = (0, f64::MAX);
        for _ in 0..5 {
            bytes = 0;
            let t = Instant::now();
            for (i, s) in stripes.iter().enumerate() {
                let mut out = Vec::new();
                if matches!(compression, png::Compression::Default) {
                    encode_png(s.view(), &mut Vec::new(), &mut out).expect("png");
                } else {
                    let mut rgb = Vec::new();
                    for px in s.data.chunks_exact(4) {
                        rgb.extend_from_slice(&[px[2], px[1], px[0]]);
                    }
                    let mut e = png::Encoder::new(&mut out, s.width, s.height);
                    e.set_color(png::ColorType::Rgb);
                    e.set_compression(compression);
                    e.set_adaptive_filter(png::AdaptiveFilterType::Adaptive);
                    let mut w = e.write_header().expect("header");
                    w.write_image_data(&rgb).expect("data");
                    w.finish().expect("finish");
                }
                bytes += out.len();
                save(name, i, &out);
            }
            best = best.min(t.elapsed().as_secs_f64() * 1e3);
        }
        println!("| {name} | {} | {best:.1} | yes |", bytes / 1024);
    }
    for q in [95, 100] {
        let (mut bytes, mut best, mut db) = (0, f64::MAX, 0.0);
        for _ in 0..5 {
            let ms;
            (bytes, db, ms) = encode_stripes(&frame, q, Some(Subsamp::None), false);
            best = best.min(ms);
        }
        let mut c = Compressor::new().expect("compressor");
        c.set_quality(q).expect("q");
        c.set_subsamp(Subsamp::None).expect("subsamp");
        for (i, s) in stripes.iter().enumerate() {
            let image = Image {
                pixels: &s.data[..],
                width: s.width as usize,
                pitch: s.stride(),
                height: s.height as usize,
                format: PixelFormat::BGRX,
            };
            save(
                &format!("jpeg-q{q}"),
                i,
                &c.compress_to_owned(image).expect("jpeg"),
            );
        }
        println!(
            "| JPEG q{q} 4:4:4 | {} | {best:.1} | {db:.2} dB |",
            bytes / 1024
        );
    }
    // ffmpeg: PPM stripes in, one run per format over all 17.
    for (i, s) in stripes.iter().enumerate() {
        let mut ppm = format!("P6\n{} {}\n255\n", s.width, s.height).into_bytes();
        for px in s.data.chunks_exact(4) {
            ppm.extend_from_slice(&[px[2], px[1], px[0]]);
        }
        std::fs::write(dir.path().join(format!("s{i:02}.ppm")), ppm).expect("ppm");
    }
    let utime = |args: &[&str], out: &str| -> f64 {
        let o = Command::new("ffmpeg")
            .args(["-hide_banner", "-benchmark", "-y", "-f", "image2", "-i"])
            .arg(dir.path().join("s%02d.ppm"))
            .args(args)
            .arg(dir.path().join(out))
            .output()
            .expect("ffmpeg runs");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let err = String::from_utf8_lossy(&o.stderr);
        let u = err
            .split("utime=")
            .nth(1)
            .and_then(|r| r.split('s').next())
            .and_then(|v| v.parse::<f64>().ok())
            .expect("ffmpeg -benchmark utime");
        u * 1e3
    };
    let raw = (0..3)
        .map(|_| utime(&["-f", "image2", "-c:v", "rawvideo"], "r%02d.raw"))
        .fold(f64::MAX, f64::min);
    for (name, args, ext) in [
        (
            "webp-lossless-m0",
            &[
                "-c:v",
                "libwebp",
                "-lossless",
                "1",
                "-compression_level",
                "0",
            ][..],
            "webp",
        ),
        (
            "webp-lossless-m4",
            &[
                "-c:v",
                "libwebp",
                "-lossless",
                "1",
                "-compression_level",
                "4",
            ][..],
            "webp",
        ),
        ("qoi", &["-c:v", "qoi"][..], "qoi"),
    ] {
        let out = format!("{name}-%02d.{ext}");
        let ms = (0..3).map(|_| utime(args, &out)).fold(f64::MAX, f64::min) - raw;
        let mut bytes = 0;
        for i in 0..stripes.len() {
            let f = dir.path().join(format!("{name}-{:02}.{ext}", i + 1));
            let data = std::fs::read(&f).expect("ffmpeg output");
            bytes += data.len();
            save(name, i, &data);
        }
        println!(
            "| {name} (ffmpeg) | {} | {ms:.0} (ffmpeg utime, ±10) | yes |",
            bytes / 1024
        );
    }
}
