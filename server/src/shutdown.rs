//! Server shutdown, spelled out (mini-redis style): a watch value tells every
//! connection (and the accept loop) to finish; each holds a clone of a
//! channel sender whose last drop tells the server that all are done; the
//! server waits for that (bounded), then kills whatever process trees remain.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::sync::lock;

/// How long [`Shutdown::finish`] waits for the connections to finish.
pub const CONNECTIONS_GRACE: Duration = Duration::from_secs(5);

/// The server's side: starts the shutdown and waits for it.
pub struct Shutdown {
    /// True once the shutdown started; every [`ShutdownSignal`] watches it.
    started: watch::Sender<bool>,
    /// Cloned into every signal; taken (dropped) here when the shutdown starts.
    done_sender: Mutex<Option<mpsc::Sender<()>>>,
    /// Returns `None` once every signal (every connection) is dropped.
    done: mpsc::Receiver<()>,
}

/// A connection's side: fires when the server shuts down; dropping it tells
/// the server this connection is done.
pub struct ShutdownSignal {
    /// Watches whether the shutdown started; `None` for a signal that never fires.
    started: Option<watch::Receiver<bool>>,
    /// Held only to be dropped when the connection is done.
    _done: Option<mpsc::Sender<()>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// A shutdown that has not started.
    pub fn new() -> Self {
        let (done_sender, done) = mpsc::channel(1);
        Self {
            started: watch::Sender::new(false),
            done_sender: Mutex::new(Some(done_sender)),
            done,
        }
    }

    /// A signal for one more connection (one that fires at once when the
    /// shutdown already started).
    pub fn signal(&self) -> ShutdownSignal {
        ShutdownSignal {
            started: Some(self.started.subscribe()),
            _done: lock(&self.done_sender).clone(),
        }
    }

    /// Tells every connection and accept loop to finish. Idempotent.
    pub fn begin(&self) {
        self.started.send_replace(true);
        lock(&self.done_sender).take();
    }

    /// Begins the shutdown if that did not happen yet, waits up to `grace`
    /// for every connection to finish, then kills every managed process
    /// tree that is left (exit reason `killed`) and waits until the children
    /// are reaped.
    pub async fn finish(mut self, grace: Duration) {
        if !self.wait_for_connections(grace).await {
            tracing::warn!(?grace, "connections did not finish in time");
        }
        crate::process::kill_all().await;
    }

    /// Begins the shutdown and waits up to `grace` for every connection to
    /// finish; false when some did not in time.
    async fn wait_for_connections(&mut self, grace: Duration) -> bool {
        self.begin();
        tokio::time::timeout(grace, self.done.recv()).await.is_ok()
    }
}

impl ShutdownSignal {
    /// A signal that never fires (a connection outside any server, as in
    /// the in-process mode).
    pub fn never() -> Self {
        Self {
            started: None,
            _done: None,
        }
    }

    /// Waits for the shutdown to start. Cancel-safe.
    pub async fn recv(&mut self) {
        match &mut self.started {
            // A dropped `Shutdown` means the server is ending too.
            Some(started) => {
                let _ = started.wait_for(|started| *started).await;
            }
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn signals_fire_and_finish_waits_for_every_connection() {
        let mut shutdown = Shutdown::new();
        let mut first = shutdown.signal();
        let (finished, mut seen) = mpsc::channel::<&str>(2);
        let connection = tokio::spawn(async move {
            first.recv().await;
            let _ = finished.send("first").await;
            drop(first);
        });
        shutdown.begin();
        // A signal made after the start fires at once.
        let mut late = shutdown.signal();
        late.recv().await;
        drop(late);
        // Not `finish`, which would kill the processes of other tests.
        assert!(shutdown.wait_for_connections(Duration::from_secs(5)).await);
        assert_eq!(seen.recv().await, Some("first"));
        connection.await.expect("the connection task ends");
    }
}
