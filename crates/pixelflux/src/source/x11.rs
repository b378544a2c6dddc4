//! Capture from an X11 server with MIT-SHM (one reused segment), or plain GetImage when the
//! server cannot share memory with us (a remote display).

use x11rb::connection::{Connection, RequestConnection as _};
use x11rb::protocol::shm::ConnectionExt as _;
use x11rb::protocol::xproto::{ConnectionExt as _, ImageFormat, ImageOrder, Window};
use x11rb::rust_connection::RustConnection;

use super::shm::ShmSegment;
use super::{FrameSource, SourceError};
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

/// A source reading a region of an X11 screen's root window.
pub struct X11Source {
    conn: RustConnection,
    root: Window,
    region: Region,
    transport: Transport,
}

impl std::fmt::Debug for X11Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("X11Source")
            .field("region", &self.region)
            .field("shm", &matches!(self.transport, Transport::Shm { .. }))
            .finish()
    }
}

fn lost(e: impl std::fmt::Display) -> SourceError {
    SourceError::Disconnected(e.to_string())
}

/// Connects to `display` and returns the size of its first screen.
pub fn screen_size(display: Option<&str>) -> Result<(u32, u32), SourceError> {
    let (conn, screen) = connect(display)?;
    let s = &conn.setup().roots[screen];
    Ok((s.width_in_pixels as u32, s.height_in_pixels as u32))
}

fn connect(display: Option<&str>) -> Result<(RustConnection, usize), SourceError> {
    x11rb::connect(display).map_err(|e| SourceError::Connect {
        display: display.map(str::to_string),
        reason: e.to_string(),
    })
}

impl X11Source {
    /// Connects, checks the region and the pixel format, and sets up shared memory.
    pub fn open(display: Option<&str>, region: Region) -> Result<Self, SourceError> {
        let (conn, screen_num) = connect(display)?;
        let setup = conn.setup();
        let screen = setup
            .roots
            .get(screen_num)
            .ok_or_else(|| SourceError::UnsupportedFormat(format!("no screen {screen_num}")))?;
        let (sw, sh) = (
            screen.width_in_pixels as u32,
            screen.height_in_pixels as u32,
        );
        let fits = region.x >= 0
            && region.y >= 0
            && region.width > 0
            && region.height > 0
            && region.x as u64 + region.width as u64 <= sw as u64
            && region.y as u64 + region.height as u64 <= sh as u64;
        if !fits {
            return Err(SourceError::RegionOutsideScreen {
                x: region.x,
                y: region.y,
                width: region.width,
                height: region.height,
                screen_width: sw,
                screen_height: sh,
            });
        }
        let depth = screen.root_depth;
        let bpp = setup
            .pixmap_formats
            .iter()
            .find(|f| f.depth == depth)
            .map(|f| f.bits_per_pixel);
        if !(depth == 24 || depth == 32) || bpp != Some(32) {
            return Err(SourceError::UnsupportedFormat(format!(
                "root depth {depth} with {bpp:?} bits per pixel (need 24/32 at 32 bpp)"
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
        Ok(Self {
            conn,
            root,
            region,
            transport,
        })
    }

    fn setup_shm(conn: &RustConnection, region: Region) -> Result<Transport, SourceError> {
        conn.extension_information(x11rb::protocol::shm::X11_EXTENSION_NAME)
            .map_err(lost)?
            .ok_or(SourceError::MissingExtension("MIT-SHM"))?;
        let len = region.width as usize * region.height as usize * 4;
        let segment = ShmSegment::new(len)?;
        let seg_id = conn.generate_id().map_err(lost)?;
        conn.shm_attach(seg_id, segment.id(), false)
            .map_err(lost)?
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

    fn grab(&mut self) -> Result<Frame<'_>, SourceError> {
        let Region {
            x,
            y,
            width,
            height,
        } = self.region;
        let data: &mut [u8] = match &mut self.transport {
            Transport::Shm { segment, seg_id } => {
                self.conn
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
                    .map_err(lost)?
                    .reply()
                    .map_err(lost)?;
                segment.as_mut_slice()
            }
            Transport::Plain { buffer } => {
                let reply = self
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
                    .map_err(lost)?
                    .reply()
                    .map_err(lost)?;
                *buffer = reply.data;
                if buffer.len() < width as usize * height as usize * 4 {
                    return Err(lost("short GetImage reply"));
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

impl Drop for X11Source {
    fn drop(&mut self) {
        if let Transport::Shm { seg_id, .. } = self.transport {
            // Best effort: the server may be gone already.
            let _ = self.conn.shm_detach(seg_id);
            let _ = self.conn.flush();
        }
    }
}
