//! Newline-delimited JSON over a byte stream: one message per line, UTF-8,
//! `\n`-terminated (a trailing `\r` is tolerated), as `exec-server serve
//! --listen stdio://` speaks it.

use std::sync::Arc;

use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter,
};
use tokio::sync::mpsc;

use super::limit::{DEFAULT_MAX_INCOMING_MESSAGE_BYTES, IncomingLimit};
use super::{ServerMessage, TRANSPORT_CAPACITY, TransportChannels};

/// A transport over `reader` (the server's output) and `writer` (the
/// server's input), e.g. a child process's stdout and stdin. Spawns one task
/// per direction; needs a Tokio runtime.
///
/// The connection ends when `reader` reaches EOF or fails (the `incoming`
/// channel closes), and `writer` is shut down once the client drops the
/// `outgoing` sender. A line longer than 256 MiB also ends it, without being
/// read into memory ([`ExecClient::connect_stdio`](crate::ExecClient::connect_stdio)
/// takes the cap from [`ConnectOptions::max_incoming_message_bytes`](crate::ConnectOptions::max_incoming_message_bytes)
/// and reports a breach as [`ClientError::IncomingMessageTooLarge`](crate::ClientError::IncomingMessageTooLarge)).
pub fn stdio_transport<R, W>(reader: R, writer: W) -> TransportChannels
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let limit = Arc::new(IncomingLimit::new(DEFAULT_MAX_INCOMING_MESSAGE_BYTES));
    limited_stdio_transport(reader, writer, limit)
}

/// [`stdio_transport`] with the cap on one incoming line shared with the
/// client, which lowers it after `initialize` and reports a breach.
pub(crate) fn limited_stdio_transport<R, W>(
    reader: R,
    writer: W,
    limit: Arc<IncomingLimit>,
) -> TransportChannels
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (outgoing, to_write) = mpsc::channel(TRANSPORT_CAPACITY);
    let (read_lines_to, incoming) = mpsc::channel(TRANSPORT_CAPACITY);
    tokio::spawn(write_lines(writer, to_write));
    tokio::spawn(read_lines(reader, read_lines_to, limit));
    TransportChannels { outgoing, incoming }
}

/// Writes each message as one line, flushing whenever the queue runs empty
/// (a burst of requests goes out in few writes), and shuts the writer down
/// when the client is done.
async fn write_lines<W: AsyncWrite + Unpin>(writer: W, mut queue: mpsc::Receiver<String>) {
    let mut writer = BufWriter::new(writer);
    while let Some(message) = queue.recv().await {
        if let Err(error) = write_line(&mut writer, &message).await {
            tracing::debug!(%error, "writing to the server failed; the connection is ending");
            return;
        }
        while let Ok(message) = queue.try_recv() {
            if let Err(error) = write_line(&mut writer, &message).await {
                tracing::debug!(%error, "writing to the server failed; the connection is ending");
                return;
            }
        }
        if let Err(error) = writer.flush().await {
            tracing::debug!(%error, "flushing to the server failed; the connection is ending");
            return;
        }
    }
    // EOF on the server's input is how a stdio client says goodbye.
    let _ = writer.shutdown().await;
}

/// Writes one message and its newline. Compact JSON never holds a raw
/// newline (inside strings it is escaped), so the line framing is safe.
async fn write_line<W: AsyncWrite + Unpin>(writer: &mut W, message: &str) -> std::io::Result<()> {
    writer.write_all(message.as_bytes()).await?;
    writer.write_all(b"\n").await
}

/// Reads lines until EOF and hands each non-empty one over; awaiting the
/// hand-over is what passes back-pressure on to the server. A line over the
/// cap is recorded in `limit` and ends the connection.
async fn read_lines<R: AsyncRead + Unpin>(
    reader: R,
    incoming: mpsc::Sender<ServerMessage>,
    limit: Arc<IncomingLimit>,
) {
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let mut line = Vec::new();
    loop {
        let cap = limit.bytes();
        match read_line(&mut reader, &mut line, cap).await {
            Ok(Line::Complete) => {}
            Ok(Line::Eof) => return,
            Ok(Line::TooLong(seen)) => {
                tracing::error!(
                    seen,
                    cap,
                    "the server sent a line over the client's limit; closing the connection"
                );
                limit.record_exceeded(seen, cap);
                return;
            }
            Err(error) => {
                tracing::warn!(%error, "reading from the server failed; closing the connection");
                return;
            }
        }
        let text = line.strip_suffix(b"\r").unwrap_or(&line);
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let Ok(text) = std::str::from_utf8(text) else {
            // The protocol is UTF-8 JSON; a line that is not cannot be
            // trusted to frame the next ones either.
            tracing::error!("the server sent a line that is not UTF-8; closing the connection");
            return;
        };
        if incoming
            .send(ServerMessage::Text(text.to_owned()))
            .await
            .is_err()
        {
            return;
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
    async fn lines_in_and_out() {
        let (client_side, mut server_side) = duplex(1024);
        let (reader, writer) = tokio::io::split(client_side);
        let mut channels = stdio_transport(reader, writer);

        server_side
            .write_all(b"{\"a\":1}\r\n\n  \n{\"b\":2}\n{\"c\":3}")
            .await
            .expect("write");
        assert_eq!(
            channels
                .incoming
                .recv()
                .await
                .as_ref()
                .and_then(ServerMessage::as_text),
            Some("{\"a\":1}")
        );
        assert_eq!(
            channels
                .incoming
                .recv()
                .await
                .as_ref()
                .and_then(ServerMessage::as_text),
            Some("{\"b\":2}")
        );

        channels
            .outgoing
            .send("{\"x\":1}".into())
            .await
            .expect("open");
        channels
            .outgoing
            .send("{\"y\":2}".into())
            .await
            .expect("open");
        drop(channels.outgoing);
        let mut written = String::new();
        server_side.shutdown().await.expect("shutdown");
        server_side
            .read_to_string(&mut written)
            .await
            .expect("read");
        assert_eq!(written, "{\"x\":1}\n{\"y\":2}\n");
        // The final line without a newline still counts, then EOF closes.
        assert_eq!(
            channels
                .incoming
                .recv()
                .await
                .as_ref()
                .and_then(ServerMessage::as_text),
            Some("{\"c\":3}")
        );
        assert_eq!(channels.incoming.recv().await, None);
    }

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
    async fn an_over_long_line_ends_the_connection_and_is_recorded() {
        let (client_side, mut server_side) = duplex(1024);
        let (reader, writer) = tokio::io::split(client_side);
        let limit = Arc::new(IncomingLimit::new(8));
        let mut channels = limited_stdio_transport(reader, writer, limit.clone());
        server_side
            .write_all(b"{\"a\":1}\n{\"long\":12345}\n{\"b\":2}\n")
            .await
            .expect("write");
        assert_eq!(
            channels
                .incoming
                .recv()
                .await
                .as_ref()
                .and_then(ServerMessage::as_text),
            Some("{\"a\":1}")
        );
        assert_eq!(channels.incoming.recv().await, None);
        assert_eq!(limit.exceeded(), Some((14, 8)));
    }
}
