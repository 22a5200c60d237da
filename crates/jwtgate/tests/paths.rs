//! Issue 3 black-box tests: RequiredPath / NotRequiredPath on the
//! normalised path, and the classic path-confusion bypasses (Envoy
//! CVE-2019-9901 `/info/../private`, CVE-2021-29492 `%2F`, APISIX
//! CVE-2021-43557 raw-URI matching), sent as raw request lines. Each attempt
//! is either refused, or normalised so that the protected resource still
//! needs a token; the recording upstream asserts the exact path it received.

mod support;

use support::*;

const SECRET: &str = "paths-secret-paths-secret-0123456789";

fn config(up: &Upstream, jwt: &str) -> String {
    format!(
        r#"listen: "127.0.0.1:0"
consumers:
  - username: alice
    jwt: {{ key: user123, secret: "{SECRET}" }}
routes:
  - name: api
    paths: ["/*"]
    upstream: {{ nodes: ["{node}"] }}
    jwt: {jwt}
"#,
        node = up.node()
    )
}

fn token() -> String {
    sign_hs("HS256", SECRET, claims_for("user123"))
}

/// What must happen to one raw request target.
enum Expect {
    /// 400 {"message":"invalid request path"}, nothing upstream.
    Invalid,
    /// Treated as this normalised path: 401 without a token, and with one
    /// the upstream receives exactly this path.
    Protected(&'static str),
}

const BYPASSES: &[(&str, Expect)] = &[
    ("/public/../admin", Expect::Protected("/admin")),
    ("/public/%2e%2e/admin", Expect::Protected("/admin")),
    ("/public/%2E%2e/admin", Expect::Protected("/admin")),
    ("/public/..%2Fadmin", Expect::Invalid),
    ("/public/..%2fadmin", Expect::Invalid),
    ("//admin", Expect::Protected("/admin")),
    ("/admin/.", Expect::Protected("/admin/")),
    ("/%61dmin", Expect::Protected("/admin")),
    ("/admin%00", Expect::Invalid),
    ("/../admin", Expect::Invalid),
    ("/public/..%5Cadmin", Expect::Invalid),
    ("/public/..\\admin", Expect::Invalid),
    ("/admin%zz", Expect::Invalid),
    ("/admin%4", Expect::Invalid),
    ("/public/./../admin/./x/..", Expect::Protected("/admin/")),
    ("/public//..//admin", Expect::Protected("/admin")),
];

fn check_bypasses(gw: &Gateway, up: &Upstream, mode: &str) {
    for (target, expect) in BYPASSES {
        up.clear();
        let anonymous = gw.send(&Req::get(target));
        match expect {
            Expect::Invalid => {
                assert_eq!(
                    anonymous.status,
                    400,
                    "[{mode}] {target}: {}",
                    anonymous.text()
                );
                assert_eq!(
                    anonymous.message().as_deref(),
                    Some("invalid request path"),
                    "[{mode}] {target}"
                );
                let with_token = gw.send(&Req::get(target).bearer(&token()));
                assert_eq!(with_token.status, 400, "[{mode}] {target} with a token");
                assert_eq!(
                    up.count(),
                    0,
                    "[{mode}] {target} reached the upstream: {:?}",
                    up.records()
                );
            }
            Expect::Protected(normalised) => {
                assert_refused(&anonymous, "Missing JWT token in request", "jwtgate", false);
                assert_eq!(
                    up.count(),
                    0,
                    "[{mode}] {target} reached the upstream without a token"
                );
                let with_token = gw.send(&Req::get(target).bearer(&token()));
                assert_eq!(
                    with_token.status,
                    200,
                    "[{mode}] {target} with a token: {}",
                    with_token.text()
                );
                assert_eq!(
                    up.last().path(),
                    *normalised,
                    "[{mode}] {target}: upstream saw another path"
                );
            }
        }
    }
}

#[test]
fn regression_bypasses_in_required_paths_mode() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up, r#"{ required_paths: ["ANY_/admin*"] }"#));
    check_bypasses(&gw, &up, "required_paths");
    // The public side stays public.
    assert_eq!(gw.send(&Req::get("/public/x")).status, 200);
}

#[test]
fn regression_bypasses_in_not_required_paths_mode() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up, r#"{ not_required_paths: ["ANY_/public*"] }"#));
    check_bypasses(&gw, &up, "not_required_paths");
    up.clear();
    assert_eq!(gw.send(&Req::get("/public/./x")).status, 200);
    assert_eq!(up.last().path(), "/public/x");
}

