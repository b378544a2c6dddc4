//! Any query string, `Host` and `Origin`: the token, Host and Origin checks never panic; a
//! token only matches itself, and an allowed Host names loopback or the listen address.
#![no_main]

use axum::http::{header, HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use pixelflux_fuzz::serve::http::{host_allowed, origin_matches, token_matches};

fuzz_target!(|input: (&str, &str, &str)| {
    let (query, host, origin) = input;
    // The query is decoded as the server does (`Query<TokenQuery>` is serde_urlencoded).
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    let token = pairs.iter().find(|(k, _)| k == "token").map(|(_, v)| v.as_str());
    assert!(token_matches(None, token));
    assert_eq!(token_matches(Some("s3cret"), token), token == Some("s3cret"));
    let listen = "127.0.0.1:8080".parse().unwrap();
    if host_allowed(host, listen) {
        let lower = host.to_ascii_lowercase();
        assert!(
            lower.starts_with("localhost") || lower.starts_with("127.") || lower.starts_with('['),
            "{host:?} allowed"
        );
    }
    let mut headers = HeaderMap::new();
    if let (Ok(h), Ok(o)) = (HeaderValue::from_str(host), HeaderValue::from_str(origin)) {
        headers.insert(header::HOST, h);
        headers.insert(header::ORIGIN, o);
        let _ = origin_matches(&headers);
    }
});
