//! The one-line note `exec --url` prints on stderr when a dropped connection
//! took more than a second to resume. A quick resume is silent: the
//! command's output is the same either way, and a note on every cut would
//! mix into the command's own stderr.

use std::time::Duration;

use exec_client::{ConnectionState, ExecClient};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// A resume that takes longer than this is noted.
const NOTABLE_RESUME: Duration = Duration::from_secs(1);

/// Follows the client's connection state until it closes, printing
/// [`note`]'s line after each slow resume. Abort the task when done.
pub(crate) fn follow(client: &ExecClient) -> JoinHandle<()> {
    let states = client.connection_state();
    tokio::spawn(note_slow_resumes(states))
}

/// The loop of [`follow`].
async fn note_slow_resumes(mut states: watch::Receiver<ConnectionState>) {
    let mut dropped_at: Option<Instant> = None;
    loop {
        match &*states.borrow_and_update() {
            ConnectionState::Reconnecting { .. } => {
                dropped_at.get_or_insert_with(Instant::now);
            }
            ConnectionState::Connected => {
                if let Some(line) = dropped_at.take().and_then(|since| note(since.elapsed())) {
                    eprintln!("{line}");
                }
            }
            _ => return,
        }
        if states.changed().await.is_err() {
            return;
        }
    }
}

/// The note for a resume that took `elapsed`, if it took long enough to tell.
fn note(elapsed: Duration) -> Option<String> {
    (elapsed > NOTABLE_RESUME).then(|| {
        format!(
            "exec-server: the connection dropped and was resumed after {:.1} s",
            elapsed.as_secs_f64()
        )
    })
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;

    use super::*;

    #[test]
    fn only_a_resume_over_a_second_is_noted() {
        assert_eq!(note(Duration::from_millis(150)), None);
        assert_eq!(note(Duration::from_secs(1)), None);
        assert_eq!(
            note(Duration::from_millis(2345)).as_deref(),
            Some("exec-server: the connection dropped and was resumed after 2.3 s")
        );
    }
}
