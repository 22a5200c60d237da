//! The live configuration, and the ONE path by which it changes. Admin API
//! writes ([`LiveConfig::update`]) and reloads of the file (watcher, SIGHUP:
//! [`LiveConfig::reload`]) all take the same steps:
//!
//! 1. compile the new source config, collecting every error (`check`);
//! 2. check protections, old against new (SPEC §3.5);
//! 3. for an admin write, write the file back atomically;
//! 4. swap the data plane's [`Gateway`] whole. Requests in flight keep the
//!    version they started with; the next request sees the new one.
//!
//! One async mutex serialises every change, so two admin writes (or a write
//! and a reload) never lose each other's changes: each one reads, edits and
//! applies the config while holding it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use jwtgate_config::{to_yaml, Config, ConfigError, ConfigErrors, RawConfig};
use jwtgate_keys::KeyService;
use jwtgate_proxy::{metrics, Gateway, SharedGateway};
use jwtgate_store::Revocations;
use tokio::sync::Mutex;
use tracing::{info, warn};

use crate::check::{compile_checked, compile_text, Loaded};
use crate::error::AdminError;
use crate::protect;
use jwtgate_state::{parent_dir, write_private};

/// Written at the top of the file by the admin API, so that whoever opens
/// it knows why their comments are gone.
const WRITTEN_HEADER: &str = "# Written by the jwtgate admin API. Comments and key order of the \
                              hand-written file are not kept.\n";

/// What asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// SIGHUP: recompile even if the file is unchanged (a key file it
    /// references may have changed).
    Signal,
    /// The watcher saw the file (or its directory) change.
    FileChanged,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadOutcome {
    Applied,
    /// The file is what is already running (e.g. our own write-back).
    Unchanged,
    Invalid,
    Protected,
}

/// Why a change was not applied.
enum Rejection {
    Invalid(ConfigErrors),
    Protected(String),
    Persist(String),
}

/// An admin edit of the running source: the whole new source, where in it
/// the edited item lies (`routes[2]`), what it is (for messages), what to
/// answer once applied, and the shape errors the body's reader found.
pub struct Edit<T> {
    pub source: RawConfig,
    pub at: String,
    pub what: String,
    pub reply: T,
    /// Non-empty: the body was not fully readable; the edit is refused with
    /// these and whatever else compiling the rest finds.
    pub problems: Vec<ConfigError>,
}

struct State {
    running: Config,
    /// The file text the running config came from (or that we wrote).
    applied_text: Option<String>,
    /// The last file text evaluated, applied or not.
    seen_text: Option<String>,
}

pub struct LiveConfig {
    path: PathBuf,
    base_dir: PathBuf,
    gateway: SharedGateway,
    revocations: Arc<Revocations>,
    /// The identity providers' keepers: a reload keeps the keys of a
    /// provider whose origin did not change.
    keys: Arc<KeyService>,
    /// The running source, for lock-free reads by GET handlers.
    source: ArcSwap<RawConfig>,
    /// The running admin key; empty when the admin API is disabled.
    admin_key: ArcSwap<String>,
    state: Mutex<State>,
}

