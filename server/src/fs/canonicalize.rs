//! `fs/canonicalize`: a path with its symlinks, `.` and `..` resolved, as
//! Codex's `ExecutorFileSystem::canonicalize` answers it.

use std::fs;

use exec_protocol::{AbsolutePath, FsCanonicalizeParams, FsCanonicalizeResponse};

use super::paths::{client_path, fs_error, named_in};
use super::run_metadata;
use super::sandbox::refuse_unapplied;
use crate::error::ServerError;

/// `fs/canonicalize`: resolves `path` (an absolute path or `file://` URI)
/// to the canonical absolute path of what it names (realpath(3)), written
/// in the form the request used.
///
/// # Errors
/// `sandboxUnavailable` for a `sandbox` asking for confinement;
/// `invalidPath` for a path that is neither absolute nor a local `file:`
/// URI; `notFound` (a missing path or dangling link), `notADirectory`,
/// `permissionDenied` or `io` from the OS; `limitExceeded` or `io` from the
/// fs pool.
pub async fn canonicalize(
    params: FsCanonicalizeParams,
) -> Result<FsCanonicalizeResponse, ServerError> {
    refuse_unapplied(params.sandbox.as_ref())?;
    let requested = client_path(&params.path)?;
    let path = requested.path.clone();
    let canonical = run_metadata(&requested.path, move || {
        fs::canonicalize(&path).map_err(|error| fs_error(&path, error))
    })
    .await
    .map_err(|error| named_in(requested.form, error))?;
    Ok(FsCanonicalizeResponse {
        path: AbsolutePath(requested.form.render(&canonical)),
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use exec_protocol::ErrorKind;
    use pretty_assertions::assert_eq;

    use super::*;
    use crate::fs::test_support::TestResult;
    use crate::path_uri::file_uri;

    fn params(path: String) -> FsCanonicalizeParams {
        FsCanonicalizeParams {
            path: AbsolutePath(path),
            sandbox: None,
        }
    }

    #[tokio::test]
    async fn canonicalize_resolves_links_and_dots_in_the_request_form() -> TestResult {
        let directory = tempfile::tempdir()?;
        let root = fs::canonicalize(directory.path())?;
        let file = root.join("a b");
        fs::write(&file, b"x")?;
        fs::create_dir(root.join("nested"))?;
        symlink(&file, root.join("link"))?;
        let native = |path: &std::path::Path| path.display().to_string();
        let cases = [
            (native(&root.join("nested/../a b")), native(&file)),
            (native(&root.join("link")), native(&file)),
            (file_uri(&root.join("nested/../link")), file_uri(&file)),
            (
                format!("{}/./nested/", file_uri(&root)),
                file_uri(&root.join("nested")),
            ),
        ];
        for (request, expected) in cases {
            let response = canonicalize(params(request.clone())).await?;
            assert_eq!(response.path.0, expected, "{request}");
        }
        Ok(())
    }

    #[tokio::test]
    async fn canonicalize_errors() -> TestResult {
        let directory = tempfile::tempdir()?;
        let missing = directory.path().join("missing");
        let dangling = directory.path().join("dangling");
        symlink(&missing, &dangling)?;
        let cases = [
            (missing.display().to_string(), ErrorKind::NotFound),
            (dangling.display().to_string(), ErrorKind::NotFound),
            (String::from("relative"), ErrorKind::InvalidPath),
            (String::from("file://host/x"), ErrorKind::InvalidPath),
        ];
        for (request, expected) in cases {
            let error = canonicalize(params(request.clone()))
                .await
                .expect_err("refused");
            assert_eq!(error.kind(), expected, "{request}");
        }
        let sandboxed = FsCanonicalizeParams {
            path: AbsolutePath(String::from("/")),
            sandbox: serde_json::from_value(
                serde_json::json!({"permissions": {"type": "managed"}}),
            )?,
        };
        let error = canonicalize(sandboxed).await.expect_err("refused");
        assert_eq!(error.kind(), ErrorKind::SandboxUnavailable);
        Ok(())
    }
}
