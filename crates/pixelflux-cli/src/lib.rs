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
