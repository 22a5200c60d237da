//! Routes, consumers and providers in etcd (SPEC §6), the engine APISIX
//! keeps its configuration in: one key per object under a prefix
//! (`{prefix}/routes/<name>`, `{prefix}/consumers/<username>`,
//! `{prefix}/providers/<name>`), JSON in the admin API's shapes.
//!
//! What this crate does: connect (TLS, user and password), read every
//! object at one revision ([`Etcd::snapshot`]), follow the changes from a
//! revision on, one revision at a time ([`Watch`]), and write a set of
//! objects in one transaction that holds only if none of them changed
//! since it was read ([`Etcd::commit`]). Every request is bounded by
//! `dial_timeout_ms`.
//!
//! What it does not do: decide what an object means or whether it is
//! valid: the values are bytes here (only a name that cannot be a key's
//! last segment is refused, [`name_problem`]); the control plane reads
//! them with the config file's reader and applies them through its one
//! path.

mod members;

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, Identity,
    SortOrder, SortTarget, TlsOptions, Txn, TxnOp, WatchOptions, WatchStream,
};
use jwtgate_config::EtcdSettings;
pub use jwtgate_config::ObjectKind as Kind;
use members::{describe, Failure, Members};

/// One object as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub kind: Kind,
    pub name: String,
    pub value: Vec<u8>,
    /// The revision of its last change (what a write is conditioned on).
    pub mod_revision: i64,
}

/// Every object under the prefix at one revision.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub objects: Vec<Object>,
    pub revision: i64,
    /// The cluster's id: a different one means another (or a re-created)
    /// etcd.
    pub cluster_id: u64,
    /// Keys under the prefix that name no object (logged, ignored).
    pub strays: Vec<String>,
}

/// One change a revision made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Put(Object),
    Delete { kind: Kind, name: String },
}

/// The changes of one revision, in key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub revision: i64,
    pub changes: Vec<Change>,
}

/// Why a watch ended; the caller reconnects and, after a compaction,
/// reloads in full.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WatchEnd {
    #[error("the watch fell behind a compaction (compacted up to revision {0})")]
    Compacted(i64),
    #[error("the watch ended: {0}")]
    Lost(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EtcdError {
    #[error("etcd unavailable: {0}")]
    Unavailable(String),
    /// etcd answered, and refused the request: permission, or a request it
    /// does not take (too large, too many operations, no user given where
    /// authentication is on). Certainly not made; trying again changes
    /// nothing.
    #[error("etcd refused the request: {0}")]
    Refused(String),
    /// A condition of the transaction failed: someone changed one of the
    /// objects since it was read.
    #[error("etcd changed since it was read")]
    Conflict,
}

impl EtcdError {
    /// Whether the request never left this node: etcd refused the
    /// connection (nothing listens there), so a write was certainly not
    /// made. Any other failure may come after etcd took the request.
    pub fn never_sent(&self) -> bool {
        match self {
            EtcdError::Unavailable(e) => {
                e.contains("tcp connect error") || e.contains("Connection refused")
            }
            EtcdError::Refused(_) => true,
            EtcdError::Conflict => false,
        }
    }
}

/// What a write expects of its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The key does not exist.
    Absent,
    /// The key was last changed at this revision.
    ModRevision(i64),
}

/// One object to write (`value: None` deletes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub kind: Kind,
    pub name: String,
    pub value: Option<Vec<u8>>,
    pub expect: Expect,
}

/// Why `name` cannot name an object in etcd, if it cannot: the name is the
/// last segment of the object's key, and a `/` in it would make a key no
/// node reads back as that object.
pub fn name_problem(name: &str) -> Option<String> {
    name.contains('/').then(|| {
        format!("{name:?} cannot be a name in etcd: it must not contain \"/\" (the name is the last segment of the object's key)")
    })
}

/// The field of an object that holds its name.
pub fn name_field(kind: Kind) -> &'static str {
    match kind {
        Kind::Consumer => "username",
        Kind::Route | Kind::Provider => "name",
    }
}

