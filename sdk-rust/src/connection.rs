//! [`ClientConnection`]: the client's end of one connection to a server (the
//! server has a `Connection` of its own). It numbers requests, writes them to
//! the transport, waits for the router to hand back their responses, and owns
//! what must live exactly as long as the connection: the sender to the
//! transport, the reader task, the cap on incoming messages and a local
//! server process.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use exec_protocol::Request;
use serde::Serialize;
use serde_json::value::RawValue;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::error::ClientError;
use crate::options::ConnectOptions;
use crate::router::Router;
use crate::sync::lock;
use crate::transport::TransportChannels;
use crate::transport::limit::IncomingLimit;

/// How long [`ClientConnection::close`] waits for the server to finish the
/// connection, and for a local server to exit.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// One connection to a server, shared by an [`ExecClient`](crate::ExecClient)'s
/// clones and its [`RemoteChild`](crate::RemoteChild)ren. Dropping the last
/// of them drops the sender, which closes the transport.
pub(crate) struct ClientConnection {
    /// Pending calls and process routes, fed by the reader task.
    router: Arc<Router>,
    /// The transport's sending end; `None` once [`ClientConnection::close`] ran.
    outgoing: Mutex<Option<mpsc::Sender<String>>>,
    /// The server's `limits.maxMessageBytes` (0 until `initialize` said).
    max_message_bytes: AtomicU64,
    /// The cap on one message from the server, shared with the transport's
    /// reader; lowered when `initialize` reports the server's limit.
    incoming_limit: Arc<IncomingLimit>,
    /// The options the connection was made with.
    options: ConnectOptions,
    /// The reader task, awaited by [`ClientConnection::close`].
    reader: Mutex<Option<JoinHandle<()>>>,
    /// The server process [`ExecClient::spawn_local`](crate::ExecClient::spawn_local)
    /// started. Never killed on drop: closing its stdin makes it kill its
    /// own process groups and exit, which a kill would skip.
    local_server: Mutex<Option<tokio::process::Child>>,
    /// Numbers the default `processId`s.
    next_process: AtomicU64,
}

/// A request as written on the wire.
#[derive(Serialize)]
struct RequestMessage<'a, P: ?Sized> {
    jsonrpc: &'static str,
    id: u64,
    method: &'a str,
    params: &'a P,
}

/// A notification as written on the wire.
#[derive(Serialize)]
struct NotificationMessage<'a, P: ?Sized> {
    jsonrpc: &'static str,
    method: &'a str,
    params: &'a P,
}

/// Forgets a call when its future is dropped before the response came (a
/// timeout, a `select!`), so the pending table does not keep it.
struct ForgetOnDrop<'a> {
    router: &'a Router,
    id: u64,
}

impl Drop for ForgetOnDrop<'_> {
    fn drop(&mut self) {
        self.router.forget_call(self.id);
    }
}

impl ClientConnection {
    /// Starts the reader task over `channels`, whose reader enforces
    /// `incoming_limit`, and returns the connection (not yet initialized).
    /// Needs a Tokio runtime.
    pub(crate) fn start(
        channels: TransportChannels,
        incoming_limit: Arc<IncomingLimit>,
        options: ConnectOptions,
        local_server: Option<tokio::process::Child>,
    ) -> Arc<Self> {
        let router = Arc::new(Router::new(options.output_stall_timeout));
        let reader = tokio::spawn(
            router
                .clone()
                .run(channels.incoming, incoming_limit.clone()),
        );
        Arc::new(Self {
            router,
            outgoing: Mutex::new(Some(channels.outgoing)),
            max_message_bytes: AtomicU64::new(0),
            incoming_limit,
            options,
            reader: Mutex::new(Some(reader)),
            local_server: Mutex::new(local_server),
            next_process: AtomicU64::new(1),
        })
    }

    /// The router, for process routes.
    pub(crate) fn router(&self) -> &Router {
        &self.router
    }

    /// The options the connection was made with.
    pub(crate) fn options(&self) -> &ConnectOptions {
        &self.options
    }

    /// Records the server's message size limit, in bytes: what this client
    /// may send, and (4 times it) what it accepts.
    pub(crate) fn set_max_message_bytes(&self, limit: u64) {
        self.max_message_bytes.store(limit, Ordering::Relaxed);
        self.incoming_limit.adopt_server_limit(limit);
    }

    /// A `processId` no other default id of this connection has.
    pub(crate) fn next_process_id(&self) -> String {
        let number = self.next_process.fetch_add(1, Ordering::Relaxed);
        format!("exec-client-{number}")
    }

