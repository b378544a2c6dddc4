//! `pixelflux serve` on the private display it starts itself (no `$DISPLAY`): with `--region`
//! the display is fixed and no page's resize can end serve; the terminal follows the screen's
//! size; `kill -9` of serve leaves no Xvfb or terminal behind; the logs name a dying X server
//! and a normal stop does not warn.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncBufReadExt;
use tokio_tungstenite::tungstenite::Message;
use x11rb::connection::Connection as _;
use x11rb::protocol::xproto::{ConnectionExt as _, MapState};

mod support;
use support::{children_named, serve_command, watch, Ws};

/// Every wait ends by this deadline.
const DEADLINE: Duration = Duration::from_secs(20);

struct Serve {
    child: tokio::process::Child,
    url: String,
    /// Everything serve logged so far.
    log: Arc<Mutex<String>>,
}

impl Serve {
    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

/// `serve` with no display, so it starts its own Xvfb and terminal.
async fn serve(extra: &[&str]) -> Serve {
    let mut child = serve_command(&["--listen", "127.0.0.1:0", "--fps", "30"])
        .args(extra)
        .env_remove("DISPLAY")
        .env("RUST_LOG", "info")
        .spawn()
        .expect("the binary runs");
    let log = Arc::new(Mutex::new(String::new()));
    let mut err = tokio::io::BufReader::new(child.stderr.take().expect("piped")).lines();
    let sink = Arc::clone(&log);
    tokio::spawn(async move {
        while let Ok(Some(line)) = err.next_line().await {
            let mut log = sink.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("piped")).lines();
    let url = match tokio::time::timeout(DEADLINE, lines.next_line()).await {
        Ok(Ok(Some(line))) if line.starts_with("open http://") => line["open ".len()..].to_string(),
        other => panic!("no URL: {other:?} {}", log.lock().unwrap()),
    };
    // Drain the rest of stdout so serve never blocks writing it.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Serve { child, url, log }
}

/// The role and hello messages a viewer gets first, in either order.
async fn role_and_hello(ws: &mut Ws) -> (serde_json::Value, serde_json::Value) {
    let (mut role, mut hello) = (None, None);
    let t0 = Instant::now();
    while role.is_none() || hello.is_none() {
        assert!(t0.elapsed() < DEADLINE, "no role and hello by the deadline");
        match tokio::time::timeout(DEADLINE, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                match v["type"].as_str() {
                    Some("role") => role = Some(v),
                    Some("hello") => hello = Some(v),
                    _ => {}
                }
            }
            Ok(Some(Ok(_))) => {}
            other => panic!("the stream ended or went silent: {other:?}"),
        }
    }
    (role.unwrap_or_default(), hello.unwrap_or_default())
}

async fn send_resize(ws: &mut Ws, width: u32, height: u32) {
    let msg = format!(r#"{{"type":"resize","width":{width},"height":{height}}}"#);
    ws.send(Message::Text(msg.into())).await.expect("sent");
}

/// Whether `pid` has ended (no such process, or a zombie waiting to be reaped).
fn ended(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(true)
}

/// A window's `(x, y, width, height)`.
type Geometry = (i16, i16, u16, u16);

/// The screen size and the mapped top-level windows `(x, y, width, height)` of `display`.
fn screen_and_windows(display: &str) -> ((u16, u16), Vec<Geometry>) {
    let (conn, screen) = x11rb::connect(Some(display)).expect("connect");
    let root = conn.setup().roots[screen].root;
    let g = conn.get_geometry(root).unwrap().reply().unwrap();
    let tree = conn.query_tree(root).unwrap().reply().unwrap();
    let mut windows = Vec::new();
    for w in tree.children {
        let Ok(Ok(a)) = conn.get_window_attributes(w).map(|c| c.reply()) else {
            continue;
        };
        if a.map_state != MapState::VIEWABLE {
            continue;
        }
        if let Ok(Ok(wg)) = conn.get_geometry(w).map(|c| c.reply()) {
            windows.push((wg.x, wg.y, wg.width, wg.height));
        }
    }
    ((g.width, g.height), windows)
}

#[tokio::test]
async fn with_a_region_the_private_display_is_fixed_and_no_resize_ends_serve() {
    // The README's example: a region and no $DISPLAY. A page's window smaller than the region
    // used to shrink the screen under it, which ended serve with the region error.
    let mut s = serve(&["--codec", "h264", "--region", "320x200+0+0"]).await;
    let mut ws = watch(&s.url).await;
    let (role, hello) = role_and_hello(&mut ws).await;
    assert_eq!(role["control"], true, "{role}");
    assert_eq!(
        role["resize"], false,
        "a region's display does not follow: {role}"
    );
    let display = role["display"].as_str().expect("a display").to_owned();
    assert_eq!(
        (hello["width"].as_u64(), hello["height"].as_u64()),
        (Some(320), Some(200))
    );
    for (w, h) in [(64, 64), (640, 400), (100, 100)] {
        send_resize(&mut ws, w, h).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Still streaming the region, on an unchanged screen.
    let mut stripes = 0;
    let t0 = Instant::now();
    while stripes < 3 && t0.elapsed() < DEADLINE {
        // A stripe (the capture sends a full frame again on a refresh request).
        ws.send(Message::Text(r#"{"type":"refresh"}"#.into()))
            .await
            .ok();
        match tokio::time::timeout(Duration::from_secs(2), ws.next()).await {
            Ok(Some(Ok(Message::Binary(_)))) => stripes += 1,
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                assert_ne!(v["type"], "hello", "no new size: {t}");
            }
            Ok(Some(Ok(_))) | Err(_) => {}
            other => panic!("the stream ended: {other:?}\n{}", s.log()),
        }
    }
    assert!(stripes >= 3, "stripes after the resizes: {}", s.log());
    assert!(
        s.child.try_wait().unwrap().is_none(),
        "serve ended:\n{}",
        s.log()
    );
    let (screen, _) = screen_and_windows(&display);
    assert_eq!(screen, (1280, 720), "the screen keeps its size");
    assert!(!s.log().contains("no longer fits"), "{}", s.log());
}

#[tokio::test]
async fn the_terminal_fills_the_screen_after_each_resize() {
    let s = serve(&["--codec", "jpeg"]).await;
    let mut ws = watch(&s.url).await;
    let (role, _) = role_and_hello(&mut ws).await;
    assert_eq!(role["resize"], true, "{role}");
    let display = role["display"].as_str().expect("a display").to_owned();
    for (w, h) in [(800u16, 600u16), (1366, 656), (1100, 900)] {
        send_resize(&mut ws, w.into(), h.into()).await;
        let t0 = Instant::now();
        let mut last = screen_and_windows(&display);
        // xterm `-maximized` takes the screen's size for its inside (border past the edges).
        while !(last.0 == (w, h) && last.1.contains(&(0, 0, w, h))) && t0.elapsed() < DEADLINE {
            tokio::time::sleep(Duration::from_millis(100)).await;
            last = screen_and_windows(&display);
        }
        assert_eq!(last.0, (w, h), "the screen follows the page:\n{}", s.log());
        assert!(
            last.1.contains(&(0, 0, w, h)),
            "the terminal fills the {w}x{h} screen: {:?}\n{}",
            last.1,
            s.log()
        );
    }
}

#[tokio::test]
async fn kill_9_of_serve_leaves_no_xvfb_or_terminal() {
    let mut s = serve(&["--size", "320x240"]).await;
    let pid = s.child.id().expect("running");
    let t0 = Instant::now();
    let (mut xvfb, mut xterm) = (Vec::new(), Vec::new());
    while (xvfb.is_empty() || xterm.is_empty()) && t0.elapsed() < DEADLINE {
        xvfb = children_named(pid, "Xvfb");
        xterm = children_named(pid, "xterm");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!((xvfb.len(), xterm.len()), (1, 1), "{}", s.log());
    s.child.start_kill().expect("SIGKILL");
    s.child.wait().await.expect("reaped");
    let t0 = Instant::now();
    let left = || -> Vec<u32> {
        xvfb.iter()
            .chain(&xterm)
            .copied()
            .filter(|&p| !ended(p))
            .collect()
    };
    while !left().is_empty() && t0.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        left(),
        Vec::<u32>::new(),
        "still running 5 s after kill -9 of serve"
    );
}

#[tokio::test]
async fn a_dying_x_server_is_named_and_a_normal_stop_does_not_warn() {
    // A normal stop (SIGTERM): no warning (the clipboard's X connection closing is expected).
    let mut s = serve(&["--size", "320x240"]).await;
    let _ws = watch(&s.url).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = s.child.id().expect("running");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = tokio::time::timeout(DEADLINE, s.child.wait())
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = s.log();
    assert!(status.success(), "{status}\n{log}");
    // (Only the X connection's warnings: a loaded machine may warn of other things.)
    let warned = log
        .lines()
        .any(|l| l.contains("WARN") && (l.contains("clipboard") || l.contains("X11 server")));
    assert!(!warned, "a normal stop warns:\n{log}");

    // Its Xvfb killed: serve says so, not only that the terminal exited.
    let mut s = serve(&["--size", "320x240"]).await;
    let _ws = watch(&s.url).await;
    let pid = s.child.id().expect("running");
    let t0 = Instant::now();
    let mut xvfb = Vec::new();
    while xvfb.is_empty() && t0.elapsed() < DEADLINE {
        xvfb = children_named(pid, "Xvfb");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(xvfb[0] as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let status = tokio::time::timeout(DEADLINE, s.child.wait())
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = s.log();
    assert!(!status.success(), "{log}");
    assert!(
        log.contains("the private X server (Xvfb"),
        "the log names the X server:\n{log}"
    );
}
