//! Path patterns (exact, or prefix with a trailing `*`) and [`PathTrie`], a
//! radix tree that finds every pattern matching a path in one walk down the
//! path, whatever the number of patterns.

use std::fmt;
use std::str::FromStr;

/// Why a path pattern was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("empty path")]
    Empty,
    #[error("path must start with \"/\"")]
    NotAbsolute,
    #[error("\"*\" is only allowed at the end of the path")]
    MisplacedStar,
    #[error("\";\" can never match: a request path with a \";\" parameter is refused")]
    Parameter,
}

/// The path syntax shared by route `paths` and rule entries: exact (`/v1/x`),
/// or a prefix when it ends with `*` (`/v1/apis*` covers `/v1/apis`,
/// `/v1/apis/a` and `/v1/apisx`). Matching is byte-wise and case-sensitive.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PathPattern {
    /// The text without the trailing `*`.
    text: String,
    prefix: bool,
}

impl PathPattern {
    pub fn parse(s: &str) -> Result<PathPattern, PatternError> {
        if s.is_empty() {
            return Err(PatternError::Empty);
        }
        if !s.starts_with('/') {
            return Err(PatternError::NotAbsolute);
        }
        let (text, prefix) = match s.strip_suffix('*') {
            Some(text) => (text, true),
            None => (s, false),
        };
        if text.contains('*') {
            return Err(PatternError::MisplacedStar);
        }
        if text.contains(';') {
            return Err(PatternError::Parameter);
        }
        Ok(PathPattern {
            text: super::match_form(text).into_owned(),
            prefix,
        })
    }

    /// True when the pattern ended with `*`.
    pub fn is_prefix(&self) -> bool {
        self.prefix
    }

    /// The pattern text without its trailing `*`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// What in the pattern no normalised request path can hold, if
    /// anything: such a pattern never matches (`check` warns of it; an
    /// error would refuse, on upgrade, configs that loaded before). A
    /// prefix may end inside an escape (`/a%2*` covers `/a%25x`).
    pub fn never_matches(&self) -> Option<&'static str> {
        let end = if self.prefix {
            // An escape cut short at the end is a prefix of whole ones.
            match self.text.as_bytes() {
                [.., b'%'] => self.text.len() - 1,
                [.., b'%', h] if h.is_ascii_hexdigit() => self.text.len() - 2,
                _ => self.text.len(),
            }
        } else {
            self.text.len()
        };
        never_in_a_path(self.text.get(..end).unwrap_or(&self.text))
            .or_else(|| self.unnormal_segment())
    }

    /// A segment normalisation takes out of every request path: an empty
    /// one (`//`), merged, or `.` and `..`, resolved. A prefix's last
    /// segment is not whole yet (`/a/.*` covers `/a/.well-known`), nor is
    /// the empty one after a final `/` (the trailing slash paths keep).
    fn unnormal_segment(&self) -> Option<&'static str> {
        let mut segments = self.text.split('/').skip(1).peekable();
        while let Some(segment) = segments.next() {
            let last = segments.peek().is_none();
            match segment {
                "" if !last => {
                    return Some(
                        "an empty segment (\"//\": request paths have repeated slashes merged)",
                    )
                }
                "." | ".." if !(last && self.prefix) => {
                    return Some(
                        "a dot segment (\".\" or \"..\": request paths have them resolved)",
                    )
                }
                _ => {}
            }
        }
        None
    }

    /// The exact pattern an exact one also covers (SPEC §3.3's trailing
    /// slash, see `RuleEntry::matches`): `/a/` for `/a`, `/a` for `/a/`;
    /// none for `/` or a prefix. Built from the text as it is, never parsed
    /// again: the text is in match form already.
    pub fn slash_twin(&self) -> Option<PathPattern> {
        if self.prefix || self.text == "/" {
            return None;
        }
        let text = match self.text.strip_suffix('/') {
            Some(without) => without.to_owned(),
            None => format!("{}/", self.text),
        };
        Some(PathPattern {
            text,
            prefix: false,
        })
    }

    /// Whether `path` (already normalised) matches this one pattern.
    pub fn matches(&self, path: &str) -> bool {
        if self.prefix {
            path.starts_with(self.text.as_str())
        } else {
            path == self.text
        }
    }
}

