//! The schema's `x-binaryFrames` keyword: how `initialize` negotiates binary
//! WebSocket frames, and, per frame kind, its code, the notification it
//! stands for and the layout of its bytes. Parsed and checked here (every
//! ref resolves, every param of the notification has exactly one field,
//! enum codes match the enum def's values, fixed-size fields come first so
//! that their offsets are constants); `rust` and `typescript` render the
//! constants from the [`BinaryFrames`] this returns.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// The checked `x-binaryFrames` keyword.
#[derive(Debug, Clone)]
pub struct BinaryFrames {
    /// The `initialize` params field that asks for binary frames.
    pub params_field: String,
    /// The `initialize` result field that says whether they were granted.
    pub result_field: String,
    /// Every frame kind, in schema order.
    pub frames: Vec<FrameKind>,
}

/// One frame kind of `x-binaryFrames.frames`.
#[derive(Debug, Clone)]
pub struct FrameKind {
    /// The kind's name in the schema, e.g. `processOutput`.
    pub name: String,
    /// Its code, the frame's first byte.
    pub code: u8,
    /// The notification it stands for, e.g. `process/output`.
    pub method: String,
    /// The fields, in wire order.
    pub fields: Vec<Field>,
    /// Bytes before the first variable-length field (the fixed header).
    pub header_length: usize,
}

/// One field of a frame's layout.
#[derive(Debug, Clone)]
pub struct Field {
    /// The field's name in the layout, e.g. `processIdLength`.
    pub name: String,
    /// How it is written.
    pub wire: WireType,
    /// Where it starts, in bytes from the frame's start: every field up to
    /// and including the first variable-length one has a fixed offset.
    pub offset: Option<usize>,
    /// The notification param the field carries; `None` for the kind and
    /// for a length field.
    pub param: Option<String>,
    /// For a field holding an enum param, the code of each enum value.
    pub codes: Vec<(String, u8)>,
    /// For a field holding an enum param, the enum's def.
    pub enum_def: Option<String>,
}

/// The wire types a layout field may have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireType {
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

impl WireType {
    /// The size in bytes of a fixed-size type.
    pub fn size(&self) -> Option<usize> {
        match self {
            Self::U8 => Some(1),
            Self::U16Be => Some(2),
            Self::U64Be => Some(8),
            Self::Utf8 { .. } | Self::Bytes => None,
        }
    }

    /// The largest value of an integer type.
    pub fn max(&self) -> Option<u64> {
        match self {
            Self::U8 => Some(u64::from(u8::MAX)),
            Self::U16Be => Some(u64::from(u16::MAX)),
            Self::U64Be => Some(u64::MAX),
            Self::Utf8 { .. } | Self::Bytes => None,
        }
    }
}

/// The first byte of a JSON object (`{`): never a frame kind code, so that
/// a peer tells a binary message holding JSON text from a frame.
const OPEN_BRACE: u64 = b'{' as u64;

/// The layout field every frame starts with: the kind byte.
const KIND_FIELD: &str = "kind";

/// A server-to-client notification of `x-methods`: its name and params def.
pub struct ServerNotification<'a> {
    /// The wire name, e.g. `process/output`.
    pub name: &'a str,
    /// The name of its params def.
    pub params: &'a str,
}

