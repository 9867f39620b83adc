//! Which requests the connection's reader may start itself, answering them
//! at once when they need no waiting (see `Connection::handle_message`).
//!
//! A request answered on the reader saves a task hand-off each way, but
//! while it runs no other request is read. So only methods whose handlers
//! never block the thread before their first wait are listed: the
//! `process/*` methods that take a lock, look at the retained output or
//! send a signal, and the `fs/*` methods, whose handlers only parse their
//! paths before handing the filesystem work to the fs pool (or, for a
//! metadata lookup while every mount is local, do it at once: a `stat`
//! from the dentry cache, see `fs/local_mounts.rs`). Whatever such a
//! handler then waits for (a long poll, a full pipe, a PTY write, the fs
//! pool, a queue) makes the connection move the rest of the request to a
//! task of its own, so nothing that waits holds the reader.
//!
//! Left to a task from the start: `initialize`, `process/start` (spawning),
//! `process/terminate` (cgroup files and `/proc` walks),
//! `environment/info` (reads `/etc/passwd`), `fs/close` (closing a file
//! may flush), `http/request`, and any method added later until it is
//! listed here. Big messages go to a task too ([`INLINE_MESSAGE_BYTES`]):
//! parsing their params is work the reader should not do.

use exec_protocol::{
    ENVIRONMENT_STATUS_METHOD, FS_CANONICALIZE_METHOD, FS_COPY_METHOD, FS_CREATE_DIRECTORY_METHOD,
    FS_GET_METADATA_METHOD, FS_OPEN_METHOD, FS_READ_BLOCK_METHOD, FS_READ_DIRECTORY_METHOD,
    FS_READ_FILE_METHOD, FS_REMOVE_METHOD, FS_RENAME_METHOD, FS_WALK_METHOD, FS_WRITE_FILE_METHOD,
    PROCESS_CLOSE_STDIN_METHOD, PROCESS_LIST_METHOD, PROCESS_READ_METHOD, PROCESS_RESIZE_METHOD,
    PROCESS_SIGNAL_METHOD, PROCESS_WRITE_METHOD,
};

/// The largest message, in bytes, that the reader starts itself: parsing
/// 16 KiB of params takes a few microseconds.
pub(crate) const INLINE_MESSAGE_BYTES: usize = 16 * 1024;

/// The methods whose handlers do not block before their first wait.
const STARTED_INLINE: &[&str] = &[
    ENVIRONMENT_STATUS_METHOD,
    FS_CANONICALIZE_METHOD,
    FS_COPY_METHOD,
    FS_CREATE_DIRECTORY_METHOD,
    FS_GET_METADATA_METHOD,
    FS_OPEN_METHOD,
    FS_READ_BLOCK_METHOD,
    FS_READ_DIRECTORY_METHOD,
    FS_READ_FILE_METHOD,
    FS_REMOVE_METHOD,
    FS_RENAME_METHOD,
    FS_WALK_METHOD,
    FS_WRITE_FILE_METHOD,
    PROCESS_CLOSE_STDIN_METHOD,
    PROCESS_LIST_METHOD,
    PROCESS_READ_METHOD,
    PROCESS_RESIZE_METHOD,
    PROCESS_SIGNAL_METHOD,
    PROCESS_WRITE_METHOD,
];

/// Whether the reader may start a request for `method` that came in a
/// message of `message_bytes` bytes.
pub(crate) fn starts_inline(method: &str, message_bytes: usize) -> bool {
    message_bytes <= INLINE_MESSAGE_BYTES && STARTED_INLINE.contains(&method)
}

#[cfg(test)]
mod tests {
    use exec_protocol::{
        ENVIRONMENT_INFO_METHOD, FS_CLOSE_METHOD, HTTP_REQUEST_METHOD, INITIALIZE_METHOD,
        PROCESS_START_METHOD, PROCESS_TERMINATE_METHOD,
    };

    use super::*;

    #[test]
    fn blocking_methods_and_big_messages_go_to_a_task() {
        for method in [
            INITIALIZE_METHOD,
            PROCESS_START_METHOD,
            PROCESS_TERMINATE_METHOD,
            ENVIRONMENT_INFO_METHOD,
            FS_CLOSE_METHOD,
            HTTP_REQUEST_METHOD,
            "no/such/method",
        ] {
            assert!(!starts_inline(method, 100), "{method}");
        }
        assert!(starts_inline(PROCESS_READ_METHOD, INLINE_MESSAGE_BYTES));
        assert!(!starts_inline(
            PROCESS_WRITE_METHOD,
            INLINE_MESSAGE_BYTES + 1
        ));
    }

    #[test]
    fn every_listed_method_is_a_method_of_the_protocol() {
        for method in STARTED_INLINE {
            assert!(
                exec_protocol::METHODS
                    .iter()
                    .any(|info| info.name == *method),
                "{method}"
            );
        }
    }
}
