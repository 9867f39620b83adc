//! [`LaunchSpec`]: a checked `process/start` request, turned into what both
//! spawners (pipes and PTYs) need: the program found in the child's `PATH`,
//! the child's whole environment (with the tree marker), and its working
//! directory; and [`LaunchSpec::exec_image`], the one place that builds what
//! the child of a spec execs, which both spawners start from.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Path, PathBuf};

use exec_protocol::ProcessStartParams;
use nix::unistd::{AccessFlags, access};

use super::procfs::TREE_MARKER_VARIABLE;
use super::spawn::ExecImage;
use super::{env_policy, sandbox};
use crate::error::ServerError;

/// The environment variable `serve` reads its connection token from (when
/// no `--token-file` is given). The server blanks it in its own environment
/// after reading it, and never passes it to the processes it starts.
pub const TOKEN_ENV_VARIABLE: &str = "EXEC_SERVER_TOKEN";

/// The search path `execvp` uses when the environment has no `PATH`
/// (POSIX `confstr(_CS_PATH)` on Linux).
const DEFAULT_PATH: &str = "/bin:/usr/bin";

/// The default PTY size, in rows and columns.
const DEFAULT_TERMINAL_SIZE: (u16, u16) = (24, 80);

/// Everything needed to start one process.
#[derive(Debug, Clone)]
pub(crate) struct LaunchSpec {
    /// `argv[0]` as the client sent it, for error messages.
    pub program_name: String,
    /// The program that runs: `argv[0]` resolved in the child's `PATH`.
    pub program: PathBuf,
    /// `argv[0]` as the child sees it (`arg0` when given).
    pub arg0: String,
    /// The whole argument vector as sent (the PTY spawner resolves `argv[0]` itself).
    pub argv: Vec<String>,
    /// The working directory, absolute and existing.
    pub cwd: PathBuf,
    /// The child's whole environment.
    pub env: BTreeMap<OsString, OsString>,
    /// Whether a pipe process keeps its stdin open for `process/write`.
    pub pipe_stdin: bool,
    /// Rows and columns of the PTY, for PTY processes.
    pub terminal_size: Option<(u16, u16)>,
}

impl LaunchSpec {
    /// Checks `params` and resolves the program.
    ///
    /// `tree_marker` is set as [`TREE_MARKER_VARIABLE`] in the child's
    /// environment. Errors: `SandboxUnavailable` for a sandbox or managed
    /// network it cannot apply, `InvalidParams` for an empty `argv`,
    /// `InvalidPath` for a `cwd` that is neither an absolute path nor a local
    /// `file://` URI, `SpawnFailed` for a
    /// working directory or program that does not exist or cannot run.
    pub(crate) fn new(params: &ProcessStartParams, tree_marker: &str) -> Result<Self, ServerError> {
        sandbox::refuse_unapplied(params)?;
        let Some(program_name) = params.argv.first().cloned() else {
            return Err(ServerError::InvalidParams {
                message: String::from("`argv` must not be empty"),
            });
        };
        // An absolute path or a `file://` URI (Codex's clients send URIs).
        let cwd = crate::path_uri::parse(params.cwd.as_str())?.path;
        let spawn_failed = |source: io::Error| ServerError::SpawnFailed {
            program: program_name.clone(),
            source,
        };
        match std::fs::metadata(&cwd) {
            Ok(metadata) if metadata.is_dir() => {}
            Ok(_) => {
                return Err(spawn_failed(io::Error::new(
                    io::ErrorKind::NotADirectory,
                    format!("working directory {} is not a directory", cwd.display()),
                )));
            }
            Err(error) => {
                return Err(spawn_failed(io::Error::new(
                    error.kind(),
                    format!("working directory {}: {error}", cwd.display()),
                )));
            }
        }

        let mut env = base_environment(params);
        env.extend(
            params
                .env
                .iter()
                .map(|(name, value)| (OsString::from(name), OsString::from(value))),
        );
        env.insert(
            OsString::from(TREE_MARKER_VARIABLE),
            OsString::from(tree_marker),
        );

        let search_path = env.get(OsStr::new("PATH")).map(OsString::as_os_str);
        let program = resolve_program(&program_name, search_path, &cwd).map_err(spawn_failed)?;
        Ok(Self {
            arg0: params.arg0.clone().unwrap_or_else(|| program_name.clone()),
            program_name,
            program,
            argv: params.argv.clone(),
            cwd,
            env,
            pipe_stdin: params.pipe_stdin == Some(true),
            terminal_size: params.tty.then(|| {
                params.size.as_ref().map_or(DEFAULT_TERMINAL_SIZE, |size| {
                    (size.rows.get(), size.cols.get())
                })
            }),
        })
    }

    /// The arguments after `argv[0]`.
    pub(crate) fn args(&self) -> &[String] {
        self.argv.get(1..).unwrap_or_default()
    }

