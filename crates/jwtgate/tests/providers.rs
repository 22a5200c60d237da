//! Identity providers (SPEC §3.6) against the real binary: a real OpenID
//! provider nobody on the team wrote (panva's `oidc-provider`, discovery
//! over HTTPS, JWT access tokens, key rotation by restart, outage by
//! stopping it), and a key-set server of our own for what a real IdP will
//! not do on demand (malformed sets, 500s, slow and oversized answers, and
//! counting the fetches of a forged-`kid` flood).

#![allow(clippy::unwrap_used)]

mod admin_support;
mod idp_support;
mod support;

use std::time::{Duration, Instant};

use idp_support::*;
use jwtgate_testkit::oidc::{generate_keys, test_ca_file, OidcOptions, OidcProvider, TokenRequest};
use serde_json::{json, Value};
use support::*;

const SECRET: &str = "providers-secret-0123456789abcdefghij";
const RESOURCE: &str = "https://api.example.test/orders";

/// A gateway with consumer `alice` (HS256), provider `corp` and route
/// `api` listing it; `provider` is the provider's YAML body (after
/// `- name: corp`), `jwt` extra route policy keys.
fn config(upstream: &Upstream, provider: &str, jwt: &str) -> String {
    format!(
        r#"listen: "127.0.0.1:0"
consumers:
  - username: alice
    jwt: {{ key: user123, secret: "{SECRET}" }}
providers:
  - name: corp
{provider}
routes:
  - name: api
    paths: ["/api/*"]
    upstream: {{ nodes: ["{node}"] }}
    jwt: {{ providers: [corp], forward_claims: {{ sub: X-User-Id }} {jwt} }}
  - name: other
    paths: ["/other/*"]
    upstream: {{ echo: true }}
    jwt: {{}}
"#,
        node = upstream.node()
    )
}

fn oidc_provider_yaml(idp: &OidcProvider, extra: &str) -> String {
    format!(
        r#"    issuer: "{issuer}"
    discovery: true
    ca_file: "{ca}"
    algorithms: [RS256, ES256]
    audiences: ["{RESOURCE}"]
{extra}"#,
        issuer = idp.issuer,
        ca = test_ca_file().display()
    )
}

fn get(gw: &Gateway, token: &str) -> Response {
    gw.send(&Req::get("/api/orders").bearer(token))
}

fn wait_status(gw: &Gateway, token: &str, status: u16, within: Duration) -> Response {
    let deadline = Instant::now() + within;
    loop {
        let resp = get(gw, token);
        if resp.status == status || Instant::now() > deadline {
            return resp;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn tokens_of_a_real_openid_provider_are_accepted_through_discovery() {
    let idp = OidcProvider::start(&OidcOptions {
        tls: true,
        roles: vec!["clerk".into()],
        ..OidcOptions::default()
    });
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up, &oidc_provider_yaml(&idp, ""), ""));
    let token = idp.client_credentials_token("orders:read");
    let resp = wait_status(&gw, &token, 200, Duration::from_secs(15));
    assert_eq!(resp.status, 200, "{}\n{}", resp.text(), gw.logs());
    let seen = up.last();
    // SPEC §3.6: the issuer identifies the credential; no consumer.
    assert_eq!(
        seen.header("x-credential-identifier"),
        Some(idp.issuer.as_str())
    );
    assert_eq!(seen.header("x-consumer-username"), None);
    assert_eq!(seen.header("x-user-id"), Some("jwtgate-test"));
    // Consumer tokens still work on the same route.
    let alice = sign_hs("HS256", SECRET, claims_for("user123"));
    assert_eq!(get(&gw, &alice).status, 200);
    assert_eq!(up.last().header("x-consumer-username"), Some("alice"));
    // A token for another resource: wrong audience.
    let other = idp
        .token(&TokenRequest {
            scope: "orders:read".into(),
            resource: Some("https://api.example.test/billing".into()),
            ..TokenRequest::default()
        })
        .unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_refused(&get(&gw, &other), "failed to verify jwt", "jwtgate", true);
    // A provider token on a route that does not list the provider.
    let resp = gw.send(&Req::get("/other/x").bearer(&token));
    assert_refused(&resp, "failed to verify jwt", "jwtgate", true);
    assert!(
        eventually(IO_TIMEOUT, || gw.logs().contains("auth=wrong_audience")
            && gw.logs().contains("auth=wrong_issuer")),
        "{}",
        gw.logs()
    );
}

#[test]
fn es256_tokens_and_rotation_by_kid() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first.json");
    let second = dir.path().join("second.json");
    generate_keys(&first, &[("ES256", "es-1")]);
    generate_keys(&second, &[("ES256", "es-2")]);
    let mut opts = OidcOptions {
        tls: true,
        keys_file: Some(first.clone()),
        access_token_alg: "ES256".into(),
        id_token_alg: "ES256".into(),
        ..OidcOptions::default()
    };
    let mut idp = OidcProvider::start(&opts);
    let up = Upstream::start();
    // A long refresh: only the unknown kid can make the gateway fetch.
    let provider = oidc_provider_yaml(
        &idp,
        "    refresh_seconds: 3600\n    kid_miss_interval_seconds: 1\n",
    );
    let gw = Gateway::start(&config(&up, &provider, ""));
    let old = idp.client_credentials_token("orders:read");
    assert_eq!(
        wait_status(&gw, &old, 200, Duration::from_secs(15)).status,
        200
    );

    // The provider rotates (same port, a new key set).
    opts.port = idp.port;
    opts.keys_file = Some(second);
    idp.restart(&opts);
    let new = idp.client_credentials_token("orders:read");
    // Its first request finds kid es-2 unknown, and a fetch brings it.
    // (kid_miss_interval is 1 s: the fetch at start may be that recent.)
    let resp = wait_status(&gw, &new, 200, Duration::from_secs(10));
    assert_eq!(resp.status, 200, "{}\n{}", resp.text(), gw.logs());
    // The old key is gone from the set: its token stops verifying at
    // once, verified-token cache included.
    assert_refused(&get(&gw, &old), "failed to verify jwt", "jwtgate", true);
}

