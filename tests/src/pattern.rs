//! The placeholder language of the corpus (tests/README.md, "Placeholders"):
//! [`substitute`] fills in the messages a case sends, [`matches`] compares a
//! received value with an expected pattern and captures values into [`Vars`].
//!
//! - `${NAME}` in any string is replaced by variable `NAME` (`tmp`, or a
//!   captured value); a string that is exactly `${NAME}` becomes the value
//!   itself, whatever its JSON type.
//! - `$base64:TEXT`: the base64 of TEXT's UTF-8 bytes (when sending); a base64
//!   string that decodes to TEXT (when matching).
//! - Matching only: `$any` (present, any value), `$absent` (the member is
//!   missing), `$string`, `$integer`, `$number`, `$boolean`, `$object`,
//!   `$array`, `$capture:NAME` (any value, stored as variable NAME),
//!   `$contains:TEXT` (a string containing TEXT).
//! - `$$` at the start of a string stands for a literal `$`, and `$${`
//!   anywhere for a literal `${`.
//! - An object pattern matches an object having at least its members;
//!   arrays match element by element and must have the same length.

use std::collections::BTreeMap;

use serde_json::Value;

/// Variables of one case: `tmp` and the captured values.
#[derive(Debug, Clone, Default)]
pub struct Vars(BTreeMap<String, Value>);

impl Vars {
    /// Sets variable `name`.
    pub fn set(&mut self, name: &str, value: Value) {
        self.0.insert(name.to_owned(), value);
    }

    /// Variable `name`, if set.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }
}

