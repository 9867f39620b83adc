//! [`Router`]: the client's side of a session, across the transports that
//! carry it. It holds where messages to the server go now (the link), the
//! calls waiting for their answers, and the routes of the processes a
//! [`RemoteChild`](crate::RemoteChild) follows; one reader task per
//! transport feeds it ([`Router::run`]): a response by `id` to the call
//! waiting for it, a process notification by `processId` to that process's
//! child through a bounded channel.
//!
//! The link and the public [`ConnectionState`] change together, under one
//! lock: a call made while the connection is being resumed waits for it,
//! and a call registered on a link is answered on it, sent again on the
//! next one (see `calls`), or failed when the link drops.
//!
//! # Layout
//! - this file: the link, the routing tables, registering calls and routes,
//!   dropping, resuming and closing.
//! - `dispatch`: the reader loop and what each message from the server does.
//! - `calls`: the pending calls and which of them are sent again after a resume.
//! - `incoming`: the shapes of the server's messages, parsed once, with the
//!   one-pass `process/output` path.
//! - `route`: one process's route, and the back-pressure and lag policy of
//!   handing it events.
//! - `http_bodies`: where each streamed `http/request` body's deltas go.
//! - `received`: which events of a process were received, and when to
//!   acknowledge them with `process/ack`.

mod calls;
mod dispatch;
mod http_bodies;
mod incoming;
mod received;
mod route;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use exec_protocol::{ProcessAckNotification, ProcessId};
use tokio::sync::{mpsc, oneshot, watch};

use self::calls::PendingCalls;
use self::http_bodies::HttpBodies;
use self::received::Received;
use crate::error::ClientError;
use crate::state::{ClosedReason, ConnectionState};
use crate::sync::lock;
use crate::transport::link::Outgoing;

pub(crate) use self::calls::{CallResult, is_repeatable_call, is_repeatable_raw_call};
pub(crate) use self::route::{Route, RouteShared};

/// How one transport's reader loop ended.
#[derive(Debug)]
pub(crate) enum ReaderEnd {
    /// The transport ended: the server closed it, it failed, or the client
    /// closed it.
    Ended,
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

/// Where messages to the server go now.
#[derive(Debug)]
enum Link {
    /// Attached to the session: the sending end of its transport.
    Connected(Outgoing),
    /// The transport dropped; the supervisor is resuming the session.
    Reconnecting,
    /// The client asked to close: nothing new is sent, and the calls still
    /// waiting get their answers until the transport ends.
    Closing,
    /// Closed for good.
    Closed(ClosedReason),
}

/// The routing tables, behind one lock.
struct RouterState {
    /// Where messages go.
    link: Link,
    /// Calls waiting for their response.
    calls: PendingCalls,
    /// Processes followed by a live `RemoteChild`, by `processId`.
    routes: HashMap<String, Route>,
    /// The received output of processes no child follows, by `processId`,
    /// acknowledged as it arrives (nobody reads it back), so that they run
    /// as they would without `acknowledgeOutput`.
    unfollowed: HashMap<String, Received>,
}

/// The client's side of a session: link, pending calls and process routes.
pub(crate) struct Router {
    /// The tables.
    state: Mutex<RouterState>,
    /// See [`ConnectOptions::output_stall_timeout`](crate::ConnectOptions::output_stall_timeout).
    stall_timeout: Duration,
    /// The public state; changed under `state`'s lock so that it always
    /// agrees with the link.
    connection_state: watch::Sender<ConnectionState>,
    /// Set once the client asks to close, for a supervisor that is resuming.
    close_requested: watch::Sender<bool>,
    /// Output bytes after which a process is acknowledged: a quarter of the
    /// server's `retainedOutputBytesPerProcess`. 0 while the session does not
    /// acknowledge output.
    ack_threshold: AtomicU64,
    /// Acknowledgements for the supervisor to send (never awaited by the
    /// reader, which must not wait on the writer).
    acks: mpsc::UnboundedSender<ProcessAckNotification>,
    /// The streamed `http/request` bodies being received.
    http_bodies: HttpBodies,
}

impl Router {
    /// A router attached through `outgoing`, with no calls and no routes,
    /// and the receiving end of its acknowledgements.
    pub(crate) fn new(
        stall_timeout: Duration,
        outgoing: Outgoing,
    ) -> (Self, mpsc::UnboundedReceiver<ProcessAckNotification>) {
        let (acks, ack_queue) = mpsc::unbounded_channel();
        let router = Self {
            state: Mutex::new(RouterState {
                link: Link::Connected(outgoing),
                calls: PendingCalls::new(),
                routes: HashMap::new(),
                unfollowed: HashMap::new(),
            }),
            stall_timeout,
            connection_state: watch::Sender::new(ConnectionState::Connected),
            close_requested: watch::Sender::new(false),
            ack_threshold: AtomicU64::new(0),
            acks,
            http_bodies: HttpBodies::default(),
        };
        (router, ack_queue)
    }

