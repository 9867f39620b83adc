//! The `bodyDeltas` step: the `http/request/bodyDelta` notifications of one
//! streamed request, collected through the `done` one, their `seq` checked
//! (one-based, contiguous) and their size (at most 1 MiB decoded), and the
//! body they carry matched as text.

use exec_protocol::HTTP_REQUEST_BODY_DELTA_METHOD;
use serde_json::{Value, json};

use crate::corpus::ExpectedBodyDeltas;
use crate::pattern::{interpolate, matches, matches_text};
use crate::runner::Session;

/// Most decoded bytes in one delta (Codex's `MAX_HTTP_BODY_DELTA_BYTES`).
const MAX_DELTA_BYTES: usize = 1024 * 1024;

impl Session {
    /// Collects and checks the deltas of `expected.request_id`.
    pub async fn body_deltas(&mut self, expected: &ExpectedBodyDeltas) -> Result<(), String> {
        let request_id = interpolate(&expected.request_id, &self.vars)?;
        let mut body = Vec::new();
        let mut seq = 1u64;
        let last = loop {
            let delta = self
                .take(
                    |message| {
                        message["method"] == HTTP_REQUEST_BODY_DELTA_METHOD
                            && message["params"]["requestId"] == request_id.as_str()
                    },
                    &format!("the body deltas of `{request_id}`"),
                )
                .await?;
            let params = &delta["params"];
            if params["seq"] != json!(seq) {
                return Err(format!("delta {delta}: seq {seq} was next"));
            }
            seq += 1;
            let bytes = params["deltaBase64"]
                .as_str()
                .and_then(|text| base64_simd::STANDARD.decode_to_vec(text).ok())
                .unwrap_or_default();
            if bytes.len() > MAX_DELTA_BYTES {
                return Err(format!("a delta of {} bytes, over 1 MiB", bytes.len()));
            }
            body.extend_from_slice(&bytes);
            if params["done"] == json!(true) {
                break params.clone();
            }
        };
        matches_text(
            &expected.body,
            &String::from_utf8_lossy(&body),
            &mut self.vars,
            &format!("body of `{request_id}`"),
        )?;
        let error = expected
            .error
            .clone()
            .unwrap_or_else(|| Value::String(String::from("$absent")));
        matches(&json!({"error": error}), Some(&last), &mut self.vars, "")
            .map_err(|failure| format!("last delta {last} of `{request_id}`: {failure}"))
    }
}
