//! Resizing a running X server's screen through RandR, as `xrandr --output … --mode WxH`
//! does, in one connection (a mode made by a client that disconnects before the mode is in
//! use on an output goes away with it, which is why `xrandr --newmode` then `--addmode` in
//! two runs does not stick).
//!
//! Xvfb (21.1) has one output and one CRTC, and a screen that can be resized between 1x1 and
//! the size it was started with (its framebuffer): start it at the largest size wanted, then
//! set the size to use (see [`Xvfb::start_resizable`](crate::Xvfb::start_resizable)).

use x11rb::connection::Connection as _;
use x11rb::protocol::randr::{ConnectionExt as _, ModeInfo, Rotation};
use x11rb::protocol::xproto::ConnectionExt as _;
use x11rb::rust_connection::RustConnection;

/// Why a screen could not be resized.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResizeError {
    /// No X server answers at that display.
    #[error("cannot connect to X display {display}: {reason}")]
    Connect {
        /// The display name.
        display: String,
        /// What the connection attempt said.
        reason: String,
    },
    /// The server has no RandR 1.2+ (or no output and CRTC to drive).
    #[error("the X server cannot resize its screen: {0}")]
    NoRandr(String),
    /// The size is outside what the server allows (`min`..=`max`).
    #[error("{width}x{height} is outside the screen sizes this X server allows ({min_width}x{min_height} to {max_width}x{max_height})")]
    OutOfRange {
        /// Width asked for.
        width: u32,
        /// Height asked for.
        height: u32,
        /// Smallest width.
        min_width: u32,
        /// Smallest height.
        min_height: u32,
        /// Largest width.
        max_width: u32,
        /// Largest height.
        max_height: u32,
    },
    /// A RandR request failed (its name and the X error).
    #[error("RandR {request} failed: {reason}")]
    Request {
        /// The request, such as `SetCrtcConfig`.
        request: &'static str,
        /// The X error or connection failure.
        reason: String,
    },
}

/// A range of screen sizes: `((min_w, min_h), (max_w, max_h))`.
pub type SizeRange = ((u32, u32), (u32, u32));

/// The smallest and largest screen sizes `display` allows: `((min_w, min_h), (max_w, max_h))`.
///
/// # Errors
/// [`ResizeError`] when the server cannot be reached or has no RandR.
pub fn screen_size_range(display: &str) -> Result<SizeRange, ResizeError> {
    let (conn, root) = connect(display)?;
    range(&conn, root)
}

