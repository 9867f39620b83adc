//! What a check takes and gives: the [`Frame`] as it travelled, and the
//! [`Checked`] outcome with its [`Observation`] and [`Violation`]s; and the
//! [`Report`] that collects one frame's violations as the rules find them.

use serde::Serialize;
use serde_json::Value;

use crate::schema::Direction;

/// How much of a frame a [`Violation`] quotes, in bytes.
const QUOTED_FRAME_BYTES: usize = 2000;

/// One message as it travelled: a stdio line or a WebSocket data frame.
#[derive(Debug, Clone, Copy)]
pub enum Frame<'a> {
    /// A WebSocket text frame (or a line already known to be UTF-8).
    Text(&'a str),
    /// A stdio line, without its `\n`, as raw bytes (it must be UTF-8).
    Line(&'a [u8]),
    /// A WebSocket binary frame.
    Binary(&'a [u8]),
}

/// A rule a message broke.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// Which way the message travelled.
    pub direction: Direction,
    /// A short stable name of the rule, e.g. `params` or `errorKindMissing`.
    pub rule: &'static str,
    /// What exactly is wrong.
    pub detail: String,
    /// The message as it travelled (cut after 2000 bytes).
    pub frame: String,
}

/// What a message was, as far as it could be understood; the suite's
/// coverage counts these.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    /// Not JSON, not an object, or neither a request, a notification nor a response.
    Unrecognized,
    /// A request (it has an `id` and a `method`).
    Request {
        /// Its `id`.
        id: Value,
        /// Its `method`.
        method: String,
    },
    /// A notification (a `method` and no `id`).
    Notification {
        /// Its `method`.
        method: String,
    },
    /// A response carrying `result`.
    Result {
        /// Its `id`.
        id: Value,
        /// The method of the request it answers, when that request was seen.
        method: Option<String>,
    },
    /// A response carrying `error`.
    Error {
        /// Its `id` (null for errors about unreadable messages).
        id: Value,
        /// The method of the request it answers, when that request was seen.
        method: Option<String>,
        /// `error.code`, when it is an integer.
        code: Option<i64>,
        /// `error.data.kind`, when present.
        kind: Option<String>,
    },
}

/// The outcome of checking one frame.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The parsed message, when the frame held JSON.
    pub message: Option<Value>,
    /// What the message was.
    pub observation: Observation,
    /// Every rule it broke; empty for a valid message.
    pub violations: Vec<Violation>,
}

impl Checked {
    /// The names of the rules the frame broke, in the order found.
    pub fn rules(&self) -> Vec<&'static str> {
        self.violations
            .iter()
            .map(|violation| violation.rule)
            .collect()
    }
}

/// Violations of one frame as they are found.
pub(super) struct Report {
    /// Which way the frame travelled.
    pub(super) direction: Direction,
    /// The frame as quoted in each violation.
    pub(super) frame: String,
    /// The violations found so far.
    pub(super) violations: Vec<Violation>,
}

impl Report {
    pub(super) fn add(&mut self, rule: &'static str, detail: impl Into<String>) {
        self.violations.push(Violation {
            direction: self.direction,
            rule,
            detail: detail.into(),
            frame: self.frame.clone(),
        });
    }

    pub(super) fn finish(self, message: Option<Value>, observation: Observation) -> Checked {
        Checked {
            message,
            observation,
            violations: self.violations,
        }
    }
}

/// `ProcessStartParams` for `#/$defs/ProcessStartParams`.
pub(super) fn def_name(pointer: &str) -> &str {
    pointer.rsplit('/').next().unwrap_or(pointer)
}

/// The frame as text for a violation record, cut at a character boundary.
pub(super) fn quote(frame: Frame<'_>) -> String {
    let text = match frame {
        Frame::Text(text) => std::borrow::Cow::Borrowed(text),
        Frame::Line(bytes) | Frame::Binary(bytes) => String::from_utf8_lossy(bytes),
    };
    if text.len() <= QUOTED_FRAME_BYTES {
        return text.into_owned();
    }
    let mut end = QUOTED_FRAME_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len())
}
