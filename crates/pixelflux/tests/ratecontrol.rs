//! H.264 rate control: `video_cbr_mode` at `video_bitrate_kbps`, a live bitrate change
//! (`Control::SetBitrate`) and `keyframe_interval_s`, measured over the synthetic full-motion
//! scene stepped with `Pipeline::tick` (no clock: a frame is `1/target_fps` of stream time, so
//! 10 s of stream take what the encoding takes) and decoded by ffmpeg. The quantizer bounds
//! (`video_min_qp`/`video_max_qp`) are checked against x264's own per-picture QP in
//! `encode::h264`'s unit tests, and by their effect on the bytes here.
#![cfg(feature = "x264")]

use pixelflux::config::Control;
use pixelflux::source::synthetic::SyntheticSource;
use pixelflux::wire::H264FrameType;
use pixelflux::{
    CaptureSettings, Codec, Frame, FrameSource, OwnedFrame, Pipeline, PipelineConfig, Scene,
    SourceError, SourceSpec, Stripe,
};
use pixelflux_testkit::{crop_rows, decode_h264, psnr};

const W: u32 = 1280;
const H: u32 = 720;
const FPS: f64 = 30.0;

fn cbr(kbps: u32, fullframe: bool) -> CaptureSettings {
    CaptureSettings {
        capture_width: W,
        capture_height: H,
        target_fps: FPS,
        output_mode: Codec::H264,
        h264_fullframe: fullframe,
        video_cbr_mode: true,
        video_bitrate_kbps: kbps,
        // The layout these tests count stripes in (the default depends on the cores).
        stripe_height: 128,
        ..Default::default()
    }
}

fn open(settings: &CaptureSettings) -> Pipeline {
    let config = PipelineConfig::new(settings).unwrap();
    Pipeline::open(config, &SourceSpec::Synthetic(Scene::Full)).unwrap()
}

/// The stripes of `frames` ticks, per frame.
fn run(p: &mut Pipeline, frames: usize) -> Vec<Vec<Stripe>> {
    (0..frames)
        .map(|_| p.tick(false).unwrap().stripes)
        .collect()
}

/// Delivered kbit/s over `frames` (payload bytes; a frame is 1/FPS s).
fn kbps(frames: &[Vec<Stripe>]) -> f64 {
    let bytes: usize = frames.iter().flatten().map(|s| s.payload().len()).sum();
    bytes as f64 * 8.0 / (frames.len() as f64 / FPS) / 1000.0
}

/// Per-second rates, for the failure messages and the docs.
fn per_second(frames: &[Vec<Stripe>]) -> String {
    let secs: Vec<String> = frames
        .chunks(FPS as usize)
        .map(|c| format!("{:.0}", kbps(c)))
        .collect();
    secs.join(" ")
}

/// Each stripe position's stream decodes with ffmpeg to one picture per frame sent.
fn decodes(frames: &[Vec<Stripe>]) {
    let mut streams: std::collections::BTreeMap<u32, (Vec<u8>, u32, usize)> = Default::default();
    for s in frames.iter().flatten() {
        let e = streams.entry(s.y).or_insert((Vec::new(), s.height, 0));
        e.0.extend_from_slice(s.payload());
        e.2 += 1;
    }
    for (y, (stream, rows, sent)) in streams {
        let pictures = decode_h264(&stream, W, rows);
        assert_eq!(pictures.len(), sent, "stripe at y={y}: pictures decoded");
    }
}

fn within(got: f64, target: f64, tolerance: f64) -> bool {
    (got / target - 1.0).abs() <= tolerance
}

/// 10 s of full motion at 2 and 8 Mbit/s, striped (128-row stripes, each encoder with its
/// share: its rows over the rows sent) and full-frame: the delivered rate is within ±15 % of the target.
#[test]
fn cbr_delivers_the_target_over_ten_seconds() {
    for fullframe in [false, true] {
        for target in [2000, 8000] {
            let mut p = open(&cbr(target, fullframe));
            let frames = run(&mut p, (10.0 * FPS) as usize);
            let got = kbps(&frames);
            eprintln!(
                "fullframe={fullframe} target={target}: {got:.0} kbit/s ({:.3}x); per second: {}",
                got / f64::from(target),
                per_second(&frames)
            );
            assert!(
                within(got, f64::from(target), 0.15),
                "fullframe={fullframe}: {got:.0} kbit/s for a {target} target ({})",
                per_second(&frames)
            );
            if target == 2000 {
                decodes(&frames);
            }
        }
    }
}

