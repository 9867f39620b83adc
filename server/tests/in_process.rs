//! The in-process mode (`exec_server::in_process`): the Rust SDK served by a
//! server connection in the test's own process, with no transport. Processes
//! on pipes and PTYs, stdin, files, errors with their kinds, a slow consumer
//! of 10 MB, and closing, which kills the connection's processes.

use std::num::NonZeroU16;
use std::time::Duration;

use exec_client::protocol::{
    FsGetMetadataParams, FsReadDirectoryParams, FsReadFileParams, FsWriteFileParams,
    ProcessResizeParams, ProcessTerminateParams,
};
use exec_client::{
    ClientError, ConnectOptions, ErrorKind, ExecClient, ExitReason, OutputStream, ProcessEvent,
};
use exec_server::ServerConfig;
use pretty_assertions::assert_eq;

/// `PATH` for children, which start with an empty environment.
const PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// How long anything here may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(30);

async fn connect(test: &str) -> ExecClient {
    exec_server::in_process::connect(ConnectOptions::new(test))
        .await
        .expect("the in-process server answers initialize")
}

#[tokio::test]
async fn the_handshake_reports_this_server_and_its_limits() {
    let client = connect("handshake").await;
    let info = client.initialize_response();
    assert_eq!(info.protocol_version, "exec-server.v1");
    assert_eq!(info.server_info.name, "exec-server");
    assert_eq!(info.platform.os, std::env::consts::OS);
    let defaults = ServerConfig::default();
    assert_eq!(
        info.limits.retained_output_bytes_per_process,
        defaults.process.retained_output_bytes as u64
    );
    // No local server process: the server is this process.
    assert_eq!(client.local_server_pid(), None);
    client.close().await.expect("closes");
}

#[tokio::test]
async fn a_custom_config_applies_through_the_transport() {
    let mut config = ServerConfig::default();
    config.process.max_processes = 1;
    let transport = exec_server::in_process::transport(config.into());
    let client = ExecClient::connect_transport(transport, ConnectOptions::new("custom config"))
        .await
        .expect("connects");
    assert_eq!(
        client
            .initialize_response()
            .limits
            .max_processes_per_connection,
        1
    );
    let _sleeper = client
        .command("/bin/sleep")
        .arg("30")
        .spawn()
        .await
        .expect("the first process starts");
    let error = client
        .command("/bin/true")
        .spawn()
        .await
        .expect_err("one process per connection");
    assert_eq!(error.kind(), Some(ErrorKind::LimitExceeded));
    client.close().await.expect("closes");
}

#[tokio::test]
async fn processes_run_on_pipes_and_on_a_pty() {
    let client = connect("processes").await;

    let output = client
        .command("sh")
        .args(["-c", "echo out; echo err >&2; exit 3"])
        .env("PATH", PATH)
        .output()
        .await
        .expect("runs");
    assert_eq!(
        (output.stdout.as_slice(), output.stderr.as_slice()),
        (&b"out\n"[..], &b"err\n"[..])
    );
    assert_eq!(
        (output.status.exit_code, output.status.reason),
        (Some(3), ExitReason::Exited)
    );

    let cat = client
        .command("/bin/cat")
        .pipe_stdin()
        .spawn()
        .await
        .expect("cat starts");
    cat.write(b"through stdin \x00\xff").await.expect("writes");
    let output = cat.output().await.expect("cat ends at EOF");
    assert_eq!(output.stdout, b"through stdin \x00\xff");
    assert!(output.status.success());

    let mut shell = client
        .command("/bin/sh")
        .args(["-c", "stty size; read line; echo \"got $line\""])
        .env("PATH", PATH)
        .pty(7, 33)
        .spawn()
        .await
        .expect("a PTY process starts");
    let mut seen = String::new();
    while !seen.contains("7 33") {
        let chunk = shell
            .next_output()
            .await
            .expect("no error")
            .expect("output before the end");
        assert_eq!(chunk.stream, OutputStream::Pty);
        seen.push_str(&String::from_utf8_lossy(&chunk.bytes));
    }
    shell.write(b"typed\n").await.expect("types");
    let output = shell.output().await.expect("ends");
    seen.push_str(&String::from_utf8_lossy(&output.stdout));
    assert!(seen.contains("got typed"), "{seen:?}");
    assert!(output.status.success());
    client.close().await.expect("closes");
}

