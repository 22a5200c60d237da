//! Redis and Redis Cluster stores.
//!
//! Layout (all keys share one hash tag, so they live in one cluster slot and
//! one Lua script can touch them atomically):
//! - `{name}:revoked`: sorted set, member = hex digest, score = expiry; the
//!   source of truth for full resyncs and purges;
//! - `{name}:feed`: stream of revocations (capped), which every node follows
//!   with a blocking `XREAD` on a dedicated connection: unlike pub/sub, a node
//!   that reconnects resumes where it stopped;
//! - `{name}:generation`: a value set once; a node that finds it changed
//!   knows the keys beside it were lost, and writes back what it holds.
//!
//! A revocation is one script (ZADD + XADD) and, when the primary has
//! replicas, `WAIT 1` on the same node: `Ok` means a replica has it too.
//!
//! The shared connection is built again after an operation on it fails
//! (an error or a timeout), not left to the client's own reconnects: a
//! standalone connection whose reconnect met a refused AUTH stayed broken
//! for good, and a cluster connection kept a hung primary in its slot map
//! after its replica took over (the client refreshes the map on MOVED and
//! on connection errors, never on a timeout). Either way the node answered
//! logouts 503 and missed other nodes' revocations while Redis answered.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionAddr, FromRedisValue, IntoConnectionInfo,
    RedisConnectionInfo, Value,
};
use tokio::sync::Mutex;
use tracing::warn;

use crate::gate::OpGate;
use crate::{
    from_hex, to_hex, Change, Cursor, Cutoff, Entry, RevocationStore, StoreError, SubjectKey,
};
use jwtgate_config::{PoolConfig, RedisClusterConfig, RedisConfig};

/// Feed entries kept in the stream; older ones are trimmed (approximately).
/// A node further behind than this catches up through a full resync.
const FEED_MAX_LEN: u64 = 100_000;

/// The latest expiry given to Redis (the last second of the year 9999): it
/// refuses an `EXAT` whose milliseconds overflow, and a logout token may
/// say any `exp`.
const LATEST_EXPIRY: i64 = 253_402_300_799;

/// Lua that reads a once-only key's value into `holder` and `names`
/// (below), for the two scripts that use it.
macro_rules! once_record_lua {
    () => {
        r"
local v = redis.call('GET', KEYS[1]) or '|'
local bar = string.find(v, '|', 1, true)
local holder, names = v, ''
if bar then
  holder = string.sub(v, 1, bar - 1)
  names = string.sub(v, bar + 1)
end
"
    };
}

/// A once-only key's value is `HOLDER|NAMES`: the owner whose claim holds
/// it (empty when none does) and the owners whose claims were forgotten
/// (`,o1,o2,`, empty when none were). A value without `|` (written before
/// forgotten claims were named) is a holder's.
///
/// `claim_once`: the holder's own claim, met again (a command the client
/// sent twice), is taken: it is the same claim. Another holder, or a name
/// in NAMES (that owner's claim arriving after its forget: a stalled Redis,
/// a retried command), finds the key taken. Else the owner holds it, and
/// NAMES are kept.
const CLAIM_SCRIPT: &str = concat!(
    once_record_lua!(),
    r"
if holder == ARGV[1] then
  return 1
end
if holder ~= '' or string.find(names, ',' .. ARGV[1] .. ',', 1, true) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. names, 'EXAT', ARGV[2])
return 1
"
);

/// `forget_once`: the owner's claim, or no claim, gives way to a value
/// held by none that names the owner among the forgotten (kept an hour),
/// so that its claim, should it arrive after, finds the key taken. Another
/// owner's claim stays (0). -1: NAMES is full (4 KiB, some 60 forgotten
/// claims of one key), and the owner is not named.
const FORGET_SCRIPT: &str = concat!(
    once_record_lua!(),
    r"
if holder ~= '' and holder ~= ARGV[1] then
  return 0
end
if string.find(names, ',' .. ARGV[1] .. ',', 1, true) then
  return 1
end
if #names >= 4096 then
  return -1
end
if names == '' then
  names = ','
end
redis.call('SET', KEYS[1], '|' .. names .. ARGV[1] .. ',', 'EX', ARGV[2])
return 1
"
);

/// How long a forgotten claim's mark is kept: longer than any claim (a
/// back-channel logout's lasts until at most its `iat` + 240 s).
const FORGOTTEN_SECONDS: u64 = 3600;
/// Entries fetched per page in a full resync.
const SNAPSHOT_PAGE: usize = 10_000;

const REVOKE_SCRIPT: &str = r"
redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'd', ARGV[1], 'e', ARGV[2])
return 1
";

/// A cut-off: the later of the stored and the new one, then the feed.
const CUTOFF_SCRIPT: &str = r"
local nb = tonumber(ARGV[2])
local ex = tonumber(ARGV[3])
local prev = redis.call('HGET', KEYS[1], ARGV[1])
if prev then
  local p_nb, p_ex = string.match(prev, '^(-?%d+):(-?%d+)$')
  if p_nb then
    nb = math.max(nb, tonumber(p_nb))
    ex = math.max(ex, tonumber(p_ex))
  end
end
local value = string.format('%d:%d', nb, ex)
redis.call('HSET', KEYS[1], ARGV[1], value)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 't', 'c', 'k', ARGV[1], 'v', value)
return 1
";

/// Cut-offs past their retention deleted, each only if it still is: one
/// recorded again since the purge read it (a later `expires_at`) stays.
const PURGE_CUTOFFS_SCRIPT: &str = r"
local now = tonumber(ARGV[1])
local n = 0
for i = 2, #ARGV do
  local v = redis.call('HGET', KEYS[1], ARGV[i])
  if v then
    local ex = string.match(v, '^-?%d+:(-?%d+)$')
    if ex and tonumber(ex) <= now then
      n = n + redis.call('HDEL', KEYS[1], ARGV[i])
    end
  end
end
return n
";

/// A cut-off deleted, and the feed told, whether or not the store still
/// held it: a node that holds one the store lost must drop it too, not
/// write it back at its next resync as lost.
const LIFT_SCRIPT: &str = r"
local n = redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 't', 'l', 'k', ARGV[1])
return n
";

