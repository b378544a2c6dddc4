//! The HTTP side of `serve`: the embedded page, the WebSocket stream, the token and origin
//! checks, and validation of what clients send.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;

use super::clipboard::MAX_CLIPBOARD;
use super::hub::{epoch_ms, Hub};
use super::input::{InputEvent, KeyEvent, PointerEvent, WheelEvent};
use super::limits::{Limits, PingBudget};
use super::remote::{Remote, Role};

const INDEX_HTML: &str = include_str!("../../../../web/index.html");
const CLIENT_JS: &str = include_str!("../../../../web/client.js");
const INPUT_JS: &str = include_str!("../../../../web/input.js");
const YUV_JS: &str = include_str!("../../../../web/yuv.js");
const YUV_WORKER_JS: &str = include_str!("../../../../web/yuv-worker.js");

/// Largest message a client may send, except a paste; anything bigger closes its connection.
pub const MAX_CLIENT_MESSAGE: usize = 4096;

/// Largest paste message (`{"type":"clipboard","text":...}` as JSON), room for
/// [`MAX_CLIPBOARD`] bytes of text with some escaping; its text must also be at most
/// [`MAX_CLIPBOARD`] bytes. The page refuses larger pastes itself (with a notice).
pub const MAX_PASTE_MESSAGE: usize = 2 * MAX_CLIPBOARD;

/// A client may ask for a full refresh at most this often (each one re-encodes everything).
const REFRESH_INTERVAL: Duration = Duration::from_millis(250);

/// What the routes share.
pub struct AppState {
    /// The fan-out point.
    pub hub: Arc<Hub>,
    /// Whether a token is needed at all (any of `remote`'s tokens), for the `Host` check.
    pub token: Option<String>,
    /// Tokens and roles, input, clipboard and pointer shape.
    pub remote: Remote,
    /// The address the server is bound to (a `Host` naming it is accepted without a token).
    pub listen: SocketAddr,
    /// Per-connection bounds.
    pub limits: Limits,
}

/// Messages a client may send, as JSON objects with a `type` field. New kinds (input events)
/// are new variants.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ClientMessage {
    /// Send every stripe again (H.264 as IDRs): the client lost its picture.
    Refresh,
    /// Clock probe: the server answers `{"type":"pong","t":<t>,"server":<epoch ms>}`.
    Ping {
        /// The client's clock when it sent the ping, echoed back.
        t: f64,
    },
    /// A key pressed or released (applied only for a viewer with control).
    Key(KeyEvent),
    /// Pointer moved or buttons changed.
    Pointer(PointerEvent),
    /// Wheel clicks.
    Wheel(WheelEvent),
    /// The page was hidden (a background tab) or shown again; while no page is visible the
    /// capture idles.
    Visibility {
        /// `document.hidden`.
        hidden: bool,
    },
    /// Text pasted into the page, for the X clipboard (applied only with control).
    Clipboard {
        /// UTF-8 text.
        text: String,
    },
    /// The page's canvas area in device pixels: the private display follows it (applied only
    /// with control, on a display that follows the page; clamped, see `serve::resize`).
    Resize {
        /// Width in device pixels (1 to 65535).
        width: u32,
        /// Height in device pixels (1 to 65535).
        height: u32,
    },
}

impl ClientMessage {
    /// The input event this message carries, if it is one.
    pub fn into_input(self) -> Result<InputEvent, Self> {
        match self {
            ClientMessage::Key(k) => Ok(InputEvent::Key(k)),
            ClientMessage::Pointer(p) => Ok(InputEvent::Pointer(p)),
            ClientMessage::Wheel(w) => Ok(InputEvent::Wheel(w)),
            other => Err(other),
        }
    }
}

/// Why a client message was refused (the connection is then closed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadMessage {
    /// Over [`MAX_CLIENT_MESSAGE`] bytes (a paste: over [`MAX_PASTE_MESSAGE`], or its text
    /// over [`MAX_CLIPBOARD`]).
    #[error("message of {0} bytes is over the size limit ({MAX_CLIENT_MESSAGE} bytes, a paste {MAX_CLIPBOARD} bytes of text)")]
    TooLarge(usize),
    /// Binary data: clients speak JSON text only.
    #[error("binary messages are not accepted")]
    Binary,
    /// Not JSON, no known `type`, or fields missing.
    #[error("invalid message: {0}")]
    Invalid(String),
}