/// Sets the screen of `display` to `width` x `height`: a mode of that size (made and added
/// to the output unless it has one), the screen first grown where the mode needs it, the CRTC
/// switched to the mode, then the screen set to the exact size. Clients selecting
/// `StructureNotify` on the root window get a `ConfigureNotify` with the new size. Mapped
/// top-level windows that filled the old screen are resized to fill the new one (as a window
/// manager does for maximized windows), and the modes of earlier sizes are destroyed.
///
/// # Errors
/// [`ResizeError::OutOfRange`] for a size the server does not allow (nothing changes);
/// [`ResizeError`] when the server cannot be reached, has no RandR, or refuses a request.
pub fn set_screen_size(display: &str, width: u32, height: u32) -> Result<(), ResizeError> {
    let (conn, root) = connect(display)?;
    let ((min_w, min_h), (max_w, max_h)) = range(&conn, root)?;
    if !(min_w..=max_w).contains(&width) || !(min_h..=max_h).contains(&height) {
        return Err(ResizeError::OutOfRange {
            width,
            height,
            min_width: min_w,
            min_height: min_h,
            max_width: max_w,
            max_height: max_h,
        });
    }
    // Within the range, so both fit in the protocol's 16 bits.
    let (w16, h16) = (width as u16, height as u16);
    let res = conn
        .randr_get_screen_resources_current(root)
        .map_err(req("GetScreenResourcesCurrent"))?
        .reply()
        .map_err(req("GetScreenResourcesCurrent"))?;
    let (Some(&crtc), Some(&output)) = (res.crtcs.first(), res.outputs.first()) else {
        return Err(ResizeError::NoRandr("no CRTC or output".into()));
    };
    let output_info = conn
        .randr_get_output_info(output, res.config_timestamp)
        .map_err(req("GetOutputInfo"))?
        .reply()
        .map_err(req("GetOutputInfo"))?;
    let existing = res
        .modes
        .iter()
        .find(|m| (m.width, m.height) == (w16, h16))
        .map(|m| m.id);
    let mode = match existing {
        Some(id) => id,
        None => {
            let name = format!("{width}x{height}");
            let info = ModeInfo {
                width: w16,
                height: h16,
                // A nominal 60 Hz timing: Xvfb shows nothing, but clients read the rate.
                dot_clock: width * height * 60,
                htotal: w16,
                vtotal: h16,
                name_len: name.len() as u16,
                ..Default::default()
            };
            conn.randr_create_mode(root, info, name.as_bytes())
                .map_err(req("CreateMode"))?
                .reply()
                .map_err(req("CreateMode"))?
                .mode
        }
    };
    if !output_info.modes.contains(&mode) {
        conn.randr_add_output_mode(output, mode)
            .map_err(req("AddOutputMode"))?
            .check()
            .map_err(req("AddOutputMode"))?;
    }
    let geometry = conn
        .get_geometry(root)
        .map_err(req("GetGeometry"))?
        .reply()
        .map_err(req("GetGeometry"))?;
    let (cur_w, cur_h) = (geometry.width, geometry.height);
    // The CRTC must fit on the screen at every step: grow the screen first where needed.
    let (grow_w, grow_h) = (cur_w.max(w16), cur_h.max(h16));
    if (grow_w, grow_h) != (cur_w, cur_h) {
        set_size(&conn, root, grow_w, grow_h)?;
    }
    conn.randr_set_crtc_config(
        crtc,
        res.timestamp,
        res.config_timestamp,
        0,
        0,
        mode,
        Rotation::ROTATE0,
        &[output],
    )
    .map_err(req("SetCrtcConfig"))?
    .reply()
    .map_err(req("SetCrtcConfig"))?;
    if (grow_w, grow_h) != (w16, h16) {
        set_size(&conn, root, w16, h16)?;
    }
    // Windows that filled the old screen fill the new one (what a window manager does for
    // maximized windows; a private Xvfb has none): a terminal started `-maximized` follows.
    fit_full_screen_windows(&conn, root, (cur_w, cur_h), (w16, h16));
    // Modes added for earlier sizes go again once unused, so a page resized a thousand times
    // leaves one mode, not a thousand: taken off the output, then destroyed (a mode only taken
    // off stays in the screen's list). The server's own modes refuse both requests (ignored).
    for old in output_info.modes.iter().filter(|&&m| m != mode) {
        if let Ok(cookie) = conn.randr_delete_output_mode(output, *old) {
            let _ = cookie.check();
        }
    }
    for old in res.modes.iter().map(|m| m.id).filter(|&m| m != mode) {
        if let Ok(cookie) = conn.randr_destroy_mode(old) {
            let _ = cookie.check();
        }
    }
    conn.flush().map_err(req("flush"))?;
    Ok(())
}

/// Resizes each mapped top-level window that filled a screen of size `old` (at 0,0, with or
/// without its border) to fill one of size `new`. Best effort: a window that goes away meanwhile
/// is skipped.
fn fit_full_screen_windows(conn: &RustConnection, root: u32, old: (u16, u16), new: (u16, u16)) {
    use x11rb::protocol::xproto::{ConfigureWindowAux, MapState};
    if old == new {
        return;
    }
    let Ok(Ok(tree)) = conn.query_tree(root).map(|c| c.reply()) else {
        return;
    };
    for window in tree.children {
        let Ok(Ok(attrs)) = conn.get_window_attributes(window).map(|c| c.reply()) else {
            continue;
        };
        if attrs.map_state != MapState::VIEWABLE || attrs.override_redirect {
            continue;
        }
        let Ok(Ok(g)) = conn.get_geometry(window).map(|c| c.reply()) else {
            continue;
        };
        // Filled with its border (it fits on the screen) or without it (xterm `-maximized`
        // takes the screen's size for its inside, the border past the edges): kept so.
        let border = 2 * u32::from(g.border_width);
        let (w, h) = (u32::from(g.width), u32::from(g.height));
        let old = (u32::from(old.0), u32::from(old.1));
        let border = if (w + border, h + border) == old {
            border
        } else if (w, h) == old {
            0
        } else {
            continue;
        };
        if (g.x, g.y) != (0, 0) {
            continue;
        }
        let inner = |v: u16| (u32::from(v).saturating_sub(border)).max(1);
        let aux = ConfigureWindowAux::new()
            .width(inner(new.0))
            .height(inner(new.1));
        if let Ok(cookie) = conn.configure_window(window, &aux) {
            let _ = cookie.check();
        }
    }
}

