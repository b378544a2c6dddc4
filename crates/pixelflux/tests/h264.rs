//! H.264 stripes from a real Xvfb, decoded by ffmpeg and compared with what was drawn.
//!
//! Each stripe position (`y`) is its own H.264 stream: the payloads after the 10-byte header,
//! concatenated in order, are what a browser's per-stripe decoder gets.
#![cfg(feature = "x264")] // the H.264 encoder is behind the default `x264` feature

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use pixelflux::wire::{nal_types, H264FrameType};
use pixelflux::{
    CaptureError, CaptureSettings, Codec, OwnedFrame, ScreenCapture, SourceSpec, Stripe,
};
use support::*;

/// H.264 settings with 64-row stripes, so small test regions still have several stripes
/// (the default for H.264 is one stripe per core, at least 256 rows;
/// `default_stripes_are_one_per_core_and_at_least_256_rows` covers it).
fn h264(w: u32, h: u32) -> CaptureSettings {
    CaptureSettings {
        capture_width: w,
        capture_height: h,
        target_fps: 30.0,
        output_mode: Codec::H264,
        h264_crf: 25,
        stripe_height: 64,
        ..Default::default()
    }
}

/// The stripes of each stripe position, in the order they were sent.
fn by_y(stripes: &[Stripe]) -> BTreeMap<u32, Vec<&Stripe>> {
    let mut map: BTreeMap<u32, Vec<&Stripe>> = BTreeMap::new();
    for s in stripes {
        map.entry(s.y).or_default().push(s);
    }
    map
}

/// Checks the 10-byte header against the stripe's fields.
fn check_header(s: &Stripe) {
    assert_eq!(s.kind.codec(), Some(Codec::H264));
    assert_eq!(s.header_len, 10);
    let d = &s.data;
    let be = |i: usize| u16::from_be_bytes([d[i], d[i + 1]]) as u64;
    assert_eq!(d[0], 0x04, "H.264 tag");
    assert_eq!(Some(d[1]), s.h264_frame_type().map(|t| t as u8));
    assert_eq!(be(2), s.frame_id % 65536);
    assert_eq!(be(4), s.y as u64);
    assert_eq!(be(6), s.width as u64);
    assert_eq!(be(8), s.height as u64);
}

/// Writes one stripe position's stream to `dir` and returns its path.
fn write_stream(dir: &Path, stripes: &[&Stripe]) -> std::path::PathBuf {
    let path = dir.join(format!("y{}.h264", stripes[0].y));
    let stream: Vec<u8> = stripes
        .iter()
        .flat_map(|s| s.payload().iter().copied())
        .collect();
    std::fs::write(&path, stream).unwrap();
    path
}

/// Decodes one stripe position's stream with ffmpeg into BGRX frames of `w` x `h`.
fn decode(stripes: &[&Stripe], w: u32, h: u32) -> Vec<OwnedFrame> {
    let stream: Vec<u8> = stripes
        .iter()
        .flat_map(|s| s.payload().iter().copied())
        .collect();
    decode_h264(&stream, w, h)
}

