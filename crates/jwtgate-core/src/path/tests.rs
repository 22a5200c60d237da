//! Unit tests: the SPEC §3.3 examples, pattern and rule-entry errors, and
//! hand-picked trie and rule orderings.

use std::borrow::Cow;

use super::*;

fn norm(raw: &str) -> Result<String, &'static str> {
    normalize(raw).map(Cow::into_owned).map_err(|e| e.reason)
}

#[test]
fn normalize_spec_examples() {
    let ok = [
        ("/public/../admin", "/admin"),
        ("/public/%2e%2e/admin", "/admin"),
        ("/public/.%2E/admin", "/admin"),
        ("//admin", "/admin"),
        ("/admin/.", "/admin/"),
        ("/a/b/..", "/a/"),
        ("/%61dmin", "/admin"),
        ("/a%20b", "/a%20b"),
        ("/a%7e", "/a~"),
        ("/a%3a", "/a%3A"),
        ("/", "/"),
        ("/a/..", "/"),
        ("/a//b///c/", "/a/b/c/"),
        ("/a/./b/../c", "/a/c"),
        ("/a/%2E/b", "/a/b"),
        ("/..a/.b/a..", "/..a/.b/a.."),
        ("/%41%2d%5F%7E%30", "/A-_~0"),
        ("/caf\u{e9}", "/caf\u{e9}"),
    ];
    for (raw, want) in ok {
        assert_eq!(norm(raw), Ok(want.to_owned()), "{raw}");
    }
    let refused = [
        ("/public/..%2Fadmin", "encoded slash"),
        ("/public/..%2fadmin", "encoded slash"),
        ("/admin%00", "encoded NUL byte"),
        ("/../admin", "climbs above root"),
        ("/a/../../admin", "climbs above root"),
        ("/%2e%2e", "climbs above root"),
        ("/public/..%5Cadmin", "encoded backslash"),
        ("/public/..%5cadmin", "encoded backslash"),
        ("/public\\admin", "backslash"),
        ("/a%zz", "invalid percent escape"),
        ("/a%4", "invalid percent escape"),
        ("/a%", "invalid percent escape"),
        ("/a%%41", "invalid percent escape"),
        ("/a\nb", "control character"),
        ("/a\u{7f}", "control character"),
        ("/a\0", "control character"),
        ("admin", "does not start with \"/\""),
        ("", "does not start with \"/\""),
    ];
    for (raw, reason) in refused {
        assert_eq!(norm(raw), Err(reason), "{raw:?}");
    }
}

#[test]
fn regression_path_dotdot_bypass() {
    // A rule on /admin must see the path the upstream will resolve.
    for raw in [
        "/public/../admin",
        "/public/%2e%2e/admin",
        "/public/.%2e/admin",
    ] {
        assert_eq!(norm(raw).as_deref(), Ok("/admin"), "{raw}");
    }
}

#[test]
fn regression_dot_segment_parameter_bypass() {
    // Tomcat, Jetty and Spring resolve `..;` as `..`: /open/..;/admin
    // reaches /admin upstream while the gateway saw /open/..;/admin.
    for raw in [
        "/open/..;/admin",
        "/open/..;jsessionid=x/admin",
        "/open/.;/admin",
        "/open/.;x=1",
        "/open/..%3b/admin",
        "/open/..%3B/admin",
        "/open/%2e%2e;/admin",
        "/open/%2E.%3b/admin",
        "/open/.%2e;a/admin",
        "/..;",
    ] {
        assert_eq!(
            norm(raw),
            Err("dot-segment with a \";\" parameter"),
            "{raw}"
        );
    }
    // Dots that are not a whole segment before an escaped `;` are names.
    for (raw, want) in [("/a/.x%3Bb", "/a/.x%3Bb"), ("/a/...%3Bx", "/a/...%3Bx")] {
        assert_eq!(norm(raw), Ok(want.to_owned()), "{raw}");
    }
}

#[test]
fn regression_path_parameter_bypass() {
    // Tomcat, Jetty and Spring drop a segment's `;` parameters before they
    // look for the resource: /partial;x/admin is /partial/admin to them,
    // which a rule for /partial/admin* did not see. Any raw `;` is refused.
    for raw in [
        "/partial;x/admin",
        "/partial/admin;x",
        "/a/...;x",
        "/a/..b;x",
        "/a/b..;x",
        "/a/;..",
        "/a;",
        "/items;jsessionid=0123",
    ] {
        assert_eq!(norm(raw), Err("\";\" path parameter"), "{raw}");
    }
    // Escaped, it is data to them as to everyone: it stays.
    assert_eq!(norm("/a%3Bb/c").as_deref(), Ok("/a%3Bb/c"));
}

