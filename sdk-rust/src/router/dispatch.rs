//! The reader loop of one transport ([`Router::run`]) and what each message
//! from the server does: a response goes to its call, a process
//! notification to its child (a binary output frame is decoded into the
//! same `process/output` path), and the output that was handed over counts
//! towards the process's next `process/ack`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use exec_protocol::{
    HttpRequestBodyDeltaNotification, OutputStream, ProcessClosedNotification,
    ProcessExitedNotification, ProcessId, ProcessOutputNotification, read_process_output_head,
};
use serde_json::value::RawValue;

use super::calls::Answered;
use super::incoming::{Incoming, OutputMessage, OutputParams, excerpt, parse_params};
use super::{ReaderEnd, Router};
use crate::error::ClientError;
use crate::process::output::{OutputBytes, RemoteExitStatus};
use crate::process::sequence::Event;
use crate::sync::lock;
use crate::transport::Inbound;
use crate::transport::limit::IncomingLimit;
use crate::transport::link::Incoming as TransportIncoming;

/// The shortest chunk delivered as a slice of its frame rather than a copy,
/// in bytes. A frame's payload shares tokio-tungstenite's receive buffer
/// (32 KiB, or the frame's size for a larger frame), which stays allocated
/// while any slice of it lives: a kept 6-byte keystroke echo would hold the
/// whole buffer. Chunks this long (bulk output; the server sends at most
/// 64 KiB per chunk) hold at most about twice their size, and skip a copy
/// where it costs the most.
const SHARED_CHUNK_MIN_BYTES: usize = 32 * 1024;

/// The chunk of `frame`, which starts at `offset`: a slice of the frame
/// when it is long, a copy of its own when short (see
/// [`SHARED_CHUNK_MIN_BYTES`]). Empty when `offset` is past the end.
fn chunk_of(frame: &Bytes, offset: usize) -> Bytes {
    let Some(chunk) = frame.get(offset..) else {
        return Bytes::new();
    };
    if chunk.len() >= SHARED_CHUNK_MIN_BYTES {
        frame.slice(offset..)
    } else {
        Bytes::copy_from_slice(chunk)
    }
}

impl Router {
    /// The reader loop of one transport: routes every incoming message until
    /// the transport ends or the server breaks the protocol, and says which.
    /// The transport records in `limit` when it ended over a message too
    /// large. What happens next (resume or close) is the supervisor's call.
    pub(crate) async fn run(
        self: Arc<Self>,
        mut incoming: TransportIncoming,
        limit: Arc<IncomingLimit>,
    ) -> ReaderEnd {
        while let Some(message) = incoming.next().await {
            let handled = match message {
                Inbound::Text(text) => self.handle_message(&text).await,
                Inbound::Binary(bytes) => self.handle_binary(bytes).await,
            };
            if let Err(violation) = handled {
                tracing::error!(%violation, "the server broke the protocol; closing the connection");
                return ReaderEnd::Violation(violation);
            }
        }
        // The transport records a breach before it drops its sender, so it
        // is visible once the channel has reported its end.
        match limit.exceeded() {
            Some((bytes, limit)) => ReaderEnd::IncomingTooLarge { bytes, limit },
            None => ReaderEnd::Ended,
        }
    }

    /// Routes one binary message: UTF-8 JSON when it starts as a JSON
    /// object does (`{`, which the schema keeps from being a frame kind
    /// code), else a binary output frame, whose chunk is delivered as a
    /// slice of the frame when it is at least [`SHARED_CHUNK_MIN_BYTES`]
    /// long, else as a copy. `Err` is a violation that closes the
    /// connection: a frame that does not decode (unknown kind, too short,
    /// bad lengths).
    async fn handle_binary(&self, bytes: Bytes) -> Result<(), String> {
        if bytes.first() == Some(&b'{') {
            let text = std::str::from_utf8(&bytes).map_err(|_| {
                String::from(
                    "the server sent a binary message that starts as JSON but is not UTF-8",
                )
            })?;
            return self.handle_message(text).await;
        }
        let head = read_process_output_head(&bytes).map_err(|error| {
            format!("the server sent a binary frame this client cannot read: {error}")
        })?;
        let chunk = chunk_of(&bytes, head.chunk_offset);
        self.deliver_output(&head.process_id, head.seq, head.stream, chunk)
            .await;
        Ok(())
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
            self.deliver_output(&process_id, seq, stream, Bytes::from(chunk))
                .await;
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
                // The protocol defines no server-to-client requests; nothing
                // waits on an answer that matters to this client.
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
        // The lock is released before the caller is woken.
        let claim = lock(&self.state).calls.claim(id);
        match claim.deliver(outcome) {
            Answered::Delivered => {}
            Answered::Late => tracing::debug!(id, "a response to a call that stopped waiting"),
            Answered::Unknown => {
                return Err(format!(
                    "a response to id {id}, which no request of this client had"
                ));
            }
        }
        Ok(())
    }

    /// Hands an event to the process's route, if a `RemoteChild` follows
    /// it, and counts it towards the process's next acknowledgement.
    async fn deliver(&self, process_id: &str, event: Event) {
        let threshold = self.ack_threshold.load(Ordering::Relaxed);
        let seq = event.seq();
        let bytes = match &event {
            Event::Output(chunk) => chunk.bytes.len() as u64,
            _ => 0,
        };
        let route = lock(&self.state).routes.get(process_id).cloned();
        let due = match route {
            Some(route) => {
                let handed = route.deliver(event, self.stall_timeout).await;
                if !handed || threshold == 0 {
                    return;
                }
                let mut received = lock(&route.shared().received);
                received.event(seq, bytes);
                received.due(threshold)
            }
            None => {
                tracing::trace!(process_id, "an event for a process no RemoteChild follows");
                if threshold == 0 {
                    return;
                }
                let mut state = lock(&self.state);
                if matches!(event, Event::Closed { .. }) {
                    state.unfollowed.remove(process_id);
                    return;
                }
                let received = state.unfollowed.entry(process_id.to_owned()).or_default();
                received.skip_to(seq, bytes);
                received.due(threshold)
            }
        };
        if let Some(seq) = due
            && let Ok(process_id) = ProcessId::try_from(process_id.to_owned())
        {
            self.queue_ack(process_id, seq);
        }
    }

