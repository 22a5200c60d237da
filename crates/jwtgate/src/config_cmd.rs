//! `jwtgate config push` and `jwtgate config pull` (SPEC §6): the routes,
//! consumers and providers of a file into etcd, in one transaction, and
//! back out as YAML.
//!
//! Push makes etcd hold exactly the file's objects: objects etcd holds
//! with the same value are not rewritten (pushing twice changes nothing),
//! the others are put, and objects the file lacks are deleted. The whole
//! push is refused (exit 1, etcd unchanged) if the objects do not compile
//! or a protection forbids any part of it; the transaction holds only if
//! nothing under the prefix changed since it was read (else it is
//! recomputed, a few times).

use std::path::Path;
use std::process::ExitCode;

use jwtgate_admin::protect;
use jwtgate_config::{
    compile_source, env_refs_outside_secrets, locate_in, objects_to_yaml, read_source, ConfigError,
    ConfigErrors, EtcdSettings, ObjectKind, RawConfig, SharedObject, SharedObjects,
};
use jwtgate_etcd::{name_field, name_problem, Etcd, EtcdError, Expect, Snapshot, Write};
use jwtgate_state::{parent_dir, StateDir};

const PUSH_ATTEMPTS: usize = 5;

/// Exit code when etcd cannot be reached.
const UNAVAILABLE: u8 = 3;

pub fn push(path: &Path, dry_run: bool) -> ExitCode {
    // An invalid file is a push refused whole.
    let (settings, file) = match read(path, 1) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let wanted = SharedObjects::of(&file);
    if let Err(errors) = validate(&file, path) {
        eprintln!(
            "{}: {} problem(s); etcd unchanged",
            path.display(),
            errors.0.len()
        );
        for e in &errors.0 {
            eprintln!("{e}");
        }
        return ExitCode::from(1);
    }
    block_on(async move {
        let etcd = match Etcd::connect(&settings).await {
            Ok(e) => e,
            Err(e) => return unavailable(&e),
        };
        for _ in 0..PUSH_ATTEMPTS {
            let snapshot = match etcd.snapshot().await {
                Ok(s) => s,
                Err(e) => return unavailable(&e),
            };
            let (held, unreadable) = held_objects(&snapshot);
            for (key, why) in &unreadable {
                eprintln!(
                    "note: {key} in etcd is not a valid object ({why}); the push replaces it"
                );
            }
            if let Err(why) =
                protect::check(&held.with_node_part(&file), &wanted.with_node_part(&file))
            {
                eprintln!("refused: {why}");
                eprintln!("etcd unchanged");
                return ExitCode::from(1);
            }
            let writes = writes(&snapshot, &wanted);
            if writes.is_empty() {
                return crate::out::print_with(
                    &format!(
                        "etcd already holds exactly these {} objects under {}: nothing to do\n",
                        wanted.len(),
                        settings.prefix
                    ),
                    ExitCode::SUCCESS,
                );
            }
            let (puts, deletes) = (
                writes.iter().filter(|w| w.value.is_some()).count(),
                writes.iter().filter(|w| w.value.is_none()).count(),
            );
            if dry_run {
                let mut text = String::new();
                for w in &writes {
                    let verb = if w.value.is_some() { "put" } else { "delete" };
                    text.push_str(&format!("{verb} {}\n", etcd.key(w.kind, &w.name)));
                }
                text.push_str(&format!(
                    "dry run: {puts} to put, {deletes} to delete; etcd unchanged\n"
                ));
                return crate::out::print_with(&text, ExitCode::SUCCESS);
            }
            match etcd.commit(&writes, snapshot.revision, None).await {
                Ok(revision) => {
                    // Made: said whatever stdout does (status 0 all the same).
                    // Every object of the file is counted: put, or held
                    // by etcd as it is (an outside audit read "12 objects,
                    // 1 put" as a miscount).
                    let said = format!(
                        "pushed {} objects under {} at revision {revision}: {puts} put, {} \
                         unchanged, {deletes} deleted\n",
                        wanted.len(),
                        settings.prefix,
                        wanted.len().saturating_sub(puts),
                    );
                    let _ = crate::out::print_with(&said, ExitCode::SUCCESS);
                    return ExitCode::SUCCESS;
                }
                Err(EtcdError::Conflict) => continue,
                Err(e) if e.never_sent() => return unavailable(&e),
                Err(e) => {
                    // The transaction may have reached etcd before the
                    // answer was lost.
                    eprintln!(
                        "{e}; the push may or may not have been made: run it again (pushing \
                         twice changes nothing) or see with --dry-run"
                    );
                    return ExitCode::from(UNAVAILABLE);
                }
            }
        }
        eprintln!("etcd kept changing during the push ({PUSH_ATTEMPTS} attempts); etcd unchanged, try again");
        ExitCode::from(1)
    })
}

