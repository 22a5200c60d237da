//! The config file as the source of everything (no `config_source`): the
//! watcher and SIGHUP reload it, admin writes write it back atomically.
//!
//! One async mutex serialises every change, so two admin writes (or a write
//! and a reload) never lose each other's changes: each one reads, edits and
//! applies the config while holding it.

use std::path::{Path, PathBuf};

use jwtgate_config::{to_yaml, ConfigErrors, RawConfig};
use jwtgate_proxy::metrics;
use jwtgate_state::write_private_if;
use serde_json::{json, Value};
use tokio::sync::Mutex;
use tracing::{info, warn};

use super::{BoxFuture, ConfigSource, MakeEdit};
use crate::error::AdminError;
use crate::live::{ReloadOutcome, Running, Trigger, EDIT_SETTLE};
use crate::protect;

/// Written at the top of the file by the admin API, so that whoever opens
/// it knows why their comments are gone.
const WRITTEN_HEADER: &str = "# Written by the jwtgate admin API. Comments and key order of the \
                              hand-written file are not kept.\n";

/// Why a change was not applied.
pub(crate) enum Rejection {
    Invalid(ConfigErrors),
    Protected(String),
}

struct Texts {
    /// The file text the running config came from (or that we wrote).
    applied: Option<String>,
    /// The last file text evaluated, applied or not.
    seen: Option<String>,
}

pub struct FileSource {
    path: PathBuf,
    texts: Mutex<Texts>,
    /// What `/status` shows while the file holds what the node refused (an
    /// edit that is invalid or touches a protected policy, a file that
    /// cannot be read): the node runs on a config the file no longer says.
    /// Kept apart from `texts`, which a reload holds across its awaits.
    refused: std::sync::Mutex<Option<Value>>,
    /// Where the protected policies served are kept for the next start
    /// ([`super::protected`]), and the record last written.
    state: jwtgate_state::StateDir,
    kept: std::sync::Mutex<Option<Vec<u8>>>,
    /// Another `state_dir` the file names (it waits for a restart), and the
    /// record last written there: the next start reads it there.
    kept_named: std::sync::Mutex<Option<(jwtgate_state::StateDir, Vec<u8>)>>,
}

impl FileSource {
    /// `text`: the file's text the running config was compiled from;
    /// `state`: the node's `state_dir`.
    pub fn new(path: &Path, text: String, state: jwtgate_state::StateDir) -> FileSource {
        FileSource {
            path: path.to_owned(),
            texts: Mutex::new(Texts {
                applied: Some(text.clone()),
                seen: Some(text),
            }),
            refused: std::sync::Mutex::new(None),
            state,
            kept: std::sync::Mutex::new(None),
            kept_named: std::sync::Mutex::new(None),
        }
    }

    /// Keeps what the protections of `source` (now served) are checked
    /// against at the next start, in this node's `state_dir` and in `named`,
    /// the one the file names; written only when it changed (a consumer
    /// added changes nothing of it).
    pub fn keep_protections(&self, source: &RawConfig, named: &jwtgate_state::StateDir) {
        self.keep_named(named, source);
        let record = super::protected::record(source);
        let mut kept = self
            .kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if kept.as_ref() != Some(&record) {
            // Written again at the next change when it failed.
            *kept = super::protected::keep(&self.state, &record).then_some(record);
        }
    }

    /// The file names `named` as its `state_dir`: when that is another
    /// than this node's (it waits for a restart), the record of the
    /// policies `served` goes there too, since the next start reads it
    /// there, and follows every later change (an admin write included: a
    /// review). Without it, an edit refused here (a protection lifted, a
    /// policy changed) beside a new `state_dir` found no record at the
    /// start and went live (an outside audit). A directory the file no
    /// longer names loses the record written there.
    fn keep_named(&self, named: &jwtgate_state::StateDir, served: &RawConfig) {
        let mut kept = self
            .kept_named
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((before, _)) = kept.as_ref().filter(|(dir, _)| dir != named) {
            super::protected::keep(before, &[]);
            *kept = None;
        }
        if named == &self.state {
            return;
        }
        let record = super::protected::record(served);
        if kept.as_ref().map(|(_, r)| r) != Some(&record) && super::protected::keep(named, &record)
        {
            *kept = Some((named.clone(), record));
        }
    }

