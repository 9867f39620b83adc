//! The notification texts of process events: complete JSON-RPC 2.0
//! notification messages, the one place where a [`ProcessEvent`] becomes wire
//! text.
//!
//! `process/output` is the hot path (every chunk of every process), so its
//! text is written directly, the chunk base64-encoded straight into the
//! message. The rare `process/exited` and `process/closed` serialize their
//! typed params.

use std::fmt::Write as _;

use exec_protocol::{
    HTTP_REQUEST_BODY_DELTA_METHOD, HttpRequestBodyDeltaNotification, OutputStream,
    PROCESS_CLOSED_METHOD, PROCESS_EXITED_METHOD, PROCESS_OUTPUT_METHOD, ProcessOutputNotification,
};
use serde::Serialize;

use crate::process::ProcessEvent;

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

/// The notification text of `event` (one message, no trailing newline).
pub(crate) fn encode(event: &ProcessEvent) -> String {
    let text = match event {
        ProcessEvent::Output(output) => return output_text(output),
        ProcessEvent::Exited(params) => serde_json::to_string(&Envelope {
            jsonrpc: "2.0",
            method: PROCESS_EXITED_METHOD,
            params,
        }),
        ProcessEvent::Closed(params) => serde_json::to_string(&Envelope {
            jsonrpc: "2.0",
            method: PROCESS_CLOSED_METHOD,
            params,
        }),
    };
    // The params are plain structs of strings, numbers and enums, which
    // serde_json always serializes; the fallback only keeps this total.
    text.unwrap_or_else(|error| {
        tracing::error!(%error, "cannot serialize a process notification");
        String::new()
    })
}

/// The text of an `http/request/bodyDelta` notification (the encoder each
/// streamed body is given, see `http/body_stream.rs`).
pub(crate) fn encode_http_body_delta(delta: &HttpRequestBodyDeltaNotification) -> String {
    serde_json::to_string(&Envelope {
        jsonrpc: "2.0",
        method: HTTP_REQUEST_BODY_DELTA_METHOD,
        params: delta,
    })
    // A struct of strings, numbers and bytes always serializes; the
    // fallback only keeps this total.
    .unwrap_or_else(|error| {
        tracing::error!(%error, "cannot serialize an http/request/bodyDelta notification");
        String::new()
    })
}

/// The text of a `process/output` notification, with the members in the
/// order the typed [`ProcessOutputNotification`] serializes them.
fn output_text(output: &ProcessOutputNotification) -> String {
    const HEAD: &str = "{\"jsonrpc\":\"2.0\",\"method\":\"";
    const PARAMS: &str = "\",\"params\":{\"chunk\":\"";
    let bytes = &output.chunk.0;
    let process_id = output.process_id.as_str();
    let mut text = String::with_capacity(
        HEAD.len()
            + PROCESS_OUTPUT_METHOD.len()
            + PARAMS.len()
            + bytes.len().div_ceil(3) * 4
            + process_id.len() * 2
            + 64,
    );
    text.push_str(HEAD);
    text.push_str(PROCESS_OUTPUT_METHOD);
    text.push_str(PARAMS);
    base64_simd::STANDARD.encode_append(bytes, &mut text);
    text.push_str("\",\"processId\":");
    push_json_string(&mut text, process_id);
    // Writing into a String cannot fail.
    let _ = write!(
        text,
        ",\"seq\":{},\"stream\":\"{}\"}}}}",
        output.seq,
        stream_name(output.stream)
    );
    text
}

/// Appends `value` as a JSON string literal, quotes and escapes included.
fn push_json_string(text: &mut String, value: &str) {
    let plain = value
        .bytes()
        .all(|byte| byte >= 0x20 && byte != b'"' && byte != b'\\');
    if plain {
        text.push('"');
        text.push_str(value);
        text.push('"');
    } else {
        // Serializing a string cannot fail; the fallback only keeps this total.
        text.push_str(&serde_json::to_string(value).unwrap_or_else(|_| String::from("\"\"")));
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
    use exec_protocol::{
        Base64Bytes, ExitReason, ProcessClosedNotification, ProcessExitedNotification, ProcessId,
        Signal,
    };
    use pretty_assertions::assert_eq;
    use serde_json::{Value, json};

    use super::*;

    fn id(text: &str) -> ProcessId {
        text.parse().expect("valid process id")
    }

    #[test]
    fn output_text_matches_the_typed_notification() {
        let bytes = b"\x00\xffhello\n".to_vec();
        for process_id in [id("odd \"id\" \\ with\nescapes ✓"), id("plain-id")] {
            for stream in [
                OutputStream::Stdout,
                OutputStream::Stderr,
                OutputStream::Pty,
            ] {
                let typed = ProcessOutputNotification {
                    chunk: Base64Bytes(bytes.clone()),
                    process_id: process_id.clone(),
                    seq: 7,
                    stream,
                };
                let text = encode(&ProcessEvent::Output(typed.clone()));
                let expected = serde_json::to_string(&Envelope {
                    jsonrpc: "2.0",
                    method: PROCESS_OUTPUT_METHOD,
                    params: &typed,
                })
                .expect("serializes");
                assert_eq!(text, expected);
            }
        }
    }

    #[test]
    fn exited_and_closed_texts_are_notifications() {
        let exited = encode(&ProcessEvent::Exited(ProcessExitedNotification {
            exit_code: 137,
            process_id: id("p"),
            reason: ExitReason::Signaled,
            seq: 3,
            signal: Some(Signal::Kill),
        }));
        assert_eq!(
            serde_json::from_str::<Value>(&exited).expect("json"),
            json!({"jsonrpc": "2.0", "method": "process/exited", "params": {
                "exitCode": 137, "processId": "p", "reason": "signaled", "seq": 3, "signal": "kill"}})
        );
        let closed = encode(&ProcessEvent::Closed(ProcessClosedNotification {
            process_id: id("p"),
            seq: 4,
        }));
        assert_eq!(
            serde_json::from_str::<Value>(&closed).expect("json"),
            json!({"jsonrpc": "2.0", "method": "process/closed", "params": {"processId": "p", "seq": 4}})
        );
    }
}