#[test]
fn regression_escaped_reserved_and_utf8_characters_still_match_their_rule() {
    // A framework decodes every escape before it routes: `/orders%3Acancel`
    // is `/orders:cancel` to it. A rule written either way guards both
    // spellings; the upstream gets the normalised path (SPEC §3.3).
    let up = Upstream::start();
    let gw = Gateway::start(&config(
        &up,
        r#"{ required_paths: ["GET_/orders:cancel", "GET_/u/@me", "GET_/caf\u00e9*", "GET_/a%2Cb",
             "GET_/r/tmpl/{id}*", "GET_/r/list%5b0%5d", "GET_/r/report q1"] }"#,
    ));
    for (target, upstream_path) in [
        ("/orders:cancel", "/orders:cancel"),
        ("/orders%3Acancel", "/orders%3Acancel"),
        ("/orders%3acancel", "/orders%3Acancel"),
        ("/u/%40me", "/u/%40me"),
        ("/u/@me/", "/u/@me/"),
        ("/caf%C3%A9", "/caf%C3%A9"),
        ("/caf%c3%a9/menu", "/caf%C3%A9/menu"),
        ("/a,b", "/a,b"),
        ("/a%2cb", "/a%2Cb"),
        // Printable characters a path may not hold raw, escaped or not.
        ("/r/tmpl/{id}", "/r/tmpl/{id}"),
        ("/r/tmpl/%7Bid%7D/x", "/r/tmpl/%7Bid%7D/x"),
        ("/r/tmpl/%7bid%7d", "/r/tmpl/%7Bid%7D"),
        ("/r/list[0]", "/r/list[0]"),
        ("/r/list%5B0%5D", "/r/list%5B0%5D"),
        ("/r/report%20q1", "/r/report%20q1"),
    ] {
        up.clear();
        let anonymous = gw.send(&Req::get(target));
        assert_refused(&anonymous, "Missing JWT token in request", "jwtgate", false);
        assert_eq!(
            up.count(),
            0,
            "{target} reached the upstream without a token"
        );
        let resp = gw.send(&Req::get(target).bearer(&token()));
        assert_eq!(resp.status, 200, "{target}: {}", resp.text());
        assert_eq!(up.last().path(), upstream_path, "{target}");
    }
    // An escaped `;` is data, not the `:` of the rule: another path.
    assert_eq!(gw.send(&Req::get("/orders%3Bcancel")).status, 200);
}

#[test]
fn regression_absolute_form_target_is_matched_on_its_path() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up, r#"{ required_paths: ["ANY_/admin*"] }"#));
    let resp = gw.send(&Req::get("http://internal.example/admin"));
    assert_refused(&resp, "Missing JWT token in request", "jwtgate", false);
    let resp = gw.send(&Req::get("http://internal.example/public/../admin").bearer(&token()));
    assert_eq!(resp.status, 200, "{}", resp.text());
    // Origin-form upstream, normalised.
    assert_eq!(up.last().target, "/admin");
    assert_eq!(
        gw.send(&Req::get("http://internal.example/public/x"))
            .status,
        200
    );
    assert_eq!(up.last().target, "/public/x");
}

#[test]
fn the_query_string_passes_through_untouched() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up, r#"{ not_required_paths: ["GET_/public*"] }"#));
    let resp = gw.send(&Req::get("/public/%61/../b?x=%2F..%2F&y=a+b&z=%zz"));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(up.last().target, "/public/b?x=%2F..%2F&y=a+b&z=%zz");
}

