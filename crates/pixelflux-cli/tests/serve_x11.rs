//! `pixelflux serve --display :N` against a bare Xvfb, started again and again.
//!
//! A plain Xvfb (no `-noreset`) resets whenever its last client disconnects. `serve` used to
//! read the screen size on one connection and capture on another; the first one's close reset
//! the server and the capture's connection could land in the reset ("connection reset", about
//! one start in eight). Every start must succeed.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::AsyncBufReadExt;

mod support;
use support::serve_command;

/// Every wait ends by this deadline.
const DEADLINE: Duration = Duration::from_secs(20);

/// A bare Xvfb on a display number it picks itself (`-displayfd`), killed when dropped.
struct Xvfb {
    child: Child,
    display: String,
}

impl Xvfb {
    fn start() -> Xvfb {
        let mut child = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "320x240x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb is installed (scripts/install-deps.sh)");
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(DEADLINE)
            .expect("Xvfb printed its display number");
        let n: u32 = line.trim().parse().expect("a display number");
        Xvfb {
            child,
            display: format!(":{n}"),
        }
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

/// One start: the URL is printed, a viewer gets the hello and a stripe, SIGTERM exits 0.
async fn one_run(display: &str, run: usize) {
    let mut serve = serve_command(&[
        "--display",
        display,
        "--listen",
        "127.0.0.1:0",
        "--fps",
        "10",
    ])
    .spawn()
    .expect("the binary runs");
    let mut lines = tokio::io::BufReader::new(serve.stdout.take().expect("piped")).lines();
    let mut stderr = serve.stderr.take().expect("piped");
    let url = match tokio::time::timeout(DEADLINE, lines.next_line()).await {
        Ok(Ok(Some(line))) if line.starts_with("open http://") => line["open ".len()..].to_string(),
        other => {
            let _ = serve.start_kill();
            let mut err = String::new();
            let _ = tokio::time::timeout(
                DEADLINE,
                tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut err),
            )
            .await;
            panic!("start {run}: no URL ({other:?}); stderr:\n{err}");
        }
    };
    // `http://127.0.0.1:PORT/` (no token here) → `ws://127.0.0.1:PORT/ws`.
    let ws_url = format!("{}ws", url.replacen("http://", "ws://", 1));
    let (mut ws, _) = tokio::time::timeout(DEADLINE, tokio_tungstenite::connect_async(&ws_url))
        .await
        .unwrap_or_else(|_| panic!("start {run}: no WebSocket by the deadline"))
        .unwrap_or_else(|e| panic!("start {run}: {ws_url}: {e}"));
    let mut got_hello = false;
    let mut got_stripe = false;
    while !(got_hello && got_stripe) {
        match tokio::time::timeout(DEADLINE, ws.next()).await {
            Ok(Some(Ok(m))) if m.is_text() => got_hello |= m.to_text().unwrap().contains("hello"),
            Ok(Some(Ok(m))) if m.is_binary() => got_stripe = true,
            Ok(Some(Ok(_))) => {}
            other => panic!("start {run}: the stream ended or went silent: {other:?}"),
        }
    }
    drop(ws);
    let pid = nix::unistd::Pid::from_raw(serve.id().expect("running") as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("signal");
    let status = tokio::time::timeout(DEADLINE, serve.wait())
        .await
        .unwrap_or_else(|_| panic!("start {run}: no exit after SIGTERM"))
        .expect("wait");
    assert!(status.success(), "start {run}: exit {status}");
}

#[tokio::test]
async fn every_start_against_a_bare_xvfb_succeeds() {
    let xvfb = Xvfb::start();
    for run in 0..20 {
        one_run(&xvfb.display, run).await;
    }
}

/// With no page watching, the capture ticks once every 100 s; the end of a `--display`
/// server must still end serve at once (it took 98 s), with the reason.
#[tokio::test]
async fn a_display_that_goes_away_while_no_one_watches_ends_serve_at_once() {
    let mut xvfb = Xvfb::start();
    let mut serve = serve_command(&["--display", &xvfb.display, "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .spawn()
        .expect("the binary runs");
    let mut lines = tokio::io::BufReader::new(serve.stderr.take().expect("piped")).lines();
    let mut log = String::new();
    while !log.contains("capture paused") {
        match tokio::time::timeout(DEADLINE, lines.next_line()).await {
            Ok(Ok(Some(line))) => log += &(line + "\n"),
            other => panic!("serve never paused ({other:?}):\n{log}"),
        }
    }
    xvfb.child.kill().expect("kill Xvfb");
    let _ = xvfb.child.wait();
    let status = tokio::time::timeout(Duration::from_secs(5), serve.wait())
        .await
        .unwrap_or_else(|_| panic!("serve still runs 5 s after its X server went away:\n{log}"))
        .expect("wait");
    while let Ok(Ok(Some(line))) = tokio::time::timeout(DEADLINE, lines.next_line()).await {
        log += &(line + "\n");
    }
    assert!(!status.success(), "exit {status}");
    assert!(log.contains("the X server went away"), "{log}");
}
