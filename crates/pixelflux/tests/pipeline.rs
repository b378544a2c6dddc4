//! The whole pipeline (detect → encode → deliver) over a scripted source: which stripes are
//! sent on which frame, and that what is sent decodes to what the source showed.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pixelflux::{CaptureSettings, Frame, FrameSource, OwnedFrame, ScreenCapture, SourceError};
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

/// Runs a capture over `frames` for `total` frames; returns (frame_id, y, paint_over, payload).
fn run(settings: CaptureSettings, frames: Vec<OwnedFrame>, total: u64) -> Vec<(u64, u32, bool)> {
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&log);
    let cap = ScreenCapture::start_with(
        CaptureSettings {
            capture_width: 128,
            capture_height: 192,
            target_fps: 500.0,
            ..settings
        },
        Box::new(Script::new(frames)),
        Vec::new(),
        move |s| sink.lock().unwrap().push((s.frame_id, s.y, s.paint_over)),
    )
    .unwrap();
    assert!(wait_for(Duration::from_secs(20), || cap.stats().frames >= total));
    cap.stop();
    let log = log.lock().unwrap();
    log.iter().filter(|s| s.0 < total).cloned().collect()
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
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&log);
    let cap = ScreenCapture::start_with(
        CaptureSettings {
            capture_width: 128,
            capture_height: 192,
            target_fps: 200.0,
            ..Default::default()
        },
        Box::new(Script::new(busy_top(0))),
        Vec::new(),
        move |s: pixelflux::Stripe| {
            sink.lock()
                .unwrap()
                .push((s.frame_id, s.y, s.payload().to_vec()))
        },
    )
    .unwrap();
    assert!(wait_for(Duration::from_secs(5), || cap.stats().frames >= 5));
    assert_eq!(log.lock().unwrap().len(), 3);
    cap.request_refresh();
    assert!(wait_for(Duration::from_secs(5), || log
        .lock()
        .unwrap()
        .len()
        >= 6));
    cap.stop();
    let log = log.lock().unwrap();
    let ys: Vec<u32> = log.iter().map(|s| s.1).collect();
    assert_eq!(ys, [0, 64, 128, 0, 64, 128]);
    // Every re-sent stripe decodes to the source.
    let source = test_pattern(128, 192, 0);
    for (_, y, jpeg) in &log[3..] {
        let db = psnr(&decode_jpeg(jpeg), &crop_rows(&source, *y, 64));
        assert!(db > 30.0, "stripe {y}: {db:.1} dB");
    }
}
