//! The parsers of client input in `pixelflux serve`: the region parser from the CLI's library,
//! the serve modules compiled from the CLI's own source files (they are not in its library),
//! so the fuzz targets exercise exactly that code.
#![allow(dead_code, unused_imports)]

pub mod serve;

pub use pixelflux_cli::options;
