//! `fs/getMetadata`: a path's type, size, mode and times.

use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::time::{SystemTime, UNIX_EPOCH};

use exec_protocol::{FsGetMetadataParams, FsGetMetadataResponse};

use super::paths::{client_path, fs_error, named_in};
use super::run_metadata;
use super::sandbox::refuse_unapplied;
use crate::error::ServerError;
use crate::path_uri::ClientPath;

/// What `createdAtMs` and `modifiedAtMs` say when the filesystem records no
/// such time (or one outside an `i64` of milliseconds): 0, as Codex's local
/// file system answers, whose clients read both as plain integers.
const UNKNOWN_TIME_MS: i64 = 0;

/// `fs/getMetadata`: describes a path: its type, size in bytes, `st_mode`,
/// and birth and modification times in milliseconds since the Unix epoch.
///
/// `followSymlinks` (default true, which is all Codex does) describes a
/// symlink's target; with false the link itself. Either way `isSymlink` says
/// whether the path itself is a link, as Codex's does (it reads the type
/// from the target and `isSymlink` from the link). A time the filesystem
/// does not record is [`UNKNOWN_TIME_MS`] (the birth time comes from
/// `statx` on Linux, and some filesystems have none).
///
/// # Errors
/// `sandboxUnavailable` for a `sandbox` asking for confinement
/// (`fs/sandbox.rs`); `invalidPath` for a relative path; `notFound` (also
/// for a dangling link when following), `permissionDenied`, `notADirectory`
/// or `io` from the OS.
pub async fn get_metadata(
    params: FsGetMetadataParams,
) -> Result<FsGetMetadataResponse, ServerError> {
    refuse_unapplied(params.sandbox.as_ref())?;
    let ClientPath { path, form } = client_path(&params.path)?;
    let follow_symlinks = params.follow_symlinks.unwrap_or(true);
    let named = path.clone();
    run_metadata(&named, move || {
        let fail = |error| fs_error(&path, error);
        // The link itself first (`lstat`); a `stat` only for a symlink that
        // is to be followed, since for anything else the two agree. A
        // dangling symlink fails at the `stat`, as when following it.
        let own = fs::symlink_metadata(&path).map_err(fail)?;
        let is_symlink = own.is_symlink();
        let metadata = if follow_symlinks && is_symlink {
            fs::metadata(&path).map_err(fail)?
        } else {
            own
        };
        let milliseconds = |time: std::io::Result<SystemTime>| {
            time.ok()
                .and_then(unix_milliseconds)
                .unwrap_or(UNKNOWN_TIME_MS)
        };
        Ok(FsGetMetadataResponse {
            created_at_ms: milliseconds(metadata.created()),
            is_directory: metadata.is_dir(),
            is_file: metadata.is_file(),
            is_symlink,
            mode: metadata.mode(),
            modified_at_ms: milliseconds(metadata.modified()),
            size: metadata.len(),
        })
    })
    .await
    .map_err(|error| named_in(form, error))
}

