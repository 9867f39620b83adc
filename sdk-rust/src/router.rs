//! [`Router`]: the one reader task of a connection. It takes every message
//! from the server and routes it: a response by `id` to the call waiting for
//! it, a process notification by `processId` to that process's
//! [`RemoteChild`](crate::RemoteChild) through a bounded channel.
//!
//! # Back-pressure and lag
//! When a process's channel is full, the reader waits for its consumer, up to
//! [`ConnectOptions::output_stall_timeout`](crate::ConnectOptions::output_stall_timeout).
//! Waiting stops reading the transport, so the server stops reading the
//! process's output and nothing is lost. A consumer that takes nothing for
//! that long is marked as lagging instead: from then on its output is dropped
//! here (never silently: the child sees the mark and the gap, and reads the
//! output back with `process/read`) so the rest of the connection goes on.
//! The exit and the close are never dropped: they wait in a small overflow
//! queue beside the channel.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use exec_protocol::{
    ProcessClosedNotification, ProcessExitedNotification, ProcessOutputNotification,
};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::mpsc::error::{SendTimeoutError, TrySendError};
use tokio::sync::{Notify, mpsc, oneshot};

use crate::error::ClientError;
use crate::output::{ExitStatus, OutputChunk};
use crate::sequence::Event;

/// What a waiting call receives: the raw `result`, or the error.
pub(crate) type CallResult = Result<Box<RawValue>, ClientError>;

/// Locks a mutex, going on with the data if a panicking thread poisoned it:
/// every critical section here leaves the maps consistent.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Why the connection is closed.
#[derive(Debug, Clone)]
enum Closed {
    /// The transport ended or the client closed it.
    Transport,
    /// The server broke the protocol in a way that could hide a response.
    Violation(String),
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

/// The shared half of a process's route: what the reader and the
/// `RemoteChild` both look at.
#[derive(Debug, Default)]
pub(crate) struct RouteShared {
    /// Output notifications the reader dropped for this process, counted.
    /// The child is caught up when [`Self::caught_up`] equals it.
    pub(crate) dropped: AtomicU64,
    /// The value of [`Self::dropped`] the child's last successful read
    /// covered. Counters instead of a flag, so that a drop during a read is
    /// never forgotten and a cancelled read loses nothing.
    pub(crate) caught_up: AtomicU64,
    /// The exit and the close when the channel was full (at most two events).
    pub(crate) overflow: Mutex<VecDeque<Event>>,
    /// Wakes the child after a drop or an overflow, which the channel alone
    /// would not announce.
    pub(crate) wake: Notify,
}

impl RouteShared {
    /// Whether output was dropped since the child's last read.
    pub(crate) fn is_lagging(&self) -> bool {
        self.dropped.load(Ordering::Acquire) != self.caught_up.load(Ordering::Acquire)
    }
}

/// Where one process's events go.
#[derive(Clone)]
pub(crate) struct Route {
    /// The bounded channel to the `RemoteChild`.
    events: mpsc::Sender<Event>,
    /// The state both sides share.
    shared: Arc<RouteShared>,
}

impl Route {
    /// A route whose channel holds `capacity` events, with the child's ends.
    pub(crate) fn new(capacity: usize) -> (Self, mpsc::Receiver<Event>, Arc<RouteShared>) {
        let (events, receiver) = mpsc::channel(capacity.max(1));
        let shared = Arc::new(RouteShared::default());
        (
            Self {
                events,
                shared: shared.clone(),
            },
            receiver,
            shared,
        )
    }

    /// Hands one event to the child, following the back-pressure policy of
    /// the module doc.
    async fn deliver(&self, event: Event, stall_timeout: Duration) {
        if !matches!(event, Event::Output(_)) {
            self.deliver_final(event);
            return;
        }
        let event = match self.events.try_send(event) {
            Ok(()) | Err(TrySendError::Closed(_)) => return,
            Err(TrySendError::Full(event)) => event,
        };
        if self.shared.is_lagging() {
            self.note_drop();
            return;
        }
        match self.events.send_timeout(event, stall_timeout).await {
            Ok(()) | Err(SendTimeoutError::Closed(_)) => {}
            Err(SendTimeoutError::Timeout(event)) => {
                tracing::warn!(
                    seq = event.seq(),
                    ?stall_timeout,
                    "a process's output consumer stalled; reading its output back later"
                );
                self.note_drop();
            }
        }
    }