/// A connection to etcd under one prefix.
#[derive(Clone)]
pub struct Etcd {
    members: Arc<Members>,
    prefix: String,
    timeout: Duration,
}

/// Keys per page of a snapshot.
const PAGE: i64 = 1000;
/// The largest answer taken from etcd (a page, or one revision's events).
const MAX_MESSAGE: usize = 64 << 20;

/// The first key after every key that starts with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// How often each connection to a member is checked (an HTTP/2 PING,
/// answered within `dial_timeout`), besides the requests that leave a
/// member that does not answer them ([`members`]) and the quiet watch's
/// question ([`Watch::next`]). etcd ends a connection pinged more often
/// than every 5 s (`--grpc-keepalive-min-time`).
const KEEP_ALIVE: Duration = Duration::from_secs(6);

fn unavailable(e: impl std::fmt::Display) -> EtcdError {
    EtcdError::Unavailable(e.to_string())
}

/// An error of the etcd client: refused when etcd answered with a status
/// that says it will not take the request (a request it does not take, a
/// user it does not let do it), else unavailable. `Unauthenticated` is
/// not among them: it also says an auth token expired, which passes.
fn client_error(e: etcd_client::Error) -> EtcdError {
    use tonic::Code;
    match &e {
        etcd_client::Error::GRpcStatus(status)
            if matches!(
                status.code(),
                Code::InvalidArgument | Code::PermissionDenied
            ) =>
        {
            EtcdError::Refused(status.message().to_owned())
        }
        _ => unavailable(describe(&e)),
    }
}

impl Etcd {
    /// Connects (and authenticates), within `dial_timeout`; the
    /// connections run on the caller's runtime.
    pub async fn connect(s: &EtcdSettings) -> Result<Etcd, EtcdError> {
        Etcd::connect_on(s, tokio::runtime::Handle::current()).await
    }

    /// As [`Etcd::connect`], the connections running on `runtime`.
    pub async fn connect_on(
        s: &EtcdSettings,
        runtime: tokio::runtime::Handle,
    ) -> Result<Etcd, EtcdError> {
        let mut options = ConnectOptions::new()
            .with_connect_timeout(s.dial_timeout)
            .with_keep_alive(KEEP_ALIVE, s.dial_timeout)
            .with_require_leader(true);
        if let Some(tls) = &s.tls {
            let mut t = TlsOptions::new().with_native_roots();
            if let Some(ca) = &tls.ca_pem {
                t = t.ca_certificate(Certificate::from_pem(ca));
            }
            if let Some((cert, key)) = &tls.identity {
                t = t.identity(Identity::from_pem(cert, key));
            }
            options = options.with_tls(t);
        }
        // With a user, the options without it too: an etcd whose
        // authentication is turned off refuses a client that signs in,
        // where etcd's own client goes on without a token.
        let mut unauthenticated = None;
        if let (Some(user), Some(password)) = (&s.username, &s.password) {
            unauthenticated = Some(options.clone());
            // etcd's auth tokens expire (simple tokens after 5 idle
            // minutes): the client authenticates again and retries.
            options = options
                .with_user(user.clone(), password.clone())
                .with_auto_token_refresh(true);
        }
        let scheme = if s.tls.is_some() { "https" } else { "http" };
        let endpoints: Vec<String> = s
            .endpoints
            .iter()
            .map(|e| format!("{scheme}://{e}"))
            .collect();
        let members = Members::new(endpoints, (options, unauthenticated), runtime)
            .ok_or_else(|| EtcdError::Unavailable("no endpoints".into()))?;
        let etcd = Etcd {
            members: Arc::new(members),
            prefix: s.prefix.clone(),
            timeout: s.dial_timeout,
        };
        // A member that takes the connection (with a user: that
        // authenticates it), within the timeout; without a user, nothing
        // is sent until the first request.
        etcd.bounded(|_| async { Ok::<(), etcd_client::Error>(()) })
            .await?;
        Ok(etcd)
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The key of an object.
    pub fn key(&self, kind: Kind, name: &str) -> String {
        format!("{}/{}/{name}", self.prefix, kind.dir())
    }

    /// The object a key names, if it names one.
    fn parse_key(&self, key: &[u8]) -> Option<(Kind, String)> {
        let key = std::str::from_utf8(key).ok()?;
        let rest = key.strip_prefix(&self.prefix)?.strip_prefix('/')?;
        let (dir, name) = rest.split_once('/')?;
        let kind = Kind::from_dir(dir)?;
        (!name.is_empty() && !name.contains('/')).then(|| (kind, name.to_owned()))
    }

    /// Runs one request within the timeout (`dial_timeout`), made by
    /// `attempt` with the current member's client.
    async fn bounded<T, Fut>(&self, attempt: impl FnMut(Client) -> Fut) -> Result<T, EtcdError>
    where
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        self.on_a_member(attempt).await.map(|(answer, _, _)| answer)
    }

