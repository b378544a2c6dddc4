//! Any bytes as a WebSocket text or binary message: validation never panics, and whatever it
//! accepts is a known message that fits the size limit.
#![no_main]

use axum::extract::ws::Message;
use libfuzzer_sys::fuzz_target;
use pixelflux_fuzz::serve::http::{parse_client_message, MAX_CLIENT_MESSAGE};

fuzz_target!(|data: &[u8]| {
    let binary = Message::Binary(data.to_vec().into());
    assert!(parse_client_message(&binary).is_err());
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(Some(_)) = parse_client_message(&Message::Text(text.into())) {
            assert!(text.len() <= MAX_CLIENT_MESSAGE);
        }
    }
});
