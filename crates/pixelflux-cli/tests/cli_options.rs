//! The `pixelflux` command's options as a user meets them, with `RUST_BACKTRACE=1` set: every
//! numeric option refuses values out of its range (NaN, infinity, negatives, too large) at
//! parse time, naming the option and the range (status 2, as clap's usage errors); options
//! that would be ignored together are refused (one codec's options with the other codec, a
//! scene with a region offset, `--cursor` or a command), as are settings the options make that
//! cannot run (naming the options) and display names that are not ones; `serve` takes its port
//! and reads its TLS files before starting anything; a run-time error is one `error: …` line with
//! its causes and status 1, never a backtrace; `snapshot` refuses a file name whose extension
//! is not a format it writes (status 2); `--help` lists every scene.

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
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert!(
            err.contains("--out")
                && err.contains(".png")
                && err.contains(".ppm")
                && err.contains("--format"),
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

/// Runs `pixelflux args…` (no `$DISPLAY` unless `display` gives one) and kills it after
/// 20 s: an option that should be refused and is not must not hang the test (`serve` would
/// serve on).
fn run_bounded(args: &[&str], display: Option<&str>) -> Output {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .env_remove("DISPLAY")
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    if let Some(display) = display {
        command.env("DISPLAY", display);
    }
    let mut child = command.spawn().expect("run pixelflux");
    let t0 = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > std::time::Duration::from_secs(20) {
            child.kill().unwrap();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// `args` is refused as a usage error (status 2) whose message contains each of `words`.
fn assert_usage_error(args: &[&str], display: Option<&str>, words: &[&str]) -> String {
    let out = run_bounded(args, display);
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{args:?} was not refused:\n{err}"
    );
    for word in words {
        assert!(err.contains(word), "{args:?}: no {word:?} in:\n{err}");
    }
    assert_plain_error(args, &out);
    err
}

/// Every option of one codec is refused with the other (JPEG is the default), a scene is
/// refused with a `--region` offset (it plays at the region's size), with `--cursor` (it has
/// no pointer) and with `serve`'s command; `--crf` with `--bitrate-kbps` (a constant bitrate
/// replaces the CRF). Each names both sides, in clap's words, for every subcommand that has
/// the options.
#[test]
fn codec_and_source_specific_options_are_refused_with_the_other() {
    let h264 = ["--codec", "h264"];
    let jpeg = ["--codec", "jpeg"];
    let none: [&str; 0] = [];
    let cases: Vec<(Vec<&str>, &str, &str)> = vec![
        (
            [&h264[..], &["--quality", "50"]].concat(),
            "--quality",
            "--codec h264",
        ),
        (
            [&h264[..], &["--jpeg-subsampling", "444"]].concat(),
            "--jpeg-subsampling",
            "--codec h264",
        ),
        (
            [&jpeg[..], &["--crf", "20"]].concat(),
            "--crf",
            "--codec jpeg",
        ),
        (vec!["--crf", "20"], "--crf", "--codec jpeg' (the default)"),
        (
            [&none[..], &["--bitrate-kbps", "2000"]].concat(),
            "--bitrate-kbps",
            "--codec jpeg",
        ),
        (vec!["--h264-fullcolor"], "--h264-fullcolor", "--codec jpeg"),
        (
            [&h264[..], &["--crf", "20", "--bitrate-kbps", "2000"]].concat(),
            "--crf",
            "--bitrate-kbps",
        ),
        (vec!["--cursor"], "--scene", "--cursor"),
    ];
    for sub in ["capture", "serve"] {
        let tail: &[&str] = if sub == "capture" {
            &["--seconds", "1"]
        } else {
            &["--listen", "127.0.0.1:0"]
        };
        for (args, option, other) in &cases {
            let args = [&[sub, "--scene", "static"][..], args, tail].concat();
            assert_usage_error(&args, None, &["cannot be used with", option, other]);
        }
    }
    assert_usage_error(
        &[
            "serve",
            "--scene",
            "static",
            "--codec",
            "h264",
            "--no-scroll-detection",
            "--listen",
            "127.0.0.1:0",
        ],
        None,
        &[
            "cannot be used with",
            "--no-scroll-detection",
            "--codec h264",
        ],
    );
    assert_usage_error(
        &["serve", "--scene", "static", "--", "xterm"],
        None,
        &["cannot be used with", "--scene", "COMMAND"],
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.png");
    let out = out.to_str().unwrap();
    for sub in [
        &["snapshot", "--out", out][..],
        &["capture", "--seconds", "1"],
        &["serve", "--listen", "127.0.0.1:0"],
    ] {
        let args = [sub, &["--scene", "static", "--region", "64x32+8+4"]].concat();
        assert_usage_error(
            &args,
            None,
            &[
                "cannot be used with",
                "--region 64x32+8+4",
                "--scene static",
            ],
        );
    }
    // The same options where they apply run; a region at +0+0 is a size.
    for args in [
        &[
            "capture",
            "--codec",
            "h264",
            "--crf",
            "20",
            "--h264-fullcolor",
        ][..],
        &["capture", "--codec", "h264", "--bitrate-kbps", "900"],
        &["capture", "--quality", "50", "--jpeg-subsampling", "444"],
        &["capture", "--region", "64x32+0+0"],
    ] {
        let args = [args, &["--scene", "static", "--seconds", "0.2"]].concat();
        let out = run_bounded(&args, None);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
}

/// A setting the options make that the capture cannot run is a usage error naming the
/// options, not the library's setting (`h264_crf`), before anything starts.
#[test]
fn settings_errors_name_the_options() {
    for sub in ["capture", "serve"] {
        let tail: &[&str] = if sub == "capture" {
            &["--seconds", "1"]
        } else {
            &["--listen", "127.0.0.1:0"]
        };
        let args = [
            &[sub, "--scene", "static", "--codec", "h264", "--crf", "0"],
            tail,
        ]
        .concat();
        let err = assert_usage_error(&args, None, &["--crf 0", "--h264-fullcolor"]);
        assert!(
            !err.contains("h264_crf") && !err.contains("h264_fullcolor"),
            "{err}"
        );
        let args = [
            &[
                sub, "--scene", "static", "--codec", "h264", "--region", "1x64",
            ],
            tail,
        ]
        .concat();
        let err = assert_usage_error(&args, None, &["--region", "H.264"]);
        assert!(!err.contains("capture_width"), "{err}");
    }
}

/// A display name that is not one fails at once (no retry), saying what names look like,
/// from `--display` or `$DISPLAY`; one nobody answers at is retried by `serve`, which says so
/// once.
#[test]
fn display_names_are_checked_at_once_and_a_silent_display_is_reported() {
    let looks = ["not an X display name", ":N", "host:N[.S]"];
    for sub in [
        &["capture", "--seconds", "1"][..],
        &["serve", "--listen", "127.0.0.1:0"],
    ] {
        let err = assert_usage_error(&[sub, &["--display", "garbage"]].concat(), None, &looks);
        assert!(!err.contains("Failed to parse"), "{err}");
        let err = assert_usage_error(sub, Some("garbage"), &looks);
        assert!(
            err.contains("$DISPLAY") && !err.contains("retrying"),
            "{err}"
        );
    }
    // A display number with no server behind it (no socket).
    let number = (59100..59500)
        .find(|n| !std::path::Path::new(&format!("/tmp/.X11-unix/X{n}")).exists())
        .unwrap();
    let display = format!(":{number}");
    let out = run_bounded(
        &["serve", "--display", &display, "--listen", "127.0.0.1:0"],
        None,
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.matches("retrying").count(), 1, "{err}");
    assert!(
        err.contains(&format!("X display {display} does not answer")),
        "{err}"
    );
    assert!(
        err.contains(&format!("cannot connect to X display {display}")),
        "{err}"
    );
}

/// A port in use is found before anything starts (no Xvfb, no command), and the error says
/// how to pick another.
#[test]
fn a_busy_port_fails_before_anything_starts_and_names_listen() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("started");
    // No display: serve would start an Xvfb and run the command in it.
    let out = run_bounded(
        &[
            "serve",
            "--listen",
            &addr,
            "--",
            "touch",
            marker.to_str().unwrap(),
        ],
        None,
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("cannot listen on {addr}"))
            && err.contains("Address already in use")
            && err.contains("use --listen HOST:PORT to choose another port"),
        "{err}"
    );
    assert!(
        !marker.exists(),
        "the command ran before the port was taken"
    );
    assert!(!err.contains("Xvfb") && !err.contains("started"), "{err}");
    drop(busy);
}

/// An address the machine does not have, or one with no host, is named as what is wrong (not
/// the port, not a DNS failure).
#[test]
fn listen_addresses_that_cannot_be_listened_on_say_why() {
    // 192.0.2.0/24 is reserved for documentation (RFC 5737): no machine has it.
    let out = run_bounded(
        &[
            "serve",
            "--scene",
            "static",
            "--listen",
            "192.0.2.1:0",
            "--token",
            "t",
        ],
        None,
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot listen on 192.0.2.1:0")
            && err.contains("this machine has no such address"),
        "{err}"
    );
    let out = run_bounded(&["serve", "--scene", "static", "--listen", ":8080"], None);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("give the host too, e.g. 127.0.0.1:8080") && !err.contains("lookup"),
        "{err}"
    );
}

/// A TLS file that cannot be read is named: the certificate or the key, and its path.
#[test]
fn tls_file_errors_say_which_file() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    let (cert_s, key_s) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let serve = |cert: &str, key: &str| {
        run_bounded(
            &[
                "serve",
                "--scene",
                "static",
                "--listen",
                "127.0.0.1:0",
                "--tls-cert",
                cert,
                "--tls-key",
                key,
            ],
            None,
        )
    };
    let out = serve(cert_s, key_s);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("TLS certificate (--tls-cert) {cert_s}"))
            && !err.contains("--tls-key"),
        "{err}"
    );
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    let out = serve(cert_s, key_s);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("TLS key (--tls-key) {key_s}")) && !err.contains("certificate"),
        "{err}"
    );
    // An empty certificate file is named as such, not as a key mismatch.
    std::fs::write(&cert, "").unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let err = stderr(&serve(cert_s, key_s));
    assert!(
        err.contains(&format!(
            "TLS certificate (--tls-cert) {cert_s} holds no PEM certificate"
        )),
        "{err}"
    );
    // A certificate and a key of two different pairs: both files are named.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(&cert, other.cert.pem()).unwrap();
    let err = stderr(&serve(cert_s, key_s));
    assert!(
        err.contains(&format!("--tls-cert {cert_s} and --tls-key {key_s}"))
            && err.contains("do not belong together"),
        "{err}"
    );
}
