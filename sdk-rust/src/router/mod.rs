//! [`Router`]: the one reader task of a connection. It takes every message
//! from the server and routes it: a response by `id` to the call waiting for
//! it, a process notification by `processId` to that process's
//! [`RemoteChild`](crate::RemoteChild) through a bounded channel.
//!
//! # Layout
//! - this file: the routing tables (pending calls, process routes), the
//!   reader loop, and closing.
//! - `incoming`: the shapes of the server's messages, parsed once, with the
//!   one-pass `process/output` path.
//! - `route`: one process's route, and the back-pressure and lag policy of
//!   handing it events.

mod incoming;
mod route;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use exec_protocol::{
    ProcessClosedNotification, ProcessExitedNotification, ProcessOutputNotification,
};
use serde_json::value::RawValue;
use tokio::sync::{mpsc, oneshot};

use self::incoming::{Incoming, OutputMessage, OutputParams, excerpt, parse_params};
use crate::error::ClientError;
use crate::process::output::{OutputBytes, RemoteExitStatus};
use crate::process::sequence::Event;
use crate::sync::lock;
use crate::transport::limit::IncomingLimit;

pub(crate) use self::route::{Route, RouteShared};

/// What a waiting call receives: the raw `result`, or the error.
pub(crate) type CallResult = Result<Box<RawValue>, ClientError>;

/// Why the connection is closed.
#[derive(Debug, Clone)]
enum Closed {
    /// The transport ended or the client closed it.
    Transport,
    /// The server broke the protocol in a way that could hide a response.
    Violation(String),
    /// The server sent a message over the cap; the transport stopped reading.
    IncomingTooLarge {
        /// How much of it was seen, in bytes.
        bytes: usize,
        /// The cap, in bytes.
        limit: usize,
    },
}

/// The routing tables, behind one lock.
struct RouterState {
    /// `Some` once the connection is closed; nothing is registered after.
    closed: Option<Closed>,
    /// The id the next request gets. Ids below it that are not pending
    /// belong to calls that gave up waiting (a timeout, a dropped future).
    next_id: u64,
    /// Calls waiting for their response, by request id.
    pending: HashMap<u64, oneshot::Sender<CallResult>>,
    /// Processes followed by a live `RemoteChild`, by `processId`.
    routes: HashMap<String, Route>,
}

/// The routing side of a connection: pending calls and process routes, and
/// the reader loop that feeds them.
pub(crate) struct Router {
    /// The tables.
    state: Mutex<RouterState>,
    /// See [`ConnectOptions::output_stall_timeout`](crate::ConnectOptions::output_stall_timeout).
    stall_timeout: Duration,
}

impl Router {
    /// An open router with no calls and no routes.
    pub(crate) fn new(stall_timeout: Duration) -> Self {
        Self {
            state: Mutex::new(RouterState {
                closed: None,
                next_id: 1,
                pending: HashMap::new(),
                routes: HashMap::new(),
            }),
            stall_timeout,
        }
    }

    /// The reader loop: routes every incoming message until the transport
    /// ends or the server breaks the protocol, then closes the router. The
    /// transport records in `limit` when it ended over a message too large.
    pub(crate) async fn run(
        self: Arc<Self>,
        mut incoming: mpsc::Receiver<String>,
        limit: Arc<IncomingLimit>,
    ) {
        while let Some(text) = incoming.recv().await {
            if let Err(violation) = self.handle_message(&text).await {
                tracing::error!(%violation, "the server broke the protocol; closing the connection");
                self.close_with(Closed::Violation(violation));
                return;
            }
        }
        // The transport records a breach before it drops its sender, so it
        // is visible once the channel has reported its end.
        match limit.exceeded() {
            Some((bytes, limit)) => self.close_with(Closed::IncomingTooLarge { bytes, limit }),
            None => self.close_with(Closed::Transport),
        }
    }

    /// The error a call gets once the connection is closed.
    pub(crate) fn closed_error(&self) -> ClientError {
        match &lock(&self.state).closed {
            Some(closed) => closed_error(closed),
            None => ClientError::TransportClosed,
        }
    }

