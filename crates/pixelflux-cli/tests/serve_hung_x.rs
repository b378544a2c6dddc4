//! `pixelflux serve` exits promptly on SIGTERM even when its X server has stopped answering
//! (Xvfb stopped with SIGSTOP): nothing in the shutdown waits on an X reply without bound.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod support;
use support::children;

fn signal(pid: u32, signal: &str) -> bool {
    Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn wait_exit(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let t0 = Instant::now();
    while t0.elapsed() < within {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Opens a WebSocket to `/ws` at `addr` (the upgrade only; nothing is read afterwards).
fn watch(addr: &str) -> Option<std::net::TcpStream> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let req = format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    head.starts_with(b"HTTP/1.1 101").then_some(s)
}

#[test]
fn sigterm_ends_serve_within_seconds_when_the_x_server_hangs() {
    // No DISPLAY: serve starts an Xvfb of its own (and a terminal in it).
    let mut serve = Command::new(env!("CARGO_BIN_EXE_pixelflux"))
        .args(["serve", "--listen", "127.0.0.1:0", "--size", "320x240"])
        .env_remove("DISPLAY")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run pixelflux serve");
    let stdout = serve.stdout.take().expect("stdout");
    let stderr = serve.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let log = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
            .join("\n")
    });
    let url = rx
        .recv_timeout(Duration::from_secs(30))
        .ok()
        .and_then(|l| l.strip_prefix("open http://").map(str::to_string));
    let serving = url.is_some();
    // A viewer, so the capture runs (with no one watching it idles and never waits on X).
    let addr = url
        .as_deref()
        .and_then(|u| u.split('/').next())
        .unwrap_or("");
    let viewer = watch(addr);
    let xvfb: Vec<u32> = children(serve.id())
        .into_iter()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "Xvfb")
        })
        .collect();
    let stopped: Vec<u32> = xvfb
        .iter()
        .copied()
        .filter(|&p| signal(p, "STOP"))
        .collect();
    // Long enough for the capture to be waiting on the server (it re-reads every screen
    // pixel at least once a second) and for the supervisor's screen-size query to hang.
    std::thread::sleep(Duration::from_millis(1500));
    signal(serve.id(), "TERM");
    let exited = wait_exit(&mut serve, Duration::from_secs(30));
    for &p in &stopped {
        signal(p, "CONT");
    }
    if exited.is_none() {
        let _ = serve.kill();
        let _ = serve.wait();
    }
    let log = log.join().unwrap_or_default();
    assert!(serving, "serve did not start: {log}");
    assert!(viewer.is_some(), "no WebSocket viewer: {log}");
    assert_eq!(stopped.len(), 1, "serve's Xvfb: {xvfb:?}");
    assert!(
        exited.is_some(),
        "serve still running 30 s after SIGTERM: {log}"
    );
    assert!(log.contains("stopped answering"), "{log}");
}
