//! The corpus: `cases/<method>/<case>.json`, one [`Case`] per file, in the
//! format tests/README.md describes, and [`load_corpus`] to read them all.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::Value;

use crate::server::ServerSettings;

/// One case: a conversation with a fresh server.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Case {
    /// What the case shows, in a sentence or two.
    pub description: String,
    /// Server settings the case needs (default: the server's defaults).
    #[serde(default)]
    pub server: ServerSettings,
    /// Whether the runner performs the `initialize` / `initialized`
    /// handshake before the steps (default true).
    #[serde(default = "default_handshake")]
    pub handshake: bool,
    /// The transports the case runs over, by name (`stdio`, `websocket`);
    /// default every one. For what differs by transport, such as binary
    /// output frames, which only WebSocket carries.
    #[serde(default)]
    pub transports: Option<Vec<String>>,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

fn default_handshake() -> bool {
    true
}

/// One step: send a message and/or wait for what the server sends.
/// The actions of a step run in the order of the fields below.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Step {
    /// Why the step is there; ignored by runners.
    pub comment: Option<String>,
    /// A message to send, after placeholder substitution, as one line or text frame.
    pub send: Option<Value>,
    /// A text to send as is (after `${NAME}` substitution): for frames that
    /// are not JSON or that JSON serializers would normalize.
    pub send_raw: Option<String>,
    /// The sent frame is invalid on purpose: a validating runner must find a
    /// violation in it (and does not count that violation).
    #[serde(default)]
    pub expect_violation: bool,
    /// A response to wait for: the pattern's `id` picks the response (the
    /// first one with a null `id` when it is null); the rest must match.
    pub expect: Option<Value>,
    /// The notifications of one process, through its `process/closed`.
    pub notifications: Option<ExpectedNotifications>,
    /// Wait until a process's output contains a text.
    pub await_output: Option<AwaitOutput>,
    /// The `http/request/bodyDelta` notifications of one streamed request,
    /// through its `done` one.
    pub body_deltas: Option<ExpectedBodyDeltas>,
}

/// The body of a streamed `http/request`, from its deltas.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExpectedBodyDeltas {
    /// The request (`params.requestId`).
    pub request_id: String,
    /// The decoded deltas, concatenated, as UTF-8 text (a string pattern).
    pub body: String,
    /// A pattern of the last delta's `error` (default `"$absent"`).
    pub error: Option<serde_json::Value>,
}

/// The notifications of one process up to and including `process/closed`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExpectedNotifications {
    /// The process (`params.processId`).
    pub process_id: String,
    /// Expected output per stream (`stdout`, `stderr`, `pty`): the decoded
    /// chunks of that stream, concatenated, as UTF-8 text (a string
    /// pattern). Streams not listed must have no output. When given,
    /// `events` lists the other notifications only.
    pub output: Option<BTreeMap<String, String>>,
    /// The notifications, in arrival (= `seq`) order: each a pattern of the
    /// whole message; there must be exactly as many.
    pub events: Option<Vec<Value>>,
}

/// Consume a process's output notifications until their text contains `contains`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AwaitOutput {
    /// The process (`params.processId`).
    pub process_id: String,
    /// Only this stream's output (default: every stream).
    pub stream: Option<String>,
    /// The text to wait for (after `${NAME}` substitution).
    pub contains: String,
}

impl Step {
    /// Rejects a step that does nothing or sends twice.
    fn check(&self) -> Result<()> {
        if self.send.is_some() && self.send_raw.is_some() {
            bail!("a step has `send` or `sendRaw`, not both");
        }
        if self.expect_violation && self.send.is_none() && self.send_raw.is_none() {
            bail!("`expectViolation` needs a `send` or `sendRaw`");
        }
        if self.send.is_none()
            && self.send_raw.is_none()
            && self.expect.is_none()
            && self.notifications.is_none()
            && self.await_output.is_none()
            && self.body_deltas.is_none()
        {
            bail!("a step does nothing");
        }
        if let Some(expect) = &self.expect
            && expect.get("id").is_none()
        {
            bail!("an `expect` pattern needs the `id` of the response it waits for");
        }
        Ok(())
    }
}

/// A case with its name, the path under `cases/` without `.json`
/// (`process/start/pipe-echo`).
#[derive(Debug, Clone)]
pub struct NamedCase {
    /// `<method>/<case>`.
    pub name: String,
    /// The case.
    pub case: Case,
}

/// The corpus shipped with this crate (`tests/cases`).
pub fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("cases")
}

/// Every `*.json` under `dir`, parsed and checked, sorted by name.
/// Errors: an unreadable file or one that is not a well-formed case.
pub fn load_corpus(dir: &Path) -> Result<Vec<NamedCase>> {
    let mut files = Vec::new();
    collect_json_files(dir, &mut files)?;
    files.sort();
    let mut cases = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        let case: Case = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a case", file.display()))?;
        for (index, step) in case.steps.iter().enumerate() {
            step.check()
                .with_context(|| format!("{}: step {}", file.display(), index + 1))?;
        }
        let relative = file.strip_prefix(dir).unwrap_or(&file).with_extension("");
        let name = relative
            .components()
            .map(|part| part.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        cases.push(NamedCase { name, case });
    }
    Ok(cases)
}

fn collect_json_files(dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect_json_files(&path, files)?;
        } else if path
            .extension()
            .is_some_and(|extension| extension == "json")
        {
            files.push(path);
        }
    }
    Ok(())
}
