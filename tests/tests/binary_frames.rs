//! The validator's rules of binary output frames, on hand-written frames:
//! the grant in `initialize`, a frame only once granted, the layout read
//! from the schema, and the decoded notification checked as a text one.

use std::sync::Arc;

use conformance::{ConnectionValidator, Direction, Frame, ProtocolSchema};
use pretty_assertions::assert_eq;
use serde_json::json;

use Direction::{ClientToServer as C2S, ServerToClient as S2C};

const INITIALIZE_ASKING: &str = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"clientName":"t","binaryOutput":true}}"#;
const INITIALIZE_NOT_ASKING: &str =
    r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"clientName":"t"}}"#;
const START: &str = r#"{"jsonrpc":"2.0","id":1,"method":"process/start","params":{"processId":"p","argv":["true"],"cwd":"/","env":{},"tty":false}}"#;
const STARTED: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"processId":"p","pid":42}}"#;
const OUTPUT_TEXT: &str = r#"{"jsonrpc":"2.0","method":"process/output","params":{"processId":"p","seq":1,"stream":"stdout","chunk":"aGkK"}}"#;

/// The `initialize` result, granting binary output or not.
fn initialized(granted: bool) -> String {
    json!({"jsonrpc": "2.0", "id": 0, "result": {
        "protocolVersion": "exec-server.v1", "sessionId": "s",
        "serverInfo": {"name": "n", "version": "1"},
        "platform": {"os": "linux", "arch": "x86_64"},
        "limits": {"retainedOutputBytesPerProcess": 1, "maxProcessesPerConnection": 1,
                   "maxMessageBytes": 1, "sessionTtlMs": 0},
        "binaryOutput": granted}})
    .to_string()
}

/// `process/output` of `p`, seq 1, stdout, "hi\n", as a frame.
const OUTPUT_FRAME: &[u8] = &[1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, b'p', b'h', b'i', b'\n'];

fn rules(
    validator: &mut ConnectionValidator,
    direction: Direction,
    frame: Frame<'_>,
) -> Vec<&'static str> {
    validator.check(direction, frame).rules()
}

/// A validator past the handshake (with `asking`, granted `granted`) and
/// the start of process `p`.
fn started(asking: bool, granted: bool, frame: fn(&[u8]) -> Frame<'_>) -> ConnectionValidator {
    let mut validator = ConnectionValidator::new(Arc::new(ProtocolSchema::embedded()));
    let initialize = if asking {
        INITIALIZE_ASKING
    } else {
        INITIALIZE_NOT_ASKING
    };
    assert_eq!(
        rules(&mut validator, C2S, frame(initialize.as_bytes())),
        Vec::<&str>::new()
    );
    let grant = initialized(granted);
    let expected: &[&str] = if granted && !asking {
        &["binaryOutput"]
    } else {
        &[]
    };
    let found = rules(&mut validator, S2C, frame(grant.as_bytes()));
    if !matches!(frame(b"x"), Frame::Line(_)) || !granted {
        assert_eq!(found, expected);
    } else {
        assert!(found.contains(&"binaryOutput"), "{found:?}");
    }
    assert_eq!(
        rules(&mut validator, C2S, frame(START.as_bytes())),
        Vec::<&str>::new()
    );
    assert_eq!(
        rules(&mut validator, S2C, frame(STARTED.as_bytes())),
        Vec::<&str>::new()
    );
    validator
}

fn websocket_text(bytes: &[u8]) -> Frame<'_> {
    Frame::Text(std::str::from_utf8(bytes).expect("UTF-8"))
}

fn stdio_line(bytes: &[u8]) -> Frame<'_> {
    Frame::Line(bytes)
}

#[test]
fn a_granted_connection_gets_frames_that_decode_to_the_notification() {
    let mut validator = started(true, true, websocket_text);
    let checked = validator.check(S2C, Frame::Binary(OUTPUT_FRAME));
    assert_eq!(checked.violations, []);
    assert_eq!(
        checked.message,
        Some(
            json!({"jsonrpc": "2.0", "method": "process/output", "params": {
            "processId": "p", "seq": 1, "stream": "stdout", "chunk": "aGkK"}})
        )
    );
    // The decoded notification goes through the order rules of a text one.
    assert_eq!(
        rules(&mut validator, S2C, Frame::Binary(OUTPUT_FRAME)),
        ["processEvents"]
    );
}

#[test]
fn a_granted_connection_gets_no_text_output() {
    let mut validator = started(true, true, websocket_text);
    assert_eq!(
        rules(&mut validator, S2C, Frame::Text(OUTPUT_TEXT)),
        ["binaryFrames"]
    );
    // Other notifications stay text.
    assert_eq!(
        rules(
            &mut validator,
            S2C,
            Frame::Text(
                r#"{"jsonrpc":"2.0","method":"process/exited","params":{"processId":"p","seq":2,"exitCode":0,"signal":null,"reason":"exited"}}"#
            )
        ),
        Vec::<&str>::new()
    );
}

#[test]
fn a_frame_without_the_grant_is_a_violation() {
    for asking in [false, true] {
        let mut validator = started(asking, false, websocket_text);
        assert_eq!(
            rules(&mut validator, S2C, Frame::Binary(OUTPUT_FRAME)),
            ["binaryFrames"]
        );
        assert_eq!(
            rules(&mut validator, S2C, Frame::Text(OUTPUT_TEXT)),
            ["processEvents"]
        );
    }
}

#[test]
fn binary_output_is_granted_only_when_asked_and_never_over_stdio() {
    // `started` asserts the rule each grant breaks.
    started(false, true, websocket_text);
    started(true, true, stdio_line);
    started(true, false, stdio_line);
}

#[test]
fn a_frame_that_breaks_its_layout_is_named() {
    let mut validator = started(true, true, websocket_text);
    let mut bad_stream = OUTPUT_FRAME.to_vec();
    bad_stream[1] = 9;
    let mut extra_length = OUTPUT_FRAME.to_vec();
    extra_length[11] = 200;
    let bad_id = [1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0xff];
    let empty_id = [1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0];
    for frame in [
        &[7_u8, 0][..],
        &[1, 0, 0][..],
        &bad_stream,
        &extra_length,
        &bad_id,
    ] {
        assert_eq!(
            rules(&mut validator, S2C, Frame::Binary(frame)),
            ["binaryFrame"],
            "{frame:?}"
        );
    }
    // A frame that follows the layout but whose params break the schema
    // (an empty processId, of no started process) is reported as the text
    // would be.
    assert_eq!(
        rules(&mut validator, S2C, Frame::Binary(&empty_id)),
        ["params", "processEvents"]
    );
}
