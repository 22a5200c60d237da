//! The protected policies a node served from its file, kept in
//! `state_dir` so that a start checks the file against them as a reload
//! does (SPEC §3.5 guards live reloads; this carries the guard across a
//! restart). A reload that would delete or change a protected policy is
//! refused, and without this record the same edit, left in the file, went
//! live at the next restart, a crash's or a deploy's, without a word (an
//! outside audit: a policy that needed a token served without one).
//!
//! The record is the routes and providers, what a protection is checked
//! against (another route may take a protected route's requests; a
//! provider a policy names is part of it), written while any route is
//! protected and removed when none is. A node whose config lives in etcd
//! keeps none: etcd's objects are checked by the nodes as they arrive.

use jwtgate_config::{read_provider, read_route, RawConfig};
use jwtgate_state::StateDir;
use serde_json::{json, Value};
use tracing::warn;

/// The record of `source`: its routes and providers when a route of it
/// is protected, else nothing (empty).
pub fn record(source: &RawConfig) -> Vec<u8> {
    if !source.routes.iter().any(jwtgate_config::route_protected) {
        return Vec::new();
    }
    let record = json!({ "routes": source.routes, "providers": source.providers });
    serde_json::to_vec(&record).unwrap_or_default()
}

/// Writes `record` ([`record`]) for the next start; an empty one removes
/// what is kept. Whether the record on disk is now `record`: one that could
/// not be written is removed rather than left to check a later start
/// against policies served before it.
pub fn keep(state: &StateDir, record: &[u8]) -> bool {
    let path = state.protected_policies();
    let remove = || match std::fs::remove_file(&path) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => {
            warn!(path = %path.display(), error = %e, "record of protected policies not removed");
            false
        }
    };
    if record.is_empty() {
        return remove();
    }
    match jwtgate_state::write_private(&path, record) {
        Ok(()) => true,
        Err(e) => {
            let removed = remove();
            warn!(
                path = %path.display(),
                error = %e,
                "record of protected policies not written{}: a restart will not check the file \
                 against the protections served",
                if removed { "" } else { " (nor the older one removed)" }
            );
            false
        }
    }
}

/// Checks the file's `source` against the protected policies the node
/// last served from it: `Err` says which protection the file breaks and
/// how to go on. No record checks nothing. A record that is there but
/// cannot be used (damaged, a link, writable by other users) is an `Err`
/// too, as the store's damage is: passed over, it let the very edit it
/// guards against go live (an outside audit), and a crash, when a record
/// may be damaged, is when that edit goes live. Only one this user may not
/// read is passed over, said: `jwtgate check` run by another user than the
/// node's.
pub fn check_start(state: &StateDir, source: &RawConfig) -> Result<(), String> {
    let path = state.protected_policies();
    let unusable = |why: &dyn std::fmt::Display| {
        format!(
            "{}: the record of the protected policies the node last served {why}, so the file \
             cannot be checked against them: restore it from a backup, or remove it to start \
             from the file as it is",
            path.display()
        )
    };
    let bytes = match jwtgate_state::read_private(&path) {
        Ok(bytes) => bytes,
        // None there (a state_dir that cannot be one is said by the store).
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            warn!(path = %path.display(), error = %e, "record of protected policies not read: the file is not checked against it");
            return Ok(());
        }
        Err(e) => return Err(unusable(&format_args!("is not used ({e})"))),
    };
    let Some(served) = read_record(&bytes) else {
        return Err(unusable(&"is damaged"));
    };
    crate::protect::check(&served, source).map_err(|why| {
        format!(
            "{why} (the node last ran with this protection, as {} records): lift a \
             protection in a change of its own first (its flags set to false, a start or a \
             reload, then the change), or remove that file to start from the file as it is",
            path.display()
        )
    })
}

/// The routes and providers of a record, as a config holding only them.
fn read_record(bytes: &[u8]) -> Option<RawConfig> {
    let record: Value = jwtgate_config::tree::parse_json(bytes).ok()?;
    let mut served = RawConfig::default();
    for route in record.get("routes")?.as_array()? {
        served
            .routes
            .push(read_route(route, "").into_result().ok()?);
    }
    for provider in record.get("providers")?.as_array()? {
        served
            .providers
            .push(read_provider(provider, "").into_result().ok()?);
    }
    Some(served)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(text: &str) -> RawConfig {
        jwtgate_config::read_source(text)
            .and_then(jwtgate_config::ReadItem::into_result)
            .expect("reads")
    }

    const PROTECTED: &str = "listen: \"127.0.0.1:0\"\nproviders:\n  - { name: corp, issuer: \"https://idp.example\", jwks_uri: \"https://idp.example/keys\" }\nroutes:\n  - name: p\n    paths: [\"/p/*\"]\n    upstream: { echo: true }\n    jwt: { providers: [corp], consumers: false, protection: { undeletable: true, immutable: true } }\n";

    #[test]
    fn a_start_is_checked_against_the_protections_last_served() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::new(dir.path());
        let served = source(PROTECTED);
        // Nothing recorded: nothing checked.
        let changed = source(&PROTECTED.replace("consumers: false", "consumers: true"));
        assert_eq!(check_start(&state, &changed), Ok(()));
        keep(&state, &record(&served));
        assert_eq!(check_start(&state, &served), Ok(()));
        let why = check_start(&state, &changed).expect_err("a change of an immutable policy");
        assert!(why.contains("protected-policies.json"), "{why}");
        // The provider the policy names is part of it.
        let other_issuer =
            source(&PROTECTED.replace("https://idp.example\"", "https://else.example\""));
        assert!(check_start(&state, &other_issuer).is_err());
        // Lifting the protection alone is allowed, and once served (kept),
        // the change passes.
        let lifted = source(&PROTECTED.replace(
            "undeletable: true, immutable: true",
            "undeletable: false, immutable: false",
        ));
        assert_eq!(check_start(&state, &lifted), Ok(()));
        keep(&state, &record(&lifted));
        assert!(
            !state.protected_policies().exists(),
            "nothing protected: no record"
        );
        assert_eq!(check_start(&state, &changed), Ok(()));
    }

    #[test]
    fn a_damaged_record_refuses_the_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::new(dir.path());
        keep(&state, &record(&source(PROTECTED)));
        for damaged in [&b"{\"routes\": [1]}"[..], b"{\"garbage", b""] {
            jwtgate_state::write_private(&state.protected_policies(), damaged).expect("write");
            let why = check_start(&state, &RawConfig::default()).expect_err("damaged");
            assert!(why.contains("protected-policies.json: the record"), "{why}");
            assert!(why.contains("is damaged"), "{why}");
            assert!(
                why.contains("remove it to start from the file as it is"),
                "{why}"
            );
        }
        // One other users may write is not trusted: not passed over either.
        keep(&state, &record(&source(PROTECTED)));
        let path = state.protected_policies();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).expect("chmod");
        let why = check_start(&state, &source(PROTECTED)).expect_err("writable by others");
        assert!(why.contains("is not used ("), "{why}");
        // Removed, the file starts as it is.
        std::fs::remove_file(&path).expect("remove");
        assert_eq!(check_start(&state, &RawConfig::default()), Ok(()));
    }
}
