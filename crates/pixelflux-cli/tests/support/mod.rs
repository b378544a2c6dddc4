//! What the `serve` process tests share: starting `pixelflux serve` and reading the URL it
//! prints first, watching its stream, and finding its child processes.

// Each test binary uses part of this module.
#![allow(dead_code)]

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncBufReadExt;

/// Every wait ends by this deadline.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// `pixelflux serve args…` as the tests start it: the token variables of the environment
/// removed (so only `args` set tokens), stdout and stderr piped, killed when dropped.
pub fn serve_command(args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_pixelflux"));
    command
        .arg("serve")
        .args(args)
        .env_remove("PIXELFLUX_TOKEN")
        .env_remove("PIXELFLUX_VIEW_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// `pixelflux serve` started with `args` (the token variables of the environment removed, so
/// only `args` set tokens), and its first line (the URL) read by [`DEADLINE`]. Only that line
/// is read and the pipe then closed: `serve` must go on with its stdout gone (it once panicked
/// printing its second line). The child is killed when dropped.
pub async fn spawn_serve(args: &[&str]) -> (tokio::process::Child, String) {
    let mut child = serve_command(args)
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary runs");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("piped")).lines();
    let line = tokio::time::timeout(DEADLINE, lines.next_line())
        .await
        .expect("serve printed its URL by the deadline")
        .expect("stdout")
        .expect("a line");
    (child, line)
}

/// The `host:port` of an `open http(s)://host:port/...` line.
pub fn addr_of(line: &str) -> String {
    let rest = line
        .strip_prefix("open http://")
        .or_else(|| line.strip_prefix("open https://"))
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    rest.split('/').next().unwrap_or_default().to_string()
}

/// A WebSocket to serve's stream.
pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens the stream of the page at `url` (`http://host:port/`: its `/ws`) by [`DEADLINE`].
pub async fn watch(url: &str) -> Ws {
    let ws_url = format!("{}ws", url.replacen("http://", "ws://", 1));
    tokio::time::timeout(DEADLINE, tokio_tungstenite::connect_async(&ws_url))
        .await
        .expect("a WebSocket by the deadline")
        .expect("the upgrade")
        .0
}

/// The pids of `pid`'s children (from every thread's `children` list in /proc).
pub fn children(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return found;
    };
    for task in tasks.flatten() {
        if let Ok(list) = std::fs::read_to_string(task.path().join("children")) {
            found.extend(
                list.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
    }
    found
}

/// The pids of `pid`'s children named `comm`.
pub fn children_named(pid: u32, comm: &str) -> Vec<u32> {
    children(pid)
        .into_iter()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == comm)
        })
        .collect()
}
