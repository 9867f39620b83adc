//! [`ExecPool`]: one client for many exec-servers, each a named endpoint
//! (a WebSocket URL and its [`ConnectOptions`]).
//!
//! The pool adds only bookkeeping to [`ExecClient`]: connections open on
//! first use, at most a few at once; a dropped connection is resumed by the
//! SDK's own reconnect (the pool never redials a live session); a connection
//! closed for good is replaced by a new one on the next use; each endpoint
//! reports its health.
//!
//! # Layout
//! - this file: [`ExecPool`], the table of endpoints by name and the connect
//!   slots they share.
//! - `endpoint`: one endpoint: its connection, opened once for concurrent
//!   first uses, and the task that follows its state.
//! - `health`: [`EndpointHealth`], [`EndpointState`], [`EndpointFailure`],
//!   and the record that orders its writers.

mod endpoint;
mod health;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use exec_protocol::ProcessListParams;
use tokio::sync::{Semaphore, watch};

use self::endpoint::Endpoint;
use crate::client::ExecClient;
use crate::error::ClientError;
use crate::options::ConnectOptions;
use crate::process::Command;
use crate::sync::lock;

pub use health::{EndpointFailure, EndpointHealth, EndpointState};

/// How many connects an [`ExecPool::new`] pool runs at once.
pub const DEFAULT_MAX_CONCURRENT_CONNECTS: usize = 16;

/// Connections to many exec-servers, each under a name.
///
/// Cheap to clone: clones share the endpoints and their connections.
///
/// ```no_run
/// # async fn demo() -> Result<(), exec_client::ClientError> {
/// use exec_client::{ConnectOptions, ExecPool};
///
/// let pool = ExecPool::new();
/// pool.add("sandbox-1", "ws://10.0.0.1:7000", ConnectOptions::new("agent").token("t1"))?;
/// pool.add("sandbox-2", "ws://10.0.0.2:7000", ConnectOptions::new("agent").token("t2"))?;
/// // The first use of an endpoint connects to it.
/// let output = pool.command("sandbox-2", "uname").await?.output().await?;
/// println!("{}", String::from_utf8_lossy(&output.stdout));
/// pool.close().await?;
/// # Ok(())
/// # }
/// ```
///
/// Each endpoint has at most one connection (one session). A connection that
/// drops is resumed by the SDK ([`ConnectOptions::reconnect`], on by
/// default): its processes keep running, calls wait for the resume, and
/// [`ExecPool::health`] shows [`EndpointState::Reconnecting`]. A connection
/// closed for good (the resume gave up, the session expired, a client
/// closed it) is replaced by a new connection, to a new session, on the
/// endpoint's next use; processes of the old session are not in the new one.
///
/// Connections stay open until [`ExecPool::remove`] or [`ExecPool::close`],
/// or until the pool and every client and child it handed out are dropped.
#[derive(Clone)]
pub struct ExecPool {
    /// The endpoints and the connect slots, shared by the clones.
    inner: Arc<PoolInner>,
}

/// What the clones of a pool share.
struct PoolInner {
    /// The endpoints by name; a `BTreeMap` so health lists come sorted.
    endpoints: Mutex<BTreeMap<String, Arc<Endpoint>>>,
    /// Bounds the connects in flight across the pool, so a pool of
    /// hundreds of endpoints used at once does not open hundreds of TCP
    /// connections and handshakes in the same instant.
    connect_slots: Semaphore,
}

impl std::fmt::Debug for ExecPool {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ExecPool")
            .field("endpoints", &self.names())
            .finish_non_exhaustive()
    }
}

impl Default for ExecPool {
    fn default() -> Self {
        Self::new()
    }
}

impl ExecPool {
    /// An empty pool running up to [`DEFAULT_MAX_CONCURRENT_CONNECTS`]
    /// connects at once.
    pub fn new() -> Self {
        Self::with_max_concurrent_connects(DEFAULT_MAX_CONCURRENT_CONNECTS)
    }

    /// An empty pool running up to `connects` connects at once (at least 1);
    /// further first uses wait ([`EndpointState::Queued`]). A connect holds
    /// its slot until it succeeds or fails (`connect_timeout` plus
    /// `initialize_timeout` at most). Resumes after a drop are the SDK's and
    /// take no slot.
    pub fn with_max_concurrent_connects(connects: usize) -> Self {
        Self {
            inner: Arc::new(PoolInner {
                endpoints: Mutex::new(BTreeMap::new()),
                connect_slots: Semaphore::new(connects.max(1)),
            }),
        }
    }

    /// Adds the endpoint `name` at `url` (`ws://HOST:PORT`, or `wss://` with
    /// TLS), connected with `options` (token, timeouts, reconnect) on first
    /// use. Nothing is dialled now.
    ///
    /// # Errors
    /// [`ClientError::InvalidInput`] when the pool already has an endpoint
    /// named `name` (remove it first).
    pub fn add(
        &self,
        name: impl Into<String>,
        url: impl Into<String>,
        options: ConnectOptions,
    ) -> Result<(), ClientError> {
        let name = name.into();
        let mut endpoints = lock(&self.inner.endpoints);
        if endpoints.contains_key(&name) {
            return Err(ClientError::InvalidInput(format!(
                "the pool already has an endpoint named `{name}`"
            )));
        }
        let endpoint = Endpoint::new(name.clone(), url.into(), options);
        endpoints.insert(name, Arc::new(endpoint));
        Ok(())
    }

