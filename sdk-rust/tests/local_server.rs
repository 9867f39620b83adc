//! The client against a real server, each scenario over stdio (the
//! `exec-server` binary through `ExecClient::spawn_local`) and in-process
//! (`exec_server::in_process`): every typed request, the process API, files,
//! errors with their kinds, and lossless output under a slow consumer.

use std::collections::BTreeSet;
use std::num::NonZeroU16;
use std::time::Duration;

use exec_client::protocol::{
    EnvironmentInfoParams, EnvironmentStatusKind, EnvironmentStatusParams, FsCanonicalizeParams,
    FsCloseParams, FsCopyParams, FsCreateDirectoryParams, FsGetMetadataParams, FsOpenParams,
    FsReadBlockParams, FsReadDirectoryParams, FsReadFileParams, FsRemoveParams, FsRenameParams,
    FsWalkParams, FsWriteFileParams, HttpRequestParams, InitializeParams, METHODS, MethodKind,
    ProcessCloseStdinParams, ProcessListParams, ProcessReadParams, ProcessResizeParams,
    ProcessSignalParams, ProcessStartParams, ProcessTerminateParams, ProcessWriteParams,
    TerminalSize, WalkEntryKind, WalkOptions, WriteStatus,
};
use exec_client::{
    ClientError, ConnectOptions, ErrorKind, ExecClient, ExitReason, OutputStream, ProcessEvent,
    RemoteChild, Signal,
};
use futures_util::StreamExt;
use pretty_assertions::assert_eq;
use serde_json::json;

use exec_testkit::{
    CHILD_PATH as PATH, HttpTestServer, RunningServer, ServerLauncher, StdioServer, Transport,
    connect_client, scratch_dir,
};

/// Options naming the test.
fn options(test: &str) -> ConnectOptions {
    ConnectOptions::new(test)
}

/// A client of a fresh server over `transport`, with the server it needs.
async fn connect(transport: Transport, options: ConnectOptions) -> (ExecClient, RunningServer) {
    connect_client(transport, &ServerLauncher::new(), options)
        .await
        .unwrap_or_else(|error| panic!("{error}"))
}

/// A client named after `test` of a fresh server over `transport`.
async fn local_client(transport: Transport, test: &str) -> (ExecClient, RunningServer) {
    connect(transport, options(test)).await
}

/// A terminal dimension.
fn cells(count: u16) -> NonZeroU16 {
    NonZeroU16::new(count).expect("not zero")
}

/// PTY output until `needle` shows up; panics if the stream ends first.
async fn read_until(child: &mut RemoteChild, seen: &mut String, needle: &str) {
    while !seen.contains(needle) {
        let chunk = child
            .next_output()
            .await
            .expect("no error")
            .unwrap_or_else(|| panic!("the output ended before {needle:?}; it was: {seen:?}"));
        assert_eq!(chunk.stream, OutputStream::Pty);
        seen.push_str(&String::from_utf8_lossy(&chunk.bytes));
    }
}

async fn handshake_reports_the_server(transport: Transport) {
    let (client, _server) = local_client(transport, "handshake").await;
    let info = client.initialize_response();
    assert_eq!(info.protocol_version, "exec-server.v1");
    assert_eq!(info.server_info.name, "exec-server");
    assert_eq!(info.platform.os, std::env::consts::OS);
    assert!(info.limits.retained_output_bytes_per_process >= 1024 * 1024);
    // `spawn_local` knows its child; in-process there is no server process.
    assert_eq!(
        client.local_server_pid().is_some(),
        transport == Transport::Stdio
    );
    client
        .close()
        .await
        .expect("the server exits when its stdin closes");
}