pub fn pull(path: &Path) -> ExitCode {
    // 1 is for an object etcd holds: a file that does not read is 2, as
    // one that cannot be read (an outside audit found 1).
    let (settings, _) = match read(path, 2) {
        Ok(x) => x,
        Err(code) => return code,
    };
    block_on(async move {
        let snapshot = match Etcd::connect(&settings).await {
            Ok(etcd) => match etcd.snapshot().await {
                Ok(s) => s,
                Err(e) => return unreadable(&e),
            },
            Err(e) => return unreadable(&e),
        };
        let (held, unreadable) = held_objects(&snapshot);
        match objects_to_yaml(&held) {
            Ok(yaml) => {
                if crate::out::print(yaml.as_bytes()) != ExitCode::SUCCESS {
                    return ExitCode::from(1);
                }
            }
            Err(e) => {
                eprintln!("cannot write the objects as YAML: {e}");
                return ExitCode::from(1);
            }
        }
        if unreadable.is_empty() {
            return ExitCode::SUCCESS;
        }
        for (key, why) in &unreadable {
            eprintln!("{key}: not a valid object, left out: {why}");
        }
        eprintln!(
            "{} object(s) in etcd could not be read (listed above); the YAML holds the others",
            unreadable.len()
        );
        ExitCode::from(1)
    })
}

/// The file, and its `config_source` compiled; `invalid`: the exit code
/// of a file that does not read as a config.
fn read(path: &Path, invalid: u8) -> Result<(EtcdSettings, RawConfig), ExitCode> {
    let text =
        jwtgate_config::read_text_bounded(path, jwtgate_config::MAX_CONFIG_BYTES).map_err(|e| {
            eprintln!("cannot read {}: {e}", path.display());
            ExitCode::from(2)
        })?;
    let file = match read_source(&text).and_then(|r| r.into_result()) {
        Ok(f) => f,
        Err(errors) => {
            eprintln!("{}: {} problem(s)", path.display(), errors.0.len());
            for e in &errors.0 {
                eprintln!("{e}");
            }
            return Err(ExitCode::from(invalid));
        }
    };
    if file.config_source.is_none() {
        eprintln!(
            "{}: needs a config_source (kind: etcd, endpoints, ...) saying where to push or pull",
            path.display()
        );
        return Err(ExitCode::from(2));
    }
    // Only the config_source, with the real environment (its password may
    // be a reference): the rest of a node's part is not needed here.
    let source_only = RawConfig {
        listen: vec!["127.0.0.1:0".into()],
        config_source: file.config_source.clone(),
        ..RawConfig::default()
    };
    let settings = compile_source(&source_only, &parent_dir(path), &|n| std::env::var(n).ok())
        .map_err(|errors| {
            for e in &errors.0 {
                eprintln!("{e}");
            }
            ExitCode::from(invalid)
        })?
        .config_source
        .ok_or(ExitCode::from(2))?;
    Ok((settings, file))
}

