//! Request paths: normalisation, path patterns, and `METHOD_PATH` rules.
//!
//! [`normalize`] turns a raw request path into the one form that routes,
//! rules, the logout path and the upstream all see, refusing paths that could
//! be read two ways. [`PathPattern`] is the `/exact` or `/prefix*` syntax of
//! route paths and rule entries; [`PathTrie`] matches a path against many
//! patterns in one walk, and [`PathRules`] uses it to find the rule entry that
//! applies to a request. Both sides meet in [`match_form`], which also reads
//! the escaped spellings of printable characters (but those that split a
//! path or change its meaning) and of UTF-8 as the characters themselves,
//! as the upstream's framework will.
//!
//! This module does not split off the query string (the caller does, at the
//! first `?`), does not decide what a matching rule means (required or not is
//! the policy's business), and does no I/O.

pub mod match_form;
pub mod normalize;
pub mod rules;
pub mod trie;

pub use match_form::match_form;
pub use normalize::{normalize, InvalidPath};
pub use rules::{Method, PathRules, RuleEntry, RuleError, RuleMethod};
pub use trie::{PathPattern, PathTrie, PatternError};

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