/// Converts a timestamp to whole milliseconds since the Unix epoch, rounded
/// down (so 1.5 ms before the epoch is -2); `None` when it does not fit an
/// `i64`.
fn unix_milliseconds(time: SystemTime) -> Option<i64> {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).ok(),
        Err(before) => {
            let before = before.duration();
            let partial_millisecond = before.subsec_nanos() % 1_000_000 != 0;
            let millis = i64::try_from(before.as_millis()).ok()?;
            millis
                .checked_add(i64::from(partial_millisecond))
                .map(|millis| -millis)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs::{File, Permissions};
    use std::os::unix::fs::{PermissionsExt as _, symlink};
    use std::time::Duration;

    use exec_protocol::{AbsolutePath, ErrorKind};
    use pretty_assertions::assert_eq;

    use super::*;
    use crate::fs::test_support::{
        ErrorSummary, TestResult, absolute_path, fs_summary, invalid_path_summary, metadata_params,
        outcome,
    };

    #[tokio::test]
    async fn get_metadata_of_a_file() -> TestResult {
        let directory = tempfile::tempdir()?;
        let path = directory.path().join("file");
        fs::write(&path, b"12345")?;
        fs::set_permissions(&path, Permissions::from_mode(0o640))?;
        let modified = UNIX_EPOCH + Duration::from_millis(1_234_567_890_123);
        File::options()
            .write(true)
            .open(&path)?
            .set_modified(modified)?;

        let response = get_metadata(metadata_params(&path, None)).await?;
        // The birth time is whatever the filesystem recorded (or nothing), so
        // it is checked for plausibility and then taken as is.
        let now_ms = unix_milliseconds(SystemTime::now()).ok_or("the clock is out of range")?;
        let created_at_ms = response.created_at_ms;
        assert!(
            created_at_ms == UNKNOWN_TIME_MS
                || (now_ms - 60_000..=now_ms + 60_000).contains(&created_at_ms),
            "created {created_at_ms}, now {now_ms}"
        );
        assert_eq!(
            response,
            FsGetMetadataResponse {
                created_at_ms: response.created_at_ms,
                is_directory: false,
                is_file: true,
                is_symlink: false,
                mode: 0o100640,
                modified_at_ms: 1_234_567_890_123,
                size: 5,
            }
        );
        Ok(())
    }

    #[tokio::test]
    async fn get_metadata_follows_symlinks_unless_told_not_to() -> TestResult {
        let directory = tempfile::tempdir()?;
        let target = directory.path().join("target");
        fs::create_dir(&target)?;
        let link = directory.path().join("link");
        symlink(&target, &link)?;

        // (isDirectory, isFile, isSymlink, the file type bits of `mode`):
        // following describes the target but still says the path is a link.
        let cases = [
            (None, "followed", (true, false, true, 0o040000)),
            (Some(false), "not followed", (false, false, true, 0o120000)),
        ];
        for (follow_symlinks, what, expected) in cases {
            let response = get_metadata(metadata_params(&link, follow_symlinks)).await?;
            assert_eq!(
                (
                    response.is_directory,
                    response.is_file,
                    response.is_symlink,
                    response.mode & 0o170000
                ),
                expected,
                "{what}"
            );
        }
        let not_followed = get_metadata(metadata_params(&link, Some(false))).await?;
        assert_eq!(
            not_followed.size,
            target.as_os_str().len() as u64,
            "a link's size is its target's length"
        );

        let dangling = directory.path().join("dangling");
        symlink(directory.path().join("nowhere"), &dangling)?;
        assert_eq!(
            outcome(get_metadata(metadata_params(&dangling, Some(true))).await),
            Err(fs_summary(ErrorKind::NotFound, &dangling)),
            "a dangling link"
        );
        assert!(
            get_metadata(metadata_params(&dangling, Some(false)))
                .await?
                .is_symlink
        );
        Ok(())
    }

    #[tokio::test]
    async fn get_metadata_rounds_times_before_the_epoch_down() -> TestResult {
        let directory = tempfile::tempdir()?;
        let path = directory.path().join("old");
        fs::write(&path, b"")?;
        let before_epoch = UNIX_EPOCH - Duration::from_nanos(1_500_500_000);
        File::options()
            .write(true)
            .open(&path)?
            .set_modified(before_epoch)?;
        assert_eq!(
            get_metadata(metadata_params(&path, None))
                .await?
                .modified_at_ms,
            -1_501
        );
        Ok(())
    }

    #[test]
    fn unix_milliseconds_rounds_down() {
        let cases = [
            (UNIX_EPOCH, Some(0)),
            (UNIX_EPOCH + Duration::from_micros(1_500), Some(1)),
            (UNIX_EPOCH - Duration::from_millis(2), Some(-2)),
            (UNIX_EPOCH - Duration::from_micros(1_500), Some(-2)),
            (
                UNIX_EPOCH - Duration::from_nanos(1_500_500_000),
                Some(-1_501),
            ),
        ];
        for (time, expected) in cases {
            assert_eq!(unix_milliseconds(time), expected, "{time:?}");
        }
    }

    #[tokio::test]
    async fn get_metadata_errors() -> TestResult {
        let directory = tempfile::tempdir()?;
        let missing = directory.path().join("missing");
        let cases: [(AbsolutePath, &str, ErrorSummary); 2] = [
            (
                absolute_path(&missing),
                "a missing path",
                fs_summary(ErrorKind::NotFound, &missing),
            ),
            (
                AbsolutePath("./x".into()),
                "a relative path",
                invalid_path_summary("./x"),
            ),
        ];
        for (path, what, expected) in cases {
            let params = FsGetMetadataParams {
                sandbox: None,
                follow_symlinks: None,
                path,
            };
            assert_eq!(outcome(get_metadata(params).await), Err(expected), "{what}");
        }
        Ok(())
    }
}