pub struct RedisStore {
    backend: Backend,
    gate: OpGate,
    zset: String,
    feed: String,
    /// Subject cut-offs: hash of encoded key -> "not_before:expires_at".
    subjects: String,
    /// Prefix of keys recorded once (`SET NX`).
    once: String,
    /// A value set once (`SET NX`) and kept: if it changes, the keys beside
    /// it were lost with it (same hash tag: same node).
    generation: String,
    cutoff_script: redis::Script,
    lift_script: redis::Script,
    purge_cutoffs_script: redis::Script,
    op_timeout: Duration,
    connect_timeout: Duration,
    kind: &'static str,
    script: redis::Script,
    /// Whether the eviction policy was asked for ([`Self::warn_of_eviction`]).
    eviction_checked: AtomicBool,
    /// Shared connections made so far (each is numbered by the count
    /// before it).
    conn_made: AtomicU64,
    /// The connection each failed claim went over, by owner, for its
    /// forget to follow it there ([`RevocationStore::forget_once`]).
    failed_claims: std::sync::Mutex<HashMap<String, Conn>>,
}

tokio::task_local! {
    /// The number of the shared connection the operation running in this
    /// task got ([`RedisStore::op`]).
    static CONN_USED: std::cell::Cell<Option<u64>>;
}

/// Records, for the operation running in this task, that it uses shared
/// connection `n`.
fn note_used(n: u64) {
    let _ = CONN_USED.try_with(|used| used.set(Some(n)));
}

/// Failed claims kept for their forget; more (callers that never forget)
/// start the list afresh.
const FAILED_CLAIMS_KEPT: usize = 1024;

// One per store, built once: the size difference between variants is moot.
#[allow(clippy::large_enum_variant)]
enum Backend {
    Standalone {
        client: Client,
        conn: Mutex<Option<(u64, ConnectionManager)>>,
        feed: Mutex<Option<MultiplexedConnection>>,
        pool: PoolConfig,
    },
    Cluster {
        client: ClusterClient,
        feed_client: ClusterClient,
        /// The command connection, and when an operation last took it.
        conn: Mutex<Option<(u64, ClusterConnection, Instant)>>,
        feed: Mutex<Option<ClusterConnection>>,
        /// A command connection idle this long is closed and made afresh
        /// (`keepalive_timeout_ms`): a firewall or NAT that dropped the
        /// idle flow meanwhile would have cost the next logout a timeout.
        keepalive: Duration,
        /// Each seed of `store.nodes` on its own, to check that they are
        /// members of one cluster ([`RedisStore::warn_of_foreign_seeds`]).
        seeds: std::sync::Arc<Vec<(String, Client)>>,
        seeds_checked: AtomicBool,
    },
}

/// A connection of either kind, cheap to clone.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

fn err(e: redis::RedisError) -> StoreError {
    if answered(&e) {
        StoreError::Refused(e.to_string())
    } else {
        StoreError::Unavailable(e.to_string())
    }
}

/// Whether Redis answered with the error, which then says nothing of the
/// connection (out of memory, no permission for a command, a script
/// error); anything else (I/O, a timeout, a refused login, a cluster
/// moving under the client) may be the connection's.
fn answered(e: &redis::RedisError) -> bool {
    use redis::{ErrorKind, ServerErrorKind as S};
    if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal() {
        return false;
    }
    match e.kind() {
        ErrorKind::Server(kind) => matches!(
            kind,
            S::ResponseError
                | S::ExecAbort
                | S::NoScript
                | S::CrossSlot
                | S::NotBusy
                | S::NoSub
                | S::NoPerm
        ),
        // Codes the client does not know: OOM is one, and so are NOAUTH
        // and WRONGPASS, which are the login's.
        ErrorKind::Extension => !matches!(e.code(), Some("NOAUTH" | "WRONGPASS")),
        ErrorKind::UnexpectedReturnType | ErrorKind::Parse => true,
        _ => false,
    }
}

/// How a connection signs in: `AUTH [username] password`, or not at all.
fn login(username: Option<&str>, password: Option<&str>) -> RedisConnectionInfo {
    let mut info = RedisConnectionInfo::default();
    if let Some(p) = password {
        info = info.set_password(p);
    }
    if let Some(u) = username {
        info = info.set_username(u);
    }
    info
}

impl RedisStore {
    pub fn standalone(cfg: &RedisConfig) -> Result<Self, StoreError> {
        let redis =
            login(cfg.username.as_deref(), cfg.password.as_deref()).set_db(i64::from(cfg.database));
        let info = ConnectionAddr::Tcp(cfg.host.clone(), cfg.port)
            .into_connection_info()
            .map_err(err)?
            .set_redis_settings(redis);
        let client = Client::open(info).map_err(err)?;
        Ok(Self::new(
            Backend::Standalone {
                client,
                conn: Mutex::new(None),
                feed: Mutex::new(None),
                pool: cfg.pool.clone(),
            },
            &cfg.pool,
            "jwtgate",
            "redis",
        ))
    }