/// `ffprobe`'s view of a stream: `key=value` lines of its first video stream.
fn probe(path: &Path) -> BTreeMap<String, String> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-f", "h264", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream",
            "-of",
            "default=noprint_wrappers=1",
        ])
        .arg(path)
        .output()
        .expect("ffprobe must be installed");
    assert!(out.status.success(), "ffprobe failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// NAL unit types of a stripe's payload, without SEI (x264 puts a version SEI into the very
/// first picture only).
fn nals(s: &Stripe) -> Vec<u8> {
    nal_types(s.payload())
        .into_iter()
        .filter(|&t| t != 6)
        .collect()
}

#[test]
fn stripes_decode_to_the_drawn_picture_and_paint_over_sharpens_them() {
    let xvfb = Xvfb::start(800, 600);
    let painter = xvfb.connect();
    let pattern = test_pattern(640, 480, 1);
    painter.put(&pattern, 100, 50);
    let (cap, log) = start(
        &xvfb,
        CaptureSettings {
            capture_x: 100,
            capture_y: 50,
            use_paint_over_quality: true,
            paint_over_trigger_frames: 3,
            ..h264(640, 480)
        },
    );
    frames_pass(&cap, 10);
    assert!(cap.stop().is_none());
    let log = log.lock().unwrap();
    let streams = by_y(&log);
    assert_eq!(
        streams.keys().copied().collect::<Vec<_>>(),
        (0..8).map(|i| i * 64).collect::<Vec<u32>>()
    );
    let dir = tempfile::tempdir().unwrap();
    let mut first_frame = OwnedFrame::new(640, 480);
    for (&y, stripes) in &streams {
        // 480 rows: seven stripes of 64, the last one 32.
        let h = 64.min(480 - y);
        for s in stripes {
            check_header(s);
            assert_eq!((s.width, s.height), (640, h));
        }
        // The first frame, then one paint-over: both IDRs with SPS/PPS in front.
        assert_eq!(
            stripes.len(),
            2,
            "stripe {y}: first send and one paint-over"
        );
        assert!(!stripes[0].paint_over && stripes[1].paint_over);
        // 1.2.2's header of frame 0, byte for byte as the format defines it: 0x04, 0x01 (IDR),
        // frame 0, y, width 640 (0x0280), height.
        assert_eq!(
            stripes[0].data[..10],
            [
                0x04,
                0x01,
                0x00,
                0x00,
                (y >> 8) as u8,
                y as u8,
                0x02,
                0x80,
                0x00,
                h as u8
            ],
            "stripe {y}: header"
        );
        for s in stripes {
            assert_eq!(s.h264_frame_type(), Some(H264FrameType::Idr));
            assert_eq!(nals(s), [7, 8, 5], "SPS, PPS, IDR slice");
        }
        let frames = decode(stripes, 640, h);
        assert_eq!(
            frames.len(),
            2,
            "stripe {y}: one decoded picture per stripe sent"
        );
        let truth = crop_rows(&pattern, y, h);
        let first = psnr(&frames[0], &truth);
        let painted = psnr(&frames[1], &truth);
        eprintln!("stripe {y}: first {first:.1} dB, paint-over {painted:.1} dB");
        assert!(first >= 35.0, "stripe {y}: {first:.1} dB at CRF 25");
        assert!(painted >= 40.0, "stripe {y}: paint-over {painted:.1} dB");
        assert!(
            painted > first + 3.0,
            "stripe {y}: paint-over {painted:.1} dB vs {first:.1} dB"
        );
        let start = y as usize * first_frame.stride();
        first_frame.data[start..start + frames[0].data.len()].copy_from_slice(&frames[0].data);
    }
    let whole = psnr(&first_frame, &pattern);
    assert!(whole >= 35.0, "whole first frame {whole:.1} dB");
    // 4:2:0 stream: baseline profile, BT.709 limited range described in the VUI.
    let info = probe(&write_stream(dir.path(), &streams[&0]));
    assert_eq!(info["profile"], "Constrained Baseline", "{info:?}");
    assert_eq!(info["pix_fmt"], "yuv420p");
    assert_eq!(info["color_range"], "tv");
    assert_eq!(info["color_space"], "bt709");
    assert_eq!(info["color_primaries"], "bt709");
    assert_eq!(info["color_transfer"], "bt709");
}

#[test]
fn paint_over_after_p_pictures_is_sharp() {
    // The case a CRF change alone does not handle: an IDR after P pictures takes its
    // quantizer from those P pictures (see encode/h264.rs).
    let xvfb = Xvfb::start(320, 64);
    let painter = xvfb.connect();
    painter.put(&test_pattern(320, 64, 8), 0, 0);
    let (cap, log) = start(
        &xvfb,
        CaptureSettings {
            use_paint_over_quality: true,
            paint_over_trigger_frames: 4,
            damage_block_threshold: 100,
            ..h264(320, 64)
        },
    );
    frames_pass(&cap, 2);
    let mut last = test_pattern(320, 64, 0);
    for i in 0..5 {
        last = test_pattern(320, 64, 20 + i);
        painter.put(&last, 0, 0);
        frames_pass(&cap, 1);
    }
    frames_pass(&cap, 8);
    cap.stop();
    let log = log.lock().unwrap();
    let all: Vec<&Stripe> = log.iter().collect();
    let paint = all.last().unwrap();
    assert!(paint.paint_over, "ends with a paint-over");
    assert_eq!(paint.h264_frame_type(), Some(H264FrameType::Idr));
    let change = all.iter().rposition(|s| !s.paint_over).unwrap();
    assert_eq!(all[change].h264_frame_type(), Some(H264FrameType::Other));
    let frames = decode(&all, 320, 64);
    assert_eq!(frames.len(), all.len());
    let changed = psnr(&frames[change], &last);
    let painted = psnr(frames.last().unwrap(), &last);
    eprintln!("last P picture {changed:.1} dB, paint-over {painted:.1} dB");
    assert!(painted >= 40.0, "paint-over {painted:.1} dB");
    assert!(
        painted > changed + 3.0,
        "paint-over {painted:.1} dB vs {changed:.1} dB"
    );
}

#[test]
fn fullcolor_streams_are_high_444() {
    let xvfb = Xvfb::start(320, 128);
    let painter = xvfb.connect();
    let pattern = test_pattern(320, 128, 4);
    painter.put(&pattern, 0, 0);
    let (cap, log) = start(
        &xvfb,
        CaptureSettings {
            h264_fullcolor: true,
            ..h264(320, 128)
        },
    );
    frames_pass(&cap, 3);
    cap.stop();
    let log = log.lock().unwrap();
    let streams = by_y(&log);
    assert_eq!(streams.len(), 2);
    let dir = tempfile::tempdir().unwrap();
    for (&y, stripes) in &streams {
        let info = probe(&write_stream(dir.path(), stripes));
        assert_eq!(info["profile"], "High 4:4:4 Predictive", "{info:?}");
        assert_eq!(info["pix_fmt"], "yuv444p");
        let frames = decode(stripes, 320, 64);
        assert_eq!(frames.len(), 1);
        let db = psnr(&frames[0], &crop_rows(&pattern, y, 64));
        assert!(db >= 35.0, "stripe {y}: {db:.1} dB");
    }
}

#[test]
fn request_idr_makes_every_stripe_send_an_idr_with_headers() {
    let xvfb = Xvfb::start(640, 480);
    let painter = xvfb.connect();
    painter.put(&test_pattern(640, 480, 2), 0, 0);
    let (cap, log) = start(&xvfb, h264(640, 480));
    frames_pass(&cap, 3);
    // A change in stripe 2 (rows 128..192) only: a P picture.
    painter.fill(10, 130, 50, 10, 0xff0000);
    frames_pass(&cap, 3);
    let before = log.lock().unwrap().len();
    cap.request_idr();
    frames_pass(&cap, 3);
    cap.stop();
    let log = log.lock().unwrap();
    assert_eq!(
        before, 9,
        "8 stripes of the first frame, then the changed one"
    );
    let change = &log[8];
    assert_eq!(change.y, 128);
    assert_eq!(change.h264_frame_type(), Some(H264FrameType::Other));
    assert_eq!(change.data[1], 0x00);
    assert_eq!(nals(change), [1], "a P slice, no SPS/PPS");
    let refreshed = &log[before..];
    assert_eq!(
        refreshed.iter().map(|s| s.y).collect::<Vec<_>>(),
        (0..8).map(|i| i * 64).collect::<Vec<u32>>(),
        "every stripe, once"
    );
    for s in refreshed {
        check_header(s);
        assert_eq!(s.frame_id, refreshed[0].frame_id, "all in one frame");
        assert_eq!(s.data[1], 0x01, "IDR");
        assert_eq!(&nals(s)[..2], &[7, 8], "starts with SPS, PPS");
    }
    // The changed stripe's stream (IDR, P, IDR) decodes, with the red block in the end.
    let streams = by_y(&log);
    let frames = decode(&streams[&128], 640, 64);
    assert_eq!(frames.len(), 3);
    let [b, g, r, _] = frames[2].view().pixel(30, 135 - 128);
    assert!(r > 200 && g < 60 && b < 60, "got {r},{g},{b}");
}

#[test]
fn a_refresh_idr_is_as_sharp_as_the_first_one() {
    // x264's CRF rate control coded an IDR right after the first one at QP 35 instead of 22
    // (28.8 dB instead of 43.3 dB on a still screen), and one after P pictures at whatever
    // those P pictures had; refreshes are now forced to the first picture's quantizer
    // (docs/h264.md). Both cases: a refresh of a still screen, and one after the stripes
    // changed twice (P pictures) and came back to the same picture.
    let xvfb = Xvfb::start(640, 128);
    let painter = xvfb.connect();
    let pattern = test_pattern(640, 128, 5);
    painter.put(&pattern, 0, 0);
    let (cap, log) = start(&xvfb, h264(640, 128));
    frames_pass(&cap, 3);
    cap.request_idr();
    frames_pass(&cap, 3);
    painter.put(&test_pattern(640, 128, 6), 0, 0);
    frames_pass(&cap, 3);
    painter.put(&pattern, 0, 0);
    frames_pass(&cap, 3);
    cap.request_idr();
    frames_pass(&cap, 3);
    assert!(cap.stop().is_none());
    let log = log.lock().unwrap();
    let streams = by_y(&log);
    assert_eq!(streams.keys().copied().collect::<Vec<_>>(), [0, 64]);
    for (&y, stripes) in &streams {
        let idrs: Vec<usize> = (0..stripes.len())
            .filter(|&i| stripes[i].h264_frame_type() == Some(H264FrameType::Idr))
            .collect();
        assert_eq!(idrs.len(), 3, "stripe {y}: first, two refreshes");
        assert_eq!(
            idrs[..2],
            [0, 1],
            "stripe {y}: the still refresh right after the first"
        );
        assert!(
            idrs[2] >= 4,
            "stripe {y}: P pictures before the second refresh"
        );
        let frames = decode(stripes, 640, 64);
        assert_eq!(frames.len(), stripes.len());
        let truth = crop_rows(&pattern, y, 64);
        let [first, still, after_p] = [idrs[0], idrs[1], idrs[2]].map(|i| psnr(&frames[i], &truth));
        let bytes = |i: usize| stripes[i].payload().len();
        let p_bytes: usize = (0..stripes.len())
            .filter(|i| !idrs.contains(i))
            .map(bytes)
            .sum();
        eprintln!(
            "stripe {y}: first IDR {first:.1} dB {} B, refresh {still:.1} dB {} B, refresh after \
             P pictures {after_p:.1} dB {} B; {} P pictures {p_bytes} B",
            bytes(idrs[0]),
            bytes(idrs[1]),
            bytes(idrs[2]),
            stripes.len() - 3
        );
        assert!(
            first >= 40.0,
            "stripe {y}: first IDR {first:.1} dB at CRF 25"
        );
        for (what, db) in [("refresh", still), ("refresh after P pictures", after_p)] {
            assert!(
                db >= first - 1.0,
                "stripe {y}: {what} {db:.1} dB vs first IDR {first:.1} dB"
            );
        }
    }
}

#[test]
fn a_change_in_a_few_rows_sends_only_the_stripes_covering_them() {
    let xvfb = Xvfb::start(640, 480);
    let painter = xvfb.connect();
    let pattern = test_pattern(640, 480, 5);
    painter.put(&pattern, 0, 0);
    let (cap, log) = start(&xvfb, h264(640, 480));
    frames_pass(&cap, 3);
    let before = log.lock().unwrap().len();
    assert_eq!(before, 8, "first frame: 480 rows / 64");
    // Rows 250..260 straddle stripes 3 and 4 (192..256, 256..320).
    painter.fill(300, 250, 20, 10, 0x00ff00);
    frames_pass(&cap, 3);
    cap.stop();
    let log = log.lock().unwrap();
    let later: Vec<(u32, Option<H264FrameType>)> = log[before..]
        .iter()
        .map(|s| (s.y, s.h264_frame_type()))
        .collect();
    assert_eq!(
        later,
        [
            (192, Some(H264FrameType::Other)),
            (256, Some(H264FrameType::Other))
        ]
    );
    let streams = by_y(&log);
    let mut truth = pattern.clone();
    for y in 250..260 {
        for x in 300..320 {
            let i = (y * 640 + x) * 4;
            truth.data[i..i + 4].copy_from_slice(&[0, 255, 0, 0]);
        }
    }
    for y in [192, 256] {
        let frames = decode(&streams[&y], 640, 64);
        assert_eq!(frames.len(), 2);
        let db = psnr(&frames[1], &crop_rows(&truth, y, 64));
        assert!(db >= 35.0, "stripe {y} after the change: {db:.1} dB");
    }
}

#[test]
fn fullframe_mode_sends_one_stripe_of_full_height() {
    let xvfb = Xvfb::start(640, 480);
    let painter = xvfb.connect();
    let pattern = test_pattern(640, 480, 6);
    painter.put(&pattern, 0, 0);
    let (cap, log) = start(
        &xvfb,
        CaptureSettings {
            h264_fullframe: true,
            ..h264(640, 480)
        },
    );
    frames_pass(&cap, 3);
    painter.fill(10, 400, 30, 8, 0x0000ff);
    frames_pass(&cap, 3);
    cap.stop();
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 2, "first frame and the change, one stripe each");
    for s in log.iter() {
        check_header(s);
        assert_eq!((s.y, s.width, s.height), (0, 640, 480));
    }
    assert_eq!(log[0].h264_frame_type(), Some(H264FrameType::Idr));
    assert_eq!(log[1].h264_frame_type(), Some(H264FrameType::Other));
    let all: Vec<&Stripe> = log.iter().collect();
    let frames = decode(&all, 640, 480);
    assert_eq!(frames.len(), 2);
    let db = psnr(&frames[0], &pattern);
    assert!(db >= 35.0, "{db:.1} dB");
    let [b, g, r, _] = frames[1].view().pixel(20, 404);
    assert!(b > 200 && g < 60 && r < 60, "got {r},{g},{b}");
}