    /// The exit and the close are tiny and must never be lost (a read
    /// reports neither their seq nor the exit's reason), so they skip the
    /// wait: into the channel if it has room, else into the overflow, in
    /// order behind anything already there.
    fn deliver_final(&self, event: Event) {
        let mut overflow = lock(&self.shared.overflow);
        if overflow.is_empty() {
            match self.events.try_send(event) {
                Ok(()) | Err(TrySendError::Closed(_)) => return,
                Err(TrySendError::Full(event)) => overflow.push_back(event),
            }
        } else {
            overflow.push_back(event);
        }
        drop(overflow);
        self.shared.wake.notify_one();
    }

    /// Records a dropped output notification and wakes the child to read it back.
    fn note_drop(&self) {
        self.shared.dropped.fetch_add(1, Ordering::AcqRel);
        self.shared.wake.notify_one();
    }
}

/// The routing side of a connection: pending calls and process routes, and
/// the reader loop that feeds them.
pub(crate) struct Router {
    /// The tables.
    state: Mutex<RouterState>,
    /// See [`ConnectOptions::output_stall_timeout`](crate::ConnectOptions::output_stall_timeout).
    stall_timeout: Duration,
}

/// The members of an incoming message the router looks at. Borrowed raw
/// values, so a response's result is parsed once, by the caller, into its type.
#[derive(Deserialize)]
struct Incoming<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(default)]
    method: Option<String>,
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
    #[serde(borrow, default)]
    result: Option<&'a RawValue>,
    #[serde(default)]
    error: Option<IncomingError>,
}

/// How our server (and any writer serializing the typed notification with
/// its members in order) starts a `process/output` message: the mark of the
/// hot path of [`OutputMessage::parse`].
const OUTPUT_PREFIX: &str = "{\"jsonrpc\":\"2.0\",\"method\":\"process/output\",";

/// A `process/output` notification parsed in one pass over the text: the
/// chunk is borrowed from it and decoded straight into the bytes, where the
/// general path finds the params first and parses them again, copying the
/// chunk on the way.
#[derive(Deserialize)]
struct OutputMessage<'a> {
    /// Present only in a request, which this is not (the general path says so).
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    /// The params.
    #[serde(borrow)]
    params: OutputParams<'a>,
}

/// The params of [`OutputMessage`], with the chunk already decoded.
#[derive(Deserialize)]
struct OutputParams<'a> {
    /// The decoded bytes.
    #[serde(deserialize_with = "decode_base64")]
    chunk: Vec<u8>,
    /// Borrowed unless it holds escapes.
    #[serde(rename = "processId", borrow)]
    process_id: std::borrow::Cow<'a, str>,
    /// Position in the process's sequence.
    seq: u64,
    /// Which stream.
    stream: exec_protocol::OutputStream,
}

impl<'a> OutputMessage<'a> {
    /// The notification when `text` is a well-formed `process/output` in our
    /// server's member order; `None` sends it down the general path (which
    /// handles every other shape, and reports what is wrong).
    fn parse(text: &'a str) -> Option<Self> {
        if !text.starts_with(OUTPUT_PREFIX) {
            return None;
        }
        serde_json::from_str::<Self>(text)
            .ok()
            .filter(|message| message.id.is_none())
    }
}

/// Decodes a base64 string borrowed from the message (serde's `String` or
/// `Cow<str>` would copy it first).
fn decode_base64<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    let text = <&'de str>::deserialize(deserializer)?;
    base64_simd::STANDARD
        .decode_to_vec(text)
        .map_err(|error| serde::de::Error::custom(format!("invalid base64: {error}")))
}

