//! Routing and proxying (SPEC §2 routes, §3.3 path normalisation, §5): route
//! selection, upstream failures, load balancing, forwarding headers, h2c and
//! large streamed bodies, against the real binary and real upstreams.

#![allow(clippy::unwrap_used)]

mod admin_support;
mod support;

use std::time::Duration;

use serde_json::json;
use support::*;

const SECRET: &str = "proxy-secret-0123456789abcdefghijkl";

fn open_route(up: &Upstream) -> String {
    format!(
        r#"listen: "127.0.0.1:0"
routes:
  - name: all
    paths: ["/*"]
    upstream: {{ nodes: ["{}"] }}
"#,
        up.node()
    )
}

fn served_by(resp: &Response) -> &str {
    resp.header("x-upstream-id").unwrap_or("<none>")
}

// ---------------------------------------------------------------------------
// Route selection
// ---------------------------------------------------------------------------

#[test]
fn no_matching_route_is_404_json() {
    let up = Upstream::start();
    let yaml = format!(
        r#"listen: "127.0.0.1:0"
routes:
  - name: api
    paths: ["/api/*"]
    upstream: {{ nodes: ["{}"] }}
"#,
        up.node()
    );
    let gw = Gateway::start(&yaml);
    for path in ["/", "/nothing", "/ap", "/apix"] {
        let resp = gw.get(path);
        assert_json_error(&resp, 404);
    }
    assert_eq!(up.count(), 0);
    assert_eq!(gw.get("/api/x").status, 200);
}

#[test]
fn most_specific_path_wins() {
    let a = Upstream::start_with("exact-users", Behavior::Answer);
    let b = Upstream::start_with("prefix-api", Behavior::Answer);
    let c = Upstream::start_with("catch-all", Behavior::Answer);
    let d = Upstream::start_with("prefix-users", Behavior::Answer);
    // Listed least specific first, so that a first-match router fails.
    let yaml = format!(
        r#"listen: "127.0.0.1:0"
routes:
  - name: catch-all
    paths: ["/*"]
    upstream: {{ nodes: ["{c}"] }}
  - name: prefix-api
    paths: ["/api/*"]
    upstream: {{ nodes: ["{b}"] }}
  - name: prefix-users
    paths: ["/api/users/*"]
    upstream: {{ nodes: ["{d}"] }}
  - name: exact-users
    paths: ["/api/users"]
    upstream: {{ nodes: ["{a}"] }}
"#,
        a = a.node(),
        b = b.node(),
        c = c.node(),
        d = d.node()
    );
    let gw = Gateway::start(&yaml);
    for (path, expected) in [
        ("/api/users", "exact-users"),
        ("/api/users/7", "prefix-users"),
        ("/api/users/7/orders", "prefix-users"),
        ("/api/orders", "prefix-api"),
        ("/api/", "prefix-api"),
        ("/other", "catch-all"),
        ("/", "catch-all"),
    ] {
        let resp = gw.get(path);
        assert_eq!(resp.status, 200, "{path}");
        assert_eq!(served_by(&resp), expected, "{path}");
    }
}

#[test]
fn routes_match_on_method() {
    let r = Upstream::start_with("read", Behavior::Answer);
    let w = Upstream::start_with("write", Behavior::Answer);
    let yaml = format!(
        r#"listen: "127.0.0.1:0"
routes:
  - name: read
    paths: ["/items"]
    methods: [GET, HEAD]
    upstream: {{ nodes: ["{}"] }}
  - name: write
    paths: ["/items"]
    methods: [POST, PUT]
    upstream: {{ nodes: ["{}"] }}
"#,
        r.node(),
        w.node()
    );
    let gw = Gateway::start(&yaml);
    assert_eq!(served_by(&gw.send(&Req::get("/items"))), "read");
    assert_eq!(served_by(&gw.send(&Req::post("/items").body("x"))), "write");
    assert_eq!(
        served_by(&gw.send(&Req::new("PUT", "/items").body("x"))),
        "write"
    );
    assert_json_error(&gw.send(&Req::new("DELETE", "/items")), 404);
    assert_eq!(w.last().method, "PUT");
}