#[test]
fn normalize_borrows_when_nothing_changes() {
    for raw in ["/", "/admin", "/a/b/", "/a%20b", "/..a/b.", "/a/%3A"] {
        assert!(matches!(normalize(raw), Ok(Cow::Borrowed(_))), "{raw}");
    }
    for raw in ["/a%3a", "/%61", "//a", "/a/.", "/a/../b"] {
        assert!(matches!(normalize(raw), Ok(Cow::Owned(_))), "{raw}");
    }
}

#[test]
fn invalid_path_displays_reason() {
    let err = normalize("/../x").expect_err("climbs above root");
    assert_eq!(err.to_string(), "invalid request path: climbs above root");
}

#[test]
fn pattern_parse_and_display() {
    let exact = PathPattern::parse("/v1/x").expect("valid");
    assert!(!exact.is_prefix());
    assert_eq!(
        (exact.as_str(), exact.to_string()),
        ("/v1/x", "/v1/x".into())
    );
    let prefix = PathPattern::parse("/v1/apis*").expect("valid");
    assert!(prefix.is_prefix());
    assert_eq!(prefix.as_str(), "/v1/apis");
    assert_eq!(prefix.to_string(), "/v1/apis*");
    for path in ["/v1/apis", "/v1/apis/a", "/v1/apisx"] {
        assert!(prefix.matches(path), "{path}");
    }
    assert!(!prefix.matches("/v1/api"));
    assert!(!prefix.matches("/V1/apis"));
    let root = PathPattern::parse("/*").expect("valid");
    assert!(root.matches("/") && root.matches("/anything"));
}

#[test]
fn pattern_errors() {
    let cases = [
        ("", PatternError::Empty, "empty path"),
        (
            "v1",
            PatternError::NotAbsolute,
            "path must start with \"/\"",
        ),
        ("*", PatternError::NotAbsolute, "path must start with \"/\""),
        (
            "/v1/*/x",
            PatternError::MisplacedStar,
            "\"*\" is only allowed at the end of the path",
        ),
        (
            "/v1/**",
            PatternError::MisplacedStar,
            "\"*\" is only allowed at the end of the path",
        ),
        (
            "/v1;x/*",
            PatternError::Parameter,
            "\";\" can never match: a request path with a \";\" parameter is refused",
        ),
    ];
    for (text, err, message) in cases {
        assert_eq!(PathPattern::parse(text), Err(err), "{text}");
        assert_eq!(err.to_string(), message);
    }
}

const EMPTY_SEGMENT: &str = "an empty segment (\"//\": request paths have repeated slashes merged)";
const DOT_SEGMENT: &str = "a dot segment (\".\" or \"..\": request paths have them resolved)";

/// What no normalised request path holds loads (it did before), and is
/// said: such a pattern never matches.
#[test]
fn patterns_that_never_match_are_told() {
    for (text, what) in [
        ("/r/what?", "\"?\" (it starts the query)"),
        ("/r/c#1*", "\"#\" (it starts the fragment)"),
        ("/r/tab\t", "a control character"),
        ("/r/del\u{7f}", "a control character"),
        ("/a\\b", "a backslash"),
        ("/a%2fb*", "an escaped slash (%2F)"),
        ("/a%5Cb", "an escaped backslash (%5C)"),
        ("/a%00", "an escaped NUL (%00)"),
        ("/a%zz", "a \"%\" that is not an escape (%XX)"),
        ("/a%4", "a \"%\" that is not an escape (%XX)"),
        ("/a%zz*", "a \"%\" that is not an escape (%XX)"),
        ("/enc//double", EMPTY_SEGMENT),
        ("//x", EMPTY_SEGMENT),
        ("/v2//admin/*", EMPTY_SEGMENT),
        ("/a//*", EMPTY_SEGMENT),
        ("/enc/x/../dots", DOT_SEGMENT),
        ("/enc/./dot2*", DOT_SEGMENT),
        ("/enc/end/.", DOT_SEGMENT),
        ("/enc/end/..", DOT_SEGMENT),
        ("/.", DOT_SEGMENT),
        ("/a/%2e%2E/b", DOT_SEGMENT),
        ("/a/.%2e/*", DOT_SEGMENT),
    ] {
        let pattern = PathPattern::parse(text).expect(text);
        assert_eq!(pattern.never_matches(), Some(what), "{text}");
    }
    // A prefix may end inside an escape: it covers whole ones.
    for text in [
        "/a%2*",
        "/a%*",
        "/a%7*",
        "/r/tmpl/{id}*",
        "/report q1",
        "/x%2A",
        "/*",
        "/",
        "/a/",
        "/a/*",
        "/a/.*",
        "/a/..*",
        "/a/.well-known",
        "/a/..b/c.",
        "/a/...",
    ] {
        let pattern = PathPattern::parse(text).expect(text);
        assert_eq!(pattern.never_matches(), None, "{text}");
    }
    let partial = PathPattern::parse("/a%2*").expect("valid");
    assert!(partial.matches(&match_form("/a%25x")));
}