    async fn reload_locked(
        &self,
        running: &Running,
        texts: &mut Texts,
        trigger: Trigger,
    ) -> ReloadOutcome {
        let path = self.path.display();
        match read_config(&self.path).await {
            Ok(text) => self.evaluate(running, texts, trigger, text).0,
            Err(e) => {
                // Editors may briefly remove the file; the next event retries,
                // and reads even the text it had before as news (so that what
                // /status says of the unreadable file goes).
                texts.seen = None;
                warn!(
                    outcome = "invalid",
                    "config reload: cannot read {path}: {e}; the running config stays"
                );
                metrics::record_config_reload("invalid");
                self.show_refused(Some(("invalid", format!("cannot read {path}: {e}"))));
                ReloadOutcome::Invalid
            }
        }
    }

    /// Applies the file's `text` if it is valid and leaves protected
    /// policies alone; else says why not. Each text is logged and counted
    /// once: an admin write that meets a refused edit again (and is refused
    /// for it) is not another reload.
    fn evaluate(
        &self,
        running: &Running,
        texts: &mut Texts,
        trigger: Trigger,
        text: String,
    ) -> (ReloadOutcome, Option<Rejection>) {
        let path = self.path.display();
        let seen = texts.seen.as_deref() == Some(text.as_str());
        if trigger == Trigger::FileChanged && seen {
            return (ReloadOutcome::Unchanged, None);
        }
        texts.seen = Some(text.clone());
        let result = match running.compile_text(&text) {
            Ok((source, config)) => {
                let next_state = jwtgate_state::StateDir::new(&config.state_dir);
                match protect::check(&running.source(), &source) {
                    Ok(()) => {
                        self.keep_protections(&source, &next_state);
                        running.install(source, config);
                        Ok(())
                    }
                    Err(why) => {
                        self.keep_named(&next_state, &running.source());
                        Err(Rejection::Protected(why))
                    }
                }
            }
            Err(errors) => Err(Rejection::Invalid(errors)),
        };
        // Counted before it is logged, so whoever sees the log line sees
        // the count too.
        match result {
            Ok(()) => {
                texts.applied = Some(text);
                self.show_refused(None);
                metrics::record_config_reload("applied");
                info!(outcome = "applied", ?trigger, "config reloaded from {path}");
                (ReloadOutcome::Applied, None)
            }
            Err(rejection) => {
                self.show_refused(Some(rejection.summary()));
                let outcome = if trigger == Trigger::AdminWrite && seen {
                    rejection.outcome()
                } else {
                    log_rejection(&rejection, trigger, &path.to_string())
                };
                (outcome, Some(rejection))
            }
        }
    }

