//! The JWT policy seen from outside (SPEC §3): refusals, algorithms, token
//! sources, consumers, claims, identity headers, hidden credentials and path
//! rules, against the real binary and a real recording upstream.

#![allow(clippy::unwrap_used)]

mod support;

use serde_json::json;
use support::*;

const ALICE_SECRET: &str = "alice-secret-0123456789abcdefghij";

/// Two consumers: `alice` (HS256, with a custom_id) and `admin` (RS256, public
/// key from a file), one catch-all route with the given `jwt:` flow mapping.
fn config(up: &Upstream, jwt: &str) -> String {
    format!(
        r#"listen: "127.0.0.1:0"
consumers:
  - username: alice
    custom_id: crm-42
    jwt: {{ key: user123, algorithm: HS256, secret: "{ALICE_SECRET}" }}
  - username: admin
    jwt: {{ key: admin-key, algorithm: RS256, public_key_file: "{rsa_pub}" }}
routes:
  - name: api
    paths: ["/*"]
    upstream: {{ nodes: ["{node}"] }}
    jwt: {jwt}
"#,
        rsa_pub = public_key_path("RS256"),
        node = up.node(),
    )
}

fn alice_token() -> String {
    sign_hs("HS256", ALICE_SECRET, claims_for("user123"))
}

fn admin_token() -> String {
    sign_pk("RS256", claims_for("admin-key"))
}

/// The request reached the upstream with a 200, as `username`.
fn assert_accepted(gw: &Gateway, resp: &Response, up: &Upstream, username: &str) {
    assert_eq!(
        resp.status,
        200,
        "expected 200 for {username}; got {} {:?}\n--- gateway ---\n{}",
        resp.status,
        resp.text(),
        gw.logs()
    );
    assert_eq!(up.last().header("x-consumer-username"), Some(username));
}

// ---------------------------------------------------------------------------
// SPEC §3.2: every row of the table
// ---------------------------------------------------------------------------

#[test]
fn no_token_is_refused_without_error_attribute() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up, "{}"));
    let resp = gw.get("/orders");
    assert_refused(&resp, "Missing JWT token in request", "jwtgate", false);
    assert_eq!(
        up.count(),
        0,
        "a refused request must not reach the upstream"
    );
}

#[test]
fn malformed_tokens_are_refused_as_invalid() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up, "{}"));
    let valid = alice_token();
    let parts: Vec<&str> = valid.split('.').collect();
    let cases: Vec<(&str, String)> = vec![
        ("one segment", "abc".to_owned()),
        ("two segments", format!("{}.{}", parts[0], parts[1])),
        ("four segments", format!("{valid}.{}", parts[2])),
        ("not base64url", "!!!.???.###".to_owned()),
        (
            "padded payload",
            format!("{}.{}=.{}", parts[0], parts[1], parts[2]),
        ),
        (
            "header is not JSON",
            format!("{}.{}.{}", b64(b"not json"), parts[1], parts[2]),
        ),
        (
            "payload is not JSON",
            format!("{}.{}.{}", parts[0], b64(b"{oops"), parts[2]),
        ),
        (
            "payload is a JSON array",
            format!("{}.{}.{}", parts[0], b64(b"[1,2,3]"), parts[2]),
        ),
        (
            "header is a JSON string",
            format!("{}.{}.{}", b64(b"\"HS256\""), parts[1], parts[2]),
        ),
        ("empty segments", "..".to_owned()),
    ];
    for (what, token) in cases {
        let resp = gw.send(&Req::get("/orders").bearer(&token));
        assert_eq!(resp.status, 401, "{what}: {:?}", resp.text());
        assert_refused(&resp, "JWT token invalid", "jwtgate", true);
    }
    assert_eq!(up.count(), 0);
}

/// SPEC §3.1: a token is at most 8 KiB; a larger one, even correctly signed,
/// is not a well-formed token.
#[test]
fn token_larger_than_8_kib_is_invalid() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up, "{}"));
    let mut claims = claims_for("user123");
    claims["filler"] = json!("x".repeat(9 * 1024));
    let token = sign_hs("HS256", ALICE_SECRET, claims);
    assert!(token.len() > 8 * 1024);
    let resp = gw.send(&Req::get("/orders").bearer(&token));
    assert_refused(&resp, "JWT token invalid", "jwtgate", true);
    assert_eq!(up.count(), 0);
}

#[test]
fn payload_without_key_claim_is_refused() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up, "{}"));
    let token = sign_hs(
        "HS256",
        ALICE_SECRET,
        json!({"sub": "user123", "exp": now() + 600}),
    );
    let resp = gw.send(&Req::get("/orders").bearer(&token));
    assert_refused(&resp, "missing user key in JWT token", "jwtgate", true);
}

#[test]
fn unknown_consumer_key_is_refused() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up, "{}"));
    let token = sign_hs("HS256", ALICE_SECRET, claims_for("nobody"));
    let resp = gw.send(&Req::get("/orders").bearer(&token));
    assert_refused(&resp, "Invalid user key in JWT token", "jwtgate", true);
}

/// The last row but one: every verification failure gets the same message.
#[test]
fn verification_failures_share_one_message() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up, "{ max_lifetime_seconds: 86400 }"));
    let n = now();
    let good = alice_token();
    let cases: Vec<(&str, String)> = vec![
        (
            "alg differs from the consumer's (HS384 vs HS256)",
            sign_hs("HS384", ALICE_SECRET, claims_for("user123")),
        ),
        ("bad signature", tamper_signature(&good)),
        (
            "payload changed after signing",
            tamper_payload(
                &good,
                &json!({"key": "user123", "exp": n + 3600, "admin": true}),
            ),
        ),
        (
            "signed with another secret",
            sign_hs(
                "HS256",
                "another-secret-xxxxxxxxxxxxxxxxxxx",
                claims_for("user123"),
            ),
        ),
        (
            "expired",
            sign_hs(
                "HS256",
                ALICE_SECRET,
                json!({"key": "user123", "exp": n - 120}),
            ),
        ),
        (
            "not yet valid",
            sign_hs(
                "HS256",
                ALICE_SECRET,
                json!({"key": "user123", "exp": n + 3600, "nbf": n + 600}),
            ),
        ),
        (
            "missing required claim exp",
            sign_hs("HS256", ALICE_SECRET, json!({"key": "user123"})),
        ),
        (
            "lifetime too long",
            sign_hs(
                "HS256",
                ALICE_SECRET,
                json!({"key": "user123", "exp": n + 10 * 86400}),
            ),
        ),
    ];
    for (what, token) in cases {
        let resp = gw.send(&Req::get("/orders").bearer(&token));
        assert_eq!(resp.status, 401, "{what}: {:?}", resp.text());
        assert_refused(&resp, "failed to verify jwt", "jwtgate", true);
    }
    assert_eq!(up.count(), 0, "no refused request may reach the upstream");
    // And the same gateway still accepts a good token.
    let resp = gw.send(&Req::get("/orders").bearer(&good));
    assert_accepted(&gw, &resp, &up, "alice");
}

