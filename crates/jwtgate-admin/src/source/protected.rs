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
/// how to go on; `Ok` may carry a notice to pass on (a warning). No record
/// checks nothing. A record that is there but cannot be used (damaged, a
/// link, not a file) is an `Err` too, as the store's damage is: passed
/// over, it let the very edit it guards against go live (an outside
/// audit), and a crash, when a record may be damaged, is when that edit
/// goes live. One other users may write, or another user owns, is used
/// all the same, with a notice: a record can only refuse edits, and a
/// platform that makes files group-writable (Kubernetes' `fsGroup`) would
/// otherwise stop the node at every start. One this user may not read
/// stops a start (`starting`) and is passed over, with a notice, by
/// `jwtgate check`, which another user than the node's may run.
pub fn check_start(
    state: &StateDir,
    source: &RawConfig,
    starting: bool,
) -> Result<Option<String>, String> {
    let path = state.protected_policies();
    let unusable = |why: &dyn std::fmt::Display| {
        format!(
            "{}: the record of the protected policies the node last served {why}, so the file \
             cannot be checked against them: restore it from a backup, or remove it to start \
             from the file as it is",
            path.display()
        )
    };
    let (bytes, notice) = match jwtgate_state::read_own_noting(&path) {
        Ok((bytes, note)) => (
            bytes,
            note.map(|note| {
                format!(
                    "{}: the record of the protected policies the node last served: {note}; \
                     used all the same, as a record can only refuse edits",
                    path.display()
                )
            }),
        ),
        // None there (a state_dir that cannot be one fails elsewhere).
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(None)
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied && !starting => {
            return Ok(Some(format!(
                "{}: the record of the protected policies the node last served cannot be read \
                 by this user ({e}): the file is not checked against it (run check as the \
                 node's user)",
                path.display()
            )));
        }
        Err(e) => return Err(unusable(&format_args!("cannot be used ({e})"))),
    };
    let Some(served) = read_record(&bytes) else {
        return Err(unusable(&"is damaged"));
    };
    crate::protect::check(&served, source).map_err(|why| {
        let refused = format!(
            "{why} (the node last ran with this protection, as {} records): lift a \
             protection in a change of its own first (its flags set to false, a start or a \
             reload, then the change), or remove that file to start from the file as it is",
            path.display()
        );
        // What was noticed is said with the refusal, not lost with it.
        match &notice {
            Some(notice) => format!("{refused}; {notice}"),
            None => refused,
        }
    })?;
    Ok(notice)
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
        assert_eq!(check_start(&state, &changed, true), Ok(None));
        keep(&state, &record(&served));
        assert_eq!(check_start(&state, &served, true), Ok(None));
        let why = check_start(&state, &changed, true).expect_err("a change of an immutable policy");
        assert!(why.contains("protected-policies.json"), "{why}");
        // The provider the policy names is part of it.
        let other_issuer =
            source(&PROTECTED.replace("https://idp.example\"", "https://else.example\""));
        assert!(check_start(&state, &other_issuer, true).is_err());
        // Lifting the protection alone is allowed, and once served (kept),
        // the change passes.
        let lifted = source(&PROTECTED.replace(
            "undeletable: true, immutable: true",
            "undeletable: false, immutable: false",
        ));
        assert_eq!(check_start(&state, &lifted, true), Ok(None));
        keep(&state, &record(&lifted));
        assert!(
            !state.protected_policies().exists(),
            "nothing protected: no record"
        );
        assert_eq!(check_start(&state, &changed, true), Ok(None));
    }

    #[test]
    fn a_damaged_record_refuses_the_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::new(dir.path());
        keep(&state, &record(&source(PROTECTED)));
        for damaged in [&b"{\"routes\": [1]}"[..], b"{\"garbage", b""] {
            jwtgate_state::write_private(&state.protected_policies(), damaged).expect("write");
            let why = check_start(&state, &RawConfig::default(), true).expect_err("damaged");
            assert!(why.contains("protected-policies.json: the record"), "{why}");
            assert!(why.contains("is damaged"), "{why}");
            assert!(
                why.contains("remove it to start from the file as it is"),
                "{why}"
            );
        }
        // One other users may write is used all the same, said: it can only
        // refuse edits, and Kubernetes' fsGroup makes files group-writable.
        keep(&state, &record(&source(PROTECTED)));
        let path = state.protected_policies();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660)).expect("chmod");
        let notice = check_start(&state, &source(PROTECTED), true)
            .expect("used")
            .expect("said");
        assert!(notice.contains("mode 0660"), "{notice}");
        assert!(notice.contains("used all the same"), "{notice}");
        let changed = source(&PROTECTED.replace("consumers: false", "consumers: true"));
        assert!(check_start(&state, &changed, true).is_err(), "and checked");
        // A link is not the node's own file: not used, and the start stops.
        std::fs::remove_file(&path).expect("remove");
        let elsewhere = dir.path().join("elsewhere.json");
        std::fs::write(&elsewhere, record(&source(PROTECTED))).expect("write");
        std::os::unix::fs::symlink(&elsewhere, &path).expect("symlink");
        let why = check_start(&state, &source(PROTECTED), true).expect_err("a link");
        assert!(why.contains("cannot be used (is a symbolic link"), "{why}");
        // Removed, the file starts as it is.
        std::fs::remove_file(&path).expect("remove");
        assert_eq!(check_start(&state, &RawConfig::default(), true), Ok(None));
    }
}
