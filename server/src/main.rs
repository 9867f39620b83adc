//! The `exec-server` binary: `exec-server serve [--listen URL]` serves the
//! protocol; `exec-server exec [OPTIONS] -- PROGRAM [ARGS]...` runs one
//! program through a server (see `exec_command`).

mod exec_command;
mod token_env;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use exec_server::ServerConfig;
use exec_server::shutdown::{CONNECTIONS_GRACE, Shutdown};
use exec_server::transport::ws::AccessPolicy;
use exec_server::transport::{ServerTls, stdio, ws};
use tokio::signal::unix::{SignalKind, signal};

/// The static musl binary's allocator (`cargo xtask dist`). Pipe output
/// over WebSocket, `exec-bench --only throughput`, alternating runs: musl's
/// own malloc 429-498 MB/s, mimalloc 680-897, the glibc build 831-923.
/// mimalloc is built without its `madvise(MADV_HUGEPAGE)` on arenas
/// (`no_thp`): with it, the server's RSS was 20 MB at 100 idle processes
/// against 7.9 MB (and 14-16 KiB per idle process against 9.5). glibc
/// builds keep glibc's malloc, tuned in `exec_server::heap`.
#[cfg(target_env = "musl")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Run and control processes and files on this machine for a remote client,
/// over JSON-RPC 2.0 (protocol exec-server.v1).
#[derive(Parser)]
#[command(name = "exec-server", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the protocol on stdio or a WebSocket listener.
    Serve(ServeArgs),
    /// Run a program through an exec-server (a local one over stdio unless
    /// --url is given), like `ssh host CMD`: its output and exit status
    /// become this command's.
    Exec(exec_command::ExecArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// `stdio://` (one JSON message per line on stdin/stdout) or
    /// `ws://IP:PORT` (port 0 picks a free port); `wss://IP:PORT` is the
    /// same with --tls-cert and --tls-key, which it requires.
    #[arg(long, default_value = "ws://127.0.0.1:0")]
    listen: String,
    /// PEM file of the certificate chain (the server's first) for TLS on
    /// the WebSocket listener: clients then connect to `wss://`. Needs
    /// --tls-key.
    #[arg(long, value_name = "PATH", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM file of the private key of --tls-cert (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// File holding the connection token WebSocket clients must send as
    /// `Authorization: Bearer TOKEN`. Never pass a token as an argument: the
    /// process list shows arguments.
    #[arg(long, value_name = "PATH")]
    token_file: Option<PathBuf>,
    /// `Origin` a browser page may connect from (repeatable); any other
    /// `Origin` gets HTTP 403.
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    allowed_origins: Vec<String>,
    /// `Host` name (without port) a loopback listener accepts besides
    /// `localhost` and loopback addresses (repeatable); any other `Host`
    /// gets HTTP 403, against DNS rebinding. Not checked off loopback.
    #[arg(long = "allow-host", value_name = "HOST")]
    allowed_hosts: Vec<String>,
    /// Processes a connection may have at once, running or retained.
    #[arg(long, value_name = "COUNT")]
    max_processes: Option<usize>,
    /// Output retained per process for `process/read`, in bytes.
    #[arg(long, value_name = "BYTES")]
    retained_output_bytes: Option<usize>,
    /// How long a WebSocket session stays resumable (`initialize
    /// {resumeSessionId}`) after its connection closes or drops, in seconds:
    /// its processes keep running meanwhile, then are killed. 0 ends a
    /// session with its connection. Not used over stdio.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    session_ttl: u64,
    /// How trees of managed processes are contained: `auto` (a cgroup v2
    /// per process where this server may create cgroups, else `/proc`
    /// walks) or `process-tree` (always `/proc` walks). `initialize`
    /// reports which is in force.
    #[arg(long, value_enum, default_value_t = ContainmentChoice::Auto)]
    containment: ContainmentChoice,
    /// Memory all WebSocket connections together may hold in messages they
    /// have only partly received, in bytes (default 256 MiB): a connection
    /// whose message would take more than what is left is closed with 1013.
    #[arg(long, value_name = "BYTES")]
    max_partial_message_bytes: Option<usize>,
    /// WebSocket upgrades in progress at once (default 64); further
    /// connections wait in the kernel's listen backlog.
    #[arg(long, value_name = "COUNT")]
    max_handshakes: Option<usize>,
}

