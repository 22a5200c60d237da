//! The config *source*: the file as the operator wrote it, `${ENV}`
//! references kept, as a [`RawConfig`]. The admin API edits the source and
//! writes it back, so an expanded secret never lands in the file; compiling
//! a source expands it first, through the same reader and compiler the file
//! loader uses, so the file and the API share one validation and one set of
//! error locations.
//!
//! What this module does not do: decide whether a change is allowed
//! (protection) or put a config live; that is the control plane's job.

use std::path::Path;

use serde_json::Value;

use crate::error::{ConfigError, ConfigErrors, Errors};
use crate::model::Config;
use crate::raw::{RawConfig, RawConsumer, RawJwt, RawProvider, RawRoute};
use crate::reader::{obj, Obj};
use crate::{compile, read, tree};

/// Reads YAML text into a source config, without expanding `${ENV}`: the
/// config as far as it could be read, and every shape error (unknown keys,
/// wrong types), so that compiling it can still report the rest. Only text
/// that is not YAML at all is an `Err`.
pub fn read_source(text: &str) -> Result<ReadItem<RawConfig>, ConfigErrors> {
    let tree = tree::parse_yaml(text).map_err(|msg| ConfigErrors::single("", msg))?;
    let mut errors = Errors::default();
    let item = read::config(&tree, &mut errors);
    Ok(ReadItem {
        item,
        errors: all(errors),
    })
}

/// Expands `${ENV}` in a source config and compiles it: every error, with
/// its location in the file's terms (`routes[1].jwt.required_paths[0]`).
pub fn compile_source(
    source: &RawConfig,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    let mut errors = Errors::default();
    let raw = expanded(source, env, &mut errors)?;
    let compiled = compile::config(raw, base_dir, &mut errors);
    errors.into_result(())?;
    compiled.ok_or_else(|| ConfigErrors::single("", "invalid configuration"))
}

/// `source` with its `${NAME}` references replaced from `env`, read back
/// (what cannot be read is in `errors`).
fn expanded(
    source: &RawConfig,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Errors,
) -> Result<RawConfig, ConfigErrors> {
    let mut tree = serde_json::to_value(source)
        .map_err(|e| ConfigErrors::single("", format!("cannot represent the config: {e}")))?;
    tree::expand_env(&mut tree, "", env, errors);
    Ok(read::config(&tree, errors))
}

/// The TLS sections of `source` (`tls`, `admin.tls`) that compile on their
/// own, whatever else is wrong with it: what the TLS library alone can
/// check of them (a key that is not its certificate's) is then listed with
/// the config's other problems, not once those are mended. Their own
/// errors are `compile_source`'s to report.
pub fn tls_sections(
    source: &RawConfig,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Vec<crate::TlsMaterial> {
    let mut errors = Errors::default();
    let Ok(raw) = expanded(source, env, &mut errors) else {
        return Vec::new();
    };
    let data = raw.tls.as_ref().map(|t| (t, "tls"));
    let admin = raw
        .admin
        .as_ref()
        .and_then(|a| a.tls.as_ref())
        .map(|t| (t, "admin.tls"));
    data.into_iter()
        .chain(admin)
        .filter_map(|(t, at)| crate::tls::compile(t, at, base_dir, &mut errors))
        .collect()
}

/// Compiles an already expanded raw config.
pub fn compile_raw(raw: RawConfig, base_dir: &Path) -> Result<Config, ConfigErrors> {
    let mut errors = Errors::default();
    let compiled = compile::config(raw, base_dir, &mut errors);
    errors.into_result(())?;
    compiled.ok_or_else(|| ConfigErrors::single("", "invalid configuration"))
}

/// The source config as YAML text, for writing back to the file. Comments
/// and key order of the original file are not kept.
pub fn to_yaml(source: &RawConfig) -> Result<String, String> {
    serde_saphyr::to_string(source).map_err(|e| e.to_string())
}

/// `value` without the `null` members of its objects, at every depth.
fn without_null_members(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_null_members(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_null_members).collect()),
        other => other.clone(),
    }
}

/// What the reader made of one item (an admin API body): the item as far as
/// it could be read (wrong fields left at their defaults) and every shape
/// error, so that compiling it can still report the remaining problems.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadItem<T> {
    pub item: T,
    pub errors: Vec<ConfigError>,
}

impl<T> ReadItem<T> {
    pub fn into_result(self) -> Result<T, ConfigErrors> {
        if self.errors.is_empty() {
            Ok(self.item)
        } else {
            Err(ConfigErrors(self.errors))
        }
    }
}

