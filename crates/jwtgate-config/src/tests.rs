//! Config loading: every invalid field reported with its location.

use std::path::Path;

use crate::{load_str, ConfigErrors, StoreConfig, Upstream};

const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/keys");

fn load(yaml: &str) -> Result<crate::Config, ConfigErrors> {
    load_str(yaml, Path::new(KEYS), &|n| {
        (n == "ADMIN_KEY").then(|| "k".to_owned())
    })
}

fn errors(yaml: &str) -> Vec<String> {
    load(yaml)
        .expect_err("config must be invalid")
        .0
        .iter()
        .map(|e| e.to_string())
        .collect()
}

const MINIMAL: &str = r#"
listen: "127.0.0.1:0"
consumers:
  - username: alice
    jwt: { key: user123, secret: s3cret-0123456789abcdef0123456789abcdef }
routes:
  - name: echo
    paths: ["/*"]
    upstream: { echo: true }
    jwt: {}
"#;

#[test]
fn minimal_config_loads_with_defaults() {
    let c = load(MINIMAL).expect("valid");
    assert_eq!(c.listen.len(), 1);
    assert!(matches!(c.store, StoreConfig::Embedded { .. }));
    assert!(matches!(c.routes[0].upstream, Upstream::Echo));
    let jwt = c.routes[0].jwt.as_ref().expect("policy");
    assert_eq!(jwt.key_claim_name, "key");
    let required: Vec<&str> = jwt.required_claims.iter().map(|c| c.as_str()).collect();
    assert_eq!(required, ["exp"]);
    assert!(c.consumers.get("user123").is_some());
}

#[test]
fn every_error_is_reported_with_its_location() {
    let errs = errors(
        r#"
listen: "nonsense"
bogus: 1
store: { kind: embedded, path: ./data, subject_retention_seconds: 9223372036854775807 }
consumers:
  - username: alice
    jwt: { key: k1, algorithm: HS999, secret: s }
  - username: bob
    jwt: { key: k2, algorithm: RS256 }
routes:
  - name: r
    paths: ["v1"]
    upstream: { nodes: ["nohostport"], scheme: ftp }
    jwt:
      required_paths: ["FETCH_/x", "get_/y", "GET/z", "GET_v1", "GET_/a*b"]
      leeway_seconds: -1
"#,
    );
    let want = [
        "listen[0]: \"nonsense\" is not an IP:port address",
        "bogus: unknown key",
        "consumers[0].jwt.algorithm: unsupported algorithm \"HS999\"",
        "consumers[1].jwt.public_key: is required for RS256",
        "routes[0].paths[0]:",
        "routes[0].upstream.nodes[0]: \"nohostport\" is not host:port",
        "routes[0].upstream.scheme: unknown scheme \"ftp\"",
        "routes[0].jwt.required_paths[0]:",
        "routes[0].jwt.required_paths[1]:",
        "routes[0].jwt.required_paths[2]:",
        "routes[0].jwt.required_paths[3]:",
        "routes[0].jwt.required_paths[4]:",
        "routes[0].jwt.leeway_seconds: expected a non-negative integer",
        "store.subject_retention_seconds: is over 315360000 (ten years)",
    ];
    for w in want {
        assert!(
            errs.iter().any(|e| e.starts_with(w)),
            "missing {w:?} in {errs:#?}"
        );
    }
}

#[test]
fn both_path_modes_are_an_error_located_at_a_field_with_every_entry_checked() {
    let errs = errors(&MINIMAL.replace(
        "jwt: {}",
        "jwt: { required_paths: [\"FETCH_/a\"], not_required_paths: [\"GET_b\", \"GET_/c\"] }",
    ));
    assert_eq!(errs.len(), 3, "{errs:#?}");
    assert!(
        errs.iter().any(|e| e
            .starts_with("routes[0].jwt.not_required_paths: is set together with required_paths")),
        "{errs:#?}"
    );
    // Found by an outside audit: the entries went unchecked, so their
    // errors showed only once the mode error was mended.
    assert!(
        errs.iter()
            .any(|e| e.starts_with("routes[0].jwt.required_paths[0]: ") && e.contains("FETCH")),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.starts_with("routes[0].jwt.not_required_paths[0]: ")),
        "{errs:#?}"
    );
}

#[test]
fn a_key_clash_is_reported_even_when_the_first_consumer_has_another_problem() {
    let errs = errors(&MINIMAL.replace(
        "consumers:\n",
        "consumers:\n  - username: bob\n    jwt: { key: shared, secret: short }\n  - username: carol\n    jwt: { key: shared, secret: other-0123456789abcdef0123456789abcdef }\n",
    ));
    assert!(
        errs.iter()
            .any(|e| e.starts_with("consumers[0].jwt.secret: is 5 bytes")),
        "{errs:?}"
    );
    assert!(
        errs.iter().any(|e| e.starts_with("consumers[1].jwt.key:")
            && e.contains("already used by consumer \"bob\"")),
        "{errs:?}"
    );
}

#[test]
fn duplicate_consumer_keys_are_rejected() {
    let errs = errors(&MINIMAL.replace(
        "consumers:\n",
        "consumers:\n  - username: mallory\n    jwt: { key: user123, secret: other-0123456789abcdef0123456789abcdef }\n",
    ));
    assert!(
        errs.iter()
            .any(|e| e.starts_with("consumers[1].jwt.key:") && e.contains("already used")),
        "{errs:?}"
    );
}

