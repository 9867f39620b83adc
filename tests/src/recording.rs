//! [`RecordingConnection`]: a client connection to the server under test, over
//! stdio or WebSocket, that validates every frame in both directions as it
//! travels: outgoing frames before they are written, incoming frames as the
//! reader task receives them (so the tail of a connection is checked too).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Child;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::header::AUTHORIZATION;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::coverage::Tally;
use crate::schema::{Direction, ProtocolSchema};
use crate::server::{ServerSettings, spawn_stdio};
use crate::validator::{ConnectionValidator, Frame, Violation};

/// How long closing a connection may take (the server kills the
/// connection's processes first).
const CLOSE_PATIENCE: Duration = Duration::from_secs(30);

/// What the writer task is asked to do.
enum Outgoing {
    /// Write one message: a line, or a text frame.
    Text(String),
    /// Close the connection (stdin EOF, or a WebSocket close frame).
    Close,
}

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
    outgoing: mpsc::UnboundedSender<Outgoing>,
    /// The server's messages that held JSON, in arrival order; closed at EOF.
    incoming: mpsc::UnboundedReceiver<Value>,
    /// The server process, for a stdio connection.
    server: Option<Child>,
}

impl RecordingConnection {
    /// Starts a server on stdio with `settings` and connects to it.
    pub async fn stdio(
        schema: Arc<ProtocolSchema>,
        tally: Arc<Mutex<Tally>>,
        context: &str,
        settings: &ServerSettings,
    ) -> Result<Self> {
        let mut child = spawn_stdio(settings)?;
        let mut stdin = child.stdin.take().context("stdin is piped")?;
        let stdout = child.stdout.take().context("stdout is piped")?;
        let shared = Self::shared(schema, tally, context);
        let (outgoing, mut to_write) = mpsc::unbounded_channel::<Outgoing>();
        let (deliver, incoming) = mpsc::unbounded_channel::<Value>();
        tokio::spawn(async move {
            while let Some(Outgoing::Text(text)) = to_write.recv().await {
                let mut line = text.into_bytes();
                line.push(b'\n');
                if stdin.write_all(&line).await.is_err() {
                    break;
                }
            }
            // Dropping stdin is the end of the connection.
        });
        let reader_shared = shared.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let frame = line.strip_suffix(b"\n").unwrap_or(&line);
                let (message, _) =
                    reader_shared.check(Direction::ServerToClient, Frame::Line(frame), false);
                if let Some(message) = message {
                    // The test may have stopped listening; keep validating.
                    let _ = deliver.send(message);
                }
            }
        });
        Ok(Self {
            shared,
            outgoing,
            incoming,
            server: Some(child),
        })
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
        let config = WebSocketConfig::default()
            .max_message_size(None)
            .max_frame_size(None);
        let mut request = url
            .into_client_request()
            .with_context(|| format!("`{url}` is not a WebSocket URL"))?;
        if let Some(token) = token {
            let value = format!("Bearer {token}")
                .parse()
                .context("the token is a valid header value")?;
            request.headers_mut().insert(AUTHORIZATION, value);
        }
        let (socket, _) =
            tokio_tungstenite::connect_async_with_config(request, Some(config), false)
                .await
                .with_context(|| format!("connecting to {url}"))?;
        let (mut sink, mut stream) = socket.split();
        let shared = Self::shared(schema, tally, context);
        let (outgoing, mut to_write) = mpsc::unbounded_channel::<Outgoing>();
        let (deliver, incoming) = mpsc::unbounded_channel::<Value>();
        tokio::spawn(async move {
            while let Some(outgoing) = to_write.recv().await {
                let (message, closing) = match outgoing {
                    Outgoing::Text(text) => (Message::text(text), false),
                    Outgoing::Close => (Message::Close(None), true),
                };
                if sink.send(message).await.is_err() || closing {
                    break;
                }
            }
        });
        let reader_shared = shared.clone();
        tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                let checked = match &message {
                    Message::Text(text) => reader_shared.check(
                        Direction::ServerToClient,
                        Frame::Text(text.as_str()),
                        false,
                    ),
                    Message::Binary(bytes) => {
                        reader_shared.check(Direction::ServerToClient, Frame::Binary(bytes), false)
                    }
                    Message::Close(_) => break,
                    _ => continue,
                };
                if let (Some(message), _) = checked {
                    let _ = deliver.send(message);
                }
            }
        });
        Ok(Self {
            shared,
            outgoing,
            incoming,
            server: None,
        })
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
            .send(Outgoing::Text(text.to_owned()))
            .ok()
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
        let _ = self.outgoing.send(Outgoing::Close);
        let mut tail = Vec::new();
        tokio::time::timeout(CLOSE_PATIENCE, async {
            while let Some(message) = self.incoming.recv().await {
                tail.push(message);
            }
        })
        .await
        .context("the server ends the connection after the client closed it")?;
        if let Some(mut server) = self.server.take() {
            let status = tokio::time::timeout(CLOSE_PATIENCE, server.wait())
                .await
                .context("the stdio server exits when its stdin closes")?
                .context("waiting for the stdio server")?;
            anyhow::ensure!(
                status.success(),
                "the stdio server exited with {status} after its stdin closed"
            );
        }
        Ok(tail)
    }
}
