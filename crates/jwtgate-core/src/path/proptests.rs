//! Property tests: the trie and the compiled rules against a naive linear
//! scan, and the invariants of `normalize` on inputs dense in `/`, `.` and
//! escapes.

use std::borrow::Cow;
use std::cmp::Reverse;

use proptest::prelude::*;

use super::normalize::normalize_slow;
use super::*;

/// Tiny alphabets so that random patterns and paths collide often.
fn pattern_text() -> impl Strategy<Value = String> {
    "/[ab/]{0,4}\\*?"
}

fn path_text() -> impl Strategy<Value = String> {
    "/?[ab/]{0,6}"
}

fn rule_method() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["GET", "HEAD", "POST", "DELETE", "ANY"])
}

fn request_method() -> impl Strategy<Value = Method> {
    prop::sample::select(vec![Method::Get, Method::Post, Method::Head, Method::Other])
}

fn parsed(text: &str) -> PathPattern {
    PathPattern::parse(text).expect("strategy only makes valid patterns")
}

/// The order `PathTrie::matches` promises, by scanning every pattern:
/// exact first, then longer prefixes, then insertion order.
fn model_matches(patterns: &[PathPattern], path: &str) -> Vec<usize> {
    let mut found: Vec<usize> = (0..patterns.len())
        .filter(|&i| patterns[i].matches(path))
        .collect();
    found.sort_by_key(|&i| {
        let p = &patterns[i];
        (p.is_prefix(), Reverse(p.as_str().len()), i)
    });
    found
}

/// The entry `PathRules::find_index` promises, by scanning every entry.
fn model_find(entries: &[RuleEntry], method: Method, path: &str) -> Option<usize> {
    (0..entries.len())
        .filter(|&i| entries[i].matches(method, path))
        .min_by_key(|&i| {
            let e = &entries[i];
            let specific = e.method != RuleMethod::Any;
            let own_spelling = !e.pattern.is_prefix() && e.pattern.as_str() == path;
            // Exact matches are all as long as the path (or its twin):
            // length only orders prefixes.
            let prefix_len = if e.pattern.is_prefix() {
                e.pattern.as_str().len()
            } else {
                0
            };
            (
                e.pattern.is_prefix(),
                !own_spelling,
                Reverse(prefix_len),
                !specific,
                i,
            )
        })
}

/// The compiled rules of `specs` (method, pattern) against a linear scan of
/// the entries, for each of `requests` (paths as matching sees them).
fn check_rules(
    specs: &[(&str, String)],
    requests: &[(Method, String)],
) -> Result<(), TestCaseError> {
    let entries: Vec<RuleEntry> = specs
        .iter()
        .map(|(m, p)| RuleEntry::parse(&format!("{m}_{p}")).expect("valid entry"))
        .collect();
    let rules = PathRules::compile(&entries);
    for (method, path) in requests {
        let want = model_find(&entries, *method, path);
        prop_assert_eq!(
            rules.find_index(*method, path),
            want,
            "{:?} {:?}",
            method,
            path
        );
        prop_assert_eq!(rules.find(*method, path), want.map(|i| &entries[i]));
        let first = (0..entries.len()).find(|&i| entries[i].matches(*method, path));
        prop_assert_eq!(
            rules.first_listed(*method, path),
            first,
            "{:?} {:?}",
            method,
            path
        );
    }
    Ok(())
}

fn check_trie(texts: &[String], paths: &[String]) -> Result<(), TestCaseError> {
    let patterns: Vec<PathPattern> = texts.iter().map(|t| parsed(t)).collect();
    let mut trie = PathTrie::new();
    for (i, p) in patterns.iter().enumerate() {
        trie.insert(p, i);
    }
    for path in paths {
        let got: Vec<usize> = trie.matches(path).copied().collect();
        prop_assert_eq!(&got, &model_matches(&patterns, path), "path {:?}", path);
        prop_assert_eq!(trie.first(path), got.first());
        prop_assert_eq!(trie.least(path), got.iter().min());
    }
    Ok(())
}