/// The values of `serve --containment`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ContainmentChoice {
    /// A cgroup v2 per process when possible, else `/proc` walks.
    Auto,
    /// Always `/proc` walks (process group, session, parent links, marker).
    ProcessTree,
}

/// The shortest token a non-loopback listener accepts, in bytes: anything
/// reachable from the network must not be guessable.
const MIN_REMOTE_TOKEN_BYTES: usize = 16;

/// Where to listen.
enum Listen {
    Stdio,
    WebSocket(SocketAddr),
}

/// Parses `--listen`; `wss://` is allowed when `tls` (--tls-cert is given).
fn parse_listen(url: &str, tls: bool) -> Result<Listen> {
    if url == "stdio://" || url == "stdio" {
        if tls {
            bail!("--tls-cert and --tls-key apply to a WebSocket listener, not to stdio");
        }
        return Ok(Listen::Stdio);
    }
    let address = match (url.strip_prefix("ws://"), url.strip_prefix("wss://")) {
        (Some(address), _) => address,
        (None, Some(address)) if tls => address,
        (None, Some(_)) => bail!("--listen {url} needs --tls-cert and --tls-key"),
        (None, None) => {
            bail!("--listen must be `stdio://`, `ws://IP:PORT` or `wss://IP:PORT`, not `{url}`")
        }
    };
    let address = address.trim_end_matches('/');
    let address: SocketAddr = address
        .parse()
        .with_context(|| format!("`{address}` is not an IP:PORT address"))?;
    Ok(Listen::WebSocket(address))
}

fn main() -> ExitCode {
    // The guardian (see `exec_server::guardian`) runs before anything else:
    // it must not start a runtime; its warnings (a cgroup it cannot kill) go
    // to the stderr it shares with the server.
    let mut arguments = std::env::args_os().skip(1);
    if arguments.next().as_deref()
        == Some(std::ffi::OsStr::new(
            exec_server::guardian::GUARDIAN_COMMAND,
        ))
    {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
            .init();
        return match exec_server::guardian::run(arguments) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("exec-server guardian: {error}");
                ExitCode::FAILURE
            }
        };
    }

    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    exec_server::heap::tune();
    // `exec` runs one session: its connection's tasks and its loop on one
    // thread hand chunks to each other without waking another thread (the
    // output is written by a thread of its own, see `exec_command`). The
    // server serves many connections and needs the worker threads.
    let runtime = match &cli.command {
        Command::Exec(_) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Command::Serve(_) => tokio::runtime::Runtime::new(),
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("exec-server: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => match serve(args).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("exec-server: {error:#}");
                    ExitCode::FAILURE
                }
            },
            Command::Exec(args) => ExitCode::from(exec_command::run(args).await),
        }
    });
    // A stdio server may be blocked reading a stdin that stays open (tokio
    // reads it on a blocking thread that cannot be interrupted): do not wait
    // for that thread.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    code
}

