//! Loading `schema/exec-server.schema.json` and checking the parts of it that
//! typify does not: every `$ref` resolves, every def and field is described,
//! `x-methods` / `x-error` name defs that exist, `x-protocolVersion`
//! names the version, and `x-binaryFrames` is well-formed (see
//! `binary_frames`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::binary_frames::{self, BinaryFrames, ServerNotification};

/// Whether a method is answered (request) or fire-and-forget (notification).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodKind {
    Request,
    Notification,
}

/// Which side sends the method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    ClientToServer,
    ServerToClient,
}

/// One entry of `x-methods`.
#[derive(Debug, Clone)]
pub struct Method {
    /// The wire name, e.g. `process/start`.
    pub name: String,
    pub kind: MethodKind,
    pub direction: Direction,
    /// Name of the params def (the last segment of `#/$defs/X`).
    pub params: String,
    /// Name of the result def; requests only.
    pub result: Option<String>,
}

/// The parsed schema: its version, its defs and its method table.
pub struct Schema {
    /// `x-protocolVersion`: the version `initialize` reports, e.g.
    /// `exec-server.v1`; both SDKs check it.
    pub protocol_version: String,
    pub defs: BTreeMap<String, Value>,
    pub methods: Vec<Method>,
    pub error_def: String,
    /// `x-binaryFrames`, checked; `None` when the schema has none.
    pub binary_frames: Option<BinaryFrames>,
}

const DEFS_PREFIX: &str = "#/$defs/";

/// Reads and checks the schema file; every error names the def, field or method at fault.
pub fn load(path: &Path) -> Result<Schema> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let json: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", path.display()))?;
    parse(json)
}

/// Checks an already-parsed schema document.
pub fn parse(json: Value) -> Result<Schema> {
    let protocol_version = match json.get("x-protocolVersion").and_then(Value::as_str) {
        Some(version) if !version.is_empty() => version.to_owned(),
        _ => {
            bail!("the schema has no `x-protocolVersion` string (the version `initialize` reports)")
        }
    };
    let Some(defs) = json.get("$defs").and_then(Value::as_object) else {
        bail!("the schema has no `$defs` object");
    };
    let defs: BTreeMap<String, Value> = defs
        .iter()
        .map(|(name, def)| (name.clone(), def.clone()))
        .collect();

    for (name, def) in &defs {
        check_def(name, def, &defs).with_context(|| format!("in def `{name}`"))?;
    }

    let Some(methods_json) = json.get("x-methods").and_then(Value::as_object) else {
        bail!("the schema has no `x-methods` object");
    };
    let mut methods = Vec::new();
    for (name, entry) in methods_json {
        let method = parse_method(name, entry, &defs)
            .with_context(|| format!("in `x-methods` entry `{name}`"))?;
        methods.push(method);
    }

    let error_def = match json.get("x-error").and_then(Value::as_str) {
        Some(reference) => def_name(reference, &defs).context("in `x-error`")?,
        None => bail!("the schema has no `x-error` string naming the error object def"),
    };

    let notifications: Vec<ServerNotification<'_>> = methods
        .iter()
        .filter(|method| {
            method.kind == MethodKind::Notification && method.direction == Direction::ServerToClient
        })
        .map(|method| ServerNotification {
            name: &method.name,
            params: &method.params,
        })
        .collect();
    let binary_frames = binary_frames::parse(&json, &defs, &notifications)?;

    Ok(Schema {
        protocol_version,
        defs,
        methods,
        error_def,
        binary_frames,
    })
}

fn parse_method(name: &str, entry: &Value, defs: &BTreeMap<String, Value>) -> Result<Method> {
    let field = |key: &str| entry.get(key).and_then(Value::as_str);
    let kind = match field("kind") {
        Some("request") => MethodKind::Request,
        Some("notification") => MethodKind::Notification,
        other => bail!("`kind` must be \"request\" or \"notification\", found {other:?}"),
    };
    let direction = match field("direction") {
        Some("clientToServer") => Direction::ClientToServer,
        Some("serverToClient") => Direction::ServerToClient,
        other => {
            bail!("`direction` must be \"clientToServer\" or \"serverToClient\", found {other:?}")
        }
    };
    let params = match field("params") {
        Some(reference) => def_name(reference, defs).context("in `params`")?,
        None => bail!("`params` is missing"),
    };
    let result = match (kind, field("result")) {
        (MethodKind::Request, Some(reference)) => {
            Some(def_name(reference, defs).context("in `result`")?)
        }
        (MethodKind::Request, None) => bail!("a request needs a `result`"),
        (MethodKind::Notification, Some(_)) => bail!("a notification has no `result`"),
        (MethodKind::Notification, None) => None,
    };
    Ok(Method {
        name: name.to_owned(),
        kind,
        direction,
        params,
        result,
    })
}

/// Resolves `#/$defs/X` to `X`, failing when `X` is not a def.
fn def_name(reference: &str, defs: &BTreeMap<String, Value>) -> Result<String> {
    let Some(name) = reference.strip_prefix(DEFS_PREFIX) else {
        bail!("`{reference}` is not of the form `{DEFS_PREFIX}Name` (keep one flat `$defs`)");
    };
    if !defs.contains_key(name) {
        bail!("`{reference}` names no def");
    }
    Ok(name.to_owned())
}

/// Checks one def: it is described, its properties are described, and its refs resolve.
fn check_def(name: &str, def: &Value, defs: &BTreeMap<String, Value>) -> Result<()> {
    if !def.is_object() {
        bail!("the def must be a JSON object");
    }
    if def
        .get("description")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        bail!("the def has no `description` (it becomes the doc of the generated types)");
    }
    if let Some(properties) = def.get("properties").and_then(Value::as_object) {
        for (field, schema) in properties {
            if schema
                .get("description")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                bail!("field `{field}` has no `description`");
            }
        }
        if let Some(required) = def.get("required").and_then(Value::as_array) {
            for field in required {
                let field = field.as_str().unwrap_or_default();
                if !properties.contains_key(field) {
                    bail!("`required` names `{field}`, which is not in `properties`");
                }
            }
        }
    }
    check_refs(def, defs).with_context(|| format!("in def `{name}`"))
}

fn check_refs(value: &Value, defs: &BTreeMap<String, Value>) -> Result<()> {
    match value {
        Value::Object(map) => {
            if let Some(reference) = map.get("$ref") {
                let reference = reference.as_str().context("`$ref` must be a string")?;
                def_name(reference, defs)?;
            }
            map.values().try_for_each(|child| check_refs(child, defs))
        }
        Value::Array(items) => items.iter().try_for_each(|child| check_refs(child, defs)),
        _ => Ok(()),
    }
}

/// The defs a def refers to, directly or through other defs, itself included.
pub fn closure(name: &str, defs: &BTreeMap<String, Value>) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![name.to_owned()];
    while let Some(next) = stack.pop() {
        if !seen.insert(next.clone()) {
            continue;
        }
        if let Some(def) = defs.get(&next) {
            collect_refs(def, &mut stack);
        }
    }
    seen
}

fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(name) = map
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix(DEFS_PREFIX))
            {
                out.push(name.to_owned());
            }
            map.values().for_each(|child| collect_refs(child, out));
        }
        Value::Array(items) => items.iter().for_each(|child| collect_refs(child, out)),
        _ => {}
    }
}