/// Validates one WebSocket message from a client. `Ok(None)`: a protocol-level frame (ping,
/// pong, close) with nothing to do.
pub fn parse_client_message(msg: &Message) -> Result<Option<ClientMessage>, BadMessage> {
    match msg {
        Message::Text(text) => {
            if text.len() > MAX_PASTE_MESSAGE {
                return Err(BadMessage::TooLarge(text.len()));
            }
            let parsed = serde_json::from_str::<serde_json::Value>(text.as_str());
            // Only a paste may be longer than MAX_CLIENT_MESSAGE.
            if text.len() > MAX_CLIENT_MESSAGE {
                let paste = parsed.as_ref().ok().and_then(|v| {
                    (v.get("type")? == "clipboard").then(|| v.get("text")?.as_str())?
                });
                if paste.is_none_or(|t| t.len() > MAX_CLIPBOARD) {
                    return Err(BadMessage::TooLarge(text.len()));
                }
            }
            let value = parsed.map_err(|e| BadMessage::Invalid(e.to_string()))?;
            // Objects only: serde would also take `["refresh"]` for a tagged enum.
            if !value.is_object() {
                return Err(BadMessage::Invalid("not a JSON object".into()));
            }
            let msg: ClientMessage =
                serde_json::from_value(value).map_err(|e| BadMessage::Invalid(e.to_string()))?;
            match msg.into_input() {
                Ok(input) => {
                    input.validate().map_err(BadMessage::Invalid)?;
                    Ok(Some(match input {
                        InputEvent::Key(k) => ClientMessage::Key(k),
                        InputEvent::Pointer(p) => ClientMessage::Pointer(p),
                        InputEvent::Wheel(w) => ClientMessage::Wheel(w),
                    }))
                }
                Err(ClientMessage::Resize { width, height })
                    if !(1..=65535).contains(&width) || !(1..=65535).contains(&height) =>
                {
                    Err(BadMessage::Invalid(format!(
                        "resize to {width}x{height}: sizes are 1 to 65535"
                    )))
                }
                Err(msg) => Ok(Some(msg)),
            }
        }
        Message::Binary(data) if data.len() > MAX_CLIENT_MESSAGE => {
            Err(BadMessage::TooLarge(data.len()))
        }
        Message::Binary(_) => Err(BadMessage::Binary),
        Message::Ping(_) | Message::Pong(_) | Message::Close(_) => Ok(None),
    }
}

/// Whether a browser's `Origin` is this server (its `Host`). Requests without an `Origin`
/// (non-browser clients) pass; this stops other web pages from reading the stream through
/// the visitor's browser.
pub fn origin_matches(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let (Ok(origin), Some(Ok(host))) = (
        origin.to_str(),
        headers.get(header::HOST).map(HeaderValue::to_str),
    ) else {
        return false;
    };
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|o| o.eq_ignore_ascii_case(host))
}

#[derive(Debug, Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// Whether a `Host` header value names this machine's loopback interface or the listening
/// address: `localhost`, `127.0.0.0/8`, `[::1]` or the listen IP, with any port. Without a
/// token this is what stops DNS rebinding: a page on `evil.example` whose name now resolves to
/// 127.0.0.1 still sends `Host: evil.example`.
pub fn host_allowed(host: &str, listen: SocketAddr) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((v6, tail)) if tail.is_empty() || tail.starts_with(':') => v6,
            _ => return false,
        },
        None => host.rsplit_once(':').map_or(host, |(name, _port)| name),
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match name.parse::<IpAddr>() {
        Ok(ip) => {
            let ip = ip.to_canonical();
            ip.is_loopback() || ip == listen.ip().to_canonical()
        }
        Err(_) => false,
    }
}

/// A header's value for a log line, as sent (`evil.example:8080`), or what stands in for it:
/// `(none)` when it is missing, `(not text)` when it is not visible ASCII.
pub fn header_text(value: Option<&HeaderValue>) -> &str {
    match value.map(HeaderValue::to_str) {
        None => "(none)",
        Some(Ok(text)) => text,
        Some(Err(_)) => "(not text)",
    }
}

/// Without a token, refuses requests whose `Host` is not loopback or the listen address.
async fn check_host(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if st.token.is_none() {
        let host = req.headers().get(header::HOST).map(HeaderValue::to_str);
        if !matches!(host, Some(Ok(h)) if host_allowed(h, st.listen)) {
            tracing::warn!(
                "refused a request for a foreign Host: {}",
                header_text(req.headers().get(header::HOST))
            );
            return (
                StatusCode::FORBIDDEN,
                "this server answers only to localhost without a token\n",
            )
                .into_response();
        }
    }
    next.run(req).await
}

/// The routes: `/` (the page), its scripts (`/client.js`, `/input.js`, `/yuv.js`,
/// `/yuv-worker.js`), `/ws` (the stream), behind the `Host` check.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/client.js", get(client_js))
        .route("/input.js", get(input_js))
        .route("/yuv.js", get(|| async { script(YUV_JS) }))
        .route("/yuv-worker.js", get(|| async { script(YUV_WORKER_JS) }))
        .route("/ws", get(stream))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            check_host,
        ))
        .with_state(state)
}

fn forbidden() -> Response {
    (StatusCode::FORBIDDEN, "missing or wrong token\n").into_response()
}

async fn index(State(st): State<Arc<AppState>>, Query(q): Query<TokenQuery>) -> Response {
    if st.remote.role(q.token.as_deref()).is_none() {
        return forbidden();
    }
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            // The token is in the URL: keep it out of Referer headers.
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (
                header::CONTENT_SECURITY_POLICY,
                // `data:` images: the pointer's shape (a CSS cursor) and the favicon.
                "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
                 frame-ancestors 'none'",
            ),
        ],
        INDEX_HTML,
    )
        .into_response()
}

async fn client_js() -> Response {
    script(CLIENT_JS)
}

async fn input_js() -> Response {
    script(INPUT_JS)
}

