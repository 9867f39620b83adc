//! [`Generator`]: values made from subschemas of the protocol schema,
//! following `$ref`s and `anyOf`/`oneOf` branches. Its valid values are the
//! base each negative variant breaks exactly one thing of; the ways to break
//! them are in `wrong_type` and `out_of_range`.

use serde_json::{Map, Value, json};

use super::keywords::{bound, constants, primary_type, properties, required};
use crate::schema::ProtocolSchema;

/// Values made from subschemas of the protocol schema.
pub(super) struct Generator<'a> {
    /// The protocol schema whose `$ref`s are followed.
    pub(super) schema: &'a ProtocolSchema,
    /// An absolute path for `AbsolutePath` values, so that the valid part of
    /// the params is really valid.
    pub(super) path_prefix: &'a str,
}

impl Generator<'_> {
    /// `schema` with its `$ref` chain followed.
    pub(super) fn follow(&self, schema: &Value) -> Value {
        let mut current = schema.clone();
        for _ in 0..8 {
            let Some(target) = current.get("$ref").and_then(Value::as_str) else {
                break;
            };
            match self.schema.resolve(target) {
                Some(resolved) => current = resolved.clone(),
                None => break,
            }
        }
        current
    }

    /// The def name a `$ref` points to, if `schema` is one.
    pub(super) fn ref_name(schema: &Value) -> Option<&str> {
        schema
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|target| target.rsplit('/').next())
    }

    /// The non-null branches of an `anyOf`/`oneOf`, or the schema itself.
    pub(super) fn branches(&self, schema: &Value) -> Vec<Value> {
        let schema = self.follow(schema);
        for keyword in ["anyOf", "oneOf"] {
            if let Some(branches) = schema.get(keyword).and_then(Value::as_array)
                && branches.iter().all(|branch| branch.get("const").is_none())
            {
                return branches
                    .iter()
                    .filter(|branch| branch.get("type") != Some(&json!("null")))
                    .map(|branch| self.follow(branch))
                    .collect();
            }
        }
        vec![schema]
    }

    /// A valid value for `schema` (required members only for objects).
    pub(super) fn valid(&self, schema: &Value, name: Option<&str>) -> Value {
        let name = Self::ref_name(schema).or(name).map(str::to_owned);
        let Some(schema) = self.branches(schema).into_iter().next() else {
            return Value::Null;
        };
        if let Some(value) = schema.get("const") {
            return value.clone();
        }
        if let Some(first) = constants(&schema).into_iter().next() {
            return first;
        }
        match primary_type(&schema).as_deref() {
            Some("string") if name.as_deref() == Some("AbsolutePath") => {
                Value::String(format!("{}/negative", self.path_prefix))
            }
            Some("string") => {
                let length = bound(&schema, "minLength").unwrap_or(1.0).max(1.0) as usize;
                Value::String("x".repeat(length))
            }
            Some("integer" | "number") => json!(bound(&schema, "minimum").unwrap_or(0.0) as i64),
            Some("boolean") => Value::Bool(false),
            Some("array") => {
                let count = bound(&schema, "minItems").unwrap_or(0.0) as usize;
                let item = schema
                    .get("items")
                    .map(|items| self.valid(items, None))
                    .unwrap_or(Value::Null);
                Value::Array(vec![item; count])
            }
            Some("object") => {
                let mut object = Map::new();
                let properties = properties(&schema);
                for field in required(&schema) {
                    let property = properties
                        .iter()
                        .find(|(name, _)| *name == field)
                        .map(|(_, property)| property.clone())
                        .unwrap_or(Value::Bool(true));
                    object.insert(field.clone(), self.valid(&property, None));
                }
                Value::Object(object)
            }
            _ => Value::Null,
        }
    }
}
