//! The live configuration, and the ONE path by which it changes. Admin API
//! writes ([`LiveConfig::update`]), reloads of the node's file (watcher,
//! SIGHUP: [`LiveConfig::reload`]) and, with etcd, the revisions every node
//! follows, all take the same steps:
//!
//! 1. compile the new source config, collecting every error (`check`);
//! 2. check protections, old against new (SPEC §3.5);
//! 3. make it durable where the config lives: the file written back, or an
//!    etcd transaction (the [`ConfigSource`]);
//! 4. swap the data plane's [`Gateway`] whole ([`Running::install`]).
//!    Requests in flight keep the version they started with; the next
//!    request sees the new one.
//!
//! Where the routes, consumers and providers live is the config source's
//! business (`source::file`, `source::etcd`); steps 1, 2 and 4 are the same
//! code for both.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use jwtgate_config::{Config, ConfigError, ConfigErrors, ObjectId, RawConfig, TlsMaterial};
use jwtgate_keys::KeyService;
use jwtgate_proxy::{Gateway, SharedGateway, TlsServer};
use jwtgate_store::Revocations;
use serde_json::Value;
use tracing::{info, warn};

use crate::check::{compile_checked, compile_text, Loaded};
use crate::error::AdminError;
use crate::source::file::FileSource;
use crate::source::{ConfigSource, SourceEdit};
use crate::warnings::Warnings;
use jwtgate_state::parent_dir;

/// What asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// SIGHUP: recompile even if the file is unchanged (a key file it
    /// references may have changed).
    Signal,
    /// The watcher saw the file (or its directory) change.
    FileChanged,
    /// The watcher saw a file the config names change (a certificate, a
    /// key set): recompiled even if the config's own text is unchanged.
    NamedFileChanged,
    /// An admin write found the file edited by hand since it was applied,
    /// and applies the edit first.
    AdminWrite,
}

/// How long a config file must be still before an edit of it is read: the
/// writes of one save (an editor's truncate, then its pieces) settle first.
pub const EDIT_SETTLE: std::time::Duration = std::time::Duration::from_millis(200);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadOutcome {
    Applied,
    /// The file is what is already running (e.g. our own write-back).
    Unchanged,
    Invalid,
    Protected,
}

/// An admin edit of the running source: the whole new source, where in it
/// the edited item lies (`routes[2]`), what it is (for messages), what to
/// answer once applied, and the shape errors the body's reader found.
pub struct Edit<T> {
    pub source: RawConfig,
    /// The object the edit is about (a route, for one of its policy), for a
    /// source that keeps objects apart (etcd).
    pub object: ObjectId,
    pub at: String,
    pub what: String,
    pub reply: T,
    /// Non-empty: the body was not fully readable; the edit is refused with
    /// these and whatever else compiling the rest finds.
    pub problems: Vec<ConfigError>,
    /// The write was asked only of a version (`If-Match` or
    /// `If-None-Match` naming entity tags), judged against what this node
    /// holds: a source whose node may hold another version than the one
    /// shared (an object etcd holds that this node refused) refuses it.
    pub versioned: bool,
    /// The body is the whole object (a PUT of a route, consumer or
    /// provider), not a change merged onto this node's copy of it, which a
    /// source others write to may hold at an older version.
    pub whole: bool,
}

/// The TLS of the data plane's listeners and of the admin listener, each
/// when it serves HTTPS.
#[derive(Default)]
pub struct TlsServers {
    pub data: Option<Arc<TlsServer>>,
    pub admin: Option<Arc<TlsServer>>,
}