    /// Registers a call: its request id and where its response will arrive.
    ///
    /// # Errors
    /// The closed error once the connection is closed.
    pub(crate) fn register_call(
        &self,
    ) -> Result<(u64, oneshot::Receiver<CallResult>), ClientError> {
        let mut state = lock(&self.state);
        if let Some(closed) = &state.closed {
            return Err(closed_error(closed));
        }
        let id = state.next_id;
        state.next_id += 1;
        let (sender, receiver) = oneshot::channel();
        state.pending.insert(id, sender);
        Ok((id, receiver))
    }

    /// Forgets a call that stopped waiting; its late response is ignored.
    pub(crate) fn forget_call(&self, id: u64) {
        lock(&self.state).pending.remove(&id);
    }

    /// Starts routing `process_id`'s notifications to `route`.
    ///
    /// # Errors
    /// [`ClientError::InvalidInput`] when a live `RemoteChild` of this client
    /// already follows that id; the closed error once the connection is closed.
    pub(crate) fn register_route(&self, process_id: &str, route: Route) -> Result<(), ClientError> {
        let mut state = lock(&self.state);
        if let Some(closed) = &state.closed {
            return Err(closed_error(closed));
        }
        if state.routes.contains_key(process_id) {
            return Err(ClientError::InvalidInput(format!(
                "processId `{process_id}` is already used by a live RemoteChild of this client"
            )));
        }
        state.routes.insert(process_id.to_owned(), route);
        Ok(())
    }

    /// Stops routing `process_id`, if `shared` is still its route (a newer
    /// process may reuse the id once the old child is gone).
    pub(crate) fn remove_route(&self, process_id: &str, shared: &Arc<RouteShared>) {
        let mut state = lock(&self.state);
        if state
            .routes
            .get(process_id)
            .is_some_and(|route| route.follows(shared))
        {
            state.routes.remove(process_id);
        }
    }

    /// Closes the router as if the transport had ended (the client closed it).
    pub(crate) fn close(&self) {
        self.close_with(Closed::Transport);
    }

    /// Fails every waiting call and drops every route (each child's channel
    /// then reports the close). The first reason sticks.
    fn close_with(&self, why: Closed) {
        let (pending, routes) = {
            let mut state = lock(&self.state);
            if state.closed.is_some() {
                return;
            }
            state.closed = Some(why.clone());
            (
                std::mem::take(&mut state.pending),
                std::mem::take(&mut state.routes),
            )
        };
        for (_, waiting) in pending {
            let _ = waiting.send(Err(closed_error(&why)));
        }
        for (_, route) in routes {
            route.wake();
        }
    }

