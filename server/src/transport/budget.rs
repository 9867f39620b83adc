//! The server-wide budget of memory held in partially received messages.
//!
//! A WebSocket message is buffered whole before it is handed over, and a
//! client may send all but its last byte and stall: five such 60 MB
//! messages once held 419 MB. Every byte read from a connection is charged
//! to one [`PartialMessageBudget`] until its message is complete (the
//! transport calls [`Charge::settle`]); a read that would overdraw the
//! budget fails with [`OverBudget`], and the transport closes that
//! connection with 1013 ("try again later") while the others go on. A
//! connection's charge is released when it closes.
//!
//! What is counted is bytes read from the socket, which is what the
//! partial message holds (tungstenite reads into a buffer that grows to
//! the frame's length; fragments add up in the same way); the bytes of a
//! following message read together with the end of one are released with
//! it, so each connection may hold up to one read buffer uncounted.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, ReadBuf};

/// Memory all connections together may hold in partial messages.
#[derive(Debug)]
pub(crate) struct PartialMessageBudget {
    /// The cap, in bytes.
    limit: usize,
    /// Bytes charged now, over all connections.
    used: AtomicUsize,
}

impl PartialMessageBudget {
    /// A budget of `limit` bytes, shared by the connections of one listener.
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            used: AtomicUsize::new(0),
        })
    }

    /// A new connection's charge, empty.
    pub(crate) fn charge(self: &Arc<Self>) -> Arc<Charge> {
        Arc::new(Charge {
            budget: self.clone(),
            held: AtomicUsize::new(0),
        })
    }

    /// Bytes charged now, over all connections.
    #[cfg(test)]
    fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

/// A read that would take the partial messages of all connections over
/// [`PartialMessageBudget`]'s limit.
#[derive(Debug, thiserror::Error)]
#[error("partially received messages would take more than the server's {limit} bytes")]
pub(crate) struct OverBudget {
    /// The budget's limit, in bytes.
    limit: usize,
}

impl OverBudget {
    /// Whether `error` is an [`OverBudget`] (as returned by a read of a [`ChargedStream`]).
    pub(crate) fn is(error: &io::Error) -> bool {
        error
            .get_ref()
            .is_some_and(|inner| inner.is::<OverBudget>())
    }
}

/// One connection's share of the budget: what it read since its last
/// complete message.
#[derive(Debug)]
pub(crate) struct Charge {
    /// The budget charged.
    budget: Arc<PartialMessageBudget>,
    /// Bytes this connection holds in its partial message.
    held: AtomicUsize,
}

impl Charge {
    /// Charges `bytes` just read.
    fn take(&self, bytes: usize) -> Result<(), OverBudget> {
        let budget = &self.budget;
        let before = budget.used.fetch_add(bytes, Ordering::AcqRel);
        if before.saturating_add(bytes) > budget.limit {
            budget.used.fetch_sub(bytes, Ordering::AcqRel);
            return Err(OverBudget {
                limit: budget.limit,
            });
        }
        self.held.fetch_add(bytes, Ordering::AcqRel);
        Ok(())
    }

    /// A control frame of `bytes` (header included) was read: those bytes
    /// are released, and what is charged for a message around it stays.
    pub(crate) fn release(&self, bytes: usize) {
        let released = self
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                Some(held.saturating_sub(bytes))
            })
            .map_or(0, |held| held.min(bytes));
        self.budget.used.fetch_sub(released, Ordering::AcqRel);
    }

    /// A message (or the upgrade request) is complete: what was charged for
    /// it is released.
    pub(crate) fn settle(&self) {
        let held = self.held.swap(0, Ordering::AcqRel);
        self.budget.used.fetch_sub(held, Ordering::AcqRel);
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.settle();
    }
}

/// A stream whose reads are charged to a connection's [`Charge`].
#[derive(Debug)]
pub(crate) struct ChargedStream<S> {
    /// The socket.
    inner: S,
    /// Where its reads are charged.
    charge: Arc<Charge>,
}

impl<S> ChargedStream<S> {
    /// Charges the reads of `inner` to `charge`.
    pub(crate) fn new(inner: S, charge: Arc<Charge>) -> Self {
        Self { inner, charge }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ChargedStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buffer.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(context, buffer))?;
        let read = buffer.filled().len() - before;
        Poll::Ready(self.charge.take(read).map_err(io::Error::other))
    }
}

super::stream::write_through_to_inner!(ChargedStream);

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    #[test]
    fn charges_add_up_to_the_limit_and_are_released() {
        let budget = PartialMessageBudget::new(100);
        let first = budget.charge();
        let second = budget.charge();
        assert!(first.take(60).is_ok());
        assert!(second.take(40).is_ok());
        assert!(second.take(1).is_err(), "over the limit");
        assert_eq!(budget.used(), 100);
        first.settle();
        assert_eq!(budget.used(), 40);
        assert!(second.take(60).is_ok());
        second.release(10);
        assert_eq!(budget.used(), 90);
        second.release(1000);
        assert_eq!(budget.used(), 0, "never more than was charged");
        assert!(second.take(5).is_ok());
        drop(second);
        assert_eq!(budget.used(), 0);
    }

    #[tokio::test]
    async fn a_read_over_the_budget_fails_with_over_budget() {
        let budget = PartialMessageBudget::new(10);
        let (client, server) = tokio::io::duplex(64);
        let mut stream = ChargedStream::new(server, budget.charge());
        let mut client = client;
        client.write_all(b"0123456789abc").await.expect("written");
        let mut buffer = [0_u8; 8];
        assert_eq!(
            stream.read(&mut buffer).await.expect("within the budget"),
            8
        );
        let error = stream
            .read_exact(&mut buffer[..5])
            .await
            .expect_err("over the budget");
        assert!(OverBudget::is(&error), "{error}");
        stream.charge.settle();
        assert_eq!(budget.used(), 0);
    }
}
