//! The shapes of messages from the server as the router reads them: the
//! general JSON-RPC envelope, with the members borrowed so a response's
//! result is parsed once (by its caller, into its type), and the hot path of
//! `process/output`, parsed and decoded in one pass.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

/// The members of an incoming message the router looks at. Borrowed raw
/// values, so a response's result is parsed once, by the caller, into its type.
#[derive(Deserialize)]
pub(super) struct Incoming<'a> {
    /// Present in a response and a request.
    #[serde(borrow, default)]
    pub(super) id: Option<&'a RawValue>,
    /// Present in a notification and a request.
    #[serde(default)]
    pub(super) method: Option<String>,
    /// A notification's params.
    #[serde(borrow, default)]
    pub(super) params: Option<&'a RawValue>,
    /// A successful response's result.
    #[serde(borrow, default)]
    pub(super) result: Option<&'a RawValue>,
    /// A failed response's error object.
    #[serde(default)]
    pub(super) error: Option<IncomingError>,
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
pub(super) struct OutputMessage<'a> {
    /// Present only in a request, which this is not (the general path says so).
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    /// The params.
    #[serde(borrow)]
    pub(super) params: OutputParams<'a>,
}

/// The params of [`OutputMessage`], with the chunk already decoded.
#[derive(Deserialize)]
pub(super) struct OutputParams<'a> {
    /// The decoded bytes.
    #[serde(deserialize_with = "decode_base64")]
    pub(super) chunk: Vec<u8>,
    /// Borrowed unless it holds escapes.
    #[serde(rename = "processId", borrow)]
    pub(super) process_id: Cow<'a, str>,
    /// Position in the process's sequence.
    pub(super) seq: u64,
    /// Which stream.
    pub(super) stream: exec_protocol::OutputStream,
}

impl<'a> OutputMessage<'a> {
    /// The notification when `text` is a well-formed `process/output` in our
    /// server's member order; `None` sends it down the general path (which
    /// handles every other shape, and reports what is wrong).
    pub(super) fn parse(text: &'a str) -> Option<Self> {
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
pub(super) struct IncomingError {
    /// The JSON-RPC error code.
    pub(super) code: i32,
    /// The server's description.
    pub(super) message: String,
    /// Whatever the server attached (`kind`, `path`, `processId`).
    #[serde(default)]
    pub(super) data: Option<serde_json::Value>,
}

/// The start of a message, for error texts.
pub(super) fn excerpt(text: &str) -> String {
    const LIMIT: usize = 200;
    match text.char_indices().nth(LIMIT) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_owned(),
    }
}

/// Parses a notification's params (absent params parse as `{}`).
pub(super) fn parse_params<P: serde::de::DeserializeOwned>(
    params: Option<&RawValue>,
) -> serde_json::Result<P> {
    serde_json::from_str(params.map_or("{}", RawValue::get))
}

#[cfg(test)]
mod tests {
    use exec_protocol::{OutputStream, ProcessOutputNotification};

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
