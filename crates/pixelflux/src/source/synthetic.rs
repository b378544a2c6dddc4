//! Deterministic animated scenes, for tests, benchmarks and demos with no X server.
//!
//! Every scene starts from the same desktop-like picture (panels, "windows", text-like glyph
//! rows) and changes it the same way on every run, so two runs produce identical frames.

use std::str::FromStr;

use super::{Damage, FrameSource, SourceError};
use crate::frame::{Frame, OwnedFrame};

/// What changes from frame to frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scene {
    /// Nothing changes after the first frame.
    Static,
    /// A few glyphs appear each frame at a moving caret, like someone typing.
    Typing,
    /// The whole picture moves up a few rows each frame, like a scrolled page.
    Scroll,
    /// A region in the middle (a third of each side) changes every frame, like a video.
    Video,
    /// Every pixel changes every frame.
    Full,
}

impl Scene {
    /// Every scene, in benchmark order.
    pub const ALL: [Scene; 5] = [
        Scene::Static,
        Scene::Typing,
        Scene::Scroll,
        Scene::Video,
        Scene::Full,
    ];

    /// The scene's name, as `FromStr` accepts it.
    pub fn name(self) -> &'static str {
        match self {
            Scene::Static => "static",
            Scene::Typing => "typing",
            Scene::Scroll => "scroll",
            Scene::Video => "video",
            Scene::Full => "full",
        }
    }
}

impl std::fmt::Display for Scene {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A scene name that is not one of ours.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown scene {0:?} (expected static, typing, scroll, video or full)")]
pub struct UnknownScene(pub String);

impl FromStr for Scene {
    type Err = UnknownScene;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scene::ALL
            .into_iter()
            .find(|scene| scene.name() == s)
            .ok_or_else(|| UnknownScene(s.to_string()))
    }
}

/// Glyph cell size of the typing scene.
const GLYPH_W: u32 = 8;
const GLYPH_H: u32 = 16;
/// Glyphs typed per frame.
const GLYPHS_PER_FRAME: u32 = 3;
/// Rows the scroll scene moves per frame.
const SCROLL_STEP: u32 = 4;
/// Pixels the full scene pans per frame.
const PAN_STEP: u32 = 3;

/// A source that renders a [`Scene`] into an owned frame.
#[derive(Debug)]
pub struct SyntheticSource {
    scene: Scene,
    frame: OwnedFrame,
    /// The scene's starting picture; `Scroll` and `Full` read their rows from it.
    base: OwnedFrame,
    /// With [`with_overlays`](Self::with_overlays), what `grab` hands out for scenes that
    /// change their picture in place (static, typing, video): a copy, so overlays drawn into
    /// it never become part of the scene (a half-transparent watermark would otherwise be
    /// blended over itself every frame). Otherwise `frame` itself is handed out.
    shown: Option<OwnedFrame>,
    index: u64,
}

impl SyntheticSource {
    /// A source of `width` x `height` frames.
    pub fn new(scene: Scene, width: u32, height: u32) -> Self {
        let base = match scene {
            // Panning reads a picture twice as wide so every offset has pixels.
            Scene::Full => texture(width * 2, height),
            Scene::Scroll => desktop(width, height * 2),
            _ => desktop(width, height),
        };
        Self {
            scene,
            frame: OwnedFrame::new(width, height),
            base,
            shown: None,
            index: 0,
        }
    }

    /// Makes every grab hand out a fresh copy of the scene, for captures whose overlays draw
    /// into the grabbed frames. Costs one frame copy per grab for the scenes that change in
    /// place (static, typing, video); scroll and full rewrite every pixel anyway.
    pub fn with_overlays(mut self) -> Self {
        if matches!(self.scene, Scene::Static | Scene::Typing | Scene::Video) {
            self.shown = Some(self.frame.clone());
        }
        self
    }

    /// The scene this source plays.
    pub fn scene(&self) -> Scene {
        self.scene
    }

    /// Frames rendered so far.
    pub fn frames_rendered(&self) -> u64 {
        self.index
    }