#[test]
fn an_idp_outage_keeps_the_last_good_keys_across_a_restart() {
    let mut idp = OidcProvider::start(&OidcOptions {
        tls: true,
        ..OidcOptions::default()
    });
    let up = Upstream::start();
    let state = tempfile::tempdir().unwrap();
    let provider = oidc_provider_yaml(&idp, "    refresh_seconds: 1\n");
    let yaml = format!(
        "state_dir: \"{}\"\n{}",
        state.path().display(),
        config(&up, &provider, "")
    );
    let gw = Gateway::start(&yaml);
    let token = idp.client_credentials_token("orders:read");
    assert_eq!(
        wait_status(&gw, &token, 200, Duration::from_secs(15)).status,
        200
    );
    let cache = state.path().join("providers/corp.jwks.json");
    assert!(eventually(IO_TIMEOUT, || cache.is_file()), "no key cache");

    idp.kill();
    // Refreshes fail; the keys in use stay, and /status says stale.
    assert!(
        eventually(Duration::from_secs(15), || gw
            .logs()
            .contains("key set fetch failed")),
        "{}",
        gw.logs()
    );
    assert_eq!(get(&gw, &token).status, 200);
    drop(gw);

    // A node restarting while the IdP is still down verifies from its disk
    // cache (within max_stale_seconds), without waiting for the IdP.
    let started = Instant::now();
    let gw = Gateway::start(&yaml);
    assert_eq!(get(&gw, &token).status, 200, "{}", gw.logs());
    eprintln!(
        "restarted on the disk cache, serving after {:?}",
        started.elapsed()
    );
    assert!(
        gw.logs().contains("keys loaded from the disk cache"),
        "{}",
        gw.logs()
    );
    drop(gw);

    // A cache dated in the future (written while a clock was ahead) never
    // grew old, so max_stale_seconds never ended it (found by an outside
    // attack): it is not used.
    let mut cached: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cache).unwrap()).unwrap();
    let good_date = cached["fetched_at"].clone();
    cached["fetched_at"] = json!(now() + 1_000_000_000);
    std::fs::write(&cache, serde_json::to_vec(&cached).unwrap()).unwrap();
    let gw = Gateway::start(&yaml);
    assert!(
        eventually(IO_TIMEOUT, || gw
            .logs()
            .contains("key cache is dated in the future")),
        "{}",
        gw.logs()
    );
    assert_ne!(get(&gw, &token).status, 200, "{}", gw.logs());
    assert!(!gw.logs().contains("keys loaded from the disk cache"));
    drop(gw);
    cached["fetched_at"] = good_date;
    std::fs::write(&cache, serde_json::to_vec(&cached).unwrap()).unwrap();

    // The provider moved to another key source (the old one could not be
    // trusted any more), which does not answer yet: the cached keys of the
    // old source are not used (they were, for up to max_stale_seconds;
    // found by an outside review).
    let moved = yaml.replace("discovery: true", "jwks_uri: \"https://127.0.0.1:1/keys\"");
    assert_ne!(moved, yaml);
    let gw = Gateway::start(&moved);
    assert!(
        eventually(IO_TIMEOUT, || gw.logs().contains(
            "key cache is from another key source or ca_file; not used"
        )),
        "{}",
        gw.logs()
    );
    assert_eq!(get(&gw, &token).status, 401, "{}", gw.logs());
    assert!(!gw.logs().contains("keys loaded from the disk cache"));
    drop(gw);

    // A cache other users may write (or a link put in its place) is not
    // trusted: anyone could have put their keys there (found by an outside
    // audit: they verified tokens, as the store file's rule did not reach
    // the cache).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o666)).unwrap();
        let gw = Gateway::start(&yaml);
        assert!(
            eventually(IO_TIMEOUT, || gw
                .logs()
                .contains("other users may write it (mode 0666)")),
            "{}",
            gw.logs()
        );
        assert_ne!(get(&gw, &token).status, 200, "{}", gw.logs());
        assert!(!gw.logs().contains("keys loaded from the disk cache"));
        drop(gw);
        std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o600)).unwrap();
        let elsewhere = state.path().join("elsewhere.json");
        std::fs::rename(&cache, &elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &cache).unwrap();
        let gw = Gateway::start(&yaml);
        assert!(
            eventually(IO_TIMEOUT, || gw
                .logs()
                .contains("is a symbolic link: refused")),
            "{}",
            gw.logs()
        );
        assert_ne!(get(&gw, &token).status, 200, "{}", gw.logs());
    }
}

/// A provider that answers 429 with `Retry-After` is not asked again
/// before then, neither by the retry schedule nor for unknown kids; then
/// it is, and its keys serve. It had been asked again a second later,
/// and once a second for unknown kids.
#[test]
fn a_providers_retry_after_is_honoured() {
    let keys = KeyServer::start(false);
    keys.set("/keys", Reply::status(429).header("retry-after", "6"));
    let up = Upstream::start();
    let provider = format!(
        "    issuer: \"https://idp.example\"\n    jwks_uri: \"{}\"\n    kid_miss_interval_seconds: 1\n",
        keys.url("/keys")
    );
    let gw = Gateway::start(&config(&up, &provider, ""));
    assert!(
        eventually(Duration::from_secs(10), || keys.hits("/keys") == 1),
        "{}",
        gw.logs()
    );
    let asked = Instant::now();
    let claims = json!({"iss": "https://idp.example", "sub": "u", "exp": now() + 600});
    let token = sign_kid("RS256", "rsa.key", Some("good"), claims);
    // Unknown kids for 3 s (stopping early on a machine so slow that the 6
    // s would be near): no fetch.
    while asked.elapsed() < Duration::from_secs(3) {
        assert_ne!(get(&gw, &token).status, 200);
        std::thread::sleep(Duration::from_millis(100));
        if asked.elapsed() > Duration::from_secs(5) {
            break;
        }
    }
    assert_eq!(
        keys.hits("/keys"),
        1,
        "asked again within its Retry-After\n{}",
        gw.logs()
    );
    assert!(
        gw.logs()
            .contains("asking to be asked again in 6 s (Retry-After)"),
        "{}",
        gw.logs()
    );
    // It never had keys: the log says its tokens are refused, not that the
    // last good keys stay in use.
    assert!(
        gw.logs()
            .contains("no keys yet: the provider's tokens are refused"),
        "{}",
        gw.logs()
    );
    // Once the wait is over, it is asked again, and its keys serve.
    keys.set("/keys", Reply::json(&jwks(&[jwk("rsa", "good")])));
    assert_eq!(
        wait_status(&gw, &token, 200, Duration::from_secs(30)).status,
        200,
        "{}",
        gw.logs()
    );
}

/// A set with one usable key replaces a good one (SPEC §3.6): when a
/// rotation breaks a key the set in use has, its tokens are refused from
/// then on, and an outside audit found only a debug line saying why and
/// the refusal saying "no key has kid". Now a warning names the key and
/// what is wrong with it, and so does the refusal.
#[test]
fn a_new_key_set_that_breaks_a_key_in_use_is_warned_of() {
    let (keys, _up, gw, claims, good) =
        serving_good_key("    kid_miss_interval_seconds: 1\n    refresh_seconds: 3600\n");
    let mut broken = jwk("rsa", "good");
    broken["n"] = json!("not base64url!");
    keys.set("/keys", Reply::json(&jwks(&[broken, jwk("rsa2", "other")])));
    // An unknown kid has the set fetched again.
    let unknown = sign_kid("RS256", "rsa.key", Some("unknown"), claims);
    assert!(
        eventually(Duration::from_secs(10), || {
            let _ = get(&gw, &unknown);
            get(&gw, &good).status == 401
        }),
        "{}",
        gw.logs()
    );
    let warned = "cannot use it: tokens signed with it are refused from now on";
    assert!(
        eventually(IO_TIMEOUT, || gw.logs().contains(warned)),
        "{}",
        gw.logs()
    );
    let logs = gw.logs();
    let line = logs.lines().find(|l| l.contains(warned)).unwrap();
    assert!(
        line.contains("WARN") && line.contains("kid=\"good\""),
        "{line}"
    );
    assert!(line.contains("n is not base64url"), "{line}");
    assert!(
        eventually(IO_TIMEOUT, || gw.logs().contains(
            r#"the key set's key \"good\" is not usable: n is not base64url"#
        )),
        "{}",
        gw.logs()
    );
}

/// A key server publishing the key `good` over plain HTTP, a gateway whose
/// provider reads it with `settings` (lines of the provider's YAML) and
/// serves its tokens, the claims of those and a token signed with `good`.
fn serving_good_key(settings: &str) -> (KeyServer, Upstream, Gateway, Value, String) {
    let keys = KeyServer::start(false);
    keys.set("/keys", Reply::json(&jwks(&[jwk("rsa", "good")])));
    let up = Upstream::start();
    let provider = format!(
        "    issuer: \"https://idp.example\"\n    jwks_uri: \"{}\"\n{settings}",
        keys.url("/keys")
    );
    let gw = Gateway::start(&config(&up, &provider, ""));
    let claims = json!({"iss": "https://idp.example", "sub": "u", "exp": now() + 600});
    let good = sign_kid("RS256", "rsa.key", Some("good"), claims.clone());
    assert_eq!(
        wait_status(&gw, &good, 200, Duration::from_secs(10)).status,
        200
    );
    (keys, up, gw, claims, good)
}