    pub fn cluster(cfg: &RedisClusterConfig) -> Result<Self, StoreError> {
        let nodes: Vec<String> = cfg.nodes.iter().map(|n| format!("redis://{n}/")).collect();
        let build = |response: Duration| {
            let mut b = ClusterClient::builder(nodes.clone())
                .connection_timeout(cfg.pool.connect_timeout)
                .response_timeout(response)
                .retries(2);
            if let Some(p) = &cfg.password {
                b = b.password(p.clone());
            }
            if let Some(u) = &cfg.username {
                b = b.username(u.clone());
            }
            b.build().map_err(err)
        };
        let client = build(cfg.pool.read_timeout + cfg.pool.send_timeout)?;
        let feed_client = build(FEED_BLOCK + cfg.pool.read_timeout + cfg.pool.send_timeout)?;
        let login = login(cfg.username.as_deref(), cfg.password.as_deref());
        let seeds = cfg
            .nodes
            .iter()
            .map(|n| {
                let info = format!("redis://{n}/")
                    .into_connection_info()
                    .map_err(err)?
                    .set_redis_settings(login.clone());
                Ok((n.clone(), Client::open(info).map_err(err)?))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Self::new(
            Backend::Cluster {
                client,
                feed_client,
                conn: Mutex::new(None),
                feed: Mutex::new(None),
                keepalive: cfg.keepalive_timeout,
                seeds: std::sync::Arc::new(seeds),
                seeds_checked: AtomicBool::new(false),
            },
            &cfg.pool,
            &cfg.name,
            "redis_cluster",
        ))
    }

    fn new(backend: Backend, pool: &PoolConfig, name: &str, kind: &'static str) -> Self {
        let op_timeout = pool.read_timeout + pool.send_timeout;
        RedisStore {
            backend,
            gate: OpGate::new(pool.pool_size, pool.pool_backlog, op_timeout),
            zset: format!("{{{name}}}:revoked"),
            feed: format!("{{{name}}}:feed"),
            subjects: format!("{{{name}}}:subjects"),
            once: format!("{{{name}}}:once:"),
            generation: format!("{{{name}}}:generation"),
            cutoff_script: redis::Script::new(CUTOFF_SCRIPT),
            lift_script: redis::Script::new(LIFT_SCRIPT),
            purge_cutoffs_script: redis::Script::new(PURGE_CUTOFFS_SCRIPT),
            op_timeout,
            connect_timeout: pool.connect_timeout,
            kind,
            script: redis::Script::new(REVOKE_SCRIPT),
            eviction_checked: AtomicBool::new(false),
            conn_made: AtomicU64::new(0),
            failed_claims: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The shared command connection, connecting on first use, and again
    /// after an operation on it failed ([`Self::forget_conn`]).
    async fn conn(&self) -> Result<Conn, StoreError> {
        match &self.backend {
            Backend::Standalone {
                client, conn, pool, ..
            } => {
                let mut slot = conn.lock().await;
                if let Some((n, c)) = slot.as_ref() {
                    note_used(*n);
                    return Ok(Conn::Single(c.clone()));
                }
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(pool.connect_timeout))
                    .set_response_timeout(Some(self.op_timeout))
                    .set_number_of_retries(2)
                    .set_max_delay(Duration::from_millis(500));
                let c = tokio::time::timeout(
                    self.connect_timeout,
                    ConnectionManager::new_with_config(client.clone(), config),
                )
                .await
                .map_err(|_| StoreError::Timeout(self.connect_timeout))?
                .map_err(err)?;
                let n = self.conn_made.fetch_add(1, Ordering::Relaxed);
                note_used(n);
                *slot = Some((n, c.clone()));
                Ok(Conn::Single(c))
            }
            Backend::Cluster {
                client,
                conn,
                keepalive,
                ..
            } => {
                let mut slot = conn.lock().await;
                let now = Instant::now();
                self.close_if_idle(&mut slot, *keepalive, now);
                if let Some((n, c, used)) = slot.as_mut() {
                    *used = now;
                    note_used(*n);
                    return Ok(Conn::Cluster(c.clone()));
                }
                let c = tokio::time::timeout(
                    self.connect_timeout + self.op_timeout,
                    client.get_async_connection(),
                )
                .await
                .map_err(|_| StoreError::Timeout(self.connect_timeout))?
                .map_err(err)?;
                let n = self.conn_made.fetch_add(1, Ordering::Relaxed);
                note_used(n);
                *slot = Some((n, c.clone(), Instant::now()));
                Ok(Conn::Cluster(c))
            }
        }
    }

    /// Closes the cluster's command connection in `slot` when no
    /// operation took it for `keepalive` (`keepalive_timeout_ms`).
    fn close_if_idle(
        &self,
        slot: &mut Option<(u64, ClusterConnection, Instant)>,
        keepalive: Duration,
        now: Instant,
    ) {
        if slot
            .take_if(|(_, _, used)| now.duration_since(*used) > keepalive)
            .is_some()
        {
            tracing::debug!(
                store = self.kind,
                "store connection idle past keepalive_timeout_ms: closed"
            );
        }
    }

    /// Closes an idle command connection on time, not only at its next
    /// use: called by the feed's reader, about once a second. Never waits.
    fn close_idle_conn(&self) {
        if let Backend::Cluster {
            conn, keepalive, ..
        } = &self.backend
        {
            if let Ok(mut slot) = conn.try_lock() {
                self.close_if_idle(&mut slot, *keepalive, Instant::now());
            }
        }
    }

    /// Lets go of shared connection `used` after an operation on it
    /// failed, for the next operation to connect afresh (a new cluster
    /// connection reads the slot map from the seeds that answer). Another
    /// connection in its place is kept, and so is this one when the slot is
    /// busy (a connection being made: this one is gone already), so that
    /// this never waits.
    fn forget_conn(&self, used: u64) {
        let forgot = match &self.backend {
            Backend::Standalone { conn, .. } => conn
                .try_lock()
                .is_ok_and(|mut slot| slot.take_if(|(n, _)| *n == used).is_some()),
            Backend::Cluster { conn, .. } => conn
                .try_lock()
                .is_ok_and(|mut slot| slot.take_if(|(n, _, _)| *n == used).is_some()),
        };
        if forgot {
            tracing::debug!(
                store = self.kind,
                "store connection dropped after a failed operation"
            );
        }
    }

    /// Runs `f` inside the pool gate and the operation timeout. A timeout,
    /// or an error that may be the connection's, drops the shared
    /// connection `f` used (none when it got none); an error Redis answered
    /// with (out of memory, no permission), a busy pool or a write no
    /// replica took in time say nothing of the connection.
    async fn op<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: std::future::Future<Output = Result<T, StoreError>>,
    {
        let _permit = self.gate.enter().await?;
        let limit = self.op_timeout + self.connect_timeout;
        let (result, used) = CONN_USED
            .scope(std::cell::Cell::new(None), async {
                let result = tokio::time::timeout(limit, f)
                    .await
                    .unwrap_or(Err(StoreError::Timeout(self.op_timeout)));
                (result, CONN_USED.with(std::cell::Cell::get))
            })
            .await;
        if let (Err(StoreError::Timeout(_) | StoreError::Unavailable(_)), Some(used)) =
            (&result, used)
        {
            self.forget_conn(used);
        }
        result
    }

    /// Sends a keyless command to the primary that owns our keys.
    async fn to_primary<T: FromRedisValue>(
        &self,
        conn: &mut Conn,
        cmd: &Cmd,
    ) -> Result<T, StoreError> {
        match conn {
            Conn::Single(c) => cmd.query_async(c).await.map_err(err),
            Conn::Cluster(c) => {
                let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(
                    Route::with_key(self.zset.as_bytes(), SlotAddr::Master),
                ));
                let v = c.route_command(cmd.clone(), route).await.map_err(err)?;
                redis::from_redis_value(v).map_err(|e| StoreError::Refused(e.to_string()))
            }
        }
    }

    async fn query<T: FromRedisValue>(conn: &mut Conn, cmd: &Cmd) -> Result<T, StoreError> {
        match conn {
            Conn::Single(c) => cmd.query_async(c).await.map_err(err),
            Conn::Cluster(c) => cmd.query_async(c).await.map_err(err),
        }
    }

    /// Warns, once a process, when the primary that holds our keys may
    /// evict any key under memory pressure (`maxmemory-policy allkeys-*`):
    /// the blacklist could go while the generation key stays, a loss no
    /// node would see. Best effort: a Redis that refuses CONFIG (managed
    /// services rename it) is not asked again.
    async fn warn_of_eviction(&self) {
        if self.eviction_checked.swap(true, Ordering::Relaxed) {
            return;
        }
        let asked = self
            .op(async {
                let mut conn = self.conn().await?;
                let cmd = redis::cmd("CONFIG")
                    .arg("GET")
                    .arg("maxmemory-policy")
                    .clone();
                self.to_primary::<Vec<String>>(&mut conn, &cmd).await
            })
            .await;
        match asked {
            Ok(reply) => {
                if let Some(policy) = eviction_risk(&reply) {
                    warn!(
                        target: "jwtgate::store",
                        policy,
                        "Redis may evict the blacklist under memory pressure \
                         (maxmemory-policy {policy}): logged-out tokens would be let in \
                         again, unseen; set maxmemory-policy noeviction"
                    );
                }
            }
            Err(e) => tracing::debug!(error = %e, "Redis maxmemory-policy not readable"),
        }
    }

    /// Once, in the background: asks each cluster seed its node id and the
    /// nodes it knows (`CLUSTER MYID`, `CLUSTER NODES`), and says so at
    /// `ERROR` when the seeds that answer belong to more than one cluster
    /// (one re-provisioned into another cluster): whichever a connection
    /// reaches first is taken for the cluster, so nodes could keep their
    /// blacklists in different clusters, each passing the others' logouts.
    fn warn_of_foreign_seeds(&self) {
        let Backend::Cluster {
            seeds,
            seeds_checked,
            ..
        } = &self.backend
        else {
            return;
        };
        if seeds.len() < 2 || seeds_checked.swap(true, Ordering::Relaxed) {
            return;
        }
        let seeds = std::sync::Arc::clone(seeds);
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.op_timeout));
        tokio::spawn(async move {
            let mut answers = Vec::new();
            for (seed, client) in seeds.iter() {
                let asked = async {
                    let mut c = client
                        .get_multiplexed_async_connection_with_config(&config)
                        .await?;
                    let id: String = redis::cmd("CLUSTER")
                        .arg("MYID")
                        .query_async(&mut c)
                        .await?;
                    let nodes: String = redis::cmd("CLUSTER")
                        .arg("NODES")
                        .query_async(&mut c)
                        .await?;
                    Ok::<_, redis::RedisError>((id, nodes))
                };
                match asked.await {
                    Ok((id, nodes)) => answers.push(SeedAnswer {
                        seed: seed.clone(),
                        id,
                        known: nodes
                            .lines()
                            .filter_map(|l| l.split(' ').next())
                            .map(str::to_owned)
                            .collect(),
                    }),
                    Err(e) => tracing::debug!(seed, error = %e, "cluster seed not asked"),
                }
            }
            let groups = seed_clusters(&answers);
            if groups.len() > 1 {
                let said: Vec<String> = groups.iter().map(|g| g.join(", ")).collect();
                tracing::error!(
                    target: "jwtgate::store",
                    "store.nodes: the seeds belong to {} different Redis clusters ({}): a node whose \
                     connection reaches another cluster than its peers keeps its logouts there, and \
                     each passes the tokens the others logged out; list the nodes of one cluster only",
                    groups.len(),
                    said.join(" / ")
                );
            } else if answers.len() > 1 {
                tracing::info!(
                    target: "jwtgate::store",
                    "store.nodes: {} of {} seeds answered, all of one cluster",
                    answers.len(),
                    seeds.len()
                );
            } else {
                tracing::info!(
                    target: "jwtgate::store",
                    "store.nodes: {} of {} seeds answered at start, too few to tell whether \
                     they are one cluster (not asked again)",
                    answers.len(),
                    seeds.len()
                );
            }
        });
    }

    /// A dedicated connection for blocking XREADs, so that they never hold
    /// up revocations on the shared one.
    async fn feed_conn(&self) -> Result<FeedConn, StoreError> {
        match &self.backend {
            Backend::Standalone { client, feed, .. } => {
                let mut slot = feed.lock().await;
                if let Some(c) = slot.as_ref() {
                    return Ok(FeedConn::Single(c.clone()));
                }
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(self.connect_timeout))
                    .set_response_timeout(Some(FEED_BLOCK + self.op_timeout));
                let c = client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .map_err(err)?;
                *slot = Some(c.clone());
                Ok(FeedConn::Single(c))
            }
            Backend::Cluster {
                feed_client, feed, ..
            } => {
                let mut slot = feed.lock().await;
                if let Some(c) = slot.as_ref() {
                    return Ok(FeedConn::Cluster(c.clone()));
                }
                let c = tokio::time::timeout(
                    self.connect_timeout + self.op_timeout,
                    feed_client.get_async_connection(),
                )
                .await
                .map_err(|_| StoreError::Timeout(self.connect_timeout))?
                .map_err(err)?;
                *slot = Some(c.clone());
                Ok(FeedConn::Cluster(c))
            }
        }
    }

    /// Forgets the feed connection after an error, so the next call reconnects.
    async fn drop_feed(&self) {
        match &self.backend {
            Backend::Standalone { feed, .. } => *feed.lock().await = None,
            Backend::Cluster { feed, .. } => *feed.lock().await = None,
        }
    }

    /// `Ok` once a replica has the last write, when the primary has
    /// replicas (`WAIT 1`); at once when it has none.
    async fn replicated(&self, conn: &mut Conn) -> Result<(), StoreError> {
        if self.replica_count(conn).await? > 0 {
            let wait_ms = u64::try_from(self.op_timeout.as_millis() / 2)
                .unwrap_or(500)
                .max(1);
            let acked: i64 = self
                .to_primary(conn, redis::cmd("WAIT").arg(1).arg(wait_ms))
                .await?;
            if acked < 1 {
                return Err(StoreError::NotReplicated);
            }
        }
        Ok(())
    }

    /// Connected replicas of the primary holding our keys.
    async fn replica_count(&self, conn: &mut Conn) -> Result<u64, StoreError> {
        let info: String = self
            .to_primary(conn, redis::cmd("INFO").arg("replication"))
            .await?;
        Ok(info
            .lines()
            .find_map(|l| l.strip_prefix("connected_slaves:"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0))
    }
}

