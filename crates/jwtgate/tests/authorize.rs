//! Authorization by claims (SPEC §3.7), the anonymous consumer (§3.8) and
//! CORS (§3.9) against the real binary: consumer tokens and a real
//! OpenID provider's tokens (Keycloak-style `realm_access.roles`), the
//! same normalised path as the path rules, claim values of every JSON
//! type, and the odd origins browsers and attackers send.

#![allow(clippy::unwrap_used)]

mod admin_support;
mod support;

use jwtgate_testkit::oidc::{test_ca_file, OidcOptions, OidcProvider, TokenRequest};
use serde_json::{json, Value};
use support::*;

const SECRET: &str = "authorize-secret-0123456789abcdefghijk";

/// Consumers `alice` and `guest`; route `orders` with `jwt` (a flow
/// mapping body), route `open` without a policy, both to `up`.
fn config(up: &Upstream, jwt: &str, route_extra: &str) -> String {
    format!(
        r#"listen: "127.0.0.1:0"
consumers:
  - username: alice
    custom_id: crm-42
    jwt: {{ key: user123, secret: "{SECRET}" }}
  - username: guest
    custom_id: anon-1
    jwt: {{ key: guest-key, secret: "guest-secret-0123456789abcdefghijklm" }}
routes:
  - name: orders
    paths: ["/v1/*"]
    upstream: {{ nodes: ["{node}"] }}
{route_extra}    jwt: {jwt}
  - name: open
    paths: ["/open/*"]
    upstream: {{ nodes: ["{node}"] }}
"#,
        node = up.node()
    )
}

/// The README's Keycloak-style rules.
const KEYCLOAK: &str = r#"
      forward_claims: { sub: X-User-Id, realm_access.roles: X-Roles }
      authorize:
        - match: ["GET_/v1/orders/health"]
        - match: ["POST_/v1/orders*", "DELETE_/v1/orders*"]
          scopes: [orders:write]
          any_of: { realm_access.roles: [admin, clerk] }
        - match: ["GET_/v1/orders*"]
          scopes: [orders:read]
      authorize_default: deny
"#;

fn token(claims: Value) -> String {
    let mut c = json!({"key": "user123", "sub": "u-1", "exp": now() + 600});
    for (k, v) in claims.as_object().unwrap() {
        c[k] = v.clone();
    }
    sign_hs("HS256", SECRET, c)
}

fn assert_forbidden(resp: &Response) {
    assert_eq!(resp.status, 403, "{}", resp.text());
    assert_eq!(resp.message().as_deref(), Some("insufficient scope"));
    assert_eq!(
        resp.header("www-authenticate"),
        Some("Bearer realm=\"jwtgate\", error=\"insufficient_scope\"")
    );
}

#[test]
fn keycloak_style_roles_and_scopes_decide_per_method_and_path() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up, &format!("\n{KEYCLOAK}"), ""));
    let writer =
        token(json!({"scope": "openid orders:write", "realm_access": {"roles": ["clerk"]}}));
    let reader = token(json!({"scope": "orders:read"}));
    let both =
        token(json!({"scope": "orders:read orders:write", "realm_access": {"roles": ["viewer"]}}));

    assert_eq!(
        gw.send(&Req::post("/v1/orders").bearer(&writer)).status,
        200
    );
    assert_eq!(up.last().header("x-roles"), Some("clerk"));
    assert_forbidden(&gw.send(&Req::post("/v1/orders").bearer(&reader)));
    // `scope` as an array (PingFederate, Spring Authorization Server).
    let listed =
        token(json!({"scope": ["openid", "orders:write"], "realm_access": {"roles": ["clerk"]}}));
    assert_eq!(
        gw.send(&Req::post("/v1/orders").bearer(&listed)).status,
        200
    );
    // Scope present, role missing.
    assert_forbidden(&gw.send(&Req::new("DELETE", "/v1/orders/7").bearer(&both)));
    assert_eq!(
        gw.send(&Req::get("/v1/orders/7").bearer(&reader)).status,
        200
    );
    // GET covers HEAD.
    assert_eq!(
        gw.send(&Req::new("HEAD", "/v1/orders/7").bearer(&reader))
            .status,
        200
    );
    assert_forbidden(&gw.send(&Req::get("/v1/orders/7").bearer(&writer)));
    // The exception before the stricter rule.
    assert_eq!(
        gw.send(&Req::get("/v1/orders/health").bearer(&writer))
            .status,
        200
    );
    // No rule matches: authorize_default deny.
    assert_forbidden(&gw.send(&Req::new("PUT", "/v1/orders/7").bearer(&both)));
    // Authentication still comes first: 401, not 403.
    let resp = gw.send(&Req::post("/v1/orders"));
    assert_eq!(resp.status, 401);
    let forged = tamper_signature(&writer);
    assert_eq!(
        gw.send(&Req::post("/v1/orders").bearer(&forged)).status,
        401
    );

    // The rule and what it missed are in the log; the outcome is forbidden.
    assert!(
        eventually(IO_TIMEOUT, || gw.logs().contains(
            "denied by authorize[1]: scope \\\"orders:write\\\" missing"
        )),
        "{}",
        gw.logs()
    );
    assert!(gw.logs().contains("auth=forbidden"), "{}", gw.logs());
}