proptest! {
    #[test]
    fn trie_agrees_with_linear_scan(
        texts in prop::collection::vec(pattern_text(), 0..24),
        paths in prop::collection::vec(path_text(), 1..16),
    ) {
        check_trie(&texts, &paths)?;
    }

    /// Nodes with many children take the binary-search branch of the lookup.
    #[test]
    fn wide_trie_agrees_with_linear_scan(
        texts in prop::collection::vec("/[a-z0-9]{0,2}\\*?", 0..80),
        paths in prop::collection::vec("/[a-z0-9]{0,3}", 1..16),
    ) {
        check_trie(&texts, &paths)?;
    }

    #[test]
    fn rules_agree_with_linear_scan(
        specs in prop::collection::vec((rule_method(), pattern_text()), 0..24),
        requests in prop::collection::vec((request_method(), path_text()), 1..16),
    ) {
        check_rules(&specs, &requests)?;
    }

    /// The same with escapes that matching reads as characters, a `*` in
    /// either spelling, and their trailing-slash twins: the compiled rules
    /// and `RuleEntry::matches` agree on every request's match form.
    #[test]
    fn rules_agree_with_linear_scan_on_escapes(
        specs in prop::collection::vec(
            (rule_method(), "/(a|/|%2A|%2a|%7B|%7b|\\{|%20| ){0,4}\\*?"), 0..16),
        requests in prop::collection::vec(
            (request_method(), "/(a|/|%2A|\\*|%7B|%7b|\\{|%20){0,5}"), 1..16),
    ) {
        let requests: Vec<(Method, String)> = requests
            .iter()
            .filter_map(|(method, raw)| Some((*method, match_form(&normalize(raw).ok()?).into_owned())))
            .collect();
        check_rules(&specs, &requests)?;
    }

    /// Matching's form of a path is a fixed point, and every spelling of a
    /// path (each character raw or escaped, hex in either case) has the
    /// same one, as a pattern written in any of them.
    #[test]
    fn match_form_is_one_form_for_every_spelling(
        chars in prop::collection::vec(prop::sample::select(
            vec!['a', '{', '}', '[', ']', '|', ':', '@', '*', '~', ' ', '"', '<', '^', '\'', '=']), 1..8),
        spellings in prop::collection::vec(0u8..3, 8),
    ) {
        let spell = |shift: usize| -> String {
            let mut out = String::from("/");
            for (i, c) in chars.iter().enumerate() {
                let how = spellings.get((i + shift) % spellings.len()).copied().unwrap_or(0);
                // A pattern's raw `*` marks a prefix: escaped here.
                let raw_ok = !matches!(c, ' ' | '"' | '<' | '^' | '{' | '}' | '|' | '[' | ']' | '*');
                match how {
                    0 if raw_ok => out.push(*c),
                    1 => out.push_str(&format!("%{:02x}", u32::from(*c))),
                    _ => out.push_str(&format!("%{:02X}", u32::from(*c))),
                }
            }
            out
        };
        let (one, other) = (spell(0), spell(1));
        let forms: Vec<String> = [&one, &other]
            .iter()
            .map(|raw| match_form(&normalize(raw).expect("valid")).into_owned())
            .collect();
        prop_assert_eq!(&forms[0], &forms[1], "{:?} {:?}", one, other);
        prop_assert_eq!(match_form(&forms[0]).into_owned(), forms[0].clone());
        let pattern = PathPattern::parse(&one).expect("valid pattern");
        prop_assert!(pattern.matches(&forms[1]), "{:?} vs {:?}", one, other);
    }

    #[test]
    fn rule_entry_display_round_trips((m, p) in (rule_method(), pattern_text())) {
        let text = format!("{m}_{p}");
        let entry = RuleEntry::parse(&text).expect("valid entry");
        prop_assert_eq!(entry.to_string(), text);
    }

    #[test]
    fn normalize_output_is_normal(raw in "/?[/.%25eEfF5cCa0b2x;3B]{0,24}") {
        if let Ok(once) = normalize(&raw) {
            prop_assert!(once.starts_with('/'));
            prop_assert!(!once.contains("//"), "{:?} -> {:?}", raw, once);
            let dot_segment = once.split('/').any(|s| s == "." || s == "..");
            prop_assert!(!dot_segment, "{:?} -> {:?}", raw, once);
            // Idempotent, and recognised as normal by the fast path.
            let twice = normalize(&once);
            prop_assert!(matches!(twice, Ok(Cow::Borrowed(_))), "{:?} -> {:?}", once, twice);
        }
    }

    #[test]
    fn fast_path_agrees_with_slow_path(raw in "/?[/.%25eEfF5cCa0b2x;3B\\\\]{0,24}") {
        let fast = normalize(&raw).map(Cow::into_owned);
        prop_assert_eq!(fast, normalize_slow(&raw));
    }

    #[test]
    fn encoded_slash_is_always_refused(
        head in "/[/.a%0-9]{0,8}",
        escape in prop::sample::select(vec!["%2f", "%2F", "%5c", "%5C", "%00"]),
        tail in "[/.a]{0,8}",
    ) {
        let raw = format!("{head}{escape}{tail}");
        prop_assert!(normalize(&raw).is_err(), "{:?}", raw);
    }

    #[test]
    fn normalize_never_panics(raw in any::<String>()) {
        let _ = normalize(&raw);
        let _ = normalize(&format!("/{raw}"));
    }

    #[test]
    fn normalize_never_panics_on_escapes(raw in "/[%0-9a-fA-F/.\\\\\\x00-\\x1f]{0,16}") {
        let _ = normalize(&raw);
    }
}
