//! Negative cases generated from the schema: for every client request, params
//! with a missing required field, a field of the wrong type, and a value out
//! of the range the schema bounds (`minimum`, `maximum`, `minItems`,
//! `minLength`, an enumeration). Each must get -32602, and the connection must
//! keep serving: a valid request follows every invalid one.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};

use crate::coverage::Tally;
use crate::runner::{Session, Transport};
use crate::schema::{Direction, MethodKind, ProtocolSchema};
use crate::server::ServerSettings;
use crate::validator::INVALID_PARAMS;

/// The three ways the generator breaks params.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum VariantKind {
    /// A required field left out.
    MissingField,
    /// A field whose value has a type the schema does not allow.
    WrongType,
    /// A value outside a bound of the schema.
    OutOfRange,
}

impl fmt::Display for VariantKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Self::MissingField => "missing field",
            Self::WrongType => "wrong type",
            Self::OutOfRange => "out of range",
        })
    }
}

/// One generated invalid request.
#[derive(Debug, Clone)]
pub struct Variant {
    /// The request method.
    pub method: String,
    /// How the params are broken.
    pub kind: VariantKind,
    /// What was changed, e.g. "`rows` below its minimum 1".
    pub what: String,
    /// The invalid params.
    pub params: Value,
}

/// Every variant, and the methods that have nothing to break in some way.
#[derive(Debug, Clone, Default)]
pub struct NegativePlan {
    /// The invalid requests, by method in schema-table order.
    pub variants: Vec<Variant>,
    /// Per kind, the request methods without anything to break that way (no
    /// required field, no field, no bound).
    pub skipped: BTreeMap<VariantKind, Vec<String>>,
}

impl NegativePlan {
    /// Generates the variants of every client request of `schema`. Paths in
    /// the otherwise valid params start with `path_prefix`.
    pub fn generate(schema: &ProtocolSchema, path_prefix: &str) -> Self {
        let generator = Generator {
            schema,
            path_prefix,
        };
        let mut plan = Self::default();
        for spec in schema.methods().values() {
            if spec.kind != MethodKind::Request || spec.direction != Direction::ClientToServer {
                continue;
            }
            let Some(params_schema) = schema.resolve(&spec.params) else {
                continue;
            };
            let params_schema = generator.follow(params_schema);
            let base = generator.valid(&params_schema, None);
            let properties = properties(&params_schema);
            let required = required(&params_schema);
            let mut push = |kind: VariantKind, what: String, params: Value| {
                plan.variants.push(Variant {
                    method: spec.name.clone(),
                    kind,
                    what,
                    params,
                });
            };
            let mut counts = BTreeMap::new();
            for field in &required {
                let mut params = base.clone();
                if let Some(object) = params.as_object_mut() {
                    object.remove(field);
                }
                push(
                    VariantKind::MissingField,
                    format!("without `{field}`"),
                    params,
                );
                *counts.entry(VariantKind::MissingField).or_insert(0) += 1;
            }
            for (field, property) in &properties {
                if let Some(wrong) = generator.wrong_type(property) {
                    let what = format!("`{field}` = {wrong}");
                    push(VariantKind::WrongType, what, with(&base, field, wrong));
                    *counts.entry(VariantKind::WrongType).or_insert(0) += 1;
                }
            }
            for (field, property) in &properties {
                for (what, bad) in generator.out_of_range(property, 0) {
                    let what = format!("`{field}`{what}");
                    push(VariantKind::OutOfRange, what, with(&base, field, bad));
                    *counts.entry(VariantKind::OutOfRange).or_insert(0) += 1;
                }
            }
            for kind in [
                VariantKind::MissingField,
                VariantKind::WrongType,
                VariantKind::OutOfRange,
            ] {
                if !counts.contains_key(&kind) {
                    plan.skipped
                        .entry(kind)
                        .or_default()
                        .push(spec.name.clone());
                }
            }
        }
        plan
    }

    /// The number of variants of `kind`.
    pub fn count(&self, kind: VariantKind) -> usize {
        self.variants
            .iter()
            .filter(|variant| variant.kind == kind)
            .count()
    }

    /// `negative cases N (missing field a, wrong type b, out of range c); skipped: ...`.
    pub fn summary(&self) -> String {
        let kinds = [
            VariantKind::MissingField,
            VariantKind::WrongType,
            VariantKind::OutOfRange,
        ];
        let counts: Vec<String> = kinds
            .iter()
            .map(|kind| format!("{kind} {}", self.count(*kind)))
            .collect();
        let skipped: Vec<String> = self
            .skipped
            .iter()
            .map(|(kind, methods)| format!("{kind}: {}", methods.join(", ")))
            .collect();
        format!(
            "negative cases {} ({}); skipped for having nothing to break: {}",
            self.variants.len(),
            counts.join(", "),
            if skipped.is_empty() {
                "none".to_owned()
            } else {
                skipped.join("; ")
            }
        )
    }
}

/// `base` with member `field` set to `value`.
fn with(base: &Value, field: &str, value: Value) -> Value {
    let mut params = base.clone();
    if let Some(object) = params.as_object_mut() {
        object.insert(field.to_owned(), value);
    }
    params
}

