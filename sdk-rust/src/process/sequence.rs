//! [`Sequencer`]: puts one process's events back in sequence order, spots
//! gaps, and merges what `process/read` returns, so that a consumer gets
//! every chunk exactly once, in order, and hears of a loss only when the
//! server says the bytes are gone.
//!
//! Events reach a [`RemoteChild`](crate::RemoteChild) three ways: the
//! reader's bounded channel (in order, but with holes where the reader had to
//! drop output for a lagging consumer), the route's overflow (the exit and
//! the close, which are never dropped), and `process/read` responses (output
//! chunks only: a read reports the exit as flags, without its `seq` or
//! `reason`). The sequencer is pure bookkeeping; the child does the I/O.

use std::collections::BTreeMap;

use exec_protocol::ProcessReadResponse;

use super::output::{OutputBytes, ProcessEvent, RemoteExitStatus};

/// One event of a process, as the connection's reader routes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    /// A `process/output` notification.
    Output(OutputBytes),
    /// A `process/exited` notification.
    Exited {
        /// Its position in the sequence.
        seq: u64,
        /// How the process ended.
        status: RemoteExitStatus,
    },
    /// A `process/closed` notification: the last event.
    Closed {
        /// Its position in the sequence.
        seq: u64,
    },
}

impl Event {
    /// The event's position in the process's sequence.
    pub(crate) fn seq(&self) -> u64 {
        match self {
            Self::Output(chunk) => chunk.seq,
            Self::Exited { seq, .. } | Self::Closed { seq } => *seq,
        }
    }
}

/// The ordering state of one process's event stream.
#[derive(Debug)]
pub(crate) struct Sequencer {
    /// The seq of the next event to hand out; everything before it was
    /// handed out or is known to be lost.
    expected: u64,
    /// Events received ahead of `expected`, by seq. Bounded by the channel
    /// capacity plus one read response.
    pending: BTreeMap<u64, Event>,
    /// Seqs below this that are not in `pending` are output the server
    /// evicted: they are skipped (and reported as lost) instead of awaited.
    skip_until: u64,
    /// Lost bytes not yet reported as [`ProcessEvent::OutputLost`].
    unreported_lost_bytes: u64,
    /// All lost bytes so far.
    lost_bytes: u64,
    /// `expected` at the last read: a gap that a read at the same cursor did
    /// not close is an exit or close still on its way, not lost output, so
    /// it is awaited rather than read again.
    read_at: Option<u64>,
    /// The close was handed out: the stream has ended.
    finished: bool,
}

impl Sequencer {
    /// The state of a process nothing was received from yet (seqs start at 1).
    pub(crate) fn new() -> Self {
        Self {
            expected: 1,
            pending: BTreeMap::new(),
            skip_until: 0,
            unreported_lost_bytes: 0,
            lost_bytes: 0,
            read_at: None,
            finished: false,
        }
    }

    /// Takes in an event from the reader (channel or overflow).
    pub(crate) fn accept(&mut self, event: Event) {
        // An output chunk before the cursor was already handed out (a read
        // returned it first) or counted as lost; the exit and the close are
        // only ever sent once, so they are kept whatever their seq.
        if matches!(event, Event::Output(_)) && event.seq() < self.expected {
            return;
        }
        self.pending.insert(event.seq(), event);
    }

    /// The next event in order, if it is here. `None` means: wait, read, or
    /// (when [`Self::is_finished`]) the stream has ended.
    pub(crate) fn next_ready(&mut self) -> Option<ProcessEvent> {
        loop {
            if self.finished {
                return None;
            }
            let first = self.pending.first_key_value().map(|(seq, _)| *seq);
            match first {
                Some(seq) if seq <= self.expected => {
                    let (_, event) = self.pending.pop_first()?;
                    let in_order = seq == self.expected;
                    if in_order {
                        self.expected += 1;
                    }
                    match event {
                        Event::Output(chunk) if in_order => {
                            return Some(ProcessEvent::Output(chunk));
                        }
                        // A duplicate of output already handed out.
                        Event::Output(_) => continue,
                        Event::Exited { status, .. } => return Some(ProcessEvent::Exited(status)),
                        Event::Closed { .. } => {
                            self.finished = true;
                            return None;
                        }
                    }
                }
                _ if self.expected < self.skip_until => {
                    // The missing seqs up to the next event we hold (or up
                    // to the end of the evicted range) are gone: say so once.
                    let resume = first.map_or(self.skip_until, |seq| seq.min(self.skip_until));
                    self.expected = resume;
                    if self.unreported_lost_bytes > 0 {
                        let bytes = std::mem::take(&mut self.unreported_lost_bytes);
                        return Some(ProcessEvent::OutputLost { bytes });
                    }
                }
                _ => return None,
            }
        }
    }