/// Only the middle third changes (the `video` scene): the stripes that change share the
/// whole rate by their rows (not each its height's part of it, which delivered 0.56x), so the
/// stream still meets the target (5 s here; 10 s measured 1.02x striped, 0.995x full-frame).
#[test]
fn cbr_spreads_the_rate_over_the_changing_stripes() {
    let mut p = Pipeline::open(
        PipelineConfig::new(&cbr(2000, false)).unwrap(),
        &SourceSpec::Synthetic(Scene::Video),
    )
    .unwrap();
    let frames = run(&mut p, (5.0 * FPS) as usize);
    let got = kbps(&frames);
    eprintln!("video scene: {got:.0} kbit/s for 2000");
    assert!(
        within(got, 2000.0, 0.15),
        "{got:.0} kbit/s ({})",
        per_second(&frames)
    );
    let sent_stripes: std::collections::BTreeSet<u32> =
        frames[30..].iter().flatten().map(|s| s.y).collect();
    assert!(sent_stripes.len() < 6, "{sent_stripes:?}: not all stripes");
}

/// A live bitrate change is applied between two ticks without an IDR, and the next second of
/// frames is within ±15 % of the new target, down and up, plus on the way down what the old
/// rate's VBV buffer may hold beyond the new one's: a reconfig does not empty the buffer, so
/// x264 may spend it in the first frames (the default buffer is 1.5 frames: 400 kbit at
/// 8000 kbit/s and 30 fps, 100 at 2000). Full-frame, with x264's sliced threads, measured
/// 1950-2426 kbit/s over eight runs after 8000 -> 2000 (striped: 2008 every time).
#[test]
fn a_bitrate_change_is_followed_within_a_second() {
    const VBV_FRAMES: f64 = 1.5;
    for fullframe in [false, true] {
        let mut p = open(&cbr(8000, fullframe));
        let mut all = run(&mut p, (3.0 * FPS) as usize);
        let mut previous = 8000.0;
        for target in [2000, 8000] {
            p.apply(&Control::SetBitrate(target)).unwrap();
            let next = run(&mut p, FPS as usize);
            let got = kbps(&next);
            let target = f64::from(target);
            // Kbit the old buffer held beyond the new one's, spent within this second.
            let carried = (VBV_FRAMES * (previous - target) / FPS).max(0.0);
            eprintln!(
                "fullframe={fullframe}: -> {target}: next second {got:.0} kbit/s \
                 (up to {carried:.0} kbit carried)"
            );
            assert!(
                got >= target * 0.85 && got <= target * 1.15 + carried,
                "fullframe={fullframe}: {got:.0} kbit/s in the second after a change to {target}"
            );
            previous = target;
            assert!(
                next.iter()
                    .flatten()
                    .all(|s| s.h264_frame_type() == Some(H264FrameType::Other)),
                "a bitrate change needs no key frame"
            );
            all.extend(next);
            all.extend(run(&mut p, FPS as usize));
        }
        decodes(&all);
    }
}

/// Under CBR a new frame rate keeps the bitrate: x264 cannot change its own frame rate, so the
/// rate it is given is rescaled (no new encoder, no IDR) and each frame's budget doubles when
/// the rate halves.
#[test]
fn a_frame_rate_change_keeps_the_bitrate() {
    let settings = CaptureSettings {
        capture_width: 640,
        capture_height: 384,
        ..cbr(1500, false)
    };
    let mut p = open(&settings);
    run(&mut p, (3.0 * FPS) as usize);
    p.apply(&Control::SetFps(FPS / 2.0)).unwrap();
    let next = run(&mut p, FPS as usize); // 2 s at 15 fps
    let bytes: usize = next.iter().flatten().map(|s| s.payload().len()).sum();
    let got = bytes as f64 * 8.0 / 2.0 / 1000.0;
    eprintln!("30 -> 15 fps at 1500 kbit/s: {got:.0} kbit/s over the next 2 s");
    assert!(within(got, 1500.0, 0.15), "{got:.0} kbit/s at 15 fps");
    assert!(next
        .iter()
        .flatten()
        .all(|s| s.h264_frame_type() == Some(H264FrameType::Other)));
}

