//! Capture from an X11 server with MIT-SHM (one reused segment), or plain GetImage when the
//! server cannot share memory with us (a remote display).

use x11rb::connection::{Connection, RequestConnection as _};
use x11rb::errors::{ConnectionError, ReplyError, ReplyOrIdError};
use x11rb::protocol::damage::{self, ConnectionExt as _, ReportLevel};
use x11rb::protocol::shm::ConnectionExt as _;
use x11rb::protocol::xfixes::{self, ConnectionExt as _};
use x11rb::protocol::xproto::{
    ChangeWindowAttributesAux, ConnectionExt as _, EventMask, ImageFormat, ImageOrder, Screen,
    Window,
};
use x11rb::protocol::{ErrorKind, Event};
use x11rb::rust_connection::RustConnection;
use x11rb::x11_utils::X11Error;
use x11rb::NONE;

use std::os::fd::AsFd as _;

use super::shm::ShmSegment;
use super::{Damage, FrameSource, Interrupter, SourceError};
use crate::frame::Frame;

/// The X11 region a capture reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// Left edge.
    pub x: i32,
    /// Top edge.
    pub y: i32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

enum Transport {
    Shm {
        segment: ShmSegment,
        seg_id: u32,
    },
    /// GetImage replies, kept so the frame can borrow them.
    Plain {
        buffer: Vec<u8>,
    },
}

/// The server's DAMAGE object on the root window and a region to fetch its rectangles into.
#[derive(Debug, Clone, Copy)]
struct DamageTracker {
    damage: damage::Damage,
    parts: xfixes::Region,
}

/// A source reading a region of an X11 screen's root window.
pub struct X11Source {
    conn: RustConnection,
    root: Window,
    region: Region,
    transport: Transport,
    /// `None` when the server lacks DAMAGE: every tick then grabs.
    damage: Option<DamageTracker>,
    /// The root window's size as last seen (at open, from `ConfigureNotify` events on the
    /// root after a RandR change, or re-read after a grab failed with `BadMatch`).
    screen: (u32, u32),
}

impl std::fmt::Debug for X11Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("X11Source")
            .field("region", &self.region)
            .field("shm", &matches!(self.transport, Transport::Shm { .. }))
            .finish()
    }
}

/// The connection broke: the server went away.
pub(crate) fn gone(e: ConnectionError) -> SourceError {
    SourceError::ServerGone(e.to_string())
}

/// The server answered `request` with an error.
fn refused(request: &'static str, e: &X11Error) -> SourceError {
    SourceError::Refused {
        request,
        kind: format!("{:?}", e.error_kind),
        code: e.error_code,
    }
}

/// Maps a failed request: the server gone, or its error for `request`.
pub(crate) fn reply_err(request: &'static str) -> impl Fn(ReplyError) -> SourceError {
    move |e| match e {
        ReplyError::ConnectionError(e) => gone(e),
        ReplyError::X11Error(e) => refused(request, &e),
    }
}

/// Maps a failed id allocation (XC-MISC asks the server for more ids).
fn id_err(e: ReplyOrIdError) -> SourceError {
    match e {
        ReplyOrIdError::ConnectionError(e) => gone(e),
        ReplyOrIdError::X11Error(e) => refused("XCMiscGetXIDRange", &e),
        ReplyOrIdError::IdsExhausted => SourceError::Refused {
            request: "XCMiscGetXIDRange",
            kind: "IdsExhausted".into(),
            code: 0,
        },
    }
}

/// Connects to `display` (`None`: `$DISPLAY`) and returns the size of its screen (the one the
/// display name names, `:0.N`; the first by default).
///
/// # Errors
/// [`SourceError::Connect`] when no X server answers there; [`SourceError::NoScreen`] when the
/// server has no such screen.
pub fn screen_size(display: Option<&str>) -> Result<(u32, u32), SourceError> {
    let (conn, screen) = connect(display)?;
    let s = screen_of(&conn, screen)?;
    Ok((s.width_in_pixels as u32, s.height_in_pixels as u32))
}

/// The largest X display number: a display listens on TCP port 6000 + N, which must fit in 16
/// bits (x11rb computes that port for every name and overflows past it).
pub const MAX_DISPLAY_NUMBER: u32 = u16::MAX as u32 - 6000;

