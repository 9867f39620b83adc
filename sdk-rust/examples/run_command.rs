//! Runs a command on a local exec-server and streams its output as it
//! comes, then prints how it ended.
//!
//! `cargo run -p exec-client --example run_command`

use exec_client::{ConnectOptions, ExecClient, OutputStream, ProcessEvent};

/// Runs the example; the error says which expectation failed. Public so
/// that `tests/examples.rs` can run it.
#[tokio::main]
pub async fn main() -> anyhow::Result<()> {
    let client = ExecClient::spawn_local(ConnectOptions::new("run_command example")).await?;
    let info = client.initialize_response();
    println!(
        "connected to {} {} on {}/{}",
        info.server_info.name, info.server_info.version, info.platform.os, info.platform.arch
    );

    let script = "for i in 1 2 3; do echo \"line $i\"; echo \"warning $i\" >&2; done; exit 3";
    let mut child = client
        .command("/bin/sh")
        .args(["-c", script])
        .spawn()
        .await?;
    println!(
        "started process {} (pid {})",
        child.process_id(),
        child.pid()
    );

    let mut stdout = Vec::new();
    while let Some(event) = child.next_event().await? {
        match event {
            ProcessEvent::Output(chunk) => {
                let label = match chunk.stream {
                    OutputStream::Stderr => "stderr",
                    _ => "stdout",
                };
                print!("[{label}] {}", String::from_utf8_lossy(&chunk.bytes));
                if chunk.stream == OutputStream::Stdout {
                    stdout.extend_from_slice(&chunk.bytes);
                }
            }
            ProcessEvent::OutputLost { bytes } => println!("({bytes} bytes of output lost)"),
            ProcessEvent::Exited(status) => println!("exited: {status:?}"),
            other => println!("{other:?}"),
        }
    }
    let status = child.wait().await?;
    anyhow::ensure!(status.code() == Some(3), "unexpected exit: {status:?}");
    anyhow::ensure!(stdout == b"line 1\nline 2\nline 3\n", "unexpected stdout");

    client.close().await?;
    Ok(())
}
