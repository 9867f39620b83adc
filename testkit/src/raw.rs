//! [`RawConnection`]: a connection to the server that carries texts and
//! frames exactly as they are on the wire, for tests of the wire itself
//! (malformed messages, binary frames, pings) and for the conformance
//! suite's validator, over any [`Transport`].
//!
//! Each connection has a writer task and a reader task. The writer takes
//! [`Outgoing`] messages from an unbounded queue, so sending never waits;
//! the reader delivers [`Received`] messages into a bounded queue, so a test
//! that stops reading holds the server back, as a slow client would.

use std::sync::Arc;
use std::time::Duration;

use exec_client::{ServerMessage, TransportChannels};
use exec_server::ServerConfig;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::http::header::AUTHORIZATION;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Bytes, Message};

use crate::error::HarnessError;
use crate::launcher::{ServerLauncher, StdioServer};
use crate::server_process::{PATIENCE, ServerProcess};
use crate::transport::Transport;

/// Messages from the server buffered before the reader waits for the test.
const INCOMING_CAPACITY: usize = 1024;

/// A message to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// A text message: one line on stdio, a text frame on WebSocket, one
    /// message in-process.
    Text(String),
    /// Bytes as a message: one line on stdio (the bytes and `\n`), a binary
    /// frame on WebSocket; in-process only when they are UTF-8.
    Binary(Vec<u8>),
    /// A WebSocket ping with its payload; WebSocket only.
    Ping(Vec<u8>),
}

/// A message from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A text message: a stdio line (without its `\n`) that is UTF-8, a
    /// WebSocket text frame, an in-process message.
    Text(String),
    /// Bytes that are not text: a stdio line that is not UTF-8, or a
    /// WebSocket binary frame.
    Binary(Vec<u8>),
    /// A WebSocket pong, with its payload.
    Pong(Vec<u8>),
}

/// What the writer task is asked to do.
#[derive(Debug)]
enum WriterCommand {
    /// Send one message.
    Send(Outgoing),
    /// End the connection: close stdin, send a close frame, or drop the
    /// in-process sender.
    Close,
}

/// The sending half of a [`RawConnection`]; cheap to clone.
#[derive(Debug, Clone)]
pub struct RawSender {
    /// Decides what the transport can carry.
    transport: Transport,
    /// The writer task's queue.
    commands: mpsc::UnboundedSender<WriterCommand>,
}

impl RawSender {
    /// Queues `message` for the server.
    ///
    /// # Errors
    /// [`HarnessError::Unsupported`] when the transport cannot carry it (a
    /// ping off WebSocket, non-UTF-8 bytes in-process),
    /// [`HarnessError::Closed`] once the connection is closed.
    pub fn send(&self, message: Outgoing) -> Result<(), HarnessError> {
        let message = match (self.transport, message) {
            (Transport::WebSocket, message) => message,
            (_, Outgoing::Ping(_)) => return Err(self.unsupported("a ping")),
            (Transport::InProcess, Outgoing::Binary(bytes)) => match String::from_utf8(bytes) {
                Ok(text) => Outgoing::Text(text),
                Err(_) => return Err(self.unsupported("bytes that are not UTF-8")),
            },
            (_, message) => message,
        };
        self.commands
            .send(WriterCommand::Send(message))
            .map_err(|_| HarnessError::Closed)
    }

    /// Queues `text` as one text message.
    ///
    /// # Errors
    /// [`HarnessError::Closed`] once the connection is closed.
    pub fn send_text(&self, text: impl Into<String>) -> Result<(), HarnessError> {
        self.send(Outgoing::Text(text.into()))
    }

    /// Ends the connection after what is queued: closes the server's stdin,
    /// sends a WebSocket close frame, or drops the in-process sender. The
    /// server then closes its side, which ends the received messages.
    pub fn close(&self) {
        // Already closed: nothing more to do.
        let _ = self.commands.send(WriterCommand::Close);
    }

    fn unsupported(&self, what: &str) -> HarnessError {
        HarnessError::Unsupported {
            transport: self.transport,
            what: what.to_owned(),
        }
    }
}

/// A raw connection to a server; the server processes it started (a stdio
/// server, or a WebSocket server it connected to) stop when it is dropped.
#[derive(Debug)]
pub struct RawConnection {
    /// The sending half.
    sender: RawSender,
    /// What the reader task delivers; closed when the server ends the connection.
    incoming: mpsc::Receiver<Received>,
    /// Server processes this connection started, the `exec-server` first.
    servers: Vec<ServerProcess>,
    /// How long [`RawConnection::recv`] waits for one message.
    patience: Duration,
}

