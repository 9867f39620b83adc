//! The envelope rules every message obeys, whatever its kind: only the
//! members JSON-RPC 2.0 gives it, and an `id` the protocol allows.

use serde_json::{Map, Value};

use super::report::Report;

/// Reports members outside `allowed`; returns whether there were none.
pub(super) fn check_members(
    object: &Map<String, Value>,
    allowed: &[&str],
    report: &mut Report,
) -> bool {
    let unknown: Vec<&str> = object
        .keys()
        .map(String::as_str)
        .filter(|key| !allowed.contains(key))
        .collect();
    if unknown.is_empty() {
        return true;
    }
    report.add(
        "envelope",
        format!("unknown members {unknown:?}; this message may have only {allowed:?}"),
    );
    false
}

/// An `id` of the protocol: an integer or a string (no fractions, no null).
pub(super) fn valid_id(id: &Value) -> bool {
    match id {
        Value::String(_) => true,
        Value::Number(number) => number.is_i64() || number.is_u64(),
        _ => false,
    }
}
