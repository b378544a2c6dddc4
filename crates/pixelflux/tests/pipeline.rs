//! The whole pipeline (detect → encode) over a scripted source, stepped one frame at a time
//! with `Pipeline::tick` (no threads, no clock): which stripes are sent on which frame, at
//! which quality, with which H.264 picture types, and that what is sent decodes to what the
//! source showed.
// Without the `x264` feature the H.264 tests are left out, and some imports with them.
#![cfg_attr(not(feature = "x264"), allow(unused_imports))]

mod support;

use pixelflux::config::Control;
use pixelflux::encode::{AUTO_420_QUALITY_STEP, FULL_CHROMA_MIN_QUALITY};
use pixelflux::wire::H264FrameType;
use pixelflux::{
    CaptureSettings, Codec, Frame, FrameSource, OwnedFrame, Pipeline, PipelineConfig, Scene,
    SourceError, SourceSpec, Stripe,
};
use support::*;

/// Shows `frames[i]` on grab `i`, then the last one forever.
struct Script {
    frames: Vec<OwnedFrame>,
    shown: OwnedFrame,
    next: usize,
}

impl Script {
    fn new(frames: Vec<OwnedFrame>) -> Self {
        let shown = frames[0].clone();
        Self {
            frames,
            shown,
            next: 0,
        }
    }
}

impl FrameSource for Script {
    fn size(&self) -> (u32, u32) {
        (self.shown.width, self.shown.height)
    }
    fn grab(&mut self) -> Result<Frame<'_>, SourceError> {
        if self.next < self.frames.len() {
            self.shown
                .data
                .copy_from_slice(&self.frames[self.next].data);
            self.next += 1;
        }
        Ok(self.shown.as_frame())
    }
    fn last_frame(&mut self) -> Frame<'_> {
        self.shown.as_frame()
    }
}

/// Frame `i` of a script where stripe 0 (rows 0..64) changes on frames 1..=changes.
fn busy_top(changes: u32) -> Vec<OwnedFrame> {
    let base = test_pattern(128, 192, 0);
    (0..=changes)
        .map(|i| {
            let mut f = base.clone();
            if i > 0 {
                let top = test_pattern(128, 64, i);
                f.data[..top.data.len()].copy_from_slice(&top.data);
            }
            f
        })
        .collect()
}

/// A pipeline over `frames` (128x192, three 64-row JPEG stripes unless `settings` say else).
fn pipeline(settings: CaptureSettings, frames: Vec<OwnedFrame>) -> Pipeline {
    let config = PipelineConfig::new(&CaptureSettings {
        capture_width: 128,
        capture_height: 192,
        ..settings
    })
    .unwrap();
    Pipeline::new(config, Box::new(Script::new(frames)), Vec::new()).unwrap()
}

/// Ticks `p` `total` times; returns every stripe sent.
fn ticks(p: &mut Pipeline, total: u64) -> Vec<Stripe> {
    (0..total)
        .flat_map(|_| p.tick(false).unwrap().stripes)
        .collect()
}

/// Runs a pipeline over `frames` for `total` frames; returns (frame_id, y, paint_over).
fn run(settings: CaptureSettings, frames: Vec<OwnedFrame>, total: u64) -> Vec<(u64, u32, bool)> {
    let mut p = pipeline(settings, frames);
    ticks(&mut p, total)
        .iter()
        .map(|s| (s.frame_id, s.y, s.paint_over))
        .collect()
}

fn frames_sending(log: &[(u64, u32, bool)], y: u32) -> Vec<u64> {
    log.iter().filter(|s| s.1 == y).map(|s| s.0).collect()
}

#[test]
fn damage_throttling_enters_after_threshold_and_leaves_after_duration() {
    let settings = CaptureSettings {
        damage_block_threshold: 4,
        damage_block_duration: 6,
        ..Default::default()
    };
    // Stripe 0 changes on frames 1..=5, then stays as it is.
    let log = run(settings, busy_top(5), 30);
    // Frames 0-4: four changes (1-4) reach the threshold; frames 5-10 are the damaged period,
    // sent without hashing even once static (6-10); frame 11 is hashed again: unchanged.
    assert_eq!(frames_sending(&log, 0), (0..=10).collect::<Vec<u64>>());
    assert_eq!(frames_sending(&log, 64), [0]);
    assert_eq!(frames_sending(&log, 128), [0]);
}

#[test]
fn without_throttling_only_real_changes_are_sent() {
    let settings = CaptureSettings {
        damage_block_threshold: 0,
        ..Default::default()
    };
    let log = run(settings, busy_top(5), 30);
    assert_eq!(frames_sending(&log, 0), [0, 1, 2, 3, 4, 5]);
}

