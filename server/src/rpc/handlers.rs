//! One handler per request of the protocol, named after its method
//! (`process/closeStdin` is `process_close_stdin`). A handler gets its params
//! already parsed into the generated `*Params` type and runs only after the
//! lifecycle check (see `lifecycle`); it returns its `*Response`, or an
//! [`Answer`] when something must happen once the response is queued.

use exec_protocol::*;

use super::answer::Answer;
use super::context::MethodContext;
use super::notifications;
use crate::error::ServerError;
use crate::session::{self, Session};
use crate::{environment, fs, http};

pub(super) async fn initialize(
    context: &MethodContext,
    params: InitializeParams,
) -> Result<InitializeResponse, ServerError> {
    context.begin_initialize()?;
    let acknowledged = params.acknowledge_output.unwrap_or(false);
    // Decided before the session is attached, so that its events are
    // encoded for this connection from the start (a resumed session's too).
    let binary_output = context
        .binary_output()
        .grant(params.binary_output.unwrap_or(false));
    let superseded = context.superseded().clone();
    let (session, generation) = match params.resume_session_id {
        Some(id) => {
            session::resume(&id, superseded, acknowledged, binary_output).inspect_err(|_| {
                context.abort_initialize();
            })?
        }
        None => {
            let session = Session::new(&context.config, notifications::ENCODER);
            let generation = session
                .attach(superseded, acknowledged, binary_output)
                .ok_or_else(|| {
                    ServerError::Internal(String::from(
                        "a new session ended before it was attached",
                    ))
                })?;
            (session, generation)
        }
    };
    let session_id = session.id().to_owned();
    context.attach(session, generation);
    let config = &context.config;
    Ok(InitializeResponse {
        binary_output: Some(binary_output),
        protocol_version: PROTOCOL_VERSION.to_owned(),
        session_id,
        server_info: ServerInfo {
            name: env!("CARGO_PKG_NAME").to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        },
        platform: Platform {
            os: std::env::consts::OS.to_owned(),
            arch: std::env::consts::ARCH.to_owned(),
        },
        containment: Some(Containment {
            mechanism: if crate::process::cgroup_directory().is_some() {
                ContainmentMechanism::Cgroup
            } else {
                ContainmentMechanism::ProcessTree
            },
            kill_on_server_death: crate::guardian::is_running(),
        }),
        limits: ServerLimits {
            retained_output_bytes_per_process: config.process.retained_output_bytes as u64,
            max_processes_per_connection: config.process.max_processes as u64,
            max_message_bytes: config.max_message_bytes as u64,
            session_ttl_ms: u64::try_from(config.session_ttl.as_millis()).unwrap_or(u64::MAX),
            max_file_handles_per_connection: Some(fs::MAX_FILE_HANDLES_PER_CONNECTION as u64),
        },
    })
}

/// `environment/info`: the server's shell, working directory and features.
pub(super) async fn environment_info(
    _context: &MethodContext,
    _params: EnvironmentInfoParams,
) -> Result<EnvironmentInfoResponse, ServerError> {
    Ok(environment::info())
}

/// `environment/status`: served at all, the connection is ready.
pub(super) async fn environment_status(
    _context: &MethodContext,
    _params: EnvironmentStatusParams,
) -> Result<EnvironmentStatusResponse, ServerError> {
    Ok(environment::status())
}

/// The `process/ack` notification: lets the process evict the output the
/// client received. Params that do not parse are logged and ignored (a
/// notification gets no reply).
pub(super) fn process_ack(context: &MethodContext, params: Option<&serde_json::value::RawValue>) {
    let Ok(session) = context.session() else {
        return;
    };
    let params = params.map_or("null", serde_json::value::RawValue::get);
    match serde_json::from_str::<ProcessAckNotification>(params) {
        Ok(ack) => session.processes().acknowledge(&ack.process_id, ack.seq),
        Err(error) => tracing::debug!(%error, "ignoring a `process/ack` with bad params"),
    }
}

/// Starts the process; its notifications go out once the response is queued.
pub(super) async fn process_start(
    context: &MethodContext,
    params: ProcessStartParams,
) -> Result<Answer<ProcessStartResponse>, ServerError> {
    let processes = context.session()?.processes().clone();
    let response = processes.start(params).await?;
    let process_id = response.process_id.clone();
    Ok(Answer::then(response, move || {
        processes.announce(&process_id)
    }))
}

pub(super) async fn process_read(
    context: &MethodContext,
    params: ProcessReadParams,
) -> Result<ProcessReadResponse, ServerError> {
    context.session()?.processes().read(params).await
}

