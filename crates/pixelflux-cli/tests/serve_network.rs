//! `pixelflux serve`'s network options as a process: tokens that must differ, a host name to
//! listen on, and plain HTTP sent to an HTTPS port.

use std::process::{Output, Stdio};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod support;
use support::{addr_of, spawn_serve, DEADLINE};

/// A synthetic scene: no X server needed.
const SCENE: [&str; 4] = ["--scene", "static", "--region", "64x64"];

fn serve_output(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_pixelflux"))
        .arg("serve")
        .args(SCENE)
        .args(args)
        .env_remove("PIXELFLUX_TOKEN")
        .env_remove("PIXELFLUX_VIEW_TOKEN")
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs")
}

/// `serve` on the synthetic scene, started with `args`; its first line (the URL) read.
async fn serve(args: &[&str]) -> (tokio::process::Child, String) {
    spawn_serve(&[&SCENE[..], args].concat()).await
}

/// Sends `request` and reads until the server closes.
async fn exchange(addr: &str, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(request).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(DEADLINE, s.read_to_end(&mut out))
        .await
        .expect("the server closes by the deadline");
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn equal_control_and_view_tokens_are_refused() {
    let out = serve_output(&[
        "--listen",
        "127.0.0.1:0",
        "--token",
        "same-secret",
        "--view-token",
        "same-secret",
    ]);
    assert!(!out.status.success(), "serve started with equal tokens");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--token and --view-token are the same"),
        "stderr: {err}"
    );
    // The same through the environment.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pixelflux"))
        .arg("serve")
        .args(SCENE)
        .args(["--listen", "127.0.0.1:0"])
        .env("PIXELFLUX_TOKEN", "t0")
        .env("PIXELFLUX_VIEW_TOKEN", "t0")
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs");
    assert!(!out.status.success(), "serve started with equal tokens");
}

#[tokio::test]
async fn a_host_name_is_accepted_for_listen() {
    let (mut child, line) = serve(&["--listen", "localhost:0"]).await;
    let addr = addr_of(&line);
    assert!(addr.starts_with("127.0.0.1:"), "{line}");
    // Loopback by name: no token needed, and the page is served for `Host: localhost`.
    let port = addr.rsplit(':').next().unwrap_or_default();
    let answer = exchange(
        &addr,
        format!("GET / HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    child.kill().await.ok();
    // A name that does not resolve is an error that names the option's form.
    let out = serve_output(&["--listen", "no-such-host.invalid:8091"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("HOST:PORT"), "stderr: {err}");
}
