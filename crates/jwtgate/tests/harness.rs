//! Self-tests of the black-box harness (`support`), without the gateway: the
//! raw client against the recording upstream directly. When a gateway test
//! fails, these say whether the harness itself can be trusted.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use serde_json::json;
use support::*;

#[test]
fn raw_client_and_recording_upstream_agree() {
    let up = Upstream::start_with("self", Behavior::Answer);
    let resp = Req::get("/a/../b//c?x=%2F")
        .header("X-One", "1")
        .header("X-One", "2")
        .try_send(up.addr)
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text(), "upstream ok");
    assert_eq!(resp.header("x-upstream-id"), Some("self"));
    let r = up.last();
    assert_eq!(r.target, "/a/../b//c?x=%2F", "the upstream records the raw target");
    assert_eq!(r.path(), "/a/../b//c");
    assert_eq!(r.query(), Some("x=%2F"));
    assert_eq!(r.header_all("x-one"), vec!["1", "2"]);
}

#[test]
fn bodies_both_ways_chunked_and_sized() {
    let up = Upstream::start_with("big", Behavior::Stream(300_000));
    let body: Vec<u8> = (0..200_000).map(pattern_byte).collect();
    let resp = Req::post("/up").body(body.clone()).try_send(up.addr).unwrap();
    assert_eq!(resp.body.len(), 300_000);
    assert!(resp.body.iter().enumerate().all(|(i, b)| *b == pattern_byte(i)));
    assert_eq!(up.last().body_len, 200_000);
    assert!(up.last().body_matches_pattern);
    Req::post("/up").body(body).chunked().try_send(up.addr).unwrap();
    assert_eq!(up.last().body_len, 200_000);
    assert!(up.last().body_matches_pattern);
}

#[test]
fn slow_upstream_is_slow_and_closed_port_is_closed() {
    let up = Upstream::start_with("slow", Behavior::Slow(Duration::from_millis(300)));
    let t = std::time::Instant::now();
    assert_eq!(Req::get("/").try_send(up.addr).unwrap().status, 200);
    assert!(t.elapsed() >= Duration::from_millis(300));
    let port = closed_port();
    assert!(Req::get("/")
        .try_send(format!("127.0.0.1:{port}").parse().unwrap())
        .is_err());
}

#[test]
fn token_helpers_round_trip() {
    let t = sign_hs("HS256", "s", json!({"key": "k", "exp": 1}));
    assert_eq!(payload_of(&t), json!({"key": "k", "exp": 1}));
    assert_ne!(tamper_signature(&t), t);
    for alg in ["RS256", "PS512", "ES256", "ES384", "ES512", "EdDSA"] {
        let t = sign_pk(alg, json!({"key": "k"}));
        assert_eq!(t.split('.').count(), 3, "{alg}");
    }
    assert_eq!(strip_ansi("\u{1b}[2mlistening on\u{1b}[0m http://x"), "listening on http://x");
}
