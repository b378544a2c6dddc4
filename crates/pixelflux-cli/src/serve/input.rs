//! Input from the page to the X server through XTest: keys, pointer, buttons and wheel.
//!
//! The page sends browser-level events (`KeyboardEvent.key`/`.code`, pointer positions in
//! capture pixels, button masks, wheel clicks); this module validates them, turns keys into X
//! keysyms (the [`xkeysym`] table for characters, a short table of named keys) and keysyms into
//! keycodes of the server's current keyboard map. A keysym the map lacks, or a character whose
//! keycode would need a different Shift state than the one held, is bound to a spare keycode
//! (one with no symbols) for the press, as VNC servers do — so `ж` typed on a US map arrives as
//! `ж`, and `>` arrives as `>` whatever the Shift state.
//!
//! One thread owns the X connection and applies events in order; sessions hand it events
//! through a channel and never wait for the X server. What a viewer holds (keys, buttons) is
//! released when it leaves, so a dropped connection never leaves a key stuck.

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use x11rb::connection::{Connection, RequestConnection};
use x11rb::protocol::xproto::{
    self, ConnectionExt as _, BUTTON_PRESS_EVENT, BUTTON_RELEASE_EVENT, KEY_PRESS_EVENT,
    KEY_RELEASE_EVENT, MOTION_NOTIFY_EVENT,
};
use x11rb::protocol::xtest::ConnectionExt as _;
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;
use xkeysym::Keysym;

/// Longest `key` or `code` string accepted (the longest DOM key names are ~20 characters).
const MAX_KEY_NAME: usize = 32;
/// Largest pointer coordinate accepted (X coordinates are 16-bit).
const MAX_COORD: f64 = 32767.0;
/// Most wheel clicks in one message, per axis.
pub const MAX_WHEEL_CLICKS: i32 = 32;

/// A key going down or up: `KeyboardEvent.key` and `.code` as the browser reports them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEvent {
    /// `KeyboardEvent.key`: a character (`"a"`, `"ж"`, `"@"`) or a key name (`"Enter"`).
    pub key: String,
    /// `KeyboardEvent.code`: the physical key (`"KeyA"`, `"ShiftLeft"`), possibly empty.
    #[serde(default)]
    pub code: String,
    /// Pressed (`true`) or released.
    pub down: bool,
}

/// The pointer's position in capture pixels (0,0 = the capture region's top-left corner)
/// and the buttons held, as `MouseEvent.buttons` (1 left, 2 right, 4 middle, 8 back,
/// 16 forward).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointerEvent {
    pub x: f64,
    pub y: f64,
    #[serde(default)]
    pub buttons: u8,
}

/// Wheel clicks at a position: `dy` > 0 scrolls down (X button 5), < 0 up (4); `dx` > 0
/// right (7), < 0 left (6). The page accumulates smooth wheels into whole clicks.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WheelEvent {
    pub x: f64,
    pub y: f64,
    #[serde(default)]
    pub dx: i32,
    #[serde(default)]
    pub dy: i32,
}

/// One input event from a viewer.
#[derive(Debug, Clone, PartialEq)]
pub enum InputEvent {
    Key(KeyEvent),
    Pointer(PointerEvent),
    Wheel(WheelEvent),
}

impl InputEvent {
    /// The message's type as the page sends it (`key`, `pointer`, `wheel`), for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            InputEvent::Key(_) => "key",
            InputEvent::Pointer(_) => "pointer",
            InputEvent::Wheel(_) => "wheel",
        }
    }

    /// Checks the ranges serde cannot: name lengths, finite in-range coordinates, click
    /// counts. A message that fails closes its connection, like any malformed message.
    pub fn validate(&self) -> Result<(), String> {
        let coord = |v: f64| v.is_finite() && (0.0..=MAX_COORD).contains(&v);
        match self {
            InputEvent::Key(k) => {
                if k.key.is_empty() || k.key.len() > MAX_KEY_NAME || k.code.len() > MAX_KEY_NAME {
                    return Err("key or code is empty or too long".into());
                }
            }
            InputEvent::Pointer(p) => {
                if !coord(p.x) || !coord(p.y) {
                    return Err("pointer position out of range".into());
                }
            }
            InputEvent::Wheel(w) => {
                if !coord(w.x) || !coord(w.y) {
                    return Err("wheel position out of range".into());
                }
                if w.dx.abs() > MAX_WHEEL_CLICKS || w.dy.abs() > MAX_WHEEL_CLICKS {
                    return Err(format!("more than {MAX_WHEEL_CLICKS} wheel clicks"));
                }
            }
        }
        Ok(())
    }
}

