//! [`NonBlockingFd`]: the server's own stdin or stdout read and written on
//! the runtime's reactor, where the descriptor allows it.
//!
//! `tokio::io::stdin()` and `stdout()` do every read and write on tokio's
//! blocking pool, because a descriptor inherited from the parent may be one
//! that epoll refuses (a regular file) or one whose non-blocking mode
//! others would notice (a terminal shared with the shell). That costs two
//! thread hand-offs per request and response. A pipe or socket given to
//! the server for its connection (the usual case: an SDK or `ssh` started
//! it) is switched to non-blocking mode and registered with the reactor
//! instead, like any socket. Anything else keeps tokio's blocking-pool
//! stdio ([`NonBlockingFd::new`] says `None`).
//!
//! Non-blocking mode belongs to the open file, which a duplicate shares, so
//! the original flags are restored when the [`NonBlockingFd`] is dropped.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::stat::{SFlag, fstat};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A pipe or socket in non-blocking mode, registered with the reactor.
pub(crate) struct NonBlockingFd {
    /// A duplicate of the descriptor, so that the original (fd 0 or 1)
    /// stays open for whatever else refers to it.
    fd: AsyncFd<OwnedFd>,
    /// The file status flags it had, restored on drop.
    original_flags: OFlag,
    /// Whether a short read took all there was just then: a pipe or a
    /// `SOCK_STREAM` socket. A datagram or seqpacket socket returns one
    /// record per read, short with more queued, for which no new epoll edge
    /// comes. (A pipe its writer puts in packet mode, `O_DIRECT` on the
    /// write end, does the same, and the read end cannot tell; tokio's own
    /// pipes count every pipe as a stream too, and no parent of this server
    /// writes its requests that way.)
    byte_stream: bool,
}

impl NonBlockingFd {
    /// `fd` in non-blocking mode on the reactor; `None` (and `fd` left as
    /// it was) when it is not a pipe or a socket, or when duplicating it,
    /// changing its flags or registering it fails.
    pub(crate) fn new(fd: BorrowedFd<'_>) -> Option<Self> {
        let kind = SFlag::from_bits_truncate(fstat(fd).ok()?.st_mode) & SFlag::S_IFMT;
        if kind != SFlag::S_IFIFO && kind != SFlag::S_IFSOCK {
            return None;
        }
        let owned = fd.try_clone_to_owned().ok()?;
        let original_flags = OFlag::from_bits_truncate(fcntl(&owned, FcntlArg::F_GETFL).ok()?);
        let byte_stream = kind == SFlag::S_IFIFO
            || rustix::net::sockopt::socket_type(&owned)
                .is_ok_and(|socket_type| socket_type == rustix::net::SocketType::STREAM);
        fcntl(
            &owned,
            FcntlArg::F_SETFL(original_flags | OFlag::O_NONBLOCK),
        )
        .ok()?;
        // SAFETY: an `OwnedFd` names the same open descriptor for as long
        // as it lives, and the `AsyncFd` owns it until it is dropped.
        #[allow(unsafe_code)]
        let registered = unsafe { AsyncFd::register(owned) };
        match registered {
            Ok(fd) => Some(Self {
                fd,
                original_flags,
                byte_stream,
            }),
            Err(error) => {
                let (owned, error) = error.into_parts();
                tracing::debug!(%error, "stdio stays on the blocking pool");
                let _ = fcntl(&owned, FcntlArg::F_SETFL(original_flags));
                None
            }
        }
    }
}

impl Drop for NonBlockingFd {
    fn drop(&mut self) {
        // Whoever else holds this open file (the parent, a later reader)
        // gets it back in the mode it was given in.
        let _ = fcntl(self.fd.get_ref(), FcntlArg::F_SETFL(self.original_flags));
    }
}

impl AsyncRead for NonBlockingFd {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut ready = ready!(self.fd.poll_read_ready(context))?;
            let unfilled = buffer.initialize_unfilled();
            match ready.try_io(|fd| {
                rustix::io::read(fd.get_ref(), &mut *unfilled).map_err(io::Error::from)
            }) {
                Ok(Ok(read)) => {
                    // A short read of a byte stream drained it: wait for
                    // the reactor's next edge instead of trying a read that
                    // fails with EAGAIN, as tokio's own streams do. An edge
                    // that came meanwhile is kept (the guard clears only
                    // the readiness it saw).
                    if self.byte_stream && read > 0 && read < unfilled.len() {
                        ready.clear_ready();
                    }
                    buffer.advance(read);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(error)) if error.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(error)) => return Poll::Ready(Err(error)),
                // Not readable after all: the readiness was cleared, wait again.
                Err(_would_block) => {}
            }
        }
    }
}