/// Checks the display number in a display name (`None`: `$DISPLAY`) before anything connects:
/// `[protocol/][host]:N[.screen]` needs `N` in `0..=`[`MAX_DISPLAY_NUMBER`]. Names this cannot
/// read (socket paths, `unix:` names, anything malformed) are left to the connection to judge.
///
/// # Errors
/// [`SourceError::BadDisplayName`] naming the valid range.
pub fn check_display_name(display: Option<&str>) -> Result<(), SourceError> {
    let env;
    let name = match display {
        Some(name) => name,
        None => {
            env = std::env::var("DISPLAY").unwrap_or_default();
            env.as_str()
        }
    };
    if name.starts_with('/') || name.starts_with("unix:") {
        return Ok(());
    }
    let after_protocol = name.rsplit_once('/').map_or(name, |(_, rest)| rest);
    let Some((_, number)) = after_protocol.rsplit_once(':') else {
        return Ok(());
    };
    let number = number.split_once('.').map_or(number, |(n, _)| n);
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(());
    }
    match number.parse::<u64>() {
        Ok(n) if n <= u64::from(MAX_DISPLAY_NUMBER) => Ok(()),
        _ => Err(SourceError::BadDisplayName {
            display: name.to_string(),
            reason: format!(
                "display number {number} is out of range (X display numbers go from 0 to \
                 {MAX_DISPLAY_NUMBER})"
            ),
        }),
    }
}

pub(crate) fn connect(display: Option<&str>) -> Result<(RustConnection, usize), SourceError> {
    check_display_name(display)?;
    x11rb::connect(display).map_err(|e| SourceError::Connect {
        display: display.map(str::to_string),
        reason: e.to_string(),
    })
}

/// Opens a connection of its own to `display` (`None`: `$DISPLAY`) for an XFixes client
/// (cursor images, selection owners): connects, picks the display's screen and does the
/// XFixes version handshake that must precede any other XFixes request. Returns the
/// connection, the screen's root window and the XFixes version the server speaks.
///
/// # Errors
/// [`SourceError::Connect`] when no X server answers, [`SourceError::NoScreen`] for a screen
/// the server lacks, [`SourceError::MissingExtension`] without XFixes, or the server gone or
/// refusing the handshake.
pub fn connect_xfixes(display: Option<&str>) -> Result<(RustConnection, Window, u32), SourceError> {
    let (conn, screen) = connect(display)?;
    let root = screen_of(&conn, screen)?.root;
    if conn
        .extension_information(xfixes::X11_EXTENSION_NAME)
        .map_err(gone)?
        .is_none()
    {
        return Err(SourceError::MissingExtension("XFIXES"));
    }
    let version = conn
        .xfixes_query_version(5, 0)
        .map_err(gone)?
        .reply()
        .map_err(reply_err("XFixesQueryVersion"))?;
    Ok((conn, root, version.major_version))
}

/// The screen the display name asked for, from the server's setup (which the server sends,
/// so its list may be shorter than the name assumes).
pub(crate) fn screen_of(conn: &RustConnection, screen: usize) -> Result<&Screen, SourceError> {
    let roots = &conn.setup().roots;
    roots.get(screen).ok_or(SourceError::NoScreen {
        screen,
        screens: roots.len(),
    })
}