async fn every_typed_request_once(transport: Transport) {
    let (client, _server) = local_client(transport, "every_typed_request").await;
    let scratch = scratch_dir();
    let root = scratch.path().display().to_string();
    let mut called = BTreeSet::new();

    let error = client
        .initialize(InitializeParams {
            client_name: "again".into(),
            client_version: None,
            resume_session_id: None,
            acknowledge_output: None,
            binary_output: None,
        })
        .await
        .expect_err("one initialize per connection");
    assert_eq!(error.kind(), Some(ErrorKind::AlreadyInitialized));
    called.insert("initialize");

    let directory = format!("{root}/a/b");
    client
        .fs_create_directory(FsCreateDirectoryParams {
            sandbox: None,
            path: directory.clone().into(),
            recursive: Some(true),
        })
        .await
        .expect("createDirectory");
    called.insert("fs/createDirectory");
    let file = format!("{directory}/f.txt");
    client
        .fs_write_file(FsWriteFileParams {
            sandbox: None,
            append: None,
            create_parents: None,
            data_base64: b"hello \x00 world".as_slice().into(),
            mode: None,
            path: file.clone().into(),
        })
        .await
        .expect("writeFile");
    called.insert("fs/writeFile");
    let read = client
        .fs_read_file(FsReadFileParams {
            sandbox: None,
            max_bytes: Some(5),
            offset: Some(0),
            path: file.clone().into(),
        })
        .await
        .expect("readFile");
    assert_eq!(
        (read.data_base64.as_bytes(), read.size, read.eof),
        (&b"hello"[..], 13, false)
    );
    called.insert("fs/readFile");
    let metadata = client
        .fs_get_metadata(FsGetMetadataParams {
            sandbox: None,
            follow_symlinks: None,
            path: file.clone().into(),
        })
        .await
        .expect("getMetadata");
    assert!(metadata.is_file && !metadata.is_directory);
    assert_eq!(metadata.size, 13);
    called.insert("fs/getMetadata");
    let copy = format!("{directory}/copy.txt");
    client
        .fs_copy(FsCopyParams {
            sandbox: None,
            destination_path: copy.clone().into(),
            recursive: None,
            source_path: file.clone().into(),
        })
        .await
        .expect("copy");
    called.insert("fs/copy");
    client
        .fs_rename(FsRenameParams {
            sandbox: None,
            destination_path: format!("{directory}/moved.txt").into(),
            overwrite: None,
            source_path: copy.into(),
        })
        .await
        .expect("rename");
    called.insert("fs/rename");
    let listing = client
        .fs_read_directory(FsReadDirectoryParams {
            sandbox: None,
            path: directory.clone().into(),
        })
        .await
        .expect("readDirectory");
    let names: Vec<&str> = listing
        .entries
        .iter()
        .map(|entry| entry.file_name.as_str())
        .collect();
    assert_eq!(names, ["f.txt", "moved.txt"]);
    called.insert("fs/readDirectory");
    let walked = client
        .fs_walk(FsWalkParams {
            options: WalkOptions {
                follow_directory_symlinks: false,
                max_depth: 0,
                max_directories: 1,
                max_entries: 10,
                prune_hidden_directories: None,
            },
            path: directory.clone().into(),
            sandbox: None,
        })
        .await
        .expect("walk");
    let walked: Vec<(&str, WalkEntryKind)> = walked
        .entries
        .iter()
        .map(|entry| (entry.path.as_str(), entry.kind))
        .collect();
    let moved = format!("{directory}/moved.txt");
    assert_eq!(
        walked,
        [
            (file.as_str(), WalkEntryKind::File),
            (moved.as_str(), WalkEntryKind::File)
        ]
    );
    called.insert("fs/walk");
    let canonical = client
        .fs_canonicalize(FsCanonicalizeParams {
            path: format!("{directory}/../b/./f.txt").into(),
            sandbox: None,
        })
        .await
        .expect("canonicalize");
    let expected = std::fs::canonicalize(&file).expect("the file's canonical path");
    assert_eq!(canonical.path.as_str(), expected.display().to_string());
    called.insert("fs/canonicalize");
    client
        .fs_open(FsOpenParams {
            handle_id: String::from("f"),
            path: file.clone().into(),
            sandbox: None,
        })
        .await
        .expect("open");
    called.insert("fs/open");
    let block = client
        .fs_read_block(FsReadBlockParams {
            handle_id: String::from("f"),
            len: 5,
            offset: 6,
        })
        .await
        .expect("readBlock");
    assert_eq!(
        (block.chunk.as_bytes(), block.eof),
        (&b"\x00 wor"[..], false)
    );
    called.insert("fs/readBlock");
    client
        .fs_close(FsCloseParams {
            handle_id: String::from("f"),
        })
        .await
        .expect("close");
    let closed = client
        .fs_read_block(FsReadBlockParams {
            handle_id: String::from("f"),
            len: 1,
            offset: 0,
        })
        .await
        .expect_err("a closed handle");
    assert_eq!(closed.kind(), Some(ErrorKind::NotFound));
    called.insert("fs/close");
    client
        .fs_remove(FsRemoveParams {
            sandbox: None,
            force: None,
            path: format!("{root}/a").into(),
            recursive: Some(true),
        })
        .await
        .expect("remove");
    called.insert("fs/remove");

    // The process requests, typed and by hand (no Command, no RemoteChild).
    let started = client
        .process_start(ProcessStartParams {
            arg0: None,
            argv: vec!["/bin/sh".into()],
            cwd: root.clone().into(),
            env: [("PATH".to_owned(), PATH.to_owned())].into(),
            inherit_env: None,
            env_policy: None,
            sandbox: None,
            enforce_managed_network: None,
            managed_network: None,
            network_proxy: None,
            pipe_stdin: None,
            process_id: "typed".to_owned().try_into().expect("a process id"),
            size: Some(TerminalSize {
                rows: cells(24),
                cols: cells(80),
            }),
            timeout_ms: None,
            tty: true,
        })
        .await
        .expect("start");
    assert!(started.pid > 0);
    called.insert("process/start");
    let id = started.process_id.clone();
    client
        .process_resize(ProcessResizeParams {
            cols: cells(99),
            process_id: id.clone(),
            rows: cells(33),
        })
        .await
        .expect("resize");
    called.insert("process/resize");
    let written = client
        .process_write(ProcessWriteParams {
            chunk: b"stty size; exit 4\n".as_slice().into(),
            process_id: id.clone(),
            write_id: Some("w1".into()),
        })
        .await
        .expect("write");
    assert_eq!(written.status, WriteStatus::Accepted);
    called.insert("process/write");
    let mut cursor = 0;
    let mut screen = Vec::new();
    let exit_code = loop {
        let read = client
            .process_read(ProcessReadParams {
                after_seq: Some(cursor),
                max_bytes: None,
                process_id: id.clone(),
                wait_ms: Some(5_000),
            })
            .await
            .expect("read");
        for chunk in &read.chunks {
            screen.extend_from_slice(chunk.chunk.as_bytes());
        }
        cursor = read.next_seq - 1;
        if read.closed {
            break read.exit_code;
        }
    };
    assert_eq!(exit_code, Some(4));
    assert!(
        String::from_utf8_lossy(&screen).contains("33 99"),
        "{}",
        String::from_utf8_lossy(&screen)
    );
    called.insert("process/read");
    let listed = client
        .process_list(ProcessListParams {})
        .await
        .expect("list");
    assert_eq!(listed.processes.len(), 1);
    assert_eq!(
        (listed.processes[0].running, listed.processes[0].tty),
        (false, true)
    );
    called.insert("process/list");

    client
        .command("/bin/sleep")
        .arg("30")
        .process_id("sleeper")
        .pipe_stdin()
        .spawn()
        .await
        .map(drop)
        .expect("spawn");
    let sleeper = "sleeper".to_owned().try_into().expect("a process id");
    client
        .process_close_stdin(ProcessCloseStdinParams {
            process_id: "sleeper".to_owned().try_into().expect("id"),
        })
        .await
        .expect("closeStdin");
    called.insert("process/closeStdin");
    client
        .process_signal(ProcessSignalParams {
            process_id: sleeper,
            signal: Signal::Continue,
        })
        .await
        .expect("signal");
    called.insert("process/signal");
    let terminated = client
        .process_terminate(ProcessTerminateParams {
            process_id: "sleeper".to_owned().try_into().expect("id"),
        })
        .await
        .expect("terminate");
    assert!(terminated.running);
    called.insert("process/terminate");

    let info = client
        .environment_info(EnvironmentInfoParams(None))
        .await
        .expect("environment/info");
    assert!(info.shell.path.starts_with('/'), "{info:?}");
    assert!(!info.capabilities.network_proxy_launch);
    called.insert("environment/info");
    let status = client
        .environment_status(EnvironmentStatusParams(None))
        .await
        .expect("environment/status");
    assert_eq!(status.status, EnvironmentStatusKind::Ready);
    called.insert("environment/status");
    let http = HttpTestServer::start().await;
    let fetched = client
        .http_request(HttpRequestParams {
            method: "GET".to_owned(),
            url: http.url("/hello"),
            headers: Vec::new(),
            body_base64: None,
            timeout_ms: None,
            redirect_policy: None,
            request_id: "h1".to_owned(),
            stream_response: None,
        })
        .await
        .expect("http/request");
    assert_eq!(
        (fetched.status, fetched.body_base64.0),
        (200, b"hello".to_vec())
    );
    called.insert("http/request");

    // A request added to the schema fails here until a test calls it.
    let requests: BTreeSet<&str> = METHODS
        .iter()
        .filter(|method| method.kind == MethodKind::Request)
        .map(|method| method.name)
        .collect();
    assert_eq!(called, requests);
}

