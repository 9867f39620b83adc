//! Helpers for the tests against the real `exec-server` binary: finding (or
//! building) it, a client over stdio, and a WebSocket server on port 0.

#![allow(dead_code)] // Each test binary uses a different part.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use exec_client::{ConnectOptions, ExecClient};
use tokio::io::{AsyncBufReadExt, BufReader};

/// `target/debug/exec-server`, next to the directory of this test binary
/// (`target/debug/deps`). `cargo test --workspace` builds it before tests
/// run; for `cargo test -p exec-client` alone it is built here if missing.
pub fn server_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            if let Some(path) =
                std::env::var_os(exec_client::SERVER_BINARY_ENV).filter(|path| !path.is_empty())
            {
                return PathBuf::from(path);
            }
            let test_exe = std::env::current_exe().expect("the test binary's path");
            let target_dir = test_exe
                .parent()
                .and_then(|deps| deps.parent())
                .expect("tests run from target/<profile>/deps");
            let binary = target_dir.join(format!("exec-server{}", std::env::consts::EXE_SUFFIX));
            if !binary.is_file() {
                let cargo = option_env!("CARGO").unwrap_or("cargo");
                let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
                let status = std::process::Command::new(cargo)
                    .args([
                        "build",
                        "-p",
                        "exec-server",
                        "--bin",
                        "exec-server",
                        "--manifest-path",
                        manifest,
                    ])
                    .status()
                    .expect("running cargo build");
                assert!(status.success(), "cargo build -p exec-server failed");
            }
            assert!(binary.is_file(), "no exec-server at {}", binary.display());
            binary
        })
        .clone()
}

/// Options naming the test and the binary.
pub fn options(test: &str) -> ConnectOptions {
    ConnectOptions::new(test).server_binary(server_binary())
}

/// A client of a fresh `exec-server serve --listen stdio://`.
pub async fn local_client(test: &str) -> ExecClient {
    ExecClient::spawn_local(options(test))
        .await
        .expect("spawn_local connects")
}

/// `PATH` for children started with an empty environment.
pub const PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// A fresh directory on this machine (the server runs here too), removed on drop.
pub fn scratch_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temp dir")
}

/// Environment variable naming the `conformance-proxy` binary; when set,
/// [`WsServer::start`] puts the validating proxy in front of the server and
/// hands out the proxy's URL (`cargo xtask test` sets it, and
/// `EXEC_CONFORMANCE_VIOLATIONS`, the file the proxy records violations in).
pub const CONFORMANCE_PROXY_ENV: &str = "EXEC_CONFORMANCE_PROXY";

/// `exec-server serve --listen ws://127.0.0.1:0`, stopped with SIGTERM on drop.
pub struct WsServer {
    /// The server process.
    child: tokio::process::Child,
    /// The validating proxy in front of the server, when
    /// `EXEC_CONFORMANCE_PROXY` is set; stopped with SIGTERM on drop.
    proxy: Option<tokio::process::Child>,
    /// `ws://127.0.0.1:PORT` as the server (or the proxy in front of it) printed it.
    pub url: String,
}

impl WsServer {
    /// Starts a server and waits for its `exec-server listening on` line.
    /// `token` is passed in `EXEC_SERVER_TOKEN`, never as an argument.
    pub async fn start(token: Option<&str>) -> Self {
        let mut command = tokio::process::Command::new(server_binary());
        command
            .args(["serve", "--listen", "ws://127.0.0.1:0"])
            .env_remove("EXEC_SERVER_TOKEN")
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        if let Some(token) = token {
            command.env("EXEC_SERVER_TOKEN", token);
        }
        let mut child = command.spawn().expect("starting exec-server");
        let url = listening_url(&mut child, "exec-server").await;
        let proxy_binary = std::env::var_os(CONFORMANCE_PROXY_ENV).filter(|path| !path.is_empty());
        let Some(proxy_binary) = proxy_binary else {
            return Self {
                child,
                proxy: None,
                url,
            };
        };
        // The proxy forwards the client's `Authorization` header, so the
        // token tests see the server's own answers.
        let mut proxy = tokio::process::Command::new(&proxy_binary)
            .args(["--upstream", &url])
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|error| panic!("starting {}: {error}", proxy_binary.to_string_lossy()));
        let url = listening_url(&mut proxy, "conformance-proxy").await;
        Self {
            child,
            proxy: Some(proxy),
            url,
        }
    }

    /// Sends SIGTERM (the server kills its processes and exits cleanly).
    pub fn terminate(&self) {
        signal_terminate(&self.child);
    }

    /// Waits for the server to exit.
    pub async fn wait(&mut self) -> std::process::ExitStatus {
        self.child.wait().await.expect("waiting for exec-server")
    }
}

impl Drop for WsServer {
    fn drop(&mut self) {
        // A clean stop (not a kill) lets the server kill its process groups.
        self.terminate();
        if let Some(proxy) = &self.proxy {
            signal_terminate(proxy);
        }
    }
}

/// Sends SIGTERM to `child`.
fn signal_terminate(child: &tokio::process::Child) {
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
}

/// Waits for `NAME listening on URL` on `child`'s piped stderr and returns
/// `URL`; the child's other stderr lines are shown prefixed with `NAME: `.
async fn listening_url(child: &mut tokio::process::Child, name: &str) -> String {
    let stderr = child.stderr.take().expect("piped stderr");
    let mut lines = BufReader::new(stderr).lines();
    let prefix = format!("{name} listening on ");
    let url = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let line = lines
                .next_line()
                .await
                .expect("reading stderr")
                .unwrap_or_else(|| panic!("{name} exited before listening"));
            if let Some(url) = line.strip_prefix(&prefix) {
                return url.trim().to_owned();
            }
            eprintln!("{name}: {line}");
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{name} listens within 60 s"));
    // Keep draining stderr, so the child never blocks on a full pipe.
    let name = name.to_owned();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("{name}: {line}");
        }
    });
    url
}
