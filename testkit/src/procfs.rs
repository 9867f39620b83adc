//! Processes seen through `/proc`: whether a pid is alive, and waiting
//! until it is gone, for tests that check a server left nothing behind.

use std::time::Duration;

use crate::server_process::PATIENCE;

/// How often [`wait_gone`] looks again.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Whether a process with this pid exists; a zombie (exited, not yet
/// reaped) counts as gone.
pub fn process_alive(pid: i64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // The state is the first field after the parenthesised command name.
            let state = stat.rsplit_once(") ").map(|(_, rest)| rest.chars().next());
            !matches!(state, Some(Some('Z' | 'X')))
        }
        Err(_) => false,
    }
}

/// Waits until `pid` is gone ([`process_alive`] is false); returns whether
/// it went within [`PATIENCE`]. A process of another parent gives no event
/// to wait on, so this looks at `/proc` again after each short pause.
pub async fn wait_gone(pid: i64) -> bool {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio::time::Instant::now() < deadline {
        if !process_alive(pid) {
            return true;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    false
}