/// How long one XREAD may block waiting for new revocations.
pub const FEED_BLOCK: Duration = Duration::from_millis(1000);

#[derive(Clone)]
enum FeedConn {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl FeedConn {
    async fn query<T: FromRedisValue>(&mut self, cmd: &Cmd) -> Result<T, StoreError> {
        match self {
            FeedConn::Single(c) => cmd.query_async(c).await.map_err(err),
            FeedConn::Cluster(c) => cmd.query_async(c).await.map_err(err),
        }
    }
}

/// The changes in an `XREAD` reply, read from the raw reply rather than
/// redis-rs's `StreamReadReply`, which takes field names as strings: one
/// name that was not UTF-8 (written by hand, another program) failed the
/// whole read, again at each try, and the node resynced in a loop rather
/// than skip the entry (a review). An entry it cannot read is skipped and
/// said; the cursor goes past it.
fn parse_feed(reply: Value, cursor: &mut Cursor) -> Vec<Change> {
    let mut out = Vec::new();
    let mut unread = Unread::default();
    for (key, entries) in stream_keys(reply) {
        for entry in entries {
            let Some((id, fields)) = stream_entry(entry) else {
                unread.note(&key, "an entry without an id");
                continue;
            };
            let field = |name: &[u8]| {
                fields
                    .iter()
                    .find(|(n, _)| n.as_slice() == name)
                    .and_then(|(_, v)| std::str::from_utf8(v).ok())
            };
            // Entries without a type are revocations (the feed's first form).
            let change = match field(b"t") {
                None | Some("r") => {
                    let digest = field(b"d").and_then(from_hex);
                    let exp = field(b"e").and_then(|e| e.parse::<i64>().ok());
                    digest
                        .zip(exp)
                        .map(|(digest, expires_at)| Change::Revoked(Entry { digest, expires_at }))
                }
                Some("c") => field(b"k")
                    .and_then(SubjectKey::decode)
                    .zip(field(b"v").and_then(parse_cutoff_value))
                    .map(|(key, (not_before, expires_at))| {
                        Change::CutOff(Cutoff {
                            key,
                            not_before,
                            expires_at,
                        })
                    }),
                Some("l") => field(b"k").and_then(SubjectKey::decode).map(Change::Lifted),
                Some(_) => None,
            };
            match change {
                Some(change) => out.push(change),
                None => unread.note(&key, &id),
            }
            *cursor = Cursor::At(id);
        }
    }
    unread.report("changes feed");
    out
}

/// The streams of an `XREAD` reply, each with its entries: an array of
/// `[key, entries]` pairs (RESP2) or a map (RESP3); none when it timed out.
fn stream_keys(reply: Value) -> Vec<(String, Vec<Value>)> {
    let pairs: Vec<(Value, Value)> = match reply {
        Value::Array(streams) => streams
            .into_iter()
            .filter_map(|stream| match stream {
                Value::Array(pair) => {
                    let mut pair = pair.into_iter();
                    pair.next().zip(pair.next())
                }
                _ => None,
            })
            .collect(),
        Value::Map(streams) => streams,
        _ => Vec::new(),
    };
    pairs
        .into_iter()
        .filter_map(|(key, entries)| match (text(&key), entries) {
            (Some(key), Value::Array(entries)) => Some((key, entries)),
            _ => None,
        })
        .collect()
}

/// A stream entry's fields, names and values, as bytes.
type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// One stream entry, `[id, [field, value, ...]]`: its id and its fields.
fn stream_entry(entry: Value) -> Option<(String, Fields)> {
    let Value::Array(parts) = entry else {
        return None;
    };
    let mut parts = parts.into_iter();
    let id = text(&parts.next()?)?;
    let mut fields = Vec::new();
    if let Some(Value::Array(flat)) = parts.next() {
        let mut flat = flat.into_iter();
        while let (Some(name), Some(value)) = (flat.next(), flat.next()) {
            if let (Some(name), Some(value)) = (bytes(name), bytes(value)) {
                fields.push((name, value));
            }
        }
    }
    Some((id, fields))
}

/// A bulk or simple string's bytes; an integer's digits.
fn bytes(value: Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        Value::Int(n) => Some(n.to_string().into_bytes()),
        _ => None,
    }
}

