//! `pixelflux serve` as a process, against clients that push its limits: a viewer of a screen
//! whose full refresh is larger than the default queue budget, and a client flooding
//! WebSocket pings without ever reading (server memory sampled from /proc).

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod support;
use support::{addr_of, spawn_serve, DEADLINE};

struct Serve {
    child: tokio::process::Child,
    addr: String,
}

impl Serve {
    async fn start(args: &[&str]) -> Serve {
        let (child, line) = spawn_serve(&[&["--listen", "127.0.0.1:0"][..], args].concat()).await;
        let addr = addr_of(&line);
        assert_eq!(
            line,
            format!("open http://{addr}/"),
            "unexpected first line"
        );
        Serve { child, addr }
    }

    fn rss_kib(&self) -> u64 {
        let pid = self.child.id().expect("running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }
}

#[tokio::test]
async fn a_refresh_larger_than_the_queue_budget_completes_then_traffic_stops() {
    // 7680x4320 at quality 100: a full frame well over the 8 MiB default queue budget.
    let (w, h, stripe) = (7680u32, 4320u32, 64u32);
    let serve = Serve::start(&[
        "--scene",
        "static",
        "--region",
        &format!("{w}x{h}"),
        "--quality",
        "100",
        "--fps",
        "10",
    ])
    .await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", serve.addr))
        .await
        .expect("connects");
    let stripes = h.div_ceil(stripe) as usize;
    let mut seen = vec![false; stripes];
    let (mut bytes, mut messages) = (0usize, 0usize);
    let t0 = Instant::now();
    // The refresh a joining viewer triggers arrives whole.
    while seen.iter().any(|s| !s) {
        assert!(
            t0.elapsed() < DEADLINE,
            "rows still missing after {DEADLINE:?}: {bytes} bytes"
        );
        match tokio::time::timeout(DEADLINE, ws.next()).await {
            Ok(Some(Ok(m))) if m.is_binary() => {
                let d = m.into_data();
                assert_eq!(d[0], 0x03, "a tagged JPEG stripe");
                let y = u32::from(u16::from_be_bytes([d[4], d[5]]));
                seen[(y / stripe) as usize] = true;
                bytes += d.len();
                messages += 1;
            }
            Ok(Some(Ok(_))) => {}
            other => {
                panic!("the stream ended or went silent before the refresh completed: {other:?}")
            }
        }
    }
    assert!(
        bytes > 8 << 20,
        "the frame ({bytes} bytes) should exceed the 8 MiB budget"
    );
    // Then a still screen sends nothing more: no loop of drop and refresh.
    let mut after = 0usize;
    loop {
        assert!(
            t0.elapsed() < 2 * DEADLINE,
            "still streaming: {after} more bytes after the refresh of {bytes}"
        );
        match tokio::time::timeout(Duration::from_secs(3), ws.next()).await {
            Err(_) => break, // silent: done
            Ok(Some(Ok(m))) => after += m.len(),
            Ok(other) => panic!("the stream ended: {other:?}"),
        }
    }
    // One full frame may come twice: a viewer that joins while the capture's first frame (a
    // full one) is being encoded gets that frame and then its own refresh. Not more.
    assert!(
        after <= bytes + bytes / 10,
        "{after} bytes after a refresh of {bytes}"
    );
    println!("refresh: {messages} stripes, {bytes} bytes; then {after} bytes");
}

#[tokio::test]
async fn a_ping_flood_does_not_grow_server_memory_and_is_cut_off() {
    let serve = Serve::start(&["--scene", "static", "--region", "64x64"]).await;
    let mut s = TcpStream::connect(&serve.addr).await.unwrap();
    let req = format!(
        "GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        serve.addr
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut head = [0u8; 12];
    tokio::time::timeout(DEADLINE, s.read_exact(&mut head))
        .await
        .expect("an upgrade answer")
        .unwrap();
    assert_eq!(&head, b"HTTP/1.1 101");
    let rss0 = serve.rss_kib();
    // Masked ping frames with 125-byte payloads; each would queue a 127-byte pong.
    let mut ping = vec![0x89, 0x80 | 125, 1, 2, 3, 4];
    ping.extend((0..125).map(|i| b'p' ^ [1, 2, 3, 4][i % 4]));
    let batch: Vec<u8> = ping
        .iter()
        .copied()
        .cycle()
        .take(ping.len() * 1000)
        .collect();
    let mut sent = 0usize;
    let mut rss_max = rss0;
    let t0 = Instant::now();
    // Up to 2M pings (260 MB), never reading; the server should cut us off long before.
    while sent < 2_000_000 && t0.elapsed() < DEADLINE {
        match tokio::time::timeout(Duration::from_secs(5), s.write_all(&batch)).await {
            Ok(Ok(())) => sent += 1000,
            Ok(Err(_)) => break, // closed by the server
            Err(_) => break,     // the server stopped reading: also cut off
        }
        rss_max = rss_max.max(serve.rss_kib());
    }
    let growth_mib = (rss_max.saturating_sub(rss0)) as f64 / 1024.0;
    assert!(
        growth_mib < 16.0,
        "server RSS grew {growth_mib:.1} MiB over {sent} pings"
    );
    assert!(sent < 2_000_000, "the flood was never cut off");
    // The connection is closed (not merely stalled): reading reaches its end.
    let mut rest = Vec::new();
    let end = tokio::time::timeout(DEADLINE, s.read_to_end(&mut rest)).await;
    assert!(end.is_ok(), "the connection is still open, silent");
    println!("ping flood: cut off after {sent} pings; RSS {rss0} -> max {rss_max} KiB");
}
