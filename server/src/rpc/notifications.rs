//! The notification texts of process events: complete JSON-RPC 2.0
//! notification messages, the one place where a [`ProcessEvent`] becomes a
//! wire message.
//!
//! `process/output` is the hot path (every chunk of every process), so its
//! text is written directly, the chunk base64-encoded straight into the
//! message; for a connection granted binary output it is one binary frame
//! instead (`exec_protocol::encode_process_output`: a header and the raw
//! bytes). The rare `process/exited` and `process/closed` serialize their
//! typed params, as text always.
//!
//! An event is encoded for the grant of the connection attached when it is
//! encoded; [`fit_grant`] re-encodes one that reaches a connection with
//! another grant (it waited in a detached session's queue, and a
//! connection that asked otherwise resumed the session).

use std::fmt::Write as _;

use bytes::Bytes;
use exec_protocol::{
    HTTP_REQUEST_BODY_DELTA_METHOD, HttpRequestBodyDeltaNotification, OutputStream,
    PROCESS_CLOSED_METHOD, PROCESS_EXITED_METHOD, PROCESS_OUTPUT_METHOD, ProcessId,
    ProcessOutputNotification, decode_binary_frame, encode_process_output,
    process_output_head_length, write_process_output_head,
};
use serde::{Deserialize, Serialize};

use crate::process::{Encoder, OutputRead, ProcessEvent};
use crate::wire_message::WireMessage;

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

/// The wire message of `event`: `process/output` as a binary frame when
/// `binary_output` was granted (text when its processId is too long for
/// a frame), everything else as text (one message, no trailing newline).
pub(crate) fn encode(event: &ProcessEvent, binary_output: bool) -> WireMessage {
    if let ProcessEvent::Output(output) = event {
        if binary_output && let Some(frame) = encode_process_output(output) {
            return WireMessage::Binary(frame.into());
        }
        return WireMessage::Text(output_text(output));
    }
    WireMessage::Text(encode_text(event))
}

/// The encoders every session hands its processes.
pub(crate) const ENCODER: Encoder = Encoder {
    event: encode,
    output: encode_output,
    head_length: output_head_length,
};

/// The wire message of a chunk of output the driver read with room for a
/// frame's head, and the chunk for the log: on a connection granted binary
/// output, the head is written into that room and the frame and the
/// chunk share the buffer (no copy); otherwise the text is encoded from
/// the chunk, as [`encode`] does.
fn encode_output(read: OutputRead<'_>, binary_output: bool) -> (WireMessage, Bytes) {
    let OutputRead {
        process_id,
        seq,
        stream,
        mut buffer,
        head_length,
    } = read;
    if binary_output
        && let Some(head) = buffer.get_mut(..head_length)
        && write_process_output_head(head, process_id, seq, stream)
    {
        let frame = Bytes::from(buffer);
        let chunk = frame.slice(head_length..);
        return (WireMessage::Binary(frame), chunk);
    }
    let start = head_length.min(buffer.len());
    let chunk = Bytes::from(buffer).slice(start..);
    let text = output_text_of(process_id, seq, stream, &chunk);
    (WireMessage::Text(text), chunk)
}

/// The room a process's read buffers keep for a frame's head: none for a
/// processId too long for a frame (its output always goes as text).
fn output_head_length(process_id: &ProcessId) -> usize {
    process_output_head_length(process_id).unwrap_or(0)
}

/// The `process/output` head our texts start with ([`output_text`]).
const OUTPUT_HEAD: &str = "{\"jsonrpc\":\"2.0\",\"method\":\"process/output\",";

/// `message` as a connection that was granted binary output
/// (`binary_output`) or not must get it: a `process/output` encoded for
/// the other grant is re-encoded; anything else is left as it is. `None`
/// only for a binary frame that does not decode, which this server never
/// makes (logged).
pub(crate) fn fit_grant(message: WireMessage, binary_output: bool) -> Option<WireMessage> {
    match message {
        WireMessage::Binary(frame) if !binary_output => match decode_binary_frame(&frame) {
            Ok(output) => Some(WireMessage::Text(output_text(&output))),
            Err(error) => {
                tracing::error!(%error, "cannot decode a binary frame this server made; dropped");
                None
            }
        },
        WireMessage::Text(text) if binary_output && text.starts_with(OUTPUT_HEAD) => {
            /// The one member of a `process/output` text needed here.
            #[derive(Deserialize)]
            struct Output {
                /// The notification's params.
                params: ProcessOutputNotification,
            }
            let frame = serde_json::from_str::<Output>(&text)
                .ok()
                .and_then(|output| encode_process_output(&output.params));
            Some(match frame {
                Some(frame) => WireMessage::Binary(frame.into()),
                // A processId too long for a frame goes as text, as when encoded.
                None => WireMessage::Text(text),
            })
        }
        message => Some(message),
    }
}

/// The notification text of `event` (one message, no trailing newline).
fn encode_text(event: &ProcessEvent) -> String {
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
    output_text_of(
        &output.process_id,
        output.seq,
        output.stream,
        &output.chunk.0,
    )
}