/// The last row: a logged-out token is refused on every route (SPEC §3.4).
#[test]
fn revoked_token_is_refused() {
    let up = Upstream::start();
    let yaml = format!(
        r#"listen: "127.0.0.1:0"
consumers:
  - username: alice
    jwt: {{ key: user123, secret: "{ALICE_SECRET}" }}
routes:
  - name: app
    paths: ["/app/*"]
    upstream: {{ nodes: ["{node}"] }}
    jwt: {{ use_jwt_blacklist_revoking: true, logout_path: "POST_/app/logout" }}
  - name: other
    paths: ["/other/*"]
    upstream: {{ nodes: ["{node}"] }}
    jwt: {{}}
"#,
        node = up.node()
    );
    let gw = Gateway::start(&yaml);
    let token = alice_token();
    let other = sign_hs(
        "HS256",
        ALICE_SECRET,
        json!({"key": "user123", "exp": now() + 3000}),
    );

    assert_eq!(gw.send(&Req::get("/app/orders").bearer(&token)).status, 200);
    assert_eq!(gw.send(&Req::get("/other/x").bearer(&token)).status, 200);
    let before = up.count();

    let resp = gw.send(&Req::post("/app/logout").bearer(&token));
    assert_eq!(
        up.count(),
        before,
        "the logout request was proxied to the upstream; with logout_forward \
         false the gateway must answer it itself (SPEC §3.4); got {} {:?}",
        resp.status,
        resp.text()
    );
    assert_eq!(resp.status, 200, "logout: {:?}\n{}", resp.text(), gw.logs());
    assert_eq!(resp.json(), json!({"message": "logged out"}));

    let resp = gw.send(&Req::get("/app/orders").bearer(&token));
    assert_refused(&resp, "JWT token has been revoked", "jwtgate", true);
    let resp = gw.send(&Req::get("/other/x").bearer(&token));
    assert_refused(&resp, "JWT token has been revoked", "jwtgate", true);

    // Another token of the same consumer is unaffected.
    assert_eq!(gw.send(&Req::get("/app/orders").bearer(&other)).status, 200);
}

#[test]
fn custom_realm_is_used_in_www_authenticate() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up, r#"{ realm: "orders-api" }"#));
    assert_refused(
        &gw.get("/orders"),
        "Missing JWT token in request",
        "orders-api",
        false,
    );
    assert_refused(
        &gw.send(&Req::get("/orders").bearer("garbage")),
        "JWT token invalid",
        "orders-api",
        true,
    );
    let expired = sign_hs(
        "HS256",
        ALICE_SECRET,
        json!({"key": "user123", "exp": now() - 60}),
    );
    assert_refused(
        &gw.send(&Req::get("/orders").bearer(&expired)),
        "failed to verify jwt",
        "orders-api",
        true,
    );
}

// ---------------------------------------------------------------------------
// SPEC §3.1: algorithms
// ---------------------------------------------------------------------------

const ALGS: [&str; 13] = [
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
    "ES384", "ES512", "EdDSA",
];

fn hs_secret(alg: &str) -> String {
    format!("secret-for-{alg}-0123456789abcdefghijklmnopqrstuvwxyz")
}

#[test]
fn every_algorithm_is_accepted_and_a_tampered_token_refused() {
    let up = Upstream::start();
    let mut consumers = String::new();
    for alg in ALGS {
        let cred = if alg.starts_with("HS") {
            format!("secret: \"{}\"", hs_secret(alg))
        } else {
            format!("public_key_file: \"{}\"", public_key_path(alg))
        };
        consumers.push_str(&format!(
            "  - username: user-{alg}\n    jwt: {{ key: k-{alg}, algorithm: {alg}, {cred} }}\n"
        ));
    }
    let yaml = format!(
        r#"listen: "127.0.0.1:0"
consumers:
{consumers}routes:
  - name: api
    paths: ["/*"]
    upstream: {{ nodes: ["{node}"] }}
    jwt: {{}}
"#,
        node = up.node()
    );
    let gw = Gateway::start(&yaml);
    for alg in ALGS {
        let claims = claims_for(&format!("k-{alg}"));
        let token = sign_any(alg, &hs_secret(alg), claims.clone());
        let resp = gw.send(&Req::get("/x").bearer(&token));
        assert_eq!(
            resp.status,
            200,
            "{alg} valid token: {:?}\n{}",
            resp.text(),
            gw.logs()
        );
        let user = format!("user-{alg}");
        assert_eq!(
            up.last().header("x-consumer-username"),
            Some(user.as_str()),
            "{alg}"
        );

        let mut changed = claims.clone();
        changed["exp"] = json!(now() + 7200);
        for (how, bad) in [
            ("signature", tamper_signature(&token)),
            ("payload", tamper_payload(&token, &changed)),
        ] {
            let resp = gw.send(&Req::get("/x").bearer(&bad));
            assert_eq!(resp.status, 401, "{alg} tampered {how}: {:?}", resp.text());
            assert_refused(&resp, "failed to verify jwt", "jwtgate", true);
        }
    }
}

