//! The accept loop of `serve`: HTTP/1.1 through hyper with a request-head timeout, and a cap
//! on concurrent connections that also covers upgraded WebSocket connections.
//!
//! `axum::serve` has neither, so connections are served here with hyper's own connection
//! builder. Each accepted socket carries a semaphore permit inside its I/O object; hyper
//! moves that object into the upgraded WebSocket, so the slot is freed only when the socket
//! is closed, whatever protocol it ended up speaking.

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

use super::limits::Limits;

/// Answer to a connection over the cap, written without waiting (a fresh socket has room).
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\
Content-Type: text/plain\r\nContent-Length: 29\r\n\r\ntoo many connections, retry\r\n";

/// Connections over the cap being answered `503` at once (beyond that they are just closed).
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
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()>,
    drain: Duration,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let busy = Arc::new(Semaphore::new(BUSY_ANSWERS));
    let (stop_tx, stop_rx) = watch::channel(false);
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
            if let Ok(permit) = Arc::clone(&busy).try_acquire_owned() {
                tokio::spawn(refuse_busy(socket, permit));
            }
            continue;
        };
        let _ = socket.set_nodelay(true);
        let io = Slotted {
            inner: socket,
            _permit: permit,
        };
        tokio::spawn(serve_connection(io, app.clone(), limits, stop_rx.clone()));
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

/// Answers `503` and closes. The request is read (and dropped) for a moment first: closing a
/// socket with unread data resets it, and the client would lose the answer.
async fn refuse_busy(mut socket: TcpStream, _permit: OwnedSemaphorePermit) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = tokio::time::timeout(BUSY_LINGER, async {
        socket.write_all(BUSY).await?;
        socket.shutdown().await?;
        let mut sink = [0u8; 1024];
        while socket.read(&mut sink).await? > 0 {}
        Ok::<(), io::Error>(())
    })
    .await;
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