/// The capture region in root-window coordinates: where page coordinates land.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Region {
    pub x: i32,
    pub y: i32,
    pub width: u32,
    pub height: u32,
}

/// Why input cannot be injected into a display.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot connect to X display {display}: {source}")]
    Connect {
        display: String,
        source: x11rb::errors::ConnectError,
    },
    #[error(transparent)]
    BadDisplayName(pixelflux::source::SourceError),
    #[error("the X server has no XTEST extension")]
    NoXtest,
    #[error("X connection: {0}")]
    Connection(#[from] x11rb::errors::ConnectionError),
    #[error("X request: {0}")]
    Reply(#[from] x11rb::errors::ReplyError),
}

enum Command {
    Event(u64, InputEvent),
    Leave(u64),
}

/// The handle sessions use to inject input; cheap to clone.
#[derive(Clone)]
pub struct Injector {
    tx: mpsc::Sender<Command>,
    region: Arc<Mutex<Region>>,
}

impl Injector {
    /// Connects to `display`, checks for XTEST and starts the injecting thread.
    pub fn start(display: Option<&str>, region: Region) -> Result<Self, InputError> {
        pixelflux::source::x11::check_display_name(display).map_err(InputError::BadDisplayName)?;
        let (conn, screen) = x11rb::connect(display).map_err(|source| InputError::Connect {
            display: display.unwrap_or("$DISPLAY").to_string(),
            source,
        })?;
        if conn
            .extension_information(x11rb::protocol::xtest::X11_EXTENSION_NAME)?
            .is_none()
        {
            return Err(InputError::NoXtest);
        }
        let root = conn
            .setup()
            .roots
            .get(screen)
            .map(|s| s.root)
            .ok_or(InputError::NoXtest)?;
        let mut state = XState::new(conn, root)?;
        let region = Arc::new(Mutex::new(region));
        let (tx, rx) = mpsc::channel();
        let shared = Arc::clone(&region);
        std::thread::Builder::new()
            .name("pixelflux-input".into())
            .spawn(move || {
                while let Ok(cmd) = rx.recv() {
                    let region = *shared.lock().unwrap_or_else(|e| e.into_inner());
                    if let Err(e) = state.apply(cmd, region) {
                        tracing::warn!("input: {e}");
                    }
                }
                state.release_all();
            })
            .map_err(|e| InputError::Connection(x11rb::errors::ConnectionError::IoError(e)))?;
        let name = display.unwrap_or("$DISPLAY");
        tracing::info!("input: XTest on {name}");
        Ok(Self { tx, region })
    }

    /// Applies `event` from viewer `viewer` (queued; never blocks on the X server).
    pub fn send(&self, viewer: u64, event: InputEvent) {
        let _ = self.tx.send(Command::Event(viewer, event));
    }

    /// Releases whatever `viewer` holds (its connection ended).
    pub fn leave(&self, viewer: u64) {
        let _ = self.tx.send(Command::Leave(viewer));
    }

    /// The capture region changed (a restart at a new size).
    pub fn set_region(&self, region: Region) {
        *self.region.lock().unwrap_or_else(|e| e.into_inner()) = region;
    }
}

/// The keysym for a DOM `key` value (and `code`, for left/right modifiers and the keypad).
/// `None`: a key with nothing to send (`"Dead"`, `"Unidentified"`, IME keys).
pub fn keysym_for(key: &str, code: &str) -> Option<u32> {
    let mut chars = key.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        if c.is_control() {
            return None;
        }
        let sym = Keysym::from_char(c);
        return (sym != Keysym::NoSymbol).then(|| sym.raw());
    }
    let right = code.ends_with("Right");
    let sym = match key {
        "Enter" if code == "NumpadEnter" => Keysym::KP_Enter,
        "Enter" => Keysym::Return,
        "Tab" => Keysym::Tab,
        "Backspace" => Keysym::BackSpace,
        "Escape" => Keysym::Escape,
        "Delete" => Keysym::Delete,
        "Insert" => Keysym::Insert,
        "Home" => Keysym::Home,
        "End" => Keysym::End,
        "PageUp" => Keysym::Prior,
        "PageDown" => Keysym::Next,
        "ArrowLeft" => Keysym::Left,
        "ArrowRight" => Keysym::Right,
        "ArrowUp" => Keysym::Up,
        "ArrowDown" => Keysym::Down,
        "Shift" if right => Keysym::Shift_R,
        "Shift" => Keysym::Shift_L,
        "Control" if right => Keysym::Control_R,
        "Control" => Keysym::Control_L,
        "Alt" if right => Keysym::Alt_R,
        "Alt" => Keysym::Alt_L,
        "AltGraph" => Keysym::ISO_Level3_Shift,
        "Meta" | "OS" | "Super" if right => Keysym::Super_R,
        "Meta" | "OS" | "Super" => Keysym::Super_L,
        "CapsLock" => Keysym::Caps_Lock,
        "NumLock" => Keysym::Num_Lock,
        "ScrollLock" => Keysym::Scroll_Lock,
        "Pause" => Keysym::Pause,
        "PrintScreen" => Keysym::Print,
        "ContextMenu" => Keysym::Menu,
        "Help" => Keysym::Help,
        "Clear" => Keysym::Clear,
        _ => {
            // F1..F35 are consecutive keysyms.
            let n: u32 = key.strip_prefix('F')?.parse().ok()?;
            if !(1..=35).contains(&n) {
                return None;
            }
            return Some(Keysym::F1.raw() + n - 1);
        }
    };
    Some(sym.raw())
}