/// Key material follows the consumer's algorithm, never the token's: an HS256
/// token HMAC'd with the RS256 consumer's public key text must fail.
#[test]
fn hs256_token_keyed_with_rsa_public_key_text_is_refused() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up, "{}"));
    let pem = read_key("rsa.pub");
    let variants = [
        pem.clone(),
        pem.trim().to_owned(),
        pem.trim_end().to_owned(),
    ];
    for key in variants.iter() {
        let token = sign_hs_with_header(
            "HS256",
            key.as_bytes(),
            json!({"alg": "HS256", "typ": "JWT"}),
            claims_for("admin-key"),
        );
        let resp = gw.send(&Req::get("/x").bearer(&token));
        assert_refused(&resp, "failed to verify jwt", "jwtgate", true);
    }
    assert_eq!(up.count(), 0);
}

/// `alg: none` does not exist (SPEC §3.1). Depending on where the gateway
/// rejects it, the message is "failed to verify jwt" (alg mismatch) or
/// "JWT token invalid" (an empty signature is not well-formed); both are 401.
#[test]
fn alg_none_is_refused() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up, "{}"));
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = json!({"alg": alg, "typ": "JWT"});
        for claims in [claims_for("user123"), claims_for("admin-key")] {
            let unsigned = assemble(&header, &claims, b"");
            let resp = gw.send(&Req::get("/x").bearer(&unsigned));
            assert_eq!(resp.status, 401, "alg {alg}: {:?}", resp.text());
            let msg = resp.message().unwrap_or_default();
            assert!(
                msg == "failed to verify jwt" || msg == "JWT token invalid",
                "alg {alg}: unexpected message {msg:?}"
            );
            // With a signature from the real secret it is still not accepted.
            let signed = sign_hs_with_header(
                "HS256",
                ALICE_SECRET.as_bytes(),
                header.clone(),
                claims.clone(),
            );
            let resp = gw.send(&Req::get("/x").bearer(&signed));
            assert_eq!(
                resp.status,
                401,
                "alg {alg} with HMAC signature: {:?}",
                resp.text()
            );
        }
    }
    assert_eq!(up.count(), 0);
}

// ---------------------------------------------------------------------------
// SPEC §3.1: token sources
// ---------------------------------------------------------------------------

#[test]
fn token_is_taken_from_the_authorization_header_with_or_without_scheme() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up, "{}"));
    let token = alice_token();
    for value in [
        format!("Bearer {token}"),
        format!("bearer {token}"),
        format!("BEARER {token}"),
        format!("BeArEr {token}"),
        token.clone(),
    ] {
        let resp = gw.send(&Req::get("/x").header("Authorization", &value));
        assert_eq!(
            resp.status,
            200,
            "Authorization: {value:.20}...: {:?}",
            resp.text()
        );
        assert_eq!(up.last().header("x-consumer-username"), Some("alice"));
    }
}

#[test]
fn token_is_taken_from_the_query_argument() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up, "{}"));
    let resp = gw.get(&format!("/x?a=1&jwt={}", alice_token()));
    assert_accepted(&gw, &resp, &up, "alice");
}

#[test]
fn token_is_taken_from_the_cookie() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up, "{}"));
    let resp = gw.send(&Req::get("/x").header("Cookie", &format!("jwt={}", alice_token())));
    assert_accepted(&gw, &resp, &up, "alice");
    let resp = gw.send(&Req::get("/x").header(
        "Cookie",
        &format!("theme=dark; jwt={}; lang=en", admin_token()),
    ));
    assert_accepted(&gw, &resp, &up, "admin");
}

#[test]
fn regression_second_token_rides_along() {
    // SPEC §3.11: the gateway would verify one token while the upstream
    // reads the other. Two different tokens, in any two carriers, are one
    // malformed request; the upstream never sees it.
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up, "{}"));
    let (alice, admin) = (alice_token(), admin_token());
    let forged = tamper_signature(&admin);
    let cases = [
        Req::get(&format!("/x?jwt={forged}")).bearer(&alice),
        Req::get(&format!("/x?jwt={alice}")).header("Cookie", &format!("jwt={forged}")),
        Req::get("/x")
            .bearer(&alice)
            .header("Cookie", &format!("jwt={forged}")),
        Req::get(&format!("/x?jwt={alice}&jwt={forged}")),
        // An encoded name is the same argument to the upstream's parser.
        Req::get(&format!("/x?jwt={alice}&%6Awt={forged}")),
        Req::get(&format!("/x?%6a%77%74={forged}")).bearer(&alice),
        Req::get(&format!("/x?JWT={forged}")).bearer(&alice),
        Req::get("/x").header("Cookie", &format!("jwt={alice}; jwt={forged}")),
        Req::get("/x")
            .header("Cookie", &format!("jwt={alice}"))
            .header("Cookie", &format!("jwt={forged}")),
        Req::get("/x").bearer(&alice).bearer(&forged),
        Req::get(&format!("/x?jwt={admin}")).bearer(&alice),
        // A bad first token is not rescued by a good second one either.
        Req::get(&format!("/x?jwt={alice}")).bearer("not-a-token"),
        Req::get("/x?jwt=not-a-token").header("Cookie", &format!("jwt={alice}")),
    ];
    for (i, req) in cases.iter().enumerate() {
        let resp = gw.send(req);
        assert_refused(&resp, "JWT token invalid", "jwtgate", true);
        assert_eq!(up.count(), 0, "case {i} reached the upstream");
    }
    assert!(
        eventually(IO_TIMEOUT, || gw
            .logs()
            .contains("more than one distinct token")),
        "{}",
        gw.logs()
    );

    // The same token twice is one token.
    let resp = gw.send(&Req::get(&format!("/x?jwt={alice}")).bearer(&alice));
    assert_accepted(&gw, &resp, &up, "alice");
    let resp = gw.send(&Req::get("/x").bearer(&alice).bearer(&alice));
    assert_accepted(&gw, &resp, &up, "alice");
    let resp = gw.send(
        &Req::get(&format!("/x?jwt={admin}"))
            .bearer(&admin)
            .header("Cookie", &format!("a=1; jwt={admin}")),
    );
    assert_accepted(&gw, &resp, &up, "admin");
}

