//! The server's sessions by id, so that `initialize {resumeSessionId}` on a
//! new connection finds the session an earlier one created.
//!
//! One table for the whole process: ids are random, so sessions of
//! several servers in one process (tests, the in-process mode) never meet.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use tokio::sync::Notify;

use super::Session;
use crate::error::ServerError;
use crate::sync::lock;

/// Every live session (attached or detached), by id.
static SESSIONS: LazyLock<Mutex<HashMap<String, Arc<Session>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Registers a new session.
pub(crate) fn register(session: &Arc<Session>) {
    lock(&SESSIONS).insert(session.id().to_owned(), session.clone());
}

/// Forgets an ended session.
pub(crate) fn remove(id: &str) {
    lock(&SESSIONS).remove(id);
}

/// Attaches a connection to the session `id` (see [`Session::attach`]) and
/// returns it with the attachment's generation.
///
/// Errors: `UnknownSession` when no live session has this id (never issued,
/// ended, or expired).
pub(crate) fn resume(
    id: &str,
    superseded: Arc<Notify>,
    acknowledged: bool,
    binary_output: bool,
) -> Result<(Arc<Session>, u64), ServerError> {
    let unknown = || ServerError::UnknownSession {
        session_id: id.to_owned(),
    };
    // Looked up and attached under the table's lock, so an expiry (which
    // removes the session under the same lock first) cannot come between.
    let sessions = lock(&SESSIONS);
    let session = sessions.get(id).ok_or_else(unknown)?.clone();
    let generation = session
        .attach(superseded, acknowledged, binary_output)
        .ok_or_else(unknown)?;
    drop(sessions);
    Ok((session, generation))
}
