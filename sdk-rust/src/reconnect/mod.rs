//! [`Supervisor`]: the one task that watches a session's transports. It
//! awaits each transport's reader, sends the acknowledgements the router
//! queues, and decides what an ended transport means: closed for good (the
//! client closed it, the server broke the protocol, another connection
//! resumed the session with close code 4000, or the session cannot be
//! resumed), or a drop, after which it resumes the session on a new
//! WebSocket connection.
//!
//! # A resume
//! After a drop the router fails the calls that cannot be repeated and
//! holds new ones. The supervisor then waits [`Backoff`]'s delay (100 ms
//! doubling to 2 s by default) and dials the same URL with the same token,
//! sends `initialize {resumeSessionId, acknowledgeOutput: true}` and
//! `initialized`, attaches the router's link to the new transport (which
//! tells every followed process to read back what was lost in flight), and
//! sends again the pending `process/start` and `process/write` calls. It
//! gives up when the session's TTL (or the configured maximum) has passed
//! since the drop, and stops at once on `unknownSession` (the session is
//! gone) or when the client closes.
//!
//! # Layout
//! - this file: the supervisor's loop, the verdict on an ended transport,
//!   and one resume attempt.
//! - `backoff`: the delays between attempts and when to give up.

mod backoff;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use exec_protocol::{
    ErrorKind, INITIALIZE_METHOD, INITIALIZED_METHOD, InitializeResponse, InitializedNotification,
    PROCESS_ACK_METHOD, ProcessAckNotification,
};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use self::backoff::{Backoff, give_up_after};
use crate::error::ClientError;
use crate::handshake::{check_version, initialize_params};
use crate::message::{notification_text, request_text};
use crate::options::ConnectOptions;
use crate::router::{ReaderEnd, Router};
use crate::state::ClosedReason;
use crate::transport::limit::IncomingLimit;
use crate::transport::link::Outgoing;
use crate::transport::socket::CloseCode;
use crate::transport::websocket::limited_websocket_transport;

/// The WebSocket close code of a connection whose session another
/// connection resumed.
const RESUMED_ELSEWHERE_CLOSE_CODE: u16 = 4000;

/// What the first `initialize` said about the session, for a resume.
#[derive(Debug, Clone)]
pub(crate) struct SessionTerms {
    /// The id to resume.
    pub(crate) session_id: String,
    /// How long the server keeps the session after a drop (`limits.sessionTtlMs`).
    pub(crate) ttl: Duration,
}

/// The supervisor of one session's transports.
pub(crate) struct Supervisor {
    /// The session's router.
    pub(crate) router: Arc<Router>,
    /// The cap on incoming messages, shared by every transport.
    pub(crate) limit: Arc<IncomingLimit>,
    /// The options, for dialling and the handshake.
    pub(crate) options: ConnectOptions,
    /// The WebSocket URL to dial after a drop; `None` when the session is
    /// not resumed (not a WebSocket, or reconnect disabled).
    pub(crate) redial: Option<String>,
    /// The session, once the first `initialize` said it.
    pub(crate) session: Arc<OnceLock<SessionTerms>>,
}

/// What an ended transport means.
#[derive(Debug)]
enum Verdict {
    /// Closed for good.
    Close(ClosedReason),
    /// A drop: resume, giving up after this long.
    Resume {
        /// The URL to dial.
        url: String,
        /// The session to resume.
        terms: SessionTerms,
        /// How long to keep trying.
        give_up: Duration,
    },
}

/// Why one resume attempt did not resume.
#[derive(Debug)]
enum AttemptFailure {
    /// Worth another attempt (the server could not be reached, the new
    /// transport dropped, the answer took too long).
    Retry(String),
    /// The session cannot be resumed.
    Final(ClosedReason),
}