    /// As [`Etcd::bounded`], with the member that answered and its client.
    async fn on_a_member<T, Fut>(
        &self,
        attempt: impl FnMut(Client) -> Fut,
    ) -> Result<(T, usize, Client), EtcdError>
    where
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        self.members
            .run(self.timeout, attempt)
            .await
            .map_err(|failure| self.error_of(failure))
    }

    fn error_of(&self, failure: Failure) -> EtcdError {
        match failure {
            Failure::NoAnswer => self.no_answer(),
            Failure::Client(e) => client_error(e),
        }
    }

    fn no_answer(&self) -> EtcdError {
        EtcdError::Unavailable(format!("no answer within {:?}", self.timeout))
    }

    /// Every object under the prefix, at one revision, read in pages.
    pub async fn snapshot(&self) -> Result<Snapshot, EtcdError> {
        let mut snap = Snapshot::default();
        let read = self
            .read_prefix(0, false, |kv| match self.parse_key(kv.key()) {
                Some((kind, name)) => snap.objects.push(Object {
                    kind,
                    name,
                    value: kv.value().to_vec(),
                    mod_revision: kv.mod_revision(),
                }),
                None => snap
                    .strays
                    .push(String::from_utf8_lossy(kv.key()).into_owned()),
            })
            .await?;
        // Compacted between two pages (etcd moved on meanwhile): the caller
        // reads again.
        let (revision, cluster_id) = read
            .ok_or_else(|| EtcdError::Unavailable("compacted while the prefix was read".into()))?;
        snap.revision = revision;
        snap.cluster_id = cluster_id;
        snap.objects
            .sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
        Ok(snap)
    }

    /// The key of every object under the prefix as it stood at `revision`,
    /// with its mod revision, in key order (values left out); `None` when
    /// etcd no longer keeps that revision (compacted). A node that comes
    /// back compares it with what it applied there: a different answer
    /// means etcd lost its data (or these are other endpoints), which a
    /// watch from the next revision would never show.
    pub async fn keys_at(
        &self,
        revision: i64,
    ) -> Result<Option<Vec<(Kind, String, i64)>>, EtcdError> {
        let mut out = Vec::new();
        let read = self
            .read_prefix(revision, true, |kv| {
                if let Some((kind, name)) = self.parse_key(kv.key()) {
                    out.push((kind, name, kv.mod_revision()));
                }
            })
            .await?;
        out.sort();
        Ok(read.map(|_| out))
    }

    /// Reads every key under the prefix in pages, at `revision` (0: the
    /// current one, which the first page fixes), values left out when
    /// `keys_only`, and hands each to `each`. The revision and cluster id
    /// read at; `None` when that revision is compacted.
    async fn read_prefix(
        &self,
        revision: i64,
        keys_only: bool,
        mut each: impl FnMut(&etcd_client::KeyValue),
    ) -> Result<Option<(i64, u64)>, EtcdError> {
        let prefix = format!("{}/", self.prefix);
        let end = prefix_end(prefix.as_bytes());
        let mut at: Option<(i64, u64)> = None;
        let mut start = prefix.into_bytes();
        loop {
            let mut options = GetOptions::new()
                .with_range(end.clone())
                .with_limit(PAGE)
                .with_sort(SortTarget::Key, SortOrder::Ascend);
            match at {
                Some((r, _)) => options = options.with_revision(r),
                None if revision > 0 => options = options.with_revision(revision),
                None => {}
            }
            if keys_only {
                options = options.with_keys_only();
            }
            let answer = self
                .members
                .run(self.timeout, |client| {
                    let mut kv = client.kv_client().max_decoding_message_size(MAX_MESSAGE);
                    let (key, options) = (start.clone(), options.clone());
                    async move { kv.get(key, Some(options)).await }
                })
                .await
                .map(|(resp, _, _)| resp);
            let resp = match answer {
                Err(Failure::Client(e))
                    if e.to_string()
                        .contains("required revision has been compacted") =>
                {
                    return Ok(None)
                }
                Err(failure) => return Err(self.error_of(failure)),
                Ok(resp) => resp,
            };
            if at.is_none() {
                let header = resp.header();
                let current = header.map_or(0, |h| h.revision());
                let read_at = if revision > 0 { revision } else { current };
                at = Some((read_at, header.map_or(0, |h| h.cluster_id())));
            }
            resp.kvs().iter().for_each(&mut each);
            match resp.kvs().last() {
                Some(last) if resp.more() => {
                    // The next page starts just after the last key.
                    start = last.key().to_vec();
                    start.push(0);
                }
                _ => break,
            }
        }
        Ok(at)
    }

    /// The current revision and cluster id (a cheap read).
    pub async fn revision(&self) -> Result<(i64, u64), EtcdError> {
        let resp = self
            .bounded(|client| {
                let mut kv = client.kv_client();
                let key = format!("{}/", self.prefix);
                async move {
                    kv.get(key, Some(GetOptions::new().with_prefix().with_count_only()))
                        .await
                }
            })
            .await?;
        let h = resp.header();
        Ok((
            h.map_or(0, |h| h.revision()),
            h.map_or(0, |h| h.cluster_id()),
        ))
    }

    /// The revision of the newest key under the prefix (0 when it holds
    /// none): what a node that applied it holds of etcd, but for deletions
    /// made since, which leave no key. Unlike [`Etcd::revision`], writes
    /// outside the prefix (another application, another prefix's nodes)
    /// do not move it.
    pub async fn newest_under_prefix(&self) -> Result<i64, EtcdError> {
        let resp = self
            .bounded(|client| {
                let mut kv = client.kv_client();
                let key = format!("{}/", self.prefix);
                async move {
                    let options = GetOptions::new()
                        .with_prefix()
                        .with_keys_only()
                        .with_limit(1)
                        .with_sort(SortTarget::Mod, SortOrder::Descend);
                    kv.get(key, Some(options)).await
                }
            })
            .await?;
        Ok(resp.kvs().first().map_or(0, |kv| kv.mod_revision()))
    }

    /// Follows the changes under the prefix from revision `from` on.
    pub async fn watch(&self, from: i64) -> Result<Watch, EtcdError> {
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(from)
            .with_progress_notify();
        let (stream, member, client) = self
            .on_a_member(|client| {
                let mut w = client.watch_client().max_decoding_message_size(MAX_MESSAGE);
                let (key, options) = (format!("{}/", self.prefix), options.clone());
                async move { w.watch(key, Some(options)).await }
            })
            .await?;
        Ok(Watch {
            stream,
            etcd: self.clone(),
            member,
            client,
            queued: VecDeque::new(),
        })
    }

    /// Writes `writes` in one transaction that holds only if nothing under
    /// the prefix changed after revision `read_at` and every written key is
    /// as expected (a key deleted since is not under the prefix any more);
    /// `Conflict` otherwise. Returns the revision it made. `held`: a key
    /// that must still be at that mod revision (the writer's newest): an
    /// etcd that lost its data since it was read holds nothing under the
    /// prefix, which the other conditions let pass.
    pub async fn commit(
        &self,
        writes: &[Write],
        read_at: i64,
        held: Option<(Kind, &str, i64)>,
    ) -> Result<i64, EtcdError> {
        if writes.is_empty() {
            return self.revision().await.map(|(r, _)| r);
        }
        let mut compares = Vec::with_capacity(writes.len() + 2);
        compares.push(
            Compare::mod_revision(format!("{}/", self.prefix), CompareOp::Less, read_at + 1)
                .with_prefix(),
        );
        if let Some((kind, name, mod_revision)) = held {
            let key = self.key(kind, name);
            compares.push(Compare::mod_revision(key, CompareOp::Equal, mod_revision));
        }
        let mut ops = Vec::with_capacity(writes.len());
        for w in writes {
            let key = self.key(w.kind, &w.name);
            compares.push(match w.expect {
                Expect::Absent => Compare::create_revision(key.clone(), CompareOp::Equal, 0),
                Expect::ModRevision(r) => Compare::mod_revision(key.clone(), CompareOp::Equal, r),
            });
            ops.push(match &w.value {
                Some(v) => TxnOp::put(key, v.clone(), None),
                None => TxnOp::delete(key, None),
            });
        }
        let txn = Txn::new().when(compares).and_then(ops);
        let resp = self
            .bounded(|client| {
                let (mut kv, txn) = (client.kv_client(), txn.clone());
                async move { kv.txn(txn).await }
            })
            .await?;
        if !resp.succeeded() {
            return Err(EtcdError::Conflict);
        }
        Ok(resp.header().map_or(0, |h| h.revision()))
    }
}

