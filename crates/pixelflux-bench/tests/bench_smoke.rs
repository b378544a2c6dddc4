//! `pixelflux-bench` end to end on a tiny picture: both sources (the X11 one through a real
//! Xvfb and the scene driver), both codecs, real decoders for PSNR. Checks the JSON, not speed.

use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Runs `cmd` to completion, or kills it and fails the test after `limit` (a hung bench must
/// not hang `cargo test`).
fn output_within(cmd: &mut Command, limit: Duration) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run pixelflux-bench");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(output) => output.expect("wait for pixelflux-bench"),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("pixelflux-bench did not finish within {limit:?}");
        }
    }
}

#[test]
fn bench_runs_every_path_and_writes_sound_json() {
    let dir = std::env::temp_dir().join(format!("pixelflux-bench-smoke-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("bench.json");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pixelflux-bench"));
    cmd.args(["--size", "256x128", "--seconds", "0.6", "--warmup", "0.2"])
        .args([
            "--scene",
            "static,typing,full",
            "--codec",
            "jpeg,h264",
            "--source",
            "both",
        ])
        .args(["--psnr-samples", "3", "--json"])
        .arg(&json);
    let out = output_within(&mut cmd, Duration::from_secs(300));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed: {stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The table: a header and one row per run.
    assert_eq!(stdout.lines().count(), 1 + 3 * 2 * 2, "{stdout}");
    assert!(stderr.contains("[12/12]"), "progress lines: {stderr}");

    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 12);
    for r in results {
        let name = format!("{} {} {}", r["scene"], r["codec"], r["source"]);
        assert!(r["frames"].as_u64().unwrap() > 0, "{name}: no frames");
        // Frames were grabbed, hashed and (but for the still scene) encoded: CPU was spent.
        assert!(r["cpu_cores"].as_f64().unwrap() > 0.0, "{name}");
        // Decoded stripes look like the source (real libjpeg-turbo / ffmpeg decoding). This
        // checks the bench's reconstruction, not the encoders (tests/python and
        // crates/pixelflux/tests hold those to standard encoders): measured 30.6 dB (typing,
        // JPEG q85 4:2:0 on small glyphs) to 38.7 dB here, while a stripe put at the wrong
        // place or a missing one leaves 10-15 dB. Hence 25 dB.
        let psnr = r["psnr_db"].as_f64().unwrap_or(0.0);
        assert!(psnr > 25.0, "{name}: PSNR {psnr}");
        // Up to the 3 asked for: a loaded machine may not reach the last sample's frame.
        let samples = r["psnr_samples"].as_u64().unwrap();
        assert!((1..=3).contains(&samples), "{name}: {samples} PSNR samples");
        let moving = r["scene"] != "static";
        let sent = r["frames_sent"].as_u64().unwrap();
        if moving {
            assert!(
                sent > 0 && r["bytes"].as_u64().unwrap() > 0,
                "{name}: nothing sent"
            );
            assert!(
                r["callback_latency_ms"]["p99"].as_f64().unwrap() > 0.0,
                "{name}"
            );
        } else {
            // A still screen sends its first frame and at most one paint-over of it, then
            // nothing; on a slow machine either may fall after the warm-up.
            assert!(sent <= 2, "{name}: {sent} frames sent of a still screen");
        }
        if r["source"] == "x11" {
            assert!(r["driver_fps"].as_f64().unwrap() > 0.0, "{name}");
        } else {
            assert!(r["driver_fps"].is_null(), "{name}");
        }
    }
}