#[tokio::test]
async fn files_are_written_read_and_listed() {
    let client = connect("files").await;
    let scratch = tempfile::tempdir().expect("a temp dir");
    let root = scratch.path().display().to_string();
    let file = format!("{root}/nested/data.bin");
    client
        .fs_write_file(FsWriteFileParams {
            append: None,
            create_parents: Some(true),
            data_base64: b"binary \x00\xff data".as_slice().into(),
            mode: None,
            path: file.clone().into(),
        })
        .await
        .expect("writeFile");
    // The server is this process: the file is right here.
    assert_eq!(
        std::fs::read(&file).expect("the file exists"),
        b"binary \x00\xff data"
    );
    let read = client
        .fs_read_file(FsReadFileParams {
            max_bytes: None,
            offset: Some(7),
            path: file.clone().into(),
        })
        .await
        .expect("readFile");
    assert_eq!(
        (read.data_base64.as_bytes(), read.size, read.eof),
        (&b"\x00\xff data"[..], 14, true)
    );
    let metadata = client
        .fs_get_metadata(FsGetMetadataParams {
            follow_symlinks: None,
            path: file.clone().into(),
        })
        .await
        .expect("getMetadata");
    assert_eq!((metadata.is_file, metadata.size), (true, 14));
    let listing = client
        .fs_read_directory(FsReadDirectoryParams {
            path: format!("{root}/nested").into(),
        })
        .await
        .expect("readDirectory");
    let names: Vec<&str> = listing
        .entries
        .iter()
        .map(|entry| entry.file_name.as_str())
        .collect();
    assert_eq!(names, ["data.bin"]);
    client.close().await.expect("closes");
}

#[tokio::test]
async fn errors_carry_their_kind() {
    let client = connect("errors").await;
    let scratch = tempfile::tempdir().expect("a temp dir");
    let missing = format!("{}/missing", scratch.path().display());
    let error = client
        .fs_read_file(FsReadFileParams {
            max_bytes: None,
            offset: None,
            path: missing.clone().into(),
        })
        .await
        .expect_err("no such file");
    assert_eq!(error.kind(), Some(ErrorKind::NotFound));
    match &error {
        ClientError::Server { data, .. } => assert_eq!(
            data.as_ref().and_then(|data| data.get("path")),
            Some(&serde_json::json!(missing))
        ),
        other => panic!("expected a server error, got {other:?}"),
    }
    let error = client
        .fs_read_directory(FsReadDirectoryParams {
            path: "relative".to_owned().into(),
        })
        .await
        .expect_err("a relative path");
    assert_eq!(error.kind(), Some(ErrorKind::InvalidPath));
    let error = client
        .command("/no/such/program")
        .spawn()
        .await
        .expect_err("nothing to start");
    assert_eq!(error.kind(), Some(ErrorKind::SpawnFailed));
    let error = client
        .process_resize(ProcessResizeParams {
            cols: NonZeroU16::new(80).expect("not zero"),
            process_id: "nobody".to_owned().try_into().expect("an id"),
            rows: NonZeroU16::new(24).expect("not zero"),
        })
        .await
        .expect_err("unknown process");
    assert_eq!(error.kind(), Some(ErrorKind::UnknownProcess));
    let terminated = client
        .process_terminate(ProcessTerminateParams {
            process_id: "nobody".to_owned().try_into().expect("an id"),
        })
        .await
        .expect("terminate is never an error");
    assert!(!terminated.running);
    let error = client
        .request("no/such/method", serde_json::json!({}))
        .await
        .expect_err("unknown method");
    match error {
        ClientError::Server { code, .. } => assert_eq!(code, -32601),
        other => panic!("expected a server error, got {other:?}"),
    }
    client.close().await.expect("closes");
}

/// The consumer takes its time at first (simulated slow processing, not a
/// wait for anything): the in-process transport holds the server back, and
/// every byte of 10.9 MB arrives, in order.
#[tokio::test]
async fn a_slow_consumer_receives_every_byte_in_order() {
    let client = connect("slow consumer").await;
    let mut child = client
        .command("/usr/bin/seq")
        .args(["1", "1500000"])
        .spawn()
        .await
        .expect("seq starts");
    let mut received = Vec::new();
    let mut chunks = 0;
    let collect = async {
        while let Some(event) = child.next_event().await.expect("no error") {
            match event {
                ProcessEvent::Output(chunk) => {
                    received.extend_from_slice(&chunk.bytes);
                    chunks += 1;
                    if chunks <= 40 {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                ProcessEvent::OutputLost { bytes } => panic!("{bytes} bytes lost"),
                ProcessEvent::Exited(status) => assert!(status.success()),
                other => panic!("unexpected {other:?}"),
            }
        }
    };
    tokio::time::timeout(PATIENCE, collect)
        .await
        .expect("all output within the patience");
    let expected: String = (1..=1_500_000)
        .map(|number| format!("{number}\n"))
        .collect();
    assert_eq!(received.len(), expected.len());
    assert!(received == expected.as_bytes(), "the bytes differ");
    client.close().await.expect("closes");
}

/// Closing the client ends the connection, which kills its processes; and
/// the in-process mode leaves this process's subreaper flag alone.
#[tokio::test]
async fn closing_kills_the_processes_and_leaves_the_host_alone() {
    let client = connect("close").await;
    let sleeper = client
        .command("/bin/sleep")
        .arg("1000")
        .spawn()
        .await
        .expect("sleep starts");
    let pid = sleeper.pid();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    drop(sleeper);
    client.close().await.expect("closes");
    // The connection's close waited until the child was reaped.
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "sleep ({pid}) outlived its connection"
    );
    assert!(
        !nix::sys::prctl::get_child_subreaper().expect("prctl"),
        "the in-process mode made the host a subreaper"
    );
}
