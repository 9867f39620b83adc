//! The exec-server wire protocol (JSON-RPC 2.0), as Rust types generated from
//! `schema/exec-server.schema.json`.
//!
//! # Layout
//! - `types` (generated): one type per schema def: every request's `*Params`
//!   and `*Response`, every notification's `*Notification`, the enums and the
//!   error object.
//! - `methods` (generated): [`PROTOCOL_VERSION`] (the schema's
//!   `x-protocolVersion`), a constant per method name, a marker type per
//!   method implementing [`Request`] or [`Notification`], the [`METHODS`]
//!   table, and the [`for_each_request!`] / [`for_each_notification!`] macros
//!   that let a consumer handle every method without missing one.
//! - `method_table`: the hand-written shapes the generated table uses.
//! - `base64_bytes`: [`Base64Bytes`], the bytes type that stands for the
//!   schema's `Base64Bytes` def.
//! - `terminal_size`: [`TerminalSize::new`], the checked constructor of the
//!   generated [`TerminalSize`].
//!
//! Regenerate with `cargo xtask codegen`; never edit the generated files.

mod base64_bytes;
mod method_table;
mod methods;
mod terminal_size;
mod types;

pub use base64_bytes::Base64Bytes;
pub use method_table::{Direction, MethodInfo, MethodKind, Notification, Request};
pub use methods::*;
pub use types::*;

/// The schema the types were generated from, for validators.
pub const SCHEMA_JSON: &str = include_str!("../exec-server.schema.json");
