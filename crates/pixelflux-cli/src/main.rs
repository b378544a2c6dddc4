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
    /// Write the first frame of a source as a PNG (or PPM) image.
    Snapshot(snapshot_cmd::SnapshotArgs),
}

fn main() -> std::process::ExitCode {
    pixelflux_cli::init_logging();
    // Usage errors: clap prints them and exits with status 2.
    let result = match Cli::parse().command {
        Command::Capture(args) => capture_cmd::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Snapshot(args) => snapshot_cmd::run(args),
    };
    pixelflux_cli::exit_code(result)
}
