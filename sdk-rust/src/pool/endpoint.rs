//! `Endpoint`: one named server of an [`ExecPool`](crate::ExecPool): where it
//! is and how to connect, its connection once opened, and its health.
//!
//! The connection is opened by the first caller that needs it; callers that
//! come meanwhile wait on the same async mutex and share it, so an endpoint
//! never has two connects in flight. A dropped connection is resumed by the
//! SDK itself ([`ConnectOptions::reconnect`]); only a connection closed for
//! good is replaced, by a new connect (a new session) on the next use.
//! One watcher task per connection turns its [`ConnectionState`] events into
//! the endpoint's health.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, watch};

use super::health::{EndpointHealth, EndpointState, HealthCell, HealthRecord};
use crate::client::ExecClient;
use crate::error::ClientError;
use crate::options::ConnectOptions;
use crate::state::{ClosedReason, ConnectionState};

/// One named server of a pool.
pub(crate) struct Endpoint {
    /// The endpoint's name in the pool, for errors.
    name: String,
    /// The WebSocket URL to dial (`ws://` or, with TLS, `wss://`).
    url: String,
    /// How to connect: token, timeouts, reconnect, TLS settings.
    options: ConnectOptions,
    /// The connection, behind an async mutex held across a connect so
    /// concurrent first uses share one connect.
    connection: tokio::sync::Mutex<Slot>,
    /// The health, shared with the watcher task of the current connection.
    health: Arc<HealthCell>,
}

/// What the connection mutex guards.
struct Slot {
    /// The open (or resuming) connection; `None` before the first use and
    /// after a failed connect.
    client: Option<ExecClient>,
    /// Set once the endpoint is removed from its pool, so a caller that
    /// found it just before cannot open a connection nobody would close.
    removed: bool,
}

/// Puts the endpoint back to [`EndpointState::Idle`] when a connect is
/// cancelled (its caller's future dropped) before it finished, so the
/// health does not show a connect that nobody runs.
struct ConnectAttempt<'a> {
    /// The endpoint's health.
    health: &'a HealthCell,
    /// The connection number of this attempt.
    generation: u64,
    /// Whether the attempt finished (success or failure).
    finished: bool,
}

impl Drop for ConnectAttempt<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.health.update(|record| {
                if record.generation == self.generation {
                    record.enter(EndpointState::Idle);
                }
            });
        }
    }
}

impl Endpoint {
    /// An endpoint named `name` at `url`, not yet connected.
    pub(crate) fn new(name: String, url: String, options: ConnectOptions) -> Self {
        Self {
            name,
            url,
            options,
            connection: tokio::sync::Mutex::new(Slot {
                client: None,
                removed: false,
            }),
            health: Arc::new(HealthCell::new()),
        }
    }

    /// The URL the endpoint dials.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// A snapshot of the endpoint's health.
    pub(crate) fn health(&self) -> EndpointHealth {
        self.health.snapshot()
    }

    /// The endpoint's health as events, from the current value.
    pub(crate) fn health_changes(&self) -> watch::Receiver<EndpointHealth> {
        self.health.subscribe()
    }

    /// Records the round trip of a ping.
    pub(crate) fn record_round_trip(&self, round_trip: Duration) {
        self.health
            .update(|record| record.health.last_round_trip = Some(round_trip));
    }

    /// The endpoint's client: the open connection, or a new one (dialled
    /// once one of `connect_slots` is free) when there is none or the last
    /// one closed for good.
    ///
    /// # Errors
    /// [`ClientError::UnknownEndpoint`] when the endpoint was removed; the
    /// errors of [`ExecClient::connect_websocket`].
    pub(crate) async fn client(
        &self,
        connect_slots: &Semaphore,
    ) -> Result<ExecClient, ClientError> {
        let mut slot = self.connection.lock().await;
        if slot.removed {
            return Err(self.unknown());
        }
        if let Some(client) = slot.client.take() {
            let state = client.connection_state().borrow().clone();
            if !matches!(state, ConnectionState::Closed(_)) {
                slot.client = Some(client.clone());
                return Ok(client);
            }
            // The watcher may not have taken in the close yet, and once the
            // next connection starts it would be ignored: record it now.
            self.health.update(|record| {
                if !matches!(
                    record.health.state,
                    EndpointState::Failed | EndpointState::Closed
                ) {
                    let generation = record.generation;
                    record.observe(generation, &state);
                }
            });
        }
        let mut attempt = ConnectAttempt {
            health: &self.health,
            generation: self.health.update(HealthRecord::begin_connect),
            finished: false,
        };
        // The pool never closes its semaphore, so this cannot fail; the
        // closed error stands in for a panic.
        let permit = connect_slots
            .acquire()
            .await
            .map_err(|_| ClientError::TransportClosed)?;
        self.health.update(|record| {
            if record.generation == attempt.generation {
                record.enter(EndpointState::Connecting);
            }
        });
        let connected = ExecClient::connect_websocket(&self.url, self.options.clone()).await;
        drop(permit);
        attempt.finished = true;
        match connected {
            Ok(client) => {
                let states = client.connection_state();
                self.health.update(|record| {
                    record.health.connections_opened += 1;
                    record.observe(attempt.generation, &states.borrow());
                });
                tokio::spawn(watch_connection(
                    states,
                    self.health.clone(),
                    attempt.generation,
                ));
                slot.client = Some(client.clone());
                Ok(client)
            }
            Err(error) => {
                tracing::debug!(endpoint = %self.name, %error, "connecting to the endpoint failed");
                self.health.update(|record| record.fail(error.to_string()));
                Err(error)
            }
        }
    }

    /// Marks the endpoint removed and closes its connection, if any (for
    /// every clone of its client: their calls fail with
    /// [`ClientError::TransportClosed`]). Waits for a connect in flight.
    ///
    /// # Errors
    /// As [`ExecClient::close`].
    pub(crate) async fn close(&self) -> Result<(), ClientError> {
        let client = {
            let mut slot = self.connection.lock().await;
            slot.removed = true;
            slot.client.take()
        };
        match client {
            Some(client) => client.close().await,
            None => Ok(()),
        }
    }

    /// The error for a use of this endpoint after its removal.
    fn unknown(&self) -> ClientError {
        ClientError::UnknownEndpoint {
            name: self.name.clone(),
        }
    }
}

/// Follows connection number `generation`'s states into `health` until it
/// closes for good. Holds no client, so it never keeps a connection open.
async fn watch_connection(
    mut states: watch::Receiver<ConnectionState>,
    health: Arc<HealthCell>,
    generation: u64,
) {
    loop {
        let state = states.borrow_and_update().clone();
        health.update(|record| record.observe(generation, &state));
        if matches!(state, ConnectionState::Closed(_)) {
            return;
        }
        if states.changed().await.is_err() {
            // The connection is gone without a last word: it was dropped,
            // which only its own clients can do.
            let state = match states.borrow().clone() {
                closed @ ConnectionState::Closed(_) => closed,
                _ => ConnectionState::Closed(ClosedReason::ClientClosed),
            };
            health.update(|record| record.observe(generation, &state));
            return;
        }
    }
}