/// X button numbers for the bits of `MouseEvent.buttons`.
const BUTTON_BITS: [(u8, u8); 5] = [(1, 1), (4, 2), (2, 3), (8, 8), (16, 9)];

/// The injecting thread's state: the connection, the keyboard map, what each viewer holds.
struct XState {
    conn: RustConnection,
    root: xproto::Window,
    min_keycode: u8,
    per_keycode: usize,
    /// Keysyms of each keycode from `min_keycode`, `per_keycode` columns each.
    map: Vec<u32>,
    /// Keycodes we may rebind (no symbols in the map when we started), least recently
    /// used first.
    spare: Vec<u8>,
    /// (viewer, key id) → (keycode, keysym) held down.
    keys: HashMap<(u64, String), (u8, u32)>,
    /// viewer → buttons held (X button numbers as a bit set).
    buttons: HashMap<u64, u16>,
}

impl XState {
    fn new(conn: RustConnection, root: xproto::Window) -> Result<Self, InputError> {
        let mut s = Self {
            min_keycode: conn.setup().min_keycode,
            conn,
            root,
            per_keycode: 0,
            map: Vec::new(),
            spare: Vec::new(),
            keys: HashMap::new(),
            buttons: HashMap::new(),
        };
        s.load_map()?;
        s.spare = (0..s.keycode_count())
            .filter(|&i| s.syms(i).iter().all(|&k| k == 0))
            .filter_map(|i| u8::try_from(i + usize::from(s.min_keycode)).ok())
            .collect();
        // Keep the lowest spares out of reach of servers that treat them specially: use the
        // highest first (they are all unused; order only matters for determinism).
        s.spare.reverse();
        tracing::debug!("input: {} spare keycodes", s.spare.len());
        Ok(s)
    }

    fn keycode_count(&self) -> usize {
        self.map.len().checked_div(self.per_keycode).unwrap_or(0)
    }

    fn syms(&self, index: usize) -> &[u32] {
        &self.map[index * self.per_keycode..(index + 1) * self.per_keycode]
    }

    fn load_map(&mut self) -> Result<(), InputError> {
        let setup = self.conn.setup();
        let (min, max) = (setup.min_keycode, setup.max_keycode);
        let reply = self
            .conn
            .get_keyboard_mapping(min, max - min + 1)?
            .reply()?;
        self.per_keycode = usize::from(reply.keysyms_per_keycode);
        self.map = reply.keysyms;
        Ok(())
    }

    fn shift_held(&self) -> bool {
        let (l, r) = (Keysym::Shift_L.raw(), Keysym::Shift_R.raw());
        self.keys.values().any(|&(_, k)| k == l || k == r)
    }

