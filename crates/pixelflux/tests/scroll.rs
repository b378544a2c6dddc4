//! Scroll detection (`scroll_detection`, JPEG on the tagged wire format): what a viewer shows
//! after applying each frame's copy-rows and decoding its stripes with libjpeg-turbo (PNG for
//! lossless stills) matches the source, over the synthetic scroll scene and a real xterm
//! scrolling under Xvfb; scenes that do not scroll never send copy-rows; the paint-over of
//! moved rows; and the formats where it is off.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pixelflux::source::synthetic::SyntheticSource;
use pixelflux::source::x11::{Region, X11Source};
use pixelflux::source::Damage;
use pixelflux::wire::{parse_copy_rows, CopyRun};
use pixelflux::{
    CaptureSettings, Codec, Control, Frame, FrameSource, OwnedFrame, Pipeline, PipelineConfig,
    Scene, SourceError, SourceSpec, Stripe, StripeKind, WireFormat,
};
use support::*;

/// What a browser tab does with the tagged stream: copy-rows on its canvas, then stripes.
struct Viewer {
    canvas: OwnedFrame,
    copies: usize,
    rows_copied: u64,
}

impl Viewer {
    fn new(width: u32, height: u32) -> Self {
        Self {
            canvas: OwnedFrame::new(width, height),
            copies: 0,
            rows_copied: 0,
        }
    }

    fn apply(&mut self, stripe: &Stripe) {
        let stride = self.canvas.stride();
        match stripe.kind {
            StripeKind::CopyRows => {
                let (id, runs) = parse_copy_rows(&stripe.data).expect("a copy-rows message");
                assert_eq!(id, stripe.frame_id as u16);
                self.copies += 1;
                // Every run reads the picture as it was before the message.
                let before = self.canvas.data.clone();
                for CopyRun {
                    src_y,
                    dst_y,
                    height,
                } in runs
                {
                    assert!(height > 0 && src_y != dst_y, "a run that moves nothing");
                    assert!(src_y + height <= self.canvas.height);
                    assert!(dst_y + height <= self.canvas.height);
                    let (s, d, n) = (
                        src_y as usize * stride,
                        dst_y as usize * stride,
                        height as usize * stride,
                    );
                    self.canvas.data[d..d + n].copy_from_slice(&before[s..s + n]);
                    self.rows_copied += u64::from(height);
                }
            }
            StripeKind::Jpeg => self.paint(stripe.y, &decode_jpeg(stripe.payload())),
            StripeKind::Still => self.paint(stripe.y, &decode_png(stripe.payload())),
            other => panic!("unexpected stripe kind {other:?}"),
        }
    }

    fn paint(&mut self, y: u32, picture: &OwnedFrame) {
        assert_eq!(picture.width, self.canvas.width);
        let start = y as usize * self.canvas.stride();
        self.canvas.data[start..start + picture.data.len()].copy_from_slice(&picture.data);
    }
}

/// An 8-bit RGB PNG (a lossless still) as BGRX.
fn decode_png(data: &[u8]) -> OwnedFrame {
    let mut reader = png::Decoder::new(std::io::Cursor::new(data))
        .read_info()
        .expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("PNG pixels");
    assert_eq!(info.color_type, png::ColorType::Rgb);
    let mut f = OwnedFrame::new(info.width, info.height);
    for (px, rgb) in f.data.chunks_exact_mut(4).zip(buf.chunks_exact(3)) {
        px.copy_from_slice(&[rgb[2], rgb[1], rgb[0], 0]);
    }
    f
}

fn settings(width: u32, height: u32, scroll: bool) -> CaptureSettings {
    CaptureSettings {
        capture_width: width,
        capture_height: height,
        wire_format: WireFormat::Tagged,
        scroll_detection: scroll,
        ..Default::default()
    }
}

/// A source that keeps a copy of the frame each tick hands out (the reference picture).
struct Keep {
    inner: Box<dyn FrameSource>,
    last: Arc<Mutex<Option<OwnedFrame>>>,
}

