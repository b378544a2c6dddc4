//! The commands the documentation shows still exist: every `pixelflux …` line in README.md,
//! LICENSES.md and docs/*.md (in shell blocks and in inline code) is run with `--help` appended,
//! so a renamed subcommand, a renamed option or a value the parser now rejects fails here;
//! `make TARGET` needs the Makefile target, `cargo … -p/--test/--bin/--path` the package, test
//! file, test function or folder, and a script or program file its file.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_pixelflux");

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn doc_files() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md"), root().join("LICENSES.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// Command lines shown in a Markdown text: lines of shell code blocks (```sh, ```bash, or a
/// block without a language whose lines start like a command), and inline code spans that
/// start with a known program.
fn commands(markdown: &str) -> Vec<String> {
    const STARTS: [&str; 8] = [
        "pixelflux ",
        "target/release/pixelflux",
        "make ",
        "cargo ",
        "scripts/",
        "python3 ",
        "NO_GPL=",
        "pip install",
    ];
    let mut out = Vec::new();
    let mut block: Option<bool> = None; // Some(shell?) inside a fenced block
    for line in markdown.lines() {
        let trimmed = line.trim_start();
        if let Some(lang) = trimmed.strip_prefix("```") {
            block = match block {
                Some(_) => None,
                None => Some(matches!(lang.trim(), "sh" | "bash" | "shell" | "")),
            };
            continue;
        }
        match block {
            Some(true) => {
                let code = trimmed.split(" #").next().unwrap_or("").trim();
                if STARTS.iter().any(|s| code.starts_with(s)) || code.starts_with("cd ") {
                    out.push(code.to_string());
                }
            }
            Some(false) => {}
            None => {
                for (i, span) in line.split('`').enumerate() {
                    if i % 2 == 1 && STARTS.iter().any(|s| span.starts_with(s)) {
                        out.push(span.to_string());
                    }
                }
            }
        }
    }
    out
}

/// Splits a command line like a shell would for these simple cases (quotes, no expansion).
fn split_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut started = false;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                started = true;
            }
            (None, c) if c.is_whitespace() => {
                if started || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            (None, c) => word.push(c),
        }
    }
    if started || !word.is_empty() {
        words.push(word);
    }
    words
}

fn makefile_targets() -> BTreeSet<String> {
    let makefile = std::fs::read_to_string(root().join("Makefile")).expect("Makefile");
    let mut targets = BTreeSet::new();
    for line in makefile.lines() {
        if line.starts_with(['\t', ' ', '#', '.']) {
            continue;
        }
        if let Some((names, rest)) = line.split_once(':') {
            if !rest.starts_with('=') && !names.contains('=') {
                targets.extend(names.split_whitespace().map(str::to_string));
            }
        }
    }
    targets
}

/// Package name → folder, for the workspace's crates.
fn packages() -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root().join("crates")).unwrap() {
        let dir = entry.unwrap().path();
        let Ok(manifest) = std::fs::read_to_string(dir.join("Cargo.toml")) else {
            continue;
        };
        let name = manifest
            .lines()
            .find_map(|l| l.strip_prefix("name = "))
            .map(|n| n.trim().trim_matches('"').to_string())
            .expect("package name");
        out.push((name, dir));
    }
    out
}