    /// Renders the next frame into the owned buffer.
    pub fn advance(&mut self) -> &OwnedFrame {
        let i = self.index;
        let (w, h) = (self.frame.width, self.frame.height);
        match self.scene {
            Scene::Static | Scene::Typing | Scene::Video if i == 0 => {
                self.frame.data.copy_from_slice(&self.base.data);
            }
            _ => {}
        }
        match self.scene {
            Scene::Static => {}
            Scene::Typing => type_glyphs(&mut self.frame, &self.base, i),
            Scene::Video => {
                let (rw, rh) = ((w / 3).max(1), (h / 3).max(1));
                plasma(&mut self.frame, w / 3, h / 3, rw, rh, i);
            }
            Scene::Scroll => {
                let stride = self.frame.stride();
                let offset = ((i * SCROLL_STEP as u64) % h as u64) as usize;
                let start = offset * stride;
                let len = h as usize * stride;
                self.frame
                    .data
                    .copy_from_slice(&self.base.data[start..start + len]);
            }
            Scene::Full => {
                let offset = ((i * PAN_STEP as u64) % w as u64) as usize * 4;
                let src_stride = self.base.stride();
                let row_len = self.frame.stride();
                for (y, row) in self.frame.data.chunks_exact_mut(row_len).enumerate() {
                    let s = y * src_stride + offset;
                    row.copy_from_slice(&self.base.data[s..s + row_len]);
                }
            }
        }
        self.index += 1;
        &self.frame
    }
}

impl FrameSource for SyntheticSource {
    fn size(&self) -> (u32, u32) {
        (self.frame.width, self.frame.height)
    }

    fn grab(&mut self) -> Result<Frame<'_>, SourceError> {
        self.advance();
        if let Some(shown) = &mut self.shown {
            shown.data.copy_from_slice(&self.frame.data);
        }
        Ok(self.last_frame())
    }

    fn damage(&mut self) -> Result<Damage, SourceError> {
        // The static scene knows it never changes; the others let every stripe be hashed.
        Ok(match self.scene {
            Scene::Static if self.index > 0 => Damage::Rows(Vec::new()),
            _ => Damage::Unknown,
        })
    }

    fn last_frame(&mut self) -> Frame<'_> {
        match &mut self.shown {
            Some(shown) => shown.as_frame(),
            None => self.frame.as_frame(),
        }
    }
}

/// A small, fast deterministic hash (splitmix64's finaliser).
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn put(frame: &mut OwnedFrame, x: u32, y: u32, bgr: [u8; 3]) {
    let i = (y as usize * frame.width as usize + x as usize) * 4;
    frame.data[i..i + 4].copy_from_slice(&[bgr[0], bgr[1], bgr[2], 0xff]);
}

fn fill(frame: &mut OwnedFrame, x0: u32, y0: u32, w: u32, h: u32, bgr: [u8; 3]) {
    for y in y0..(y0 + h).min(frame.height) {
        for x in x0..(x0 + w).min(frame.width) {
            put(frame, x, y, bgr);
        }
    }
}

/// Draws one text-like glyph (a pseudo-random 6x12 pattern) into cell (x, y).
fn glyph(frame: &mut OwnedFrame, x: u32, y: u32, seed: u64, ink: [u8; 3]) {
    let bits = mix(seed);
    for gy in 0..12u32 {
        for gx in 0..6u32 {
            // Two bits per row pair keep strokes vertical-ish, like letters.
            let bit = (bits >> ((gy / 2) * 6 + gx)) & 1;
            if bit == 1 && x + 1 + gx < frame.width && y + 2 + gy < frame.height {
                put(frame, x + 1 + gx, y + 2 + gy, ink);
            }
        }
    }
}

/// The shared starting picture: a desktop with a panel, two windows and lines of text.
fn desktop(width: u32, height: u32) -> OwnedFrame {
    let mut f = OwnedFrame::new(width, height);
    // Vertical gradient wallpaper.
    for y in 0..height {
        let t = (y * 255 / height.max(1)) as u8;
        for x in 0..width {
            put(
                &mut f,
                x,
                y,
                [120u8.saturating_add(t / 2), 80, 40u8.saturating_add(t / 4)],
            );
        }
    }
    fill(&mut f, 0, 0, width, 28, [48, 48, 48]);
    let windows = [
        (width / 20, height / 10, width * 11 / 20, height * 8 / 10),
        (width * 13 / 20, height / 6, width * 6 / 20, height / 2),
    ];
    for (n, &(x, y, w, h)) in windows.iter().enumerate() {
        fill(&mut f, x, y, w, 24, [140, 90, 60]);
        fill(&mut f, x, y + 24, w, h.saturating_sub(24), [245, 245, 245]);
        // Text lines inside the window.
        let mut cy = y + 32;
        let mut line = 0u64;
        while cy + GLYPH_H < y + h {
            let len = 20 + (mix(line ^ n as u64) % (w as u64 / GLYPH_W as u64).max(21)) as u32;
            for c in 0..len.min((w.saturating_sub(16)) / GLYPH_W) {
                if !mix(line * 1000 + c as u64).is_multiple_of(7) {
                    glyph(
                        &mut f,
                        x + 8 + c * GLYPH_W,
                        cy,
                        line * 131 + c as u64,
                        [30, 30, 30],
                    );
                }
            }
            cy += GLYPH_H + 4;
            line += 1;
        }
    }
    f
}

