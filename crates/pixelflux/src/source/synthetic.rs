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
    /// A still desktop with coloured, anti-aliased text and UI elements (title bars, buttons,
    /// syntax-coloured code, icons) over gradient panels: the content where chroma detail
    /// matters most. Nothing changes after the first frame.
    Desktop,
}

impl Scene {
    /// Every scene, in benchmark order.
    pub const ALL: [Scene; 6] = [
        Scene::Static,
        Scene::Typing,
        Scene::Scroll,
        Scene::Video,
        Scene::Full,
        Scene::Desktop,
    ];

    /// The scene's name, as `FromStr` accepts it.
    pub fn name(self) -> &'static str {
        match self {
            Scene::Static => "static",
            Scene::Typing => "typing",
            Scene::Scroll => "scroll",
            Scene::Video => "video",
            Scene::Full => "full",
            Scene::Desktop => "desktop",
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
#[error("unknown scene {0:?} (expected static, typing, scroll, video, full or desktop)")]
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
            Scene::Desktop => colour_desktop(width, height),
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
        if matches!(
            self.scene,
            Scene::Static | Scene::Typing | Scene::Video | Scene::Desktop
        ) {
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
            Scene::Static | Scene::Typing | Scene::Video | Scene::Desktop if i == 0 => {
                self.frame.data.copy_from_slice(&self.base.data);
            }
            _ => {}
        }
        match self.scene {
            Scene::Static | Scene::Desktop => {}
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

    /// The scene starts over at the new size (a synthetic scene has no screen to be off).
    fn set_region(&mut self, region: super::x11::Region) -> Result<(), SourceError> {
        if region.width == 0 || region.height == 0 {
            return Err(SourceError::Other(format!(
                "a {}x{} region is empty",
                region.width, region.height
            )));
        }
        let overlays = self.shown.is_some();
        let fresh = SyntheticSource::new(self.scene, region.width, region.height);
        *self = if overlays {
            fresh.with_overlays()
        } else {
            fresh
        };
        Ok(())
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
            Scene::Static | Scene::Desktop if self.index > 0 => Damage::Rows(Vec::new()),
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

/// BGR of an RGB colour written the usual way round.
const fn rgb(r: u8, g: u8, b: u8) -> [u8; 3] {
    [b, g, r]
}

fn lerp(a: [u8; 3], b: [u8; 3], t: u32, n: u32) -> [u8; 3] {
    let n = n.max(1);
    let mut out = [0u8; 3];
    for c in 0..3 {
        out[c] = ((a[c] as u32 * (n - t) + b[c] as u32 * t) / n) as u8;
    }
    out
}

fn get(frame: &OwnedFrame, x: u32, y: u32) -> [u8; 3] {
    let i = (y as usize * frame.width as usize + x as usize) * 4;
    [frame.data[i], frame.data[i + 1], frame.data[i + 2]]
}

/// A rectangle filled with a linear gradient from `a` to `b` (top to bottom, or left to right).
#[allow(clippy::too_many_arguments)]
fn gradient(
    frame: &mut OwnedFrame,
    x0: u32,
    y0: u32,
    w: u32,
    h: u32,
    a: [u8; 3],
    b: [u8; 3],
    vertical: bool,
) {
    for y in y0..(y0 + h).min(frame.height) {
        for x in x0..(x0 + w).min(frame.width) {
            let c = if vertical {
                lerp(a, b, y - y0, h)
            } else {
                lerp(a, b, x - x0, w)
            };
            put(frame, x, y, c);
        }
    }
}

/// A run of `chars` text-like glyphs (8x16 cells, words separated by spaces) in `ink`, with
/// anti-aliased edges: the pixel right of a stroke gets half the ink over what is behind it,
/// as font rendering gives real text. Returns the x after the run.
fn text(frame: &mut OwnedFrame, x: u32, y: u32, chars: u32, seed: u64, ink: [u8; 3]) -> u32 {
    for c in 0..chars {
        let cx = x + c * GLYPH_W;
        if cx + GLYPH_W > frame.width || y + GLYPH_H > frame.height {
            break;
        }
        // Roughly one space every five characters.
        if mix(seed ^ (c as u64 * 0x9E37)).is_multiple_of(5) {
            continue;
        }
        let bits = mix(seed.wrapping_mul(31).wrapping_add(c as u64));
        for gy in 0..12u32 {
            let mut prev = false;
            for gx in 0..7u32 {
                let on = gx < 6 && (bits >> ((gy / 2) * 6 + gx)) & 1 == 1;
                let (px, py) = (cx + 1 + gx, y + 2 + gy);
                if on {
                    put(frame, px, py, ink);
                } else if prev {
                    let behind = get(frame, px, py);
                    put(frame, px, py, lerp(behind, ink, 1, 2));
                }
                prev = on;
            }
        }
    }
    x + chars * GLYPH_W
}

/// The `desktop` scene's picture: wallpaper gradient, a top panel, a code editor with
/// syntax-coloured text, a form window on a light gradient with coloured text, buttons, a
/// progress bar and check boxes, and a dock of gradient icons. Scales with the size.
fn colour_desktop(width: u32, height: u32) -> OwnedFrame {
    let mut f = OwnedFrame::new(width, height);
    let (w, h) = (width, height);
    // Wallpaper: a diagonal blend of two vertical gradients.
    for y in 0..h {
        let left = lerp(rgb(28, 92, 120), rgb(96, 40, 110), y, h);
        let right = lerp(rgb(40, 140, 110), rgb(200, 90, 60), y, h);
        for x in 0..w {
            put(&mut f, x, y, lerp(left, right, x, w));
        }
    }
    // Top panel with menu text, coloured status icons and a clock.
    gradient(&mut f, 0, 0, w, 28, rgb(60, 60, 72), rgb(30, 30, 36), true);
    let mut x = 12;
    for (n, ink) in [rgb(235, 235, 240), rgb(200, 200, 210), rgb(200, 200, 210)]
        .into_iter()
        .enumerate()
    {
        x = text(&mut f, x, 6, 5 + n as u32, 100 + n as u64, ink) + 16;
    }
    for (n, c) in [rgb(80, 200, 120), rgb(240, 190, 40), rgb(90, 160, 250)]
        .into_iter()
        .enumerate()
    {
        fill(&mut f, w.saturating_sub(160) + n as u32 * 22, 8, 12, 12, c);
    }
    text(&mut f, w.saturating_sub(88), 6, 8, 7, rgb(255, 255, 255));

    // Editor window: gradient title bar, window buttons, dark body with a line-number gutter
    // and syntax-coloured code.
    let (ex, ey, ew, eh) = (w / 24, h / 9, w * 13 / 24, h * 7 / 10);
    gradient(
        &mut f,
        ex,
        ey,
        ew,
        26,
        rgb(70, 110, 200),
        rgb(120, 70, 190),
        false,
    );
    for (n, c) in [rgb(255, 95, 87), rgb(255, 189, 46), rgb(40, 200, 64)]
        .into_iter()
        .enumerate()
    {
        fill(&mut f, ex + 8 + n as u32 * 18, ey + 7, 12, 12, c);
    }
    text(&mut f, ex + 70, ey + 5, 14, 11, rgb(255, 255, 255));
    fill(
        &mut f,
        ex,
        ey + 26,
        ew,
        eh.saturating_sub(26),
        rgb(30, 30, 34),
    );
    fill(
        &mut f,
        ex,
        ey + 26,
        36,
        eh.saturating_sub(26),
        rgb(40, 40, 46),
    );
    let palette = [
        rgb(198, 120, 221), // keyword
        rgb(97, 175, 239),  // identifier
        rgb(229, 192, 123), // type
        rgb(152, 195, 121), // string
        rgb(224, 108, 117), // number
        rgb(171, 178, 191), // punctuation
    ];
    let mut line = 0u64;
    let mut cy = ey + 32;
    while cy + GLYPH_H < ey + eh {
        text(&mut f, ex + 4, cy, 3, 5000 + line, rgb(110, 115, 130));
        let indent = (mix(line ^ 0x51) % 4) as u32 * 2;
        let mut cx = ex + 44 + indent * GLYPH_W;
        if line % 7 == 3 {
            // A comment line.
            text(&mut f, cx, cy, 30, 900 + line, rgb(106, 153, 85));
        } else {
            let mut token = 0u64;
            while cx + 6 * GLYPH_W < ex + ew {
                let r = mix(line * 977 + token);
                let len = 2 + (r % 9) as u32;
                let ink = palette[((r >> 8) % palette.len() as u64) as usize];
                cx = text(&mut f, cx, cy, len, r, ink) + GLYPH_W;
                token += 1;
                if token > 3 + line % 6 {
                    break;
                }
            }
        }
        cy += GLYPH_H + 2;
        line += 1;
    }

    // Form window: light vertical gradient body, headings, coloured text, links, buttons,
    // a progress bar and check boxes.
    let (fx, fy, fw, fh) = (w * 15 / 24, h / 6, w * 8 / 24, h * 6 / 10);
    gradient(
        &mut f,
        fx,
        fy,
        fw,
        26,
        rgb(230, 230, 236),
        rgb(200, 200, 210),
        true,
    );
    text(&mut f, fx + 10, fy + 5, 12, 21, rgb(40, 40, 40));
    gradient(
        &mut f,
        fx,
        fy + 26,
        fw,
        fh.saturating_sub(26),
        rgb(252, 252, 255),
        rgb(220, 228, 240),
        true,
    );
    let inks = [
        rgb(20, 20, 20),
        rgb(0, 90, 200),
        rgb(200, 30, 30),
        rgb(0, 130, 60),
        rgb(120, 40, 160),
    ];
    let mut cy = fy + 36;
    let mut row = 0u64;
    while cy + 3 * GLYPH_H < fy + fh {
        let ink = inks[(mix(row ^ 0x77) % inks.len() as u64) as usize];
        let chars = ((fw.saturating_sub(24)) / GLYPH_W).min(12 + (mix(row) % 24) as u32);
        text(&mut f, fx + 12, cy, chars, 3000 + row, ink);
        cy += GLYPH_H + 4;
        if row % 4 == 3 {
            // A row of buttons with white labels.
            let mut bx = fx + 12;
            for (n, c) in [rgb(0, 110, 230), rgb(30, 160, 80), rgb(220, 60, 60)]
                .into_iter()
                .enumerate()
            {
                if bx + 80 > fx + fw {
                    break;
                }
                gradient(&mut f, bx, cy, 72, 22, c, lerp(c, rgb(0, 0, 0), 1, 3), true);
                text(
                    &mut f,
                    bx + 8,
                    cy + 3,
                    7,
                    40 + row + n as u64,
                    rgb(255, 255, 255),
                );
                bx += 84;
            }
            cy += 30;
        } else if row % 4 == 1 {
            // Check boxes and a progress bar.
            for n in 0..3u32 {
                let bx = fx + 12 + n * 20;
                fill(&mut f, bx, cy + 3, 12, 12, rgb(90, 90, 110));
                fill(&mut f, bx + 2, cy + 5, 8, 8, rgb(255, 255, 255));
                if (row + n as u64).is_multiple_of(2) {
                    fill(&mut f, bx + 3, cy + 6, 6, 6, rgb(0, 120, 215));
                }
            }
            let (px, pw) = (fx + 84, fw.saturating_sub(100));
            fill(&mut f, px, cy + 5, pw, 8, rgb(210, 210, 220));
            let done = pw * (1 + (row % 3) as u32) / 4;
            gradient(
                &mut f,
                px,
                cy + 5,
                done,
                8,
                rgb(255, 140, 0),
                rgb(230, 40, 120),
                false,
            );
            cy += 24;
        }
        row += 1;
    }

    // Dock: a translucent-looking bar of gradient icons.
    let dock_w = (w / 2).max(1);
    let (dx, dy) = (w / 4, h.saturating_sub(44));
    gradient(
        &mut f,
        dx,
        dy,
        dock_w,
        40,
        rgb(70, 70, 90),
        rgb(40, 40, 55),
        true,
    );
    let icons = [
        (rgb(255, 80, 80), rgb(160, 0, 60)),
        (rgb(80, 200, 255), rgb(0, 80, 200)),
        (rgb(120, 230, 100), rgb(0, 120, 60)),
        (rgb(255, 210, 80), rgb(230, 110, 0)),
        (rgb(200, 120, 255), rgb(90, 30, 180)),
    ];
    let mut ix = dx + 8;
    let mut n = 0usize;
    while ix + 32 <= dx + dock_w {
        let (a, b) = icons[n % icons.len()];
        gradient(&mut f, ix, dy + 4, 32, 32, a, b, true);
        text(&mut f, ix + 8, dy + 12, 2, n as u64, rgb(255, 255, 255));
        ix += 40;
        n += 1;
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
        let d = frames(Scene::Desktop, 3);
        assert_eq!(changed_rows(&d[0], &d[2]), 0);
        let sc = frames(Scene::Scroll, 3);
        assert!(changed_rows(&sc[1], &sc[2]) > 200);
    }

    #[test]
    fn desktop_has_coloured_detail() {
        // Many distinct colours and many strongly coloured pixels: the scene exists to stress
        // chroma, so it must not be mostly grey.
        let f = SyntheticSource::new(Scene::Desktop, 640, 360)
            .advance()
            .clone();
        let mut colours = std::collections::HashSet::new();
        let mut saturated = 0usize;
        for px in f.data.chunks_exact(4) {
            colours.insert([px[0], px[1], px[2]]);
            let (lo, hi) = (px[..3].iter().min(), px[..3].iter().max());
            if let (Some(&lo), Some(&hi)) = (lo, hi) {
                if hi - lo > 80 {
                    saturated += 1;
                }
            }
        }
        assert!(colours.len() > 2000, "{} colours", colours.len());
        assert!(saturated > 640 * 360 / 10, "{saturated} saturated pixels");
    }

    #[test]
    fn names_parse() {
        for scene in Scene::ALL {
            assert_eq!(scene.name().parse::<Scene>().unwrap(), scene);
        }
        assert!("nope".parse::<Scene>().is_err());
    }
}