    /// The OS pid of the server process this connection started, if any.
    pub(crate) fn local_server_pid(&self) -> Option<u32> {
        lock(&self.local_server)
            .as_ref()
            .and_then(tokio::process::Child::id)
    }

    /// Sends a request and waits for its raw result.
    ///
    /// # Errors
    /// [`ClientError::Server`] for a JSON-RPC error; the closed error when
    /// the connection closes first; [`ClientError::InvalidInput`] when
    /// `params` do not serialize; [`ClientError::MessageTooLarge`].
    pub(crate) async fn request_raw<P: Serialize + ?Sized>(
        &self,
        method: &str,
        params: &P,
    ) -> Result<Box<RawValue>, ClientError> {
        let (id, response) = self.router.register_call()?;
        let _forget = ForgetOnDrop {
            router: &self.router,
            id,
        };
        let text = serde_json::to_string(&RequestMessage {
            jsonrpc: "2.0",
            id,
            method,
            params,
        })
        .map_err(|error| {
            ClientError::InvalidInput(format!(
                "the params of `{method}` do not serialize: {error}"
            ))
        })?;
        self.send(text).await?;
        // The sender is only dropped unanswered when the router closes.
        response.await.map_err(|_| self.router.closed_error())?
    }

    /// Sends request `M` and parses its result.
    ///
    /// # Errors
    /// As [`Self::request_raw`], and [`ClientError::Protocol`] when the
    /// result does not match `M::Response`.
    pub(crate) async fn call<M: Request>(
        &self,
        params: &M::Params,
    ) -> Result<M::Response, ClientError> {
        let raw = self.request_raw(M::METHOD, params).await?;
        serde_json::from_str(raw.get()).map_err(|error| {
            ClientError::Protocol(format!(
                "the result of `{}` does not match the schema ({error}): {}",
                M::METHOD,
                raw.get()
            ))
        })
    }

    /// Sends a notification.
    ///
    /// # Errors
    /// The closed error when the connection is closed; [`ClientError::InvalidInput`]
    /// when `params` do not serialize; [`ClientError::MessageTooLarge`].
    pub(crate) async fn notify<P: Serialize + ?Sized>(
        &self,
        method: &str,
        params: &P,
    ) -> Result<(), ClientError> {
        let text = serde_json::to_string(&NotificationMessage {
            jsonrpc: "2.0",
            method,
            params,
        })
        .map_err(|error| {
            ClientError::InvalidInput(format!(
                "the params of `{method}` do not serialize: {error}"
            ))
        })?;
        self.send(text).await
    }

    /// Writes one message to the transport.
    async fn send(&self, text: String) -> Result<(), ClientError> {
        let limit = self.max_message_bytes.load(Ordering::Relaxed);
        if limit > 0 && text.len() as u64 > limit {
            return Err(ClientError::MessageTooLarge {
                bytes: text.len(),
                limit,
            });
        }
        let sender = lock(&self.outgoing)
            .clone()
            .ok_or(ClientError::TransportClosed)?;
        sender
            .send(text)
            .await
            .map_err(|_| self.router.closed_error())
    }

    /// Closes the connection: stops sending (the transport closes the
    /// connection once what is queued is written), waits up to 10 s for the
    /// server to finish it, fails whatever still waits with
    /// [`ClientError::TransportClosed`], and waits up to 10 s for a local
    /// server to exit (killing it after that).
    ///
    /// # Errors
    /// [`ClientError::Timeout`] when a local server had to be killed;
    /// [`ClientError::Io`] when waiting for it failed.
    pub(crate) async fn close(&self) -> Result<(), ClientError> {
        drop(lock(&self.outgoing).take());
        let reader = lock(&self.reader).take();
        if let Some(reader) = reader
            && tokio::time::timeout(CLOSE_TIMEOUT, reader).await.is_err()
        {
            tracing::warn!("the server did not end the connection in time");
        }
        self.router.close();
        let server = lock(&self.local_server).take();
        if let Some(mut server) = server {
            match tokio::time::timeout(CLOSE_TIMEOUT, server.wait()).await {
                Ok(status) => {
                    status?;
                }
                Err(_) => {
                    server.start_kill()?;
                    server.wait().await?;
                    return Err(ClientError::Timeout {
                        what: String::from("the local exec-server to exit"),
                    });
                }
            }
        }
        Ok(())
    }
}