/// `keyframe_interval_s = 0.5` at 30 fps: every stripe is an IDR on frames 0, 15, 30, ...
/// and on no other frame, under CRF and CBR.
#[test]
fn keyframe_interval_puts_idrs_on_schedule() {
    for cbr_mode in [false, true] {
        let settings = CaptureSettings {
            keyframe_interval_s: 0.5,
            video_cbr_mode: cbr_mode,
            capture_width: 320,
            capture_height: 256,
            ..cbr(1000, false)
        };
        let mut p = open(&settings);
        let frames = run(&mut p, 50);
        for (n, stripes) in frames.iter().enumerate() {
            let idr = stripes
                .iter()
                .filter(|s| s.h264_frame_type() == Some(H264FrameType::Idr))
                .count();
            if n % 15 == 0 {
                assert_eq!(idr, 2, "frame {n}: both stripes IDRs (cbr {cbr_mode})");
            } else {
                assert_eq!(idr, 0, "frame {n}: no IDR (cbr {cbr_mode})");
            }
        }
    }
    // 0 (the default): key frames only when asked for.
    let mut p = open(&CaptureSettings {
        capture_width: 320,
        capture_height: 256,
        ..cbr(1000, false)
    });
    let frames = run(&mut p, 40);
    let idrs: Vec<usize> = (0..frames.len())
        .filter(|&n| {
            frames[n]
                .iter()
                .any(|s| s.h264_frame_type() == Some(H264FrameType::Idr))
        })
        .collect();
    assert_eq!(idrs, [0]);
}

/// The quantizer bounds move the bytes the way they must: a `video_max_qp` keeps a rate too
/// low for the content from coarsening the picture (the stream overshoots), a `video_min_qp`
/// keeps a generous rate from being spent (it undershoots), and under CRF a `video_min_qp`
/// above the CRF's quantizers shrinks the stream.
#[test]
fn qp_bounds_override_the_rate() {
    let frames = 60;
    let rate = |s: &CaptureSettings| kbps(&run(&mut open(s), frames));
    let low = cbr(150, true);
    let free = rate(&low);
    let capped = rate(&CaptureSettings {
        video_max_qp: 20,
        ..low.clone()
    });
    eprintln!("150 kbit/s: {free:.0} free, {capped:.0} with max QP 20");
    assert!(
        capped > 3.0 * free,
        "max QP 20: {capped:.0} vs {free:.0} kbit/s"
    );
    let high = cbr(20000, true);
    let free = rate(&high);
    let floored = rate(&CaptureSettings {
        video_min_qp: 40,
        ..high.clone()
    });
    eprintln!("20000 kbit/s: {free:.0} free, {floored:.0} with min QP 40");
    assert!(
        floored * 3.0 < free,
        "min QP 40: {floored:.0} vs {free:.0} kbit/s"
    );
    let crf = CaptureSettings {
        video_cbr_mode: false,
        h264_crf: 15,
        ..high
    };
    let free = rate(&crf);
    let floored = rate(&CaptureSettings {
        video_min_qp: 40,
        ..crf
    });
    eprintln!("CRF 15: {free:.0} free, {floored:.0} with min QP 40");
    assert!(
        floored * 3.0 < free,
        "CRF, min QP 40: {floored:.0} vs {free:.0} kbit/s"
    );
}

/// The full-motion scene, still from grab `stop` to grab `resume`; keeps a copy of every
/// picture it showed (the truth for the decoded ones).
struct Stops {
    inner: SyntheticSource,
    grabs: u32,
    stop: u32,
    resume: u32,
    shown: Vec<OwnedFrame>,
}

impl FrameSource for Stops {
    fn size(&self) -> (u32, u32) {
        self.inner.size()
    }
    fn grab(&mut self) -> Result<Frame<'_>, SourceError> {
        let moving = !(self.stop..self.resume).contains(&self.grabs);
        self.grabs += 1;
        if moving {
            self.inner.grab()?;
        }
        let frame = self.inner.last_frame();
        self.shown.push(OwnedFrame::from_view(frame.view()));
        Ok(self.inner.last_frame())
    }
    fn last_frame(&mut self) -> Frame<'_> {
        self.inner.last_frame()
    }
}

