//! Clipboard text between the X server and the pages, both ways.
//!
//! X → page: XFixes tells us when another client takes the CLIPBOARD selection; we convert it
//! to `UTF8_STRING` and publish the text (up to [`MAX_CLIPBOARD`] bytes) to every page with
//! control. Page → X: text a page pastes becomes the CLIPBOARD and PRIMARY selections, owned by
//! a hidden window of ours, served to any client that asks (`TARGETS`, `UTF8_STRING`,
//! `STRING`, `TEXT`).

use std::sync::{Arc, Mutex};

use x11rb::connection::Connection;
use x11rb::protocol::xfixes::{ConnectionExt as _, SelectionEventMask};
use x11rb::protocol::xproto::{
    self, AtomEnum, ConnectionExt as _, CreateWindowAux, EventMask, PropMode, SelectionNotifyEvent,
    WindowClass, SELECTION_NOTIFY_EVENT,
};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;

/// Largest clipboard text passed either way, in bytes (more is dropped, with a log line).
pub const MAX_CLIPBOARD: usize = 256 * 1024;

/// Why the clipboard bridge could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClipboardError {
    #[error("{0}")]
    X(#[from] pixelflux::SourceError),
    #[error("X connection: {0}")]
    Connection(#[from] x11rb::errors::ConnectionError),
    #[error("X request: {0}")]
    Reply(#[from] x11rb::errors::ReplyError),
    #[error("X ids: {0}")]
    Id(#[from] x11rb::errors::ReplyOrIdError),
}

struct Atoms {
    clipboard: xproto::Atom,
    utf8: xproto::Atom,
    targets: xproto::Atom,
    text: xproto::Atom,
    incr: xproto::Atom,
    property: xproto::Atom,
}

/// The bridge: the X side runs on its own thread; pages read [`Clipboard::subscribe`] and
/// write with [`Clipboard::set`].
pub struct Clipboard {
    conn: Arc<RustConnection>,
    window: xproto::Window,
    atoms: Arc<Atoms>,
    /// What we offer to X clients while we own the selections.
    ours: Arc<Mutex<Vec<u8>>>,
    from_x: tokio::sync::watch::Receiver<Option<Arc<str>>>,
}

impl Clipboard {
    /// Connects to `display` and starts watching its CLIPBOARD selection.
    pub fn start(display: Option<&str>) -> Result<Self, ClipboardError> {
        let (conn, root, _) = pixelflux::source::x11::connect_xfixes(display)?;
        let intern = |name: &[u8]| -> Result<xproto::Atom, ClipboardError> {
            Ok(conn.intern_atom(false, name)?.reply()?.atom)
        };
        let atoms = Arc::new(Atoms {
            clipboard: intern(b"CLIPBOARD")?,
            utf8: intern(b"UTF8_STRING")?,
            targets: intern(b"TARGETS")?,
            text: intern(b"TEXT")?,
            incr: intern(b"INCR")?,
            property: intern(b"PIXELFLUX_CLIPBOARD")?,
        });
        let window = conn.generate_id()?;
        conn.create_window(
            0,
            window,
            root,
            -10,
            -10,
            1,
            1,
            0,
            WindowClass::INPUT_ONLY,
            0,
            &CreateWindowAux::new().event_mask(EventMask::PROPERTY_CHANGE),
        )?;
        conn.xfixes_select_selection_input(
            window,
            atoms.clipboard,
            SelectionEventMask::SET_SELECTION_OWNER,
        )?;
        conn.flush()?;
        let conn = Arc::new(conn);
        let ours = Arc::new(Mutex::new(Vec::new()));
        let (tx, from_x) = tokio::sync::watch::channel(None);
        let (c, a, o) = (Arc::clone(&conn), Arc::clone(&atoms), Arc::clone(&ours));
        std::thread::Builder::new()
            .name("pixelflux-clipboard".into())
            .spawn(move || {
                match event_loop(&c, window, &a, &o, &tx) {
                    // The X server went away: at every normal exit (serve stops its Xvfb
                    // last), and if it dies, which the capture reports.
                    Err(
                        ClipboardError::Connection(e)
                        | ClipboardError::Reply(x11rb::errors::ReplyError::ConnectionError(e)),
                    ) => {
                        tracing::debug!("clipboard: X connection ended: {e}");
                    }
                    Err(e) => tracing::warn!("clipboard: {e}"),
                    Ok(()) => {}
                }
            })
            .map_err(|e| ClipboardError::Connection(e.into()))?;
        Ok(Self {
            conn,
            window,
            atoms,
            ours,
            from_x,
        })
    }

    /// The X clipboard's text as it changes (`None` until something is copied in X).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Option<Arc<str>>> {
        self.from_x.clone()
    }

    /// Makes `text` the CLIPBOARD and PRIMARY selections of the X server.
    pub fn set(&self, text: &str) -> Result<(), ClipboardError> {
        *self.ours.lock().unwrap_or_else(|e| e.into_inner()) = text.as_bytes().to_vec();
        for selection in [self.atoms.clipboard, AtomEnum::PRIMARY.into()] {
            self.conn
                .set_selection_owner(self.window, selection, x11rb::CURRENT_TIME)?;
        }
        self.conn.flush()?;
        Ok(())
    }
}

fn event_loop(
    conn: &RustConnection,
    window: xproto::Window,
    atoms: &Atoms,
    ours: &Mutex<Vec<u8>>,
    publish: &tokio::sync::watch::Sender<Option<Arc<str>>>,
) -> Result<(), ClipboardError> {
    loop {
        match conn.wait_for_event()? {
            Event::XfixesSelectionNotify(ev) if ev.owner != window && ev.owner != 0 => {
                // Someone copied: ask for the text, delivered to our window's property.
                conn.convert_selection(
                    window,
                    atoms.clipboard,
                    atoms.utf8,
                    atoms.property,
                    x11rb::CURRENT_TIME,
                )?;
                conn.flush()?;
            }
            Event::SelectionNotify(ev) if ev.requestor == window && ev.property != 0 => {
                let words = u32::try_from(MAX_CLIPBOARD / 4 + 1).unwrap_or(u32::MAX);
                let reply = conn
                    .get_property(true, window, atoms.property, AtomEnum::ANY, 0, words)?
                    .reply()?;
                if reply.type_ == atoms.incr || reply.bytes_after > 0 {
                    tracing::warn!(
                        "clipboard: X clipboard text over {MAX_CLIPBOARD} bytes not passed on"
                    );
                    continue;
                }
                let text: Arc<str> = String::from_utf8_lossy(&reply.value).into();
                publish.send_if_modified(|current| {
                    if current.as_deref() == Some(&*text) {
                        return false;
                    }
                    *current = Some(text);
                    true
                });
            }
            Event::SelectionRequest(req) if req.owner == window => {
                let property = if req.property == 0 {
                    req.target // obsolete clients
                } else {
                    req.property
                };
                let string: xproto::Atom = AtomEnum::STRING.into();
                let ok = if req.target == atoms.targets {
                    let list = [atoms.targets, atoms.utf8, string, atoms.text];
                    conn.change_property32(
                        PropMode::REPLACE,
                        req.requestor,
                        property,
                        AtomEnum::ATOM,
                        &list,
                    )?;
                    true
                } else if req.target == atoms.utf8
                    || req.target == atoms.text
                    || req.target == string
                {
                    let bytes = ours.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    let kind = if req.target == string {
                        string
                    } else {
                        atoms.utf8
                    };
                    conn.change_property8(
                        PropMode::REPLACE,
                        req.requestor,
                        property,
                        kind,
                        &bytes,
                    )?;
                    true
                } else {
                    false
                };
                let notify = SelectionNotifyEvent {
                    response_type: SELECTION_NOTIFY_EVENT,
                    sequence: 0,
                    time: req.time,
                    requestor: req.requestor,
                    selection: req.selection,
                    target: req.target,
                    property: if ok { property } else { 0 },
                };
                conn.send_event(false, req.requestor, EventMask::NO_EVENT, notify)?;
                conn.flush()?;
            }
            _ => {}
        }
    }
}
