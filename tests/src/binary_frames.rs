//! [`BinaryFrames`]: the schema's `x-binaryFrames` read at run time (the
//! negotiation's fields, and per frame kind its code, notification, params
//! def and layout), and a decoder that follows the layout field by field,
//! so that a frame is checked against the schema, never against the
//! protocol crate's own codec.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

/// The wire type of one layout field.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Wire {
    /// One byte.
    U8,
    /// Two bytes, big-endian.
    U16Be,
    /// Eight bytes, big-endian.
    U64Be,
    /// UTF-8 text whose length in bytes is the named earlier field.
    Utf8 { length: String },
    /// Raw bytes to the end of the message.
    Bytes,
}

impl Wire {
    /// The largest value of an integer type.
    fn max(&self) -> Option<u64> {
        match self {
            Self::U8 => Some(u64::from(u8::MAX)),
            Self::U16Be => Some(u64::from(u16::MAX)),
            Self::U64Be => Some(u64::MAX),
            Self::Utf8 { .. } | Self::Bytes => None,
        }
    }
}

/// One field of a layout.
#[derive(Debug, Clone)]
struct LayoutField {
    /// Its name in the layout.
    name: String,
    /// How it is written.
    wire: Wire,
    /// The notification param it carries, if any.
    param: Option<String>,
    /// For an enum param: the value of each code.
    values: BTreeMap<u64, String>,
}

/// One frame kind.
#[derive(Debug, Clone)]
pub struct FrameKind {
    /// The notification it stands for, e.g. `process/output`.
    pub method: String,
    /// The JSON pointer of its params def.
    pub params: String,
    /// The fields, in wire order (the first is the kind byte).
    fields: Vec<LayoutField>,
}

impl FrameKind {
    /// The longest value each `utf8` param may have in a frame, in bytes:
    /// a notification with a longer one may go as text.
    pub fn utf8_limits(&self) -> Vec<(String, u64)> {
        self.fields
            .iter()
            .filter_map(|field| match &field.wire {
                Wire::Utf8 { length } => {
                    let max = self
                        .fields
                        .iter()
                        .find(|other| &other.name == length)
                        .and_then(|other| other.wire.max())?;
                    Some((field.param.clone()?, max))
                }
                _ => None,
            })
            .collect()
    }
}

/// The schema's `x-binaryFrames`.
#[derive(Debug, Clone)]
pub struct BinaryFrames {
    /// The `initialize` params field that asks for binary frames.
    pub params_field: String,
    /// The `initialize` result field that says whether they were granted.
    pub result_field: String,
    /// Every frame kind, by code.
    kinds: BTreeMap<u64, FrameKind>,
}

