//! Tests of [`ProcessTable`] against real processes. They wait on events (the
//! outbox, `process/read` with `waitMs`), never on fixed sleeps; the only
//! polling is of `/proc` for a killed orphan's disappearance, which sends no
//! event to anyone.

use std::collections::BTreeMap;
use std::num::NonZeroU16;
use std::time::Duration;

use exec_protocol::{
    AbsolutePath, Base64Bytes, ErrorKind, ProcessCloseStdinParams, ProcessListParams,
    ProcessReadParams, ProcessResizeParams, ProcessSignalParams, ProcessStartParams,
    ProcessTerminateParams, ProcessWriteParams, Signal, TerminalSize, WriteStatus,
};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::*;

/// Every test holds this for reading; the `kill_all` test holds it for
/// writing, since `kill_all` kills the processes of every table in the process.
static KILL_ALL_EXCLUSION: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// How long a test waits for an event before it fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(20);

fn id(text: &str) -> ProcessId {
    text.parse().expect("a valid process id")
}

fn params(process_id: &str, argv: &[&str]) -> ProcessStartParams {
    ProcessStartParams {
        arg0: None,
        argv: argv.iter().map(|arg| arg.to_string()).collect(),
        cwd: AbsolutePath(String::from("/")),
        env: BTreeMap::from([(
            String::from("PATH"),
            String::from("/usr/local/bin:/usr/bin:/bin"),
        )]),
        inherit_env: None,
        env_policy: None,
        sandbox: None,
        enforce_managed_network: None,
        managed_network: None,
        network_proxy: None,
        pipe_stdin: None,
        process_id: id(process_id),
        size: None,
        timeout_ms: None,
        tty: false,
    }
}

fn pty_params(process_id: &str, argv: &[&str], rows: u16, cols: u16) -> ProcessStartParams {
    ProcessStartParams {
        tty: true,
        size: Some(TerminalSize {
            rows: NonZeroU16::new(rows).expect("rows > 0"),
            cols: NonZeroU16::new(cols).expect("cols > 0"),
        }),
        ..params(process_id, argv)
    }
}

fn read_params(process_id: &str, after_seq: u64, wait_ms: u64) -> ProcessReadParams {
    ProcessReadParams {
        after_seq: Some(after_seq),
        max_bytes: None,
        process_id: id(process_id),
        wait_ms: Some(wait_ms),
    }
}

fn write_params(process_id: &str, bytes: &[u8], write_id: Option<&str>) -> ProcessWriteParams {
    ProcessWriteParams {
        chunk: Base64Bytes(bytes.to_vec()),
        process_id: id(process_id),
        write_id: write_id.map(str::to_owned),
    }
}

/// A notification taken from the outbox: its method and params.
#[derive(Debug, Clone)]
struct Event {
    method: String,
    params: Value,
}

impl Event {
    fn seq(&self) -> u64 {
        self.params["seq"]
            .as_u64()
            .expect("every process notification has a seq")
    }

    fn output(&self) -> Option<(String, Vec<u8>)> {
        (self.method == "process/output").then(|| {
            let stream = self.params["stream"].as_str().expect("stream").to_owned();
            let chunk = base64_simd::STANDARD
                .decode_to_vec(self.params["chunk"].as_str().expect("chunk"))
                .expect("base64");
            (stream, chunk)
        })
    }
}

/// A table with its outbox's receiving end.
struct Harness {
    table: ProcessTable,
    notifications: mpsc::Receiver<crate::WireMessage>,
}

impl Harness {
    fn new() -> Self {
        Self::with(ProcessConfig::default(), 1024)
    }

    fn with(config: ProcessConfig, outbox_capacity: usize) -> Self {
        let (outbox, notifications) = mpsc::channel(outbox_capacity);
        Self {
            table: ProcessTable::new(config, EventSink::new(outbox, crate::rpc::ENCODER)),
            notifications,
        }
    }

    /// Starts and announces, as the connection does once the response is queued.
    async fn start(&self, params: ProcessStartParams) -> u32 {
        let process_id = params.process_id.clone();
        let started = self.table.start(params).await.expect("the process starts");
        assert_eq!(started.process_id, process_id);
        self.table.announce(&process_id);
        started.pid
    }

    async fn next(&mut self) -> Event {
        let text = tokio::time::timeout(PATIENCE, self.notifications.recv())
            .await
            .expect("a notification in time")
            .expect("the outbox is open");
        let crate::WireMessage::Text(text) = text else {
            panic!("a binary frame from a session no connection was granted them for");
        };
        let message: Value = serde_json::from_str(&text).expect("a notification is JSON");
        assert_eq!(message["jsonrpc"], "2.0", "{text}");
        assert!(message.get("id").is_none(), "{text}");
        Event {
            method: message["method"].as_str().expect("method").to_owned(),
            params: message["params"].clone(),
        }
    }

    /// The notifications of `process_id` up to and including its `process/closed`.
    async fn until_closed(&mut self, process_id: &str) -> Vec<Event> {
        let mut events = Vec::new();
        loop {
            let event = self.next().await;
            if event.params["processId"] != process_id {
                continue;
            }
            let closed = event.method == "process/closed";
            events.push(event);
            if closed {
                return events;
            }
        }
    }