/// What is running now, and step 4: putting a new version live.
pub struct Running {
    /// The node's own config file.
    path: PathBuf,
    base_dir: PathBuf,
    gateway: SharedGateway,
    revocations: Arc<Revocations>,
    /// The identity providers' keepers: a change keeps the keys of a
    /// provider whose origin did not change.
    keys: Arc<KeyService>,
    /// The listeners' TLS: a change of certificates or settings serves
    /// the next handshake.
    tls: TlsServers,
    /// The running source, for lock-free reads by GET handlers.
    source: ArcSwap<RawConfig>,
    config: ArcSwap<Config>,
    /// The running admin key; empty when the admin API is disabled.
    admin_key: ArcSwap<String>,
    /// `admin.allowed_hosts` as running.
    admin_hosts: ArcSwap<Vec<String>>,
    /// The config file's bytes changed and its writer has not closed it
    /// yet (the file watch says so): what it holds may be half a save.
    file_open: Arc<std::sync::atomic::AtomicBool>,
    /// Drops each replaced gateway off the data plane.
    reaper: crate::reaper::Reaper,
    /// What the process set up once, at start.
    started: StartOnly,
    /// The settings the installed config holds otherwise than the process
    /// serves them, until a restart (`/status`'s `restart_pending`), each
    /// with what the log said of it.
    pending: ArcSwap<Vec<(&'static str, String)>>,
}

impl Running {
    pub fn new(
        path: &Path,
        source: RawConfig,
        config: Config,
        gateway: SharedGateway,
        revocations: Arc<Revocations>,
        keys: Arc<KeyService>,
        tls: TlsServers,
    ) -> Arc<Running> {
        Arc::new(Running {
            path: path.to_owned(),
            base_dir: parent_dir(path),
            gateway,
            revocations,
            keys,
            tls,
            admin_key: ArcSwap::from_pointee(admin_key(&config)),
            admin_hosts: ArcSwap::from_pointee(admin_hosts(&config)),
            started: StartOnly::of(&config),
            pending: ArcSwap::from_pointee(Vec::new()),
            source: ArcSwap::from_pointee(source),
            config: ArcSwap::from_pointee(config),
            file_open: Arc::default(),
            reaper: crate::reaper::Reaper::start(),
        })
    }

    /// Where the file watch says whether the config file is being written
    /// (its bytes changed since its writer last closed it). A flag, not
    /// the `Running`: the watcher's thread may outlive the node's shutdown,
    /// and what it holds then (the revocation store) is not closed.
    pub fn file_open_flag(&self) -> Arc<std::sync::atomic::AtomicBool> {
        Arc::clone(&self.file_open)
    }

    /// Whether the config file is being written: a hand edit is not read
    /// from it until it is closed.
    pub fn file_open(&self) -> bool {
        self.file_open.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The settings whose change waits for a restart (`listen`, `store`...).
    pub fn restart_pending(&self) -> Vec<&'static str> {
        self.pending.load().iter().map(|(name, _)| *name).collect()
    }

    /// Where relative file references of the config are resolved.
    pub fn base_dir(&self) -> &Path {
        &self.base_dir
    }

    pub fn source(&self) -> Arc<RawConfig> {
        self.source.load_full()
    }

    /// The installed config, `${NAME}` references expanded.
    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    /// Step 1 for a whole source config (`problems`: the reader's errors
    /// for the item at `at`), TLS keys checked against their certificates
    /// too.
    pub fn compile(
        &self,
        source: &RawConfig,
        problems: Vec<ConfigError>,
        at: &str,
    ) -> Result<Config, ConfigErrors> {
        self.no_worse_certificates(tls_checked(compile_checked(
            source,
            problems,
            at,
            &self.base_dir,
        )?)?)
    }

