//! [`Received`]: which events of one process this client has received, and
//! when to tell the server with `process/ack`.
//!
//! With `acknowledgeOutput` the server never evicts output the client has
//! not acknowledged, and stops reading a process whose unacknowledged output
//! fills its retention (`limits.retainedOutputBytesPerProcess`). So the
//! client acknowledges a process each time the output it received since the
//! last acknowledgement reaches a quarter of that retention, after each read
//! that caught it up, and right after each resume (an acknowledgement lost
//! in flight would otherwise leave the process stalled for good). It
//! acknowledges the newest seq up to which it has received every event:
//! handed to the process's [`RemoteChild`](crate::RemoteChild) (channel,
//! overflow or read), not necessarily consumed. An event that was not
//! received (dropped for a lagging consumer, lost in flight with a
//! connection) holds the acknowledgement back until a read fills it in, so
//! the server keeps it for that read.

use std::collections::BTreeSet;

/// The received events of one process, for its acknowledgements.
#[derive(Debug, Default)]
pub(crate) struct Received {
    /// Every seq up to and including this one was received.
    through: u64,
    /// Seqs received beyond a gap, until the gap is filled. Bounded by what
    /// the reader hands over while a gap is open: the child's channel and
    /// one read.
    ahead: BTreeSet<u64>,
    /// Output bytes received since the last acknowledgement.
    unacknowledged_bytes: u64,
    /// The seq last acknowledged (0 before the first).
    acknowledged: u64,
}

impl Received {
    /// Records the event `seq`, carrying `bytes` bytes of output.
    pub(crate) fn event(&mut self, seq: u64, bytes: u64) {
        self.unacknowledged_bytes = self.unacknowledged_bytes.saturating_add(bytes);
        if seq <= self.through {
            return;
        }
        if seq == self.through + 1 {
            self.through = seq;
            self.absorb();
        } else {
            self.ahead.insert(seq);
        }
    }

    /// Records a read after the cursor `after_seq` that covered every seq up
    /// to `covered` (its `nextSeq - 1`: chunks, the exit and the close as
    /// flags, evicted output counted as lost) with `bytes` bytes of output. A
    /// read from beyond what was received says nothing about the gap before
    /// it, so it is not counted.
    pub(crate) fn read(&mut self, after_seq: u64, covered: u64, bytes: u64) {
        self.unacknowledged_bytes = self.unacknowledged_bytes.saturating_add(bytes);
        if after_seq <= self.through && covered > self.through {
            self.through = covered;
            self.absorb();
        }
    }

    /// Records `seq` and everything before it as received: for a process no
    /// child follows, whose output nobody will read back.
    pub(crate) fn skip_to(&mut self, seq: u64, bytes: u64) {
        self.unacknowledged_bytes = self.unacknowledged_bytes.saturating_add(bytes);
        if seq > self.through {
            self.through = seq;
            self.absorb();
        }
    }

    /// The seq to acknowledge now, if one is due: `threshold` bytes or more
    /// arrived since the last acknowledgement and the contiguous prefix grew.
    pub(crate) fn due(&mut self, threshold: u64) -> Option<u64> {
        if self.unacknowledged_bytes < threshold {
            return None;
        }
        self.flush()
    }

    /// The seq to acknowledge now whatever the bytes, if the contiguous
    /// prefix grew since the last acknowledgement.
    pub(crate) fn flush(&mut self) -> Option<u64> {
        if self.through <= self.acknowledged {
            return None;
        }
        self.acknowledged = self.through;
        self.unacknowledged_bytes = 0;
        Some(self.through)
    }

    /// The session was resumed: the last acknowledgement may have been lost
    /// in flight, so the next [`Self::flush`] sends the prefix again even if
    /// it did not grow (the server ignores one it already has).
    pub(crate) fn resumed(&mut self) {
        self.acknowledged = 0;
    }

    /// Moves `through` over the seqs received ahead that now follow it.
    fn absorb(&mut self) {
        while let Some(&first) = self.ahead.first() {
            if first > self.through + 1 {
                break;
            }
            self.ahead.pop_first();
            self.through = self.through.max(first);
        }
    }
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;

    use super::*;

    #[test]
    fn in_order_events_are_acknowledged_every_threshold_bytes() {
        let mut received = Received::default();
        received.event(1, 100);
        assert_eq!(received.due(250), None);
        received.event(2, 100);
        received.event(3, 100);
        assert_eq!(received.due(250), Some(3));
        // The exit and the close carry no bytes.
        received.event(4, 0);
        assert_eq!(received.due(250), None);
        assert_eq!(received.flush(), Some(4));
        assert_eq!(received.flush(), None);
    }

    #[test]
    fn a_gap_holds_the_acknowledgement_until_a_read_fills_it() {
        let mut received = Received::default();
        received.event(1, 10);
        // 2 and 3 were lost in flight; 4 and 5 came on the new connection.
        received.event(4, 10);
        received.event(5, 10);
        assert_eq!(received.due(20), Some(1));
        received.event(6, 10);
        received.event(7, 10);
        assert_eq!(received.due(20), None);
        // The read from the cursor covers 2 to 5.
        received.read(1, 5, 20);
        assert_eq!(received.due(20), Some(7));
    }

    #[test]
    fn duplicates_and_reads_from_beyond_the_prefix_change_nothing() {
        let mut received = Received::default();
        received.event(1, 1);
        received.event(1, 1);
        received.read(3, 9, 0);
        assert_eq!(received.flush(), Some(1));
        received.read(0, 1, 0);
        assert_eq!(received.flush(), None);
    }

    #[test]
    fn after_a_resume_the_prefix_is_acknowledged_again() {
        let mut received = Received::default();
        received.event(1, 10);
        assert_eq!(received.flush(), Some(1));
        // That acknowledgement may have been lost with the connection.
        received.resumed();
        assert_eq!(received.flush(), Some(1));
        assert_eq!(received.flush(), None);
    }

    #[test]
    fn unfollowed_output_is_acknowledged_as_it_arrives() {
        let mut received = Received::default();
        received.skip_to(5, 30);
        assert_eq!(received.due(20), Some(5));
        received.skip_to(3, 30);
        assert_eq!(received.due(20), None);
    }
}
