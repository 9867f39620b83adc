//! [`CutProxy`]: a TCP proxy in front of a server that cuts connections the
//! way a network does: both sockets closed at once with `SO_LINGER` 0, so
//! both peers see a reset and no WebSocket close frame. It cuts each
//! connection after a set number of bytes from the server to the client
//! (so a long stream is cut again and again), or every live connection on
//! demand, and it counts the cuts, so a test can assert that it cut.
//!
//! It can also hold back what the server sends (the client then sees
//! nothing until the hold ends or the connection is cut), for a test that
//! needs a request to run on the server while its answer is in flight.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

/// Bytes read from one side at a time.
const BUFFER_BYTES: usize = 64 * 1024;

/// What the proxy's tasks share.
#[derive(Debug)]
struct Shared {
    /// Cut a connection after this many bytes from the server to the
    /// client; `None`: only on demand.
    cut_every: Option<u64>,
    /// Cuts made so far.
    cuts: AtomicU64,
    /// Connections accepted so far, as a watch so a test can wait for one.
    accepted: watch::Sender<u64>,
    /// The live connections' cut switches, by connection number.
    live: Mutex<HashMap<u64, Arc<Notify>>>,
    /// While `true`, nothing from the server is passed on.
    hold: watch::Sender<bool>,
}

/// A cutting TCP proxy on `127.0.0.1:0`; its tasks stop when it is dropped.
#[derive(Debug)]
pub struct CutProxy {
    /// Where clients connect.
    address: SocketAddr,
    /// The state the tasks share.
    shared: Arc<Shared>,
    /// The accept loop.
    acceptor: JoinHandle<()>,
}

impl CutProxy {
    /// Starts a proxy in front of `upstream` that cuts every connection
    /// after `cut_every` bytes from the server to the client (exactly that
    /// many are passed on), or only on demand ([`CutProxy::cut_all`]) when
    /// `None`. Call it within a Tokio runtime.
    ///
    /// # Errors
    /// When `127.0.0.1:0` cannot be bound.
    pub async fn start(upstream: SocketAddr, cut_every: Option<u64>) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared {
            cut_every: cut_every.map(|bytes| bytes.max(1)),
            cuts: AtomicU64::new(0),
            accepted: watch::Sender::new(0),
            live: Mutex::new(HashMap::new()),
            hold: watch::Sender::new(false),
        });
        let acceptor = tokio::spawn(accept_loop(listener, upstream, shared.clone()));
        Ok(Self {
            address,
            shared,
            acceptor,
        })
    }

    /// Starts a proxy in front of the WebSocket server at `url`
    /// (`ws://IP:PORT`); see [`CutProxy::start`].
    ///
    /// # Errors
    /// When the URL has no `IP:PORT` after `ws://`, or the bind fails.
    pub async fn in_front_of(url: &str, cut_every: Option<u64>) -> io::Result<Self> {
        let authority = url
            .strip_prefix("ws://")
            .map(|rest| rest.trim_end_matches('/'))
            .unwrap_or(url);
        let upstream: SocketAddr = authority.parse().map_err(|error| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("`{url}` is not ws://IP:PORT: {error}"),
            )
        })?;
        Self::start(upstream, cut_every).await
    }

    /// The proxy's address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The proxy as a WebSocket URL, `ws://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("ws://{}", self.address)
    }

    /// Connections cut so far (by bytes or on demand).
    pub fn cuts(&self) -> u64 {
        self.shared.cuts.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        *self.shared.accepted.borrow()
    }

    /// Waits until at least `count` connections were accepted (an event,
    /// not a poll); returns how many were.
    pub async fn wait_for_connections(&self, count: u64) -> u64 {
        let mut accepted = self.shared.accepted.subscribe();
        match accepted.wait_for(|accepted| *accepted >= count).await {
            Ok(accepted) => *accepted,
            // The sender lives in `self`, so this does not happen.
            Err(_) => self.connections(),
        }
    }

    /// Cuts every live connection now (they count as cut at once, and
    /// pass nothing more on); returns how many were live.
    pub fn cut_all(&self) -> usize {
        let live: Vec<Arc<Notify>> = lock(&self.shared.live)
            .drain()
            .map(|(_, switch)| switch)
            .collect();
        for switch in &live {
            // A stored permit: the connection's task takes it even if it is
            // not waiting this instant.
            switch.notify_one();
        }
        self.shared
            .cuts
            .fetch_add(live.len() as u64, Ordering::SeqCst);
        live.len()
    }

    /// Holds back (`true`) or passes on again (`false`) what the server
    /// sends, on every connection, live or future.
    pub fn hold_server_to_client(&self, hold: bool) {
        self.shared.hold.send_replace(hold);
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.acceptor.abort();
        self.cut_all();
    }
}