#[test]
fn methods_prefixes_and_case_sensitivity() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(
        &up,
        r#"{ required_paths: ["GET_/v1/apis*", "POST_/v1/orders", "ANY_/v1/admin", "DELETE_/v1/items/*"] }"#,
    ));
    let needs = |m: &str, p: &str| gw.send(&Req::new(m, p)).status == 401;
    // `GET_/v1/apis*` covers /v1/apis, /v1/apis/a, and also /v1/apisx.
    assert!(needs("GET", "/v1/apis"));
    assert!(needs("GET", "/v1/apis/a"));
    assert!(needs("GET", "/v1/apisx"));
    // A method that is not listed passes; HEAD is GET's (SPEC §3.11).
    assert!(!needs("POST", "/v1/apis"));
    assert!(needs("HEAD", "/v1/apis"));
    // Exact entries are exact, give or take one trailing slash.
    assert!(needs("POST", "/v1/orders"));
    assert!(needs("POST", "/v1/orders/"));
    assert!(!needs("POST", "/v1/orders/1"));
    assert!(!needs("GET", "/v1/orders"));
    // ANY covers every method, including ones no list can name.
    for m in [
        "GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PROPFIND",
    ] {
        assert!(needs(m, "/v1/admin"), "{m} /v1/admin");
    }
    assert!(needs("DELETE", "/v1/items/7"));
    assert!(!needs("DELETE", "/v1/items"));
    // Paths are case-sensitive.
    assert!(!needs("GET", "/V1/APIS"));
    assert!(!needs("GET", "/v1/Admin"));
}

#[test]
fn check_rejects_both_lists_and_bad_entries_with_locations() {
    let out = check_yaml(
        r#"listen: "127.0.0.1:0"
routes:
  - name: a
    paths: ["/*"]
    upstream: { echo: true }
    jwt: { required_paths: ["GET_/x"], not_required_paths: ["GET_/y"] }
  - name: b
    paths: ["/*"]
    upstream: { echo: true }
    jwt:
      required_paths: ["get_/x", "FETCH_/x", "GET/x", "GET_x", "GET_/a*b", "GET_"]
"#,
    );
    assert_ne!(out.code(), Some(0));
    let all = out.all();
    assert!(
        all.contains("routes[0].jwt") && all.contains("not_required_paths"),
        "{all}"
    );
    for i in 0..6 {
        assert!(
            all.contains(&format!("routes[1].jwt.required_paths[{i}]:")),
            "entry {i} not reported:\n{all}"
        );
    }
    assert!(all.contains("\"FETCH\""), "{all}");
}

/// Entries that hold what no request path can never match: `check` says
/// so, and they load (they did before they were told).
#[test]
fn check_warns_of_entries_that_never_match() {
    let out = check_yaml(
        r#"listen: "127.0.0.1:0"
routes:
  - name: a
    paths: ["/a?x", "/ok/*", "/v2//admin/*", "/well/.*"]
    upstream: { echo: true }
    jwt:
      required_paths: ["GET_/r/what?", "GET_/r/tab\t", "GET_/a%2Fb*", "GET_/fine%2*", "GET_/ok/x/../dots", "ANY_/ok/./dot*", "GET_/ok/twin//"]
      authorize: [{ match: ["GET_/a#b"], scopes: [x] }, { match: ["GET_/ok//secret*"], scopes: [write] }]
"#,
    );
    assert_eq!(out.code(), Some(0), "{}", out.all());
    for line in [
        "warning: routes[0].paths[0]: \"?\" (it starts the query) can never match: no request path holds it",
        "warning: routes[0].jwt.required_paths[0]: \"?\" (it starts the query) can never match",
        "warning: routes[0].jwt.required_paths[1]: a control character can never match",
        "warning: routes[0].jwt.required_paths[2]: an escaped slash (%2F) can never match",
        "warning: routes[0].jwt.authorize[0].match[0]: \"#\" (it starts the fragment) can never match",
        // Requests are matched normalised: no `//`, no dot segment.
        "warning: routes[0].paths[2]: an empty segment (\"//\": request paths have repeated slashes merged) can never match",
        "warning: routes[0].jwt.required_paths[4]: a dot segment (\".\" or \"..\": request paths have them resolved) can never match",
        "warning: routes[0].jwt.required_paths[5]: a dot segment",
        "warning: routes[0].jwt.authorize[1].match[0]: an empty segment",
    ] {
        assert!(out.stderr.contains(line), "{line}\n{}", out.stderr);
    }
    assert!(!out.stderr.contains("required_paths[3]"), "{}", out.stderr);
    assert!(!out.stderr.contains("routes[0].paths[1]"), "{}", out.stderr);
    // An exact entry covers its trailing-slash twin: `GET_/ok/twin//`
    // guards `/ok/twin/`.
    assert!(!out.stderr.contains("required_paths[6]"), "{}", out.stderr);
    // A prefix's last segment is not whole: `/well/.*` covers `/well/.x`.
    assert!(!out.stderr.contains("routes[0].paths[3]"), "{}", out.stderr);
}

