//! `METHOD_PATH` rule entries (SPEC §3.3) and [`PathRules`], a list of them
//! compiled into one [`PathTrie`] per method so that finding the entry for a
//! request costs the same with ten entries or ten thousand.

use std::fmt;
use std::str::FromStr;

use super::trie::{PathPattern, PathTrie, PatternError};

/// The method of a request. HTTP methods are case-sensitive, so `get` is
/// [`Method::Other`], not [`Method::Get`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
    Head,
    Options,
    Other,
}

impl Method {
    /// Every method a request can have, as rules see it.
    pub const ALL: [Method; 8] = [
        Method::Get,
        Method::Post,
        Method::Put,
        Method::Patch,
        Method::Delete,
        Method::Head,
        Method::Options,
        Method::Other,
    ];

    pub fn from_bytes(method: &[u8]) -> Method {
        match method {
            b"GET" => Method::Get,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"PATCH" => Method::Patch,
            b"DELETE" => Method::Delete,
            b"HEAD" => Method::Head,
            b"OPTIONS" => Method::Options,
            _ => Method::Other,
        }
    }

    /// True for a method that is not exactly a known one but is one in
    /// another case (`get`, `Post`): frameworks that upper-case methods
    /// would route it as the known method while the rules did not see it
    /// as one, so the gateway refuses it (SPEC §3.11).
    pub fn is_case_variant(method: &[u8]) -> bool {
        const KNOWN: [&[u8]; 9] = [
            b"GET", b"POST", b"PUT", b"PATCH", b"DELETE", b"HEAD", b"OPTIONS", b"CONNECT", b"TRACE",
        ];
        KNOWN
            .iter()
            .any(|k| k.eq_ignore_ascii_case(method) && *k != method)
    }

    /// Position of this method's trie in [`PathRules`]; `Other` has none.
    fn trie_index(self) -> Option<usize> {
        match self {
            Method::Get => Some(0),
            Method::Post => Some(1),
            Method::Put => Some(2),
            Method::Patch => Some(3),
            Method::Delete => Some(4),
            Method::Head => Some(5),
            Method::Options => Some(6),
            Method::Other => None,
        }
    }
}

const CONCRETE_METHODS: usize = 7;

/// The method part of a rule entry: one concrete method, or `ANY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleMethod {
    Get,
    Post,
    Put,
    Patch,
    Delete,
    Head,
    Options,
    Any,
}

impl RuleMethod {
    /// Parses an upper-case method name; `get` is refused with a message
    /// saying it must be upper-case.
    pub fn parse(s: &str) -> Result<RuleMethod, RuleError> {
        match RuleMethod::from_exact(s) {
            Some(method) => Ok(method),
            None if RuleMethod::from_exact(&s.to_ascii_uppercase()).is_some() => {
                Err(RuleError::LowercaseMethod(s.to_owned()))
            }
            None => Err(RuleError::UnknownMethod(s.to_owned())),
        }
    }

    fn from_exact(s: &str) -> Option<RuleMethod> {
        Some(match s {
            "GET" => RuleMethod::Get,
            "POST" => RuleMethod::Post,
            "PUT" => RuleMethod::Put,
            "PATCH" => RuleMethod::Patch,
            "DELETE" => RuleMethod::Delete,
            "HEAD" => RuleMethod::Head,
            "OPTIONS" => RuleMethod::Options,
            "ANY" => RuleMethod::Any,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RuleMethod::Get => "GET",
            RuleMethod::Post => "POST",
            RuleMethod::Put => "PUT",
            RuleMethod::Patch => "PATCH",
            RuleMethod::Delete => "DELETE",
            RuleMethod::Head => "HEAD",
            RuleMethod::Options => "OPTIONS",
            RuleMethod::Any => "ANY",
        }
    }

    /// Whether a request with `method` is covered by this rule method. A
    /// `GET` rule also covers `HEAD` (SPEC §3.11): frameworks answer `HEAD`
    /// with their `GET` handler.
    pub fn covers(self, method: Method) -> bool {
        self.concrete() == Some(method)
            || self == RuleMethod::Any
            || (self == RuleMethod::Get && method == Method::Head)
    }

    fn concrete(self) -> Option<Method> {
        Some(match self {
            RuleMethod::Get => Method::Get,
            RuleMethod::Post => Method::Post,
            RuleMethod::Put => Method::Put,
            RuleMethod::Patch => Method::Patch,
            RuleMethod::Delete => Method::Delete,
            RuleMethod::Head => Method::Head,
            RuleMethod::Options => Method::Options,
            RuleMethod::Any => return None,
        })
    }
}

impl fmt::Display for RuleMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a `METHOD_PATH` entry was refused. The messages are shown to the
/// operator after the entry's location, e.g.
/// `routes[1].jwt.required_paths[0]: unknown method "FETCH"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("unknown method {0:?} (expected GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS or ANY)")]
    UnknownMethod(String),
    #[error("method must be uppercase: {0:?}")]
    LowercaseMethod(String),
    #[error("missing \"_\" between method and path (expected METHOD_PATH, e.g. \"GET_/v1/*\")")]
    MissingSeparator,
    #[error("missing method before the path (expected METHOD_PATH, e.g. \"GET_/v1/*\")")]
    MissingMethod,
    #[error(transparent)]
    Path(#[from] PatternError),
}

/// One `METHOD_PATH` entry, e.g. `GET_/v1/apis*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RuleEntry {
    pub method: RuleMethod,
    pub pattern: PathPattern,
}