#[test]
fn hide_credentials_hides_every_carrier_of_the_token() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up, "{ hide_credentials: true }"));
    let alice = alice_token();
    let resp = gw.send(
        &Req::get(&format!("/x?a=1&jwt={alice}"))
            .bearer(&alice)
            .header("Cookie", &format!("a=1; jwt={alice}")),
    );
    assert_accepted(&gw, &resp, &up, "alice");
    let seen = up.last();
    assert_eq!(seen.header("authorization"), None);
    assert_eq!(seen.query(), Some("a=1"));
    assert_eq!(seen.header("cookie"), Some("a=1"));
    // The token under an encoded name is hidden too.
    let resp = gw.send(&Req::get(&format!("/x?%6Awt={alice}&b=2")));
    assert_accepted(&gw, &resp, &up, "alice");
    assert_eq!(up.last().query(), Some("b=2"));
    // A cookie name padded with Unicode whitespace is read as the jwt
    // cookie (some upstream's parser trims it so), and hidden as it is read.
    for padded in ["\u{a0}jwt", "jwt\u{3000}", "\u{2003}JWT"] {
        let resp =
            gw.send(&Req::get("/x").header("Cookie", &format!("a=1; {padded}={alice}; b=2")));
        assert_accepted(&gw, &resp, &up, "alice");
        assert_eq!(up.last().header("cookie"), Some("a=1; b=2"), "{padded:?}");
    }
}

#[test]
fn custom_token_source_names_are_used() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(
        &up,
        r#"{ header: X-Api-Token, query: access_token, cookie: session }"#,
    ));
    let token = alice_token();
    assert_accepted(
        &gw,
        &gw.send(&Req::get("/x").header("X-Api-Token", &token)),
        &up,
        "alice",
    );
    assert_accepted(
        &gw,
        &gw.get(&format!("/x?access_token={token}")),
        &up,
        "alice",
    );
    assert_accepted(
        &gw,
        &gw.send(&Req::get("/x").header("Cookie", &format!("session={token}"))),
        &up,
        "alice",
    );
    // The default names are not sources any more.
    assert_refused(
        &gw.get(&format!("/x?jwt={token}")),
        "Missing JWT token in request",
        "jwtgate",
        false,
    );
}

// ---------------------------------------------------------------------------
// Consumers and the key claim
// ---------------------------------------------------------------------------

#[test]
fn two_consumers_with_different_algorithms_get_their_own_identity() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up, "{}"));
    let resp = gw.send(&Req::get("/x").bearer(&alice_token()));
    assert_accepted(&gw, &resp, &up, "alice");
    let resp = gw.send(&Req::get("/x").bearer(&admin_token()));
    assert_accepted(&gw, &resp, &up, "admin");
    assert_eq!(
        up.last().header("x-credential-identifier"),
        Some("admin-key")
    );

    // alice's key claim with an RS256 token, admin's with an HS256 token: no.
    let wrong = sign_pk("RS256", claims_for("user123"));
    assert_refused(
        &gw.send(&Req::get("/x").bearer(&wrong)),
        "failed to verify jwt",
        "jwtgate",
        true,
    );
    let wrong = sign_hs("HS256", ALICE_SECRET, claims_for("admin-key"));
    assert_refused(
        &gw.send(&Req::get("/x").bearer(&wrong)),
        "failed to verify jwt",
        "jwtgate",
        true,
    );
}

#[test]
fn key_claim_name_apim_key_claim_name() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up, "{ key_claim_name: apim_key_claim_name }"));
    let token = sign_hs(
        "HS256",
        ALICE_SECRET,
        json!({"apim_key_claim_name": "user123", "exp": now() + 600}),
    );
    assert_accepted(&gw, &gw.send(&Req::get("/x").bearer(&token)), &up, "alice");
    // The default claim name no longer counts.
    let token = sign_hs("HS256", ALICE_SECRET, claims_for("user123"));
    assert_refused(
        &gw.send(&Req::get("/x").bearer(&token)),
        "missing user key in JWT token",
        "jwtgate",
        true,
    );
}

#[test]
fn key_claim_name_sub() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up, "{ key_claim_name: sub }"));
    let token = sign_pk("RS256", json!({"sub": "admin-key", "exp": now() + 600}));
    assert_accepted(&gw, &gw.send(&Req::get("/x").bearer(&token)), &up, "admin");
    let token = sign_hs(
        "HS256",
        ALICE_SECRET,
        json!({"sub": "nobody", "exp": now() + 600}),
    );
    assert_refused(
        &gw.send(&Req::get("/x").bearer(&token)),
        "Invalid user key in JWT token",
        "jwtgate",
        true,
    );
}

/// The key claim must be a string (SPEC §3.1 order of checks).
#[test]
fn non_string_key_claim_is_missing() {
    let up = Upstream::start();
    let yaml = format!(
        r#"listen: "127.0.0.1:0"
consumers:
  - username: numeric
    jwt: {{ key: "12345", secret: "{ALICE_SECRET}" }}
routes:
  - name: api
    paths: ["/*"]
    upstream: {{ nodes: ["{node}"] }}
    jwt: {{}}
"#,
        node = up.node()
    );
    let gw = Gateway::start(&yaml);
    for key in [
        json!(12345),
        json!(["12345"]),
        json!({"k": "12345"}),
        json!(null),
        json!(true),
    ] {
        let token = sign_hs(
            "HS256",
            ALICE_SECRET,
            json!({"key": key, "exp": now() + 600}),
        );
        let resp = gw.send(&Req::get("/x").bearer(&token));
        assert_eq!(resp.status, 401, "key {key}: {:?}", resp.text());
        assert_refused(&resp, "missing user key in JWT token", "jwtgate", true);
    }
    let token = sign_hs(
        "HS256",
        ALICE_SECRET,
        json!({"key": "12345", "exp": now() + 600}),
    );
    assert_accepted(
        &gw,
        &gw.send(&Req::get("/x").bearer(&token)),
        &up,
        "numeric",
    );
}

// ---------------------------------------------------------------------------
// Claims: exp, nbf, leeway, required claims, lifetime
// ---------------------------------------------------------------------------