    /// The streamed `http/request` bodies being received.
    pub(crate) fn http_bodies(&self) -> &HttpBodies {
        &self.http_bodies
    }

    /// The connection state, as a watch receiver.
    pub(crate) fn state(&self) -> watch::Receiver<ConnectionState> {
        self.connection_state.subscribe()
    }

    /// A receiver that sees `true` once the client asked to close.
    pub(crate) fn close_requested(&self) -> watch::Receiver<bool> {
        self.close_requested.subscribe()
    }

    /// The error a call gets once the connection is closed.
    pub(crate) fn closed_error(&self) -> ClientError {
        match &lock(&self.state).link {
            Link::Closed(reason) => closed_error(reason),
            _ => ClientError::TransportClosed,
        }
    }

    /// A fresh request id.
    pub(crate) fn reserve_id(&self) -> u64 {
        lock(&self.state).calls.reserve_id()
    }

    /// Registers the call `id` (from [`Self::reserve_id`]) and returns the
    /// link to send it on and where its answer will arrive. While the
    /// connection is being resumed, waits for the resume. `resend` is the
    /// request text of a call that is sent again after a later drop.
    ///
    /// # Errors
    /// [`ClientError::TransportClosed`] once the client asked to close; the
    /// closed error once the connection is closed.
    pub(crate) async fn register_call(
        &self,
        id: u64,
        method: &str,
        resend: Option<String>,
    ) -> Result<(Outgoing, oneshot::Receiver<CallResult>), ClientError> {
        let mut resend = resend;
        loop {
            let mut changes = {
                let mut guard = lock(&self.state);
                let state = &mut *guard;
                match &state.link {
                    Link::Connected(sender) => {
                        let receiver = state.calls.insert(id, method, resend.take());
                        return Ok((sender.clone(), receiver));
                    }
                    Link::Reconnecting => self.connection_state.subscribe(),
                    Link::Closing => return Err(ClientError::TransportClosed),
                    Link::Closed(reason) => return Err(closed_error(reason)),
                }
            };
            wait_while_reconnecting(&mut changes).await;
        }
    }

    /// Registers the `initialize` of a resume, which goes out on the new
    /// transport before the link is attached to it.
    pub(crate) fn register_handshake(
        &self,
        id: u64,
        method: &str,
    ) -> oneshot::Receiver<CallResult> {
        lock(&self.state).calls.insert(id, method, None)
    }

    /// Forgets a call that stopped waiting; its late response is ignored.
    pub(crate) fn forget_call(&self, id: u64) {
        lock(&self.state).calls.forget(id);
    }

    /// The link to send a notification on, waiting for a resume in progress.
    ///
    /// # Errors
    /// As [`Self::register_call`].
    pub(crate) async fn sender(&self) -> Result<Outgoing, ClientError> {
        loop {
            let mut changes = {
                let state = lock(&self.state);
                match &state.link {
                    Link::Connected(sender) => return Ok(sender.clone()),
                    Link::Reconnecting => self.connection_state.subscribe(),
                    Link::Closing => return Err(ClientError::TransportClosed),
                    Link::Closed(reason) => return Err(closed_error(reason)),
                }
            };
            wait_while_reconnecting(&mut changes).await;
        }
    }

    /// The link, if attached now (for the supervisor, which must not wait
    /// for a resume it is itself in charge of).
    pub(crate) fn sender_now(&self) -> Option<Outgoing> {
        match &lock(&self.state).link {
            Link::Connected(sender) => Some(sender.clone()),
            _ => None,
        }
    }

    /// Whether the connection is closed for good.
    pub(crate) fn is_closed(&self) -> bool {
        matches!(lock(&self.state).link, Link::Closed(_))
    }

    /// Whether the client asked to close.
    pub(crate) fn is_closing(&self) -> bool {
        *self.close_requested.borrow()
    }

