//! Newline-delimited JSON over a byte stream: one message per line, UTF-8,
//! `\n`-terminated (a trailing `\r` is tolerated), as `exec-server serve
//! --listen stdio://` speaks it.

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::sync::mpsc;

use super::{TRANSPORT_CAPACITY, TransportChannels};

/// A transport over `reader` (the server's output) and `writer` (the
/// server's input), e.g. a child process's stdout and stdin. Spawns one task
/// per direction; needs a Tokio runtime.
///
/// The connection ends when `reader` reaches EOF or fails (the `incoming`
/// channel closes), and `writer` is shut down once the client drops the
/// `outgoing` sender.
pub fn stdio_transport<R, W>(reader: R, writer: W) -> TransportChannels
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (outgoing, to_write) = mpsc::channel(TRANSPORT_CAPACITY);
    let (read_lines_to, incoming) = mpsc::channel(TRANSPORT_CAPACITY);
    tokio::spawn(write_lines(writer, to_write));
    tokio::spawn(read_lines(reader, read_lines_to));
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
/// hand-over is what passes back-pressure on to the server.
async fn read_lines<R: AsyncRead + Unpin>(reader: R, incoming: mpsc::Sender<String>) {
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) => return,
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "reading from the server failed; closing the connection");
                return;
            }
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let Ok(text) = std::str::from_utf8(text) else {
            // The protocol is UTF-8 JSON; a line that is not cannot be
            // trusted to frame the next ones either.
            tracing::error!("the server sent a line that is not UTF-8; closing the connection");
            return;
        };
        if incoming.send(text.to_owned()).await.is_err() {
            return;
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
        assert_eq!(channels.incoming.recv().await.as_deref(), Some("{\"a\":1}"));
        assert_eq!(channels.incoming.recv().await.as_deref(), Some("{\"b\":2}"));

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
        assert_eq!(channels.incoming.recv().await.as_deref(), Some("{\"c\":3}"));
        assert_eq!(channels.incoming.recv().await, None);
    }
}