/// The objects compile as a node will compile them. `${ENV}` references
/// the pushing machine does not have are checked with a stand-in value:
/// each node resolves them from its own environment. Compiled in the
/// file's order, so that every location (`routes[2].paths[0]`) points into
/// the file, and two objects of one name are an error, not one silently
/// pushed over the other.
fn validate(file: &RawConfig, path: &Path) -> Result<(), ConfigErrors> {
    let missing = std::cell::RefCell::new(Vec::new());
    let env = |name: &str| {
        std::env::var(name).ok().or_else(|| {
            missing.borrow_mut().push(name.to_owned());
            Some(STAND_IN.to_owned())
        })
    };
    let as_written = RawConfig {
        routes: file.routes.clone(),
        consumers: file.consumers.clone(),
        providers: file.providers.clone(),
        ..node_only(file)
    };
    let result = compile_source(&as_written, &parent_dir(path), &env);
    let mut missing = missing.into_inner();
    missing.sort();
    missing.dedup();
    for name in missing {
        eprintln!("note: ${{{name}}} is not set here; checked with a stand-in, each node resolves it from its own environment");
    }
    let mut errors = result.err().map(|e| e.0).unwrap_or_default();
    let names = file
        .routes
        .iter()
        .map(|r| (ObjectKind::Route, r.name.as_str()))
        .enumerate()
        .chain(
            file.consumers
                .iter()
                .map(|c| (ObjectKind::Consumer, c.username.as_str()))
                .enumerate(),
        )
        .chain(
            file.providers
                .iter()
                .map(|p| (ObjectKind::Provider, p.name.as_str()))
                .enumerate(),
        );
    // What etcd cannot carry, and what the nodes refuse there (a file is
    // only warned about it).
    for (i, (kind, name)) in names {
        if let Some(problem) = name_problem(name).or_else(|| jwtgate_config::name_problem(name)) {
            errors.push(ConfigError {
                location: format!("{}[{i}].{}", kind.dir(), name_field(kind)),
                message: problem,
            });
        }
    }
    // What the nodes would refuse: `${ENV}` outside a consumer's secret.
    for (kind, list) in [
        (ObjectKind::Route, serde_json::to_value(&file.routes)),
        (ObjectKind::Consumer, serde_json::to_value(&file.consumers)),
        (ObjectKind::Provider, serde_json::to_value(&file.providers)),
    ] {
        if let Ok(serde_json::Value::Array(items)) = list {
            env_refs(kind, &items, &mut errors);
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ConfigErrors(errors))
    }
}

/// The `${ENV}` references of `items` (the file's list of `kind`, as
/// JSON) that the nodes would refuse, located in the file.
fn env_refs(kind: ObjectKind, items: &[serde_json::Value], errors: &mut Vec<ConfigError>) {
    for (i, value) in items.iter().enumerate() {
        for e in env_refs_outside_secrets(kind, value) {
            errors.push(ConfigError {
                location: format!("{}[{i}].{}", kind.dir(), e.location),
                message: e.message,
            });
        }
    }
}

const STAND_IN: &str = "stand-in-value-for-validation-0123456789abcdef";

/// The node part a push is checked with: the file's own, with a listen
/// address if it has none (a push file need not be a node's file).
fn node_only(file: &RawConfig) -> RawConfig {
    let mut node = file.node_part();
    if node.listen.is_empty() {
        node.listen = vec!["127.0.0.1:0".into()];
    }
    node
}

/// The objects etcd holds that read, and the keys that do not (with why).
fn held_objects(snapshot: &Snapshot) -> (SharedObjects, Vec<(String, String)>) {
    let mut held = SharedObjects::default();
    let mut unreadable = Vec::new();
    for o in &snapshot.objects {
        match SharedObject::read(o.kind, &o.name, &o.value) {
            Ok(object) => {
                held.insert(object);
            }
            Err(errors) => {
                let why = errors
                    .0
                    .iter()
                    .map(|e| locate_in(o.kind, &o.name, e))
                    .collect::<Vec<_>>()
                    .join("; ");
                unreadable.push((format!("{}/{}", o.kind.dir(), o.name), why));
            }
        }
    }
    (held, unreadable)
}

/// What makes etcd hold exactly `wanted`: changed and new objects put,
/// missing ones deleted, each conditioned on the version read.
fn writes(snapshot: &Snapshot, wanted: &SharedObjects) -> Vec<Write> {
    let mut out = Vec::new();
    for object in wanted.iter() {
        let stored = snapshot
            .objects
            .iter()
            .find(|o| o.kind == object.kind() && o.name == object.name());
        let same = stored.is_some_and(|s| {
            SharedObject::read(s.kind, &s.name, &s.value).is_ok_and(|held| held == object)
        });
        if same {
            continue;
        }
        out.push(Write {
            kind: object.kind(),
            name: object.name().to_owned(),
            value: Some(object.to_json()),
            expect: stored.map_or(Expect::Absent, |s| Expect::ModRevision(s.mod_revision)),
        });
    }
    for stored in &snapshot.objects {
        if wanted.get(stored.kind, &stored.name).is_none() {
            out.push(Write {
                kind: stored.kind,
                name: stored.name.clone(),
                value: None,
                expect: Expect::ModRevision(stored.mod_revision),
            });
        }
    }
    out
}

