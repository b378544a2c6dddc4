//! Who may do what: tokens give a viewer a role (control or view), and input from a viewer
//! without control is refused and counted, never applied.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use subtle::ConstantTimeEq;

use super::clipboard::Clipboard;
use super::cursor::CursorMessages;
use super::input::{Injector, InputEvent};

/// What a connection may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Watch only: input is refused.
    View,
    /// Watch and send input.
    Control,
}

/// Tokens, the view-only switch and the input injector: what the routes consult.
#[derive(Default)]
pub struct Remote {
    /// The token that grants control (`--token`); with one set, a page without a valid
    /// token gets nothing.
    pub control_token: Option<String>,
    /// The token that grants viewing only (`--view-token`).
    pub view_token: Option<String>,
    /// `--view-only`: nobody gets control.
    pub view_only: bool,
    /// Input into the display; `None` for synthetic scenes or with `--view-only`.
    pub injector: Option<Injector>,
    /// The clipboard bridge; `None` for synthetic scenes or with `--view-only`.
    pub clipboard: Option<Clipboard>,
    /// The X cursor's shape as page messages; `None` when the pointer is burnt into the
    /// picture (`--cursor`) or for synthetic scenes.
    pub cursor: Option<CursorMessages>,
    /// The X display shown (for the page's title); `None` for a synthetic scene.
    pub display: Option<String>,
    /// The private display follows the page's window (`None`: a user's display, `--size`,
    /// or a synthetic scene).
    pub resize: Option<super::resize::Resizer>,
    /// Input messages refused because their viewer had no control.
    pub refused: AtomicU64,
    /// Session ids handed out so far.
    pub next_session: AtomicU64,
    /// Sessions whose page is visible (not a hidden tab): while none is, the capture idles.
    pub watching: AtomicUsize,
    /// Woken when `watching` changes, so the capture resumes at once.
    pub watchers_changed: tokio::sync::Notify,
}

/// Why most input is refused (the log line docs/serve.md quotes).
const WITHOUT_CONTROL: &str = "from a viewer without control";

/// `text` with Windows (CRLF) and old Mac (lone CR) line breaks as LF: X applications take LF
/// (a terminal turns a pasted CR into Enter, so CRLF would be two line breaks).
pub fn unix_lines(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\r') {
        text.replace("\r\n", "\n").replace('\r', "\n").into()
    } else {
        text.into()
    }
}