#[test]
fn default_stripes_are_one_per_core_and_at_least_256_rows() {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get() as u32);
    let rows = pixelflux::settings::default_h264_stripe_height(600, cores).min(600);
    let xvfb = Xvfb::start(640, 600);
    let painter = xvfb.connect();
    let pattern = test_pattern(640, 600, 8);
    painter.put(&pattern, 0, 0);
    let (cap, log) = start(
        &xvfb,
        CaptureSettings {
            stripe_height: 0,
            ..h264(640, 600)
        },
    );
    frames_pass(&cap, 3);
    assert_eq!(cap.format().stripe_height, rows);
    // A change inside rows 100..110 re-sends only the first stripe.
    painter.fill(10, 100, 30, 10, 0x00ff00);
    frames_pass(&cap, 3);
    cap.stop();
    let log = log.lock().unwrap();
    let layout: Vec<(u32, u32)> = log.iter().map(|s| (s.y, s.height)).collect();
    let mut expected: Vec<(u32, u32)> = (0..600)
        .step_by(rows as usize)
        .map(|y| (y, rows.min(600 - y)))
        .collect();
    assert!(rows >= 256 && expected.len() as u32 <= cores, "{rows} rows");
    expected.push((0, rows));
    assert_eq!(layout, expected);
    let first: Vec<&Stripe> = log.iter().filter(|s| s.y == 0).collect();
    let frames = decode(&first, 640, rows);
    let db = psnr(&frames[0], &crop_rows(&pattern, 0, rows));
    assert!(db >= 35.0, "{db:.1} dB");
    let [b, g, r, _] = frames[1].view().pixel(20, 104);
    assert!(g > 200 && r < 60 && b < 60, "got {r},{g},{b}");
}

