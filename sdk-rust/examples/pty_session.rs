//! An interactive session: runs `sh` on a pseudo-terminal, types a command
//! into it, resizes the terminal, and prints what the terminal shows.
//!
//! `cargo run -p exec-client --example pty_session`

use exec_client::{ConnectOptions, ExecClient};

/// Runs the example; the error says which expectation failed. Public so
/// that `tests/examples.rs` can run it.
#[tokio::main]
pub async fn main() -> anyhow::Result<()> {
    let client = ExecClient::spawn_local(ConnectOptions::new("pty_session example")).await?;
    let mut shell = client
        .command("/bin/sh")
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("PS1", "$ ")
        .pty(24, 80)
        .spawn()
        .await?;

    // Another task may type while this one reads: the handle is clonable.
    let keyboard = shell.handle();
    keyboard.resize(30, 100).await?;
    keyboard.write("echo hi; stty size; exit\n").await?;

    let mut screen = Vec::new();
    while let Some(chunk) = shell.next_output().await? {
        screen.extend_from_slice(&chunk.bytes);
    }
    let status = shell.wait().await?;
    let screen = String::from_utf8_lossy(&screen);
    println!("the terminal showed:\n{screen}");
    println!("the shell ended: {status:?}");
    anyhow::ensure!(screen.contains("hi\r\n"), "no `hi` on the screen");
    anyhow::ensure!(
        screen.contains("30 100"),
        "the resize did not reach the terminal"
    );
    anyhow::ensure!(status.success(), "the shell failed: {status:?}");

    client.close().await?;
    Ok(())
}