    /// The keycode to press for `keysym`. Characters must come out as themselves under the
    /// Shift state now held; anything else only needs to be on some keycode.
    fn keycode_for(&mut self, keysym: u32, character: bool) -> Result<Option<u8>, InputError> {
        let column = usize::from(self.shift_held());
        let found = (0..self.keycode_count()).find(|&i| {
            let syms = self.syms(i);
            let at = |c: usize| syms.get(c).copied().unwrap_or(0);
            if character {
                // A one-symbol keycode gives that symbol with or without Shift.
                at(column) == keysym || (at(1) == 0 && at(0) == keysym)
            } else {
                at(0) == keysym || at(1) == keysym
            }
        });
        if let Some(i) = found {
            return Ok(u8::try_from(i + usize::from(self.min_keycode)).ok());
        }
        self.bind_spare(keysym)
    }

    /// Binds `keysym` (in both Shift columns) to the least recently used spare keycode that
    /// is not held down.
    fn bind_spare(&mut self, keysym: u32) -> Result<Option<u8>, InputError> {
        let held: Vec<u8> = self.keys.values().map(|&(kc, _)| kc).collect();
        let Some(pos) = self.spare.iter().position(|kc| !held.contains(kc)) else {
            tracing::warn!("input: no spare keycode for keysym {keysym:#x}");
            return Ok(None);
        };
        let kc = self.spare.remove(pos);
        self.spare.push(kc);
        let mut syms = vec![0u32; self.per_keycode.max(2)];
        syms[0] = keysym;
        syms[1] = keysym;
        let per = u8::try_from(syms.len()).unwrap_or(2);
        self.conn.change_keyboard_mapping(1, kc, per, &syms)?;
        // Our copy follows at once (the MappingNotify that also comes reloads it anyway).
        let index = usize::from(kc - self.min_keycode);
        if per == u8::try_from(self.per_keycode).unwrap_or(0) {
            let start = index * self.per_keycode;
            self.map[start..start + self.per_keycode].copy_from_slice(&syms);
        } else {
            self.conn.flush()?;
            self.load_map()?;
        }
        tracing::debug!("input: keysym {keysym:#x} bound to spare keycode {kc}");
        Ok(Some(kc))
    }

    fn fake(&self, kind: u8, detail: u8, x: i16, y: i16) -> Result<(), InputError> {
        self.conn
            .xtest_fake_input(kind, detail, x11rb::CURRENT_TIME, self.root, x, y, 0)?;
        Ok(())
    }

    fn motion(&self, x: f64, y: f64, region: Region) -> Result<(), InputError> {
        let clamp = |v: f64, size: u32, origin: i32| {
            let max = f64::from(size.max(1) - 1);
            let v = v.floor().clamp(0.0, max) as i32 + origin;
            v.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16
        };
        let (rx, ry) = (
            clamp(x, region.width, region.x),
            clamp(y, region.height, region.y),
        );
        self.fake(MOTION_NOTIFY_EVENT, 0, rx, ry)
    }

    fn apply(&mut self, cmd: Command, region: Region) -> Result<(), InputError> {
        // A keymap change by anyone (setxkbmap, xmodmap, ourselves) reloads our copy.
        let mut reload = false;
        while let Some(event) = self.conn.poll_for_event()? {
            if let Event::MappingNotify(_) = event {
                reload = true;
            }
        }
        if reload {
            self.load_map()?;
        }
        match cmd {
            Command::Event(viewer, InputEvent::Key(k)) => self.key(viewer, &k)?,
            Command::Event(viewer, InputEvent::Pointer(p)) => {
                self.motion(p.x, p.y, region)?;
                let mut want = 0u16;
                for (bit, button) in BUTTON_BITS {
                    if p.buttons & bit != 0 {
                        want |= 1 << button;
                    }
                }
                let had = self.buttons.get(&viewer).copied().unwrap_or(0);
                for (_, button) in BUTTON_BITS {
                    let mask = 1u16 << button;
                    if want & mask != had & mask {
                        let kind = if want & mask != 0 {
                            BUTTON_PRESS_EVENT
                        } else {
                            BUTTON_RELEASE_EVENT
                        };
                        self.fake(kind, button, 0, 0)?;
                    }
                }
                if want == 0 {
                    self.buttons.remove(&viewer);
                } else {
                    self.buttons.insert(viewer, want);
                }
            }
            Command::Event(_, InputEvent::Wheel(w)) => {
                self.motion(w.x, w.y, region)?;
                for (clicks, less, more) in [(w.dy, 4u8, 5u8), (w.dx, 6, 7)] {
                    let button = if clicks < 0 { less } else { more };
                    for _ in 0..clicks.unsigned_abs().min(MAX_WHEEL_CLICKS as u32) {
                        self.fake(BUTTON_PRESS_EVENT, button, 0, 0)?;
                        self.fake(BUTTON_RELEASE_EVENT, button, 0, 0)?;
                    }
                }
            }
            Command::Leave(viewer) => self.release_viewer(viewer)?,
        }
        self.conn.flush()?;
        Ok(())
    }

