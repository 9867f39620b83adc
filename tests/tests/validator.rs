//! Each rule of the validator, on hand-written frames: valid conversations
//! pass, and each kind of broken message is reported under its rule.

use std::sync::Arc;

use conformance::{ConnectionValidator, Direction, Frame, ProtocolSchema};
use pretty_assertions::assert_eq;

use Direction::{ClientToServer as C2S, ServerToClient as S2C};

fn validator() -> ConnectionValidator {
    ConnectionValidator::new(Arc::new(ProtocolSchema::embedded()))
}

/// The rules `text` breaks, travelling `direction` on `validator`'s connection.
fn rules(
    validator: &mut ConnectionValidator,
    direction: Direction,
    text: &str,
) -> Vec<&'static str> {
    validator.check(direction, Frame::Text(text)).rules()
}

/// Runs a conversation; each step's expected rules must be exactly the ones found.
fn conversation(steps: &[(Direction, &str, &[&str])]) {
    let mut validator = validator();
    for (index, (direction, text, expected)) in steps.iter().enumerate() {
        assert_eq!(
            rules(&mut validator, *direction, text),
            expected.to_vec(),
            "step {} ({direction:?}): {text}",
            index + 1
        );
    }
}

const START: &str = r#"{"jsonrpc":"2.0","id":1,"method":"process/start","params":{"processId":"p","argv":["true"],"cwd":"/","env":{},"tty":false}}"#;
const STARTED: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"processId":"p","pid":42}}"#;

#[test]
fn a_valid_conversation_passes() {
    conversation(&[
        (
            C2S,
            r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"clientName":"t"}}"#,
            &[],
        ),
        (
            S2C,
            r#"{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"exec-server.v1","sessionId":"s","serverInfo":{"name":"n","version":"1"},"platform":{"os":"linux","arch":"x86_64"},"limits":{"retainedOutputBytesPerProcess":1,"maxProcessesPerConnection":1,"maxMessageBytes":1,"sessionTtlMs":0}}}"#,
            &[],
        ),
        // Codex style: no `jsonrpc`, no params where none are required.
        (C2S, r#"{"method":"initialized"}"#, &[]),
        (C2S, START, &[]),
        (S2C, STARTED, &[]),
        (
            S2C,
            r#"{"jsonrpc":"2.0","method":"process/output","params":{"processId":"p","seq":1,"stream":"stdout","chunk":"aGkK"}}"#,
            &[],
        ),
        (
            S2C,
            r#"{"jsonrpc":"2.0","method":"process/exited","params":{"processId":"p","seq":2,"exitCode":0,"signal":null,"reason":"exited"}}"#,
            &[],
        ),
        (
            S2C,
            r#"{"jsonrpc":"2.0","method":"process/closed","params":{"processId":"p","seq":3}}"#,
            &[],
        ),
        (C2S, r#"{"id":"s","method":"process/list"}"#, &[]),
        (
            S2C,
            r#"{"jsonrpc":"2.0","id":"s","result":{"processes":[]}}"#,
            &[],
        ),
    ]);
}