impl Supervisor {
    /// Runs until the session is closed for good: awaits the current
    /// transport's `reader`, sending acknowledgements meanwhile, and resumes
    /// after each drop. `close_code` is where the current WebSocket records
    /// the server's close frame.
    pub(crate) async fn run(
        self,
        mut reader: JoinHandle<ReaderEnd>,
        mut close_code: Option<Arc<CloseCode>>,
        mut acks: mpsc::UnboundedReceiver<ProcessAckNotification>,
    ) {
        loop {
            let end = loop {
                tokio::select! {
                    end = &mut reader => break end.unwrap_or(ReaderEnd::Ended),
                    Some(ack) = acks.recv() => self.send_ack(&ack).await,
                }
            };
            let code = close_code.as_ref().and_then(|code| code.get());
            let (url, terms, give_up) = match self.verdict(end, code) {
                Verdict::Close(reason) => {
                    self.router.close_with(reason);
                    return;
                }
                Verdict::Resume {
                    url,
                    terms,
                    give_up,
                } => (url, terms, give_up),
            };
            if !self.router.begin_reconnect() {
                self.router.close_with(ClosedReason::ClientClosed);
                return;
            }
            tracing::info!(session_id = %terms.session_id, "the connection dropped; resuming the session");
            match self.reconnect(&url, &terms, give_up).await {
                Ok((next_reader, next_close_code)) => {
                    reader = next_reader;
                    close_code = Some(next_close_code);
                }
                Err(reason) => {
                    // A client closed while it was resuming lost nothing it
                    // still wanted: not worth a warning (which `exec` would
                    // print on the command's stderr).
                    if matches!(reason, ClosedReason::ClientClosed) {
                        tracing::debug!("the client closed while its session was being resumed");
                    } else {
                        tracing::warn!(%reason, "the session could not be resumed");
                    }
                    self.router.close_with(reason);
                    return;
                }
            }
        }
    }

    /// What a transport that ended with `end` (and the server's close code
    /// `code`, if it sent a close frame) means.
    fn verdict(&self, end: ReaderEnd, code: Option<u16>) -> Verdict {
        let ended = match end {
            ReaderEnd::Violation(violation) => ClosedReason::ProtocolViolation(violation),
            ReaderEnd::IncomingTooLarge { bytes, limit } => {
                ClosedReason::IncomingMessageTooLarge { bytes, limit }
            }
            ReaderEnd::Ended if self.router.is_closing() => ClosedReason::ClientClosed,
            ReaderEnd::Ended if code == Some(RESUMED_ELSEWHERE_CLOSE_CODE) => {
                ClosedReason::ResumedElsewhere
            }
            ReaderEnd::Ended => {
                let terms = self.session.get();
                let give_up = terms
                    .and_then(|terms| give_up_after(terms.ttl, self.options.reconnect_max_elapsed));
                return match (&self.redial, terms, give_up) {
                    (Some(url), Some(terms), Some(give_up)) => Verdict::Resume {
                        url: url.clone(),
                        terms: terms.clone(),
                        give_up,
                    },
                    _ => Verdict::Close(ClosedReason::ConnectionLost),
                };
            }
        };
        Verdict::Close(ended)
    }

    /// Sends one acknowledgement on the link, if it is attached. One lost
    /// to a drop is made good by the next (they are cumulative) and by the
    /// one after each read that follows a resume.
    async fn send_ack(&self, ack: &ProcessAckNotification) {
        let Some(sender) = self.router.sender_now() else {
            tracing::debug!(process_id = %*ack.process_id, seq = ack.seq, "an acknowledgement waits for no link; dropped");
            return;
        };
        tracing::debug!(process_id = %*ack.process_id, seq = ack.seq, "acknowledging");
        match notification_text(PROCESS_ACK_METHOD, ack) {
            Ok(text) => {
                let _ = sender.send(text).await;
            }
            Err(error) => tracing::warn!(%error, "an acknowledgement does not serialize"),
        }
    }

    /// Resumes the session `terms` at `url`, attempt after attempt, until
    /// `give_up` has passed. Returns the new transport's reader and close
    /// code record.
    async fn reconnect(
        &self,
        url: &str,
        terms: &SessionTerms,
        give_up: Duration,
    ) -> Result<(JoinHandle<ReaderEnd>, Arc<CloseCode>), ClosedReason> {
        let deadline = Instant::now() + give_up;
        let mut backoff = Backoff::new(
            self.options.reconnect_initial_delay,
            self.options.reconnect_max_delay,
        );
        let mut close_requested = self.router.close_requested();
        let mut attempts = 0;
        loop {
            // The first attempt goes at once: most drops are a cut
            // connection, and the server is still there.
            let delay = if attempts == 0 {
                Duration::ZERO
            } else {
                backoff.next_delay()
            };
            if Instant::now() + delay >= deadline {
                return Err(ClosedReason::GaveUp { attempts });
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = wait_for_close(&mut close_requested) => return Err(ClosedReason::ClientClosed),
            }
            attempts += 1;
            self.router.set_attempt(attempts);
            let outcome = tokio::select! {
                outcome = self.attempt(url, terms, deadline) => outcome,
                () = wait_for_close(&mut close_requested) => return Err(ClosedReason::ClientClosed),
            };
            match outcome {
                Ok(resumed) => {
                    tracing::info!(attempts, "the session was resumed");
                    return Ok(resumed);
                }
                Err(AttemptFailure::Retry(why)) => {
                    tracing::debug!(attempts, %why, "a reconnect attempt failed");
                }
                Err(AttemptFailure::Final(reason)) => return Err(reason),
            }
        }
    }

