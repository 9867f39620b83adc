//! [`RetainedOutput`]: one process's event log. It owns the sequence counter
//! that output chunks, the exit and the close share, and the bounded buffer of
//! output chunks that `process/read` serves with cursors.
//!
//! Eviction follows the session's delivery: while a connection that does not
//! acknowledge output is attached, the oldest chunks are evicted beyond the
//! limit (v1). Otherwise (the session is detached, or its client sends
//! `process/ack`) only acknowledged chunks are; when unacknowledged output
//! fills the limit the log has no room, and the driver stops reading the
//! child until an acknowledgement or a new connection frees some.

use std::collections::VecDeque;

use bytes::Bytes;
use exec_protocol::{Base64Bytes, ExitReason, OutputChunk, OutputStream, Signal};

/// How many eviction checkpoints a process keeps before thinning them. Each
/// costs 16 bytes; see [`RetainedOutput::dropped_after`] for what thinning
/// costs in precision.
const EVICTION_CHECKPOINTS: usize = 4096;

/// How a process ended, as `process/exited` and `process/read` report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ExitEvent {
    /// The event's position in the process's sequence.
    pub seq: u64,
    /// The exit code as the wire carries it: the exit status, 128 + N after
    /// signal N, or -1 when waiting for the child failed.
    pub exit_code: i32,
    /// The signal that ended it, when it has a protocol name.
    pub signal: Option<Signal>,
    /// Why it ended.
    pub reason: ExitReason,
}

/// One retained chunk of output.
#[derive(Debug)]
struct RetainedChunk {
    /// Its position in the sequence.
    seq: u64,
    /// Where the bytes came from.
    stream: OutputStream,
    /// The bytes as the process wrote them (shared with the frame that
    /// carried them, see `driver.rs`).
    bytes: Bytes,
    /// Output bytes of the process up to and including this chunk, so that
    /// eviction can tell how many bytes a cursor lost.
    end_offset: u64,
}

/// What `process/read` returns for one cursor.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ReadOutcome {
    /// Retained chunks after the cursor, within the byte budget.
    pub chunks: Vec<OutputChunk>,
    /// The seq after the last event this read covers (Codex's `nextSeq`):
    /// the next read's cursor is one below it.
    pub next_seq: u64,
    /// Bytes after the cursor that were evicted before anyone read them.
    pub dropped_bytes: u64,
    /// Whether the process is closed and this read reached its last event.
    pub closed: bool,
}

/// The event log of one process: sequence numbers, the retained output chunks
/// (at most `limit` bytes, oldest evicted first), the exit and the close.
#[derive(Debug)]
pub(crate) struct RetainedOutput {
    /// Most bytes of output kept; older chunks are evicted beyond it.
    limit: usize,
    /// The seq of the latest event (0 before the first).
    last_seq: u64,
    /// The retained chunks, oldest first.
    chunks: VecDeque<RetainedChunk>,
    /// Sum of the retained chunks' lengths, in bytes.
    retained_bytes: usize,
    /// All output bytes the process wrote so far.
    total_bytes: u64,
    /// Output bytes evicted so far (always a prefix of the output).
    evicted_bytes: u64,
    /// The seq of the newest evicted chunk (0 when none was).
    last_evicted_seq: u64,
    /// `(seq, end_offset)` of evicted chunks, oldest first; thinned when it
    /// grows past [`EVICTION_CHECKPOINTS`] so memory stays bounded.
    eviction_checkpoints: Vec<(u64, u64)>,
    /// The exit, once the process was reaped.
    exit: Option<ExitEvent>,
    /// The seq of `process/closed`, once all output reached EOF after the exit.
    closed_seq: Option<u64>,
    /// Whether chunks the client has not acknowledged may be evicted.
    evict_unacknowledged: bool,
    /// The newest seq the client acknowledged (`process/ack`).
    acknowledged_seq: u64,
}