    /// Output of `process_id` (all streams) until it contains `needle`.
    async fn output_until(&mut self, process_id: &str, needle: &str) -> String {
        let mut output = Vec::new();
        loop {
            let event = self.next().await;
            assert_ne!(
                event.method,
                "process/closed",
                "closed before {needle:?}: {}",
                String::from_utf8_lossy(&output)
            );
            if event.params["processId"] != process_id {
                continue;
            }
            if let Some((_, chunk)) = event.output() {
                output.extend(chunk);
                let text = String::from_utf8_lossy(&output).into_owned();
                if text.contains(needle) {
                    return text;
                }
            }
        }
    }
}

fn assert_contiguous(events: &[Event]) {
    let seqs: Vec<u64> = events.iter().map(Event::seq).collect();
    let expected: Vec<u64> = (1..=events.len() as u64).collect();
    assert_eq!(seqs, expected);
}

fn stream_output(events: &[Event], stream: &str) -> String {
    let bytes: Vec<u8> = events
        .iter()
        .filter_map(Event::output)
        .filter(|(name, _)| name == stream)
        .flat_map(|(_, chunk)| chunk)
        .collect();
    String::from_utf8(bytes).expect("UTF-8 output")
}

fn exited(events: &[Event]) -> Value {
    let exits: Vec<&Event> = events
        .iter()
        .filter(|event| event.method == "process/exited")
        .collect();
    assert_eq!(exits.len(), 1, "{events:?}");
    let mut params = exits[0].params.clone();
    if let Some(params) = params.as_object_mut() {
        params.remove("seq");
        params.remove("processId");
    }
    params
}

