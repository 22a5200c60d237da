//! Step 1 of every change: from file text, or from an edited source, to a
//! compiled [`Config`] with EVERY problem listed. The reader's shape errors
//! (unknown keys, wrong types) and the compiler's errors (bad methods,
//! duplicate keys, ...) are reported together, as `jwtgate check` does; a
//! compile error at a field the reader already reported is not repeated.

use std::path::Path;

use jwtgate_config::{compile_source, read_source, Config, ConfigError, ConfigErrors, RawConfig};

use jwtgate_state::parent_dir;

/// A config file read and compiled at start.
pub struct Loaded {
    pub text: String,
    pub source: RawConfig,
    pub config: Config,
}

/// Reads and compiles the file the way every later reload will.
pub fn load(path: &Path) -> Result<Loaded, ConfigErrors> {
    let text = jwtgate_config::read_text_bounded(path, jwtgate_config::MAX_CONFIG_BYTES)
        .map_err(|e| ConfigErrors::single("", format!("cannot read {}: {e}", path.display())))?;
    let (source, config) = compile_text(&text, &parent_dir(path))?;
    Ok(Loaded {
        text,
        source,
        config,
    })
}

/// File text -> (source, compiled config). When it has problems, its TLS
/// keys are checked against their certificates too, so that every problem
/// is listed at once ([`tls_problems`] checks a config that compiled).
pub fn compile_text(text: &str, base_dir: &Path) -> Result<(RawConfig, Config), ConfigErrors> {
    let read = read_source(text)?;
    match compile_checked(&read.item, read.errors, "", base_dir) {
        Ok(config) => Ok((read.item, config)),
        Err(mut errors) => {
            let sections = jwtgate_config::tls_sections(&read.item, base_dir, &env);
            let more: Vec<ConfigError> = sections
                .iter()
                .flat_map(jwtgate_proxy::tls::check)
                // A file already said to be unreadable or not PEM: once.
                .filter(|e| !errors.0.iter().any(|said| said.location == e.location))
                .collect();
            errors.0.extend(more);
            Err(errors)
        }
    }
}

