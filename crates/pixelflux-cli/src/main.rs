//! The `pixelflux` command.

mod bench;
mod capture_cmd;
mod options;
mod serve;
mod snapshot_cmd;

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
    /// Benchmark every scene through the pipeline (synthetic and X11; JPEG and H.264).
    Bench(bench::BenchArgs),
    /// Stream the screen (or a scene) to browsers: open the printed URL.
    Serve(serve::ServeArgs),
    /// Write the first frame of a source as a PNG (or PPM) image.
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
        Command::Bench(args) => bench::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Snapshot(args) => snapshot_cmd::run(args),
    }
}