    /// Sets (or clears) what `/status` says the file holds that the node
    /// refused: the outcome and why, since when.
    fn show_refused(&self, refused: Option<(&'static str, String)>) {
        let Ok(mut shown) = self.refused.lock() else {
            return;
        };
        // The same refusal again (a SIGHUP, an admin write meeting it) is
        // not a new one: it keeps its `since`.
        let next = refused.map(|(outcome, reason)| {
            let kept = shown.as_ref().map(|v| &v[0]).and_then(|before| {
                let same = before["outcome"] == outcome && before["reason"] == reason.as_str();
                same.then(|| before["since"].as_u64()).flatten()
            });
            let since = kept.unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs())
            });
            json!([{
                "key": self.path.display().to_string(),
                "outcome": outcome,
                "since": since,
                "reason": reason,
            }])
        });
        *shown = next;
    }

    /// Before an API write: if the file was edited by hand since it was last
    /// applied (and the watcher has not caught up, or rejected the edit),
    /// apply it first; if it cannot be applied, refuse the write rather than
    /// overwrite the operator's edit.
    async fn adopt_file_edits(
        &self,
        running: &Running,
        texts: &mut Texts,
    ) -> Result<(), AdminError> {
        let text = match read_config(&self.path).await {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                warn!(
                    "{} is missing; the admin write will recreate it",
                    self.path.display()
                );
                return Ok(());
            }
            // What is there cannot be read (a FIFO, a directory, text
            // that is no UTF-8): not replaced unseen.
            Err(e) => {
                return Err(AdminError::FileConflict {
                    message: format!(
                        "cannot read {}: {e}; nothing was changed (admin changes are written \
                         back to that file)",
                        self.path.display()
                    ),
                    errors: ConfigErrors(Vec::new()),
                })
            }
        };
        if texts.applied.as_deref() == Some(text.as_str()) {
            return Ok(());
        }
        // An editor that truncates the file and writes it in pieces must
        // not have its first piece adopted (and written back over the rest):
        // the edit is taken once the file has been still for as long as the
        // watcher waits, else the write is refused and may be tried again.
        // A text already evaluated (a refused edit) was seen settled.
        // A file its writer holds open however long it pauses is being
        // edited too (the file watch tells).
        let seen = texts.seen.as_deref() == Some(text.as_str());
        if !seen {
            tokio::time::sleep(EDIT_SETTLE).await;
        }
        let moved =
            || async { read_config(&self.path).await.ok().as_deref() != Some(text.as_str()) };
        if running.file_open() || (!seen && moved().await) {
            return Err(AdminError::FileConflict {
                message: format!(
                    "{} is being edited; nothing was changed: try again once it is saved \
                     (the edit is applied first)",
                    self.path.display()
                ),
                errors: ConfigErrors(Vec::new()),
            });
        }
        match self.evaluate(running, texts, Trigger::AdminWrite, text) {
            (_, None) => Ok(()),
            (_, Some(rejection)) => {
                let errors = match rejection {
                    Rejection::Invalid(errors) => errors,
                    Rejection::Protected(why) => ConfigErrors::single("", why),
                };
                Err(AdminError::FileConflict {
                    message: format!(
                        "{} has hand edits that were rejected; fix or revert them before \
                         changing the config through the API",
                        self.path.display()
                    ),
                    errors,
                })
            }
        }
    }

    async fn update_inner(
        &self,
        running: &Running,
        edit: MakeEdit<'_>,
    ) -> Result<Vec<String>, AdminError> {
        let mut texts = self.texts.lock().await;
        self.adopt_file_edits(running, &mut texts).await?;
        let current = running.source();
        let e = edit(&current)?;
        let config = running
            .compile_change(&e.source, e.problems, &e.at)
            .map_err(|errors| AdminError::invalid(format!("invalid {}", e.what), errors))?;
        protect::check(&current, &e.source).map_err(AdminError::Protected)?;
        let text = format!(
            "{WRITTEN_HEADER}{}",
            to_yaml(&e.source).map_err(AdminError::Persist)?
        );
        let (path, bytes) = (self.path.clone(), text.clone().into_bytes());
        let adopted = texts.applied.clone();
        let written = tokio::task::spawn_blocking(move || {
            // A config that is a link (to a checkout, say) stays one: the
            // file it points to is replaced, as an editor would.
            let path = std::fs::canonicalize(&path).unwrap_or(path);
            // An editor may have saved the file since it was adopted above:
            // replacing it would silently drop that edit. Checked once the
            // new text is on disk, right before the rename (the window left
            // is a system call wide). A file gone is recreated.
            write_private_if(&path, &bytes, || {
                // Only a file gone is recreated: one that no longer reads
                // (a FIFO, no UTF-8) is not replaced unseen.
                match jwtgate_config::read_regular_text_bounded(
                    &path,
                    jwtgate_config::MAX_CONFIG_BYTES,
                ) {
                    Ok(now) => adopted.as_deref() == Some(now.as_str()),
                    Err(e) => e.kind() == std::io::ErrorKind::NotFound,
                }
            })
        })
        .await
        .map_err(|e| AdminError::Persist(e.to_string()))?
        .map_err(|err| AdminError::Persist(format!("{}: {err}", self.path.display())))?;
        if !written {
            return Err(AdminError::FileConflict {
                message: format!(
                    "{} was edited while this change was being made; nothing was changed: \
                     try again (the edit is applied first)",
                    self.path.display()
                ),
                errors: ConfigErrors(Vec::new()),
            });
        }
        let named = jwtgate_state::StateDir::new(&config.state_dir);
        self.keep_protections(&e.source, &named);
        let warnings = running.install(e.source, config);
        info!(target: "jwtgate::admin", change = %e.what, "admin change applied and written to {}", self.path.display());
        self.still_refused(running, &text);
        texts.applied = Some(text.clone());
        texts.seen = Some(text);
        Ok(warnings)
    }

    /// After an admin write of `text`: what `/status` says of the file. A
    /// write keeps the TLS certificates being served without reading them,
    /// so a reload refused for a renewal half-done on disk (a key that does
    /// not go with its certificate) is not mended by it: the node could not
    /// start from the file, and `/status` keeps saying so (an outside audit
    /// saw one write clear the only sign). Checked only while a refusal is
    /// shown, so that writes pay for a second compile only then.
    fn still_refused(&self, running: &Running, text: &str) {
        let shown = self.refused.lock().is_ok_and(|r| r.is_some());
        if !shown {
            return;
        }
        match running.compile_text(text) {
            Ok(_) => self.show_refused(None),
            Err(errors) => {
                let rejection = Rejection::Invalid(errors);
                warn!(
                    "{} as written does not load (the node serves its running TLS settings \
                     meanwhile, and could not start from it): {}",
                    self.path.display(),
                    rejection.summary().1
                );
                self.show_refused(Some(rejection.summary()));
            }
        }
    }
}

