//! The accept loop of `serve`: HTTP/1.1 through hyper with a request-head timeout, and a cap
//! on concurrent connections that also covers upgraded WebSocket connections.
//!
//! `axum::serve` has neither, so connections are served here with hyper's own connection
//! builder. Each accepted socket carries a semaphore permit inside its I/O object; hyper
//! moves that object into the upgraded WebSocket, so the slot is freed only when the socket
//! is closed, whatever protocol it ended up speaking.
//!
//! HTTPS goes through the same loop: the TLS handshake (tokio-rustls) runs on the slotted
//! socket inside the connection's task, bounded by the request-head timeout (a client that
//! starts a handshake and never finishes it holds its slot no longer than one that sends half
//! a request), and the decrypted stream is served by the same [`serve_connection`].

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;

use super::limits::Limits;

/// Answer to a connection over the cap, written without waiting (a fresh socket has room).
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\
Content-Type: text/plain\r\nContent-Length: 29\r\n\r\ntoo many connections, retry\r\n";

/// Connections over the cap being answered `503` while reading their request (beyond that
/// they get the `503` written at once, without waiting, and are closed).
const BUSY_ANSWERS: usize = 16;

/// How long a `503` answer may take, reading the request so closing does not reset it.
const BUSY_LINGER: Duration = Duration::from_secs(1);

/// How long accepting pauses after an error such as EMFILE, so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// A socket holding its connection slot until it is dropped.
pub struct Slotted<S> {
    inner: S,
    _permit: OwnedSemaphorePermit,
}

impl<S: AsyncRead + Unpin> AsyncRead for Slotted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Slotted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets open HTTP connections
/// finish (at most `drain` long). WebSocket sessions are ended by the hub, not here.
///
/// With `tls`, every connection is HTTPS: the handshake must complete within
/// [`Limits::header_timeout`], and the request head within that again after it.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl std::future::Future<Output = ()>,
    drain: Duration,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let busy = Arc::new(Semaphore::new(BUSY_ANSWERS));
    let (stop_tx, stop_rx) = watch::channel(false);
    let tls = tls.map(TlsAcceptor::from);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let socket = match accepted {
            Ok((socket, _)) => socket,
            Err(e) => {
                // Out of fds or a connection reset before accept: keep serving.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::warn!(
                "connection limit ({}) reached: refusing a connection",
                limits.max_connections
            );
            match Arc::clone(&busy).try_acquire_owned() {
                Ok(permit) => {
                    tokio::spawn(refuse_busy(socket, tls.clone(), permit));
                }
                // Connections that send nothing hold every lingering answer: answer this one
                // without waiting (plain HTTP; a TLS client just sees the close).
                Err(_) if tls.is_none() => refuse_busy_now(socket),
                Err(_) => {}
            }
            continue;
        };
        let _ = socket.set_nodelay(true);
        let io = Slotted {
            inner: socket,
            _permit: permit,
        };
        let (app, stop) = (app.clone(), stop_rx.clone());
        match &tls {
            None => {
                tokio::spawn(serve_connection(io, app, limits, stop));
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let handshake = async {
                        // Plain HTTP to an HTTPS port: say so instead of closing silently.
                        if !starts_with_tls(&io.inner).await? {
                            answer_plain_http(io).await?;
                            return Ok(None);
                        }
                        acceptor.accept(io).await.map(Some)
                    };
                    match tokio::time::timeout(limits.header_timeout, handshake).await {
                        Ok(Ok(Some(stream))) => serve_connection(stream, app, limits, stop).await,
                        Ok(Ok(None)) => {
                            tracing::debug!("plain HTTP on the HTTPS port: answered 400")
                        }
                        Ok(Err(e)) => tracing::debug!("TLS handshake failed: {e}"),
                        Err(_) => tracing::debug!(
                            "TLS handshake not complete within {:?}: closed",
                            limits.header_timeout
                        ),
                    }
                });
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every slot back means every connection (upgraded ones included) has closed.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(drain, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            "{} connections still open after {drain:?}",
            limits.max_connections - slots.available_permits()
        );
    }
}

/// Answers `503` and closes (over TLS after the handshake), all within [`BUSY_LINGER`].
async fn refuse_busy(socket: TcpStream, tls: Option<TlsAcceptor>, _permit: OwnedSemaphorePermit) {
    let _ = tokio::time::timeout(BUSY_LINGER, async {
        match tls {
            None => answer_busy(socket).await,
            Some(acceptor) => answer_busy(acceptor.accept(socket).await?).await,
        }
    })
    .await;
}

