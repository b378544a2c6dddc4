//! The command-line options of the `pixelflux` command, as a library so the developer tools
//! (`pixelflux-bench`) take the same flags with the same meaning.

pub mod options;
