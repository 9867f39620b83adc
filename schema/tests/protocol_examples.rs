//! The example messages of protocol.md (`tests/examples.json`, one per method
//! and a set of error objects) against both the schema and the generated types:
//! each validates with the `jsonschema` crate, deserializes into its Rust type,
//! and serializes back to the same JSON.

use std::collections::BTreeSet;

use exec_protocol::{
    ErrorKind, ErrorObject, FsCreateDirectoryParams, FsRemoveParams, METHODS, MethodKind,
    ProcessReadParams, ProcessStartParams, SCHEMA_JSON, TerminalSize,
};
use pretty_assertions::assert_eq;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

fn schema() -> Value {
    serde_json::from_str(SCHEMA_JSON).expect("the schema is JSON")
}

fn examples() -> Value {
    serde_json::from_str(include_str!("examples.json")).expect("examples.json is JSON")
}

fn validators() -> jsonschema::ValidatorMap {
    jsonschema::validator_map_for(&schema()).expect("the schema compiles")
}

/// Schema validation errors of `instance` against `#/$defs/{def}`, as text.
fn schema_errors(
    validators: &jsonschema::ValidatorMap,
    def: &str,
    instance: &Value,
) -> Vec<String> {
    let validator = validators
        .get(&format!("#/$defs/{def}"))
        .unwrap_or_else(|| panic!("no validator for def `{def}`"));
    validator
        .iter_errors(instance)
        .map(|error| format!("{}: {error}", error.instance_path()))
        .collect()
}

/// Asserts that `example` is valid for `def`, deserializes into `T`, and
/// serializes back unchanged.
fn assert_round_trip<T: Serialize + DeserializeOwned>(
    validators: &jsonschema::ValidatorMap,
    def: &str,
    example: &Value,
) {
    assert_eq!(
        schema_errors(validators, def, example),
        Vec::<String>::new(),
        "{def}: {example}"
    );
    let typed: T = serde_json::from_value(example.clone())
        .unwrap_or_else(|error| panic!("{def} does not deserialize {example}: {error}"));
    let back = serde_json::to_value(&typed).expect("generated types serialize");
    assert_eq!(
        &back, example,
        "{def} does not serialize back to the same JSON"
    );
}

fn def_of(method: &str, part: &str) -> &'static str {
    let info = METHODS
        .iter()
        .find(|info| info.name == method)
        .expect("method in METHODS");
    match part {
        "params" => info.params,
        _ => info.result.expect("requests have a result"),
    }
}

#[test]
fn every_method_example_validates_and_round_trips() {
    let validators = validators();
    let examples = examples();
    let methods = examples["methods"]
        .as_object()
        .expect("`methods` is an object");
    let mut checked = BTreeSet::new();

    macro_rules! check_requests {
        ($(($marker:path, $snake:ident, $wire:literal, $params:path, $response:path, $direction:ident)),* $(,)?) => {$(
            let example = methods.get($wire).unwrap_or_else(|| panic!("no example for `{}`", $wire));
            assert_round_trip::<$params>(&validators, def_of($wire, "params"), &example["params"]);
            assert_round_trip::<$response>(&validators, def_of($wire, "result"), &example["result"]);
            checked.insert($wire);
        )*};
    }
    macro_rules! check_notifications {
        ($(($marker:path, $snake:ident, $wire:literal, $params:path, $direction:ident)),* $(,)?) => {$(
            let example = methods.get($wire).unwrap_or_else(|| panic!("no example for `{}`", $wire));
            assert_round_trip::<$params>(&validators, def_of($wire, "params"), &example["params"]);
            assert!(example.get("result").is_none(), "notification `{}` has a result", $wire);
            checked.insert($wire);
        )*};
    }
    exec_protocol::for_each_request!(check_requests);
    exec_protocol::for_each_notification!(check_notifications);

    let in_table: BTreeSet<&str> = METHODS.iter().map(|info| info.name).collect();
    let in_examples: BTreeSet<&str> = methods.keys().map(String::as_str).collect();
    assert_eq!(
        checked, in_table,
        "the macros cover exactly the method table"
    );
    assert_eq!(
        in_examples, in_table,
        "examples.json covers exactly the method table"
    );
}

#[test]
fn every_error_example_validates_and_round_trips() {
    let validators = validators();
    let examples = examples();
    let errors = examples["errors"].as_array().expect("`errors` is an array");
    let error_def = schema()["x-error"]
        .as_str()
        .expect("x-error")
        .trim_start_matches("#/$defs/")
        .to_owned();
    for error in errors {
        assert_round_trip::<ErrorObject>(&validators, &error_def, error);
    }
}

