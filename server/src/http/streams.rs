//! [`HttpStreams`]: one connection's streamed `http/request` bodies by
//! `requestId`. A `requestId` is taken from the moment its request is
//! accepted until its last delta is queued (Codex: "unique on a connection
//! until the terminal body delta"), and every stream is aborted when the
//! connection ends, so no download outlives the client that asked for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::task::AbortHandle;

use crate::error::ServerError;
use crate::sync::lock;

/// The active streams of one connection.
#[derive(Default, Clone)]
pub(crate) struct HttpStreams {
    /// Shared with each stream's [`Reservation`], which removes its entry.
    table: Arc<Mutex<Table>>,
}

#[derive(Default)]
struct Table {
    /// The task of each active stream, by `requestId`; `None` until the
    /// task is started (after the `http/request` response is queued).
    active: HashMap<String, Option<AbortHandle>>,
    /// The connection ended: no new stream may start.
    closed: bool,
}

/// A `requestId` held by one stream; dropping it lets the id go.
pub(crate) struct Reservation {
    /// The table to remove the id from.
    table: Arc<Mutex<Table>>,
    /// The id held.
    request_id: String,
}

impl HttpStreams {
    /// Holds `request_id` for a new stream.
    ///
    /// Errors: `invalidParams` (-32602, as Codex) when a stream of that id
    /// is still active on this connection; `invalidParams` too when the
    /// connection is ending.
    pub(crate) fn reserve(&self, request_id: &str) -> Result<Reservation, ServerError> {
        let mut table = lock(&self.table);
        if table.closed {
            return Err(ServerError::InvalidParams {
                message: String::from("the connection is closing"),
            });
        }
        if table.active.contains_key(request_id) {
            return Err(ServerError::InvalidParams {
                message: format!("http/request stream `{request_id}` is already active"),
            });
        }
        table.active.insert(request_id.to_owned(), None);
        Ok(Reservation {
            table: self.table.clone(),
            request_id: request_id.to_owned(),
        })
    }

    /// Records `task` as the stream of `request_id`, so that
    /// [`Self::abort_all`] can stop it; aborts it at once when the connection
    /// already ended. A task that already finished (its id let go) needs nothing.
    pub(crate) fn track(&self, request_id: &str, task: AbortHandle) {
        let mut table = lock(&self.table);
        if table.closed {
            task.abort();
        } else if let Some(slot) = table.active.get_mut(request_id) {
            *slot = Some(task);
        }
    }

    /// Aborts every stream and refuses new ones: the connection ended.
    pub(crate) fn abort_all(&self) {
        let active = {
            let mut table = lock(&self.table);
            table.closed = true;
            std::mem::take(&mut table.active)
        };
        for task in active.into_values().flatten() {
            task.abort();
        }
    }

    /// How many streams hold an id now.
    #[cfg(test)]
    pub(crate) fn active(&self) -> usize {
        lock(&self.table).active.len()
    }
}

impl Reservation {
    /// The id held.
    pub(crate) fn request_id(&self) -> &str {
        &self.request_id
    }

    /// The table this reservation belongs to.
    pub(crate) fn streams(&self) -> HttpStreams {
        HttpStreams {
            table: self.table.clone(),
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        lock(&self.table).active.remove(&self.request_id);
    }
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;

    use super::*;

    #[test]
    fn an_id_is_held_until_its_reservation_goes() {
        let streams = HttpStreams::default();
        let first = streams.reserve("a").expect("free");
        assert_eq!(
            streams.reserve("a").err().map(|error| error.kind()),
            Some(exec_protocol::ErrorKind::InvalidParams)
        );
        let other = streams.reserve("b").expect("another id is free");
        drop(first);
        let again = streams.reserve("a").expect("free again");
        assert_eq!(streams.active(), 2);
        drop((other, again));
        assert_eq!(streams.active(), 0);
    }

    #[tokio::test]
    async fn abort_all_stops_the_tasks_and_refuses_new_streams() {
        let streams = HttpStreams::default();
        let reservation = streams.reserve("a").expect("free");
        let task = tokio::spawn(async move {
            let _reservation = reservation;
            std::future::pending::<()>().await;
        });
        streams.track("a", task.abort_handle());
        streams.abort_all();
        assert!(task.await.expect_err("aborted").is_cancelled());
        assert!(streams.reserve("b").is_err());
        assert_eq!(streams.active(), 0);
    }
}