/// The text of a `process/output` notification of `bytes` ([`output_text`]).
fn output_text_of(process_id: &ProcessId, seq: u64, stream: OutputStream, bytes: &[u8]) -> String {
    const HEAD: &str = "{\"jsonrpc\":\"2.0\",\"method\":\"";
    const PARAMS: &str = "\",\"params\":{\"chunk\":\"";
    let process_id = process_id.as_str();
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
        seq,
        stream_name(stream)
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
                let text = encode(&ProcessEvent::Output(typed.clone()), false);
                let expected = serde_json::to_string(&Envelope {
                    jsonrpc: "2.0",
                    method: PROCESS_OUTPUT_METHOD,
                    params: &typed,
                })
                .expect("serializes");
                assert!(expected.starts_with(OUTPUT_HEAD), "{expected}");
                assert_eq!(text, WireMessage::Text(expected));
            }
        }
    }

    /// The text of a message that must be text.
    fn text(message: WireMessage) -> String {
        match message {
            WireMessage::Text(text) => text,
            WireMessage::Binary(frame) => panic!("a binary frame: {frame:?}"),
        }
    }

    fn output(process_id: &str) -> ProcessOutputNotification {
        ProcessOutputNotification {
            chunk: Base64Bytes(b"\x00\xffhi".to_vec()),
            process_id: id(process_id),
            seq: 5,
            stream: OutputStream::Stderr,
        }
    }

    #[test]
    fn granted_output_is_a_binary_frame_of_the_same_notification() {
        let typed = output("p");
        let WireMessage::Binary(frame) = encode(&ProcessEvent::Output(typed.clone()), true) else {
            panic!("not a binary frame");
        };
        assert_eq!(decode_binary_frame(&frame), Ok(typed));
    }

    /// A buffer as the driver reads into: `head_length` bytes of room, then `chunk`.
    fn read_buffer(head_length: usize, chunk: &[u8]) -> Vec<u8> {
        let mut buffer = vec![0; head_length];
        buffer.extend_from_slice(chunk);
        buffer
    }

    #[test]
    fn output_read_with_room_encodes_as_the_typed_event_and_shares_its_chunk() {
        for process_id in ["p", "odd \"id\" ✓", &"x".repeat(65_536)] {
            let typed = output(process_id);
            let head_length = output_head_length(&typed.process_id);
            for granted in [true, false] {
                let buffer = read_buffer(head_length, &typed.chunk.0);
                let start = buffer.as_ptr() as usize;
                let (message, chunk) = encode_output(
                    OutputRead {
                        process_id: &typed.process_id,
                        seq: typed.seq,
                        stream: typed.stream,
                        buffer,
                        head_length,
                    },
                    granted,
                );
                assert_eq!(
                    message,
                    encode(&ProcessEvent::Output(typed.clone()), granted)
                );
                assert_eq!(chunk, typed.chunk.0);
                // The log's chunk is the read buffer itself, past the room.
                assert_eq!(chunk.as_ptr() as usize, start + head_length);
                if let WireMessage::Binary(frame) = &message {
                    assert_eq!(frame.as_ptr() as usize, start, "the frame is the buffer");
                }
            }
        }
        // No room for a long processId: its output is text even when granted.
        assert_eq!(output_head_length(&id(&"x".repeat(65_536))), 0);
    }

    #[test]
    fn output_whose_process_id_does_not_fit_a_frame_stays_text() {
        let typed = output(&"x".repeat(65_536));
        let message = encode(&ProcessEvent::Output(typed.clone()), true);
        assert_eq!(message, encode(&ProcessEvent::Output(typed), false));
        assert!(matches!(message, WireMessage::Text(_)));
    }

    #[test]
    fn output_encoded_for_the_other_grant_is_re_encoded() {
        let event = ProcessEvent::Output(output("p"));
        let (as_text, as_frame) = (encode(&event, false), encode(&event, true));
        assert_eq!(fit_grant(as_frame.clone(), false), Some(as_text.clone()));
        assert_eq!(fit_grant(as_text.clone(), true), Some(as_frame.clone()));
        assert_eq!(fit_grant(as_text.clone(), false), Some(as_text));
        assert_eq!(fit_grant(as_frame.clone(), true), Some(as_frame));
        // Everything else is left alone, whatever the grant.
        let response =
            WireMessage::Text(String::from("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}"));
        assert_eq!(fit_grant(response.clone(), true), Some(response));
        let long = encode(&ProcessEvent::Output(output(&"x".repeat(65_536))), false);
        assert_eq!(fit_grant(long.clone(), true), Some(long));
    }

    #[test]
    fn exited_and_closed_texts_are_notifications() {
        let exited = text(encode(
            &ProcessEvent::Exited(ProcessExitedNotification {
                exit_code: 137,
                process_id: id("p"),
                reason: ExitReason::Signaled,
                seq: 3,
                signal: Some(Signal::Kill),
            }),
            true,
        ));
        assert_eq!(
            serde_json::from_str::<Value>(&exited).expect("json"),
            json!({"jsonrpc": "2.0", "method": "process/exited", "params": {
                "exitCode": 137, "processId": "p", "reason": "signaled", "seq": 3, "signal": "kill"}})
        );
        let closed = text(encode(
            &ProcessEvent::Closed(ProcessClosedNotification {
                process_id: id("p"),
                seq: 4,
            }),
            true,
        ));
        assert_eq!(
            serde_json::from_str::<Value>(&closed).expect("json"),
            json!({"jsonrpc": "2.0", "method": "process/closed", "params": {"processId": "p", "seq": 4}})
        );
    }
}
