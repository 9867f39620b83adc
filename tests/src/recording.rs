//! [`RecordingConnection`]: a client connection to the server under test, over
//! stdio or WebSocket, that validates every frame in both directions as it
//! travels: outgoing frames before they are written, incoming frames as the
//! reader task receives them (so the tail of a connection is checked too).
//! The bytes travel over the harness's `exec_testkit::RawConnection`.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result};
use exec_testkit::{RawConnection, RawSender, Received, ServerProcess, Transport};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::coverage::Tally;
use crate::schema::{Direction, ProtocolSchema};
use crate::server::ServerSettings;
use crate::validator::{ConnectionValidator, Frame, Violation};

/// How long closing a connection may take (the server kills the
/// connection's processes first).
const CLOSE_PATIENCE: Duration = Duration::from_secs(30);

/// The validation state both directions of a connection share.
struct Shared {
    /// The case (or other label) this connection belongs to.
    context: String,
    /// Pending requests and process sequences of this connection.
    validator: Mutex<ConnectionValidator>,
    /// Counts of the whole run.
    tally: Arc<Mutex<Tally>>,
    /// This connection's unexpected violations, for its case's verdict.
    violations: Mutex<Vec<Violation>>,
}

impl Shared {
    /// Validates a frame, counts it, and returns the message and its violations.
    fn check(
        &self,
        direction: Direction,
        frame: Frame<'_>,
        expected_invalid: bool,
    ) -> (Option<Value>, Vec<Violation>) {
        let mut validator = self
            .validator
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let checked = validator.check(direction, frame);
        let schema = validator.schema().clone();
        drop(validator);
        self.tally
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .record(
                &schema,
                direction,
                &checked,
                &self.context,
                expected_invalid,
            );
        if !expected_invalid {
            self.violations
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend(checked.violations.iter().cloned());
        }
        (checked.message, checked.violations)
    }
}

/// A validated client connection to the server under test.
pub struct RecordingConnection {
    shared: Arc<Shared>,
    /// The raw connection's sending half (`exec_testkit::RawConnection`).
    outgoing: RawSender,
    /// The server's messages that held JSON, in arrival order; closed at EOF.
    incoming: mpsc::UnboundedReceiver<Value>,
    /// The server process, for a stdio connection.
    server: Option<ServerProcess>,
}

impl RecordingConnection {
    /// Starts a server on stdio with `settings` and connects to it.
    pub async fn stdio(
        schema: Arc<ProtocolSchema>,
        tally: Arc<Mutex<Tally>>,
        context: &str,
        settings: &ServerSettings,
    ) -> Result<Self> {
        let server = settings
            .launcher()
            .spawn_stdio()
            .context("starting the server on stdio")?;
        Ok(Self::record(
            RawConnection::stdio(server),
            schema,
            tally,
            context,
        ))
    }

    /// Connects to a WebSocket server at `url`, with `Authorization: Bearer
    /// TOKEN` when a token is given.
    pub async fn websocket(
        schema: Arc<ProtocolSchema>,
        tally: Arc<Mutex<Tally>>,
        context: &str,
        url: &str,
        token: Option<&str>,
    ) -> Result<Self> {
        let connection = RawConnection::websocket(url, token).await?;
        Ok(Self::record(connection, schema, tally, context))
    }

    /// Validates every frame of `connection`: its reader's messages as they
    /// arrive (so the tail of a connection is checked even when nobody
    /// reads it), and what [`RecordingConnection::send`] sends.
    fn record(
        connection: RawConnection,
        schema: Arc<ProtocolSchema>,
        tally: Arc<Mutex<Tally>>,
        context: &str,
    ) -> Self {
        let transport = connection.transport();
        let (outgoing, mut received, servers) = connection.into_parts();
        let shared = Self::shared(schema, tally, context);
        let (deliver, incoming) = mpsc::unbounded_channel::<Value>();
        let reader_shared = shared.clone();
        tokio::spawn(async move {
            while let Some(message) = received.recv().await {
                let frame = match (&message, transport) {
                    (Received::Text(text), Transport::WebSocket) => Frame::Text(text),
                    (Received::Binary(bytes), Transport::WebSocket) => Frame::Binary(bytes),
                    (Received::Text(text), _) => Frame::Line(text.as_bytes()),
                    (Received::Binary(bytes), _) => Frame::Line(bytes),
                    (Received::Pong(_), _) => continue,
                };
                let (message, _) = reader_shared.check(Direction::ServerToClient, frame, false);
                if let Some(message) = message {
                    // The test may have stopped listening; keep validating.
                    let _ = deliver.send(message);
                }
            }
        });
        Self {
            shared,
            outgoing,
            incoming,
            server: servers.into_iter().next(),
        }
    }

    fn shared(schema: Arc<ProtocolSchema>, tally: Arc<Mutex<Tally>>, context: &str) -> Arc<Shared> {
        Arc::new(Shared {
            context: context.to_owned(),
            validator: Mutex::new(ConnectionValidator::new(schema)),
            tally,
            violations: Mutex::new(Vec::new()),
        })
    }

    /// Validates `text` as a client message and sends it. A frame sent
    /// `expected_invalid` is invalid on purpose: its violations are returned
    /// (the caller asserts there are some) instead of counted.
    pub fn send(&self, text: &str, expected_invalid: bool) -> Result<Vec<Violation>> {
        let (_, violations) = self.shared.check(
            Direction::ClientToServer,
            Frame::Text(text),
            expected_invalid,
        );
        self.outgoing
            .send_text(text)
            .context("the connection is closed")?;
        Ok(violations)
    }

    /// The next message from the server; `None` once the connection ended.
    pub async fn recv(&mut self) -> Option<Value> {
        self.incoming.recv().await
    }

    /// The unexpected violations on this connection so far.
    pub fn violations(&self) -> Vec<Violation> {
        self.shared
            .violations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Closes the connection and validates everything the server still sends
    /// until it ends its side; for stdio, waits for the server to exit.
    /// Errors: the server did not end the connection in time, or a stdio
    /// server exited unsuccessfully.
    pub async fn close(&mut self) -> Result<Vec<Value>> {
        self.outgoing.close();
        let mut tail = Vec::new();
        tokio::time::timeout(CLOSE_PATIENCE, async {
            while let Some(message) = self.incoming.recv().await {
                tail.push(message);
            }
        })
        .await
        .context("the server ends the connection after the client closed it")?;
        if let Some(mut server) = self.server.take() {
            let status = server
                .wait_for(CLOSE_PATIENCE)
                .await
                .context("the stdio server exits when its stdin closes")?;
            anyhow::ensure!(
                status.success(),
                "the stdio server exited with {status} after its stdin closed"
            );
        }
        Ok(tail)
    }
}
