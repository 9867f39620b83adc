//! exec-server: runs and controls processes and files on this machine for a
//! remote client, over JSON-RPC 2.0 on stdio or WebSocket.

mod error;

pub use error::*;