#[test]
fn routes_match_on_host() {
    let h = Upstream::start_with("api-host", Behavior::Answer);
    let any = Upstream::start_with("any-host", Behavior::Answer);
    let only = Upstream::start_with("only-host", Behavior::Answer);
    let yaml = format!(
        r#"listen: "127.0.0.1:0"
routes:
  - name: api-host
    paths: ["/h"]
    hosts: ["api.example.com"]
    upstream: {{ nodes: ["{}"] }}
  - name: any-host
    paths: ["/h"]
    upstream: {{ nodes: ["{}"] }}
  - name: only-host
    paths: ["/only"]
    hosts: ["only.example.com"]
    upstream: {{ nodes: ["{}"] }}
"#,
        h.node(),
        any.node(),
        only.node()
    );
    let gw = Gateway::start(&yaml);
    let with_host = |path: &str, host: &str| gw.send(&Req::get(path).header("Host", host));
    assert_eq!(served_by(&with_host("/h", "api.example.com")), "api-host");
    assert_eq!(served_by(&with_host("/h", "other.example.com")), "any-host");
    assert_eq!(
        served_by(&with_host("/only", "only.example.com")),
        "only-host"
    );
    assert_json_error(&with_host("/only", "other.example.com"), 404);
}

/// On the same path, a route that names the request's host is more specific
/// than one that accepts any host, whatever their order in the file (Kong
/// ranks routes with hosts first; APISIX and Envoy select by host first).
#[test]
fn a_host_specific_route_wins_over_a_hostless_one_on_the_same_path() {
    let h = Upstream::start_with("api-host", Behavior::Answer);
    let any = Upstream::start_with("any-host", Behavior::Answer);
    let yaml = format!(
        r#"listen: "127.0.0.1:0"
routes:
  - name: any-host
    paths: ["/h"]
    upstream: {{ nodes: ["{}"] }}
  - name: api-host
    paths: ["/h"]
    hosts: ["api.example.com"]
    upstream: {{ nodes: ["{}"] }}
"#,
        any.node(),
        h.node()
    );
    let gw = Gateway::start(&yaml);
    let with_host = |path: &str, host: &str| gw.send(&Req::get(path).header("Host", host));
    assert_eq!(served_by(&with_host("/h", "other.example.com")), "any-host");
    assert_eq!(served_by(&with_host("/h", "api.example.com")), "api-host");
}

/// Host matching ignores the port and letter case, as in Kong and APISIX.
#[test]
fn host_match_ignores_port_and_case() {
    let h = Upstream::start_with("api-host", Behavior::Answer);
    let yaml = format!(
        r#"listen: "127.0.0.1:0"
routes:
  - name: api-host
    paths: ["/h"]
    hosts: ["api.example.com"]
    upstream: {{ nodes: ["{}"] }}
"#,
        h.node()
    );
    let gw = Gateway::start(&yaml);
    for host in ["api.example.com:8080", "API.Example.COM"] {
        let resp = gw.send(&Req::get("/h").header("Host", host));
        assert_eq!(resp.status, 200, "Host: {host}: {:?}", resp.text());
    }
}

// ---------------------------------------------------------------------------
// Upstream failures and balancing
// ---------------------------------------------------------------------------

#[test]
fn upstream_down_is_502_json() {
    let dead = dead_port();
    let yaml = format!(
        r#"listen: "127.0.0.1:0"
routes:
  - name: down
    paths: ["/*"]
    upstream: {{ nodes: ["{}"], connect_timeout_ms: 2000 }}
"#,
        dead.node()
    );
    let gw = Gateway::start(&yaml);
    assert_json_error(&gw.get("/x"), 502);
    assert_json_error(&gw.send(&Req::post("/x").body("payload")), 502);
}