#[test]
fn refresh_request_resends_every_stripe() {
    let mut p = pipeline(CaptureSettings::default(), busy_top(0));
    let first = ticks(&mut p, 5);
    assert_eq!(first.len(), 3);
    let refreshed = p.tick(true).unwrap();
    assert!(refreshed.refresh);
    let ys: Vec<u32> = first
        .iter()
        .chain(&refreshed.stripes)
        .map(|s| s.y)
        .collect();
    assert_eq!(ys, [0, 64, 128, 0, 64, 128]);
    // Every re-sent stripe decodes to the source.
    let source = test_pattern(128, 192, 0);
    for s in &refreshed.stripes {
        let db = psnr(&decode_jpeg(s.payload()), &crop_rows(&source, s.y, 64));
        assert!(db > 30.0, "stripe {}: {db:.1} dB", s.y);
    }
    // And then nothing again.
    assert!(ticks(&mut p, 5).is_empty());
}

#[test]
fn a_static_stripe_is_painted_over_once_after_the_trigger() {
    let settings = CaptureSettings {
        use_paint_over_quality: true,
        paint_over_trigger_frames: 3,
        damage_block_threshold: 0,
        ..Default::default()
    };
    // Stripe 0 changes on frames 1 and 2, static from frame 3 on.
    let log = run(settings, busy_top(2), 20);
    // Static frames 3, 4, 5: the third triggers the paint-over; it is never repeated.
    let painted: Vec<(u64, u32)> = log.iter().filter(|s| s.2).map(|s| (s.0, s.1)).collect();
    assert_eq!(painted, [(5, 0)]);
    assert_eq!(frames_sending(&log, 0), [0, 1, 2, 5]);
    // The other stripes were first sent at the paint-over quality already: nothing to improve.
    assert_eq!(frames_sending(&log, 64), [0]);
    assert_eq!(frames_sending(&log, 128), [0]);
    // Without paint-over the static stripe is left as it was.
    let plain = run(
        CaptureSettings {
            damage_block_threshold: 0,
            ..Default::default()
        },
        busy_top(2),
        20,
    );
    assert!(plain.iter().all(|s| !s.2));
    assert_eq!(frames_sending(&plain, 0), [0, 1, 2]);
}

/// The quality a capture with `jpeg_subsampling` auto asked for this JPEG: what its tables say
/// ([`table_quality`]), less [`AUTO_420_QUALITY_STEP`] where auto chose 4:2:0, or chose
/// grayscale below [`FULL_CHROMA_MIN_QUALITY`] (the subsampling read from the JPEG by
/// libjpeg-turbo). A grayscale JPEG at tables 90 or 91 could have been asked for at either
/// quality: refused.
fn jpeg_quality(jpeg: &[u8]) -> u8 {
    let header = turbojpeg::read_header(jpeg).expect("a JPEG header");
    let table = table_quality(jpeg);
    match header.subsamp {
        turbojpeg::Subsamp::Sub2x2 => table - AUTO_420_QUALITY_STEP,
        turbojpeg::Subsamp::Gray if table < FULL_CHROMA_MIN_QUALITY => {
            table - AUTO_420_QUALITY_STEP
        }
        turbojpeg::Subsamp::Gray => {
            assert!(
                table >= FULL_CHROMA_MIN_QUALITY + AUTO_420_QUALITY_STEP,
                "a grayscale JPEG at table quality {table}: asked for {} or {table}",
                table - AUTO_420_QUALITY_STEP
            );
            table
        }
        _ => table,
    }
}

/// The quality libjpeg's `jpeg_set_quality` was given for this JPEG: the one whose scaled
/// standard luminance table equals the file's first quantization table.
fn table_quality(jpeg: &[u8]) -> u8 {
    const STD_LUMA: [u32; 64] = [
        16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69,
        56, 14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81,
        104, 113, 92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
    ];
    let dqt = jpeg
        .windows(2)
        .position(|w| w == [0xFF, 0xDB])
        .expect("a DQT segment");
    // Marker, length (2), then precision/table id (1): 8-bit table 0 in zig-zag order.
    assert_eq!(jpeg[dqt + 4], 0, "8-bit luminance table first");
    let table = &jpeg[dqt + 5..dqt + 5 + 64];
    const ZIGZAG: [usize; 64] = [
        0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27,
        20, 13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
        58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
    ];
    (1..=100u8)
        .find(|&q| {
            let q = q as u32;
            let scale = if q < 50 { 5000 / q } else { 200 - 2 * q };
            (0..64).all(|i| {
                let want = ((STD_LUMA[ZIGZAG[i]] * scale + 50) / 100).clamp(1, 255);
                table[i] as u32 == want
            })
        })
        .expect("a libjpeg quality table")
}