/// An escaped `*` in an exact entry is a character of the path, never the
/// prefix mark: the entry and its trailing-slash twin stay exact.
#[test]
fn an_escaped_star_is_no_prefix() {
    let rules = PathRules::compile(&[RuleEntry::parse("GET_/pub%2A/").expect("valid")]);
    for (path, listed) in [
        ("/pub*/", true),
        ("/pub%2A", true),
        ("/pub%2a/", true),
        ("/public/admin", false),
        ("/pubX", false),
        ("/pub", false),
    ] {
        let path = normalize(path).expect("valid");
        assert_eq!(
            rules
                .first_listed(Method::Get, &match_form(&path))
                .is_some(),
            listed,
            "{path}"
        );
    }
}

/// Every spelling a framework reads as the same path meets the pattern,
/// whichever spelling the pattern was written in (the escapes of printable
/// characters a path may not hold raw, and hex in either case).
#[test]
fn a_pattern_matches_every_spelling_of_its_characters() {
    let spellings: [(&str, &[&str]); 5] = [
        (
            "/r/tmpl/{id}",
            &["/r/tmpl/%7Bid%7D", "/r/tmpl/%7bid%7d", "/r/tmpl/{id}"],
        ),
        ("/r/list[0]", &["/r/list%5B0%5D", "/r/list[0]"]),
        ("/a/p|q", &["/a/p%7Cq", "/a/p|q"]),
        ("/r/report q1", &["/r/report%20q1"]),
        ("/r/pct%3fq", &["/r/pct%3Fq"]),
    ];
    for (written, requests) in spellings {
        for pattern_text in [
            written.to_owned(),
            written.replace('{', "%7b").replace(' ', "%20"),
        ] {
            let pattern = PathPattern::parse(&pattern_text).expect("valid");
            for request in requests {
                let path = normalize(request).expect("a valid request path");
                assert!(
                    pattern.matches(&match_form(&path)),
                    "{pattern_text} should match {request}"
                );
            }
        }
    }
    // Kept escapes stay apart from what they stand for.
    let pattern = PathPattern::parse("/r/pct%3Fq").expect("valid");
    assert!(!pattern.matches(&match_form("/r/pct?q")));
}

#[test]
fn rule_entry_parse_and_display() {
    for text in [
        "GET_/v1/apis*",
        "ANY_/",
        "POST_/v1/log_out",
        "OPTIONS_/*",
        "DELETE_/a_b_c*",
    ] {
        let entry = RuleEntry::parse(text).expect("valid");
        assert_eq!(entry.to_string(), text);
    }
    let entry = RuleEntry::parse("POST_/v1/log_out").expect("valid");
    assert_eq!(entry.method, RuleMethod::Post);
    assert_eq!(entry.pattern.as_str(), "/v1/log_out");
}

#[test]
fn rule_entry_errors() {
    let cases = [
        ("FETCH_/x", "unknown method \"FETCH\""),
        ("get_/x", "method must be uppercase: \"get\""),
        ("Any_/x", "method must be uppercase: \"Any\""),
        ("GET/x", "missing \"_\" between method and path"),
        ("GET/x_y", "missing \"_\" between method and path"),
        ("", "missing \"_\" between method and path"),
        ("/v1/x", "missing method before the path"),
        ("_/x", "missing method before the path"),
        ("GET_v1", "path must start with \"/\""),
        ("GET_/v1*/x", "\"*\" is only allowed at the end of the path"),
        ("GET_", "empty path"),
    ];
    for (text, message) in cases {
        let err = RuleEntry::parse(text).expect_err(text);
        assert!(err.to_string().starts_with(message), "{text}: {err}");
    }
}

