//! The method table made callable: one jsonrpsee [`RpcModule`] per connection
//! with every request of the schema registered, each parsed into its
//! generated `*Params` type and answered with its `*Response` type.
//!
//! Registration iterates over `exec_protocol::for_each_request!`, and each
//! method calls the function of the same snake-case name below: a method
//! added to the schema without a handler here does not compile.

use std::sync::Arc;

use exec_protocol::*;
use jsonrpsee::RpcModule;
use jsonrpsee::types::{ErrorObjectOwned, Params};
use serde::de::DeserializeOwned;

use crate::connection::ConnectionState;
use crate::error::ServerError;
use crate::fs;

/// Builds the module serving every request of the protocol for one connection.
pub fn rpc_module(state: Arc<ConnectionState>) -> RpcModule<ConnectionState> {
    let mut module = RpcModule::from_arc(state);
    macro_rules! register {
        ($(($marker:path, $snake:ident, $wire:literal, $params:path, $response:path, $direction:ident)),* $(,)?) => {$(
            let registered = module.register_async_method($wire, |params, state, _extensions| async move {
                let params: $params = parse_params(&params)?;
                $snake(&state, params).await.map_err(into_error_object)
            });
            if let Err(error) = registered {
                // Only a name registered twice gets here, which the schema's
                // method table (a JSON object) cannot hold.
                tracing::error!(method = $wire, %error, "method registered twice");
            }
        )*};
    }
    exec_protocol::for_each_request!(register);
    module
}

/// Parses `params` into the method's params type; a missing `params` counts
/// as `{}`, so methods whose params are all optional can omit it.
fn parse_params<T: DeserializeOwned>(params: &Params<'_>) -> Result<T, ErrorObjectOwned> {
    let text = params.as_str().unwrap_or("{}");
    serde_json::from_str(text).map_err(|error| {
        into_error_object(ServerError::InvalidParams {
            message: error.to_string(),
        })
    })
}

/// The one place a [`ServerError`] becomes jsonrpsee's error object.
fn into_error_object(error: ServerError) -> ErrorObjectOwned {
    let object = error.to_error_object();
    ErrorObjectOwned::owned(object.code, object.message, object.data)
}

async fn initialize(
    state: &ConnectionState,
    _params: InitializeParams,
) -> Result<InitializeResponse, ServerError> {
    state.begin_initialize()?;
    let limits = ServerLimits {
        retained_output_bytes_per_process: state.config.process.retained_output_bytes as u64,
        max_processes_per_connection: state.config.process.max_processes as u64,
        max_message_bytes: state.config.max_message_bytes as u64,
    };
    Ok(InitializeResponse {
        protocol_version: PROTOCOL_VERSION.to_owned(),
        session_id: state.session_id.clone(),
        server_info: ServerInfo {
            name: env!("CARGO_PKG_NAME").to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        },
        platform: Platform {
            os: std::env::consts::OS.to_owned(),
            arch: std::env::consts::ARCH.to_owned(),
        },
        limits,
    })
}

async fn process_start(
    state: &ConnectionState,
    params: ProcessStartParams,
) -> Result<ProcessStartResponse, ServerError> {
    state.require_ready()?;
    state.processes.start(params).await
}

async fn process_read(
    state: &ConnectionState,
    params: ProcessReadParams,
) -> Result<ProcessReadResponse, ServerError> {
    state.require_ready()?;
    state.processes.read(params).await
}

async fn process_write(
    state: &ConnectionState,
    params: ProcessWriteParams,
) -> Result<ProcessWriteResponse, ServerError> {
    state.require_ready()?;
    state.processes.write(params).await
}

async fn process_close_stdin(
    state: &ConnectionState,
    params: ProcessCloseStdinParams,
) -> Result<ProcessCloseStdinResponse, ServerError> {
    state.require_ready()?;
    state.processes.close_stdin(params).await
}

async fn process_resize(
    state: &ConnectionState,
    params: ProcessResizeParams,
) -> Result<ProcessResizeResponse, ServerError> {
    state.require_ready()?;
    state.processes.resize(params).await
}

async fn process_signal(
    state: &ConnectionState,
    params: ProcessSignalParams,
) -> Result<ProcessSignalResponse, ServerError> {
    state.require_ready()?;
    state.processes.signal(params).await
}

async fn process_terminate(
    state: &ConnectionState,
    params: ProcessTerminateParams,
) -> Result<ProcessTerminateResponse, ServerError> {
    state.require_ready()?;
    state.processes.terminate(params).await
}

async fn process_list(
    state: &ConnectionState,
    params: ProcessListParams,
) -> Result<ProcessListResponse, ServerError> {
    state.require_ready()?;
    state.processes.list(params).await
}

async fn fs_read_file(
    state: &ConnectionState,
    params: FsReadFileParams,
) -> Result<FsReadFileResponse, ServerError> {
    state.require_ready()?;
    fs::read_file(params).await
}

async fn fs_write_file(
    state: &ConnectionState,
    params: FsWriteFileParams,
) -> Result<FsWriteFileResponse, ServerError> {
    state.require_ready()?;
    fs::write_file(params).await
}

async fn fs_create_directory(
    state: &ConnectionState,
    params: FsCreateDirectoryParams,
) -> Result<FsCreateDirectoryResponse, ServerError> {
    state.require_ready()?;
    fs::create_directory(params).await
}

async fn fs_get_metadata(
    state: &ConnectionState,
    params: FsGetMetadataParams,
) -> Result<FsGetMetadataResponse, ServerError> {
    state.require_ready()?;
    fs::get_metadata(params).await
}

async fn fs_read_directory(
    state: &ConnectionState,
    params: FsReadDirectoryParams,
) -> Result<FsReadDirectoryResponse, ServerError> {
    state.require_ready()?;
    fs::read_directory(params).await
}

async fn fs_remove(
    state: &ConnectionState,
    params: FsRemoveParams,
) -> Result<FsRemoveResponse, ServerError> {
    state.require_ready()?;
    fs::remove(params).await
}

async fn fs_copy(
    state: &ConnectionState,
    params: FsCopyParams,
) -> Result<FsCopyResponse, ServerError> {
    state.require_ready()?;
    fs::copy(params).await
}

async fn fs_rename(
    state: &ConnectionState,
    params: FsRenameParams,
) -> Result<FsRenameResponse, ServerError> {
    state.require_ready()?;
    fs::rename(params).await
}