#[test]
fn odd_regions_are_rounded_down_to_even_and_tiny_ones_rejected() {
    let xvfb = Xvfb::start(700, 500);
    let painter = xvfb.connect();
    let pattern = test_pattern(641, 481, 7);
    painter.put(&pattern, 0, 0);
    let (cap, log) = start(&xvfb, h264(641, 481));
    assert_eq!(
        (cap.settings().capture_width, cap.settings().capture_height),
        (640, 480)
    );
    frames_pass(&cap, 3);
    cap.stop();
    let log = log.lock().unwrap();
    // 480 rows: seven stripes of 64 and one of 32, all 640 wide.
    assert_eq!(log.len(), 8);
    assert!(log.iter().all(|s| s.width == 640));
    assert_eq!((log[7].y, log[7].height), (448, 32));
    let last = decode(&[&log[7]], 640, 32);
    let mut truth = OwnedFrame::new(640, 32);
    for y in 0..32 {
        let s = y as usize * truth.stride();
        truth.data[s..s + 640 * 4].copy_from_slice(&pattern.view().row(448 + y)[..640 * 4]);
    }
    let db = psnr(&last[0], &truth);
    assert!(db >= 35.0, "{db:.1} dB");

    let err = ScreenCapture::start(
        h264(1, 64),
        SourceSpec::X11 {
            display: Some(xvfb.display.clone()),
        },
        |_| {},
    )
    .unwrap_err();
    match err {
        CaptureError::Settings(e) => assert_eq!(e.field, "capture_width", "{e}"),
        other => panic!("expected a settings error, got {other}"),
    }
}