/// Compiles `source`; `problems` are the reader's errors for the item at
/// `at` (body-relative), and compile errors inside that item are made
/// body-relative too.
pub fn compile_checked(
    source: &RawConfig,
    mut problems: Vec<ConfigError>,
    at: &str,
    base_dir: &Path,
) -> Result<Config, ConfigErrors> {
    match compile_source(source, base_dir, &env) {
        Ok(config) if problems.is_empty() => Ok(config),
        Ok(_) => Err(ConfigErrors(problems)),
        Err(more) => {
            // Against the reader's problems only: a compile error about a
            // whole section (`routes[0].jwt: both lists set`) must not hide
            // the others inside it.
            let shape = problems.len();
            for e in relocate(more, at, source).0 {
                let said = problems.get(..shape).unwrap_or_default();
                if !said.iter().any(|p| within(&e.location, &p.location)) {
                    problems.push(e);
                }
            }
            Err(ConfigErrors(problems))
        }
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Whether location `loc` is `outer` or inside it.
fn within(loc: &str, outer: &str) -> bool {
    outer.is_empty()
        || loc
            .strip_prefix(outer)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.') || rest.starts_with('['))
}

/// Errors located inside the edited item (`routes[2].jwt.realm`) are made
/// relative to the request body (`jwt.realm`); those inside another route,
/// consumer or provider name it as its admin path does
/// (`routes/orders/jwt.forward_claims`): its place in the file means
/// nothing to an admin client. Others keep their location.
pub fn relocate(errors: ConfigErrors, at: &str, source: &RawConfig) -> ConfigErrors {
    if at.is_empty() {
        return errors;
    }
    let inner = |loc: &str| -> Option<String> {
        let rest = loc.strip_prefix(at)?;
        match rest.as_bytes().first() {
            None => Some(String::new()),
            // The first byte is the ASCII '.', so index 1 is a char boundary.
            Some(b'.') => Some(rest[1..].to_owned()),
            Some(b'[') => Some(rest.to_owned()),
            Some(_) => None,
        }
    };
    ConfigErrors(
        errors
            .0
            .into_iter()
            .map(|mut e| {
                if let Some(loc) = inner(&e.location).or_else(|| named(&e.location, source)) {
                    e.location = loc;
                }
                e
            })
            .collect(),
    )
}

/// `jwtgate check`'s warnings for `config` (compiled from `source`), as a
/// node says them: one about a route, consumer or provider names it
/// (`routes/orders/jwt.realm`), as admin and etcd clients know it; its
/// place in a list means nothing to them.
pub fn warnings(source: &RawConfig, config: &Config) -> Vec<String> {
    jwtgate_config::warnings(config)
        .into_iter()
        .map(|mut w| {
            if let Some(loc) = named(&w.location, source) {
                w.location = loc;
            }
            w.to_string()
        })
        .collect()
}

/// `routes[1].jwt.realm` as `routes/orders/jwt.realm`, by the name of the
/// item at that place in `source`; `None` outside the three lists.
fn named(loc: &str, source: &RawConfig) -> Option<String> {
    let (list, rest) = loc.split_once('[')?;
    let (i, rest) = rest.split_once(']')?;
    let i: usize = i.parse().ok()?;
    let name = match list {
        "routes" => &source.routes.get(i)?.name,
        "consumers" => &source.consumers.get(i)?.username,
        "providers" => &source.providers.get(i)?.name,
        _ => return None,
    };
    let rest = rest.strip_prefix('.').unwrap_or(rest);
    Some(if rest.is_empty() {
        format!("{list}/{name}")
    } else {
        format!("{list}/{name}/{rest}")
    })
}

/// What the config compiler could not check of `config`'s TLS, the data
/// plane's and the admin listener's: keys that do not match their
/// certificates, chains that do not parse.
pub fn tls_problems(config: &Config) -> Vec<ConfigError> {
    let admin = config.admin.as_ref().and_then(|a| a.tls.as_ref());
    config
        .tls
        .iter()
        .chain(admin)
        .flat_map(jwtgate_proxy::tls::check)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn locations(e: &ConfigErrors) -> Vec<&str> {
        e.0.iter().map(|e| e.location.as_str()).collect()
    }

    #[test]
    fn relocate_strips_the_edited_item_prefix_and_names_the_others() {
        let e = |l: &str| ConfigError {
            location: l.into(),
            message: "m".into(),
        };
        let text = "consumers: [{username: alice}]\nroutes: [{name: orders, paths: [/o]}, {name: edited, paths: [/e]}]\n";
        let source = read_source(text).expect("yaml").item;
        let out = relocate(
            ConfigErrors(vec![
                e("routes[1].jwt.realm"),
                e("routes[1]"),
                e("routes[10].name"),
                e("routes[0].jwt.forward_claims"),
                e("routes[0]"),
                e("consumers[0].jwt.key"),
                e("listen"),
            ]),
            "routes[1]",
            &source,
        );
        assert_eq!(
            locations(&out),
            [
                "jwt.realm",
                "",
                "routes[10].name",
                "routes/orders/jwt.forward_claims",
                "routes/orders",
                "consumers/alice/jwt.key",
                "listen"
            ]
        );
    }

    #[test]
    fn a_file_reports_shape_and_meaning_errors_together() {
        let text = r#"
listen: "127.0.0.1:0"
routes:
  - name: r
    paths: ["/x"]
    upstream: { echo: true }
    jwt: { required_paths: ["FETCH_/x"], colour: red, leeway_seconds: -1 }
"#;
        let Err(errors) = compile_text(text, Path::new(".")) else {
            panic!("accepted an invalid file");
        };
        assert_eq!(
            locations(&errors),
            [
                "routes[0].jwt.leeway_seconds",
                "routes[0].jwt.colour",
                "routes[0].jwt.required_paths[0]"
            ],
            "{errors}"
        );
    }
}