    /// The endpoints' names, sorted.
    pub fn names(&self) -> Vec<String> {
        lock(&self.inner.endpoints).keys().cloned().collect()
    }

    /// The URL of endpoint `name`, if the pool has it.
    pub fn url(&self, name: &str) -> Option<String> {
        lock(&self.inner.endpoints)
            .get(name)
            .map(|endpoint| endpoint.url().to_owned())
    }

    /// The client of endpoint `name`, connecting first when it has no open
    /// connection (waiting for a connect slot, and sharing the connect with
    /// other callers that come meanwhile). The client is a clone of the
    /// pool's: closing it closes the endpoint's connection for every user.
    ///
    /// # Errors
    /// [`ClientError::UnknownEndpoint`] when the pool has no endpoint
    /// `name`; the errors of [`ExecClient::connect_websocket`]
    /// ([`ClientError::Connect`], [`ClientError::Timeout`], ...), which
    /// [`ExecPool::health`] then reports as [`EndpointState::Failed`].
    pub async fn client(&self, name: &str) -> Result<ExecClient, ClientError> {
        self.endpoint(name)?.client(&self.inner.connect_slots).await
    }

    /// A [`Command`] running `program` on endpoint `name`, connecting first
    /// as [`ExecPool::client`] does.
    ///
    /// # Errors
    /// As [`ExecPool::client`].
    pub async fn command(
        &self,
        name: &str,
        program: impl Into<String>,
    ) -> Result<Command, ClientError> {
        Ok(self.client(name).await?.command(program))
    }

    /// Measures one round trip to endpoint `name` with a `process/list`
    /// call (cheap, and changes nothing), connecting first if needed, and
    /// records it as [`EndpointHealth::last_round_trip`]. While the
    /// connection is being resumed, the time includes the wait.
    ///
    /// # Errors
    /// As [`ExecPool::client`] and [`ExecClient::process_list`].
    pub async fn ping(&self, name: &str) -> Result<Duration, ClientError> {
        let endpoint = self.endpoint(name)?;
        let client = endpoint.client(&self.inner.connect_slots).await?;
        let started = Instant::now();
        client.process_list(ProcessListParams {}).await?;
        let round_trip = started.elapsed();
        endpoint.record_round_trip(round_trip);
        Ok(round_trip)
    }

    /// The health of endpoint `name`, if the pool has it.
    pub fn health(&self, name: &str) -> Option<EndpointHealth> {
        lock(&self.inner.endpoints)
            .get(name)
            .map(|endpoint| endpoint.health())
    }

    /// The health of endpoint `name` as a `tokio::sync::watch` value, if
    /// the pool has it: every change is one event (a receiver that looks
    /// only now and then sees the latest). The sender lives with the
    /// endpoint: once it is removed and its connection closed, `changed()`
    /// fails.
    pub fn health_changes(&self, name: &str) -> Option<watch::Receiver<EndpointHealth>> {
        lock(&self.inner.endpoints)
            .get(name)
            .map(|endpoint| endpoint.health_changes())
    }

    /// The health of every endpoint, sorted by name.
    pub fn health_all(&self) -> Vec<(String, EndpointHealth)> {
        lock(&self.inner.endpoints)
            .iter()
            .map(|(name, endpoint)| (name.clone(), endpoint.health()))
            .collect()
    }

    /// Removes endpoint `name` and closes its connection, if open (see
    /// [`ExecClient::close`]: the server keeps the session's processes for
    /// its TTL, then kills them). Clients handed out for it fail their
    /// calls with [`ClientError::TransportClosed`]; later uses of the name
    /// fail with [`ClientError::UnknownEndpoint`] until it is added again.
    /// Returns whether the pool had it.
    ///
    /// # Errors
    /// As [`ExecClient::close`]; the endpoint is removed all the same.
    pub async fn remove(&self, name: &str) -> Result<bool, ClientError> {
        let removed = lock(&self.inner.endpoints).remove(name);
        match removed {
            Some(endpoint) => endpoint.close().await.map(|()| true),
            None => Ok(false),
        }
    }

    /// Removes every endpoint and closes their connections, all at once.
    ///
    /// # Errors
    /// The first error of [`ExecClient::close`]; every connection is
    /// closed all the same.
    pub async fn close(&self) -> Result<(), ClientError> {
        let endpoints = std::mem::take(&mut *lock(&self.inner.endpoints));
        let closes = endpoints
            .into_values()
            .map(|endpoint| async move { endpoint.close().await });
        futures_util::future::join_all(closes)
            .await
            .into_iter()
            .collect()
    }

    /// Endpoint `name`.
    fn endpoint(&self, name: &str) -> Result<Arc<Endpoint>, ClientError> {
        lock(&self.inner.endpoints)
            .get(name)
            .cloned()
            .ok_or_else(|| ClientError::UnknownEndpoint {
                name: name.to_owned(),
            })
    }
}