#[test]
fn method_from_bytes_is_case_sensitive() {
    assert_eq!(Method::from_bytes(b"GET"), Method::Get);
    assert_eq!(Method::from_bytes(b"OPTIONS"), Method::Options);
    assert_eq!(Method::from_bytes(b"get"), Method::Other);
    assert_eq!(Method::from_bytes(b"TRACE"), Method::Other);
    assert_eq!(Method::from_bytes(b""), Method::Other);
}

fn pattern(text: &str) -> PathPattern {
    PathPattern::parse(text).expect("valid pattern")
}

#[test]
fn trie_yields_most_specific_first() {
    let mut trie = PathTrie::new();
    for (i, text) in [
        "/*",
        "/v1/*",
        "/v1/apis",
        "/v1/apis*",
        "/v1/apis",
        "/v1/a*",
        "/v2*",
    ]
    .into_iter()
    .enumerate()
    {
        trie.insert(&pattern(text), i);
    }
    let found: Vec<usize> = trie.matches("/v1/apis").copied().collect();
    assert_eq!(found, [2, 4, 3, 5, 1, 0]);
    assert_eq!(
        trie.matches("/v1/apisx").copied().collect::<Vec<_>>(),
        [3, 5, 1, 0]
    );
    assert_eq!(trie.matches("/v1").copied().collect::<Vec<_>>(), [0]);
    assert_eq!(trie.first("/v2"), Some(&6));
    assert_eq!(trie.first("nope"), None);
    assert_eq!(trie.len(), 7);
}

#[test]
fn trie_splits_labels() {
    // Inserting a shorter key after a longer one splits an existing label.
    let mut trie = PathTrie::new();
    trie.insert(&pattern("/abcdef"), "long");
    trie.insert(&pattern("/abc*"), "mid");
    trie.insert(&pattern("/abx"), "fork");
    assert_eq!(
        trie.matches("/abcdef").collect::<Vec<_>>(),
        [&"long", &"mid"]
    );
    assert_eq!(trie.matches("/abcd").collect::<Vec<_>>(), [&"mid"]);
    assert_eq!(trie.first("/abx"), Some(&"fork"));
    assert_eq!(trie.first("/ab"), None);
}

#[test]
fn rules_prefer_specific_then_method() {
    let entries: Vec<RuleEntry> = [
        "ANY_/v1/*",
        "GET_/v1/*",
        "ANY_/v1/apis*",
        "GET_/v1/apis",
        "ANY_/v1/apis",
    ]
    .into_iter()
    .map(|t| RuleEntry::parse(t).expect("valid"))
    .collect();
    let rules = PathRules::compile(&entries);
    let find = |m: Method, p: &str| rules.find(m, p).map(ToString::to_string);
    // Exact beats prefix; on an exact tie the method-specific entry wins.
    assert_eq!(
        find(Method::Get, "/v1/apis").as_deref(),
        Some("GET_/v1/apis")
    );
    assert_eq!(
        find(Method::Post, "/v1/apis").as_deref(),
        Some("ANY_/v1/apis")
    );
    // A longer ANY prefix beats a shorter GET prefix.
    assert_eq!(
        find(Method::Get, "/v1/apis/x").as_deref(),
        Some("ANY_/v1/apis*")
    );
    // Equal prefixes: GET wins over ANY.
    assert_eq!(find(Method::Get, "/v1/other").as_deref(), Some("GET_/v1/*"));
    assert_eq!(
        find(Method::Other, "/v1/other").as_deref(),
        Some("ANY_/v1/*")
    );
    assert_eq!(find(Method::Get, "/v2"), None);
    assert_eq!(rules.find_index(Method::Delete, "/v1/apis"), Some(4));
    assert_eq!(rules.entries().len(), 5);
    assert!(!rules.is_empty() && PathRules::compile(&[]).is_empty());
}

#[test]
fn rules_other_method_only_matches_any() {
    let entries = [RuleEntry::parse("GET_/x").expect("valid")];
    let rules = PathRules::compile(&entries);
    assert!(rules.find(Method::Get, "/x").is_some());
    assert!(rules.find(Method::Other, "/x").is_none());
    assert!(rules.find(Method::Post, "/x").is_none());
}

