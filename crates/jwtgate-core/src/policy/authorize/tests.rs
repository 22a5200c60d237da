use proptest::prelude::*;
use serde_json::json;

use super::*;

fn rule(index: usize, matches: &[&str]) -> AuthorizeRule {
    AuthorizeRule {
        index,
        matches: matches
            .iter()
            .map(|m| RuleEntry::parse(m).expect("entry"))
            .collect(),
        scopes: Vec::new(),
        any_of: Vec::new(),
        all_of: Vec::new(),
    }
}

fn path(s: &str) -> ClaimPath {
    ClaimPath::parse(s).expect("path")
}

fn claims(v: Value) -> Claims {
    let Value::Object(m) = v else { unreachable!() };
    Claims::new(m)
}

/// The Keycloak-style example of the README.
fn keycloak() -> Authorization {
    let mut write = rule(1, &["POST_/v1/orders*", "DELETE_/v1/orders*"]);
    write.scopes = vec!["orders:write".into()];
    write.any_of = vec![(
        path("realm_access.roles"),
        vec!["admin".into(), "clerk".into()],
    )];
    write.all_of = vec![(path("tenant"), vec!["acme".into()])];
    let mut read = rule(2, &["GET_/v1/orders*"]);
    read.scopes = vec!["orders:read".into()];
    Authorization::new(
        vec![rule(0, &["GET_/v1/orders/health"]), write, read],
        false,
    )
}

#[test]
fn the_first_rule_whose_match_fits_applies() {
    let a = keycloak();
    let c = claims(json!({
        "scope": "openid orders:write",
        "scp": ["orders:read"],
        "realm_access": {"roles": ["clerk"]},
        "tenant": "acme"
    }));
    assert!(a.decide(Method::Post, "/v1/orders", Some(&c)).is_allowed());
    assert!(a
        .decide(Method::Delete, "/v1/orders/7", Some(&c))
        .is_allowed());
    // scp counts as scope.
    assert!(a.decide(Method::Get, "/v1/orders/7", Some(&c)).is_allowed());
    // GET covers HEAD.
    assert!(a
        .decide(Method::Head, "/v1/orders/7", Some(&c))
        .is_allowed());
    // The exception before the stricter rule: no claims needed.
    assert_eq!(
        a.decide(Method::Get, "/v1/orders/health", None),
        Decision::Allow {
            rule: a.rules().first()
        }
    );
    // No rule: authorize_default deny.
    let d = a.decide(Method::Put, "/v1/orders", Some(&c));
    assert_eq!(
        d,
        Decision::Deny {
            rule: None,
            missing: Missing::NoRule
        }
    );
    assert_eq!(
        d.to_string(),
        "denied by authorize_default: no rule matches and authorize_default is deny"
    );
}

#[test]
fn each_condition_names_what_is_missing() {
    let a = keycloak();
    let base = json!({
        "scope": "orders:write",
        "realm_access": {"roles": ["clerk"]},
        "tenant": "acme"
    });
    let deny = |c: Value| {
        a.decide(Method::Post, "/v1/orders", Some(&claims(c)))
            .to_string()
    };
    let mut no_scope = base.clone();
    no_scope["scope"] = json!("orders:writer orders");
    assert_eq!(
        deny(no_scope),
        "denied by authorize[1]: scope \"orders:write\" missing"
    );
    let mut no_role = base.clone();
    no_role["realm_access"]["roles"] = json!(["viewer", 1, null, ["admin"]]);
    assert_eq!(
        deny(no_role),
        "denied by authorize[1]: claim realm_access.roles holds none of [\"admin\", \"clerk\"]"
    );
    let mut wrong_tenant = base.clone();
    wrong_tenant["tenant"] = json!(["acme-2"]);
    assert_eq!(
        deny(wrong_tenant),
        "denied by authorize[1]: claim tenant does not hold \"acme\""
    );
    // Anonymous: no claims at all.
    assert_eq!(
        a.decide(Method::Post, "/v1/orders", None).to_string(),
        "denied by authorize[1]: scope \"orders:write\" missing"
    );
    assert!(a
        .decide(Method::Post, "/v1/orders", Some(&claims(base)))
        .is_allowed());
}