#[test]
fn rs256_consumer_needs_a_usable_public_key() {
    for (material, want) in [
        (
            "public_key: \"not a pem\"",
            "consumers[0].jwt.public_key: not a PEM document",
        ),
        (
            "public_key_file: missing.pub",
            "consumers[0].jwt.public_key_file: cannot read",
        ),
        (
            "public_key_file: rsa1024.pub",
            "consumers[0].jwt.public_key_file: the key is not a valid RS256",
        ),
        (
            "public_key_file: ec-p256.pub",
            "consumers[0].jwt.public_key_file: the key is not a valid RS256",
        ),
        ("secret: s", "consumers[0].jwt.secret: is not used by RS256"),
    ] {
        let yaml = MINIMAL.replace(
            "jwt: { key: user123, secret: s3cret-0123456789abcdef0123456789abcdef }",
            &format!("jwt: {{ key: user123, algorithm: RS256, {material} }}"),
        );
        let errs = errors(&yaml);
        assert!(
            errs.iter().any(|e| e.starts_with(want)),
            "{material}: {errs:?}"
        );
    }
    let ok = MINIMAL.replace(
        "jwt: { key: user123, secret: s3cret-0123456789abcdef0123456789abcdef }",
        "jwt: { key: user123, algorithm: RS256, public_key_file: rsa.pub }",
    );
    assert!(load(&ok).is_ok());
}

#[test]
fn env_expansion_and_unset_variables() {
    let with_admin =
        format!("{MINIMAL}admin: {{ listen: \"127.0.0.1:0\", api_key: \"${{ADMIN_KEY}}\" }}\n");
    assert_eq!(
        load(&with_admin)
            .expect("valid")
            .admin
            .expect("admin")
            .api_key,
        "k"
    );
    let errs = errors(&with_admin.replace("ADMIN_KEY", "NOT_SET_ANYWHERE"));
    assert_eq!(
        errs,
        vec!["admin.api_key: environment variable NOT_SET_ANYWHERE is not set"]
    );
    // Only that is said of the value: not what later checks find in the
    // reference left in its place (it "is 19 bytes", short for a secret).
    let unset_secret = MINIMAL.replace(
        "secret: s3cret-0123456789abcdef0123456789abcdef",
        "secret: \"${ALICE_SECRET}\"",
    );
    assert_eq!(
        errors(&unset_secret),
        vec!["consumers[0].jwt.secret: environment variable ALICE_SECRET is not set"]
    );
}

#[test]
fn a_redis_acl_user_needs_its_password() {
    for kind in [
        "kind: redis",
        "kind: redis_cluster, nodes: [\"127.0.0.1:7000\"]",
    ] {
        let errs = errors(&format!("{MINIMAL}store: {{ {kind}, username: gw }}\n"));
        assert_eq!(
            errs,
            ["store.username: needs store.password: Redis signs a user in with both (a `nopass` user takes any)"],
            "{kind}"
        );
        let errs = errors(&format!(
            "{MINIMAL}store: {{ {kind}, username: \"g w\", password: p }}\n"
        ));
        assert_eq!(errs.len(), 1, "{errs:?}");
    }
    let errs = errors(&format!(
        "{MINIMAL}store: {{ kind: embedded, username: gw }}\n"
    ));
    assert_eq!(
        errs,
        ["store.username: is not a setting of store kind embedded"]
    );
    let ok = load(&format!(
        "{MINIMAL}store: {{ kind: redis, username: gw, password: pw }}\n"
    ))
    .expect("valid");
    let StoreConfig::Redis(r) = ok.store else {
        panic!("redis")
    };
    assert_eq!(
        (r.username.as_deref(), r.password.as_deref()),
        (Some("gw"), Some("pw"))
    );
}

#[test]
fn store_keys_must_suit_the_kind() {
    let errs = errors(&format!(
        "{MINIMAL}store: {{ kind: embedded, host: x, pool_size: 0 }}\n"
    ));
    assert!(
        errs.iter()
            .any(|e| e == "store.host: is not a setting of store kind embedded"),
        "{errs:?}"
    );
    let errs = errors(&format!("{MINIMAL}store: {{ kind: redis_cluster }}\n"));
    assert!(
        errs.iter()
            .any(|e| e.starts_with("store.nodes: is required")),
        "{errs:?}"
    );
    // The keys' hash tag: empty, or with a brace, the keys spread over
    // slots and every logout fails (an outside Redis audit).
    for name in ["\"\"", "\"a}b\"", "\"{x\""] {
        let errs = errors(&format!(
            "{MINIMAL}store: {{ kind: redis_cluster, nodes: [\"127.0.0.1:7000\"], name: {name} }}\n"
        ));
        assert_eq!(
            errs,
            vec!["store.name: must be a non-empty name without { or } (it is the hash tag of the store's keys, {name}:revoked)"],
            "{name}"
        );
    }
    assert!(load(&format!(
        "{MINIMAL}store: {{ kind: redis_cluster, nodes: [\"127.0.0.1:7000\"], name: gw-eu }}\n"
    ))
    .is_ok());
    let ok = load(&format!("{MINIMAL}store: {{ kind: redis, host: 127.0.0.1, port: 6380, pool_size: 2, pool_backlog: 0 }}\n")).expect("valid");
    let StoreConfig::Redis(r) = ok.store else {
        panic!("redis")
    };
    assert_eq!(
        (r.port, r.pool.pool_size, r.pool.pool_backlog),
        (6380, 2, 0)
    );
}

#[test]
fn revoking_needs_a_logout_path() {
    let errs = errors(&MINIMAL.replace("jwt: {}", "jwt: { use_jwt_blacklist_revoking: true }"));
    assert!(
        errs.iter()
            .any(|e| e.starts_with("routes[0].jwt.logout_path: is required")),
        "{errs:?}"
    );
}

#[test]
fn invalid_yaml_is_one_clear_error() {
    let errs = errors("listen: [unclosed");
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("not valid YAML"), "{errs:?}");
}

#[test]
fn a_route_host_loses_its_final_dot_and_empty_labels_are_errors() {
    let with_hosts =
        |hosts: &str| MINIMAL.replace("jwt: {}", &format!("jwt: {{}}\n    hosts: {hosts}"));
    let config = load(&with_hosts(
        r#"["Secret.Example.", "*.api.example.", "plain.example"]"#,
    ))
    .expect("valid hosts");
    assert_eq!(
        config.routes[0].hosts,
        ["secret.example", "*.api.example", "plain.example"]
    );
    for bad in [
        ".",
        "a..example",
        ".a.example",
        "a.example..",
        "*..example",
        "*.",
    ] {
        let errs = errors(&with_hosts(&format!("[{bad:?}]")));
        assert!(
            errs.iter()
                .any(|e| e.starts_with("routes[0].hosts[0]: invalid host")),
            "{bad}: {errs:?}"
        );
    }
}