/// Locks a mutex, going on after a panic elsewhere (the map stays consistent).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Accepts clients and relays each to a new connection to `upstream`.
async fn accept_loop(listener: TcpListener, upstream: SocketAddr, shared: Arc<Shared>) {
    let mut number = 0;
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        number += 1;
        shared.accepted.send_modify(|accepted| *accepted += 1);
        let server = match TcpStream::connect(upstream).await {
            Ok(server) => server,
            Err(_) => {
                // Nothing to relay to: the client sees its connection end.
                continue;
            }
        };
        let switch = Arc::new(Notify::new());
        lock(&shared.live).insert(number, switch.clone());
        tokio::spawn(relay(number, client, server, switch, shared.clone()));
    }
}

/// Why a relay stopped.
enum Ending {
    /// Both sides finished; close normally.
    Finished,
    /// Cut after its bytes: count it, reset both sides.
    Cut,
    /// Cut by [`CutProxy::cut_all`], which counted it: reset both sides.
    CutOnDemand,
}

/// Relays one connection until both sides finish or it is cut.
async fn relay(
    number: u64,
    mut client: TcpStream,
    mut server: TcpStream,
    switch: Arc<Notify>,
    shared: Arc<Shared>,
) {
    let ending = {
        let (mut client_read, mut client_write) = client.split();
        let (mut server_read, mut server_write) = server.split();
        let upstream = async {
            let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
            let _ = server_write.shutdown().await;
        };
        let downstream = pass_downstream(&mut server_read, &mut client_write, &shared);
        tokio::pin!(upstream, downstream);
        let (mut upstream_done, mut downstream_done) = (false, false);
        // A cut ends the relay at once; otherwise it ends when both
        // directions have.
        loop {
            tokio::select! {
                () = &mut upstream, if !upstream_done => upstream_done = true,
                ending = &mut downstream, if !downstream_done => match ending {
                    Ending::Finished => downstream_done = true,
                    cut => break cut,
                },
                () = switch.notified() => break Ending::CutOnDemand,
            }
            if upstream_done && downstream_done {
                break Ending::Finished;
            }
        }
    };
    lock(&shared.live).remove(&number);
    if let Ending::Cut = ending {
        shared.cuts.fetch_add(1, Ordering::SeqCst);
    }
    if let Ending::Cut | Ending::CutOnDemand = ending {
        // SO_LINGER 0: closing sends a reset, as a network failure would
        // look to both ends, instead of an orderly FIN.
        let _ = client.set_zero_linger();
        let _ = server.set_zero_linger();
    }
}

