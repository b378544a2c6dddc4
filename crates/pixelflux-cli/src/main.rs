//! The `pixelflux` command.

mod capture_cmd;
mod serve;
mod snapshot_cmd;

// `crate::options` for the subcommands; it lives in the library so the bench shares it.
use pixelflux_cli::options;

use clap::error::ErrorKind;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

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

/// Prints `message` as clap prints a usage error of `subcommand` (`error: …`, its usage and
/// the `--help` hint) and exits with status 2.
fn usage_error(subcommand: &str, kind: ErrorKind, message: &str) -> ! {
    let mut cli = Cli::command();
    cli.build();
    match cli.find_subcommand_mut(subcommand) {
        Some(command) => command.error(kind, message).exit(),
        None => cli.error(kind, message).exit(),
    }
}

fn main() -> std::process::ExitCode {
    pixelflux_cli::init_logging();
    // Usage errors: clap prints them and exits with status 2; so do options that would be
    // ignored together and settings the options make that cannot run.
    let matches = Cli::command().get_matches();
    let Some((name, sub)) = matches.subcommand() else {
        usage_error("", ErrorKind::MissingSubcommand, "a subcommand is needed");
    };
    if let Some(conflict) = options::ignored_together(sub) {
        usage_error(name, ErrorKind::ArgumentConflict, &conflict);
    }
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let checked = match &cli.command {
        Command::Capture(args) => args.options.check(),
        Command::Serve(args) => args.options.check(),
        Command::Snapshot(_) => Ok(()),
    };
    let result = checked.and_then(|()| match cli.command {
        Command::Capture(args) => capture_cmd::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Snapshot(args) => snapshot_cmd::run(args),
    });
    if let Some(usage) = result
        .as_ref()
        .err()
        .and_then(|e| e.downcast_ref::<options::UsageError>())
    {
        usage_error(name, ErrorKind::ValueValidation, &usage.0);
    }
    pixelflux_cli::exit_code(result)
}