/// A string reply as text, when it is UTF-8.
fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// Entries of a Redis key this node cannot read: written by hand, by
/// another program, or by a newer jwtgate. They are skipped, and said in
/// one log line per read, since a revocation a node cannot read is one it
/// does not enforce.
#[derive(Default)]
struct Unread {
    count: usize,
    first: Option<(String, String)>,
}

impl Unread {
    /// `item` of `key` could not be read.
    fn note(&mut self, key: &str, item: &str) {
        self.count += 1;
        if self.first.is_none() {
            self.first = Some((key.to_owned(), shorten(item)));
        }
    }

    fn report(self, what: &str) {
        if let Some((key, item)) = self.first {
            warn!(
                skipped = self.count,
                key = %key,
                first = %item,
                "revocation store: {} unreadable {what} entr{} in Redis skipped; a revocation \
                 this node cannot read is not enforced here",
                self.count,
                if self.count == 1 { "y" } else { "ies" }
            );
        }
    }
}

/// At most 80 characters of an entry, for a log line: an entry is
/// whatever its writer put there.
fn shorten(item: &str) -> String {
    item.chars().take(80).flat_map(char::escape_debug).collect()
}

/// What a cluster seed said of itself and its cluster.
struct SeedAnswer {
    seed: String,
    /// `CLUSTER MYID`.
    id: String,
    /// The node ids of its `CLUSTER NODES`.
    known: std::collections::HashSet<String>,
}