/// Writes `503` if the socket has room (a fresh one has), reads what already arrived (so the
/// close is a FIN, not a reset that could discard the answer) and closes; never waits.
fn refuse_busy_now(socket: TcpStream) {
    let _ = socket.try_write(BUSY);
    let mut sink = [0u8; 4096];
    while matches!(socket.try_read(&mut sink), Ok(n) if n > 0) {}
    if let Ok(std) = socket.into_std() {
        let _ = std.shutdown(std::net::Shutdown::Write);
    }
}

/// Writes `503` and closes. The request is read (and dropped) first: closing a socket with
/// unread data resets it, and the client would lose the answer.
async fn answer_busy<S: AsyncRead + AsyncWrite + Unpin>(mut socket: S) -> io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    socket.write_all(BUSY).await?;
    socket.shutdown().await?;
    let mut sink = [0u8; 1024];
    while socket.read(&mut sink).await? > 0 {}
    Ok(())
}

/// Whether the first byte a client sent opens a TLS handshake record (0x16). Waits for it.
async fn starts_with_tls(socket: &TcpStream) -> io::Result<bool> {
    let mut first = [0u8; 1];
    let n = socket.peek(&mut first).await?;
    Ok(n == 0 || first[0] == 0x16)
}

/// Longest request head read from a plain-HTTP client on the HTTPS port.
const PLAIN_HEAD_MAX: usize = 8192;

/// Answers a plain-HTTP request on the HTTPS port with `400` and the `https://` address (from
/// its `Host` header when that is a plain host name), then closes.
async fn answer_plain_http<S: AsyncRead + AsyncWrite + Unpin>(mut socket: S) -> io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    while head.len() < PLAIN_HEAD_MAX && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..n]);
    }
    let body = match plain_host(&head) {
        Some(host) => format!("this server speaks HTTPS: https://{host}/\n"),
        None => "this server speaks HTTPS: use https:// with the same address\n".to_string(),
    };
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(answer.as_bytes()).await?;
    socket.shutdown().await?;
    while socket.read(&mut chunk).await? > 0 {}
    Ok(())
}

/// The `Host` header of a request head, if it is only host-name characters (it is echoed).
fn plain_host(head: &[u8]) -> Option<String> {
    let head = std::str::from_utf8(head).ok()?;
    let host = head.split("\r\n").skip(1).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("host")
            .then(|| value.trim())
    })?;
    let ok = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
    ok.then(|| host.to_string())
}

/// One HTTP/1.1 connection (and, after an upgrade, its WebSocket). Generic over the socket so
/// a TLS stream can be served the same way.
pub async fn serve_connection<S>(
    io: S,
    app: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(app);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let conn = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!("connection ended: {e}");
            }
            return;
        }
        _ = stop.wait_for(|stop| *stop) => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}

#[cfg(test)]
mod tests {
    //! The accept loop's bounds over HTTPS: the same cap and timeouts as plain HTTP, with a
    //! handshake that never completes timed out like half a request.

    use std::net::SocketAddr;
    use std::time::Instant;

    use axum::routing::get;
    use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::client::TlsStream;
    use tokio_rustls::TlsConnector;

    use super::*;

    /// Every wait ends by this deadline (a hang is a failure).
    const DEADLINE: Duration = Duration::from_secs(10);

