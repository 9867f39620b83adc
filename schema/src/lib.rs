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
//! - `frame_layout` (generated): the layout of binary WebSocket frames (the
//!   schema's `x-binaryFrames`) as constants: kind codes, header lengths,
//!   field offsets, enum codes.
//! - `binary_frame`: the codec of those frames ([`encode_process_output`],
//!   [`decode_binary_frame`]; [`write_process_output_head`] for a frame
//!   whose chunk is already in place), written with the generated constants alone.
//! - `method_table`: the hand-written shapes the generated table uses.
//! - `base64_bytes`: [`Base64Bytes`], the bytes type that stands for the
//!   schema's `Base64Bytes` def.
//! - `terminal_size`: [`TerminalSize::new`], the checked constructor of the
//!   generated [`TerminalSize`].
//!
//! Regenerate with `cargo xtask codegen`; never edit the generated files.

mod base64_bytes;
mod binary_frame;
mod frame_layout;
mod method_table;
mod methods;
mod terminal_size;
mod types;

pub use base64_bytes::Base64Bytes;
pub use binary_frame::{
    BinaryFrameError, ProcessOutputHead, decode_binary_frame, encode_process_output,
    process_output_head_length, read_process_output_head, write_process_output_head,
};
pub use frame_layout::*;
pub use method_table::{Direction, MethodInfo, MethodKind, Notification, Request};
pub use methods::*;
pub use types::*;

/// The schema the types were generated from, for validators.
pub const SCHEMA_JSON: &str = include_str!("../exec-server.schema.json");
