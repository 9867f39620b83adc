//! Newline-delimited JSON over a byte stream (stdio): one message per line,
//! UTF-8, `\n`-terminated (a trailing `\r` is tolerated).

use std::sync::Arc;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};

use crate::config::ServerConfig;
use crate::connection::Connection;
use crate::error::{INVALID_REQUEST, PARSE_ERROR};

/// Serves one connection over `reader`/`writer` until `reader` reaches EOF,
/// then kills the connection's processes and flushes what is queued.
///
/// # Errors
/// None for protocol errors (they are answered on the wire); I/O errors of
/// the streams end the connection and are logged.
pub async fn serve<R, W>(config: Arc<ServerConfig>, reader: R, writer: W)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (outbox, queue) = mpsc::channel(config.outbox_capacity);
    let (stop_writer, stopped) = oneshot::channel();
    let writer_task = tokio::spawn(write_lines(writer, queue, stopped));
    let connection = Connection::new(config.clone(), outbox);
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let mut line = Vec::new();
    loop {
        match read_line(&mut reader, &mut line, config.max_message_bytes).await {
            Ok(Line::Complete) => match std::str::from_utf8(trim_line_end(&line)) {
                Ok(text) => connection.handle_message(text).await,
                Err(error) => {
                    let message = format!("parse error: the line is not UTF-8 ({error})");
                    connection.reply_error(PARSE_ERROR, &message).await;
                }
            },
            Ok(Line::TooLong(length)) => {
                let message = format!(
                    "invalid request: a line of at least {length} bytes is over the limit of {} bytes",
                    config.max_message_bytes
                );
                connection.reply_error(INVALID_REQUEST, &message).await;
            }
            Ok(Line::Eof) => break,
            Err(error) => {
                tracing::warn!(%error, "reading the connection failed");
                break;
            }
        }
    }
    connection.close().await;
    let _ = stop_writer.send(());
    if let Err(error) = writer_task.await {
        tracing::warn!(%error, "the writer task failed");
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
    bytes.iter().position(|&byte| byte == b'\n')
}

fn trim_line_end(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Writes each queued message as one line, flushing whenever the queue runs
/// empty (so a burst of output goes out in few writes). Ends when `stop`
/// fires, after writing what is already queued, or when every sender is gone.
async fn write_lines<W: AsyncWrite + Unpin>(
    writer: W,
    mut queue: mpsc::Receiver<String>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut writer = tokio::io::BufWriter::with_capacity(256 * 1024, writer);
    loop {
        let message = crate::transport::next_outgoing(&mut queue, &mut stop).await;
        let Some(message) = message else { break };
        if write_message(&mut writer, &message).await.is_err() {
            return;
        }
        while let Ok(message) = queue.try_recv() {
            if write_message(&mut writer, &message).await.is_err() {
                return;
            }
        }
        if writer.flush().await.is_err() {
            return;
        }
    }
    let _ = writer.flush().await;
}

async fn write_message<W: AsyncWrite + Unpin>(
    writer: &mut W,
    message: &str,
) -> std::io::Result<()> {
    writer.write_all(message.as_bytes()).await?;
    writer.write_all(b"\n").await
}