#[test]
fn upstream_slower_than_read_timeout_is_504_json() {
    let up = Upstream::start_with("slow", Behavior::Slow(Duration::from_secs(10)));
    let yaml = format!(
        r#"listen: "127.0.0.1:0"
routes:
  - name: slow
    paths: ["/*"]
    upstream: {{ nodes: ["{}"], read_timeout_ms: 500 }}
"#,
        up.node()
    );
    let gw = Gateway::start(&yaml);
    let resp = gw.get("/slow");
    assert_json_error(&resp, 504);
    assert_eq!(up.count(), 1, "the request did reach the upstream");
}

/// An upstream connection that answered a HEAD is not used again: an
/// upstream that writes a body to a HEAD anyway (a classic handler bug), a
/// moment late, would have it read as the next client's answer on the
/// reused connection (an outside audit; bytes there before the connection
/// is pooled, or while it waits in the pool, already close it).
#[test]
fn an_upstream_connection_that_answered_a_head_is_not_reused() {
    let up = RawUpstream::start(|head| {
        if head.starts_with(b"HEAD ") {
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n".to_vec()
        } else {
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec()
        }
    });
    let yaml = format!(
        "listen: \"127.0.0.1:0\"\nworkers: 1\nroutes:\n  - name: r\n    paths: [\"/*\"]\n    upstream: {{ nodes: [\"{}\"] }}\n",
        up.addr
    );
    let gw = Gateway::start(&yaml);
    assert_eq!(gw.get("/a").status, 200);
    assert_eq!(gw.get("/b").status, 200);
    assert_eq!(up.connections(), 1, "GETs reuse the connection");
    let head = gw.send(&Req::new("HEAD", "/c"));
    assert_eq!(head.status, 200);
    assert_eq!(
        up.connections(),
        1,
        "the HEAD went on the pooled connection"
    );
    let after = gw.get("/d");
    assert_eq!((after.status, after.body.as_slice()), (200, &b"ok"[..]));
    assert_eq!(
        up.connections(),
        2,
        "the connection that answered the HEAD was closed"
    );
}

/// The read timeout holds on a pooled upstream connection as on a new one
/// (one timer serves all of a connection's requests): a slow answer on a
/// reused connection is 504 after the timeout, not sooner nor later, and a
/// connection whose last timer went off while it sat in the pool still
/// serves a fast answer, then times out a slow one.
#[test]
fn the_read_timeout_holds_on_reused_upstream_connections() {
    let up = RawUpstream::start(|head| {
        if head.starts_with(b"GET /slow") {
            std::thread::sleep(Duration::from_secs(10));
        }
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec()
    });
    let yaml = format!(
        r#"listen: "127.0.0.1:0"
workers: 1
routes:
  - name: timed
    paths: ["/*"]
    upstream: {{ nodes: ["{}"], read_timeout_ms: 500 }}
"#,
        up.addr
    );
    let gw = Gateway::start(&yaml);
    let timed_504 = |what: &str| {
        let asked = std::time::Instant::now();
        let resp = gw.get("/slow");
        let waited = asked.elapsed();
        assert_json_error(&resp, 504);
        // Not sooner than the timeout; far sooner than the 10 s answer a
        // timer that did not hold would have waited for.
        assert!(
            (Duration::from_millis(450)..Duration::from_secs(8)).contains(&waited),
            "{what}: 504 after {waited:?}, expected about 500 ms"
        );
    };
    assert_eq!(gw.get("/fast").status, 200);
    assert_eq!(gw.get("/fast").status, 200);
    assert_eq!(
        up.connections(),
        1,
        "the second request reused the connection"
    );
    timed_504("a reused connection");
    assert_eq!(
        up.connections(),
        1,
        "the slow request went on the pooled connection"
    );

    // The timed-out connection is not pooled: a new one; its timer goes off
    // while it idles past the timeout.
    assert_eq!(gw.get("/fast").status, 200);
    assert_eq!(up.connections(), 2);
    std::thread::sleep(Duration::from_millis(1200));
    let resp = gw.get("/fast");
    assert_eq!(
        resp.status,
        200,
        "a fast answer after the idle timer went off: {}",
        gw.logs()
    );
    timed_504("a connection whose timer went off in the pool");
    assert_eq!(up.connections(), 2, "both went on the pooled connection");
}