/// A page of terminal text (6x13 cells of pseudo-random glyph strokes, black on white),
/// `w` wide and `h` tall.
fn text_page(w: u32, h: u32) -> OwnedFrame {
    let mut f = OwnedFrame::new(w, h);
    f.data.fill(0xff);
    for y in 0..h {
        let (line, row) = (y / 13, y % 13);
        for x in 0..w {
            let (col, dx) = (x / 6, x % 6);
            // Short lines, glyph rows 2..11, five columns of each cell.
            let len = (line * 37 + 11) % 60 + 8;
            if col >= len || !(2..11).contains(&row) || dx == 5 {
                continue;
            }
            let glyph = (line * 7919 + col * 104_729).wrapping_mul(2_654_435_761);
            if (glyph >> ((row * 5 + dx) % 31)) & 1 == 1 {
                let i = ((y * w + x) * 4) as usize;
                f.data[i..i + 3].copy_from_slice(&[0, 0, 0]);
            }
        }
    }
    f
}

/// Encodes `frames` (each `w` x `h`) as one stripe stream with the capture's H.264 encoder
/// (first an IDR, then P pictures), decodes it with ffmpeg, and returns each picture's
/// bytes and PSNR against its source, and the decoded pictures.
fn encode_and_decode(
    frames: &[OwnedFrame],
    w: u32,
    h: u32,
) -> (Vec<(usize, f64)>, Vec<OwnedFrame>) {
    use pixelflux::encode::{new_encoder, EncodeRequest, StripePlace};
    use pixelflux::PipelineConfig;
    let settings = CaptureSettings {
        stripe_height: h,
        ..h264(w, h)
    };
    let config = PipelineConfig::new(&settings).unwrap();
    let mut enc = new_encoder(config.encoder(), w, h).unwrap();
    let mut stream = Vec::new();
    let mut sizes = Vec::new();
    for (k, frame) in frames.iter().enumerate() {
        let request = EncodeRequest {
            jpeg_quality: 85,
            paint_over: false,
            keyframe: false,
        };
        let place = StripePlace {
            frame_id: k as u64,
            y: 0,
        };
        let mut out = Vec::new();
        enc.encode(frame.view(), &request, place, &mut out)
            .unwrap()
            .unwrap();
        sizes.push(out.len() - 10);
        stream.extend_from_slice(&out[10..]);
    }
    let decoded = decode_h264(&stream, w, h);
    assert_eq!(decoded.len(), frames.len(), "one picture per frame");
    let pictures = sizes
        .into_iter()
        .zip(decoded.iter().zip(frames).map(|(d, f)| psnr(d, f)))
        .collect();
    (pictures, decoded)
}