/// etcd did not answer before anything was written.
fn unavailable(e: &EtcdError) -> ExitCode {
    eprintln!("{e}; etcd unchanged");
    ExitCode::from(UNAVAILABLE)
}

/// etcd did not answer a read (`pull` writes nothing).
fn unreadable(e: &EtcdError) -> ExitCode {
    eprintln!("{e}");
    ExitCode::from(UNAVAILABLE)
}

fn block_on(f: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(f),
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            ExitCode::from(1)
        }
    }
}

/// A config file as the CLI's token commands use it: with a
/// `config_source` and no objects of its own (a node's file), the routes,
/// consumers and providers etcd holds are read in (objects that do not
/// read are left out, with a note). When etcd does not answer, those of
/// the node's local copy in `state_dir` (what it applied last), with a
/// note saying so.
pub fn load_full(path: &Path) -> Result<jwtgate_config::Config, NoConfig> {
    let invalid =
        |e: &dyn std::fmt::Display| NoConfig::Invalid(format!("{}:\n{e}", path.display()));
    let config = jwtgate_config::load_file(path).map_err(|e| invalid(&e))?;
    let Some(settings) = config.config_source.clone() else {
        return Ok(config);
    };
    let text = jwtgate_config::read_text_bounded(path, jwtgate_config::MAX_CONFIG_BYTES)
        .map_err(|e| NoConfig::Invalid(format!("{}: {e}", path.display())))?;
    let node = read_source(&text)
        .and_then(|r| r.into_result())
        .map_err(|e| invalid(&e))?;
    if !SharedObjects::of(&node).is_empty() {
        return Ok(config);
    }
    let prefix = settings.prefix.clone();
    let snapshot = block_on_value(async move {
        let etcd = Etcd::connect(&settings).await?;
        etcd.snapshot().await
    });
    let (objects, from) = match snapshot {
        Ok(snapshot) => {
            let objects = snapshot
                .objects
                .into_iter()
                .map(|o| (o.kind, o.name, o.value))
                .collect();
            (objects, "the objects in etcd".to_owned())
        }
        Err(e) => {
            let state_dir = StateDir::new(&config.state_dir);
            let copy = jwtgate_admin::source::etcd::local_copy(&state_dir, &prefix);
            match copy {
                Ok(Some(copy)) => {
                    eprintln!(
                        "note: {e}; reading this node's local copy {} instead (etcd revision {}: \
                         what the node applied last, which may be behind etcd)",
                        copy.path.display(),
                        copy.revision
                    );
                    let from = format!("the objects of {}", copy.path.display());
                    (copy.objects, from)
                }
                Ok(None) => {
                    return Err(NoConfig::Unavailable(format!(
                        "{e}, and this node kept no local copy in {} (the routes, consumers and \
                         providers of {} are in etcd)",
                        config.state_dir.display(),
                        path.display()
                    )))
                }
                Err(why) => {
                    return Err(NoConfig::Unavailable(format!(
                        "{e}, and this node's local copy cannot be read: {why}"
                    )))
                }
            }
        }
    };
    let (config, refused) =
        jwtgate_admin::source::etcd::as_a_node_would(&node, objects, &parent_dir(path));
    for why in refused {
        eprintln!("note: left out, as the nodes leave it out: {why}");
    }
    config.map_err(|e| NoConfig::Invalid(format!("{} with {from}:\n{e}", path.display())))
}

/// Why [`load_full`] has no config.
pub enum NoConfig {
    /// The file, or it with the objects from etcd, is not a valid config.
    Invalid(String),
    /// Its objects are in etcd, which did not answer, and there is no local
    /// copy to read instead.
    Unavailable(String),
}

impl From<NoConfig> for String {
    fn from(why: NoConfig) -> String {
        match why {
            NoConfig::Invalid(s) | NoConfig::Unavailable(s) => s,
        }
    }
}

fn block_on_value<T>(
    f: impl std::future::Future<Output = Result<T, EtcdError>>,
) -> Result<T, EtcdError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| EtcdError::Unavailable(e.to_string()))?
        .block_on(f)
}
