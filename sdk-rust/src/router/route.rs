//! [`Route`]: where one process's events go, a bounded channel to its
//! [`RemoteChild`](crate::RemoteChild), and [`RouteShared`], the state the
//! reader and the child both look at.
//!
//! # Back-pressure and lag
//! When a process's channel is full, the reader waits for its consumer, up to
//! [`ConnectOptions::output_stall_timeout`](crate::ConnectOptions::output_stall_timeout).
//! Waiting stops reading the transport, so the server stops reading the
//! process's output and nothing is lost. A consumer that takes nothing for
//! that long is marked as lagging instead: from then on its output is dropped
//! here (never silently: the child sees the mark and the gap, and reads the
//! output back with `process/read`) so the rest of the connection goes on.
//! The exit and the close are never dropped: they wait in a small overflow
//! queue beside the channel.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc::error::{SendTimeoutError, TrySendError};
use tokio::sync::{Notify, mpsc};

use super::received::Received;
use crate::process::sequence::Event;
use crate::sync::lock;

/// The shared half of a process's route: what the reader and the
/// `RemoteChild` both look at.
#[derive(Debug, Default)]
pub(crate) struct RouteShared {
    /// Output notifications the reader dropped for this process, or may
    /// have lost in flight with a dropped connection, counted. The child is
    /// caught up when [`Self::caught_up`] equals it.
    pub(crate) dropped: AtomicU64,
    /// The value of [`Self::dropped`] the child's last successful read
    /// covered. Counters instead of a flag, so that a drop during a read is
    /// never forgotten and a cancelled read loses nothing.
    pub(crate) caught_up: AtomicU64,
    /// The exit and the close when the channel was full (at most two events).
    pub(crate) overflow: Mutex<VecDeque<Event>>,
    /// Wakes the child after a drop or an overflow, which the channel alone
    /// would not announce.
    pub(crate) wake: Notify,
    /// How many times the session was resumed while this route lived: the
    /// child's first read after a resume may have to rebuild an exit and a
    /// close lost in flight.
    pub(crate) resumes: AtomicU64,
    /// The highest seq any connection's reader handed to this route
    /// (delivered or dropped), 0 before the first.
    pub(crate) highest_seq: AtomicU64,
    /// [`Self::highest_seq`] at the last resume: the events the old
    /// connections handed over end there, and what the server sent after
    /// it may have been lost in flight (see `Sequencer::note_resume`).
    pub(crate) resumed_after_seq: AtomicU64,
    /// The events handed to the child, for `process/ack`.
    pub(crate) received: Mutex<Received>,
}

impl RouteShared {
    /// Whether output was dropped since the child's last read.
    pub(crate) fn is_lagging(&self) -> bool {
        self.dropped.load(Ordering::Acquire) != self.caught_up.load(Ordering::Acquire)
    }
}

/// Where one process's events go.
#[derive(Clone)]
pub(crate) struct Route {
    /// The bounded channel to the `RemoteChild`.
    events: mpsc::Sender<Event>,
    /// The state both sides share.
    shared: Arc<RouteShared>,
}

impl Route {
    /// A route whose channel holds `capacity` events, with the child's ends.
    pub(crate) fn new(capacity: usize) -> (Self, mpsc::Receiver<Event>, Arc<RouteShared>) {
        let (events, receiver) = mpsc::channel(capacity.max(1));
        let shared = Arc::new(RouteShared::default());
        (
            Self {
                events,
                shared: shared.clone(),
            },
            receiver,
            shared,
        )
    }

    /// Whether this route's shared half is `shared` (a newer process may
    /// reuse the id of a route that is gone).
    pub(super) fn follows(&self, shared: &Arc<RouteShared>) -> bool {
        Arc::ptr_eq(&self.shared, shared)
    }

    /// The state shared with the child.
    pub(super) fn shared(&self) -> &RouteShared {
        &self.shared
    }

    /// Wakes the child, which then finds its channel closed.
    pub(super) fn wake(&self) {
        self.shared.wake.notify_one();
    }