impl ConfigSource for FileSource {
    fn update<'a>(
        &'a self,
        running: &'a Running,
        edit: MakeEdit<'a>,
    ) -> BoxFuture<'a, Result<Vec<String>, AdminError>> {
        Box::pin(self.update_inner(running, edit))
    }

    fn reload<'a>(
        &'a self,
        running: &'a Running,
        trigger: Trigger,
    ) -> BoxFuture<'a, ReloadOutcome> {
        Box::pin(async move {
            let mut texts = self.texts.lock().await;
            self.reload_locked(running, &mut texts, trigger).await
        })
    }

    /// Only while the file holds what the node refused: a node whose file
    /// is what it runs says nothing of its source.
    fn status(&self) -> Option<Value> {
        let refused = self.refused.lock().ok()?.clone()?;
        Some(json!({ "kind": "file", "refused": refused }))
    }
}

impl Rejection {
    fn outcome(&self) -> ReloadOutcome {
        match self {
            Rejection::Invalid(_) => ReloadOutcome::Invalid,
            Rejection::Protected(_) => ReloadOutcome::Protected,
        }
    }

    /// The outcome's label and why, on one line, for `/status`.
    fn summary(&self) -> (&'static str, String) {
        match self {
            Rejection::Invalid(errors) => (
                "invalid",
                errors
                    .0
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            Rejection::Protected(why) => ("protected", why.clone()),
        }
    }
}

/// Logs and counts a rejected reload of a node's file.
pub(crate) fn log_rejection(rejection: &Rejection, trigger: Trigger, path: &str) -> ReloadOutcome {
    match rejection {
        Rejection::Invalid(errors) => {
            metrics::record_config_reload("invalid");
            warn!(
                outcome = "invalid",
                ?trigger,
                problems = errors.0.len(),
                "config reload rejected: {path} is invalid; the running config stays"
            );
            for e in &errors.0 {
                warn!("{e}");
            }
            ReloadOutcome::Invalid
        }
        Rejection::Protected(why) => {
            metrics::record_config_reload("protected");
            warn!(
                outcome = "protected",
                ?trigger,
                "config reload rejected: {why}; the running config stays"
            );
            ReloadOutcome::Protected
        }
    }
}

/// The node's config file, read off the runtime's thread and bounded
/// ([`jwtgate_config::MAX_CONFIG_BYTES`]).
pub(crate) async fn read_config(path: &std::path::Path) -> std::io::Result<String> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        jwtgate_config::read_regular_text_bounded(&path, jwtgate_config::MAX_CONFIG_BYTES)
    })
    .await
    .map_err(std::io::Error::other)?
}
