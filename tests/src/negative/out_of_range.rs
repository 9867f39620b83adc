//! Out-of-range variants: values outside the bounds the schema sets
//! (`minimum`, `maximum`, `minItems`, `minLength`, an enumeration), also
//! inside nested objects.

use serde_json::{Value, json};

use super::generator::Generator;
use super::keywords::{bound, constants, primary_type, properties};
use super::with;

impl Generator<'_> {
    /// Out-of-range values for `schema`, each with what makes it so; nested
    /// objects are searched for bounds too.
    pub(super) fn out_of_range(&self, schema: &Value, depth: usize) -> Vec<(String, Value)> {
        let mut found = Vec::new();
        if depth > 4 {
            return found;
        }
        for branch in self.branches(schema) {
            if let Some(minimum) = bound(&branch, "minimum") {
                found.push((
                    format!(" below its minimum {minimum}"),
                    json!(minimum as i64 - 1),
                ));
            }
            if let Some(maximum) = bound(&branch, "maximum") {
                found.push((
                    format!(" above its maximum {maximum}"),
                    json!(maximum as i64 + 1),
                ));
            }
            if let Some(minimum) = bound(&branch, "minItems").filter(|minimum| *minimum >= 1.0) {
                let item = branch
                    .get("items")
                    .map(|items| self.valid(items, None))
                    .unwrap_or(Value::Null);
                found.push((
                    format!(" with fewer than {minimum} items"),
                    Value::Array(vec![item; minimum as usize - 1]),
                ));
            }
            if let Some(minimum) = bound(&branch, "minLength").filter(|minimum| *minimum >= 1.0) {
                found.push((
                    format!(" shorter than {minimum} characters"),
                    Value::String("x".repeat(minimum as usize - 1)),
                ));
            }
            if !constants(&branch).is_empty() {
                found.push((
                    " not one of its values".to_owned(),
                    json!("notAnAllowedValue"),
                ));
            }
            if primary_type(&branch).as_deref() == Some("object") {
                let base = {
                    let mut object = self.valid(&branch, None);
                    // Optional members with bounds are broken inside a valid object.
                    if let Some(object) = object.as_object_mut() {
                        for (field, property) in properties(&branch) {
                            object
                                .entry(field.clone())
                                .or_insert_with(|| self.valid(&property, None));
                        }
                    }
                    object
                };
                for (field, property) in properties(&branch) {
                    for (what, bad) in self.out_of_range(&property, depth + 1) {
                        found.push((format!(".{field}{what}"), with(&base, &field, bad)));
                    }
                }
            }
        }
        found
    }
}
