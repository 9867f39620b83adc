//! A deterministic, seeded burst of generated malformed frames against the
//! real binary over stdio and WebSocket: every frame gets exactly one reply
//! (with the frame's id when it has one the envelope can carry, with a null
//! id when the frame is not a JSON object at all), nothing crashes, and the
//! connection keeps serving (a valid request afterwards is answered).
//!
//! The frames are either *unreadable* (not UTF-8, not JSON, JSON that is
//! not an object: a null-id error each) or *addressed* (a JSON object with
//! a unique integer or string id and everything else wrong in turn: the
//! version, the method, the params, extra members). Whether a mutated text
//! is JSON is decided by `serde_json`, the parser the server uses, by
//! JSON's grammar.
//!
//! The burst must never do harm when a frame happens to be valid: params of
//! the methods that change something hold no string anywhere (every such
//! method needs a string path, argv or id, so they all fail as invalid
//! params), and the read-only methods only get paths from a harmless list.

use std::collections::BTreeMap;
use std::time::Duration;

use exec_testkit::{Outgoing, Received, Transport, WireClient};
use serde_json::{Map, Value, json};

/// The seed of the burst: the same frames on every run.
const SEED: u64 = 0x5eed_0013_b0b5_7001;

/// Frames of each kind per transport.
const UNREADABLE_FRAMES: usize = 2500;
const ADDRESSED_FRAMES: usize = 2500;

/// How long the server may stay silent before the test names the frames
/// still unanswered.
const QUIET: Duration = Duration::from_secs(10);

/// Methods that only read: their params may hold strings (harmless paths).
const READ_ONLY_METHODS: &[&str] = &[
    "process/list",
    "process/read",
    "fs/getMetadata",
    "fs/readDirectory",
    "fs/readFile",
    "initialize",
];

/// Methods that change something, notifications sent as requests, and
/// names the protocol lacks: their params never hold a string.
const OTHER_METHODS: &[&str] = &[
    "process/start",
    "process/write",
    "process/closeStdin",
    "process/resize",
    "process/signal",
    "process/terminate",
    "fs/writeFile",
    "fs/createDirectory",
    "fs/remove",
    "fs/rename",
    "fs/copy",
    "initialized",
    "process/ack",
    "process/output",
    "nope/nothing",
    "",
    "process/",
    "fs/readFile ",
    "PROCESS/LIST",
    "\u{0}",
    "process/list\n",
    "rpc.discover",
];

/// Paths the read-only methods may get.
const HARMLESS_PATHS: &[&str] = &[
    "/",
    "/proc/self/status",
    "/nonexistent-exec-burst/x",
    "relative/path",
    "",
    ".",
    "//..//.",
];

