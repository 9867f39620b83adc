//! Paths as a client sends them: an absolute path (`/tmp/x`) or a `file://`
//! URI (`file:///tmp/x`), the form Codex's client always uses (Codex's
//! `PathUri`, `codex-rs/utils/path-uri`, a `url::Url` that only deserializes
//! `file:` URIs).
//!
//! A URI is read by RFC 8089 through the `url` crate (the parser Codex's
//! `PathUri` uses): its path is percent-decoded to bytes, so any POSIX path,
//! non-UTF-8 too, can be named; `file://localhost/x` is `file:///x`; dot
//! segments are resolved as the URL standard says. Refused, as
//! `invalidPath`: another scheme, another authority (`file://host/x` names a
//! path on another machine), `file:` not followed by `/` (which the URL
//! standard would read as absolute), a query or fragment (a `?` or `#` in a file
//! name must be percent-encoded), and a relative path.
//!
//! A result that carries a path answers in the form its request used
//! ([`PathForm::render`]): a URI request gets URIs back.

use std::path::{Path, PathBuf};

use url::Url;

use crate::error::{ServerError, require_absolute};

/// The scheme prefix that tells a URI from a native path; the scheme is
/// case-insensitive (RFC 3986 section 3.1).
const FILE_SCHEME: &str = "file:";

/// How a client wrote a path, so a path in the result can be written back
/// the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PathForm {
    /// An absolute POSIX path, `/tmp/x`.
    Native,
    /// A `file://` URI, `file:///tmp/x` (RFC 8089).
    FileUri,
}

impl PathForm {
    /// `path` (absolute) written in this form: as it is, lossily as UTF-8,
    /// for [`PathForm::Native`]; percent-encoded (every byte, so non-UTF-8
    /// names survive) for [`PathForm::FileUri`].
    pub(crate) fn render(self, path: &Path) -> String {
        match self {
            Self::Native => path.to_string_lossy().into_owned(),
            Self::FileUri => file_uri(path),
        }
    }
}

/// A path taken from a request: where it points and how it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ClientPath {
    /// The absolute path on this machine.
    pub(crate) path: PathBuf,
    /// The form the client used.
    pub(crate) form: PathForm,
}

/// Reads a path a client sent: an absolute path or a `file:` URI (see the
/// module documentation). Errors: `invalidPath` (-32602) for a relative
/// path, a URI that is not a local `file:` URI, a path longer than the
/// system allows, or one with a NUL byte (which no system call can take).
pub(crate) fn parse(text: &str) -> Result<ClientPath, ServerError> {
    let is_uri = text
        .get(..FILE_SCHEME.len())
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case(FILE_SCHEME));
    let (path, form) = if is_uri {
        (uri_path(text)?, PathForm::FileUri)
    } else {
        (require_absolute(text)?.to_path_buf(), PathForm::Native)
    };
    // Checked again after decoding: `%00` and a long encoded path only show
    // here.
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
    if bytes.contains(&0) {
        return Err(ServerError::invalid_path(text, "contains a NUL byte"));
    }
    if form == PathForm::FileUri {
        require_absolute(&path.to_string_lossy())?;
    }
    Ok(ClientPath { path, form })
}

/// The local path a `file:` URI names (see the module documentation for
/// what is refused).
fn uri_path(text: &str) -> Result<PathBuf, ServerError> {
    // Bound the work before the URL parser copies anything.
    require_absolute_length(text)?;
    // RFC 8089 has only `file:/path` and `file://authority/path`; the URL
    // standard would also read `file:relative` as `/relative`.
    if !text
        .get(FILE_SCHEME.len()..)
        .is_some_and(|rest| rest.starts_with('/'))
    {
        return Err(ServerError::invalid_path(
            text,
            "not an absolute file URI (file:///path)",
        ));
    }
    let url = Url::parse(text)
        .map_err(|error| ServerError::invalid_path(text, format!("not a valid URI: {error}")))?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ServerError::invalid_path(
            text,
            "a file URI with a query or fragment (percent-encode `?` and `#` in file names)",
        ));
    }
    // `to_file_path` refuses any authority but none or `localhost`.
    url.to_file_path().map_err(|()| {
        ServerError::invalid_path(
            text,
            "not a local file URI (only file:///path and file://localhost/path)",
        )
    })
}