/// Passes the server's bytes to the client, holding them back while asked,
/// and stops when `cut_every` bytes were passed on (a cut) or the server
/// finished (then the client's write side is shut down).
async fn pass_downstream(
    from_server: &mut tokio::net::tcp::ReadHalf<'_>,
    to_client: &mut tokio::net::tcp::WriteHalf<'_>,
    shared: &Shared,
) -> Ending {
    let mut hold = shared.hold.subscribe();
    let mut buffer = vec![0; BUFFER_BYTES];
    let mut passed: u64 = 0;
    loop {
        if hold.wait_for(|held| !*held).await.is_err() {
            return Ending::Cut;
        }
        let room = match shared.cut_every {
            Some(limit) => (limit - passed).min(BUFFER_BYTES as u64) as usize,
            None => BUFFER_BYTES,
        };
        let read = match from_server.read(&mut buffer[..room]).await {
            Ok(0) | Err(_) => {
                let _ = to_client.shutdown().await;
                return Ending::Finished;
            }
            Ok(read) => read,
        };
        // A hold that began while this read waited applies to what it read.
        if hold.wait_for(|held| !*held).await.is_err() {
            return Ending::Cut;
        }
        if to_client.write_all(&buffer[..read]).await.is_err() {
            return Ending::Finished;
        }
        passed += read as u64;
        if shared.cut_every.is_some_and(|limit| passed >= limit) {
            return Ending::Cut;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that sends `total` bytes of a counting pattern and then
    /// echoes what it reads, on each connection.
    async fn pattern_server(total: usize) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let bytes: Vec<u8> = (0..total).map(|index| index as u8).collect();
                    if socket.write_all(&bytes).await.is_err() {
                        return;
                    }
                    let mut buffer = [0; 1024];
                    while let Ok(read) = socket.read(&mut buffer).await {
                        if read == 0 || socket.write_all(&buffer[..read]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        address
    }

    #[tokio::test]
    async fn a_connection_is_reset_after_the_set_bytes_and_the_next_one_works() {
        let upstream = pattern_server(100_000).await;
        let proxy = CutProxy::start(upstream, Some(30_000))
            .await
            .expect("proxy");
        for _ in 0..2 {
            let mut socket = TcpStream::connect(proxy.address()).await.expect("connect");
            let mut received = Vec::new();
            let error = loop {
                let mut buffer = [0; 4096];
                match socket.read(&mut buffer).await {
                    Ok(0) => panic!("an orderly end instead of a reset"),
                    Ok(read) => received.extend_from_slice(&buffer[..read]),
                    Err(error) => break error,
                }
            };
            assert_eq!(error.kind(), io::ErrorKind::ConnectionReset, "{error}");
            assert!(received.len() <= 30_000, "{}", received.len());
            let expected: Vec<u8> = (0..received.len()).map(|index| index as u8).collect();
            assert_eq!(received, expected);
        }
        assert_eq!(proxy.cuts(), 2);
        assert_eq!(proxy.connections(), 2);
    }

    #[tokio::test]
    async fn cut_all_resets_live_connections_and_a_finished_one_ends_cleanly() {
        let upstream = pattern_server(10).await;
        let proxy = CutProxy::start(upstream, None).await.expect("proxy");
        let mut socket = TcpStream::connect(proxy.address()).await.expect("connect");
        let mut greeting = [0; 10];
        socket.read_exact(&mut greeting).await.expect("greeting");
        // The echo proves the relay runs both ways.
        socket.write_all(b"ping").await.expect("write");
        let mut echo = [0; 4];
        socket.read_exact(&mut echo).await.expect("echo");
        assert_eq!(&echo, b"ping");
        assert_eq!(proxy.cut_all(), 1);
        let mut buffer = [0; 16];
        let outcome = socket.read(&mut buffer).await;
        assert!(
            matches!(&outcome, Err(error) if error.kind() == io::ErrorKind::ConnectionReset),
            "{outcome:?}"
        );
        assert_eq!(proxy.cuts(), 1);

        // A client that closes its side ends the relay without a cut.
        let mut socket = TcpStream::connect(proxy.address()).await.expect("connect");
        socket.read_exact(&mut greeting).await.expect("greeting");
        socket.shutdown().await.expect("shutdown");
        let mut rest = Vec::new();
        socket.read_to_end(&mut rest).await.expect("an orderly end");
        assert_eq!(proxy.cuts(), 1);
    }

    #[tokio::test]
    async fn held_bytes_wait_for_the_release() {
        let upstream = pattern_server(10).await;
        let proxy = CutProxy::start(upstream, None).await.expect("proxy");
        proxy.hold_server_to_client(true);
        let mut socket = TcpStream::connect(proxy.address()).await.expect("connect");
        proxy.wait_for_connections(1).await;
        let mut buffer = [0; 10];
        let early = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            socket.read_exact(&mut buffer),
        )
        .await;
        assert!(early.is_err(), "nothing passes while held");
        proxy.hold_server_to_client(false);
        socket.read_exact(&mut buffer).await.expect("released");
        assert_eq!(buffer, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    }
}