#[test]
fn rules_see_the_normalised_path_and_no_encoding_skips_them() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up, &format!("\n{KEYCLOAK}"), ""));
    let reader = token(json!({"scope": "orders:read"}));
    for target in [
        "/v1/public/../orders",
        "/v1/%6Frders",
        "/v1//orders",
        "/v1/./orders/",
        "/v1/orders/%2e%2e/orders",
    ] {
        let resp = gw.send(&Req::post(target).bearer(&reader));
        assert_forbidden(&resp);
    }
    for target in ["/v1/orders/..;/x", "/v1/orders%2Fx", "/V1/orders"] {
        let resp = gw.send(&Req::post(target).bearer(&reader));
        assert_ne!(resp.status, 200, "{target}: {}", resp.text());
    }
    assert_eq!(up.count(), 0);
}

#[test]
fn provider_tokens_are_authorized_by_their_roles() {
    let idp = OidcProvider::start(&OidcOptions {
        tls: true,
        ..OidcOptions::default()
    });
    let up = Upstream::start();
    let jwt = r#"
      providers: [corp]
      forward_claims: { realm_access.roles: X-Roles, scope: X-Scope }
      authorize:
        - match: ["ANY_/v1/admin*"]
          any_of: { realm_access.roles: [admin] }
        - match: ["ANY_/v1/*"]
          scopes: [orders:read]
"#;
    let yaml = config(&up, jwt, "").replace(
        "routes:",
        &format!(
            "providers:\n  - name: corp\n    issuer: \"{}\"\n    discovery: true\n    ca_file: \"{}\"\nroutes:",
            idp.issuer,
            test_ca_file().display()
        ),
    );
    let gw = Gateway::start(&yaml);
    let get = |roles: &[&str], scope: &str| {
        let t = idp
            .token(&TokenRequest {
                scope: scope.into(),
                roles: Some(roles.iter().map(|r| r.to_string()).collect()),
                ..TokenRequest::default()
            })
            .unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        t
    };
    let admin = get(&["admin", "clerk"], "orders:read");
    let clerk = get(&["clerk"], "orders:read");
    let ok = eventually(std::time::Duration::from_secs(15), || {
        gw.send(&Req::get("/v1/admin/users").bearer(&admin)).status == 200
    });
    assert!(ok, "{}", gw.logs());
    assert_eq!(up.last().header("x-roles"), Some("admin,clerk"));
    assert_eq!(up.last().header("x-scope"), Some("orders:read"));
    assert_forbidden(&gw.send(&Req::get("/v1/admin/users").bearer(&clerk)));
    assert_eq!(gw.send(&Req::get("/v1/orders").bearer(&clerk)).status, 200);
    let no_scope = get(&["clerk"], "openid");
    assert_forbidden(&gw.send(&Req::get("/v1/orders").bearer(&no_scope)));
}

#[test]
fn forwarded_claims_of_every_type_and_no_injection() {
    let up = Upstream::start();
    let jwt = r#"{ forward_claims: { sub: X-Sub, realm_access.roles: X-Roles, org: X-Org, n: X-N, flag: X-Flag, nothing: X-Nothing, evil: X-Evil, tab: X-Tab, uni: X-Uni, mixed: X-Mixed } }"#;
    let gw = Gateway::start(&config(&up, jwt, ""));
    let t = token(json!({
        "realm_access": {"roles": ["admin", "clerk"]},
        "org": {"id": 7, "name": "acme"},
        "n": 42.5,
        "flag": false,
        "nothing": null,
        "evil": "x\r\nX-Consumer-Username: admin",
        "tab": "a\tb",
        "uni": "Zoë ✓",
        "mixed": ["a", 1, {"b": null}, ["c"]]
    }));
    assert_eq!(gw.send(&Req::get("/v1/x").bearer(&t)).status, 200);
    let seen = up.last();
    assert_eq!(seen.header("x-sub"), Some("u-1"));
    assert_eq!(seen.header("x-roles"), Some("admin,clerk"));
    assert_eq!(seen.header("x-org"), Some("{\"id\":7,\"name\":\"acme\"}"));
    assert_eq!(seen.header("x-n"), Some("42.5"));
    assert_eq!(seen.header("x-flag"), Some("false"));
    assert_eq!(seen.header("x-mixed"), Some("a,1,{\"b\":null},[\"c\"]"));
    assert_eq!(seen.header("x-uni"), Some("Zoë ✓"));
    for absent in ["x-nothing", "x-evil", "x-tab"] {
        assert_eq!(seen.header(absent), None, "{absent}");
    }
    assert_eq!(seen.header_all("x-consumer-username"), ["alice"]);
}