/// Parses and checks `x-binaryFrames` (absent: `None`) against the defs and
/// the server's notifications; every error names the frame kind and field
/// at fault.
pub fn parse(
    json: &Value,
    defs: &BTreeMap<String, Value>,
    methods: &[ServerNotification<'_>],
) -> Result<Option<BinaryFrames>> {
    let Some(keyword) = json.get("x-binaryFrames") else {
        return Ok(None);
    };
    parse_keyword(keyword, defs, methods)
        .context("in `x-binaryFrames`")
        .map(Some)
}

fn parse_keyword(
    keyword: &Value,
    defs: &BTreeMap<String, Value>,
    methods: &[ServerNotification<'_>],
) -> Result<BinaryFrames> {
    let negotiation = keyword
        .get("negotiation")
        .context("`negotiation` is missing")?;
    let field_of = |def_key: &str, field_key: &str| -> Result<String> {
        let reference = string(negotiation, def_key).context("in `negotiation`")?;
        let def =
            def_name(reference, defs).with_context(|| format!("in `negotiation.{def_key}`"))?;
        let field = string(negotiation, field_key).context("in `negotiation`")?;
        if properties(&defs[&def]).and_then(|p| p.get(field)).is_none() {
            bail!("`negotiation.{field_key}`: def `{def}` has no field `{field}`");
        }
        Ok(field.to_owned())
    };
    let params_field = field_of("params", "paramsField")?;
    let result_field = field_of("result", "resultField")?;
    match negotiation.get("transports").and_then(Value::as_array) {
        Some(transports)
            if !transports.is_empty()
                && transports
                    .iter()
                    .all(|t| matches!(t.as_str(), Some("websocket"))) => {}
        _ => bail!(
            "`negotiation.transports` must list `websocket` (the one transport with binary messages)"
        ),
    }
    if keyword.get("byteOrder").and_then(Value::as_str) != Some("bigEndian") {
        bail!("`byteOrder` must be \"bigEndian\"");
    }
    let Some(frames_json) = keyword.get("frames").and_then(Value::as_object) else {
        bail!("`frames` must be an object of frame kinds");
    };
    if frames_json.is_empty() {
        bail!("`frames` lists no frame kind");
    }
    let mut frames = Vec::new();
    let mut codes = BTreeSet::new();
    for (name, frame) in frames_json {
        let frame = parse_frame(name, frame, defs, methods)
            .with_context(|| format!("in frame kind `{name}`"))?;
        if !codes.insert(frame.code) {
            bail!("frame kind `{name}`: code {} is used twice", frame.code);
        }
        frames.push(frame);
    }
    Ok(BinaryFrames {
        params_field,
        result_field,
        frames,
    })
}

fn parse_frame(
    name: &str,
    frame: &Value,
    defs: &BTreeMap<String, Value>,
    methods: &[ServerNotification<'_>],
) -> Result<FrameKind> {
    if !name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        || !name.chars().all(|c| c.is_ascii_alphanumeric())
    {
        bail!("the name must be camelCase ASCII");
    }
    let code = match frame.get("code").and_then(Value::as_u64) {
        Some(OPEN_BRACE) => {
            bail!(
                "`code` may not be {OPEN_BRACE} (`{{`): a binary message starting so is JSON text"
            )
        }
        Some(code @ 1..=255) => code as u8,
        other => bail!("`code` must be an integer from 1 to 255, found {other:?}"),
    };
    let method_name = string(frame, "method")?;
    let Some(method) = methods.iter().find(|m| m.name == method_name) else {
        bail!(
            "`method` names `{method_name}`, which is no server-to-client notification of `x-methods`"
        );
    };
    let params = def_name(string(frame, "params")?, defs).context("in `params`")?;
    if params != method.params {
        bail!(
            "`params` is `{params}`, but `{method_name}` takes `{}`",
            method.params
        );
    }
    let Some(layout) = frame.get("layout").and_then(Value::as_array) else {
        bail!("`layout` must be an array of fields");
    };
    let fields = parse_layout(layout, &defs[&params], defs)?;
    let header_length = fields
        .iter()
        .take_while(|field| field.wire.size().is_some())
        .filter_map(|field| field.wire.size())
        .sum();
    Ok(FrameKind {
        name: name.to_owned(),
        code,
        method: method_name.to_owned(),
        fields,
        header_length,
    })
}

fn parse_layout(
    layout: &[Value],
    params_def: &Value,
    defs: &BTreeMap<String, Value>,
) -> Result<Vec<Field>> {
    let params_properties = properties(params_def).context("the params def has no properties")?;
    let mut fields: Vec<Field> = Vec::new();
    let mut used_params = BTreeSet::new();
    let mut length_fields = BTreeSet::new();
    let mut offset = Some(0_usize);
    for (index, entry) in layout.iter().enumerate() {
        let name = string(entry, "name").with_context(|| format!("in layout field {index}"))?;
        let in_field = || format!("in layout field `{name}`");
        if fields.iter().any(|field| field.name == name) {
            bail!("layout field `{name}` appears twice");
        }
        if entry
            .get("description")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            bail!("layout field `{name}` has no `description`");
        }
        let wire = match string(entry, "type").with_context(in_field)? {
            "u8" => WireType::U8,
            "u16be" => WireType::U16Be,
            "u64be" => WireType::U64Be,
            "utf8" => WireType::Utf8 {
                length: length_field(entry, &fields).with_context(in_field)?,
            },
            "bytes" => WireType::Bytes,
            other => bail!(
                "layout field `{name}`: unknown type `{other}` (u8, u16be, u64be, utf8, bytes)"
            ),
        };
        if index == 0 && (name != KIND_FIELD || wire != WireType::U8) {
            bail!("the first layout field must be `{KIND_FIELD}`, of type u8");
        }
        if let Some(previous) = fields.last()
            && previous.wire == WireType::Bytes
        {
            bail!(
                "layout field `{name}` follows `bytes` field `{}`, which runs to the end",
                previous.name
            );
        }
        if wire.size().is_some() && fields.iter().any(|field| field.wire.size().is_none()) {
            bail!("layout field `{name}`: fixed-size fields must come before variable-length ones");
        }
        if let WireType::Utf8 { length } = &wire
            && !length_fields.insert(length.clone())
        {
            bail!(
                "layout field `{name}`: length field `{length}` already gives another field's length"
            );
        }
        let mut codes = Vec::new();
        let mut enum_def = None;
        let param = match entry.get("param").map(|param| param.as_str()) {
            None => None,
            Some(None) => bail!("layout field `{name}`: `param` must be a string"),
            Some(Some(param)) => {
                if name == KIND_FIELD {
                    bail!("the `{KIND_FIELD}` field carries no param");
                }
                let Some(schema) = params_properties.get(param) else {
                    bail!("layout field `{name}`: the params have no field `{param}`");
                };
                if !used_params.insert(param.to_owned()) {
                    bail!("layout field `{name}`: param `{param}` is carried twice");
                }
                codes = enum_codes(entry, &wire, schema, defs).with_context(in_field)?;
                if !codes.is_empty() {
                    let Some(def) = schema
                        .get("$ref")
                        .and_then(Value::as_str)
                        .and_then(|reference| reference.strip_prefix("#/$defs/"))
                    else {
                        bail!("layout field `{name}`: an enum param must `$ref` its enum def");
                    };
                    enum_def = Some(def.to_owned());
                }
                Some(param.to_owned())
            }
        };
        if entry.get("enum").is_some() && codes.is_empty() {
            bail!("layout field `{name}`: `enum` needs a `param` holding an enum");
        }
        fields.push(Field {
            name: name.to_owned(),
            offset,
            wire: wire.clone(),
            param,
            codes,
            enum_def,
        });
        offset = offset.and_then(|offset| wire.size().map(|size| offset + size));
    }
    for field in &fields {
        let is_length = length_fields.contains(&field.name);
        let carries_param = field.param.is_some();
        if field.name != KIND_FIELD && !is_length && !carries_param {
            bail!(
                "layout field `{}` carries no param and gives no length",
                field.name
            );
        }
        if is_length && carries_param {
            bail!(
                "layout field `{}` gives a length, so it carries no param",
                field.name
            );
        }
    }
    let required: BTreeSet<String> = params_def
        .get("required")
        .and_then(Value::as_array)
        .map(|required| {
            required
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if let Some(missing) = required.difference(&used_params).next() {
        bail!("required param `{missing}` has no layout field");
    }
    Ok(fields)
}

/// The `length` of a `utf8` field: an earlier integer field.
fn length_field(entry: &Value, earlier: &[Field]) -> Result<String> {
    let length = string(entry, "length").context("a `utf8` field needs `length`")?;
    match earlier.iter().find(|field| field.name == length) {
        Some(field) if matches!(field.wire, WireType::U8 | WireType::U16Be) => {
            Ok(length.to_owned())
        }
        Some(_) => bail!("length field `{length}` must be of type u8 or u16be"),
        None => bail!("length field `{length}` is not an earlier layout field"),
    }
}

/// The codes of an enum param: `enum` maps each value of the param's enum
/// def to a code that fits the field's type; the values must be exactly
/// the def's.
fn enum_codes(
    entry: &Value,
    wire: &WireType,
    param_schema: &Value,
    defs: &BTreeMap<String, Value>,
) -> Result<Vec<(String, u8)>> {
    let values = enum_values(param_schema, defs);
    let Some(mapping) = entry.get("enum") else {
        if values.is_some() {
            bail!("the param is an enum: the field needs an `enum` of codes");
        }
        return Ok(Vec::new());
    };
    let Some(values) = values else {
        bail!("`enum` is given, but the param is not an enum");
    };
    if *wire != WireType::U8 {
        bail!("an `enum` field must be of type u8");
    }
    let Some(mapping) = mapping.as_object() else {
        bail!("`enum` must map each value to its code");
    };
    let mut codes = Vec::new();
    let mut seen = BTreeSet::new();
    for (value, code) in mapping {
        let code = match code.as_u64() {
            Some(code) if code <= u64::from(u8::MAX) => code as u8,
            _ => bail!("`enum.{value}`: the code must be an integer from 0 to 255"),
        };
        if !seen.insert(code) {
            bail!("`enum`: code {code} is used twice");
        }
        codes.push((value.clone(), code));
    }
    let given: BTreeSet<&str> = mapping.keys().map(String::as_str).collect();
    let expected: BTreeSet<&str> = values.iter().map(String::as_str).collect();
    if given != expected {
        bail!("`enum` maps {given:?}, but the enum's values are {expected:?}");
    }
    codes.sort_by_key(|(_, code)| *code);
    Ok(codes)
}

/// The string values of an enum param (through its `$ref`): the `const`s of
/// a `oneOf`, or an `enum` list; `None` when it is not an enum.
fn enum_values(schema: &Value, defs: &BTreeMap<String, Value>) -> Option<Vec<String>> {
    let schema = match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => defs.get(reference.strip_prefix("#/$defs/")?)?,
        None => schema,
    };
    if let Some(variants) = schema.get("oneOf").and_then(Value::as_array) {
        return variants
            .iter()
            .map(|variant| {
                variant
                    .get("const")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .collect();
    }
    schema.get("enum").and_then(Value::as_array).map(|values| {
        values
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    })
}

/// Resolves `#/$defs/X` to `X`, failing when `X` is not a def.
fn def_name(reference: &str, defs: &BTreeMap<String, Value>) -> Result<String> {
    match reference.strip_prefix("#/$defs/") {
        Some(name) if defs.contains_key(name) => Ok(name.to_owned()),
        _ => bail!("`{reference}` names no def"),
    }
}

fn properties(def: &Value) -> Option<&serde_json::Map<String, Value>> {
    def.get("properties").and_then(Value::as_object)
}

fn string<'a>(value: &'a Value, key: &str) -> Result<&'a str> {
    value
        .get(key)
        .and_then(Value::as_str)
        .with_context(|| format!("`{key}` must be a string"))
}