/// PSNR of the `rw` x `rh` rectangle at (`x`, `y`) of two same-sized frames.
fn region_psnr(a: &OwnedFrame, b: &OwnedFrame, (x, y, rw, rh): (u32, u32, u32, u32)) -> f64 {
    let (mut ra, mut rb) = (Vec::new(), Vec::new());
    for row in y..y + rh {
        let start = ((row * a.width + x) * 4) as usize;
        let end = start + rw as usize * 4;
        ra.extend_from_slice(&a.data[start..end]);
        rb.extend_from_slice(&b.data[start..end]);
    }
    pixelflux_testkit::psnr::from_mse(pixelflux_testkit::psnr::mse_bgrx(&ra, &rb))
}

/// A terminal scrolling 4 lines (52 rows) a frame: x264's motion search finds the text where
/// it moved (docs/h264.md, "Motion search"), so a P picture codes only the rows that came in.
/// With `ultrafast`'s diamond search (16 pixels around the predicted vector) a P picture
/// here was 0.64x the first IDR's size, against 0.30x now, at the same PSNR (31.2–31.7 dB:
/// CRF 25 on one-pixel strokes; the first IDR 44.5 dB).
#[test]
fn a_scrolling_terminal_is_predicted_not_coded_anew() {
    let (w, h) = (640u32, 256u32);
    let page = text_page(w, h + 52 * 8);
    let frames: Vec<OwnedFrame> = (0..8)
        .map(|k| pixelflux_testkit::crop_rows(&page, 52 * k, h))
        .collect();
    let (pictures, _) = encode_and_decode(&frames, w, h);
    let idr = pictures[0].0 as f64;
    let p_mean =
        pictures[1..].iter().map(|p| p.0 as f64).sum::<f64>() / (pictures.len() - 1) as f64;
    eprintln!(
        "scroll: IDR {idr} B, P mean {p_mean:.0} B ({:.2}x), PSNR {pictures:?}",
        p_mean / idr
    );
    assert!(pictures[0].1 >= 40.0, "the IDR: {:.1} dB", pictures[0].1);
    for (k, (_, db)) in pictures.iter().enumerate().skip(1) {
        assert!(*db >= 30.0, "picture {k}: {db:.1} dB");
    }
    // 52 of 256 rows are new each frame: about a fifth of the picture to code.
    assert!(
        p_mean < 0.45 * idr,
        "P pictures {p_mean:.0} B against an IDR of {idr} B"
    );
}

/// Small changes in a tall stripe: x264 is told which macroblocks did not change
/// (`mb_info`, docs/h264.md) and skips them; the changed ones, wherever they fall across
/// macroblock edges, must still arrive. Each frame moves a 24x24 block (not aligned to the
/// 16x16 macroblocks) to a new place and changes one pixel elsewhere.
#[test]
fn small_changes_in_a_tall_stripe_decode_where_they_are() {
    let (w, h) = (640u32, 256u32);
    let base = pixelflux_testkit::test_pattern(w, h, 3);
    let mut frames = vec![base.clone()];
    for k in 0..8u32 {
        let mut f = frames.last().unwrap().clone();
        let (bx, by) = (37 + 71 * k, 9 + 27 * k);
        for y in by..by + 24 {
            for x in bx..bx + 24 {
                let i = ((y * w + x) * 4) as usize;
                f.data[i..i + 3].copy_from_slice(&[(k * 30) as u8, 200, 255 - (k * 20) as u8]);
            }
        }
        // A 4x4 dot, far from the block.
        for y in h - 7 - k..h - 3 - k {
            let i = ((y * w + (w - 9 - 13 * k)) * 4) as usize;
            f.data[i..i + 16].fill(0);
        }
        frames.push(f);
    }
    let (pictures, decoded) = encode_and_decode(&frames, w, h);
    for (k, (bytes, db)) in pictures.iter().enumerate() {
        assert!(*db >= 35.0, "picture {k} ({bytes} B): {db:.1} dB");
        if k == 0 {
            continue;
        }
        // The block and the dot of this frame, alone (the whole picture's PSNR would hide a
        // missing block): a skipped macroblock would show the picture before. (A saturated
        // block on odd columns loses its edges to 4:2:0: about 21 dB with or without
        // `mb_info`, 7 dB for the picture before.)
        let j = k as u32 - 1;
        let block = (37 + 71 * j, 9 + 27 * j, 24, 24);
        let dot = (w - 9 - 13 * j, h - 7 - j, 4, 4);
        for (what, rect) in [("block", block), ("dot", dot)] {
            let now = region_psnr(&decoded[k], &frames[k], rect);
            let before = region_psnr(&frames[k - 1], &frames[k], rect);
            assert!(
                now >= 18.0 && now > before + 8.0,
                "picture {k}: the {what} at {rect:?} decodes at {now:.1} dB (the picture \
                 before would be {before:.1} dB)"
            );
        }
    }
}

