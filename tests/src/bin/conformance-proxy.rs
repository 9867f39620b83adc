//! `conformance-proxy`: a WebSocket proxy in front of an exec-server that
//! validates every frame in both directions against the protocol schema and
//! records each violation as one JSON line.
//!
//! ```text
//! conformance-proxy --upstream ws://HOST:PORT [--listen ws://127.0.0.1:0] [--violations FILE]
//! ```
//!
//! It prints `conformance-proxy listening on ws://IP:PORT` on stderr once it
//! accepts connections, and exits 0 on SIGTERM or SIGINT.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;
use conformance::{ProtocolSchema, Proxy, VIOLATIONS_ENV, ViolationSink, listen_authority};
use tokio::signal::unix::{SignalKind, signal};

/// Validating WebSocket proxy for exec-server's protocol.
#[derive(Parser)]
#[command(name = "conformance-proxy")]
struct Cli {
    /// The server to forward to, `ws://HOST:PORT`.
    #[arg(long)]
    upstream: String,
    /// Where to accept clients; port 0 picks a free port.
    #[arg(long, default_value = "ws://127.0.0.1:0")]
    listen: String,
    /// File violations are appended to, one JSON object per line (default:
    /// the file named by EXEC_CONFORMANCE_VIOLATIONS, else stderr).
    #[arg(long)]
    violations: Option<PathBuf>,
    /// Validate against this schema instead of the embedded exec-server one.
    #[arg(long)]
    schema: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("conformance-proxy: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    let schema = match &cli.schema {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            ProtocolSchema::from_json(&text)?
        }
        None => ProtocolSchema::embedded(),
    };
    let violations = cli.violations.clone().or_else(|| {
        std::env::var_os(VIOLATIONS_ENV)
            .filter(|path| !path.is_empty())
            .map(PathBuf::from)
    });
    let sink = match &violations {
        Some(path) => ViolationSink::append_to(path)?,
        None => ViolationSink::Stderr,
    };
    let mut terminate = signal(SignalKind::terminate()).context("handling SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("handling SIGINT")?;
    let authority = listen_authority(&cli.listen)?;
    let listener = tokio::net::TcpListener::bind(authority)
        .await
        .with_context(|| format!("listening on {authority}"))?;
    let address = listener.local_addr().context("the listening address")?;
    eprintln!("conformance-proxy listening on ws://{address}");
    let proxy = Arc::new(Proxy::new(cli.upstream, Arc::new(schema), sink));
    tokio::select! {
        () = proxy.serve(listener) => {}
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    Ok(())
}