    /// One attempt: dial, resume, attach, send the pending calls again.
    async fn attempt(
        &self,
        url: &str,
        terms: &SessionTerms,
        deadline: Instant,
    ) -> Result<(JoinHandle<ReaderEnd>, Arc<CloseCode>), AttemptFailure> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let (link, close_code) = limited_websocket_transport(
            url,
            self.options.token.as_deref(),
            self.options.ca_file.as_deref(),
            self.options.connect_timeout.min(remaining),
            self.limit.clone(),
        )
        .await
        .map_err(|error| AttemptFailure::Retry(error.to_string()))?;
        let outgoing = link.outgoing;
        let mut reader = tokio::spawn(self.router.clone().run(link.incoming, self.limit.clone()));
        if let Err(failure) = self
            .handshake(&outgoing, &mut reader, terms, deadline)
            .await
        {
            reader.abort();
            return Err(failure);
        }
        let Some(resend) = self.router.resume(outgoing.clone()) else {
            reader.abort();
            return Err(AttemptFailure::Final(ClosedReason::ClientClosed));
        };
        for text in resend {
            // A failure means this transport dropped too: the next resume
            // sends them again.
            if outgoing.send(text).await.is_err() {
                break;
            }
        }
        Ok((reader, close_code))
    }

    /// `initialize {resumeSessionId, acknowledgeOutput}` and `initialized`
    /// on a new transport, whose reader is `reader`.
    async fn handshake(
        &self,
        outgoing: &Outgoing,
        reader: &mut JoinHandle<ReaderEnd>,
        terms: &SessionTerms,
        deadline: Instant,
    ) -> Result<(), AttemptFailure> {
        let params = initialize_params(&self.options, Some(terms.session_id.clone()), true, true);
        let id = self.router.reserve_id();
        let text = request_text(id, INITIALIZE_METHOD, &params).map_err(|error| {
            AttemptFailure::Final(ClosedReason::ResumeRefused(error.to_string()))
        })?;
        let answer = self.router.register_handshake(id, INITIALIZE_METHOD);
        let outcome = async {
            outgoing
                .send(text)
                .await
                .map_err(|_| AttemptFailure::Retry(String::from("the new connection closed")))?;
            let patience = self
                .options
                .initialize_timeout
                .min(deadline.saturating_duration_since(Instant::now()));
            tokio::select! {
                answer = answer => answer.map_err(|_| AttemptFailure::Retry(String::from("no answer to initialize"))),
                _ = &mut *reader => Err(AttemptFailure::Retry(String::from("the new connection closed during the handshake"))),
                () = tokio::time::sleep(patience) => Err(AttemptFailure::Retry(String::from("the initialize answer took too long"))),
            }
        }
        .await;
        self.router.forget_call(id);
        let response = resumed_session(outcome?, terms)?;
        tracing::debug!(session_id = %response.session_id, "resumed");
        let initialized = notification_text(INITIALIZED_METHOD, &InitializedNotification {})
            .map_err(|error| {
                AttemptFailure::Final(ClosedReason::ResumeRefused(error.to_string()))
            })?;
        outgoing
            .send(initialized)
            .await
            .map_err(|_| AttemptFailure::Retry(String::from("the new connection closed")))?;
        Ok(())
    }
}

/// The answer to a resume's `initialize`, checked: the same session, the
/// same protocol version.
fn resumed_session(
    answer: Result<Box<serde_json::value::RawValue>, ClientError>,
    terms: &SessionTerms,
) -> Result<InitializeResponse, AttemptFailure> {
    let raw = match answer {
        Ok(raw) => raw,
        Err(error) if error.kind() == Some(ErrorKind::UnknownSession) => {
            return Err(AttemptFailure::Final(ClosedReason::SessionExpired));
        }
        Err(ClientError::Server { message, .. }) => {
            return Err(AttemptFailure::Final(ClosedReason::ResumeRefused(message)));
        }
        Err(error) => return Err(AttemptFailure::Retry(error.to_string())),
    };
    let response: InitializeResponse = serde_json::from_str(raw.get()).map_err(|error| {
        AttemptFailure::Final(ClosedReason::ResumeRefused(format!(
            "the initialize result does not match the schema: {error}"
        )))
    })?;
    check_version(&response)
        .map_err(|error| AttemptFailure::Final(ClosedReason::ResumeRefused(error.to_string())))?;
    if response.session_id != terms.session_id {
        return Err(AttemptFailure::Final(ClosedReason::ResumeRefused(format!(
            "the server resumed session `{}` instead of `{}`",
            response.session_id, terms.session_id
        ))));
    }
    Ok(response)
}