fn script(body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

async fn stream(
    State(st): State<Arc<AppState>>,
    Query(q): Query<TokenQuery>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some(role) = st.remote.role(q.token.as_deref()) else {
        tracing::warn!("refused a WebSocket with a missing or wrong token");
        return forbidden();
    };
    if !origin_matches(&headers) {
        tracing::warn!(
            "refused a WebSocket from a foreign origin: {}",
            header_text(headers.get(header::ORIGIN))
        );
        return (StatusCode::FORBIDDEN, "foreign origin\n").into_response();
    }
    upgrade
        .max_message_size(MAX_PASTE_MESSAGE)
        .max_frame_size(MAX_PASTE_MESSAGE)
        // tungstenite requires it above its 128 KiB write buffer.
        .max_write_buffer_size(st.limits.max_write_buffer.max(256 << 10))
        .on_upgrade(move |socket| viewer_session(st, socket, role))
}

/// Close frame for a failed WebSocket read: 1009 for a message or frame over the size limit,
/// 1007 for text that is not UTF-8, 1002 for a protocol violation. `None`: the connection
/// itself failed (reset, closed), there is no one to tell.
pub fn close_for_read_error(err: axum::Error) -> Option<CloseFrame> {
    let err = err.into_inner().downcast::<tungstenite::Error>().ok()?;
    let (code, reason) = match *err {
        tungstenite::Error::Capacity(e) => (close_code::SIZE, e.to_string()),
        tungstenite::Error::Utf8(_) => (close_code::INVALID, "text is not UTF-8".to_string()),
        // The peer is gone: nobody to send a close frame to.
        tungstenite::Error::Protocol(
            tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
        ) => return None,
        tungstenite::Error::Protocol(e) => (close_code::PROTOCOL, e.to_string()),
        _ => return None,
    };
    Some(close_frame(code, &reason))
}

/// A close frame; the reason is cut to fit the 123 bytes a close frame allows.
fn close_frame(code: u16, reason: &str) -> CloseFrame {
    let mut cut = reason.len().min(120);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    CloseFrame {
        code,
        reason: reason[..cut].to_string().into(),
    }
}

/// How long the closing handshake may take once a session ends (the peer may not read).
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// One viewer: a writer draining its queue into the socket (and pinging the client), and a
/// reader validating what the client sends, until either side ends. A bad message closes
/// this connection only.
async fn viewer_session(st: Arc<AppState>, socket: WebSocket, role: Role) {
    let limits = st.limits;
    let viewer = st.hub.join();
    let session = st.remote.session_id();
    let mut watcher = st.remote.watch();
    viewer.reply(Message::Text(st.remote.role_message(role).into()));
    let (mut sink, mut source) = socket.split();
    let started = Instant::now();
    // Milliseconds since `started` at which the client last answered a ping.
    let last_heard = AtomicU64::new(0);
    let writer = async {
        let mut keepalive = tokio::time::interval_at(
            tokio::time::Instant::now() + limits.ping_interval,
            limits.ping_interval,
        );
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let msg = tokio::select! {
                msg = viewer.next() => match msg {
                    Some(msg) => msg,
                    None => return Some(close_frame(close_code::AWAY, &st.hub.close_reason())),
                },
                _ = keepalive.tick() => {
                    let heard = Duration::from_millis(last_heard.load(Ordering::Relaxed));
                    if started.elapsed().saturating_sub(heard) >= limits.idle_timeout {
                        tracing::warn!("closing a viewer connection: silent for {:?}", limits.idle_timeout);
                        return Some(close_frame(close_code::POLICY, "no answer to pings"));
                    }
                    Message::Ping(Default::default())
                }
            };
            match tokio::time::timeout(limits.write_timeout, sink.send(msg)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::debug!("a viewer connection failed: {e}");
                    return None;
                }
                Err(_) => {
                    tracing::warn!(
                        "dropping a viewer that read nothing for {:?}",
                        limits.write_timeout
                    );
                    return None;
                }
            }
        }
    };
    let reader = async {
        let mut last_refresh: Option<Instant> = None;
        let mut pings = PingBudget::new(&limits);
        while let Some(received) = source.next().await {
            let msg = match received {
                Ok(msg) => msg,
                Err(e) => {
                    let close = close_for_read_error(e);
                    if let Some(c) = &close {
                        tracing::warn!("closing a viewer connection ({}): {}", c.code, c.reason);
                    }
                    return close;
                }
            };
            // Only a pong answers the keepalive: a client that pings or talks but never reads
            // is not answering.
            if matches!(msg, Message::Pong(_)) {
                let now_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                last_heard.store(now_ms, Ordering::Relaxed);
            }
            // tungstenite has queued the pong already; a flood would grow its write buffer.
            if matches!(msg, Message::Ping(_)) && !pings.take() {
                tracing::warn!("closing a viewer connection: ping flood");
                return Some(close_frame(close_code::POLICY, "too many pings"));
            }
            match parse_client_message(&msg) {
                Ok(Some(ClientMessage::Refresh)) => {
                    if last_refresh.is_none_or(|t| t.elapsed() >= REFRESH_INTERVAL) {
                        last_refresh = Some(Instant::now());
                        viewer.request_refresh();
                    }
                }
                Ok(Some(ClientMessage::Ping { t })) => {
                    let pong = serde_json::json!({
                        "type": "pong",
                        "t": t,
                        "server": epoch_ms(SystemTime::now()),
                    });
                    viewer.reply(Message::Text(pong.to_string().into()));
                }
                Ok(Some(ClientMessage::Visibility { hidden })) => {
                    // Back in view: a full picture at once (within the refresh rate limit).
                    if watcher.set_visible(!hidden)
                        && !hidden
                        && last_refresh.is_none_or(|t| t.elapsed() >= REFRESH_INTERVAL)
                    {
                        last_refresh = Some(Instant::now());
                        viewer.request_refresh();
                    }
                }
                Ok(Some(ClientMessage::Clipboard { text })) => {
                    st.remote.paste(role, &text);
                }
                Ok(Some(ClientMessage::Resize { width, height })) => {
                    st.remote.resize(role, width, height);
                }
                Ok(Some(msg)) => {
                    if let Ok(input) = msg.into_input() {
                        st.remote.input(session, role, input);
                    }
                }
                Ok(None) => {}
                Err(bad) => {
                    tracing::warn!("closing a viewer connection: {bad}");
                    let code = match bad {
                        BadMessage::TooLarge(_) => close_code::SIZE,
                        BadMessage::Binary => close_code::UNSUPPORTED,
                        BadMessage::Invalid(_) => close_code::POLICY,
                    };
                    return Some(close_frame(code, &bad.to_string()));
                }
            }
        }
        None
    };
    let updates = st.remote.forward_updates(role, |msg| {
        viewer.reply(Message::Text(msg.into()));
    });
    let close = tokio::select! {
        close = writer => close,
        close = reader => close,
        () = updates => None,
    };
    st.remote.leave(session);
    // Bounded: a client that does not read would otherwise hold the session forever.
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        if let Some(frame) = close {
            let _ = sink.send(Message::Close(Some(frame))).await;
        }
        let _ = sink.close().await;
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::super::hub::{Hello, HubConfig};
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};

    #[test]
    fn messages_are_validated() {
        let text = |s: &str| Message::Text(s.into());
        assert_eq!(
            parse_client_message(&text(r#"{"type":"refresh"}"#)),
            Ok(Some(ClientMessage::Refresh))
        );
        assert_eq!(
            parse_client_message(&text(r#"{"type":"ping","t":12.5}"#)),
            Ok(Some(ClientMessage::Ping { t: 12.5 }))
        );
        assert_eq!(
            parse_client_message(&text(r#"{"type":"resize","width":1280,"height":720}"#)),
            Ok(Some(ClientMessage::Resize {
                width: 1280,
                height: 720
            }))
        );
        for bad in [
            r#"{"type":"resize","width":0,"height":720}"#,
            r#"{"type":"resize","width":1280,"height":65536}"#,
            r#"{"type":"resize","width":-1,"height":720}"#,
            r#"{"type":"resize","width":12.5,"height":720}"#,
            r#"{"type":"resize","width":"1280","height":720}"#,
            r#"{"type":"resize","width":1280}"#,
            "",
            "garbage",
            "{}",
            r#"{"type":"ping"}"#,
            r#"{"type":"ping","t":"x"}"#,
            r#"{"type":"format_disk"}"#,
            r#"["refresh"]"#,
            r#"{"type":"key","key":"","down":true}"#,
            r#"{"type":"key","key":"a","down":true,"extra":1}"#,
            r#"{"type":"pointer","x":1e300,"y":0}"#,
        ] {
            assert!(
                matches!(
                    parse_client_message(&text(bad)),
                    Err(BadMessage::Invalid(_))
                ),
                "{bad}"
            );
        }
        let big = format!(r#"{{"type":"refresh","pad":"{}"}}"#, "x".repeat(5000));
        assert!(matches!(
            parse_client_message(&text(&big)),
            Err(BadMessage::TooLarge(_))
        ));
        // A paste may be larger: up to MAX_CLIPBOARD bytes of text, escaped as JSON.
        let paste = |t: &str| serde_json::json!({"type": "clipboard", "text": t}).to_string();
        let most = "é\n\"".repeat(MAX_CLIPBOARD / 4);
        assert_eq!(
            parse_client_message(&text(&paste(&most))),
            Ok(Some(ClientMessage::Clipboard { text: most }))
        );
        for over in [
            "x".repeat(MAX_CLIPBOARD + 1),
            "\"".repeat(MAX_PASTE_MESSAGE / 2),
        ] {
            assert!(matches!(
                parse_client_message(&text(&paste(&over))),
                Err(BadMessage::TooLarge(_))
            ));
        }
        // Not a paste (type or text wrong) over MAX_CLIENT_MESSAGE: too large.
        for not_paste in [
            serde_json::json!({"type": "clipboard", "text": 5, "pad": "x".repeat(5000)}),
            serde_json::json!({"type": "key", "text": "x".repeat(5000)}),
        ] {
            assert!(matches!(
                parse_client_message(&text(&not_paste.to_string())),
                Err(BadMessage::TooLarge(_))
            ));
        }
        assert_eq!(
            parse_client_message(&Message::Binary(vec![1u8, 2, 3].into())),
            Err(BadMessage::Binary)
        );
        assert_eq!(
            parse_client_message(&Message::Ping(Default::default())),
            Ok(None)
        );
    }

    #[test]
    fn origins_must_be_this_server() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "127.0.0.1:8080".parse().unwrap());
        assert!(origin_matches(&h), "no Origin: not a browser");
        h.insert(header::ORIGIN, "http://127.0.0.1:8080".parse().unwrap());
        assert!(origin_matches(&h));
        for bad in [
            "http://evil.example",
            "null",
            "http://127.0.0.1:8081",
            "127.0.0.1:8080",
        ] {
            h.insert(header::ORIGIN, bad.parse().unwrap());
            assert!(!origin_matches(&h), "{bad}");
        }
    }

    struct Server {
        addr: std::net::SocketAddr,
        hub: Arc<Hub>,
        refreshes: Arc<AtomicUsize>,
    }

    async fn server(token: Option<&str>) -> Server {
        server_with(token, Limits::default()).await
    }

    /// A server on port 0 (the bound address read back), served by the real accept loop.
    async fn server_with(token: Option<&str>, limits: Limits) -> Server {
        let refreshes = Arc::new(AtomicUsize::new(0));
        let r = Arc::clone(&refreshes);
        let hub = Hub::new(HubConfig::default(), move || {
            r.fetch_add(1, Ordering::SeqCst);
        });
        hub.set_format(&Hello {
            width: 64,
            height: 64,
            codec: pixelflux::Codec::Jpeg,
            fullcolor: false,
            stripe_height: 64,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(AppState {
            hub: Arc::clone(&hub),
            token: token.map(str::to_string),
            remote: Remote {
                control_token: token.map(str::to_string),
                ..Default::default()
            },
            listen: addr,
            limits,
        });
        tokio::spawn(super::super::server::serve(
            listener,
            router(state),
            limits,
            None,
            std::future::pending(),
            Duration::from_secs(1),
        ));
        Server {
            addr,
            hub,
            refreshes,
        }
    }

    /// Every wait in these tests ends by this deadline (a hang is a failure).
    const DEADLINE: Duration = Duration::from_secs(10);

    /// Status code of a plain GET with this `Host`; fails on a connection closed without an
    /// answer or no answer by the deadline.
    async fn get_status_host(addr: std::net::SocketAddr, path: &str, host: &str) -> u16 {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(DEADLINE, s.read_to_end(&mut out))
            .await
            .expect("the server answers by the deadline")
            .expect("the connection is not reset");
        let out = String::from_utf8_lossy(&out);
        let status = out.split_whitespace().nth(1);
        status
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no HTTP answer: {out:?}"))
    }

    async fn get_status(addr: std::net::SocketAddr, path: &str) -> u16 {
        get_status_host(addr, path, &addr.to_string()).await
    }

    type Ws = tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >;

    async fn connect(addr: std::net::SocketAddr, query: &str) -> Result<Ws, tungstenite::Error> {
        tokio_tungstenite::connect_async(format!("ws://{addr}/ws{query}"))
            .await
            .map(|(ws, _)| ws)
    }

    /// What a client saw next: a message, the end of the connection, or nothing by the deadline.
    #[derive(Debug)]
    enum Next {
        Msg(tungstenite::Message),
        Ended,
        Silent,
    }

    async fn next(ws: &mut Ws) -> Next {
        match tokio::time::timeout(DEADLINE, ws.next()).await {
            Err(_) => Next::Silent,
            Ok(Some(Ok(m))) => Next::Msg(m),
            Ok(None | Some(Err(_))) => Next::Ended,
        }
    }

    async fn recv(ws: &mut Ws) -> tungstenite::Message {
        match next(ws).await {
            Next::Msg(m) => m,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    /// Reads until the server closes: its close code, or a failure naming what came instead.
    async fn close_code_of(ws: &mut Ws) -> u16 {
        loop {
            match next(ws).await {
                Next::Msg(tungstenite::Message::Close(Some(frame))) => return frame.code.into(),
                Next::Msg(tungstenite::Message::Close(None)) => {
                    panic!("a close frame with no code")
                }
                Next::Msg(_) => {}
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    }

    fn http_status(err: tungstenite::Error) -> u16 {
        match err {
            tungstenite::Error::Http(resp) => resp.status().as_u16(),
            other => panic!("expected an HTTP refusal, got {other}"),
        }
    }

    /// Waits for `cond` with a deadline; false if it never held.
    async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
        let t0 = Instant::now();
        while !cond() {
            if t0.elapsed() > DEADLINE {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    /// A WebSocket spoken by hand over TCP, for frames a well-behaved client library will not
    /// send (bad UTF-8, unmasked, reserved opcodes) and for clients that never read.
    mod raw {
        use super::*;
        use tokio::net::TcpStream;

        pub async fn upgrade(addr: std::net::SocketAddr) -> TcpStream {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let req = format!(
                "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            );
            s.write_all(req.as_bytes()).await.unwrap();
            // The response head, byte by byte so no frame bytes are consumed.
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                let mut b = [0u8; 1];
                let n = tokio::time::timeout(DEADLINE, s.read(&mut b))
                    .await
                    .expect("an upgrade answer")
                    .unwrap();
                assert_eq!(n, 1, "closed during the handshake");
                head.push(b[0]);
            }
            assert!(
                head.starts_with(b"HTTP/1.1 101"),
                "{}",
                String::from_utf8_lossy(&head)
            );
            s
        }

        /// A client frame: FIN set, masked with a fixed key unless `masked` is false.
        pub fn frame(opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
            let mut f = vec![0x80 | opcode];
            let mask_bit = if masked { 0x80 } else { 0 };
            match payload.len() {
                n @ 0..=125 => f.push(mask_bit | n as u8),
                n @ 126..=65535 => {
                    f.push(mask_bit | 126);
                    f.extend_from_slice(&(n as u16).to_be_bytes());
                }
                n => {
                    f.push(mask_bit | 127);
                    f.extend_from_slice(&(n as u64).to_be_bytes());
                }
            }
            let key = [0x12u8, 0x34, 0x56, 0x78];
            if masked {
                f.extend_from_slice(&key);
                f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
            } else {
                f.extend_from_slice(payload);
            }
            f
        }

        /// How a raw connection ended, as seen by reading everything the server sent.
        #[derive(Debug, PartialEq, Eq)]
        pub enum End {
            /// A close frame with this code.
            Code(u16),
            /// A close frame without a code.
            NoCode,
            /// EOF or reset with no close frame.
            Dropped,
            /// Nothing by the deadline.
            Silent,
        }

        /// Reads server frames until the connection ends; also counts pongs (opcode 0xA) and
        /// pings (0x9) seen on the way.
        pub async fn read_to_end(s: &mut TcpStream) -> (End, usize, usize) {
            let (mut pongs, mut pings) = (0, 0);
            let mut buf = Vec::new();
            loop {
                // Parse whole frames out of `buf`.
                while buf.len() >= 2 {
                    let (opcode, len7) = (buf[0] & 0x0f, usize::from(buf[1] & 0x7f));
                    let (hdr, len) = match len7 {
                        126 if buf.len() >= 4 => {
                            (4, usize::from(u16::from_be_bytes([buf[2], buf[3]])))
                        }
                        127 if buf.len() >= 10 => (
                            10,
                            u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize,
                        ),
                        126 | 127 => break,
                        n => (2, n),
                    };
                    if buf.len() < hdr + len {
                        break;
                    }
                    let payload = buf[hdr..hdr + len].to_vec();
                    buf.drain(..hdr + len);
                    match opcode {
                        0x8 if payload.len() >= 2 => {
                            return (
                                End::Code(u16::from_be_bytes([payload[0], payload[1]])),
                                pongs,
                                pings,
                            )
                        }
                        0x8 => return (End::NoCode, pongs, pings),
                        0x9 => pings += 1,
                        0xA => pongs += 1,
                        _ => {}
                    }
                }
                let mut chunk = [0u8; 65536];
                match tokio::time::timeout(DEADLINE, s.read(&mut chunk)).await {
                    Err(_) => return (End::Silent, pongs, pings),
                    Ok(Ok(0) | Err(_)) => return (End::Dropped, pongs, pings),
                    Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
                }
            }
        }
    }

    #[tokio::test]
    async fn the_token_guards_page_and_stream() {
        let srv = server(Some("s3cret")).await;
        assert_eq!(get_status(srv.addr, "/").await, 403);
        assert_eq!(get_status(srv.addr, "/?token=wrong").await, 403);
        assert_eq!(get_status(srv.addr, "/?token=s3cret").await, 200);
        assert_eq!(get_status(srv.addr, "/client.js").await, 200);
        assert_eq!(get_status(srv.addr, "/yuv.js").await, 200);
        assert_eq!(get_status(srv.addr, "/yuv-worker.js").await, 200);
        assert_eq!(http_status(connect(srv.addr, "").await.unwrap_err()), 403);
        assert_eq!(
            http_status(connect(srv.addr, "?token=s3cre").await.unwrap_err()),
            403
        );
        let mut ws = connect(srv.addr, "?token=s3cret").await.unwrap();
        let hello = recv(&mut ws).await;
        assert!(hello.to_text().unwrap().contains("\"hello\""));
    }

    #[tokio::test]
    async fn the_printed_url_percent_encodes_the_token() {
        let addr: std::net::SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(
            super::super::url("http", addr, Some("a+b&c d")),
            "http://127.0.0.1:8080/?token=a%2Bb%26c+d"
        );
        assert_eq!(
            super::super::url("http", addr, None),
            "http://127.0.0.1:8080/"
        );
        // And the server accepts exactly that URL.
        let srv = server(Some("a+b&c d")).await;
        let url = super::super::url("http", srv.addr, Some("a+b&c d"));
        let path = url.split_once(&srv.addr.to_string()).unwrap().1;
        assert_eq!(get_status(srv.addr, path).await, 200);
        assert_eq!(get_status(srv.addr, "/?token=a+b&c").await, 403);
    }

    #[tokio::test]
    async fn a_foreign_origin_is_refused() {
        let srv = server(None).await;
        let mut req = format!("ws://{}/ws", srv.addr)
            .into_client_request()
            .unwrap();
        req.headers_mut()
            .insert(header::ORIGIN, "http://evil.example".parse().unwrap());
        let err = tokio_tungstenite::connect_async(req).await.unwrap_err();
        assert_eq!(http_status(err), 403);
        let mut req = format!("ws://{}/ws", srv.addr)
            .into_client_request()
            .unwrap();
        let own = format!("http://{}", srv.addr);
        req.headers_mut()
            .insert(header::ORIGIN, own.parse().unwrap());
        assert!(tokio_tungstenite::connect_async(req).await.is_ok());
    }

    /// A refused `Host` or `Origin` is logged as sent, not as `Some(Ok("evil.example:8080"))`.
    #[test]
    fn header_values_are_logged_plainly() {
        let value = HeaderValue::from_static("evil.example:8080");
        assert_eq!(header_text(Some(&value)), "evil.example:8080");
        assert_eq!(header_text(None), "(none)");
        let binary = HeaderValue::from_bytes(b"caf\xe9").unwrap();
        assert_eq!(header_text(Some(&binary)), "(not text)");
    }

    #[test]
    fn only_loopback_hosts_are_allowed() {
        let listen: std::net::SocketAddr = "127.0.0.1:8080".parse().unwrap();
        for good in [
            "localhost",
            "LOCALHOST:8080",
            "localhost.:8080",
            "127.0.0.1:8080",
            "127.1.2.3",
            "[::1]:8080",
            "[::1]",
            "[::ffff:127.0.0.1]:8080",
        ] {
            assert!(host_allowed(good, listen), "{good}");
        }
        for bad in [
            "evil.example:8080",
            "evil.example",
            "localhost.evil.example",
            "10.0.0.1:8080",
            "[::2]:8080",
            "[::1]x",
            "",
            "127.0.0.1.evil.example",
        ] {
            assert!(!host_allowed(bad, listen), "{bad}");
        }
        // The listen address itself passes even when it is not loopback.
        let lan: std::net::SocketAddr = "192.168.1.5:8080".parse().unwrap();
        assert!(host_allowed("192.168.1.5:8080", lan));
        assert!(!host_allowed("192.168.1.6:8080", lan));
    }

    #[tokio::test]
    async fn dns_rebinding_is_refused_without_a_token() {
        let srv = server(None).await;
        let port = srv.addr.port();
        let evil = format!("evil.example:{port}");
        assert_eq!(get_status_host(srv.addr, "/", &evil).await, 403);
        assert_eq!(get_status_host(srv.addr, "/client.js", &evil).await, 403);
        assert_eq!(
            get_status_host(srv.addr, "/", &format!("localhost:{port}")).await,
            200
        );
        assert_eq!(
            get_status_host(srv.addr, "/", &format!("[::1]:{port}")).await,
            200
        );
        // The upgrade with a matching Origin (what a rebinding page sends) is refused too.
        let mut req = format!("ws://{}/ws", srv.addr)
            .into_client_request()
            .unwrap();
        req.headers_mut()
            .insert(header::HOST, evil.parse().unwrap());
        req.headers_mut()
            .insert(header::ORIGIN, format!("http://{evil}").parse().unwrap());
        let err = tokio_tungstenite::connect_async(req).await.unwrap_err();
        assert_eq!(http_status(err), 403);
        // With a token the Host is not checked: a rebinding page cannot know the token.
        let srv = server(Some("s3cret")).await;
        let evil = format!("evil.example:{}", srv.addr.port());
        assert_eq!(
            get_status_host(srv.addr, "/?token=s3cret", &evil).await,
            200
        );
    }

    #[tokio::test]
    async fn bad_messages_close_only_that_connection_with_their_code() {
        let srv = server(None).await;
        let mut good = connect(srv.addr, "").await.unwrap();
        assert!(recv(&mut good).await.is_text()); // hello
        let role = recv(&mut good).await;
        assert!(role.to_text().unwrap().contains("\"role\""), "{role:?}");
        let big_text = raw::frame(0x1, "x".repeat(MAX_CLIENT_MESSAGE + 1).as_bytes(), true);
        let mut big_fragmented = raw::frame(0x1, &[b'x'; 3000], true);
        big_fragmented[0] &= 0x7f; // not FIN: a continuation follows
        big_fragmented.extend(raw::frame(0x0, &[b'x'; 3000], true));
        for (label, bytes, code) in [
            ("not JSON", raw::frame(0x1, b"not json", true), 1008u16),
            (
                "unknown type",
                raw::frame(0x1, br#"{"type":"nope"}"#, true),
                1008,
            ),
            ("binary", raw::frame(0x2, &[0u8; 16], true), 1003),
            (
                "input out of range",
                raw::frame(0x1, br#"{"type":"pointer","x":-5,"y":0}"#, true),
                1008,
            ),
            (
                "too many wheel clicks",
                raw::frame(0x1, br#"{"type":"wheel","x":0,"y":0,"dy":1000}"#, true),
                1008,
            ),
            (
                "a key without down",
                raw::frame(0x1, br#"{"type":"key","key":"a"}"#, true),
                1008,
            ),
            (
                "invalid UTF-8",
                raw::frame(0x1, &[b'{', 0xff, 0xfe, b'}'], true),
                1007,
            ),
            ("one frame over the limit", big_text, 1009),
            (
                "a message over the limit in two frames",
                big_fragmented,
                1009,
            ),
            (
                "unmasked",
                raw::frame(0x1, br#"{"type":"refresh"}"#, false),
                1002,
            ),
            ("reserved opcode", raw::frame(0x3, b"", true), 1002),
            (
                "reserved bits",
                {
                    let mut f = raw::frame(0x1, br#"{"type":"refresh"}"#, true);
                    f[0] |= 0x40;
                    f
                },
                1002,
            ),
        ] {
            let mut bad = raw::upgrade(srv.addr).await;
            bad.write_all(&bytes).await.unwrap();
            let (end, _, _) = raw::read_to_end(&mut bad).await;
            assert_eq!(end, raw::End::Code(code), "{label}");
        }
        // The good one still works: a ping is answered, a refresh is passed on.
        good.send(tungstenite::Message::text(r#"{"type":"ping","t":42}"#))
            .await
            .unwrap();
        let pong: serde_json::Value =
            serde_json::from_str(recv(&mut good).await.to_text().unwrap()).unwrap();
        assert_eq!(pong["type"], "pong");
        assert_eq!(pong["t"], 42.0);
        assert!(pong["server"].as_f64().unwrap() > 1.6e12);
        let before = srv.refreshes.load(Ordering::SeqCst);
        good.send(tungstenite::Message::text(r#"{"type":"refresh"}"#))
            .await
            .unwrap();
        assert!(eventually(|| srv.refreshes.load(Ordering::SeqCst) > before).await);
        assert_eq!(srv.refreshes.load(Ordering::SeqCst), before + 1);
        assert!(
            eventually(|| srv.hub.viewer_count() == 1).await,
            "only the good viewer is left: {}",
            srv.hub.viewer_count()
        );
        // And the library client sees the same code for an oversized message.
        let mut big = connect(srv.addr, "").await.unwrap();
        assert!(recv(&mut big).await.is_text());
        big.send(tungstenite::Message::text(
            "x".repeat(MAX_CLIENT_MESSAGE + 1),
        ))
        .await
        .unwrap();
        assert_eq!(close_code_of(&mut big).await, 1009);
    }

    #[tokio::test]
    async fn a_ping_flood_from_a_client_that_never_reads_is_closed() {
        let limits = Limits::default();
        let srv = server_with(None, limits).await;
        let mut flood = raw::upgrade(srv.addr).await;
        assert!(eventually(|| srv.hub.viewer_count() == 1).await);
        // 5,000 pings of 125 bytes, never reading: each would queue a 127-byte pong.
        let ping = raw::frame(0x9, &[b'p'; 125], true);
        let mut sent = 0;
        for _ in 0..5000 {
            if flood.write_all(&ping).await.is_err() {
                break; // the server closed it under us
            }
            sent += 1;
        }
        assert!(
            eventually(|| srv.hub.viewer_count() == 0).await,
            "the flooding viewer was dropped"
        );
        let (end, pongs, _) = raw::read_to_end(&mut flood).await;
        assert!(
            matches!(end, raw::End::Code(1008) | raw::End::Dropped),
            "{end:?} after {sent} pings"
        );
        let burst = limits.ping_burst as usize;
        assert!(pongs <= burst + 1, "{pongs} pongs queued for {sent} pings");
    }

    #[tokio::test]
    async fn a_silent_viewer_is_pinged_then_closed_and_an_answering_one_stays() {
        let limits = Limits {
            ping_interval: Duration::from_millis(200),
            idle_timeout: Duration::from_millis(1500),
            ..Limits::default()
        };
        let srv = server_with(None, limits).await;
        // Reads but never answers pings.
        let mut silent = raw::upgrade(srv.addr).await;
        let (end, _, pings) = raw::read_to_end(&mut silent).await;
        assert_eq!(end, raw::End::Code(1008));
        assert!(pings >= 1, "it was pinged before being closed");
        // tungstenite answers pings while it reads: still open after several idle timeouts.
        let mut live = connect(srv.addr, "").await.unwrap();
        let t0 = Instant::now();
        let mut pings = 0;
        while t0.elapsed() < 3 * limits.idle_timeout {
            match tokio::time::timeout(Duration::from_millis(100), live.next()).await {
                Err(_) => {}
                Ok(Some(Ok(tungstenite::Message::Ping(_)))) => pings += 1,
                Ok(Some(Ok(tungstenite::Message::Close(c)))) => panic!("closed: {c:?}"),
                Ok(Some(Ok(_))) => {}
                Ok(other) => panic!("ended: {other:?}"),
            }
        }
        assert!(pings >= 2, "pinged {pings} times");
        assert_eq!(srv.hub.viewer_count(), 1);
    }

    #[tokio::test]
    async fn a_half_sent_request_is_closed() {
        let limits = Limits {
            header_timeout: Duration::from_millis(500),
            ..Limits::default()
        };
        let srv = server_with(None, limits).await;
        let mut s = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1")
            .await
            .unwrap();
        let mut out = Vec::new();
        let read = tokio::time::timeout(DEADLINE, s.read_to_end(&mut out)).await;
        assert!(
            read.is_ok(),
            "still open after {DEADLINE:?}: not closed, silent"
        );
        // Closed, perhaps after a 408; never a page.
        assert!(!String::from_utf8_lossy(&out).contains("200 OK"));
    }

    #[tokio::test]
    async fn one_viewer_flooding_refreshes_costs_the_others_one_refresh_a_second() {
        let srv = server(None).await;
        let mut other = connect(srv.addr, "").await.unwrap();
        assert!(recv(&mut other).await.is_text()); // hello
        let mut flooder = connect(srv.addr, "").await.unwrap();
        assert!(recv(&mut flooder).await.is_text());
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let t0 = Instant::now();
        let before = srv.refreshes.load(Ordering::SeqCst);
        // 2.5 s of refresh requests and hidden/shown flips every 10 ms, and a new connection
        // every 250 ms.
        let mut joined = Vec::new();
        for i in 0..250 {
            let msg = match i % 3 {
                0 => r#"{"type":"refresh"}"#,
                1 => r#"{"type":"visibility","hidden":true}"#,
                _ => r#"{"type":"visibility","hidden":false}"#,
            };
            flooder.send(tungstenite::Message::text(msg)).await.unwrap();
            if i % 25 == 0 {
                joined.push(connect(srv.addr, "").await.unwrap());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let took = t0.elapsed();
        let made = srv.refreshes.load(Ordering::SeqCst) - before;
        let most = usize::try_from(took.as_secs()).unwrap_or(usize::MAX) + 2;
        assert!(made >= 1 && made <= most, "{made} refreshes in {took:?}");
        drop(joined);
    }

    #[tokio::test]
    async fn connections_over_the_cap_get_503_and_slots_come_back() {
        let limits = Limits {
            max_connections: 3,
            ..Limits::default()
        };
        let srv = server_with(None, limits).await;
        // A WebSocket and two idle sockets take the three slots.
        let mut ws = connect(srv.addr, "").await.unwrap();
        assert!(recv(&mut ws).await.is_text());
        let idle1 = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
        let _idle2 = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
        // Accepting is asynchronous: wait until the fourth connection is refused.
        let mut refused = false;
        let t0 = Instant::now();
        while !refused && t0.elapsed() < DEADLINE {
            refused = get_status(srv.addr, "/").await == 503;
        }
        assert!(refused, "a fourth connection was not refused");
        // Closing the WebSocket frees its slot (the permit travels with the upgraded socket).
        ws.close(None).await.unwrap();
        drop(ws);
        drop(idle1);
        let mut served = false;
        let t0 = Instant::now();
        while !served && t0.elapsed() < DEADLINE {
            served = get_status(srv.addr, "/").await == 200;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(served, "no slot came back after closing two connections");
    }
}