/// Encoder cost, size and quality per stripe layout on two synthetic 1080p scenes where every
/// stripe changes every frame: `scroll` (vertical motion across stripe edges) and `full` (a
/// horizontal pan, motion stays inside each stripe). One thread, stripes encoded one after
/// another, colour conversion included. Figures go to docs/h264.md:
/// `cargo test --release -p pixelflux --test h264 -- --ignored --nocapture bench_h264`
#[test]
#[ignore = "benchmark: run in release with --ignored --nocapture"]
fn bench_h264_stripe_layouts() {
    use pixelflux::encode::{new_encoder, EncodeRequest, StripePlace};
    use pixelflux::source::synthetic::SyntheticSource;
    use pixelflux::PipelineConfig;
    use pixelflux::Scene;
    use std::time::Instant;

    const FRAMES: usize = 90;
    let (w, h) = (1920u32, 1080u32);
    // Times: the 10th percentile, as other work on the machine only ever adds time.
    let quantile = |v: &mut Vec<f64>, q: f64| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[((v.len() - 1) as f64 * q) as usize]
    };
    println!(
        "| scene | chroma | stripe rows | stripes | ms/frame (P) | ms per full stripe (P) \
         | ms per full stripe (IDR) | KB/frame (P) | PSNR dB (median) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (scene, fullcolor) in [
        (Scene::Scroll, false),
        (Scene::Full, false),
        (Scene::Scroll, true),
        (Scene::Full, true),
    ] {
        let mut source = SyntheticSource::new(scene, w, h);
        let frames: Vec<OwnedFrame> = (0..FRAMES).map(|_| source.advance().clone()).collect();
        // 0: `h264_fullframe` (one stripe, x264's own threads); 1080: one stripe, one thread.
        for stripe_height in [64u32, 60, 68, 32, 30, 128, 1080, 0] {
            let fullframe = stripe_height == 0;
            let stripe_height = if fullframe { h } else { stripe_height };
            let settings = CaptureSettings {
                stripe_height,
                h264_fullframe: fullframe,
                h264_fullcolor: fullcolor,
                ..h264(w, h)
            };
            let config = PipelineConfig::new(&settings).unwrap();
            let layout = config.layout();
            let places: Vec<(u32, u32)> = (0..layout.count()).map(|i| layout.stripe(i)).collect();
            let mut encoders: Vec<_> = places
                .iter()
                .map(|&(_, sh)| new_encoder(config.encoder(), w, sh).unwrap())
                .collect();
            let mut streams = vec![Vec::new(); places.len()];
            let (mut frame_ms, mut stripe_ms, mut idr_ms) = (Vec::new(), Vec::new(), Vec::new());
            let mut bytes = 0usize;
            for (k, frame) in frames.iter().enumerate() {
                // Every tenth frame all IDRs (a refresh), the rest P pictures.
                let keyframe = k % 10 == 0;
                let t_frame = Instant::now();
                for (i, enc) in encoders.iter_mut().enumerate() {
                    let (y, sh) = places[i];
                    let request = EncodeRequest {
                        jpeg_quality: 85,
                        paint_over: false,
                        keyframe,
                    };
                    let place = StripePlace {
                        frame_id: k as u64,
                        y,
                    };
                    let mut out = Vec::new();
                    let t = Instant::now();
                    enc.encode(frame.view().rows(y, sh), &request, place, &mut out)
                        .unwrap()
                        .unwrap();
                    let ms = t.elapsed().as_secs_f64() * 1e3;
                    if sh == stripe_height && k > 0 {
                        if keyframe {
                            idr_ms.push(ms);
                        } else {
                            stripe_ms.push(ms);
                        }
                    }
                    if !keyframe {
                        bytes += out.len();
                    }
                    streams[i].extend_from_slice(&out[10..]);
                }
                if !keyframe {
                    frame_ms.push(t_frame.elapsed().as_secs_f64() * 1e3);
                }
            }
            // Quality: decode every stripe stream and compare whole frames with the source.
            let mut decoded = vec![OwnedFrame::new(w, h); FRAMES];
            for (i, &(y, sh)) in places.iter().enumerate() {
                let pictures = decode_h264(&streams[i], w, sh);
                assert_eq!(pictures.len(), FRAMES);
                let size = (w * sh * 4) as usize;
                for (k, picture) in pictures.iter().enumerate() {
                    let start = (y * w * 4) as usize;
                    decoded[k].data[start..start + size].copy_from_slice(&picture.data);
                }
            }
            let mut db: Vec<f64> = decoded
                .iter()
                .zip(&frames)
                .map(|(d, s)| psnr(d, s))
                .collect();
            let p_frames = frame_ms.len();
            println!(
                "| {scene} | {} | {} | {} | {:.2} | {} | {} | {:.0} | {:.2} |",
                if fullcolor { "I444" } else { "I420" },
                if fullframe {
                    "1080 (fullframe)".to_string()
                } else {
                    stripe_height.to_string()
                },
                places.len(),
                quantile(&mut frame_ms, 0.1),
                if stripe_ms.is_empty() {
                    "-".to_string()
                } else {
                    format!("{:.3}", quantile(&mut stripe_ms, 0.1))
                },
                if idr_ms.is_empty() {
                    "-".to_string()
                } else {
                    format!("{:.3}", quantile(&mut idr_ms, 0.1))
                },
                bytes as f64 / 1024.0 / p_frames as f64,
                quantile(&mut db, 0.5),
            );
        }
    }
}

