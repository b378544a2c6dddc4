//! The HTTP side of `serve`: the embedded page, the WebSocket stream, the token and origin
//! checks, and validation of what clients send.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::hub::{epoch_ms, Hub};

const INDEX_HTML: &str = include_str!("../../../../web/index.html");
const CLIENT_JS: &str = include_str!("../../../../web/client.js");

/// Largest message a client may send; anything bigger closes its connection.
pub const MAX_CLIENT_MESSAGE: usize = 4096;

/// A client may ask for a full refresh at most this often (each one re-encodes everything).
const REFRESH_INTERVAL: Duration = Duration::from_millis(250);

/// What the routes share.
pub struct AppState {
    /// The fan-out point.
    pub hub: Arc<Hub>,
    /// The token a client must present (`?token=`), if one is set.
    pub token: Option<String>,
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
}

/// Why a client message was refused (the connection is then closed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadMessage {
    /// Over [`MAX_CLIENT_MESSAGE`] bytes.
    #[error("message of {0} bytes is over the {MAX_CLIENT_MESSAGE}-byte limit")]
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
            if text.len() > MAX_CLIENT_MESSAGE {
                return Err(BadMessage::TooLarge(text.len()));
            }
            let value: serde_json::Value = serde_json::from_str(text.as_str())
                .map_err(|e| BadMessage::Invalid(e.to_string()))?;
            // Objects only: serde would also take `["refresh"]` for a tagged enum.
            if !value.is_object() {
                return Err(BadMessage::Invalid("not a JSON object".into()));
            }
            serde_json::from_value(value)
                .map(Some)
                .map_err(|e| BadMessage::Invalid(e.to_string()))
        }
        Message::Binary(data) if data.len() > MAX_CLIENT_MESSAGE => {
            Err(BadMessage::TooLarge(data.len()))
        }
        Message::Binary(_) => Err(BadMessage::Binary),
        Message::Ping(_) | Message::Pong(_) | Message::Close(_) => Ok(None),
    }
}

/// Whether `given` is the expected token, compared in constant time (for equal lengths).
/// With no token configured every request passes.
pub fn token_matches(expected: Option<&str>, given: Option<&str>) -> bool {
    match expected {
        None => true,
        Some(expected) => {
            given.is_some_and(|given| bool::from(expected.as_bytes().ct_eq(given.as_bytes())))
        }
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

/// The routes: `/` (the page), `/client.js`, `/ws` (the stream).
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/client.js", get(client_js))
        .route("/ws", get(stream))
        .with_state(state)
}

fn forbidden() -> Response {
    (StatusCode::FORBIDDEN, "missing or wrong token\n").into_response()
}

async fn index(State(st): State<Arc<AppState>>, Query(q): Query<TokenQuery>) -> Response {
    if !token_matches(st.token.as_deref(), q.token.as_deref()) {
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
                "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
            ),
        ],
        INDEX_HTML,
    )
        .into_response()
}

async fn client_js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        CLIENT_JS,
    )
        .into_response()
}

async fn stream(
    State(st): State<Arc<AppState>>,
    Query(q): Query<TokenQuery>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    if !token_matches(st.token.as_deref(), q.token.as_deref()) {
        tracing::warn!("refused a WebSocket with a missing or wrong token");
        return forbidden();
    }
    if !origin_matches(&headers) {
        tracing::warn!(
            "refused a WebSocket from a foreign origin: {:?}",
            headers.get(header::ORIGIN)
        );
        return (StatusCode::FORBIDDEN, "foreign origin\n").into_response();
    }
    upgrade
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| viewer_session(st, socket))
}

/// One viewer: a writer draining its queue into the socket and a reader validating what the
/// client sends, until either side ends. A bad message closes this connection only.
async fn viewer_session(st: Arc<AppState>, socket: WebSocket) {
    let viewer = st.hub.join();
    let (mut sink, mut source) = socket.split();
    let writer = async {
        while let Some(msg) = viewer.next().await {
            if sink.send(msg).await.is_err() {
                return None;
            }
        }
        Some(CloseFrame {
            code: close_code::AWAY,
            reason: "server shutting down".into(),
        })
    };
    let reader = async {
        let mut last_refresh: Option<Instant> = None;
        while let Some(received) = source.next().await {
            let Ok(msg) = received else {
                // Over the size limit, or a protocol error: tungstenite has failed the socket.
                return None;
            };
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
                Ok(None) => {}
                Err(bad) => {
                    tracing::warn!("closing a viewer connection: {bad}");
                    let code = match bad {
                        BadMessage::TooLarge(_) => close_code::SIZE,
                        BadMessage::Binary => close_code::UNSUPPORTED,
                        BadMessage::Invalid(_) => close_code::POLICY,
                    };
                    return Some(CloseFrame {
                        code,
                        reason: bad.to_string().chars().take(100).collect::<String>().into(),
                    });
                }
            }
        }
        None
    };
    let close = tokio::select! {
        close = writer => close,
        close = reader => close,
    };
    if let Some(frame) = close {
        let _ = sink.send(Message::Close(Some(frame))).await;
    }
    let _ = sink.close().await;
}

