//! The command-line options and logging of the `pixelflux` command, as a library so the
//! developer tools (`pixelflux-bench`) take the same flags with the same meaning and log alike.

pub mod options;

/// Logs `tracing` events to stderr, filtered by `RUST_LOG` (default: pixelflux's info lines
/// and everyone's warnings).
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "pixelflux=info,warn".into()),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal, not for log files and pipes.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// The exit status of a command's `result`: 0, or 1 after printing the error and its causes
/// on one line (`error: what: why`) to stderr — never a backtrace, even with
/// `RUST_BACKTRACE=1`, which `main` returning the error would print (Debug format).
pub fn exit_code(result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
