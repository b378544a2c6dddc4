//! `pixelflux snapshot` and `pixelflux capture` end to end: the snapshot of a real Xvfb,
//! decoded as PNG (and PPM), equals the pixels drawn on the screen; SIGTERM and SIGINT stop
//! `capture` with its summary and status 0.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use pixelflux_testkit::{test_pattern, Xvfb};

const BIN: &str = env!("CARGO_BIN_EXE_pixelflux");

/// Packed RGB of `frame` (BGRX) cropped to `w` x `h` at (`x`, `y`).
fn rgb_of(frame: &pixelflux::OwnedFrame, x: u32, y: u32, w: u32, h: u32) -> Vec<u8> {
    let mut rgb = Vec::new();
    for row in y..y + h {
        for col in x..x + w {
            let i = row as usize * frame.stride() + col as usize * 4;
            rgb.extend_from_slice(&[frame.data[i + 2], frame.data[i + 1], frame.data[i]]);
        }
    }
    rgb
}

fn decode_png(path: &Path) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(std::fs::File::open(path).expect("snapshot written"));
    let mut reader = decoder.read_info().expect("a PNG file");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("PNG data");
    assert_eq!(info.color_type, png::ColorType::Rgb);
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

fn snapshot(args: &[&str]) {
    let out = Command::new(BIN)
        .arg("snapshot")
        .args(args)
        .output()
        .expect("run pixelflux snapshot");
    assert!(
        out.status.success(),
        "snapshot {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn snapshot_writes_the_screen_as_png_or_ppm() {
    let xvfb = Xvfb::start(320, 200);
    let pattern = test_pattern(320, 200, 3);
    xvfb.connect().put(&pattern, 0, 0);
    let dir = tempfile::tempdir().unwrap();

    // The whole screen, PNG by default.
    let png_path = dir.path().join("screen.png");
    snapshot(&[
        "--display",
        &xvfb.display,
        "--out",
        png_path.to_str().unwrap(),
    ]);
    let (w, h, rgb) = decode_png(&png_path);
    assert_eq!((w, h), (320, 200));
    assert!(
        rgb == rgb_of(&pattern, 0, 0, 320, 200),
        "PNG differs from the screen"
    );

    // A region; PNG although the name says nothing.
    let region_path = dir.path().join("region");
    snapshot(&[
        "--display",
        &xvfb.display,
        "--region",
        "64x32+16+8",
        "--out",
        region_path.to_str().unwrap(),
    ]);
    let (w, h, rgb) = decode_png(&region_path);
    assert_eq!((w, h), (64, 32));
    assert!(rgb == rgb_of(&pattern, 16, 8, 64, 32), "region differs");

    // PPM on request: by --format and by the file name.
    for (name, extra) in [("a.ppm", &[][..]), ("b.img", &["--format", "ppm"][..])] {
        let path = dir.path().join(name);
        let mut args = vec!["--display", &xvfb.display, "--region", "64x32+16+8"];
        args.extend_from_slice(extra);
        args.extend(["--out", path.to_str().unwrap()]);
        snapshot(&args);
        let bytes = std::fs::read(&path).unwrap();
        let header = b"P6\n64 32\n255\n";
        assert!(bytes.starts_with(header), "{name}: not a 64x32 P6 PPM");
        assert!(
            bytes[header.len()..] == rgb_of(&pattern, 16, 8, 64, 32)[..],
            "{name}: PPM differs"
        );
    }

    // A missing display is named as written, not as Rust's `Some(":N")`.
    let out = Command::new(BIN)
        .args(["snapshot", "--display", ":9977", "--out"])
        .arg(dir.path().join("none.png"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("display :9977") && !stderr.contains("Some("),
        "{stderr}"
    );
}

#[test]
fn display_numbers_out_of_range_are_refused_naming_the_range() {
    let dir = tempfile::tempdir().unwrap();
    // As --display (refused while parsing) and as $DISPLAY (refused before connecting), both
    // usage errors (status 2); x11rb itself would overflow 6000 + N (a panic in a debug build).
    for (args, env) in [
        (&["--display", ":60000"][..], None),
        (&[][..], Some(":60000.0")),
    ] {
        let mut cmd = Command::new(BIN);
        cmd.arg("snapshot")
            .args(args)
            .arg("--out")
            .arg(dir.path().join("x.png"));
        if let Some(env) = env {
            cmd.env("DISPLAY", env);
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("display number 60000") && stderr.contains("0 to 59535"),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// Starts `capture` on a scene, waits for its first per-second line, sends `signal`, and
/// returns (exit status, everything it printed).
fn capture_until(signal: nix::sys::signal::Signal) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(BIN)
        .args(["capture", "--scene", "typing", "--region", "256x128"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run pixelflux capture");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let mut printed = String::new();
    // The banner, then a figures line once a second.
    loop {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => {
                let figures = line.contains("fps ");
                printed.push_str(&line);
                printed.push('\n');
                if figures && !line.starts_with("capturing") {
                    break;
                }
            }
            Err(_) => {
                let _ = child.kill();
                panic!("no figures line from capture within 20 s: {printed}");
            }
        }
    }
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, signal).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("capture did not stop within 20 s of {signal}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    reader.join().unwrap();
    printed.extend(rx.try_iter().map(|l| l + "\n"));
    (status, printed)
}

#[test]
fn capture_stops_on_sigterm_and_sigint_with_its_summary() {
    for signal in [
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGINT,
    ] {
        let (status, printed) = capture_until(signal);
        assert_eq!(status.code(), Some(0), "{signal}: {printed}");
        assert!(
            printed.contains("done: "),
            "{signal}: no summary: {printed}"
        );
        assert!(printed.contains("ms per frame"), "{signal}: {printed}");
    }
}
