//! The `pixelflux` command's options as a user meets them, with `RUST_BACKTRACE=1` set: every
//! numeric option refuses values out of its range (NaN, infinity, negatives, too large) at
//! parse time, naming the option and the range (status 2, as clap's usage errors); options
//! that would be ignored together are refused; a run-time error is one `error: …` line with
//! its causes and status 1, never a backtrace; `snapshot` refuses a file name whose extension
//! is not a format it writes; `--help` lists every scene.

use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_pixelflux");

/// Runs `pixelflux args…` with `RUST_BACKTRACE=1` and no `$DISPLAY` (a scene, a private Xvfb
/// or an error; never the tester's screen).
fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .env_remove("DISPLAY")
        .output()
        .expect("run pixelflux")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// No backtrace and no panic: the error alone.
fn assert_plain_error(args: &[&str], out: &Output) {
    let err = stderr(out);
    for noise in [
        "backtrace",
        "Backtrace",
        "panicked",
        "Caused by",
        "at /",
        "Stack",
    ] {
        assert!(!err.contains(noise), "{args:?} printed {noise:?}:\n{err}");
    }
}

/// `args` is refused by the parser (status 2) with a message naming `option` and `range`.
fn assert_refused(args: &[&str], option: &str, range: &str) {
    let out = run(args);
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{args:?} was not refused:\n{err}"
    );
    assert!(
        err.contains(option) && err.contains(range),
        "{args:?}: the error names neither {option:?} nor {range:?}:\n{err}"
    );
    assert_plain_error(args, &out);
}

#[test]
fn numeric_options_refuse_values_out_of_range_naming_option_and_range() {
    let secs = "more than 0 and at most 31536000";
    for bad in ["NaN", "inf", "-inf", "1e300", "0", "-1", "ten"] {
        // `--seconds -1` (a separate word) reaches the range check too, not "unexpected
        // argument" (clap takes a separate `-inf` for a flag: `--seconds=-inf` is refused).
        if bad != "-inf" {
            assert_refused(
                &["capture", "--scene", "typing", "--seconds", bad],
                "--seconds",
                if bad == "ten" { "not a number" } else { secs },
            );
        }
        assert_refused(
            &["capture", "--scene", "typing", &format!("--seconds={bad}")],
            "--seconds",
            if bad == "ten" { "not a number" } else { secs },
        );
    }
    let fps = "at least 0.01 and at most 1000";
    for sub in ["capture", "serve"] {
        for bad in ["NaN", "inf", "0", "-5", "0.001", "1001"] {
            assert_refused(&[sub, "--scene", "static", "--fps", bad], "--fps", fps);
        }
        for bad in ["0", "101", "-1", "1e3"] {
            assert_refused(&[sub, "--quality", bad], "--quality", "1..=100");
        }
        for bad in ["52", "-1", "300"] {
            assert_refused(&[sub, "--crf", bad], "--crf", "0..=51");
        }
        for bad in ["0", "-100", "1000001"] {
            assert_refused(
                &[sub, "--bitrate-kbps", bad],
                "--bitrate-kbps",
                "1..=1000000",
            );
        }
        for bad in ["15", "17", "-64", "16386"] {
            assert_refused(
                &[sub, "--stripe-height", bad],
                "--stripe-height",
                "0 (per codec) or an even number of rows from 16 to 16384",
            );
        }
        assert_refused(&[sub, "--region", "0x10"], "--region", "1..=16384");
    }
    // serve's private screen takes what a page's resize is clamped to.
    for bad in [
        "10x10",
        "63x480",
        "640x63",
        "3841x2160",
        "3840x2161",
        "640x360+1+1",
        "big",
    ] {
        assert_refused(&["serve", "--size", bad], "--size", "64x64 to 3840x2160");
    }
}

#[test]
fn options_that_would_be_ignored_together_are_refused() {
    for (args, first, second) in [
        (
            &["capture", "--scene", "typing", "--display", ":1"][..],
            "--scene",
            "--display",
        ),
        (
            &[
                "snapshot",
                "--scene",
                "full",
                "--display",
                ":1",
                "--out",
                "x.png",
            ],
            "--scene",
            "--display",
        ),
        (
            &["serve", "--size", "640x360", "--scene", "typing"],
            "--size",
            "--scene",
        ),
        (
            &["serve", "--size", "640x360", "--display", ":1"],
            "--size",
            "--display",
        ),
        (
            &["serve", "--new-display", "--scene", "video"],
            "--new-display",
            "--scene",
        ),
    ] {
        let out = run(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}:\n{err}");
        assert!(
            err.contains("cannot be used with") && err.contains(first) && err.contains(second),
            "{args:?}:\n{err}"
        );
    }
    // With $DISPLAY set, --size (a private screen's size) needs --new-display.
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--size", "640x360"])
        .env("RUST_BACKTRACE", "1")
        .env("DISPLAY", ":4242")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("$DISPLAY is set (:4242)") && err.contains("--new-display"),
        "{err}"
    );
    assert_plain_error(&["serve", "--size"], &out);
}

#[test]
fn run_time_errors_are_one_line_with_their_causes_and_status_1() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/dir/x.png");
    let args = [
        "snapshot",
        "--scene",
        "static",
        "--out",
        missing.to_str().unwrap(),
    ];
    let out = run(&args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    // The context and its cause, on one line.
    assert!(
        err.starts_with("error: cannot write ") && err.contains("No such file or directory"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "more than the error:\n{err}");
    assert_plain_error(&args, &out);
}

#[test]
fn snapshot_names_the_formats_it_writes_and_help_lists_every_scene() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["x.jpg", "x.jpeg", "x.webp"] {
        let path = dir.path().join(name);
        let args = [
            "snapshot",
            "--scene",
            "static",
            "--out",
            path.to_str().unwrap(),
        ];
        let out = run(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert!(
            err.contains(".png") && err.contains(".ppm") && err.contains("--format"),
            "{name}: {err}"
        );
        assert!(!path.exists(), "{name} was written");
        assert_plain_error(&args, &out);
    }
    // --format says what the name does not.
    let path = dir.path().join("x.jpg");
    let out = run(&[
        "snapshot",
        "--scene",
        "static",
        "--region",
        "64x32",
        "--format",
        "png",
        "--out",
        path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(std::fs::read(&path).unwrap().starts_with(b"\x89PNG"));

    for sub in ["capture", "serve", "snapshot"] {
        let out = run(&[sub, "--help"]);
        let help = String::from_utf8_lossy(&out.stdout);
        let scenes = pixelflux::Scene::ALL.map(|s| s.name()).join(", ");
        assert!(
            help.contains(&format!("[possible values: {scenes}]")),
            "{sub} --help does not list {scenes}:\n{help}"
        );
    }
    // Every listed scene plays.
    for scene in pixelflux::Scene::ALL {
        let path = dir.path().join(format!("{scene}.ppm"));
        let out = run(&[
            "snapshot",
            "--scene",
            scene.name(),
            "--region",
            "64x32",
            "--out",
            path.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{scene}: {}", stderr(&out));
    }
}