pub(super) async fn process_write(
    context: &MethodContext,
    params: ProcessWriteParams,
) -> Result<ProcessWriteResponse, ServerError> {
    context.session()?.processes().write(params).await
}

pub(super) async fn process_close_stdin(
    context: &MethodContext,
    params: ProcessCloseStdinParams,
) -> Result<ProcessCloseStdinResponse, ServerError> {
    context.session()?.processes().close_stdin(params).await
}

pub(super) async fn process_resize(
    context: &MethodContext,
    params: ProcessResizeParams,
) -> Result<ProcessResizeResponse, ServerError> {
    context.session()?.processes().resize(params).await
}

pub(super) async fn process_signal(
    context: &MethodContext,
    params: ProcessSignalParams,
) -> Result<ProcessSignalResponse, ServerError> {
    context.session()?.processes().signal(params).await
}

pub(super) async fn process_terminate(
    context: &MethodContext,
    params: ProcessTerminateParams,
) -> Result<ProcessTerminateResponse, ServerError> {
    context.session()?.processes().terminate(params).await
}

pub(super) async fn process_list(
    context: &MethodContext,
    params: ProcessListParams,
) -> Result<ProcessListResponse, ServerError> {
    context.session()?.processes().list(params).await
}

pub(super) async fn fs_read_file(
    _context: &MethodContext,
    params: FsReadFileParams,
) -> Result<FsReadFileResponse, ServerError> {
    fs::read_file(params).await
}

pub(super) async fn fs_write_file(
    _context: &MethodContext,
    params: FsWriteFileParams,
) -> Result<FsWriteFileResponse, ServerError> {
    fs::write_file(params).await
}

pub(super) async fn fs_create_directory(
    _context: &MethodContext,
    params: FsCreateDirectoryParams,
) -> Result<FsCreateDirectoryResponse, ServerError> {
    fs::create_directory(params).await
}

pub(super) async fn fs_get_metadata(
    _context: &MethodContext,
    params: FsGetMetadataParams,
) -> Result<FsGetMetadataResponse, ServerError> {
    fs::get_metadata(params).await
}

pub(super) async fn fs_read_directory(
    _context: &MethodContext,
    params: FsReadDirectoryParams,
) -> Result<FsReadDirectoryResponse, ServerError> {
    fs::read_directory(params).await
}

pub(super) async fn fs_remove(
    _context: &MethodContext,
    params: FsRemoveParams,
) -> Result<FsRemoveResponse, ServerError> {
    fs::remove(params).await
}

pub(super) async fn fs_copy(
    _context: &MethodContext,
    params: FsCopyParams,
) -> Result<FsCopyResponse, ServerError> {
    fs::copy(params).await
}

pub(super) async fn fs_rename(
    _context: &MethodContext,
    params: FsRenameParams,
) -> Result<FsRenameResponse, ServerError> {
    fs::rename(params).await
}

pub(super) async fn fs_canonicalize(
    _context: &MethodContext,
    params: FsCanonicalizeParams,
) -> Result<FsCanonicalizeResponse, ServerError> {
    fs::canonicalize(params).await
}

pub(super) async fn fs_walk(
    _context: &MethodContext,
    params: FsWalkParams,
) -> Result<FsWalkResponse, ServerError> {
    fs::walk(params).await
}

pub(super) async fn fs_open(
    context: &MethodContext,
    params: FsOpenParams,
) -> Result<FsOpenResponse, ServerError> {
    context.file_handles().open(params).await
}

pub(super) async fn fs_read_block(
    context: &MethodContext,
    params: FsReadBlockParams,
) -> Result<FsReadBlockResponse, ServerError> {
    context.file_handles().read_block(params).await
}

pub(super) async fn fs_close(
    context: &MethodContext,
    params: FsCloseParams,
) -> Result<FsCloseResponse, ServerError> {
    Ok(context.file_handles().close(&params))
}

/// `http/request`: the request made from this machine. A streamed body
/// starts once the response is queued, so no delta overtakes it.
pub(super) async fn http_request(
    context: &MethodContext,
    params: HttpRequestParams,
) -> Result<Answer<HttpRequestResponse>, ServerError> {
    let outcome = http::request(
        params,
        context.http_streams(),
        context.config.max_message_bytes,
    )
    .await?;
    Ok(match outcome.pending {
        Some(pending) => {
            let sink = context.delta_sink(notifications::encode_http_body_delta);
            Answer::then(outcome.response, move || pending.start(sink))
        }
        None => Answer::new(outcome.response),
    })
}
