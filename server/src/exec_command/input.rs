//! Forwarding the local stdin to the remote process (`exec -i` and `-t`).
//!
//! Stdin is read on a thread of its own rather than with `tokio::io::stdin`:
//! a read from a terminal blocks until a key is pressed, and tokio's runtime
//! waits for its blocking reads when it shuts down, so `exec` could not exit
//! when the process does. A plain thread just ends with the process.

use std::io::{self, Read};

use exec_client::ProcessHandle;
use tokio::sync::mpsc;

/// Bytes read from stdin at once.
const READ_BYTES: usize = 64 * 1024;

/// Chunks queued between the reading thread and the writing task.
const QUEUE_CHUNKS: usize = 16;

/// Starts forwarding stdin to `process` in order, chunk by chunk as reads
/// return them (a keystroke at a time from a raw terminal). At EOF it
/// closes the process's stdin (a PTY gets its EOF character). Forwarding
/// stops quietly when the process no longer takes input.
///
/// # Errors
/// The reading thread could not be started.
pub(crate) fn forward_stdin(process: ProcessHandle) -> io::Result<()> {
    let (chunks, mut received) = mpsc::channel::<Vec<u8>>(QUEUE_CHUNKS);
    std::thread::Builder::new()
        .name(String::from("exec-stdin"))
        .spawn(move || read_stdin(&chunks))?;
    tokio::spawn(async move {
        while let Some(chunk) = received.recv().await {
            if let Err(error) = process.write(chunk).await {
                // The process exited or closed its stdin, or the connection
                // ended (which the output side reports).
                tracing::debug!(%error, "stopped forwarding stdin");
                return;
            }
        }
        if let Err(error) = process.close_stdin().await {
            tracing::debug!(%error, "closing the remote stdin failed");
        }
    });
    Ok(())
}

/// Reads stdin until EOF (or an error, or nobody takes the chunks), sending
/// each read's bytes; dropping `chunks` at the end signals EOF.
fn read_stdin(chunks: &mpsc::Sender<Vec<u8>>) {
    let mut stdin = io::stdin().lock();
    let mut buffer = vec![0; READ_BYTES];
    loop {
        match stdin.read(&mut buffer) {
            Ok(0) => return,
            Ok(count) => {
                if chunks.blocking_send(buffer[..count].to_vec()).is_err() {
                    return;
                }
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => {
                tracing::debug!(%error, "reading stdin failed; treating it as EOF");
                return;
            }
        }
    }
}
