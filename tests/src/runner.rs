//! Running cases: [`Session`] drives one validated connection (send, wait for
//! a response by `id`, collect a process's notifications), and [`run_case`]
//! runs one corpus case against a fresh server over stdio or WebSocket.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use exec_protocol::{PROCESS_CLOSED_METHOD, PROCESS_OUTPUT_METHOD};
use exec_testkit::{HttpTestServer, WsServer};
use serde_json::{Value, json};

use crate::corpus::{AwaitOutput, ExpectedNotifications, NamedCase, Step};
use crate::coverage::Tally;
use crate::pattern::{Vars, interpolate, matches, matches_text, substitute};
use crate::recording::RecordingConnection;
use crate::schema::ProtocolSchema;
use crate::server::ServerSettings;

/// How long any one awaited message may take.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The `id` of the runner's own `initialize` request.
pub const HANDSHAKE_ID: &str = "handshake";

/// How the suite reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// `serve --listen stdio://`: one message per line.
    Stdio,
    /// `serve --listen ws://127.0.0.1:0`: one message per text frame.
    WebSocket,
}

impl fmt::Display for Transport {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Self::Stdio => "stdio",
            Self::WebSocket => "websocket",
        })
    }
}

/// One connection to a fresh server, and the server when it is a WebSocket one.
pub struct Session {
    connection: RecordingConnection,
    /// The WebSocket server this session started, stopped by [`Session::finish`].
    server: Option<WsServer>,
    /// Messages received while waiting for others, in arrival order.
    backlog: VecDeque<Value>,
    /// `tmp` and the captured variables.
    pub vars: Vars,
    /// Where the session's failures are reported from (`case`, `step 3`).
    context: String,
}

impl Session {
    /// Starts a server with `settings` and connects to it over `transport`.
    pub async fn connect(
        transport: Transport,
        settings: &ServerSettings,
        schema: Arc<ProtocolSchema>,
        tally: Arc<Mutex<Tally>>,
        context: &str,
    ) -> Result<Self, String> {
        let (connection, server) = match transport {
            Transport::Stdio => (
                RecordingConnection::stdio(schema, tally, context, settings).await,
                None,
            ),
            Transport::WebSocket => {
                let server = settings
                    .launcher()
                    .start_websocket()
                    .await
                    .map_err(|error| format!("{error:#}"))?;
                let connection =
                    RecordingConnection::websocket(schema, tally, context, &server.url, None).await;
                (connection, Some(server))
            }
        };
        Ok(Self {
            connection: connection.map_err(|error| format!("{error:#}"))?,
            server,
            backlog: VecDeque::new(),
            vars: Vars::default(),
            context: context.to_owned(),
        })
    }

    /// A session on a connection the caller made (to a server it runs).
    pub fn attach(connection: RecordingConnection, context: &str) -> Self {
        Self {
            connection,
            server: None,
            backlog: VecDeque::new(),
            vars: Vars::default(),
            context: context.to_owned(),
        }
    }

    /// Sends `message` (after substitution) as one frame. A frame sent with
    /// `expect_violation` must break at least one rule.
    pub fn send(&mut self, message: &Value, expect_violation: bool) -> Result<(), String> {
        let message = substitute(message, &self.vars)?;
        self.send_text(&message.to_string(), expect_violation)
    }

    /// Sends `text` as one frame, as is.
    pub fn send_text(&mut self, text: &str, expect_violation: bool) -> Result<(), String> {
        let violations = self
            .connection
            .send(text, expect_violation)
            .map_err(|error| format!("{error:#}"))?;
        if expect_violation && violations.is_empty() {
            return Err(format!(
                "the frame {text} is marked `expectViolation`, but the validator found nothing wrong with it"
            ));
        }
        Ok(())
    }

    /// The next message the server sent, from the backlog first.
    async fn next_message(&mut self, waiting_for: &str) -> Result<Value, String> {
        match tokio::time::timeout(PATIENCE, self.connection.recv()).await {
            Ok(Some(message)) => Ok(message),
            Ok(None) => Err(format!(
                "the server ended the connection while the runner waited for {waiting_for}"
            )),
            Err(_) => Err(format!(
                "nothing arrived for {} s while the runner waited for {waiting_for}; unconsumed: {}",
                PATIENCE.as_secs(),
                self.backlog_summary()
            )),
        }
    }

    fn backlog_summary(&self) -> String {
        if self.backlog.is_empty() {
            return "none".to_owned();
        }
        self.backlog
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n    ")
    }

    /// The first message (backlog first) for which `wanted` holds; others
    /// are kept in the backlog.
    pub async fn take(
        &mut self,
        wanted: impl Fn(&Value) -> bool,
        waiting_for: &str,
    ) -> Result<Value, String> {
        if let Some(position) = self.backlog.iter().position(&wanted)
            && let Some(message) = self.backlog.remove(position)
        {
            return Ok(message);
        }
        loop {
            let message = self.next_message(waiting_for).await?;
            if wanted(&message) {
                return Ok(message);
            }
            self.backlog.push_back(message);
        }
    }