#[test]
fn claim_values_of_every_type() {
    let mut r = rule(0, &["ANY_/*"]);
    r.any_of = vec![(path("roles"), vec!["admin".into()])];
    r.all_of = vec![(path("groups"), vec!["a".into(), "b".into()])];
    let a = Authorization::new(vec![r], true);
    let ok = |c: Value| a.decide(Method::Get, "/x", Some(&claims(c))).is_allowed();
    assert!(ok(json!({"roles": "admin", "groups": ["a", "b", "c"]})));
    assert!(ok(json!({"roles": ["x", "admin"], "groups": ["b", "a"]})));
    for bad in [
        json!({"roles": "admin", "groups": ["a"]}),
        json!({"roles": "admin", "groups": "a b"}),
        json!({"roles": "administrator", "groups": ["a", "b"]}),
        json!({"roles": "ADMIN", "groups": ["a", "b"]}),
        json!({"roles": 1, "groups": ["a", "b"]}),
        json!({"roles": {"admin": true}, "groups": ["a", "b"]}),
        json!({"roles": null, "groups": ["a", "b"]}),
        json!({"roles": [["admin"]], "groups": ["a", "b"]}),
        json!({"groups": ["a", "b"]}),
    ] {
        assert!(!ok(bad.clone()), "{bad}");
    }
    // scope of another type matches nothing.
    let mut s = rule(0, &["ANY_/*"]);
    s.scopes = vec!["x".into()];
    let a = Authorization::new(vec![s], true);
    for c in [
        json!({"scope": [["x"]]}),
        json!({"scope": ["x y"]}),
        json!({"scope": [1, "y"]}),
        json!({"scope": 1}),
        json!({"scp": {"x": 1}}),
    ] {
        assert!(
            !a.decide(Method::Get, "/", Some(&claims(c.clone())))
                .is_allowed(),
            "{c}"
        );
    }
    // A string split on spaces, an array of strings by its members, for
    // `scope` (PingFederate and Spring Authorization Server send an array)
    // as for `scp`.
    for c in [
        json!({"scp": "y x"}),
        json!({"scp": ["y", "x"]}),
        json!({"scope": "y x"}),
        json!({"scope": ["y", "x"]}),
        json!({"scope": [1, "x"]}),
    ] {
        assert!(
            a.decide(Method::Get, "/", Some(&claims(c.clone())))
                .is_allowed(),
            "{c}"
        );
    }
}

#[test]
fn a_remembered_verdict_answers_only_for_its_own_rule() {
    // One payload, as the verified-token cache shares it between requests.
    let c = claims(json!({"scope": "orders:read", "realm_access": {"roles": ["clerk"]}}));
    let mut lenient = rule(0, &["GET_/v1/orders*"]);
    lenient.scopes = vec!["orders:read".into()];
    let a = Authorization::new(vec![lenient], false);
    assert!(a.decide(Method::Get, "/v1/orders", Some(&c)).is_allowed());
    assert!(a.decide(Method::Get, "/v1/orders/7", Some(&c)).is_allowed());

    // The same position in another list (another route, or the next
    // config version): the verdict on `a`'s rule does not carry over.
    let mut strict = rule(0, &["GET_/v1/orders*"]);
    strict.scopes = vec!["orders:read".into()];
    strict.any_of = vec![(path("realm_access.roles"), vec!["admin".into()])];
    let b = Authorization::new(vec![strict], false);
    let d = b.decide(Method::Get, "/v1/orders", Some(&c));
    assert!(!d.is_allowed());
    assert!(d.to_string().contains("realm_access.roles"), "{d}");
    // Taking turns changes nothing: `a` still allows, `b` still denies.
    assert!(a.decide(Method::Get, "/v1/orders", Some(&c)).is_allowed());
    assert!(!b.decide(Method::Get, "/v1/orders", Some(&c)).is_allowed());
    // A clone has a stamp of its own, and the same verdicts.
    let a2 = a.clone();
    assert!(a2.decide(Method::Get, "/v1/orders", Some(&c)).is_allowed());
    assert!(!b
        .clone()
        .decide(Method::Get, "/v1/orders", Some(&c))
        .is_allowed());

    // Eight rules share four memo slots: whatever evicts what, each rule
    // gives its own verdict every time, and a denial keeps its reason.
    let rules: Vec<AuthorizeRule> = (0..8)
        .map(|i| {
            let mut r = rule(i, &[&format!("GET_/r{i}")]);
            r.scopes = vec![if i % 2 == 0 {
                "orders:read"
            } else {
                "orders:write"
            }
            .into()];
            r
        })
        .collect();
    let slots = Authorization::new(rules, false);
    for round in 0..3 {
        for i in (0..8).map(|i| (i + round * 3) % 8) {
            let d = slots.decide(Method::Get, &format!("/r{i}"), Some(&c));
            if i % 2 == 0 {
                assert!(d.is_allowed(), "rule {i}: {d}");
            } else {
                assert_eq!(
                    d.to_string(),
                    format!("denied by authorize[{i}]: scope \"orders:write\" missing")
                );
            }
        }
    }
}

