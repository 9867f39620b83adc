//! TCP keepalive and the user timeout on an accepted WebSocket connection,
//! so that a peer that vanished without a reset is noticed.

use std::io;
use std::time::Duration;

use tokio::net::TcpStream;

/// Idle time before TCP keepalive probes start, between probes, and how
/// many go unanswered before the kernel drops the connection: a peer that
/// vanished without a reset (a suspended laptop, a NAT that forgot the
/// flow) is noticed within about a minute, and its session detached (so
/// that its TTL starts) instead of staying attached forever.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
/// See [`KEEPALIVE_IDLE`].
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// See [`KEEPALIVE_IDLE`].
const KEEPALIVE_PROBES: u32 = 3;
/// How long sent data may stay unacknowledged before the kernel drops the
/// connection (`TCP_USER_TIMEOUT`): keepalive does not probe while data is
/// in flight, and retransmissions alone would take about 15 minutes.
const UNACKNOWLEDGED_TIMEOUT: Duration = Duration::from_secs(60);

/// Sets TCP keepalive and the user timeout on an accepted socket.
pub(super) fn detect_vanished_peers(stream: &TcpStream) -> io::Result<()> {
    let socket = socket2::SockRef::from(stream);
    socket.set_tcp_keepalive(
        &socket2::TcpKeepalive::new()
            .with_time(KEEPALIVE_IDLE)
            .with_interval(KEEPALIVE_INTERVAL)
            .with_retries(KEEPALIVE_PROBES),
    )?;
    socket.set_tcp_user_timeout(Some(UNACKNOWLEDGED_TIMEOUT))
}