#[test]
fn expired_and_not_yet_valid_tokens_are_refused_without_leeway() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up, "{}"));
    let n = now();
    let expired = sign_hs(
        "HS256",
        ALICE_SECRET,
        json!({"key": "user123", "exp": n - 100}),
    );
    let early = sign_hs(
        "HS256",
        ALICE_SECRET,
        json!({"key": "user123", "exp": n + 3600, "nbf": n + 100}),
    );
    let ok = sign_hs(
        "HS256",
        ALICE_SECRET,
        json!({"key": "user123", "exp": n + 3600, "nbf": n - 100}),
    );
    assert_refused(
        &gw.send(&Req::get("/x").bearer(&expired)),
        "failed to verify jwt",
        "jwtgate",
        true,
    );
    assert_refused(
        &gw.send(&Req::get("/x").bearer(&early)),
        "failed to verify jwt",
        "jwtgate",
        true,
    );
    assert_accepted(&gw, &gw.send(&Req::get("/x").bearer(&ok)), &up, "alice");
}

#[test]
fn leeway_allows_recently_expired_and_almost_valid_tokens() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up, "{ leeway_seconds: 300 }"));
    let n = now();
    let expired = sign_hs(
        "HS256",
        ALICE_SECRET,
        json!({"key": "user123", "exp": n - 100}),
    );
    let early = sign_hs(
        "HS256",
        ALICE_SECRET,
        json!({"key": "user123", "exp": n + 3600, "nbf": n + 100}),
    );
    assert_accepted(
        &gw,
        &gw.send(&Req::get("/x").bearer(&expired)),
        &up,
        "alice",
    );
    assert_accepted(&gw, &gw.send(&Req::get("/x").bearer(&early)), &up, "alice");
    // Beyond the leeway, still refused.
    let long_expired = sign_hs(
        "HS256",
        ALICE_SECRET,
        json!({"key": "user123", "exp": n - 1000}),
    );
    let far_future = sign_hs(
        "HS256",
        ALICE_SECRET,
        json!({"key": "user123", "exp": n + 3600, "nbf": n + 1000}),
    );
    assert_refused(
        &gw.send(&Req::get("/x").bearer(&long_expired)),
        "failed to verify jwt",
        "jwtgate",
        true,
    );
    assert_refused(
        &gw.send(&Req::get("/x").bearer(&far_future)),
        "failed to verify jwt",
        "jwtgate",
        true,
    );
}

#[test]
fn required_claims_are_enforced() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up, "{ required_claims: [exp, sub] }"));
    let n = now();
    let no_sub = sign_hs(
        "HS256",
        ALICE_SECRET,
        json!({"key": "user123", "exp": n + 600}),
    );
    let no_exp = sign_hs("HS256", ALICE_SECRET, json!({"key": "user123", "sub": "a"}));
    let both = sign_hs(
        "HS256",
        ALICE_SECRET,
        json!({"key": "user123", "sub": "a", "exp": n + 600}),
    );
    assert_refused(
        &gw.send(&Req::get("/x").bearer(&no_sub)),
        "failed to verify jwt",
        "jwtgate",
        true,
    );
    assert_refused(
        &gw.send(&Req::get("/x").bearer(&no_exp)),
        "failed to verify jwt",
        "jwtgate",
        true,
    );
    assert_accepted(&gw, &gw.send(&Req::get("/x").bearer(&both)), &up, "alice");
}

#[test]
fn exp_is_required_by_default_and_can_be_made_optional() {
    let up = Upstream::start();
    let no_exp = sign_hs("HS256", ALICE_SECRET, json!({"key": "user123"}));
    {
        let gw = Gateway::start(&config(&up, "{}"));
        assert_refused(
            &gw.send(&Req::get("/x").bearer(&no_exp)),
            "failed to verify jwt",
            "jwtgate",
            true,
        );
    }
    let gw = Gateway::start(&config(&up, "{ required_claims: [] }"));
    assert_accepted(&gw, &gw.send(&Req::get("/x").bearer(&no_exp)), &up, "alice");
    // exp is still checked when present.
    let expired = sign_hs(
        "HS256",
        ALICE_SECRET,
        json!({"key": "user123", "exp": now() - 100}),
    );
    assert_refused(
        &gw.send(&Req::get("/x").bearer(&expired)),
        "failed to verify jwt",
        "jwtgate",
        true,
    );
}

#[test]
fn max_lifetime_seconds_limits_exp() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up, "{ max_lifetime_seconds: 3600 }"));
    let n = now();
    let short = sign_hs(
        "HS256",
        ALICE_SECRET,
        json!({"key": "user123", "exp": n + 600}),
    );
    let long = sign_hs(
        "HS256",
        ALICE_SECRET,
        json!({"key": "user123", "exp": n + 7200}),
    );
    assert_accepted(&gw, &gw.send(&Req::get("/x").bearer(&short)), &up, "alice");
    assert_refused(
        &gw.send(&Req::get("/x").bearer(&long)),
        "failed to verify jwt",
        "jwtgate",
        true,
    );
}

// ---------------------------------------------------------------------------
// Identity headers (SPEC §3.2, last paragraph)
// ---------------------------------------------------------------------------

#[test]
fn identity_headers_reach_the_upstream_on_success() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(
        &up,
        "{ forward_claims: { sub: X-User-Id, role: X-User-Role } }",
    ));
    let token = sign_hs(
        "HS256",
        ALICE_SECRET,
        json!({"key": "user123", "exp": now() + 600, "sub": "alice@example.com", "role": "buyer"}),
    );
    assert_eq!(gw.send(&Req::get("/x").bearer(&token)).status, 200);
    let r = up.last();
    assert_eq!(r.header_all("x-consumer-username"), vec!["alice"]);
    assert_eq!(r.header_all("x-consumer-custom-id"), vec!["crm-42"]);
    assert_eq!(r.header_all("x-credential-identifier"), vec!["user123"]);
    assert_eq!(r.header_all("x-user-id"), vec!["alice@example.com"]);
    assert_eq!(r.header_all("x-user-role"), vec!["buyer"]);

    // admin has no custom_id: no X-Consumer-Custom-ID at all.
    let token = sign_pk(
        "RS256",
        json!({"key": "admin-key", "exp": now() + 600, "sub": "root"}),
    );
    assert_eq!(gw.send(&Req::get("/x").bearer(&token)).status, 200);
    let r = up.last();
    assert_eq!(r.header_all("x-consumer-username"), vec!["admin"]);
    assert_eq!(r.header_all("x-consumer-custom-id"), Vec::<&str>::new());
    assert_eq!(r.header_all("x-credential-identifier"), vec!["admin-key"]);
    assert_eq!(r.header_all("x-user-id"), vec!["root"]);
    assert_eq!(
        r.header_all("x-user-role"),
        Vec::<&str>::new(),
        "claim absent: no header"
    );
}

