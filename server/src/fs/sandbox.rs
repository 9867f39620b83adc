//! Failing closed on the `sandbox` field Codex sends with every `fs/*`
//! request (`FileSystemSandboxContext`): this server applies no sandbox, so
//! an operation asked to run confined is refused rather than run with more
//! access than was asked for. The field is read as `process/start` reads its
//! own (`process::requested_profile`): only `permissions.type` `disabled`
//! asks for nothing.

use exec_protocol::SandboxRequest;

use crate::error::ServerError;
use crate::process::requested_profile;

/// Refuses an fs request whose `sandbox` asks for confinement.
/// Errors: `sandboxUnavailable` (-32602) naming the profile type asked for.
pub(super) fn refuse_sandbox(sandbox: Option<&SandboxRequest>) -> Result<(), ServerError> {
    match sandbox.and_then(requested_profile) {
        Some(profile) => Err(ServerError::SandboxUnavailable {
            process_id: None,
            field: "sandbox",
            reason: format!(
                "permissions of type `{profile}` need a sandbox, and this server applies none"
            ),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use exec_protocol::ErrorKind;
    use pretty_assertions::assert_eq;
    use serde_json::json;

    use super::*;

    fn sandbox(value: serde_json::Value) -> SandboxRequest {
        serde_json::from_value(value).expect("a valid sandbox")
    }

    #[test]
    fn only_no_sandbox_or_a_disabled_profile_is_accepted() {
        assert!(refuse_sandbox(None).is_ok());
        let disabled = sandbox(json!({"permissions": {"type": "disabled"}}));
        assert!(refuse_sandbox(Some(&disabled)).is_ok());
        for asking in [
            json!({"permissions": {"type": "managed"}}),
            json!({"permissions": null}),
            json!({}),
        ] {
            let error = refuse_sandbox(Some(&sandbox(asking.clone()))).expect_err("refused");
            let object = error.to_error_object();
            assert_eq!(
                (
                    object.code,
                    error.kind(),
                    object.data.and_then(|data| data.process_id)
                ),
                (-32602, ErrorKind::SandboxUnavailable, None),
                "{asking}"
            );
        }
    }
}
