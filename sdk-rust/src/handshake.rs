//! The `initialize` handshake's pieces shared by a first connection
//! ([`ExecClient`](crate::ExecClient)'s connect functions) and a resume (the
//! reconnect supervisor): the params, and the check of the answer.

use exec_protocol::{InitializeParams, InitializeResponse, PROTOCOL_VERSION};

use crate::error::ClientError;
use crate::options::ConnectOptions;

/// The `initialize` params: the client's name and version from `options`,
/// the session to resume, whether output will be acknowledged, and, over
/// WebSocket (`websocket`), binary output frames when `options` ask for them.
pub(crate) fn initialize_params(
    options: &ConnectOptions,
    resume_session_id: Option<String>,
    acknowledge_output: bool,
    websocket: bool,
) -> InitializeParams {
    InitializeParams {
        binary_output: (websocket && options.binary_output).then_some(true),
        client_name: options.client_name.clone(),
        client_version: options.client_version.clone(),
        resume_session_id,
        acknowledge_output: acknowledge_output.then_some(true),
    }
}

/// Checks that the server speaks this client's protocol version.
///
/// # Errors
/// [`ClientError::Protocol`] naming both versions.
pub(crate) fn check_version(response: &InitializeResponse) -> Result<(), ClientError> {
    if response.protocol_version != PROTOCOL_VERSION {
        return Err(ClientError::Protocol(format!(
            "the server speaks `{}`, this client `{PROTOCOL_VERSION}`",
            response.protocol_version
        )));
    }
    Ok(())
}