/// Codex always sends `recursive` and `force` (`null` when unset, meaning
/// its default, true), our SDKs omit them (our v1 default, false): the
/// generated type keeps the two apart, and never sends `null` itself.
#[test]
fn null_and_absent_fs_options_stay_apart() {
    let validators = validators();
    let codex = json!({"path": "file:///tmp/x", "recursive": null, "force": null, "sandbox": null});
    assert_eq!(
        schema_errors(&validators, "FsRemoveParams", &codex),
        Vec::<String>::new()
    );
    let typed: FsRemoveParams = serde_json::from_value(codex).expect("nulls deserialize");
    assert_eq!((typed.recursive, typed.force), (None, None));
    let ours: FsRemoveParams = serde_json::from_value(json!({"path": "/tmp/x"})).expect("absent");
    assert_eq!((ours.recursive, ours.force), (Some(false), Some(false)));
    assert_eq!(
        serde_json::to_value(&typed).expect("serializes"),
        json!({"path": "file:///tmp/x"}),
        "a Rust caller's unset option is left out, not sent as null"
    );
    let directory: FsCreateDirectoryParams =
        serde_json::from_value(json!({"path": "/tmp/x", "recursive": null})).expect("null");
    assert_eq!(directory.recursive, None);
}

#[test]
fn method_table_matches_x_methods() {
    let schema = schema();
    let x_methods = schema["x-methods"].as_object().expect("x-methods");
    assert_eq!(METHODS.len(), x_methods.len());
    for info in METHODS {
        let entry = &x_methods[info.name];
        let kind = match info.kind {
            MethodKind::Request => "request",
            MethodKind::Notification => "notification",
        };
        assert_eq!(entry["kind"], kind, "{}", info.name);
        assert_eq!(
            entry["params"],
            format!("#/$defs/{}", info.params),
            "{}",
            info.name
        );
        assert_eq!(
            entry
                .get("result")
                .and_then(Value::as_str)
                .map(str::to_owned),
            info.result.map(|r| format!("#/$defs/{r}"))
        );
    }
}

/// Codex clients send `null` for optional params they leave unset; both the
/// schema and the types accept that.
#[test]
fn explicit_nulls_for_optional_params_are_accepted() {
    let validators = validators();
    let start = json!({
        "processId": "p", "argv": ["true"], "cwd": "/", "env": {}, "tty": false,
        "pipeStdin": null, "arg0": null, "size": null, "inheritEnv": null, "timeoutMs": null
    });
    assert_eq!(
        schema_errors(&validators, "ProcessStartParams", &start),
        Vec::<String>::new()
    );
    let typed: ProcessStartParams = serde_json::from_value(start).expect("nulls deserialize");
    assert_eq!(
        (typed.arg0, typed.size, typed.timeout_ms),
        (None, None, None)
    );

    let read = json!({"processId": "p", "afterSeq": null, "maxBytes": null, "waitMs": null});
    assert_eq!(
        schema_errors(&validators, "ProcessReadParams", &read),
        Vec::<String>::new()
    );
    let typed: ProcessReadParams = serde_json::from_value(read).expect("nulls deserialize");
    assert_eq!(typed.after_seq, None);
}

#[test]
fn bad_messages_are_rejected_by_schema_and_types() {
    let validators = validators();
    // A missing required field, a wrong type and an out-of-range value.
    let cases = [
        (
            "ProcessStartParams",
            json!({"processId": "p", "argv": ["true"], "cwd": "/", "env": {}}),
        ),
        (
            "ProcessStartParams",
            json!({"processId": "p", "argv": "true", "cwd": "/", "env": {}, "tty": false}),
        ),
        (
            "ProcessStartParams",
            json!({"processId": "p", "argv": [], "cwd": "/", "env": {}, "tty": false}),
        ),
        (
            "ProcessResizeParams",
            json!({"processId": "p", "rows": 0, "cols": 80}),
        ),
        (
            "ProcessResizeParams",
            json!({"processId": "p", "rows": 24, "cols": 65536}),
        ),
        (
            "ProcessSignalParams",
            json!({"processId": "p", "signal": "SIGKILL"}),
        ),
        (
            "ProcessReadParams",
            json!({"processId": "p", "afterSeq": -1}),
        ),
    ];
    for (def, instance) in &cases {
        assert!(
            !schema_errors(&validators, def, instance).is_empty(),
            "schema accepted {def} {instance}"
        );
    }
    assert!(serde_json::from_value::<TerminalSize>(json!({"rows": 0, "cols": 80})).is_err());
    assert!(serde_json::from_value::<ProcessReadParams>(cases[6].1.clone()).is_err());
    assert!(
        serde_json::from_value::<exec_protocol::ProcessSignalParams>(cases[5].1.clone()).is_err()
    );
    assert!(serde_json::from_value::<ProcessStartParams>(cases[0].1.clone()).is_err());
    // The schema treats base64 as an annotation; the Rust type checks it.
    assert!(serde_json::from_value::<exec_protocol::Base64Bytes>(json!("not base64!")).is_err());
    // The error kind set is closed.
    assert!(serde_json::from_value::<ErrorKind>(json!("somethingElse")).is_err());
}

#[test]
fn base64_bytes_encode_standard_padded() {
    let bytes = exec_protocol::Base64Bytes::from(b"hello\n".as_slice());
    assert_eq!(
        serde_json::to_value(&bytes).expect("serializes"),
        json!("aGVsbG8K")
    );
    let back: exec_protocol::Base64Bytes =
        serde_json::from_value(json!("aGVsbG8K")).expect("decodes");
    assert_eq!(back.as_bytes(), b"hello\n");
}