#[test]
fn jpeg_quality_steps_down_while_changing_and_resets_after_a_cool_down() {
    let settings = CaptureSettings {
        jpeg_quality: 70,
        paint_over_jpeg_quality: 95,
        use_paint_over_quality: true,
        paint_over_trigger_frames: 1000,
        damage_block_threshold: 0,
        damage_block_duration: 4,
        ..Default::default()
    };
    // Stripe 0: changes on 1..=7, static 8-9 (2 < 4 frames), a change on 10, static 11-14
    // (4 frames: cooled down), a change on 15.
    let base = busy_top(7);
    let mut frames = base.clone();
    frames.extend([base[7].clone(), base[7].clone()]);
    let changed = |seed| {
        let mut f = base[0].clone();
        let top = test_pattern(128, 64, seed);
        f.data[..top.data.len()].copy_from_slice(&top.data);
        f
    };
    frames.push(changed(100));
    frames.extend(std::iter::repeat_n(changed(100), 4));
    frames.push(changed(101));
    let mut p = pipeline(settings, frames);
    let sent = ticks(&mut p, 20);
    let top: Vec<(u64, u8)> = sent
        .iter()
        .filter(|s| s.y == 0)
        .map(|s| (s.frame_id, jpeg_quality(s.payload())))
        .collect();
    assert_eq!(
        top,
        [
            (0, 95),
            (1, 90),
            (2, 85),
            (3, 80),
            (4, 75),
            (5, 70),
            (6, 70),
            (7, 70),
            (10, 70),
            (15, 95)
        ]
    );
    // This content is brightness detail: auto encodes it in 4:2:0, two steps up (frame 2
    // asked for 85), and the paint-over quality 95 in 4:4:4.
    let table = |frame| {
        sent.iter()
            .find(|s| s.y == 0 && s.frame_id == frame)
            .map(|s| table_quality(s.payload()))
    };
    assert_eq!(table(2), Some(85 + AUTO_420_QUALITY_STEP));
    assert_eq!(table(0), Some(95));
}

#[test]
fn live_jpeg_quality_applies_between_ticks_and_resends_once() {
    let mut p = pipeline(CaptureSettings::default(), busy_top(0));
    let first = ticks(&mut p, 3);
    assert!(first.iter().all(|s| jpeg_quality(s.payload()) == 85));
    p.apply(&Control::SetJpegQuality(30)).unwrap();
    let after = p.tick(false).unwrap().stripes;
    assert_eq!(after.iter().map(|s| s.y).collect::<Vec<_>>(), [0, 64, 128]);
    assert!(after.iter().all(|s| jpeg_quality(s.payload()) == 30));
    assert!(ticks(&mut p, 3).is_empty());
    // A refused value changes nothing.
    assert!(p.apply(&Control::SetJpegQuality(0)).is_err());
    assert_eq!(p.config().settings().jpeg_quality, 30);
    assert!(ticks(&mut p, 3).is_empty());
}

#[test]
#[cfg(feature = "x264")] // H.264 stripes
fn h264_refreshes_and_a_new_crf_send_idrs_for_every_stripe() {
    let config = PipelineConfig::new(&CaptureSettings {
        output_mode: Codec::H264,
        capture_width: 128,
        capture_height: 192,
        stripe_height: 64,
        ..Default::default()
    })
    .unwrap();
    let mut p = Pipeline::open(config, &SourceSpec::Synthetic(Scene::Static)).unwrap();
    let types = |stripes: &[Stripe]| -> Vec<(u32, Option<H264FrameType>)> {
        stripes.iter().map(|s| (s.y, s.h264_frame_type())).collect()
    };
    let idrs = [
        (0, Some(H264FrameType::Idr)),
        (64, Some(H264FrameType::Idr)),
        (128, Some(H264FrameType::Idr)),
    ];
    let first = p.tick(false).unwrap();
    assert!(first.refresh && first.grabbed);
    assert_eq!(types(&first.stripes), idrs);
    assert!(ticks(&mut p, 5).is_empty());
    assert_eq!(types(&p.tick(true).unwrap().stripes), idrs);
    assert!(ticks(&mut p, 5).is_empty());
    p.apply(&Control::SetCrf(40)).unwrap();
    assert_eq!(types(&p.tick(false).unwrap().stripes), idrs);
    assert!(ticks(&mut p, 5).is_empty());
    p.apply(&Control::Refresh).unwrap();
    assert_eq!(types(&p.tick(true).unwrap().stripes), idrs);
    // Both asks served by that one frame.
    assert!(ticks(&mut p, 5).is_empty());
}

#[test]
#[cfg(feature = "x264")] // H.264 stripes
fn the_format_is_what_is_encoded() {
    let config = PipelineConfig::new(&CaptureSettings {
        output_mode: Codec::H264,
        capture_width: 131,
        capture_height: 97,
        ..Default::default()
    })
    .unwrap();
    let mut p = Pipeline::open(config, &SourceSpec::Synthetic(Scene::Static)).unwrap();
    let format = p.format();
    assert_eq!((format.width, format.height), (130, 96));
    let stripes = p.tick(false).unwrap().stripes;
    assert_eq!(stripes.len(), 1, "96 rows are one 128-row stripe");
    assert_eq!(
        (stripes[0].width, stripes[0].height),
        (130, format.stripe_height)
    );
}