impl FrameSource for Keep {
    fn size(&self) -> (u32, u32) {
        self.inner.size()
    }
    fn grab(&mut self) -> Result<Frame<'_>, SourceError> {
        let frame = self.inner.grab()?;
        *self.last.lock().unwrap() = Some(OwnedFrame::from_view(frame.view()));
        Ok(frame)
    }
    fn damage(&mut self) -> Result<Damage, SourceError> {
        self.inner.damage()
    }
    fn last_frame(&mut self) -> Frame<'_> {
        let frame = self.inner.last_frame();
        *self.last.lock().unwrap() = Some(OwnedFrame::from_view(frame.view()));
        frame
    }
    fn set_region(&mut self, region: Region) -> Result<(), SourceError> {
        self.inner.set_region(region)
    }
    fn screen_size(&self) -> Option<(u32, u32)> {
        self.inner.screen_size()
    }
}

/// Per frame: the stripes sent and the PSNR of the viewer's canvas against the source.
struct Run {
    viewer: Viewer,
    bytes: u64,
    /// Picture stripes (JPEG and stills) sent after the first frame.
    stripes_after_first: usize,
    worst_db: f64,
    stripes: Vec<Stripe>,
}

/// Ticks a pipeline over `source` `frames` times (calling `between` before each tick), applying
/// everything to a viewer and comparing it with the frame the tick encoded.
fn run(
    settings: CaptureSettings,
    source: Box<dyn FrameSource>,
    frames: u32,
    mut between: impl FnMut(u32, &mut Pipeline),
) -> Run {
    let (w, h) = (settings.capture_width, settings.capture_height);
    let last = Arc::new(Mutex::new(None));
    let keep = Keep {
        inner: source,
        last: Arc::clone(&last),
    };
    let config = PipelineConfig::new(&settings).unwrap();
    let mut pipeline = Pipeline::new(config, Box::new(keep), Vec::new()).unwrap();
    let mut out = Run {
        viewer: Viewer::new(w, h),
        bytes: 0,
        stripes_after_first: 0,
        worst_db: f64::INFINITY,
        stripes: Vec::new(),
    };
    for n in 0..frames {
        between(n, &mut pipeline);
        let tick = pipeline.tick(false).unwrap();
        for (i, s) in tick.stripes.iter().enumerate() {
            // A new size (a region change) starts a new picture, as a new hello does.
            let (fw, fh) = (s.format.width, s.format.height);
            if (fw, fh) != (out.viewer.canvas.width, out.viewer.canvas.height) {
                out.viewer.canvas = OwnedFrame::new(fw, fh);
            }
            // Copy-rows, when there is one, comes first.
            assert!(
                s.kind != StripeKind::CopyRows || i == 0,
                "copy-rows after a stripe"
            );
            out.viewer.apply(s);
            out.bytes += s.data.len() as u64;
            if n > 0 && s.kind != StripeKind::CopyRows {
                out.stripes_after_first += 1;
            }
        }
        let source = last.lock().unwrap().clone().expect("a frame");
        let db = psnr(&out.viewer.canvas, &source);
        out.worst_db = out.worst_db.min(db);
        out.stripes.extend(tick.stripes);
    }
    out
}

/// The JPEG threshold of the other pipeline tests: a stripe decoded against its source.
const JPEG_MIN_DB: f64 = 30.0;

#[test]
fn the_scroll_scene_rebuilt_from_copy_rows_and_stripes_matches_the_source() {
    let (w, h) = (640, 480);
    let scene = || Box::new(SyntheticSource::new(Scene::Scroll, w, h));
    let with = run(settings(w, h, true), scene(), 40, |_, _| {});
    let without = run(settings(w, h, false), scene(), 40, |_, _| {});
    eprintln!(
        "scroll scene: with copy-rows {} B, {} stripes, worst {:.1} dB; without {} B, {} \
         stripes, worst {:.1} dB",
        with.bytes,
        with.stripes_after_first,
        with.worst_db,
        without.bytes,
        without.stripes_after_first,
        without.worst_db
    );
    assert!(with.worst_db >= JPEG_MIN_DB, "{:.1} dB", with.worst_db);
    // The scene moves 4 rows a frame: every frame after the first is a copy.
    assert_eq!(with.viewer.copies, 39);
    // Only the stripe with the new rows is encoded: a tenth of the stripes, well under half
    // the bytes (the first frame is whole in both).
    assert!(
        with.stripes_after_first * 4 < without.stripes_after_first,
        "{} vs {} stripes",
        with.stripes_after_first,
        without.stripes_after_first
    );
    assert!(with.bytes * 2 < without.bytes);
    // Copied rows are as good as the stripes they came from.
    assert!(with.worst_db > without.worst_db - 1.0);
    assert_eq!(without.viewer.copies, 0);
}

