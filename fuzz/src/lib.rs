//! The parsers of client input in `pixelflux serve`, compiled from the CLI's own source files
//! (the CLI has no library target) so the fuzz targets exercise exactly that code.
#![allow(dead_code, unused_imports)]

pub mod serve;

#[path = "../../crates/pixelflux-cli/src/options.rs"]
pub mod options;