/// One item of JSON (an admin API body, an etcd object). A member that is
/// `null` is read as left out, as JSON clients write "the default" (and as
/// a merge patch has it): unlike an empty value in a YAML file, where it is
/// refused for a `true`/`false` setting (a file cut short there would read
/// as `false`).
fn read_item<T: Default>(
    value: &Value,
    loc: &str,
    read: impl FnOnce(Obj<'_>, &mut Errors) -> T,
) -> ReadItem<T> {
    let mut errors = Errors::default();
    let value = without_null_members(value);
    let item = obj(&value, loc, &mut errors)
        .map(|o| read(o, &mut errors))
        .unwrap_or_default();
    ReadItem {
        item,
        errors: all(errors),
    }
}

fn all(errors: Errors) -> Vec<ConfigError> {
    errors
        .into_result(())
        .err()
        .map(|e| e.0)
        .unwrap_or_default()
}

/// Reads one route. Locations are relative to `loc` (`""` for a body).
pub fn read_route(value: &Value, loc: &str) -> ReadItem<RawRoute> {
    read_item(value, loc, read::route)
}

/// Reads one route's `jwt` policy.
pub fn read_jwt(value: &Value, loc: &str) -> ReadItem<RawJwt> {
    read_item(value, loc, read::jwt)
}

/// Reads one consumer.
pub fn read_consumer(value: &Value, loc: &str) -> ReadItem<RawConsumer> {
    read_item(value, loc, read::consumer)
}

/// Reads one identity provider.
pub fn read_provider(value: &Value, loc: &str) -> ReadItem<RawProvider> {
    read_item(value, loc, read::provider)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
listen: "127.0.0.1:0"
admin: { listen: "127.0.0.1:0", api_key: "${ADMIN_KEY}" }
consumers:
  - username: alice
    jwt: { key: k1, secret: "${ALICE_SECRET}" }
routes:
  - name: r
    paths: ["/v1/*"]
    upstream: { echo: true }
    jwt:
      not_required_paths: ["GET_/v1/public*"]
      forward_claims: { sub: X-User-Id }
      protection: { undeletable: true, immutable: false }
"#;

    fn env(name: &str) -> Option<String> {
        match name {
            "ADMIN_KEY" => Some("admin-key".into()),
            "ALICE_SECRET" => Some("alice-secret-0123456789abcdefghijkl".into()),
            _ => None,
        }
    }

    #[test]
    fn source_keeps_env_references_and_compiles_like_the_file() {
        let source = read_source(FILE)
            .expect("yaml")
            .into_result()
            .expect("source");
        assert_eq!(
            source.consumers[0]
                .jwt
                .as_ref()
                .and_then(|j| j.secret.as_deref()),
            Some("${ALICE_SECRET}")
        );
        let via_source = compile_source(&source, Path::new("."), &env).expect("compiles");
        let via_file = crate::load_str(FILE, Path::new("."), &env).expect("loads");
        assert_eq!(via_source.raw, via_file.raw);
        assert_eq!(
            via_source.raw.admin.as_ref().map(|a| a.api_key.as_str()),
            Some("admin-key")
        );
    }

    #[test]
    fn yaml_round_trip_is_lossless() {
        let source = read_source(FILE)
            .expect("yaml")
            .into_result()
            .expect("source");
        let text = to_yaml(&source).expect("yaml");
        assert!(!text.contains("alice-secret"), "{text}");
        assert_eq!(read_source(&text).expect("yaml").item, source, "{text}");
    }

    #[test]
    fn a_pem_survives_the_round_trip() {
        let mut source = read_source(FILE)
            .expect("yaml")
            .into_result()
            .expect("source");
        source.consumers[0].jwt.as_mut().expect("jwt").public_key =
            Some("-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n".into());
        let text = to_yaml(&source).expect("yaml");
        assert_eq!(read_source(&text).expect("yaml").item, source, "{text}");
    }

    #[test]
    fn body_readers_locate_errors_relative_to_the_body() {
        let body = serde_json::json!({
            "name": "r", "paths": ["/x"], "upstream": {"echo": true},
            "jwt": {"required_paths": [1, true], "bogus": 1}
        });
        let errors = read_route(&body, "").into_result().unwrap_err();
        let at: Vec<_> = errors.0.iter().map(|e| e.location.as_str()).collect();
        assert_eq!(at, ["jwt.required_paths[1]", "jwt.bogus"]);
        let errors = read_jwt(&serde_json::json!([]), "")
            .into_result()
            .unwrap_err();
        assert_eq!(errors.0[0].message, "expected a mapping, found a list");
        let read = read_consumer(&serde_json::json!({"username": "u", "jwt": 7}), "");
        assert_eq!(read.item.username, "u", "what could be read is kept");
        let errors = read.into_result().unwrap_err();
        assert_eq!(errors.0[0].location, "jwt");
        // A consumer without a credential reads.
        let read = read_consumer(&serde_json::json!({"username": "u"}), "");
        assert_eq!(read.into_result().map(|c| c.jwt), Ok(None));
    }

    /// A review: JSON clients write `null` for "the default"; only an
    /// empty value in a YAML file (a file cut short) is refused.
    #[test]
    fn a_null_member_of_a_json_item_is_read_as_left_out() {
        let jwt = read_jwt(
            &serde_json::json!({"hide_credentials": null, "protection": null}),
            "",
        );
        let jwt = jwt.into_result().expect("read");
        assert_eq!((jwt.hide_credentials, jwt.protection), (None, None));
        let jwt = read_jwt(&serde_json::json!({"protection": {"immutable": null}}), "");
        assert!(
            !jwt.into_result()
                .expect("read")
                .protection
                .expect("given")
                .immutable
        );
    }
}