    /// Whether the close was handed out.
    pub(crate) fn is_finished(&self) -> bool {
        self.finished
    }

    /// Bytes lost so far.
    pub(crate) fn lost_bytes(&self) -> u64 {
        self.lost_bytes
    }

    /// The `afterSeq` cursor to read from when a read is needed: the reader
    /// dropped output for this process (`lagging`), or a gap is in sight that
    /// a read at this cursor has not been tried on. Call only when
    /// [`Self::next_ready`] returned `None` and nothing else has arrived.
    pub(crate) fn wants_read(&self, lagging: bool) -> Option<u64> {
        if self.finished {
            return None;
        }
        let gap = self
            .pending
            .first_key_value()
            .is_some_and(|(seq, _)| *seq > self.expected);
        (lagging || (gap && self.read_at != Some(self.expected))).then(|| self.expected - 1)
    }

    /// Merges a `process/read` response for the cursor `after_seq`.
    pub(crate) fn apply_read(&mut self, after_seq: u64, response: ProcessReadResponse) {
        self.read_at = Some(after_seq + 1);
        if response.dropped_bytes > 0 {
            // Everything between the cursor and the first chunk the server
            // still has was evicted. Chunks of that range this client already
            // holds (they came through the channel) are not lost.
            let resume = response
                .chunks
                .first()
                .map_or(response.next_seq.saturating_add(1), |chunk| chunk.seq);
            let held: u64 = self
                .pending
                .range(self.expected..resume)
                .map(|(_, event)| match event {
                    Event::Output(chunk) => chunk.bytes.len() as u64,
                    _ => 0,
                })
                .sum();
            let lost = response.dropped_bytes.saturating_sub(held);
            self.lost_bytes += lost;
            self.unreported_lost_bytes += lost;
            self.skip_until = self.skip_until.max(resume);
        }
        for chunk in response.chunks {
            if chunk.seq >= self.expected {
                self.pending.insert(
                    chunk.seq,
                    Event::Output(OutputBytes {
                        seq: chunk.seq,
                        stream: chunk.stream,
                        bytes: chunk.chunk.into_inner(),
                    }),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use exec_protocol::{Base64Bytes, ExitReason, OutputStream};
    use pretty_assertions::assert_eq;

    use super::*;

    fn output(seq: u64, bytes: &[u8]) -> Event {
        Event::Output(OutputBytes {
            seq,
            stream: OutputStream::Stdout,
            bytes: bytes.to_vec(),
        })
    }

    fn exited(seq: u64) -> Event {
        Event::Exited {
            seq,
            status: RemoteExitStatus {
                exit_code: Some(0),
                signal: None,
                reason: ExitReason::Exited,
            },
        }
    }

    fn read(chunks: &[(u64, &[u8])], next_seq: u64, dropped_bytes: u64) -> ProcessReadResponse {
        ProcessReadResponse {
            chunks: chunks
                .iter()
                .map(|(seq, bytes)| exec_protocol::OutputChunk {
                    chunk: Base64Bytes(bytes.to_vec()),
                    seq: *seq,
                    stream: OutputStream::Stdout,
                })
                .collect(),
            closed: false,
            dropped_bytes,
            exit_code: None,
            exited: false,
            next_seq,
            signal: None,
        }
    }

    /// Everything ready, rendered as short strings.
    fn drain(sequencer: &mut Sequencer) -> Vec<String> {
        let mut seen = Vec::new();
        while let Some(event) = sequencer.next_ready() {
            seen.push(match event {
                ProcessEvent::Output(chunk) => {
                    format!("{}:{}", chunk.seq, String::from_utf8_lossy(&chunk.bytes))
                }
                ProcessEvent::OutputLost { bytes } => format!("lost {bytes}"),
                ProcessEvent::Exited(_) => String::from("exited"),
            });
        }
        if sequencer.is_finished() {
            seen.push(String::from("closed"));
        }
        seen
    }

    #[test]
    fn in_order_events_pass_straight_through() {
        let mut sequencer = Sequencer::new();
        for event in [
            output(1, b"a"),
            output(2, b"b"),
            exited(3),
            output(4, b"c"),
            Event::Closed { seq: 5 },
        ] {
            sequencer.accept(event);
        }
        assert_eq!(
            drain(&mut sequencer),
            ["1:a", "2:b", "exited", "4:c", "closed"]
        );
        assert_eq!(sequencer.wants_read(false), None);
    }

    #[test]
    fn a_gap_asks_for_one_read_from_the_cursor() {
        let mut sequencer = Sequencer::new();
        sequencer.accept(output(1, b"a"));
        sequencer.accept(output(4, b"d"));
        assert_eq!(drain(&mut sequencer), ["1:a"]);
        assert_eq!(sequencer.wants_read(false), Some(1));
        sequencer.apply_read(1, read(&[(2, b"b"), (3, b"c"), (4, b"d")], 4, 0));
        assert_eq!(drain(&mut sequencer), ["2:b", "3:c", "4:d"]);
        // A chunk the read already delivered arrives late through the channel.
        sequencer.accept(output(3, b"c"));
        assert_eq!(drain(&mut sequencer), Vec::<String>::new());
    }

    #[test]
    fn a_gap_a_read_cannot_close_is_an_exit_on_its_way() {
        let mut sequencer = Sequencer::new();
        sequencer.accept(output(1, b"a"));
        sequencer.accept(output(3, b"after exit"));
        assert_eq!(drain(&mut sequencer), ["1:a"]);
        assert_eq!(sequencer.wants_read(false), Some(1));
        sequencer.apply_read(1, read(&[(3, b"after exit")], 3, 0));
        assert_eq!(drain(&mut sequencer), Vec::<String>::new());
        // Reading again at the same cursor would return the same: wait instead.
        assert_eq!(sequencer.wants_read(false), None);
        sequencer.accept(exited(2));
        sequencer.accept(Event::Closed { seq: 4 });
        assert_eq!(drain(&mut sequencer), ["exited", "3:after exit", "closed"]);
    }

    #[test]
    fn lagging_always_reads_even_without_a_visible_gap() {
        let mut sequencer = Sequencer::new();
        sequencer.accept(output(1, b"a"));
        assert_eq!(drain(&mut sequencer), ["1:a"]);
        assert_eq!(sequencer.wants_read(true), Some(1));
        sequencer.apply_read(1, read(&[(2, b"b")], 2, 0));
        assert_eq!(sequencer.wants_read(true), Some(1));
        assert_eq!(drain(&mut sequencer), ["2:b"]);
    }

    #[test]
    fn evicted_output_is_reported_once_and_held_chunks_are_kept() {
        let mut sequencer = Sequencer::new();
        // Seqs 1-2 were dropped by the reader, 3 came through the channel,
        // 4 was dropped, and the server has evicted everything before 5.
        sequencer.accept(output(3, b"ccc"));
        assert_eq!(drain(&mut sequencer), Vec::<String>::new());
        assert_eq!(sequencer.wants_read(true), Some(0));
        // Evicted: 1 (1 byte), 2 (2 bytes), 3 (3 bytes, held), 4 (4 bytes).
        sequencer.apply_read(0, read(&[(5, b"e")], 5, 10));
        assert_eq!(sequencer.lost_bytes(), 7);
        assert_eq!(drain(&mut sequencer), ["lost 7", "3:ccc", "5:e"]);
    }

    #[test]
    fn eviction_with_nothing_retained_skips_to_the_end_but_keeps_the_exit() {
        let mut sequencer = Sequencer::new();
        sequencer.accept(exited(3));
        sequencer.apply_read(0, read(&[], 4, 9));
        sequencer.accept(Event::Closed { seq: 4 });
        assert_eq!(drain(&mut sequencer), ["lost 9", "exited", "closed"]);
    }
}