    /// `config` unless it would serve, in place of a certificate clients
    /// accept today, one that has expired: every client would be refused
    /// until the next good reload. A renewal gone wrong (the old file
    /// copied back, the wrong file) is refused as a whole, as a key that
    /// does not match its certificate is, and the certificate serving
    /// stays. Compared as SNI chooses (for each name a good certificate
    /// serving today answers, and without SNI), not by place in the list,
    /// which a reload may change (the review). At start, where the one
    /// serving is no better, and for a certificate not valid yet (a
    /// renewal whose notBefore is the moment it was issued, on a node whose
    /// clock is a little behind, would be refused and never tried again:
    /// the review), it is a warning (`jwtgate check`), as nginx serves what
    /// it is given.
    fn no_worse_certificates(&self, config: Config) -> Result<Config, ConfigErrors> {
        use jwtgate_config::{chosen_for, CertificatePem};
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let good = |c: &CertificatePem| {
            c.validity()
                .is_some_and(|(from, to)| from <= now && now <= to)
        };
        let expired_on = |c: &CertificatePem| c.validity().map(|(_, to)| to).filter(|&to| to < now);
        let running = self.config.load();
        let admin_tls = |c: &Config| c.admin.as_ref().and_then(|a| a.tls.clone());
        let pairs = [
            (config.tls.clone(), running.tls.clone()),
            (admin_tls(&config), admin_tls(&running)),
        ];
        let mut errors: Vec<ConfigError> = Vec::new();
        for (next, serving) in pairs {
            let (Some(next), Some(serving)) = (next, serving) else {
                continue;
            };
            // A handshake without SNI, and each name a good certificate
            // serving today holds (a wildcard's by a name under it).
            let mut asked: Vec<Option<String>> = vec![None];
            for cert in serving.certificates.iter().filter(|c| good(c)) {
                for name in cert.dns_names() {
                    asked.push(Some(match name.strip_prefix('*') {
                        Some(suffix) => format!("jwtgate-any{suffix}"),
                        None => name,
                    }));
                }
            }
            for name in asked {
                let (Some(old), Some(new)) = (
                    chosen_for(&serving.certificates, name.as_deref()),
                    chosen_for(&next.certificates, name.as_deref()),
                ) else {
                    continue;
                };
                let Some(to) = expired_on(new) else {
                    continue;
                };
                let location = format!("{}.cert_file", new.location);
                if old.cert_pem == new.cert_pem
                    || !good(old)
                    || errors.iter().any(|e| e.location == location)
                {
                    continue;
                }
                let date = jwtgate_core::x509::date;
                let until = old.validity().map_or(0, |(_, to)| to);
                let whom = match name.as_deref() {
                    None => "to clients without SNI".to_owned(),
                    Some(n) => format!("for {}", n.replace("jwtgate-any.", "*.")),
                };
                errors.push(ConfigError {
                    location,
                    message: format!(
                        "expired on {}, and would be served {whom} in place of a certificate \
                         good until {}: clients would refuse every handshake; the one serving \
                         stays (renew the file, then SIGHUP)",
                        date(to),
                        date(until)
                    ),
                });
            }
        }
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// Step 1 for a change of routes, consumers or providers (an admin
    /// write, an etcd object): the TLS being served is kept rather than
    /// read again from disk, where a certificate renewal may be half
    /// written (it would refuse an unrelated change) or done and waiting
    /// for its SIGHUP (it would go live unasked). A source whose TLS
    /// settings differ from the running ones is compiled whole.
    pub fn compile_change(
        &self,
        source: &RawConfig,
        problems: Vec<ConfigError>,
        at: &str,
    ) -> Result<Config, ConfigErrors> {
        let running = self.source.load();
        let admin_tls = |c: &RawConfig| c.admin.as_ref().and_then(|a| a.tls.clone());
        if source.tls != running.tls || admin_tls(source) != admin_tls(&running) {
            return self.compile(source, problems, at);
        }
        let mut without = source.clone();
        without.tls = None;
        if let Some(admin) = without.admin.as_mut() {
            admin.tls = None;
        }
        let mut config = compile_checked(&without, problems, at, &self.base_dir)?;
        let current = self.config.load();
        config.tls = current.tls.clone();
        if let (Some(admin), Some(serving)) = (config.admin.as_mut(), current.admin.as_ref()) {
            admin.tls = serving.tls.clone();
        }
        Ok(config)
    }

    /// Step 1 for the text of the node's file, TLS keys checked against
    /// their certificates too: a reload with a key that does not match is
    /// refused as a whole, as one with a missing key file is.
    pub fn compile_text(&self, text: &str) -> Result<(RawConfig, Config), ConfigErrors> {
        let (source, config) = compile_text(text, &self.base_dir)?;
        Ok((source, self.no_worse_certificates(tls_checked(config)?)?))
    }

    /// The config warnings `next` (compiled from `source`) has and the
    /// running config does not: what a change to `next` brings. A warning
    /// about a route, consumer or provider names it (`routes/orders/jwt`),
    /// as admin and etcd clients know it, not by its place in the list.
    pub fn new_warnings(&self, source: &RawConfig, next: &Config) -> Vec<String> {
        let said = crate::check::warnings;
        let before: HashSet<String> = said(&self.source.load(), &self.config.load())
            .into_iter()
            .collect();
        said(source, next)
            .into_iter()
            .filter(|w| !before.contains(w))
            .collect()
    }

    /// Step 4: `config` (compiled from `source`, protections checked)
    /// goes live. The caller serialises changes.
    /// Answers with the warnings it brought (and logged).
    pub fn install(&self, source: RawConfig, config: Config) -> Vec<String> {
        let current = self.config.load();
        // Said when what waits for a restart changes (an admin write or an
        // etcd revision that leaves it as it was says nothing again);
        // `/status` lists it meanwhile.
        let differences = self.started.differences(&config);
        let before = self.pending.swap(Arc::new(differences.clone()));
        if *before != differences {
            for (_, said) in &differences {
                warn!("{said}");
            }
            if differences.is_empty() {
                info!("the config's restart-only settings are as the node serves them again");
            }
        }
        // TLS turned on or off takes a restart: until then the running
        // config says what the listeners serve, so that its warnings (an
        // admin key crossing the network in clear) are about what is.
        let mut config = config;
        if self.tls.data.is_none() || config.tls.is_none() {
            config.tls = current.tls.clone().filter(|_| self.tls.data.is_some());
        }
        if let Some(admin) = config.admin.as_mut() {
            let served = current.admin.as_ref().and_then(|a| a.tls.clone());
            if self.tls.admin.is_none() || admin.tls.is_none() {
                admin.tls = served.filter(|_| self.tls.admin.is_some());
            }
        }
        // Valid, but probably not what was meant: said once, when it first
        // goes live (`jwtgate check` prints them too).
        let brought = self.new_warnings(&source, &config);
        for w in &brought {
            // A warning quotes names, which an etcd writer or an admin
            // chose: escaped, they cannot write lines of their own (an
            // outside audit forged an INFO line with a route's name).
            warn!("config: {}", jwtgate_core::invisible::escaped(w));
        }
        if let Some(server) = &self.tls.data {
            let running = current.tls.as_ref();
            if let Some(kept) = reload_tls(server, running, config.tls.as_ref()) {
                config.tls = kept;
            }
        }
        if let (Some(server), Some(admin)) = (&self.tls.admin, config.admin.as_mut()) {
            let running = current.admin.as_ref().and_then(|a| a.tls.as_ref());
            if let Some(kept) = reload_tls(server, running, admin.tls.as_ref()) {
                admin.tls = kept;
            }
        }
        let ring = self.keys.apply(&config);
        let replaced = self.gateway.swap(Arc::new(Gateway::new(
            &config,
            Arc::clone(&self.revocations),
            ring,
        )));
        self.reaper.give(replaced);
        self.admin_key.store(Arc::new(admin_key(&config)));
        self.admin_hosts.store(Arc::new(admin_hosts(&config)));
        self.source.store(Arc::new(source));
        self.config.store(Arc::new(config));
        brought
    }
}

/// Serves the next handshakes of `server` with `next`, when it differs from
/// `running`. Answers with what the running config is to say instead of
/// `next` when that failed: `running`, so the next reload tries again.
fn reload_tls(
    server: &TlsServer,
    running: Option<&TlsMaterial>,
    next: Option<&TlsMaterial>,
) -> Option<Option<TlsMaterial>> {
    let next = next.filter(|n| running != Some(*n))?;
    match server.update(next) {
        Ok(()) => {
            tracing::info!("{}: TLS certificates and settings reloaded", next.at);
            None
        }
        // `compile` checked them: only a library failure lands here.
        Err(e) => {
            tracing::error!(
                "{}: TLS not reloaded, the previous settings stay: {e}",
                next.at
            );
            Some(running.cloned())
        }
    }
}

/// `config` if its TLS keys match their certificates.
fn tls_checked(config: Config) -> Result<Config, ConfigErrors> {
    let errors = crate::check::tls_problems(&config);
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(ConfigErrors(errors))
    }
}

pub struct LiveConfig {
    running: Arc<Running>,
    source: Arc<dyn ConfigSource>,
    /// The entity tags' maker for the admin key in force.
    taggers: crate::etag::Taggers,
    /// Set once `/status` has found nothing to wait for: from then on a
    /// provider's first keys no longer make the node `starting`.
    settled: std::sync::atomic::AtomicBool,
}

impl LiveConfig {
    /// Everything in the node's file, written back on admin changes.
    pub fn file(
        path: &Path,
        loaded: Loaded,
        gateway: SharedGateway,
        revocations: Arc<Revocations>,
        keys: Arc<KeyService>,
        tls: TlsServers,
    ) -> Arc<Self> {
        let admin = loaded.config.admin.is_some();
        let state = jwtgate_state::StateDir::new(&loaded.config.state_dir);
        let running = Running::new(
            path,
            loaded.source,
            loaded.config,
            gateway,
            revocations,
            keys,
            tls,
        );
        // Said at start rather than at the first admin write.
        if admin {
            // The file a link names is the one written back (source/file.rs).
            let target = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
            if let Err(e) = jwtgate_state::can_replace(&target) {
                tracing::warn!(
                    "admin API changes cannot be written back to {}: {e}; admin writes answer \
                     500 until they can",
                    path.display()
                );
            }
        }
        let source = Arc::new(FileSource::new(path, loaded.text, state.clone()));
        source.keep_protections(&running.source(), &state);
        Self::with_source(running, source)
    }