#[test]
fn realm_must_be_header_safe() {
    let errs = errors(&MINIMAL.replace("jwt: {}", "jwt: { realm: 'a\"b' }"));
    assert!(
        errs.iter().any(|e| e.starts_with("routes[0].jwt.realm:")),
        "{errs:?}"
    );
    assert!(load(&MINIMAL.replace("jwt: {}", "jwt: { realm: my-api }")).is_ok());
}

#[test]
fn forward_claims_cannot_name_a_header_the_gateway_sets() {
    for header in [
        "Host",
        "X-Forwarded-For",
        "x_real_ip",
        "X-Consumer-Username",
        "Content-Length",
    ] {
        let yaml = MINIMAL.replace(
            "jwt: {}",
            &format!("jwt: {{ forward_claims: {{ sub: {header} }} }}"),
        );
        let errs = errors(&yaml);
        assert!(
            errs.iter()
                .any(|e| e.starts_with("routes[0].jwt.forward_claims.sub:")
                    && e.contains("the gateway sets")),
            "{header}: {errs:?}"
        );
    }
    assert!(
        load(&MINIMAL.replace("jwt: {}", "jwt: { forward_claims: { sub: X-User-Id } }")).is_ok()
    );
}

/// A token in a header the gateway strips or consumes before it reads the
/// token is never checked (with an anonymous consumer, a bad token became
/// the guest): such a `jwt.header` is refused, as a claim's header is.
#[test]
fn the_token_header_cannot_be_one_the_gateway_sets_or_strips() {
    for header in [
        "X-Consumer-Username",
        "x-anonymous-consumer",
        "X_Real_IP",
        "Forwarded",
        "X-Original-URL",
        "X-Forwarded-Host",
        "X-Forwarded-For",
        "Connection",
        "Host",
        "TE",
        "Proxy-Authorization",
        "Expect",
    ] {
        let yaml = MINIMAL.replace("jwt: {}", &format!("jwt: {{ header: {header} }}"));
        let errs = errors(&yaml);
        assert!(
            errs.iter().any(|e| e.starts_with("routes[0].jwt.header:")
                && e.contains("a token there would never be read")),
            "{header}: {errs:?}"
        );
    }
    for header in ["X-Api-Token", "Authorization", "Cookie"] {
        let yaml = MINIMAL.replace("jwt: {}", &format!("jwt: {{ header: {header} }}"));
        assert!(load(&yaml).is_ok(), "{header}");
    }
}

#[test]
fn regression_short_hmac_secret_accepted() {
    // RFC 7518 §3.2: at least the hash output, 32 bytes for HS256.
    let short = MINIMAL.replace(
        "secret: s3cret-0123456789abcdef0123456789abcdef",
        "secret: s3cret",
    );
    let errs = errors(&short);
    assert!(
        errs.iter()
            .any(|e| e.starts_with("consumers[0].jwt.secret: is 6 bytes")
                && e.contains("at least 32")),
        "{errs:?}"
    );
    // Counted after base64 decoding: 24 bytes spelled in 32 characters.
    let b64 = MINIMAL.replace(
        "secret: s3cret-0123456789abcdef0123456789abcdef",
        "secret: \"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3\", base64_secret: true",
    );
    let errs = errors(&b64);
    assert!(
        errs.iter()
            .any(|e| e.contains("is 24 bytes after base64 decoding")),
        "{errs:?}"
    );
    let exactly = MINIMAL.replace(
        "secret: s3cret-0123456789abcdef0123456789abcdef",
        "secret: 0123456789abcdef0123456789abcdef",
    );
    assert!(load(&exactly).is_ok());
}

#[test]
fn admin_console_is_off_unless_set() {
    let admin =
        |extra: &str| format!("{MINIMAL}admin: {{ listen: \"127.0.0.1:0\", api_key: k{extra} }}\n");
    let console = |yaml: &str| load(yaml).expect("valid").admin.expect("admin").console;
    assert!(!console(&admin("")));
    assert!(!console(&admin(", console: false")));
    assert!(console(&admin(", console: true")));
    assert_eq!(
        errors(&admin(", console: \"yes\"")),
        vec!["admin.console: expected true or false, found a string"]
    );
}

/// A file cut short just after `immutable:` or `protection:` (an outside
/// reload audit) must not read as a protection lifted: an empty value is
/// refused, for every flag.
#[test]
fn an_empty_flag_or_protection_is_refused_not_read_as_false() {
    let with = |jwt: &str| MINIMAL.replace("    jwt: {}\n", jwt);
    let protected =
        with("    jwt:\n      protection:\n        undeletable: true\n        immutable: true\n");
    let p = load(&protected).expect("valid").routes[0]
        .jwt
        .clone()
        .expect("policy")
        .protection;
    assert!(p.undeletable && p.immutable);
    assert_eq!(
        errors(&with("    jwt:\n      protection:\n        undeletable: true\n        immutable:\n")),
        vec!["routes[0].jwt.protection.immutable: is empty: write true or false, or leave the key out"]
    );
    assert_eq!(
        errors(&with("    jwt:\n      protection:\n")),
        vec!["routes[0].jwt.protection: is empty: write undeletable and immutable under it, or leave the key out"]
    );
    assert_eq!(
        errors(&with("    jwt: { hide_credentials: }\n")),
        vec!["routes[0].jwt.hide_credentials: is empty: write true or false, or leave the key out"]
    );
    // Left out, each is false, as before.
    let open = load(&with("    jwt: { protection: { undeletable: true } }\n")).expect("valid");
    assert!(
        !open.routes[0]
            .jwt
            .as_ref()
            .expect("policy")
            .protection
            .immutable
    );
}

