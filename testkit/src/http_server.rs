//! [`HttpTestServer`]: a small HTTP/1.1 server on `127.0.0.1:0` for the
//! tests of `http/request`, so that no test needs the internet. It answers
//! one request per connection (`Connection: close`) by path:
//!
//! | path | answer |
//! |---|---|
//! | `/hello` | 200, body `hello`, two `x-repeat` headers (`a`, then `b`) |
//! | `/echo` | 200, body: the request's head as received, then its body |
//! | `/bytes/N` | 200, `N` bytes of [`pattern_byte`], written in 64 KiB pieces |
//! | `/redirect` | 302 to `/hello` |
//! | `/hang` | nothing: holds the connection until the client goes |
//! | `/stall` | 200 with a `Content-Length` of 10, then no body: holds the connection until the client goes |
//! | `/endless` | 200 with a 1 TiB `Content-Length`, written until the client goes, which [`HttpTestServer::client_gone`] then reports |
//! | anything else | 404 |

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// Most bytes of a request head the server reads before it gives up on it.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Size of each write of a `/bytes/N` or `/endless` body, in bytes.
const WRITE_BYTES: usize = 64 * 1024;

/// A running test HTTP server; it stops when dropped.
pub struct HttpTestServer {
    /// Where it listens.
    address: SocketAddr,
    /// Notified each time an `/endless` body's client went away.
    gone: Arc<Notify>,
    /// The accept loop, aborted on drop.
    accept: JoinHandle<()>,
}

/// The byte at `index` of a `/bytes/N` body: a pattern that repeats only
/// every 251 bytes, so a lost, doubled or reordered piece shows.
pub fn pattern_byte(index: usize) -> u8 {
    // The remainder is below 251, so the cast keeps every bit.
    ((index * 31 + 7) % 251) as u8
}

impl HttpTestServer {
    /// Starts the server.
    ///
    /// # Panics
    /// When no port on 127.0.0.1 can be bound.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let address = listener.local_addr().expect("local address");
        let gone = Arc::new(Notify::new());
        let notify = gone.clone();
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, notify.clone()));
            }
        });
        Self {
            address,
            gone,
            accept,
        }
    }

    /// The URL of `path` on this server (`path` starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// The `host:port` it listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Waits until the client of an `/endless` body went away (its
    /// connection reset or closed while the body was being written).
    pub async fn client_gone(&self) {
        self.gone.notified().await;
    }
}

impl Drop for HttpTestServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Answers the one request of `stream`.
async fn serve(mut stream: TcpStream, gone: Arc<Notify>) {
    let Some((head, body)) = read_request(&mut stream).await else {
        return;
    };
    let path = head
        .lines()
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .unwrap_or("/")
        .to_owned();
    let result = match path.as_str() {
        "/hello" => {
            respond(
                &mut stream,
                "200 OK",
                &["x-repeat: a", "x-repeat: b"],
                b"hello",
            )
            .await
        }
        "/echo" => {
            let mut echoed = head.into_bytes();
            echoed.extend_from_slice(&body);
            respond(&mut stream, "200 OK", &[], &echoed).await
        }
        "/redirect" => respond(&mut stream, "302 Found", &["location: /hello"], b"").await,
        "/hang" => {
            // Holds the connection open until the client closes it.
            let mut byte = [0u8; 1];
            let _ = stream.read(&mut byte).await;
            Ok(())
        }
        "/stall" => {
            let head = "HTTP/1.1 200 OK\r\ncontent-length: 10\r\nconnection: close\r\n\r\n";
            let result = stream.write_all(head.as_bytes()).await;
            let mut byte = [0u8; 1];
            let _ = stream.read(&mut byte).await;
            result
        }
        "/endless" => {
            let result = write_pattern(&mut stream, 1 << 40, usize::MAX).await;
            if result.is_err() {
                gone.notify_one();
            }
            result
        }
        other => match other
            .strip_prefix("/bytes/")
            .and_then(|n| n.parse::<usize>().ok())
        {
            Some(length) => write_pattern(&mut stream, length as u64, length).await,
            None => respond(&mut stream, "404 Not Found", &[], b"").await,
        },
    };
    // The client may go early; nothing to do about it here.
    let _ = result;
}

/// The request's head (through the blank line, as text) and its body
/// (`Content-Length` bytes); `None` when the client went first.
async fn read_request(stream: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 8192];
    let head_end = loop {
        if let Some(end) = received.windows(4).position(|window| window == b"\r\n\r\n") {
            break end + 4;
        }
        if received.len() > MAX_HEAD_BYTES {
            return None;
        }
        let read = stream.read(&mut buffer).await.ok()?;
        if read == 0 {
            return None;
        }
        received.extend_from_slice(&buffer[..read]);
    };
    let head = String::from_utf8_lossy(&received[..head_end]).into_owned();
    let length = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = received[head_end..].to_vec();
    while body.len() < length {
        let read = stream.read(&mut buffer).await.ok()?;
        if read == 0 {
            return None;
        }
        body.extend_from_slice(&buffer[..read]);
    }
    Some((head, body))
}

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    headers: &[&str],
    body: &[u8],
) -> std::io::Result<()> {
    let mut text = format!("HTTP/1.1 {status}\r\n");
    for header in headers {
        text.push_str(header);
        text.push_str("\r\n");
    }
    text.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    ));
    stream.write_all(text.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.shutdown().await
}

/// A 200 whose `Content-Length` says `declared`, then `length` bytes of
/// [`pattern_byte`] (fewer than declared for `/endless`, which stops only
/// when a write fails).
async fn write_pattern(
    stream: &mut TcpStream,
    declared: u64,
    length: usize,
) -> std::io::Result<()> {
    let head =
        format!("HTTP/1.1 200 OK\r\ncontent-length: {declared}\r\nconnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await?;
    let mut written = 0;
    let mut piece = Vec::with_capacity(WRITE_BYTES);
    while written < length {
        let size = WRITE_BYTES.min(length - written);
        piece.clear();
        piece.extend((written..written + size).map(pattern_byte));
        stream.write_all(&piece).await?;
        written += size;
    }
    stream.shutdown().await
}