#[test]
fn the_anonymous_consumer_serves_requests_without_a_token_only() {
    let up = Upstream::start();
    let jwt = r#"
      anonymous_consumer: guest
      use_jwt_blacklist_revoking: true
      logout_path: "POST_/v1/logout"
      authorize:
        - match: ["GET_/v1/catalog*"]
        - match: ["ANY_/v1/*"]
          scopes: [orders:read]
"#;
    let gw = Gateway::start(&config(&up, jwt, ""));
    // No token: the guest, marked as such, with no credential.
    let resp = gw.send(
        &Req::get("/v1/catalog")
            .header("X-Anonymous-Consumer", "false")
            .header("X-Credential-Identifier", "forged"),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen = up.last();
    assert_eq!(seen.header("x-consumer-username"), Some("guest"));
    assert_eq!(seen.header("x-consumer-custom-id"), Some("anon-1"));
    assert_eq!(seen.header_all("x-anonymous-consumer"), ["true"]);
    assert_eq!(seen.header("x-credential-identifier"), None);
    // Authorization applies to the guest, who has no claims; refused, it
    // is asked for a token (401 without an error code, RFC 6750 §3.1, as
    // Kong's acl answers its anonymous consumer), not told it lacks scope.
    let resp = gw.get("/v1/orders");
    assert_eq!(resp.status, 401, "{}", resp.text());
    assert_eq!(
        resp.message().as_deref(),
        Some("Missing JWT token in request")
    );
    assert_eq!(
        resp.header("www-authenticate"),
        Some("Bearer realm=\"jwtgate\"")
    );
    assert_eq!(
        up.last().path(),
        "/v1/catalog",
        "the refused guest went upstream"
    );
    // A token that fails any check is refused, never downgraded.
    let expired = token(json!({"exp": now() - 100, "scope": "orders:read"}));
    let revoked = token(json!({"scope": "orders:read", "jti": "r"}));
    assert_eq!(
        gw.send(&Req::post("/v1/logout").bearer(&revoked)).status,
        200
    );
    for bad in [
        tamper_signature(&revoked),
        expired,
        revoked,
        "not-a-jwt".to_owned(),
        sign_hs("HS256", SECRET, json!({"key": "nobody", "exp": now() + 60})),
    ] {
        let resp = gw.send(&Req::get("/v1/catalog").bearer(&bad));
        assert_eq!(resp.status, 401, "{}", resp.text());
    }
    // Nor does a `Connection` header that names the carrier make a bad
    // token into none (it was dropped as hop-by-hop before the check), and
    // a bare `jwt` cookie is an (empty) token, as a bare `?jwt` is.
    let expired = token(json!({"exp": now() - 100, "scope": "orders:read"}));
    for req in [
        Req::get("/v1/catalog")
            .bearer(&expired)
            .header("Connection", "close, Authorization"),
        Req::get("/v1/catalog")
            .header("Cookie", &format!("jwt={expired}"))
            .header("Connection", "Cookie"),
        Req::get("/v1/catalog").header("Cookie", "a=b; jwt; c=d"),
    ] {
        let resp = gw.send(&req);
        assert_eq!(resp.status, 401, "{req:?}: {}", resp.text());
    }
    // A good token so addressed to the gateway is checked, and then goes
    // no further (hop-by-hop).
    let good = token(json!({"scope": "orders:read"}));
    let resp = gw.send(
        &Req::get("/v1/orders")
            .bearer(&good)
            .header("Connection", "Authorization"),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(up.last().header("x-consumer-username"), Some("alice"));
    assert_eq!(up.last().header("authorization"), None);
    // An authenticated request never carries the header.
    let resp = gw.send(
        &Req::get("/v1/orders")
            .bearer(&good)
            .header("X-Anonymous-Consumer", "true"),
    );
    assert_eq!(resp.status, 200);
    assert_eq!(up.last().header("x-anonymous-consumer"), None);
    assert_eq!(up.last().header("x-consumer-username"), Some("alice"));
    // The guest cannot log out: the logout path needs a token.
    assert_eq!(gw.send(&Req::post("/v1/logout")).status, 401);
    assert!(
        eventually(IO_TIMEOUT, || gw.logs().contains("auth=anonymous")),
        "{}",
        gw.logs()
    );
    // The refused guest's line says which rule and what it lacked.
    let logs = gw.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("path=\"/v1/orders\"") && l.contains("status=401"))
        .unwrap_or_else(|| panic!("no line for the refused guest:\n{logs}"));
    assert!(
        line.contains("auth=missing") && line.contains("anonymous consumer is refused"),
        "{line}"
    );
    assert!(line.contains("orders:read"), "{line}");
}

/// A consumer without a `jwt` credential (README: beyond SPEC §2) is only a
/// name requests run as: the anonymous consumer, and the consumer a real
/// IdP's token names through `consumer_claim`. No key claim reaches it, and
/// `token sign` refuses it.
#[test]
fn a_consumer_without_a_credential_is_only_a_name_requests_run_as() {
    let idp = OidcProvider::start(&OidcOptions {
        tls: true,
        ..OidcOptions::default()
    });
    let up = Upstream::start();
    let yaml = format!(
        r#"listen: "127.0.0.1:0"
admin: {{ listen: "127.0.0.1:0", api_key: "{key}" }}
consumers:
  - username: alice
    jwt: {{ key: user123, secret: "{SECRET}" }}
  - username: guest
    custom_id: anon-1
  - username: {client}
    custom_id: crm-7
    jwt: null
providers:
  - name: corp
    issuer: "{issuer}"
    discovery: true
    ca_file: "{ca}"
    consumer_claim: client_id
routes:
  - name: orders
    paths: ["/v1/*"]
    upstream: {{ nodes: ["{node}"] }}
    jwt: {{ providers: [corp], anonymous_consumer: guest }}
"#,
        client = jwtgate_testkit::oidc::DEFAULT_CLIENT_ID,
        issuer = idp.issuer,
        ca = test_ca_file().display(),
        node = up.node(),
        key = admin_support::KEY
    );
    let dir = tempfile::tempdir().unwrap();
    let gw = admin_support::Node::start(dir.path(), &yaml);

    // No token: the guest.
    let resp = gw.get("/v1/catalog");
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen = up.last();
    assert_eq!(seen.header("x-consumer-username"), Some("guest"));
    assert_eq!(seen.header("x-consumer-custom-id"), Some("anon-1"));
    assert_eq!(seen.header_all("x-anonymous-consumer"), ["true"]);
    assert_eq!(seen.header("x-credential-identifier"), None);

    // The IdP's token names its client, a consumer with no credential.
    let request = TokenRequest {
        scope: "orders:read".into(),
        ..TokenRequest::default()
    };
    let access = idp.token(&request).unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        eventually(std::time::Duration::from_secs(15), || {
            gw.send(&Req::get("/v1/orders").bearer(&access)).status == 200
        }),
        "{}",
        gw.logs()
    );
    let seen = up.last();
    assert_eq!(
        seen.header("x-consumer-username"),
        Some(jwtgate_testkit::oidc::DEFAULT_CLIENT_ID)
    );
    assert_eq!(seen.header("x-consumer-custom-id"), Some("crm-7"));
    assert_eq!(seen.header("x-anonymous-consumer"), None);
    assert_eq!(
        seen.header("x-credential-identifier"),
        Some(idp.issuer.as_str())
    );

    // A cut-off of that consumer ends the IdP tokens mapped to it that
    // were issued before it.
    let cut = gw.admin(
        "POST",
        "/admin/v1/revocations/subjects",
        Some(json!({"consumer": jwtgate_testkit::oidc::DEFAULT_CLIENT_ID})),
    );
    assert_eq!(cut.status, 201, "{}", cut.text());
    assert_eq!(
        cut.header_all("warning"),
        Vec::<&str>::new(),
        "a provider names it"
    );
    let resp = gw.send(&Req::get("/v1/orders").bearer(&access));
    assert_eq!(resp.status, 401, "{}", resp.text());
    assert_eq!(
        resp.message().as_deref(),
        Some("JWT token has been revoked")
    );

    // Consumer tokens still work; no key names a consumer without one,
    // not its username, not an empty key.
    let alice = sign_hs(
        "HS256",
        SECRET,
        json!({"key": "user123", "exp": now() + 60}),
    );
    assert_eq!(gw.send(&Req::get("/v1/x").bearer(&alice)).status, 200);
    for key in ["guest", "", jwtgate_testkit::oidc::DEFAULT_CLIENT_ID] {
        let forged = sign_hs("HS256", SECRET, json!({"key": key, "exp": now() + 60}));
        let resp = gw.send(&Req::get("/v1/x").bearer(&forged));
        assert_eq!(resp.status, 401, "{key:?}: {}", resp.text());
        assert_eq!(
            resp.message().as_deref(),
            Some("Invalid user key in JWT token"),
            "{key:?}"
        );
    }

    // token sign has nothing to sign with.
    let out = run_cli(
        &[
            "token",
            "sign",
            "--config",
            gw.config_path.to_str().unwrap(),
            "--consumer",
            "guest",
        ],
        dir.path(),
    );
    assert_ne!(out.code(), Some(0), "{}", out.all());
    assert!(
        out.stderr
            .contains("consumer \"guest\" has no jwt credential"),
        "{}",
        out.all()
    );
}

