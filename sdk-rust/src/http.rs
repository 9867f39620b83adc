//! Streamed `http/request` bodies on the client side:
//! [`ExecClient::http_request_streamed`] and the [`HttpBodyStream`] it
//! returns, which hands out the `http/request/bodyDelta` pieces in `seq`
//! order. (A buffered request is the generated
//! [`ExecClient::http_request`].)

use std::sync::Arc;

use exec_protocol::{
    HttpRequest, HttpRequestBodyDeltaNotification, HttpRequestParams, HttpRequestResponse,
};
use tokio::sync::mpsc;

use crate::client::ExecClient;
use crate::connection::ClientConnection;
use crate::error::ClientError;

impl ExecClient {
    /// Sends `http/request` with `streamResponse: true` (whatever `params`
    /// says) and returns the answer's status and headers with the body to
    /// read. The server makes the request from its own machine.
    ///
    /// Read the body promptly: while its queue (16 deltas of at most 1 MiB)
    /// is full, this client reads nothing more from the connection, which
    /// holds back the server's download too.
    ///
    /// # Errors
    /// [`ClientError::InvalidInput`] when a stream of the same `requestId`
    /// is still being read on this client; otherwise those of
    /// [`ExecClient::http_request`] (the server's `httpFailed`,
    /// `httpTimeout`, `invalidParams` in [`ClientError::Server`]).
    pub async fn http_request_streamed(
        &self,
        mut params: HttpRequestParams,
    ) -> Result<(HttpRequestResponse, HttpBodyStream), ClientError> {
        params.stream_response = Some(true);
        let bodies = self.connection.router().http_bodies();
        let receiver = bodies.register(&params.request_id)?;
        let stream = HttpBodyStream {
            request_id: params.request_id.clone(),
            receiver,
            next_seq: 1,
            finished: false,
            connection: self.connection.clone(),
        };
        let response = self.connection.call::<HttpRequest>(&params).await?;
        // A failed call drops `stream`, which lets the id go.
        Ok((response, stream))
    }
}

/// The body of a streamed `http/request`, piece by piece.
pub struct HttpBodyStream {
    /// The request's `requestId`.
    request_id: String,
    /// The deltas, from the router.
    receiver: mpsc::Receiver<HttpRequestBodyDeltaNotification>,
    /// The `seq` the next delta must have (they start at 1).
    next_seq: u64,
    /// True once the `done` delta (or an error) was seen.
    finished: bool,
    /// The connection whose router holds this stream's registration.
    connection: Arc<ClientConnection>,
}

impl HttpBodyStream {
    /// The request's `requestId`.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// The next piece of the body (at most 1 MiB; never empty), or `None`
    /// once the whole body arrived.
    ///
    /// # Errors
    /// [`ClientError::HttpBody`] when the server reported that reading the
    /// body failed, or the connection dropped or closed before the end;
    /// [`ClientError::Protocol`] when a delta's `seq` is not the next one.
    pub async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, ClientError> {
        loop {
            if self.finished {
                return Ok(None);
            }
            let Some(delta) = self.receiver.recv().await else {
                self.finished = true;
                return Err(self.broken("the connection ended before the last delta"));
            };
            if delta.seq.get() != self.next_seq {
                self.finished = true;
                return Err(ClientError::Protocol(format!(
                    "http/request `{}`: body delta seq {} where {} was next",
                    self.request_id, delta.seq, self.next_seq
                )));
            }
            self.next_seq += 1;
            if delta.done {
                self.finished = true;
                if let Some(error) = delta.error {
                    return Err(self.broken(&error));
                }
            }
            let bytes = delta.delta_base64.0;
            if !bytes.is_empty() {
                return Ok(Some(bytes));
            }
        }
    }

    /// The rest of the body, whole.
    ///
    /// # Errors
    /// Those of [`Self::next_chunk`].
    pub async fn read_to_end(mut self) -> Result<Vec<u8>, ClientError> {
        let mut body = Vec::new();
        while let Some(chunk) = self.next_chunk().await? {
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    fn broken(&self, message: &str) -> ClientError {
        ClientError::HttpBody {
            request_id: self.request_id.clone(),
            message: message.to_owned(),
        }
    }
}

impl Drop for HttpBodyStream {
    fn drop(&mut self) {
        if !self.finished {
            // The rest of the body goes nowhere; the router drops it.
            self.connection
                .router()
                .http_bodies()
                .remove(&self.request_id);
        }
    }
}

impl std::fmt::Debug for HttpBodyStream {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("HttpBodyStream")
            .field("request_id", &self.request_id)
            .field("next_seq", &self.next_seq)
            .field("finished", &self.finished)
            .finish()
    }
}