    /// What the child of this spec execs: the resolved program, shown
    /// `arg0` as its `argv[0]`, with the arguments, the working directory
    /// and exactly the spec's environment (nothing of the server's own).
    ///
    /// Both spawners start from it and add only their stdio and how the child
    /// leaves the server's process group (`pipe`: a group of its own; `pty`:
    /// a session of its own); placing the child in the containment cgroup
    /// is done by `spawn` for both. Errors: `InvalidInput` when the program, an
    /// argument, the working directory or an environment entry holds a NUL
    /// byte.
    pub(crate) fn exec_image(&self) -> io::Result<ExecImage> {
        ExecImage::new(
            &self.program,
            &self.arg0,
            self.args().iter().map(String::as_str),
            &self.env,
            &self.cwd,
        )
    }
}

/// The environment the request's `env` is applied over: what `envPolicy`
/// builds from the server's (Codex's rules), else all of the server's with
/// `inheritEnv`, else nothing. The server's connection token is never in it,
/// whatever the policy says (a `set` or `env` entry of that name is the
/// client's own value, not the token).
fn base_environment(params: &ProcessStartParams) -> BTreeMap<OsString, OsString> {
    let server_variables = || std::env::vars_os().filter(|(name, _)| name != TOKEN_ENV_VARIABLE);
    match &params.env_policy {
        Some(policy) => env_policy::build(server_variables(), policy),
        None if params.inherit_env == Some(true) => server_variables().collect(),
        None => BTreeMap::new(),
    }
}

/// Finds the program `name` the way `execvp` would with the child's `PATH`: a
/// name with a `/` is a path (relative to the child's working directory),
/// any other name is searched in `PATH` (or [`DEFAULT_PATH`] when unset).
fn resolve_program(name: &str, search_path: Option<&OsStr>, cwd: &Path) -> io::Result<PathBuf> {
    if name.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "the program name is empty",
        ));
    }
    if name.contains('/') {
        return Ok(cwd.join(name));
    }
    let search_path = search_path.unwrap_or(OsStr::new(DEFAULT_PATH));
    let mut found_not_executable = false;
    for directory in std::env::split_paths(search_path) {
        // An empty entry means the current directory, as for `execvp`.
        let candidate = cwd.join(directory).join(name);
        if !candidate.is_file() {
            continue;
        }
        if access(&candidate, AccessFlags::X_OK).is_ok() {
            return Ok(candidate);
        }
        found_not_executable = true;
    }
    Err(if found_not_executable {
        io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("`{name}` in PATH is not executable"),
        )
    } else {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("`{name}` not found in PATH"),
        )
    })
}

#[cfg(test)]
mod tests {
    use exec_protocol::{AbsolutePath, ErrorKind};
    use pretty_assertions::assert_eq;

    use super::*;

    fn params(argv: &[&str], cwd: &str) -> ProcessStartParams {
        ProcessStartParams {
            arg0: None,
            argv: argv.iter().map(|arg| arg.to_string()).collect(),
            cwd: AbsolutePath(cwd.to_owned()),
            env: BTreeMap::from([(String::from("PATH"), String::from("/usr/bin:/bin"))]),
            inherit_env: None,
            pipe_stdin: None,
            process_id: "p".parse().expect("valid id"),
            size: None,
            env_policy: None,
            sandbox: None,
            enforce_managed_network: None,
            managed_network: None,
            network_proxy: None,
            timeout_ms: None,
            tty: false,
        }
    }

    #[test]
    fn resolves_the_program_in_the_child_path_and_sets_the_marker() {
        let spec = LaunchSpec::new(&params(&["sh", "-c", "true"], "/"), "1/2/3/").expect("valid");
        assert!(spec.program.ends_with("sh"), "{:?}", spec.program);
        assert_eq!(spec.args(), ["-c", "true"]);
        assert_eq!(spec.arg0, "sh");
        assert_eq!(
            spec.env
                .get(OsStr::new(TREE_MARKER_VARIABLE))
                .map(OsString::as_os_str),
            Some(OsStr::new("1/2/3/"))
        );
        assert_eq!(spec.env.len(), 2);
    }

    #[test]
    fn a_file_uri_names_the_working_directory() {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let uri = crate::path_uri::file_uri(directory.path());
        let spec = LaunchSpec::new(&params(&["sh"], &uri), "m/").expect("valid");
        assert_eq!(spec.cwd, directory.path());
    }

    #[test]
    fn refuses_bad_requests_with_their_kinds() {
        let kind = |params: ProcessStartParams| {
            LaunchSpec::new(&params, "m/")
                .err()
                .map(|error| error.kind())
        };
        for cwd in ["relative/dir", "file://server/dir", "file:///a%00b"] {
            assert_eq!(
                kind(params(&["sh"], cwd)),
                Some(ErrorKind::InvalidPath),
                "{cwd}"
            );
        }
        assert_eq!(
            kind(params(&["sh"], "/definitely/not/a/dir")),
            Some(ErrorKind::SpawnFailed)
        );
        assert_eq!(
            kind(params(&["no-such-program-anywhere"], "/")),
            Some(ErrorKind::SpawnFailed)
        );
        assert_eq!(kind(params(&[], "/")), Some(ErrorKind::InvalidParams));
    }
}
