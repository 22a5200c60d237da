//! `jwtgate run` and `jwtgate check`: load the config, bind, serve, and react
//! to signals (SIGTERM/SIGINT: graceful stop; SIGHUP: reload).

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use arc_swap::ArcSwap;
use jwtgate_config::{load_file, Config};
use jwtgate_proxy::{Gateway, Listeners, SharedGateway};
use jwtgate_store::{Revocations, SyncSettings};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tracing::{error, info, warn};

pub fn check(path: &Path) -> ExitCode {
    match load_file(path) {
        Ok(_) => {
            println!("{}: ok", path.display());
            ExitCode::SUCCESS
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

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("JWTGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}

pub fn run(path: &Path) -> ExitCode {
    init_logging();
    let config = match load_file(path) {
        Ok(c) => c,
        Err(errors) => {
            error!("{}: invalid configuration", path.display());
            for e in &errors.0 {
                eprintln!("{e}");
            }
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            error!("cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(serve(path, config))
}

async fn serve(path: &Path, config: Config) -> ExitCode {
    let listeners = match Listeners::bind(&config.listen, config.tls.as_ref()).await {
        Ok(l) => l,
        Err(e) => {
            error!("{e}");
            return ExitCode::from(1);
        }
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let Some(revocations) = open_revocations(&config, stop_rx.clone()).await else {
        return ExitCode::from(1);
    };
    let gateway: SharedGateway = Arc::new(ArcSwap::from_pointee(Gateway::new(
        &config,
        Arc::clone(&revocations),
    )));
    let signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            error!("cannot install signal handlers: {e}");
            return ExitCode::from(1);
        }
    };
    tokio::spawn(signals.handle(
        path.to_owned(),
        Arc::clone(&gateway),
        revocations,
        config,
        stop_tx,
    ));
    listeners.serve(gateway, stop_rx).await;
    info!("stopped");
    ExitCode::SUCCESS
}

/// Opens the revocation store and loads the blacklist into memory, then
/// starts the task that keeps it in step. An embedded store that cannot be
/// opened is fatal; a Redis that is down is not: the node serves and the
/// sync task catches up when Redis comes back.
async fn open_revocations(
    config: &Config,
    stop: watch::Receiver<bool>,
) -> Option<Arc<Revocations>> {
    let store = match jwtgate_store::open(&config.store) {
        Ok(s) => s,
        Err(e) => {
            error!("revocation store: {e}");
            return None;
        }
    };
    let kind = store.kind();
    let revocations = Revocations::new(store);
    let started = std::time::Instant::now();
    let start = match revocations.load().await {
        Ok((n, cursor)) => {
            info!(
                store = kind,
                revocations = n,
                load_ms = started.elapsed().as_millis() as u64,
                "revocation store ready"
            );
            Some(cursor)
        }
        Err(e) if kind == "embedded" => {
            error!("revocation store (embedded): {e}");
            return None;
        }
        Err(e) => {
            warn!(store = kind, error = %e, "revocation store unreachable at start; serving, and retrying in the background");
            None
        }
    };
    tokio::spawn(Arc::clone(&revocations).sync(SyncSettings::default(), stop, start));
    Some(revocations)
}

struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Self> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    async fn handle(
        mut self,
        path: std::path::PathBuf,
        gateway: SharedGateway,
        revocations: Arc<Revocations>,
        mut current: Config,
        stop: watch::Sender<bool>,
    ) {
        loop {
            tokio::select! {
                _ = self.term.recv() => { info!("SIGTERM: shutting down"); break; }
                _ = self.int.recv() => { info!("SIGINT: shutting down"); break; }
                _ = self.hup.recv() => {
                    info!("SIGHUP: reloading {}", path.display());
                    if let Some(next) = reload(&path, &current, &gateway, &revocations) {
                        current = next;
                    }
                }
            }
        }
        let _ = stop.send(true);
    }
}

/// Builds the new config off the hot path and swaps it in whole; an invalid
/// file is rejected and the running config stays.
fn reload(
    path: &Path,
    current: &Config,
    gateway: &SharedGateway,
    revocations: &Arc<Revocations>,
) -> Option<Config> {
    match load_file(path) {
        Ok(next) => {
            if next.listen != current.listen
                || next.admin.as_ref().map(|a| a.listen) != current.admin.as_ref().map(|a| a.listen)
            {
                warn!("listen addresses changed: they take effect on restart");
            }
            if next.store != current.store {
                warn!("store settings changed: they take effect on restart");
            }
            gateway.store(Arc::new(Gateway::new(&next, Arc::clone(revocations))));
            info!(outcome = "applied", "config reloaded");
            Some(next)
        }
        Err(errors) => {
            warn!(
                outcome = "rejected",
                "config reload rejected; the running config stays"
            );
            for e in &errors.0 {
                warn!("{e}");
            }
            None
        }
    }
}