#[test]
fn regression_connection_cannot_name_the_identity_headers_away() {
    // `Connection` lists hop-by-hop headers to drop. Dropping them after the
    // gateway set its identity headers let a client strip those (and the
    // route's forward_claims headers) from what the upstream receives.
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up, "{ forward_claims: { sub: X-User-Id } }"));
    let token = sign_hs(
        "HS256",
        ALICE_SECRET,
        json!({"key": "user123", "exp": now() + 600, "sub": "alice@example.com"}),
    );
    let req = Req::get("/x")
        .bearer(&token)
        .header(
            "Connection",
            "x-consumer-username, X-Credential-Identifier, x-user-id, x-extra",
        )
        .header("X-Extra", "hop");
    assert_eq!(gw.send(&req).status, 200);
    let r = up.last();
    assert_eq!(r.header_all("x-consumer-username"), vec!["alice"]);
    assert_eq!(r.header_all("x-credential-identifier"), vec!["user123"]);
    assert_eq!(r.header_all("x-user-id"), vec!["alice@example.com"]);
    assert_eq!(
        r.header_all("x-extra"),
        Vec::<&str>::new(),
        "a named hop-by-hop header still goes"
    );
}

const SPOOFED: [(&str, &str); 3] = [
    ("X-Consumer-Username", "mallory"),
    ("X-Consumer-Custom-ID", "spoofed-id"),
    ("X-Credential-Identifier", "spoofed-key"),
];

fn with_spoofed_identity(mut req: Req) -> Req {
    for (n, v) in SPOOFED {
        req = req.header(n, v);
        // Lower-case duplicates too: header names are case-insensitive.
        req = req.header(&n.to_ascii_lowercase(), v);
    }
    req
}

#[test]
fn client_sent_identity_headers_are_removed_on_an_authenticated_route() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up, "{}"));
    // admin has no custom_id: the spoofed copy must not survive just because
    // the gateway has nothing to put there.
    let req = with_spoofed_identity(Req::get("/x").bearer(&admin_token()));
    assert_eq!(gw.send(&req).status, 200);
    let r = up.last();
    assert_eq!(r.header_all("x-consumer-username"), vec!["admin"]);
    assert_eq!(r.header_all("x-credential-identifier"), vec!["admin-key"]);
    assert_eq!(r.header_all("x-consumer-custom-id"), Vec::<&str>::new());
    // alice has a custom_id: exactly the real one.
    let req = with_spoofed_identity(Req::get("/x").bearer(&alice_token()));
    assert_eq!(gw.send(&req).status, 200);
    let r = up.last();
    assert_eq!(r.header_all("x-consumer-username"), vec!["alice"]);
    assert_eq!(r.header_all("x-consumer-custom-id"), vec!["crm-42"]);
    assert_eq!(r.header_all("x-credential-identifier"), vec!["user123"]);
}

/// SPEC §3.2: the upstream gets "X-Consumer-Username, X-Consumer-Custom-ID
/// and X-Credential-Identifier, plus any forward_claims headers. Copies of
/// these headers sent by the client are removed". A forward_claims header is
/// identity the upstream trusts, so a client-sent copy must never pass, also
/// when the token lacks the claim.
#[test]
fn client_sent_forward_claims_headers_are_removed() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up, "{ forward_claims: { sub: X-User-Id } }"));
    let with_sub = sign_hs(
        "HS256",
        ALICE_SECRET,
        json!({"key": "user123", "exp": now() + 600, "sub": "real-sub"}),
    );
    let req = Req::get("/x")
        .bearer(&with_sub)
        .header("X-User-Id", "spoofed-sub");
    assert_eq!(gw.send(&req).status, 200);
    let r = up.last();
    assert_eq!(
        r.header_all("x-user-id"),
        vec!["real-sub"],
        "token has sub: exactly the claim's value"
    );

    let without_sub = alice_token();
    let req = Req::get("/x")
        .bearer(&without_sub)
        .header("X-User-Id", "spoofed-sub");
    assert_eq!(gw.send(&req).status, 200);
    let r = up.last();
    assert_eq!(
        r.header_all("x-user-id"),
        Vec::<&str>::new(),
        "token has no sub: a client-sent X-User-Id must not reach the upstream: {:?}",
        r.headers
    );
}