/// The seeds grouped by cluster: two are in one when either knows the
/// other's node id (a node just joining may not know every peer yet).
fn seed_clusters(answers: &[SeedAnswer]) -> Vec<Vec<String>> {
    let mut group: Vec<usize> = (0..answers.len()).collect();
    fn root(group: &mut [usize], mut i: usize) -> usize {
        while group[i] != i {
            group[i] = group[group[i]];
            i = group[i];
        }
        i
    }
    for (i, a) in answers.iter().enumerate() {
        for (j, b) in answers.iter().enumerate().skip(i + 1) {
            if a.known.contains(&b.id) || b.known.contains(&a.id) {
                let (ri, rj) = (root(&mut group, i), root(&mut group, j));
                group[ri] = rj;
            }
        }
    }
    let mut clusters: Vec<(usize, Vec<String>)> = Vec::new();
    for (i, a) in answers.iter().enumerate() {
        let r = root(&mut group, i);
        match clusters.iter_mut().find(|(root, _)| *root == r) {
            Some((_, seeds)) => seeds.push(a.seed.clone()),
            None => clusters.push((r, vec![a.seed.clone()])),
        }
    }
    clusters.into_iter().map(|(_, seeds)| seeds).collect()
}

/// The policy in a `CONFIG GET maxmemory-policy` reply (name, value) when
/// it lets Redis evict keys without an expiry, ours among them.
fn eviction_risk(reply: &[String]) -> Option<&str> {
    match reply {
        [name, policy] if name == "maxmemory-policy" && policy.starts_with("allkeys-") => {
            Some(policy)
        }
        _ => None,
    }
}

/// The store's generation as the node compares it: only ever equal to
/// another, so bytes that are not UTF-8 (written by hand) are told in hex
/// rather than refused, which stopped the node taking changes, or made
/// lossy, which could take two for one.
fn generation_text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| {
        let hex: String = e.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
        format!("bytes:{hex}")
    })
}

/// `"not_before:expires_at"`.
fn parse_cutoff_value(v: &str) -> Option<(i64, i64)> {
    let (nb, ex) = v.split_once(':')?;
    Some((nb.parse().ok()?, ex.parse().ok()?))
}

#[async_trait::async_trait]
impl RevocationStore for RedisStore {
    async fn revoke(&self, entry: Entry) -> Result<(), StoreError> {
        self.op(async {
            let mut conn = self.conn().await?;
            let mut inv = self.script.key(&self.zset);
            inv.key(&self.feed)
                .arg(to_hex(&entry.digest))
                .arg(entry.expires_at)
                .arg(FEED_MAX_LEN);
            let _: i64 = match &mut conn {
                Conn::Single(c) => inv.invoke_async(c).await.map_err(err)?,
                Conn::Cluster(c) => inv.invoke_async(c).await.map_err(err)?,
            };
            self.replicated(&mut conn).await
        })
        .await
    }

    async fn cut_off(&self, cutoff: &Cutoff) -> Result<(), StoreError> {
        self.op(async {
            let mut conn = self.conn().await?;
            let mut inv = self.cutoff_script.key(&self.subjects);
            inv.key(&self.feed)
                .arg(cutoff.key.encode())
                .arg(cutoff.not_before)
                .arg(cutoff.expires_at)
                .arg(FEED_MAX_LEN);
            let _: i64 = match &mut conn {
                Conn::Single(c) => inv.invoke_async(c).await.map_err(err)?,
                Conn::Cluster(c) => inv.invoke_async(c).await.map_err(err)?,
            };
            self.replicated(&mut conn).await
        })
        .await
    }

    async fn lift(&self, key: &SubjectKey) -> Result<bool, StoreError> {
        self.op(async {
            let mut conn = self.conn().await?;
            let mut inv = self.lift_script.key(&self.subjects);
            inv.key(&self.feed).arg(key.encode()).arg(FEED_MAX_LEN);
            let removed: i64 = match &mut conn {
                Conn::Single(c) => inv.invoke_async(c).await.map_err(err)?,
                Conn::Cluster(c) => inv.invoke_async(c).await.map_err(err)?,
            };
            self.replicated(&mut conn).await?;
            Ok(removed == 1)
        })
        .await
    }

    async fn cutoffs(&self, now: i64) -> Result<Vec<Cutoff>, StoreError> {
        let mut out = Vec::new();
        let mut unread = Unread::default();
        let mut cursor = 0u64;
        loop {
            // Bytes, not strings: one field or value that is not UTF-8
            // (written by hand or by another program) failed the whole
            // read, and the node stopped taking changes (an outside audit).
            let (next, page): (u64, Vec<(Vec<u8>, Vec<u8>)>) = self
                .op(async {
                    let mut conn = self.conn().await?;
                    let cmd = redis::cmd("HSCAN")
                        .arg(&self.subjects)
                        .arg(cursor)
                        .arg("COUNT")
                        .arg(SNAPSHOT_PAGE)
                        .clone();
                    Self::query(&mut conn, &cmd).await
                })
                .await
                .map_err(|e| e.at_key(&self.subjects))?;
            for (k, v) in page {
                let read = std::str::from_utf8(&k)
                    .ok()
                    .and_then(SubjectKey::decode)
                    .zip(std::str::from_utf8(&v).ok().and_then(parse_cutoff_value));
                match read {
                    Some((key, (not_before, expires_at))) if expires_at > now => out.push(Cutoff {
                        key,
                        not_before,
                        expires_at,
                    }),
                    Some(_) => {}
                    None => unread.note(&self.subjects, &String::from_utf8_lossy(&k)),
                }
            }
            if next == 0 {
                unread.report("subject cut-off");
                return Ok(out);
            }
            cursor = next;
        }
    }