/// Waits until `pid` no longer exists (a killed orphan sends nobody an event).
async fn wait_until_gone(pid: i32) {
    for _ in 0..2000 {
        if procfs::read_stat(pid).is_none() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("process {pid} is still there: {:?}", procfs::read_stat(pid));
}

fn error_kind(error: ServerError) -> Option<ErrorKind> {
    Some(error.kind())
}

#[tokio::test]
async fn pipe_output_has_contiguous_seqs_then_exited_then_closed() {
    let _shared = KILL_ALL_EXCLUSION.read().await;
    let mut harness = Harness::new();
    harness
        .start(params("p", &["sh", "-c", "echo out; echo err >&2; exit 3"]))
        .await;
    let events = harness.until_closed("p").await;
    assert_contiguous(&events);
    assert_eq!(stream_output(&events, "stdout"), "out\n");
    assert_eq!(stream_output(&events, "stderr"), "err\n");
    let methods: Vec<&str> = events.iter().map(|event| event.method.as_str()).collect();
    assert_eq!(
        &methods[methods.len() - 2..],
        ["process/exited", "process/closed"]
    );
    assert_eq!(
        exited(&events),
        json!({"exitCode": 3, "signal": null, "reason": "exited"})
    );
}

#[tokio::test]
async fn a_signal_that_ends_the_process_is_reported() {
    let _shared = KILL_ALL_EXCLUSION.read().await;
    // Also restores SIGINT if the test binary was started in the background.
    init_reaper().expect("subreaper");
    let mut harness = Harness::new();
    harness
        .start(params("self-term", &["sh", "-c", "kill -TERM $$"]))
        .await;
    let events = harness.until_closed("self-term").await;
    assert_eq!(
        exited(&events),
        json!({"exitCode": 143, "signal": "terminate", "reason": "signaled"})
    );

    harness.start(params("interrupted", &["sleep", "60"])).await;
    harness
        .table
        .signal(ProcessSignalParams {
            process_id: id("interrupted"),
            signal: Signal::Interrupt,
        })
        .await
        .expect("signal");
    let events = harness.until_closed("interrupted").await;
    assert_eq!(
        exited(&events),
        json!({"exitCode": 130, "signal": "interrupt", "reason": "signaled"})
    );
    let read = harness
        .table
        .read(read_params("interrupted", 0, 0))
        .await
        .expect("read");
    assert!(read.exited && read.closed);
    assert_eq!(
        (read.exit_code, read.signal),
        (Some(130), Some(Signal::Interrupt))
    );
}

#[tokio::test]
async fn arg0_env_and_cwd_reach_the_child() {
    let _shared = KILL_ALL_EXCLUSION.read().await;
    let mut harness = Harness::new();
    let directory = tempfile::tempdir().expect("temp dir");
    let mut start = params(
        "p",
        &["sh", "-c", "echo \"$0 $GREETING $(pwd) ${HOME:-nohome}\""],
    );
    start.arg0 = Some(String::from("renamed"));
    start
        .env
        .insert(String::from("GREETING"), String::from("hello"));
    start.cwd = AbsolutePath(
        directory
            .path()
            .canonicalize()
            .expect("canonical")
            .display()
            .to_string(),
    );
    harness.start(start).await;
    let events = harness.until_closed("p").await;
    let expected = format!(
        "renamed hello {} nohome\n",
        directory
            .path()
            .canonicalize()
            .expect("canonical")
            .display()
    );
    assert_eq!(stream_output(&events, "stdout"), expected);
}

#[tokio::test]
async fn pty_output_resize_and_sigwinch() {
    let _shared = KILL_ALL_EXCLUSION.read().await;
    let mut harness = Harness::new();
    // The kernel queues SIGWINCH during the resize itself; bash runs the trap
    // at the latest when `read` returns, so the output order is fixed.
    let script = "trap 'echo winch' WINCH; stty size; read line; stty size";
    harness
        .start(pty_params("t", &["bash", "-c", script], 30, 100))
        .await;
    harness.output_until("t", "30 100").await;
    harness
        .table
        .resize(ProcessResizeParams {
            process_id: id("t"),
            rows: NonZeroU16::new(40).expect("rows"),
            cols: NonZeroU16::new(120).expect("cols"),
        })
        .await
        .expect("resize");
    harness
        .table
        .write(write_params("t", b"\n", None))
        .await
        .expect("write");
    let events = harness.until_closed("t").await;
    let output = stream_output(&events, "pty");
    let winch = output.find("winch").expect("the child got SIGWINCH");
    let size = output.find("40 120").expect("the new size");
    assert!(winch < size, "{output:?}");
    assert_eq!(
        exited(&events),
        json!({"exitCode": 0, "signal": null, "reason": "exited"})
    );
}

#[tokio::test]
async fn pty_default_size_write_and_close_stdin() {
    let _shared = KILL_ALL_EXCLUSION.read().await;
    let mut harness = Harness::new();
    let mut start = pty_params("size", &["stty", "size"], 1, 1);
    start.size = None;
    harness.start(start).await;
    let events = harness.until_closed("size").await;
    assert_eq!(stream_output(&events, "pty").trim(), "24 80");

    harness.start(pty_params("cat", &["cat"], 24, 80)).await;
    let written = harness
        .table
        .write(write_params("cat", b"hello\n", None))
        .await
        .expect("write");
    assert_eq!(written.status, WriteStatus::Accepted);
    // The terminal echoes the line, then cat prints it again.
    let output = harness.output_until("cat", "hello\r\nhello\r\n").await;
    assert_eq!(output, "hello\r\nhello\r\n");
    harness
        .table
        .close_stdin(ProcessCloseStdinParams {
            process_id: id("cat"),
        })
        .await
        .expect("close stdin");
    let events = harness.until_closed("cat").await;
    assert_eq!(
        exited(&events),
        json!({"exitCode": 0, "signal": null, "reason": "exited"})
    );
}

/// A PTY child leads a session of its own whose controlling terminal is its
/// PTY (with the child as the foreground group), runs under `arg0` without
/// any helper program, gets exactly the requested environment (nothing such
/// as `SHELL` added), and the server keeps no descriptor of the slave.
#[tokio::test]
async fn a_pty_child_leads_a_session_on_its_terminal_with_arg0_and_its_environment() {
    use std::os::unix::fs::MetadataExt as _;

    let _shared = KILL_ALL_EXCLUSION.read().await;
    let mut harness = Harness::new();
    let mut start = pty_params("session", &["sh", "-c", "echo ready; read line"], 24, 80);
    start.arg0 = Some(String::from("renamed-shell"));
    let pid = harness.start(start).await;
    harness.output_until("session", "ready\r\n").await;

    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("cmdline");
    assert_eq!(
        String::from_utf8_lossy(&cmdline),
        "renamed-shell\0-c\0echo ready; read line\0"
    );
    let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("environ");
    let names: Vec<String> = environ
        .split(|byte| *byte == 0)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let entry = String::from_utf8_lossy(entry);
            entry.split('=').next().unwrap_or_default().to_owned()
        })
        .collect();
    assert_eq!(names, ["EXEC_SERVER_TREE", "PATH"]);

    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let after_name = stat.rsplit_once(')').expect("a stat line").1;
    let fields: Vec<i64> = after_name
        .split_whitespace()
        .skip(2)
        .take(4)
        .map(|field| field.parse().expect("a number"))
        .collect();
    let [group, session, tty_nr, foreground] = fields[..] else {
        panic!("short stat line: {stat}");
    };
    let pid = i64::from(pid);
    assert_eq!((group, session, foreground), (pid, pid, pid), "{stat}");
    let terminal = std::fs::read_link(format!("/proc/{pid}/fd/0")).expect("stdin");
    assert!(terminal.starts_with("/dev/pts"), "{terminal:?}");
    let device = std::fs::metadata(&terminal).expect("the terminal").rdev();
    let major = (tty_nr >> 8) & 0xfff;
    let minor = (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00);
    assert_eq!(
        (major as u64, minor as u64),
        (nix::sys::stat::major(device), nix::sys::stat::minor(device)),
        "the controlling terminal is stdin's"
    );
    let held: Vec<_> = std::fs::read_dir("/proc/self/fd")
        .expect("own descriptors")
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| *target == terminal)
        .collect();
    assert_eq!(
        held,
        Vec::<std::path::PathBuf>::new(),
        "the server holds the slave"
    );

    harness
        .table
        .write(write_params("session", b"\n", None))
        .await
        .expect("write");
    let events = harness.until_closed("session").await;
    assert_eq!(
        exited(&events),
        json!({"exitCode": 0, "signal": null, "reason": "exited"})
    );
}

