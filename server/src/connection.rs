//! [`Connection`]: one client's link to the server, whatever its transport.
//! It hands each incoming message to the JSON-RPC layer, bounds the
//! requests in flight, queues responses, and is attached to the session
//! that its `initialize` created; [`Outgoing`] is its writer's side, which
//! merges responses and the session's process events into one ordered stream.
//!
//! Ordering rule: a process's output never overtakes its `process/start`
//! response. The response is queued first and only then is the process
//! announced (the handler's after-queued action), so every event of it is
//! queued after the response; [`Outgoing`] sends an event only after the
//! responses that were queued when it took the event, so the response goes
//! out first (and later responses cannot hold output back).
//!
//! The writer holds the session's event queue (locked) while attached. When
//! the connection goes and the session stays (detached, or resumed by
//! another connection), the queue is let go of at once, with the events in
//! it, for the next connection's writer to lock.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use jsonrpsee::core::middleware::RpcServiceT as _;
use jsonrpsee::core::server::MethodResponseNotifyTx;
use jsonrpsee::types::Id;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{Notify, OwnedMutexGuard, OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use crate::config::ServerConfig;
use crate::rpc::{self, BinaryOutput, ConnectionService, Incoming, MessageText, MethodContext};
use crate::session::{Departure, EventQueue};
use crate::sync::lock;
use crate::wire_message::WireMessage;

/// The session's event queue, held by the attached connection's writer.
type HeldEvents = OwnedMutexGuard<mpsc::Receiver<WireMessage>>;

/// Waiting for the previous connection's writer to let go of the queue.
type Locking = Pin<Box<dyn Future<Output = HeldEvents> + Send>>;

/// One client connection.
pub(crate) struct Connection {
    /// The lifecycle and the attached session.
    context: Arc<MethodContext>,
    /// The RPC service that answers requests.
    service: ConnectionService,
    /// Responses (and error responses) for the writer.
    responses: mpsc::Sender<String>,
    /// A response answered on the reader's own poll, for the writer.
    answered: Arc<AnsweredInline>,
    /// Bounds the requests handled at once (see [`ServerConfig::max_requests_in_flight`]).
    in_flight: Arc<Semaphore>,
}

impl Connection {
    /// A new connection and the writer's side of it.
    pub(crate) fn new(config: Arc<ServerConfig>) -> (Self, Outgoing) {
        let (responses, queued) = mpsc::channel(config.outbox_capacity.max(1));
        let (attach, attached) = oneshot::channel();
        let in_flight = Arc::new(Semaphore::new(config.max_requests_in_flight.max(1)));
        let context = Arc::new(MethodContext::new(config, attach, responses.clone()));
        let service = rpc::connection_service(context.clone());
        let answered = Arc::new(AnsweredInline::default());
        let connection = Self {
            context,
            service,
            responses,
            answered: answered.clone(),
            in_flight,
        };
        let outgoing = Outgoing {
            answered,
            responses: queued,
            responses_done: false,
            attach: Some(attached),
            locking: None,
            events: None,
            held: None,
        };
        (connection, outgoing)
    }

    /// Handles one incoming message (a stdio line or a WebSocket frame).
    ///
    /// Once the connection is initialized, requests run concurrently and
    /// this returns once the request is under way, waiting only while too
    /// many are in flight. A small request of a method that never blocks
    /// before it waits (`rpc::starts_inline`) is started right here and,
    /// when it needs no waiting, answered before this returns, saving the
    /// hand-off to a task and back; whatever it waits for (a long poll, a
    /// full pipe, the fs pool) moves the rest of it to a task of its own, so
    /// the next message is never held up by it. Other requests get a task
    /// from the start. Before the connection is initialized (`initialize`)
    /// the request is answered before this returns, so an `initialized` sent
    /// right behind it finds the connection initializing. Errors in the
    /// message itself are answered with a JSON-RPC error object and never
    /// end the connection.
    pub(crate) async fn handle_message(&self, text: MessageText) {
        match rpc::parse(text.as_str(), self.context.config.max_message_bytes) {
            Incoming::Ignored => {}
            Incoming::Refused(response) => self.queue(response).await,
            Incoming::Notification(notification) => {
                let _ = self.service.notification(notification).await;
            }
            Incoming::Request { request, echoed_id } => {
                let Ok(permit) = self.in_flight.clone().acquire_owned().await else {
                    return;
                };
                let inline = rpc::starts_inline(request.method_name(), text.as_str().len());
                // The params stay in the message, which the method lets go
                // of once it parsed them (see `rpc::owned_request`).
                let request = rpc::owned_request(request, &text);
                drop(text);
                let service = self.service.clone();
                let answer = async move {
                    let response = service.call(request).await;
                    let (json, on_queued, _extensions) = response.into_parts();
                    let mut text = Box::<str>::from(json).into_string();
                    if let Some(echoed_id) = echoed_id {
                        echoed_id.restore(&mut text);
                    }
                    Answer { text, on_queued }
                };
                let delivery = Delivery {
                    responses: self.responses.clone(),
                    _permit: permit,
                };
                if !self.context.is_ready() {
                    delivery.send(answer.await).await;
                } else if inline {
                    start_inline(answer, delivery, &self.answered);
                } else {
                    tokio::spawn(async move { delivery.send(answer.await).await });
                }
            }
        }
    }

    /// Answers a message the transport could not even hand over (not UTF-8,
    /// too long) with a JSON-RPC error object whose id is null.
    pub(crate) async fn reply_error(&self, code: i32, message: &str) {
        self.queue(rpc::error_response(Id::Null, code, message))
            .await;
    }

    async fn queue(&self, text: String) {
        // The writer is gone if this fails; the connection is ending anyway.
        let _ = self.responses.send(text).await;
    }

    /// Whether the connection can carry, and was granted, binary output
    /// frames: its transport offers them, `initialize` grants them, the
    /// writer reads the grant.
    pub(crate) fn binary_output(&self) -> &Arc<BinaryOutput> {
        self.context.binary_output()
    }

    /// Notified when another connection resumed this one's session.
    pub(crate) fn superseded(&self) -> Arc<Notify> {
        self.context.superseded().clone()
    }

    /// The connection ended: closes its file handles, aborts its streamed
    /// `http/request` bodies and detaches its session, which then ends at
    /// once (its processes killed) when the TTL is zero. Says what became of
    /// the session.
    pub(crate) async fn close(&self) -> Departure {
        self.context.file_handles().close_all();
        self.context.http_streams().abort_all();
        match self.context.attachment() {
            Some((session, generation)) => {
                tracing::debug!(session = session.id(), "detaching the session");
                session.detach(*generation).await
            }
            None => Departure::Ended,
        }
    }
}

/// A response the reader answered within its own poll
/// ([`start_inline`]), left for the writer without a channel: the writer
/// runs in the same task and is polled right after the reader
/// (`transport::serve_connection`), so no wake-up of the task that is
/// already running (which would reschedule it and wake another worker
/// thread) is needed. Holds one response; another one, while it waits,
/// takes the responses channel.
#[derive(Debug, Default)]
struct AnsweredInline(Mutex<Option<String>>);

impl AnsweredInline {
    /// Leaves `text` for the writer, or gives it back when one waits.
    fn offer(&self, text: String) -> Result<(), String> {
        let mut slot = lock(&self.0);
        if slot.is_some() {
            return Err(text);
        }
        *slot = Some(text);
        Ok(())
    }

    /// The waiting response, if any.
    fn take(&self) -> Option<String> {
        lock(&self.0).take()
    }
}

/// A request's response text and the handler's after-queued action.
struct Answer {
    /// The response, its id as the client wrote it.
    text: String,
    /// Told once the response is queued (whether it was); a
    /// `process/start` announces its process then.
    on_queued: Option<MethodResponseNotifyTx>,
}

/// How a request's answer reaches the writer, and its place among the
/// requests in flight, given back once it is queued.
struct Delivery {
    /// The responses channel.
    responses: mpsc::Sender<String>,
    /// The request's place in flight.
    _permit: OwnedSemaphorePermit,
}

impl Delivery {
    /// Queues the answer (waiting while the channel is full), then runs its
    /// after-queued action.
    async fn send(self, answer: Answer) {
        let queued = self.responses.send(answer.text).await.is_ok();
        Self::after_queued(answer.on_queued, queued);
    }

    fn after_queued(on_queued: Option<MethodResponseNotifyTx>, queued: bool) {
        if let Some(on_queued) = on_queued {
            on_queued.notify(queued);
        }
    }
}

/// The writer's side of a connection: responses and, once attached, the
/// session's process events, as messages in the order they must go out.
pub(crate) struct Outgoing {
    /// The response the reader answered in its own poll; sent before
    /// anything else.
    answered: Arc<AnsweredInline>,
    /// Queued responses.
    responses: mpsc::Receiver<String>,
    /// True once `responses` is closed and drained.
    responses_done: bool,
    /// Receives the event queue of the session `initialize` attached.
    attach: Option<oneshot::Receiver<EventQueue>>,
    /// Locking the event queue while an earlier connection's writer lets go of it.
    locking: Option<Locking>,
    /// The attached session's events.
    events: Option<HeldEvents>,
    /// An event taken from `events`, and how many responses were queued
    /// when it was taken: those go out first (a `process/start` response is
    /// always among them for its process's first event), later ones after it.
    held: Option<(WireMessage, usize)>,
}

impl Outgoing {
    /// The next text to send; `None` once [`Self::stop`] was called and
    /// everything queued is out. Cancel-safe: nothing is taken from a queue
    /// without being returned or held.
    pub(crate) async fn next(&mut self) -> Option<WireMessage> {
        loop {
            if let Some(message) = self.try_next() {
                return Some(message);
            }
            tokio::select! {
                biased;
                // Never registers a waker: the reader fills it in the same
                // pass of the connection's task, just before the writer is
                // polled (see `AnsweredInline`). Nothing fills it once the
                // responses are done (the connection is gone).
                answered = std::future::poll_fn(|_| self.answered.take().map_or(Poll::Pending, Poll::Ready)), if !self.responses_done => {
                    return Some(WireMessage::Text(answered));
                }
                response = self.responses.recv(), if !self.responses_done => match response {
                    Some(response) => return Some(WireMessage::Text(response)),
                    None => self.responses_done = true,
                },
                event = next_event(&mut self.events), if self.events.is_some() => match event {
                    // Held, so that the next round sends the responses queued before it first.
                    Some(event) => self.held = Some((event, self.responses.len())),
                    None => self.events = None,
                },
                events = lock_events(&mut self.locking), if self.locking.is_some() => {
                    self.locking = None;
                    self.events = Some(events);
                },
                else => return None,
            }
        }
    }

    /// The next text that is ready without waiting. Responses and events
    /// take turns: an event waits only for the responses queued before it
    /// was taken, so neither stream can hold the other back for long.
    pub(crate) fn try_next(&mut self) -> Option<WireMessage> {
        if let Some(answered) = self.answered.take() {
            return Some(WireMessage::Text(answered));
        }
        if self.held.is_none() {
            self.try_attach();
            if let Some(events) = &mut self.events {
                match events.try_recv() {
                    Ok(event) => self.held = Some((event, self.responses.len())),
                    Err(TryRecvError::Empty) => {}
                    Err(TryRecvError::Disconnected) => self.events = None,
                }
            }
        }
        if let Some((event, ahead)) = self.held.take() {
            if ahead > 0
                && let Some(response) = self.try_response()
            {
                self.held = Some((event, ahead - 1));
                return Some(WireMessage::Text(response));
            }
            return Some(event);
        }
        self.try_response().map(WireMessage::Text)
    }

    /// Takes the session's event queue once `initialize` attached one. No
    /// waiting for it is needed: `initialize` attaches before its response
    /// is queued, and that response wakes the writer. The queue is locked
    /// at once unless the writer of the connection this one superseded
    /// still holds it; then [`Self::next`] waits for it.
    fn try_attach(&mut self) {
        let Some(attach) = &mut self.attach else {
            return;
        };
        match attach.try_recv() {
            Ok(queue) => {
                self.attach = None;
                match queue.clone().try_lock_owned() {
                    Ok(events) => self.events = Some(events),
                    Err(_) => self.locking = Some(Box::pin(queue.lock_owned())),
                }
            }
            Err(oneshot::error::TryRecvError::Empty) => {}
            Err(oneshot::error::TryRecvError::Closed) => self.attach = None,
        }
    }

    fn try_response(&mut self) -> Option<String> {
        match self.responses.try_recv() {
            Ok(response) => Some(response),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => {
                self.responses_done = true;
                None
            }
        }
    }

    /// The connection is closing: nothing more is accepted, the queued
    /// responses still come out of [`Self::next`], then it returns `None`.
    /// With `drain_events` (the session ended) so do the queued events;
    /// without (the session lives on), the event queue is let go of at once,
    /// its events left for the next connection.
    pub(crate) fn stop(&mut self, drain_events: bool) {
        self.responses.close();
        if drain_events {
            if let Some(events) = &mut self.events {
                events.close();
            }
        } else {
            self.events = None;
        }
        self.attach = None;
        self.locking = None;
    }
}

/// Polls `answer` once on the calling task (the connection's reader) and,
/// when it is done, leaves it for the writer in `answered`
/// ([`AnsweredInline`]; through the channel when one already waits there);
/// when it is not done (it waits for something), hands the rest of it to a
/// task of its own.
///
/// The first poll uses a waker that does nothing: the task polls the
/// answer again as soon as it starts, which registers the task's own waker
/// with whatever the answer waits for, so no wake-up is lost.
fn start_inline(
    answer: impl Future<Output = Answer> + Send + 'static,
    delivery: Delivery,
    answered: &AnsweredInline,
) {
    let mut answer = Box::pin(answer);
    let mut context = Context::from_waker(Waker::noop());
    match answer.as_mut().poll(&mut context) {
        Poll::Ready(Answer { text, on_queued }) => match answered.offer(text) {
            Ok(()) => Delivery::after_queued(on_queued, true),
            Err(text) => {
                tokio::spawn(delivery.send(Answer { text, on_queued }));
            }
        },
        Poll::Pending => {
            tokio::spawn(async move { delivery.send(answer.await).await });
        }
    }
}

/// The next event; only polled while `events` is `Some`.
async fn next_event(events: &mut Option<HeldEvents>) -> Option<WireMessage> {
    match events {
        Some(events) => events.recv().await,
        None => std::future::pending().await,
    }
}

/// The locked event queue; only polled while `locking` is `Some`.
async fn lock_events(locking: &mut Option<Locking>) -> HeldEvents {
    match locking {
        Some(locking) => locking.await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use exec_protocol::{ProcessClosedNotification, ProcessId};
    use pretty_assertions::assert_eq;

    use super::*;
    use crate::process::ProcessEvent;
    use crate::session::Session;

    /// An `Outgoing` already attached to an event queue, with both senders.
    fn outgoing() -> (Outgoing, mpsc::Sender<String>, mpsc::Sender<WireMessage>) {
        let (responses, queued) = mpsc::channel(8);
        let (events, received) = mpsc::channel(8);
        let outgoing = Outgoing {
            answered: Arc::default(),
            responses: queued,
            responses_done: false,
            attach: None,
            locking: None,
            events: Some(
                Arc::new(tokio::sync::Mutex::new(received))
                    .try_lock_owned()
                    .expect("a new lock is free"),
            ),
            held: None,
        };
        (outgoing, responses, events)
    }

    fn closed(seq: u64) -> WireMessage {
        let process_id: ProcessId = "p".parse().expect("a process id");
        rpc::encode(
            &ProcessEvent::Closed(ProcessClosedNotification { process_id, seq }),
            false,
        )
    }

    /// The text of a message (all of these tests' messages are text).
    fn text_of(message: Option<WireMessage>) -> Option<String> {
        match message? {
            WireMessage::Text(text) => Some(text),
            WireMessage::Binary(frame) => panic!("a binary frame: {frame:?}"),
        }
    }

    fn method_of(message: &WireMessage) -> String {
        let text = text_of(Some(message.clone())).unwrap_or_default();
        let message: serde_json::Value = serde_json::from_str(&text).expect("json");
        message["method"]
            .as_str()
            .map_or_else(|| String::from("response"), str::to_owned)
    }

    #[tokio::test]
    async fn a_queued_response_goes_before_an_event() {
        let (mut outgoing, responses, events) = outgoing();
        events.send(closed(1)).await.expect("queued");
        responses
            .send(String::from("{\"id\":1}"))
            .await
            .expect("queued");
        let first = outgoing.next().await.expect("a text");
        let second = outgoing.next().await.expect("a text");
        assert_eq!(
            [method_of(&first), method_of(&second)],
            [String::from("response"), String::from("process/closed")]
        );
    }

    #[tokio::test]
    async fn an_event_waits_only_for_the_responses_queued_before_it() {
        let (mut outgoing, responses, events) = outgoing();
        events.send(closed(1)).await.expect("queued");
        responses
            .send(String::from("{\"id\":1}"))
            .await
            .expect("queued");
        // The event is taken with one response ahead of it.
        assert_eq!(text_of(outgoing.try_next()).as_deref(), Some("{\"id\":1}"));
        // A response queued after the event was taken goes after it, so a
        // stream of responses cannot hold output back.
        responses
            .send(String::from("{\"id\":2}"))
            .await
            .expect("queued");
        let event = outgoing.try_next().expect("the held event");
        assert_eq!(method_of(&event), "process/closed");
        assert_eq!(text_of(outgoing.try_next()).as_deref(), Some("{\"id\":2}"));
        assert_eq!(text_of(outgoing.try_next()), None);
    }

    #[tokio::test]
    async fn events_follow_the_responses_queued_when_they_were_taken() {
        let (mut outgoing, responses, events) = outgoing();
        for seq in 1..=3 {
            events.send(closed(seq)).await.expect("queued");
            responses
                .send(format!("{{\"id\":{seq}}}"))
                .await
                .expect("queued");
        }
        let mut order = Vec::new();
        while let Some(text) = outgoing.try_next() {
            order.push(method_of(&text));
        }
        // The first event is taken with all three responses ahead of it; the
        // others find none.
        assert_eq!(
            order,
            [
                "response",
                "response",
                "response",
                "process/closed",
                "process/closed",
                "process/closed"
            ]
        );
    }

    #[tokio::test]
    async fn stop_drains_what_is_queued_then_ends() {
        let (mut outgoing, responses, events) = outgoing();
        responses
            .send(String::from("{\"id\":1}"))
            .await
            .expect("queued");
        events.send(closed(1)).await.expect("queued");
        outgoing.stop(true);
        assert!(responses.send(String::from("{\"id\":2}")).await.is_err());
        assert!(events.send(closed(2)).await.is_err());
        let mut drained = Vec::new();
        while let Some(text) = outgoing.next().await {
            drained.push(method_of(&text));
        }
        assert_eq!(drained, ["response", "process/closed"]);
    }

    #[tokio::test]
    async fn events_flow_once_the_session_is_attached() {
        let config = Arc::new(ServerConfig::default());
        let (connection, mut outgoing) = Connection::new(config.clone());
        let session = Session::new(&config, rpc::ENCODER);
        let generation = session
            .attach(connection.superseded(), false, false)
            .expect("a new session");
        connection.context.attach(session.clone(), generation);
        assert_eq!(text_of(outgoing.try_next()), None);
        assert!(
            session.event_queue().try_lock().is_err(),
            "the connection holds the queue"
        );
        connection.queue(String::from("{\"id\":9}")).await;
        assert_eq!(
            text_of(outgoing.next().await).as_deref(),
            Some("{\"id\":9}")
        );
    }

    #[tokio::test]
    async fn a_writer_that_stops_without_draining_lets_go_of_the_events() {
        let config = Arc::new(ServerConfig::default());
        let session = Session::new(&config, rpc::ENCODER);
        let (first, mut first_outgoing) = Connection::new(config.clone());
        let generation = session
            .attach(first.superseded(), false, false)
            .expect("a new session");
        first.context.attach(session.clone(), generation);
        assert_eq!(text_of(first_outgoing.try_next()), None);
        // A second connection resumes the session: the first is told.
        let (second, mut second_outgoing) = Connection::new(config.clone());
        let superseded = first.superseded();
        let resumed = session
            .attach(second.superseded(), false, false)
            .expect("a live session");
        second.context.attach(session.clone(), resumed);
        superseded.notified().await;
        assert_eq!(first.close().await, Departure::Superseded);
        // The second writer waits for the queue until the first lets go.
        assert_eq!(text_of(second_outgoing.try_next()), None);
        let locking = second_outgoing
            .locking
            .as_mut()
            .expect("the first writer holds the queue");
        assert!(futures_util::FutureExt::now_or_never(locking).is_none());
        first_outgoing.stop(false);
        let events = lock_events(&mut second_outgoing.locking).await;
        drop(events);
    }
}