#[test]
fn explain_reports_the_normalised_path_and_the_rule() {
    // No gateway runs on this config: explain reads the (empty) embedded store.
    let up = Upstream::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("jwtgate.yaml");
    std::fs::write(
        &path,
        config(&up, r#"{ not_required_paths: ["GET_/public*"] }"#),
    )
    .expect("write");
    let cfg = path.to_str().expect("utf8").to_owned();
    struct Dir(tempfile::TempDir);
    let gw = Dir(dir);
    let t = token();
    let out = run_cli(
        &[
            "token",
            "explain",
            &t,
            "--config",
            &cfg,
            "--request",
            "GET /public/../admin",
        ],
        gw.0.path(),
    );
    let text = out.all();
    assert_eq!(out.code(), Some(0), "{text}");
    assert!(text.contains("normalised: /admin"), "{text}");
    assert!(text.contains("token:      required"), "{text}");
    assert!(text.contains("not revoked"), "{text}");
    assert!(
        !gw.0.path().join("data").exists(),
        "explain must not create a store"
    );
    let out = run_cli(
        &[
            "token",
            "explain",
            &t,
            "--config",
            &cfg,
            "--request",
            "GET /public/x",
        ],
        gw.0.path(),
    );
    let text = out.all();
    assert!(text.contains("GET_/public* matched"), "{text}");
    assert!(text.contains("not required"), "{text}");
    let out = run_cli(
        &[
            "token",
            "explain",
            &t,
            "--config",
            &cfg,
            "--request",
            "GET /a/..%2Fb",
        ],
        gw.0.path(),
    );
    assert_eq!(out.code(), Some(1));
    assert!(out.all().contains("invalid request path"), "{}", out.all());
}

#[test]
fn requests_that_need_no_token_are_not_validated_but_still_stripped() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up, r#"{ not_required_paths: ["GET_/public*"] }"#));
    for token in [
        "garbage",
        "a.b.c",
        &sign_hs("HS256", "wrong-secret", claims_for("user123")),
    ] {
        up.clear();
        let resp = gw.send(
            &Req::get("/public/x")
                .bearer(token)
                .header("X-Consumer-Username", "admin")
                .header("X-Consumer-Custom-ID", "root")
                .header("X-Credential-Identifier", "user123"),
        );
        assert_eq!(
            resp.status, 200,
            "{token}: a token on a public path is not validated"
        );
        let seen = up.last();
        for h in [
            "x-consumer-username",
            "x-consumer-custom-id",
            "x-credential-identifier",
        ] {
            assert_eq!(
                seen.header(h),
                None,
                "{h} must be stripped on a public path"
            );
        }
    }
}

#[test]
fn regression_lowercase_method_skips_required_path() {
    // Frameworks that upper-case the method would route `get` to the GET
    // handler the rule protects.
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up, r#"{ required_paths: ["GET_/v1/admin*"] }"#));
    for m in ["get", "Get", "gEt", "post", "Delete", "head", "options"] {
        let resp = gw.send(&Req::new(m, "/v1/admin"));
        assert_eq!(resp.status, 400, "{m}: {}", resp.text());
        assert_eq!(resp.message().as_deref(), Some("invalid request method"));
    }
    assert_eq!(up.count(), 0);
    // Methods that are not a known one in disguise are routed as before.
    assert_eq!(gw.send(&Req::new("PROPFIND", "/v1/admin")).status, 200);
    assert_eq!(gw.send(&Req::new("purge", "/v1/admin")).status, 200);
    assert_eq!(gw.send(&Req::get("/v1/admin")).status, 401);
}

#[test]
fn connect_opens_no_tunnel() {
    // A 2xx to CONNECT tells a proxy in front that a tunnel is open.
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up, r#"{ required_paths: ["GET_/v1/admin*"] }"#));
    for target in ["/public/a", "/v1/admin"] {
        let resp = gw.send(&Req::new("CONNECT", target).bearer(&token()));
        assert_eq!(resp.status, 400, "{target}: {}", resp.text());
        assert_eq!(resp.message().as_deref(), Some("invalid request method"));
    }
    assert_eq!(up.count(), 0);
}