/// A `Retry-After` holds fetches off no longer than half the time the keys
/// in use have left before `max_stale_seconds`: one 503 asking for 10
/// minutes, to a fetch any client can cause with a made-up `kid`, had the
/// provider's tokens refused once the keys grew stale, with the IdP long
/// healthy again (an outside audit).
#[test]
fn a_retry_after_never_lets_the_keys_grow_stale() {
    let (keys, _up, gw, claims, good) = serving_good_key(
        "    kid_miss_interval_seconds: 1\n    max_stale_seconds: 8\n    refresh_seconds: 3600\n",
    );
    let fetched = keys.hits("/keys");
    // One busy answer, asking for 10 minutes, to the fetch a made-up kid
    // causes; healthy again at once.
    keys.set("/keys", Reply::status(503).header("retry-after", "600"));
    let forged = sign_kid("RS256", "rsa.key", Some("made-up"), claims);
    assert!(
        eventually(Duration::from_secs(10), || {
            let _ = get(&gw, &forged);
            keys.hits("/keys") > fetched
        }),
        "{}",
        gw.logs()
    );
    keys.set("/keys", Reply::json(&jwks(&[jwk("rsa", "good")])));
    // Past max_stale_seconds from the last good fetch: the keys were
    // fetched again before that, and the provider's tokens still pass.
    std::thread::sleep(Duration::from_secs(10));
    assert!(
        keys.hits("/keys") >= fetched + 2,
        "not asked again\n{}",
        gw.logs()
    );
    let resp = get(&gw, &good);
    assert_eq!(resp.status, 200, "{}\n{}", resp.text(), gw.logs());
}

/// An outside audit: keys that grew stale in an outage were fetched again
/// only on the background's backoff once the IdP was back (1, 2, 4 ... s,
/// up to a minute), the provider's tokens refused meanwhile. A request
/// for a provider whose keys are missing or too old may cause the fetch an
/// unknown kid may: one per `kid_miss_interval_seconds`.
#[test]
fn stale_keys_are_mended_by_a_request_once_the_idp_is_back() {
    let (keys, _up, gw, _claims, good) = serving_good_key(
        "    kid_miss_interval_seconds: 1\n    max_stale_seconds: 3\n    refresh_seconds: 3600\n",
    );
    keys.set("/keys", Reply::status(500));
    assert!(
        eventually(Duration::from_secs(15), || get(&gw, &good).status == 401),
        "{}",
        gw.logs()
    );
    // Long enough for the background's retries to be 16 s apart.
    std::thread::sleep(Duration::from_secs(15));
    keys.set("/keys", Reply::json(&jwks(&[jwk("rsa", "good")])));
    let back = Instant::now();
    assert!(
        eventually(Duration::from_secs(4), || get(&gw, &good).status == 200),
        "still refused {:?} after the IdP came back\n{}",
        back.elapsed(),
        gw.logs()
    );
}

/// Key ids come from the IdP: one holding a line break or an escape is
/// written to the log escaped, never as a line of its own.
#[test]
fn a_key_id_cannot_write_a_log_line() {
    let mut leaked = jwk(
        "rsa",
        "evil\n2026-12-06T00:00:00Z  INFO fake line\u{1b}[31m",
    );
    leaked["d"] = json!("AQAB");
    let keys = KeyServer::start(false);
    keys.set("/keys", Reply::json(&jwks(&[jwk("rsa", "good"), leaked])));
    let up = Upstream::start();
    let provider = format!(
        "    issuer: \"https://idp.example\"\n    jwks_uri: \"{}\"\n",
        keys.url("/keys")
    );
    let gw = Gateway::start(&config(&up, &provider, ""));
    assert!(
        eventually(Duration::from_secs(10), || gw
            .logs()
            .contains("publishes private key members")),
        "{}",
        gw.logs()
    );
    let logs = gw.logs();
    assert!(
        !logs.lines().any(|l| l.starts_with("2026-12-06T00:00:00Z")) && !logs.contains('\u{1b}'),
        "{logs}"
    );
    assert!(logs.contains("evil\\n2026"), "{logs}");
}

#[test]
fn a_forged_kid_flood_costs_one_fetch_per_interval() {
    let (keys, _up, gw, claims, good) = serving_good_key("    kid_miss_interval_seconds: 2\n");
    let before = keys.hits("/keys");
    let started = Instant::now();
    let mut rng = Rng::new(7);
    let mut refused = 0;
    // 600 tokens, each with a kid nobody published, for at least 3 s.
    let mut n = 0;
    while n < 600 || started.elapsed() < Duration::from_secs(3) {
        let kid = format!("forged-{}", rng.next_u64());
        let forged = sign_kid("RS256", "rsa2.key", Some(&kid), claims.clone());
        let resp = get(&gw, &forged);
        assert_refused(&resp, "failed to verify jwt", "jwtgate", true);
        refused += 1;
        n += 1;
    }
    let elapsed = started.elapsed();
    let fetches = keys.hits("/keys") - before;
    // At most one fetch per 2 s interval (plus one for the interval under
    // way when the flood began), whatever the number of forged tokens.
    let bound = elapsed.as_secs() as usize / 2 + 2;
    eprintln!(
        "forged-kid flood: {refused} forged kids in {elapsed:?} -> {fetches} key-set fetches"
    );
    assert!(
        fetches <= bound,
        "{fetches} fetches for {refused} forged kids in {elapsed:?} (bound {bound})"
    );
    assert_eq!(get(&gw, &good).status, 200, "the good token still passes");
}

/// An outside audit: a made-up `kid` every `kid_miss_interval_seconds`
/// woke a fetch of the key set discovery had named, and each put the
/// scheduled fetch, the one that reads the discovery document again, a
/// whole `refresh_seconds` off: a moved key set was never found, and a
/// document now naming another issuer never read, its old keys kept fresh.
#[test]
fn a_forged_kid_flood_never_puts_off_rediscovery() {
    let keys = KeyServer::start(true);
    let issuer = keys.url("/realms/main");
    let document = "/realms/main/.well-known/openid-configuration";
    keys.serve_discovery(&issuer);
    keys.set("/keys", Reply::json(&jwks(&[jwk("rsa", "k1")])));
    keys.set("/moved", Reply::json(&jwks(&[jwk("rsa2", "k2")])));
    let up = Upstream::start();
    let provider = format!(
        "    issuer: \"{issuer}\"\n    discovery: true\n    ca_file: \"{TLS}/ca.crt\"\n    refresh_seconds: 3\n    kid_miss_interval_seconds: 1\n    max_stale_seconds: 8\n"
    );
    let gw = Gateway::start(&config(&up, &provider, ""));
    let claims = json!({"iss": issuer, "sub": "u", "exp": now() + 600});
    let k1 = sign_kid("RS256", "rsa.key", Some("k1"), claims.clone());
    let k2 = sign_kid("RS256", "rsa2.key", Some("k2"), claims.clone());
    assert_eq!(
        wait_status(&gw, &k1, 200, Duration::from_secs(10)).status,
        200
    );
    let mut n = 0;
    // Forged kids every 0.4 s until `done` holds, for at most `within`.
    let mut flood_until = |within: Duration, done: &dyn Fn() -> bool| {
        let started = Instant::now();
        while started.elapsed() < within {
            n += 1;
            let forged = sign_kid(
                "RS256",
                "rsa.key",
                Some(&format!("forged-{n}")),
                claims.clone(),
            );
            assert_eq!(get(&gw, &forged).status, 401);
            if done() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(400));
        }
        false
    };
    // The IdP moves its key set.
    keys.set(
        document,
        Reply::json(&json!({"issuer": issuer, "jwks_uri": keys.url("/moved")})),
    );
    let seen = flood_until(Duration::from_secs(15), &|| get(&gw, &k2).status == 200);
    assert!(
        seen,
        "the moved key set never found under the flood\n{}",
        gw.logs()
    );
    // The document now names another issuer: refused, and the keys it
    // named before are fetched no more, flood or not, and grow stale.
    keys.set(
        document,
        Reply::json(
            &json!({"issuer": "https://someone-else.example", "jwks_uri": keys.url("/moved")}),
        ),
    );
    let stale = flood_until(Duration::from_secs(25), &|| get(&gw, &k2).status == 401);
    assert!(
        stale,
        "keys kept fresh past a refused document\n{}",
        gw.logs()
    );
    assert!(gw.logs().contains("OIDC Discovery §4.3"), "{}", gw.logs());
}