#[test]
fn xvfb_tool_serves_a_display_until_stdin_closes() {
    use std::io::BufRead;
    use std::os::unix::fs::MetadataExt;

    let mut child = Command::new(env!("CARGO_BIN_EXE_pixelflux-bench"))
        .args(["xvfb", "--size", "64x48"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run pixelflux-bench xvfb");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let display = line.trim().to_owned();
    assert!(display.starts_with(':'), "said {line:?}");
    let socket = format!("/tmp/.X11-unix/X{}", &display[1..]);
    let inode = std::fs::metadata(&socket).expect("its socket").ino();
    drop(child.stdin.take());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    // Gone, or another server's socket under the freed number.
    assert!(std::fs::metadata(&socket).map_or(true, |m| m.ino() != inode));
}

/// The real applications (xterm, xclock from `scripts/install-deps.sh test`) run on the
/// bench's Xvfb and are measured like the scenes, without PSNR (no reference picture).
#[test]
fn bench_runs_real_applications() {
    let dir = std::env::temp_dir().join(format!("pixelflux-bench-apps-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("bench.json");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pixelflux-bench"));
    cmd.args(["--size", "320x240", "--seconds", "1", "--warmup", "0.3"])
        .args([
            "--app",
            "terminal,clock",
            "--codec",
            "jpeg",
            "--source",
            "x11",
        ])
        .arg("--json")
        .arg(&json);
    let out = output_within(&mut cmd, Duration::from_secs(120));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed: {stderr}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let results = v["results"].as_array().unwrap();
    let scenes: Vec<&str> = results
        .iter()
        .map(|r| r["scene"].as_str().unwrap())
        .collect();
    assert_eq!(scenes, ["app-terminal", "app-clock"]);
    for r in results {
        let name = &r["scene"];
        assert!(r["frames"].as_u64().unwrap() > 0, "{name}: no frames");
        assert!(r["psnr_db"].is_null(), "{name}: PSNR without a reference");
        assert!(r["driver_fps"].is_null(), "{name}");
    }
    // xterm prints a log in a loop: the screen scrolls all the time.
    assert!(
        results[0]["frames_sent"].as_u64().unwrap() > 0,
        "terminal sent nothing"
    );
}

/// What bench/compare.py's PSNR of a real application rests on: `app` starts it in its own
/// process group, stopping that group stills the screen (xterm and its log writer alike), and
/// `snap` photographs the screen; a running terminal's screen keeps changing.
#[test]
fn a_stopped_application_holds_still_for_its_screenshot() {
    use std::io::BufRead;
    let bench = env!("CARGO_BIN_EXE_pixelflux-bench");
    let mut xvfb = Command::new(bench)
        .args(["xvfb", "--size", "320x240"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run pixelflux-bench xvfb");
    let mut display = String::new();
    std::io::BufReader::new(xvfb.stdout.take().unwrap())
        .read_line(&mut display)
        .unwrap();
    let display = display.trim().to_owned();
    let mut app = Command::new(bench)
        .args([
            "app",
            "--app",
            "terminal",
            "--size",
            "320x240",
            "--display",
            &display,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run pixelflux-bench app");
    let mut ready = String::new();
    std::io::BufReader::new(app.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    let pgid: i32 = ready
        .strip_prefix("ready ")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("said {ready:?}"));
    let dir = std::env::temp_dir().join(format!("pixelflux-bench-snap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let snap = |name: &str| -> Vec<u8> {
        let path = dir.join(name);
        let out = output_within(
            Command::new(bench)
                .args(["snap", "--size", "320x240", "--display", &display, "--out"])
                .arg(&path),
            Duration::from_secs(30),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read(&path).unwrap()
    };
    let running = [snap("a"), {
        std::thread::sleep(Duration::from_millis(300));
        snap("b")
    }];
    let group = nix::unistd::Pid::from_raw(pgid);
    nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGSTOP).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let stopped = [snap("c"), {
        std::thread::sleep(Duration::from_millis(300));
        snap("d")
    }];
    nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGCONT).unwrap();
    drop(app.stdin.take());
    assert!(app.wait().unwrap().success());
    drop(xvfb.stdin.take());
    xvfb.wait().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(running[0].len(), 320 * 240 * 4);
    assert_ne!(running[0], running[1], "the terminal did not scroll");
    assert_eq!(
        stopped[0], stopped[1],
        "the stopped terminal still changed the screen"
    );
}

/// Serve's JPEG stream with scroll detection: the scroll scene is sent as copy-rows plus the
/// exposed stripes, and the PSNR rebuild applies the copies (a rebuild without them would
/// be far off the source).
#[test]
fn bench_measures_scroll_detection_with_copies_in_the_rebuild() {
    let dir = std::env::temp_dir().join(format!("pixelflux-bench-scroll-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("bench.json");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pixelflux-bench"));
    cmd.args(["--size", "320x256", "--seconds", "0.8", "--warmup", "0.2"])
        .args([
            "--scene",
            "scroll",
            "--codec",
            "jpeg",
            "--source",
            "synthetic",
        ])
        .args(["--scroll-detection", "--psnr-samples", "3", "--json"])
        .arg(&json);
    let out = output_within(&mut cmd, Duration::from_secs(120));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed: {stderr}");
    assert!(
        stderr.contains("copy-rows in"),
        "no copy-rows count: {stderr}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let r = &v["results"][0];
    let psnr = r["psnr_db"].as_f64().expect("a PSNR");
    assert!(psnr > 30.0, "rebuilt at {psnr:.1} dB");
    // Copy-rows and the one stripe with the new rows: 2 messages a frame, not all 4 stripes.
    let per_frame = r["stripes_per_frame"].as_f64().unwrap();
    assert!(per_frame <= 2.5, "{per_frame} stripes per frame");
}

/// With `RUST_BACKTRACE=1`, a run-time error is one `error: …` line (status 1) and a value out
/// of range is refused while parsing, naming the option and the range (status 2).
#[test]
fn bench_errors_are_plain_with_rust_backtrace_set() {
    let bench = || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pixelflux-bench"));
        cmd.env("RUST_BACKTRACE", "1");
        cmd
    };
    let out = output_within(
        bench().args(["snap", "--display", ":59000", "--out", "/nonexistent/x"]),
        Duration::from_secs(30),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("error: ") && err.contains(":59000"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    for (args, option, range) in [
        (&["--seconds", "NaN"][..], "--seconds", "at most 3600"),
        (&["--seconds", "-1"][..], "--seconds", "more than 0"),
        (&["--warmup=inf"][..], "--warmup", "at most 600"),
        (&["--psnr-samples", "-3"][..], "--psnr-samples", "0..=10000"),
        (&["--fps", "0"][..], "--fps", "at least 0.01"),
        (&["--scene", "nope"][..], "--scene", "desktop"),
    ] {
        let out = output_within(bench().args(args), Duration::from_secs(30));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(option) && err.contains(range),
            "{args:?}: {err}"
        );
        assert!(!err.contains("backtrace"), "{args:?}: {err}");
    }
}
