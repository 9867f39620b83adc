//! `exec-server exec`, run as the real binary: exit statuses, byte-exact
//! output, stdin, environment and working directory, `--url` with and
//! without a token and through a proxy that cuts the connection, error
//! reporting, and `-t`, Ctrl-C and window resizes driven through a real
//! terminal (a PTY this test opens).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use exec_testkit::{CutProxy, ServerLauncher, WsServer, server_binary};
use portable_pty::{CommandBuilder, MasterPty, PtySize, native_pty_system};
use pretty_assertions::assert_eq;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

/// How long one run, or one expected piece of terminal output, may take.
const PATIENCE: Duration = Duration::from_secs(30);

/// `exec-server exec ARGS...`, with no token in its environment.
fn exec(args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(server_binary());
    command
        .arg("exec")
        .args(args)
        .env_remove("EXEC_SERVER_TOKEN")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

/// What a run of `exec` gave.
#[derive(Debug)]
struct Run {
    status: i32,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// Runs `command` to its end, feeding it `stdin` when given.
async fn run(mut command: tokio::process::Command, stdin: Option<&[u8]>) -> Run {
    if stdin.is_some() {
        command.stdin(Stdio::piped());
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("exec-server starts");
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        pipe.write_all(bytes).await.expect("writing stdin");
        // Dropping the pipe is the EOF.
    }
    let output = tokio::time::timeout(PATIENCE, child.wait_with_output())
        .await
        .expect("exec ends in time")
        .expect("waiting for exec");
    Run {
        status: output.status.code().expect("an exit code, not a signal"),
        stdout: output.stdout,
        stderr: output.stderr,
    }
}

/// Asserts that `run` failed with 255, nothing on stdout and exactly one
/// `exec-server: ` line on stderr; returns that line.
fn one_error_line(run: &Run) -> &str {
    assert_eq!(run.status, 255, "{run:?}");
    assert_eq!(run.stdout, b"", "{run:?}");
    let stderr = std::str::from_utf8(&run.stderr).expect("UTF-8 on stderr");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr: {run:?}");
    assert!(lines[0].starts_with("exec-server: "), "{run:?}");
    lines[0]
}

#[tokio::test]
async fn the_exit_code_and_both_streams_come_through() {
    let run = run(
        exec(&["--", "sh", "-c", "echo out; echo err >&2; exit 7"]),
        None,
    )
    .await;
    assert_eq!(
        (run.status, run.stdout.as_slice(), run.stderr.as_slice()),
        (7, &b"out\n"[..], &b"err\n"[..])
    );
}

#[tokio::test]
async fn output_is_byte_exact() {
    let script = r"printf 'a\000b\377c\n'; printf '\377\000' >&2";
    let run1 = run(exec(&["--", "sh", "-c", script]), None).await;
    assert_eq!(
        (run1.status, run1.stdout.as_slice(), run1.stderr.as_slice()),
        (0, &b"a\x00b\xffc\n"[..], &b"\xff\x00"[..])
    );

    // Enough random bytes to span many chunks.
    let scratch = tempfile::tempdir().expect("a temp dir");
    let file = scratch.path().join("random");
    let random: Vec<u8> = (0..3_000_000u32)
        .map(|index| (index.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&file, &random).expect("writing the file");
    let path = file.display().to_string();
    let run2 = run(exec(&["--", "cat", &path]), None).await;
    assert_eq!(run2.status, 0);
    assert!(run2.stdout == random, "the 3 MB differ");
}

#[tokio::test]
async fn a_death_by_signal_exits_128_plus_its_number() {
    let terminated = run(exec(&["--", "sh", "-c", "kill -TERM $$"]), None).await;
    assert_eq!(terminated.status, 143, "{terminated:?}");
    let killed = run(exec(&["--", "sh", "-c", "kill -KILL $$"]), None).await;
    assert_eq!(killed.status, 137, "{killed:?}");
    // SIGSEGV (11) has no protocol name: the server's `exitCode`, 128 + 11,
    // still says which signal it was.
    let segfault = run(exec(&["--", "sh", "-c", "kill -SEGV $$"]), None).await;
    assert_eq!(segfault.status, 139, "{segfault:?}");
}

/// `exec` does not wait for its local server to exit, but what the process
/// left running is killed before `exec` exits.
#[tokio::test]
async fn what_the_process_leaves_is_gone_when_exec_exits() {
    use tokio::io::AsyncReadExt as _;

    let mut child = exec(&["--", "sh", "-c", "sleep 300 >/dev/null 2>&1 & echo $!"])
        .stdout(Stdio::piped())
        // Not piped: the server shares it and may hold it past `exec`'s exit.
        .stderr(Stdio::null())
        .spawn()
        .expect("exec-server starts");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let status = tokio::time::timeout(PATIENCE, child.wait())
        .await
        .expect("exec ends in time")
        .expect("waiting for exec");
    assert_eq!(status.code(), Some(0));
    let mut text = String::new();
    stdout
        .read_to_string(&mut text)
        .await
        .expect("reading stdout");
    let background: i64 = text.trim().parse().expect("the background pid");
    assert!(
        !exec_testkit::process_alive(background),
        "the background process outlived exec"
    );
}

#[tokio::test]
async fn a_killed_exec_leaves_no_process_behind() {
    use rustix::process::{Pid, PidfdFlags, pidfd_open};
    use tokio::io::AsyncBufReadExt as _;
    use tokio::io::unix::AsyncFd;

    // The local server runs inside `exec`: when `exec` is killed, its
    // guardian kills what the process left (here a background `sleep`, and
    // the process itself, which would otherwise run on).
    let mut child = exec(&[
        "--",
        "sh",
        "-c",
        "sleep 300 >/dev/null 2>&1 & echo $!; echo $$; exec sleep 300",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .expect("exec-server starts");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let mut pids = Vec::new();
    for _ in 0..2 {
        let line = tokio::time::timeout(PATIENCE, lines.next_line())
            .await
            .expect("the pids in time")
            .expect("reading stdout")
            .expect("a pid line");
        let pid: i32 = line.trim().parse().expect("a pid");
        pids.push(
            pidfd_open(
                Pid::from_raw(pid).expect("a positive pid"),
                PidfdFlags::empty(),
            )
            .expect("pidfd_open"),
        );
    }
    child.start_kill().expect("SIGKILL to exec");
    child.wait().await.expect("waiting for exec");
    for pidfd in pids {
        // A pidfd is readable once its process has ended.
        // SAFETY: `register` needs the descriptor to stay open and the same
        // for the `AsyncFd`'s life: the `OwnedFd` moves into it and is
        // dropped with it, and nothing else holds or closes it.
        #[allow(unsafe_code)]
        let pidfd = unsafe { AsyncFd::register(pidfd) }.expect("registering the pidfd");
        let ended = tokio::time::timeout(PATIENCE, pidfd.readable()).await;
        assert!(ended.is_ok(), "a process outlived the killed exec");
    }
}

#[tokio::test]
async fn dash_i_forwards_stdin_until_eof() {
    let input = b"line one\nline two \x00\xff without newline";
    let run1 = run(exec(&["-i", "--", "cat"]), Some(input)).await;
    assert_eq!((run1.status, run1.stdout.as_slice()), (0, &input[..]));
    // Without -i the process's stdin is empty, whatever ours holds.
    let run2 = run(exec(&["--", "cat"]), Some(b"not forwarded")).await;
    assert_eq!((run2.status, run2.stdout.as_slice()), (0, &b""[..]));
    // The program may also follow the options without `--`.
    let run3 = run(exec(&["-i", "wc", "-c"]), Some(b"12345")).await;
    assert_eq!(String::from_utf8_lossy(&run3.stdout).trim(), "5");
}

#[tokio::test]
async fn the_environment_and_the_working_directory_reach_the_process() {
    let scratch = tempfile::tempdir().expect("a temp dir");
    let local_dir = scratch.path().join("local");
    let remote_dir = scratch.path().join("remote");
    std::fs::create_dir(&local_dir).expect("mkdir");
    std::fs::create_dir(&remote_dir).expect("mkdir");
    let script = "pwd; env";
    let with_env = |command: &mut tokio::process::Command| {
        command
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", "/home/somebody")
            .env("LANG", "C.UTF-8")
            .env("TERM", "xterm-local")
            .env("NOT_FORWARDED", "1")
            .current_dir(&local_dir);
    };

    let variables = ["-e", "FOO=bar", "-e", "TERM=overridden", "-e", "EMPTY="];
    let mut command = exec(&[&variables[..], &["--", "sh", "-c", script]].concat());
    with_env(&mut command);
    let run1 = run(command, None).await;
    assert_eq!(run1.status, 0, "{run1:?}");
    let text = String::from_utf8(run1.stdout).expect("UTF-8");
    let (cwd, env) = text.split_once('\n').expect("pwd's line");
    assert_eq!(cwd, local_dir.display().to_string());
    let env: BTreeMap<&str, &str> = env
        .lines()
        .filter_map(|line| line.split_once('='))
        // Set by the shell and by the server's tree marker.
        .filter(|(key, _)| !matches!(*key, "PWD" | "EXEC_SERVER_TREE"))
        .collect();
    assert_eq!(
        env,
        BTreeMap::from([
            ("EMPTY", ""),
            ("FOO", "bar"),
            ("HOME", "/home/somebody"),
            ("LANG", "C.UTF-8"),
            ("PATH", "/usr/local/bin:/usr/bin:/bin"),
            ("TERM", "overridden"),
        ])
    );

    let remote = remote_dir.display().to_string();
    let mut command = exec(&["--cwd", &remote, "--", "pwd"]);
    with_env(&mut command);
    let run2 = run(command, None).await;
    assert_eq!(String::from_utf8_lossy(&run2.stdout), format!("{remote}\n"));
}

#[tokio::test]
async fn errors_exit_255_with_one_line() {
    // Nothing listens on a port that was just freed.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    drop(listener);
    let url = format!("ws://127.0.0.1:{port}");
    let refused = run(exec(&["--url", &url, "--", "true"]), None).await;
    let line = one_error_line(&refused);
    assert!(line.contains(&url), "{line}");

    let missing = run(exec(&["--", "/no/such/program"]), None).await;
    let line = one_error_line(&missing);
    assert!(line.contains("/no/such/program"), "{line}");
    assert!(line.contains("spawnFailed"), "{line}");

    let relative = run(exec(&["--cwd", "relative", "--", "true"]), None).await;
    assert!(one_error_line(&relative).contains("invalidPath"));

    let no_terminal = run(exec(&["-t", "--", "true"]), None).await;
    assert_eq!(
        one_error_line(&no_terminal),
        "exec-server: -t needs a terminal on stdin"
    );
}

/// `exec-server serve --listen ws://127.0.0.1:0`, with `token` in its
/// `EXEC_SERVER_TOKEN` when given.
async fn start_ws_server(token: Option<&str>) -> WsServer {
    let launcher = match token {
        Some(token) => ServerLauncher::new().token(token),
        None => ServerLauncher::new(),
    };
    launcher
        .start_websocket()
        .await
        .expect("the server listens")
}

#[tokio::test]
async fn dash_dash_url_runs_on_a_websocket_server() {
    let server = start_ws_server(None).await;
    let run = run(
        exec(&[
            "--url",
            &server.url,
            "--",
            "sh",
            "-c",
            "echo remote; echo oops >&2; exit 4",
        ]),
        None,
    )
    .await;
    assert_eq!(
        (run.status, run.stdout.as_slice(), run.stderr.as_slice()),
        (4, &b"remote\n"[..], &b"oops\n"[..])
    );
}

/// SIGTERM to `exec --url` kills the remote tree now, though the server
/// keeps a session whose connection went (for its TTL, 30 s by default).
#[tokio::test]
async fn sigterm_to_exec_dash_dash_url_kills_the_remote_process() {
    use tokio::io::AsyncBufReadExt as _;

    let server = start_ws_server(None).await;
    let mut child = exec(&[
        "--url",
        &server.url,
        "--",
        "sh",
        "-c",
        "echo $$; exec sleep 60",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .expect("exec-server starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let remote: i64 = tokio::time::timeout(PATIENCE, lines.next_line())
        .await
        .expect("the remote pid in time")
        .expect("reading stdout")
        .and_then(|line| line.trim().parse().ok())
        .expect("the remote pid");
    assert!(exec_testkit::process_alive(remote));
    let pid = child.id().expect("exec's pid") as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("signal exec");
    let status = tokio::time::timeout(PATIENCE, child.wait())
        .await
        .expect("exec ends in time")
        .expect("waiting for exec");
    assert_eq!(status.code(), Some(143));
    // Gone well within the session TTL: `exec` terminated it.
    let started = Instant::now();
    assert!(
        exec_testkit::wait_gone(remote).await,
        "the remote process lives on"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn dash_dash_url_sends_the_token_from_the_environment() {
    let server = start_ws_server(Some("s3cret-token")).await;
    let mut with_token = exec(&["--url", &server.url, "-i", "--", "cat"]);
    with_token.env("EXEC_SERVER_TOKEN", "s3cret-token");
    let accepted = run(with_token, Some(b"authorized\n")).await;
    assert_eq!(
        (accepted.status, accepted.stdout.as_slice()),
        (0, &b"authorized\n"[..])
    );

    let refused = run(exec(&["--url", &server.url, "--", "true"]), None).await;
    let line = one_error_line(&refused);
    assert!(line.contains("401"), "{line}");

    let mut wrong_token = exec(&["--url", &server.url, "--", "true"]);
    wrong_token.env("EXEC_SERVER_TOKEN", "wrong");
    let refused = run(wrong_token, None).await;
    let line = one_error_line(&refused);
    assert!(line.contains("401"), "{line}");
    assert!(!line.contains("wrong"), "the token is never shown: {line}");
}

/// How long a run of 100 MB through a cutting proxy may take (a debug
/// build on a loaded machine).
const CUT_PATIENCE: Duration = Duration::from_secs(240);

/// Asserts that every line of `stderr` is the note of a slow resume, the
/// only thing `exec` may add to the command's stderr when its connection is
/// cut and resumed.
fn only_resume_notes(stderr: &[u8]) {
    let stderr = std::str::from_utf8(stderr).expect("UTF-8 on stderr");
    for line in stderr.lines() {
        assert!(
            line.starts_with("exec-server: the connection dropped and was resumed after "),
            "{stderr}"
        );
    }
}

#[tokio::test]
async fn dash_dash_url_rides_through_connection_cuts_byte_exact() {
    // `seq` writes 100,000,008 bytes of distinct lines: a lost, repeated or
    // reordered piece changes the digest. The server runs on this machine,
    // so the same program gives the expected digest here.
    let script = "seq 1 12345679";
    let expected = std::process::Command::new("sh")
        .args(["-c", script])
        .output()
        .expect("seq runs locally");
    let server = start_ws_server(None).await;
    let proxy = CutProxy::in_front_of(&server.url, Some(4 * 1024 * 1024))
        .await
        .expect("the proxy starts");
    let mut command = exec(&["--url", &proxy.url(), "--", "sh", "-c", script]);
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("exec-server starts");
    let output = tokio::time::timeout(CUT_PATIENCE, child.wait_with_output())
        .await
        .expect("exec ends in time")
        .expect("waiting for exec");
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(output.stdout.len(), expected.stdout.len());
    assert_eq!(
        Sha256::digest(&output.stdout),
        Sha256::digest(&expected.stdout),
        "the output is byte-exact"
    );
    only_resume_notes(&output.stderr);
    assert!(proxy.cuts() > 0, "the proxy cut the connection");
}

#[tokio::test]
async fn dash_dash_url_stdin_and_the_exit_status_ride_through_cuts() {
    let server = start_ws_server(None).await;
    let proxy = CutProxy::in_front_of(&server.url, Some(256 * 1024))
        .await
        .expect("the proxy starts");
    let input: Vec<u8> = (0..1_000_000u32)
        .map(|index| (index.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let run = run(
        exec(&["--url", &proxy.url(), "-i", "--", "sh", "-c", "cat; exit 3"]),
        Some(&input),
    )
    .await;
    assert_eq!(run.status, 3, "{:?}", String::from_utf8_lossy(&run.stderr));
    assert!(run.stdout == input, "stdin came back byte-exact");
    only_resume_notes(&run.stderr);
    assert!(proxy.cuts() > 0, "the proxy cut the connection");
}

/// A shell script run on a PTY this test opens, as a person at a terminal
/// would run it; `$0` in the script is the `exec-server` binary.
struct TestTerminal {
    /// The PTY's master side, for resizing.
    master: Box<dyn MasterPty + Send>,
    /// Typing into the terminal.
    keyboard: Box<dyn Write + Send>,
    /// The script's shell.
    child: Box<dyn portable_pty::Child + Send + Sync>,
    /// What the terminal shows, from a reading thread.
    screen: mpsc::Receiver<Vec<u8>>,
    /// Everything shown so far.
    transcript: String,
    /// Where the next [`TestTerminal::expect`] starts looking.
    cursor: usize,
}

impl TestTerminal {
    /// Opens a `rows` by `cols` terminal running `sh -c SCRIPT exec-server`.
    fn start(rows: u16, cols: u16, script: &str) -> Self {
        let pty = native_pty_system()
            .openpty(PtySize {
                rows,
                cols,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("a PTY");
        let mut command = CommandBuilder::new("/bin/sh");
        command.arg("-c");
        command.arg(script);
        command.arg(server_binary());
        command.env_remove("EXEC_SERVER_TOKEN");
        command.env("TERM", "xterm");
        command.cwd(std::env::temp_dir());
        let child = pty.slave.spawn_command(command).expect("the script starts");
        drop(pty.slave);
        let mut reader = pty.master.try_clone_reader().expect("a reader");
        let keyboard = pty.master.take_writer().expect("a writer");
        let (shown, screen) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            // Ends with an error (EIO) once the script and all on its
            // terminal are gone.
            while let Ok(count @ 1..) = reader.read(&mut buffer) {
                if shown.send(buffer[..count].to_vec()).is_err() {
                    return;
                }
            }
        });
        Self {
            master: pty.master,
            keyboard,
            child,
            screen,
            transcript: String::new(),
            cursor: 0,
        }
    }

    /// Types `keys`.
    fn type_keys(&mut self, keys: &str) {
        self.keyboard.write_all(keys.as_bytes()).expect("typing");
        self.keyboard.flush().expect("typing");
    }

    /// Waits until `needle` shows after the previous match; returns what
    /// showed up to and including it.
    fn expect(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(position) = self.transcript[self.cursor..].find(needle) {
                let end = self.cursor + position + needle.len();
                let shown = self.transcript[self.cursor..end].to_owned();
                self.cursor = end;
                return shown;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.screen.recv_timeout(left) {
                Ok(bytes) => self.transcript.push_str(&String::from_utf8_lossy(&bytes)),
                Err(error) => panic!(
                    "{needle:?} did not show ({error}); the terminal showed {:?}",
                    self.transcript
                ),
            }
        }
    }

    /// The rest of the line after `prefix` (which must show next).
    fn value_after(&mut self, prefix: &str) -> String {
        self.expect(prefix);
        self.rest_of_line()
    }

    /// The rest of the current line, without its line end.
    fn rest_of_line(&mut self) -> String {
        self.expect("\n").trim_end().to_owned()
    }

    /// Resizes the terminal, as a person dragging the window would.
    fn resize(&self, rows: u16, cols: u16) {
        self.master
            .resize(PtySize {
                rows,
                cols,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("resizing");
    }

    /// Waits for the script's shell to exit; returns its exit code.
    fn wait(&mut self) -> u32 {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting") {
                return status.exit_code();
            }
            assert!(
                Instant::now() < deadline,
                "the script did not end; the terminal showed {:?}",
                self.transcript
            );
            // The only poll here: portable-pty's child has no wait with a
            // timeout, and a hung script must fail the test, not hang it.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for TestTerminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// Runs `exec -t -- sh` in a terminal with the settings printed before and
/// after, types `keys` at the remote prompt, and checks that `exec` exited
/// with `status` and left the terminal as it found it. Returns what showed
/// between the prompt and the exit status.
fn terminal_session(keys: &str, status: u32) -> String {
    let script = r#"echo "settings-before=$(stty -g)"
"$0" exec -t -e 'PS1=remote> ' -- sh
echo "exec-exit=$?"
echo "settings-after=$(stty -g)""#;
    let mut terminal = TestTerminal::start(33, 101, script);
    let before = terminal.value_after("settings-before=");
    terminal.expect("remote> ");
    terminal.type_keys(keys);
    let shown = terminal.expect("exec-exit=");
    let exit = terminal.rest_of_line();
    let after = terminal.value_after("settings-after=");
    assert_eq!(exit, status.to_string(), "{shown:?}");
    assert_eq!(after, before, "the terminal settings were restored");
    assert_eq!(terminal.wait(), 0);
    shown
}

#[test]
fn dash_t_runs_on_a_pty_of_the_terminals_size_and_restores_the_terminal() {
    let shown = terminal_session("stty size; echo hi; exit 3\n", 3);
    // The remote PTY's output; the typed line is echoed by the remote
    // terminal, not the local one (which is raw).
    assert!(shown.contains("\r\n33 101\r\n"), "{shown:?}");
    assert!(shown.contains("\r\nhi\r\n"), "{shown:?}");
    assert_eq!(shown.matches("stty size; echo hi").count(), 1, "{shown:?}");
}

#[test]
fn dash_t_restores_the_terminal_when_exec_gets_sigterm() {
    // The remote shell's parent is `exec` (the local server runs in it).
    let shown = terminal_session("kill -TERM $PPID\n", 143);
    assert!(!shown.contains("exec-server:"), "no error line: {shown:?}");
}

#[test]
fn dash_t_follows_window_size_changes() {
    let script = r#""$0" exec -t -e 'PS1=remote> ' -- sh; echo "exec-exit=$?""#;
    let mut terminal = TestTerminal::start(24, 80, script);
    terminal.expect("remote> ");
    terminal.resize(40, 120);
    // The SIGWINCH and the typed command travel separately, so the command
    // is repeated (each time after its prompt) until the new size shows.
    let deadline = Instant::now() + PATIENCE;
    loop {
        terminal.type_keys("stty size\n");
        let shown = terminal.expect("remote> ");
        if shown.contains("\r\n40 120\r\n") {
            break;
        }
        assert!(Instant::now() < deadline, "the size never changed");
    }
    terminal.type_keys("exit\n");
    assert_eq!(terminal.value_after("exec-exit="), "0");
    assert_eq!(terminal.wait(), 0);
}

#[test]
fn ctrl_c_is_forwarded_as_interrupt_without_a_pty() {
    // The outer shell traps SIGINT, as an interactive one would, so that
    // the Ctrl-C does not end it; `exec` gets the signal with its default
    // action, like any command run from a shell.
    let script = r#"trap 'echo outer-interrupted' INT
"$0" exec -- sh -c 'trap "echo remote-interrupted; exit 5" INT; echo ready; while :; do sleep 1; done'
echo "exec-exit=$?""#;
    let mut terminal = TestTerminal::start(24, 80, script);
    terminal.expect("ready");
    terminal.type_keys("\x03");
    terminal.expect("remote-interrupted");
    assert_eq!(terminal.value_after("exec-exit="), "5");
    assert_eq!(terminal.wait(), 0);
}
