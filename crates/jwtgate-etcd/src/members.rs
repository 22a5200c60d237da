//! One client per etcd endpoint, and the member requests go to.
//!
//! The etcd client's own balancing over every endpoint kept placing
//! requests and the watch on a member that hangs (a stuck host, a network
//! dropping packets): it refuses nothing, so until a connection's
//! keep-alive found it gone, and again after each reconnection to it, a
//! node stayed `reconnecting` for 15-26 s with two members of three
//! answering (an outside chaos audit). Here a node talks to one member at a
//! time, and leaves it for the next when it fails a request: no answer in
//! time, no connection, no leader ([`Failure::of_the_member`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions};
use tokio::runtime::Handle;
use tokio::time::Instant;

/// How long a request waits before it is made again on the next member
/// after one refused the connection.
const CONNECT_RETRY_PAUSE: Duration = Duration::from_millis(20);

/// Why a request within the timeout failed.
pub(crate) enum Failure {
    NoAnswer,
    Client(etcd_client::Error),
}

impl Failure {
    /// Whether the member, not the request, failed: no answer in time, no
    /// connection, or an answer that it cannot serve now (no leader). Any
    /// other answer (a refusal, a compacted revision) would be the same
    /// from every member.
    pub(crate) fn of_the_member(&self) -> bool {
        use etcd_client::Error;
        use tonic::Code;
        match self {
            Failure::NoAnswer => true,
            Failure::Client(Error::TransportError(_) | Error::IoError(_)) => true,
            Failure::Client(Error::GRpcStatus(status)) => matches!(
                status.code(),
                Code::Unavailable | Code::Unknown | Code::DeadlineExceeded | Code::Cancelled
            ),
            Failure::Client(_) => false,
        }
    }

    /// Whether the member refused the connection: the request never left.
    pub(crate) fn refused_connection(&self) -> bool {
        matches!(self, Failure::Client(e) if refused_connection(e))
    }

    /// Whether etcd refused the request for an auth token it no longer
    /// takes (a JWT token issued before a user or role changed): certainly
    /// not made, and a client that authenticates again gets a fresh one.
    /// The etcd client refreshes its token only when told it expired.
    fn stale_token(&self) -> bool {
        matches!(self, Failure::Client(etcd_client::Error::GRpcStatus(status))
            if status.code() == tonic::Code::InvalidArgument
                && ["revision of auth store is old", "user name is empty"]
                    .iter()
                    .any(|m| status.message().contains(m)))
    }
}

/// Whether an endpoint refused the connection: the request never left.
/// The cause may sit deep in the error's sources (a refused connection
/// while authenticating reads "transport error" on its own).
pub(crate) fn refused_connection(e: &etcd_client::Error) -> bool {
    let text = describe(e);
    text.contains("Connection refused") || text.contains("tcp connect error")
}

/// The error with its sources: tonic's transport errors say nothing
/// useful on their own ("transport error").
pub(crate) fn describe(e: &etcd_client::Error) -> String {
    use etcd_client::Error;
    // A gRPC status's own text is a dump of its fields, its source's
    // debug form among them: its code in words and its message say it.
    let mut text = match e {
        Error::GRpcStatus(s) if s.message().is_empty() => s.code().description().to_owned(),
        Error::GRpcStatus(s) => format!("{}: {}", s.code().description(), s.message()),
        other => other.to_string(),
    };
    let mut source: Option<&dyn std::error::Error> = match e {
        Error::TransportError(t) => std::error::Error::source(t),
        Error::GRpcStatus(s) => std::error::Error::source(s),
        Error::IoError(io) => std::error::Error::source(io),
        _ => None,
    };
    while let Some(s) = source {
        // Each layer often repeats the one below it ("tcp connect error").
        let said = s.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        source = s.source();
    }
    text
}

pub(crate) struct Members {
    /// Never empty ([`Members::new`]).
    endpoints: Vec<String>,
    options: ConnectOptions,
    /// `options` without the user, when they have one: for an etcd whose
    /// authentication is turned off.
    unauthenticated: Option<ConnectOptions>,
    /// Where the clients' connections run: the runtime the first connection
    /// was made from (the control plane's), never a thread that may be busy
    /// for a while (the etcd follower compiling a large config), on which
    /// every admin write to etcd would wait.
    runtime: Handle,
    /// Made when first used (no I/O without authentication).
    clients: Vec<Mutex<Option<Client>>>,
    current: AtomicUsize,
}

impl Members {
    /// `None` without endpoints. The first endpoint is the first member
    /// asked (nodes that list the endpoints in different orders spread
    /// their watches and requests over the members).
    pub(crate) fn new(
        endpoints: Vec<String>,
        (options, unauthenticated): (ConnectOptions, Option<ConnectOptions>),
        runtime: Handle,
    ) -> Option<Members> {
        if endpoints.is_empty() {
            return None;
        }
        Some(Members {
            clients: endpoints.iter().map(|_| Mutex::new(None)).collect(),
            endpoints,
            options,
            unauthenticated,
            runtime,
            current: AtomicUsize::new(0),
        })
    }

