//! [`PendingCalls`]: the calls waiting for their response, by request id,
//! and what becomes of them when the connection drops.
//!
//! A call that is safe to send twice (`process/start`, which a resumed
//! session answers with the original result when the params are identical,
//! and `process/write` with a `writeId`, which the server applies once)
//! keeps its request text: after a resume it is sent again on the new
//! connection, and its caller never hears of the drop. Every other call
//! fails at the drop with [`ClientError::ConnectionLost`]: it may or may not
//! have run.

use std::any::Any;
use std::collections::BTreeMap;

use exec_protocol::{ProcessStart, ProcessWrite, ProcessWriteParams, Request};
use serde_json::value::RawValue;
use tokio::sync::oneshot;

use crate::error::ClientError;

/// What a waiting call receives: the raw `result`, or the error.
pub(crate) type CallResult = Result<Box<RawValue>, ClientError>;

/// Whether request `M` with `params` is safe to send again after a resume:
/// `process/start` always (a resumed session answers a repeated start with
/// the original result), `process/write` when it carries a `writeId`.
pub(crate) fn is_repeatable_call<M: Request>(params: &M::Params) -> bool {
    if M::METHOD == ProcessStart::METHOD {
        return true;
    }
    M::METHOD == ProcessWrite::METHOD
        && (params as &dyn Any)
            .downcast_ref::<ProcessWriteParams>()
            .is_some_and(|params| params.write_id.is_some())
}

/// [`is_repeatable_call`] for a request sent by name with untyped params.
pub(crate) fn is_repeatable_raw_call(method: &str, params: &serde_json::Value) -> bool {
    method == ProcessStart::METHOD
        || (method == ProcessWrite::METHOD
            && params
                .get("writeId")
                .is_some_and(|write_id| !write_id.is_null()))
}

/// One call waiting for its response.
#[derive(Debug)]
struct PendingCall {
    /// The method, for [`ClientError::ConnectionLost`].
    method: String,
    /// The request as sent, for a call that is sent again after a resume.
    resend: Option<String>,
    /// Where the response goes.
    waiting: oneshot::Sender<CallResult>,
}

/// The calls waiting for their response, by request id, in id order (the
/// order they are sent again in).
#[derive(Debug)]
pub(crate) struct PendingCalls {
    /// The id the next call gets. Ids below it that are not pending belong
    /// to calls that were answered or gave up waiting (a timeout, a dropped
    /// future).
    next_id: u64,
    /// The calls.
    calls: BTreeMap<u64, PendingCall>,
}

/// Where a response goes, found under the router's lock and delivered
/// after it is released ([`Claim::deliver`]): the woken caller takes that
/// lock again at once (for its next call), and would otherwise wait for it.
/// The waiting call, or why there is none ([`Answered::Late`] or
/// [`Answered::Unknown`]).
#[derive(Debug)]
pub(crate) struct Claim(Result<oneshot::Sender<CallResult>, Answered>);

/// What became of a response.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Answered {
    /// It went to its call.
    Delivered,
    /// Its call had stopped waiting.
    Late,
    /// No call of this client ever had this id: a protocol violation.
    Unknown,
}

impl Claim {
    /// Hands `outcome` to the waiting call, if any.
    pub(crate) fn deliver(self, outcome: CallResult) -> Answered {
        match self.0 {
            Ok(waiting) => {
                // A caller that stopped waiting just now drops the answer.
                let _ = waiting.send(outcome);
                Answered::Delivered
            }
            Err(answered) => answered,
        }
    }
}

impl PendingCalls {
    /// No calls; ids start at 1.
    pub(crate) fn new() -> Self {
        Self {
            next_id: 1,
            calls: BTreeMap::new(),
        }
    }

    /// A fresh request id.
    pub(crate) fn reserve_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Adds a call with an id from [`Self::reserve_id`]; `resend` is its
    /// request text when it is safe to send again after a resume.
    pub(crate) fn insert(
        &mut self,
        id: u64,
        method: &str,
        resend: Option<String>,
    ) -> oneshot::Receiver<CallResult> {
        let (waiting, receiver) = oneshot::channel();
        self.calls.insert(
            id,
            PendingCall {
                method: method.to_owned(),
                resend,
                waiting,
            },
        );
        receiver
    }

    /// Forgets a call that stopped waiting; its late response is ignored.
    pub(crate) fn forget(&mut self, id: u64) {
        self.calls.remove(&id);
    }

    /// Takes the call waiting for the response `id`; deliver to it with
    /// [`Claim::deliver`] once the lock on these calls is released.
    pub(crate) fn claim(&mut self, id: u64) -> Claim {
        Claim(match self.calls.remove(&id) {
            Some(call) => Ok(call.waiting),
            None if id < self.next_id => Err(Answered::Late),
            None => Err(Answered::Unknown),
        })
    }

