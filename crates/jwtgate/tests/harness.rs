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
    assert_eq!(
        r.target, "/a/../b//c?x=%2F",
        "the upstream records the raw target"
    );
    assert_eq!(r.path(), "/a/../b//c");
    assert_eq!(r.query(), Some("x=%2F"));
    assert_eq!(r.header_all("x-one"), vec!["1", "2"]);
}

#[test]
fn bodies_both_ways_chunked_and_sized() {
    let up = Upstream::start_with("big", Behavior::Stream(300_000));
    let body: Vec<u8> = (0..200_000).map(pattern_byte).collect();
    let resp = Req::post("/up")
        .body(body.clone())
        .try_send(up.addr)
        .unwrap();
    assert_eq!(resp.body.len(), 300_000);
    assert!(resp
        .body
        .iter()
        .enumerate()
        .all(|(i, b)| *b == pattern_byte(i)));
    assert_eq!(up.last().body_len, 200_000);
    assert!(up.last().body_matches_pattern);
    Req::post("/up")
        .body(body)
        .chunked()
        .try_send(up.addr)
        .unwrap();
    assert_eq!(up.last().body_len, 200_000);
    assert!(up.last().body_matches_pattern);
}

#[test]
fn slow_upstream_is_slow_and_dead_port_is_dead() {
    let up = Upstream::start_with("slow", Behavior::Slow(Duration::from_millis(300)));
    let t = std::time::Instant::now();
    assert_eq!(Req::get("/").try_send(up.addr).unwrap().status, 200);
    assert!(t.elapsed() >= Duration::from_millis(300));
    let dead = dead_port();
    for _ in 0..3 {
        assert!(Req::get("/")
            .try_send(dead.node().parse().unwrap())
            .is_err());
    }
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
    assert_eq!(
        strip_ansi("\u{1b}[2mlistening on\u{1b}[0m http://x"),
        "listening on http://x"
    );
}

#[test]
fn gated_upstream_holds_the_rest_until_opened() {
    use std::io::{Read, Write};
    let up = Upstream::start_with("gated", Behavior::Gated);
    let mut s = connect(up.addr);
    s.write_all(b"GET /g HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    while !String::from_utf8_lossy(&got).contains("<first-part-end>") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed before the gate opened");
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got).into_owned();
    assert!(text.contains("<first-part-end>"));
    assert!(!text.contains("<last-part>"));
    assert_eq!(up.started(), vec!["/g".to_owned()]);
    up.open_gate();
    s.read_to_end(&mut got).unwrap();
    assert!(String::from_utf8_lossy(&got).contains("<last-part>"));
}

#[test]
fn hop_headers_upstream_sends_them() {
    let up = Upstream::start_with("hop", Behavior::HopHeaders);
    let resp = Req::get("/")
        .header("Connection", "keep-alive")
        .try_send(up.addr)
        .unwrap();
    assert_eq!(resp.header("x-up-hop"), Some("per-connection"));
    assert_eq!(resp.header("keep-alive"), Some("timeout=99"));
    assert!(
        resp.header_all("connection")
            .iter()
            .any(|v| v.contains("x-up-hop")),
        "{:?}",
        resp.headers
    );
}