impl RuleEntry {
    /// Splits at the first `_` (paths may contain `_`, methods never do).
    pub fn parse(s: &str) -> Result<RuleEntry, RuleError> {
        // "/v1/x" or "/v1_x": the method was forgotten, whatever follows.
        if s.starts_with('/') {
            return Err(RuleError::MissingMethod);
        }
        let (method, path) = s.split_once('_').ok_or(RuleError::MissingSeparator)?;
        if method.is_empty() {
            return Err(RuleError::MissingMethod);
        }
        // "GET/v1" reads as a missing separator, not an unknown method.
        if let Some((before_slash, _)) = method.split_once('/') {
            if RuleMethod::parse(before_slash).is_ok() {
                return Err(RuleError::MissingSeparator);
            }
        }
        Ok(RuleEntry {
            method: RuleMethod::parse(method)?,
            pattern: PathPattern::parse(path)?,
        })
    }

    /// Whether a request matches this single entry. An exact entry also
    /// matches its path with or without one trailing slash: frameworks route
    /// `/admin/` to `/admin`'s handler, and a rule must not let one of them
    /// through unchecked.
    pub fn matches(&self, method: Method, path: &str) -> bool {
        self.method.covers(method)
            && (self.pattern.matches(path)
                || (!self.pattern.is_prefix() && slash_twins(self.pattern.as_str(), path)))
    }
}

impl RuleEntry {
    /// Whether some request matches both entries (for `check`'s warnings).
    pub fn overlaps(&self, other: &RuleEntry) -> bool {
        Method::ALL
            .iter()
            .any(|&m| self.method.covers(m) && other.method.covers(m))
            && paths_overlap(&self.pattern, &other.pattern)
    }

    /// Whether every request this entry matches, `other` matches too.
    pub fn within(&self, other: &RuleEntry) -> bool {
        Method::ALL
            .iter()
            .all(|&m| !self.method.covers(m) || other.method.covers(m))
            && path_within(&self.pattern, &other.pattern)
    }
}

/// The paths an exact pattern matches: itself and its trailing-slash twin.
fn exact_paths(p: &PathPattern) -> impl Iterator<Item = String> + '_ {
    let text = p.as_str();
    let twin = match text.strip_suffix('/') {
        _ if text == "/" => None,
        Some(without) => Some(without.to_owned()),
        None => Some(format!("{text}/")),
    };
    std::iter::once(text.to_owned()).chain(twin)
}

/// Whether pattern `p` matches `path` (an exact one with its twin).
fn pattern_takes(p: &PathPattern, path: &str) -> bool {
    p.matches(path) || (!p.is_prefix() && slash_twins(p.as_str(), path))
}

fn paths_overlap(a: &PathPattern, b: &PathPattern) -> bool {
    match (a.is_prefix(), b.is_prefix()) {
        (true, true) => a.as_str().starts_with(b.as_str()) || b.as_str().starts_with(a.as_str()),
        (false, _) => exact_paths(a).any(|path| pattern_takes(b, &path)),
        (true, false) => exact_paths(b).any(|path| pattern_takes(a, &path)),
    }
}

fn path_within(a: &PathPattern, b: &PathPattern) -> bool {
    if a.is_prefix() {
        b.is_prefix() && a.as_str().starts_with(b.as_str())
    } else {
        exact_paths(a).all(|path| pattern_takes(b, &path))
    }
}

impl fmt::Display for RuleEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.method, self.pattern)
    }
}

impl FromStr for RuleEntry {
    type Err = RuleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RuleEntry::parse(s)
    }
}

