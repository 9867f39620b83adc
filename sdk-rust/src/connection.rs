//! [`ClientConnection`]: the client's end of one session with a server (the
//! server has a `Connection` of its own). It numbers requests, hands them to
//! the router's link, waits for their responses, and owns what must live
//! exactly as long as the session: the router, the supervisor task (which
//! runs each transport's reader and resumes a dropped WebSocket), the cap on
//! incoming messages and a local server process.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use exec_protocol::{InitializeResponse, Request};
use serde::Serialize;
use serde_json::value::RawValue;
use tokio::task::JoinHandle;

use crate::error::ClientError;
use crate::message::{notification_text, request_text};
use crate::options::ConnectOptions;
use crate::reconnect::{SessionTerms, Supervisor};
use crate::router::{Router, is_repeatable_call};
use crate::state::ClosedReason;
use crate::sync::lock;
use crate::transport::limit::IncomingLimit;
use crate::transport::link::Link;
use crate::transport::socket::CloseCode;

/// How long [`ClientConnection::close`] waits for the server to finish the
/// connection, and for a local server to exit.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// How a WebSocket connection can be told apart from a drop, and dialled again.
pub(crate) struct WebSocketEnd {
    /// Where the first transport records the server's close code.
    pub(crate) close_code: Arc<CloseCode>,
    /// The URL to dial again after a drop; `None` when reconnect is disabled.
    pub(crate) redial: Option<String>,
}

/// One session with a server, shared by an [`ExecClient`](crate::ExecClient)'s
/// clones and its [`RemoteChild`](crate::RemoteChild)ren. Dropping the last
/// of them closes it.
pub(crate) struct ClientConnection {
    /// The link, pending calls and process routes, fed by the reader tasks.
    router: Arc<Router>,
    /// The server's `limits.maxMessageBytes` (0 until `initialize` said).
    max_message_bytes: AtomicU64,
    /// The cap on one message from the server, shared with every transport's
    /// reader; lowered when `initialize` reports the server's limit.
    incoming_limit: Arc<IncomingLimit>,
    /// The options the connection was made with.
    options: ConnectOptions,
    /// The session to resume after a drop, once the first `initialize` said
    /// it; shared with the supervisor.
    session: Arc<OnceLock<SessionTerms>>,
    /// The supervisor task, awaited by [`ClientConnection::close`].
    supervisor: Mutex<Option<JoinHandle<()>>>,
    /// The server process [`ExecClient::spawn_local`](crate::ExecClient::spawn_local)
    /// started. Never killed on drop: closing its stdin makes it kill its
    /// own process groups and exit, which a kill would skip.
    local_server: Mutex<Option<tokio::process::Child>>,
    /// Numbers the default `processId`s.
    next_process: AtomicU64,
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
    /// Starts the supervisor over `channels`, whose reader enforces
    /// `incoming_limit`, and returns the connection (not yet initialized).
    /// `websocket` is set for a WebSocket transport. Needs a Tokio runtime.
    pub(crate) fn start(
        link: Link,
        incoming_limit: Arc<IncomingLimit>,
        options: ConnectOptions,
        local_server: Option<tokio::process::Child>,
        websocket: Option<WebSocketEnd>,
    ) -> Arc<Self> {
        let (router, acks) = Router::new(options.output_stall_timeout, link.outgoing);
        let router = Arc::new(router);
        let reader = tokio::spawn(router.clone().run(link.incoming, incoming_limit.clone()));
        let session = Arc::new(OnceLock::new());
        let (close_code, redial) = match websocket {
            Some(websocket) => (Some(websocket.close_code), websocket.redial),
            None => (None, None),
        };
        let supervisor = Supervisor {
            router: router.clone(),
            limit: incoming_limit.clone(),
            options: options.clone(),
            redial,
            session: session.clone(),
        };
        let supervisor = tokio::spawn(supervisor.run(reader, close_code, acks));
        Arc::new(Self {
            router,
            max_message_bytes: AtomicU64::new(0),
            incoming_limit,
            options,
            session,
            supervisor: Mutex::new(Some(supervisor)),
            local_server: Mutex::new(local_server),
            next_process: AtomicU64::new(1),
        })
    }

    /// The router, for process routes and the connection state.
    pub(crate) fn router(&self) -> &Router {
        &self.router
    }

    /// The options the connection was made with.
    pub(crate) fn options(&self) -> &ConnectOptions {
        &self.options
    }