    /// The session was resumed: output may have been lost in flight, so the
    /// child reads back from its cursor, as after a drop of its own.
    pub(super) fn note_resume(&self) {
        // Stored before the count, which the child reads first: a child
        // that sees this resume sees its mark. The old connection's reader
        // has ended, so every event it handed over is counted; one from the
        // new connection may be too, which only costs a read.
        let highest = self.shared.highest_seq.load(Ordering::Acquire);
        self.shared
            .resumed_after_seq
            .fetch_max(highest, Ordering::AcqRel);
        self.shared.resumes.fetch_add(1, Ordering::AcqRel);
        self.note_drop();
    }

    /// Hands one event to the child, following the back-pressure policy of
    /// the module doc. `true` when the child got it (channel or overflow).
    pub(super) async fn deliver(&self, event: Event, stall_timeout: Duration) -> bool {
        self.shared
            .highest_seq
            .fetch_max(event.seq(), Ordering::AcqRel);
        if !matches!(event, Event::Output(_)) {
            return self.deliver_final(event);
        }
        let event = match self.events.try_send(event) {
            Ok(()) => return true,
            Err(TrySendError::Closed(_)) => return false,
            Err(TrySendError::Full(event)) => event,
        };
        if self.shared.is_lagging() {
            self.note_drop();
            return false;
        }
        match self.events.send_timeout(event, stall_timeout).await {
            Ok(()) => true,
            Err(SendTimeoutError::Closed(_)) => false,
            Err(SendTimeoutError::Timeout(event)) => {
                // Nothing is lost (the child reads the rest back with
                // `process/read`), so this is no warning: a program built on
                // the SDK (`exec-server exec`) shows warnings on the
                // command's own stderr, where a recovered stall of a busy
                // machine does not belong.
                tracing::info!(
                    seq = event.seq(),
                    ?stall_timeout,
                    "a process's output consumer stalled; reading its output back later"
                );
                self.note_drop();
                false
            }
        }
    }

    /// The exit and the close are tiny and must never be lost (a read
    /// reports neither their seq nor the exit's reason), so they skip the
    /// wait: into the channel if it has room, else into the overflow, in
    /// order behind anything already there. `true` when the child got it.
    fn deliver_final(&self, event: Event) -> bool {
        let mut overflow = lock(&self.shared.overflow);
        if overflow.is_empty() {
            match self.events.try_send(event) {
                Ok(()) => return true,
                Err(TrySendError::Closed(_)) => return false,
                Err(TrySendError::Full(event)) => overflow.push_back(event),
            }
        } else {
            overflow.push_back(event);
        }
        drop(overflow);
        self.shared.wake.notify_one();
        true
    }

    /// Records a dropped output notification and wakes the child to read it back.
    fn note_drop(&self) {
        self.shared.dropped.fetch_add(1, Ordering::AcqRel);
        self.shared.wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;

    use super::*;
    use crate::process::output::OutputBytes;

    fn output(seq: u64) -> Event {
        Event::Output(OutputBytes {
            seq,
            stream: exec_protocol::OutputStream::Stdout,
            bytes: vec![b'x'].into(),
        })
    }

    #[tokio::test]
    async fn a_resume_marks_the_highest_seq_handed_over_even_when_dropped() {
        let (route, mut events, shared) = Route::new(1);
        assert!(route.deliver(output(1), Duration::ZERO).await);
        // The channel is full: 2 waits out the stall timeout and is dropped,
        // and the route lags.
        assert!(!route.deliver(output(2), Duration::ZERO).await);
        route.note_resume();
        assert_eq!(shared.resumed_after_seq.load(Ordering::Acquire), 2);
        assert_eq!(shared.resumes.load(Ordering::Acquire), 1);
        assert!(matches!(events.recv().await, Some(Event::Output(chunk)) if chunk.seq == 1));
        // A later resume after nothing new keeps the mark.
        route.note_resume();
        assert_eq!(shared.resumed_after_seq.load(Ordering::Acquire), 2);
    }
}