#[test]
fn workers_default_to_one_per_core_and_must_be_between_1_and_1024() {
    assert_eq!(load(MINIMAL).expect("valid").workers, None);
    let with = |v: &str| format!("workers: {v}\n{MINIMAL}");
    let c = load(&with("3")).expect("valid");
    assert_eq!(c.workers.map(std::num::NonZeroUsize::get), Some(3));
    assert_eq!(
        c.raw.workers,
        Some(3),
        "kept for the admin API and write-back"
    );
    assert_eq!(
        errors(&with("0")),
        ["workers: must be at least 1 (omit it for one per core)"]
    );
    assert_eq!(errors(&with("1025")), ["workers: must be at most 1024"]);
    assert_eq!(errors(&with("two")).len(), 1);
    assert_eq!(errors(&with("-1")).len(), 1);
}

#[test]
fn worker_cpu_affinity_is_auto_or_off_and_off_by_default() {
    use crate::WorkerAffinity;
    assert_eq!(
        load(MINIMAL).expect("valid").worker_cpu_affinity,
        WorkerAffinity::Off
    );
    let with = |v: &str| format!("worker_cpu_affinity: {v}\n{MINIMAL}");
    assert_eq!(
        load(&with("auto")).expect("valid").worker_cpu_affinity,
        WorkerAffinity::Auto
    );
    assert_eq!(
        load(&with("off")).expect("valid").worker_cpu_affinity,
        WorkerAffinity::Off
    );
    assert_eq!(
        errors(&with("'0-3'")),
        [r#"worker_cpu_affinity: must be "auto" or "off", not "0-3""#]
    );
}

#[test]
fn worker_yield_is_auto_or_off_and_auto_by_default() {
    assert!(load(MINIMAL).expect("valid").worker_yield);
    let with = |v: &str| format!("worker_yield: {v}\n{MINIMAL}");
    assert!(load(&with("auto")).expect("valid").worker_yield);
    assert!(!load(&with("off")).expect("valid").worker_yield);
    assert_eq!(
        errors(&with("always")),
        [r#"worker_yield: must be "auto" or "off", not "always""#]
    );
}

#[test]
fn max_connections_is_at_least_one_and_derived_when_absent() {
    assert_eq!(load(MINIMAL).expect("valid").max_connections, None);
    let with = |v: &str| format!("max_connections: {v}\n{MINIMAL}");
    let n = load(&with("20000")).expect("valid").max_connections;
    assert_eq!(n.map(std::num::NonZeroUsize::get), Some(20_000));
    assert_eq!(
        errors(&with("0")),
        ["max_connections: must be at least 1 (omit it to derive it from the open-file limit)"]
    );
    assert_eq!(errors(&with("-1")).len(), 1);
}

#[test]
fn an_unknown_key_names_the_one_it_was_likely_meant_to_be() {
    let errs = errors(
        &MINIMAL
            .replace(
                "jwt: {}",
                "jwt: { not_requried_paths: [\"GET_/a\"], Realm: x, colour: red }",
            )
            .replace(
                "upstream: { echo: true }",
                "upstream: { echo: true, read_timeout: 5 }",
            ),
    );
    for want in [
        "routes[0].jwt.not_requried_paths: unknown key (did you mean \"not_required_paths\"?)",
        "routes[0].jwt.Realm: unknown key (did you mean \"realm\"?)",
        "routes[0].upstream.read_timeout: unknown key (did you mean \"read_timeout_ms\"?)",
        "routes[0].jwt.colour: unknown key",
    ] {
        assert!(errs.iter().any(|e| e == want), "{want:?} in {errs:#?}");
    }
}

/// A file a config names may come from an admin request or an etcd object:
/// a device would be read until memory runs out, a FIFO would hold the
/// control plane until someone writes to it. Both, a directory and a file
/// over the limit are located errors, at once.
#[test]
fn regression_named_files_are_regular_and_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    let big = dir.path().join("big.pem");
    std::fs::write(&big, vec![b'A'; (crate::MAX_FILE_BYTES + 1) as usize]).expect("write");
    let consumer = |name: &str, file: &std::path::Path| {
        format!(
            "  - username: {name}\n    jwt: {{ key: {name}, algorithm: RS256, public_key_file: \"{}\" }}\n",
            file.display()
        )
    };
    let yaml = format!(
        "listen: \"127.0.0.1:0\"\nconsumers:\n{}{}{}{}routes: []\n",
        consumer("zero", std::path::Path::new("/dev/zero")),
        consumer("fifo", &fifo),
        consumer("dir", dir.path()),
        consumer("big", &big),
    );
    let got = errors(&yaml);
    assert_eq!(got.len(), 4, "{got:#?}");
    for (i, why) in [
        "not a regular file",
        "not a regular file",
        "not a regular file",
        "larger than 1048576 bytes",
    ]
    .iter()
    .enumerate()
    {
        assert!(
            got[i].starts_with(&format!("consumers[{i}].jwt.public_key_file: cannot read "))
                && got[i].ends_with(why),
            "{i}: {got:#?}"
        );
    }
}

/// A consumer's username, custom_id and key go upstream in identity headers:
/// a CR or LF there made the gateway drop the header silently, and a key of
/// spaces could never match a trimmed header. A realm is bounded.
#[test]
fn regression_identity_values_fit_a_header_and_realms_are_bounded() {
    let yaml = format!(
        r#"listen: "127.0.0.1:0"
consumers:
  - username: "ev\r\nil"
    custom_id: "a\r\nX-Evil: 1"
    jwt: {{ key: "b\u0000", secret: s3cret-0123456789abcdef0123456789abcdef }}
  - username: " bob"
    jwt: {{ key: " ", secret: s3cret-0123456789abcdef0123456789abcdef }}
routes:
  - name: r
    paths: ["/*"]
    upstream: {{ echo: true }}
    jwt: {{ realm: "{}" }}
"#,
        "r".repeat(257)
    );
    let control = "must not hold control characters (it is sent upstream in a header)";
    let space = "must not start or end with whitespace (it is sent upstream in a header)";
    assert_eq!(
        errors(&yaml),
        [
            format!("consumers[0].username: {control}"),
            format!("consumers[0].custom_id: {control}"),
            format!("consumers[0].jwt.key: {control}"),
            format!("consumers[1].username: {space}"),
            format!("consumers[1].jwt.key: {space}"),
            "routes[0].jwt.realm: must be non-empty printable ASCII without '\"' or '\\', \
             at most 256 characters"
                .to_owned(),
        ]
    );
    let fine = yaml.replace(&"r".repeat(257), &"r".repeat(256));
    assert!(!errors(&fine).iter().any(|e| e.contains("realm")));
}

/// An admin key no header can carry locked the operator out.
#[test]
fn regression_an_admin_key_no_header_can_match_is_refused() {
    // As YAML writes them (in double quotes, \a is the bell).
    for key in [
        " padded-key-0123456789abcdef0123456789 ",
        "bell\\a-0123456789abcdef0123456789abcdef",
    ] {
        let yaml = format!(
            "listen: \"127.0.0.1:0\"\nadmin: {{ listen: \"127.0.0.1:0\", api_key: \"{key}\" }}\nroutes: []\n"
        );
        assert_eq!(
            errors(&yaml),
            [
                "admin.api_key: must not hold control characters or start or end with whitespace: \
              no X-API-KEY header could match it"
            ],
            "{key:?}"
        );
    }
}

/// An outside audit: `check` said ok, and the node could not start
/// (`Address already in use`).
#[test]
fn listeners_that_would_take_one_address_twice_are_refused() {
    let config = |listen: &str, admin: &str| {
        format!(
            "listen: {listen}\nadmin: {{ listen: \"{admin}\", api_key: \"abcdefghijabcdefghijabcdefghij1234\" }}\nroutes: []\n"
        )
    };
    assert_eq!(
        errors(&config("\"127.0.0.1:8080\"", "127.0.0.1:8080")),
        [
            "admin.listen: 127.0.0.1:8080 overlaps listen[0] (127.0.0.1:8080), where the data \
          plane listens: the admin API needs an address of its own"
        ]
    );
    // A wildcard takes its port on every address of its family.
    assert_eq!(
        errors(&config(
            "[\"[::1]:9000\", \"0.0.0.0:8080\"]",
            "127.0.0.1:8080"
        )),
        [
            "admin.listen: 127.0.0.1:8080 overlaps listen[1] (0.0.0.0:8080), where the data \
          plane listens: the admin API needs an address of its own"
        ]
    );
    assert_eq!(
        errors(&config("[\"[::]:8080\", \"[::1]:8080\", \"[::1]:8080\"]", "127.0.0.1:9180")),
        [
            "listen[1]: [::1]:8080 overlaps listen[0] ([::]:8080): the node could not listen on both",
            "listen[2]: [::1]:8080 overlaps listen[0] ([::]:8080): the node could not listen on both",
        ]
    );
    // Another port, another address of the family, or an ephemeral port:
    // fine.
    for (listen, admin) in [
        ("\"127.0.0.1:8080\"", "127.0.0.1:9180"),
        ("\"127.0.0.1:8080\"", "127.0.0.2:8080"),
        ("\"0.0.0.0:8080\"", "[::1]:8080"),
        ("[\"127.0.0.1:8080\", \"[::1]:8080\"]", "127.0.0.1:9180"),
        ("\"127.0.0.1:0\"", "127.0.0.1:0"),
        // Both stacks where `[::]` is IPv6 only (bindv6only=1, the BSDs):
        // a warning, not an error.
        ("[\"0.0.0.0:8080\", \"[::]:8080\"]", "127.0.0.1:9180"),
        // One link-local address on two interfaces.
        (
            "[\"[fe80::1%1]:8080\", \"[fe80::1%2]:8080\"]",
            "127.0.0.1:9180",
        ),
    ] {
        let yaml = config(listen, admin);
        assert!(load(&yaml).is_ok(), "{yaml}");
    }
}

#[test]
fn a_key_fetch_timeout_is_bounded_to_a_minute() {
    let config = |ms: u64| {
        format!(
            "listen: \"127.0.0.1:0\"\nproviders:\n  - name: idp\n    issuer: \"https://idp.example.com\"\n    \
             jwks_uri: \"https://idp.example.com/jwks\"\n    fetch_timeout_ms: {ms}\nroutes: []\n"
        )
    };
    for good in [1, 2000, 60_000] {
        load(&config(good)).unwrap_or_else(|e| panic!("{good}: {e}"));
    }
    assert_eq!(
        errors(&config(0)),
        ["providers[0].fetch_timeout_ms: must be greater than 0"]
    );
    for bad in [60_001, u64::MAX] {
        assert_eq!(
            errors(&config(bad)),
            ["providers[0].fetch_timeout_ms: must be at most 60000 (a minute)"],
            "{bad}"
        );
    }
}

#[test]
fn a_providers_intervals_are_bounded_to_ten_years() {
    let config = |key: &str, secs: u64| {
        format!(
            "listen: \"127.0.0.1:0\"\nproviders:\n  - name: idp\n    issuer: \"https://idp.example.com\"\n    \
             jwks_uri: \"https://idp.example.com/jwks\"\n    {key}: {secs}\nroutes: []\n"
        )
    };
    for key in [
        "refresh_seconds",
        "kid_miss_interval_seconds",
        "max_stale_seconds",
    ] {
        load(&config(key, 315_360_000)).unwrap_or_else(|e| panic!("{key}: {e}"));
        for bad in [315_360_001, u64::MAX] {
            assert_eq!(
                errors(&config(key, bad)),
                [format!("providers[0].{key}: is over 315360000 (ten years)")],
                "{key}: {bad}"
            );
        }
    }
}

#[test]
fn provider_urls_and_backchannel_paths_that_could_never_work_are_refused() {
    let config = |jwks_uri: &str, path: &str| {
        format!(
            r#"
listen: "127.0.0.1:0"
providers:
  - name: idp
    issuer: "https://idp.example.com"
    jwks_uri: "{jwks_uri}"
    client_id: gw
    backchannel_logout_path: "{path}"
routes:
  - name: r
    paths: ["/*"]
    upstream: {{ echo: true }}
    jwt: {{ providers: [idp], consumers: false }}
"#
        )
    };
    for good in [
        "https://idp.example.com/jwks",
        "http://127.0.0.1:8080/jwks?tenant=a",
        "https://[::1]:8443/jwks",
        "https://[2001:db8::1]/jwks",
        "http://idp_internal.local:65535",
        // An empty port is the scheme's (RFC 3986 §3.2.3), as the fetcher
        // takes it; the scheme in any case.
        "http://idp:/jwks",
        "HTTPS://idp.example.com/jwks",
    ] {
        load(&config(good, "/oidc/bcl")).unwrap_or_else(|e| panic!("{good}: {e}"));
    }
    for bad in [
        "http://[::1",
        "http://[::1]x/jwks",
        "http://[not-v6]/jwks",
        "http://127.0.0.1:99999/jwks",
        "http://idp:0/jwks",
        "http://idp:80x/jwks",
        "http://idp%41/jwks",
        "http://:8080/jwks",
        "http://id p/jwks",
        "http://idp<x>/jwks",
    ] {
        let e = errors(&config(bad, "/oidc/bcl"));
        assert!(
            e.iter().any(|e| e.contains("providers[0].jwks_uri") && e.contains("is not an http(s) URL")),
            "{bad}: {e:?}"
        );
    }
    // The message says what is wrong: a character to escape in the query
    // was told as a bad host or port (an outside audit).
    for (bad, why) in [
        ("https://idp.example/jwks?x=<b>", "must be percent-encoded"),
        ("http://id p/jwks", "whitespace"),
        ("ftp://idp/jwks", "scheme is not http or https"),
        ("http://idp:0/jwks", "port is not 1 to 65535"),
        ("http://[not-v6]/jwks", "host is not a name or an address"),
    ] {
        let e = errors(&config(bad, "/oidc/bcl"));
        assert!(
            e.iter()
                .any(|e| e.contains("providers[0].jwks_uri") && e.contains(why)),
            "{bad}: {e:?}"
        );
    }
    for bad in ["/oidc/bcl?x=1", "/oidc/bcl#f"] {
        let e = errors(&config("https://idp.example.com/jwks", bad));
        assert!(
            e.iter()
                .any(|e| e.contains("providers[0].backchannel_logout_path")),
            "{bad}: {e:?}"
        );
    }
}

/// An address an error quotes may hold a credential (`user:password@`, a
/// query token): reload errors go to the log, so it is shown without it.
#[test]
fn an_address_in_an_error_is_shown_without_its_credential() {
    let secret = "SEKRET-0123456789";
    let cases = [
        (
            r#"listen: "127.0.0.1:0""#.to_owned(),
            format!(r#"listen: "u:{secret}@127.0.0.1:0""#),
            "listen[0]",
        ),
        (
            "upstream: { echo: true }".to_owned(),
            format!(r#"upstream: {{ nodes: ["svc:{secret}@127.0.0.1:9000"] }}"#),
            "routes[0].upstream.nodes[0]",
        ),
        (
            "consumers:".to_owned(),
            format!(
                "store: {{ kind: redis_cluster, nodes: [\"redis://:{secret}@127.0.0.1:7000\"] }}\nconsumers:"
            ),
            "store.nodes[0]",
        ),
        (
            "consumers:".to_owned(),
            format!("store: {{ kind: redis, host: \"redis://:{secret}@127.0.0.1\" }}\nconsumers:"),
            "store.host",
        ),
    ];
    for (from, to, loc) in cases {
        let yaml = MINIMAL.replacen(&from, &to, 1);
        let errs = errors(&yaml);
        assert!(
            errs.iter()
                .any(|e| e.starts_with(&format!("{loc}:")) && e.contains("***@127.0.0.1")),
            "{loc}: {errs:?}"
        );
        assert!(!errs.iter().any(|e| e.contains(secret)), "{errs:?}");
    }
    let yaml = format!(
        "listen: \"127.0.0.1:0\"\nconfig_source: {{ kind: etcd, endpoints: [\"http://root:{secret}@127.0.0.1:2379\"] }}\n"
    );
    let errs = errors(&yaml);
    assert!(
        errs.iter()
            .any(|e| e.starts_with("config_source.endpoints[0]:") && e.contains("***@127.0.0.1")),
        "{errs:?}"
    );
    assert!(!errs.iter().any(|e| e.contains(secret)), "{errs:?}");
    let yaml = MINIMAL.replace("jwt: {}", "jwt: {}\n  - name: x\n    paths: [\"/x\"]\n    upstream: { nodes: [\"127.0.0.1:1\"], x: 1 }\n    jwt: {}").replace("secret: s3cret", &format!("secret={secret}, s: s3cret"));
    let errs = errors(&yaml);
    assert!(errs.iter().any(|e| e.contains("secret=…")), "{errs:?}");
    assert!(!errs.iter().any(|e| e.contains(secret)), "{errs:?}");
}

/// `check` says what `run` would refuse: an embedded store's path that is
/// a file, not a directory.
#[test]
fn an_embedded_store_path_that_is_a_file_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("afile"), b"").expect("write");
    let yaml = MINIMAL.replacen(
        "consumers:",
        "store: { kind: embedded, path: ./afile }\nconsumers:",
        1,
    );
    let errs = load_str(&yaml, dir.path(), &|_| None)
        .expect_err("a file as the store's path")
        .0
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>();
    assert!(
        errs.iter().any(|e| e.starts_with("store.path: is a file")),
        "{errs:?}"
    );
    let yaml = MINIMAL.replacen(
        "consumers:",
        "store: { kind: embedded, path: ./data }\nconsumers:",
        1,
    );
    assert!(load_str(&yaml, dir.path(), &|_| None).is_ok());
}

/// A route naming a provider that is there but invalid is pointed at it,
/// not told that it does not exist (an outside audit found "no provider
/// named" for a provider in the file).
#[test]
fn a_route_naming_an_invalid_provider_is_pointed_at_it() {
    let errs = errors(
        &MINIMAL
            .replace(
                "routes:\n",
                "providers:\n  - { name: corp, issuer: \"https://idp.example\", discovery: true, jwks_uri: \"https://idp.example/k\" }\nroutes:\n",
            )
            .replace("jwt: {}", "jwt: { providers: [corp, nope] }"),
    );
    assert!(
        errs.iter().any(|e| e.starts_with("providers[0]")),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e
                == "routes[0].jwt.providers[0]: provider \"corp\" is invalid (see providers[0])"),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.starts_with("routes[0].jwt.providers[1]: no provider named \"nope\"")),
        "{errs:#?}"
    );
}