    /// Starts routing `process_id`'s notifications to `route`.
    ///
    /// # Errors
    /// [`ClientError::InvalidInput`] when a live `RemoteChild` of this client
    /// already follows that id; the closed error once the connection is closed.
    pub(crate) fn register_route(&self, process_id: &str, route: Route) -> Result<(), ClientError> {
        let mut state = lock(&self.state);
        if let Link::Closed(reason) = &state.link {
            return Err(closed_error(reason));
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

    /// The client asks to close: nothing new is sent, the transport closes
    /// once its sending end is dropped here, and a resume in progress stops.
    pub(crate) fn request_close(&self) {
        let mut state = lock(&self.state);
        if matches!(state.link, Link::Connected(_) | Link::Reconnecting) {
            // Dropping the sender lets the transport close once it has
            // written what is queued.
            state.link = Link::Closing;
        }
        self.close_requested.send_replace(true);
    }

    /// The transport dropped and the session can be resumed: calls that
    /// cannot be sent again fail with [`ClientError::ConnectionLost`], and
    /// new calls wait. `false` when the client asked to close or the
    /// connection is closed: there is nothing to resume for.
    pub(crate) fn begin_reconnect(&self) -> bool {
        let failed = {
            let mut state = lock(&self.state);
            if !matches!(state.link, Link::Connected(_)) {
                return false;
            }
            state.link = Link::Reconnecting;
            let failed = state.calls.fail_unrepeatable();
            // The server aborts the body streams of the connection that dropped.
            self.http_bodies.clear();
            self.connection_state
                .send_replace(ConnectionState::Reconnecting { attempt: 1 });
            failed
        };
        failed.deliver();
        true
    }

    /// Reports the reconnect attempt under way.
    pub(crate) fn set_attempt(&self, attempt: u32) {
        let state = lock(&self.state);
        if matches!(state.link, Link::Reconnecting) {
            self.connection_state
                .send_replace(ConnectionState::Reconnecting { attempt });
        }
    }

    /// The session was resumed on the transport `outgoing` sends to: the
    /// link is attached to it, every followed process is told to read back
    /// what was lost in flight, every process is acknowledged again up to
    /// what was received (the last acknowledgement may have been lost in
    /// flight, and the server stops a process whose unacknowledged output
    /// fills its retention), and the texts of the calls to send again are
    /// returned, in id order. `None` when the client asked to close meanwhile.
    pub(crate) fn resume(&self, outgoing: Outgoing) -> Option<Vec<String>> {
        let mut acks = Vec::new();
        let resend = {
            let mut guard = lock(&self.state);
            let state = &mut *guard;
            if !matches!(state.link, Link::Reconnecting) {
                return None;
            }
            state.link = Link::Connected(outgoing);
            for (process_id, route) in &state.routes {
                route.note_resume();
                let mut received = lock(&route.shared().received);
                received.resumed();
                acks.extend(received.flush().map(|seq| (process_id.clone(), seq)));
            }
            for (process_id, received) in &mut state.unfollowed {
                received.resumed();
                acks.extend(received.flush().map(|seq| (process_id.clone(), seq)));
            }
            self.connection_state
                .send_replace(ConnectionState::Connected);
            state.calls.resend_texts()
        };
        if self.ack_threshold.load(Ordering::Relaxed) > 0 {
            for (process_id, seq) in acks {
                if let Ok(process_id) = ProcessId::try_from(process_id) {
                    self.queue_ack(process_id, seq);
                }
            }
        }
        Some(resend)
    }

    /// Closes for good: every waiting call fails, every route is dropped
    /// (each child's channel then reports the close). The first reason sticks.
    pub(crate) fn close_with(&self, reason: ClosedReason) {
        let (failed, routes) = {
            let mut state = lock(&self.state);
            if matches!(state.link, Link::Closed(_)) {
                return;
            }
            let failed = state.calls.fail_all(|| closed_error(&reason));
            state.link = Link::Closed(reason.clone());
            state.unfollowed.clear();
            self.http_bodies.clear();
            self.connection_state
                .send_replace(ConnectionState::Closed(reason));
            (failed, std::mem::take(&mut state.routes))
        };
        failed.deliver();
        for (_, route) in routes {
            route.wake();
        }
    }

    /// Acknowledges output from now on: a process once `threshold` bytes
    /// arrived since its last acknowledgement (at least 1).
    pub(crate) fn acknowledge_output(&self, threshold: u64) {
        self.ack_threshold
            .store(threshold.max(1), Ordering::Relaxed);
    }

    /// After a child's read after `after_seq` that covered every seq up to
    /// `covered` with `bytes` bytes of output: acknowledges what the
    /// process's child has received, if anything new.
    pub(crate) fn acknowledge_read(
        &self,
        process_id: &ProcessId,
        shared: &RouteShared,
        after_seq: u64,
        covered: u64,
        bytes: u64,
    ) {
        if self.ack_threshold.load(Ordering::Relaxed) == 0 {
            return;
        }
        let due = {
            let mut received = lock(&shared.received);
            received.read(after_seq, covered, bytes);
            received.flush()
        };
        if let Some(seq) = due {
            self.queue_ack(process_id.clone(), seq);
        }
    }

    /// Hands an acknowledgement to the supervisor, which sends it.
    fn queue_ack(&self, process_id: ProcessId, seq: u64) {
        let _ = self.acks.send(ProcessAckNotification { process_id, seq });
    }
}

/// Waits until the state is no longer `Reconnecting` (the link changed).
async fn wait_while_reconnecting(changes: &mut watch::Receiver<ConnectionState>) {
    // An error means the router is gone, and the caller's next look at the
    // link says what to do.
    let _ = changes
        .wait_for(|state| !matches!(state, ConnectionState::Reconnecting { .. }))
        .await;
}

/// The error for a connection closed for `reason`.
fn closed_error(reason: &ClosedReason) -> ClientError {
    match reason {
        ClosedReason::ProtocolViolation(violation) => ClientError::Protocol(violation.clone()),
        &ClosedReason::IncomingMessageTooLarge { bytes, limit } => {
            ClientError::IncomingMessageTooLarge { bytes, limit }
        }
        _ => ClientError::TransportClosed,
    }
}