fn same(expected: &str, given: &str) -> bool {
    bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

impl Remote {
    /// The role a request with `?token=given` gets, or `None` (refused: 403). With no token
    /// configured everyone gets in; with any, a matching one is needed.
    pub fn role(&self, given: Option<&str>) -> Option<Role> {
        let control = if self.view_only || self.injector.is_none() {
            Role::View
        } else {
            Role::Control
        };
        if self.control_token.is_none() && self.view_token.is_none() {
            return Some(control);
        }
        let given = given?;
        // Both compared, so the time taken does not say which one matched.
        let is_control = self
            .control_token
            .as_deref()
            .is_some_and(|t| same(t, given));
        let is_view = self.view_token.as_deref().is_some_and(|t| same(t, given));
        if is_control {
            Some(control)
        } else if is_view {
            Some(Role::View)
        } else {
            None
        }
    }

    /// A new session id (keys and buttons are tracked per session).
    pub fn session_id(&self) -> u64 {
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }

    /// The message telling a page its role and what it shows:
    /// `{"type":"role","control":bool,"display":":N"|null,"resize":bool}` (`resize`: the
    /// page should send its size, the screen follows it).
    pub fn role_message(&self, role: Role) -> String {
        serde_json::json!({
            "type": "role",
            "control": role == Role::Control,
            "display": self.display,
            "resize": role == Role::Control && self.resize.is_some(),
        })
        .to_string()
    }

    /// A page asks for the screen to be `width` x `height`: applied (clamped) on a display
    /// that follows the page and from a page with control; otherwise refused and counted.
    /// Returns whether it was taken.
    pub fn resize(&self, role: Role, width: u32, height: u32) -> bool {
        match (&self.resize, role) {
            (Some(resizer), Role::Control) => {
                resizer.request(width, height);
                true
            }
            (None, Role::Control) => {
                self.refuse("resize", "for a display of a fixed size");
                false
            }
            (_, Role::View) => {
                self.refuse("resize", WITHOUT_CONTROL);
                false
            }
        }
    }

    /// Counts a refused input message of `kind` ("key", "pointer", "paste", "resize"…) and
    /// logs it, `why`: the first refusal and then every 100th, so that a misbehaving page
    /// cannot flood the log (the total is logged at exit).
    fn refuse(&self, kind: &str, why: &str) {
        let n = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        if n == 1 || n.is_multiple_of(100) {
            tracing::warn!("refused input ({kind}) {why} ({n} refused so far)");
        }
    }

    /// Applies input from session `session` with `role`; refused (and counted) without
    /// control. Returns whether it was applied.
    pub fn input(&self, session: u64, role: Role, event: InputEvent) -> bool {
        match (&self.injector, role) {
            (Some(injector), Role::Control) => {
                injector.send(session, event);
                true
            }
            _ => {
                self.refuse(event.kind(), WITHOUT_CONTROL);
                false
            }
        }
    }

    /// Text a page pasted: becomes the X clipboard if the page has control, its line breaks
    /// as LF (see [`unix_lines`]).
    pub fn paste(&self, role: Role, text: &str) -> bool {
        match (&self.clipboard, role) {
            (Some(clipboard), Role::Control) => {
                if let Err(e) = clipboard.set(&unix_lines(text)) {
                    tracing::warn!("clipboard: {e}");
                }
                true
            }
            (None, Role::Control) => {
                self.refuse("paste", "with no X clipboard to take it");
                false
            }
            (_, Role::View) => {
                self.refuse("paste", WITHOUT_CONTROL);
                false
            }
        }
    }

    /// Sends updates to a page through `send` until the session ends (never returns): the X
    /// cursor's shape to everyone, and the X clipboard's text (`{"type":"clipboard","text"}`)
    /// to a page with control — the current ones at once, then each change.
    pub async fn forward_updates(&self, role: Role, send: impl Fn(String)) {
        let clipboard = match (&self.clipboard, role) {
            (Some(clipboard), Role::Control) => Some(clipboard.subscribe()),
            _ => None,
        };
        let clipboard = forward(
            clipboard,
            |text| serde_json::json!({"type": "clipboard", "text": text}).to_string(),
            &send,
        );
        let cursor = forward(self.cursor.clone(), str::to_string, &send);
        tokio::join!(clipboard, cursor);
        std::future::pending::<()>().await;
    }

    /// How many connected pages are visible.
    pub fn watching(&self) -> usize {
        self.watching.load(Ordering::Relaxed)
    }

    /// A session started watching: counted until the returned guard is dropped or its page
    /// says it is hidden.
    pub fn watch(&self) -> Watcher<'_> {
        let w = Watcher {
            remote: self,
            visible: false,
        };
        let mut w = w;
        w.set_visible(true);
        w
    }

    /// Session `session` ended: release what it held.
    pub fn leave(&self, session: u64) {
        if let Some(injector) = &self.injector {
            injector.leave(session);
        }
    }
}

/// A session's share of [`Remote::watching`].
pub struct Watcher<'a> {
    remote: &'a Remote,
    visible: bool,
}

impl Watcher<'_> {
    /// The page became visible or hidden (`{"type":"visibility","hidden":…}`). Returns
    /// whether it changed.
    pub fn set_visible(&mut self, visible: bool) -> bool {
        if visible == self.visible {
            return false;
        }
        self.visible = visible;
        if visible {
            self.remote.watching.fetch_add(1, Ordering::Relaxed);
        } else {
            self.remote.watching.fetch_sub(1, Ordering::Relaxed);
        }
        self.remote.watchers_changed.notify_one();
        true
    }
}