/// How long a watch may be silent before its member is asked a small
/// question (how many keys the prefix holds) on the watch's connection,
/// to be answered within `dial_timeout`: a member that hangs sends nothing
/// and refuses nothing, and its connection's keep-alive takes 6 s and more
/// to find it gone. Not a progress request: etcd 3.4.38, 3.5.22 and 3.6.2
/// on leave it unanswered while the watch waits for a revision etcd has
/// not reached, which is where a watch that caught up waits.
const WATCH_QUIET: Duration = Duration::from_secs(2);

/// A watch on the prefix.
pub struct Watch {
    stream: WatchStream,
    etcd: Etcd,
    /// The member it runs on, and that member's client.
    member: usize,
    client: Client,
    /// Revisions received and not handed out yet: one answer may carry
    /// several (a watch that starts behind gets them all at once).
    queued: VecDeque<Batch>,
}

impl Watch {
    /// The next revision's changes, one revision at a time, in order
    /// (progress notifications, which carry none, are skipped). Lost when
    /// the member, asked a question after [`WATCH_QUIET`] of silence, does
    /// not answer it (it is then left for the next one).
    pub async fn next(&mut self) -> Result<Batch, WatchEnd> {
        loop {
            if let Some(batch) = self.queued.pop_front() {
                return Ok(batch);
            }
            let resp = self.message().await?;
            self.queue(resp)?;
        }
    }