/// An outside audit: an IdP sending `Cache-Control: max-age=3600`, with
/// `max_stale_seconds: 75`, was not asked again for an hour, and its
/// tokens were refused from 75 s after each fetch, the IdP healthy all
/// along. Fetched again by half of `max_stale_seconds` at the latest.
#[test]
fn a_long_max_age_never_lets_a_healthy_providers_keys_grow_too_old() {
    let keys = KeyServer::start(false);
    keys.set(
        "/keys",
        Reply::json(&jwks(&[jwk("rsa", "good")])).header("cache-control", "max-age=3600"),
    );
    let up = Upstream::start();
    let provider = format!(
        "    issuer: \"https://idp.example\"\n    jwks_uri: \"{}\"\n    max_stale_seconds: 4\n",
        keys.url("/keys")
    );
    let gw = Gateway::start(&config(&up, &provider, ""));
    let claims = json!({"iss": "https://idp.example", "sub": "u", "exp": now() + 600});
    let token = sign_kid("RS256", "rsa.key", Some("good"), claims);
    assert_eq!(
        wait_status(&gw, &token, 200, Duration::from_secs(10)).status,
        200,
        "{}",
        gw.logs()
    );
    let first = keys.hits("/keys");
    // Past max_stale_seconds since the first fetch: fetched again, and
    // its tokens still pass.
    std::thread::sleep(Duration::from_secs(6));
    assert!(keys.hits("/keys") > first, "{}", gw.logs());
    assert_eq!(get(&gw, &token).status, 200, "{}", gw.logs());
}

#[test]
fn bad_key_sets_never_replace_a_good_one() {
    let keys = KeyServer::start(true);
    keys.set("/keys", Reply::json(&jwks(&[jwk("rsa", "good")])));
    let up = Upstream::start();
    let provider = format!(
        "    issuer: \"https://idp.example\"\n    jwks_uri: \"{}\"\n    ca_file: \"{TLS}/ca.crt\"\n    refresh_seconds: 1\n    fetch_timeout_ms: 500\n",
        keys.url("/keys")
    );
    let yaml = format!(
        "admin: {{ listen: \"127.0.0.1:0\", api_key: \"{}\" }}\n{}",
        admin_support::KEY,
        config(&up, &provider, "")
    );
    let dir = tempfile::tempdir().unwrap();
    let node = admin_support::Node::start(dir.path(), &yaml);
    let claims = json!({"iss": "https://idp.example", "sub": "u", "exp": now() + 600});
    let good = sign_kid("RS256", "rsa.key", Some("good"), claims.clone());
    let ok = eventually(Duration::from_secs(10), || {
        node.send(&Req::get("/api/x").bearer(&good)).status == 200
    });
    assert!(ok, "{}", node.logs());
    let mut oversized = b"{\"keys\":[".to_vec();
    oversized.extend(std::iter::repeat_n(b' ', 2 * 1024 * 1024));
    oversized.extend(b"]}");
    let bad = [
        Reply::raw("not json at all"),
        Reply::json(&json!({"keys": "nope"})),
        Reply::json(&jwks(&[
            json!({"kty": "oct", "k": "c2VjcmV0", "kid": "good"}),
        ])),
        Reply::json(&jwks(&[jwk("rsa1024", "good")])),
        Reply::json(&jwks(&[])),
        Reply::status(500),
        Reply::json(&jwks(&[jwk("rsa2", "good")])).delayed(Duration::from_secs(2)),
        Reply::raw(oversized),
    ];
    for reply in bad {
        let before = node
            .metrics()
            .value("jwtgate_jwks_fetch_total", &[("provider", "corp")]);
        keys.set("/keys", reply);
        let fetched = eventually(Duration::from_secs(15), || {
            node.metrics()
                .value("jwtgate_jwks_fetch_total", &[("provider", "corp")])
                >= before + 2.0
        });
        assert!(fetched, "no fetch\n{}", node.logs());
        assert_eq!(
            node.send(&Req::get("/api/x").bearer(&good)).status,
            200,
            "a bad answer replaced the good keys\n{}",
            node.logs()
        );
    }
    let m = node.metrics();
    assert!(
        m.value("jwtgate_jwks_fetch_total", &[("outcome", "invalid")]) >= 4.0,
        "{}",
        m.0
    );
    assert!(
        m.value("jwtgate_jwks_fetch_total", &[("outcome", "error")]) >= 3.0,
        "{}",
        m.0
    );
    // /status says the keys are stale: still served, the provider failing;
    // why, to the holder of the admin key only.
    let status = Req::get("/status").try_send(node.admin).unwrap().json();
    assert_eq!(status["providers"]["corp"]["state"], "stale", "{status}");
    assert_eq!(status["providers"]["corp"]["keys"], 1);
    assert!(
        status["providers"]["corp"].get("error").is_none(),
        "{status}"
    );
    let status = Req::get("/status")
        .header("X-API-KEY", admin_support::KEY)
        .try_send(node.admin)
        .unwrap()
        .json();
    let why = status["providers"]["corp"]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(why.contains("larger than 1048576 bytes"), "{status}");
    // The log says the outage began (later reasons at most once a minute).
    assert!(
        node.logs().contains("key set fetch failed"),
        "{}",
        node.logs()
    );
    assert!(m.has_family("jwtgate_jwks_age_seconds"), "{}", m.0);
    // Every family has its HELP line (an outside audit found these without).
    for family in ["jwtgate_jwks_fetch_total", "jwtgate_jwks_age_seconds"] {
        assert!(
            m.0.contains(&format!("# HELP {family} ")),
            "{family}: {}",
            m.0
        );
    }
}