fn properties(schema: &Value) -> Vec<(String, Value)> {
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

fn required(schema: &Value) -> Vec<String> {
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

/// Values made from subschemas of the protocol schema.
struct Generator<'a> {
    schema: &'a ProtocolSchema,
    /// An absolute path for `AbsolutePath` values, so that the valid part of
    /// the params is really valid.
    path_prefix: &'a str,
}

impl Generator<'_> {
    /// `schema` with its `$ref` chain followed.
    fn follow(&self, schema: &Value) -> Value {
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
    fn ref_name(schema: &Value) -> Option<&str> {
        schema
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|target| target.rsplit('/').next())
    }

    /// The non-null branches of an `anyOf`/`oneOf`, or the schema itself.
    fn branches(&self, schema: &Value) -> Vec<Value> {
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
    fn valid(&self, schema: &Value, name: Option<&str>) -> Value {
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

    /// A value of a JSON type `schema` does not allow, if there is one.
    fn wrong_type(&self, schema: &Value) -> Option<Value> {
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
    fn allowed_types(&self, schema: &Value) -> Option<Vec<String>> {
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

    /// Out-of-range values for `schema`, each with what makes it so; nested
    /// objects are searched for bounds too.
    fn out_of_range(&self, schema: &Value, depth: usize) -> Vec<(String, Value)> {
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

/// The `const`s of a `oneOf` of constants, or an `enum`.
fn constants(schema: &Value) -> Vec<Value> {
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
fn primary_type(schema: &Value) -> Option<String> {
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

fn bound(schema: &Value, keyword: &str) -> Option<f64> {
    schema.get(keyword).and_then(Value::as_f64)
}

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

/// Runs the plan over `transport`: `initialize` variants on a connection
/// before its handshake (so that "already initialized" cannot be the
/// answer), the others after it. Returns the failures.
pub async fn run_plan(
    plan: &NegativePlan,
    transport: Transport,
    schema: Arc<ProtocolSchema>,
    tally: Arc<Mutex<Tally>>,
    tmp: &str,
) -> Vec<String> {
    let (before, after): (Vec<&Variant>, Vec<&Variant>) = plan
        .variants
        .iter()
        .partition(|variant| variant.method == exec_protocol::INITIALIZE_METHOD);
    let mut failures = Vec::new();
    for (handshake, variants) in [(false, before), (true, after)] {
        let context = format!(
            "negative cases {} the handshake ({transport})",
            if handshake { "after" } else { "before" }
        );
        let mut session = match Session::connect(
            transport,
            &ServerSettings::default(),
            schema.clone(),
            tally.clone(),
            &context,
        )
        .await
        {
            Ok(session) => session,
            Err(error) => {
                failures.push(format!("{context}: {error}"));
                continue;
            }
        };
        session.vars.set("tmp", Value::String(tmp.to_owned()));
        if handshake && let Err(error) = session.handshake().await {
            failures.push(format!("{context}: handshake: {error}"));
        }
        let mut id = 0_i64;
        for variant in variants {
            id += 2;
            if let Err(error) = run_variant(&mut session, variant, id, handshake).await {
                failures.push(format!(
                    "{context}: `{}` params {} ({}): {error}",
                    variant.method, variant.what, variant.kind
                ));
            }
        }
        if !handshake {
            // The refused `initialize`s did not initialize the connection.
            match session
                .request(json!("after"), "initialize", json!({"clientName": "after"}))
                .await
            {
                Ok(response) if response.get("result").is_some() => {}
                Ok(response) => failures.push(format!(
                    "{context}: a valid initialize after the refused ones failed: {response}"
                )),
                Err(error) => failures.push(format!("{context}: {error}")),
            }
        }
        failures.extend(session.finish().await);
    }
    failures
}

/// Sends one invalid request, expects -32602, then a valid `process/list`
/// and its response (an error before the handshake, a result after it).
async fn run_variant(
    session: &mut Session,
    variant: &Variant,
    id: i64,
    initialized: bool,
) -> Result<(), String> {
    let message =
        json!({"jsonrpc": "2.0", "id": id, "method": variant.method, "params": variant.params});
    // The validator must agree that the generated params are invalid.
    session.send_text(&message.to_string(), true)?;
    let response = session.response(&json!(id)).await?;
    let code = response.pointer("/error/code").and_then(Value::as_i64);
    if code != Some(INVALID_PARAMS) {
        return Err(format!("expected error -32602, got {response}"));
    }
    let follow_up = session
        .request(json!(id + 1), "process/list", json!({}))
        .await?;
    if initialized && follow_up.get("result").is_none() {
        return Err(format!(
            "the connection stopped serving: process/list got {follow_up}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_breaks_every_bound_of_process_start() {
        let schema = ProtocolSchema::embedded();
        let plan = NegativePlan::generate(&schema, "/tmp");
        let start: Vec<String> = plan
            .variants
            .iter()
            .filter(|variant| {
                variant.method == "process/start" && variant.kind == VariantKind::OutOfRange
            })
            .map(|variant| variant.what.clone())
            .collect();
        for expected in [
            "`processId` shorter than 1 characters",
            "`argv` with fewer than 1 items",
            "`size`.rows below its minimum 1",
            "`size`.cols above its maximum 65535",
            "`timeoutMs` below its minimum 0",
        ] {
            assert!(
                start.iter().any(|what| what == expected),
                "{expected} in {start:?}"
            );
        }
        assert_eq!(
            plan.skipped.get(&VariantKind::MissingField),
            Some(&vec!["process/list".to_owned()])
        );
        // Every generated variant is invalid for the schema.
        for variant in &plan.variants {
            let spec = schema.method(&variant.method).expect("a method");
            assert!(
                !schema.validate(&spec.params, &variant.params).is_empty(),
                "{variant:?} is valid"
            );
        }
    }
}