impl X11Source {
    /// Connects, checks the region and the pixel format, and sets up shared memory (falling
    /// back to GetImage without it) and DAMAGE (every frame grabbed without it).
    ///
    /// # Errors
    /// [`SourceError::Connect`] when no X server answers; [`SourceError::NoScreen`];
    /// [`SourceError::RegionOutsideScreen`]; [`SourceError::UnsupportedFormat`] for a screen
    /// that is not 32-bit little-endian BGRX.
    pub fn open(display: Option<&str>, region: Region) -> Result<Self, SourceError> {
        let (conn, screen_num) = connect(display)?;
        let setup = conn.setup();
        let screen = screen_of(&conn, screen_num)?;
        let (sw, sh) = (
            screen.width_in_pixels as u32,
            screen.height_in_pixels as u32,
        );
        check_fits(region, sw, sh)?;
        let depth = screen.root_depth;
        let bpp = setup
            .pixmap_formats
            .iter()
            .find(|f| f.depth == depth)
            .map(|f| f.bits_per_pixel);
        if !(depth == 24 || depth == 32) || bpp != Some(32) {
            let bpp = bpp.map_or("no pixmap format".to_string(), |b| {
                format!("{b} bits per pixel")
            });
            return Err(SourceError::UnsupportedFormat(format!(
                "root depth {depth} with {bpp} (need depth 24 or 32 at 32 bits per pixel)"
            )));
        }
        if setup.image_byte_order != ImageOrder::LSB_FIRST {
            return Err(SourceError::UnsupportedFormat(
                "big-endian image byte order".into(),
            ));
        }
        let root = screen.root;
        let transport = match Self::setup_shm(&conn, region) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!("MIT-SHM unavailable ({e}); falling back to GetImage (slower)");
                Transport::Plain { buffer: Vec::new() }
            }
        };
        let damage = match Self::setup_damage(&conn, root) {
            Ok(d) => Some(d),
            Err(e) => {
                tracing::info!("X DAMAGE unavailable ({e}); every frame will be grabbed");
                None
            }
        };
        // The root window's ConfigureNotify tells of a RandR size change (read with the
        // damage events), so a capture that follows the screen learns of it without a poll.
        conn.change_window_attributes(
            root,
            &ChangeWindowAttributesAux::new().event_mask(EventMask::STRUCTURE_NOTIFY),
        )
        .map_err(gone)?
        .check()
        .map_err(reply_err("ChangeWindowAttributes"))?;
        Ok(Self {
            conn,
            root,
            region,
            transport,
            damage,
            screen: (sw, sh),
        })
    }

    /// Reads the events that came in: DAMAGE notifications (returns whether one came) and
    /// the root window's new size after a RandR change.
    fn read_events(&mut self) -> Result<bool, SourceError> {
        let mut notified = false;
        while let Some(event) = self.conn.poll_for_event().map_err(gone)? {
            match event {
                Event::DamageNotify(_) => notified = true,
                Event::ConfigureNotify(e) if e.window == self.root => {
                    let size = (u32::from(e.width), u32::from(e.height));
                    if size != self.screen {
                        tracing::info!("the X screen is now {}x{}", size.0, size.1);
                        // Pixels under the region may have moved or gone: grab it all.
                        notified = true;
                    }
                    self.screen = size;
                }
                _ => {}
            }
        }
        Ok(notified)
    }

    /// Re-reads the root window's size from the server.
    fn read_screen_size(&mut self) -> Result<(u32, u32), SourceError> {
        let g = self
            .conn
            .get_geometry(self.root)
            .map_err(gone)?
            .reply()
            .map_err(reply_err("GetGeometry"))?;
        self.screen = (u32::from(g.width), u32::from(g.height));
        Ok(self.screen)
    }

    /// Asks the server to track changes on the root window (children included). NonEmpty
    /// reporting sends one event when the damage goes from empty to not; we empty it again
    /// each time we read it.
    fn setup_damage(conn: &RustConnection, root: Window) -> Result<DamageTracker, SourceError> {
        for name in [damage::X11_EXTENSION_NAME, xfixes::X11_EXTENSION_NAME] {
            if conn.extension_information(name).map_err(gone)?.is_none() {
                return Err(SourceError::MissingExtension(
                    if name == damage::X11_EXTENSION_NAME {
                        "DAMAGE"
                    } else {
                        "XFIXES"
                    },
                ));
            }
        }
        conn.xfixes_query_version(5, 0)
            .map_err(gone)?
            .reply()
            .map_err(reply_err("XFixesQueryVersion"))?;
        conn.damage_query_version(1, 1)
            .map_err(gone)?
            .reply()
            .map_err(reply_err("DamageQueryVersion"))?;
        let parts = conn.generate_id().map_err(id_err)?;
        conn.xfixes_create_region(parts, &[]).map_err(gone)?;
        let damage = conn.generate_id().map_err(id_err)?;
        conn.damage_create(damage, root, ReportLevel::NON_EMPTY)
            .map_err(gone)?
            .check()
            .map_err(reply_err("DamageCreate"))?;
        Ok(DamageTracker { damage, parts })
    }

    fn setup_shm(conn: &RustConnection, region: Region) -> Result<Transport, SourceError> {
        conn.extension_information(x11rb::protocol::shm::X11_EXTENSION_NAME)
            .map_err(gone)?
            .ok_or(SourceError::MissingExtension("MIT-SHM"))?;
        let len = region.width as usize * region.height as usize * 4;
        let segment = ShmSegment::new(len)?;
        let seg_id = conn.generate_id().map_err(id_err)?;
        conn.shm_attach(seg_id, segment.id(), false)
            .map_err(gone)?
            .check()
            .map_err(|e| SourceError::SharedMemory(format!("ShmAttach refused: {e}")))?;
        segment.mark_removed();
        Ok(Transport::Shm { segment, seg_id })
    }

    /// Whether frames travel through shared memory.
    pub fn uses_shm(&self) -> bool {
        matches!(self.transport, Transport::Shm { .. })
    }
}

