//! Server shutdown, spelled out (mini-redis style): a broadcast tells every
//! connection to finish; each connection holds a clone of a channel sender
//! whose last drop tells the server that all are done; the server waits for
//! that (bounded), then kills whatever process trees remain.

use std::time::Duration;

use tokio::sync::{broadcast, mpsc};

/// How long [`Shutdown::run`] waits for the connections to finish.
pub const CONNECTIONS_GRACE: Duration = Duration::from_secs(5);

/// The server's side: starts the shutdown and waits for it.
pub struct Shutdown {
    /// Tells every [`ShutdownSignal`] to finish.
    notify: broadcast::Sender<()>,
    /// Cloned into every signal; dropped here when the shutdown starts.
    done_sender: mpsc::Sender<()>,
    /// Returns `None` once every signal (every connection) is dropped.
    done: mpsc::Receiver<()>,
}

/// A connection's side: fires when the server shuts down; dropping it tells
/// the server this connection is done.
pub struct ShutdownSignal {
    /// Fires (or closes) when the shutdown starts; `None` for a signal that never fires.
    notify: Option<broadcast::Receiver<()>>,
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
        let (notify, _) = broadcast::channel(1);
        let (done_sender, done) = mpsc::channel(1);
        Self {
            notify,
            done_sender,
            done,
        }
    }

    /// A signal for one more connection.
    pub fn signal(&self) -> ShutdownSignal {
        ShutdownSignal {
            notify: Some(self.notify.subscribe()),
            _done: Some(self.done_sender.clone()),
        }
    }

    /// Tells every connection to finish, waits up to `grace` for all of
    /// them, then kills every managed process tree that is left (exit reason
    /// `killed`) and waits until the children are reaped.
    pub async fn run(self, grace: Duration) {
        let Self {
            notify,
            done_sender,
            mut done,
        } = self;
        // No receiver (no connection) is not an error.
        let _ = notify.send(());
        drop(done_sender);
        if tokio::time::timeout(grace, done.recv()).await.is_err() {
            tracing::warn!(?grace, "connections did not finish in time");
        }
        crate::process::kill_all().await;
    }
}

impl ShutdownSignal {
    /// A signal that never fires (a connection outside any server, as in
    /// the in-process mode).
    pub fn never() -> Self {
        Self {
            notify: None,
            _done: None,
        }
    }

    /// Waits for the shutdown to start. Cancel-safe.
    pub async fn recv(&mut self) {
        match &mut self.notify {
            // A message, a lag or a closed channel all mean: shut down.
            Some(notify) => {
                let _ = notify.recv().await;
            }
            None => std::future::pending().await,
        }
    }
}