async fn raw_and_generic_calls(transport: Transport) {
    let (client, _server) = local_client(transport, "raw_and_generic").await;
    let listed = client
        .request("process/list", json!({}))
        .await
        .expect("raw request");
    assert_eq!(listed, json!({"processes": []}));
    let error = client
        .request("no/such", json!({}))
        .await
        .expect_err("unknown method");
    assert!(
        matches!(error, ClientError::Server { code: -32601, .. }),
        "{error:?}"
    );
    client
        .notify("initialized", json!({}))
        .await
        .expect("a notification");
    let listed = client
        .call::<exec_client::protocol::ProcessList>(ProcessListParams {})
        .await
        .expect("generic call");
    assert_eq!(listed.processes, vec![]);
}

async fn output_and_exit_codes(transport: Transport) {
    let (client, _server) = local_client(transport, "output_and_exit_codes").await;
    let output = client
        .command("/bin/sh")
        .args(["-c", "echo out; echo err >&2; exit 3"])
        .output()
        .await
        .expect("output");
    assert_eq!(
        (output.stdout.as_slice(), output.stderr.as_slice()),
        (&b"out\n"[..], &b"err\n"[..])
    );
    assert_eq!(
        (output.status.exit_code, output.status.reason),
        (3, ExitReason::Exited)
    );
    assert!(!output.status.success());
    assert_eq!(output.dropped_bytes, 0);

    let status = client.command("/bin/true").status().await.expect("status");
    assert!(status.success());

    // The environment is empty unless set or inherited; cwd defaults to `/`.
    let output = client
        .command("/bin/sh")
        .args(["-c", "pwd; echo \"[$A][$HOME]\""])
        .env("A", "set")
        .output()
        .await
        .expect("output");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "/\n[set][]\n");
    let scratch = scratch_dir();
    let output = client
        .command("sh")
        .args(["-c", "pwd; test -n \"$HOME\" && echo inherited"])
        .inherit_env(true)
        .cwd(scratch.path().display().to_string())
        .output()
        .await
        .expect("output");
    let expected_cwd = scratch.path().canonicalize().expect("canonical");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("{}\ninherited\n", expected_cwd.display())
    );
}

