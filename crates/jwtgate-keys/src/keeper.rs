//! [`Keeper`]: keeps one identity provider's key set current.
//!
//! A background task fetches the set at start, then again after
//! `refresh_seconds` (or the answer's `Cache-Control: max-age` when within
//! [60, 3600] s: one above is 3600, one below, `no-store` or `no-cache`
//! 60 or `refresh_seconds` if shorter), and backs off while the provider
//! fails. Requests only
//! read the current set ([`Keeper::current`]); the one exception, a token
//! whose `kid` the set lacks, may wake the task for one early fetch per
//! `kid_miss_interval_seconds` (counted from the last fetch of any kind),
//! which every request that misses meanwhile waits for together
//! ([`Keeper::refetch_for_unknown_kid`]). A fetch that fails, or brings a
//! document that is not a usable set, never replaces the set in use.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use jwtgate_config::{KeySource, ProviderSource};
use jwtgate_core::jwt::{jwk, JwkSet};
use jwtgate_core::provider::ProviderKeys;
use jwtgate_core::redact::url_for_display as shown;
use tokio::sync::{watch, Notify};
use tracing::{info, warn};

use crate::discovery;
use crate::disk::{Cached, KeyCache};
use crate::fetch::{FetchError, Fetcher};

/// How far ahead of this clock a key cache's date may be (clocks that
/// disagree by seconds, as tokens' `iat` are taken).
const FUTURE_SKEW_SECONDS: i64 = 120;

/// `Cache-Control: max-age` is honoured within these bounds (SPEC §3.6).
const MIN_REFRESH: Duration = Duration::from_secs(60);
const MAX_REFRESH: Duration = Duration::from_secs(3600);
/// Retries after a failed fetch start here and double, up to this (or the
/// refresh interval, if shorter).
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(60);
/// The longest `Retry-After` honoured: a provider asking for more is asked
/// again then (keys must not go stale on a typo in its configuration; less
/// when its keys would: [`Keeper::most_held_off`]).
const MOST_HELD_OFF: Duration = Duration::from_secs(600);

/// Key-set generations are unique in the process, so a verified token
/// remembered against one can never match a set it was not checked with.
static GENERATIONS: AtomicU64 = AtomicU64::new(1);

pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// How a provider stands, for `/status` (SPEC §3.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderStatus {
    /// `ok`: usable keys from the last fetch; `stale`: usable keys, but the
    /// last fetch failed; `loading`: no keys yet, the first fetch still
    /// running; `unavailable`: no usable keys.
    pub state: &'static str,
    pub keys: usize,
    pub age_seconds: Option<i64>,
    /// Why the last fetch failed, if it did.
    pub last_error: Option<String>,
}

/// Why a request's unknown kid did or did not lead to a fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KidMiss {
    /// A fetch was started for it.
    Fetched,
    /// A fetch was already running; it waited for that one.
    Merged,
    /// The last fetch was less than `kid_miss_interval_seconds` ago.
    Throttled,
    /// The set comes from a file: nothing to fetch.
    Static,
}

impl KidMiss {
    pub fn label(self) -> &'static str {
        match self {
            KidMiss::Fetched => "fetched",
            KidMiss::Merged => "merged",
            KidMiss::Throttled => "throttled",
            KidMiss::Static => "static",
        }
    }
}

#[derive(Debug, Default)]
struct Gate {
    /// When the last fetch of any kind started.
    last_start: Option<Instant>,
    in_flight: bool,
    /// Until when the provider asked not to be asked again (a 429 or 503
    /// with `Retry-After`): neither the schedule nor an unknown kid
    /// fetches before.
    held_off_until: Option<Instant>,
}

pub struct Keeper {
    name: String,
    settings: Mutex<Settings>,
    current: ArcSwapOption<ProviderKeys>,
    /// The `jwks_uri` discovery found.
    discovered: Mutex<Option<String>>,
    gate: Mutex<Gate>,
    /// Counts finished fetches: what unknown-kid requests wait on.
    done: watch::Sender<u64>,
    wake: Notify,
    last_error: Mutex<Option<String>>,
    /// The log said that the last good keys grew too old to use (once per
    /// outage).
    told_stale: AtomicBool,
    /// When a failed fetch was last logged.
    last_said: Mutex<Option<Instant>>,
    cache: Option<KeyCache>,
}