/// A key written twice is named, in the operator's words: the parser's
/// advice to set one of its options (which the operator cannot) is cut.
#[test]
fn a_duplicate_key_is_named_without_the_parsers_advice() {
    let yaml = MINIMAL.replace(
        "listen: \"127.0.0.1:0\"",
        "listen: \"127.0.0.1:0\"\nlisten: \"127.0.0.1:1\"",
    );
    let said = errors(&yaml).join("\n");
    assert!(said.contains("duplicate mapping key"), "{said}");
    assert!(!said.contains("DuplicateKeyPolicy"), "{said}");
}

/// A Redis port out of range is said once, at the port: the host beside it
/// was said to be no host name too, sending the reader after a URL (an
/// outside review of the README).
#[test]
fn a_redis_port_out_of_range_blames_the_port_alone() {
    for port in ["0", "70000"] {
        let yaml = MINIMAL.replace(
            "consumers:",
            &format!("store: {{ kind: redis, host: 127.0.0.1, port: {port} }}\nconsumers:"),
        );
        assert_eq!(
            errors(&yaml),
            [format!("store.port: {port} is not a TCP port")],
            "{port}"
        );
    }
}

/// A file of objects for etcd (a `config_source`, no `listen`) given to
/// `check` is pointed at `config push --dry-run` (an outside review: it was
/// only told that `listen` is required).
#[test]
fn a_push_file_without_listen_is_pointed_at_config_push() {
    let yaml = MINIMAL.replace(
        "listen: \"127.0.0.1:0\"",
        "config_source: { kind: etcd, endpoints: [\"http://127.0.0.1:2379\"] }",
    );
    let errs = errors(&yaml);
    assert!(
        errs.iter()
            .any(|e| e.starts_with("listen: is required of a node's file")
                && e.contains("jwtgate config push --dry-run")),
        "{errs:?}"
    );
    let errs = errors(&MINIMAL.replace("listen: \"127.0.0.1:0\"", ""));
    assert!(
        errs.contains(&"listen: is required (e.g. \"127.0.0.1:8080\")".to_owned()),
        "{errs:?}"
    );
}

