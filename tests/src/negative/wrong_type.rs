//! Wrong-type variants: a value of a JSON type the schema does not allow
//! for a field.

use serde_json::{Value, json};

use super::generator::Generator;

impl Generator<'_> {
    /// A value of a JSON type `schema` does not allow, if there is one.
    pub(super) fn wrong_type(&self, schema: &Value) -> Option<Value> {
        let allowed = self.allowed_types(schema)?;
        let candidates = [
            ("string", json!("not-a-number")),
            ("integer", json!(12345)),
            ("boolean", json!(true)),
            ("array", json!([])),
            ("object", json!({})),
        ];
        candidates
            .into_iter()
            .find(|(kind, _)| {
                let fits = |allowed: &String| {
                    allowed == kind || (*kind == "integer" && allowed == "number")
                };
                !allowed.iter().any(fits)
            })
            .map(|(_, value)| value)
    }

    /// The JSON types `schema` allows; `None` when it does not say.
    pub(super) fn allowed_types(&self, schema: &Value) -> Option<Vec<String>> {
        let schema = self.follow(schema);
        let mut types = Vec::new();
        match schema.get("type") {
            Some(Value::String(kind)) => types.push(kind.clone()),
            Some(Value::Array(kinds)) => {
                types.extend(kinds.iter().filter_map(Value::as_str).map(str::to_owned));
            }
            _ => {}
        }
        if let Some(value) = schema.get("const") {
            types.push(json_type(value).to_owned());
        }
        for keyword in ["anyOf", "oneOf"] {
            for branch in schema
                .get(keyword)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                types.extend(self.allowed_types(branch)?);
            }
        }
        (!types.is_empty()).then_some(types)
    }
}

/// The JSON type of `value`, as JSON Schema names it.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(number) if number.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