/// Typing: three glyphs a frame along the lines of a text area in the top-left window; when the
/// area is full it is cleared back to the base picture and typing starts over.
fn type_glyphs(frame: &mut OwnedFrame, base: &OwnedFrame, index: u64) {
    let (w, h) = (frame.width, frame.height);
    let x0 = w / 20 + 8;
    let y0 = h / 10 + 32;
    let cols = ((w * 11 / 20).saturating_sub(16) / GLYPH_W).max(1) as u64;
    let rows = ((h * 8 / 10).saturating_sub(40) / (GLYPH_H + 4)).max(1) as u64;
    let per_page = cols * rows;
    for k in 0..GLYPHS_PER_FRAME as u64 {
        let n = index * GLYPHS_PER_FRAME as u64 + k;
        let pos = n % per_page;
        if pos == 0 && n > 0 {
            frame.data.copy_from_slice(&base.data);
        }
        let (col, row) = ((pos % cols) as u32, (pos / cols) as u32);
        let (x, y) = (x0 + col * GLYPH_W, y0 + row * (GLYPH_H + 4));
        if x + GLYPH_W <= w && y + GLYPH_H <= h {
            fill(frame, x, y, GLYPH_W, GLYPH_H, [245, 245, 245]);
            glyph(frame, x, y, n ^ 0xABCD, [0, 0, 160]);
        }
    }
}

/// A smooth moving colour field in a rectangle, different every frame.
fn plasma(frame: &mut OwnedFrame, x0: u32, y0: u32, w: u32, h: u32, t: u64) {
    let t = t as u32;
    let width = frame.width as usize;
    for y in y0..(y0 + h).min(frame.height) {
        let row = &mut frame.data[y as usize * width * 4..(y as usize + 1) * width * 4];
        for x in x0..(x0 + w).min(frame.width) {
            let a = x.wrapping_add(t * 5);
            let b = y.wrapping_add(t * 3);
            let i = x as usize * 4;
            row[i] = (a ^ b) as u8;
            row[i + 1] = (a.wrapping_add(b) / 2) as u8;
            row[i + 2] = (b.wrapping_mul(2)).wrapping_sub(t * 7) as u8;
            row[i + 3] = 0xff;
        }
    }
}

/// The desktop under a smooth colour wave: every pixel changes under a horizontal shift, yet
/// the picture compresses like camera video rather than like noise.
fn texture(width: u32, height: u32) -> OwnedFrame {
    let mut f = desktop(width, height);
    for y in 0..height {
        for x in 0..width {
            let i = (y as usize * width as usize + x as usize) * 4;
            let (xf, yf) = (x as f32, y as f32);
            let wave = |fx: f32, fy: f32| ((xf * fx + yf * fy).sin() * 40.0) as i32;
            for (c, w) in [
                (0, wave(0.031, 0.017)),
                (1, wave(0.023, -0.029)),
                (2, wave(0.041, 0.011)),
            ] {
                f.data[i + c] = (f.data[i + c] as i32 + w).clamp(0, 255) as u8;
            }
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(scene: Scene, n: usize) -> Vec<OwnedFrame> {
        let mut s = SyntheticSource::new(scene, 320, 240);
        (0..n).map(|_| s.advance().clone()).collect()
    }

    #[test]
    fn scenes_are_deterministic() {
        for scene in Scene::ALL {
            assert_eq!(frames(scene, 4), frames(scene, 4), "{scene}");
        }
    }

    #[test]
    fn scenes_change_as_named() {
        let changed_rows = |a: &OwnedFrame, b: &OwnedFrame| {
            (0..a.height)
                .filter(|&y| a.view().row(y) != b.view().row(y))
                .count()
        };
        let s = frames(Scene::Static, 3);
        assert_eq!(changed_rows(&s[1], &s[2]), 0);
        let t = frames(Scene::Typing, 3);
        let rows = changed_rows(&t[1], &t[2]);
        assert!(
            rows > 0 && rows <= GLYPH_H as usize,
            "typing changed {rows} rows"
        );
        let v = frames(Scene::Video, 3);
        let rows = changed_rows(&v[1], &v[2]);
        assert!(rows > 0 && rows <= 80, "video changed {rows} rows");
        let f = frames(Scene::Full, 3);
        assert_eq!(changed_rows(&f[1], &f[2]), 240);
        let sc = frames(Scene::Scroll, 3);
        assert!(changed_rows(&sc[1], &sc[2]) > 200);
    }

    #[test]
    fn names_parse() {
        for scene in Scene::ALL {
            assert_eq!(scene.name().parse::<Scene>().unwrap(), scene);
        }
        assert!("nope".parse::<Scene>().is_err());
    }
}
