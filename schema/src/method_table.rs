//! The shapes of the generated method table: what each entry says about a
//! method, and the traits that tie a method's name to its types.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Whether a method expects a response (JSON-RPC 2.0 request) or not (notification).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MethodKind {
    /// Carries an `id` and gets exactly one response.
    Request,
    /// Carries no `id` and gets no response.
    Notification,
}

/// Which peer sends a method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Sent by the client, handled by the server.
    ClientToServer,
    /// Sent by the server, handled by the client.
    ServerToClient,
}

/// One entry of the schema's `x-methods`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MethodInfo {
    /// The wire name, e.g. `process/start`.
    pub name: &'static str,
    /// Request or notification.
    pub kind: MethodKind,
    /// Who sends it.
    pub direction: Direction,
    /// The schema def of its `params` (the `X` of `#/$defs/X`).
    pub params: &'static str,
    /// The schema def of its `result`; `None` for notifications.
    pub result: Option<&'static str>,
}

/// A request method: its wire name, direction, params and response types.
pub trait Request {
    /// The wire name.
    const METHOD: &'static str;
    /// Who sends it.
    const DIRECTION: Direction;
    /// The type of `params`.
    type Params: Serialize + DeserializeOwned + Send + 'static;
    /// The type of `result`.
    type Response: Serialize + DeserializeOwned + Send + 'static;
}

/// A notification method: its wire name, direction and params type.
pub trait Notification {
    /// The wire name.
    const METHOD: &'static str;
    /// Who sends it.
    const DIRECTION: Direction;
    /// The type of `params`.
    type Params: Serialize + DeserializeOwned + Send + 'static;
}
