//! [`StderrLog`]: a child's stderr, read line by line by a task so the child
//! never blocks on a full pipe, kept for error messages and for finding its
//! `... listening on URL` line, and echoed to this process's stderr with the
//! child's name in front (inside a test, the harness captures it).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::watch;

use crate::error::HarnessError;

/// Everything a child wrote on stderr so far. Cheap to clone.
#[derive(Debug, Clone)]
pub struct StderrLog {
    /// The child's name, in front of each echoed line and in errors.
    name: Arc<str>,
    /// The lines so far, without their line ends.
    lines: Arc<Mutex<Vec<String>>>,
    /// Bumped for each new line; its sender is dropped at the end of the
    /// stream, which is how a waiter learns that no line will come.
    changes: watch::Receiver<usize>,
}

impl StderrLog {
    /// Starts the task that reads `stream` (a child's piped stderr) to its
    /// end. Call it within a Tokio runtime.
    pub fn follow(name: &str, stream: impl AsyncRead + Unpin + Send + 'static) -> Self {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (bump, changes) = watch::channel(0);
        let log = Self {
            name: name.into(),
            lines: lines.clone(),
            changes,
        };
        let name = log.name.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stream).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                eprintln!("{name}: {line}");
                lines
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(line);
                bump.send_modify(|count| *count += 1);
            }
        });
        log
    }

    /// The child's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Everything written so far, one line per line.
    pub fn text(&self) -> String {
        let lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        let mut text = lines.join("\n");
        if !lines.is_empty() {
            text.push('\n');
        }
        text
    }

    /// Waits for the first line starting with `prefix` and returns the rest
    /// of it, trimmed (for `exec-server listening on ` it is the URL).
    ///
    /// # Errors
    /// [`HarnessError::NotListening`] when stderr ends first (the child
    /// exited), [`HarnessError::Timeout`] after `patience`.
    pub async fn wait_for_line(
        &self,
        prefix: &str,
        patience: Duration,
    ) -> Result<String, HarnessError> {
        let mut changes = self.changes.clone();
        let found = tokio::time::timeout(patience, async {
            loop {
                // Marks the current lines as seen before looking at them, so
                // a line that arrives meanwhile wakes the wait below.
                changes.borrow_and_update();
                if let Some(rest) = self.find(prefix) {
                    return Ok(rest);
                }
                if changes.changed().await.is_err() {
                    return self.find(prefix).ok_or_else(|| HarnessError::NotListening {
                        name: self.name.to_string(),
                        prefix: prefix.to_owned(),
                        stderr: self.text(),
                    });
                }
            }
        })
        .await;
        found.unwrap_or_else(|_| {
            Err(HarnessError::Timeout {
                what: format!("{} printing `{prefix}URL`", self.name),
                patience,
            })
        })
    }

    /// The rest of the first line starting with `prefix`, trimmed.
    fn find(&self, prefix: &str) -> Option<String> {
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find_map(|line| line.strip_prefix(prefix))
            .map(|rest| rest.trim().to_owned())
    }
}
