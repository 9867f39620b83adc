//! Failing closed on Codex's sandbox fields of `process/start`.
//!
//! Codex's client may ask the executor to confine a process: `sandbox` (a
//! `FileSystemSandboxContext` whose `permissions` is a `PermissionProfile`
//! tagged by `type`), `enforceManagedNetwork` with `managedNetwork` (route
//! the network through a managed proxy), and `networkProxy` (launch such a
//! proxy). This server applies none of them, and running the process
//! unconfined would silently grant more than was asked for. So a start that
//! asks for any of them is refused with `sandboxUnavailable` before anything
//! is spawned. The one `sandbox` that asks for nothing is Codex's
//! danger-full-access profile, `permissions.type` `disabled`: that start
//! runs, and its result says `sandboxType: "none"` like every other.

use exec_protocol::{ProcessStartParams, SandboxRequest};

use crate::error::ServerError;

/// Refuses `params` when it asks for confinement this server does not apply.
/// Errors: `SandboxUnavailable` naming the first such field.
pub(crate) fn refuse_unapplied(params: &ProcessStartParams) -> Result<(), ServerError> {
    let refuse = |field: &'static str, reason: String| ServerError::SandboxUnavailable {
        process_id: Some(params.process_id.clone()),
        field,
        reason,
    };
    if let Some(profile) = params.sandbox.as_ref().and_then(requested_profile) {
        return Err(refuse(
            "sandbox",
            format!("permissions of type `{profile}` need a sandbox, and this server applies none"),
        ));
    }
    if params.enforce_managed_network == Some(true) {
        return Err(refuse(
            "enforceManagedNetwork",
            String::from("this server cannot route a process's network through a managed proxy"),
        ));
    }
    if params.managed_network.is_some() {
        return Err(refuse(
            "managedNetwork",
            String::from("this server does not apply managed-network policies"),
        ));
    }
    if params.network_proxy.is_some() {
        return Err(refuse(
            "networkProxy",
            String::from(
                "this server cannot launch a network proxy (`networkProxyLaunch` is false)",
            ),
        ));
    }
    Ok(())
}

/// The permission profile type a `sandbox` asks to be enforced, or `None`
/// for `disabled` (no sandbox wanted). The `fs/*` methods refuse their
/// `sandbox` by the same rule (`fs/sandbox.rs`). Anything else, including a missing
/// `permissions` or `type` and `external` (which says some outer sandbox
/// already confines the process, a claim this server cannot check), counts
/// as asking.
pub(crate) fn requested_profile(sandbox: &SandboxRequest) -> Option<String> {
    let profile_type = sandbox
        .permissions
        .as_ref()
        .and_then(|permissions| permissions.type_.as_deref());
    match profile_type {
        Some("disabled") => None,
        Some(other) => Some(other.to_owned()),
        None => Some(String::from("(missing)")),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use exec_protocol::{AbsolutePath, ErrorKind};
    use pretty_assertions::assert_eq;
    use serde::de::DeserializeOwned;
    use serde_json::{Value, json};

    use super::*;

    fn params() -> ProcessStartParams {
        ProcessStartParams {
            arg0: None,
            argv: vec![String::from("true")],
            cwd: AbsolutePath(String::from("/")),
            enforce_managed_network: None,
            env: BTreeMap::new(),
            env_policy: None,
            inherit_env: None,
            managed_network: None,
            network_proxy: None,
            pipe_stdin: None,
            process_id: "p".parse().expect("valid id"),
            sandbox: None,
            size: None,
            timeout_ms: None,
            tty: false,
        }
    }

    /// `value` read as the field's type, the way the server reads the wire.
    fn object<T: DeserializeOwned>(value: Value) -> Option<T> {
        Some(serde_json::from_value(value).expect("a valid field"))
    }

    fn refused_field(params: &ProcessStartParams) -> Option<&'static str> {
        match refuse_unapplied(params) {
            Ok(()) => None,
            Err(error) => {
                assert_eq!(error.kind(), ErrorKind::SandboxUnavailable);
                match error {
                    ServerError::SandboxUnavailable { field, .. } => Some(field),
                    _ => None,
                }
            }
        }
    }

    #[test]
    fn no_sandbox_fields_and_a_disabled_profile_run() {
        assert_eq!(refused_field(&params()), None);
        let mut disabled = params();
        disabled.sandbox = object(json!({"permissions": {"type": "disabled"}, "cwd": "file:///"}));
        disabled.enforce_managed_network = Some(false);
        assert_eq!(refused_field(&disabled), None);
    }

    #[test]
    fn every_confinement_asked_for_is_refused() {
        for sandbox in [
            json!({"permissions": {"type": "managed", "fileSystem": {}, "network": "restricted"}}),
            json!({"permissions": {"type": "external", "network": "enabled"}}),
            json!({"permissions": {}}),
            json!({}),
        ] {
            let mut request = params();
            request.sandbox = object(sandbox);
            assert_eq!(refused_field(&request), Some("sandbox"));
        }
        let mut request = params();
        request.enforce_managed_network = Some(true);
        assert_eq!(refused_field(&request), Some("enforceManagedNetwork"));
        let mut request = params();
        request.managed_network = object(json!({"loopbackPorts": [], "allowLocalBinding": false}));
        assert_eq!(refused_field(&request), Some("managedNetwork"));
        let mut request = params();
        request.network_proxy = object(json!({"proxy": {}}));
        assert_eq!(refused_field(&request), Some("networkProxy"));
    }
}