/// Under CBR a stripe that stops changing is cleaned up (a paint-over IDR at QP 10, coded
/// outside the VBV) even with `use_paint_over_quality` off, as 2.2.1 does: a low rate alone
/// leaves the still picture coarse for good. When the picture moves again the stripe's CBR
/// encoder starts over with an IDR and its stream decodes as before.
#[test]
fn cbr_cleans_up_a_still_screen() {
    let settings = CaptureSettings {
        capture_width: 320,
        capture_height: 256,
        ..cbr(300, false)
    };
    assert!(!settings.use_paint_over_quality);
    let config = PipelineConfig::new(&settings).unwrap();
    // 30 frames of motion, then up to `damage_block_duration` (30) frames of a damaged stripe
    // sent without hashing, then `paint_over_trigger_frames` (10) still ones, the paint-over;
    // motion again from frame 80.
    let source = Stops {
        inner: SyntheticSource::new(Scene::Full, 320, 256),
        grabs: 0,
        stop: 30,
        resume: 80,
        shown: Vec::new(),
    };
    let shown = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut p = Pipeline::new(
        config,
        Box::new(Recorder(source, shown.clone())),
        Vec::new(),
    )
    .unwrap();
    let frames = run(&mut p, 110);
    let shown = shown.lock().unwrap();
    for y in [0, 128] {
        let sent: Vec<&Stripe> = frames.iter().flatten().filter(|s| s.y == y).collect();
        let stream: Vec<u8> = sent.iter().flat_map(|s| s.payload().to_vec()).collect();
        let pictures = decode_h264(&stream, 320, 128);
        assert_eq!(pictures.len(), sent.len());
        let quality: Vec<(u64, f64, bool)> = sent
            .iter()
            .zip(&pictures)
            .map(|(s, p)| {
                let truth = crop_rows(&shown[s.frame_id as usize], y, 128);
                (s.frame_id, psnr(p, &truth), s.paint_over)
            })
            .collect();
        let at = |id: u64| quality.iter().find(|q| q.0 == id).map(|q| q.1);
        let cleanup = quality.iter().position(|q| q.2).expect("a paint-over");
        let (id, clean, _) = quality[cleanup];
        let coarse = quality[cleanup - 1].1;
        eprintln!(
            "stripe {y}: {coarse:.1} dB still, {clean:.1} dB after the clean-up (frame {id})"
        );
        assert!((50..80).contains(&id), "clean-up at frame {id}");
        assert_eq!(sent[cleanup].h264_frame_type(), Some(H264FrameType::Idr));
        // 36.4 dB is also what the CRF path's paint-over (QP 10) reaches on this picture
        // (4:2:0 of saturated colour waves): the clean-up is that picture, not a coarse one.
        assert!(
            clean >= 33.0 && clean > coarse + 1.0,
            "{coarse:.1} -> {clean:.1} dB"
        );
        // Moving again: an IDR from the fresh CBR encoder, then P pictures that decode as well
        // as those before the stop did (no drift from a reference the decoder does not have).
        let next = &sent[cleanup + 1];
        assert_eq!(next.frame_id, 80);
        assert_eq!(next.h264_frame_type(), Some(H264FrameType::Idr));
        let before: f64 = (20..30).filter_map(at).sum::<f64>() / 10.0;
        let after: f64 = (100..110).filter_map(at).sum::<f64>() / 10.0;
        eprintln!("stripe {y}: motion {before:.1} dB before the stop, {after:.1} dB after");
        assert!(after > before - 3.0, "{before:.1} -> {after:.1} dB");
    }
}

/// Shares what a source showed with the test after the pipeline took the source.
struct Recorder(Stops, std::sync::Arc<std::sync::Mutex<Vec<OwnedFrame>>>);

impl FrameSource for Recorder {
    fn size(&self) -> (u32, u32) {
        self.0.size()
    }
    fn grab(&mut self) -> Result<Frame<'_>, SourceError> {
        self.0.grab()?;
        let f = self.0.shown.pop().expect("a shown frame");
        self.1.lock().unwrap().push(f);
        Ok(self.0.last_frame())
    }
    fn last_frame(&mut self) -> Frame<'_> {
        self.0.last_frame()
    }
}