impl BinaryFrames {
    /// Reads `x-binaryFrames` from the schema document; `Ok(None)` when it
    /// has none. Errors name what is malformed (the generators check the
    /// rest of its rules).
    pub fn parse(document: &Value) -> Result<Option<Self>, String> {
        let Some(keyword) = document.get("x-binaryFrames") else {
            return Ok(None);
        };
        let string = |value: &Value, key: &str| -> Result<String, String> {
            value
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| format!("`{key}` must be a string"))
        };
        let negotiation = keyword
            .get("negotiation")
            .ok_or("`negotiation` is missing")?;
        let mut kinds = BTreeMap::new();
        let frames = keyword
            .get("frames")
            .and_then(Value::as_object)
            .ok_or("`frames` must be an object")?;
        for (name, frame) in frames {
            let code = frame
                .get("code")
                .and_then(Value::as_u64)
                .ok_or_else(|| format!("frame kind `{name}`: `code` must be an integer"))?;
            let layout = frame
                .get("layout")
                .and_then(Value::as_array)
                .ok_or_else(|| format!("frame kind `{name}`: `layout` must be an array"))?;
            let mut fields = Vec::new();
            for entry in layout {
                let field_name = string(entry, "name")?;
                let wire = match string(entry, "type")?.as_str() {
                    "u8" => Wire::U8,
                    "u16be" => Wire::U16Be,
                    "u64be" => Wire::U64Be,
                    "utf8" => Wire::Utf8 {
                        length: string(entry, "length")?,
                    },
                    "bytes" => Wire::Bytes,
                    other => return Err(format!("field `{field_name}`: unknown type `{other}`")),
                };
                let values = entry
                    .get("enum")
                    .and_then(Value::as_object)
                    .map(|codes| {
                        codes
                            .iter()
                            .filter_map(|(value, code)| Some((code.as_u64()?, value.clone())))
                            .collect()
                    })
                    .unwrap_or_default();
                fields.push(LayoutField {
                    name: field_name,
                    wire,
                    param: entry
                        .get("param")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    values,
                });
            }
            kinds.insert(
                code,
                FrameKind {
                    method: string(frame, "method")?,
                    params: string(frame, "params")?,
                    fields,
                },
            );
        }
        Ok(Some(Self {
            params_field: string(negotiation, "paramsField")?,
            result_field: string(negotiation, "resultField")?,
            kinds,
        }))
    }

    /// Every frame kind.
    pub fn kinds(&self) -> impl Iterator<Item = &FrameKind> {
        self.kinds.values()
    }

    /// The frame kind standing for notification `method`, if any.
    pub fn kind_for_method(&self, method: &str) -> Option<&FrameKind> {
        self.kinds.values().find(|kind| kind.method == method)
    }

    /// Decodes `frame` by its kind's layout into the JSON-RPC notification
    /// it stands for (`bytes` fields as base64). Errors say what does not
    /// follow the layout: an unknown kind, a frame that ends early, a length
    /// past the end, text that is not UTF-8, an enum code the layout does
    /// not list, bytes left over.
    pub fn decode(&self, frame: &[u8]) -> Result<Value, String> {
        let kind_code = *frame.first().ok_or("an empty binary frame")?;
        let kind = self
            .kinds
            .get(&u64::from(kind_code))
            .ok_or_else(|| format!("unknown frame kind {kind_code}"))?;
        let mut cursor = 0_usize;
        let mut integers: BTreeMap<&str, u64> = BTreeMap::new();
        let mut params = Map::new();
        for field in &kind.fields {
            // `None` takes the rest of the frame.
            let mut take = |length: Option<usize>| -> Result<&[u8], String> {
                let length = length.unwrap_or(frame.len().saturating_sub(cursor));
                let end = cursor
                    .checked_add(length)
                    .filter(|end| *end <= frame.len())
                    .ok_or_else(|| {
                        format!(
                            "field `{}` ({length} bytes at {cursor}) runs past the frame's end ({} bytes)",
                            field.name,
                            frame.len()
                        )
                    })?;
                let bytes = &frame[cursor..end];
                cursor = end;
                Ok(bytes)
            };
            let value = match &field.wire {
                Wire::U8 | Wire::U16Be | Wire::U64Be => {
                    let size = match field.wire {
                        Wire::U8 => 1,
                        Wire::U16Be => 2,
                        _ => 8,
                    };
                    let number = take(Some(size))?
                        .iter()
                        .fold(0_u64, |number, byte| (number << 8) | u64::from(*byte));
                    integers.insert(&field.name, number);
                    if field.values.is_empty() {
                        json!(number)
                    } else {
                        let value = field.values.get(&number).ok_or_else(|| {
                            format!(
                                "field `{}`: code {number} is no value of its enum",
                                field.name
                            )
                        })?;
                        json!(value)
                    }
                }
                Wire::Utf8 { length } => {
                    let length = *integers.get(length.as_str()).ok_or_else(|| {
                        format!("field `{}`: no length field `{length}`", field.name)
                    })?;
                    let length = usize::try_from(length).map_err(|_| "a length too large")?;
                    let text = std::str::from_utf8(take(Some(length))?)
                        .map_err(|error| format!("field `{}` is not UTF-8: {error}", field.name))?;
                    json!(text)
                }
                Wire::Bytes => {
                    let rest = take(None)?;
                    json!(base64_simd::STANDARD.encode_to_string(rest))
                }
            };
            if let Some(param) = &field.param {
                params.insert(param.clone(), value);
            }
        }
        if cursor != frame.len() {
            return Err(format!(
                "{} bytes after the last field of the layout",
                frame.len() - cursor
            ));
        }
        Ok(json!({"jsonrpc": "2.0", "method": kind.method, "params": params}))
    }
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;

    use super::*;

    fn frames() -> BinaryFrames {
        let schema: Value =
            serde_json::from_str(exec_protocol::SCHEMA_JSON).expect("the schema is JSON");
        BinaryFrames::parse(&schema)
            .expect("well-formed")
            .expect("the schema has x-binaryFrames")
    }

    #[test]
    fn a_frame_decodes_to_its_notification() {
        let frame = [1, 2, 0, 0, 0, 0, 0, 0, 0, 7, 0, 2, b'p', b'1', 0, 0xff];
        assert_eq!(
            frames().decode(&frame),
            Ok(
                json!({"jsonrpc": "2.0", "method": "process/output", "params": {
                "stream": "pty", "seq": 7, "processId": "p1", "chunk": "AP8="}})
            )
        );
    }

    #[test]
    fn what_breaks_the_layout_is_named() {
        let frames = frames();
        for (frame, wanted) in [
            (&[][..], "empty"),
            (&[9, 0][..], "unknown frame kind 9"),
            (&[1, 0, 0][..], "runs past"),
            (&[1, 7, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0][..], "code 7"),
            (&[1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 5, b'p'][..], "runs past"),
            (&[1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0xff][..], "not UTF-8"),
        ] {
            let error = frames.decode(frame).expect_err("malformed");
            assert!(error.contains(wanted), "{error} for {frame:?}");
        }
        assert_eq!(
            frames
                .kind_for_method("process/output")
                .map(FrameKind::utf8_limits),
            Some(vec![(String::from("processId"), 65_535)])
        );
    }
}