#[test]
fn nodes_are_used_round_robin() {
    let a = Upstream::start_with("a", Behavior::Answer);
    let b = Upstream::start_with("b", Behavior::Answer);
    let yaml = format!(
        r#"listen: "127.0.0.1:0"
routes:
  - name: rr
    paths: ["/*"]
    upstream: {{ nodes: ["{}", "{}"] }}
"#,
        a.node(),
        b.node()
    );
    let gw = Gateway::start(&yaml);
    for i in 0..10 {
        assert_eq!(gw.get(&format!("/r/{i}")).status, 200);
    }
    assert_eq!(a.count() + b.count(), 10);
    assert!(
        a.count() >= 3 && b.count() >= 3,
        "round robin should spread 10 requests over both nodes; got a={} b={}",
        a.count(),
        b.count()
    );
}

/// `weight=N` after a node (nginx's `server` parameter) gives it that
/// share of the requests, spread among the others' (smooth weighted round
/// robin).
#[test]
fn nodes_take_requests_by_weight() {
    let a = Upstream::start_with("a", Behavior::Answer);
    let b = Upstream::start_with("b", Behavior::Answer);
    let gw = Gateway::start(&format!(
        r#"listen: "127.0.0.1:0"
routes:
  - name: weighted
    paths: ["/*"]
    upstream: {{ nodes: ["{} weight=3", "{}"] }}
"#,
        a.node(),
        b.node()
    ));
    let served: String = (0..40)
        .map(|i| served_by(&gw.get(&format!("/w/{i}"))).to_owned())
        .collect();
    assert_eq!((a.count(), b.count()), (30, 10), "{served}");
    // Interleaved, never four of a's in a row: a a b a, a a b a, ...
    assert!(!served.contains("aaaa"), "{served}");
}

#[test]
fn a_dead_node_is_skipped_on_connect_failure() {
    let a = Upstream::start_with("alive", Behavior::Answer);
    for order in ["dead-first", "dead-last"] {
        let dead_port = dead_port();
        let dead = dead_port.node();
        let nodes = if order == "dead-first" {
            format!("\"{dead}\", \"{}\"", a.node())
        } else {
            format!("\"{}\", \"{dead}\"", a.node())
        };
        let yaml = format!(
            r#"listen: "127.0.0.1:0"
routes:
  - name: failover
    paths: ["/*"]
    upstream: {{ nodes: [{nodes}], connect_timeout_ms: 2000 }}
"#
        );
        let gw = Gateway::start(&yaml);
        a.clear();
        for i in 0..10 {
            let resp = gw.get(&format!("/f/{i}"));
            assert_eq!(
                resp.status,
                200,
                "{order}, request {i}: {:?}\n{}",
                resp.text(),
                gw.logs()
            );
            assert_eq!(served_by(&resp), "alive");
        }
        assert_eq!(a.count(), 10, "{order}");
    }
}

