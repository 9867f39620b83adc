//! Newline-delimited JSON over a byte stream, used directly by the client's
//! tasks: callers write their lines through [`LineWriter`] and the router's
//! reader loop reads through [`LineReader`] (see `link`).

use std::io;
use std::sync::Arc;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::Mutex;

use super::limit::IncomingLimit;
use super::spawn_cleanup;

/// The server's input, shared by every caller (one message at a time,
/// under an async lock). Dropping the last one shuts the input down (EOF is
/// how a stdio client says goodbye), from a task of its own.
pub(crate) struct LineWriter {
    /// The writer and what is left of a message a cancelled send began.
    state: Arc<Mutex<LineState>>,
}

impl std::fmt::Debug for LineWriter {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("LineWriter").finish_non_exhaustive()
    }
}

/// The writer, with the bytes of the line being written.
struct LineState {
    /// The server's input.
    writer: Box<dyn AsyncWrite + Unpin + Send>,
    /// The line being written (message and `\n`); empty between lines.
    line: Vec<u8>,
    /// How much of `line` is written.
    written: usize,
}

impl LineState {
    /// Writes what is left of the current line, recording progress after
    /// each write, so a cancelled call leaves the rest for the next one (a
    /// line is never cut short), then flushes.
    async fn finish(&mut self) -> io::Result<()> {
        while self.written < self.line.len() {
            let written = self.writer.write(&self.line[self.written..]).await?;
            if written == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            self.written += written;
        }
        self.line.clear();
        self.written = 0;
        self.writer.flush().await
    }
}

impl LineWriter {
    /// The writer of `writer`.
    pub(crate) fn new(writer: Box<dyn AsyncWrite + Unpin + Send>) -> Self {
        Self {
            state: Arc::new(Mutex::new(LineState {
                writer,
                line: Vec::new(),
                written: 0,
            })),
        }
    }

    /// Writes `message` as one line and flushes it; first the rest of a
    /// line whose send was cancelled. Compact JSON never holds a raw newline
    /// (inside strings it is escaped), so the line framing is safe.
    ///
    /// # Errors
    /// The writer's error (the connection is ending).
    pub(crate) async fn send(&self, message: String) -> io::Result<()> {
        let mut state = self.state.lock().await;
        state.finish().await?;
        let mut line = message.into_bytes();
        line.push(b'\n');
        state.line = line;
        state.finish().await.inspect_err(|error| {
            tracing::debug!(%error, "writing to the server failed; the connection is ending");
        })
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        let state = self.state.clone();
        spawn_cleanup(async move {
            let mut state = state.lock().await;
            if state.finish().await.is_ok() {
                let _ = state.writer.shutdown().await;
            }
        });
    }
}

/// The server's output, read a line at a time under the cap on one
/// message.
pub(crate) struct LineReader {
    /// The server's output, buffered.
    reader: BufReader<Box<dyn AsyncRead + Unpin + Send>>,
    /// The line being read.
    line: Vec<u8>,
    /// The cap on one line, and where a breach is recorded.
    limit: Arc<IncomingLimit>,
    /// Set once the stream ended, so it is not read past its end.
    ended: bool,
}

impl std::fmt::Debug for LineReader {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("LineReader").finish_non_exhaustive()
    }
}

impl LineReader {
    /// The reader of `reader` with the cap `limit`.
    pub(crate) fn new(
        reader: Box<dyn AsyncRead + Unpin + Send>,
        limit: Arc<IncomingLimit>,
    ) -> Self {
        Self {
            reader: BufReader::with_capacity(64 * 1024, reader),
            line: Vec::new(),
            limit,
            ended: false,
        }
    }

    /// The next non-empty line, `None` once the stream ended (and after):
    /// EOF, an error, a line that is not UTF-8, or one over the cap (which is
    /// recorded in the limit first).
    pub(crate) async fn next(&mut self) -> Option<String> {
        if self.ended {
            return None;
        }
        let text = self.read().await;
        self.ended = text.is_none();
        text
    }

