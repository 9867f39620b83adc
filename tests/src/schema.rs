//! [`ProtocolSchema`]: the protocol schema compiled once, with the tables the
//! validator reads from it: `x-methods` (method name to kind, direction,
//! params and result defs), `x-error` (the error object's def), the closed set
//! of error kinds, the error code each kind's description fixes, and
//! `x-binaryFrames` (see `binary_frames`).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::binary_frames::BinaryFrames;

/// Whether a method expects a response, as `x-methods` says (`kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MethodKind {
    /// Carries an `id` and gets exactly one response.
    Request,
    /// Carries no `id` and gets no response.
    Notification,
}

/// Which way a message travels: the `direction` of `x-methods`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Direction {
    /// From the client to the server.
    ClientToServer,
    /// From the server to the client.
    ServerToClient,
}

impl Direction {
    /// The other direction: where the response to a request travels.
    pub fn reverse(self) -> Self {
        match self {
            Self::ClientToServer => Self::ServerToClient,
            Self::ServerToClient => Self::ClientToServer,
        }
    }
}

/// One entry of `x-methods`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodSpec {
    /// The wire name, e.g. `process/start`.
    pub name: String,
    /// Request or notification.
    pub kind: MethodKind,
    /// Who sends it.
    pub direction: Direction,
    /// The JSON pointer of its params def, e.g. `#/$defs/ProcessStartParams`.
    pub params: String,
    /// The JSON pointer of its result def; `None` for notifications.
    pub result: Option<String>,
}

/// A schema the validator cannot use.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The text is not JSON.
    #[error("the schema is not JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The `jsonschema` crate refused to compile it.
    #[error("the schema does not compile: {0}")]
    Compile(String),
    /// A protocol table (`x-methods`, `x-error`, the error kinds) is missing or malformed.
    #[error("the schema's `{keyword}` is malformed: {reason}")]
    Table {
        /// The keyword or def at fault.
        keyword: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// The protocol schema, compiled: a `jsonschema` validator per def plus the
/// protocol tables. Build it once and share it (`Arc`); validating is `&self`.
pub struct ProtocolSchema {
    /// The schema document, for following `$ref`s (content encodings, the
    /// negative-case generator).
    document: Value,
    /// One compiled validator per `#/$defs/X` pointer.
    validators: jsonschema::ValidatorMap,
    /// `x-methods`, by wire name.
    methods: BTreeMap<String, MethodSpec>,
    /// The pointer `x-error` names.
    error_def: String,
    /// The `const`s of the error kind def (`data.kind`), in schema order.
    error_kinds: Vec<String>,
    /// Error kinds whose description fixes their code ("(code -32600)").
    kind_codes: BTreeMap<String, i64>,
    /// `x-binaryFrames`, when the schema has it.
    binary_frames: Option<BinaryFrames>,
}

impl std::fmt::Debug for ProtocolSchema {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ProtocolSchema")
            .field("methods", &self.methods.keys())
            .field("error_def", &self.error_def)
            .field("error_kinds", &self.error_kinds)
            .finish_non_exhaustive()
    }
}

impl ProtocolSchema {
    /// The schema `exec-protocol` embeds (`schema/exec-server.schema.json`).
    ///
    /// # Panics
    /// If the embedded schema is unusable, which its own tests rule out.
    pub fn embedded() -> Self {
        Self::from_json(exec_protocol::SCHEMA_JSON).expect("the embedded schema is usable")
    }

    /// Compiles a schema text. Errors: [`SchemaError`] when it is not JSON,
    /// does not compile, or lacks a well-formed `x-methods` or `x-error`.
    pub fn from_json(text: &str) -> Result<Self, SchemaError> {
        let document: Value = serde_json::from_str(text)?;
        let validators = jsonschema::validator_map_for(&document)
            .map_err(|error| SchemaError::Compile(error.to_string()))?;
        let methods = read_methods(&document)?;
        for spec in methods.values() {
            for pointer in std::iter::once(&spec.params).chain(spec.result.as_ref()) {
                if !validators.contains_key(pointer) {
                    return Err(table_error(
                        "x-methods",
                        format!("`{}` names `{pointer}`, which is not a def", spec.name),
                    ));
                }
            }
        }
        let error_def = document
            .get("x-error")
            .and_then(Value::as_str)
            .ok_or_else(|| table_error("x-error", "missing or not a string"))?
            .to_owned();
        let (error_kinds, kind_codes) = read_error_kinds(&document, &error_def)?;
        let binary_frames = BinaryFrames::parse(&document)
            .map_err(|reason| table_error("x-binaryFrames", reason))?;
        if let Some(frames) = &binary_frames
            && let Some(kind) = frames
                .kinds()
                .find(|kind| !validators.contains_key(&kind.params))
        {
            return Err(table_error(
                "x-binaryFrames",
                format!(
                    "`{}` names `{}`, which is not a def",
                    kind.method, kind.params
                ),
            ));
        }
        Ok(Self {
            document,
            validators,
            methods,
            error_def,
            error_kinds,
            kind_codes,
            binary_frames,
        })
    }

