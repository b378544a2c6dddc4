//! The `pixelflux` command.

mod capture_cmd;
mod serve;
mod snapshot_cmd;

// `crate::options` for the subcommands; it lives in the library so the bench shares it.
use pixelflux_cli::options;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "pixelflux",
    version,
    about = "Capture a screen's changed stripes as JPEG or H.264"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Capture and print per-second figures (fps, stripes, kbit/s).
    Capture(capture_cmd::CaptureArgs),
    /// Stream the screen (or a scene) to browsers: open the printed URL.
    Serve(serve::ServeArgs),
    /// Write the first frame of a source as a PPM image.
    Snapshot(snapshot_cmd::SnapshotArgs),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "pixelflux=info,warn".into()),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal, not for log files and pipes.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match Cli::parse().command {
        Command::Capture(args) => capture_cmd::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Snapshot(args) => snapshot_cmd::run(args),
    }
}