/// Whether stripe heights that are multiples of 16 (the macroblock) encode faster: one
/// single-threaded encoder per height, all fed the same rows of the same frames, interleaved
/// so that other load on the machine hits every height alike. Prints microseconds per row.
/// `cargo test --release -p pixelflux --test h264 -- --ignored --nocapture bench_h264_alignment`
#[test]
#[ignore = "benchmark: run in release with --ignored --nocapture"]
fn bench_h264_alignment() {
    use pixelflux::encode::{new_encoder, EncodeRequest, StripePlace};
    use pixelflux::source::synthetic::SyntheticSource;
    use pixelflux::PipelineConfig;
    use pixelflux::Scene;
    use std::time::Instant;

    const FRAMES: usize = 150;
    let heights = [48u32, 56, 60, 62, 64, 66, 68, 72, 80];
    let w = 1920;
    for scene in [Scene::Full, Scene::Scroll] {
        let mut source = SyntheticSource::new(scene, w, 1080);
        let frames: Vec<OwnedFrame> = (0..FRAMES).map(|_| source.advance().clone()).collect();
        let config = PipelineConfig::new(&h264(w, 1080)).unwrap();
        let mut encoders: Vec<_> = heights
            .iter()
            .map(|&h| new_encoder(config.encoder(), w, h).unwrap())
            .collect();
        let mut times = vec![Vec::new(); heights.len()];
        let mut bytes = vec![0usize; heights.len()];
        let request = EncodeRequest {
            jpeg_quality: 85,
            paint_over: false,
            keyframe: false,
        };
        for (k, frame) in frames.iter().enumerate() {
            for (i, enc) in encoders.iter_mut().enumerate() {
                let place = StripePlace {
                    frame_id: k as u64,
                    y: 256,
                };
                let mut out = Vec::new();
                let t = Instant::now();
                enc.encode(
                    frame.view().rows(256, heights[i]),
                    &request,
                    place,
                    &mut out,
                )
                .unwrap()
                .unwrap();
                if k > 0 {
                    times[i].push(t.elapsed().as_secs_f64() * 1e6 / heights[i] as f64);
                    bytes[i] += out.len();
                }
            }
        }
        println!("{scene}: height, us/row p10, us/row median, bytes/row/frame");
        for (i, &h) in heights.iter().enumerate() {
            let v = &mut times[i];
            v.sort_by(|a, b| a.total_cmp(b));
            println!(
                "{h:>4}{} {:>7.2} {:>7.2} {:>7.1}",
                if h % 16 == 0 { "*" } else { " " },
                v[v.len() / 10],
                v[v.len() / 2],
                bytes[i] as f64 / h as f64 / (FRAMES - 1) as f64
            );
        }
    }
}