/// The value `template` stands for: every `${NAME}`, `$base64:` and `$$`
/// replaced. Errors name an unknown variable or a placeholder that only
/// matching understands.
pub fn substitute(template: &Value, vars: &Vars) -> Result<Value, String> {
    Ok(match template {
        Value::String(text) => substitute_string(text, vars)?,
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| substitute(item, vars))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(members) => Value::Object(
            members
                .iter()
                .map(|(key, value)| Ok((key.clone(), substitute(value, vars)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

fn substitute_string(text: &str, vars: &Vars) -> Result<Value, String> {
    if let Some(literal) = text.strip_prefix("$$") {
        return Ok(Value::String(format!("${literal}")));
    }
    if let Some(plain) = text.strip_prefix("$base64:") {
        let plain = interpolate(plain, vars)?;
        return Ok(Value::String(base64_simd::STANDARD.encode_to_string(plain)));
    }
    if let Some(name) = whole_variable(text) {
        return vars
            .get(name)
            .cloned()
            .ok_or_else(|| format!("unknown variable `{name}` in {text:?}"));
    }
    if text.starts_with('$') && !text.starts_with("${") {
        return Err(format!(
            "{text:?} is a matching placeholder; a message to send cannot hold it (write `$$` for a literal `$`)"
        ));
    }
    Ok(Value::String(interpolate(text, vars)?))
}

/// `NAME` when `text` is exactly `${NAME}`.
fn whole_variable(text: &str) -> Option<&str> {
    let name = text.strip_prefix("${")?.strip_suffix('}')?;
    (!name.contains(['{', '}', '$'])).then_some(name)
}

/// `text` with each `${NAME}` replaced by the variable as text (a string
/// without quotes, other values as JSON), and each `$${` by a literal `${`.
pub fn interpolate(text: &str, vars: &Vars) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        if rest[..start].ends_with('$') {
            // `$${` is a literal `${`.
            out.push_str(&rest[..start - 1]);
            out.push_str("${");
            rest = &rest[start + 2..];
            continue;
        }
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed `${{` in {text:?}"))?;
        let name = &after[..end];
        match vars.get(name) {
            Some(Value::String(value)) => out.push_str(value),
            Some(value) => out.push_str(&value.to_string()),
            None => return Err(format!("unknown variable `{name}` in {text:?}")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Whether `actual` (`None`: the member is missing) matches `pattern`;
/// `$capture:` placeholders store what they matched in `vars`. The error
/// says where and how they differ (`path` is where `actual` sits).
pub fn matches(
    pattern: &Value,
    actual: Option<&Value>,
    vars: &mut Vars,
    path: &str,
) -> Result<(), String> {
    if let Value::String(text) = pattern
        && text.starts_with('$')
        && !text.starts_with("$$")
        && !text.starts_with("${")
    {
        return match_placeholder(text, actual, vars, path);
    }
    let Some(actual) = actual else {
        return Err(format!("{path}: missing, expected {pattern}"));
    };
    match (pattern, actual) {
        (Value::Object(expected), Value::Object(members)) => {
            for (key, value) in expected {
                matches(value, members.get(key), vars, &format!("{path}/{key}"))?;
            }
            Ok(())
        }
        (Value::Array(expected), Value::Array(items)) => {
            if expected.len() != items.len() {
                return Err(format!(
                    "{path}: expected {} items, got {}: {actual}",
                    expected.len(),
                    items.len()
                ));
            }
            for (index, (value, item)) in expected.iter().zip(items).enumerate() {
                matches(value, Some(item), vars, &format!("{path}/{index}"))?;
            }
            Ok(())
        }
        (Value::String(_), _) => {
            let expected = substitute(pattern, vars).map_err(|error| format!("{path}: {error}"))?;
            if &expected == actual {
                Ok(())
            } else {
                Err(format!("{path}: expected {expected}, got {actual}"))
            }
        }
        _ if pattern == actual => Ok(()),
        _ => Err(format!("{path}: expected {pattern}, got {actual}")),
    }
}

fn match_placeholder(
    text: &str,
    actual: Option<&Value>,
    vars: &mut Vars,
    path: &str,
) -> Result<(), String> {
    if text == "$absent" {
        return match actual {
            None => Ok(()),
            Some(actual) => Err(format!("{path}: expected no member, got {actual}")),
        };
    }
    let Some(actual) = actual else {
        return Err(format!("{path}: missing, expected {text}"));
    };
    let fits = match text {
        "$any" => true,
        "$string" => actual.is_string(),
        "$integer" => actual.is_i64() || actual.is_u64(),
        "$number" => actual.is_number(),
        "$boolean" => actual.is_boolean(),
        "$object" => actual.is_object(),
        "$array" => actual.is_array(),
        _ => {
            if let Some(name) = text.strip_prefix("$capture:") {
                vars.set(name, actual.clone());
                true
            } else if let Some(needle) = text.strip_prefix("$contains:") {
                let needle =
                    interpolate(needle, vars).map_err(|error| format!("{path}: {error}"))?;
                actual.as_str().is_some_and(|text| text.contains(&needle))
            } else if let Some(plain) = text.strip_prefix("$base64:") {
                let plain = interpolate(plain, vars).map_err(|error| format!("{path}: {error}"))?;
                actual
                    .as_str()
                    .and_then(|text| base64_simd::STANDARD.decode_to_vec(text).ok())
                    .is_some_and(|bytes| bytes == plain.as_bytes())
            } else {
                return Err(format!("{path}: unknown placeholder {text:?}"));
            }
        }
    };
    if fits {
        Ok(())
    } else {
        Err(format!("{path}: expected {text}, got {actual}"))
    }
}

/// Whether `text` matches a string pattern (`$contains:`, `$any`, or a
/// literal with `${NAME}`s), for the corpus's expected output texts.
pub fn matches_text(pattern: &str, text: &str, vars: &mut Vars, path: &str) -> Result<(), String> {
    matches(
        &Value::String(pattern.to_owned()),
        Some(&Value::String(text.to_owned())),
        vars,
        path,
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn substitution_fills_variables_and_encodes() {
        let mut vars = Vars::default();
        vars.set("tmp", json!("/tmp/x"));
        vars.set("pid", json!(42));
        let sent = substitute(
            &json!({"path": "${tmp}/f", "pid": "${pid}", "data": "$base64:hi\n", "raw": "$$any", "sh": "echo $${HOME} $$"}),
            &vars,
        );
        assert_eq!(
            sent,
            Ok(
                json!({"path": "/tmp/x/f", "pid": 42, "data": "aGkK", "raw": "$any", "sh": "echo ${HOME} $$"})
            )
        );
        assert!(substitute(&json!("$any"), &vars).is_err());
        assert!(substitute(&json!("${missing}"), &vars).is_err());
    }

    #[test]
    fn matching_captures_and_checks_types() {
        let mut vars = Vars::default();
        let actual = json!({"pid": 7, "processId": "p", "extra": true, "chunk": "aGkK"});
        let pattern = json!({"pid": "$capture:pid", "processId": "p", "chunk": "$base64:hi\n", "gone": "$absent"});
        assert_eq!(matches(&pattern, Some(&actual), &mut vars, ""), Ok(()));
        assert_eq!(vars.get("pid"), Some(&json!(7)));
        assert_eq!(
            matches(&json!({"pid": "${pid}"}), Some(&actual), &mut vars, ""),
            Ok(())
        );
        vars.set("tmp", json!("/t"));
        assert_eq!(
            matches(&json!("${tmp}/f"), Some(&json!("/t/f")), &mut vars, ""),
            Ok(())
        );
        assert!(matches(&json!({"pid": "$string"}), Some(&actual), &mut vars, "").is_err());
        assert!(matches(&json!({"extra": "$absent"}), Some(&actual), &mut vars, "").is_err());
        assert!(matches(&json!([1]), Some(&json!([1, 2])), &mut vars, "").is_err());
    }
}
