//! `jwtgate run` and `jwtgate check`: load the config, bind, serve, and react
//! to signals (SIGTERM/SIGINT: graceful stop of the data plane and the admin
//! API; SIGHUP: reload). Reloads, like admin API writes, go through
//! [`LiveConfig`], the one path by which the running config changes.

use std::num::NonZeroUsize;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use jwtgate_admin::{
    AdminListener, AdminState, EtcdSource, LiveConfig, Loaded, Running, TlsServers, Trigger,
};
use jwtgate_config::{check_node_file, Config, ConfigError, ConfigErrors};
use jwtgate_keys::KeyService;
use jwtgate_proxy::metrics::MetricsHandle;
use jwtgate_proxy::{Gateway, Listeners, SharedGateway, TlsServer};
use jwtgate_state::StateDir;
use jwtgate_store::{LoadedFrom, Revocations, SnapshotFile, SyncSettings};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tracing::{error, info, warn};

/// `jwtgate check`: the file as `run` would take it.
pub fn check(path: &Path) -> ExitCode {
    match load_node(path, false) {
        Ok(loaded) => {
            let code =
                crate::out::print_with(&format!("{}: ok\n", path.display()), ExitCode::SUCCESS);
            // Valid, but probably not what was meant: said, not refused.
            for w in jwtgate_config::warnings(&loaded.config) {
                eprintln!(
                    "warning: {}",
                    jwtgate_core::invisible::escaped(&w.to_string())
                );
            }
            code
        }
        Err(errors) => {
            eprintln!("{}: {} problem(s)", path.display(), errors.0.len());
            for e in &errors.0 {
                eprintln!("{e}");
            }
            ExitCode::from(1)
        }
    }
}

/// Reads and compiles a node's file; with a `config_source`, it may hold
/// only what is per node (SPEC §6). A file that breaks a protection the
/// node last served from it is refused as its reload was: an edit refused
/// then must not go live at a restart (`check` says so too, when it can
/// read the node's `state_dir`; a start, `starting`, that cannot is
/// refused). What it notices on the way is a warning: logged at a start,
/// on stderr for `check`.
fn load_node(path: &Path, starting: bool) -> Result<Loaded, ConfigErrors> {
    let loaded = jwtgate_admin::load(path)?;
    let mut problems = check_node_file(&loaded.source);
    problems.extend(jwtgate_admin::tls_problems(&loaded.config));
    if loaded.config.config_source.is_none() {
        let state = StateDir::new(&loaded.config.state_dir);
        match jwtgate_admin::source::protected::check_start(&state, &loaded.source, starting) {
            Ok(None) => {}
            Ok(Some(notice)) if starting => tracing::warn!("{notice}"),
            Ok(Some(notice)) => eprintln!("warning: {notice}"),
            Err(why) => problems.push(ConfigError {
                location: String::new(),
                message: why,
            }),
        }
    }
    if problems.is_empty() {
        Ok(loaded)
    } else {
        Err(ConfigErrors(problems))
    }
}

pub fn run(path: &Path) -> ExitCode {
    crate::logging::init();
    // The control plane (signals, reloads, the admin API, the blacklist's
    // sync) runs here, on one thread; the data plane's workers run
    // runtimes of their own (`Listeners::serve`).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            error!("cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    // Signals are caught from here on: a SIGHUP (a reload, a certificate
    // renewal's hook) sent while the node starts waits for it to be up,
    // where its default action ended the process.
    let signals = match runtime.block_on(async { Signals::install() }) {
        Ok(s) => s,
        Err(e) => {
            error!("cannot install signal handlers: {e}");
            return ExitCode::from(1);
        }
    };
    // Read and compiled exactly as every later reload will be.
    let loaded = match load_node(path, true) {
        Ok(l) => l,
        Err(errors) => {
            error!("{}: invalid configuration", path.display());
            for e in &errors.0 {
                error!("{e}");
            }
            return ExitCode::from(2);
        }
    };
    for w in jwtgate_admin::warnings(&loaded.source, &loaded.config) {
        warn!("config: {w}");
    }
    if loaded.config.config_source.is_some() {
        // Protections live in etcd's objects: a record a file config left
        // would refuse a later start from a file on a policy long gone.
        let state = StateDir::new(&loaded.config.state_dir);
        jwtgate_admin::source::protected::keep(&state, &[]);
    }
    runtime.block_on(serve(path, loaded, signals))
}

