//! [`EndpointHealth`], [`EndpointState`] and [`EndpointFailure`]: what an
//! [`ExecPool`](crate::ExecPool) reports about one endpoint; `HealthRecord`,
//! the pure logic of its changes; and `HealthCell`, where each endpoint keeps
//! it, written by the pool and by one watcher task per connection, and
//! published as events.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use crate::state::{ClosedReason, ConnectionState};
use crate::sync::lock;

/// Where one endpoint of an [`ExecPool`](crate::ExecPool) stands.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndpointState {
    /// No connection was asked for yet: the pool connects on first use.
    Idle,
    /// A connection was asked for and waits for one of the pool's connect
    /// slots ([`ExecPool::with_max_concurrent_connects`](crate::ExecPool::with_max_concurrent_connects)).
    Queued,
    /// Dialling and initializing, holding a connect slot.
    Connecting,
    /// Connected and initialized: calls are sent at once.
    Connected,
    /// The connection dropped and the SDK is resuming the session (see
    /// [`ConnectionState::Reconnecting`]); calls wait for it.
    Reconnecting {
        /// The attempt under way, from 1 after the drop.
        attempt: u32,
    },
    /// The last connect failed, or the connection closed for good without
    /// this client closing it ([`EndpointHealth::last_failure`] says why).
    /// The next use connects again, to a new session.
    Failed,
    /// The client closed the connection ([`ExecClient::close`](crate::ExecClient::close)
    /// on a client the pool handed out). The next use connects again.
    Closed,
}

/// A failure of one endpoint: a connect that failed, or a connection that
/// closed for good (the session expired, the resume gave up, the server
/// broke the protocol).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointFailure {
    /// The error or the reason, as text (the typed error went to the caller
    /// of [`ExecPool::client`](crate::ExecPool::client); a
    /// [`ClosedReason`] is shown by its `Display`).
    pub error: String,
    /// When it happened, by the system clock.
    pub at: SystemTime,
}

/// A snapshot of one endpoint's health, from
/// [`ExecPool::health`](crate::ExecPool::health).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointHealth {
    /// The current state.
    pub state: EndpointState,
    /// When the endpoint entered `state`, by the system clock.
    pub since: SystemTime,
    /// The last failure, kept after the endpoint recovers, so a flapping
    /// endpoint shows why it flapped.
    pub last_failure: Option<EndpointFailure>,
    /// The round trip of the last [`ExecPool::ping`](crate::ExecPool::ping)
    /// (a `process/list` call), if one succeeded.
    pub last_round_trip: Option<Duration>,
    /// How many connections the pool opened to the endpoint (each a new
    /// session); resumes after a drop do not count.
    pub connections_opened: u64,
}

/// The health of one endpoint, with the generation that orders writers: a
/// watcher of an older connection may not overwrite what a newer one
/// reported.
#[derive(Debug, Clone)]
pub(crate) struct HealthRecord {
    /// What [`ExecPool::health`](crate::ExecPool::health) returns.
    pub(crate) health: EndpointHealth,
    /// The number of the current connection (the latest connect started).
    pub(crate) generation: u64,
}

impl HealthRecord {
    /// An endpoint never used.
    pub(crate) fn new() -> Self {
        Self {
            health: EndpointHealth {
                state: EndpointState::Idle,
                since: SystemTime::now(),
                last_failure: None,
                last_round_trip: None,
                connections_opened: 0,
            },
            generation: 0,
        }
    }

    /// Enters `state` now, unless the endpoint is already in it (so `since`
    /// keeps the start of the state, not of the last report).
    pub(crate) fn enter(&mut self, state: EndpointState) {
        if self.health.state != state {
            self.health.state = state;
            self.health.since = SystemTime::now();
        }
    }

    /// Starts connection number `generation + 1` (queued for a connect
    /// slot) and returns that number.
    pub(crate) fn begin_connect(&mut self) -> u64 {
        self.generation += 1;
        self.enter(EndpointState::Queued);
        self.generation
    }

    /// Records a failure now and enters [`EndpointState::Failed`].
    pub(crate) fn fail(&mut self, error: String) {
        let now = SystemTime::now();
        self.health.last_failure = Some(EndpointFailure { error, at: now });
        self.health.state = EndpointState::Failed;
        self.health.since = now;
    }