async fn serve(args: ServeArgs) -> Result<()> {
    let listen = parse_listen(&args.listen, args.tls_cert.is_some())?;
    let token = read_token(args.token_file.as_deref())?;
    // Loaded before anything starts, so that a bad file is a clear error
    // at once rather than a failed handshake per client.
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(certificate), Some(key)) => Some(ServerTls::load(certificate, key)?),
        _ => None,
    };
    // Looked at before `init_reaper`, which gives inherited-ignored signals a
    // handler: a server started under `nohup` keeps ignoring hangups.
    let hangup_ignored = exec_server::process::is_ignored(nix::sys::signal::Signal::SIGHUP);
    exec_server::process::init_reaper().context("becoming the child subreaper")?;
    if args.containment == ContainmentChoice::Auto
        && let Err(reason) = exec_server::process::init_cgroup_containment()
    {
        tracing::info!("no cgroup containment ({reason}); trees are found by walking /proc");
    }
    // Without a guardian the trees survive a SIGKILL of the server, which
    // `initialize` then says (`containment.killOnServerDeath: false`).
    if let Err(error) = exec_server::guardian::start() {
        tracing::warn!(%error, "cannot start the guardian process");
    }
    let mut config = ServerConfig::default();
    if let Some(max_processes) = args.max_processes {
        config.process.max_processes = max_processes;
    }
    if let Some(bytes) = args.retained_output_bytes {
        config.process.retained_output_bytes = bytes;
    }
    if let Some(bytes) = args.max_partial_message_bytes {
        config.max_partial_message_bytes = bytes;
    }
    if let Some(count) = args.max_handshakes {
        config.max_handshakes = count;
    }
    // Over stdio the one connection has no successor: its session ends with it.
    if matches!(listen, Listen::WebSocket(_)) {
        config.session_ttl = std::time::Duration::from_secs(args.session_ttl);
    }
    let config = Arc::new(config);
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    // A hangup (the terminal or the session leader went away) shuts down
    // like SIGTERM, unless the server was told to ignore it.
    let mut hangup = if hangup_ignored {
        None
    } else {
        Some(signal(SignalKind::hangup()).context("installing the SIGHUP handler")?)
    };

    let shutdown = Shutdown::new();
    let mut server = Box::pin(async {
        match listen {
            Listen::Stdio => {
                let signal = shutdown.signal();
                // On a worker thread, where the reactor's wake-ups of the
                // connection stay on the thread that took them; the main
                // thread (this `block_on`) would be woken through a futex
                // for each of them.
                if let Err(error) = tokio::spawn(stdio::serve_stdio(config, signal)).await {
                    tracing::error!(%error, "the stdio connection's task failed");
                }
                close_stdout();
                Ok(())
            }
            Listen::WebSocket(address) => {
                if !address.ip().is_loopback() {
                    match &token {
                        None => bail!(
                            "refusing to listen on non-loopback {address} without a token \
                             (set EXEC_SERVER_TOKEN or --token-file)"
                        ),
                        Some(token) if token.len() < MIN_REMOTE_TOKEN_BYTES => bail!(
                            "refusing to listen on non-loopback {address} with a token of \
                             {} bytes: it must have at least {MIN_REMOTE_TOKEN_BYTES}",
                            token.len()
                        ),
                        Some(_) => {}
                    }
                }
                let listener = tokio::net::TcpListener::bind(address)
                    .await
                    .with_context(|| format!("listening on {address}"))?;
                let local = listener.local_addr().context("reading the bound address")?;
                let scheme = if tls.is_some() { "wss" } else { "ws" };
                eprintln!("exec-server listening on {scheme}://{local}");
                let policy = Arc::new(AccessPolicy {
                    token,
                    allowed_origins: args.allowed_origins,
                    allowed_hosts: local.ip().is_loopback().then_some(args.allowed_hosts),
                });
                ws::serve(listener, config, policy, tls, &shutdown).await;
                Ok(())
            }
        }
    });
    let finished = tokio::select! {
        result = &mut server => Some(result),
        _ = terminate.recv() => { tracing::info!("SIGTERM: shutting down"); None }
        _ = interrupt.recv() => { tracing::info!("SIGINT: shutting down"); None }
        Some(()) = next_signal(&mut hangup) => { tracing::info!("SIGHUP: shutting down"); None }
    };
    shutdown.begin();
    let result = match finished {
        Some(result) => result,
        // The connections end their sessions and drain; the stdio server
        // returns once its one connection did, the accept loop at once.
        None => tokio::time::timeout(CONNECTIONS_GRACE, &mut server)
            .await
            .unwrap_or(Ok(())),
    };
    drop(server);
    // Waits for the WebSocket connections, then kills what remains
    // (nothing, normally).
    shutdown.finish(CONNECTIONS_GRACE).await;
    exec_server::guardian::release();
    result
}

/// Ends the stdio connection for the client once it is over (its process
/// trees killed, its last messages flushed): the end of file on our stdout
/// is what the client waits for, and it need not wait on through the rest of
/// this process's shutdown (`exec` does not). Stdout becomes `/dev/null`
/// rather than a closed descriptor, so that nothing opened later takes
/// number 1.
fn close_stdout() {
    let closed = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .and_then(|null| Ok(rustix::stdio::dup2_stdout(&null)?));
    if let Err(error) = closed {
        tracing::debug!(%error, "cannot close stdout early; it closes at exit");
    }
}

/// The next delivery of `signal`; never when there is no handler.
async fn next_signal(signal: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match signal {
        Some(signal) => signal.recv().await,
        None => std::future::pending().await,
    }
}

/// The connection token: `--token-file`, else `EXEC_SERVER_TOKEN`, else none.
fn read_token(path: Option<&std::path::Path>) -> Result<Option<String>> {
    if let Some(path) = path {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the token file {}", path.display()))?;
        let token = text.trim().to_owned();
        if token.is_empty() {
            bail!("the token file {} is empty", path.display());
        }
        return Ok(Some(token));
    }
    Ok(token_env::take())
}