// A naive model of the rule choice: the first rule, in list order, one of
// whose entries matches on its own.
fn model(rules: &[AuthorizeRule], method: Method, path: &str) -> Option<usize> {
    rules
        .iter()
        .position(|r| r.matches.iter().any(|e| e.matches(method, path)))
}

fn entry() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["GET", "HEAD", "POST", "ANY"]),
        "/[ab/]{0,4}\\*?",
    )
        .prop_map(|(m, p)| format!("{m}_{p}"))
}

proptest! {
    #[test]
    fn rule_choice_agrees_with_a_linear_scan(
        specs in prop::collection::vec(prop::collection::vec(entry(), 1..4), 0..8),
        requests in prop::collection::vec(
            (prop::sample::select(vec![Method::Get, Method::Head, Method::Post, Method::Other]), "/[ab/]{0,6}"),
            1..12,
        ),
    ) {
        let rules: Vec<AuthorizeRule> = specs
            .iter()
            .enumerate()
            .map(|(i, ms)| {
                let ms: Vec<&str> = ms.iter().map(String::as_str).collect();
                rule(i, &ms)
            })
            .collect();
        let a = Authorization::new(rules.clone(), true);
        for (method, path) in &requests {
            prop_assert_eq!(
                a.rule_for(*method, path).map(|r| r.index),
                model(&rules, *method, path),
                "{:?} {:?}", method, path
            );
        }
    }
}

proptest! {
    // Every decision on a payload shared across requests (as the
    // verified-token cache shares it) equals the decision on a fresh copy,
    // whatever the order of requests and lists.
    #[test]
    fn remembered_verdicts_agree_with_fresh_checks(
        specs in prop::collection::vec(
            (entry(), prop::sample::subsequence(vec!["a", "b", "c"], 0..3)),
            1..10,
        ),
        held in prop::sample::subsequence(vec!["a", "b", "c"], 0..3),
        requests in prop::collection::vec(
            (0..2usize, prop::sample::select(vec![Method::Get, Method::Head, Method::Post]), "/[ab/]{0,6}"),
            1..24,
        ),
    ) {
        let lists: Vec<Authorization> = (0..2)
            .map(|shift| {
                let rules = specs
                    .iter()
                    .enumerate()
                    .map(|(i, (m, scopes))| {
                        let mut r = rule(i, &[m.as_str()]);
                        // The second list wants one more scope per rule.
                        r.scopes = scopes.iter().map(|s| (*s).to_owned()).collect();
                        if shift == 1 {
                            r.scopes.push("c".into());
                        }
                        r
                    })
                    .collect();
                Authorization::new(rules, shift == 0)
            })
            .collect();
        let payload = json!({"scope": held.join(" ")});
        let shared = claims(payload.clone());
        for (list, method, path) in &requests {
            let a = &lists[*list];
            let fresh = claims(payload.clone());
            prop_assert_eq!(
                a.decide(*method, path, Some(&shared)).to_string(),
                a.decide(*method, path, Some(&fresh)).to_string(),
                "list {} {:?} {:?}", list, method, path
            );
        }
    }
}
