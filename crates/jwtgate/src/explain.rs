//! `jwtgate token explain`: the command-line face of the admin crate's
//! explain report (the same report `POST /admin/v1/explain` returns). This
//! file loads the config, the keys of the token's identity provider (its
//! disk cache, else one fetch) and asks the configured store about
//! revocation; the report itself is `jwtgate_admin::explain`.

use std::process::ExitCode;
use std::sync::Arc;

use jwtgate_admin::explain::{Explain, LoadedKeys, Request, Revocation, Verdict};
use jwtgate_config::Config;
use jwtgate_core::clock::{Clock, SystemClock};
use jwtgate_core::jwt::Token;
use jwtgate_core::policy::{AuthContext, Authenticated};
use jwtgate_proxy::router::Router;
use jwtgate_state::StateDir;

use crate::cli::ExplainArgs;
use crate::config_cmd::NoConfig;

pub fn explain(args: &ExplainArgs) -> ExitCode {
    let config = match crate::config_cmd::load_full(&args.config) {
        Ok(c) => c,
        Err(NoConfig::Invalid(e)) => {
            eprintln!("invalid configuration: {e}");
            return ExitCode::from(2);
        }
        // The token may well be fine: no verdict without the routes.
        Err(NoConfig::Unavailable(e)) => {
            eprintln!("cannot tell: {e}");
            return ExitCode::from(3);
        }
    };
    let token = if args.token == "-" {
        // Far more than any token the gateway takes (8 KiB), far less than
        // what an endless stdin would be.
        match jwtgate_config::read_bounded_from(std::io::stdin().lock(), 1024 * 1024) {
            Ok(s) => s.trim().to_owned(),
            Err(e) => {
                eprintln!("cannot read the token from stdin: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        args.token.trim().to_owned()
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start an async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let router = Router::new(&config.routes, config.client_body_timeout);
    let keys = runtime.block_on(provider_keys(&config, &token));
    let revocation = |auth: &Authenticated| runtime.block_on(revocation(&config, auth));
    let explain = Explain {
        router: &router,
        auth: AuthContext {
            consumers: &config.consumers,
            providers: &config.providers,
            keys: &keys,
        },
        revocation: &revocation,
    };
    let report = explain.report(&Request {
        token: &token,
        route: args.route.as_deref(),
        request: args.request.as_deref(),
    });
    match report {
        Ok(report) => {
            let code = match report.verdict {
                Verdict::Accepted => ExitCode::SUCCESS,
                Verdict::Refused => ExitCode::from(1),
                Verdict::Undetermined => ExitCode::from(3),
            };
            crate::out::print_with(&report.text(), code)
        }
        Err(usage) => {
            eprintln!("jwtgate token explain: {usage}");
            ExitCode::from(2)
        }
    }
}

/// The keys of the provider whose issuer the token names, if any: from
/// its disk cache in `state_dir` when still usable, else fetched once. A
/// provider that cannot be read is left without keys (the report says so).
async fn provider_keys(config: &Config, token: &str) -> LoadedKeys {
    let mut keys = vec![None; config.providers.len()];
    let iss = Token::parse(token)
        .ok()
        .and_then(|t| t.claims().get("iss")?.as_str().map(str::to_owned));
    let Some(provider) = iss.and_then(|iss| config.providers.by_issuer(&iss).cloned()) else {
        return LoadedKeys(keys);
    };
    let Some(source) = config.provider_sources.get(provider.index) else {
        return LoadedKeys(keys);
    };
    match jwtgate_keys::load_once(source, &StateDir::new(&config.state_dir)).await {
        Ok(k) => {
            if let Some(slot) = keys.get_mut(provider.index) {
                *slot = Some(Arc::new(k));
            }
        }
        Err(e) => eprintln!("provider {:?}: cannot load its keys: {e}", provider.name),
    }
    LoadedKeys(keys)
}

/// Asks the configured store directly whether the token was logged out.
/// The embedded store is read without a write (read-only); one held open
/// by a running gateway cannot be read.
async fn revocation(config: &Config, auth: &Authenticated) -> Revocation {
    let key = &auth.revocation;
    let store = match &config.store {
        jwtgate_config::StoreConfig::Embedded { path } => {
            // Nothing was ever revoked there; do not create a store to find out.
            if !jwtgate_store::embedded::EmbeddedStore::exists(path) {
                return Revocation::NotRevoked("embedded (empty)");
            }
            match jwtgate_store::embedded::ReadOnlyStore::open(path) {
                Ok(s) => Reader::ReadOnly(s),
                Err(e) => {
                    return Revocation::Unknown(format!(
                        "cannot read the revocation store ({e}); a running gateway holds the \
                         embedded store while it runs"
                    ))
                }
            }
        }
        other => match jwtgate_store::open(other) {
            Ok(s) => Reader::Store(s),
            Err(e) => {
                return Revocation::Unknown(format!("cannot open the revocation store ({e})"))
            }
        },
    };
    // Both keys: the signing input's, and the whole token's that older
    // versions wrote (SPEC §3.11).
    let mut latest = None;
    for digest in key.digests() {
        match store.lookup(&digest).await {
            Ok(found) => latest = latest.max(found),
            Err(e) => {
                return Revocation::Unknown(format!(
                    "cannot reach the {} store ({e})",
                    store.kind()
                ))
            }
        }
    }
    let now = SystemClock.now_unix();
    if let Some(until) = latest.filter(|&until| until > now) {
        return Revocation::Revoked(until);
    }
    // The subject cut-offs, as the store holds them.
    let table = jwtgate_store::CutoffTable::new();
    match store.cutoffs(now).await {
        Ok(all) => {
            table.replace(all);
        }
        Err(e) => {
            return Revocation::Unknown(format!(
                "cannot read the subject cut-offs of the {} store ({e})",
                store.kind()
            ))
        }
    }
    let subject = jwtgate_admin::explain::token_subject(auth);
    match table.refusing(&subject.subject(), now) {
        Some(c) => Revocation::CutOff(format!("{} at {}", c.key, c.not_before)),
        None => Revocation::NotRevoked(store.kind()),
    }
}

/// Where `token explain` reads revocations: the embedded store read-only,
/// or a shared store as the node reaches it.
enum Reader {
    ReadOnly(jwtgate_store::embedded::ReadOnlyStore),
    Store(std::sync::Arc<dyn jwtgate_store::RevocationStore>),
}

impl Reader {
    async fn lookup(
        &self,
        digest: &jwtgate_store::Digest,
    ) -> Result<Option<i64>, jwtgate_store::StoreError> {
        match self {
            Reader::ReadOnly(s) => s.lookup(digest),
            Reader::Store(s) => s.lookup(digest).await,
        }
    }

    async fn cutoffs(
        &self,
        now: i64,
    ) -> Result<Vec<jwtgate_store::Cutoff>, jwtgate_store::StoreError> {
        match self {
            Reader::ReadOnly(s) => s.cutoffs(now),
            Reader::Store(s) => s.cutoffs(now).await,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Reader::ReadOnly(_) => "embedded",
            Reader::Store(s) => s.kind(),
        }
    }
}