/// Resolves once the client asked to close.
async fn wait_for_close(close_requested: &mut watch::Receiver<bool>) {
    if close_requested.wait_for(|closing| *closing).await.is_err() {
        // The router is gone, so nobody waits for this session any more.
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use serde_json::value::RawValue;

    use super::*;

    fn supervisor(redial: Option<&str>, ttl: Option<Duration>) -> Supervisor {
        let (outgoing, _) = mpsc::channel(1);
        let (router, _acks) = Router::new(Duration::from_secs(1), Outgoing::Channel(outgoing));
        let session = Arc::new(OnceLock::new());
        if let Some(ttl) = ttl {
            let _ = session.set(SessionTerms {
                session_id: String::from("s1"),
                ttl,
            });
        }
        Supervisor {
            router: Arc::new(router),
            limit: Arc::new(IncomingLimit::new(1024)),
            options: ConnectOptions::default(),
            redial: redial.map(String::from),
            session,
        }
    }

    fn closed(verdict: Verdict) -> ClosedReason {
        match verdict {
            Verdict::Close(reason) => reason,
            other => panic!("expected a close, got {other:?}"),
        }
    }

    #[test]
    fn a_drop_is_resumed_only_when_the_session_can_be() {
        let ttl = Some(Duration::from_secs(30));
        let resumable = supervisor(Some("ws://server"), ttl);
        match resumable.verdict(ReaderEnd::Ended, None) {
            Verdict::Resume { url, give_up, .. } => {
                assert_eq!(
                    (url.as_str(), give_up),
                    ("ws://server", Duration::from_secs(30))
                );
            }
            other => panic!("expected a resume, got {other:?}"),
        }
        assert_eq!(
            closed(resumable.verdict(ReaderEnd::Ended, Some(4000))),
            ClosedReason::ResumedElsewhere
        );
        assert_eq!(
            closed(resumable.verdict(ReaderEnd::Violation(String::from("bad")), None)),
            ClosedReason::ProtocolViolation(String::from("bad"))
        );
        assert_eq!(
            closed(supervisor(None, ttl).verdict(ReaderEnd::Ended, None)),
            ClosedReason::ConnectionLost
        );
        assert_eq!(
            closed(
                supervisor(Some("ws://server"), Some(Duration::ZERO))
                    .verdict(ReaderEnd::Ended, None)
            ),
            ClosedReason::ConnectionLost
        );
        // Dropped before the first `initialize` answered: nothing to resume.
        assert_eq!(
            closed(supervisor(Some("ws://server"), None).verdict(ReaderEnd::Ended, None)),
            ClosedReason::ConnectionLost
        );
        resumable.router.request_close();
        assert_eq!(
            closed(resumable.verdict(ReaderEnd::Ended, None)),
            ClosedReason::ClientClosed
        );
    }

    fn answer(session_id: &str) -> Result<Box<RawValue>, ClientError> {
        let result = serde_json::json!({
            "protocolVersion": exec_protocol::PROTOCOL_VERSION,
            "sessionId": session_id,
            "serverInfo": {"name": "exec-server", "version": "0"},
            "platform": {"os": "linux", "arch": "x86_64"},
            "limits": {"maxMessageBytes": 1, "maxProcessesPerConnection": 1,
                "retainedOutputBytesPerProcess": 1, "sessionTtlMs": 1}
        });
        Ok(RawValue::from_string(result.to_string()).expect("JSON"))
    }

    #[test]
    fn the_answer_to_a_resume_decides_between_retry_and_close() {
        let terms = SessionTerms {
            session_id: String::from("s1"),
            ttl: Duration::from_secs(30),
        };
        assert!(resumed_session(answer("s1"), &terms).is_ok());
        let unknown = ClientError::from_wire(
            -32602,
            String::from("no such session"),
            Some(serde_json::json!({"kind": "unknownSession"})),
        );
        assert!(matches!(
            resumed_session(Err(unknown), &terms),
            Err(AttemptFailure::Final(ClosedReason::SessionExpired))
        ));
        let refused = ClientError::from_wire(-32603, String::from("odd"), None);
        assert!(matches!(
            resumed_session(Err(refused), &terms),
            Err(AttemptFailure::Final(ClosedReason::ResumeRefused(message))) if message == "odd"
        ));
        assert!(matches!(
            resumed_session(Err(ClientError::TransportClosed), &terms),
            Err(AttemptFailure::Retry(_))
        ));
        assert!(matches!(
            resumed_session(answer("s2"), &terms),
            Err(AttemptFailure::Final(ClosedReason::ResumeRefused(_)))
        ));
    }
}
