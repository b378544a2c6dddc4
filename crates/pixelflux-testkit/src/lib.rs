//! Helpers for pixelflux's tests and benchmark (dev only, not published): a private Xvfb,
//! drawing known pixels into an X server, decoding stripes with real decoders (libjpeg-turbo
//! for JPEG, ffmpeg for H.264) and comparing pictures by PSNR.
//!
//! Each has one implementation here. The modules return [`Error`]s (the benchmark reports
//! them); the functions at the crate root are the tests' shorthand and panic with a message
//! instead, which fails the test that called them.

pub mod decode;
pub mod paint;
pub mod psnr;

use pixelflux::OwnedFrame;

pub use paint::Painter;
pub use pixelflux_xvfb as xvfb;

/// What went wrong in a helper.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No connection to the X server.
    #[error("cannot connect to X display {}: {source}", display.as_deref().unwrap_or("$DISPLAY"))]
    Connect {
        display: Option<String>,
        #[source]
        source: x11rb::errors::ConnectError,
    },
    /// The X server refused a request or went away.
    #[error("X request failed: {0}")]
    X(#[from] x11rb::errors::ReplyError),
    /// The connection broke while sending.
    #[error("X connection failed: {0}")]
    XConnection(#[from] x11rb::errors::ConnectionError),
    /// A request could not be built (an id, a size out of the protocol's range).
    #[error("{0}")]
    Request(String),
    /// libjpeg-turbo could not decode the data.
    #[error("JPEG decode: {0}")]
    Jpeg(#[from] turbojpeg::Error),
    /// ffmpeg could not be run, or it failed.
    #[error("ffmpeg: {0}")]
    Ffmpeg(String),
    /// A file or pipe failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// An Xvfb server of a test's own (see [`pixelflux_xvfb`]: the server picks a free display
/// number); stopped when dropped.
pub struct Xvfb {
    server: Option<pixelflux_xvfb::Xvfb>,
    /// Its display name, such as `:3`.
    pub display: String,
    /// Screen width in pixels.
    pub width: u32,
    /// Screen height in pixels.
    pub height: u32,
}

impl Xvfb {
    /// Starts Xvfb with a `width` x `height` x 24 screen.
    ///
    /// # Panics
    /// When Xvfb is missing or does not come up (`make test` installs it).
    pub fn start(width: u32, height: u32) -> Self {
        let server = pixelflux_xvfb::Xvfb::start(width, height)
            .unwrap_or_else(|e| panic!("{e} (make test installs Xvfb)"));
        Self {
            display: server.display().to_owned(),
            server: Some(server),
            width,
            height,
        }
    }

    /// Starts Xvfb whose screen can be resized (RandR) up to `max_width` x `max_height`, at
    /// `width` x `height`.
    ///
    /// # Panics
    /// When Xvfb is missing or does not come up.
    pub fn start_resizable(width: u32, height: u32, max_width: u32, max_height: u32) -> Self {
        let server = pixelflux_xvfb::Xvfb::start_resizable(width, height, max_width, max_height)
            .unwrap_or_else(|e| panic!("{e} (make test installs Xvfb)"));
        Self {
            display: server.display().to_owned(),
            server: Some(server),
            width,
            height,
        }
    }

    /// Sets the screen's size through RandR (as `xrandr` would); within the size it started
    /// with (or the maximum given to [`start_resizable`](Self::start_resizable)).
    ///
    /// # Panics
    /// When the server refuses.
    pub fn resize(&mut self, width: u32, height: u32) {
        pixelflux_xvfb::set_screen_size(&self.display, width, height)
            .unwrap_or_else(|e| panic!("resizing {} to {width}x{height}: {e}", self.display));
        self.width = width;
        self.height = height;
    }

    /// Stops the server now (to test a server going away mid-capture): SIGTERM, then SIGKILL
    /// if it has not gone within 2 s.
    pub fn kill(&mut self) {
        self.server = None;
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.server.as_ref().map(pixelflux_xvfb::Xvfb::pid)
    }

    /// A connection to draw with.
    ///
    /// # Panics
    /// When the server cannot be reached.
    pub fn connect(&self) -> Painter {
        Painter::new(&self.display)
    }
}

/// A deterministic test picture with detail: 16x16 blocks of gradients, flat colours and
/// grey text-like strokes (colour edges fall on the 4:2:0 chroma grid, as UI edges mostly do).
pub fn test_pattern(width: u32, height: u32, seed: u32) -> OwnedFrame {
    let mut f = OwnedFrame::new(width, height);
    for y in 0..height {
        for x in 0..width {
            let i = (y * width + x) as usize * 4;
            let block = ((x / 16) * 7 + (y / 16) * 13 + seed) % 5;
            let (b, g, r) = match block {
                0 => (
                    (x * 255 / width.max(1)) as u8,
                    (y * 255 / height.max(1)) as u8,
                    90,
                ),
                1 => (230, 230, 230),
                2 => (40, 120, 200),
                // Grey text-like strokes: detail in luma only, as on a real desktop.
                3 if (x * 7 + y * 3 + seed) % 11 < 3 => (30, 30, 30),
                3 => (225, 225, 225),
                _ => (20, 20, 20),
            };
            f.data[i..i + 4].copy_from_slice(&[b, g, r, 0]);
        }
    }
    f
}

/// Rows `y .. y + h` of a frame as a frame of their own.
pub fn crop_rows(f: &OwnedFrame, y: u32, h: u32) -> OwnedFrame {
    OwnedFrame::from_view(f.view().rows(y, h))
}

/// A JPEG of `frame` (4:4:4, `quality` 1-100) made by libjpeg-turbo directly, for testing
/// decoding paths without pixelflux's own encoder.
///
/// # Panics
/// When libjpeg-turbo refuses the frame.
pub fn reference_jpeg(frame: &OwnedFrame, quality: i32) -> Vec<u8> {
    let image = turbojpeg::Image {
        pixels: frame.data.as_slice(),
        width: frame.width as usize,
        pitch: frame.stride(),
        height: frame.height as usize,
        format: turbojpeg::PixelFormat::BGRX,
    };
    turbojpeg::compress(image, quality, turbojpeg::Subsamp::None)
        .unwrap_or_else(|e| panic!("libjpeg-turbo: {e}"))
        .to_vec()
}

/// Decodes a JPEG (without its stripe header) to packed BGRX.
///
/// # Panics
/// When libjpeg-turbo cannot decode it.
pub fn decode_jpeg(jpeg: &[u8]) -> OwnedFrame {
    decode::jpeg(jpeg).unwrap_or_else(|e| panic!("not a valid JPEG: {e}"))
}

/// Decodes an Annex-B H.264 stream of `width` x `height` pictures with ffmpeg: every picture,
/// in output order, as BGRX.
///
/// # Panics
/// When ffmpeg is missing or fails, or its output is not whole pictures of that size.
pub fn decode_h264(stream: &[u8], width: u32, height: u32) -> Vec<OwnedFrame> {
    decode::h264(stream, width, height, |_| true)
        .unwrap_or_else(|e| panic!("{e} (make test installs ffmpeg)"))
        .1
        .into_iter()
        .map(|(_, f)| f)
        .collect()
}

/// PSNR in dB over the B, G and R channels of two same-sized frames (∞ when identical).
///
/// # Panics
/// When the sizes differ.
pub fn psnr(a: &OwnedFrame, b: &OwnedFrame) -> f64 {
    assert_eq!((a.width, a.height), (b.width, b.height), "sizes differ");
    psnr::from_mse(psnr::mse_bgrx(&a.data, &b.data))
}