    /// The connection dropped: every call that cannot be sent again fails
    /// with [`ClientError::ConnectionLost`] (delivered with
    /// [`FailedCalls::deliver`] once the lock is released); the others stay.
    pub(crate) fn fail_unrepeatable(&mut self) -> FailedCalls {
        let (unrepeatable, repeatable): (BTreeMap<_, _>, BTreeMap<_, _>) =
            std::mem::take(&mut self.calls)
                .into_iter()
                .partition(|(_, call)| call.resend.is_none());
        self.calls = repeatable;
        FailedCalls(
            unrepeatable
                .into_values()
                .map(|call| {
                    let error = ClientError::ConnectionLost {
                        method: call.method,
                    };
                    (call.waiting, error)
                })
                .collect(),
        )
    }

    /// The request texts to send again on a resumed connection, in id order.
    pub(crate) fn resend_texts(&self) -> Vec<String> {
        self.calls
            .values()
            .filter_map(|call| call.resend.clone())
            .collect()
    }

    /// The connection is closed for good: every call fails with `error()`
    /// (delivered with [`FailedCalls::deliver`] once the lock is released).
    pub(crate) fn fail_all(&mut self, error: impl Fn() -> ClientError) -> FailedCalls {
        FailedCalls(
            std::mem::take(&mut self.calls)
                .into_values()
                .map(|call| (call.waiting, error()))
                .collect(),
        )
    }
}

/// Calls that failed, taken out under the router's lock and told after it
/// is released (as a response is, see [`Claim`]).
#[must_use = "the failed calls wait until they are delivered"]
#[derive(Debug)]
pub(crate) struct FailedCalls(Vec<(oneshot::Sender<CallResult>, ClientError)>);

impl FailedCalls {
    /// Tells each call its error.
    pub(crate) fn deliver(self) {
        for (waiting, error) in self.0 {
            let _ = waiting.send(Err(error));
        }
    }
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;

    use super::*;

    fn result(text: &str) -> CallResult {
        Ok(RawValue::from_string(text.to_owned()).expect("JSON"))
    }

    #[test]
    fn starts_and_identified_writes_are_repeatable() {
        use exec_protocol::{Base64Bytes, ProcessList};
        use serde_json::json;

        let write = |write_id: Option<&str>| ProcessWriteParams {
            chunk: Base64Bytes(b"x".to_vec()),
            process_id: String::from("p").try_into().expect("id"),
            write_id: write_id.map(String::from),
        };
        assert!(is_repeatable_call::<ProcessWrite>(&write(Some("p:1"))));
        assert!(!is_repeatable_call::<ProcessWrite>(&write(None)));
        assert!(!is_repeatable_call::<ProcessList>(
            &exec_protocol::ProcessListParams {}
        ));
        assert!(is_repeatable_raw_call("process/start", &json!({})));
        assert!(is_repeatable_raw_call(
            "process/write",
            &json!({"writeId": "w"})
        ));
        assert!(!is_repeatable_raw_call(
            "process/write",
            &json!({"writeId": null})
        ));
        assert!(!is_repeatable_raw_call("process/read", &json!({})));
    }

    #[test]
    fn responses_go_to_their_calls_and_strangers_are_told_apart() {
        let mut calls = PendingCalls::new();
        let first = calls.reserve_id();
        let mut waiting = calls.insert(first, "process/list", None);
        let second = calls.reserve_id();
        calls.insert(second, "process/list", None);
        calls.forget(second);
        assert_eq!(calls.claim(first).deliver(result("1")), Answered::Delivered);
        assert_eq!(
            waiting.try_recv().expect("answered").expect("ok").get(),
            "1"
        );
        assert_eq!(calls.claim(second).deliver(result("2")), Answered::Late);
        assert_eq!(calls.claim(99).deliver(result("3")), Answered::Unknown);
    }

    #[test]
    fn a_drop_fails_what_cannot_be_repeated_and_keeps_the_rest_in_order() {
        let mut calls = PendingCalls::new();
        let read = calls.reserve_id();
        let mut read_waiting = calls.insert(read, "process/read", None);
        let start = calls.reserve_id();
        let mut start_waiting = calls.insert(start, "process/start", Some("start".into()));
        let write = calls.reserve_id();
        calls.insert(write, "process/write", Some("write".into()));
        calls.fail_unrepeatable().deliver();
        match read_waiting.try_recv() {
            Ok(Err(ClientError::ConnectionLost { method })) => assert_eq!(method, "process/read"),
            other => panic!("expected ConnectionLost, got {other:?}"),
        }
        assert!(start_waiting.try_recv().is_err(), "still waiting");
        assert_eq!(calls.resend_texts(), ["start", "write"]);
        // The resent start is answered on the new connection.
        assert_eq!(
            calls.claim(start).deliver(result("{}")),
            Answered::Delivered
        );
        assert_eq!(calls.resend_texts(), ["write"]);
        calls.fail_all(|| ClientError::TransportClosed).deliver();
        assert_eq!(calls.resend_texts(), Vec::<String>::new());
    }
}