#[test]
fn scenes_that_do_not_scroll_send_no_copy_rows() {
    let (w, h) = (320, 256);
    for scene in [
        Scene::Static,
        Scene::Typing,
        Scene::Video,
        Scene::Full,
        Scene::Desktop,
    ] {
        let source = Box::new(SyntheticSource::new(scene, w, h));
        let with = run(settings(w, h, true), source, 30, |_, _| {});
        assert_eq!(with.viewer.copies, 0, "{scene}: copy-rows");
        assert!(
            with.worst_db >= JPEG_MIN_DB,
            "{scene}: {:.1} dB",
            with.worst_db
        );
        // The same stripes as without scroll detection, byte for byte.
        let source = Box::new(SyntheticSource::new(scene, w, h));
        let without = run(settings(w, h, false), source, 30, |_, _| {});
        let key = |r: &Run| -> Vec<(u64, u32, Vec<u8>)> {
            r.stripes
                .iter()
                .map(|s| (s.frame_id, s.y, s.data.clone()))
                .collect()
        };
        assert!(key(&with) == key(&without), "{scene}: stripes differ");
    }
}

/// A picture that scrolls up by `step` rows a frame for `moving` frames, then stays.
struct ScrollThenStop {
    base: OwnedFrame,
    frame: OwnedFrame,
    n: u32,
    step: u32,
    moving: u32,
}

impl ScrollThenStop {
    fn new(w: u32, h: u32, step: u32, moving: u32) -> Self {
        Self {
            base: test_pattern(w, h * 3, 1),
            frame: OwnedFrame::new(w, h),
            n: 0,
            step,
            moving,
        }
    }
}

impl FrameSource for ScrollThenStop {
    fn size(&self) -> (u32, u32) {
        (self.frame.width, self.frame.height)
    }
    fn grab(&mut self) -> Result<Frame<'_>, SourceError> {
        let offset = (self.n.min(self.moving) * self.step) as usize * self.frame.stride();
        self.n += 1;
        let len = self.frame.data.len();
        self.frame
            .data
            .copy_from_slice(&self.base.data[offset..offset + len]);
        Ok(self.frame.as_frame())
    }
    fn last_frame(&mut self) -> Frame<'_> {
        self.frame.as_frame()
    }
}

/// Moved rows carry the quality they were sent at: once the picture stops, the stripes that
/// were only moved get their paint-over like any stripe that stopped changing — a JPEG at
/// paint-over quality, or with lossless stills an exact picture.
#[test]
fn moved_stripes_are_painted_over_once_the_scroll_stops() {
    let (w, h) = (256, 384);
    for lossless in [false, true] {
        let settings = CaptureSettings {
            // No damage throttling: the bottom stripe changes every frame while scrolling.
            damage_block_threshold: 0,
            jpeg_quality: 40,
            paint_over_jpeg_quality: 90,
            use_paint_over_quality: true,
            paint_over_lossless: lossless,
            paint_over_trigger_frames: 5,
            ..settings(w, h, true)
        };
        // 20 frames of scrolling by 8 rows, then still for 15.
        let source = Box::new(ScrollThenStop::new(w, h, 8, 20));
        let out = run(settings.clone(), source, 36, |_, _| {});
        assert!(out.viewer.copies >= 19, "{} copies", out.viewer.copies);
        let painted: Vec<u32> = out
            .stripes
            .iter()
            .filter(|s| s.paint_over && s.frame_id > 20)
            .map(|s| s.y)
            .collect();
        let mut once = painted.clone();
        once.sort_unstable();
        once.dedup();
        assert_eq!(once.len(), painted.len(), "a stripe painted over twice");
        let source = ScrollThenStop::new(w, h, 8, 20)
            .grab_owned(40)
            .expect("the still picture");
        // Every stripe, moved or not, ends at paint-over quality: had a moved stripe kept the
        // worth of what it showed before the move, its low-quality rows would stay.
        for y in (0..h).step_by(64) {
            let got = crop_rows(&out.viewer.canvas, y, 64);
            let want = crop_rows(&source, y, 64);
            let db = psnr(&got, &want);
            if lossless {
                assert!(db.is_infinite(), "stripe {y}: {db:.1} dB, not exact");
            } else {
                let low = psnr(&decode_jpeg(&reference_jpeg(&want, 40)), &want);
                assert!(db > low + 3.0, "stripe {y}: {db:.1} dB, q40 gives {low:.1}");
            }
        }
    }
}

