//! Failing closed on Codex's `sandbox` field of the `fs/*` methods.
//!
//! Every fs params of Codex carries `sandbox` (a `FileSystemSandboxContext`,
//! usually `null`); a non-null one asks Codex's server to run the call in a
//! sandboxed helper. This server has no such helper, and doing the call
//! unconfined would grant more than was asked for, so such a call is refused
//! with `sandboxUnavailable` before the filesystem is touched, by the same
//! rule as `process/start` (`crate::process::requested_profile`): only
//! Codex's danger-full-access profile, `permissions.type` `disabled`, asks
//! for nothing and runs.

use exec_protocol::SandboxRequest;

use crate::error::ServerError;

/// Refuses a call whose `sandbox` asks for confinement.
///
/// # Errors
/// `sandboxUnavailable` (-32602) naming the field and the permission type
/// asked for; nothing for a null or absent `sandbox`, or a `disabled` one.
pub(super) fn refuse_unapplied(sandbox: Option<&SandboxRequest>) -> Result<(), ServerError> {
    match sandbox.and_then(crate::process::requested_profile) {
        None => Ok(()),
        Some(profile) => Err(ServerError::SandboxUnavailable {
            process_id: None,
            field: "sandbox",
            reason: format!(
                "permissions of type `{profile}` need a sandbox, and this server applies none to filesystem calls"
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use exec_protocol::ErrorKind;
    use pretty_assertions::assert_eq;
    use serde_json::json;

    use super::*;
    use crate::error::INVALID_PARAMS;

    fn outcome(sandbox: serde_json::Value) -> Result<(), (i32, ErrorKind, bool)> {
        let sandbox: Option<SandboxRequest> =
            serde_json::from_value(sandbox).expect("a valid sandbox field");
        refuse_unapplied(sandbox.as_ref()).map_err(|error| {
            let object = error.to_error_object();
            let has_process_id = object.data.is_some_and(|data| data.process_id.is_some());
            (object.code, error.kind(), has_process_id)
        })
    }

    #[test]
    fn only_no_sandbox_or_a_disabled_one_runs() {
        assert_eq!(outcome(json!(null)), Ok(()));
        assert_eq!(
            outcome(json!({"permissions": {"type": "disabled"}})),
            Ok(())
        );
        for asking in [
            json!({"permissions": {"type": "managed", "fileSystem": {}}}),
            json!({"permissions": {"type": "external"}}),
            json!({}),
        ] {
            assert_eq!(
                outcome(asking.clone()),
                Err((INVALID_PARAMS, ErrorKind::SandboxUnavailable, false)),
                "{asking}"
            );
        }
    }
}
