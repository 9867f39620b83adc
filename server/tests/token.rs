//! The connection token stays secret from what the server runs and serves:
//! a child that inherits the environment does not get it, and the server's
//! own `/proc/<pid>/environ` no longer holds it once it was read.

use exec_testkit::{RawConnection, ServerLauncher, WireClient, decode, output_of};
use pretty_assertions::assert_eq;
use serde_json::json;

const TOKEN: &str = "a-token-of-enough-length-0123456789";

#[tokio::test]
async fn the_token_reaches_neither_children_nor_proc_environ() {
    let server = ServerLauncher::new()
        .token(TOKEN)
        .start_websocket()
        .await
        .expect("the server starts");
    let pid = server.process.pid().expect("the server's pid");
    let connection = RawConnection::websocket(&server.url, Some(TOKEN))
        .await
        .expect("the token is accepted");
    let mut client = WireClient::new(connection);
    client.handshake().await;

    let environ = client
        .call(
            "fs/readFile",
            json!({"path": format!("/proc/{pid}/environ")}),
        )
        .await;
    let environ = decode(&environ["dataBase64"]);
    assert!(
        !environ
            .windows(TOKEN.len())
            .any(|window| window == TOKEN.as_bytes()),
        "the token is in /proc/{pid}/environ"
    );
    // The variable is still there (blanked in place), so the scan looked at the right block.
    assert!(
        environ
            .windows(b"EXEC_SERVER_TOKEN=".len())
            .any(|window| window == b"EXEC_SERVER_TOKEN="),
        "the scan read the server's environment"
    );

    client
        .call(
            "process/start",
            json!({
                "processId": "env",
                "argv": ["/usr/bin/env"],
                "cwd": "/",
                "env": {},
                "tty": false,
                "inheritEnv": true
            }),
        )
        .await;
    let events = client.events_until_closed("env").await;
    let output = output_of(&events, "stdout");
    assert!(output.contains("PATH="), "the child inherited: {output}");
    assert_eq!(
        output
            .lines()
            .filter(|line| line.starts_with("EXEC_SERVER_TOKEN"))
            .count(),
        0,
        "{output}"
    );
}