    /// The response whose `id` is `id` (the first with a null `id` when `id` is null).
    pub async fn response(&mut self, id: &Value) -> Result<Value, String> {
        let id = id.clone();
        self.take(
            |message| message.get("method").is_none() && message.get("id") == Some(&id),
            &format!("the response with id {id}"),
        )
        .await
    }

    /// Waits for the response `pattern` names by its `id` and matches it.
    pub async fn expect(&mut self, pattern: &Value) -> Result<Value, String> {
        let id = pattern
            .get("id")
            .map(|id| substitute(id, &self.vars))
            .transpose()?
            .ok_or("an `expect` pattern needs an `id`")?;
        let response = self.response(&id).await?;
        matches(pattern, Some(&response), &mut self.vars, "")
            .map_err(|error| format!("response {response} does not match: {error}"))?;
        Ok(response)
    }

    /// Sends `{"jsonrpc":"2.0","id":id,"method":method,"params":params}` and
    /// returns the whole response.
    pub async fn request(
        &mut self,
        id: Value,
        method: &str,
        params: Value,
    ) -> Result<Value, String> {
        let message = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.send_text(&message.to_string(), false)?;
        self.response(&id).await
    }

    /// `initialize` (id [`HANDSHAKE_ID`]), its result, then `initialized`.
    pub async fn handshake(&mut self) -> Result<(), String> {
        let response = self
            .request(
                json!(HANDSHAKE_ID),
                "initialize",
                json!({"clientName": "conformance"}),
            )
            .await?;
        if response.get("result").is_none() {
            return Err(format!("the handshake's initialize failed: {response}"));
        }
        self.send_text(r#"{"jsonrpc":"2.0","method":"initialized"}"#, false)
    }

    /// Every notification of `process_id` through its `process/closed`,
    /// matched against `expected`.
    pub async fn notifications(&mut self, expected: &ExpectedNotifications) -> Result<(), String> {
        let process_id = interpolate(&expected.process_id, &self.vars)?;
        let mut events = Vec::new();
        loop {
            let event = self
                .take(
                    |message| is_notification_of(message, &process_id),
                    &format!("the notifications of process `{process_id}`"),
                )
                .await?;
            let closed = event["method"] == PROCESS_CLOSED_METHOD;
            events.push(event);
            if closed {
                break;
            }
        }
        let others: Vec<&Value> = match &expected.output {
            None => events.iter().collect(),
            Some(output) => {
                let mut streams: BTreeMap<String, Vec<u8>> = BTreeMap::new();
                for event in events
                    .iter()
                    .filter(|event| event["method"] == PROCESS_OUTPUT_METHOD)
                {
                    let stream = event["params"]["stream"].as_str().unwrap_or_default();
                    streams
                        .entry(stream.to_owned())
                        .or_default()
                        .extend(decode_chunk(&event["params"]["chunk"]));
                }
                for (stream, pattern) in output {
                    let bytes = streams.remove(stream).unwrap_or_default();
                    matches_text(
                        pattern,
                        &String::from_utf8_lossy(&bytes),
                        &mut self.vars,
                        &format!("output of `{process_id}` on {stream}"),
                    )?;
                }
                if let Some((stream, bytes)) = streams.iter().find(|(_, bytes)| !bytes.is_empty()) {
                    return Err(format!(
                        "process `{process_id}` wrote {:?} on {stream}, which the case expects to be silent",
                        String::from_utf8_lossy(bytes)
                    ));
                }
                events
                    .iter()
                    .filter(|event| event["method"] != PROCESS_OUTPUT_METHOD)
                    .collect()
            }
        };
        if let Some(patterns) = &expected.events {
            if patterns.len() != others.len() {
                return Err(format!(
                    "process `{process_id}`: expected {} notifications, got {}:\n    {}",
                    patterns.len(),
                    others.len(),
                    others
                        .iter()
                        .map(|event| event.to_string())
                        .collect::<Vec<_>>()
                        .join("\n    ")
                ));
            }
            for (index, (pattern, event)) in patterns.iter().zip(&others).enumerate() {
                matches(pattern, Some(event), &mut self.vars, &format!("/{index}")).map_err(
                    |error| {
                        format!("notification {event} of `{process_id}` does not match: {error}")
                    },
                )?;
            }
        }
        Ok(())
    }

    /// Consumes output notifications of a process until their text contains the wanted text.
    pub async fn await_output(&mut self, wanted: &AwaitOutput) -> Result<(), String> {
        let process_id = interpolate(&wanted.process_id, &self.vars)?;
        let needle = interpolate(&wanted.contains, &self.vars)?;
        let mut seen = Vec::new();
        while !String::from_utf8_lossy(&seen).contains(&needle) {
            let stream = wanted.stream.clone();
            let event = self
                .take(
                    |message| {
                        is_notification_of(message, &process_id)
                            && message["method"] == PROCESS_OUTPUT_METHOD
                            && stream
                                .as_deref()
                                .is_none_or(|stream| message["params"]["stream"] == stream)
                    },
                    &format!(
                        "output {needle:?} of process `{process_id}` (so far {:?})",
                        String::from_utf8_lossy(&seen)
                    ),
                )
                .await?;
            seen.extend(decode_chunk(&event["params"]["chunk"]));
        }
        Ok(())
    }

    /// Runs one step of a case.
    pub async fn step(&mut self, step: &Step) -> Result<(), String> {
        if let Some(message) = &step.send {
            self.send(message, step.expect_violation)?;
        }
        if let Some(raw) = &step.send_raw {
            let text = interpolate(raw, &self.vars)?;
            self.send_text(&text, step.expect_violation)?;
        }
        if let Some(pattern) = &step.expect {
            self.expect(pattern).await?;
        }
        if let Some(expected) = &step.notifications {
            self.notifications(expected).await?;
        }
        if let Some(wanted) = &step.await_output {
            self.await_output(wanted).await?;
        }
        if let Some(expected) = &step.body_deltas {
            self.body_deltas(expected).await?;
        }
        Ok(())
    }

    /// Closes the connection, validating what the server still sends, stops
    /// a WebSocket server, and reports every unexpected violation.
    pub async fn finish(mut self) -> Vec<String> {
        let mut failures = Vec::new();
        let closed = self.connection.close().await;
        let violations = self.connection.violations();
        if let Err(error) = closed {
            failures.push(format!("{}: {error:#}", self.context));
        }
        if let Some(server) = self.server {
            match server.stop().await {
                Ok(status) if status.success() => {}
                Ok(status) => failures.push(format!(
                    "{}: the WebSocket server exited with {status} after SIGTERM",
                    self.context
                )),
                Err(error) => failures.push(format!("{}: {error:#}", self.context)),
            }
        }
        failures.extend(violations.into_iter().map(|violation| {
            format!(
                "{}: violation `{}` ({:?}): {}\n    frame: {}",
                self.context,
                violation.rule,
                violation.direction,
                violation.detail,
                violation.frame
            )
        }));
        failures
    }
}

/// Whether `message` is a notification whose `params.processId` is `process_id`.
fn is_notification_of(message: &Value, process_id: &str) -> bool {
    message.get("id").is_none()
        && message.get("method").is_some()
        && message["params"]["processId"] == process_id
}

/// The bytes of a base64 `chunk` (empty when it is not base64: the validator reports that).
fn decode_chunk(chunk: &Value) -> Vec<u8> {
    chunk
        .as_str()
        .and_then(|text| base64_simd::STANDARD.decode_to_vec(text).ok())
        .unwrap_or_default()
}

/// Runs one case against a fresh server over `transport`; returns its
/// failures (none when it passed). A case whose `transports` leave
/// `transport` out is not run, and passes.
pub async fn run_case(
    named: &NamedCase,
    transport: Transport,
    schema: Arc<ProtocolSchema>,
    tally: Arc<Mutex<Tally>>,
) -> Vec<String> {
    let context = format!("{} ({transport})", named.name);
    if let Some(transports) = &named.case.transports
        && !transports.iter().any(|name| *name == transport.to_string())
    {
        return Vec::new();
    }
    match Session::connect(transport, &named.case.server, schema, tally, &context).await {
        Ok(session) => run_case_on(session, named).await,
        Err(error) => vec![format!("{context}: {error}")],
    }
}

/// Runs one case on `session` (with a fresh `tmp`), then finishes the
/// session; returns the case's failures.
pub async fn run_case_on(mut session: Session, named: &NamedCase) -> Vec<String> {
    let context = session.context.clone();
    let case = &named.case;
    let tmp = match tempfile::Builder::new().prefix("conformance-").tempdir() {
        Ok(tmp) => tmp,
        Err(error) => return vec![format!("{context}: no temporary directory: {error}")],
    };
    session.vars.set(
        "tmp",
        Value::String(tmp.path().to_string_lossy().into_owned()),
    );
    // The target of the `http/request` cases, on this machine.
    let http = HttpTestServer::start().await;
    session.vars.set("httpUrl", Value::String(http.url("")));
    let mut failures = Vec::new();
    if case.handshake
        && let Err(error) = session.handshake().await
    {
        failures.push(format!("{context}: handshake: {error}"));
    }
    if failures.is_empty() {
        for (index, step) in case.steps.iter().enumerate() {
            if let Err(error) = session.step(step).await {
                let comment = step
                    .comment
                    .as_deref()
                    .map(|comment| format!(" ({comment})"))
                    .unwrap_or_default();
                failures.push(format!("{context}: step {}{comment}: {error}", index + 1));
                break;
            }
        }
    }
    failures.extend(session.finish().await);
    failures
}