impl RetainedOutput {
    /// An empty log that retains at most `limit` bytes of output.
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            limit,
            last_seq: 0,
            chunks: VecDeque::new(),
            retained_bytes: 0,
            total_bytes: 0,
            evicted_bytes: 0,
            last_evicted_seq: 0,
            eviction_checkpoints: Vec::new(),
            exit: None,
            closed_seq: None,
            evict_unacknowledged: true,
            acknowledged_seq: 0,
        }
    }

    /// Sets whether chunks not yet acknowledged may be evicted, evicting
    /// what may now go.
    pub(crate) fn set_evict_unacknowledged(&mut self, evict: bool) {
        self.evict_unacknowledged = evict;
        self.evict();
    }

    /// The client received every event up to `seq`: those chunks may be
    /// evicted. An older `seq` than a previous one changes nothing.
    pub(crate) fn acknowledge(&mut self, seq: u64) {
        self.acknowledged_seq = self.acknowledged_seq.max(seq.min(self.last_seq));
        self.evict();
    }

    /// Whether another chunk may be read: always while unacknowledged chunks
    /// may be evicted, otherwise while the unacknowledged retained bytes are
    /// under the limit. (Acknowledged chunks stay readable up to the limit
    /// too, so a process retains at most twice the limit, plus one chunk.)
    pub(crate) fn has_room(&self) -> bool {
        self.evict_unacknowledged || self.unacknowledged_bytes() < self.limit
    }

    /// Retained bytes of the chunks after the acknowledged seq.
    fn unacknowledged_bytes(&self) -> usize {
        let acknowledged = self
            .chunks
            .partition_point(|chunk| chunk.seq <= self.acknowledged_seq);
        let acknowledged_bytes = match acknowledged {
            0 => 0,
            // The retained chunks are the output after the evicted prefix.
            index => (self.chunks[index - 1].end_offset - self.evicted_bytes) as usize,
        };
        self.retained_bytes - acknowledged_bytes
    }

    /// The seq the next event will get.
    pub(crate) fn next_seq(&self) -> u64 {
        self.last_seq + 1
    }

    /// The seq of the latest event, 0 before the first.
    pub(crate) fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The exit, once it was logged.
    pub(crate) fn exit(&self) -> Option<ExitEvent> {
        self.exit
    }

    /// Whether a reader at `after_seq` has seen the last event there will ever be.
    pub(crate) fn is_finished_for(&self, after_seq: u64) -> bool {
        self.closed_seq.is_some_and(|closed| after_seq >= closed)
    }

    /// Logs a chunk of output and returns its seq, evicting the oldest chunks
    /// beyond the limit.
    pub(crate) fn push_output(&mut self, stream: OutputStream, bytes: Bytes) -> u64 {
        self.last_seq += 1;
        self.total_bytes += bytes.len() as u64;
        self.retained_bytes += bytes.len();
        self.chunks.push_back(RetainedChunk {
            seq: self.last_seq,
            stream,
            bytes,
            end_offset: self.total_bytes,
        });
        self.evict();
        self.last_seq
    }

    /// Evicts the oldest chunks while over the limit and allowed to.
    fn evict(&mut self) {
        while self.retained_bytes > self.limit {
            let Some(oldest) = self.chunks.front() else {
                break;
            };
            if !self.evict_unacknowledged && oldest.seq > self.acknowledged_seq {
                break;
            }
            let Some(evicted) = self.chunks.pop_front() else {
                break;
            };
            self.retained_bytes -= evicted.bytes.len();
            self.evicted_bytes = evicted.end_offset;
            self.last_evicted_seq = evicted.seq;
            self.eviction_checkpoints
                .push((evicted.seq, evicted.end_offset));
            if self.eviction_checkpoints.len() > EVICTION_CHECKPOINTS {
                self.thin_checkpoints();
            }
        }
    }

    /// Logs the exit and returns its seq.
    pub(crate) fn push_exit(
        &mut self,
        exit_code: i32,
        signal: Option<Signal>,
        reason: ExitReason,
    ) -> ExitEvent {
        self.last_seq += 1;
        let event = ExitEvent {
            seq: self.last_seq,
            exit_code,
            signal,
            reason,
        };
        self.exit = Some(event);
        event
    }

    /// Logs the close (the last event) and returns its seq.
    pub(crate) fn push_closed(&mut self) -> u64 {
        self.last_seq += 1;
        self.closed_seq = Some(self.last_seq);
        self.last_seq
    }

    /// Reads after the exclusive cursor `after_seq`: retained chunks up to
    /// `max_bytes` (at least one when any is there), the seq after the last
    /// event covered, and the bytes this cursor lost to eviction.
    pub(crate) fn read(&self, after_seq: u64, max_bytes: u64) -> ReadOutcome {
        let first = self.chunks.partition_point(|chunk| chunk.seq <= after_seq);
        let mut chunks = Vec::new();
        let mut used: u64 = 0;
        let mut covered = after_seq;
        let mut truncated = false;
        for chunk in self.chunks.range(first..) {
            let length = chunk.bytes.len() as u64;
            if !chunks.is_empty() && used.saturating_add(length) > max_bytes {
                truncated = true;
                break;
            }
            used = used.saturating_add(length);
            covered = chunk.seq;
            chunks.push(OutputChunk {
                chunk: Base64Bytes(chunk.bytes.to_vec()),
                seq: chunk.seq,
                stream: chunk.stream,
            });
        }
        if !truncated {
            // Everything after the cursor was returned, evicted (and counted
            // in `dropped_bytes`) or is an exit or close event the flags
            // report, so the read covers all of it.
            covered = covered.max(self.last_seq);
        }
        // Codex's `nextSeq` is the seq after the last one covered (its
        // client's recovery takes `nextSeq - 1` as the last event the server
        // has), so a read that reached the close answers close seq + 1.
        ReadOutcome {
            chunks,
            next_seq: covered + 1,
            dropped_bytes: self.dropped_after(after_seq),
            closed: self.is_finished_for(covered),
        }
    }

    /// Output bytes after `after_seq` that were evicted. Exact while fewer
    /// than [`EVICTION_CHECKPOINTS`] chunks were evicted; after thinning, a
    /// cursor that points into old evicted history may be told up to one
    /// thinned stretch too many bytes (never too few, so a loss is never hidden).
    pub(crate) fn dropped_after(&self, after_seq: u64) -> u64 {
        if after_seq >= self.last_evicted_seq {
            return 0;
        }
        let known = self
            .eviction_checkpoints
            .partition_point(|(seq, _)| *seq <= after_seq);
        let read_before = match known {
            0 => 0,
            index => self.eviction_checkpoints[index - 1].1,
        };
        self.evicted_bytes - read_before
    }

    /// Halves the eviction checkpoints, keeping the newest one, which
    /// [`Self::dropped_after`] needs to be exact for recent cursors.
    fn thin_checkpoints(&mut self) {
        let newest = self.eviction_checkpoints.last().copied();
        let mut index = 0;
        self.eviction_checkpoints.retain(|_| {
            index += 1;
            index % 2 == 0
        });
        if let Some(newest) = newest
            && self.eviction_checkpoints.last() != Some(&newest)
        {
            self.eviction_checkpoints.push(newest);
        }
    }
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;

    use super::*;

    fn chunk(seq: u64, stream: OutputStream, bytes: &[u8]) -> OutputChunk {
        OutputChunk {
            chunk: Base64Bytes(bytes.to_vec()),
            seq,
            stream,
        }
    }

    #[test]
    fn seqs_are_shared_by_output_exit_and_close() {
        let mut log = RetainedOutput::new(1024);
        assert_eq!(
            log.push_output(OutputStream::Stdout, Bytes::from_static(b"a")),
            1
        );
        assert_eq!(
            log.push_output(OutputStream::Stderr, Bytes::from_static(b"b")),
            2
        );
        let exit = log.push_exit(0, None, ExitReason::Exited);
        assert_eq!(exit.seq, 3);
        assert_eq!(log.push_closed(), 4);
        assert_eq!(
            log.read(0, u64::MAX),
            ReadOutcome {
                chunks: vec![
                    chunk(1, OutputStream::Stdout, b"a"),
                    chunk(2, OutputStream::Stderr, b"b")
                ],
                // The read covers the close at 4.
                next_seq: 5,
                dropped_bytes: 0,
                closed: true,
            }
        );
    }

    #[test]
    fn max_bytes_returns_at_least_one_chunk_and_moves_the_cursor_past_it() {
        let mut log = RetainedOutput::new(1024);
        log.push_output(OutputStream::Stdout, Bytes::from_static(b"hello"));
        log.push_output(OutputStream::Stdout, Bytes::from_static(b"world"));
        log.push_exit(0, None, ExitReason::Exited);
        log.push_closed();
        let first = log.read(0, 1);
        assert_eq!(first.chunks, vec![chunk(1, OutputStream::Stdout, b"hello")]);
        assert_eq!(first.next_seq, 2);
        assert!(!first.closed);
        let second = log.read(first.next_seq - 1, 1);
        assert_eq!(
            second.chunks,
            vec![chunk(2, OutputStream::Stdout, b"world")]
        );
        assert_eq!(second.next_seq, 5);
        assert!(second.closed);
        let third = log.read(4, 1);
        assert_eq!(third.chunks, vec![]);
        assert_eq!(third.next_seq, 5);
        assert!(third.closed);
    }

    #[test]
    fn a_read_without_chunks_answers_the_next_seq() {
        let mut log = RetainedOutput::new(1024);
        assert_eq!(log.read(0, u64::MAX).next_seq, 1);
        log.push_output(OutputStream::Stdout, Bytes::from_static(b"a"));
        let caught_up = log.read(1, u64::MAX);
        assert_eq!((caught_up.chunks.len(), caught_up.next_seq), (0, 2));
        assert_eq!(caught_up.next_seq, log.next_seq());
    }

    #[test]
    fn eviction_is_reported_to_the_cursors_that_lost_bytes() {
        let mut log = RetainedOutput::new(10);
        log.push_output(OutputStream::Stdout, Bytes::from_static(b"aaaa")); // 1
        log.push_output(OutputStream::Stdout, Bytes::from_static(b"bbbb")); // 2
        log.push_output(OutputStream::Stdout, Bytes::from_static(b"cccc")); // 3, evicts 1
        log.push_output(OutputStream::Stdout, Bytes::from_static(b"dddd")); // 4, evicts 2
        assert_eq!(log.dropped_after(0), 8);
        assert_eq!(log.dropped_after(1), 4);
        assert_eq!(log.dropped_after(2), 0);
        let outcome = log.read(0, u64::MAX);
        assert_eq!(
            outcome.chunks,
            vec![
                chunk(3, OutputStream::Stdout, b"cccc"),
                chunk(4, OutputStream::Stdout, b"dddd")
            ]
        );
        assert_eq!(outcome.dropped_bytes, 8);
        assert_eq!(outcome.next_seq, 5);
    }

    #[test]
    fn unacknowledged_output_is_kept_and_fills_the_log() {
        let mut log = RetainedOutput::new(10);
        log.set_evict_unacknowledged(false);
        log.push_output(OutputStream::Stdout, Bytes::from_static(b"aaaa")); // 1
        log.push_output(OutputStream::Stdout, Bytes::from_static(b"bbbb")); // 2
        assert!(log.has_room());
        log.push_output(OutputStream::Stdout, Bytes::from_static(b"cccc")); // 3, over the limit
        assert!(!log.has_room(), "nothing acknowledged may be evicted");
        assert_eq!(log.read(0, u64::MAX).chunks.len(), 3);
        assert_eq!(log.dropped_after(0), 0);
        // Acknowledging chunk 1 lets it go and frees room.
        log.acknowledge(1);
        assert!(log.has_room());
        // A chunk that fills the limit on its own leaves no room until it is
        // acknowledged, though it is not over the limit.
        let mut full = RetainedOutput::new(4);
        full.set_evict_unacknowledged(false);
        full.push_output(OutputStream::Stdout, Bytes::from_static(b"abcd"));
        assert!(!full.has_room());
        full.acknowledge(1);
        assert!(full.has_room());
        let outcome = log.read(1, u64::MAX);
        assert_eq!(
            outcome.chunks,
            vec![
                chunk(2, OutputStream::Stdout, b"bbbb"),
                chunk(3, OutputStream::Stdout, b"cccc")
            ]
        );
        assert_eq!(outcome.dropped_bytes, 0);
        // An older acknowledgement changes nothing.
        log.acknowledge(0);
        assert_eq!(log.read(1, u64::MAX).chunks.len(), 2);
    }

    #[test]
    fn allowing_eviction_again_evicts_down_to_the_limit() {
        let mut log = RetainedOutput::new(8);
        log.set_evict_unacknowledged(false);
        for _ in 0..4 {
            log.push_output(OutputStream::Stdout, Bytes::from_static(b"xxxx"));
        }
        assert!(!log.has_room());
        log.set_evict_unacknowledged(true);
        assert!(log.has_room());
        assert_eq!(log.dropped_after(0), 8);
        assert_eq!(log.read(2, u64::MAX).chunks.len(), 2);
    }

    #[test]
    fn thinned_checkpoints_never_hide_a_loss() {
        let mut log = RetainedOutput::new(0);
        for _ in 0..(3 * EVICTION_CHECKPOINTS) {
            log.push_output(OutputStream::Stdout, Bytes::from(vec![b'x'; 3]));
        }
        assert!(log.eviction_checkpoints.len() <= EVICTION_CHECKPOINTS + 1);
        let total = 3 * 3 * EVICTION_CHECKPOINTS as u64;
        assert_eq!(log.dropped_after(0), total);
        let last = log.last_seq();
        assert_eq!(log.dropped_after(last), 0);
        assert_eq!(log.dropped_after(last - 1), 3);
        for after in [1, 100, 5000, last - 2] {
            let exact = total - 3 * after;
            assert!(log.dropped_after(after) >= exact, "cursor {after}");
        }
    }
}