/// nginx's `max_fails` / `fail_timeout`: a node whose connect failed is
/// left out of the round robin (default `max_fails: 1`), so that of ten
/// requests one pays its connect, not every other one, and an admin change
/// keeps it out; `max_fails: 0` keeps trying it. Counted in the metrics
/// either way.
#[test]
fn a_node_whose_connect_failed_is_left_out_for_fail_timeout() {
    let a = Upstream::start_with("alive", Behavior::Answer);
    let dead_port = dead_port();
    let dead = dead_port.node();
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        r#"listen: "127.0.0.1:0"
admin: {{ listen: "127.0.0.1:0", api_key: "{key}" }}
routes:
  - name: always-tried
    paths: ["/off/*"]
    upstream: {{ nodes: ["{dead}", "{alive}"], max_fails: 0 }}
  - name: failover
    paths: ["/*"]
    upstream: {{ nodes: ["{dead}", "{alive}"], fail_timeout_ms: 600000 }}
"#,
        key = admin_support::KEY,
        alive = a.node(),
    );
    let node = admin_support::Node::start(dir.path(), &yaml);
    let failures = |node: &admin_support::Node| {
        let m = node.metrics();
        (
            m.value("jwtgate_upstream_connect_failures_total", &[]),
            m.value("jwtgate_upstream_nodes_left_out_total", &[]),
        )
    };
    assert_eq!(failures(&node), (0.0, 0.0), "{}", node.metrics().0);
    // Ten requests under `prefix`, each served by the live node.
    let ten = |prefix: &str| {
        for i in 0..10 {
            let resp = node.send(&Req::get(&format!("{prefix}/{i}")));
            assert_eq!(
                resp.status,
                200,
                "request {i}: {}\n{}",
                resp.text(),
                node.logs()
            );
            assert_eq!(served_by(&resp), "alive");
        }
    };
    ten("/f");
    assert_eq!(failures(&node), (1.0, 1.0), "{}", node.logs());
    node.wait_log(
        "upstream node left out of the round robin for fail_timeout_ms after max_fails failed connects",
        1,
    );
    assert!(node.logs().contains("route=failover"), "{}", node.logs());
    // An admin change installs a new config version: the node stays out.
    let put = node.admin(
        "PUT",
        "/admin/v1/consumers/bob",
        Some(serde_json::json!({ "custom_id": "b-1" })),
    );
    assert!(put.status == 201 || put.status == 200, "{}", put.text());
    ten("/f");
    assert_eq!(failures(&node), (1.0, 1.0), "{}", node.logs());
    // max_fails: 0, another route's own round robin: every other request
    // tries the dead node first.
    ten("/off");
    assert_eq!(failures(&node), (6.0, 1.0), "{}", node.logs());
}

// ---------------------------------------------------------------------------
// Forwarding headers and hop-by-hop headers
// ---------------------------------------------------------------------------

#[test]
fn forwarded_headers_are_set() {
    let up = Upstream::start();
    let gw = Gateway::start(&open_route(&up));

    let resp = gw.send(&Req::get("/x").header("Host", "api.example.com"));
    assert_eq!(resp.status, 200);
    let r = up.last();
    assert_eq!(r.header_all("x-forwarded-for"), vec!["127.0.0.1"]);
    assert_eq!(r.header("x-forwarded-proto"), Some("http"));
    assert_eq!(r.header("x-forwarded-host"), Some("api.example.com"));
    assert_eq!(
        r.header("host"),
        Some(up.node().as_str()),
        "Host is the node's host:port"
    );

    let resp = gw.send(
        &Req::get("/x")
            .header("Host", "shop.example.com")
            .header("X-Forwarded-For", "203.0.113.7, 198.51.100.2")
            .header("X-Forwarded-Proto", "https"),
    );
    assert_eq!(resp.status, 200);
    let r = up.last();
    assert_eq!(
        r.header_all("x-forwarded-for").join(", "),
        "203.0.113.7, 198.51.100.2, 127.0.0.1",
        "X-Forwarded-For is appended to"
    );
    assert_eq!(
        r.header("x-forwarded-proto"),
        Some("http"),
        "set from the real connection"
    );
    assert_eq!(r.header("x-forwarded-host"), Some("shop.example.com"));
}

#[test]
fn hop_by_hop_headers_are_not_forwarded() {
    let up = Upstream::start();
    let gw = Gateway::start(&open_route(&up));
    let resp = gw.send(
        &Req::get("/x")
            .header("Connection", "close, X-Hop-Custom")
            .header("X-Hop-Custom", "per-connection")
            .header("Keep-Alive", "timeout=5, max=100")
            .header("TE", "trailers, deflate")
            .header("Upgrade", "websocket")
            .header("Proxy-Authorization", "Basic dXNlcjpwYXNz")
            .header("X-End-To-End", "kept"),
    );
    assert_eq!(resp.status, 200);
    let r = up.last();
    for name in [
        "x-hop-custom",
        "keep-alive",
        "te",
        "upgrade",
        "proxy-authorization",
    ] {
        assert_eq!(
            r.header_all(name),
            Vec::<&str>::new(),
            "{name} was forwarded: {:?}",
            r.headers
        );
    }
    for v in r.header_all("connection") {
        let v = v.to_ascii_lowercase();
        assert!(
            !v.contains("x-hop-custom"),
            "client Connection forwarded: {v:?}"
        );
    }
    assert_eq!(r.header("x-end-to-end"), Some("kept"));
}

