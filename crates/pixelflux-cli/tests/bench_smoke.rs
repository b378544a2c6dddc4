//! `pixelflux bench` end to end on a tiny picture: both sources (the X11 one through a real
//! Xvfb and the scene driver), both codecs, real decoders for PSNR. Checks the JSON, not speed.

use std::process::Command;

#[test]
fn bench_runs_every_path_and_writes_sound_json() {
    let dir = std::env::temp_dir().join(format!("pixelflux-bench-smoke-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("bench.json");
    let out = Command::new(env!("CARGO_BIN_EXE_pixelflux"))
        .args([
            "bench",
            "--size",
            "256x128",
            "--seconds",
            "0.6",
            "--warmup",
            "0.2",
        ])
        .args([
            "--scene",
            "static,typing,full",
            "--codec",
            "jpeg,h264",
            "--source",
            "both",
        ])
        .args(["--psnr-samples", "3", "--json"])
        .arg(&json)
        .output()
        .expect("run pixelflux bench");
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
        assert!(r["cpu_cores"].as_f64().unwrap() >= 0.0, "{name}");
        // Decoded stripes look like the source (real libjpeg-turbo / ffmpeg decoding).
        let psnr = r["psnr_db"].as_f64().unwrap_or(0.0);
        assert!(psnr > 30.0, "{name}: PSNR {psnr}");
        assert_eq!(r["psnr_samples"], 3, "{name}");
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
            // After the warm-up a still screen sends nothing.
            assert_eq!(sent, 0, "{name}");
        }
        if r["source"] == "x11" {
            assert!(r["driver_fps"].as_f64().unwrap() > 0.0, "{name}");
        } else {
            assert!(r["driver_fps"].is_null(), "{name}");
        }
    }
}