#[tokio::test]
async fn pipe_stdin_write_dedup_and_close() {
    let _shared = KILL_ALL_EXCLUSION.read().await;
    let mut harness = Harness::new();
    let mut start = params("cat", &["cat"]);
    start.pipe_stdin = Some(true);
    harness.start(start).await;
    for (bytes, write_id) in [
        (b"a", Some("w1")),
        (b"a", Some("w1")),
        (b"b", Some("w2")),
        (b"c", None),
        (b"b", Some("w2")),
    ] {
        let written = harness
            .table
            .write(write_params("cat", bytes, write_id))
            .await
            .expect("write");
        assert_eq!(written.status, WriteStatus::Accepted);
    }
    harness
        .table
        .close_stdin(ProcessCloseStdinParams {
            process_id: id("cat"),
        })
        .await
        .expect("close stdin");
    let after_close = harness
        .table
        .write(write_params("cat", b"d", None))
        .await
        .expect("write");
    assert_eq!(after_close.status, WriteStatus::StdinClosed);
    let events = harness.until_closed("cat").await;
    assert_eq!(stream_output(&events, "stdout"), "abc");
    assert_eq!(
        exited(&events),
        json!({"exitCode": 0, "signal": null, "reason": "exited"})
    );
}

#[tokio::test]
async fn read_cursors_long_poll_and_max_bytes() {
    let _shared = KILL_ALL_EXCLUSION.read().await;
    let harness = Harness::new();
    let mut start = params("r", &["sh", "-c", "echo one; read x; echo two"]);
    start.pipe_stdin = Some(true);
    harness.start(start).await;

    let first = harness
        .table
        .read(read_params("r", 0, PATIENCE.as_millis() as u64))
        .await
        .expect("read");
    assert_eq!(first.chunks.len(), 1);
    assert_eq!(
        (first.chunks[0].seq, first.chunks[0].chunk.as_bytes()),
        (1, &b"one\n"[..])
    );
    assert_eq!(
        (
            first.next_seq,
            first.exited,
            first.closed,
            first.dropped_bytes
        ),
        (2, false, false, 0)
    );

    // A long poll that only output can end in time: the write wakes it.
    let table = harness.table.clone();
    let long_poll = tokio::spawn(async move { table.read(read_params("r", 1, 600_000)).await });
    let written = harness
        .table
        .write(write_params("r", b"go\n", None))
        .await
        .expect("write");
    assert_eq!(written.status, WriteStatus::Accepted);
    let second = tokio::time::timeout(PATIENCE, long_poll)
        .await
        .expect("woken")
        .expect("joined")
        .expect("read");
    assert_eq!(second.chunks.len(), 1);
    assert_eq!(
        (second.chunks[0].seq, second.chunks[0].chunk.as_bytes()),
        (2, &b"two\n"[..])
    );

    let mut cursor = second.next_seq - 1;
    let last = loop {
        let read = harness
            .table
            .read(read_params("r", cursor, PATIENCE.as_millis() as u64))
            .await
            .expect("read");
        assert!(read.chunks.is_empty());
        cursor = read.next_seq - 1;
        if read.closed {
            break read;
        }
    };
    assert_eq!(
        (last.next_seq, last.exited, last.exit_code),
        (5, true, Some(0))
    );

    let budgeted = harness
        .table
        .read(ProcessReadParams {
            max_bytes: Some(1),
            ..read_params("r", 0, 0)
        })
        .await
        .expect("read");
    assert_eq!(
        budgeted
            .chunks
            .iter()
            .map(|chunk| chunk.seq)
            .collect::<Vec<_>>(),
        [1]
    );
    assert_eq!((budgeted.next_seq, budgeted.closed), (2, false));
}

#[tokio::test]
async fn dropped_bytes_after_eviction() {
    let _shared = KILL_ALL_EXCLUSION.read().await;
    let harness = Harness::with(
        ProcessConfig {
            retained_output_bytes: 8,
            ..ProcessConfig::default()
        },
        1024,
    );
    let mut start = params(
        "d",
        &["sh", "-c", "printf 12345678; read x; printf abcdefgh"],
    );
    start.pipe_stdin = Some(true);
    harness.start(start).await;
    let first = harness
        .table
        .read(read_params("d", 0, PATIENCE.as_millis() as u64))
        .await
        .expect("read");
    assert_eq!(first.chunks.len(), 1);
    assert_eq!(first.chunks[0].chunk.as_bytes(), b"12345678");
    harness
        .table
        .write(write_params("d", b"\n", None))
        .await
        .expect("write");
    let second = harness
        .table
        .read(read_params("d", 1, PATIENCE.as_millis() as u64))
        .await
        .expect("read");
    assert_eq!(second.chunks[0].chunk.as_bytes(), b"abcdefgh");
    assert_eq!(second.dropped_bytes, 0);
    let from_start = harness
        .table
        .read(read_params("d", 0, 0))
        .await
        .expect("read");
    assert_eq!(
        from_start
            .chunks
            .iter()
            .map(|chunk| chunk.seq)
            .collect::<Vec<_>>(),
        [2]
    );
    assert_eq!(from_start.dropped_bytes, 8);
}