/// A key set that publishes private key members lets anyone sign: the
/// node says so when it installs one (its tokens still verify, as the IdP
/// intends), keeps none of them in its disk cache, and `check` says so of
/// a `jwks_file` holding them.
#[test]
fn private_key_members_in_a_key_set_are_warned_about() {
    let mut leaked = jwk("rsa", "leaky");
    // The value is never parsed: its presence is what is said.
    leaked["d"] = json!("AQAB");
    let keys = KeyServer::start(true);
    keys.set(
        "/keys",
        Reply::json(&jwks(&[jwk("ec-p256", "fine"), leaked.clone()])),
    );
    let up = Upstream::start();
    let provider = format!(
        "    issuer: \"https://idp.example\"\n    jwks_uri: \"{}\"\n    ca_file: \"{TLS}/ca.crt\"\n    algorithms: [RS256, ES256]\n    refresh_seconds: 1\n",
        keys.url("/keys")
    );
    let state = tempfile::tempdir().unwrap();
    let gw = Gateway::start(&format!(
        "state_dir: \"{}\"\n{}",
        state.path().display(),
        config(&up, &provider, "")
    ));
    let claims = json!({"iss": "https://idp.example", "sub": "u", "exp": now() + 600});
    let token = sign_kid("RS256", "rsa.key", Some("leaky"), claims);
    let resp = wait_status(&gw, &token, 200, Duration::from_secs(10));
    assert_eq!(resp.status, 200, "{}\n{}", resp.text(), gw.logs());
    // Said at every fetch, not only the first: the set does not change.
    let warned = eventually(Duration::from_secs(10), || {
        gw.logs()
            .lines()
            .filter(|l| l.contains("publishes private key members") && l.contains("leaky"))
            .count()
            >= 2
    });
    assert!(warned, "{}", gw.logs());
    assert!(
        !gw.logs()
            .lines()
            .any(|l| l.contains("private key members") && l.contains("fine")),
        "only the key with private members is named\n{}",
        gw.logs()
    );
    // The disk cache holds the public members only.
    let cache = state.path().join("providers/corp.jwks.json");
    assert!(eventually(IO_TIMEOUT, || cache.is_file()), "no key cache");
    let read_cache = || -> (Value, Value) {
        let cached: Value =
            serde_json::from_str(&std::fs::read_to_string(&cache).unwrap()).unwrap();
        let set = serde_json::from_str(cached["jwks"].as_str().unwrap()).unwrap();
        (cached, set)
    };
    let (mut cached, set) = read_cache();
    let kept = &set["keys"][1];
    assert_eq!(kept["kid"], "leaky", "{cached}");
    assert!(
        kept.get("d").is_none(),
        "a private member on disk: {cached}"
    );
    assert_eq!(kept["n"], leaked["n"], "{cached}");
    assert_eq!(cached["private_kids"], json!(["leaky"]), "{cached}");

    // A restart while the IdP is down says it again, from the cache. Here
    // the cache is as an earlier version wrote it (the set as fetched, no
    // private_kids): it is said from what the set holds, and the file is
    // written again without the secret.
    drop(gw);
    drop(keys);
    cached["jwks"] = json!(jwks(&[jwk("ec-p256", "fine"), leaked.clone()]).to_string());
    cached.as_object_mut().unwrap().remove("private_kids");
    std::fs::write(&cache, cached.to_string()).unwrap();
    let gw = Gateway::start(&format!(
        "state_dir: \"{}\"\n{}",
        state.path().display(),
        config(&up, &provider, "")
    ));
    assert_eq!(get(&gw, &token).status, 200, "{}", gw.logs());
    assert!(
        gw.logs()
            .lines()
            .any(|l| l.contains("publishes private key members")
                && l.contains("leaky")
                && l.contains("disk cache")),
        "{}",
        gw.logs()
    );
    let (cached, set) = read_cache();
    assert!(
        set["keys"][1].get("d").is_none(),
        "a private member on disk: {cached}"
    );
    assert_eq!(cached["private_kids"], json!(["leaky"]), "{cached}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keys.json"), jwks(&[leaked]).to_string()).unwrap();
    let yaml = r#"listen: "127.0.0.1:0"
providers:
  - name: corp
    issuer: "https://idp.example"
    jwks_file: keys.json
routes:
  - name: api
    paths: ["/api/*"]
    upstream: { echo: true }
    jwt: { providers: [corp] }
"#;
    let path = dir.path().join("jwtgate.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = run_cli(&["check", "--config", path.to_str().unwrap()], dir.path());
    assert_eq!(out.code(), Some(0), "{}", out.all());
    assert!(
        out.stderr.contains(
            "warning: providers[0].jwks_file: holds private key members (\"d\") for leaky"
        ),
        "{}",
        out.stderr
    );
}

#[test]
fn providers_never_block_start_or_other_routes() {
    // Twenty providers whose IdP takes connections and never answers,
    // waited on for a minute each, and no disk cache: a start or a request
    // that waited on them would outlast the harness's start timeout and
    // the request's read timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let up = Upstream::start();
    let mut providers = String::new();
    let mut names = Vec::new();
    for i in 0..20 {
        providers.push_str(&format!(
            "  - name: p{i}\n    issuer: \"https://idp-{i}.example\"\n    jwks_uri: \"https://127.0.0.1:{port}/keys\"\n    fetch_timeout_ms: 60000\n"
        ));
        names.push(format!("p{i}"));
    }
    let yaml = format!(
        r#"listen: "127.0.0.1:0"
consumers:
  - username: alice
    jwt: {{ key: user123, secret: "{SECRET}" }}
providers:
{providers}routes:
  - name: api
    paths: ["/api/*"]
    upstream: {{ nodes: ["{node}"] }}
    jwt: {{ providers: [{list}] }}
"#,
        node = up.node(),
        list = names.join(", ")
    );
    let started = Instant::now();
    let gw = Gateway::start(&yaml);
    let alice = sign_hs("HS256", SECRET, claims_for("user123"));
    assert_eq!(get(&gw, &alice).status, 200);
    // How soon is reported, not asserted: the machine may be slow.
    let served = started.elapsed();
    eprintln!("20 unreachable providers: first consumer request served {served:?} after spawn");
    // A provider token finds no keys: refused at once, not waited on.
    let t = sign_kid(
        "RS256",
        "rsa.key",
        Some("k"),
        json!({"iss": "https://idp-3.example", "exp": now() + 60}),
    );
    assert_refused(&get(&gw, &t), "failed to verify jwt", "jwtgate", true);
    assert!(
        eventually(IO_TIMEOUT, || gw.logs().contains("auth=keys_unavailable")),
        "{}",
        gw.logs()
    );
}

/// `jwtgate check` warns of a plain-http `jwks_uri` off loopback written
/// in the config; one a discovery document names is known only once
/// fetched, and an outside audit found it said nowhere. The node's log says
/// it, once, and the keys are used as for any http issuer.
#[test]
fn a_discovered_plain_http_key_set_off_loopback_is_warned_of() {
    let keys = KeyServer::start(false);
    let issuer = keys.url("/realms/main");
    // 0.0.0.0 reaches this machine's listeners, and is no loopback address.
    let off_loopback = format!("http://0.0.0.0:{}/keys", keys.addr.port());
    keys.set(
        "/realms/main/.well-known/openid-configuration",
        Reply::json(&json!({"issuer": issuer, "jwks_uri": off_loopback})),
    );
    keys.set("/keys", Reply::json(&jwks(&[jwk("rsa", "k1")])));
    let up = Upstream::start();
    let provider = format!("    issuer: \"{issuer}\"\n    discovery: true\n");
    let gw = Gateway::start(&config(&up, &provider, ""));
    let t = sign_kid(
        "RS256",
        "rsa.key",
        Some("k1"),
        json!({"iss": issuer, "exp": now() + 60}),
    );
    assert_eq!(
        wait_status(&gw, &t, 200, Duration::from_secs(10)).status,
        200,
        "{}",
        gw.logs()
    );
    let said = "names a key set over plain http from 0.0.0.0, not a loopback address";
    assert_eq!(gw.logs().matches(said).count(), 1, "{}", gw.logs());
    assert!(gw.logs().contains("provider=corp"), "{}", gw.logs());
}