/// `forward_payload_header` (Envoy's): the verified token's payload
/// segment, as it came, in that header; a client's copy never passes, with
/// a token, without one (a path that needs none), or on a route without
/// `jwt`.
#[test]
fn forward_payload_header_carries_the_verified_payload_and_nothing_a_client_sent() {
    use base64::Engine as _;
    let up = Upstream::start();
    let yaml = config(
        &up,
        r#"{ forward_payload_header: X-Jwt-Payload, not_required_paths: ["GET_/open"] }
  - name: plain
    paths: ["/plain/*"]
    upstream: { nodes: ["NODE"] }"#,
    )
    .replace("NODE", &up.node());
    let gw = Gateway::start(&yaml);
    let token = sign_hs(
        "HS256",
        ALICE_SECRET,
        json!({"key": "user123", "exp": now() + 600, "sub": "u-1", "roles": ["a", "b"]}),
    );
    let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"sub":"root"}"#);
    let resp = gw.send(
        &Req::get("/x")
            .bearer(&token)
            .header("X-Jwt-Payload", &forged),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    let r = up.last();
    let segment = token.split('.').nth(1).unwrap();
    assert_eq!(
        r.header_all("x-jwt-payload"),
        vec![segment],
        "{:?}",
        r.headers
    );
    let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(segment)
        .unwrap();
    let payload: serde_json::Value = serde_json::from_slice(&decoded).unwrap();
    assert_eq!(payload["sub"], "u-1");
    assert_eq!(payload["roles"], json!(["a", "b"]));
    for path in ["/open", "/plain/x"] {
        let resp = gw.send(&Req::get(path).header("X-Jwt-Payload", &forged));
        assert_eq!(resp.status, 200, "{path}: {}", resp.text());
        let r = up.last();
        assert_eq!(
            r.header_all("x-jwt-payload"),
            Vec::<&str>::new(),
            "{path}: a client's payload header reached the upstream: {:?}",
            r.headers
        );
    }
    // A refused token sends nothing upstream at all.
    let bad = sign_hs(
        "HS256",
        "another-secret-0123456789abcdefghij",
        claims_for("user123"),
    );
    assert_eq!(gw.send(&Req::get("/x").bearer(&bad)).status, 401);
}

/// The payload's header is checked as a forwarded claim's is: a valid
/// name, not one the gateway owns, not a route's token carrier.
#[test]
fn a_forward_payload_header_the_gateway_owns_or_reads_tokens_from_is_refused() {
    let up = Upstream::start();
    for (jwt, want) in [
        (
            "{ forward_payload_header: Authorization }",
            "routes[0].jwt.forward_payload_header: \"Authorization\" is a header the gateway sets",
        ),
        (
            "{ forward_payload_header: X-Consumer-Username }",
            "routes[0].jwt.forward_payload_header: \"X-Consumer-Username\" is a header the gateway sets",
        ),
        (
            "{ forward_payload_header: X-Sub, forward_claims: { sub: x_sub } }",
            "routes[0].jwt.forward_payload_header: \"x-sub\" is also forward_claims' header for sub",
        ),
        (
            "{ forward_payload_header: \"X Payload\" }",
            "routes[0].jwt.forward_payload_header: \"X Payload\" is not a valid header name",
        ),
        (
            "{ forward_payload_header: X-Api-Token }\n  - name: b\n    paths: [\"/b/*\"]\n    upstream: { echo: true }\n    jwt: { header: x-api-token }",
            "routes[0].jwt.forward_payload_header: \"x-api-token\" is route \"b\"'s token header",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwtgate.yaml");
        std::fs::write(&path, config(&up, jwt)).unwrap();
        let out = run_cli(&["check", "--config", path.to_str().unwrap()], dir.path());
        assert_eq!(out.code(), Some(1), "{jwt}: {}", out.all());
        assert!(out.stderr.contains(want), "{jwt}: missing {want:?}:\n{}", out.stderr);
    }
}

#[test]
fn client_sent_identity_headers_are_removed_on_a_route_without_jwt() {
    let up = Upstream::start();
    let yaml = format!(
        r#"listen: "127.0.0.1:0"
consumers:
  - username: alice
    jwt: {{ key: user123, secret: "{ALICE_SECRET}" }}
routes:
  - name: open
    paths: ["/public/*"]
    upstream: {{ nodes: ["{node}"] }}
  - name: optional
    paths: ["/mixed/*"]
    upstream: {{ nodes: ["{node}"] }}
    jwt: {{ required_paths: ["GET_/mixed/private*"] }}
"#,
        node = up.node()
    );
    let gw = Gateway::start(&yaml);
    for path in ["/public/x", "/mixed/open"] {
        let resp = gw.send(&with_spoofed_identity(Req::get(path)));
        assert_eq!(resp.status, 200, "{path}: {:?}", resp.text());
        let r = up.last();
        for (n, _) in SPOOFED {
            assert_eq!(
                r.header_all(n),
                Vec::<&str>::new(),
                "{path}: client-sent {n} reached the upstream: {:?}",
                r.headers
            );
        }
    }
}

// ---------------------------------------------------------------------------
// hide_credentials
// ---------------------------------------------------------------------------

#[test]
fn credentials_are_forwarded_by_default() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up, "{}"));
    let token = alice_token();
    assert_eq!(gw.send(&Req::get("/x").bearer(&token)).status, 200);
    assert_eq!(
        up.last().header("authorization"),
        Some(format!("Bearer {token}").as_str())
    );
}

#[test]
fn hide_credentials_strips_the_authorization_header() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up, "{ hide_credentials: true }"));
    let resp = gw.send(
        &Req::get("/x?keep=1")
            .bearer(&alice_token())
            .header("X-Other", "kept"),
    );
    assert_accepted(&gw, &resp, &up, "alice");
    let r = up.last();
    assert_eq!(r.header("authorization"), None, "{:?}", r.headers);
    assert_eq!(r.header("x-other"), Some("kept"));
    assert_eq!(r.query(), Some("keep=1"));
}

#[test]
fn hide_credentials_strips_the_query_argument_only() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up, "{ hide_credentials: true }"));
    let token = alice_token();
    let resp = gw.get(&format!("/x?a=1&jwt={token}&b=two"));
    assert_accepted(&gw, &resp, &up, "alice");
    let r = up.last();
    assert_eq!(r.path(), "/x");
    let query = r.query().unwrap_or("");
    assert!(
        !query.contains("jwt="),
        "query still carries the token: {query:?}"
    );
    assert!(
        !query.contains(&token[..20]),
        "query still carries the token: {query:?}"
    );
    let mut args: Vec<&str> = query.split('&').filter(|s| !s.is_empty()).collect();
    args.sort_unstable();
    assert_eq!(args, vec!["a=1", "b=two"]);
}

#[test]
fn hide_credentials_strips_the_cookie_only() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up, "{ hide_credentials: true }"));
    let token = alice_token();
    let resp =
        gw.send(&Req::get("/x").header("Cookie", &format!("theme=dark; jwt={token}; lang=en")));
    assert_accepted(&gw, &resp, &up, "alice");
    let r = up.last();
    let cookies = r.header_all("cookie").join("; ");
    assert!(
        !cookies.contains("jwt="),
        "cookie still carries the token: {cookies:?}"
    );
    assert!(
        !cookies.contains(&token[..20]),
        "cookie still carries the token: {cookies:?}"
    );
    let mut pairs: Vec<&str> = cookies
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    pairs.sort_unstable();
    assert_eq!(pairs, vec!["lang=en", "theme=dark"]);
}