/// What in a pattern's text no normalised request path can hold, if
/// anything.
fn never_in_a_path(text: &str) -> Option<&'static str> {
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let what = match b {
            b'?' => "\"?\" (it starts the query)",
            b'#' => "\"#\" (it starts the fragment)",
            b'\\' => "a backslash",
            _ if b.is_ascii_control() => "a control character",
            b'%' => match crate::percent::escaped_at(bytes, i) {
                None => "a \"%\" that is not an escape (%XX)",
                Some(b'/') => "an escaped slash (%2F)",
                Some(b'\\') => "an escaped backslash (%5C)",
                Some(0) => "an escaped NUL (%00)",
                Some(_) => continue,
            },
            _ => continue,
        };
        return Some(what);
    }
    None
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)?;
        if self.prefix {
            f.write_str("*")?;
        }
        Ok(())
    }
}

impl FromStr for PathPattern {
    type Err = PatternError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PathPattern::parse(s)
    }
}

/// Maps path patterns to values; [`PathTrie::matches`] yields the values of
/// every matching pattern, most specific first.
///
/// A radix tree: each node is reached by a byte string (its `label`) from its
/// parent, and every pattern ends exactly on a node. A lookup walks down the
/// path once; the prefix patterns that match are the nodes passed on the way,
/// so it then climbs back up through `parent` links, which is what makes it
/// allocation-free.
#[derive(Debug, Clone)]
pub struct PathTrie<T> {
    /// `nodes[0]` is the root, with an empty label. Node indices are only ever
    /// created by `insert`, and nodes are never removed, so stored indices are
    /// always in bounds.
    nodes: Vec<Node<T>>,
    len: usize,
}

#[derive(Debug, Clone)]
struct Node<T> {
    label: Box<[u8]>,
    parent: Option<usize>,
    /// (first byte of the child's label, child index), sorted by byte.
    children: Vec<(u8, usize)>,
    /// Values of exact patterns ending here, in insertion order.
    exact: Vec<T>,
    /// Values of prefix patterns ending here, in insertion order.
    prefix: Vec<T>,
}

impl<T> Node<T> {
    fn new(label: &[u8], parent: Option<usize>) -> Self {
        Node {
            label: label.into(),
            parent,
            children: Vec::new(),
            exact: Vec::new(),
            prefix: Vec::new(),
        }
    }

    fn child_slot(&self, first: u8) -> Result<usize, usize> {
        self.children.binary_search_by_key(&first, |&(b, _)| b)
    }

    fn child(&self, first: u8) -> Option<usize> {
        // Most nodes have a handful of children, where a linear scan beats a
        // binary search's mispredicted branches (about 1.5x faster lookups
        // with 10 000 rules in `benches/rules.rs`); wide nodes still search.
        let slot = if self.children.len() <= 16 {
            self.children.iter().position(|&(b, _)| b == first)?
        } else {
            self.child_slot(first).ok()?
        };
        self.children.get(slot).map(|&(_, child)| child)
    }
}

/// The lesser of two optional values; `None` only when both are.
fn lesser<'a, T: Ord>(a: Option<&'a T>, b: Option<&'a T>) -> Option<&'a T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

impl<T> Default for PathTrie<T> {
    fn default() -> Self {
        PathTrie::new()
    }
}

impl<T> PathTrie<T> {
    pub fn new() -> Self {
        PathTrie {
            nodes: vec![Node::new(b"", None)],
            len: 0,
        }
    }

    /// Number of values inserted.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds `value` under `pattern`. Values sharing a pattern are yielded in
    /// insertion order.
    pub fn insert(&mut self, pattern: &PathPattern, value: T) {
        let at = self.node_for(pattern.as_str().as_bytes());
        let node = &mut self.nodes[at];
        if pattern.is_prefix() {
            node.prefix.push(value);
        } else {
            node.exact.push(value);
        }
        self.len += 1;
    }