    /// The next revision's changes if they are already here (received, or
    /// waiting on the connection), without waiting for any: a follower
    /// applies what a burst of writes brought before installing the
    /// config it makes. `None`: nothing is here yet.
    pub fn ready(&mut self) -> Option<Result<Batch, WatchEnd>> {
        loop {
            if let Some(batch) = self.queued.pop_front() {
                return Some(Ok(batch));
            }
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            // `message` of tonic's stream only polls it: dropped while
            // pending, it loses nothing.
            let message = match std::pin::pin!(self.stream.message()).poll(&mut cx) {
                std::task::Poll::Ready(m) => m,
                std::task::Poll::Pending => return None,
            };
            let resp = match self.answered(message) {
                Ok(resp) => resp,
                Err(end) => return Some(Err(end)),
            };
            if let Err(end) = self.queue(resp) {
                return Some(Err(end));
            }
        }
    }

    /// Queues an answer's changes, one batch per revision.
    fn queue(&mut self, resp: etcd_client::WatchResponse) -> Result<(), WatchEnd> {
        if resp.compact_revision() > 0 {
            return Err(WatchEnd::Compacted(resp.compact_revision()));
        }
        if resp.events().is_empty() {
            return Ok(());
        }
        let events = resp.events().iter().filter_map(|event| {
            let kv = event.kv()?;
            let parsed = self.etcd.parse_key(kv.key());
            if parsed.is_none() {
                tracing::warn!(
                    key = ?String::from_utf8_lossy(kv.key()),
                    "etcd: a key under the prefix that names no route, consumer or provider; ignored"
                );
            }
            let change = parsed.map(|(kind, name)| match event.event_type() {
                    EventType::Put => Change::Put(Object {
                        kind,
                        name,
                        value: kv.value().to_vec(),
                        mod_revision: kv.mod_revision(),
                    }),
                    EventType::Delete => Change::Delete { kind, name },
                });
            Some((kv.mod_revision(), change))
        });
        let header = resp.header().map_or(0, |h| h.revision());
        self.queued = by_revision(events, header);
        Ok(())
    }