    /// The binary frames of `x-binaryFrames`, when the schema has them.
    pub fn binary_frames(&self) -> Option<&BinaryFrames> {
        self.binary_frames.as_ref()
    }

    /// The schema document as JSON.
    pub fn document(&self) -> &Value {
        &self.document
    }

    /// Every entry of `x-methods`, by wire name.
    pub fn methods(&self) -> &BTreeMap<String, MethodSpec> {
        &self.methods
    }

    /// The `x-methods` entry of `name`, if the protocol has that method.
    pub fn method(&self, name: &str) -> Option<&MethodSpec> {
        self.methods.get(name)
    }

    /// The pointer of the error object def (`x-error`).
    pub fn error_def(&self) -> &str {
        &self.error_def
    }

    /// The closed set of `data.kind` values, in schema order.
    pub fn error_kinds(&self) -> &[String] {
        &self.error_kinds
    }

    /// The JSON-RPC code the schema fixes for error `kind`, if it fixes one.
    pub fn code_of_kind(&self, kind: &str) -> Option<i64> {
        self.kind_codes.get(kind).copied()
    }

    /// The def (or any subschema) at `pointer` (`#/$defs/X`), if it exists.
    pub fn resolve(&self, pointer: &str) -> Option<&Value> {
        self.document.pointer(pointer.strip_prefix('#')?)
    }

    /// Everything wrong with `instance` as a `pointer` (`#/$defs/X`): the
    /// `jsonschema` errors, then strings that a `contentEncoding: base64`
    /// schema covers but that are not standard padded base64 (an annotation
    /// only in 2020-12, so checked here). Each entry reads `PATH: problem`.
    pub fn validate(&self, pointer: &str, instance: &Value) -> Vec<String> {
        let Some(validator) = self.validators.get(pointer) else {
            return vec![format!("the schema has no def `{pointer}`")];
        };
        let mut problems: Vec<String> = validator
            .iter_errors(instance)
            .map(|error| {
                format!(
                    "{}: {error}",
                    display_path(&error.instance_path().to_string())
                )
            })
            .collect();
        if let Some(schema) = self.resolve(pointer) {
            self.check_content_encoding(schema, instance, String::new(), &mut problems, 0);
        }
        problems
    }

    /// Walks `instance` along `schema` (`$ref`, `properties`, `items`, and
    /// every branch of `anyOf`/`oneOf`/`allOf`) and reports base64 strings
    /// that do not decode.
    fn check_content_encoding(
        &self,
        schema: &Value,
        instance: &Value,
        path: String,
        problems: &mut Vec<String>,
        depth: usize,
    ) {
        // The protocol's defs nest a few levels; this only guards against a
        // recursive schema.
        if depth > 32 {
            return;
        }
        if let Some(target) = schema.get("$ref").and_then(Value::as_str)
            && let Some(resolved) = self.resolve(target)
        {
            self.check_content_encoding(resolved, instance, path.clone(), problems, depth + 1);
        }
        if schema.get("contentEncoding").and_then(Value::as_str) == Some("base64")
            && let Some(text) = instance.as_str()
            && let Err(error) = base64_simd::STANDARD.decode_to_vec(text)
        {
            problems.push(format!(
                "{}: {text:?} is not standard padded base64 ({error})",
                display_path(&path)
            ));
        }
        for keyword in ["anyOf", "oneOf", "allOf"] {
            for branch in schema
                .get(keyword)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                self.check_content_encoding(branch, instance, path.clone(), problems, depth + 1);
            }
        }
        if let (Some(properties), Some(object)) = (
            schema.get("properties").and_then(Value::as_object),
            instance.as_object(),
        ) {
            for (name, property) in properties {
                if let Some(value) = object.get(name) {
                    let path = format!("{path}/{name}");
                    self.check_content_encoding(property, value, path, problems, depth + 1);
                }
            }
        }
        if let (Some(items), Some(array)) = (schema.get("items"), instance.as_array()) {
            for (index, value) in array.iter().enumerate() {
                let path = format!("{path}/{index}");
                self.check_content_encoding(items, value, path, problems, depth + 1);
            }
        }
    }
}

/// An instance path for messages: `/` for the whole value.
fn display_path(path: &str) -> &str {
    if path.is_empty() { "/" } else { path }
}

fn table_error(keyword: &str, reason: impl Into<String>) -> SchemaError {
    SchemaError::Table {
        keyword: keyword.to_owned(),
        reason: reason.into(),
    }
}

