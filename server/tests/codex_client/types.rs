//! The shapes a Codex client reads, by Codex's deserialization rules
//! (`codex-rs/exec-server-protocol/src/protocol.rs`, openai/codex): a field
//! Codex declares without `Option` or `#[serde(default)]` must be present
//! and non-null, an integer must be an integer (`i32`, `u64`), a
//! `PathUri` must be a `file:` URI. Written here from
//! `docs/codex-compatibility.md`, not generated from our schema, so a drift
//! of our schema away from Codex fails these tests.
//!
//! Unknown members are accepted, as Codex's structs accept them.

// Every member Codex requires is declared so that its absence fails
// deserialization, whether or not a test reads it afterwards.
#![allow(dead_code)]

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer};

/// Codex's `PathUri`: only a `file:` URI deserializes (a native path is
/// refused, as Codex's own test `filesystem_protocol_rejects_native_absolute_paths`
/// pins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathUri(pub String);

impl<'de> Deserialize<'de> for PathUri {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.starts_with("file:///") {
            Ok(Self(text))
        } else {
            Err(de::Error::custom(format!("not a file URI: {text:?}")))
        }
    }
}

impl fmt::Display for PathUri {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// Codex's `ByteChunk`: standard base64 with padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ByteChunk(pub Vec<u8>);

impl<'de> Deserialize<'de> for ByteChunk {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        base64_simd::STANDARD
            .decode_to_vec(text.as_bytes())
            .map(Self)
            .map_err(de::Error::custom)
    }
}

/// `initialize`'s result.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitializeResponse {
    pub session_id: String,
}

/// `environment/info`'s result.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentInfo {
    pub shell: ShellInfo,
    #[serde(default)]
    pub cwd: Option<PathUri>,
}

/// `environment/status`'s result (newest Codex copy).
#[derive(Debug, Deserialize)]
pub struct EnvironmentStatus {
    pub status: String,
}

/// The shell in [`EnvironmentInfo`].
#[derive(Debug, Deserialize)]
pub struct ShellInfo {
    pub name: String,
    pub path: String,
}

/// `process/start`'s result.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecResponse {
    pub process_id: String,
}

/// The stream of an output chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ExecOutputStream {
    Stdout,
    Stderr,
    Pty,
}

/// One chunk of `process/read`'s result.
#[derive(Debug, Deserialize)]
pub struct ProcessOutputChunk {
    pub seq: u64,
    pub stream: ExecOutputStream,
    pub chunk: ByteChunk,
}

/// `process/read`'s result (`failure` is an `Option` without a default in
/// Codex, which serde still reads as absent = `None`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadResponse {
    pub chunks: Vec<ProcessOutputChunk>,
    pub next_seq: u64,
    pub exited: bool,
    pub exit_code: Option<i32>,
    pub closed: bool,
    pub failure: Option<String>,
    #[serde(default)]
    pub sandbox_denied: bool,
}

/// `process/write`'s status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum WriteStatus {
    Accepted,
    UnknownProcess,
    StdinClosed,
    Starting,
}

/// `process/write`'s result.
#[derive(Debug, Deserialize)]
pub struct WriteResponse {
    pub status: WriteStatus,
}

/// `process/signal`'s result: an empty object.
#[derive(Debug, Deserialize)]
pub struct SignalResponse {}

/// `process/terminate`'s result.
#[derive(Debug, Deserialize)]
pub struct TerminateResponse {
    pub running: bool,
}

/// `process/output`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecOutputDeltaNotification {
    pub process_id: String,
    pub seq: u64,
    pub stream: ExecOutputStream,
    pub chunk: ByteChunk,
}

/// `process/exited`: `exitCode` is a plain `i32`, never null.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecExitedNotification {
    pub process_id: String,
    pub seq: u64,
    pub exit_code: i32,
    #[serde(default)]
    pub sandbox_denied: Option<bool>,
}

/// `process/closed`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecClosedNotification {
    pub process_id: String,
    pub seq: u64,
}

/// `fs/readFile`'s result.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FsReadFileResponse {
    pub data_base64: String,
}

/// The empty results of `fs/writeFile`, `fs/createDirectory`, `fs/remove`,
/// `fs/copy` and `fs/close`.
#[derive(Debug, Deserialize)]
pub struct Empty {}

/// `fs/getMetadata`'s result: the times are plain `i64`, never null.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FsGetMetadataResponse {
    pub is_directory: bool,
    pub is_file: bool,
    pub is_symlink: bool,
    pub size: u64,
    pub created_at_ms: i64,
    pub modified_at_ms: i64,
}

/// `fs/canonicalize`'s result.
#[derive(Debug, Deserialize)]
pub struct FsCanonicalizeResponse {
    pub path: PathUri,
}

/// One entry of `fs/readDirectory`'s result.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FsReadDirectoryEntry {
    pub file_name: String,
    pub is_directory: bool,
    pub is_file: bool,
}

/// `fs/readDirectory`'s result.
#[derive(Debug, Deserialize)]
pub struct FsReadDirectoryResponse {
    pub entries: Vec<FsReadDirectoryEntry>,
}

/// The kind of an `fs/walk` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum WalkEntryKind {
    Directory,
    File,
}

/// One entry of `fs/walk`'s result.
#[derive(Debug, Deserialize)]
pub struct WalkEntry {
    pub path: PathUri,
    pub kind: WalkEntryKind,
}

/// One path `fs/walk` could not inspect.
#[derive(Debug, Deserialize)]
pub struct WalkError {
    pub path: PathUri,
    pub message: String,
}

/// `fs/walk`'s result (Codex's `WalkOutcome`).
#[derive(Debug, Deserialize)]
pub struct WalkOutcome {
    pub entries: Vec<WalkEntry>,
    pub errors: Vec<WalkError>,
    pub truncated: bool,
}

/// `fs/open`'s result.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FsOpenResponse {
    pub handle_id: String,
}

/// `fs/readBlock`'s result.
#[derive(Debug, Deserialize)]
pub struct FsReadBlockResponse {
    pub chunk: ByteChunk,
    pub eof: bool,
}

/// A header of `http/request` and its result.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct HttpHeader {
    pub name: String,
    pub value: String,
}

/// `http/request`'s result.
#[derive(Debug, Deserialize)]
pub struct HttpRequestResponse {
    pub status: u16,
    pub headers: Vec<HttpHeader>,
    #[serde(rename = "bodyBase64")]
    pub body: ByteChunk,
}

/// `http/request/bodyDelta`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRequestBodyDeltaNotification {
    pub request_id: String,
    pub seq: u64,
    #[serde(rename = "deltaBase64")]
    pub delta: ByteChunk,
    #[serde(default)]
    pub done: bool,
    #[serde(default)]
    pub error: Option<String>,
}