#[test]
fn admin_allowed_hosts_are_host_names_kept_in_lower_case() {
    let admin = |hosts: &str| {
        format!(
            "{MINIMAL}admin: {{ listen: \"127.0.0.1:0\", api_key: \"${{ADMIN_KEY}}\", allowed_hosts: {hosts} }}\n"
        )
    };
    let config = load(&admin(
        r#"["Admin.Example.internal.", ".Corp.test", "*", "ops_1"]"#,
    ))
    .unwrap();
    assert_eq!(
        config.admin.unwrap().allowed_hosts,
        ["admin.example.internal", ".corp.test", "*", "ops_1"]
    );
    let errs = errors(&admin(
        r#"["http://a.test", "a.test:9180", "", ".", "a..b", "*.corp.test", "a b", 7.5]"#,
    ));
    for i in 0..7 {
        assert!(
            errs.iter()
                .any(|e| e.starts_with(&format!("admin.allowed_hosts[{i}]: "))),
            "entry {i}: {errs:?}"
        );
    }
    assert!(
        errs.iter()
            .any(|e| e.starts_with("admin.allowed_hosts[7]: ")),
        "{errs:?}"
    );
    let whole = "admin.allowed_hosts[1]: \"a.test:9180\" is not a host name (letters, digits, `-` \
                 and `_` in dot-separated labels, no port or scheme; `.example.com` takes \
                 example.com and every name under it, `*` any name; IP addresses and localhost \
                 are always answered)";
    assert!(errs.iter().any(|e| e == whole), "{errs:?}");
}