impl RawConnection {
    /// Starts a fresh server as `launcher` says and connects to it over
    /// `transport`: a stdio child, a WebSocket server on port 0 (owned by
    /// this connection), or an in-process connection.
    ///
    /// # Errors
    /// The launcher's errors (see [`ServerLauncher::spawn_stdio`],
    /// [`ServerLauncher::start_websocket`], [`ServerLauncher::config`]) and
    /// [`RawConnection::websocket`]'s.
    pub async fn start(
        transport: Transport,
        launcher: &ServerLauncher,
    ) -> Result<Self, HarnessError> {
        match transport {
            Transport::Stdio => Ok(Self::stdio(launcher.spawn_stdio()?)),
            Transport::WebSocket => {
                let server = launcher.start_websocket().await?;
                let mut connection = Self::websocket(&server.url, None).await?;
                connection.servers.push(server.process);
                connection.servers.extend(server.proxy);
                Ok(connection)
            }
            Transport::InProcess => Ok(Self::in_process(Arc::new(launcher.config()?))),
        }
    }

    /// Talks to `server` over its stdin and stdout; owns its process.
    pub fn stdio(server: StdioServer) -> Self {
        let StdioServer {
            process,
            mut stdin,
            stdout,
        } = server;
        let (commands, mut to_write) = mpsc::unbounded_channel();
        let (deliver, incoming) = mpsc::channel(INCOMING_CAPACITY);
        tokio::spawn(async move {
            while let Some(WriterCommand::Send(message)) = to_write.recv().await {
                let mut line = match message {
                    Outgoing::Text(text) => text.into_bytes(),
                    Outgoing::Binary(bytes) => bytes,
                    Outgoing::Ping(_) => continue,
                };
                line.push(b'\n');
                if stdin.write_all(&line).await.is_err() {
                    break;
                }
            }
            // Dropping stdin is the end of the connection.
        });
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout);
            loop {
                let mut line = Vec::new();
                match reader.read_until(b'\n', &mut line).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                if line.last() == Some(&b'\n') {
                    line.pop();
                }
                let received = match String::from_utf8(line) {
                    Ok(text) => Received::Text(text),
                    Err(error) => Received::Binary(error.into_bytes()),
                };
                if deliver.send(received).await.is_err() {
                    return;
                }
            }
        });
        Self {
            sender: RawSender {
                transport: Transport::Stdio,
                commands,
            },
            incoming,
            servers: vec![process],
            patience: PATIENCE,
        }
    }

    /// Connects to the WebSocket server at `url`, sending `Authorization:
    /// Bearer TOKEN` when a token is given. Messages of any size are taken.
    ///
    /// # Errors
    /// [`HarnessError::Connect`] when the connection or the upgrade fails
    /// (a refused upgrade carries its HTTP status).
    pub async fn websocket(url: &str, token: Option<&str>) -> Result<Self, HarnessError> {
        let connect_error = |source| HarnessError::Connect {
            url: url.to_owned(),
            source: Box::new(source),
        };
        let mut request = url.into_client_request().map_err(connect_error)?;
        if let Some(token) = token {
            let value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|error| connect_error(error.into()))?;
            request.headers_mut().insert(AUTHORIZATION, value);
        }
        let config = WebSocketConfig::default()
            .max_message_size(None)
            .max_frame_size(None);
        let (socket, _) =
            tokio_tungstenite::connect_async_with_config(request, Some(config), false)
                .await
                .map_err(connect_error)?;
        let (mut sink, mut stream) = socket.split();
        let (commands, mut to_write) = mpsc::unbounded_channel();
        let (deliver, incoming) = mpsc::channel(INCOMING_CAPACITY);
        tokio::spawn(async move {
            while let Some(command) = to_write.recv().await {
                let (message, closing) = match command {
                    WriterCommand::Send(Outgoing::Text(text)) => (Message::text(text), false),
                    WriterCommand::Send(Outgoing::Binary(bytes)) => {
                        (Message::Binary(Bytes::from(bytes)), false)
                    }
                    WriterCommand::Send(Outgoing::Ping(payload)) => {
                        (Message::Ping(Bytes::from(payload)), false)
                    }
                    WriterCommand::Close => (Message::Close(None), true),
                };
                if sink.send(message).await.is_err() || closing {
                    return;
                }
            }
        });
        tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                let received = match message {
                    Message::Text(text) => Received::Text(text.as_str().to_owned()),
                    Message::Binary(bytes) => Received::Binary(bytes.to_vec()),
                    Message::Pong(payload) => Received::Pong(payload.to_vec()),
                    Message::Close(_) => return,
                    // tungstenite answers pings itself.
                    Message::Ping(_) | Message::Frame(_) => continue,
                };
                if deliver.send(received).await.is_err() {
                    return;
                }
            }
        });
        Ok(Self {
            sender: RawSender {
                transport: Transport::WebSocket,
                commands,
            },
            incoming,
            servers: Vec::new(),
            patience: PATIENCE,
        })
    }

    /// A new server connection with `config` on this process's Tokio tasks
    /// (`exec_server::in_process::transport`). Call it within a Tokio runtime.
    pub fn in_process(config: Arc<ServerConfig>) -> Self {
        Self::over_channels(exec_server::in_process::transport(config))
    }

    /// Talks over the client's end of any channel transport (see
    /// [`TransportChannels`]) as an in-process connection.
    pub fn over_channels(channels: TransportChannels) -> Self {
        let TransportChannels {
            outgoing,
            incoming: mut from_server,
        } = channels;
        let (commands, mut to_write) = mpsc::unbounded_channel();
        let (deliver, incoming) = mpsc::channel(INCOMING_CAPACITY);
        tokio::spawn(async move {
            while let Some(WriterCommand::Send(Outgoing::Text(text))) = to_write.recv().await {
                if outgoing.send(text).await.is_err() {
                    return;
                }
            }
            // Dropping `outgoing` is the end of the connection.
        });
        tokio::spawn(async move {
            while let Some(message) = from_server.recv().await {
                let received = match message {
                    ServerMessage::Text(text) => Received::Text(text),
                    ServerMessage::Binary(bytes) => Received::Binary(bytes),
                };
                if deliver.send(received).await.is_err() {
                    return;
                }
            }
        });
        Self {
            sender: RawSender {
                transport: Transport::InProcess,
                commands,
            },
            incoming,
            servers: Vec::new(),
            patience: PATIENCE,
        }
    }

    /// Waits up to `patience` (instead of [`PATIENCE`]) in [`RawConnection::recv`].
    pub fn with_patience(mut self, patience: Duration) -> Self {
        self.patience = patience;
        self
    }

    /// The transport this connection runs over.
    pub fn transport(&self) -> Transport {
        self.sender.transport
    }

    /// The sending half.
    pub fn sender(&self) -> &RawSender {
        &self.sender
    }

    /// Queues `message`; see [`RawSender::send`].
    ///
    /// # Errors
    /// As [`RawSender::send`].
    pub fn send(&self, message: Outgoing) -> Result<(), HarnessError> {
        self.sender.send(message)
    }

    /// Queues `text` as one text message.
    ///
    /// # Errors
    /// [`HarnessError::Closed`] once the connection is closed.
    pub fn send_text(&self, text: impl Into<String>) -> Result<(), HarnessError> {
        self.sender.send_text(text)
    }

    /// Ends the connection; see [`RawSender::close`].
    pub fn close(&self) {
        self.sender.close();
    }

    /// The next message from the server, or `None` once the server ended
    /// the connection.
    ///
    /// # Errors
    /// [`HarnessError::Timeout`] when nothing comes within the patience.
    pub async fn recv(&mut self) -> Result<Option<Received>, HarnessError> {
        tokio::time::timeout(self.patience, self.incoming.recv())
            .await
            .map_err(|_| HarnessError::Timeout {
                what: format!("a message from the server over {}", self.transport()),
                patience: self.patience,
            })
    }

    /// The `exec-server` process this connection started, if it started one.
    pub fn server_mut(&mut self) -> Option<&mut ServerProcess> {
        self.servers.first_mut()
    }

    /// The halves: the sender, the received messages (no timeout), and the
    /// server processes this connection started (the `exec-server` first),
    /// which stop when dropped.
    pub fn into_parts(self) -> (RawSender, mpsc::Receiver<Received>, Vec<ServerProcess>) {
        (self.sender, self.incoming, self.servers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn texts_travel_both_ways_in_process_and_close_ends_the_connection() {
        let mut connection = RawConnection::in_process(Arc::new(ServerConfig::default()));
        connection
            .send_text(
                r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"clientName":"raw"}}"#,
            )
            .expect("sent");
        let Some(Received::Text(text)) = connection.recv().await.expect("in time") else {
            panic!("a text answer");
        };
        let answer: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(answer["id"], 1);
        assert!(answer["result"]["protocolVersion"].is_string(), "{answer}");
        let error = connection
            .send(Outgoing::Ping(b"hi".to_vec()))
            .expect_err("no pings in-process");
        assert!(matches!(error, HarnessError::Unsupported { .. }), "{error}");
        connection.close();
        assert_eq!(connection.recv().await.expect("in time"), None);
    }
}