impl AsyncWrite for NonBlockingFd {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut ready = ready!(self.fd.poll_write_ready(context))?;
            match ready.try_io(|fd| rustix::io::write(fd.get_ref(), bytes).map_err(io::Error::from))
            {
                Ok(Err(error)) if error.kind() == io::ErrorKind::Interrupted => {}
                Ok(result) => return Poll::Ready(result),
                // The pipe is full: wait until the client reads.
                Err(_would_block) => {}
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _context: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Nothing is buffered here: every write went to the kernel.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _context: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The descriptor closes when dropped; fd 1 itself stays open, as
        // with tokio's stdout.
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use pretty_assertions::assert_eq;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn is_non_blocking(fd: BorrowedFd<'_>) -> bool {
        let flags = fcntl(fd, FcntlArg::F_GETFL).expect("flags");
        OFlag::from_bits_truncate(flags).contains(OFlag::O_NONBLOCK)
    }

    #[tokio::test]
    async fn a_pipe_is_read_and_written_on_the_reactor_and_given_back_blocking() {
        let (read_end, write_end) = rustix::pipe::pipe().expect("a pipe");
        let mut reader = NonBlockingFd::new(read_end.as_fd()).expect("a pipe qualifies");
        let mut writer = NonBlockingFd::new(write_end.as_fd()).expect("a pipe qualifies");
        assert!(is_non_blocking(read_end.as_fd()));
        // A read waits for the write, which comes from another task.
        let reading = tokio::spawn(async move {
            let mut bytes = [0u8; 5];
            reader.read_exact(&mut bytes).await.expect("read");
            (reader, bytes)
        });
        writer.write_all(b"hello").await.expect("written");
        let (reader, bytes) = reading.await.expect("the reading task");
        assert_eq!(&bytes, b"hello");
        drop(reader);
        drop(writer);
        assert!(!is_non_blocking(read_end.as_fd()));
        assert!(!is_non_blocking(write_end.as_fd()));
    }

    #[tokio::test]
    async fn data_written_after_a_short_read_still_wakes_the_reader() {
        // A short read clears the readiness without a read that fails with
        // EAGAIN; the next write must still wake the reader.
        let (read_end, write_end) = rustix::pipe::pipe().expect("a pipe");
        let mut reader = NonBlockingFd::new(read_end.as_fd()).expect("a pipe qualifies");
        let mut writer = NonBlockingFd::new(write_end.as_fd()).expect("a pipe qualifies");
        let mut buffer = vec![0u8; 64 * 1024];
        for line in [&b"first\n"[..], b"second\n", b"third\n"] {
            let (read, written) = tokio::join!(reader.read(&mut buffer), async {
                tokio::task::yield_now().await;
                writer.write_all(line).await
            });
            written.expect("written");
            assert_eq!(&buffer[..read.expect("read")], line);
        }
        // The same with the writes made before the reads start waiting.
        writer.write_all(b"a").await.expect("written");
        assert_eq!(reader.read(&mut buffer).await.expect("read"), 1);
        writer.write_all(b"b").await.expect("written");
        let read =
            tokio::time::timeout(std::time::Duration::from_secs(10), reader.read(&mut buffer))
                .await
                .expect("woken by the second write")
                .expect("read");
        assert_eq!(&buffer[..read], b"b");
    }

    /// Reads `count` records of `reader`, each within 10 s.
    async fn read_records(reader: &mut NonBlockingFd, count: usize) -> Vec<Vec<u8>> {
        let mut records = Vec::new();
        let mut buffer = vec![0u8; 64 * 1024];
        for _ in 0..count {
            let read =
                tokio::time::timeout(std::time::Duration::from_secs(10), reader.read(&mut buffer))
                    .await
                    .expect("the queued record is read without a new write")
                    .expect("read");
            records.push(buffer[..read].to_vec());
        }
        records
    }

    /// A connected pair of Unix sockets of `kind`.
    fn unix_socket_pair(kind: rustix::net::SocketType) -> (OwnedFd, OwnedFd) {
        rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            kind,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .expect("a socket pair")
    }

    #[tokio::test]
    async fn records_of_a_seqpacket_socket_queued_behind_a_short_read_are_read() {
        // A seqpacket socket returns one record per read, short with more
        // queued: the readiness must stay.
        let (socket, peer) = unix_socket_pair(rustix::net::SocketType::SEQPACKET);
        let mut reader = NonBlockingFd::new(socket.as_fd()).expect("a socket qualifies");
        assert!(!reader.byte_stream);
        for record in [&b"first"[..], b"second", b"third"] {
            rustix::io::write(&peer, record).expect("written");
        }
        assert_eq!(
            read_records(&mut reader, 3).await,
            [b"first".to_vec(), b"second".to_vec(), b"third".to_vec()]
        );
    }

    #[test]
    fn plain_pipes_and_stream_sockets_are_byte_streams() {
        let (read_end, _write_end) = rustix::pipe::pipe().expect("a pipe");
        let (socket, _peer) = unix_socket_pair(rustix::net::SocketType::STREAM);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .expect("a runtime");
        let _entered = runtime.enter();
        for fd in [read_end.as_fd(), socket.as_fd()] {
            assert!(NonBlockingFd::new(fd).expect("it qualifies").byte_stream);
        }
    }

    #[tokio::test]
    async fn a_full_pipe_waits_for_its_reader() {
        let (read_end, write_end) = rustix::pipe::pipe().expect("a pipe");
        let mut writer = NonBlockingFd::new(write_end.as_fd()).expect("a pipe qualifies");
        let mut reader = NonBlockingFd::new(read_end.as_fd()).expect("a pipe qualifies");
        let big = vec![7u8; 1024 * 1024];
        let expected = big.len();
        let writing = tokio::spawn(async move { writer.write_all(&big).await });
        let mut read = Vec::new();
        while read.len() < expected {
            let mut chunk = vec![0u8; 64 * 1024];
            let count = reader.read(&mut chunk).await.expect("read");
            assert!(count > 0, "the pipe ended early");
            read.extend_from_slice(&chunk[..count]);
        }
        writing.await.expect("the writing task").expect("written");
        assert_eq!(read.len(), expected);
    }

    #[test]
    fn a_regular_file_stays_on_the_blocking_pool() {
        let file = tempfile::tempfile().expect("a file");
        assert!(NonBlockingFd::new(file.as_fd()).is_none());
        assert!(!is_non_blocking(file.as_fd()));
    }
}