    /// Every value whose pattern matches `path`: exact patterns first, then
    /// prefix patterns from the longest to the shortest.
    pub fn matches<'a>(&'a self, path: &str) -> Matches<'a, T> {
        let mut at = 0;
        let mut rest = path.as_bytes();
        let mut exact: &[T] = &[];
        loop {
            let node = self.node(at);
            let Some(&first) = rest.first() else {
                exact = &node.exact;
                break;
            };
            let Some(child) = node.child(first) else {
                break;
            };
            // A path that ends inside a label, or leaves it, stops here: no
            // pattern ends inside a label.
            match rest.strip_prefix(&*self.node(child).label) {
                Some(after) => rest = after,
                None => break,
            }
            at = child;
        }
        Matches {
            trie: self,
            current: exact.iter(),
            next_prefix_node: Some(at),
        }
    }

    /// The most specific value matching `path`.
    pub fn first(&self, path: &str) -> Option<&T> {
        self.matches(path).next()
    }

    /// The least value whose pattern matches `path`, whatever its
    /// specificity: for lists where the first entry listed wins. One walk
    /// down, the same as [`PathTrie::matches`], with no climb back up.
    pub fn least(&self, path: &str) -> Option<&T>
    where
        T: Ord,
    {
        let mut at = 0;
        let mut rest = path.as_bytes();
        let mut least = None;
        loop {
            let node = self.node(at);
            least = lesser(least, node.prefix.iter().min());
            let Some(&first) = rest.first() else {
                return lesser(least, node.exact.iter().min());
            };
            let Some(child) = node.child(first) else {
                return least;
            };
            match rest.strip_prefix(&*self.node(child).label) {
                Some(after) => rest = after,
                None => return least,
            }
            at = child;
        }
    }

    fn node(&self, index: usize) -> &Node<T> {
        // In bounds: see the invariant on `nodes`.
        &self.nodes[index]
    }

    /// The node where `key` ends, created (splitting a label if needed).
    fn node_for(&mut self, key: &[u8]) -> usize {
        let mut at = 0;
        let mut rest = key;
        while let Some(&first) = rest.first() {
            let slot = match self.nodes[at].child_slot(first) {
                Ok(slot) => slot,
                Err(slot) => {
                    let leaf = self.nodes.len();
                    self.nodes.push(Node::new(rest, Some(at)));
                    self.nodes[at].children.insert(slot, (first, leaf));
                    return leaf;
                }
            };
            // `slot` came from a successful search of these children.
            let child = self.nodes[at].children[slot].1;
            let label = &self.nodes[child].label;
            let common = label.iter().zip(rest).take_while(|(a, b)| a == b).count();
            if common < label.len() {
                self.split(at, slot, common);
            }
            // After a split the child slot holds the new middle node, whose
            // label is exactly the common part.
            at = self.nodes[at].children[slot].1;
            // `common` counts bytes of `rest`, so it cannot exceed its length.
            rest = &rest[common..];
        }
        at
    }

    /// Splits the label of the child in `slot` of `parent` after `common`
    /// bytes (`0 < common < label length`), inserting a middle node. The child
    /// keeps its index, so its own children's `parent` links stay right.
    fn split(&mut self, parent: usize, slot: usize, common: usize) {
        let child = self.nodes[parent].children[slot].1;
        let middle = self.nodes.len();
        let (head, tail) = self.nodes[child].label.split_at(common);
        let mut middle_node = Node::new(head, Some(parent));
        // `common < label length`, so the tail is not empty.
        let tail_first = tail[0];
        middle_node.children.push((tail_first, child));
        let tail: Box<[u8]> = tail.into();
        self.nodes.push(middle_node);
        let child_node = &mut self.nodes[child];
        child_node.label = tail;
        child_node.parent = Some(middle);
        self.nodes[parent].children[slot].1 = middle;
    }
}

/// Iterator returned by [`PathTrie::matches`]. Does not allocate.
#[derive(Debug, Clone)]
pub struct Matches<'a, T> {
    trie: &'a PathTrie<T>,
    current: std::slice::Iter<'a, T>,
    /// The next node (going up towards the root) whose prefix values have not
    /// been yielded yet.
    next_prefix_node: Option<usize>,
}

impl<'a, T> Iterator for Matches<'a, T> {
    type Item = &'a T;

    fn next(&mut self) -> Option<&'a T> {
        loop {
            if let Some(value) = self.current.next() {
                return Some(value);
            }
            let node = self.trie.node(self.next_prefix_node?);
            self.current = node.prefix.iter();
            self.next_prefix_node = node.parent;
        }
    }
}