#[test]
fn the_envelope_is_checked() {
    conversation(&[
        (C2S, "not json", &["json"]),
        (C2S, "[1]", &["envelope"]),
        (
            C2S,
            r#"{"jsonrpc":"1.0","id":1,"method":"process/list"}"#,
            &["jsonrpc"],
        ),
        (
            C2S,
            r#"{"jsonrpc":"2.0","id":1.5,"method":"process/list"}"#,
            &["id"],
        ),
        (
            C2S,
            r#"{"jsonrpc":"2.0","id":null,"method":"process/list"}"#,
            &["id"],
        ),
        (
            C2S,
            r#"{"jsonrpc":"2.0","id":2,"method":"process/list","extra":1}"#,
            &["envelope"],
        ),
        (C2S, r#"{"jsonrpc":"2.0","id":3}"#, &["envelope"]),
        (S2C, r#"{"id":2,"result":{"processes":[]}}"#, &["jsonrpc"]),
        (
            S2C,
            r#"{"jsonrpc":"2.0","id":9,"result":{}}"#,
            &["unknownId"],
        ),
        (
            C2S,
            r#"{"jsonrpc":"2.0","id":4,"method":"process/list"}"#,
            &[],
        ),
        (
            S2C,
            r#"{"jsonrpc":"2.0","id":4,"result":{"processes":[]},"error":{"code":1,"message":"m"}}"#,
            &["envelope"],
        ),
    ]);
}

#[test]
fn methods_must_exist_travel_their_way_and_be_sent_as_their_kind() {
    conversation(&[
        (
            C2S,
            r#"{"jsonrpc":"2.0","id":1,"method":"process/launch","params":{}}"#,
            &["unknownMethod"],
        ),
        (
            C2S,
            r#"{"jsonrpc":"2.0","method":"process/output","params":{"processId":"p","seq":1,"stream":"stdout","chunk":""}}"#,
            &["direction"],
        ),
        (
            C2S,
            r#"{"jsonrpc":"2.0","method":"process/list","params":{}}"#,
            &["notificationForRequest"],
        ),
        (
            C2S,
            r#"{"jsonrpc":"2.0","id":2,"method":"initialized"}"#,
            &["requestForNotification"],
        ),
        (
            C2S,
            r#"{"jsonrpc":"2.0","id":3,"method":"process/list"}"#,
            &[],
        ),
        (
            C2S,
            r#"{"jsonrpc":"2.0","id":3,"method":"process/list"}"#,
            &["duplicateId"],
        ),
        (
            S2C,
            r#"{"jsonrpc":"2.0","id":1,"result":{}}"#,
            &["resultForUnknownMethod"],
        ),
    ]);
}

#[test]
fn params_and_results_are_validated_by_method_and_request_id() {
    conversation(&[
        // A missing `params` counts as `{}`: invalid when fields are required.
        (
            C2S,
            r#"{"jsonrpc":"2.0","id":1,"method":"process/start"}"#,
            &["params"; 5],
        ),
        (
            C2S,
            r#"{"jsonrpc":"2.0","id":2,"method":"process/resize","params":{"processId":"p","rows":0,"cols":80}}"#,
            &["params"],
        ),
        (
            C2S,
            r#"{"jsonrpc":"2.0","id":3,"method":"process/write","params":{"processId":"p","chunk":"not base64"}}"#,
            &["params"],
        ),
        // The result is checked against the def of the method of request 4.
        (
            C2S,
            r#"{"jsonrpc":"2.0","id":4,"method":"fs/readFile","params":{"path":"/x"}}"#,
            &[],
        ),
        (
            S2C,
            r#"{"jsonrpc":"2.0","id":4,"result":{"dataBase64":"aGk=","size":"2","eof":true}}"#,
            &["result"],
        ),
        (
            C2S,
            r#"{"jsonrpc":"2.0","id":5,"method":"fs/readFile","params":{"path":"/x"}}"#,
            &[],
        ),
        (
            S2C,
            r#"{"jsonrpc":"2.0","id":5,"result":{"dataBase64":"a","size":2,"eof":true}}"#,
            &["result"],
        ),
        // Params invalid against the schema get -32602, not a result.
        (
            S2C,
            r#"{"jsonrpc":"2.0","id":2,"result":{}}"#,
            &["acceptsInvalidParams"],
        ),
    ]);
}

#[test]
fn errors_carry_the_kind_the_protocol_requires() {
    conversation(&[
        // A method error answering a valid request carries `data.kind`...
        (C2S, START, &[]),
        (
            S2C,
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"m"}}"#,
            &["errorKindMissing"],
        ),
        (C2S, START, &[]),
        (
            S2C,
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"m","data":{"kind":"spawnFailed"}}}"#,
            &[],
        ),
        // ...but params invalid against the schema have no kind.
        (
            C2S,
            r#"{"jsonrpc":"2.0","id":2,"method":"process/start","params":{}}"#,
            &["params"; 5],
        ),
        (
            S2C,
            r#"{"jsonrpc":"2.0","id":2,"error":{"code":-32602,"message":"m"}}"#,
            &[],
        ),
        // Neither have an invalid envelope, an unknown method or unreadable JSON.
        (
            C2S,
            r#"{"jsonrpc":"1.0","id":3,"method":"process/list"}"#,
            &["jsonrpc"],
        ),
        (
            S2C,
            r#"{"jsonrpc":"2.0","id":3,"error":{"code":-32600,"message":"m"}}"#,
            &[],
        ),
        (
            C2S,
            r#"{"jsonrpc":"2.0","id":4,"method":"nope"}"#,
            &["unknownMethod"],
        ),
        (
            S2C,
            r#"{"jsonrpc":"2.0","id":4,"error":{"code":-32601,"message":"m"}}"#,
            &[],
        ),
        (
            S2C,
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"m"}}"#,
            &[],
        ),
        // The codes and kinds the schema ties together.
        (
            C2S,
            r#"{"jsonrpc":"2.0","id":5,"method":"process/list"}"#,
            &[],
        ),
        (
            S2C,
            r#"{"jsonrpc":"2.0","id":5,"error":{"code":-32602,"message":"m","data":{"kind":"notInitialized"}}}"#,
            &["errorKindCode"],
        ),
        (
            C2S,
            r#"{"jsonrpc":"2.0","id":6,"method":"process/list"}"#,
            &[],
        ),
        (
            S2C,
            r#"{"jsonrpc":"2.0","id":6,"error":{"code":-32000,"message":"m","data":{"kind":"io"}}}"#,
            &["errorCode"],
        ),
        (
            C2S,
            r#"{"jsonrpc":"2.0","id":7,"method":"process/list"}"#,
            &[],
        ),
        (
            S2C,
            r#"{"jsonrpc":"2.0","id":7,"error":{"code":-32601,"message":"m"}}"#,
            &["errorCode", "errorKindMissing"],
        ),
        (
            C2S,
            r#"{"jsonrpc":"2.0","id":8,"method":"process/list"}"#,
            &[],
        ),
        (
            S2C,
            r#"{"jsonrpc":"2.0","id":8,"error":{"code":-32700,"message":"m","data":{"kind":"io"}}}"#,
            &["errorId"],
        ),
        (
            S2C,
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32602,"message":"m"}}"#,
            &["errorId"],
        ),
        (
            C2S,
            r#"{"jsonrpc":"2.0","id":9,"method":"process/list"}"#,
            &[],
        ),
        (
            S2C,
            r#"{"jsonrpc":"2.0","id":9,"error":{"code":-32600,"message":"m","data":{"kind":"tired"}}}"#,
            &["errorObject"],
        ),
    ]);
}

