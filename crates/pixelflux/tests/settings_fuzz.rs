//! Settings validation, fuzzed: arbitrary values for every field. Whatever `validate()`
//! accepts must start a capture on a synthetic source, run its first frame and stop without
//! a panic or an error; whatever it refuses names a real field. (Issue: `target_fps = 1e-20`
//! once passed validation and then panicked; CRF 0 in 4:2:0 passed and x264 refused it.)

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use pixelflux::{CaptureSettings, Codec, Scene, ScreenCapture, SourceSpec, WatermarkLocation};
use proptest::prelude::*;
use proptest::test_runner::{RngAlgorithm, TestCaseError, TestRng, TestRunner};

/// A 3x2 RGBA PNG (fits in every region of at least that size), written once per run.
fn small_png() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("pixelflux-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("mark.png");
        let file = std::fs::File::create(&path).unwrap();
        let mut encoder = png::Encoder::new(file, 3, 2);
        encoder.set_color(png::ColorType::Rgba);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().unwrap();
        writer.write_image_data(&[0x80; 3 * 2 * 4]).unwrap();
        path
    })
    .clone()
}

/// Region sides: mostly small, sometimes anywhere up to past the limit, with the pixel count
/// kept to what a test can allocate (16384x256 runs; 16384x16384 is 1 GiB a frame).
fn side() -> impl Strategy<Value = u32> {
    prop_oneof![
        4 => 0u32..=72,
        1 => 0u32..=16500,
        1 => Just(16384u32),
        1 => Just(16385u32),
    ]
}

fn fps() -> impl Strategy<Value = f64> {
    prop_oneof![
        16 => 0.5f64..240.0,
        1 => any::<f64>(),
        1 => 0.0f64..2000.0,
        1 => Just(1e-20),
        1 => Just(0.01),
        1 => Just(0.009_999),
        1 => Just(1000.0),
        1 => Just(f64::MIN_POSITIVE),
        1 => Just(f64::NAN),
    ]
}

/// Mostly a value from `valid`, sometimes any value of the type.
fn mostly<T: Arbitrary>(valid: impl Strategy<Value = T> + 'static) -> impl Strategy<Value = T> {
    prop_oneof![12 => valid, 1 => any::<T>()]
}

prop_compose! {
    fn settings()(
        (capture_width, capture_height) in (side(), side())
            .prop_filter("fits in memory", |(w, h)| u64::from(*w) * u64::from(*h) <= 1 << 22),
        capture_x in mostly(0i32..=100),
        capture_y in mostly(0i32..=100),
        target_fps in fps(),
        capture_cursor in any::<bool>(),
        h264 in any::<bool>(),
        jpeg_quality in mostly(1u8..=100),
        paint_over_jpeg_quality in mostly(1u8..=100),
        use_paint_over_quality in any::<bool>(),
        paint_over_trigger_frames in mostly(1u32..=70),
        damage_block_threshold in mostly(0u32..=70),
        damage_block_duration in mostly(0u32..=70),
        h264_crf in prop_oneof![4 => 0u8..=51, 2 => Just(0u8), 1 => any::<u8>()],
        h264_fullcolor in any::<bool>(),
        h264_fullframe in any::<bool>(),
        watermark in prop_oneof![4 => Just(0u8), 2 => Just(1u8), 1 => Just(2u8)],
        watermark_location in 0i64..=6,
        vaapi_render_node_index in any::<i32>(),
        stripe_height in prop_oneof![
            3 => Just(0u32),
            3 => (8u32..=150).prop_map(|half| half * 2),
            1 => 0u32..=300,
            1 => any::<u32>(),
        ],
    ) -> CaptureSettings {
        CaptureSettings {
            capture_width,
            capture_height,
            capture_x,
            capture_y,
            target_fps,
            capture_cursor,
            output_mode: if h264 { Codec::H264 } else { Codec::Jpeg },
            jpeg_quality,
            paint_over_jpeg_quality,
            use_paint_over_quality,
            paint_over_trigger_frames,
            damage_block_threshold,
            damage_block_duration,
            h264_crf,
            h264_fullcolor,
            h264_fullframe,
            // No watermark; the small PNG at any location; a location without a path (refused).
            watermark_path: (watermark == 1).then(small_png),
            watermark_location: match watermark {
                0 => WatermarkLocation::None,
                _ => WatermarkLocation::from_index(watermark_location).unwrap(),
            },
            vaapi_render_node_index,
            stripe_height,
            ..Default::default()
        }
    }
}

/// What one case did.
#[derive(Debug, PartialEq)]
enum Outcome {
    Refused,
    Ran,
}

fn check(settings: CaptureSettings) -> Result<Outcome, TestCaseError> {
    let Err(err) = settings.validate() else {
        // H.264 rounds the region down to even sizes.
        let (w, h) = match settings.output_mode {
            Codec::H264 => (settings.capture_width & !1, settings.capture_height & !1),
            _ => (settings.capture_width, settings.capture_height),
        };
        // A watermark larger than the region is refused when the file is read.
        let mark_fits = w >= 3 && h >= 2;
        let wants_mark = settings.watermark_path.is_some()
            && settings.watermark_location != WatermarkLocation::None;
        let started = ScreenCapture::start(
            settings.clone(),
            SourceSpec::Synthetic(Scene::Typing),
            |_| {},
        );
        let capture = match started {
            Ok(capture) => capture,
            Err(e) if wants_mark && !mark_fits => {
                prop_assert!(e.to_string().contains("does not fit"), "{e}");
                return Ok(Outcome::Refused);
            }
            // A build without x264 refuses H.264 by name when the encoders are made (after
            // the watermark file, which is read first).
            Err(e) if settings.output_mode == Codec::H264 && !cfg!(feature = "x264") => {
                prop_assert!(e.to_string().contains("`x264` feature"), "{e}");
                return Ok(Outcome::Refused);
            }
            Err(e) => {
                return Err(TestCaseError::fail(format!(
                    "{settings:?} did not start: {e}"
                )))
            }
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while capture.stats().frames == 0 && capture.is_running() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        prop_assert!(
            capture.stats().frames >= 1,
            "no frame within 60 s: {settings:?}"
        );
        let failure = capture.stop();
        prop_assert!(failure.is_none(), "{settings:?} ended with {failure:?}");
        return Ok(Outcome::Ran);
    };
    prop_assert!(
        CaptureSettings::field_names().any(|f| f == err.field),
        "{err} names no field"
    );
    Ok(Outcome::Refused)
}

#[test]
fn settings_that_validate_start_and_run() {
    const CASES: u32 = 120;
    // A fixed seed: `make test` must give the same answer every run (a random seed once
    // surfaced a case only the build without x264 meets). PROPTEST_SEED=<u64> explores others.
    let seed = std::env::var("PROPTEST_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0x5eed_f1e1d5);
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        ProptestConfig {
            cases: CASES,
            failure_persistence: None,
            ..ProptestConfig::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    let ran = AtomicU32::new(0);
    let refused = AtomicU32::new(0);
    let result = runner.run(&settings(), |s| {
        let counter = match check(s)? {
            Outcome::Ran => &ran,
            Outcome::Refused => &refused,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let (ran, refused) = (ran.into_inner(), refused.into_inner());
    eprintln!("{ran} cases started and ran, {refused} were refused");
    // Both sides of validation are exercised, not just one (about a quarter of the cases
    // validate; the bound is four standard deviations below that).
    assert!(ran >= CASES / 10, "only {ran} of {CASES} cases started");
    assert!(
        refused >= CASES / 5,
        "only {refused} of {CASES} cases refused"
    );
}