impl LiveConfig {
    pub fn new(
        path: &Path,
        loaded: Loaded,
        gateway: SharedGateway,
        revocations: Arc<Revocations>,
        keys: Arc<KeyService>,
    ) -> Arc<Self> {
        Arc::new(LiveConfig {
            path: path.to_owned(),
            base_dir: parent_dir(path),
            gateway,
            revocations,
            keys,
            source: ArcSwap::from_pointee(loaded.source),
            admin_key: ArcSwap::from_pointee(admin_key(&loaded.config)),
            state: Mutex::new(State {
                running: loaded.config,
                applied_text: Some(loaded.text.clone()),
                seen_text: Some(loaded.text),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn source(&self) -> Arc<RawConfig> {
        self.source.load_full()
    }

    pub fn admin_key(&self) -> Arc<String> {
        self.admin_key.load_full()
    }

    pub fn revocations(&self) -> &Arc<Revocations> {
        &self.revocations
    }

    pub fn keys(&self) -> &Arc<KeyService> {
        &self.keys
    }

    /// The data plane's current version.
    pub fn gateway(&self) -> Arc<Gateway> {
        self.gateway.load_full()
    }

    /// Re-reads the file and applies it if it changed (or always, on
    /// SIGHUP). Logged and counted whatever the outcome.
    pub async fn reload(&self, trigger: Trigger) -> ReloadOutcome {
        let mut state = self.state.lock().await;
        self.reload_locked(&mut state, trigger).await.0
    }

    async fn reload_locked(
        &self,
        state: &mut State,
        trigger: Trigger,
    ) -> (ReloadOutcome, Option<Rejection>) {
        let path = self.path.display();
        let text = match tokio::fs::read_to_string(&self.path).await {
            Ok(t) => t,
            Err(e) => {
                // Editors may briefly remove the file; the next event retries.
                warn!(
                    outcome = "invalid",
                    "config reload: cannot read {path}: {e}; the running config stays"
                );
                metrics::record_config_reload("invalid");
                let errors = ConfigErrors::single("", format!("cannot read {path}: {e}"));
                return (ReloadOutcome::Invalid, Some(Rejection::Invalid(errors)));
            }
        };
        if trigger == Trigger::FileChanged && state.seen_text.as_deref() == Some(text.as_str()) {
            return (ReloadOutcome::Unchanged, None);
        }
        state.seen_text = Some(text.clone());
        let result = match compile_text(&text, &self.base_dir) {
            Ok((source, config)) => self.apply(state, source, config, None).await,
            Err(errors) => Err(Rejection::Invalid(errors)),
        };
        // Counted before it is logged, so whoever sees the log line sees
        // the count too.
        match result {
            Ok(()) => {
                state.applied_text = Some(text);
                metrics::record_config_reload("applied");
                info!(outcome = "applied", ?trigger, "config reloaded from {path}");
                (ReloadOutcome::Applied, None)
            }
            Err(rejection) => {
                let outcome = match &rejection {
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
                    Rejection::Protected(why) | Rejection::Persist(why) => {
                        metrics::record_config_reload("protected");
                        warn!(
                            outcome = "protected",
                            ?trigger,
                            "config reload rejected: {why}; the running config stays"
                        );
                        ReloadOutcome::Protected
                    }
                };
                (outcome, Some(rejection))
            }
        }
    }

    /// Applies an admin edit and writes it to the file. The edit sees the
    /// running source under the lock, so concurrent edits compose.
    pub async fn update<T>(
        &self,
        edit: impl FnOnce(&RawConfig) -> Result<Edit<T>, AdminError>,
    ) -> Result<T, AdminError> {
        let mut state = self.state.lock().await;
        self.adopt_file_edits(&mut state).await?;
        let current = self.source.load_full();
        let Edit {
            source,
            at,
            what,
            reply,
            problems,
        } = edit(&current)?;
        let config = compile_checked(&source, problems, &at, &self.base_dir)
            .map_err(|errors| AdminError::invalid(format!("invalid {what}"), errors))?;
        let text = format!(
            "{WRITTEN_HEADER}{}",
            to_yaml(&source).map_err(AdminError::Persist)?
        );
        match self.apply(&mut state, source, config, Some(&text)).await {
            Ok(()) => {
                info!(target: "jwtgate::admin", change = %what, "admin change applied and written to {}", self.path.display());
                state.applied_text = Some(text.clone());
                state.seen_text = Some(text);
                Ok(reply)
            }
            Err(Rejection::Invalid(errors)) => {
                Err(AdminError::invalid(format!("invalid {what}"), errors))
            }
            Err(Rejection::Protected(why)) => Err(AdminError::Protected(why)),
            Err(Rejection::Persist(why)) => Err(AdminError::Persist(why)),
        }
    }

    /// Before an API write: if the file was edited by hand since it was last
    /// applied (and the watcher has not caught up, or rejected the edit),
    /// apply it first; if it cannot be applied, refuse the write rather than
    /// overwrite the operator's edit.
    async fn adopt_file_edits(&self, state: &mut State) -> Result<(), AdminError> {
        let Ok(text) = tokio::fs::read_to_string(&self.path).await else {
            warn!(
                "{} is missing; the admin write will recreate it",
                self.path.display()
            );
            return Ok(());
        };
        if state.applied_text.as_deref() == Some(text.as_str()) {
            return Ok(());
        }
        match self.reload_locked(state, Trigger::Signal).await {
            (_, None) => Ok(()),
            (_, Some(rejection)) => {
                let errors = match rejection {
                    Rejection::Invalid(errors) => errors,
                    Rejection::Protected(why) | Rejection::Persist(why) => {
                        ConfigErrors::single("", why)
                    }
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

    /// Steps 2 to 4 of the module doc, for a config compiled by step 1
    /// (`check`). `write`: the file text to persist (admin writes); `None`
    /// for reloads, whose text is already the file.
    async fn apply(
        &self,
        state: &mut State,
        source: RawConfig,
        config: Config,
        write: Option<&str>,
    ) -> Result<(), Rejection> {
        protect::check(&self.source.load(), &source).map_err(Rejection::Protected)?;
        if let Some(text) = write {
            let (path, text) = (self.path.clone(), text.to_owned());
            tokio::task::spawn_blocking(move || write_private(&path, text.as_bytes()))
                .await
                .map_err(|e| Rejection::Persist(e.to_string()))?
                .map_err(|e| Rejection::Persist(format!("{}: {e}", self.path.display())))?;
        }
        warn_restart_only(&state.running, &config);
        let ring = self.keys.apply(&config);
        self.gateway.store(Arc::new(Gateway::new(
            &config,
            Arc::clone(&self.revocations),
            ring,
        )));
        self.admin_key.store(Arc::new(admin_key(&config)));
        self.source.store(Arc::new(source));
        state.running = config;
        Ok(())
    }
}

fn admin_key(config: &Config) -> String {
    config
        .admin
        .as_ref()
        .map(|a| a.api_key.clone())
        .unwrap_or_default()
}

/// Listeners and the store are set up once per process.
fn warn_restart_only(current: &Config, next: &Config) {
    let admin_listen = |c: &Config| c.admin.as_ref().map(|a| a.listen);
    if next.listen != current.listen || admin_listen(next) != admin_listen(current) {
        warn!("listen addresses changed: they take effect on restart");
    }
    if next.tls.is_some() != current.tls.is_some() {
        warn!("tls changed: it takes effect on restart");
    }
    if next.store != current.store {
        warn!("store settings changed: they take effect on restart");
    }
}