#[test]
fn discovery_with_another_issuer_is_refused() {
    let keys = KeyServer::start(true);
    let issuer = keys.url("/realms/main");
    keys.set(
        "/realms/main/.well-known/openid-configuration",
        Reply::json(&json!({"issuer": format!("{issuer}/"), "jwks_uri": keys.url("/keys")})),
    );
    keys.set("/keys", Reply::json(&jwks(&[jwk("rsa", "k1")])));
    let up = Upstream::start();
    let provider =
        format!("    issuer: \"{issuer}\"\n    discovery: true\n    ca_file: \"{TLS}/ca.crt\"\n");
    let gw = Gateway::start(&config(&up, &provider, ""));
    let t = sign_kid(
        "RS256",
        "rsa.key",
        Some("k1"),
        json!({"iss": issuer, "exp": now() + 60}),
    );
    assert!(
        eventually(IO_TIMEOUT, || gw.logs().contains("OIDC Discovery §4.3")),
        "{}",
        gw.logs()
    );
    assert_refused(&get(&gw, &t), "failed to verify jwt", "jwtgate", true);
    assert_eq!(
        keys.hits("/keys"),
        0,
        "keys fetched despite the issuer mismatch"
    );
    // Fixed: the keys come.
    keys.serve_discovery(&issuer);
    // (refresh_seconds defaults to 300: restart rather than wait.)
    drop(gw);
    let gw = Gateway::start(&config(&up, &provider, ""));
    assert_eq!(
        wait_status(&gw, &t, 200, Duration::from_secs(10)).status,
        200
    );
}

#[test]
fn check_locates_every_provider_problem() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.json"),
        "{\"keys\": [{\"kty\": \"oct\", \"k\": \"AAAA\"}]}",
    )
    .unwrap();
    let yaml = r#"listen: "127.0.0.1:0"
providers:
  - name: a
    issuer: "https://a.example"
    discovery: true
    jwks_uri: "https://a.example/keys"
  - name: b
    issuer: "https://b.example"
    jwks_uri: "ftp://b.example/keys"
    algorithms: [HS256, none, RS999]
  - name: c
    issuer: "https://a.example"
    jwks_file: bad.json
  - name: d
    issuer: "not a url"
    discovery: true
    backchannel_logout_path: "/bcl"
routes:
  - name: r
    paths: ["/*"]
    upstream: { echo: true }
    jwt: { providers: [a, nope], consumers: false }
  - name: s
    paths: ["/s"]
    upstream: { echo: true }
    jwt: { consumers: false }
"#;
    let path = dir.path().join("jwtgate.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = run_cli(&["check", "--config", path.to_str().unwrap()], dir.path());
    assert_eq!(out.code(), Some(1), "{}", out.all());
    for want in [
        "providers[0]: set exactly one of discovery: true, jwks_uri or jwks_file",
        "providers[1].jwks_uri: \"ftp://b.example/keys\" is not an http(s) URL",
        "providers[1].algorithms[0]: HS256 is never accepted from an identity provider",
        "providers[1].algorithms[1]: \"none\" is never accepted",
        "providers[1].algorithms[2]: unsupported algorithm \"RS999\"",
        "providers[2].jwks_file: not a usable JWK Set: no usable signing key",
        "providers[3].issuer: must be an http(s) URL for discovery",
        "providers[3].client_id: is required with backchannel_logout_path",
        "routes[0].jwt.providers[1]: no provider named \"nope\"",
        "routes[1].jwt.consumers: is false but the policy lists no providers",
    ] {
        assert!(
            out.stderr.contains(want),
            "missing {want:?}:\n{}",
            out.stderr
        );
    }
}