#[test]
fn process_notifications_follow_their_start_in_sequence() {
    const OUTPUT_1: &str = r#"{"jsonrpc":"2.0","method":"process/output","params":{"processId":"p","seq":1,"stream":"stdout","chunk":"aGkK"}}"#;
    const EXITED_3: &str = r#"{"jsonrpc":"2.0","method":"process/exited","params":{"processId":"p","seq":3,"exitCode":0,"signal":null,"reason":"exited"}}"#;
    const CLOSED_4: &str =
        r#"{"jsonrpc":"2.0","method":"process/closed","params":{"processId":"p","seq":4}}"#;
    conversation(&[
        (C2S, START, &[]),
        (S2C, OUTPUT_1, &["processEvents"]),
        (S2C, STARTED, &[]),
        (S2C, OUTPUT_1, &[]),
        (S2C, EXITED_3, &["processEvents"]),
        (S2C, CLOSED_4, &[]),
        (S2C, CLOSED_4, &["processEvents", "processEvents"]),
    ]);
    conversation(&[
        (C2S, START, &[]),
        (S2C, STARTED, &[]),
        (
            S2C,
            r#"{"jsonrpc":"2.0","method":"process/closed","params":{"processId":"p","seq":1}}"#,
            &["processEvents"],
        ),
        (
            S2C,
            r#"{"jsonrpc":"2.0","method":"process/output","params":{"processId":"p","seq":2,"stream":"pipe","chunk":"%%"}}"#,
            &["params", "params", "processEvents"],
        ),
    ]);
}