async fn serve(path: &Path, loaded: Loaded, signals: Signals) -> ExitCode {
    let config = &loaded.config;
    let listeners = match Listeners::bind(&config.listen, config.tls.as_ref()).await {
        Ok(l) => l
            .with_workers(config.workers, config.worker_cpu_affinity)
            .with_worker_yield(config.worker_yield)
            .with_max_connections(crate::fd_limit::max_connections(
                config.max_connections.map(NonZeroUsize::get),
            )),
        Err(e) => {
            error!("{e}");
            return ExitCode::from(1);
        }
    };
    let admin_tls = match config.admin.as_ref().and_then(|a| a.tls.as_ref()) {
        Some(m) => match TlsServer::http1(m) {
            Ok(t) => Some(t),
            Err(e) => {
                error!("admin.tls: {e}");
                return ExitCode::from(1);
            }
        },
        None => None,
    };
    let admin_listener = match &config.admin {
        Some(admin) => match AdminListener::bind(admin.listen, admin_tls.clone()).await {
            Ok(l) => Some(l),
            Err(e) => {
                let hint = jwtgate_proxy::server::privileged_port_hint(admin.listen, &e);
                error!("cannot listen on {} (admin API): {e}{hint}", admin.listen);
                return ExitCode::from(1);
            }
        },
        None => None,
    };
    // The recorder first: what the store, the providers and etcd's first
    // load count is counted too.
    let metrics = admin_listener.as_ref().and_then(|_| install_metrics());
    let (stop_tx, stop_rx) = watch::channel(false);
    state_dir_usable(&config.state_dir);
    let Some((revocations, store_sync)) = open_revocations(config, stop_rx.clone()).await else {
        return ExitCode::from(1);
    };
    let store = Arc::clone(&revocations);
    // Identity providers' keys: from their disk caches now, fetched in
    // the background; never waited for.
    let keys = KeyService::new(StateDir::new(&config.state_dir));
    let ring = keys.apply(config);
    let gateway: SharedGateway = Arc::new(ArcSwap::from_pointee(Gateway::new(
        config,
        Arc::clone(&revocations),
        ring,
    )));
    let tls = TlsServers {
        data: listeners.tls(),
        admin: admin_tls,
    };
    let live = match config.config_source.clone() {
        None => LiveConfig::file(path, loaded, Arc::clone(&gateway), revocations, keys, tls),
        Some(settings) => {
            // The routes, consumers and providers come from etcd (or its
            // local copy) before the first request is served.
            let state_dir = StateDir::new(&config.state_dir);
            let node = loaded.source.clone();
            let running = Running::new(
                path,
                loaded.source,
                loaded.config,
                Arc::clone(&gateway),
                revocations,
                keys,
                tls,
            );
            let source = EtcdSource::start(
                settings,
                node,
                Arc::clone(&running),
                state_dir,
                stop_rx.clone(),
            )
            .await;
            LiveConfig::with_source(running, source)
        }
    };
    tokio::spawn(signals.handle(Arc::clone(&live), stop_tx));
    crate::file_watch::start(Arc::clone(&live), stop_rx.clone());
    // Listeners bound and store open: from here the node is ready.
    let admin = admin_listener.map(|listener| {
        let state = AdminState {
            live,
            metrics,
            ready: Arc::new(AtomicBool::new(true)),
        };
        tokio::spawn(listener.serve(state, stop_rx.clone()))
    });
    crate::notify::notify("READY=1\nSTATUS=serving");
    if let Err(e) = listeners.serve(gateway, stop_rx).await {
        error!("{e}");
        close(store).await;
        return ExitCode::from(1);
    }
    if let Some(admin) = admin {
        // Admin requests are short; the data plane has drained already.
        if tokio::time::timeout(ADMIN_DRAIN_TIMEOUT, admin)
            .await
            .is_err()
        {
            warn!("admin API requests still running after {ADMIN_DRAIN_TIMEOUT:?}; closing them");
        }
    }
    // The sync task writes what the local copy of the blacklist lacks.
    if tokio::time::timeout(STORE_SYNC_STOP_TIMEOUT, store_sync)
        .await
        .is_err()
    {
        warn!("the blacklist's local copy was not written within {STORE_SYNC_STOP_TIMEOUT:?}");
    }
    close(store).await;
    info!("stopped");
    ExitCode::SUCCESS
}

/// Closes the blacklist store (its file's last write, for the embedded
/// one) off the async workers.
async fn close(store: Arc<Revocations>) {
    let _ = tokio::task::spawn_blocking(move || store.close()).await;
}

/// How long admin requests may take to finish once the data plane stopped.
const ADMIN_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the revocation store's sync task may take to write the local
/// copy of the blacklist once the node stops.
const STORE_SYNC_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// The Prometheus recorder, only when `/metrics` can serve it.
fn install_metrics() -> Option<MetricsHandle> {
    match jwtgate_proxy::metrics::install() {
        Ok(handle) => Some(handle),
        Err(e) => {
            warn!("metrics disabled: {e}");
            None
        }
    }
}