/// Checks one simple command (no `&&`); `cwd` is where a preceding `cd` left it.
fn check(words: &[String], cwd: &Path, failures: &mut Vec<String>, checked: &mut usize) {
    // Leading VAR=value assignments.
    let words: Vec<&str> = words
        .iter()
        .map(String::as_str)
        .skip_while(|w| w.contains('=') && !w.starts_with('-'))
        .collect();
    let Some((&program, args)) = words.split_first() else {
        return;
    };
    let shown = words.join(" ");
    match program {
        "pixelflux" | "target/release/pixelflux" | "target/debug/pixelflux" => {
            // What follows `--` is the program to run inside the display, not ours.
            let ours: Vec<&str> = args.iter().copied().take_while(|a| *a != "--").collect();
            let mut cmd = Command::new(BIN);
            cmd.args(&ours);
            if !ours.iter().any(|a| *a == "--help" || *a == "-h") {
                cmd.arg("--help");
            }
            let out = cmd.output().expect("run pixelflux");
            if !out.status.success() {
                failures.push(format!(
                    "`{shown}`: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            *checked += 1;
        }
        "make" => {
            let targets = makefile_targets();
            for target in args
                .iter()
                .filter(|a| !a.contains('=') && !a.starts_with('-'))
            {
                if !targets.contains(*target) {
                    failures.push(format!("`{shown}`: no Makefile target `{target}`"));
                }
            }
            *checked += 1;
        }
        "cargo" => {
            let packages = packages();
            let (ours, after) = match args.iter().position(|a| *a == "--") {
                Some(i) => (&args[..i], &args[i + 1..]),
                None => (args, &[][..]),
            };
            let mut package_dir: Option<PathBuf> = None;
            let mut test_file: Option<PathBuf> = None;
            for pair in ours.windows(2) {
                match pair[0] {
                    "-p" | "--package" => match packages.iter().find(|(n, _)| n == pair[1]) {
                        Some((_, dir)) => package_dir = Some(dir.clone()),
                        None => failures.push(format!("`{shown}`: no package `{}`", pair[1])),
                    },
                    "--path" if !cwd.join(pair[1]).is_dir() => {
                        failures.push(format!("`{shown}`: no folder `{}`", pair[1]))
                    }
                    _ => {}
                }
            }
            for pair in ours.windows(2) {
                let dir = package_dir
                    .clone()
                    .unwrap_or_else(|| root().join("crates/pixelflux"));
                match pair[0] {
                    "--test" => {
                        let file = dir.join("tests").join(format!("{}.rs", pair[1]));
                        if !file.is_file() {
                            failures.push(format!("`{shown}`: no test file {}", file.display()));
                        }
                        test_file = Some(file);
                    }
                    "--bin"
                        if !dir.join("Cargo.toml").is_file()
                            || !std::fs::read_to_string(dir.join("Cargo.toml"))
                                .unwrap()
                                .contains(&format!("name = \"{}\"", pair[1])) =>
                    {
                        failures.push(format!("`{shown}`: no binary `{}`", pair[1]))
                    }
                    _ => {}
                }
            }
            // A test function named after `--` must exist in that test file.
            if let (Some(file), Some(name)) =
                (test_file, after.iter().find(|a| !a.starts_with('-')))
            {
                let text = std::fs::read_to_string(&file).unwrap_or_default();
                if !text.contains(&format!("fn {name}")) {
                    failures.push(format!("`{shown}`: no test `{name}` in {}", file.display()));
                }
            }
            *checked += 1;
        }
        "python3" | "node" | "bash" | "sh" => {
            if let Some(script) = args.iter().find(|a| !a.starts_with('-')) {
                if !cwd.join(script).is_file() {
                    failures.push(format!("`{shown}`: no file {script}"));
                }
                *checked += 1;
            }
        }
        p if p.starts_with("scripts/") => {
            if !cwd.join(p).is_file() {
                failures.push(format!("`{shown}`: no file {p}"));
            }
            *checked += 1;
        }
        _ => {}
    }
}

#[test]
fn documented_commands_exist() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for file in doc_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        for line in commands(&text) {
            let mut cwd = root();
            for part in line.split("&&").flat_map(|p| p.split(';')) {
                let words = split_words(part.split('|').next().unwrap_or(""));
                if words.first().map(String::as_str) == Some("cd") {
                    cwd = cwd.join(words.get(1).map(String::as_str).unwrap_or("."));
                    continue;
                }
                let before = failures.len();
                check(&words, &cwd, &mut failures, &mut checked);
                for f in &mut failures[before..] {
                    *f = format!("{}: {f}", file.file_name().unwrap().to_string_lossy());
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "stale commands in the docs:\n{}",
        failures.join("\n")
    );
    // The docs show dozens of commands; finding few means the extraction broke.
    assert!(checked >= 30, "only {checked} commands found in the docs");
}

#[test]
fn the_check_catches_a_renamed_option_and_a_missing_target() {
    let mut failures = Vec::new();
    let mut checked = 0;
    let root = root();
    for bad in [
        "pixelflux serve --no-such-option 1",
        "pixelflux no-such-command",
        "pixelflux serve --region 12x",
        "make no-such-target",
        "cargo test -p pixelflux --test no_such_test",
        "cargo test -p pixelflux --test h264 -- no_such_test_fn",
        "scripts/no-such-script.sh",
    ] {
        let before = failures.len();
        check(&split_words(bad), &root, &mut failures, &mut checked);
        assert_eq!(failures.len(), before + 1, "`{bad}` passed the check");
    }
    assert_eq!(
        split_words(r#"make bench BENCH_ARGS="--seconds 2""#),
        ["make", "bench", "BENCH_ARGS=--seconds 2"]
    );
}