    async fn read(&mut self) -> Option<String> {
        loop {
            let cap = self.limit.bytes();
            match read_line(&mut self.reader, &mut self.line, cap).await {
                Ok(Line::Complete) => {}
                Ok(Line::Eof) => return None,
                Ok(Line::TooLong(seen)) => {
                    tracing::error!(
                        seen,
                        cap,
                        "the server sent a line over the client's limit; closing the connection"
                    );
                    self.limit.record_exceeded(seen, cap);
                    return None;
                }
                Err(error) => {
                    tracing::warn!(%error, "reading from the server failed; closing the connection");
                    return None;
                }
            }
            let text = self.line.strip_suffix(b"\r").unwrap_or(&self.line);
            if text.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let Ok(text) = std::str::from_utf8(text) else {
                // The protocol is UTF-8 JSON; a line that is not cannot be
                // trusted to frame the next ones either.
                tracing::error!("the server sent a line that is not UTF-8; closing the connection");
                return None;
            };
            return Some(text.to_owned());
        }
    }
}

/// What [`read_line`] found.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// A whole line is in the buffer, without its `\n`.
    Complete,
    /// The line is longer than the limit; the number is how many of its
    /// bytes were seen (it has at least that many). The rest is unread.
    TooLong(usize),
    /// The stream ended (a final line without `\n` counts as complete first).
    Eof,
}

/// Reads one line into `line`, without its `\n`, holding at most `limit`
/// bytes of it (a `\r` before the `\n` counts): the server may not make the
/// client buffer more, so a longer line stops the reading with
/// [`Line::TooLong`] (tokio's `read_until` would take the whole line first).
async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
    limit: usize,
) -> std::io::Result<Line> {
    line.clear();
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(if line.is_empty() {
                Line::Eof
            } else {
                Line::Complete
            });
        }
        let newline = memchr::memchr(b'\n', available);
        let content = &available[..newline.unwrap_or(available.len())];
        if line.len() + content.len() > limit {
            return Ok(Line::TooLong(line.len() + content.len()));
        }
        line.extend_from_slice(content);
        let used = content.len() + usize::from(newline.is_some());
        reader.consume(used);
        if newline.is_some() {
            return Ok(Line::Complete);
        }
    }
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;
    use tokio::io::{AsyncReadExt, duplex};

    use super::*;

    #[tokio::test]
    async fn a_line_is_held_only_up_to_the_limit() {
        let mut line = Vec::new();
        // Exactly at the limit (the `\r` counts), then one byte over it.
        let mut reader = BufReader::with_capacity(4, &b"12345\r\n123456\nafter"[..]);
        assert_eq!(
            read_line(&mut reader, &mut line, 6).await.expect("read"),
            Line::Complete
        );
        assert_eq!(line, b"12345\r");
        let mut reader = BufReader::with_capacity(4, &b"1234567\nafter"[..]);
        let outcome = read_line(&mut reader, &mut line, 6).await.expect("read");
        // Reading stopped at the buffer that crossed the limit.
        assert_eq!(outcome, Line::TooLong(7));
        assert!(line.len() <= 6, "{} bytes held", line.len());
        // A final line without a newline, then EOF.
        let mut reader = BufReader::new(&b"last"[..]);
        assert_eq!(
            read_line(&mut reader, &mut line, 6).await.expect("read"),
            Line::Complete
        );
        assert_eq!(line, b"last");
        assert_eq!(
            read_line(&mut reader, &mut line, 6).await.expect("read"),
            Line::Eof
        );
    }

    #[tokio::test]
    async fn a_cancelled_send_leaves_its_line_whole_for_the_next() {
        // A pipe of 8 bytes: a 64-byte line cannot be written at once.
        let (client_side, mut server_side) = duplex(8);
        let writer = LineWriter::new(Box::new(client_side));
        let long = "a".repeat(63);
        let sent = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            writer.send(long.clone()),
        )
        .await;
        assert!(sent.is_err(), "the pipe is full: the send waits");
        let reading = tokio::spawn(async move {
            let mut read = String::new();
            server_side.read_to_string(&mut read).await.expect("read");
            read
        });
        writer.send(String::from("next")).await.expect("sent");
        drop(writer);
        assert_eq!(reading.await.expect("reader"), format!("{long}\nnext\n"));
    }
}