#[test]
fn regression_get_rule_does_not_cover_head() {
    // Frameworks answer HEAD with the GET handler: a GET_ entry covers it.
    let entries = [
        RuleEntry::parse("GET_/x").expect("valid"),
        RuleEntry::parse("HEAD_/y").expect("valid"),
    ];
    let rules = PathRules::compile(&entries);
    assert_eq!(rules.find_index(Method::Head, "/x"), Some(0));
    assert_eq!(rules.find_index(Method::Head, "/y"), Some(1));
    // ... but not the other way round.
    assert_eq!(rules.find_index(Method::Get, "/y"), None);
}

#[test]
fn regression_exact_rule_skipped_by_trailing_slash() {
    let entries = [
        RuleEntry::parse("GET_/admin").expect("valid"),
        RuleEntry::parse("POST_/v1/orders/").expect("valid"),
        RuleEntry::parse("ANY_/").expect("valid"),
    ];
    let rules = PathRules::compile(&entries);
    assert_eq!(rules.find_index(Method::Get, "/admin"), Some(0));
    assert_eq!(rules.find_index(Method::Get, "/admin/"), Some(0));
    assert_eq!(rules.find_index(Method::Post, "/v1/orders"), Some(1));
    assert_eq!(rules.find_index(Method::Post, "/v1/orders/"), Some(1));
    // Only one slash, and only at the end.
    assert_eq!(rules.find_index(Method::Get, "/admin/x"), None);
    assert_eq!(rules.find_index(Method::Get, "/admi"), None);
    // `/` has no twin.
    assert_eq!(rules.find_index(Method::Get, "/"), Some(2));
    // A path's own spelling beats a twin.
    let both = [
        RuleEntry::parse("GET_/a").expect("valid"),
        RuleEntry::parse("GET_/a/").expect("valid"),
    ];
    let rules = PathRules::compile(&both);
    assert_eq!(rules.find_index(Method::Get, "/a"), Some(0));
    assert_eq!(rules.find_index(Method::Get, "/a/"), Some(1));
}

#[test]
fn regression_lowercase_method_skips_rule() {
    for m in ["get", "Get", "pOST", "delete", "options", "head", "Connect"] {
        assert!(Method::is_case_variant(m.as_bytes()), "{m}");
    }
    for m in ["GET", "POST", "PURGE", "purge", "PROPFIND", ""] {
        assert!(!Method::is_case_variant(m.as_bytes()), "{m}");
    }
}

#[test]
fn entries_overlap_and_contain_as_requests_see_them() {
    let e = |s: &str| RuleEntry::parse(s).expect("entry");
    // Some request matches both.
    for (a, b) in [
        ("DELETE_/a/*", "ANY_/a/x"),
        ("ANY_/a/*", "GET_/a/b*"),
        ("GET_/a/b*", "ANY_/a*"),
        ("HEAD_/x", "GET_/x/"),
        ("GET_/x", "GET_/x"),
        ("POST_/x/", "ANY_/x*"),
    ] {
        assert!(e(a).overlaps(&e(b)), "{a} {b}");
        assert!(e(b).overlaps(&e(a)), "{b} {a}");
    }
    // None does.
    for (a, b) in [
        ("DELETE_/a/*", "GET_/a/admin*"),
        ("GET_/a/*", "GET_/b/*"),
        ("GET_/x", "GET_/x/y"),
        ("GET_/x", "GET_/xy*"),
        ("HEAD_/x", "POST_/x"),
    ] {
        assert!(!e(a).overlaps(&e(b)), "{a} {b}");
        assert!(!e(b).overlaps(&e(a)), "{b} {a}");
    }
    // Every request of the first, the second takes.
    for (a, b) in [
        ("GET_/a/b*", "ANY_/a/*"),
        ("HEAD_/x", "GET_/x"),
        ("GET_/x", "GET_/x/"),
        ("GET_/x", "GET_/x*"),
        ("DELETE_/a/x", "ANY_/a/*"),
    ] {
        assert!(e(a).within(&e(b)), "{a} within {b}");
    }
    for (a, b) in [
        ("ANY_/a/*", "GET_/a/*"),
        ("GET_/a/*", "GET_/a/b*"),
        ("GET_/x", "GET_/x/*"),
        ("GET_/a/*", "GET_/a/"),
        ("GET_/x", "HEAD_/x"),
    ] {
        assert!(!e(a).within(&e(b)), "{a} not within {b}");
    }
}