    /// The next answer of the member. After [`WATCH_QUIET`] of silence the
    /// member is asked a question on the same connection; one that does not
    /// answer within `dial_timeout` (or cannot serve: no leader) is left for
    /// the next one, and the watch is lost.
    async fn message(&mut self) -> Result<etcd_client::WatchResponse, WatchEnd> {
        loop {
            tokio::select! {
                message = self.stream.message() => return self.answered(message),
                _ = tokio::time::sleep(WATCH_QUIET) => {}
            }
            let mut kv = self.client.kv_client();
            let question = kv.get(
                format!("{}/", self.etcd.prefix),
                Some(GetOptions::new().with_prefix().with_count_only()),
            );
            let failure = tokio::select! {
                message = self.stream.message() => return self.answered(message),
                answer = tokio::time::timeout(self.etcd.timeout, question) => match answer {
                    Err(_) => Failure::NoAnswer,
                    Ok(Err(e)) => Failure::Client(e),
                    Ok(Ok(_)) => continue,
                },
            };
            if !failure.of_the_member() {
                continue;
            }
            self.etcd.members.leave(self.member);
            return Err(WatchEnd::Lost(format!(
                "the watch's etcd member did not answer while it was quiet: {}",
                self.etcd.error_of(failure)
            )));
        }
    }

    /// An answer of the watch stream: lost (and its member left) when the
    /// stream failed, closed or was canceled for a cause other than a
    /// compaction, which the caller tells apart.
    fn answered(
        &self,
        message: Result<Option<etcd_client::WatchResponse>, etcd_client::Error>,
    ) -> Result<etcd_client::WatchResponse, WatchEnd> {
        let lost = match message {
            Ok(Some(resp)) if !resp.canceled() || resp.compact_revision() > 0 => return Ok(resp),
            Ok(Some(resp)) => format!("canceled by etcd: {}", resp.cancel_reason()),
            Ok(None) => "the stream closed".to_owned(),
            Err(e) => describe(&e),
        };
        self.etcd.members.leave(self.member);
        Err(WatchEnd::Lost(lost))
    }
}