#[tokio::test]
async fn timeout_kills_with_reason_timed_out() {
    let _shared = KILL_ALL_EXCLUSION.read().await;
    let mut harness = Harness::new();
    let mut start = params("slow", &["sleep", "60"]);
    start.timeout_ms = Some(50);
    harness.start(start).await;
    let events = harness.until_closed("slow").await;
    assert_eq!(
        exited(&events),
        json!({"exitCode": 137, "signal": "kill", "reason": "timedOut"})
    );
}

#[tokio::test]
async fn terminate_kills_a_setsid_grandchild() {
    let _shared = KILL_ALL_EXCLUSION.read().await;
    init_reaper().expect("subreaper");
    let mut harness = Harness::new();
    harness
        .start(params(
            "tree",
            &["sh", "-c", "setsid sleep 60 & echo $!; wait"],
        ))
        .await;
    let output = harness.output_until("tree", "\n").await;
    let grandchild: i32 = output.trim().parse().expect("the grandchild's pid");
    assert!(
        procfs::read_stat(grandchild).is_some(),
        "the grandchild runs"
    );

    let terminated = harness
        .table
        .terminate(ProcessTerminateParams {
            process_id: id("tree"),
        })
        .await
        .expect("terminate");
    assert!(terminated.running);
    let events = harness.until_closed("tree").await;
    assert_eq!(
        exited(&events),
        json!({"exitCode": 137, "signal": "kill", "reason": "killed"})
    );
    wait_until_gone(grandchild).await;

    let again = harness
        .table
        .terminate(ProcessTerminateParams {
            process_id: id("tree"),
        })
        .await
        .expect("terminate");
    assert!(!again.running);
}

#[tokio::test]
async fn terminate_kills_a_double_forked_orphan() {
    let _shared = KILL_ALL_EXCLUSION.read().await;
    init_reaper().expect("subreaper");
    let mut harness = Harness::new();
    // The subshell starts the daemon and exits, so the daemon loses its
    // parent and leaves the group and session: only the marker finds it.
    let script = "(setsid sleep 60 >/dev/null 2>&1 & echo $!); exec sleep 60";
    harness.start(params("daemon", &["sh", "-c", script])).await;
    let output = harness.output_until("daemon", "\n").await;
    let orphan: i32 = output.trim().parse().expect("the orphan's pid");
    assert!(procfs::read_stat(orphan).is_some(), "the orphan runs");

    let terminated = harness
        .table
        .terminate(ProcessTerminateParams {
            process_id: id("daemon"),
        })
        .await
        .expect("terminate");
    assert!(terminated.running);
    let events = harness.until_closed("daemon").await;
    assert_eq!(exited(&events)["reason"], "killed");
    wait_until_gone(orphan).await;
}

#[tokio::test]
async fn shutdown_kills_running_processes_and_leftovers_of_exited_ones() {
    let _shared = KILL_ALL_EXCLUSION.read().await;
    init_reaper().expect("subreaper");
    let mut harness = Harness::new();
    let sleeper = harness.start(params("sleeper", &["sleep", "60"])).await;
    let terminal = harness
        .start(pty_params("terminal", &["cat"], 24, 80))
        .await;
    // This process exits at once but leaves a daemon holding its stdout.
    harness
        .start(params(
            "leaver",
            &["sh", "-c", "(setsid sleep 60 & echo $!)"],
        ))
        .await;
    let output = harness.output_until("leaver", "\n").await;
    let daemon: i32 = output.trim().parse().expect("the daemon's pid");

    harness.table.shutdown().await;
    for pid in [sleeper as i32, terminal as i32] {
        assert_eq!(
            procfs::read_stat(pid),
            None,
            "reaped by the time shutdown returns"
        );
    }
    wait_until_gone(daemon).await;
    let listed = harness
        .table
        .list(ProcessListParams {})
        .await
        .expect("list");
    assert_eq!(listed.processes, vec![]);
    let refused = harness
        .table
        .start(params("late", &["true"]))
        .await
        .err()
        .and_then(error_kind);
    assert_eq!(refused, Some(ErrorKind::Io));
}

#[tokio::test]
async fn back_pressure_holds_output_until_the_outbox_drains() {
    let _shared = KILL_ALL_EXCLUSION.read().await;
    const TOTAL: usize = 4_000_000;
    let mut harness = Harness::with(ProcessConfig::default(), 1);
    harness
        .start(params(
            "flood",
            &["head", "-c", &TOTAL.to_string(), "/dev/zero"],
        ))
        .await;

    // Read until the output stops growing: a quiet long poll means the child
    // is blocked on its full pipe, far from done.
    let mut cursor = 0;
    let mut seen = 0;
    loop {
        let read = harness
            .table
            .read(read_params("flood", cursor, 500))
            .await
            .expect("read");
        if read.chunks.is_empty() {
            assert!(
                !read.exited,
                "the child finished although nobody took its output"
            );
            break;
        }
        seen += read
            .chunks
            .iter()
            .map(|chunk| chunk.chunk.len())
            .sum::<usize>();
        cursor = read.next_seq - 1;
    }
    assert!(
        seen < TOTAL / 4,
        "{seen} bytes were read while the outbox was full"
    );

    let events = harness.until_closed("flood").await;
    assert_contiguous(&events);
    assert_eq!(stream_output(&events, "stdout").len(), TOTAL);
    assert_eq!(
        exited(&events),
        json!({"exitCode": 0, "signal": null, "reason": "exited"})
    );
}