    /// `running` kept in step with `source`.
    pub fn with_source(running: Arc<Running>, source: Arc<dyn ConfigSource>) -> Arc<Self> {
        Arc::new(LiveConfig {
            running,
            source,
            taggers: crate::etag::Taggers::default(),
            settled: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Whether the node has been ready once (its first keys, blacklist and
    /// etcd objects in): a provider added since (a reload, an admin write,
    /// an etcd revision) is not waited for. Its tokens are new to the node
    /// anyway, and a node out of rotation for its first fetch is every node
    /// at once with etcd (an outside audit).
    pub fn settled(&self) -> bool {
        self.settled.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Marks the node as having been ready once ([`LiveConfig::settled`]).
    pub fn settle(&self) {
        self.settled
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn path(&self) -> &Path {
        self.running.path()
    }

    pub fn running(&self) -> &Arc<Running> {
        &self.running
    }

    pub fn source(&self) -> Arc<RawConfig> {
        self.running.source()
    }

    pub fn admin_key(&self) -> Arc<String> {
        self.running.admin_key.load_full()
    }

    /// The certificates each TLS listener serves (`data`, `admin`): their
    /// places in the config and when they expire.
    pub fn certificate_expiries(&self) -> Vec<(&'static str, Arc<Vec<jwtgate_proxy::Expiry>>)> {
        let tls = &self.running.tls;
        [("data", &tls.data), ("admin", &tls.admin)]
            .into_iter()
            .filter_map(|(listener, server)| Some((listener, server.as_ref()?.expiries())))
            .collect()
    }

    /// The names a plain-HTTP admin listener answers to besides addresses
    /// and `localhost` (`admin.allowed_hosts`).
    pub fn admin_hosts(&self) -> Arc<Vec<String>> {
        self.running.admin_hosts.load_full()
    }

    /// The entity tags of the objects, under the admin key in force.
    pub(crate) async fn tagger(&self) -> Arc<crate::etag::Tagger> {
        self.taggers.of(&self.admin_key()).await
    }

    pub fn revocations(&self) -> &Arc<Revocations> {
        &self.running.revocations
    }

    pub fn keys(&self) -> &Arc<KeyService> {
        &self.running.keys
    }

    /// The data plane's current version.
    pub fn gateway(&self) -> Arc<Gateway> {
        self.running.gateway.load_full()
    }

    /// The config source's state, for `/status` (`None`: the file).
    pub fn source_status(&self) -> Option<Value> {
        self.source.status()
    }

    /// Re-reads the node's file and applies it if it changed (or always,
    /// on SIGHUP). Logged and counted whatever the outcome.
    pub async fn reload(&self, trigger: Trigger) -> ReloadOutcome {
        self.source.reload(&self.running, trigger).await
    }

    /// Applies an admin edit once the config source holds it. `edit` sees
    /// the running source and may run more than once (a source that
    /// others write to retries it on the newer version), so concurrent
    /// edits compose. Answers with the edit's reply and the config warnings
    /// it brings, for the client.
    pub async fn update<T: Send>(
        &self,
        mut edit: impl FnMut(&RawConfig) -> Result<Edit<T>, AdminError> + Send,
    ) -> Result<(T, Warnings), AdminError> {
        let mut reply = None;
        let mut make = |current: &RawConfig| {
            let e = edit(current)?;
            reply = Some(e.reply);
            Ok(SourceEdit {
                source: e.source,
                object: e.object,
                at: e.at,
                what: e.what,
                problems: e.problems,
                versioned: e.versioned,
                whole: e.whole,
            })
        };
        // A body the reader refused is refused whatever the source holds
        // now: said at once with every problem, also while etcd is down or
        // this node catches up with it (it answered 503 then).
        if let Ok(e) = make(&self.running.source()) {
            if !e.problems.is_empty() {
                if let Err(errors) = self.running.compile_change(&e.source, e.problems, &e.at) {
                    return Err(AdminError::invalid(format!("invalid {}", e.what), errors));
                }
            }
        }
        let warnings = self.source.update(&self.running, &mut make).await?;
        // `update` succeeds only after running the edit at least once.
        let reply =
            reply.ok_or_else(|| AdminError::Persist("the change produced no answer".into()))?;
        Ok((reply, Warnings(warnings)))
    }
}

fn admin_hosts(config: &Config) -> Vec<String> {
    config
        .admin
        .as_ref()
        .map(|a| a.allowed_hosts.clone())
        .unwrap_or_default()
}

fn admin_key(config: &Config) -> String {
    config
        .admin
        .as_ref()
        .map(|a| a.api_key.clone())
        .unwrap_or_default()
}

/// `workers`, `worker_cpu_affinity`, `worker_yield`, `max_connections`.
type WorkerSettings = (
    Option<std::num::NonZeroUsize>,
    jwtgate_config::WorkerAffinity,
    bool,
    Option<std::num::NonZeroUsize>,
);

/// The settings a process sets up once, at start: its listeners, the
/// store, its workers, where its config comes from.
struct StartOnly {
    listen: Vec<std::net::SocketAddr>,
    admin_listen: Option<std::net::SocketAddr>,
    tls: bool,
    admin_tls: bool,
    store: jwtgate_config::StoreConfig,
    workers: WorkerSettings,
    config_source: Option<jwtgate_config::EtcdSettings>,
}

impl StartOnly {
    fn of(c: &Config) -> StartOnly {
        StartOnly {
            listen: c.listen.clone(),
            admin_listen: c.admin.as_ref().map(|a| a.listen),
            tls: c.tls.is_some(),
            admin_tls: c.admin.as_ref().is_some_and(|a| a.tls.is_some()),
            store: c.store.clone(),
            workers: (
                c.workers,
                c.worker_cpu_affinity,
                c.worker_yield,
                c.max_connections,
            ),
            config_source: c.config_source.clone(),
        }
    }

    /// The settings `next` holds otherwise than the process serves them,
    /// each with what to say of it: what the config says and what is
    /// served (the store's settings excepted: they hold its password).
    fn differences(&self, next: &Config) -> Vec<(&'static str, String)> {
        let now = StartOnly::of(next);
        let mut pending = Vec::new();
        let show = |l: &[std::net::SocketAddr], a: Option<std::net::SocketAddr>| {
            let mut all: Vec<String> = l.iter().map(ToString::to_string).collect();
            all.extend(a.map(|a| format!("admin {a}")));
            all.join(", ")
        };
        if now.listen != self.listen || now.admin_listen != self.admin_listen {
            pending.push((
                "listen",
                format!(
                    "listen addresses: the config says {}, the node listens on {} until a restart",
                    show(&now.listen, now.admin_listen),
                    show(&self.listen, self.admin_listen)
                ),
            ));
        }
        let on_off = |on: bool| if on { "on" } else { "off" };
        if now.tls != self.tls {
            pending.push((
                "tls",
                format!(
                    "tls: the config turns it {}, the node serves with it {} until a restart",
                    on_off(now.tls),
                    on_off(self.tls)
                ),
            ));
        }
        if now.admin_tls != self.admin_tls {
            pending.push((
                "admin.tls",
                format!(
                    "admin.tls: the config turns it {}, the admin API serves with it {} until a \
                     restart",
                    on_off(now.admin_tls),
                    on_off(self.admin_tls)
                ),
            ));
        }
        if now.store != self.store {
            pending.push((
                "store",
                "store: the config's settings differ from those the node started with; they \
                 take effect on restart"
                    .to_owned(),
            ));
        }
        if now.workers != self.workers {
            let show = |w: &WorkerSettings| {
                let count = |n: Option<std::num::NonZeroUsize>| {
                    n.map_or_else(|| "auto".to_owned(), |n| n.to_string())
                };
                format!(
                    "workers {}, worker_cpu_affinity {:?}, worker_yield {}, max_connections {}",
                    count(w.0),
                    w.1,
                    w.2,
                    count(w.3)
                )
            };
            pending.push((
                "workers",
                format!(
                    "workers: the config says {}, the node runs with {} until a restart",
                    show(&now.workers),
                    show(&self.workers)
                ),
            ));
        }
        if now.config_source != self.config_source {
            pending.push((
                "config_source",
                "config_source: the config's differs from the one the node started with; it \
                 takes effect on restart"
                    .to_owned(),
            ));
        }
        pending
    }
}
