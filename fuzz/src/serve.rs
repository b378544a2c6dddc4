//! `serve`'s HTTP module and the siblings it refers to (`super::hub`, `super::limits`).

#[path = "../../crates/pixelflux-cli/src/serve/http.rs"]
pub mod http;
#[path = "../../crates/pixelflux-cli/src/serve/hub.rs"]
pub mod hub;
#[path = "../../crates/pixelflux-cli/src/serve/limits.rs"]
pub mod limits;
