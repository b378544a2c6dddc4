//! The pixelflux 2.x cursor callback on X11: a thread watches XFixes for cursor changes and
//! calls `callback("png", png_bytes, hotspot_x, hotspot_y)` with each new cursor image (the
//! current one first), as 2.2.1's X11 cursor monitor does. Images larger than
//! `cursor_size_cap` on their longest edge are scaled down (nearest neighbour), hotspot with
//! them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use pixelflux::overlay::CursorWatcher;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use x11rb::connection::Connection;
use x11rb::rust_connection::RustConnection;

/// How often the thread looks for a stop request while no cursor event comes.
const POLL: Duration = Duration::from_millis(20);

/// A running cursor monitor; stopped (and joined) on drop.
pub(crate) struct CursorMonitor {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// The size of `display`'s root window (None: `$DISPLAY`), for 2.2.1's "to the root edge".
pub(crate) fn root_size(display: Option<&str>) -> Result<(u32, u32), String> {
    pixelflux::source::x11::check_display_name(display).map_err(|e| e.to_string())?;
    let (conn, screen) = RustConnection::connect(display).map_err(|e| e.to_string())?;
    let root = conn.setup().roots.get(screen).ok_or("no screen")?;
    Ok((
        u32::from(root.width_in_pixels),
        u32::from(root.height_in_pixels),
    ))
}

/// One cursor image: straight-alpha RGBA, size, hotspot.
struct Image {
    rgba: Vec<u8>,
    width: u32,
    height: u32,
    xhot: u32,
    yhot: u32,
}

impl CursorMonitor {
    /// Connects to `display` (None: `$DISPLAY`) and starts the thread.
    ///
    /// # Errors
    /// A message when the display cannot be opened or has no XFixes 4+.
    pub(crate) fn start(
        display: Option<&str>,
        cap: u32,
        callback: Py<PyAny>,
    ) -> Result<Self, String> {
        let watcher = CursorWatcher::open(display).map_err(|e| format!("cursor monitor: {e}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("pixelflux-cursor".into())
            .spawn(move || watch(&watcher, cap, &callback, &flag))
            .map_err(|e| e.to_string())?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops and joins the thread (call with the GIL released: it may be waiting for it).
    pub(crate) fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the cursor monitor thread panicked");
            }
        }
    }
}

impl Drop for CursorMonitor {
    fn drop(&mut self) {
        self.stop();
    }
}

fn watch(watcher: &CursorWatcher, cap: u32, callback: &Py<PyAny>, stop: &AtomicBool) {
    let mut changed = true;
    while !stop.load(Ordering::Acquire) {
        if changed {
            match watcher.shape() {
                Ok(Some(shape)) => {
                    let mut image = Image {
                        rgba: shape.to_rgba(),
                        width: shape.width,
                        height: shape.height,
                        xhot: shape.xhot,
                        yhot: shape.yhot,
                    };
                    if cap > 0 && image.width.max(image.height) > cap {
                        image = scale(&image, cap);
                    }
                    deliver(callback, &image);
                }
                // Not knowable (see CursorWatcher::shape): the last one delivered stands.
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!("cursor monitor ended: {e}");
                    return;
                }
            }
        }
        match watcher.changed() {
            Ok(c) => changed = c,
            Err(e) => {
                tracing::warn!("cursor monitor ended: {e}");
                return;
            }
        }
        if !changed {
            std::thread::sleep(POLL);
        }
    }
}

/// Scales `image` so its longest edge is `cap` (nearest neighbour), hotspot with it.
fn scale(image: &Image, cap: u32) -> Image {
    let longest = image.width.max(image.height);
    let dim = |v: u32| ((u64::from(v) * u64::from(cap)) / u64::from(longest)).max(1) as u32;
    let (w, h) = (dim(image.width), dim(image.height));
    let mut rgba = Vec::with_capacity((w * h * 4) as usize);
    for y in 0..h {
        let sy = (u64::from(y) * u64::from(image.height) / u64::from(h)) as u32;
        for x in 0..w {
            let sx = (u64::from(x) * u64::from(image.width) / u64::from(w)) as u32;
            let i = ((sy * image.width + sx) * 4) as usize;
            rgba.extend_from_slice(&image.rgba[i..i + 4]);
        }
    }
    Image {
        rgba,
        width: w,
        height: h,
        xhot: (u64::from(image.xhot) * u64::from(cap) / u64::from(longest)) as u32,
        yhot: (u64::from(image.yhot) * u64::from(cap) / u64::from(longest)) as u32,
    }
}

fn encode_png(image: &Image) -> Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, image.width, image.height);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&image.rgba)?;
    writer.finish()?;
    Ok(out)
}

fn deliver(callback: &Py<PyAny>, image: &Image) {
    let png = match encode_png(image) {
        Ok(png) => png,
        Err(e) => {
            tracing::warn!("cursor image not encoded: {e}");
            return;
        }
    };
    Python::try_attach(|py| {
        let bytes = PyBytes::new(py, &png);
        if let Err(error) = callback.call1(py, ("png", bytes, image.xhot, image.yhot)) {
            error.write_unraisable(py, Some(callback.bind(py)));
        }
    });
}