#[test]
fn an_upstream_leaves_a_node_out_after_one_failed_connect_for_ten_seconds_unless_told() {
    let route = |upstream: &str| {
        format!("listen: \"127.0.0.1:0\"\nroutes:\n  - name: a\n    paths: [\"/*\"]\n    upstream: {upstream}\n")
    };
    let nodes = |c: &crate::Config| match &c.routes[0].upstream {
        Upstream::Nodes(n) => (n.max_fails, n.fail_timeout),
        Upstream::Echo => panic!("nodes expected"),
    };
    let c = load(&route("{ nodes: [\"127.0.0.1:9\"] }")).expect("valid");
    assert_eq!(nodes(&c), (1, std::time::Duration::from_secs(10)));
    let c = load(&route(
        "{ nodes: [\"127.0.0.1:9\"], max_fails: 0, fail_timeout_ms: 2500 }",
    ))
    .expect("valid");
    assert_eq!(nodes(&c), (0, std::time::Duration::from_millis(2500)));
    for (upstream, expected) in [
        (
            "{ nodes: [\"127.0.0.1:9\"], max_fails: 1001 }",
            "routes[0].upstream.max_fails: must be at most 1000 (0 never leaves a node out)",
        ),
        (
            "{ nodes: [\"127.0.0.1:9\"], fail_timeout_ms: 0 }",
            "routes[0].upstream.fail_timeout_ms: must be greater than 0",
        ),
        (
            "{ nodes: [\"127.0.0.1:9\"], max_fails: -1 }",
            "routes[0].upstream.max_fails",
        ),
        (
            "{ nodes: [\"127.0.0.1:9\"], fail_timeout_ms: 86400001 }",
            "routes[0].upstream.fail_timeout_ms: must be at most 86400000 (a day)",
        ),
        (
            "{ echo: true, max_fails: 2 }",
            "routes[0].upstream.max_fails: is not used with echo: true",
        ),
    ] {
        let e = errors(&route(upstream));
        assert!(
            e.iter().any(|e| e.starts_with(expected)),
            "{upstream}: {e:?}"
        );
    }
}

