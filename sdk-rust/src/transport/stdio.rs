//! Newline-delimited JSON over a byte stream: one message per line, UTF-8,
//! `\n`-terminated (a trailing `\r` is tolerated), as `exec-server serve
//! --listen stdio://` speaks it.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

use super::limit::{DEFAULT_MAX_INCOMING_MESSAGE_BYTES, IncomingLimit};
use super::link::Link;
use super::{TRANSPORT_CAPACITY, TransportChannels};

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
    limited_stdio_transport(reader, writer, limit).into_channels(TRANSPORT_CAPACITY)
}

/// [`stdio_transport`] as the client's own [`Link`] (no task between the
/// pipes and the client), with the cap on one incoming line shared with the
/// client, which lowers it after `initialize` and reports a breach.
pub(crate) fn limited_stdio_transport<R, W>(reader: R, writer: W, limit: Arc<IncomingLimit>) -> Link
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    Link::lines(Box::new(reader), Box::new(writer), limit)
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    use super::*;
    use crate::transport::{Inbound, ServerMessage};

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
            channels.incoming.recv().await,
            Some(ServerMessage::Text("{\"a\":1}".into()))
        );
        assert_eq!(
            channels.incoming.recv().await,
            Some(ServerMessage::Text("{\"b\":2}".into()))
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
            channels.incoming.recv().await,
            Some(ServerMessage::Text("{\"c\":3}".into()))
        );
        assert_eq!(channels.incoming.recv().await, None);
    }

    #[tokio::test]
    async fn an_over_long_line_ends_the_connection_and_is_recorded() {
        let (client_side, mut server_side) = duplex(1024);
        let (reader, writer) = tokio::io::split(client_side);
        let limit = Arc::new(IncomingLimit::new(8));
        let mut link = limited_stdio_transport(reader, writer, limit.clone());
        server_side
            .write_all(b"{\"a\":1}\n{\"long\":12345}\n{\"b\":2}\n")
            .await
            .expect("write");
        assert_eq!(
            link.incoming.next().await,
            Some(Inbound::Text(String::from("{\"a\":1}")))
        );
        assert_eq!(link.incoming.next().await, None);
        assert_eq!(limit.exceeded(), Some((14, 8)));
    }
}