/// A compiled list of rule entries. Values in the tries are indices into
/// `entries`, so [`PathRules::find_index`] can report which entry applied.
#[derive(Debug, Clone, Default)]
pub struct PathRules {
    entries: Vec<RuleEntry>,
    by_method: [PathTrie<usize>; CONCRETE_METHODS],
    any: PathTrie<usize>,
}

/// True when `path` is the trailing-slash twin of the exact pattern text
/// `exact`: `/a/` for `/a`, `/a` for `/a/`; `/` has none. The same rule as
/// [`PathPattern::slash_twin`], without allocating.
fn slash_twins(exact: &str, path: &str) -> bool {
    if exact == "/" {
        return false;
    }
    match exact.strip_suffix('/') {
        Some(without) => path == without,
        None => path.len() == exact.len() + 1 && path.ends_with('/') && path.starts_with(exact),
    }
}

impl PathRules {
    pub fn compile(entries: &[RuleEntry]) -> PathRules {
        let mut rules = PathRules {
            entries: entries.to_vec(),
            ..PathRules::default()
        };
        // Entries as written first, then their trailing-slash twins, so that
        // within one trie node a path's own spelling beats a twin.
        for twins in [false, true] {
            for (index, entry) in entries.iter().enumerate() {
                let pattern = if twins {
                    match entry.pattern.slash_twin() {
                        Some(p) => p,
                        None => continue,
                    }
                } else {
                    entry.pattern.clone()
                };
                rules.insert(entry.method, &pattern, index);
            }
        }
        rules
    }

    fn insert(&mut self, method: RuleMethod, pattern: &PathPattern, index: usize) {
        let tries: &[Option<usize>] = match method {
            RuleMethod::Any => &[None],
            // A GET entry covers HEAD too.
            RuleMethod::Get => &[Method::Get.trie_index(), Method::Head.trie_index()],
            m => &[m.concrete().and_then(Method::trie_index)],
        };
        for &slot in tries {
            let trie = match slot {
                Some(i) => self.by_method.get_mut(i),
                None => Some(&mut self.any),
            };
            if let Some(trie) = trie {
                trie.insert(pattern, index);
            }
        }
    }

    /// The most specific entry matching the request, if any.
    pub fn find(&self, method: Method, path: &str) -> Option<&RuleEntry> {
        self.entries.get(self.find_index(method, path)?)
    }

    /// Like [`PathRules::find`], but gives the entry's position in the list
    /// it was compiled from (for messages such as `required_paths[3]`).
    ///
    /// Specificity: exact beats prefix, a longer prefix beats a shorter one;
    /// on a tie the method-specific entry beats the `ANY` one, and among equal
    /// entries the first listed wins.
    pub fn find_index(&self, method: Method, path: &str) -> Option<usize> {
        let specific = method
            .trie_index()
            .and_then(|i| self.by_method.get(i))
            .and_then(|trie| trie.first(path).copied());
        let any = self.any.first(path).copied();
        match (specific, any) {
            (Some(s), Some(a)) if self.specificity(a, path) > self.specificity(s, path) => Some(a),
            (Some(s), _) => Some(s),
            (None, a) => a,
        }
    }

    /// Orders matching entries: exact, then the path's own spelling before
    /// a trailing-slash twin, then (prefixes) the length of the pattern.
    fn specificity(&self, index: usize, path: &str) -> (bool, bool, usize) {
        self.entries.get(index).map_or((false, false, 0), |entry| {
            let exact = !entry.pattern.is_prefix();
            let prefix_len = if exact {
                0
            } else {
                entry.pattern.as_str().len()
            };
            (exact, exact && entry.pattern.as_str() == path, prefix_len)
        })
    }

    /// The first entry in list order matching the request, whatever its
    /// specificity (where the first rule listed wins, as in `authorize`).
    /// Does not allocate; an empty trie is not walked (most rule sets leave
    /// ANY or most methods empty).
    pub fn first_listed(&self, method: Method, path: &str) -> Option<usize> {
        let specific = method
            .trie_index()
            .and_then(|i| self.by_method.get(i))
            .filter(|trie| !trie.is_empty())
            .and_then(|trie| trie.least(path).copied());
        let any = if self.any.is_empty() {
            None
        } else {
            self.any.least(path).copied()
        };
        match (specific, any) {
            (Some(s), Some(a)) => Some(s.min(a)),
            (s, a) => s.or(a),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entries(&self) -> &[RuleEntry] {
        &self.entries
    }
}
