//! The texts of the notifications a process sends: complete JSON-RPC 2.0
//! notification messages, ready for the connection's outbox.
//!
//! `process/output` is the hot path (every chunk of every process), so its
//! text is written directly: the chunk is base64-encoded straight into the
//! message and the escaped `processId` is computed once per process. The rare
//! `process/exited` and `process/closed` serialize their typed params.

use std::fmt::Write as _;

use exec_protocol::{
    OutputStream, PROCESS_CLOSED_METHOD, PROCESS_EXITED_METHOD, PROCESS_OUTPUT_METHOD,
    ProcessClosedNotification, ProcessExitedNotification, ProcessId,
};
use serde::Serialize;

/// The JSON-RPC 2.0 notification envelope around typed params.
#[derive(Serialize)]
struct Envelope<'a, P> {
    /// Always `"2.0"`.
    jsonrpc: &'static str,
    /// The notification's method name.
    method: &'static str,
    /// The typed params.
    params: &'a P,
}

/// The text of a `process/exited` notification.
pub(crate) fn exited_text(params: &ProcessExitedNotification) -> serde_json::Result<String> {
    serde_json::to_string(&Envelope {
        jsonrpc: "2.0",
        method: PROCESS_EXITED_METHOD,
        params,
    })
}

/// The text of a `process/closed` notification.
pub(crate) fn closed_text(params: &ProcessClosedNotification) -> serde_json::Result<String> {
    serde_json::to_string(&Envelope {
        jsonrpc: "2.0",
        method: PROCESS_CLOSED_METHOD,
        params,
    })
}

/// Writes the `process/output` notifications of one process.
#[derive(Debug, Clone)]
pub(crate) struct OutputTexts {
    /// The process id as a JSON string literal, quotes and escapes included.
    process_id_json: String,
}

impl OutputTexts {
    /// The writer for `process_id`'s output.
    pub(crate) fn new(process_id: &ProcessId) -> Self {
        // Serializing a string cannot fail; the fallback only keeps this total.
        let process_id_json =
            serde_json::to_string(process_id.as_str()).unwrap_or_else(|_| String::from("\"\""));
        Self { process_id_json }
    }

    /// The text of the `process/output` notification for one chunk, with the
    /// members in the order the typed [`exec_protocol::ProcessOutputNotification`]
    /// serializes them.
    pub(crate) fn text(&self, seq: u64, stream: OutputStream, bytes: &[u8]) -> String {
        const HEAD: &str = "{\"jsonrpc\":\"2.0\",\"method\":\"";
        const PARAMS: &str = "\",\"params\":{\"chunk\":\"";
        let mut text = String::with_capacity(
            HEAD.len()
                + PROCESS_OUTPUT_METHOD.len()
                + PARAMS.len()
                + bytes.len().div_ceil(3) * 4
                + self.process_id_json.len()
                + 64,
        );
        text.push_str(HEAD);
        text.push_str(PROCESS_OUTPUT_METHOD);
        text.push_str(PARAMS);
        base64_simd::STANDARD.encode_append(bytes, &mut text);
        text.push_str("\",\"processId\":");
        text.push_str(&self.process_id_json);
        // Writing into a String cannot fail.
        let _ = write!(
            text,
            ",\"seq\":{seq},\"stream\":\"{}\"}}}}",
            stream_name(stream)
        );
        text
    }
}

/// The wire name of a stream.
fn stream_name(stream: OutputStream) -> &'static str {
    match stream {
        OutputStream::Stdout => "stdout",
        OutputStream::Stderr => "stderr",
        OutputStream::Pty => "pty",
    }
}

#[cfg(test)]
mod tests {
    use exec_protocol::{Base64Bytes, ExitReason, ProcessOutputNotification, Signal};
    use pretty_assertions::assert_eq;
    use serde_json::{Value, json};

    use super::*;

    fn id(text: &str) -> ProcessId {
        text.parse().expect("valid process id")
    }

    #[test]
    fn output_text_matches_the_typed_notification() {
        let process_id = id("odd \"id\" \\ with\nescapes ✓");
        let bytes = b"\x00\xffhello\n".to_vec();
        for stream in [
            OutputStream::Stdout,
            OutputStream::Stderr,
            OutputStream::Pty,
        ] {
            let text = OutputTexts::new(&process_id).text(7, stream, &bytes);
            let typed = ProcessOutputNotification {
                chunk: Base64Bytes(bytes.clone()),
                process_id: process_id.clone(),
                seq: 7,
                stream,
            };
            let expected = serde_json::to_string(&Envelope {
                jsonrpc: "2.0",
                method: PROCESS_OUTPUT_METHOD,
                params: &typed,
            })
            .expect("serializes");
            assert_eq!(text, expected);
        }
    }

    #[test]
    fn exited_and_closed_texts_are_notifications() {
        let exited = exited_text(&ProcessExitedNotification {
            exit_code: None,
            process_id: id("p"),
            reason: ExitReason::Signaled,
            seq: 3,
            signal: Some(Signal::Kill),
        })
        .expect("serializes");
        assert_eq!(
            serde_json::from_str::<Value>(&exited).expect("json"),
            json!({"jsonrpc": "2.0", "method": "process/exited", "params": {
                "exitCode": null, "processId": "p", "reason": "signaled", "seq": 3, "signal": "kill"}})
        );
        let closed = closed_text(&ProcessClosedNotification {
            process_id: id("p"),
            seq: 4,
        })
        .expect("serializes");
        assert_eq!(
            serde_json::from_str::<Value>(&closed).expect("json"),
            json!({"jsonrpc": "2.0", "method": "process/closed", "params": {"processId": "p", "seq": 4}})
        );
    }
}