async fn output_streams_in_order_with_consecutive_seqs(transport: Transport) {
    let (client, _server) = local_client(transport, "output_streams").await;
    let child = client
        .command("/bin/sh")
        .args([
            "-c",
            "i=0; while [ $i -lt 300 ]; do echo line $i; i=$((i+1)); done; exit 0",
        ])
        .spawn()
        .await
        .expect("spawn");
    let events: Vec<ProcessEvent> = child
        .into_events()
        .map(|event| event.expect("no error"))
        .collect()
        .await;
    let mut text = String::new();
    let mut last_seq = 0;
    let mut exited = false;
    for event in events {
        match event {
            ProcessEvent::Output(chunk) => {
                assert!(chunk.seq > last_seq, "seqs increase");
                last_seq = chunk.seq;
                text.push_str(&String::from_utf8_lossy(&chunk.bytes));
            }
            ProcessEvent::Exited(status) => {
                assert!(status.success());
                exited = true;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(exited);
    let expected: String = (0..300).map(|i| format!("line {i}\n")).collect();
    assert_eq!(text, expected);
}

async fn stdin_through_pipe_stdin(transport: Transport) {
    let (client, _server) = local_client(transport, "stdin").await;
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

    let child = client
        .command("/bin/cat")
        .pipe_stdin()
        .spawn()
        .await
        .expect("spawn");
    child.write(b"hello ").await.expect("write");
    child
        .handle()
        .write(vec![b'x'; 3 * 1024 * 1024])
        .await
        .expect("a write larger than one piece");
    child.write("\nbye\n").await.expect("write");
    // `output` closes the piped stdin first, so cat sees EOF.
    let output = child.output().await.expect("output");
    assert_eq!(output.stdout.len(), 6 + 3 * 1024 * 1024 + 5);
    assert!(output.stdout.starts_with(b"hello xxx") && output.stdout.ends_with(b"x\nbye\n"));
    assert!(output.status.success());

    // Without pipe_stdin, stdin is /dev/null: writes are refused.
    let mut child = client
        .command("/bin/sleep")
        .arg("5")
        .spawn()
        .await
        .expect("spawn");
    let error = child
        .write("nobody reads this")
        .await
        .expect_err("stdin is closed");
    assert!(
        matches!(
            error,
            ClientError::WriteRejected {
                status: WriteStatus::StdinClosed,
                ..
            }
        ),
        "{error:?}"
    );
    let error = child.close_stdin().await.expect_err("nothing to close");
    assert_eq!(error.kind(), Some(ErrorKind::StdinClosed));
    assert!(child.terminate().await.expect("terminate"));
    assert_eq!(child.wait().await.expect("wait").reason, ExitReason::Killed);
}

/// `output()` closes the piped stdin while the process floods its output
/// (more than every buffer between server and child holds): the close's
/// answer queues behind that output, so the output must be taken meanwhile.
/// A stall would take a minute here, and lose bytes.
async fn output_closes_stdin_while_taking_a_flood_of_output(transport: Transport) {
    let options = options("close_stdin_flood")
        .output_buffer_chunks(2)
        .output_stall_timeout(Duration::from_secs(60));
    let (client, _server) = connect(transport, options).await;
    let mut child = client
        .command("/bin/sh")
        .args([
            "-c",
            "head -c 16000000 /dev/zero; cat > /dev/null; printf done",
        ])
        .env("PATH", PATH)
        .pipe_stdin()
        .spawn()
        .await
        .expect("spawn");
    // Once output flows, the server queues more of it ahead of any answer.
    let first = child
        .next_output()
        .await
        .expect("no error")
        .expect("a chunk");
    let output = tokio::time::timeout(Duration::from_secs(30), child.output())
        .await
        .expect("no stall")
        .expect("output");
    assert_eq!(
        (
            first.bytes.len() + output.stdout.len(),
            output.dropped_bytes
        ),
        (16_000_004, 0)
    );
    assert!(output.stdout.ends_with(b"done") && output.status.success());
}

async fn pty_session_with_resize(transport: Transport) {
    let (client, _server) = local_client(transport, "pty").await;
    let mut shell = client
        .command("/bin/sh")
        .env("PATH", PATH)
        .env("PS1", "$ ")
        .pty(24, 80)
        .spawn()
        .await
        .expect("spawn");
    let mut seen = String::new();
    shell.write("stty size\n").await.expect("write");
    read_until(&mut shell, &mut seen, "24 80").await;
    shell.resize(40, 100).await.expect("resize");
    shell.write("stty size\n").await.expect("write");
    read_until(&mut shell, &mut seen, "40 100").await;
    shell.write("echo hi; exit 7\n").await.expect("write");
    read_until(&mut shell, &mut seen, "hi\r\n").await;
    let status = shell.wait().await.expect("wait");
    assert_eq!((status.exit_code, status.reason), (7, ExitReason::Exited));

    let pipes = client
        .command("/bin/sleep")
        .arg("5")
        .spawn()
        .await
        .expect("spawn");
    let error = pipes.resize(10, 10).await.expect_err("not a terminal");
    assert_eq!(error.kind(), Some(ErrorKind::NotPty));
    let error = pipes.resize(0, 10).await.expect_err("zero rows");
    assert!(matches!(error, ClientError::InvalidInput(_)), "{error:?}");
    pipes.terminate().await.expect("terminate");
}

async fn signal_terminate_and_timeout(transport: Transport) {
    let (client, _server) = local_client(transport, "signals").await;
    let mut child = client
        .command("/bin/sleep")
        .arg("30")
        .spawn()
        .await
        .expect("spawn");
    child.signal(Signal::Terminate).await.expect("signal");
    let status = child.wait().await.expect("wait");
    assert_eq!(
        (status.exit_code, status.signal, status.reason),
        (143, Some(Signal::Terminate), ExitReason::Signaled)
    );
    assert_eq!(
        status.code(),
        None,
        "a signal, not a code the process chose"
    );

    let mut child = client
        .command("/bin/sleep")
        .arg("30")
        .spawn()
        .await
        .expect("spawn");
    assert!(
        child.terminate().await.expect("terminate"),
        "it was running"
    );
    let status = child.wait().await.expect("wait");
    assert_eq!(status.reason, ExitReason::Killed);
    assert!(
        !child.terminate().await.expect("terminate again"),
        "it is gone"
    );

    let mut child = client
        .command("/bin/sleep")
        .arg("30")
        .timeout(Duration::from_millis(200))
        .spawn()
        .await
        .expect("spawn");
    let status = child.wait().await.expect("wait");
    assert_eq!(
        (status.exit_code, status.reason),
        (137, ExitReason::TimedOut)
    );
}

async fn errors_carry_their_kind(transport: Transport) {
    let (client, _server) = local_client(transport, "errors").await;
    let unknown = "nobody".to_owned().try_into().expect("a process id");
    let error = client
        .process_signal(ProcessSignalParams {
            process_id: unknown,
            signal: Signal::Kill,
        })
        .await
        .expect_err("unknown process");
    assert_eq!(error.kind(), Some(ErrorKind::UnknownProcess));
    match &error {
        ClientError::Server { data, .. } => {
            assert_eq!(
                data.as_ref().and_then(|data| data.get("processId")),
                Some(&json!("nobody"))
            );
        }
        other => panic!("expected a server error, got {other:?}"),
    }

    let error = client
        .command("/no/such/program")
        .spawn()
        .await
        .expect_err("spawn fails");
    assert_eq!(error.kind(), Some(ErrorKind::SpawnFailed));
    let error = client
        .command("/bin/true")
        .cwd("relative")
        .spawn()
        .await
        .expect_err("relative cwd");
    assert_eq!(error.kind(), Some(ErrorKind::InvalidPath));

    let child = client
        .command("/bin/sleep")
        .arg("5")
        .process_id("twice")
        .spawn()
        .await
        .expect("spawn");
    drop(child);
    let error = client
        .command("/bin/true")
        .process_id("twice")
        .spawn()
        .await
        .expect_err("the server still has it");
    assert_eq!(error.kind(), Some(ErrorKind::ProcessExists));

    let scratch = scratch_dir();
    let missing = format!("{}/missing", scratch.path().display());
    let error = client
        .fs_read_file(FsReadFileParams {
            sandbox: None,
            max_bytes: None,
            offset: None,
            path: missing.clone().into(),
        })
        .await
        .expect_err("no such file");
    assert_eq!(error.kind(), Some(ErrorKind::NotFound));
    match &error {
        ClientError::Server { data, .. } => {
            assert_eq!(
                data.as_ref().and_then(|data| data.get("path")),
                Some(&json!(missing))
            );
        }
        other => panic!("expected a server error, got {other:?}"),
    }
    let error = client
        .fs_read_directory(FsReadDirectoryParams {
            sandbox: None,
            path: "relative/path".to_owned().into(),
        })
        .await
        .expect_err("relative path");
    assert_eq!(error.kind(), Some(ErrorKind::InvalidPath));

    let error = client
        .process_resize(ProcessResizeParams {
            cols: cells(80),
            process_id: "nobody".to_owned().try_into().expect("an id"),
            rows: cells(24),
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
}

/// Binary content through `createParents`, a read from an offset to the
/// end, metadata and a listing; the server runs on this machine, so the
/// file is right here too.
async fn files_are_written_read_and_listed(transport: Transport) {
    let (client, _server) = local_client(transport, "files").await;
    let scratch = scratch_dir();
    let root = scratch.path().display().to_string();
    let file = format!("{root}/nested/data.bin");
    client
        .fs_write_file(FsWriteFileParams {
            sandbox: None,
            append: None,
            create_parents: Some(true),
            data_base64: b"binary \x00\xff data".as_slice().into(),
            mode: None,
            path: file.clone().into(),
        })
        .await
        .expect("writeFile");
    assert_eq!(
        std::fs::read(&file).expect("the file exists"),
        b"binary \x00\xff data"
    );
    let read = client
        .fs_read_file(FsReadFileParams {
            sandbox: None,
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
            sandbox: None,
            follow_symlinks: None,
            path: file.clone().into(),
        })
        .await
        .expect("getMetadata");
    assert_eq!((metadata.is_file, metadata.size), (true, 14));
    let listing = client
        .fs_read_directory(FsReadDirectoryParams {
            sandbox: None,
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

/// The consumer takes its time at first (simulated slow processing, not a
/// wait for anything) while more than 10 MB of numbered lines stream: the
/// reader holds the server back instead of dropping, so every byte arrives,
/// in order, and nothing is reported lost.
async fn a_slow_consumer_receives_every_byte_of_10_mb_in_order(transport: Transport) {
    const LINES: u64 = 1_500_000;
    let (client, _server) = local_client(transport, "slow_consumer").await;
    let mut child = client
        .command("seq")
        .args(["1", &LINES.to_string()])
        .env("PATH", "/usr/bin:/bin")
        .spawn()
        .await
        .expect("spawn");
    let mut received = Vec::new();
    let mut chunks = 0usize;
    let mut last_seq = 0;
    while let Some(event) = child.next_event().await.expect("no error") {
        match event {
            ProcessEvent::Output(chunk) => {
                assert!(chunk.seq > last_seq);
                last_seq = chunk.seq;
                received.extend_from_slice(&chunk.bytes);
                chunks += 1;
                if chunks <= 40 {
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
            }
            ProcessEvent::OutputLost { bytes } => panic!("{bytes} bytes lost"),
            ProcessEvent::Exited(status) => assert!(status.success()),
            other => panic!("unexpected {other:?}"),
        }
    }
    let expected: String = (1..=LINES).map(|line| format!("{line}\n")).collect();
    assert!(expected.len() > 10_000_000);
    assert_eq!(received.len(), expected.len());
    assert!(
        received == expected.as_bytes(),
        "the bytes arrived out of order or changed"
    );
    assert_eq!(child.dropped_bytes(), 0);
}

/// Waits (through other calls, whose answers queue behind the output) until
/// the server has closed the process: by then every output notification has
/// reached the client's reader, which had to give up on the stalled child.
async fn wait_closed_on_server(client: &ExecClient, process_id: &str) {
    loop {
        // A cursor past the end: the long poll returns at once when the
        // process is closed, else after `waitMs` with nothing.
        let read = client
            .process_read(ProcessReadParams {
                after_seq: Some(u64::MAX - 1),
                max_bytes: Some(1),
                process_id: process_id.to_owned().try_into().expect("id"),
                wait_ms: Some(1_000),
            })
            .await
            .expect("read");
        if read.closed {
            return;
        }
    }
}

/// A consumer that takes nothing while the reader's wait runs out is marked
/// lagging; what it missed is read back from the server's retained output.
async fn a_stalled_consumer_is_caught_up_within_the_retention(transport: Transport) {
    let options = options("stalled_consumer")
        .output_buffer_chunks(2)
        .output_stall_timeout(Duration::from_millis(100));
    let (client, _server) = connect(transport, options).await;
    let mut child = client
        .command("/usr/bin/head")
        .args(["-c", "500000", "/dev/zero"])
        .process_id("stalled")
        .spawn()
        .await
        .expect("spawn");
    wait_closed_on_server(&client, "stalled").await;
    let output = child_output(&mut child).await;
    assert_eq!((output, child.dropped_bytes()), (500_000, 0));
}

/// Beyond the server's retention the loss is real, and reported exactly:
/// what arrived plus what is reported lost is all the process wrote.
async fn a_stalled_consumer_hears_of_output_the_server_evicted(transport: Transport) {
    let options = options("evicted_output")
        .output_buffer_chunks(2)
        .output_stall_timeout(Duration::from_millis(100));
    let (client, _server) = connect(transport, options).await;
    let retained = client
        .initialize_response()
        .limits
        .retained_output_bytes_per_process;
    let mut child = client
        .command("/usr/bin/head")
        .args(["-c", "8000000", "/dev/zero"])
        .process_id("evicted")
        .spawn()
        .await
        .expect("spawn");
    wait_closed_on_server(&client, "evicted").await;
    let received = child_output(&mut child).await;
    let lost = child.dropped_bytes();
    assert!(lost > 0, "the server retains only {retained} bytes");
    assert_eq!(received as u64 + lost, 8_000_000);
}

/// All output bytes of a child, counting (not keeping) them.
async fn child_output(child: &mut RemoteChild) -> usize {
    let mut total = 0;
    while let Some(chunk) = child.next_output().await.expect("no error") {
        total += chunk.bytes.len();
    }
    total
}

#[tokio::test]
async fn connect_stdio_over_a_child_process_pipes() {
    let StdioServer {
        mut process,
        stdin,
        stdout,
    } = ServerLauncher::new()
        .spawn_stdio()
        .expect("starting exec-server");
    let client = ExecClient::connect_stdio(stdout, stdin, ConnectOptions::new("connect_stdio"))
        .await
        .expect("connect");
    let output = client
        .command("/bin/echo")
        .arg("piped")
        .output()
        .await
        .expect("output");
    assert_eq!(output.stdout, b"piped\n");
    client.close().await.expect("close");
    // Closing the client closed the server's stdin: it exits by itself.
    assert!(process.wait().await.expect("wait").success());
}

#[tokio::test]
async fn spawn_local_reports_a_missing_binary() {
    let options = ConnectOptions::new("missing").server_binary("/no/such/exec-server");
    let error = ExecClient::spawn_local(options)
        .await
        .expect_err("no binary");
    assert!(matches!(error, ClientError::Spawn { .. }), "{error:?}");
}

exec_testkit::transport_tests! {
    handshake_reports_the_server: [stdio, in_process],
    every_typed_request_once: [stdio, in_process],
    raw_and_generic_calls: [stdio, in_process],
    output_and_exit_codes: [stdio, in_process],
    output_streams_in_order_with_consecutive_seqs: [stdio, in_process],
    stdin_through_pipe_stdin: [stdio, in_process],
    output_closes_stdin_while_taking_a_flood_of_output: [stdio, in_process],
    pty_session_with_resize: [stdio, in_process],
    signal_terminate_and_timeout: [stdio, in_process],
    errors_carry_their_kind: [stdio, in_process],
    files_are_written_read_and_listed: [stdio, in_process],
    a_slow_consumer_receives_every_byte_of_10_mb_in_order: [stdio, in_process],
    a_stalled_consumer_is_caught_up_within_the_retention: [stdio, in_process],
    a_stalled_consumer_hears_of_output_the_server_evicted: [stdio, in_process],
}