impl FrameSource for X11Source {
    fn size(&self) -> (u32, u32) {
        (self.region.width, self.region.height)
    }

    fn interrupter(&self) -> Option<Interrupter> {
        Interrupter::for_socket(self.conn.stream().as_fd()).ok()
    }

    fn screen_size(&self) -> Option<(u32, u32)> {
        Some(self.screen)
    }

    /// Checks the region against the screen's size now (one round trip), then sets up a
    /// shared-memory segment of the new size (the old one is detached once the new one is
    /// attached) or resizes the GetImage buffer. DAMAGE keeps watching the whole root window.
    fn set_region(&mut self, region: Region) -> Result<(), SourceError> {
        let (sw, sh) = self.read_screen_size()?;
        check_fits(region, sw, sh)?;
        if let Transport::Shm { seg_id, .. } = self.transport {
            let bytes = |r: Region| r.width as usize * r.height as usize * 4;
            if bytes(region) != bytes(self.region) {
                let fresh = Self::setup_shm(&self.conn, region)?;
                let _ = self.conn.shm_detach(seg_id);
                self.transport = fresh;
            }
        }
        if let Transport::Plain { buffer } = &mut self.transport {
            buffer.clear();
        }
        self.region = region;
        Ok(())
    }

    fn damage(&mut self) -> Result<Damage, SourceError> {
        let notified = self.read_events()?;
        let Some(tracker) = self.damage else {
            return Ok(Damage::Unknown);
        };
        if !notified {
            return Ok(Damage::Rows(Vec::new()));
        }
        // Move the accumulated damage into `parts` (emptying it, which re-arms the event) and
        // read its rectangles. Drawing after this is reported by the next event.
        self.conn
            .damage_subtract(tracker.damage, NONE, tracker.parts)
            .map_err(gone)?;
        let reply = self
            .conn
            .xfixes_fetch_region(tracker.parts)
            .map_err(gone)?
            .reply()
            .map_err(reply_err("XFixesFetchRegion"))?;
        let Region {
            x,
            y,
            width,
            height,
        } = self.region;
        let (left, right) = (x as i64, x as i64 + width as i64);
        let (top, bottom) = (y as i64, y as i64 + height as i64);
        let rows = reply
            .rectangles
            .iter()
            .filter_map(|r| {
                let (rx0, ry0) = (r.x as i64, r.y as i64);
                let (rx1, ry1) = (rx0 + r.width as i64, ry0 + r.height as i64);
                let y0 = ry0.max(top);
                let y1 = ry1.min(bottom);
                (rx0 < right && rx1 > left && y0 < y1).then(|| (y0 - top) as u32..(y1 - top) as u32)
            })
            .collect();
        Ok(Damage::Rows(rows))
    }

    fn last_frame(&mut self) -> Frame<'_> {
        let (width, height) = (self.region.width, self.region.height);
        let data: &mut [u8] = match &mut self.transport {
            Transport::Shm { segment, .. } => segment.as_mut_slice(),
            Transport::Plain { buffer } => {
                // Before the first grab there is nothing: show black rather than fail.
                buffer.resize(width as usize * height as usize * 4, 0);
                buffer.as_mut_slice()
            }
        };
        Frame {
            data,
            width,
            height,
            stride: width as usize * 4,
        }
    }

    fn grab(&mut self) -> Result<Frame<'_>, SourceError> {
        let Region {
            x,
            y,
            width,
            height,
        } = self.region;
        let got = match &mut self.transport {
            Transport::Shm { seg_id, .. } => self
                .conn
                .shm_get_image(
                    self.root,
                    x as i16,
                    y as i16,
                    width as u16,
                    height as u16,
                    !0,
                    ImageFormat::Z_PIXMAP.into(),
                    *seg_id,
                    0,
                )
                .map_err(gone)?
                .reply()
                .map(drop),
            Transport::Plain { buffer } => self
                .conn
                .get_image(
                    ImageFormat::Z_PIXMAP,
                    self.root,
                    x as i16,
                    y as i16,
                    width as u16,
                    height as u16,
                    !0,
                )
                .map_err(gone)?
                .reply()
                .map(|reply| *buffer = reply.data),
        };
        if let Err(e) = got {
            return Err(self.grab_error(e));
        }
        let data: &mut [u8] = match &mut self.transport {
            Transport::Shm { segment, .. } => segment.as_mut_slice(),
            Transport::Plain { buffer } => {
                if buffer.len() < width as usize * height as usize * 4 {
                    return Err(SourceError::Other(format!(
                        "GetImage returned {} bytes for a {width}x{height} region",
                        buffer.len()
                    )));
                }
                buffer.as_mut_slice()
            }
        };
        Ok(Frame {
            data,
            width,
            height,
            stride: width as usize * 4,
        })
    }
}