#[tokio::test]
async fn notifications_wait_for_announce() {
    let _shared = KILL_ALL_EXCLUSION.read().await;
    let mut harness = Harness::new();
    let started = harness
        .table
        .start(params("quiet", &["echo", "hi"]))
        .await
        .expect("start");
    assert_eq!(started.process_id, id("quiet"));
    // Without the announce the process still runs and is readable...
    let mut cursor = 0;
    let read = loop {
        let read = harness
            .table
            .read(read_params("quiet", cursor, PATIENCE.as_millis() as u64))
            .await
            .expect("read");
        cursor = read.next_seq - 1;
        if read.closed {
            break read;
        }
    };
    assert_eq!(read.exit_code, Some(0));
    // ...but sends nothing.
    assert!(matches!(
        harness.notifications.try_recv(),
        Err(mpsc::error::TryRecvError::Empty)
    ));

    harness.table.announce(&id("quiet"));
    let events = harness.until_closed("quiet").await;
    assert_contiguous(&events);
    assert_eq!(stream_output(&events, "stdout"), "hi\n");
}

#[tokio::test]
async fn limits_and_duplicates() {
    let _shared = KILL_ALL_EXCLUSION.read().await;
    let mut harness = Harness::with(
        ProcessConfig {
            max_processes: 1,
            ..ProcessConfig::default()
        },
        1024,
    );
    harness.start(params("one", &["sleep", "60"])).await;
    let duplicate = harness
        .table
        .start(params("one", &["true"]))
        .await
        .err()
        .and_then(error_kind);
    assert_eq!(duplicate, Some(ErrorKind::ProcessExists));
    let second = harness
        .table
        .start(params("two", &["true"]))
        .await
        .err()
        .and_then(error_kind);
    assert_eq!(second, Some(ErrorKind::LimitExceeded));

    let listed = harness
        .table
        .list(ProcessListParams {})
        .await
        .expect("list");
    assert_eq!(listed.processes.len(), 1);
    assert_eq!(
        (listed.processes[0].running, listed.processes[0].tty),
        (true, false)
    );
    assert_eq!(listed.processes[0].argv, ["sleep", "60"]);

    harness
        .table
        .terminate(ProcessTerminateParams {
            process_id: id("one"),
        })
        .await
        .expect("terminate");
    harness.until_closed("one").await;
    let listed = harness
        .table
        .list(ProcessListParams {})
        .await
        .expect("list");
    assert_eq!(
        (listed.processes[0].running, listed.processes[0].signal),
        (false, Some(Signal::Kill))
    );
}

#[tokio::test]
async fn unknown_processes_and_wrong_kinds() {
    let _shared = KILL_ALL_EXCLUSION.read().await;
    let harness = Harness::new();
    let table = &harness.table;
    let unknown = id("nope");
    assert_eq!(
        table
            .read(read_params("nope", 0, 0))
            .await
            .err()
            .and_then(error_kind),
        Some(ErrorKind::UnknownProcess)
    );
    assert_eq!(
        table
            .close_stdin(ProcessCloseStdinParams {
                process_id: unknown.clone()
            })
            .await
            .err()
            .and_then(error_kind),
        Some(ErrorKind::UnknownProcess)
    );
    let size = NonZeroU16::new(10).expect("size");
    assert_eq!(
        table
            .resize(ProcessResizeParams {
                process_id: unknown.clone(),
                rows: size,
                cols: size
            })
            .await
            .err()
            .and_then(error_kind),
        Some(ErrorKind::UnknownProcess)
    );
    assert_eq!(
        table
            .signal(ProcessSignalParams {
                process_id: unknown.clone(),
                signal: Signal::Kill
            })
            .await
            .err()
            .and_then(error_kind),
        Some(ErrorKind::UnknownProcess)
    );
    assert_eq!(
        table
            .write(write_params("nope", b"x", None))
            .await
            .expect("write")
            .status,
        WriteStatus::UnknownProcess
    );
    assert!(
        !table
            .terminate(ProcessTerminateParams {
                process_id: unknown
            })
            .await
            .expect("terminate")
            .running
    );

    harness.start(params("pipe", &["sleep", "60"])).await;
    assert_eq!(
        table
            .resize(ProcessResizeParams {
                process_id: id("pipe"),
                rows: size,
                cols: size
            })
            .await
            .err()
            .and_then(error_kind),
        Some(ErrorKind::NotPty)
    );
    assert_eq!(
        table
            .close_stdin(ProcessCloseStdinParams {
                process_id: id("pipe")
            })
            .await
            .err()
            .and_then(error_kind),
        Some(ErrorKind::StdinClosed)
    );
    assert_eq!(
        table
            .write(write_params("pipe", b"x", None))
            .await
            .expect("write")
            .status,
        WriteStatus::StdinClosed
    );
    table
        .terminate(ProcessTerminateParams {
            process_id: id("pipe"),
        })
        .await
        .expect("terminate");

    let missing = table
        .start(params("missing", &["no-such-program-anywhere"]))
        .await
        .err()
        .and_then(error_kind);
    assert_eq!(missing, Some(ErrorKind::SpawnFailed));
    let mut relative = params("relative", &["true"]);
    relative.cwd = AbsolutePath(String::from("relative/dir"));
    assert_eq!(
        table.start(relative).await.err().and_then(error_kind),
        Some(ErrorKind::InvalidPath)
    );
}