/// What may change without fetching the keys again.
struct Settings {
    source: ProviderSource,
    fetcher: Fetcher,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these leaves plain data behind.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Keeper {
    /// A keeper for `source`; for a fetched set, `cache` is where the last
    /// good one is kept, and is loaded now if it is still usable.
    pub fn new(source: ProviderSource, cache: Option<KeyCache>) -> Result<Arc<Keeper>, FetchError> {
        let fetcher = Fetcher::new(source.ca_pem.as_deref(), source.fetch_timeout)?;
        let keeper = Arc::new(Keeper {
            name: source.name.clone(),
            settings: Mutex::new(Settings { source, fetcher }),
            current: ArcSwapOption::empty(),
            discovered: Mutex::new(None),
            gate: Mutex::new(Gate::default()),
            done: watch::Sender::new(0),
            wake: Notify::new(),
            last_error: Mutex::new(None),
            told_stale: AtomicBool::new(false),
            last_said: Mutex::new(None),
            cache,
        });
        keeper.install_static_or_cached();
        Ok(keeper)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The current key set, if any.
    pub fn current(&self) -> Option<Arc<ProviderKeys>> {
        self.current.load_full()
    }

    fn source(&self) -> ProviderSource {
        lock(&self.settings).source.clone()
    }

    fn is_static(&self) -> bool {
        matches!(lock(&self.settings).source.keys, KeySource::File { .. })
    }

    /// Takes new settings that keep the same origin (timings, staleness,
    /// audiences...); a `jwks_file` set is taken as re-read.
    pub fn update(&self, source: ProviderSource) -> Result<(), FetchError> {
        let fetcher = Fetcher::new(source.ca_pem.as_deref(), source.fetch_timeout)?;
        let max_stale = secs(source.max_stale);
        *lock(&self.settings) = Settings { source, fetcher };
        if self.is_static() {
            self.install_static_or_cached();
        } else if let Some(keys) = self.current() {
            // Staleness follows the new setting.
            self.current.store(Some(Arc::new(ProviderKeys {
                set: Arc::clone(&keys.set),
                generation: keys.generation,
                fetched_at: keys.fetched_at,
                max_stale: Some(max_stale),
                source: keys.source.clone(),
            })));
        }
        Ok(())
    }

    /// A `jwks_file` set, or the disk cache of a fetched one.
    fn install_static_or_cached(&self) {
        let source = self.source();
        match &source.keys {
            KeySource::File { path, set } => {
                self.install(
                    Arc::clone(set),
                    unix_now(),
                    None,
                    path.display().to_string(),
                );
            }
            KeySource::Discovery | KeySource::Uri(_) => self.load_cache(&source),
        }
    }

    fn load_cache(&self, source: &ProviderSource) {
        let Some(cache) = &self.cache else { return };
        let cached = match cache.load() {
            Ok(Some(c)) => c,
            Ok(None) => return,
            Err(e) => {
                warn!(provider = %self.name, error = %e, "key cache not used");
                return;
            }
        };
        let max_stale = secs(source.max_stale);
        let now = unix_now();
        if cached.issuer != source.issuer {
            warn!(provider = %self.name, "key cache is for another issuer; not used");
            return;
        }
        // Keys fetched from a source the provider no longer names (a moved
        // jwks_uri, discovery switched, another ca_file) are not trusted
        // until the new source answers: moving away from a source is what
        // an operator does when it cannot be trusted.
        let moved = match (&cached.origin, &source.keys) {
            (Some(origin), _) => *origin != self::origin(source),
            (None, KeySource::Uri(uri)) => cached.source != *uri,
            (None, _) => false,
        };
        if moved {
            warn!(provider = %self.name, "key cache is from another key source or ca_file; not used");
            return;
        }
        // A cache dated further ahead than clocks disagree was written by
        // a clock that was ahead: it would never grow old, and
        // max_stale_seconds would never end it. Not used (re-dating it
        // would trust it afresh at each start, and a node whose clock is
        // behind would date it wrong for good).
        if cached.fetched_at > now.saturating_add(FUTURE_SKEW_SECONDS) {
            warn!(
                provider = %self.name,
                ahead_s = cached.fetched_at - now,
                "key cache is dated in the future (a clock that was ahead?); not used"
            );
            return;
        }
        let fetched_at = cached.fetched_at.min(now);
        if now > fetched_at.saturating_add(max_stale) {
            info!(provider = %self.name, age_s = now - fetched_at, "key cache older than max_stale_seconds; not used");
            return;
        }
        match JwkSet::parse(cached.document.as_bytes(), &source.algorithms) {
            Ok(set) => {
                info!(
                    provider = %self.name,
                    keys = set.len(),
                    age_s = now - fetched_at,
                    "keys loaded from the disk cache until the provider answers"
                );
                // Said as at the fetch: from what it recorded, or (a cache
                // written before keys were cut down) from what it holds.
                let mut private = cached.private_kids.clone();
                private.extend(set.private_keys());
                private.sort();
                private.dedup();
                self.warn_private(
                    &private,
                    &format!("disk cache of {}", shown(&cached.source)),
                );
                if jwk::holds_more_than_public(cached.document.as_bytes()) {
                    self.rewrite_public(cache, cached.clone(), private);
                }
                self.install(
                    Arc::new(set),
                    fetched_at,
                    Some(max_stale),
                    format!("disk cache of {}", cached.source),
                );
            }
            Err(e) => warn!(provider = %self.name, error = %e, "key cache not used"),
        }
    }

    /// Writes again, cut down to public members, a cache an earlier
    /// version wrote with all the provider published.
    fn rewrite_public(&self, cache: &KeyCache, cached: Cached, private_kids: Vec<String>) {
        let Some(document) = jwk::public_document(cached.document.as_bytes()) else {
            return;
        };
        let public = Cached {
            document,
            private_kids,
            ..cached
        };
        if let Err(e) = cache.save(&public) {
            warn!(provider = %self.name, error = %e, "cannot write the key cache");
        }
    }

    /// Says so when a key set publishes private key members (`private`:
    /// the kids of the keys that do).
    fn warn_private(&self, private: &[String], source: &str) {
        if !private.is_empty() {
            warn!(
                provider = %self.name,
                kids = ?private,
                source = %source,
                "the key set publishes private key members (\"d\"): whoever can read it can \
                 sign tokens these keys accept; the IdP must publish public keys only \
                 (the gateway uses the public members)"
            );
        }
    }

    /// Says so when `next` cannot use a key the set in use has under the
    /// same kid: a set with one usable key replaces a good one (SPEC
    /// §3.6), so a rotation that broke a key would otherwise refuse its
    /// tokens with only a debug line saying why.
    fn warn_broken(&self, next: &JwkSet) {
        let Some(now) = self.current() else { return };
        for s in next.skipped() {
            let Some(kid) = s.kid.as_deref() else {
                continue;
            };
            if now.set.has_kid(kid) && !next.has_kid(kid) {
                warn!(
                    provider = %self.name,
                    kid,
                    reason = %s.reason,
                    "the new key set holds a key the set in use has, but cannot use it: tokens \
                     signed with it are refused from now on"
                );
            }
        }
    }

    /// Says so when discovery names a key set over plain http off
    /// loopback (`jwtgate check` warns of such a URL written in the config;
    /// a discovered one is known only once fetched). Once per URL found.
    fn warn_plain_http(&self, uri: &str) {
        if let Some(host) = jwtgate_config::plain_http_off_loopback(uri) {
            warn!(
                provider = %self.name,
                jwks_uri = %shown(uri),
                "the discovery document names a key set over plain http from {host}, not a \
                 loopback address: whoever is on the way can replace the keys (the IdP should \
                 publish an https:// jwks_uri)"
            );
        }
    }

    /// Puts `set` in use; a new generation only when its keys differ.
    fn install(&self, set: Arc<JwkSet>, fetched_at: i64, max_stale: Option<i64>, source: String) {
        let generation = match self.current() {
            Some(old) if old.set.fingerprint() == set.fingerprint() => old.generation,
            _ => GENERATIONS.fetch_add(1, Ordering::Relaxed),
        };
        self.current.store(Some(Arc::new(ProviderKeys {
            set,
            generation,
            fetched_at,
            max_stale,
            source,
        })));
    }

    /// The background task: fetch, wait, fetch again. Returns only when
    /// aborted.
    pub async fn run(self: Arc<Self>) {
        let mut retry = FIRST_RETRY;
        // A scheduled fetch also rediscovers the jwks_uri; one woken by an
        // unknown kid goes straight to the key set.
        let mut scheduled = true;
        // When the next scheduled fetch is due. A woken fetch that succeeds
        // leaves it where it was: any client can wake one with a made-up
        // kid, and one every kid_miss_interval had put the rediscovery off
        // for good (an outside audit: a moved jwks_uri, or a discovery
        // document now naming another issuer, never seen).
        let mut due = tokio::time::Instant::now();
        loop {
            let result = self.fetch(scheduled).await;
            let wait = match result {
                Ok(max_age) => {
                    retry = FIRST_RETRY;
                    let source = &lock(&self.settings).source;
                    next_refresh(max_age, source.refresh, source.max_stale)
                }
                Err(_) => {
                    let wait = retry.max(self.held_off_for());
                    let cap = lock(&self.settings).source.refresh.min(MAX_RETRY);
                    retry = (retry * 2).min(cap);
                    wait
                }
            };
            if scheduled || result.is_err() {
                // The config bounds the intervals; a wait past what a
                // timer holds is "not before a long time" all the same.
                let now = tokio::time::Instant::now();
                due = now.checked_add(wait).unwrap_or(now + FAR_OFF);
            }
            scheduled = tokio::select! {
                _ = tokio::time::sleep_until(due) => true,
                _ = self.wake.notified() => false,
            };
        }
    }

    /// One fetch (`background`: also rediscover the `jwks_uri`). Returns
    /// the answer's max-age.
    async fn fetch(&self, background: bool) -> Result<Option<u64>, String> {
        {
            let mut gate = lock(&self.gate);
            gate.last_start = Some(Instant::now());
            gate.in_flight = true;
        }
        let result = self.fetch_and_install(background).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(Failure::Unreachable(_)) => "error",
            Err(Failure::Invalid(_)) => "invalid",
        };
        metrics::counter!("jwtgate_jwks_fetch_total", "provider" => self.name.clone(), "outcome" => outcome)
            .increment(1);
        let result = result.map_err(|f| {
            let why = f.to_string();
            // Said when the outage begins, when its last keys grow too old,
            // and when it fails for another reason, at most once a minute
            // (reasons may alternate, or carry a changing figure): a
            // failing IdP's retries do not fill the log. `/status` has the
            // latest reason.
            let before = lock(&self.last_error).replace(why.clone());
            let usable = self.current().map(|k| k.usable_at(unix_now()));
            let stale_now = usable == Some(false) && !self.told_stale.swap(true, Ordering::Relaxed);
            let other = before.as_ref().is_some_and(|b| *b != why)
                && lock(&self.last_said).is_none_or(|t| t.elapsed() >= REASON_LOG_INTERVAL);
            if before.is_none() || stale_now || other {
                *lock(&self.last_said) = Some(Instant::now());
                match usable {
                    Some(true) => {
                        warn!(provider = %self.name, error = %why, "key set fetch failed; the last good keys stay in use")
                    }
                    Some(false) => {
                        warn!(provider = %self.name, error = %why, "key set fetch failed, and the last good keys are older than max_stale_seconds: the provider's tokens are refused until a fetch succeeds")
                    }
                    None => {
                        warn!(provider = %self.name, error = %why, "key set fetch failed; no keys yet: the provider's tokens are refused until a fetch succeeds")
                    }
                }
            }
            why
        });
        if result.is_ok() {
            self.told_stale.store(false, Ordering::Relaxed);
        }
        if result.is_ok() && lock(&self.last_error).take().is_some() {
            info!(provider = %self.name, "key set fetched again");
        }
        if result.is_ok() {
            lock(&self.gate).held_off_until = None;
        }
        lock(&self.gate).in_flight = false;
        self.done.send_modify(|n| *n += 1);
        result
    }

    async fn fetch_and_install(&self, background: bool) -> Result<Option<u64>, Failure> {
        let (source, fetcher) = {
            let s = lock(&self.settings);
            (s.source.clone(), s.fetcher.clone())
        };
        let uri = match &source.keys {
            KeySource::Uri(u) => u.clone(),
            KeySource::File { .. } => return Ok(None),
            KeySource::Discovery => {
                let known = lock(&self.discovered).clone();
                match known {
                    Some(u) if !background => u,
                    _ => {
                        let url = discovery::discovery_url(&source.issuer);
                        let doc = fetcher.get(&url).await.map_err(|e| {
                            self.hold_off_if_asked(&e);
                            Failure::Unreachable(format!("discovery {}: {e}", shown(&url)))
                        })?;
                        let uri = discovery::jwks_uri(&doc.body, &source.issuer).map_err(|e| {
                            // What the IdP now says is refused (another
                            // issuer, no jwks_uri): the key set it named
                            // before is no longer fetched, not even for an
                            // unknown kid, so its keys grow stale as in an
                            // outage rather than staying fresh for ever.
                            lock(&self.discovered).take();
                            Failure::Invalid(format!("{}: {e}", shown(&url)))
                        })?;
                        let before = lock(&self.discovered).replace(uri.clone());
                        if before.as_ref() != Some(&uri) {
                            self.warn_plain_http(&uri);
                        }
                        uri
                    }
                }
            }
        };
        let fetched = fetcher.get(&uri).await.map_err(|e| {
            self.hold_off_if_asked(&e);
            Failure::Unreachable(format!("{}: {e}", shown(&uri)))
        })?;
        let set = JwkSet::parse(&fetched.body, &source.algorithms)
            .map_err(|e| Failure::Invalid(format!("{}: not a usable JWK Set: {e}", shown(&uri))))?;
        for s in set.skipped() {
            tracing::debug!(provider = %self.name, index = s.index, kid = ?s.kid, reason = %s.reason, "key skipped");
        }
        let now = unix_now();
        let changed = self
            .current()
            .is_none_or(|old| old.set.fingerprint() != set.fingerprint());
        if changed {
            info!(provider = %self.name, keys = set.len(), source = %shown(&uri), "key set installed");
            self.warn_broken(&set);
        }
        // At every fetch, not only when the keys change: the fingerprint
        // is of the public members.
        let private_kids = set.private_keys();
        self.warn_private(&private_kids, &shown(&uri));
        self.install(
            Arc::new(set),
            now,
            Some(secs(source.max_stale)),
            uri.clone(),
        );
        if let Some(cache) = &self.cache {
            let cached = Cached {
                issuer: source.issuer.clone(),
                source: uri,
                fetched_at: now,
                // Never a secret on disk, even one the IdP gave away; who
                // gave one away is kept, to be said again at a restart.
                document: jwk::public_document(&fetched.body)
                    .unwrap_or_else(|| String::from_utf8_lossy(&fetched.body).into_owned()),
                private_kids,
                origin: Some(origin(&source)),
            };
            let cache = cache.clone();
            let saved = tokio::task::spawn_blocking(move || cache.save(&cached)).await;
            if let Ok(Err(e)) | Err(e) = saved.map_err(std::io::Error::other) {
                warn!(provider = %self.name, error = %e, "cannot write the key cache");
            }
        }
        Ok(fetched.max_age)
    }

    /// Honours an answer that asked not to be asked again for a while, as
    /// far as [`Self::most_held_off`] allows.
    fn hold_off_if_asked(&self, e: &FetchError) {
        if let FetchError::Busy { wait, .. } = e {
            let held = (*wait).min(self.most_held_off(unix_now()));
            lock(&self.gate).held_off_until = Some(Instant::now() + held);
        }
    }

    /// The longest a `Retry-After` may hold fetches off at `now`:
    /// [`MOST_HELD_OFF`], and no more than half the time the keys in use
    /// have left before they grow too old to use (`max_stale_seconds`), so
    /// that a fetch and its retries come first: one answer, perhaps to a
    /// fetch any client can cause with a made-up `kid`, must not make a
    /// healthy provider's tokens refused for minutes. Without usable keys,
    /// [`MAX_RETRY`].
    fn most_held_off(&self, now: i64) -> Duration {
        let left = self.current().map(|k| {
            k.max_stale.map_or(i64::MAX, |max| {
                k.fetched_at.saturating_add(max).saturating_sub(now)
            })
        });
        match left {
            Some(left) if left > 0 => {
                let half = Duration::from_secs(u64::try_from(left / 2).unwrap_or(u64::MAX));
                MOST_HELD_OFF.min(half.max(FIRST_RETRY))
            }
            _ => MAX_RETRY,
        }
    }

    /// How long the provider still asks not to be asked.
    fn held_off_for(&self) -> Duration {
        lock(&self.gate).held_off_until.map_or(Duration::ZERO, |t| {
            t.saturating_duration_since(Instant::now())
        })
    }

    /// One fetch now, for one-shot tools (no background task runs).
    pub async fn fetch_now(&self) -> Result<(), String> {
        self.fetch(true).await.map(|_| ())
    }

    /// A request met a token whose `kid` the current set lacks. Starts (or
    /// joins) a fetch unless one started less than `kid_miss_interval` ago,
    /// and waits for it at most `fetch_timeout`. Returns how it went and
    /// whether the set now has `kid`.
    pub async fn refetch_for_unknown_kid(&self, kid: &str) -> (KidMiss, bool) {
        let timeout = lock(&self.settings).source.fetch_timeout;
        let (how, before) = self.start_for_request();
        if matches!(how, KidMiss::Throttled | KidMiss::Static) {
            return (how, false);
        }
        let mut finished = self.done.subscribe();
        let _ = tokio::time::timeout(timeout, finished.wait_for(|n| *n != before)).await;
        let found = self.current().is_some_and(|k| k.set.has_kid(kid));
        (how, found)
    }

    /// A request met this provider's keys missing or too old to use: a
    /// fetch starts now, within the budget of an unknown kid (one per
    /// `kid_miss_interval_seconds`, none while a `Retry-After` holds),
    /// and the request does not wait for it (it would be refused anyway
    /// if the IdP is still down). Keys that grew stale in an outage were
    /// otherwise fetched only on the background's backoff once the IdP
    /// was back, up to a minute later (an outside audit).
    pub fn refetch_for_unusable_keys(&self) -> KidMiss {
        self.start_for_request().0
    }

    /// Starts (or joins) a fetch for a request unless one started less than
    /// `kid_miss_interval` ago; counted. The fetch count before it.
    fn start_for_request(&self) -> (KidMiss, u64) {
        if self.is_static() {
            return (KidMiss::Static, 0);
        }
        let interval = lock(&self.settings).source.kid_miss_interval;
        let mut gate = lock(&self.gate);
        let before = *self.done.borrow();
        let how = if gate.in_flight {
            KidMiss::Merged
        } else if gate.last_start.is_some_and(|t| t.elapsed() < interval)
            || gate.held_off_until.is_some_and(|t| t > Instant::now())
        {
            KidMiss::Throttled
        } else {
            // Reserve the fetch: requests arriving from now on merge.
            gate.last_start = Some(Instant::now());
            gate.in_flight = true;
            self.wake.notify_one();
            KidMiss::Fetched
        };
        drop(gate);
        self.count_kid_miss(how);
        (how, before)
    }

    fn count_kid_miss(&self, how: KidMiss) {
        metrics::counter!("jwtgate_jwks_kid_miss_total", "provider" => self.name.clone(), "outcome" => how.label())
            .increment(1);
    }

    /// For `/status` and the age gauge.
    pub fn status(&self, now: i64) -> ProviderStatus {
        let keys = self.current();
        let last_error = lock(&self.last_error).clone();
        let usable = keys.as_ref().filter(|k| k.usable_at(now));
        let state = match (usable, &last_error) {
            (None, None) if *self.done.borrow() == 0 && !self.is_static() => "loading",
            (None, _) => "unavailable",
            (Some(_), Some(_)) => "stale",
            (Some(_), None) => "ok",
        };
        ProviderStatus {
            state,
            keys: usable.map_or(0, |k| k.set.len()),
            age_seconds: keys.as_ref().map(|k| k.age(now)),
            last_error,
        }
    }

    /// Its provider is removed or replaced: no fetch still on its way
    /// writes the key cache any more.
    pub fn retire(&self) {
        if let Some(cache) = &self.cache {
            cache.retire();
        }
    }

    /// Whether the task should be running (fetched sets only).
    pub fn fetches(&self) -> bool {
        !self.is_static()
    }
}

/// The longest a background refresh is put off: the config's bound on a
/// provider's intervals.
const FAR_OFF: Duration = Duration::from_secs(jwtgate_config::TEN_YEARS_SECONDS);

/// A provider failing for changing reasons logs at most this often.
const REASON_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// When to fetch again after a success: the answer's `max-age` within
/// [60, 3600] s when it has one, else `refresh_seconds`; and never past
/// half of `max_stale_seconds`, so that keys a healthy IdP serves never
/// grow too old to use (an IdP's long max-age switched its own tokens off
/// for the rest of each hour), with room for a failed fetch's retries.
/// A `max-age` under the floor (`no-store` is 0) asks for fetches more
/// often than the floor allows: every 60 s then, or `refresh_seconds` if
/// shorter (an outside audit: `max-age=1` beside `refresh_seconds: 3`
/// made them 60 s apart, where the IdP asked for more and the operator
/// too).
fn next_refresh(max_age: Option<u64>, refresh: Duration, max_stale: Duration) -> Duration {
    let chosen = match max_age.map(Duration::from_secs) {
        None => refresh,
        Some(asked) if asked < MIN_REFRESH => refresh.min(MIN_REFRESH),
        Some(asked) => asked.min(MAX_REFRESH),
    };
    chosen.min(max_stale / 2).max(Duration::from_secs(1))
}

/// A digest of how a provider's keys are found and trusted: its key source
/// and its `ca_file`'s certificates. A digest, so that the credential a
/// `jwks_uri` may carry is not written to the cache a second time.
fn origin(source: &ProviderSource) -> String {
    let keys = match &source.keys {
        KeySource::Discovery => "discovery".to_owned(),
        KeySource::Uri(uri) => format!("jwks_uri {uri}"),
        KeySource::File { path, .. } => format!("jwks_file {}", path.display()),
    };
    let mut text = keys.into_bytes();
    text.push(0);
    text.extend_from_slice(source.ca_pem.as_deref().unwrap_or_default());
    jwtgate_core::jwt::sha256(&text)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// Why a fetch failed: the provider could not be reached or answered with
/// an error, or it answered with something unusable.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("{0}")]
    Unreachable(String),
    #[error("{0}")]
    Invalid(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_wins_within_bounds() {
        let refresh = Duration::from_secs(300);
        let day = Duration::from_secs(86_400);
        assert_eq!(next_refresh(None, refresh, day), refresh);
        assert_eq!(
            next_refresh(Some(600), refresh, day),
            Duration::from_secs(600)
        );
        assert_eq!(next_refresh(Some(0), refresh, day), MIN_REFRESH);
        assert_eq!(next_refresh(Some(5), refresh, day), MIN_REFRESH);
        assert_eq!(next_refresh(Some(86_400), refresh, day), MAX_REFRESH);
        // Under the floor, never less often than refresh_seconds.
        let often = Duration::from_secs(3);
        assert_eq!(next_refresh(Some(0), often, day), often);
        assert_eq!(next_refresh(Some(1), often, day), often);
        assert_eq!(next_refresh(Some(30), often, day), often);
        assert_eq!(
            next_refresh(Some(120), often, day),
            Duration::from_secs(120)
        );
    }

    /// An outside audit: `max-age=3600` with `max_stale_seconds: 75` left
    /// the keys of a healthy IdP unused from 75 s after each fetch.
    #[test]
    fn keys_are_fetched_again_before_they_grow_too_old_to_use() {
        let refresh = Duration::from_secs(30);
        let stale = Duration::from_secs(75);
        assert_eq!(next_refresh(Some(3600), refresh, stale), stale / 2);
        assert_eq!(
            next_refresh(None, Duration::from_secs(60), stale),
            stale / 2
        );
        assert_eq!(next_refresh(None, refresh, stale), refresh);
        let tiny = Duration::from_secs(1);
        assert_eq!(
            next_refresh(Some(600), refresh, tiny),
            Duration::from_secs(1)
        );
    }
}