/// The length check of [`require_absolute`] for text that is not yet a
/// path: a URI may be up to three times its path's length (`%XX`), so it
/// is allowed that much before parsing.
fn require_absolute_length(text: &str) -> Result<(), ServerError> {
    let limit = 3 * crate::error::MAX_PATH_BYTES + FILE_SCHEME.len() + "//localhost".len();
    if text.len() > limit {
        return Err(ServerError::invalid_path(
            crate::error::echo(text),
            format!(
                "a URI of {} bytes names a path longer than the system allows",
                text.len()
            ),
        ));
    }
    Ok(())
}

/// `path` (absolute) as a `file://` URI (RFC 8089): every byte outside
/// RFC 3986's unreserved characters and `/` is percent-encoded, so spaces,
/// `#`, `%`, `?` and non-UTF-8 bytes survive the trip.
pub(crate) fn file_uri(path: &Path) -> String {
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
    let encoded = percent_encoding::percent_encode(bytes, URI_PATH_ESCAPES);
    format!("file://{encoded}")
}

/// What a `file://` URI's path percent-encodes: every byte but RFC 3986's
/// unreserved characters (letters, digits, `-._~`) and the `/` separator.
const URI_PATH_ESCAPES: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt as _;

    use exec_protocol::ErrorKind;
    use pretty_assertions::assert_eq;

    use super::*;

    fn parsed(text: &str) -> (PathBuf, PathForm) {
        let path = parse(text).unwrap_or_else(|error| panic!("{text}: {error}"));
        (path.path, path.form)
    }

    fn refusal(text: &str) -> (ErrorKind, String) {
        let error = parse(text).expect_err(text);
        (error.kind(), error.to_string())
    }

    #[test]
    fn native_paths_and_local_file_uris_name_the_same_file() {
        assert_eq!(
            parsed("/tmp/a b"),
            (PathBuf::from("/tmp/a b"), PathForm::Native)
        );
        for uri in [
            "file:///tmp/a%20b",
            "file://localhost/tmp/a%20b",
            "FILE:///tmp/a%20b",
            "file:///tmp/x/../a%20b",
        ] {
            assert_eq!(
                parsed(uri),
                (PathBuf::from("/tmp/a b"), PathForm::FileUri),
                "{uri}"
            );
        }
        assert_eq!(parsed("file:///").0, PathBuf::from("/"));
        // Encoded non-UTF-8 bytes name the file with exactly those bytes.
        assert_eq!(
            parsed("file:///caf%C3%A9/%FF").0,
            PathBuf::from(OsStr::from_bytes(b"/caf\xc3\xa9/\xff"))
        );
    }

    #[test]
    fn anything_but_a_local_absolute_path_is_an_invalid_path() {
        for text in [
            "relative/x",
            "",
            "file://server/share/x",
            "file:///tmp/a?query",
            "file:///tmp/a#fragment",
            "http://localhost/tmp",
            "/tmp/a\0b",
            "file:///tmp/a%00b",
            "file:relative",
        ] {
            let (kind, message) = refusal(text);
            assert_eq!(kind, ErrorKind::InvalidPath, "{text}: {message}");
        }
        let (_, message) = refusal("file://server/share/x");
        assert!(message.contains("not a local file URI"), "{message}");
    }

    #[test]
    fn uris_longer_than_any_path_are_refused_before_parsing() {
        let huge = format!("file:///{}", "%41".repeat(crate::error::MAX_PATH_BYTES));
        assert_eq!(refusal(&huge).0, ErrorKind::InvalidPath);
    }

    #[test]
    fn results_answer_in_the_form_of_the_request() {
        let path = Path::new("/work/space #1/a%b?");
        assert_eq!(PathForm::Native.render(path), "/work/space #1/a%b?");
        let uri = PathForm::FileUri.render(path);
        assert_eq!(uri, "file:///work/space%20%231/a%25b%3F");
        assert_eq!(parsed(&uri).0, path);
        assert_eq!(file_uri(Path::new("/")), "file:///");
        assert_eq!(
            file_uri(Path::new(OsStr::from_bytes(b"/caf\xc3\xa9/\xff"))),
            "file:///caf%C3%A9/%FF"
        );
    }
}