#[tokio::test]
async fn kill_all_kills_every_table() {
    let _exclusive = KILL_ALL_EXCLUSION.write().await;
    let mut first = Harness::new();
    let mut second = Harness::new();
    first.start(params("a", &["sleep", "60"])).await;
    second
        .start(pty_params("b", &["sleep", "60"], 24, 80))
        .await;
    kill_all().await;
    assert_eq!(exited(&first.until_closed("a").await)["reason"], "killed");
    assert_eq!(exited(&second.until_closed("b").await)["reason"], "killed");
}

/// The live processes carrying `table`'s tree marker.
fn live_marked(table: &ProcessTable) -> Vec<i32> {
    let prefix = table.inner.marker_prefix();
    procfs::snapshot()
        .into_iter()
        .filter(|stat| !stat.is_dead())
        .filter(|stat| {
            procfs::tree_marker(stat.pid).is_some_and(|marker| marker.starts_with(&prefix))
        })
        .map(|stat| stat.pid)
        .collect()
}

#[tokio::test]
async fn of_two_concurrent_starts_with_one_id_one_gets_process_exists() {
    let _shared = KILL_ALL_EXCLUSION.read().await;
    let harness = Harness::new();
    let (first, second) = tokio::join!(
        harness.table.start(params("twin", &["sleep", "60"])),
        harness.table.start(params("twin", &["sleep", "60"])),
    );
    let kinds = [first, second].map(|started| started.err().and_then(error_kind));
    // The first start reserved the id before its first await.
    assert_eq!(kinds, [None, Some(ErrorKind::ProcessExists)]);
    let listed = harness
        .table
        .list(ProcessListParams {})
        .await
        .expect("list");
    assert_eq!(listed.processes.len(), 1);
    harness.table.shutdown().await;
}

#[tokio::test]
async fn the_limit_counts_starts_in_progress() {
    let _shared = KILL_ALL_EXCLUSION.read().await;
    let harness = Harness::with(
        ProcessConfig {
            max_processes: 1,
            ..ProcessConfig::default()
        },
        1024,
    );
    let (first, second) = tokio::join!(
        harness.table.start(params("first", &["sleep", "60"])),
        harness.table.start(params("second", &["sleep", "60"])),
    );
    let kinds = [first, second].map(|started| started.err().and_then(error_kind));
    assert_eq!(kinds, [None, Some(ErrorKind::LimitExceeded)]);
    harness.table.shutdown().await;
}

#[tokio::test]
async fn a_failed_start_frees_its_id_and_its_place() {
    let _shared = KILL_ALL_EXCLUSION.read().await;
    let mut harness = Harness::with(
        ProcessConfig {
            max_processes: 1,
            ..ProcessConfig::default()
        },
        1024,
    );
    // Fails in the spawn, after the reservation and the PTY's opening: a
    // program path (with a `/`) is not looked for before the exec.
    assert_eq!(
        harness
            .table
            .start(pty_params("again", &["/no/such/program"], 24, 80))
            .await
            .err()
            .and_then(error_kind),
        Some(ErrorKind::SpawnFailed)
    );
    // Fails in the request's checks, with the reservation already taken.
    assert_eq!(
        harness
            .table
            .start(params("again", &["no-such-program-anywhere"]))
            .await
            .err()
            .and_then(error_kind),
        Some(ErrorKind::SpawnFailed)
    );
    // A reservation dropped before its start ran gives the id back too.
    let reservation = Reservation::take(&harness.table.inner, &id("again"));
    assert!(reservation.is_ok());
    assert_eq!(
        Reservation::take(&harness.table.inner, &id("again"))
            .err()
            .and_then(error_kind),
        Some(ErrorKind::ProcessExists)
    );
    drop(reservation);

    harness.start(params("again", &["echo", "started"])).await;
    let events = harness.until_closed("again").await;
    assert_eq!(stream_output(&events, "stdout"), "started\n");
}

#[tokio::test]
async fn a_start_that_loses_the_race_with_shutdown_fails_and_leaves_no_process() {
    let _shared = KILL_ALL_EXCLUSION.read().await;
    init_reaper().expect("subreaper");
    let harness = Harness::new();
    let table = harness.table.clone();
    // The start reserved its id; the table then shuts down before the spawn.
    let reservation = Reservation::take(&table.inner, &id("racer"));
    let shutdown = tokio::spawn({
        let table = table.clone();
        async move { table.shutdown().await }
    });
    let mut closed = table.inner.closed.subscribe();
    closed
        .wait_for(|closed| *closed)
        .await
        .expect("the table is alive");
    assert!(
        !shutdown.is_finished(),
        "shutdown waits for the start in progress"
    );

    let started = finish_start(&table, params("racer", &["sleep", "60"]), reservation).await;
    assert_eq!(started.err().and_then(error_kind), Some(ErrorKind::Io));
    tokio::time::timeout(PATIENCE, shutdown)
        .await
        .expect("shutdown in time")
        .expect("shutdown ran");
    assert_eq!(live_marked(&table), Vec::<i32>::new());
    let listed = table.list(ProcessListParams {}).await.expect("list");
    assert_eq!(listed.processes, vec![]);
}

