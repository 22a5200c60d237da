//! Upstream connections are pooled and reused (SPEC §5 "pooled keep-alive
//! connections upstream"). The upstream here is a raw TCP server that counts
//! the connections it accepts, so reuse is observed from the outside.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use support::*;

/// A keep-alive HTTP/1.1 upstream answering every request with `body`,
/// either with Content-Length or chunked. Returns (node, accepted counter).
fn counting_upstream(chunked: bool) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let node = listener.local_addr().expect("addr").to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            count.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut writer = stream;
                loop {
                    // Read one request head (GET: no body).
                    let mut line = String::new();
                    let mut saw_request = false;
                    loop {
                        line.clear();
                        match reader.read_line(&mut line) {
                            Ok(0) | Err(_) => return,
                            Ok(_) if line == "\r\n" => break,
                            Ok(_) => saw_request = true,
                        }
                    }
                    if !saw_request {
                        return;
                    }
                    let resp: &[u8] = if chunked {
                        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
                    } else {
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                    };
                    if writer.write_all(resp).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (node, accepted)
}

fn check_reuse(chunked: bool) {
    let (node, accepted) = counting_upstream(chunked);
    let gw = Gateway::start(&format!(
        r#"listen: "127.0.0.1:0"
routes:
  - name: plain
    paths: ["/*"]
    upstream: {{ nodes: ["{node}"] }}
"#
    ));
    for i in 0..30 {
        let resp = gw.get(&format!("/r{i}"));
        assert_eq!(resp.status, 200, "request {i}: {}", resp.text());
        assert_eq!(resp.text(), "ok");
    }
    // Sequential requests: one connection would do; allow a little slack
    // for a connection handed back just after the next request started.
    let n = accepted.load(Ordering::SeqCst);
    assert!(
        n <= 3,
        "30 sequential requests opened {n} upstream connections (chunked={chunked})"
    );
}

#[test]
fn regression_upstream_connections_are_reused_content_length() {
    check_reuse(false);
}

#[test]
fn regression_upstream_connections_are_reused_chunked() {
    check_reuse(true);
}