/// One answer's events (in revision order, each with its revision; `None`:
/// a key that names no object) as one batch per revision, so that a node
/// applies each revision on its own, exactly as a node that watched all
/// along did: two revisions applied as one could be refused together
/// (lifting a protection, then the change it allowed) where one at a
/// time they apply. When the answer's header is past its last event, an
/// empty batch at the header's revision follows (nothing under the prefix
/// changed up to it), unless the answer is as long as etcd sends one
/// ([`WATCH_BATCH_MAX_REVS`]).
fn by_revision(
    events: impl IntoIterator<Item = (i64, Option<Change>)>,
    header: i64,
) -> VecDeque<Batch> {
    let mut out: VecDeque<Batch> = VecDeque::new();
    for (revision, change) in events {
        if out.back().map(|last| last.revision) != Some(revision) {
            out.push_back(Batch {
                revision,
                changes: Vec::new(),
            });
        }
        if let (Some(batch), Some(change)) = (out.back_mut(), change) {
            batch.changes.push(change);
        }
    }
    let whole = out.len() < WATCH_BATCH_MAX_REVS;
    if whole && out.back().is_some_and(|last| header > last.revision) {
        out.push_back(Batch {
            revision: header,
            changes: Vec::new(),
        });
    }
    out
}

/// The most revisions etcd puts in one answer to a watch that catches up
/// (`watchBatchMaxRevs`): an answer that holds that many may have more to
/// come, although its header gives etcd's current revision. Taken for the
/// end of the backlog, that header moved the node's revision past changes
/// still to come, and an admin write was judged against what the node had
/// not caught up with (a review of stop 52's diff).
const WATCH_BATCH_MAX_REVS: usize = 1000;

#[cfg(test)]
mod tests {
    use super::*;

    fn put(name: &str, revision: i64) -> (i64, Option<Change>) {
        let object = Object {
            kind: Kind::Route,
            name: name.into(),
            value: b"{}".to_vec(),
            mod_revision: revision,
        };
        (revision, Some(Change::Put(object)))
    }

    fn del(name: &str, revision: i64) -> (i64, Option<Change>) {
        let change = Change::Delete {
            kind: Kind::Route,
            name: name.into(),
        };
        (revision, Some(change))
    }

    fn shape(batches: &VecDeque<Batch>) -> Vec<(i64, usize)> {
        batches
            .iter()
            .map(|b| (b.revision, b.changes.len()))
            .collect()
    }

    #[test]
    fn names_with_a_slash_cannot_be_keys() {
        assert!(name_problem("team/alice").is_some());
        assert!(name_problem("alice").is_none());
        assert!(name_problem("a.b-c_d@e").is_none());
        assert_eq!(name_field(Kind::Consumer), "username");
    }

    #[test]
    fn one_batch_per_revision() {
        // A watch that starts behind: three revisions in one answer, the
        // second a transaction of two keys, the header at the last event.
        let batches = by_revision(vec![put("a", 7), put("b", 8), del("c", 8), put("a", 9)], 9);
        assert_eq!(shape(&batches), [(7, 1), (8, 2), (9, 1)]);
        assert_eq!(batches[1].changes[1], del("c", 8).1.expect("change"));
    }

    #[test]
    fn a_header_past_the_events_ends_with_an_empty_batch() {
        let batches = by_revision(vec![put("a", 7)], 12);
        assert_eq!(shape(&batches), [(7, 1), (12, 0)]);
        // Keys that name no object still count as their revision.
        let batches = by_revision(vec![(5, None), put("a", 6)], 6);
        assert_eq!(shape(&batches), [(5, 0), (6, 1)]);
        assert!(by_revision(Vec::new(), 3).is_empty());
    }

    #[test]
    fn an_answer_as_long_as_etcd_sends_says_nothing_of_its_header() {
        let backlog = |n: i64| (1..=n).map(|r| put("a", r)).collect::<Vec<_>>();
        let batches = by_revision(backlog(999), 5000);
        assert_eq!(batches.len(), 1000);
        assert_eq!(batches.back().map(|b| b.revision), Some(5000));
        let batches = by_revision(backlog(1000), 5000);
        assert_eq!(batches.len(), 1000);
        assert_eq!(batches.back().map(|b| b.revision), Some(1000));
    }
}