/// Reads `x-methods` into [`MethodSpec`]s.
fn read_methods(document: &Value) -> Result<BTreeMap<String, MethodSpec>, SchemaError> {
    let table = document
        .get("x-methods")
        .and_then(Value::as_object)
        .ok_or_else(|| table_error("x-methods", "missing or not an object"))?;
    let mut methods = BTreeMap::new();
    for (name, entry) in table {
        let field = |key: &str| entry.get(key).and_then(Value::as_str);
        let kind = match field("kind") {
            Some("request") => MethodKind::Request,
            Some("notification") => MethodKind::Notification,
            other => {
                return Err(table_error(
                    "x-methods",
                    format!("`{name}` has kind {other:?}"),
                ));
            }
        };
        let direction = match field("direction") {
            Some("clientToServer") => Direction::ClientToServer,
            Some("serverToClient") => Direction::ServerToClient,
            other => {
                return Err(table_error(
                    "x-methods",
                    format!("`{name}` has direction {other:?}"),
                ));
            }
        };
        let params = field("params")
            .ok_or_else(|| table_error("x-methods", format!("`{name}` has no params")))?
            .to_owned();
        let result = field("result").map(str::to_owned);
        if (kind == MethodKind::Request) != result.is_some() {
            return Err(table_error(
                "x-methods",
                format!("`{name}`: requests and only requests have a result"),
            ));
        }
        methods.insert(
            name.clone(),
            MethodSpec {
                name: name.clone(),
                kind,
                direction,
                params,
                result,
            },
        );
    }
    Ok(methods)
}

/// The error kinds: the `const`s (or `enum`) of the schema the error object's
/// `data.kind` refers to, and the codes their descriptions fix.
fn read_error_kinds(
    document: &Value,
    error_def: &str,
) -> Result<(Vec<String>, BTreeMap<String, i64>), SchemaError> {
    let follow = |schema: &Value| -> Option<Value> {
        let mut current = schema.clone();
        for _ in 0..8 {
            match current.get("$ref").and_then(Value::as_str) {
                Some(target) => current = document.pointer(target.strip_prefix('#')?)?.clone(),
                None => return Some(current),
            }
        }
        None
    };
    let error_object = document
        .pointer(error_def.strip_prefix('#').unwrap_or(error_def))
        .ok_or_else(|| table_error("x-error", format!("`{error_def}` is not a def")))?;
    let kind_schema = error_object
        .pointer("/properties/data")
        .and_then(follow)
        .and_then(|data| data.pointer("/properties/kind").cloned())
        .and_then(|kind| follow(&kind))
        .ok_or_else(|| table_error("x-error", "the error object has no `data.kind`"))?;
    let mut kinds = Vec::new();
    let mut codes = BTreeMap::new();
    if let Some(variants) = kind_schema.get("oneOf").and_then(Value::as_array) {
        for variant in variants {
            let Some(kind) = variant.get("const").and_then(Value::as_str) else {
                return Err(table_error(
                    "x-error",
                    "an error kind variant has no `const`",
                ));
            };
            kinds.push(kind.to_owned());
            let description = variant.get("description").and_then(Value::as_str);
            if let Some(code) = description.and_then(code_in_description) {
                codes.insert(kind.to_owned(), code);
            }
        }
    } else if let Some(values) = kind_schema.get("enum").and_then(Value::as_array) {
        kinds.extend(values.iter().filter_map(Value::as_str).map(str::to_owned));
    }
    if kinds.is_empty() {
        return Err(table_error("x-error", "`data.kind` lists no error kinds"));
    }
    Ok((kinds, codes))
}

/// The code in a description's "(code -32600)", if it has one.
fn code_in_description(description: &str) -> Option<i64> {
    let start = description.find("(code ")? + "(code ".len();
    let rest = &description[start..];
    let end = rest.find(')')?;
    rest[..end].trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_schema_yields_the_tables() {
        let schema = ProtocolSchema::embedded();
        assert_eq!(schema.methods().len(), exec_protocol::METHODS.len());
        assert_eq!(schema.error_def(), "#/$defs/ErrorObject");
        assert_eq!(schema.code_of_kind("notInitialized"), Some(-32600));
        assert_eq!(schema.code_of_kind("invalidPath"), Some(-32602));
        assert_eq!(schema.code_of_kind("notFound"), Some(-32004));
        assert_eq!(schema.code_of_kind("io"), None);
        assert!(schema.error_kinds().iter().any(|kind| kind == "io"));
    }

    #[test]
    fn content_encoding_is_checked_where_the_schema_says_base64() {
        let schema = ProtocolSchema::embedded();
        let read = serde_json::json!({
            "chunks": [{"seq": 1, "stream": "stdout", "chunk": "not base64!"}],
            "nextSeq": 2, "exited": false, "exitCode": null, "signal": null,
            "closed": false, "droppedBytes": 0
        });
        let problems = schema.validate("#/$defs/ProcessReadResponse", &read);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("/chunks/0/chunk:"), "{problems:?}");
    }
}