// ---------------------------------------------------------------------------
// Path normalisation (SPEC §3.3): what goes upstream
// ---------------------------------------------------------------------------

#[test]
fn the_normalised_path_goes_upstream() {
    let up = Upstream::start();
    let gw = Gateway::start(&open_route(&up));
    for (raw, expected) in [
        ("/a/./b/../c//d", "/a/c/d"),
        ("/a/%7Euser", "/a/~user"),
        ("/%41%42c/x", "/ABc/x"),
        ("///a", "/a"),
        ("/a/b/../c?q=%2F&r=../x", "/a/c?q=%2F&r=../x"),
        ("/keep%20space", "/keep%20space"),
        ("/plain?x=1", "/plain?x=1"),
    ] {
        let resp = gw.get(raw);
        assert_eq!(resp.status, 200, "{raw}: {:?}", resp.text());
        assert_eq!(up.last().target, expected, "{raw}");
    }
}

#[test]
fn invalid_paths_are_400() {
    let up = Upstream::start();
    let gw = Gateway::start(&open_route(&up));
    for raw in [
        "/..",
        "/../etc/passwd",
        "/a/../..",
        "/a/../../b",
        "/%2e%2e/x",
        "/a%2Fb",
        "/a%2fb",
        "/a%5Cb",
        "/a%5cb",
        "/a%00b",
    ] {
        let resp = gw.get(raw);
        assert_eq!(resp.status, 400, "{raw}: {:?}", resp.text());
        assert_eq!(
            resp.json(),
            json!({"message": "invalid request path"}),
            "{raw}"
        );
        let ct = resp.header("content-type").unwrap_or("");
        assert!(
            ct.starts_with("application/json"),
            "{raw}: content-type {ct:?}"
        );
    }
    assert_eq!(up.count(), 0, "{:?}", up.records());
}

// ---------------------------------------------------------------------------
// The built-in echo upstream
// ---------------------------------------------------------------------------

#[test]
fn echo_upstream_reflects_the_request() {
    let yaml = r#"listen: "127.0.0.1:0"
routes:
  - name: echo
    paths: ["/echo/*"]
    upstream: { echo: true }
"#;
    let gw = Gateway::start(yaml);
    let resp = gw.send(
        &Req::new("PUT", "/echo/a/../b?x=1&y=2")
            .header("X-Test", "one")
            .header("X-Multi", "a")
            .header("X-Multi", "b")
            .body("ignored"),
    );
    assert_eq!(resp.status, 200, "{:?}", resp.text());
    let v = resp.json();
    assert_eq!(v["method"], "PUT");
    assert_eq!(v["path"], "/echo/b");
    assert_eq!(v["query"], "x=1&y=2");
    assert_eq!(v["headers"]["x-test"], "one");
    assert_eq!(v["headers"]["x-multi"], "a, b");
    let resp = gw.get("/echo/");
    assert_eq!(resp.json()["query"], serde_json::Value::Null);
}

// ---------------------------------------------------------------------------
// HTTP/2 cleartext (prior knowledge)
// ---------------------------------------------------------------------------