/// What a deleted route or provider leaves behind: an outside soak audit
/// (1 075 routes and 166 providers created and deleted) found every route's
/// series kept in each scrape and in memory, each provider's series in the
/// scrape, and each provider's key cache in `state_dir`, until a restart.
/// Now they go with the object; a route that stays keeps counting across
/// the reloads.
#[test]
fn a_deleted_route_or_provider_leaves_no_series_and_no_key_cache() {
    use admin_support::Node;
    let keys = KeyServer::start(false);
    keys.set("/keys", Reply::json(&jwks(&[jwk("ec-p256", "e1")])));
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let yaml = format!(
        r#"listen: "127.0.0.1:0"
state_dir: "{}"
admin: {{ listen: "127.0.0.1:0", api_key: "{}" }}
routes:
  - name: api
    paths: ["/api/*"]
    upstream: {{ echo: true }}
    jwt: {{}}
"#,
        state.display(),
        admin_support::KEY
    );
    let node = Node::start(dir.path(), &yaml);
    let scrape = || node.admin_raw(&Req::get("/metrics")).text();
    let provider = json!({"issuer": "https://idp.example", "jwks_uri": keys.url("/keys"), "algorithms": ["ES256"]});
    let resp = node.admin("PUT", "/admin/v1/providers/temp", Some(provider));
    assert_eq!(resp.status, 201, "{}", resp.text());
    let route = json!({"paths": ["/temp/*"], "upstream": {"echo": true}});
    let resp = node.admin("PUT", "/admin/v1/routes/temp-route", Some(route));
    assert_eq!(resp.status, 201, "{}", resp.text());
    assert_eq!(node.get("/temp/x").status, 200);
    assert_eq!(node.get("/api/x").status, 401);
    let cache = state.join("providers/temp.jwks.json");
    assert!(
        eventually(Duration::from_secs(10), || cache.exists()
            && scrape().contains(
                r#"jwtgate_jwks_fetch_total{provider="temp",outcome="ok"} 1"#
            )),
        "{}\n{}",
        scrape(),
        node.logs()
    );
    let text = scrape();
    assert!(
        text.contains(r#"jwtgate_http_requests_total{route="temp-route",code="200"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"jwtgate_http_request_duration_seconds_count{route="temp-route"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"jwtgate_jwt_auth_total{route="api",outcome="missing"} 1"#),
        "{text}"
    );

    // A provider whose keys come from a file from now on keeps no cache.
    let file = dir.path().join("temp2.json");
    std::fs::write(&file, jwks(&[jwk("ec-p256", "e1")]).to_string()).unwrap();
    let resp = node.admin(
        "PUT",
        "/admin/v1/providers/temp2",
        Some(json!({"issuer": "https://idp2.example", "jwks_uri": keys.url("/keys"), "algorithms": ["ES256"]})),
    );
    assert_eq!(resp.status, 201, "{}", resp.text());
    let cache2 = state.join("providers/temp2.jwks.json");
    assert!(eventually(Duration::from_secs(10), || cache2.exists()));
    let resp = node.admin(
        "PUT",
        "/admin/v1/providers/temp2",
        Some(json!({"issuer": "https://idp2.example", "jwks_file": file.to_str().unwrap(), "algorithms": ["ES256"]})),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(
        !cache2.exists(),
        "a provider on a key file keeps its old cache"
    );

    for path in ["/admin/v1/routes/temp-route", "/admin/v1/providers/temp"] {
        let resp = node.admin("DELETE", path, None);
        assert_eq!(resp.status, 204, "{path}: {}", resp.text());
    }
    assert_eq!(node.get("/api/x").status, 401);
    // The replaced configs are dropped off the data plane on their own
    // thread, within a tenth of a second once no request holds them.
    assert!(
        eventually(Duration::from_secs(5), || !scrape().contains("temp-route")),
        "{}",
        scrape()
    );
    let text = scrape();
    assert!(!text.contains(r#"provider="temp""#), "{text}");
    assert!(!cache.exists(), "the removed provider's key cache is left");
    node.wait_log("key cache of a removed provider deleted", 1);
    // The route that stayed counted on through both reloads.
    assert!(
        text.contains(r#"jwtgate_http_requests_total{route="api",code="401"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"jwtgate_jwt_auth_total{route="api",outcome="missing"} 2"#),
        "{text}"
    );
    assert!(
        text.contains("# TYPE jwtgate_http_request_duration_seconds histogram"),
        "{text}"
    );
}

#[test]
fn providers_through_the_admin_api() {
    use admin_support::Node;
    let keys = KeyServer::start(false);
    keys.set("/keys", Reply::json(&jwks(&[jwk("ec-p256", "e1")])));
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        r#"listen: "127.0.0.1:0"
admin: {{ listen: "127.0.0.1:0", api_key: "{}" }}
routes:
  - name: api
    paths: ["/api/*"]
    upstream: {{ echo: true }}
    jwt: {{}}
"#,
        admin_support::KEY
    );
    let node = Node::start(dir.path(), &yaml);
    let body = json!({"issuer": "https://idp.example", "jwks_uri": keys.url("/keys"), "algorithms": ["ES256"]});
    let resp = node.admin("PUT", "/admin/v1/providers/corp", Some(body.clone()));
    assert_eq!(resp.status, 201, "{}", resp.text());
    let resp = node.admin(
        "PATCH",
        "/admin/v1/routes/api/jwt",
        Some(json!({"providers": ["corp"]})),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    let t = sign_kid(
        "ES256",
        "ec-p256.key",
        Some("e1"),
        json!({"iss": "https://idp.example", "exp": now() + 60}),
    );
    let ok = eventually(Duration::from_secs(10), || {
        node.send(&Req::get("/api/x").bearer(&t)).status == 200
    });
    assert!(ok, "{}", node.logs());
    let list = node.admin("GET", "/admin/v1/providers", None).json();
    assert_eq!(list["providers"][0]["name"], "corp");
    // Invalid bodies are located.
    let resp = node.admin(
        "PUT",
        "/admin/v1/providers/bad",
        Some(json!({"issuer": "https://x", "jwks_uri": "https://x/k", "algorithms": ["HS256"], "colour": 1})),
    );
    let msg = assert_json_error(&resp, 400);
    let fields: Vec<String> = resp.json()["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect();
    assert!(fields.contains(&"colour".to_owned()), "{msg}: {fields:?}");
    assert!(fields.contains(&"algorithms[0]".to_owned()), "{fields:?}");
    // A provider a route lists cannot go.
    let resp = node.admin("DELETE", "/admin/v1/providers/corp", None);
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert!(
        resp.text().contains("routes[0].jwt.providers[0]"),
        "{}",
        resp.text()
    );
    // The write-back holds it; the explain endpoint reports the provider way.
    assert!(admin_support::read(&node.config_path).contains("jwks_uri"));
    let report = node
        .admin(
            "POST",
            "/admin/v1/explain",
            Some(json!({"token": t, "request": "GET /api/x"})),
        )
        .json();
    assert_eq!(report["verdict"], "accepted", "{report}");
    let steps: Vec<String> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{}: {}",
                s["step"].as_str().unwrap(),
                s["detail"].as_str().unwrap()
            )
        })
        .collect();
    let all = steps.join("\n");
    assert!(
        all.contains("issuer: \"https://idp.example\": provider \"corp\""),
        "{all}"
    );
    assert!(all.contains("key: kid \"e1\": EC P-256 key"), "{all}");
    assert!(!all.contains(&t), "the token is not echoed");

    // A credential written in the URL itself is not returned (it was, in
    // clear: found by an outside review); the URL sent back as shown keeps
    // the stored one, and a masked URL that is not is refused.
    let secret_uri = format!("{}?access_token=literal-credential-xyz", keys.url("/keys"));
    let body =
        json!({"issuer": "https://idp.example", "jwks_uri": secret_uri, "algorithms": ["ES256"]});
    let resp = node.admin("PUT", "/admin/v1/providers/corp", Some(body));
    assert_eq!(resp.status, 200, "{}", resp.text());
    let shown = node.admin("GET", "/admin/v1/providers/corp", None);
    let list = node.admin("GET", "/admin/v1/providers", None);
    for answer in [&resp, &shown, &list] {
        assert!(
            !answer.text().contains("literal-credential-xyz"),
            "{}",
            answer.text()
        );
        assert!(
            answer.text().contains("access_token=***"),
            "{}",
            answer.text()
        );
    }
    let resp = node.admin("PUT", "/admin/v1/providers/corp", Some(shown.json()));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(
        admin_support::read(&node.config_path).contains("access_token=literal-credential-xyz"),
        "the stored URL is kept"
    );
    assert_eq!(node.send(&Req::get("/api/x").bearer(&t)).status, 200);
    let mut other = shown.json();
    other["jwks_uri"] = json!(format!("{}?access_token=***", keys.url("/other")));
    let resp = node.admin("PUT", "/admin/v1/providers/corp", Some(other));
    let msg = assert_json_error(&resp, 400);
    assert!(resp.text().contains("jwks_uri"), "{msg}");
}

#[test]
fn explain_says_why_a_key_did_not_fit() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("keys.json"),
        // rsa2 under r1 too: a rotation that reused the kid.
        jwks(&[jwk("rsa", "r1"), jwk("ec-p256", "e1"), jwk("rsa2", "r1")]).to_string(),
    )
    .unwrap();
    let yaml = r#"listen: "127.0.0.1:0"
providers:
  - name: corp
    issuer: "https://idp.example"
    jwks_file: keys.json
    algorithms: [RS256, ES256]
    audiences: [orders]
routes:
  - name: api
    paths: ["/api/*"]
    upstream: { echo: true }
    jwt: { providers: [corp] }
"#;
    let path = dir.path().join("jwtgate.yaml");
    std::fs::write(&path, yaml).unwrap();
    let config = path.to_str().unwrap();
    let explain = |t: &str| {
        run_cli(
            &[
                "token",
                "explain",
                t,
                "--config",
                config,
                "--request",
                "GET /api/x",
            ],
            dir.path(),
        )
    };
    let claims = json!({"iss": "https://idp.example", "aud": "orders", "exp": now() + 60});
    // An ES256 token naming the RSA key.
    let t = sign_kid("ES256", "ec-p256.key", Some("r1"), claims.clone());
    let out = explain(&t);
    assert_eq!(out.code(), Some(1), "{}", out.all());
    assert!(
        out.stdout
            .contains("key \"r1\" does not fit ES256: it is an RSA 2048-bit key"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("keys in the set: r1 (RSA 2048-bit), e1 (EC P-256)"),
        "{}",
        out.stdout
    );
    // The wrong audience, compared.
    let mut wrong = claims.clone();
    wrong["aud"] = json!(["billing"]);
    let out = explain(&sign_kid("RS256", "rsa.key", Some("r1"), wrong));
    assert!(
        out.stdout
            .contains("audience:   FAILED: aud [\"billing\"] holds none of"),
        "{}",
        out.stdout
    );
    // An issuer that is a near miss gets a hint.
    let mut near = claims.clone();
    near["iss"] = json!("https://idp.example/");
    let out = explain(&sign_kid("RS256", "rsa.key", Some("r1"), near));
    assert!(
        out.stdout
            .contains("hint: provider \"corp\" has issuer \"https://idp.example\""),
        "{}",
        out.stdout
    );
    // Accepted.
    let out = explain(&sign_kid("RS256", "rsa.key", Some("r1"), claims.clone()));
    assert_eq!(out.code(), Some(0), "{}", out.all());
    assert!(
        out.stdout.contains("ACCEPTED as provider \"corp\""),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("signature:  valid\n"), "{}", out.stdout);
    // Accepted by the second key under the kid, and said so.
    let out = explain(&sign_kid("RS256", "rsa2.key", Some("r1"), claims));
    assert_eq!(out.code(), Some(0), "{}", out.all());
    assert!(
        out.stdout
            .contains("signature:  valid, by another key under the same kid: RSA"),
        "{}",
        out.stdout
    );
    assert!(!out.all().contains("\"n\""), "no key material");
}

/// An IdP that publishes two keys under one `kid` (a rotation that reused
/// it): a token signed by either verifies, as Envoy serves it; one signed
/// by neither does not.
#[test]
fn keys_sharing_a_kid_each_verify() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("keys.json"),
        jwks(&[jwk("rsa", "k"), jwk("ec-p256", "k"), jwk("rsa2", "k")]).to_string(),
    )
    .unwrap();
    let config = dir.path().join("jwtgate.yaml");
    std::fs::write(
        &config,
        r#"listen: "127.0.0.1:0"
providers:
  - name: corp
    issuer: "https://idp.example"
    jwks_file: keys.json
    algorithms: [RS256, ES256]
routes:
  - name: api
    paths: ["/api/*"]
    upstream: { echo: true }
    jwt: { providers: [corp] }
"#,
    )
    .unwrap();
    let gw = Gateway::start_in(dir, config).unwrap();
    let claims = json!({"iss": "https://idp.example", "exp": now() + 60});
    for (alg, key) in [
        ("RS256", "rsa.key"),
        ("RS256", "rsa2.key"),
        ("ES256", "ec-p256.key"),
    ] {
        let t = sign_kid(alg, key, Some("k"), claims.clone());
        let resp = get(&gw, &t);
        assert_eq!(resp.status, 200, "{alg} {key}: {}", resp.text());
    }
    // Neither RSA key under the kid made this signature.
    let t = sign_kid("RS256", "rsa.key", Some("k"), claims);
    let mut forged = t.rsplit_once('.').unwrap().0.to_owned();
    let other = sign_kid("RS256", "rsa2.key", Some("k"), json!({"exp": now() + 60}));
    forged.push('.');
    forged.push_str(other.rsplit_once('.').unwrap().1);
    assert_refused(&get(&gw, &forged), "failed to verify jwt", "jwtgate", true);
}