#[cfg(test)]
mod tests {
    use super::super::hub::{Hello, HubConfig};
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};

    #[test]
    fn tokens_compare_exactly() {
        assert!(token_matches(None, None));
        assert!(token_matches(None, Some("anything")));
        assert!(token_matches(Some("s3cret"), Some("s3cret")));
        for bad in [
            None,
            Some(""),
            Some("s3cre"),
            Some("s3cret!"),
            Some("S3cret"),
        ] {
            assert!(!token_matches(Some("s3cret"), bad), "{bad:?}");
        }
    }

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
        for bad in [
            "",
            "garbage",
            "{}",
            r#"{"type":"ping"}"#,
            r#"{"type":"ping","t":"x"}"#,
            r#"{"type":"format_disk"}"#,
            r#"["refresh"]"#,
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
        let state = Arc::new(AppState {
            hub: Arc::clone(&hub),
            token: token.map(str::to_string),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router(state)).await });
        Server {
            addr,
            hub,
            refreshes,
        }
    }

    /// Status code of a plain GET.
    async fn get_status(addr: std::net::SocketAddr, path: &str) -> u16 {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    type Ws = tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >;

    async fn connect(addr: std::net::SocketAddr, query: &str) -> Result<Ws, tungstenite::Error> {
        tokio_tungstenite::connect_async(format!("ws://{addr}/ws{query}"))
            .await
            .map(|(ws, _)| ws)
    }

    async fn recv(ws: &mut Ws) -> Option<tungstenite::Message> {
        tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .ok()
            .flatten()
            .and_then(Result::ok)
    }

    fn http_status(err: tungstenite::Error) -> u16 {
        match err {
            tungstenite::Error::Http(resp) => resp.status().as_u16(),
            other => panic!("expected an HTTP refusal, got {other}"),
        }
    }

    #[tokio::test]
    async fn the_token_guards_page_and_stream() {
        let srv = server(Some("s3cret")).await;
        assert_eq!(get_status(srv.addr, "/").await, 403);
        assert_eq!(get_status(srv.addr, "/?token=wrong").await, 403);
        assert_eq!(get_status(srv.addr, "/?token=s3cret").await, 200);
        assert_eq!(get_status(srv.addr, "/client.js").await, 200);
        assert_eq!(http_status(connect(srv.addr, "").await.unwrap_err()), 403);
        assert_eq!(
            http_status(connect(srv.addr, "?token=s3cre").await.unwrap_err()),
            403
        );
        let mut ws = connect(srv.addr, "?token=s3cret").await.unwrap();
        let hello = recv(&mut ws).await.unwrap();
        assert!(hello.to_text().unwrap().contains("\"hello\""));
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

    #[tokio::test]
    async fn garbage_closes_only_that_connection() {
        let srv = server(None).await;
        let mut good = connect(srv.addr, "").await.unwrap();
        assert!(recv(&mut good).await.unwrap().is_text()); // hello
        for (garbage, code) in [
            (tungstenite::Message::text("not json"), 1008u16),
            (tungstenite::Message::text(r#"{"type":"nope"}"#), 1008),
            (tungstenite::Message::binary(vec![0u8; 16]), 1003),
        ] {
            let mut bad = connect(srv.addr, "").await.unwrap();
            assert!(recv(&mut bad).await.unwrap().is_text()); // hello
            bad.send(garbage).await.unwrap();
            match recv(&mut bad).await {
                Some(tungstenite::Message::Close(Some(frame))) => {
                    assert_eq!(u16::from(frame.code), code)
                }
                other => panic!("expected a close frame, got {other:?}"),
            }
            assert!(recv(&mut bad).await.is_none(), "the bad connection ended");
        }
        // Oversized: tungstenite refuses it while reading; the connection ends.
        let mut big = connect(srv.addr, "").await.unwrap();
        assert!(recv(&mut big).await.unwrap().is_text());
        let _ = big
            .send(tungstenite::Message::text(
                "x".repeat(MAX_CLIENT_MESSAGE + 1),
            ))
            .await;
        loop {
            match recv(&mut big).await {
                None | Some(tungstenite::Message::Close(_)) => break,
                Some(_) => {}
            }
        }
        // The good one still works: a ping is answered, a stripe arrives.
        good.send(tungstenite::Message::text(r#"{"type":"ping","t":42}"#))
            .await
            .unwrap();
        let pong: serde_json::Value =
            serde_json::from_str(recv(&mut good).await.unwrap().to_text().unwrap()).unwrap();
        assert_eq!(pong["type"], "pong");
        assert_eq!(pong["t"], 42.0);
        assert!(pong["server"].as_f64().unwrap() > 1.6e12);
        let before = srv.refreshes.load(Ordering::SeqCst);
        good.send(tungstenite::Message::text(r#"{"type":"refresh"}"#))
            .await
            .unwrap();
        let t0 = Instant::now();
        while srv.refreshes.load(Ordering::SeqCst) == before && t0.elapsed().as_secs() < 5 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(srv.refreshes.load(Ordering::SeqCst), before + 1);
        let t0 = Instant::now();
        while srv.hub.viewer_count() != 1 && t0.elapsed().as_secs() < 5 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(srv.hub.viewer_count(), 1, "only the good viewer is left");
    }
}