    /// An HTTPS server with a fresh self-signed certificate, and a client that trusts it.
    async fn https(limits: Limits) -> (SocketAddr, TlsConnector) {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert = certified.cert.der().clone();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            certified.signing_key.serialize_der(),
        ));
        let tls = super::super::tls::build(vec![cert.clone()], key).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/", get(|| async { "hello" }));
        tokio::spawn(serve(
            listener,
            app,
            limits,
            Some(tls.config),
            std::future::pending(),
            Duration::from_secs(1),
        ));
        (addr, TlsConnector::from(Arc::new(client)))
    }

    async fn tls_connect(addr: SocketAddr, client: &TlsConnector) -> TlsStream<TcpStream> {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        tokio::time::timeout(DEADLINE, client.connect(name, tcp))
            .await
            .expect("a handshake by the deadline")
            .expect("the handshake succeeds")
    }

    /// What the server sent until it closed; `None` if it stayed open past the deadline.
    async fn read_until_closed<S: AsyncRead + Unpin>(s: &mut S) -> Option<String> {
        let mut out = Vec::new();
        match tokio::time::timeout(DEADLINE, s.read_to_end(&mut out)).await {
            Err(_) => None,
            // A reset (or a TLS stream cut without close_notify) is closed too.
            Ok(_) => Some(String::from_utf8_lossy(&out).into_owned()),
        }
    }

    async fn get_status(addr: SocketAddr, client: &TlsConnector) -> String {
        let mut s = tls_connect(addr, client).await;
        s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let out = read_until_closed(&mut s)
            .await
            .expect("an answer, then close");
        out.split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string()
    }

    #[tokio::test]
    async fn plain_http_to_the_https_port_is_told_to_use_https() {
        let (addr, client) = https(Limits::default()).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /?token=x HTTP/1.1\r\nHost: example.test:8443\r\n\r\n")
            .await
            .unwrap();
        let out = read_until_closed(&mut s)
            .await
            .expect("an answer, then close");
        assert!(out.starts_with("HTTP/1.1 400 "), "{out}");
        assert!(
            out.contains("this server speaks HTTPS: https://example.test:8443/"),
            "{out}"
        );
        // A Host that is not a plain name is not echoed.
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: <script>\r\n\r\n")
            .await
            .unwrap();
        let out = read_until_closed(&mut s)
            .await
            .expect("an answer, then close");
        assert!(
            out.contains("use https://") && !out.contains("<script>"),
            "{out}"
        );
        // HTTPS still works on the same port.
        assert_eq!(get_status(addr, &client).await, "200");
    }

    #[tokio::test]
    async fn over_the_cap_with_every_lingering_answer_held_a_request_still_gets_503() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/", get(|| async { "hello" }));
        let limits = Limits {
            max_connections: 2,
            header_timeout: Duration::from_secs(30),
            ..Limits::default()
        };
        tokio::spawn(serve(
            listener,
            app,
            limits,
            None,
            std::future::pending(),
            Duration::from_secs(1),
        ));
        // Idle connections: two hold the slots, more hold every lingering `503` answer.
        let mut idle = Vec::new();
        for _ in 0..(2 + BUSY_ANSWERS + 8) {
            idle.push(TcpStream::connect(addr).await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        for _ in 0..5 {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
                .await
                .unwrap();
            let mut out = Vec::new();
            let read = tokio::time::timeout(DEADLINE, s.read_to_end(&mut out))
                .await
                .expect("closed by the deadline");
            let out = String::from_utf8_lossy(&out);
            assert!(
                out.starts_with("HTTP/1.1 503 "),
                "{read:?}: {out:?} (a reset or an empty answer)"
            );
        }
        drop(idle);
    }

    #[tokio::test]
    async fn https_is_served_by_the_same_loop() {
        let (addr, client) = https(Limits::default()).await;
        assert_eq!(get_status(addr, &client).await, "200");
    }

    #[tokio::test]
    async fn a_half_sent_request_over_tls_is_closed() {
        let timeout = Duration::from_millis(500);
        let (addr, client) = https(Limits {
            header_timeout: timeout,
            ..Limits::default()
        })
        .await;
        let mut s = tls_connect(addr, &client).await;
        s.write_all(b"GET / HTTP/1.1\r\nHost: local").await.unwrap();
        let t0 = Instant::now();
        let out = read_until_closed(&mut s).await;
        let out = out.unwrap_or_else(|| panic!("still open after {DEADLINE:?}"));
        assert!(!out.contains("200 OK"), "{out}");
        assert!(t0.elapsed() >= timeout / 2, "closed before the timeout");
    }

    #[tokio::test]
    async fn a_tls_handshake_that_never_completes_is_closed_within_the_timeout() {
        let timeout = Duration::from_millis(500);
        let (addr, _) = https(Limits {
            header_timeout: timeout,
            ..Limits::default()
        })
        .await;
        // Nothing at all, and the first bytes of a ClientHello record that never ends.
        for sent in [
            &b""[..],
            &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc],
        ] {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(sent).await.unwrap();
            let t0 = Instant::now();
            let out = read_until_closed(&mut s).await;
            assert!(
                out.is_some(),
                "still open after {DEADLINE:?} ({sent:?} sent)"
            );
            let took = t0.elapsed();
            assert!(
                took >= timeout / 2 && took < timeout + Duration::from_secs(3),
                "closed after {took:?} ({sent:?} sent)"
            );
        }
    }

    #[tokio::test]
    async fn tls_connections_over_the_cap_get_503_and_slots_come_back() {
        let (addr, client) = https(Limits {
            max_connections: 2,
            header_timeout: Duration::from_secs(30),
            ..Limits::default()
        })
        .await;
        // One finished handshake and one bare TCP socket hold both slots.
        let held = tls_connect(addr, &client).await;
        let bare = TcpStream::connect(addr).await.unwrap();
        // Accepting is asynchronous: wait until a third connection is refused.
        let mut refused = false;
        let t0 = Instant::now();
        while !refused && t0.elapsed() < DEADLINE {
            refused = get_status(addr, &client).await == "503";
        }
        assert!(refused, "a third connection was not refused");
        drop(held);
        drop(bare);
        let mut served = false;
        let t0 = Instant::now();
        while !served && t0.elapsed() < DEADLINE {
            served = get_status(addr, &client).await == "200";
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(served, "no slot came back after closing both connections");
    }
}