#[test]
fn regression_head_does_not_fall_through_a_get_route_to_an_open_one() {
    // A route for GET takes HEAD too: frameworks answer HEAD with the GET
    // handler, and a HEAD routed past it to an open catch-all skipped its
    // token check.
    let up = Upstream::start();
    let gw = Gateway::start(&format!(
        r#"listen: "127.0.0.1:0"
consumers:
  - username: alice
    jwt: {{ key: user123, secret: "{SECRET}" }}
routes:
  - name: orders
    paths: ["/orders/*"]
    methods: [GET, POST]
    upstream: {{ nodes: ["{node}"] }}
    jwt: {{}}
  - name: open
    paths: ["/*"]
    upstream: {{ nodes: ["{node}"] }}
"#,
        node = up.node()
    ));
    let resp = gw.send(&Req::new("HEAD", "/orders/1"));
    assert_eq!(resp.status, 401, "{resp:?}");
    assert_eq!(up.count(), 0);
    assert_eq!(
        gw.send(&Req::new("HEAD", "/orders/1").bearer(&token()))
            .status,
        200
    );
    // Other methods the route does not list still go on to the next route.
    assert_eq!(gw.send(&Req::new("DELETE", "/orders/1")).status, 200);
}

#[test]
fn regression_head_skips_get_rule() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up, r#"{ required_paths: ["GET_/v1/admin*"] }"#));
    let resp = gw.send(&Req::new("HEAD", "/v1/admin/users"));
    assert_eq!(resp.status, 401);
    assert_eq!(up.count(), 0);
    let token = sign_hs("HS256", SECRET, claims_for("user123"));
    let resp = gw.send(&Req::new("HEAD", "/v1/admin/users").bearer(&token));
    assert_eq!(resp.status, 200);
    assert_eq!(up.last().method, "HEAD");
}

#[test]
fn regression_dot_segment_parameter_bypass() {
    // Tomcat, Jetty and Spring resolve `..;` as `..`: through the open
    // prefix, the upstream would serve /admin.
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up, r#"{ not_required_paths: ["ANY_/open/*"] }"#));
    for target in [
        "/open/..;/admin",
        "/open/..;jsessionid=1/admin",
        "/open/.;/../admin",
        "/open/..%3b/admin",
        "/open/%2e%2e;/admin",
        "/open/%2E%2E%3B/admin",
    ] {
        let resp = gw.get(target);
        assert_eq!(resp.status, 400, "{target}: {}", resp.text());
        assert_eq!(resp.message().as_deref(), Some("invalid request path"));
    }
    assert_eq!(up.count(), 0);
    // An escaped `;` is data to them too: it stays.
    assert_eq!(gw.get("/open/a%3Bv=1").status, 200);
    assert_eq!(up.last().target, "/open/a%3Bv=1");
}

/// The same containers drop every segment's `;` parameters before they
/// look for the resource: `/partial;x/admin` is `/partial/admin` to them,
/// and a rule for `/partial/admin*` did not see it (found by review). A raw
/// `;` anywhere in the path is refused, as Spring Security's default
/// firewall does (stricter than SPEC §3.11, which names dot-segments only).
#[test]
fn regression_path_parameter_bypass() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(
        &up,
        r#"{ required_paths: ["ANY_/partial/admin*"] }"#,
    ));
    for target in [
        "/partial;x/admin",
        "/partial/admin;x",
        "/partial;/admin/users",
    ] {
        let resp = gw.get(target);
        assert_eq!(resp.status, 400, "{target}: {}", resp.text());
        assert_eq!(resp.message().as_deref(), Some("invalid request path"));
    }
    assert_eq!(up.count(), 0);
    assert_eq!(gw.get("/partial/admin").status, 401);
    assert_eq!(gw.get("/partial/other").status, 200);
}

#[test]
fn regression_trailing_slash_skips_exact_rule() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(
        &up,
        r#"{ required_paths: ["GET_/v1/admin", "POST_/v1/reset/"] }"#,
    ));
    for (m, p) in [
        ("GET", "/v1/admin"),
        ("GET", "/v1/admin/"),
        ("GET", "/v1//admin//"),
        ("POST", "/v1/reset/"),
        ("POST", "/v1/reset"),
    ] {
        assert_eq!(gw.send(&Req::new(m, p)).status, 401, "{m} {p}");
    }
    assert_eq!(up.count(), 0);
    // Case stays significant (see README: case-insensitive upstreams).
    assert_eq!(gw.get("/v1/Admin").status, 200);
}
