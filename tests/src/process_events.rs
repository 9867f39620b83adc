//! [`ProcessEvents`]: the order protocol.md gives a process's notifications.
//!
//! Output chunks, the exit and the close of a process share one sequence
//! counter starting at 1; `process/exited` comes once, `process/closed` comes
//! after it and is the last; and no notification of a process overtakes the
//! successful response to its `process/start`.
//!
//! A connection that resumed a session (`initialize {resumeSessionId}`)
//! also receives the notifications of processes started on the session's
//! earlier connections, from wherever their sequences had got to: there a
//! process's first notification may come without a start on this
//! connection and with any `seq`, and the order is checked from it on.

use std::collections::HashMap;

use exec_protocol::{PROCESS_CLOSED_METHOD, PROCESS_EXITED_METHOD, PROCESS_OUTPUT_METHOD};
use serde_json::Value;

/// Where one process's notifications are.
#[derive(Debug, Clone, Default)]
struct Sequence {
    /// The `seq` the next notification must carry.
    next_seq: u64,
    /// `process/exited` was seen.
    exited: bool,
    /// `process/closed` was seen.
    closed: bool,
}

/// Sequence state of every process of one connection, by `processId`.
#[derive(Debug, Default)]
pub struct ProcessEvents {
    processes: HashMap<String, Sequence>,
    /// The connection resumed a session.
    resumed: bool,
}

impl ProcessEvents {
    /// A `process/start` for `process_id` was answered with a result: its
    /// notifications may flow, numbered from 1 (a reused id starts over).
    pub fn started(&mut self, process_id: &str) {
        if self.resumed {
            // A start retried after a resume may answer with a process whose
            // notifications already flowed here, or flowed elsewhere first.
            self.processes.entry(process_id.to_owned()).or_default();
            return;
        }
        self.processes.insert(
            process_id.to_owned(),
            Sequence {
                next_seq: 1,
                ..Sequence::default()
            },
        );
    }

    /// The connection resumed a session: processes of its earlier
    /// connections may notify here.
    pub fn resumed(&mut self) {
        self.resumed = true;
    }

    /// Checks a server notification; returns what is out of order. Methods
    /// other than the three process notifications are not checked here.
    pub fn notification(&mut self, method: &str, params: &Value) -> Vec<String> {
        if ![
            PROCESS_OUTPUT_METHOD,
            PROCESS_EXITED_METHOD,
            PROCESS_CLOSED_METHOD,
        ]
        .contains(&method)
        {
            return Vec::new();
        }
        // Malformed params are reported by the schema check.
        let (Some(process_id), Some(seq)) = (
            params.get("processId").and_then(Value::as_str),
            params.get("seq").and_then(Value::as_u64),
        ) else {
            return Vec::new();
        };
        if self.resumed {
            self.processes.entry(process_id.to_owned()).or_default();
        }
        let Some(sequence) = self.processes.get_mut(process_id) else {
            return vec![format!(
                "`{method}` for process `{process_id}` before a successful `process/start` response for it"
            )];
        };
        // Seqs start at 1, so 0 marks a sequence whose start this
        // connection did not see: it goes on from its first notification.
        if sequence.next_seq == 0 {
            sequence.next_seq = seq;
        }
        let mut problems = Vec::new();
        if sequence.closed {
            problems.push(format!(
                "`{method}` for process `{process_id}` after its `process/closed`"
            ));
        }
        if seq != sequence.next_seq {
            problems.push(format!(
                "`{method}` for process `{process_id}` has seq {seq}; the next in its sequence is {}",
                sequence.next_seq
            ));
        }
        sequence.next_seq = seq.saturating_add(1);
        if method == PROCESS_EXITED_METHOD {
            if sequence.exited {
                problems.push(format!("a second `process/exited` for `{process_id}`"));
            }
            sequence.exited = true;
        } else if method == PROCESS_CLOSED_METHOD {
            if !sequence.exited {
                problems.push(format!(
                    "`process/closed` for `{process_id}` before its `process/exited`"
                ));
            }
            sequence.closed = true;
        }
        problems
    }
}
