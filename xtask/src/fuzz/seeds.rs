//! The fuzz target's seeds: each conformance case (`tests/cases`) written
//! as the byte stream its client sends over stdio, one message per line,
//! with the corpus's placeholders (see `tests/README.md`) filled in.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::Value;

/// Writes one seed per conformance case into `seeds`: the lines its client
/// sends (the handshake first when the case has one), with `${tmp}` as
/// `scratch`. Returns how many.
pub(super) fn write(root: &Path, seeds: &Path, scratch: &Path) -> Result<usize> {
    let cases = root.join("tests").join("cases");
    let mut files = Vec::new();
    collect_json(&cases, &mut files)?;
    let scratch = scratch.display().to_string();
    for file in &files {
        let text =
            fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let case: Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", file.display()))?;
        let stream = seed_of(&case, &scratch);
        let name = file
            .strip_prefix(&cases)
            .unwrap_or(file)
            .with_extension("")
            .display()
            .to_string()
            .replace('/', "-");
        fs::write(seeds.join(name), stream).context("writing a seed")?;
    }
    Ok(files.len())
}

/// Every `.json` file under `directory`, recursively.
fn collect_json(directory: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    for entry in
        fs::read_dir(directory).with_context(|| format!("listing {}", directory.display()))?
    {
        let path = entry?.path();
        if path.is_dir() {
            collect_json(&path, files)?;
        } else if path
            .extension()
            .is_some_and(|extension| extension == "json")
        {
            files.push(path);
        }
    }
    files.sort();
    Ok(())
}

/// The byte stream a case's client sends over stdio. Captured variables
/// (a pid) become 1: a seed only needs to be close to a real session.
fn seed_of(case: &Value, scratch: &str) -> String {
    let mut lines = Vec::new();
    if case["handshake"] != Value::Bool(false) {
        lines.push(
            r#"{"jsonrpc":"2.0","id":"handshake","method":"initialize","params":{"clientName":"fuzz"}}"#
                .to_owned(),
        );
        lines.push(r#"{"jsonrpc":"2.0","method":"initialized"}"#.to_owned());
    }
    for step in case["steps"].as_array().into_iter().flatten() {
        if let Some(message) = step.get("send") {
            lines.push(substitute(message, scratch).to_string());
        }
        if let Some(raw) = step.get("sendRaw").and_then(Value::as_str) {
            lines.push(variables(raw, scratch));
        }
    }
    let mut stream = lines.join("\n");
    stream.push('\n');
    stream
}

/// A `send` value with the corpus's placeholders replaced (see `tests/README.md`).
fn substitute(value: &Value, scratch: &str) -> Value {
    match value {
        Value::String(text) => {
            if let Some(plain) = text.strip_prefix("$base64:") {
                Value::String(base64(variables(plain, scratch).as_bytes()))
            } else if text.starts_with("${") && text.ends_with('}') && text != "${tmp}" {
                Value::from(1)
            } else {
                Value::String(variables(
                    text.strip_prefix('$')
                        .filter(|rest| rest.starts_with('$'))
                        .unwrap_or(text),
                    scratch,
                ))
            }
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|item| substitute(item, scratch)).collect())
        }
        Value::Object(members) => Value::Object(
            members
                .iter()
                .map(|(name, member)| (name.clone(), substitute(member, scratch)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `text` with `${tmp}` as `scratch`, other `${NAME}`s as 1, and `$${` as `${`.
fn variables(text: &str, scratch: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        if rest[..start].ends_with('$') {
            out.push_str(&rest[..start - 1]);
            out.push_str("${");
            rest = &rest[start + 2..];
            continue;
        }
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return out;
        };
        out.push_str(if &after[..end] == "tmp" { scratch } else { "1" });
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Standard padded base64 of `bytes`, with the workspace's one codec.
fn base64(bytes: &[u8]) -> String {
    base64_simd::STANDARD.encode_to_string(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_standard_and_padded() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"x"), "eA==");
        assert_eq!(base64(b"hi"), "aGk=");
        assert_eq!(base64(b"hello\n"), "aGVsbG8K");
    }

    #[test]
    fn placeholders_become_values() {
        let message = serde_json::json!({
            "path": "${tmp}/f",
            "data": "$base64:x",
            "pid": "${pid}",
            "script": "echo $${HOME}",
            "dollar": "$$5",
        });
        assert_eq!(
            substitute(&message, "/scratch"),
            serde_json::json!({
                "path": "/scratch/f",
                "data": "eA==",
                "pid": 1,
                "script": "echo ${HOME}",
                "dollar": "$5",
            })
        );
    }
}