    /// Takes in a connection state reported by connection `generation`;
    /// ignored when a newer connection was started since.
    pub(crate) fn observe(&mut self, generation: u64, state: &ConnectionState) {
        if generation != self.generation {
            return;
        }
        match state {
            ConnectionState::Connected => self.enter(EndpointState::Connected),
            ConnectionState::Reconnecting { attempt } => {
                self.enter(EndpointState::Reconnecting { attempt: *attempt });
            }
            ConnectionState::Closed(ClosedReason::ClientClosed) => {
                self.enter(EndpointState::Closed);
            }
            ConnectionState::Closed(reason) => self.fail(reason.to_string()),
        }
    }
}

/// One endpoint's health: the record, and its health as a `watch` value
/// for [`ExecPool::health_changes`](crate::ExecPool::health_changes).
pub(crate) struct HealthCell {
    /// The record, generation included. Its lock is held while an update
    /// is published, so events come in the order of the updates.
    record: Mutex<HealthRecord>,
    /// The health as last published; one event per change.
    events: watch::Sender<EndpointHealth>,
}

impl HealthCell {
    /// The cell of an endpoint never used.
    pub(crate) fn new() -> Self {
        let record = HealthRecord::new();
        let (events, _) = watch::channel(record.health.clone());
        Self {
            record: Mutex::new(record),
            events,
        }
    }

    /// The current health.
    pub(crate) fn snapshot(&self) -> EndpointHealth {
        lock(&self.record).health.clone()
    }

    /// The health as events, from the current value.
    pub(crate) fn subscribe(&self) -> watch::Receiver<EndpointHealth> {
        self.events.subscribe()
    }

    /// Applies `change` to the record and publishes the health if it
    /// changed; returns what `change` returned.
    pub(crate) fn update<T>(&self, change: impl FnOnce(&mut HealthRecord) -> T) -> T {
        let mut record = lock(&self.record);
        let result = change(&mut record);
        self.events.send_if_modified(|published| {
            let modified = *published != record.health;
            if modified {
                published.clone_from(&record.health);
            }
            modified
        });
        result
    }
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;

    use super::*;

    #[test]
    fn a_connection_goes_queued_connected_reconnecting_and_failed() {
        let mut record = HealthRecord::new();
        assert_eq!(record.health.state, EndpointState::Idle);
        let generation = record.begin_connect();
        assert_eq!(
            (generation, &record.health.state),
            (1, &EndpointState::Queued)
        );
        record.observe(generation, &ConnectionState::Connected);
        assert_eq!(record.health.state, EndpointState::Connected);
        record.observe(generation, &ConnectionState::Reconnecting { attempt: 2 });
        assert_eq!(
            record.health.state,
            EndpointState::Reconnecting { attempt: 2 }
        );
        record.observe(
            generation,
            &ConnectionState::Closed(ClosedReason::SessionExpired),
        );
        assert_eq!(record.health.state, EndpointState::Failed);
        let failure = record.health.last_failure.clone().expect("a failure");
        assert_eq!(failure.error, "the server no longer has the session");
        assert_eq!(failure.at, record.health.since);
    }

    #[test]
    fn an_older_connection_cannot_overwrite_a_newer_one() {
        let mut record = HealthRecord::new();
        let old = record.begin_connect();
        record.observe(old, &ConnectionState::Connected);
        let new = record.begin_connect();
        record.observe(new, &ConnectionState::Connected);
        record.observe(old, &ConnectionState::Closed(ClosedReason::ConnectionLost));
        assert_eq!(record.health.state, EndpointState::Connected);
        assert_eq!(record.health.last_failure, None);
    }

    #[test]
    fn a_client_close_is_closed_not_failed_and_the_last_failure_stays() {
        let mut record = HealthRecord::new();
        record.begin_connect();
        record.fail(String::from("cannot connect"));
        let generation = record.begin_connect();
        record.observe(generation, &ConnectionState::Connected);
        record.observe(
            generation,
            &ConnectionState::Closed(ClosedReason::ClientClosed),
        );
        assert_eq!(record.health.state, EndpointState::Closed);
        assert_eq!(
            record
                .health
                .last_failure
                .as_ref()
                .map(|failure| failure.error.as_str()),
            Some("cannot connect")
        );
    }

    #[test]
    fn since_keeps_the_start_of_a_state() {
        let mut record = HealthRecord::new();
        let generation = record.begin_connect();
        record.observe(generation, &ConnectionState::Connected);
        let since = record.health.since;
        record.observe(generation, &ConnectionState::Connected);
        assert_eq!(record.health.since, since);
    }
}