/// The `jwks_file` of the quickstart example works end to end.
#[test]
fn the_quickstart_provider_example_works() {
    let gw = Gateway::start(&quickstart_yaml());
    let token = sign_quickstart(&[
        "--provider",
        "example-idp",
        "--private-key",
        &format!("{REPO_ROOT}/examples/idp/signing-key.pem"),
        "--claim",
        "sub=u-42",
    ]);
    let resp = gw.send(&Req::get("/v1/orders").bearer(&token));
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen: Value = resp.json();
    assert_eq!(seen["headers"]["x-user-id"], "u-42");
    assert_eq!(
        seen["headers"]["x-credential-identifier"],
        "https://idp.example.test/realms/demo"
    );
}

/// A key-set URL may carry a credential (`?access_token=${IDP_TOKEN}`, a
/// user part). References are expanded before the URL is used, and the
/// expanded URL had been written whole in the log ("key set installed",
/// "key set fetch failed"), in `token explain` and the admin API's explain,
/// and in config errors. Each now shows the URL with its user part and
/// query values as `***`.
#[test]
fn regression_a_key_set_urls_credentials_stay_out_of_logs_and_explain() {
    const CREDENTIAL: &str = "idp-token-that-must-not-leak";
    let keys = KeyServer::start(false);
    keys.set("/keys", Reply::json(&jwks(&[jwk("rsa", "r1")])));
    let up = Upstream::start();
    let provider = format!(
        "    issuer: \"https://idp.example\"\n    jwks_uri: \"{}?access_token=${{IDP_TOKEN}}\"\n    algorithms: [RS256]\n    kid_miss_interval_seconds: 1\n",
        keys.url("/keys")
    );
    let yaml = config(&up, &provider, "");
    let env = [("IDP_TOKEN", CREDENTIAL)];
    let gw = Gateway::start_with_env(&yaml, &env);
    let claims = json!({"iss": "https://idp.example", "sub": "u-1", "exp": now() + 60});
    let token = sign_kid("RS256", "rsa.key", Some("r1"), claims);
    assert_eq!(
        wait_status(&gw, &token, 200, Duration::from_secs(10)).status,
        200
    );
    // The key set goes away: the failed fetch is logged too.
    keys.set("/keys", Reply::status(500));
    let unknown = sign_kid(
        "RS256",
        "rsa.key",
        Some("r2"),
        json!({"iss": "https://idp.example", "exp": now() + 60}),
    );
    assert!(
        eventually(Duration::from_secs(10), || {
            let _ = get(&gw, &unknown);
            gw.logs().contains("key set fetch failed")
        }),
        "{}",
        gw.logs()
    );
    let logs = gw.logs();
    assert!(!logs.contains(CREDENTIAL), "{logs}");
    assert!(logs.contains("/keys?access_token=***"), "{logs}");

    let out = run_cli_env(
        &[
            "token",
            "explain",
            &token,
            "--config",
            gw.config_path.to_str().unwrap(),
            "--request",
            "GET /api/x",
        ],
        gw.dir.path(),
        &env,
    );
    assert!(!out.all().contains(CREDENTIAL), "{}", out.all());
    assert!(out.stdout.contains("access_token=***"), "{}", out.stdout);

    // A config error about the URL shows it the same way.
    let bad = yaml.replace("jwks_uri: \"http://", "jwks_uri: \"ftp://user:pw@");
    std::fs::write(&gw.config_path, &bad).unwrap();
    let out = run_cli_env(
        &["check", "--config", gw.config_path.to_str().unwrap()],
        gw.dir.path(),
        &env,
    );
    assert_eq!(out.code(), Some(1), "{}", out.all());
    assert!(
        !out.all().contains(CREDENTIAL) && !out.all().contains("user:pw"),
        "{}",
        out.all()
    );
    assert!(out.all().contains("\"ftp://***@"), "{}", out.all());

    // A user part is refused as such, not as "not an http(s) URL".
    let bad = yaml.replace("jwks_uri: \"http://", "jwks_uri: \"http://user:pw@");
    std::fs::write(&gw.config_path, &bad).unwrap();
    let out = run_cli_env(
        &["check", "--config", gw.config_path.to_str().unwrap()],
        gw.dir.path(),
        &env,
    );
    assert_eq!(out.code(), Some(1), "{}", out.all());
    assert!(!out.all().contains("user:pw"), "{}", out.all());
    assert!(out.all().contains("user part"), "{}", out.all());
    // Its advice holds wherever the provider is written: the admin API and
    // etcd objects take no `${NAME}` there (an outside conformance audit).
    assert!(!out.all().contains("${"), "{}", out.all());
}

/// `token explain` reads a node's key cache and leaves nothing there: run
/// as root on the package's config, the files it wrote were root's, and the
/// service could no longer keep its cache (an outside audit). A key set it
/// had to fetch is used and not saved.
#[test]
fn token_explain_writes_nothing_into_the_nodes_state_dir() {
    let keys = KeyServer::start(false);
    keys.set("/keys", Reply::json(&jwks(&[jwk("rsa", "r1")])));
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        r#"listen: "127.0.0.1:0"
state_dir: state
providers:
  - name: corp
    issuer: "https://idp.example"
    jwks_uri: "{}"
routes:
  - name: api
    paths: ["/api/*"]
    upstream: {{ echo: true }}
    jwt: {{ providers: [corp] }}
"#,
        keys.url("/keys")
    );
    let path = dir.path().join("jwtgate.yaml");
    std::fs::write(&path, yaml).unwrap();
    let token = sign_kid(
        "RS256",
        "rsa.key",
        Some("r1"),
        json!({"iss": "https://idp.example", "exp": now() + 60}),
    );
    let out = run_cli(
        &[
            "token",
            "explain",
            &token,
            "--config",
            path.to_str().unwrap(),
            "--request",
            "GET /api/x",
        ],
        dir.path(),
    );
    assert_eq!(out.code(), Some(0), "{}", out.all());
    assert!(
        out.stdout.contains("ACCEPTED as provider \"corp\""),
        "{}",
        out.stdout
    );
    assert!(
        !dir.path().join("state").join("providers").exists(),
        "explain wrote a key cache: {:?}",
        std::fs::read_dir(dir.path().join("state")).map(|d| d.count())
    );
}