impl ScrollThenStop {
    /// The picture of grab `n`.
    fn grab_owned(mut self, n: u32) -> Option<OwnedFrame> {
        self.n = n;
        let f = self.grab().ok()?;
        Some(OwnedFrame::from_view(f.view()))
    }
}

#[test]
fn scroll_detection_needs_the_tagged_format_and_leaves_h264_alone() {
    let compat = CaptureSettings {
        wire_format: WireFormat::Compat,
        ..settings(256, 128, true)
    };
    let err = PipelineConfig::new(&compat).unwrap_err();
    assert_eq!(err.field, "scroll_detection");
    assert!(!PipelineConfig::new(&settings(256, 128, false))
        .unwrap()
        .scroll_detection());
    let h264 = CaptureSettings {
        output_mode: Codec::H264,
        ..settings(256, 128, true)
    };
    let config = PipelineConfig::new(&h264).unwrap();
    assert!(!config.scroll_detection());
    if cfg!(feature = "x264") {
        let mut p = Pipeline::open(config, &SourceSpec::Synthetic(Scene::Scroll)).unwrap();
        for _ in 0..10 {
            let out = p.tick(false).unwrap();
            assert!(out.stripes.iter().all(|s| s.kind != StripeKind::CopyRows));
        }
    }
}

/// A real terminal: xterm under Xvfb printing lines, captured through the X11 source (with
/// its damage reports). Every frame the viewer rebuilds matches what was grabbed, also across
/// live region changes, and the terminal's scrolling is sent as copies.
#[test]
fn a_real_xterm_scrolling_a_log_rebuilds_exactly_as_grabbed() {
    let (w, h) = (480, 312);
    let xvfb = Xvfb::start(w, h);
    let script = "i=0; while :; do i=$((i+1)); \
                  echo \"line $i: compiling crate-$i v0.$((i % 7)).$((i % 13)) ....\"; \
                  sleep 0.02; done";
    let mut xterm = std::process::Command::new("xterm")
        .args(["-geometry", &format!("{}x{}+0+0", w / 6, h / 13)])
        .args(["-e", "sh", "-c", script])
        .env("DISPLAY", &xvfb.display)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("xterm (scripts/install-deps.sh test installs it)");
    // Let it fill the screen with lines first.
    std::thread::sleep(Duration::from_millis(2500));
    let source = X11Source::open(
        Some(&xvfb.display),
        Region {
            x: 0,
            y: 0,
            width: w,
            height: h,
        },
    )
    .expect("the X11 source");
    // Halfway, the region changes live: smaller, then the same size lower on the screen (no
    // copy may cross a region change: the frame after one is whole).
    let out = run(settings(w, h, true), Box::new(source), 90, |n, p| {
        let region = |y, height| Control::SetRegion {
            x: 0,
            y,
            width: w,
            height,
        };
        match n {
            40 => p.apply(&region(0, h - 52)).unwrap(),
            65 => p.apply(&region(52, h - 52)).unwrap(),
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(30));
    });
    let _ = xterm.kill();
    let _ = xterm.wait();
    eprintln!(
        "xterm: {} copies ({} rows), {} stripes after the first frame, {} B, worst {:.1} dB",
        out.viewer.copies, out.viewer.rows_copied, out.stripes_after_first, out.bytes, out.worst_db
    );
    assert!(out.worst_db >= JPEG_MIN_DB, "{:.1} dB", out.worst_db);
    assert_eq!(
        out.viewer.canvas.height,
        h - 52,
        "the region changes applied"
    );
    // A line every 20 ms and a frame every 30 ms or more: it scrolls nearly every frame.
    assert!(out.viewer.copies >= 20, "{} copies", out.viewer.copies);
}
