//! The pointer drawn by the browser: the X cursor's image and hotspot, sent to the pages when
//! it changes (XFixes cursor notifications) and applied as the canvas's CSS cursor, so the
//! pointer moves at the browser's speed instead of the stream's. `--cursor` burns it into the
//! picture instead.

use std::sync::Arc;

use base64::Engine as _;
use pixelflux::overlay::{CursorShape, CursorWatcher};

/// Largest cursor side sent, in pixels (browsers ignore CSS cursors over 128 px).
pub const MAX_CURSOR: u32 = 128;

/// Why cursor shapes cannot be followed.
#[derive(Debug, thiserror::Error)]
pub enum CursorError {
    #[error("{0}")]
    X(#[from] pixelflux::SourceError),
    #[error("cannot start the cursor thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// The latest cursor as a page message: `{"type":"cursor","w","h","x","y","rgba"}` (`x`/`y`
/// the hotspot, `rgba` base64 of w×h straight-alpha RGBA bytes).
pub type CursorMessages = tokio::sync::watch::Receiver<Option<Arc<str>>>;

/// Starts following the cursor of `display`; the receiver always holds the current shape.
pub fn follow(display: Option<&str>) -> Result<CursorMessages, CursorError> {
    let watcher = CursorWatcher::open(display)?;
    let (tx, rx) = tokio::sync::watch::channel(None);
    tx.send_replace(watcher.shape()?.as_ref().and_then(message));
    std::thread::Builder::new()
        .name("pixelflux-cursor".into())
        .spawn(move || loop {
            let shape = watcher.wait_for_change().and_then(|()| watcher.shape());
            match shape {
                Ok(shape) => {
                    if let Some(msg) = shape.as_ref().and_then(message) {
                        tx.send_replace(Some(msg));
                    }
                }
                Err(e) => {
                    tracing::debug!("cursor: {e}");
                    return;
                }
            }
        })?;
    Ok(rx)
}

/// A cursor as a page message, or `None` when it is too large to send.
fn message(shape: &CursorShape) -> Option<Arc<str>> {
    if shape.width > MAX_CURSOR || shape.height > MAX_CURSOR {
        return None;
    }
    let msg = serde_json::json!({
        "type": "cursor",
        "w": shape.width,
        "h": shape.height,
        "x": shape.xhot,
        "y": shape.yhot,
        "rgba": base64::engine::general_purpose::STANDARD.encode(shape.to_rgba()),
    });
    Some(msg.to_string().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shape_becomes_a_page_message_unless_too_large() {
        let shape = CursorShape {
            width: 2,
            height: 1,
            xhot: 1,
            yhot: 0,
            serial: 7,
            argb: vec![0xff10_2030, 0x8040_2000],
        };
        let msg: serde_json::Value = serde_json::from_str(&message(&shape).unwrap()).unwrap();
        assert_eq!(msg["type"], "cursor");
        assert_eq!((msg["w"].as_u64(), msg["h"].as_u64()), (Some(2), Some(1)));
        assert_eq!((msg["x"].as_u64(), msg["y"].as_u64()), (Some(1), Some(0)));
        let rgba = base64::engine::general_purpose::STANDARD
            .decode(msg["rgba"].as_str().unwrap())
            .unwrap();
        assert_eq!(rgba, [0x10, 0x20, 0x30, 0xff, 0x80, 0x40, 0, 0x80]);
        let big = CursorShape {
            width: MAX_CURSOR + 1,
            height: 1,
            argb: vec![0; MAX_CURSOR as usize + 1],
            ..shape
        };
        assert!(message(&big).is_none());
    }
}