const CORS: &str = r#"    methods: [GET, POST]
    cors:
      allow_origins: ["https://app.example.com", "http://localhost:3000"]
      allow_headers: [Authorization, Content-Type]
      expose_headers: [X-Request-Id]
      allow_credentials: true
      max_age_seconds: 120
"#;

fn preflight(origin: &str) -> Req {
    Req::new("OPTIONS", "/v1/orders")
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "authorization, content-type",
        )
}

#[test]
fn cors_preflights_are_answered_before_authentication() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up, "{}", CORS));
    // The route takes GET and POST only; its preflight is still answered.
    let resp = gw.send(&preflight("https://app.example.com"));
    assert_eq!(resp.status, 204, "{}", resp.text());
    assert_eq!(
        resp.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(
        resp.header("access-control-allow-methods"),
        Some("GET, POST")
    );
    assert_eq!(
        resp.header("access-control-allow-headers"),
        Some("Authorization, Content-Type")
    );
    assert_eq!(
        resp.header("access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(resp.header("access-control-max-age"), Some("120"));
    assert!(resp.header("vary").unwrap().contains("Origin"));
    assert_eq!(up.count(), 0, "a preflight never reaches the upstream");

    // Odd origins: allowed only as browsers serialise the listed ones.
    let mixed = gw.send(&preflight("HTTPS://App.Example.COM"));
    assert_eq!(
        mixed.header("access-control-allow-origin"),
        Some("HTTPS://App.Example.COM")
    );
    for refused in [
        "null",
        "https://app.example.com/",
        "https://app.example.com:8443",
        "http://app.example.com",
        "https://evil.example.com",
        "https://app.example.com.evil.com",
        "http://localhost:3001",
    ] {
        let resp = gw.send(&preflight(refused));
        assert_eq!(resp.status, 204, "{refused}");
        assert_eq!(
            resp.header("access-control-allow-origin"),
            None,
            "{refused}"
        );
        assert_eq!(
            resp.header("access-control-allow-methods"),
            None,
            "{refused}"
        );
    }

    // Two `Origin` fields (no browser sends them) are no allowed origin,
    // whichever comes first: only the first was looked at, and an upstream
    // may read the other (an outside audit).
    let twice = preflight("https://app.example.com").header("Origin", "https://evil.example.com");
    let resp = gw.send(&twice);
    assert_eq!(resp.status, 204);
    assert_eq!(resp.header("access-control-allow-origin"), None);
    let resp = gw.send(
        &Req::get("/v1/orders")
            .header("Origin", "https://app.example.com")
            .header("Origin", "https://evil.example.com"),
    );
    assert_eq!(resp.status, 401);
    assert_eq!(resp.header("access-control-allow-origin"), None);
    assert_eq!(resp.header_all("vary"), ["Origin"]);

    // Other responses: the allowed origin is echoed with Vary, on a 401 too
    // (the app must be able to read it).
    let resp = gw.send(&Req::get("/v1/orders").header("Origin", "http://localhost:3000"));
    assert_eq!(resp.status, 401);
    assert_eq!(
        resp.header("access-control-allow-origin"),
        Some("http://localhost:3000")
    );
    assert_eq!(
        resp.header("access-control-expose-headers"),
        Some("X-Request-Id")
    );
    let t = token(json!({}));
    let resp = gw.send(
        &Req::get("/v1/orders")
            .bearer(&t)
            .header("Origin", "https://app.example.com"),
    );
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert!(resp.header_all("vary").iter().any(|v| v.contains("Origin")));
    // The upstream's own headers come with the CORS ones, each once.
    assert_eq!(resp.header_all("content-type"), ["text/plain"]);
    assert_eq!(
        resp.header_all("x-upstream-id").len(),
        1,
        "{:?}",
        resp.headers
    );
    assert_eq!(resp.header_all("date").len(), 1, "{:?}", resp.headers);
    let resp = gw.send(
        &Req::get("/v1/orders")
            .bearer(&t)
            .header("Origin", "https://evil.example.com"),
    );
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("access-control-allow-origin"), None);
    // Another origin would have got one: a cache is told so, with no
    // Origin at all too, and on a 401.
    assert_eq!(resp.header_all("vary"), ["Origin"]);
    let resp = gw.send(&Req::get("/v1/orders").bearer(&t));
    assert_eq!(resp.header_all("vary"), ["Origin"]);
    let resp = gw.send(&Req::get("/v1/orders"));
    assert_eq!(resp.status, 401);
    assert_eq!(resp.header_all("vary"), ["Origin"]);
    // A preflight to a route without cors is an ordinary request: the
    // open route has no policy and forwards it.
    let resp = gw.send(
        &Req::new("OPTIONS", "/open/x")
            .header("Origin", "https://app.example.com")
            .header("Access-Control-Request-Method", "GET"),
    );
    assert_eq!(resp.status, 200);
    assert_eq!(up.last().method, "OPTIONS");
}

/// The route's CORS answer is the one the browser reads: an upstream's own
/// `Access-Control-*` headers are replaced, its `Vary` kept beside
/// the gateway's.
#[test]
fn the_routes_cors_headers_replace_the_upstreams_own() {
    let up = Upstream::start_with("cors", Behavior::OwnCors);
    let cors = "    cors:\n      allow_origins: [\"https://app.example.com\"]\n";
    let gw = Gateway::start(&config(&up, "{}", cors));
    let resp = gw.send(
        &Req::get("/v1/orders")
            .bearer(&token(json!({})))
            .header("Origin", "https://app.example.com"),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        resp.header_all("access-control-allow-origin"),
        ["https://app.example.com"],
        "{:?}",
        resp.headers
    );
    assert_eq!(
        resp.header("access-control-allow-credentials"),
        None,
        "the route does not allow credentials: {:?}",
        resp.headers
    );
    assert_eq!(
        resp.header("access-control-allow-private-network"),
        None,
        "{:?}",
        resp.headers
    );
    assert_eq!(resp.header_all("vary"), ["Accept-Encoding", "Origin"]);
    assert_eq!(resp.text(), "upstream ok");

    // Another origin, or none, gets none of the upstream's CORS headers
    // (its `*` would grant what the route's policy does not).
    for origin in [Some("https://evil.example"), None] {
        let mut req = Req::get("/v1/orders").bearer(&token(json!({})));
        if let Some(origin) = origin {
            req = req.header("Origin", origin);
        }
        let resp = gw.send(&req);
        assert_eq!(resp.status, 200, "{}", resp.text());
        // Every `Access-Control-*` one (an outside audit found the
        // private-network one passed).
        for name in [
            "access-control-allow-origin",
            "access-control-allow-credentials",
            "access-control-allow-private-network",
        ] {
            assert_eq!(resp.header(name), None, "{origin:?}: {:?}", resp.headers);
        }
        assert_eq!(resp.header_all("vary"), ["Accept-Encoding", "Origin"]);
        assert_eq!(resp.text(), "upstream ok");
    }
}

/// An origin written with its scheme's default port is matched as browsers
/// send it, without the port, and the node says so; it had never matched
/// (an outside audit).
#[test]
fn an_origin_written_with_its_default_port_matches_as_browsers_send_it() {
    let up = Upstream::start();
    let cors = "    cors:\n      allow_origins: [\"https://app.example.com:443\"]\n";
    let gw = Gateway::start(&config(&up, "{}", cors));
    let resp = gw.send(&preflight("https://app.example.com"));
    assert_eq!(resp.status, 204, "{}", resp.text());
    assert_eq!(
        resp.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert!(
        gw.logs().contains("names its scheme's default port, which browsers leave out of Origin: it is matched as \"https://app.example.com\""),
        "{}",
        gw.logs()
    );
}

#[test]
fn cors_with_any_origin_and_reflected_headers() {
    let up = Upstream::start();
    let cors = "    cors:\n      allow_origins: [\"*\"]\n";
    let gw = Gateway::start(&config(&up, "{}", cors));
    let resp = gw.send(&preflight("null"));
    assert_eq!(resp.status, 204);
    assert_eq!(resp.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        resp.header("access-control-allow-headers"),
        Some("authorization, content-type")
    );
    assert_eq!(resp.header("access-control-allow-credentials"), None);
    let resp = gw.send(
        &Req::new("OPTIONS", "/v1/orders")
            .header("Origin", "https://x.example")
            .header("Access-Control-Request-Method", "GET")
            .header("Access-Control-Request-Headers", "x-ok, bad header"),
    );
    assert_eq!(resp.status, 204);
    assert_eq!(resp.header("access-control-allow-headers"), None);
}

#[test]
fn check_locates_authorize_anonymous_and_cors_problems() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = r#"listen: "127.0.0.1:0"
consumers:
  - username: alice
    jwt: { key: k, secret: "check-secret-0123456789abcdefghijklmn" }
routes:
  - name: r
    paths: ["/*"]
    upstream: { echo: true }
    cors:
      allow_origins: ["*"]
      allow_credentials: true
    jwt:
      anonymous_consumer: nobody
      authorize_default: maybe
      forward_claims: { "a..b": X-A }
      required_claims: [exp, "", "realm_access..roles"]
      authorize:
        - match: []
        - match: ["FETCH_/x"]
          scopes: ["two words"]
          any_of: { ".roles": [admin], tenant: [] }
          colour: red
        - match: ["GET_/y"]
          scopes: []
          any_of: {}
          all_of: {}
  - name: s
    paths: ["/s"]
    upstream: { echo: true }
    cors:
      allow_origins: ["null", "https://a.example/", "https://b.example"]
      allow_methods: [get]
      max_age_seconds: 18446744073709551615
"#;
    let path = dir.path().join("jwtgate.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = run_cli(&["check", "--config", path.to_str().unwrap()], dir.path());
    assert_eq!(out.code(), Some(1), "{}", out.all());
    for want in [
        "routes[0].cors.allow_credentials: cannot be true with allow_origins [\"*\"]",
        "routes[0].jwt.anonymous_consumer: no consumer named \"nobody\"",
        "routes[0].jwt.authorize_default: \"maybe\" is not allow or deny",
        "routes[0].jwt.forward_claims.a..b: claim path \"a..b\" has an empty segment",
        "routes[0].jwt.authorize[0].match: needs at least one METHOD_PATH entry",
        "routes[0].jwt.authorize[1].match[0]: unknown method \"FETCH\"",
        "routes[0].jwt.authorize[1].scopes[0]: \"two words\" is not one scope",
        "routes[0].jwt.authorize[1].any_of..roles: claim path \".roles\" has an empty segment",
        "routes[0].jwt.authorize[1].any_of.tenant: needs at least one value",
        "routes[0].jwt.authorize[2].scopes: is empty, which requires nothing",
        "routes[0].jwt.authorize[2].any_of: is empty, which requires nothing",
        "routes[0].jwt.authorize[2].all_of: is empty, which requires nothing",
        "routes[0].jwt.authorize[1].colour: unknown key",
        "routes[1].cors.allow_origins[0]: \"null\" is not allowed",
        "routes[1].cors.allow_origins[1]: \"https://a.example/\" is not an origin",
        "routes[1].cors.allow_methods[0]: invalid method \"get\"",
        "routes[1].cors.max_age_seconds: must be at most 86400",
        "routes[0].jwt.required_claims[1]: empty claim path",
        "routes[0].jwt.required_claims[2]: claim path \"realm_access..roles\" has an empty segment",
    ] {
        assert!(
            out.stderr.contains(want),
            "missing {want:?}:\n{}",
            out.stderr
        );
    }
}

/// A forwarded claim's header is stripped from every client request:
/// named after a token carrier, or a header the gateway owns, it would take
/// every token away (or forward a claim under a name the gateway rewrites).
#[test]
fn check_refuses_a_forwarded_claim_named_after_a_carrier() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = r#"listen: "127.0.0.1:0"
consumers:
  - username: alice
    jwt: { key: k, secret: "check-secret-0123456789abcdefghijklmn" }
routes:
  - name: a
    paths: ["/a/*"]
    upstream: { echo: true }
    jwt:
      forward_claims: { sub: Authorization, tenant: Cookie, org: X_Forwarded_Prefix, team: X-Api-Token }
  - name: b
    paths: ["/b/*"]
    upstream: { echo: true }
    jwt: { header: x-api-token }
"#;
    let path = dir.path().join("jwtgate.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = run_cli(&["check", "--config", path.to_str().unwrap()], dir.path());
    assert_eq!(out.code(), Some(1), "{}", out.all());
    for want in [
        "routes[0].jwt.forward_claims.sub: \"Authorization\" is a header the gateway sets",
        "routes[0].jwt.forward_claims.tenant: \"Cookie\" is a header the gateway sets",
        "routes[0].jwt.forward_claims.org: \"X_Forwarded_Prefix\" is a header the gateway sets",
        "routes[0].jwt.forward_claims: team: \"x-api-token\" is route \"b\"'s token header",
    ] {
        assert!(
            out.stderr.contains(want),
            "missing {want:?}:\n{}",
            out.stderr
        );
    }
}

/// A node with the admin API and consumer `alice`, serving `routes` (the
/// YAML list items under `routes:`).
fn admin_node(dir: &std::path::Path, routes: &str) -> admin_support::Node {
    use admin_support::KEY;
    let yaml = format!(
        r#"listen: "127.0.0.1:0"
admin: {{ listen: "127.0.0.1:0", api_key: "{KEY}" }}
consumers:
  - username: alice
    jwt: {{ key: user123, secret: "{SECRET}" }}
routes:{routes}"#
    );
    admin_support::Node::start(dir, &yaml)
}

#[test]
fn explain_names_the_failing_rule_and_immutable_covers_authorize() {
    let dir = tempfile::tempdir().unwrap();
    let node = admin_node(
        dir.path(),
        r#"
  - name: orders
    paths: ["/v1/*"]
    upstream: { echo: true }
    jwt:
      protection: { immutable: true }
      authorize:
        - match: ["POST_/v1/orders*"]
          scopes: [orders:write]
"#,
    );
    let reader = token(json!({"scope": "orders:read"}));
    let report = node
        .admin(
            "POST",
            "/admin/v1/explain",
            Some(json!({"token": reader, "request": "POST /v1/orders"})),
        )
        .json();
    assert_eq!(report["verdict"], "refused", "{report}");
    assert_eq!(report["status"], 403);
    assert_eq!(report["message"], "insufficient scope");
    assert_eq!(
        report["reason"],
        "denied by authorize[0]: scope \"orders:write\" missing"
    );
    let out = run_cli(
        &[
            "token",
            "explain",
            &reader,
            "--config",
            node.config_path.to_str().unwrap(),
            "--request",
            "POST /v1/orders",
        ],
        dir.path(),
    );
    assert_eq!(out.code(), Some(1), "{}", out.all());
    assert!(
        out.stdout.contains("authorize:  denied by authorize[0]"),
        "{}",
        out.stdout
    );
    // The rules are part of the immutable policy.
    let resp = node.admin(
        "PATCH",
        "/admin/v1/routes/orders/jwt",
        Some(json!({"authorize": [{"match": ["ANY_/*"]}]})),
    );
    assert_eq!(resp.status, 409, "{}", resp.text());
    assert!(resp.text().contains("protection.immutable"));
}

#[test]
fn a_token_allowed_once_is_judged_again_by_changed_or_other_rules() {
    // The verified-token cache remembers which rule a token satisfied; that
    // must never answer for another route's rule at the same position (the
    // two routes below, taking turns). After an admin write tightened the
    // rule, the new version's rule decides (a new version starts with a
    // cache and stamps of its own).
    let dir = tempfile::tempdir().unwrap();
    let node = admin_node(
        dir.path(),
        r#"
  - name: orders
    paths: ["/v1/*"]
    upstream: { echo: true }
    jwt:
      authorize:
        - match: ["GET_/v1/orders*"]
          scopes: [orders:read]
  - name: admin-orders
    paths: ["/v2/*"]
    upstream: { echo: true }
    jwt:
      authorize:
        - match: ["GET_/v2/orders*"]
          scopes: [orders:read]
          any_of: { realm_access.roles: [admin] }
"#,
    );
    let reader = token(json!({"scope": "orders:read", "realm_access": {"roles": ["clerk"]}}));
    for _ in 0..3 {
        assert_eq!(
            node.send(&Req::get("/v1/orders/7").bearer(&reader)).status,
            200
        );
        assert_forbidden(&node.send(&Req::get("/v2/orders/7").bearer(&reader)));
    }
    let resp = node.admin(
        "PATCH",
        "/admin/v1/routes/orders/jwt",
        Some(json!({"authorize": [{"match": ["GET_/v1/orders*"], "scopes": ["orders:read"], "all_of": {"realm_access.roles": ["clerk", "auditor"]}}]})),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(
        eventually(IO_TIMEOUT, || node
            .send(&Req::get("/v1/orders/7").bearer(&reader))
            .status
            == 403),
        "the tightened rule never refused the token it allowed before"
    );
    assert_forbidden(&node.send(&Req::get("/v1/orders/7").bearer(&reader)));
}
