//! The configuration file of SPEC §2, loaded in three stages:
//!
//! 1. text -> generic tree, `${ENV}` expanded ([`tree`]);
//! 2. tree -> [`RawConfig`], structs that mirror the YAML (`read`);
//! 3. raw -> [`Config`], compiled and validated objects (`compile`).
//!
//! Every stage collects all of its errors, each with its location
//! (`routes[1].jwt.required_paths[0]: unknown method "FETCH"`), and loading
//! fails with all of them at once. Nothing here serves traffic.

mod authorization;
mod compile;
mod cors;
mod error;
mod etcd_source;
mod model;
mod providers;
mod raw;
mod read;
mod reader;
mod routing;
mod shared;
mod source;
mod tls;
pub mod tree;
mod warnings;

#[cfg(test)]
mod tests;

use std::path::Path;

pub use compile::{MAX_FILE_BYTES, MIN_SECRET_BYTES};
pub use error::{ConfigError, ConfigErrors};
pub use etcd_source::check_node_file;
pub use model::*;
pub use raw::*;
pub use routing::{host_entry, route_trie, takes_host, takes_method, RouteChoice, SampleRequest};
pub use shared::{
    env_refs_outside_secrets, locate_in, objects_to_yaml, ObjectId, ObjectKind, SharedObject,
    SharedObjects, ENV_REF_FIELD,
};
pub use source::{
    compile_raw, compile_source, read_consumer, read_jwt, read_provider, read_route, read_source,
    to_yaml, ReadItem,
};
pub use warnings::{name_problem, warnings};

/// Loads and compiles the config file at `path`. Relative file references in
/// it (`public_key_file`, `tls.*_file`, `store.path`) are resolved against
/// the file's directory.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigErrors::single("", format!("cannot read {}: {e}", path.display())))?;
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    load_str(&text, base, &|name| std::env::var(name).ok())
}

/// Loads a config from YAML text, with an explicit environment.
pub fn load_str(
    text: &str,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    let mut tree = tree::parse_yaml(text)
        .map_err(|msg| ConfigErrors::single("", format!("not valid YAML: {msg}")))?;
    let mut errors = error::Errors::default();
    tree::expand_env(&mut tree, "", env, &mut errors);
    let raw = read::config(&tree, &mut errors);
    let compiled = compile::config(raw, base_dir, &mut errors);
    errors.into_result(())?;
    compiled.ok_or_else(|| ConfigErrors::single("", "invalid configuration"))
}