// ---------------------------------------------------------------------------
// Path rules (SPEC §3.3)
// ---------------------------------------------------------------------------

fn rules_config(up: &Upstream, jwt: &str) -> String {
    format!(
        r#"listen: "127.0.0.1:0"
consumers:
  - username: alice
    jwt: {{ key: user123, secret: "{ALICE_SECRET}" }}
routes:
  - name: api
    paths: ["/*"]
    upstream: {{ nodes: ["{node}"] }}
    jwt: {jwt}
"#,
        node = up.node()
    )
}

#[test]
fn required_paths_mode_protects_only_matching_requests() {
    let up = Upstream::start();
    let gw = Gateway::start(&rules_config(
        &up,
        r#"{ required_paths: ["GET_/v1/apis*", "ANY_/admin"] }"#,
    ));
    for (method, path) in [
        ("GET", "/v1/apis"),
        ("GET", "/v1/apis/a"),
        ("GET", "/v1/apisx"),
        ("DELETE", "/admin"),
        ("GET", "/admin"),
    ] {
        let resp = gw.send(&Req::new(method, path));
        assert_refused(&resp, "Missing JWT token in request", "jwtgate", false);
        let resp = gw.send(&Req::new(method, path).bearer(&alice_token()));
        assert_eq!(resp.status, 200, "{method} {path} with a token");
    }
    for (method, path) in [
        ("POST", "/v1/apis"),
        ("GET", "/v1/api"),
        ("GET", "/admin/x"),
        ("GET", "/public"),
    ] {
        let resp = gw.send(&Req::new(method, path));
        assert_eq!(
            resp.status,
            200,
            "{method} {path} needs no token: {:?}",
            resp.text()
        );
    }
}

#[test]
fn not_required_paths_mode_exempts_only_matching_requests() {
    let up = Upstream::start();
    let gw = Gateway::start(&rules_config(
        &up,
        r#"{ not_required_paths: ["GET_/health", "ANY_/public/*"] }"#,
    ));
    for (method, path) in [
        ("GET", "/health"),
        ("POST", "/public/a"),
        ("GET", "/public/"),
    ] {
        let resp = gw.send(&Req::new(method, path));
        assert_eq!(
            resp.status,
            200,
            "{method} {path} needs no token: {:?}",
            resp.text()
        );
    }
    for (method, path) in [
        ("POST", "/health"),
        ("GET", "/health/x"),
        ("GET", "/orders"),
    ] {
        let resp = gw.send(&Req::new(method, path));
        assert_refused(&resp, "Missing JWT token in request", "jwtgate", false);
    }
}

/// Rules match the normalised path: dot segments, doubled slashes and
/// escaped unreserved characters cannot reach a protected path unchecked.
#[test]
fn regression_path_dotdot_bypass() {
    let up = Upstream::start();
    let gw = Gateway::start(&rules_config(&up, r#"{ required_paths: ["ANY_/admin*"] }"#));
    for target in [
        "/public/../admin",
        "/public/../admin/users",
        "/./admin",
        "//admin",
        "/public/%2e%2e/admin",
        "/%61dmin",
        "/public/.%2E/admin",
    ] {
        let resp = gw.send(&Req::get(target));
        assert!(
            resp.status == 401 || resp.status == 400,
            "{target}: reached the upstream without a token (status {}, upstream saw {:?})",
            resp.status,
            up.records().last().map(|r| r.target.clone())
        );
    }
    assert_eq!(up.count(), 0, "{:?}", up.records());
}

// ---------------------------------------------------------------------------
// SPEC §3.2: "Tokens are never logged in full", secrets never
// ---------------------------------------------------------------------------

#[test]
fn tokens_and_secrets_never_appear_in_the_log() {
    let up = Upstream::start();
    // `jwtgate run --help` names JWTGATE_LOG as the log filter.
    let gw = Gateway::start_with_env(&config(&up, "{}"), &[("JWTGATE_LOG", "debug")]);
    let n = now();
    let tokens = [
        alice_token(),
        admin_token(),
        sign_hs(
            "HS256",
            ALICE_SECRET,
            json!({"key": "user123", "exp": n - 100}),
        ),
        tamper_signature(&alice_token()),
        sign_hs("HS256", ALICE_SECRET, claims_for("nobody")),
        sign_hs("HS256", ALICE_SECRET, json!({"sub": "x", "exp": n + 60})),
    ];
    for t in &tokens {
        gw.send(&Req::get("/x").bearer(t));
        gw.get(&format!("/x?jwt={t}"));
        gw.send(&Req::get("/x").header("Cookie", &format!("jwt={t}")));
    }
    let logs = gw.logs();
    assert!(
        !logs.contains(ALICE_SECRET),
        "the secret was logged:\n{logs}"
    );
    for t in &tokens {
        assert!(
            !logs.contains(t.as_str()),
            "a full token was logged:\n{logs}"
        );
        let sig = t.rsplit('.').next().unwrap();
        assert!(
            !logs.contains(sig),
            "a token's signature was logged:\n{logs}"
        );
    }
}

/// RFC 7515 §4.1.11: a JWS whose `crit` header names an extension the
/// recipient does not understand is invalid, however well signed.
#[test]
fn a_token_with_an_unknown_critical_header_is_refused() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up, "{}"));
    let header = json!({"alg": "HS256", "typ": "JWT", "crit": ["x-must-understand"], "x-must-understand": true});
    let token = sign_hs_with_header(
        "HS256",
        ALICE_SECRET.as_bytes(),
        header,
        claims_for("user123"),
    );
    let resp = gw.send(&Req::get("/x").bearer(&token));
    assert_eq!(
        resp.status, 401,
        "a token with an unknown crit extension was accepted"
    );
    assert_eq!(up.count(), 0);
}