#[test]
fn h2c_requests_are_proxied() {
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let up = Upstream::start();
    let yaml = format!(
        r#"listen: "127.0.0.1:0"
consumers:
  - username: alice
    jwt: {{ key: user123, secret: "{SECRET}" }}
routes:
  - name: h2
    paths: ["/*"]
    upstream: {{ nodes: ["{}"] }}
    jwt: {{}}
"#,
        up.node()
    );
    let gw = Gateway::start(&yaml);
    let token = sign_hs("HS256", SECRET, claims_for("user123"));
    let addr = gw.addr;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let outcome = rt.block_on(async move {
        tokio::time::timeout(IO_TIMEOUT, async move {
            let stream = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|e| e.to_string())?;
            let (mut sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                    .await
                    .map_err(|e| format!("h2 handshake: {e}"))?;
            tokio::spawn(conn);
            let mut results = Vec::new();
            for (method, auth, body) in [
                ("GET", true, Vec::new()),
                ("POST", true, vec![7u8; 256 * 1024]),
                ("GET", false, Vec::new()),
            ] {
                let mut req = hyper::Request::builder()
                    .method(method)
                    .uri(format!("http://{addr}/h2/path?q=1"));
                if auth {
                    req = req.header("authorization", format!("Bearer {token}"));
                }
                let req = req
                    .body(Full::new(Bytes::from(body)))
                    .map_err(|e| e.to_string())?;
                let resp = sender
                    .send_request(req)
                    .await
                    .map_err(|e| format!("h2 send: {e}"))?;
                let status = resp.status().as_u16();
                let version = resp.version();
                let body = resp
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| e.to_string())?
                    .to_bytes();
                results.push((status, version, body));
            }
            Ok::<_, String>(results)
        })
        .await
        .map_err(|_| "h2c exchange timed out".to_owned())?
    });
    let results = outcome.unwrap_or_else(|e| panic!("{e}\n{}", gw.logs()));
    assert_eq!(results[0].0, 200, "{:?}\n{}", results[0].2, gw.logs());
    assert_eq!(results[0].1, hyper::Version::HTTP_2);
    assert_eq!(&results[0].2[..], b"upstream ok");
    assert_eq!(results[1].0, 200);
    assert_eq!(results[2].0, 401, "h2 without a token is refused");

    let recs = up.records();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].method, "GET");
    assert_eq!(recs[0].target, "/h2/path?q=1");
    assert_eq!(recs[0].header("x-consumer-username"), Some("alice"));
    assert_eq!(recs[1].method, "POST");
    assert_eq!(recs[1].body_len, 256 * 1024);
}

// ---------------------------------------------------------------------------
// Large bodies, streamed
// ---------------------------------------------------------------------------

const FIVE_MIB: usize = 5 * 1024 * 1024;

#[test]
fn a_5_mib_request_body_reaches_the_upstream() {
    let up = Upstream::start();
    let gw = Gateway::start(&open_route(&up));
    let resp = gw.send(&Req::post("/upload").body(pattern(FIVE_MIB)));
    assert_eq!(resp.status, 200, "{:?}", resp.text());
    let r = up.last();
    assert_eq!(r.body_len, FIVE_MIB);
    assert!(r.body_matches_pattern, "the body bytes changed on the way");

    let resp = gw.send(
        &Req::new("PUT", "/upload-chunked")
            .body(pattern(FIVE_MIB))
            .chunked(),
    );
    assert_eq!(resp.status, 200, "{:?}", resp.text());
    let r = up.last();
    assert_eq!(r.method, "PUT");
    assert_eq!(r.body_len, FIVE_MIB);
    assert!(
        r.body_matches_pattern,
        "the chunked body bytes changed on the way"
    );
}

#[test]
fn a_5_mib_response_body_reaches_the_client() {
    let up = Upstream::start_with("big", Behavior::Stream(FIVE_MIB));
    let gw = Gateway::start(&open_route(&up));
    let resp = gw.get("/download");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body.len(), FIVE_MIB);
    assert!(
        resp.body == pattern(FIVE_MIB),
        "the response bytes changed on the way"
    );
}