impl Drop for Watcher<'_> {
    fn drop(&mut self) {
        self.set_visible(false);
    }
}

/// Sends `map(value)` for the current value of `rx` and every change, until its sender goes.
async fn forward(
    rx: Option<tokio::sync::watch::Receiver<Option<Arc<str>>>>,
    map: impl Fn(&str) -> String,
    send: &impl Fn(String),
) {
    let Some(mut rx) = rx else { return };
    rx.mark_changed();
    while rx.changed().await.is_ok() {
        let value = rx.borrow_and_update().clone();
        if let Some(value) = value {
            send(map(&value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_give_roles() {
        let open = Remote::default();
        // No injector (a synthetic scene): nobody controls anything.
        assert_eq!(open.role(None), Some(Role::View));
        let two = Remote {
            control_token: Some("ctl".into()),
            view_token: Some("see".into()),
            ..Default::default()
        };
        assert_eq!(two.role(None), None);
        for bad in ["nope", "", "se", "see!", "See", "ctl "] {
            assert_eq!(two.role(Some(bad)), None, "{bad:?}");
        }
        assert_eq!(two.role(Some("see")), Some(Role::View));
        // Without an injector, the control token only views too.
        assert_eq!(two.role(Some("ctl")), Some(Role::View));
        let view_only_token = Remote {
            view_token: Some("see".into()),
            ..Default::default()
        };
        assert_eq!(view_only_token.role(None), None);
        assert_eq!(view_only_token.role(Some("see")), Some(Role::View));
    }

    #[test]
    fn input_without_control_is_counted_not_applied() {
        let r = Remote::default();
        let ev = InputEvent::Pointer(super::super::input::PointerEvent {
            x: 1.0,
            y: 1.0,
            buttons: 1,
        });
        assert!(!r.input(0, Role::View, ev.clone()));
        assert!(!r.input(0, Role::Control, ev));
        assert_eq!(r.refused.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn pasted_line_breaks_become_lf() {
        assert_eq!(unix_lines("a\r\nb"), "a\nb");
        assert_eq!(unix_lines("a\rb\r\n\r\nc\n\r"), "a\nb\n\nc\n\n");
        assert_eq!(unix_lines("ünï\ncødé"), "ünï\ncødé");
    }

    #[test]
    fn every_kind_of_refused_input_is_counted() {
        let r = Remote::default();
        assert!(!r.paste(Role::View, "text"));
        assert!(!r.paste(Role::Control, "no clipboard bridge"));
        assert!(!r.resize(Role::View, 800, 600));
        assert!(!r.input(
            0,
            Role::View,
            InputEvent::Key(super::super::input::KeyEvent {
                key: "a".into(),
                code: "KeyA".into(),
                down: true,
            })
        ));
        assert_eq!(r.refused.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn only_a_viewer_with_control_resizes_a_display_that_follows_the_page() {
        let follows = Remote {
            resize: Some(super::super::resize::Resizer::new(
                ":9".into(),
                pixelflux::Codec::Jpeg,
            )),
            ..Default::default()
        };
        assert!(!follows.resize(Role::View, 800, 600));
        assert!(follows.resize(Role::Control, 800, 600));
        assert_eq!(follows.refused.load(Ordering::Relaxed), 1);
        let role = |r: &Remote, role| -> serde_json::Value {
            serde_json::from_str(&r.role_message(role)).unwrap()
        };
        assert_eq!(role(&follows, Role::Control)["resize"], true);
        assert_eq!(role(&follows, Role::View)["resize"], false);
        // A user's display, or --size: nobody resizes it.
        let fixed = Remote::default();
        assert!(!fixed.resize(Role::Control, 800, 600));
        assert_eq!(role(&fixed, Role::Control)["resize"], false);
    }
}