impl X11Source {
    /// Why a grab failed. An image request answers `BadMatch` when the region is not wholly on
    /// the screen, which after a successful start means the screen shrank (RandR): then the
    /// root window's size now says so.
    fn grab_error(&mut self, e: ReplyError) -> SourceError {
        let request = match self.transport {
            Transport::Shm { .. } => "ShmGetImage",
            Transport::Plain { .. } => "GetImage",
        };
        let ReplyError::X11Error(x11) = e else {
            return reply_err(request)(e);
        };
        if x11.error_kind == ErrorKind::Match {
            match self.read_screen_size() {
                Ok((sw, sh)) => {
                    if !fits(self.region, sw, sh) {
                        return SourceError::RegionNoLongerFits {
                            screen_width: sw,
                            screen_height: sh,
                        };
                    }
                }
                Err(e) => return e,
            }
        }
        refused(request, &x11)
    }
}

/// `Ok` when `region` lies wholly on a `sw` x `sh` screen.
///
/// # Errors
/// [`SourceError::RegionOutsideScreen`] naming the region and the screen otherwise.
pub(crate) fn check_fits(region: Region, sw: u32, sh: u32) -> Result<(), SourceError> {
    if fits(region, sw, sh) {
        return Ok(());
    }
    Err(SourceError::RegionOutsideScreen {
        x: region.x,
        y: region.y,
        width: region.width,
        height: region.height,
        screen_width: sw,
        screen_height: sh,
    })
}

/// Whether `region` lies wholly on a `sw` x `sh` screen.
pub(crate) fn fits(region: Region, sw: u32, sh: u32) -> bool {
    region.x >= 0
        && region.y >= 0
        && region.width > 0
        && region.height > 0
        && region.x as u64 + region.width as u64 <= sw as u64
        && region.y as u64 + region.height as u64 <= sh as u64
}

impl Drop for X11Source {
    fn drop(&mut self) {
        // Best effort: the server may be gone already.
        if let Transport::Shm { seg_id, .. } = self.transport {
            let _ = self.conn.shm_detach(seg_id);
        }
        if let Some(tracker) = self.damage {
            let _ = self.conn.damage_destroy(tracker.damage);
            let _ = self.conn.xfixes_destroy_region(tracker.parts);
        }
        let _ = self.conn.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_numbers_past_the_tcp_port_range_are_refused_naming_the_range() {
        for ok in [
            ":0",
            ":59535",
            "localhost:12.1",
            "tcp/host:7",
            "unix:0",
            "/tmp/x",
            "junk",
        ] {
            assert!(check_display_name(Some(ok)).is_ok(), "{ok}");
        }
        for bad in [
            ":59536",
            ":65535",
            ":70000",
            "host:60000.0",
            "tcp/[::1]:99999999999999999999",
        ] {
            let err = check_display_name(Some(bad)).unwrap_err();
            assert!(matches!(err, SourceError::BadDisplayName { .. }), "{bad}");
            let text = err.to_string();
            assert!(text.contains(bad) && text.contains("0 to 59535"), "{text}");
        }
        // Connecting checks first: in a debug build x11rb would panic on 6000 + 60000.
        let err = screen_size(Some(":60000")).unwrap_err();
        assert!(matches!(err, SourceError::BadDisplayName { .. }), "{err}");
        // The largest valid number gets as far as connecting (no server there).
        let err = screen_size(Some(":59535")).unwrap_err();
        assert!(matches!(err, SourceError::Connect { .. }), "{err}");
    }
}