/// SPEC §5 "bodies streamed, never buffered whole": the upstream sees the
/// request head while the client still holds most of the body back.
#[test]
fn request_body_is_streamed_not_buffered() {
    use std::io::Write;
    let up = Upstream::start();
    let gw = Gateway::start(&open_route(&up));
    let body = pattern(FIVE_MIB);
    let mut s = connect(gw.addr);
    let head = format!(
        "POST /stream-up HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {FIVE_MIB}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&body[..256 * 1024]).unwrap();
    s.flush().unwrap();
    let seen = eventually(IO_TIMEOUT, || !up.started().is_empty());
    assert!(
        seen,
        "the upstream saw nothing while 256 KiB of a 5 MiB body were sent: \
         the gateway buffers request bodies\n{}",
        gw.logs()
    );
    s.write_all(&body[256 * 1024..]).unwrap();
    let resp = read_response(&mut s, false).unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(up.last().body_len, FIVE_MIB);
    assert!(up.last().body_matches_pattern);
}

/// The client receives the first part of a response while the upstream is
/// still holding back the rest: a large part, and a small one as a
/// server-sent event or a long poll sends (once held back until 16 KiB had
/// gathered or the body ended, over HTTP/1.x, status line included).
#[test]
fn response_body_is_streamed_not_buffered() {
    use std::io::{Read, Write};
    for (name, behavior) in [("large", Behavior::Gated), ("event", Behavior::GatedEvent)] {
        let up = Upstream::start_with("gated", behavior);
        let gw = Gateway::start(&open_route(&up));
        let mut s = connect(gw.addr);
        s.write_all(b"GET /stream-down HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 8192];
        let marker = b"<first-part-end>";
        while !got.windows(marker.len()).any(|w| w == marker) {
            match s.read(&mut buf) {
                Ok(0) => panic!(
                    "{name}: connection closed early: {:?}",
                    String::from_utf8_lossy(&got)
                ),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => {
                    up.open_gate();
                    panic!(
                        "{name}: the first part of the response did not arrive while the upstream \
                         held the rest ({e}): the gateway buffers response bodies; got {:?}\n{}",
                        String::from_utf8_lossy(&got),
                        gw.logs()
                    );
                }
            }
        }
        // Had it been held back, it would come with the rest, once the
        // upstream stopped waiting for the gate.
        assert!(
            !got.windows(GATED_LAST.len()).any(|w| w == GATED_LAST),
            "{name}: the first part came only with the last: the gateway buffers response \
             bodies\n{}",
            gw.logs()
        );
        up.open_gate();
        s.read_to_end(&mut got).unwrap();
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 200"), "{name}: {text:.200}");
        assert!(
            text.contains("<last-part>"),
            "{name}: the rest of the body never arrived"
        );
    }
}

/// Hop-by-hop headers are removed in the response direction too (SPEC §5).
#[test]
fn hop_by_hop_response_headers_are_not_forwarded() {
    let up = Upstream::start_with("hop", Behavior::HopHeaders);
    let gw = Gateway::start(&open_route(&up));
    let resp = gw.get("/x");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("x-up-end"), Some("kept"));
    assert_eq!(resp.header("x-up-hop"), None, "{:?}", resp.headers);
    assert_eq!(resp.header("keep-alive"), None, "{:?}", resp.headers);
    for v in resp.header_all("connection") {
        assert!(
            !v.to_ascii_lowercase().contains("x-up-hop"),
            "{:?}",
            resp.headers
        );
    }
}

#[test]
fn head_keeps_the_upstreams_length_and_the_connection_stays_in_step() {
    let up = Upstream::start();
    let gw = Gateway::start(&open_route(&up));
    let mut stream = std::net::TcpStream::connect(gw.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    use std::io::{Read, Write};
    // HEAD and GET pipelined on one client connection. Both answers are read
    // into one buffer (`read_response` keeps no bytes between calls): the
    // HEAD's head must be followed directly by the GET's, with no body bytes
    // between them.
    stream
        .write_all(b"HEAD /h HTTP/1.1\r\nHost: t\r\n\r\nGET /g HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut wire = Vec::new();
    let mut chunk = [0u8; 4096];
    while !wire.ends_with(b"upstream ok") {
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&wire));
        wire.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8(wire).unwrap();
    let (head_response, rest) = text.split_once("\r\n\r\n").unwrap();
    assert!(head_response.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        head_response
            .to_ascii_lowercase()
            .contains("content-length: 11"),
        "{head_response}"
    );
    assert!(
        rest.starts_with("HTTP/1.1 200"),
        "bytes after the HEAD answer: {rest}"
    );
    let (_, get_body) = rest.split_once("\r\n\r\n").unwrap();
    assert_eq!(get_body, "upstream ok");
    let methods: Vec<_> = up.records().iter().map(|r| r.method.clone()).collect();
    assert_eq!(methods, ["HEAD", "GET"]);
}
