//! Wire conformance suite for exec-server: every message on the wire checked
//! against `schema/exec-server.schema.json`.
//!
//! # Layout
//! - `schema`: [`ProtocolSchema`], the schema compiled once with the
//!   `jsonschema` crate, plus the `x-methods` and `x-error` tables.
//! - `binary_frames`: [`BinaryFrames`], the schema's `x-binaryFrames` read at
//!   run time, and the decoder that follows its layouts.
//! - `validator`: [`ConnectionValidator`], which checks every frame of a
//!   connection in both directions (envelope, params, results by request
//!   `id`, errors), and the [`Violation`]s it finds.
//! - `process_events`: the order rules of a process's notifications.
//! - `process_results`: the rules of `process/read` and `process/list`
//!   results that tie one field to another (`nextSeq`, `exitCode`).
//! - `coverage`: [`Tally`], frames, violations and the methods and error
//!   kinds a run exercised, and the summary line.
//! - `server`: [`ServerSettings`], what a case needs of the server, and the
//!   `exec_testkit::ServerLauncher` that starts it with them.
//! - `recording`: [`RecordingConnection`], a client connection that
//!   validates every frame it sends and receives.
//! - `pattern`: the placeholder language of the corpus.
//! - `corpus`: the case format of `cases/<method>/<case>.json` and its loader.
//! - `runner`: [`Session`] and [`run_case`], running a case over a transport.
//! - `body_deltas`: the `bodyDeltas` step, a streamed `http/request` body
//!   collected from its notifications.
//! - `negative`: invalid params generated from the schema ([`NegativePlan`]).
//! - `proxy`: the validating WebSocket [`Proxy`] of the `conformance-proxy` binary.

mod binary_frames;
mod body_deltas;
mod corpus;
mod coverage;
mod negative;
mod pattern;
mod process_events;
mod process_results;
mod proxy;
mod recording;
mod runner;
mod schema;
mod server;
mod validator;

pub use binary_frames::{BinaryFrames, FrameKind};
pub use corpus::{
    AwaitOutput, Case, ExpectedNotifications, NamedCase, Step, corpus_dir, load_corpus,
};
pub use coverage::{RecordedViolation, Tally};
pub use negative::{NegativePlan, Variant, VariantKind, run_plan};
pub use pattern::{Vars, interpolate, matches, substitute};
pub use proxy::{PROXY_ENV, Proxy, VIOLATIONS_ENV, ViolationSink, listen_authority};
pub use recording::RecordingConnection;
pub use runner::{HANDSHAKE_ID, PATIENCE, Session, Transport, run_case, run_case_on};
pub use schema::{Direction, MethodKind, MethodSpec, ProtocolSchema, SchemaError};
pub use server::{SERVER_ENV, ServerSettings};
pub use validator::{
    Checked, ConnectionValidator, Frame, INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST,
    METHOD_NOT_FOUND, Observation, PARSE_ERROR, Violation,
};
