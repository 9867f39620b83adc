//! `environment/info` and `environment/status`: what Codex's client asks an
//! exec-server about the machine it runs on (Codex's `EnvironmentInfo` and
//! `EnvironmentStatus` in `codex-rs/exec-server-protocol/src/protocol.rs`).
//!
//! `environment/info` names the user's shell, the server's working directory
//! as a `file://` URI, and the optional features a Codex client checks before
//! sending newer `process/start` fields (`networkProxyLaunch`, false here:
//! see `process/sandbox.rs`). `environment/status` is a liveness check of an
//! initialized connection and always answers `ready`.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use exec_protocol::{
    EnvironmentCapabilities, EnvironmentInfoResponse, EnvironmentStatusKind,
    EnvironmentStatusResponse, ShellInfo,
};

/// The shell used when neither the password database nor `$SHELL` names one.
const FALLBACK_SHELL: &str = "/bin/sh";

/// The result of `environment/info` for this server process. Reads the
/// password database and the working directory (small, local reads); never
/// fails: an unreadable working directory is a null `cwd`.
pub(crate) fn info() -> EnvironmentInfoResponse {
    let shell = user_shell();
    EnvironmentInfoResponse {
        shell: ShellInfo {
            name: shell_name(&shell),
            path: shell.to_string_lossy().into_owned(),
        },
        cwd: std::env::current_dir()
            .ok()
            .map(|cwd| crate::path_uri::file_uri(&cwd)),
        capabilities: EnvironmentCapabilities {
            network_proxy_launch: false,
        },
    }
}

/// The result of `environment/status`: answered at all means ready.
pub(crate) fn status() -> EnvironmentStatusResponse {
    EnvironmentStatusResponse {
        status: EnvironmentStatusKind::Ready,
    }
}

/// The user's shell, as Codex's `default_user_shell` finds it on Unix: the
/// login shell of the server's user in `/etc/passwd`, else `$SHELL`, else
/// [`FALLBACK_SHELL`]; only an absolute path to an executable file counts.
fn user_shell() -> PathBuf {
    // `/proc/self` belongs to the process's effective user.
    let uid = std::fs::metadata("/proc/self").map(|metadata| metadata.uid());
    let from_passwd = uid.ok().and_then(|uid| {
        let passwd = std::fs::read("/etc/passwd").ok()?;
        login_shell(&passwd, uid)
    });
    let from_environment = std::env::var_os("SHELL").map(PathBuf::from);
    [from_passwd, from_environment]
        .into_iter()
        .flatten()
        .find(|shell| is_executable_file(shell))
        .unwrap_or_else(|| PathBuf::from(FALLBACK_SHELL))
}

/// The login shell (seventh field) of the `passwd(5)` line whose uid (third
/// field) is `uid`.
fn login_shell(passwd: &[u8], uid: u32) -> Option<PathBuf> {
    passwd.split(|&byte| byte == b'\n').find_map(|line| {
        let fields: Vec<&[u8]> = line.split(|&byte| byte == b':').collect();
        let line_uid = std::str::from_utf8(fields.get(2)?)
            .ok()?
            .parse::<u32>()
            .ok()?;
        let shell = fields.get(6).filter(|shell| !shell.is_empty())?;
        (line_uid == uid).then(|| PathBuf::from(OsStr::from_bytes(shell)))
    })
}

/// Whether `path` is absolute and names a file someone may execute.
fn is_executable_file(path: &Path) -> bool {
    path.is_absolute()
        && std::fs::metadata(path)
            .is_ok_and(|metadata| metadata.is_file() && metadata.permissions().mode() & 0o111 != 0)
}

/// The shell's stable name, as Codex reports it: its file name (`bash`,
/// `zsh`, `sh`, ...).
fn shell_name(shell: &Path) -> String {
    shell.file_name().map_or_else(
        || String::from("sh"),
        |name| name.to_string_lossy().into_owned(),
    )
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;

    use super::*;

    #[test]
    fn the_login_shell_is_the_seventh_field_of_the_uid_line() {
        let passwd = b"root:x:0:0:root:/root:/bin/bash\nu:x:1000:1000::/home/u:/usr/bin/zsh\nnologin:x:2::/:\n";
        assert_eq!(login_shell(passwd, 0), Some(PathBuf::from("/bin/bash")));
        assert_eq!(
            login_shell(passwd, 1000),
            Some(PathBuf::from("/usr/bin/zsh"))
        );
        assert_eq!(login_shell(passwd, 2), None);
        assert_eq!(login_shell(passwd, 7), None);
    }

    #[test]
    fn info_names_an_executable_shell_and_says_no_proxy_launch() {
        let info = info();
        assert!(is_executable_file(Path::new(&info.shell.path)), "{info:?}");
        assert_eq!(info.shell.name, shell_name(Path::new(&info.shell.path)));
        assert!(!info.capabilities.network_proxy_launch);
        assert!(
            info.cwd
                .as_deref()
                .is_some_and(|cwd| cwd.starts_with("file:///")),
            "{info:?}"
        );
        assert_eq!(status().status, EnvironmentStatusKind::Ready);
    }
}
