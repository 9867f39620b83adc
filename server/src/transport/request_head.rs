//! The HTTP request head of a new connection, read before tungstenite sees
//! it: `GET /readyz` (or `HEAD`) without an upgrade is answered 200, any
//! other complete request without `Upgrade: websocket` a plain 404, so that
//! a load balancer or a Kubernetes probe can ask whether the server is up
//! without a token. tungstenite cannot do this itself: it refuses a request
//! without upgrade headers before its callback runs, and it never sends a
//! success status of the callback's.
//!
//! Everything else (an upgrade, a head that does not parse or is too long)
//! goes to tungstenite with the bytes read so far put back in front
//! ([`Replay`]), so the upgrade and its checks behave as before.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};

/// The path of the readiness probe.
pub const READINESS_PATH: &str = "/readyz";

/// How many bytes of a head are read looking for its end; a longer head is
/// left to tungstenite, which has its own limits.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Headers parsed at most (tungstenite's own limit), so that a request that
/// tungstenite would take is never refused here.
const MAX_HEADERS: usize = 124;

/// What the head of a connection asks for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Asked {
    /// A WebSocket upgrade, or something only tungstenite can judge: the
    /// bytes read so far, to be replayed.
    Upgrade(Vec<u8>),
    /// A request this module answered itself (`/readyz`, 404); the
    /// connection is done.
    Answered,
}

/// Reads the request head from `stream` and answers it when it is not an
/// upgrade. Cancel-safe only in the sense that dropping it drops the
/// connection (the caller's deadline does so).
///
/// # Errors
/// The stream failed while reading or while writing the answer.
pub(crate) async fn read<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> io::Result<Asked> {
    let mut head = Vec::with_capacity(1024);
    loop {
        if head.len() >= MAX_HEAD_BYTES {
            return Ok(Asked::Upgrade(head));
        }
        let mut chunk = [0u8; 2048];
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            // The client gave up before the end of its head: tungstenite
            // reports that as before (an incomplete handshake).
            return Ok(Asked::Upgrade(head));
        }
        head.extend_from_slice(&chunk[..read]);
        match classify(&head) {
            Classified::Partial => {}
            Classified::Upgrade => return Ok(Asked::Upgrade(head)),
            Classified::Answer(response) => {
                stream.write_all(response.as_bytes()).await?;
                stream.shutdown().await?;
                return Ok(Asked::Answered);
            }
        }
    }
}

/// What a head read so far calls for.
#[derive(Debug, PartialEq, Eq)]
enum Classified {
    /// The head is not complete yet.
    Partial,
    /// Hand it to tungstenite.
    Upgrade,
    /// Answer with this whole HTTP response and close.
    Answer(&'static str),
}

/// The answer to a readiness probe: 200, a short body, no keep-alive.
const READY: &str = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\
    Connection: close\r\n\r\nok\n";

/// The same for `HEAD`, without the body.
const READY_HEAD: &str = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\
    Connection: close\r\n\r\n";

/// The answer to any other request that is not an upgrade.
const NOT_FOUND: &str = "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n\
    Content-Length: 10\r\nConnection: close\r\n\r\nnot found\n";

/// Decides from the bytes of a head read so far.
fn classify(head: &[u8]) -> Classified {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(head) {
        Ok(httparse::Status::Partial) => Classified::Partial,
        // tungstenite parses the same bytes and refuses them its own way.
        Err(_) => Classified::Upgrade,
        Ok(httparse::Status::Complete(_)) => {
            let upgrade = request.headers.iter().any(|header| {
                header.name.eq_ignore_ascii_case("upgrade")
                    && std::str::from_utf8(header.value)
                        .is_ok_and(|value| value.trim().eq_ignore_ascii_case("websocket"))
            });
            if upgrade {
                return Classified::Upgrade;
            }
            // The path without a query string: a probe may add one.
            let path = request
                .path
                .unwrap_or_default()
                .split('?')
                .next()
                .unwrap_or_default();
            match (request.method.unwrap_or_default(), path) {
                ("GET", READINESS_PATH) => Classified::Answer(READY),
                ("HEAD", READINESS_PATH) => Classified::Answer(READY_HEAD),
                _ => Classified::Answer(NOT_FOUND),
            }
        }
    }
}

/// A stream whose first reads return `prefix` (the head already read),
/// then read from `inner`; writes go to `inner`.
#[derive(Debug)]
pub(crate) struct Replay<S> {
    /// The bytes still to be returned before `inner` is read.
    prefix: Vec<u8>,
    /// How many bytes of `prefix` were returned.
    position: usize,
    /// The connection.
    inner: S,
}

impl<S> Replay<S> {
    /// Returns `prefix` first, then what `inner` reads.
    pub(crate) fn new(prefix: Vec<u8>, inner: S) -> Self {
        Self {
            prefix,
            position: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Replay<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.position < this.prefix.len() {
            let rest = &this.prefix[this.position..];
            let count = rest.len().min(buffer.remaining());
            buffer.put_slice(&rest[..count]);
            this.position += count;
            if this.position == this.prefix.len() {
                // Replayed whole: its memory goes back at once.
                this.prefix = Vec::new();
                this.position = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(context, buffer)
    }
}

super::stream::write_through_to_inner!(Replay);

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;

    use super::*;

    #[test]
    fn a_readiness_probe_is_answered_and_other_paths_are_not_found() {
        let probe = b"GET /readyz HTTP/1.1\r\nHost: x\r\nUser-Agent: kube-probe/1.31\r\n\r\n";
        assert_eq!(classify(probe), Classified::Answer(READY));
        assert_eq!(
            classify(b"GET /readyz?verbose HTTP/1.1\r\n\r\n"),
            Classified::Answer(READY)
        );
        assert_eq!(
            classify(b"HEAD /readyz HTTP/1.1\r\n\r\n"),
            Classified::Answer(READY_HEAD)
        );
        assert_eq!(
            classify(b"GET / HTTP/1.1\r\n\r\n"),
            Classified::Answer(NOT_FOUND)
        );
        assert_eq!(
            classify(b"POST /readyz HTTP/1.1\r\n\r\n"),
            Classified::Answer(NOT_FOUND)
        );
    }

    #[test]
    fn upgrades_partial_and_broken_heads_go_to_tungstenite() {
        let upgrade = b"GET /readyz HTTP/1.1\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n\r\n";
        assert_eq!(classify(upgrade), Classified::Upgrade);
        assert_eq!(classify(b"GET /readyz HTTP/1.1\r\nHo"), Classified::Partial);
        // A TLS ClientHello sent to a plain listener.
        assert_eq!(classify(&[0x16, 0x03, 0x01, 0x00]), Classified::Upgrade);
    }

    #[tokio::test]
    async fn replay_returns_the_prefix_then_the_stream() {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(b" world").await.expect("written");
        drop(client);
        let mut replay = Replay::new(b"hello".to_vec(), server);
        let mut all = String::new();
        replay.read_to_string(&mut all).await.expect("read");
        assert_eq!(all, "hello world");
    }
}