/// The modes the screen of `display` has (`GetScreenResources`: all modes the server knows,
/// on an output or not), for tests: how many a series of resizes left.
///
/// # Errors
/// [`ResizeError`] when the server cannot be reached or has no RandR.
pub fn screen_mode_count(display: &str) -> Result<usize, ResizeError> {
    let (conn, root) = connect(display)?;
    let res = conn
        .randr_get_screen_resources(root)
        .map_err(req("GetScreenResources"))?
        .reply()
        .map_err(req("GetScreenResources"))?;
    Ok(res.modes.len())
}

/// The modes the first output of `display` has (for tests: how many a series of resizes
/// left).
///
/// # Errors
/// [`ResizeError`] when the server cannot be reached or has no RandR.
pub fn output_mode_count(display: &str) -> Result<usize, ResizeError> {
    let (conn, root) = connect(display)?;
    let res = conn
        .randr_get_screen_resources_current(root)
        .map_err(req("GetScreenResourcesCurrent"))?
        .reply()
        .map_err(req("GetScreenResourcesCurrent"))?;
    let Some(&output) = res.outputs.first() else {
        return Err(ResizeError::NoRandr("no output".into()));
    };
    let info = conn
        .randr_get_output_info(output, res.config_timestamp)
        .map_err(req("GetOutputInfo"))?
        .reply()
        .map_err(req("GetOutputInfo"))?;
    Ok(info.modes.len())
}

fn connect(display: &str) -> Result<(RustConnection, u32), ResizeError> {
    let (conn, screen) = x11rb::connect(Some(display)).map_err(|e| ResizeError::Connect {
        display: display.to_owned(),
        reason: e.to_string(),
    })?;
    let root = conn
        .setup()
        .roots
        .get(screen)
        .map(|s| s.root)
        .ok_or_else(|| ResizeError::NoRandr(format!("no screen {screen}")))?;
    let version = conn
        .randr_query_version(1, 3)
        .map_err(|e| ResizeError::NoRandr(e.to_string()))?
        .reply()
        .map_err(|e| ResizeError::NoRandr(e.to_string()))?;
    if (version.major_version, version.minor_version) < (1, 2) {
        return Err(ResizeError::NoRandr(format!(
            "RandR {}.{} (1.2 needed)",
            version.major_version, version.minor_version
        )));
    }
    Ok((conn, root))
}

fn range(conn: &RustConnection, root: u32) -> Result<SizeRange, ResizeError> {
    let r = conn
        .randr_get_screen_size_range(root)
        .map_err(req("GetScreenSizeRange"))?
        .reply()
        .map_err(req("GetScreenSizeRange"))?;
    Ok((
        (u32::from(r.min_width), u32::from(r.min_height)),
        (u32::from(r.max_width), u32::from(r.max_height)),
    ))
}

/// Sets the screen size, with a physical size for 96 dpi (the request needs one).
fn set_size(conn: &RustConnection, root: u32, width: u16, height: u16) -> Result<(), ResizeError> {
    let mm = |px: u16| (u32::from(px) * 254 / 960).max(1);
    conn.randr_set_screen_size(root, width, height, mm(width), mm(height))
        .map_err(req("SetScreenSize"))?
        .check()
        .map_err(req("SetScreenSize"))
}

/// Maps a failed request to [`ResizeError::Request`].
fn req<E: std::fmt::Display>(request: &'static str) -> impl Fn(E) -> ResizeError {
    move |e| ResizeError::Request {
        request,
        reason: e.to_string(),
    }
}