    /// `process/output`: a chunk for the process's child.
    async fn process_output(&self, params: ProcessOutputNotification) {
        let chunk = Bytes::from(params.chunk.into_inner());
        self.deliver_output(&params.process_id, params.seq, params.stream, chunk)
            .await;
    }

    /// Delivers one output chunk, however it arrived (a binary frame, the
    /// fast path for text, a generic `process/output`), to the process's
    /// child.
    async fn deliver_output(&self, process_id: &str, seq: u64, stream: OutputStream, bytes: Bytes) {
        let chunk = OutputBytes { seq, stream, bytes };
        self.deliver(process_id, Event::Output(chunk)).await;
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

    /// `http/request/bodyDelta`: the next piece of a streamed body, for its reader.
    async fn http_request_body_delta(&self, params: HttpRequestBodyDeltaNotification) {
        self.http_bodies.deliver(params).await;
    }

    /// `process/closed`: the process's last event.
    async fn process_closed(&self, params: ProcessClosedNotification) {
        self.deliver(&params.process_id, Event::Closed { seq: params.seq })
            .await;
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

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::sync::Mutex;
    use std::task::{Context, Wake, Waker};
    use std::time::Duration;

    use tokio::sync::{mpsc, oneshot};

    use super::*;
    use crate::router::calls::CallResult;
    use crate::transport::link::Outgoing;

    /// A waker that records whether the router's lock was free when it was
    /// woken.
    struct LockProbe {
        router: Arc<Router>,
        free_at_wake: Mutex<Option<bool>>,
    }

    impl Wake for LockProbe {
        fn wake(self: Arc<Self>) {
            let free = self.router.state.try_lock().is_ok();
            *lock(&self.free_at_wake) = Some(free);
        }
    }

    /// A router with one call waiting (a `process/list` that cannot be
    /// sent again), polled once with a waker that records whether the
    /// router's lock was free when it was woken.
    async fn waiting_call() -> (
        Arc<Router>,
        u64,
        oneshot::Receiver<CallResult>,
        Arc<LockProbe>,
    ) {
        let (outgoing, _sent) = mpsc::channel(1);
        let (router, _acks) = Router::new(Duration::from_secs(1), Outgoing::Channel(outgoing));
        let router = Arc::new(router);
        let id = router.reserve_id();
        let (_link, mut answer) = router
            .register_call(id, "process/list", None)
            .await
            .expect("registered");
        let probe = Arc::new(LockProbe {
            router: router.clone(),
            free_at_wake: Mutex::new(None),
        });
        let waker = Waker::from(probe.clone());
        let polled = Pin::new(&mut answer).poll(&mut Context::from_waker(&waker));
        assert!(polled.is_pending(), "no response yet");
        (router, id, answer, probe)
    }

    #[tokio::test]
    async fn a_caller_is_woken_after_the_router_let_go_of_its_lock() {
        // The woken caller takes the lock at once for its next call; woken
        // under it, it would sleep again on the lock (three more futex calls
        // per round trip, measured).
        let (router, id, answer, probe) = waiting_call().await;
        router
            .handle_message(&format!(
                r#"{{"jsonrpc":"2.0","id":{id},"result":{{"processes":[]}}}}"#
            ))
            .await
            .expect("a valid response");
        assert_eq!(*lock(&probe.free_at_wake), Some(true));
        let result = answer.await.expect("delivered").expect("a result");
        assert_eq!(result.get(), r#"{"processes":[]}"#);
    }

    #[tokio::test]
    async fn callers_failed_by_a_drop_or_a_close_are_woken_after_the_lock_too() {
        let (router, _, answer, probe) = waiting_call().await;
        assert!(router.begin_reconnect());
        assert_eq!(*lock(&probe.free_at_wake), Some(true));
        assert!(matches!(
            answer.await.expect("told"),
            Err(ClientError::ConnectionLost { method }) if method == "process/list"
        ));

        let (router, _, answer, probe) = waiting_call().await;
        router.close_with(crate::state::ClosedReason::ClientClosed);
        assert_eq!(*lock(&probe.free_at_wake), Some(true));
        assert!(answer.await.expect("told").is_err());
    }

    #[test]
    fn a_long_chunk_shares_its_frame_and_a_short_one_is_copied() {
        let long = Bytes::from(vec![7u8; 10 + SHARED_CHUNK_MIN_BYTES]);
        let chunk = chunk_of(&long, 10);
        assert_eq!(chunk.len(), SHARED_CHUNK_MIN_BYTES);
        assert_eq!(chunk.as_ptr(), long[10..].as_ptr(), "a slice, not a copy");

        let short = Bytes::from(b"head:abc".to_vec());
        let chunk = chunk_of(&short, 5);
        assert_eq!(&chunk[..], b"abc");
        assert_ne!(chunk.as_ptr(), short[5..].as_ptr(), "a copy of its own");

        assert!(chunk_of(&short, 8).is_empty());
        assert!(
            chunk_of(&short, 9).is_empty(),
            "past the end: empty, no panic"
        );
    }
}
