//! Helpers shared by the integration tests: what `/proc` says of the real
//! server, WebSocket connections driven byte by byte, and where a server's
//! cgroups are (`cgroup`).

#![allow(dead_code)] // Each test file uses a part of these.

pub mod cgroup;

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// The upgrade request of a raw client (no token, a loopback `Host`).
pub const UPGRADE_REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";

/// A field of `/proc/PID/status` in bytes (`VmHWM`, `VmRSS`: the kernel
/// gives kB).
///
/// # Panics
/// When the process is gone or has no such field.
pub fn status_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the status");
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {field} in the status of {pid}"));
    let kilobytes: u64 = line
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .expect("a number of kB");
    kilobytes * 1024
}

/// The peak resident memory of `pid` so far (`VmHWM`), in bytes.
pub fn peak_memory(pid: u32) -> u64 {
    status_bytes(pid, "VmHWM")
}

/// The CPU time `pid` used so far (user and system), in clock ticks.
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the stat");
    // The command name may hold spaces and parentheses: the fields that
    // follow start after its last `)`; utime and stime are fields 14 and 15.
    let (_, fields) = stat.rsplit_once(')').expect("a stat line");
    let fields: Vec<&str> = fields.split_whitespace().collect();
    let ticks = |index: usize| fields[index].parse::<u64>().expect("a tick count");
    ticks(11) + ticks(12)
}

/// How many file descriptors `pid` has open.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the fd directory")
        .count()
}

/// `MIB` mebibytes, in bytes.
pub const fn mib(count: u64) -> u64 {
    count * 1024 * 1024
}

/// A raw WebSocket connection to `address` (`IP:PORT`) after its upgrade:
/// the stream, ready for frames.
pub async fn raw_upgraded(address: &str) -> TcpStream {
    let mut stream = TcpStream::connect(address).await.expect("connects");
    stream.write_all(UPGRADE_REQUEST).await.expect("writes");
    // Read the 101 response up to its blank line, and nothing after it.
    let mut response = Vec::new();
    while !response.ends_with(b"\r\n\r\n") {
        let mut byte = [0_u8; 1];
        stream.read_exact(&mut byte).await.expect("the response");
        response.push(byte[0]);
    }
    assert!(response.starts_with(b"HTTP/1.1 101"), "{response:?}");
    stream
}

/// The header of a masked client text frame of `length` bytes, with the
/// all-zero mask (so the payload goes as it is).
pub fn text_frame_header(length: u64) -> Vec<u8> {
    let mut header = vec![0x81, 0x80 | 127];
    header.extend(length.to_be_bytes());
    header.extend([0_u8; 4]);
    header
}

/// How a raw connection ended, seen from the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// A close frame with this code.
    CloseCode(u16),
    /// EOF or a reset without a close frame.
    Dropped,
    /// Still open after the patience.
    Open,
}

/// Reads what the server sends on `stream` until it closes the connection
/// or `patience` passes, and says how it ended.
pub async fn ending(stream: &mut tokio::net::tcp::OwnedReadHalf, patience: Duration) -> Ending {
    let mut received = Vec::new();
    let read_all = async {
        let mut buffer = [0_u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => received.extend_from_slice(&buffer[..read]),
            }
        }
    };
    if tokio::time::timeout(patience, read_all).await.is_err() {
        return Ending::Open;
    }
    // Frames from the server are unmasked: a close frame is 0x88, its
    // length, then the code.
    let mut rest = &received[..];
    while rest.len() >= 2 {
        let length = usize::from(rest[1] & 0x7f);
        if rest[0] == 0x88 && length >= 2 && rest.len() >= 4 {
            return Ending::CloseCode(u16::from_be_bytes([rest[2], rest[3]]));
        }
        if length > 125 || rest.len() < 2 + length {
            break;
        }
        rest = &rest[2 + length..];
    }
    Ending::Dropped
}