    fn key(&mut self, viewer: u64, k: &KeyEvent) -> Result<(), InputError> {
        // The physical key identifies a press, so its release matches even when `key`
        // changed in between (Shift let go first); keys without a code use their value.
        let id = (
            viewer,
            if k.code.is_empty() {
                k.key.clone()
            } else {
                k.code.clone()
            },
        );
        if !k.down {
            if let Some((kc, _)) = self.keys.remove(&id) {
                self.fake(KEY_RELEASE_EVENT, kc, 0, 0)?;
            }
            return Ok(());
        }
        if let Some(&(kc, _)) = self.keys.get(&id) {
            // Browser auto-repeat: release and press again, so the X server's own
            // auto-repeat never runs on after a lost release.
            self.fake(KEY_RELEASE_EVENT, kc, 0, 0)?;
            self.fake(KEY_PRESS_EVENT, kc, 0, 0)?;
            return Ok(());
        }
        let Some(keysym) = keysym_for(&k.key, &k.code) else {
            return Ok(());
        };
        let character = k.key.chars().count() == 1;
        let Some(kc) = self.keycode_for(keysym, character)? else {
            return Ok(());
        };
        self.fake(KEY_PRESS_EVENT, kc, 0, 0)?;
        self.keys.insert(id, (kc, keysym));
        Ok(())
    }

    fn release_viewer(&mut self, viewer: u64) -> Result<(), InputError> {
        let held: Vec<_> = self
            .keys
            .keys()
            .filter(|(v, _)| *v == viewer)
            .cloned()
            .collect();
        for id in held {
            if let Some((kc, _)) = self.keys.remove(&id) {
                self.fake(KEY_RELEASE_EVENT, kc, 0, 0)?;
            }
        }
        if let Some(mask) = self.buttons.remove(&viewer) {
            for (_, button) in BUTTON_BITS {
                if mask & (1 << button) != 0 {
                    self.fake(BUTTON_RELEASE_EVENT, button, 0, 0)?;
                }
            }
        }
        Ok(())
    }

