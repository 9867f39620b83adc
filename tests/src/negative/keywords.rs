//! Reading the JSON Schema keywords the generator looks at: an object's
//! `properties` and `required`, the constants of an enumeration, the
//! primary `type`, and numeric bounds.

use serde_json::Value;

/// The `properties` of an object schema, by name, in schema order.
pub(super) fn properties(schema: &Value) -> Vec<(String, Value)> {
    schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|properties| {
            properties
                .iter()
                .map(|(name, property)| (name.clone(), property.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// The `required` member names of an object schema.
pub(super) fn required(schema: &Value) -> Vec<String> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .map(|names| {
            names
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The `const`s of a `oneOf` of constants, or an `enum`.
pub(super) fn constants(schema: &Value) -> Vec<Value> {
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        return values.clone();
    }
    schema
        .get("oneOf")
        .and_then(Value::as_array)
        .filter(|branches| branches.iter().all(|branch| branch.get("const").is_some()))
        .map(|branches| {
            branches
                .iter()
                .filter_map(|branch| branch.get("const").cloned())
                .collect()
        })
        .unwrap_or_default()
}

/// The first non-null `type` of a schema.
pub(super) fn primary_type(schema: &Value) -> Option<String> {
    match schema.get("type")? {
        Value::String(kind) => Some(kind.clone()),
        Value::Array(kinds) => kinds
            .iter()
            .filter_map(Value::as_str)
            .find(|kind| *kind != "null")
            .map(str::to_owned),
        _ => None,
    }
}

/// The number a bound keyword (`minimum`, `minItems`, ...) gives, if any.
pub(super) fn bound(schema: &Value, keyword: &str) -> Option<f64> {
    schema.get(keyword).and_then(Value::as_f64)
}
