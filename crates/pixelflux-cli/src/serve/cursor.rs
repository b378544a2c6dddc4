//! The pointer drawn by the browser: the X cursor's image and hotspot, sent to the pages when
//! it changes (XFixes cursor notifications) and applied as the canvas's CSS cursor, so the
//! pointer moves at the browser's speed instead of the stream's. `--cursor` burns it into the
//! picture instead.

use std::sync::Arc;

use base64::Engine as _;
use x11rb::connection::Connection;
use x11rb::protocol::xfixes::{ConnectionExt as _, CursorNotifyMask};
use x11rb::protocol::Event;

/// Largest cursor side sent, in pixels (browsers ignore CSS cursors over 128 px).
pub const MAX_CURSOR: u16 = 128;

/// Why cursor shapes cannot be followed.
#[derive(Debug, thiserror::Error)]
pub enum CursorError {
    #[error("{0}")]
    X(#[from] pixelflux::SourceError),
    #[error("X connection: {0}")]
    Connection(#[from] x11rb::errors::ConnectionError),
    #[error("X request: {0}")]
    Reply(#[from] x11rb::errors::ReplyError),
}

/// The latest cursor as a page message: `{"type":"cursor","w","h","x","y","rgba"}` (`x`/`y`
/// the hotspot, `rgba` base64 of w×h straight-alpha RGBA bytes).
pub type CursorMessages = tokio::sync::watch::Receiver<Option<Arc<str>>>;

/// Starts following the cursor of `display`; the receiver always holds the current shape.
pub fn follow(display: Option<&str>) -> Result<CursorMessages, CursorError> {
    let (conn, root, _) = pixelflux::source::x11::connect_xfixes(display)?;
    conn.xfixes_select_cursor_input(root, CursorNotifyMask::DISPLAY_CURSOR)?;
    conn.flush()?;
    let (tx, rx) = tokio::sync::watch::channel(None);
    let first = message(&conn)?;
    tx.send_replace(first);
    std::thread::Builder::new()
        .name("pixelflux-cursor".into())
        .spawn(move || loop {
            match conn.wait_for_event() {
                Ok(Event::XfixesCursorNotify(_)) => match message(&conn) {
                    Ok(Some(msg)) => {
                        tx.send_replace(Some(msg));
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!("cursor: {e}");
                        return;
                    }
                },
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!("cursor: {e}");
                    return;
                }
            }
        })
        .map_err(|e| CursorError::Connection(e.into()))?;
    Ok(rx)
}

/// The current cursor as a page message, or `None` when it is too large to send.
fn message(conn: &impl Connection) -> Result<Option<Arc<str>>, CursorError> {
    let img = conn.xfixes_get_cursor_image()?.reply()?;
    if img.width == 0 || img.height == 0 || img.width > MAX_CURSOR || img.height > MAX_CURSOR {
        return Ok(None);
    }
    let rgba = to_rgba(&img.cursor_image);
    let msg = serde_json::json!({
        "type": "cursor",
        "w": img.width,
        "h": img.height,
        "x": img.xhot.min(img.width - 1),
        "y": img.yhot.min(img.height - 1),
        "rgba": base64::engine::general_purpose::STANDARD.encode(rgba),
    });
    Ok(Some(msg.to_string().into()))
}

/// XFixes pixels (premultiplied ARGB in a u32) → straight-alpha RGBA bytes.
fn to_rgba(argb: &[u32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(argb.len() * 4);
    for &p in argb {
        let [a, r, g, b] = p.to_be_bytes();
        let un = |c: u8| -> u8 {
            if a == 0 {
                0
            } else {
                u8::try_from((u32::from(c) * 255 + u32::from(a) / 2) / u32::from(a)).unwrap_or(255)
            }
        };
        out.extend_from_slice(&[un(r), un(g), un(b), a]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn premultiplied_argb_becomes_straight_rgba() {
        assert_eq!(
            to_rgba(&[0xff10_2030, 0x0000_0000, 0x8040_2000]),
            vec![0x10, 0x20, 0x30, 0xff, 0, 0, 0, 0, 0x80, 0x40, 0, 0x80]
        );
    }
}
