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
mod ca_file;
mod compile;
mod cors;
mod error;
mod etcd_source;
mod model;
mod named_files;
mod providers;
mod raw;
mod read;
mod reader;
mod routing;
mod shared;
mod source;
mod spelling;
mod tls;
pub mod tree;
mod upstream;
mod warnings;

#[cfg(test)]
mod tests;

use std::path::Path;

pub use compile::{jwt_defaults, MAX_FILE_BYTES, MIN_SECRET_BYTES, TEN_YEARS_SECONDS};
pub use error::{ConfigError, ConfigErrors};
pub use etcd_source::check_node_file;
pub use model::*;
pub use named_files::named_files;
pub use raw::*;
pub use routing::{host_entry, route_trie, takes_host, takes_method, RouteChoice, SampleRequest};
pub use shared::{
    env_refs_outside_secrets, locate_in, objects_to_yaml, route_protected, ObjectId, ObjectKind,
    SharedObject, SharedObjects, ENV_REF_FIELD,
};
pub use source::{
    compile_raw, compile_source, read_consumer, read_jwt, read_provider, read_route, read_source,
    tls_sections, to_yaml, ReadItem,
};
pub use tls::{chosen_for, DEFAULT_SESSION_CACHE};
pub use upstream::{divided_weights, weighted_turns, MAX_TURNS, MAX_WEIGHT};
pub use warnings::{name_problem, plain_http_off_loopback, warnings};

/// The most a config file may hold: a file of 100 000 consumers is about
/// 15 MiB.
pub const MAX_CONFIG_BYTES: u64 = 64 * 1024 * 1024;

/// Reads a text file that may be large but not unbounded: a config file,
/// a key given on the command line. At most `limit` bytes; a directory or a
/// device is refused (a FIFO is read, as `--config <(...)` gives one).
pub fn read_text_bounded(path: &Path, limit: u64) -> std::io::Result<String> {
    use std::io::{Error, ErrorKind};
    use std::os::unix::fs::FileTypeExt;
    let file = std::fs::File::open(path)?;
    let kind = file.metadata()?.file_type();
    if kind.is_dir() || kind.is_char_device() || kind.is_block_device() || kind.is_socket() {
        return Err(Error::new(ErrorKind::InvalidInput, "not a regular file"));
    }
    read_bounded_from(file, limit)
}

/// Reads the text of the regular file at `path`, at most `limit` bytes,
/// never waiting: a FIFO or a device is refused, and opened without
/// blocking (a FIFO's open waits for a writer). For what a running node
/// reads again (a reload, an admin write's look at the file): a FIFO put
/// at the config's path had one reload wait for good, with the admin
/// writes, the reloads after it and the shutdown behind it (an outside
/// audit). A pipe given at start (`--config <(...)`) is read once, then.
pub fn read_regular_text_bounded(path: &Path, limit: u64) -> std::io::Result<String> {
    String::from_utf8(read_regular_bounded(path, limit)?)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
}

/// The bytes of the regular file at `path`, at most `limit`, never
/// waiting: a FIFO or a device is refused, opened without blocking (a
/// FIFO's open waits for a writer; it changes nothing for a regular
/// file's reads). The files a config names, and the config a running node
/// reads again.
pub fn read_regular_bounded(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Error, ErrorKind, Read};
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(Error::new(ErrorKind::InvalidInput, "not a regular file"));
    }
    let too_large = || {
        Error::new(
            ErrorKind::InvalidInput,
            format!("larger than {limit} bytes"),
        )
    };
    if meta.len() > limit {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    // Bounded again: a file may grow, or (procfs) say it is empty.
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

/// Reads at most `limit` bytes of UTF-8 text from `input` (standard input,
/// say); more is an error, not a larger allocation.
pub fn read_bounded_from(input: impl std::io::Read, limit: u64) -> std::io::Result<String> {
    use std::io::{Error, ErrorKind, Read};
    let mut bytes = Vec::new();
    input
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("larger than {limit} bytes"),
        ));
    }
    String::from_utf8(bytes).map_err(|_| Error::new(ErrorKind::InvalidData, "not UTF-8 text"))
}

/// Loads and compiles the config file at `path`. Relative file references in
/// it (`public_key_file`, `tls.*_file`, `store.path`) are resolved against
/// the file's directory.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    let text = read_text_bounded(path, MAX_CONFIG_BYTES)
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
    let mut tree = tree::parse_yaml(text).map_err(|msg| ConfigErrors::single("", msg))?;
    let mut errors = error::Errors::default();
    tree::expand_env(&mut tree, "", env, &mut errors);
    let raw = read::config(&tree, &mut errors);
    let compiled = compile::config(raw, base_dir, &mut errors);
    errors.into_result(())?;
    compiled.ok_or_else(|| ConfigErrors::single("", "invalid configuration"))
}