    /// Routes one message. `Err` is a violation that closes the connection.
    async fn handle_message(&self, text: &str) -> Result<(), String> {
        if let Some(output) = OutputMessage::parse(text) {
            let OutputParams {
                chunk,
                process_id,
                seq,
                stream,
            } = output.params;
            let chunk = OutputBytes {
                seq,
                stream,
                bytes: chunk,
            };
            self.deliver(&process_id, Event::Output(chunk)).await;
            return Ok(());
        }
        let message: Incoming<'_> = serde_json::from_str(text).map_err(|error| {
            format!(
                "the server sent a message that is not a JSON-RPC object ({error}): {}",
                excerpt(text)
            )
        })?;
        if let Some(method) = &message.method {
            if message.id.is_some() {
                // v1 defines no server-to-client requests; nothing waits on
                // an answer that matters to this client.
                tracing::warn!(method, "ignoring a request from the server");
                return Ok(());
            }
            self.route_notification(method, message.params).await;
            return Ok(());
        }
        let Some(id) = message.id else {
            if let Some(error) = message.error {
                // An error with a null id: the server could not tell which
                // message it was about (this client sends only valid JSON).
                tracing::warn!(
                    code = error.code,
                    message = error.message,
                    "the server reported an error about no request"
                );
                return Ok(());
            }
            return Err(format!(
                "a message with neither `method` nor `id`: {}",
                excerpt(text)
            ));
        };
        let id: u64 = serde_json::from_str(id.get()).map_err(|_| {
            format!(
                "a response with id {}, which this client never uses",
                id.get()
            )
        })?;
        let outcome =
            match (message.error, message.result) {
                (Some(error), _) => Err(ClientError::from_wire(
                    error.code,
                    error.message,
                    error.data,
                )),
                (None, Some(result)) => Ok(result.to_owned()),
                (None, None) => Ok(RawValue::from_string(String::from("null"))
                    .map_err(|error| error.to_string())?),
            };
        let waiting = {
            let mut state = lock(&self.state);
            match state.pending.remove(&id) {
                Some(waiting) => Some(waiting),
                None if id < state.next_id => None,
                None => {
                    return Err(format!(
                        "a response to id {id}, which no request of this client had"
                    ));
                }
            }
        };
        match waiting {
            Some(waiting) => {
                let _ = waiting.send(outcome);
            }
            None => tracing::debug!(id, "a response to a call that stopped waiting"),
        }
        Ok(())
    }

    /// Hands an event to the process's route, if a `RemoteChild` follows it.
    async fn deliver(&self, process_id: &str, event: Event) {
        let route = lock(&self.state).routes.get(process_id).cloned();
        match route {
            Some(route) => route.deliver(event, self.stall_timeout).await,
            None => tracing::trace!(process_id, "an event for a process no RemoteChild follows"),
        }
    }

    /// `process/output`: a chunk for the process's child.
    async fn process_output(&self, params: ProcessOutputNotification) {
        let chunk = OutputBytes {
            seq: params.seq,
            stream: params.stream,
            bytes: params.chunk.into_inner(),
        };
        self.deliver(&params.process_id, Event::Output(chunk)).await;
    }

    /// `process/exited`: the process's exit.
    async fn process_exited(&self, params: ProcessExitedNotification) {
        let status = RemoteExitStatus {
            exit_code: params.exit_code,
            signal: params.signal,
            reason: params.reason,
        };
        self.deliver(
            &params.process_id,
            Event::Exited {
                seq: params.seq,
                status,
            },
        )
        .await;
    }

    /// `process/closed`: the process's last event.
    async fn process_closed(&self, params: ProcessClosedNotification) {
        self.deliver(&params.process_id, Event::Closed { seq: params.seq })
            .await;
    }
}

/// The error for a closed connection.
fn closed_error(closed: &Closed) -> ClientError {
    match closed {
        Closed::Transport => ClientError::TransportClosed,
        Closed::Violation(violation) => ClientError::Protocol(violation.clone()),
        &Closed::IncomingTooLarge { bytes, limit } => {
            ClientError::IncomingMessageTooLarge { bytes, limit }
        }
    }
}

/// Generates [`Router::route_notification`] from the protocol's notification
/// table: every server-to-client notification calls the `Router` method of
/// its snake-case name, so a notification added to the schema does not
/// compile until this client handles it.
macro_rules! route_notifications {
    ($(($marker:path, $snake:ident, $wire:literal, $params:path, $direction:ident)),* $(,)?) => {
        impl Router {
            /// Routes one notification by its method name.
            async fn route_notification(&self, method: &str, params: Option<&RawValue>) {
                match method {
                    $($wire => route_notifications!(@arm $direction, self, $snake, $params, params, $wire),)*
                    other => tracing::debug!(method = other, "ignoring a notification this client does not know"),
                }
            }
        }
    };
    (@arm ServerToClient, $router:expr, $snake:ident, $params:path, $raw:ident, $wire:literal) => {
        match parse_params::<$params>($raw) {
            Ok(params) => $router.$snake(params).await,
            // Not fatal: the process's child sees the gap and reads the
            // event back with `process/read`.
            Err(error) => tracing::warn!(method = $wire, %error, "ignoring a notification whose params do not match the schema"),
        }
    };
    (@arm ClientToServer, $router:expr, $snake:ident, $params:path, $raw:ident, $wire:literal) => {
        tracing::debug!(method = $wire, "ignoring a client-to-server notification sent by the server")
    };
}

exec_protocol::for_each_notification!(route_notifications);