#[tokio::test]
async fn a_request_pipelined_behind_its_start_finds_the_process() {
    let _shared = KILL_ALL_EXCLUSION.read().await;
    let harness = Harness::new();
    let table = harness.table.clone();
    // The start has reserved its id but not spawned yet.
    let reservation = Reservation::take(&table.inner, &id("pending"));
    let terminate = tokio::spawn({
        let table = table.clone();
        async move {
            table
                .terminate(ProcessTerminateParams {
                    process_id: id("pending"),
                })
                .await
        }
    });
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(
        !terminate.is_finished(),
        "terminate waits for the start in progress"
    );
    let started = finish_start(&table, params("pending", &["sleep", "60"]), reservation)
        .await
        .expect("the process starts");
    let terminated = tokio::time::timeout(PATIENCE, terminate)
        .await
        .expect("terminate in time")
        .expect("terminate ran")
        .expect("terminate answers");
    assert!(terminated.running, "terminate found the started process");
    assert!(started.pid > 0);

    // A start that fails gives the waiting request its answer too.
    let reservation = Reservation::take(&table.inner, &id("failing"));
    let read = tokio::spawn({
        let table = table.clone();
        async move {
            table
                .read(ProcessReadParams {
                    after_seq: None,
                    max_bytes: None,
                    process_id: id("failing"),
                    wait_ms: None,
                })
                .await
        }
    });
    drop(reservation);
    let read = tokio::time::timeout(PATIENCE, read)
        .await
        .expect("read in time")
        .expect("read ran");
    assert_eq!(
        read.err().and_then(error_kind),
        Some(ErrorKind::UnknownProcess)
    );
}

/// Runs the rest of a start whose id `reservation` holds, as
/// [`ProcessTable::start`] does after reserving.
async fn finish_start(
    table: &ProcessTable,
    params: ProcessStartParams,
    reservation: Result<Reservation, ServerError>,
) -> Result<ProcessStartResponse, ServerError> {
    let table = table.clone();
    tokio::task::spawn_blocking(move || table.start_blocking(params, reservation))
        .await
        .expect("the start ran")
        .and_then(Started::run)
}

/// Two writes of 1 MiB each to a PTY child that reads slowly (its terminal
/// takes a few KiB at a time): each is continued after partial writes until
/// the terminal took all of it, and the child reads them whole and in the
/// order they were sent.
#[tokio::test]
async fn large_pty_writes_arrive_whole_and_in_order() {
    use sha2::Digest as _;
    let _shared = KILL_ALL_EXCLUSION.read().await;
    const EACH: usize = 1024 * 1024;
    let mut harness = Harness::new();
    let script = format!(
        "stty raw -echo && echo ready && head -c {} | sha256sum",
        2 * EACH
    );
    harness
        .start(pty_params("sink", &["sh", "-c", &script], 24, 80))
        .await;
    harness.output_until("sink", "ready").await;
    let first: Vec<u8> = (0..EACH).map(|index| b'a' + (index % 26) as u8).collect();
    let second: Vec<u8> = (0..EACH).map(|index| b'A' + (index % 26) as u8).collect();
    let expected = sha2::Sha256::new()
        .chain_update(&first)
        .chain_update(&second)
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect::<String>();
    // Polled in this order, the first write takes stdin's lock first.
    let (written_first, written_second) = tokio::join!(
        harness.table.write(write_params("sink", &first, None)),
        harness.table.write(write_params("sink", &second, None)),
    );
    assert_eq!(
        (
            written_first.expect("write").status,
            written_second.expect("write").status
        ),
        (WriteStatus::Accepted, WriteStatus::Accepted)
    );
    let events = harness.until_closed("sink").await;
    let output = stream_output(&events, "pty");
    assert!(output.contains(&expected), "{output:?} lacks {expected}");
    assert_eq!(
        exited(&events),
        json!({"exitCode": 0, "signal": null, "reason": "exited"})
    );
}

#[test]
fn a_tree_does_not_lend_its_cgroup_while_a_kill_of_trees_runs() {
    let path = std::path::Path::new("/sys/fs/cgroup/exec-server-test-none/t1/p1");
    let tree = tree::Tree::new(1, String::from("marker/"), Some(path.to_path_buf()));
    let kill = tree::KillInProgress::begin();
    // The kill may have read the path: lending now could let it reach the
    // cgroup's next process.
    assert!(!tree.lend_cgroup());
    assert_eq!(tree.cgroup(), Some(path));
    drop(kill);
    // A tree without a cgroup has none to lend (kills by other tests may run
    // meanwhile, so a lending that succeeds is checked by the integration
    // tests of `cgroup_spares.rs` instead).
    let without = tree::Tree::new(1, String::from("marker/"), None);
    assert!(!without.lend_cgroup());
}
