//! `pixelflux serve --display :N` follows the screen through RandR size changes: without
//! `--region` every viewer gets a new hello before the first stripe of the new size, whose
//! stripes are all IDRs, and serve goes on (a shrink used to end it with "connection lost …
//! BadMatch"); with `--region`, a screen that shrinks under the region ends serve with the
//! region error.

use std::time::Duration;

use futures_util::StreamExt;
use pixelflux_testkit::Xvfb;
use tokio::io::AsyncBufReadExt;
use tokio_tungstenite::tungstenite::Message;

mod support;
use support::{serve_command, watch, Ws};

/// Every wait ends by this deadline.
const DEADLINE: Duration = Duration::from_secs(20);

struct Serve {
    child: tokio::process::Child,
    url: String,
}

async fn serve(display: &str, extra: &[&str]) -> Serve {
    let mut child = serve_command(&["--display", display, "--listen", "127.0.0.1:0"])
        .args(["--codec", "h264", "--fps", "30"])
        .args(extra)
        .spawn()
        .expect("the binary runs");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("piped")).lines();
    let url = match tokio::time::timeout(DEADLINE, lines.next_line()).await {
        Ok(Ok(Some(line))) if line.starts_with("open http://") => line["open ".len()..].to_string(),
        other => panic!("no URL: {other:?}"),
    };
    Serve { child, url }
}

/// The next message (pings and the like skipped).
async fn next(ws: &mut Ws) -> Message {
    loop {
        match tokio::time::timeout(DEADLINE, ws.next()).await {
            Ok(Some(Ok(m))) if m.is_text() || m.is_binary() => return m,
            Ok(Some(Ok(_))) => {}
            other => panic!("the stream ended or went silent: {other:?}"),
        }
    }
}

/// Reads until a hello of `width` x `height`.
async fn wait_for_hello(ws: &mut Ws, width: u32, height: u32) -> serde_json::Value {
    loop {
        if let Message::Text(t) = next(ws).await {
            let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
            if v["type"] == "hello" && v["width"] == width && v["height"] == height {
                return v;
            }
        }
    }
}

/// H.264 stripe header: (IDR, y, width, height).
fn h264_header(b: &[u8]) -> (bool, u32, u32, u32) {
    assert_eq!(b[0], 0x04, "an H.264 stripe");
    let u16_at = |i: usize| u32::from(u16::from_be_bytes([b[i], b[i + 1]]));
    (b[1] == 0x01, u16_at(4), u16_at(6), u16_at(8))
}

/// After a hello of `width` x `height`: the stripes of the first frame cover every row, each
/// an IDR of that width, with no other hello in between.
async fn first_frame_is_keyed(ws: &mut Ws, hello: &serde_json::Value) {
    let (width, height) = (
        hello["width"].as_u64().unwrap() as u32,
        hello["height"].as_u64().unwrap() as u32,
    );
    let mut rows = 0;
    while rows < height {
        match next(ws).await {
            Message::Binary(b) => {
                let (idr, y, w, h) = h264_header(&b);
                assert!(idr, "stripe at y={y} after the new hello is not an IDR");
                assert_eq!((w, y), (width, rows), "stripes of the new size, in order");
                rows += h;
            }
            Message::Text(t) => {
                let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                // Frame notes, the role, the pointer's shape; never another hello.
                assert_ne!(v["type"], "hello", "{t}");
            }
            _ => {}
        }
    }
    assert_eq!(rows, height);
}

#[tokio::test]
async fn serve_follows_the_screen_through_shrinks_and_growths() {
    let mut xvfb = Xvfb::start_resizable(640, 480, 800, 600);
    let mut serve = serve(&xvfb.display, &[]).await;
    let mut ws = watch(&serve.url).await;
    let hello = wait_for_hello(&mut ws, 640, 480).await;
    first_frame_is_keyed(&mut ws, &hello).await;
    // Odd sizes: the capture rounds them down to even for H.264, the hello says so.
    for (w, h, want) in [
        (320, 240, (320, 240)),
        (800, 600, (800, 600)),
        (501, 301, (500, 300)),
    ] {
        xvfb.resize(w, h);
        let hello = wait_for_hello(&mut ws, want.0, want.1).await;
        first_frame_is_keyed(&mut ws, &hello).await;
        assert!(
            serve.child.try_wait().unwrap().is_none(),
            "serve ended after the resize to {w}x{h}"
        );
    }
    drop(ws);
    let pid = nix::unistd::Pid::from_raw(serve.child.id().expect("running") as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("signal");
    let status = tokio::time::timeout(DEADLINE, serve.child.wait())
        .await
        .expect("exit after SIGTERM")
        .expect("wait");
    assert!(status.success(), "exit {status}");
}

#[tokio::test]
async fn a_fixed_region_that_no_longer_fits_ends_serve_with_the_region_error() {
    let mut xvfb = Xvfb::start_resizable(640, 480, 640, 480);
    let mut serve = serve(&xvfb.display, &["--region", "640x480+0+0"]).await;
    let mut ws = watch(&serve.url).await;
    wait_for_hello(&mut ws, 640, 480).await;
    xvfb.resize(320, 240);
    // Something must change for the capture to grab again (DAMAGE skips a still screen).
    xvfb.connect().fill(0, 0, 10, 10, 0xff0000);
    let status = tokio::time::timeout(DEADLINE, serve.child.wait())
        .await
        .expect("serve ends")
        .expect("wait");
    assert!(!status.success());
    let mut err = String::new();
    let mut stderr = serve.child.stderr.take().expect("piped");
    tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut err)
        .await
        .unwrap();
    assert!(
        err.contains("the region no longer fits the screen (320x240)"),
        "{err}"
    );
}
