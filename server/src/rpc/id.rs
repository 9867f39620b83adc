//! Request ids, echoed as sent. JSON-RPC 2.0 lets a client pick any string
//! or number; jsonrpsee's [`Id`] holds strings and integers from 0 to
//! `u64::MAX` only, so a request whose id is another integer (`-1`, or one
//! past `u64::MAX`) travels under a stand-in id and its response gets the
//! client's id text back ([`EchoedId`]).
//!
//! Fractions and exponents (`1.5`, `1e3`, even `1.0`) are refused with
//! -32600 and id null: the specification says numbers SHOULD NOT contain
//! fractional parts, the schema's ids are integers or strings, and a client
//! cannot match a float reliably anyway.

use jsonrpsee::types::Id;
use serde_json::value::RawValue;

/// The id a request travels under inside the server when jsonrpsee cannot
/// hold the client's; [`EchoedId::restore`] swaps it back in the response.
const STAND_IN: Id<'static> = Id::Number(0);

/// How jsonrpsee writes the start of a response to [`STAND_IN`]: the
/// `jsonrpc` member, then the id (then `result` or `error`).
const STAND_IN_PREFIX: &str = r#"{"jsonrpc":"2.0","id":0,"#;

/// A client's id that jsonrpsee's [`Id`] cannot hold, as its JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EchoedId(Box<str>);

impl EchoedId {
    /// Puts the client's id into `response`, a response text jsonrpsee
    /// wrote for the stand-in id.
    pub(crate) fn restore(&self, response: &mut String) {
        if response.starts_with(STAND_IN_PREFIX) {
            let id_start = STAND_IN_PREFIX.len() - 2;
            response.replace_range(id_start..id_start + 1, &self.0);
        } else {
            tracing::error!(%response, "a response does not start as expected; its id is not restored");
        }
    }
}

/// A request's id: the jsonrpsee id it travels under, and the client's id
/// text when that differs.
pub(crate) type RequestId<'a> = (Id<'a>, Option<EchoedId>);

/// Reads a request's `id` member: a string or an integer; `None` for
/// anything else (`null`, which marks no request in this protocol, a
/// fraction, an exponent, a boolean, an array, an object).
pub(crate) fn read(raw: &RawValue) -> Option<RequestId<'_>> {
    let text = raw.get();
    if text.starts_with('"') {
        return match serde_json::from_str::<Id<'_>>(text) {
            Ok(id @ Id::Str(_)) => Some((id, None)),
            _ => None,
        };
    }
    if !is_integer(text) {
        return None;
    }
    Some(match text.parse::<u64>() {
        Ok(number) => (Id::Number(number), None),
        Err(_) => (STAND_IN, Some(EchoedId(text.into()))),
    })
}

/// Whether `text` is a JSON integer: an optional minus, then `0` or digits
/// not starting with `0`.
fn is_integer(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    !digits.is_empty()
        && digits.bytes().all(|byte| byte.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
}

#[cfg(test)]
mod tests {
    use jsonrpsee::MethodResponse;
    use jsonrpsee::types::ErrorObjectOwned;
    use pretty_assertions::assert_eq;
    use serde_json::{Value, json};

    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).expect("json")
    }

    /// The id an error response to `id_text` carries.
    fn answered_id(id_text: &str) -> Option<Value> {
        let raw = raw(id_text);
        let (id, echoed) = read(&raw)?;
        let error = ErrorObjectOwned::owned(-32601, "x", None::<()>);
        let mut response =
            Box::<str>::from(MethodResponse::error(id, error).into_json()).into_string();
        if let Some(echoed) = echoed {
            echoed.restore(&mut response);
        }
        let response: Value = serde_json::from_str(&response).expect("json");
        Some(response["id"].clone())
    }

    #[test]
    fn integers_and_strings_are_answered_with_the_same_id() {
        for (text, expected) in [
            ("0", json!(0)),
            ("7", json!(7)),
            ("-1", json!(-1)),
            (
                "-9223372036854775808",
                json!(-9_223_372_036_854_775_808_i64),
            ),
            ("18446744073709551615", json!(u64::MAX)),
            ("\"a\"", json!("a")),
            ("\"\"", json!("")),
            ("\"\\u00e9\\n\"", json!("é\n")),
            ("\"1\"", json!("1")),
        ] {
            assert_eq!(answered_id(text), Some(expected), "{text}");
        }
        // Past u64: answered with the very digits sent.
        let raw = raw("18446744073709551616");
        let (_, echoed) = read(&raw).expect("an integer");
        let mut response = String::from(r#"{"jsonrpc":"2.0","id":0,"result":{}}"#);
        echoed.expect("echoed").restore(&mut response);
        assert_eq!(
            response,
            r#"{"jsonrpc":"2.0","id":18446744073709551616,"result":{}}"#
        );
    }

    #[test]
    fn other_ids_are_not_read() {
        for text in [
            "null", "1.5", "1.0", "1e3", "-0.5", "-1E2", "true", "[1]", "{}",
        ] {
            assert_eq!(answered_id(text), None, "{text}");
        }
    }
}