/// Member names of the params objects (the protocol's and others).
const PARAM_NAMES: &[&str] = &[
    "path",
    "processId",
    "argv",
    "cwd",
    "env",
    "tty",
    "dataBase64",
    "offset",
    "length",
    "afterSeq",
    "signal",
    "rows",
    "cols",
    "recursive",
    "createParents",
    "source",
    "destination",
    "clientName",
    "",
    "\u{2028}",
];

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..bound`.
    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// What the server must answer to a frame.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Expect {
    /// One error with a null id.
    NullId,
    /// One response with this id (serialized).
    Id(String),
}

/// One frame of the burst.
struct Frame {
    message: Outgoing,
    expect: Expect,
}

/// A JSON value without any string in it, nested at most `depth` deep.
fn stringless_value(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth == 0 { 5 } else { 7 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.chance(50)),
        2 => json!(rng.next() as i64 >> rng.below(64)),
        3 => json!(-(rng.below(1 << 20) as i64)),
        4 => json!(rng.below(1000) as f64 / 7.0),
        5 => Value::Array(
            (0..rng.below(4))
                .map(|_| stringless_value(rng, depth - 1))
                .collect(),
        ),
        _ => {
            let mut members = Map::new();
            for _ in 0..rng.below(4) {
                members.insert(
                    (*rng.pick(PARAM_NAMES)).to_owned(),
                    stringless_value(rng, depth - 1),
                );
            }
            Value::Object(members)
        }
    }
}

/// A value that may hold harmless strings, for read-only methods.
fn harmless_value(rng: &mut Rng, depth: usize) -> Value {
    if rng.chance(40) {
        Value::String((*rng.pick(HARMLESS_PATHS)).to_owned())
    } else {
        stringless_value(rng, depth)
    }
}

/// Params for `method`: any JSON type, objects of the protocol's member
/// names, deep nesting now and then.
fn params_for(rng: &mut Rng, method: &str) -> Value {
    let read_only = READ_ONLY_METHODS.contains(&method);
    let value = |rng: &mut Rng, depth| {
        if read_only {
            harmless_value(rng, depth)
        } else {
            stringless_value(rng, depth)
        }
    };
    match rng.below(10) {
        0 => Value::Null,
        1 => value(rng, 2),
        2 => {
            // Deep but well under serde_json's recursion limit of 128.
            let mut nested = value(rng, 0);
            for _ in 0..rng.below(60) {
                nested = json!([nested]);
            }
            json!({ "path": nested })
        }
        _ => {
            let mut members = Map::new();
            for _ in 0..rng.below(5) {
                members.insert((*rng.pick(PARAM_NAMES)).to_owned(), value(rng, 3));
            }
            Value::Object(members)
        }
    }
}

/// A frame that is a JSON object with id `index` and the rest of its
/// envelope generated (often wrong).
fn addressed(rng: &mut Rng, index: usize) -> (String, Value) {
    let id = if rng.chance(50) {
        json!(1_000_000 + index)
    } else {
        json!(format!("burst-{index}-é\u{2028}"))
    };
    let mut object = Map::new();
    match rng.below(8) {
        0 => {}
        1 => {
            object.insert("jsonrpc".into(), json!("1.0"));
        }
        2 => {
            let versions = [json!(2.0), Value::Null, json!(["2.0"]), json!("")];
            let version = rng.pick(&versions).clone();
            object.insert("jsonrpc".into(), version);
        }
        _ => {
            object.insert("jsonrpc".into(), json!("2.0"));
        }
    }
    object.insert("id".into(), id.clone());
    let method = match rng.below(10) {
        0 => None,
        1 => Some(stringless_value(rng, 1)),
        2..=4 => Some(json!(*rng.pick(READ_ONLY_METHODS))),
        _ => Some(json!(*rng.pick(OTHER_METHODS))),
    };
    let method_name = method
        .as_ref()
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if let Some(method) = method {
        object.insert("method".into(), method);
    }
    if rng.below(10) > 0 {
        object.insert("params".into(), params_for(rng, &method_name));
    }
    if rng.chance(15) {
        object.insert("extra".into(), stringless_value(rng, 3));
    }
    // Member order varies: the envelope must not depend on it.
    let mut members: Vec<_> = object.into_iter().collect();
    for index in (1..members.len()).rev() {
        members.swap(index, rng.below(index + 1));
    }
    let text = members
        .iter()
        .map(|(name, value)| format!("{}:{value}", Value::from(name.as_str())))
        .collect::<Vec<_>>()
        .join(",");
    (format!("{{{text}}}"), id)
}

/// Bytes of JSON-ish noise to splice into a text.
const NOISE: &[&str] = &[
    "{", "}", "[", "]", ",", ":", "\"", "\\", "\\u", "\\ud800", "nul", "tru", "1e999999", "-",
    "0x1", "\t", " ", "é", "\u{feff}", "/*", "NaN", "\u{0}", "{\"id\":",
];

/// A frame that is not a JSON object: a valid frame broken, noise, JSON of
/// another type, or bytes that are not UTF-8. `None` when the mutation
/// left valid JSON or nothing (the caller draws again).
fn unreadable(rng: &mut Rng, index: usize, stdio: bool) -> Option<Outgoing> {
    let (text, _) = addressed(rng, index);
    let broken = match rng.below(6) {
        0 => {
            // Cut short: a prefix of an object is never a whole JSON value.
            let mut cut = 1 + rng.below(text.len().max(2) - 1);
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text[..cut].to_owned()
        }
        1 | 2 => {
            // Noise spliced in at a few places.
            let mut mutated = text;
            for _ in 0..1 + rng.below(3) {
                let mut at = rng.below(mutated.len() + 1);
                while !mutated.is_char_boundary(at) {
                    at -= 1;
                }
                let noise = *rng.pick(NOISE);
                mutated.insert_str(at, noise);
            }
            mutated
        }
        3 => (0..1 + rng.below(12))
            .map(|_| *rng.pick(NOISE))
            .collect::<String>(),
        4 => rng
            .pick(&[
                "[]",
                "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"process/list\"}]",
                "17",
                "\"a string\"",
                "null",
                "true",
                "[1,2,3]",
            ])
            .to_string(),
        _ => {
            let mut bytes = text.into_bytes();
            let at = rng.below(bytes.len() + 1);
            bytes.insert(at, *rng.pick(&[0xff, 0xc3, 0x80, 0xfe, 0xed]));
            if std::str::from_utf8(&bytes).is_ok() {
                return None;
            }
            if stdio {
                bytes.retain(|&byte| byte != b'\n');
            }
            return Some(Outgoing::Binary(bytes));
        }
    };
    // A line break would split a stdio line in two messages.
    let broken = if stdio {
        broken.replace(['\n', '\r'], " ")
    } else {
        broken
    };
    if broken.trim().is_empty() {
        return None;
    }
    // JSON's grammar, not serde_json's values: a lone surrogate escape and
    // a number out of f64's range are JSON (`IgnoredAny` skips them as the
    // server's envelope does), and an object gets an answer to its id.
    let is_json = serde_json::from_str::<serde::de::IgnoredAny>(&broken).is_ok();
    if is_json && broken.trim_start().starts_with('{') {
        return None;
    }
    Some(Outgoing::Text(broken))
}

/// The burst for one transport: both kinds of frame shuffled together.
fn burst(stdio: bool) -> Vec<Frame> {
    let mut rng = Rng(SEED);
    let mut frames = Vec::with_capacity(UNREADABLE_FRAMES + ADDRESSED_FRAMES);
    let mut index = 0;
    while frames.len() < UNREADABLE_FRAMES {
        index += 1;
        if let Some(message) = unreadable(&mut rng, index, stdio) {
            frames.push(Frame {
                message,
                expect: Expect::NullId,
            });
        }
    }
    for _ in 0..ADDRESSED_FRAMES {
        index += 1;
        let (text, id) = addressed(&mut rng, index);
        let message = if !stdio && rng.chance(20) {
            // Clients may send JSON in binary frames.
            Outgoing::Binary(text.into_bytes())
        } else {
            Outgoing::Text(text)
        };
        frames.push(Frame {
            message,
            expect: Expect::Id(id.to_string()),
        });
    }
    for index in (1..frames.len()).rev() {
        frames.swap(index, rng.below(index + 1));
    }
    frames
}

async fn every_malformed_frame_is_answered_and_the_connection_keeps_serving(transport: Transport) {
    let stdio = transport == Transport::Stdio;
    let frames = burst(stdio);
    let mut expected: BTreeMap<Expect, usize> = BTreeMap::new();
    for frame in &frames {
        *expected.entry(frame.expect.clone()).or_default() += 1;
    }

    let mut client = WireClient::connect(transport).await;
    client.handshake().await;
    for (index, frame) in frames.into_iter().enumerate() {
        client.send(frame.message).await;
        if !stdio && index % 100 == 0 {
            // Control frames between the messages; tungstenite answers them.
            client
                .send(Outgoing::Ping(index.to_le_bytes().to_vec()))
                .await;
        }
    }
    let final_id = "after-the-burst";
    client
        .send_text(
            &json!({"jsonrpc": "2.0", "id": final_id, "method": "process/list", "params": {}})
                .to_string(),
        )
        .await;

    let mut answered: BTreeMap<Expect, usize> = BTreeMap::new();
    let mut final_answer = None;
    let total: usize = expected.values().sum();
    while answered.values().sum::<usize>() < total || final_answer.is_none() {
        let Ok(received) = tokio::time::timeout(QUIET, client.recv_raw()).await else {
            let missing: Vec<_> = expected
                .iter()
                .filter(|(key, count)| answered.get(key) != Some(count))
                .take(20)
                .collect();
            panic!(
                "no reply for {QUIET:?}; {} of {total} frames answered, the request after \
                 the burst {}; unanswered (first 20, with counts): {missing:?}",
                answered.values().sum::<usize>(),
                if final_answer.is_some() {
                    "answered"
                } else {
                    "not answered"
                },
            );
        };
        let text = match received {
            Received::Text(text) => text,
            Received::Pong(_) => continue,
            Received::Binary(bytes) => panic!("the server sent bytes that are not text: {bytes:?}"),
        };
        let reply: Value = serde_json::from_str(&text)
            .unwrap_or_else(|error| panic!("the server sent non-JSON {text:?}: {error}"));
        assert_eq!(reply["jsonrpc"], "2.0", "{reply}");
        assert!(
            reply.get("method").is_none(),
            "a notification during the burst: {reply}"
        );
        assert!(
            reply.get("result").is_some() != reply.get("error").is_some(),
            "a reply with neither or both of result and error: {reply}"
        );
        if reply["id"] == json!(final_id) {
            final_answer = Some(reply);
            continue;
        }
        let key = if reply["id"].is_null() {
            Expect::NullId
        } else {
            Expect::Id(reply["id"].to_string())
        };
        let count = answered.entry(key.clone()).or_default();
        *count += 1;
        assert!(
            *count <= expected.get(&key).copied().unwrap_or(0),
            "an unexpected or repeated reply: {reply}"
        );
    }
    assert_eq!(answered, expected, "replies per id");
    let final_answer = final_answer.unwrap_or_default();
    assert_eq!(
        final_answer["result"],
        json!({"processes": []}),
        "the request after the burst: {final_answer}"
    );
}

exec_testkit::transport_tests! {
    every_malformed_frame_is_answered_and_the_connection_keeps_serving: [stdio, websocket],
}
