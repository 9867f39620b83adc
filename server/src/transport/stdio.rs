//! Newline-delimited JSON over a byte stream (stdio): one message per line,
//! UTF-8, `\n`-terminated (a trailing `\r` is tolerated). The server's own
//! stdin and stdout ([`serve_stdio`]) are read and written on the reactor
//! when they are pipes or sockets (`nonblocking_fd`), through tokio's
//! blocking pool otherwise.

use std::io;
use std::os::fd::AsFd as _;
use std::sync::Arc;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

use super::nonblocking_fd::NonBlockingFd;
use super::{Farewell, MessageSink, MessageSource, Received, serve_connection};
use crate::config::ServerConfig;
use crate::error::{INVALID_REQUEST, PARSE_ERROR};
use crate::shutdown::ShutdownSignal;

/// Serves one connection over the process's own stdin and stdout, as
/// [`serve`] does. Each is read or written on the reactor when it is a pipe
/// or a socket (set non-blocking meanwhile, its flags restored at the end),
/// through tokio's blocking pool when it is anything else (a terminal, a
/// regular file, `/dev/null`).
pub fn serve_stdio(
    config: Arc<ServerConfig>,
    shutdown: ShutdownSignal,
) -> impl Future<Output = ()> + Send + 'static {
    // Opened before the future is made, so that it holds only the boxed
    // streams (and can be spawned onto a worker thread).
    let reader: Box<dyn AsyncRead + Unpin + Send> =
        match NonBlockingFd::new(std::io::stdin().as_fd()) {
            Some(stdin) => Box::new(stdin),
            None => Box::new(tokio::io::stdin()),
        };
    let writer: Box<dyn AsyncWrite + Unpin + Send> =
        match NonBlockingFd::new(std::io::stdout().as_fd()) {
            Some(stdout) => Box::new(stdout),
            None => Box::new(tokio::io::stdout()),
        };
    serve(config, reader, writer, shutdown)
}

/// Serves one connection over `reader`/`writer` until `reader` reaches EOF
/// or `shutdown` fires, then kills the connection's processes and flushes
/// what is queued.
///
/// # Errors
/// None for protocol errors (they are answered on the wire); I/O errors of
/// the streams end the connection and are logged.
pub async fn serve<R, W>(config: Arc<ServerConfig>, reader: R, writer: W, shutdown: ShutdownSignal)
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let source = LineSource {
        reader: BufReader::with_capacity(64 * 1024, reader),
        line: Vec::new(),
        limit: config.max_message_bytes,
    };
    let sink = LineSink {
        writer: tokio::io::BufWriter::with_capacity(256 * 1024, writer),
    };
    serve_connection(config, source, sink, shutdown).await;
}

/// Messages read line by line, at most `limit` bytes of a line held in memory.
struct LineSource<R> {
    /// The byte stream.
    reader: BufReader<R>,
    /// The line being read; handed over once complete.
    line: Vec<u8>,
    /// Largest message, in bytes.
    limit: usize,
}

impl<R: AsyncRead + Unpin + Send> MessageSource for LineSource<R> {
    async fn next(&mut self) -> Option<Received> {
        match read_line(&mut self.reader, &mut self.line, self.limit).await {
            Ok(Line::Complete) => {
                // The line is handed over, not copied: the next one starts
                // a buffer of its own.
                let mut line = std::mem::take(&mut self.line);
                if line.ends_with(b"\r") {
                    line.pop();
                }
                Some(match String::from_utf8(line) {
                    Ok(text) => Received::Message(text.into()),
                    Err(error) => Received::Unreadable {
                        code: PARSE_ERROR,
                        message: format!(
                            "parse error: the line is not UTF-8 ({})",
                            error.utf8_error()
                        ),
                    },
                })
            }
            Ok(Line::TooLong(length)) => Some(Received::Unreadable {
                code: INVALID_REQUEST,
                message: format!(
                    "invalid request: a line of at least {length} bytes is over the limit of {} bytes",
                    self.limit
                ),
            }),
            Ok(Line::Eof) => None,
            Err(error) => {
                tracing::warn!(%error, "reading the connection failed");
                None
            }
        }
    }
}

/// Messages written one per line through a buffer.
struct LineSink<W> {
    /// The buffered byte stream.
    writer: tokio::io::BufWriter<W>,
}

impl<W: AsyncWrite + Unpin + Send + 'static> MessageSink for LineSink<W> {
    async fn send(&mut self, text: String) -> io::Result<()> {
        self.writer.write_all(text.as_bytes()).await?;
        self.writer.write_all(b"\n").await
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.writer.flush().await
    }

    async fn close(mut self, _farewell: Farewell) {
        let _ = self.writer.flush().await;
    }
}

/// What [`read_line`] found.
enum Line {
    /// A whole line is in the buffer (without its `\n`).
    Complete,
    /// A line longer than the limit was skipped up to its `\n`; the number is
    /// how many bytes were skipped.
    TooLong(usize),
    /// The stream ended (a final line without `\n` counts as complete first).
    Eof,
}

/// Reads one line into `line`, holding at most `limit` bytes of it in memory:
/// a longer line is consumed and discarded, so the connection can go on with
/// the next one. (Codecs such as tokio-util's `LinesCodec` end the stream on
/// an over-long or non-UTF-8 line, which this protocol must survive.)
async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
    limit: usize,
) -> std::io::Result<Line> {
    line.clear();
    let mut skipped = 0usize;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(match (skipped, line.is_empty()) {
                (0, true) => Line::Eof,
                (0, false) => Line::Complete,
                _ => Line::TooLong(skipped),
            });
        }
        let (chunk, found_newline) = match memchr_newline(available) {
            Some(position) => (&available[..position], true),
            None => (available, false),
        };
        let used = chunk.len() + usize::from(found_newline);
        if skipped > 0 || line.len() + chunk.len() > limit {
            skipped += line.len() + chunk.len();
            line.clear();
        } else {
            line.extend_from_slice(chunk);
        }
        reader.consume(used);
        if found_newline {
            return Ok(if skipped > 0 {
                Line::TooLong(skipped)
            } else {
                Line::Complete
            });
        }
    }
}

fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', bytes)
}