#[test]
fn an_upstream_node_may_say_its_weight_as_nginx_does() {
    let route = |nodes: &str| {
        format!("listen: \"127.0.0.1:0\"\nroutes:\n  - name: a\n    paths: [\"/*\"]\n    upstream: {{ nodes: {nodes} }}\n")
    };
    let c = load(&route(
        r#"["10.0.0.1:80 weight=3", "[::1]:81", "b.test:82   weight=1000"]"#,
    ))
    .expect("valid");
    let Upstream::Nodes(n) = &c.routes[0].upstream else {
        panic!("nodes expected")
    };
    let seen: Vec<_> = n
        .nodes
        .iter()
        .map(|n| (n.host.as_str(), n.port, n.authority.as_str(), n.weight))
        .collect();
    assert_eq!(
        seen,
        [
            ("10.0.0.1", 80, "10.0.0.1:80", 3),
            ("::1", 81, "[::1]:81", 1),
            ("b.test", 82, "b.test:82", 1000),
        ]
    );
    for (nodes, expected) in [
        (
            r#"["10.0.0.1:80 weight=0"]"#,
            "routes[0].upstream.nodes[0]: weight=\"0\": a weight is a whole number from 1 to 1000",
        ),
        (
            r#"["10.0.0.1:80", "10.0.0.2:80 weight=1001"]"#,
            "routes[0].upstream.nodes[1]: weight=\"1001\": a weight",
        ),
        (
            r#"["10.0.0.1:80 weight=x"]"#,
            "routes[0].upstream.nodes[0]: weight=\"x\": a weight",
        ),
        (
            r#"["10.0.0.1:80 weight=2 weight=3"]"#,
            "routes[0].upstream.nodes[0]: says weight= twice",
        ),
        (
            r#"["10.0.0.1:80 backup"]"#,
            "routes[0].upstream.nodes[0]: unknown parameter \"backup\" after host:port (weight=N)",
        ),
        (
            r#"["10.0.0.1:80 weight=+3"]"#,
            "routes[0].upstream.nodes[0]: weight=\"+3\": a weight",
        ),
        (
            r#"["10.0.0.1:80 weight = 3"]"#,
            "routes[0].upstream.nodes[0]: weight=N is written without spaces",
        ),
        (
            r#"["10.0.0.1:80 weight =3"]"#,
            "routes[0].upstream.nodes[0]: weight=N is written without spaces",
        ),
        (
            r#"["::1"]"#,
            "routes[0].upstream.nodes[0]: \"::1\" is not host:port",
        ),
        (
            r#"["::1:8080"]"#,
            "routes[0].upstream.nodes[0]: \"::1:8080\" is not host:port",
        ),
        (
            r#"["[::1]:8080:5"]"#,
            "routes[0].upstream.nodes[0]: \"[::1]:8080:5\" is not host:port",
        ),
        (
            r#"["[not-v6]:8080"]"#,
            "routes[0].upstream.nodes[0]: \"[not-v6]:8080\" is not host:port",
        ),
        (
            r#"["10.0.0.1:+80"]"#,
            "routes[0].upstream.nodes[0]: \"10.0.0.1:+80\" is not host:port",
        ),
        (
            r#"["weight=2 10.0.0.1:80"]"#,
            "routes[0].upstream.nodes[0]: \"weight=2 10.0.0.1:80\" is not host:port",
        ),
    ] {
        let e = errors(&route(nodes));
        assert!(e.iter().any(|e| e.starts_with(expected)), "{nodes}: {e:?}");
    } // 101 nodes of 999 and one of 1000: 101 899 turns a round.
    let many: Vec<String> = (1..=101)
        .map(|p| format!("\"10.0.0.1:{p} weight=999\""))
        .chain(["\"10.0.0.2:1 weight=1000\"".into()])
        .collect();
    let e = errors(&route(&format!("[{}]", many.join(", "))));
    assert!(
        e.iter().any(|e| e
            == "routes[0].upstream.nodes: the weights take 101899 turns a round (their sum, \
                divided by their greatest common divisor), more than 100000: use smaller weights"),
        "{e:?}"
    );
}

/// A `jwks_file` may be any JSON file of the node, named by an admin API
/// caller or an etcd writer: its refusal says what is wrong, and repeats
/// none of the file's values (an outside audit read a `kty` and a `crv`
/// back so).
#[test]
fn regression_a_jwks_file_refusal_shows_none_of_its_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let provider = |name: &str, body: &str| {
        let file = dir.path().join(format!("{name}.json"));
        std::fs::write(&file, body).expect("write");
        format!(
            "  - name: {name}\n    issuer: https://{name}.example\n    jwks_file: \"{}\"\n",
            file.display()
        )
    };
    let yaml = format!(
        "listen: \"127.0.0.1:0\"\nproviders:\n{}{}{}{}{}routes: []\n",
        provider("set", r#"{"kid":"SECRET-5"}"#),
        provider("ops", r#"{"keys":[{"kty":"RSA","key_ops":["SECRET-6"]}]}"#),
        provider("kty", r#"{"keys":[{"kty":"SECRET-1"}]}"#),
        provider(
            "crv",
            r#"{"keys":[{"kty":"EC","crv":"SECRET-2"},{"kty":"x\"SECRET-3"}]}"#
        ),
        provider("use", r#"{"keys":[{"kty":"RSA","use":"SECRET-4"}]}"#),
    );
    let got = errors(&yaml);
    assert_eq!(got.len(), 5, "{got:#?}");
    let all = got.join("\n");
    assert!(!all.contains("SECRET"), "{all}");
    // What is wrong is still said, in the gateway's own words.
    assert!(
        all.contains("expected an object with a keys member that is a list"),
        "{all}"
    );
    assert!(all.contains("key_ops does not include verify"), "{all}");
    assert!(all.contains("kty \"...\" is not supported"), "{all}");
    assert!(all.contains("EC curve \"...\" is not supported"), "{all}");
    assert!(all.contains("use is \"...\", not sig"), "{all}");
}