    fn current(&self) -> usize {
        self.current.load(Ordering::Relaxed) % self.endpoints.len()
    }

    /// Leaves member `i` for the next one, unless a request that failed
    /// there too did already; its connection is made afresh when it is
    /// chosen again.
    pub(crate) fn leave(&self, i: usize) {
        let next = (i + 1) % self.endpoints.len();
        let _ = self
            .current
            .compare_exchange(i, next, Ordering::Relaxed, Ordering::Relaxed);
        self.forget(i);
    }

    /// Drops member `i`'s client: the next request makes (and
    /// authenticates) another.
    fn forget(&self, i: usize) {
        if let Some(Ok(mut client)) = self.clients.get(i).map(Mutex::lock) {
            *client = None;
        }
    }

    /// Member `i`'s client, made if it is not yet (bounded by `deadline`).
    async fn client_at(&self, i: usize, deadline: Instant) -> Result<Client, Failure> {
        let made = self
            .clients
            .get(i)
            .and_then(|slot| slot.lock().ok()?.clone());
        if let Some(client) = made {
            return Ok(client);
        }
        let client = match self.connect(i, &self.options, deadline).await {
            Err(Failure::Client(e)) if auth_not_enabled(&e) && self.unauthenticated.is_some() => {
                tracing::warn!(
                    endpoint = %self.endpoints[i % self.endpoints.len()],
                    "etcd has authentication turned off: connecting without the configured \
                     user (as etcd's own client does); every client may write the prefix"
                );
                let plain = self.unauthenticated.as_ref().unwrap_or(&self.options);
                self.connect(i, plain, deadline).await?
            }
            made => made?,
        };
        if let Some(Ok(mut slot)) = self.clients.get(i).map(Mutex::lock) {
            return Ok(slot.get_or_insert(client).clone());
        }
        Ok(client)
    }

    /// A client of member `i` made with `options`, within `deadline`.
    async fn connect(
        &self,
        i: usize,
        options: &ConnectOptions,
        deadline: Instant,
    ) -> Result<Client, Failure> {
        let endpoint = [self.endpoints[i % self.endpoints.len()].clone()];
        let connect = self
            .runtime
            .spawn(Client::connect(endpoint, Some(options.clone())));
        let abort = connect.abort_handle();
        match tokio::time::timeout_at(deadline, connect).await {
            Err(_) => {
                abort.abort();
                Err(Failure::NoAnswer)
            }
            Ok(Err(_)) => Err(Failure::NoAnswer),
            Ok(Ok(Err(e))) => Err(Failure::Client(e)),
            Ok(Ok(Ok(client))) => Ok(client),
        }
    }

    /// Makes the request with `attempt` on the current member, within
    /// `timeout`. A member that failed it ([`Failure::of_the_member`]) is
    /// left for the next one; the request is made again there when the
    /// member refused the connection (the request never left: with one
    /// member of three down, `config push` failed four times in five), for
    /// one round of the members at most. A stale auth token is replaced
    /// and the request made again, once. Returns the answer, the member
    /// that gave it and its client.
    pub(crate) async fn run<T, Fut>(
        &self,
        timeout: Duration,
        mut attempt: impl FnMut(Client) -> Fut,
    ) -> Result<(T, usize, Client), Failure>
    where
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        let deadline = Instant::now() + timeout;
        let mut refusals = 0;
        let mut fresh_token = false;
        loop {
            let i = self.current();
            let result = match self.client_at(i, deadline).await {
                Ok(client) => {
                    match tokio::time::timeout_at(deadline, attempt(client.clone())).await {
                        Err(_) => Err(Failure::NoAnswer),
                        Ok(answer) => answer.map(|v| (v, i, client)).map_err(Failure::Client),
                    }
                }
                Err(failure) => Err(failure),
            };
            let failure = match result {
                Ok(answer) => return Ok(answer),
                Err(failure) => failure,
            };
            if failure.stale_token() && !fresh_token {
                fresh_token = true;
                self.forget(i);
                continue;
            }
            if !failure.of_the_member() {
                return Err(failure);
            }
            self.leave(i);
            refusals += 1;
            let again = Instant::now() + CONNECT_RETRY_PAUSE;
            if !failure.refused_connection()
                || refusals >= self.endpoints.len()
                || again >= deadline
            {
                return Err(failure);
            }
            tokio::time::sleep_until(again).await;
        }
    }
}

/// etcd's answer to a client that signs in while its authentication is
/// turned off (`etcdserver: authentication is not enabled`).
fn auth_not_enabled(e: &etcd_client::Error) -> bool {
    e.to_string().contains("authentication is not enabled")
}