    async fn generation(&self) -> Result<Option<String>, StoreError> {
        let fresh = format!(
            "{:x}-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
            std::process::id()
        );
        let generation = self
            .op(async {
                let mut conn = self.conn().await?;
                // Read first: a full Redis (`maxmemory`, `noeviction`) refuses
                // any SET, even one NX would skip, and a node must still load.
                let get = redis::cmd("GET").arg(&self.generation).clone();
                let known: Option<Vec<u8>> = Self::query(&mut conn, &get).await?;
                if let Some(known) = known {
                    return Ok(Some(generation_text(known)));
                }
                let set = redis::cmd("SET")
                    .arg(&self.generation)
                    .arg(&fresh)
                    .arg("NX")
                    .clone();
                let _: Option<String> = Self::query(&mut conn, &set).await?;
                let known: Option<Vec<u8>> = Self::query(&mut conn, &get).await?;
                Ok(known.map(generation_text))
            })
            .await
            .map_err(|e| e.at_key(&self.generation))?;
        self.warn_of_eviction().await;
        self.warn_of_foreign_seeds();
        Ok(generation)
    }

    async fn claim_once(
        &self,
        key: &str,
        owner: &str,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        let mut used = None;
        let result = self
            .op(async {
                let mut conn = self.conn().await?;
                used = Some(conn.clone());
                let cmd = redis::cmd("EVAL")
                    .arg(CLAIM_SCRIPT)
                    .arg(1)
                    .arg(format!("{}{key}", self.once))
                    .arg(owner)
                    .arg(expires_at.clamp(1, LATEST_EXPIRY))
                    .clone();
                let taken: u64 = Self::query(&mut conn, &cmd).await?;
                Ok(taken == 1)
            })
            .await;
        // A claim that failed may still be carried out (a stalled Redis
        // runs what it was sent when it resumes): its forget must follow
        // it on the same connection, which the failure just let go of.
        if let (Err(_), Some(conn)) = (&result, used) {
            let mut failed = self
                .failed_claims
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if failed.len() >= FAILED_CLAIMS_KEPT {
                failed.clear();
            }
            failed.insert(owner.to_owned(), conn);
        }
        result
    }

    async fn revoke_batch(&self, entries: &[Entry]) -> Result<(), StoreError> {
        for chunk in entries.chunks(1000) {
            self.op(async {
                let mut conn = self.conn().await?;
                let mut pipe = redis::pipe();
                let zadd = pipe.cmd("ZADD").arg(&self.zset).arg("GT");
                for e in chunk {
                    zadd.arg(e.expires_at).arg(to_hex(&e.digest));
                }
                pipe.ignore();
                for e in chunk {
                    pipe.cmd("XADD")
                        .arg(&self.feed)
                        .arg("MAXLEN")
                        .arg("~")
                        .arg(FEED_MAX_LEN)
                        .arg("*")
                        .arg("d")
                        .arg(to_hex(&e.digest))
                        .arg("e")
                        .arg(e.expires_at)
                        .ignore();
                }
                match &mut conn {
                    Conn::Single(c) => pipe.query_async::<()>(c).await.map_err(err),
                    Conn::Cluster(c) => pipe.query_async::<()>(c).await.map_err(err),
                }
            })
            .await?;
        }
        Ok(())
    }

    async fn lookup(&self, digest: &crate::Digest) -> Result<Option<i64>, StoreError> {
        self.op(async {
            let mut conn = self.conn().await?;
            let cmd = redis::cmd("ZSCORE")
                .arg(&self.zset)
                .arg(to_hex(digest))
                .clone();
            let score: Option<f64> = Self::query(&mut conn, &cmd).await?;
            // Scores are whole seconds written by us.
            Ok(score.map(|s| s as i64))
        })
        .await
    }

    async fn snapshot(&self, now: i64) -> Result<Vec<Entry>, StoreError> {
        let mut out = Vec::new();
        let mut unread = Unread::default();
        let mut offset = 0usize;
        loop {
            // Bytes, as the cut-offs' (above).
            let page: Vec<(Vec<u8>, f64)> = self
                .op(async {
                    let mut conn = self.conn().await?;
                    // Highest expiry first: a purge (by any node, at any
                    // time) removes the lowest, behind the pages still to
                    // read, so an offset never skips a live entry; an entry
                    // added meanwhile is at worst read twice (and comes by
                    // the feed as well).
                    let cmd = redis::cmd("ZRANGE")
                        .arg(&self.zset)
                        .arg("+inf")
                        .arg(format!("({now}"))
                        .arg("BYSCORE")
                        .arg("REV")
                        .arg("LIMIT")
                        .arg(offset)
                        .arg(SNAPSHOT_PAGE)
                        .arg("WITHSCORES")
                        .clone();
                    Self::query(&mut conn, &cmd).await
                })
                .await?;
            let n = page.len();
            for (hex, score) in page {
                match std::str::from_utf8(&hex).ok().and_then(from_hex) {
                    // Scores are whole seconds written by us; i64 range.
                    Some(digest) => out.push(Entry {
                        digest,
                        expires_at: score as i64,
                    }),
                    None => unread.note(&self.zset, &String::from_utf8_lossy(&hex)),
                }
            }
            if n < SNAPSHOT_PAGE {
                unread.report("blacklist");
                return Ok(out);
            }
            offset += n;
        }
    }