/// Opens the revocation store and loads the blacklist into memory, then
/// starts the task that keeps it in step. An embedded store that cannot be
/// opened is fatal; a Redis that is down is not: the node serves and the
/// sync task catches up when Redis comes back.
async fn open_revocations(
    config: &Config,
    stop: watch::Receiver<bool>,
) -> Option<(Arc<Revocations>, tokio::task::JoinHandle<()>)> {
    let store = match jwtgate_store::open(&config.store) {
        Ok(s) => s,
        Err(e) => {
            error!("revocation store: {e}");
            return None;
        }
    };
    let kind = store.kind();
    let state = StateDir::new(&config.state_dir);
    let revocations = Revocations::new(store, Some(SnapshotFile::new(state.blacklist_snapshot())));
    let started = std::time::Instant::now();
    let start = match revocations.load_at_start().await {
        LoadedFrom::Store { entries, cursor } => {
            info!(
                store = kind,
                revocations = entries,
                cutoffs = revocations.cutoff_count(),
                load_ms = started.elapsed().as_millis() as u64,
                "revocation store ready"
            );
            Some(cursor)
        }
        LoadedFrom::Snapshot { error, .. } | LoadedFrom::Nothing { error }
            if kind == "embedded" =>
        {
            error!("revocation store (embedded): {error}");
            return None;
        }
        LoadedFrom::Snapshot { entries, error } => {
            warn!(
                store = kind,
                error = %error,
                revocations = entries,
                snapshot = %state.blacklist_snapshot().display(),
                "revocation store unreachable at start; serving from the local snapshot of the blacklist, and retrying in the background"
            );
            None
        }
        LoadedFrom::Nothing { error } => {
            warn!(
                store = kind,
                error = %error,
                snapshot = %state.blacklist_snapshot().display(),
                "revocation store unreachable at start and no local snapshot: requests that need a token get 503 until the blacklist loads; retrying in the background"
            );
            None
        }
    };
    let sync = tokio::spawn(Arc::clone(&revocations).sync(SyncSettings::default(), stop, start));
    Some((revocations, sync))
}

/// Says at start when `state_dir` cannot take files, rather than in a
/// line per failed write later: what the node keeps there is what lets a
/// restart serve while the store, an IdP or etcd is down (SPEC §3.11).
fn state_dir_usable(dir: &std::path::Path) {
    let state = StateDir::new(dir);
    let usable = state
        .ensure()
        .and_then(|()| jwtgate_state::can_replace(&dir.join("jwtgate.probe")));
    if let Err(e) = usable {
        warn!(
            "state_dir {}: {e}: the blacklist snapshot, the providers' key caches and the copy \
             of etcd's config cannot be kept, so a restart while the store, an identity \
             provider or etcd is down will have none of them to serve from",
            dir.display()
        );
    }
    // Files other users put there are refused as they are read; said at
    // start too, as the store's directory is.
    for d in [dir.to_path_buf(), dir.join("providers")] {
        if jwtgate_state::others_may_write(&d) {
            warn!(
                "state_dir {}: other users may write to it (group- or world-writable, not \
                 sticky): they could remove or replace what the node keeps there; make it \
                 owner-only (chmod 700)",
                d.display()
            );
        }
    }
}

/// The signals the node answers. SIGUSR1 and SIGUSR2 are caught to do
/// nothing but say so: by default they end a process at once, and nginx
/// and Envoy take SIGUSR1 to reopen their log files, HAProxy for a soft
/// stop, so a logrotate hook or an operator's habit would have cut every
/// request in flight.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    usr1: tokio::signal::unix::Signal,
    usr2: tokio::signal::unix::Signal,
}

fn ignored(name: &str) {
    warn!(
        "{name} does nothing: jwtgate logs to stderr, so there is no log file to reopen \
         (SIGHUP reloads the config, SIGTERM stops the node)"
    );
}

impl Signals {
    fn install() -> std::io::Result<Self> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
            usr1: signal(SignalKind::user_defined1())?,
            usr2: signal(SignalKind::user_defined2())?,
        })
    }

    async fn handle(mut self, live: Arc<LiveConfig>, stop: watch::Sender<bool>) {
        loop {
            tokio::select! {
                _ = self.term.recv() => { info!("SIGTERM: shutting down"); break; }
                _ = self.int.recv() => { info!("SIGINT: shutting down"); break; }
                _ = self.hup.recv() => {
                    info!("SIGHUP: reloading {}", live.path().display());
                    crate::notify::notify("RELOADING=1");
                    let outcome = live.reload(Trigger::Signal).await;
                    crate::notify::reloaded(outcome, &live.running().restart_pending());
                }
                _ = self.usr1.recv() => ignored("SIGUSR1"),
                _ = self.usr2.recv() => ignored("SIGUSR2"),
            }
        }
        crate::notify::notify("STOPPING=1");
        let _ = stop.send(true);
        // A second SIGTERM or SIGINT (Ctrl-C twice) stops the node now,
        // as nginx's fast shutdown: the requests still running are cut,
        // and what a clean stop writes (the blacklist's local copy) may
        // be left as it was. SIGHUP is no reload any more.
        let again = loop {
            tokio::select! {
                _ = self.term.recv() => break ("SIGTERM", 143),
                _ = self.int.recv() => break ("SIGINT", 130),
                _ = self.hup.recv() => info!("SIGHUP while stopping: not reloaded"),
                _ = self.usr1.recv() => ignored("SIGUSR1"),
                _ = self.usr2.recv() => ignored("SIGUSR2"),
            }
        };
        let (name, code) = again;
        warn!("{name} again while stopping: exiting now, without waiting for the requests still running");
        crate::logging::flush();
        std::process::exit(code);
    }
}