    fn release_all(&mut self) {
        let viewers: Vec<u64> = self
            .keys
            .keys()
            .map(|(v, _)| *v)
            .chain(self.buttons.keys().copied())
            .collect();
        for v in viewers {
            let _ = self.release_viewer(v);
        }
        let _ = self.conn.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_keysyms() {
        assert_eq!(keysym_for("a", "KeyA"), Some(0x61));
        assert_eq!(keysym_for("A", "KeyA"), Some(0x41));
        assert_eq!(keysym_for(" ", "Space"), Some(0x20));
        assert_eq!(keysym_for("é", ""), Some(0xe9));
        assert_eq!(keysym_for("ж", ""), Some(0x6d6)); // Cyrillic_zhe
        assert_eq!(keysym_for("€", ""), Some(0x20ac)); // EuroSign
        assert_eq!(keysym_for("😀", ""), Some(0x0100_0000 | 0x1f600));
        assert_eq!(keysym_for("Enter", "Enter"), Some(0xff0d));
        assert_eq!(keysym_for("Enter", "NumpadEnter"), Some(0xff8d));
        assert_eq!(keysym_for("Shift", "ShiftRight"), Some(0xffe2));
        assert_eq!(keysym_for("Control", "ControlLeft"), Some(0xffe3));
        assert_eq!(keysym_for("F1", "F1"), Some(0xffbe));
        assert_eq!(keysym_for("F12", "F12"), Some(0xffc9));
        for none in ["Dead", "Unidentified", "F0", "F99", "Process", "\u{7}"] {
            assert_eq!(keysym_for(none, ""), None, "{none}");
        }
    }

    /// Polls `f` until it returns `Some`, for at most 5 s.
    fn eventually<T>(mut f: impl FnMut() -> Option<T>) -> T {
        let t0 = std::time::Instant::now();
        loop {
            if let Some(v) = f() {
                return v;
            }
            assert!(t0.elapsed().as_secs() < 5, "not within 5 s");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    #[test]
    fn xtest_moves_the_pointer_and_holds_keys_until_the_viewer_leaves() {
        let xvfb = super::super::display::OwnXvfb::start(320, 240).expect("Xvfb is installed here");
        let region = Region {
            x: 100,
            y: 50,
            width: 200,
            height: 150,
        };
        let injector = Injector::start(Some(xvfb.display()), region).unwrap();
        let (conn, screen) = x11rb::connect(Some(xvfb.display())).unwrap();
        let root = conn.setup().roots[screen].root;
        let pointer =
            |x: f64, y: f64, buttons: u8| InputEvent::Pointer(PointerEvent { x, y, buttons });
        // Capture pixels → root coordinates (offset by the region), clamped into the region.
        injector.send(1, pointer(10.0, 20.0, 0));
        eventually(|| {
            let p = conn.query_pointer(root).unwrap().reply().unwrap();
            ((p.root_x, p.root_y) == (110, 70)).then_some(())
        });
        injector.send(1, pointer(5000.0, 5000.0, 1));
        eventually(|| {
            let p = conn.query_pointer(root).unwrap().reply().unwrap();
            let held = u16::from(p.mask) & u16::from(xproto::KeyButMask::BUTTON1) != 0;
            ((p.root_x, p.root_y) == (299, 199) && held).then_some(())
        });
        // Keys: one on the map, one that is not (bound to a spare keycode).
        let pressed = |conn: &RustConnection| -> Vec<u8> {
            let keys = conn.query_keymap().unwrap().reply().unwrap().keys;
            (0..=255u8)
                .filter(|&kc| keys[usize::from(kc / 8)] & (1 << (kc % 8)) != 0)
                .collect()
        };
        for (key, keysym) in [("a", 0x61u32), ("ж", 0x6d6)] {
            injector.send(
                1,
                InputEvent::Key(KeyEvent {
                    key: key.into(),
                    code: String::new(),
                    down: true,
                }),
            );
            let kc = eventually(|| pressed(&conn).first().copied());
            // The keycode pressed carries the keysym (for ж: after our remapping).
            eventually(|| {
                let m = conn.get_keyboard_mapping(kc, 1).unwrap().reply().unwrap();
                m.keysyms.contains(&keysym).then_some(())
            });
            injector.send(
                1,
                InputEvent::Key(KeyEvent {
                    key: key.into(),
                    code: String::new(),
                    down: false,
                }),
            );
            eventually(|| pressed(&conn).is_empty().then_some(()));
        }
        // What a viewer holds is let go when it leaves.
        injector.send(
            2,
            InputEvent::Key(KeyEvent {
                key: "Shift".into(),
                code: "ShiftLeft".into(),
                down: true,
            }),
        );
        eventually(|| (!pressed(&conn).is_empty()).then_some(()));
        injector.leave(2);
        injector.leave(1);
        eventually(|| {
            let p = conn.query_pointer(root).unwrap().reply().unwrap();
            let held = u16::from(p.mask) & u16::from(xproto::KeyButMask::BUTTON1) != 0;
            (pressed(&conn).is_empty() && !held).then_some(())
        });
    }

    #[test]
    fn events_are_range_checked() {
        let key = |k: &str| {
            InputEvent::Key(KeyEvent {
                key: k.into(),
                code: String::new(),
                down: true,
            })
        };
        assert!(key("a").validate().is_ok());
        assert!(key("").validate().is_err());
        assert!(key(&"x".repeat(40)).validate().is_err());
        let pointer = |x: f64, y: f64| InputEvent::Pointer(PointerEvent { x, y, buttons: 1 });
        assert!(pointer(10.5, 3.0).validate().is_ok());
        for (x, y) in [
            (-1.0, 0.0),
            (0.0, 1e9),
            (f64::NAN, 0.0),
            (f64::INFINITY, 0.0),
        ] {
            assert!(pointer(x, y).validate().is_err(), "{x},{y}");
        }
        let wheel = |dx, dy| {
            InputEvent::Wheel(WheelEvent {
                x: 0.0,
                y: 0.0,
                dx,
                dy,
            })
        };
        assert!(wheel(-3, 32).validate().is_ok());
        assert!(wheel(0, 33).validate().is_err());
        assert!(wheel(-1000, 0).validate().is_err());
    }
}