#[test]
fn a_resumed_connection_takes_up_sequences_where_they_are() {
    const RESUME: &str = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"clientName":"t","resumeSessionId":"s"}}"#;
    const RESUMED: &str = r#"{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"exec-server.v1","sessionId":"s","serverInfo":{"name":"n","version":"1"},"platform":{"os":"linux","arch":"x86_64"},"limits":{"retainedOutputBytesPerProcess":1,"maxProcessesPerConnection":1,"maxMessageBytes":1,"sessionTtlMs":30000}}}"#;
    const OUTPUT_7: &str = r#"{"jsonrpc":"2.0","method":"process/output","params":{"processId":"p","seq":7,"stream":"stdout","chunk":"aGkK"}}"#;
    const OUTPUT_8: &str = r#"{"jsonrpc":"2.0","method":"process/output","params":{"processId":"p","seq":8,"stream":"stdout","chunk":"aGkK"}}"#;
    // A process of an earlier connection notifies from where it got to; a
    // retried start does not restart its sequence; order is still checked.
    conversation(&[
        (C2S, RESUME, &[]),
        (S2C, RESUMED, &[]),
        (S2C, OUTPUT_7, &[]),
        (C2S, START, &[]),
        (S2C, STARTED, &[]),
        (S2C, OUTPUT_8, &[]),
        (S2C, OUTPUT_7, &["processEvents"]),
    ]);
    // Without a resume the same notification is out of place.
    conversation(&[(S2C, OUTPUT_7, &["processEvents"])]);
}

#[test]
fn frames_must_be_utf8_text_from_the_server() {
    let mut validator = validator();
    let message = br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"m"}}"#;
    let rules_of = |validator: &mut ConnectionValidator, direction, frame| -> Vec<&'static str> {
        validator.check(direction, frame).rules()
    };
    assert_eq!(
        rules_of(&mut validator, S2C, Frame::Binary(message)),
        ["textFrames"]
    );
    assert_eq!(
        rules_of(&mut validator, S2C, Frame::Line(message)),
        Vec::<&str>::new()
    );
    assert_eq!(
        rules_of(&mut validator, S2C, Frame::Line(b"\xff")),
        ["utf8"]
    );
    // Clients may send JSON in binary frames.
    assert_eq!(
        rules_of(
            &mut validator,
            C2S,
            Frame::Binary(br#"{"jsonrpc":"2.0","id":1,"method":"process/list"}"#)
        ),
        Vec::<&str>::new()
    );
}

#[test]
fn read_and_list_results_tie_next_seq_and_exit_code_to_the_rest() {
    const READ: &str =
        r#"{"jsonrpc":"2.0","id":5,"method":"process/read","params":{"processId":"p"}}"#;
    const LIST: &str = r#"{"jsonrpc":"2.0","id":6,"method":"process/list"}"#;
    conversation(&[
        (C2S, START, &[]),
        (S2C, STARTED, &[]),
        (C2S, READ, &[]),
        // Codex's `nextSeq`: the seq after the close at 3.
        (
            S2C,
            r#"{"jsonrpc":"2.0","id":5,"result":{"chunks":[{"seq":1,"stream":"stdout","chunk":"aGkK"}],"nextSeq":4,"exited":true,"exitCode":143,"signal":"terminate","closed":true,"droppedBytes":0}}"#,
            &[],
        ),
        (C2S, READ, &[]),
        // The old meaning (the last seq covered) puts a chunk at `nextSeq`.
        (
            S2C,
            r#"{"jsonrpc":"2.0","id":5,"result":{"chunks":[{"seq":1,"stream":"stdout","chunk":"aGkK"}],"nextSeq":1,"exited":false,"exitCode":null,"signal":null,"closed":false,"droppedBytes":0}}"#,
            &["processResult"],
        ),
        (C2S, READ, &[]),
        // A signal death with a null exit code, which Codex cannot read.
        (
            S2C,
            r#"{"jsonrpc":"2.0","id":5,"result":{"chunks":[],"nextSeq":3,"exited":true,"exitCode":null,"signal":"kill","closed":true,"droppedBytes":0}}"#,
            &["processResult"],
        ),
        (C2S, LIST, &[]),
        (
            S2C,
            r#"{"jsonrpc":"2.0","id":6,"result":{"processes":[{"processId":"p","pid":42,"argv":["true"],"tty":false,"running":false,"exitCode":null,"signal":"kill"}]}}"#,
            &["processResult"],
        ),
    ]);
}