/// A JSON-RPC error object, with `data` kept whole (its `kind` is parsed
/// leniently, so an unknown kind does not hide the error).
#[derive(Deserialize)]
struct IncomingError {
    code: i32,
    message: String,
    #[serde(default)]
    data: Option<serde_json::Value>,
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
    /// ends or the server breaks the protocol, then closes the router.
    pub(crate) async fn run(self: Arc<Self>, mut incoming: mpsc::Receiver<String>) {
        while let Some(text) = incoming.recv().await {
            if let Err(violation) = self.handle_message(&text).await {
                tracing::error!(%violation, "the server broke the protocol; closing the connection");
                self.close_with(Closed::Violation(violation));
                return;
            }
        }
        self.close_with(Closed::Transport);
    }

    /// The error a call gets once the connection is closed.
    pub(crate) fn closed_error(&self) -> ClientError {
        match &lock(&self.state).closed {
            Some(Closed::Violation(violation)) => ClientError::Protocol(violation.clone()),
            _ => ClientError::TransportClosed,
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
            .is_some_and(|route| Arc::ptr_eq(&route.shared, shared))
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
            route.shared.wake.notify_one();
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
            let chunk = OutputChunk {
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
        let chunk = OutputChunk {
            seq: params.seq,
            stream: params.stream,
            bytes: params.chunk.into_inner(),
        };
        self.deliver(&params.process_id, Event::Output(chunk)).await;
    }

    /// `process/exited`: the process's exit.
    async fn process_exited(&self, params: ProcessExitedNotification) {
        let status = ExitStatus {
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
    }
}

/// The start of a message, for error texts.
fn excerpt(text: &str) -> String {
    const LIMIT: usize = 200;
    match text.char_indices().nth(LIMIT) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_owned(),
    }
}

/// Parses a notification's params (absent params parse as `{}`).
fn parse_params<P: serde::de::DeserializeOwned>(
    params: Option<&RawValue>,
) -> serde_json::Result<P> {
    serde_json::from_str(params.map_or("{}", RawValue::get))
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

#[cfg(test)]
mod tests {
    use exec_protocol::OutputStream;

    use super::*;

    /// A `process/output` text as exec-server writes it.
    fn server_text(process_id_json: &str, chunk: &str) -> String {
        format!(
            "{{\"jsonrpc\":\"2.0\",\"method\":\"process/output\",\"params\":{{\"chunk\":\"{chunk}\",\"processId\":{process_id_json},\"seq\":7,\"stream\":\"pty\"}}}}"
        )
    }

    #[test]
    fn the_fast_path_reads_what_the_typed_notification_reads() {
        for process_id_json in ["\"p1\"", "\"odd \\\"id\\\" \\\\ \\n ✓\""] {
            let text = server_text(process_id_json, "AP9oZWxsbwo=");
            let fast = OutputMessage::parse(&text).expect("the fast path takes it");
            let typed: ProcessOutputNotification =
                parse_params(Incoming::params_of(&text).as_deref()).expect("typed parse");
            assert_eq!(fast.params.chunk, typed.chunk.into_inner());
            assert_eq!(fast.params.process_id, typed.process_id.as_str());
            assert_eq!(fast.params.seq, typed.seq);
            assert_eq!(fast.params.stream, OutputStream::Pty);
        }
    }

    #[test]
    fn other_shapes_take_the_general_path() {
        // A request (with an id), another member order, bad base64.
        let with_id = "{\"jsonrpc\":\"2.0\",\"method\":\"process/output\",\"id\":1,\"params\":{\"chunk\":\"\",\"processId\":\"p\",\"seq\":1,\"stream\":\"stdout\"}}";
        let reordered = "{\"method\":\"process/output\",\"jsonrpc\":\"2.0\",\"params\":{\"chunk\":\"\",\"processId\":\"p\",\"seq\":1,\"stream\":\"stdout\"}}";
        let bad_base64 = server_text("\"p\"", "not base64!");
        for text in [with_id, reordered, bad_base64.as_str()] {
            assert!(OutputMessage::parse(text).is_none(), "{text}");
        }
    }

    impl Incoming<'_> {
        /// The raw params of a message, as the general path sees them.
        fn params_of(text: &str) -> Option<Box<RawValue>> {
            let message: Incoming<'_> = serde_json::from_str(text).expect("a message");
            message.params.map(RawValue::to_owned)
        }
    }
}