    /// Takes in the first `initialize` answer: the message size limit (in
    /// bytes: what this client may send, and 4 times it what it accepts),
    /// the session to resume after a drop, and, when output is
    /// acknowledged, the acknowledgement threshold (a quarter of the
    /// server's retention per process).
    pub(crate) fn adopt_initialize(&self, response: &InitializeResponse, acknowledge_output: bool) {
        let limits = &response.limits;
        self.max_message_bytes
            .store(limits.max_message_bytes, Ordering::Relaxed);
        self.incoming_limit
            .adopt_server_limit(limits.max_message_bytes);
        let _ = self.session.set(SessionTerms {
            session_id: response.session_id.clone(),
            ttl: Duration::from_millis(limits.session_ttl_ms),
        });
        if acknowledge_output {
            self.router
                .acknowledge_output(limits.retained_output_bytes_per_process / 4);
        }
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

    /// Sends a request and waits for its raw result. A `repeatable` request
    /// is sent again after a resume instead of failing with
    /// [`ClientError::ConnectionLost`]; while the connection is being
    /// resumed, the request waits for it.
    ///
    /// # Errors
    /// [`ClientError::Server`] for a JSON-RPC error; the closed error when
    /// the connection closes first; [`ClientError::ConnectionLost`] when it
    /// drops first (not for a `repeatable` request); [`ClientError::InvalidInput`]
    /// when `params` do not serialize; [`ClientError::MessageTooLarge`].
    pub(crate) async fn request_raw<P: Serialize + ?Sized>(
        &self,
        method: &str,
        params: &P,
        repeatable: bool,
    ) -> Result<Box<RawValue>, ClientError> {
        let id = self.router.reserve_id();
        let text = request_text(id, method, params)?;
        self.check_size(&text)?;
        let resend = repeatable.then(|| text.clone());
        let (sender, response) = self.router.register_call(id, method, resend).await?;
        let _forget = ForgetOnDrop {
            router: &self.router,
            id,
        };
        // A send fails only when the transport is going away; the drop (or
        // the close) that follows answers the call, so it is awaited anyway.
        let _ = sender.send(text).await;
        // The sender is only dropped unanswered when the router is dropped.
        response.await.map_err(|_| self.router.closed_error())?
    }

    /// Sends request `M` and parses its result (a `process/start`, and a
    /// `process/write` with a `writeId`, are repeated after a resume).
    ///
    /// # Errors
    /// As [`Self::request_raw`], and [`ClientError::Protocol`] when the
    /// result does not match `M::Response`.
    pub(crate) async fn call<M: Request>(
        &self,
        params: &M::Params,
    ) -> Result<M::Response, ClientError> {
        let repeatable = is_repeatable_call::<M>(params);
        let raw = self.request_raw(M::METHOD, params, repeatable).await?;
        serde_json::from_str(raw.get()).map_err(|error| {
            ClientError::Protocol(format!(
                "the result of `{}` does not match the schema ({error}): {}",
                M::METHOD,
                raw.get()
            ))
        })
    }

    /// Sends a notification, waiting for a resume in progress. A
    /// notification written while the transport drops is lost with it, as
    /// any message in flight.
    ///
    /// # Errors
    /// The closed error when the connection is closed; [`ClientError::InvalidInput`]
    /// when `params` do not serialize; [`ClientError::MessageTooLarge`].
    pub(crate) async fn notify<P: Serialize + ?Sized>(
        &self,
        method: &str,
        params: &P,
    ) -> Result<(), ClientError> {
        let text = notification_text(method, params)?;
        self.check_size(&text)?;
        let sender = self.router.sender().await?;
        if sender.send(text).await.is_err() && self.router.is_closed() {
            return Err(self.router.closed_error());
        }
        Ok(())
    }

    /// Refuses a message over the server's limit.
    fn check_size(&self, text: &str) -> Result<(), ClientError> {
        let limit = self.max_message_bytes.load(Ordering::Relaxed);
        if limit > 0 && text.len() as u64 > limit {
            return Err(ClientError::MessageTooLarge {
                bytes: text.len(),
                limit,
            });
        }
        Ok(())
    }

    /// Closes the connection: stops sending (the transport closes the
    /// connection once what is queued is written) and any resume in
    /// progress, waits up to 10 s for the server to finish it, fails
    /// whatever still waits with [`ClientError::TransportClosed`], and waits
    /// up to 10 s for a local server to exit (killing it after that).
    ///
    /// # Errors
    /// [`ClientError::Timeout`] when a local server had to be killed;
    /// [`ClientError::Io`] when waiting for it failed.
    pub(crate) async fn close(&self) -> Result<(), ClientError> {
        self.router.request_close();
        let supervisor = lock(&self.supervisor).take();
        if let Some(supervisor) = supervisor
            && tokio::time::timeout(CLOSE_TIMEOUT, supervisor)
                .await
                .is_err()
        {
            tracing::warn!("the server did not end the connection in time");
        }
        self.router.close_with(ClosedReason::ClientClosed);
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

impl Drop for ClientConnection {
    fn drop(&mut self) {
        // The last user is gone: the transport closes, and a resume in
        // progress stops.
        self.router.request_close();
    }
}
