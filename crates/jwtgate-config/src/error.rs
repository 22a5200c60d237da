//! Config errors: each one names where in the file it is.

use std::fmt;

/// One problem, with its location (`routes[1].jwt.required_paths[0]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub location: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.location.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.location, self.message)
        }
    }
}

/// Every problem found in one config; never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl ConfigErrors {
    pub fn single(location: &str, message: impl Into<String>) -> Self {
        ConfigErrors(vec![ConfigError {
            location: location.to_owned(),
            message: message.into(),
        }])
    }
}

/// Collects errors while a config is read and compiled, so that all of them
/// are reported at once.
#[derive(Debug, Default)]
pub(crate) struct Errors {
    list: Vec<ConfigError>,
    /// Locations whose value could not be read as written (a `${NAME}`
    /// that is not set): what later checks would say of the text left
    /// there ("is 15 bytes") is about the reference, not the value, and
    /// is not said.
    unread: Vec<String>,
}

impl Errors {
    pub(crate) fn add(&mut self, location: &str, message: impl Into<String>) {
        if self.unread.iter().any(|loc| loc == location) {
            return;
        }
        self.list.push(ConfigError {
            location: location.to_owned(),
            message: message.into(),
        });
    }

    /// An error that leaves the value at `location` unread: the only one
    /// said of it.
    pub(crate) fn add_unread(&mut self, location: &str, message: impl Into<String>) {
        self.add(location, message);
        self.unread.push(location.to_owned());
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub(crate) fn into_result<T>(self, value: T) -> Result<T, ConfigErrors> {
        if self.list.is_empty() {
            Ok(value)
        } else {
            Err(ConfigErrors(self.list))
        }
    }
}

/// `parent.key` / `parent[i]` location strings.
pub(crate) fn child(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

pub(crate) fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}