    async fn position(&self) -> Result<Cursor, StoreError> {
        self.op(async {
            let mut conn = self.conn().await?;
            let cmd = redis::cmd("XREVRANGE")
                .arg(&self.feed)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1)
                .clone();
            // The entry's fields as bytes: only its id (Redis's own, ASCII)
            // is wanted, and a field that is not UTF-8 failed the read.
            let last: Vec<(String, Vec<Vec<u8>>)> = Self::query(&mut conn, &cmd).await?;
            Ok(Cursor::At(
                last.into_iter()
                    .next()
                    .map_or_else(|| "0-0".to_owned(), |(id, _)| id),
            ))
        })
        .await
    }

    async fn changes(
        &self,
        cursor: &mut Cursor,
        wait: Duration,
    ) -> Result<Vec<Change>, StoreError> {
        let from = match cursor {
            Cursor::Start => {
                *cursor = self.position().await?;
                return Ok(Vec::new());
            }
            Cursor::At(id) => id.clone(),
        };
        self.close_idle_conn();
        let mut conn = self.feed_conn().await?;
        let block = u64::try_from(wait.min(FEED_BLOCK).as_millis())
            .unwrap_or(1000)
            .max(1);
        let cmd = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(1000)
            .arg("BLOCK")
            .arg(block)
            .arg("STREAMS")
            .arg(&self.feed)
            .arg(&from)
            .clone();
        let limit = FEED_BLOCK + self.op_timeout + self.connect_timeout;
        let reply = match tokio::time::timeout(limit, conn.query::<Value>(&cmd)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                self.drop_feed().await;
                return Err(e);
            }
            Err(_) => {
                self.drop_feed().await;
                return Err(StoreError::Timeout(limit));
            }
        };
        Ok(parse_feed(reply, cursor))
    }

    async fn forget_once(&self, key: &str, owner: &str) -> Result<(), StoreError> {
        // Whether it runs before or after the claim, no claim of this
        // owner is left (the mark of FORGET_SCRIPT).
        let cmd = redis::cmd("EVAL")
            .arg(FORGET_SCRIPT)
            .arg(1)
            .arg(format!("{}{key}", self.once))
            .arg(owner)
            .arg(FORGOTTEN_SECONDS)
            .clone();
        let failed_claim = self
            .failed_claims
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(owner);
        let forgot = match failed_claim {
            // After the claim, on its connection: what a stalled Redis
            // runs when it resumes, it runs in order.
            Some(mut conn) => {
                let _permit = self.gate.enter().await?;
                tokio::time::timeout(
                    self.op_timeout + self.connect_timeout,
                    Self::query::<i64>(&mut conn, &cmd),
                )
                .await
                .unwrap_or(Err(StoreError::Timeout(self.op_timeout)))
            }
            None => {
                self.op(async {
                    let mut conn = self.conn().await?;
                    Self::query::<i64>(&mut conn, &cmd).await
                })
                .await
            }
        }?;
        if forgot < 0 {
            warn!(
                target: "jwtgate::store",
                key,
                "too many forgotten claims of one key to name another: that claim, \
                 should it arrive late, may take the key"
            );
        }
        Ok(())
    }

    async fn purge(&self, now: i64) -> Result<u64, StoreError> {
        let entries: u64 = self
            .op(async {
                let mut conn = self.conn().await?;
                let cmd = redis::cmd("ZREMRANGEBYSCORE")
                    .arg(&self.zset)
                    .arg("-inf")
                    .arg(now)
                    .clone();
                Self::query(&mut conn, &cmd).await
            })
            .await?;
        // Cut-offs past their retention (kept for weeks: few go at once).
        let expired: Vec<String> = {
            let all = self.cutoffs(i64::MIN).await?;
            all.into_iter()
                .filter(|c| c.expires_at <= now)
                .map(|c| c.key.encode())
                .collect()
        };
        let mut subjects = 0u64;
        for chunk in expired.chunks(1000) {
            subjects += self
                .op(async {
                    let mut conn = self.conn().await?;
                    let mut inv = self.purge_cutoffs_script.key(&self.subjects);
                    inv.arg(now).arg(chunk);
                    let n: u64 = match &mut conn {
                        Conn::Single(c) => inv.invoke_async(c).await.map_err(err)?,
                        Conn::Cluster(c) => inv.invoke_async(c).await.map_err(err)?,
                    };
                    Ok(n)
                })
                .await?;
        }
        Ok(entries + subjects)
    }

    async fn clock(&self) -> Result<Option<i64>, StoreError> {
        let (secs, _micros): (i64, i64) = self
            .op(async {
                let mut conn = self.conn().await?;
                Self::query(&mut conn, &redis::cmd("TIME")).await
            })
            .await?;
        Ok(Some(secs))
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn kind(&self) -> &'static str {
        self.kind
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(b: &[u8]) -> Value {
        Value::BulkString(b.to_vec())
    }

    /// A stream entry `[id, [field, value, ...]]`.
    fn entry(id: &str, fields: &[(&[u8], &[u8])]) -> Value {
        let flat = fields
            .iter()
            .flat_map(|(n, v)| [bulk(n), bulk(v)])
            .collect();
        Value::Array(vec![bulk(id.as_bytes()), Value::Array(flat)])
    }

    /// An `XREAD` reply, in RESP2 (an array of pairs) and RESP3 (a map):
    /// readable entries become changes, the others are skipped, and the
    /// cursor goes past both; a time-out (nil) is no change.
    #[test]
    fn feed_replies_are_read_from_the_raw_value() {
        let digest = to_hex(&[7; 32]);
        let entries = Value::Array(vec![
            entry("1-0", &[(b"d", digest.as_bytes()), (b"e", b"99")]),
            entry("2-0", &[(b"\xff", b"x")]),
            entry("3-0", &[(b"t", b"z"), (b"k", b"v")]),
            entry("4-0", &[(b"t", b"r"), (b"d", b"\xff"), (b"e", b"1")]),
        ]);
        let key = bulk(b"{jwtgate}:feed");
        for reply in [
            Value::Array(vec![Value::Array(vec![key.clone(), entries.clone()])]),
            Value::Map(vec![(key.clone(), entries.clone())]),
        ] {
            let mut cursor = Cursor::Start;
            let changes = parse_feed(reply, &mut cursor);
            assert_eq!(changes.len(), 1);
            assert!(
                matches!(&changes[0], Change::Revoked(e) if e.digest == [7; 32] && e.expires_at == 99)
            );
            assert_eq!(cursor, Cursor::At("4-0".into()));
        }
        let mut cursor = Cursor::At("5-0".into());
        assert!(parse_feed(Value::Nil, &mut cursor).is_empty());
        assert_eq!(cursor, Cursor::At("5-0".into()));
    }

    fn said(seed: &str, id: &str, known: &[&str]) -> SeedAnswer {
        SeedAnswer {
            seed: seed.into(),
            id: id.into(),
            known: known.iter().map(|k| (*k).to_owned()).collect(),
        }
    }

    #[test]
    fn seeds_are_grouped_by_the_cluster_that_knows_them() {
        let one = [
            said("a:1", "A", &["A", "B", "C"]),
            said("b:1", "B", &["A", "B", "C"]),
            // Just joined: knows only itself, but the others know it.
            said("c:1", "C", &["C"]),
        ];
        assert_eq!(seed_clusters(&one), [vec!["a:1", "b:1", "c:1"]]);
        let two = [
            said("a:1", "A", &["A", "B"]),
            said("x:1", "X", &["X"]),
            said("b:1", "B", &["A", "B"]),
        ];
        assert_eq!(seed_clusters(&two), [vec!["a:1", "b:1"], vec!["x:1"]]);
        assert!(seed_clusters(&[]).is_empty());
    }
}
