//! What identifies a `process/start` for a start retried after a resume:
//! the SHA-256 of its params as JSON, kept in place of the params.
//!
//! A process keeps this digest (32 bytes) and its `argv` rather than a copy
//! of the whole request, whose environment map alone costs about half a
//! KiB per process (an agent's full environment, several KiB). Two starts
//! match when their params serialize to the same bytes: the generated
//! types serialize fields in a fixed order and maps (`env`) sorted by key,
//! so this is `PartialEq` on the params but for a SHA-256 collision.

use exec_protocol::ProcessStartParams;
use sha2::{Digest as _, Sha256};

/// The digest of one `process/start`'s params.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StartDigest(Option<[u8; 32]>);

impl StartDigest {
    /// The digest of `params`. Serializing the generated types cannot
    /// fail (string map keys, a writer that takes every byte); were it to,
    /// the digest matches no other, so a retried start gets
    /// `ProcessExists` rather than another process's result.
    pub(crate) fn of(params: &ProcessStartParams) -> Self {
        let mut hasher = HashWriter(Sha256::new());
        match serde_json::to_writer(&mut hasher, params) {
            Ok(()) => Self(Some(hasher.0.finalize().into())),
            Err(_) => Self(None),
        }
    }

    /// Whether `params` are those this digest was made from.
    pub(crate) fn matches(&self, params: &ProcessStartParams) -> bool {
        self.0.is_some() && *self == Self::of(params)
    }
}

/// Feeds serialized bytes to the hash without a buffer.
struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(env: &[(&str, &str)]) -> ProcessStartParams {
        serde_json::from_value(serde_json::json!({
            "processId": "p",
            "argv": ["sh", "-c", "true"],
            "cwd": "/",
            "env": env.iter().map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<std::collections::BTreeMap<_, _>>(),
            "tty": false,
        }))
        .expect("valid params")
    }

    #[test]
    fn equal_params_match_and_any_difference_does_not() {
        let start = params(&[("A", "1"), ("B", "2")]);
        let digest = StartDigest::of(&start);
        assert!(digest.matches(&start));
        assert!(digest.matches(&params(&[("B", "2"), ("A", "1")])));
        assert!(!digest.matches(&params(&[("A", "1")])));
        assert!(!digest.matches(&params(&[("A", "1"), ("B", "3")])));
        let mut piped = start.clone();
        piped.pipe_stdin = Some(false);
        assert!(
            !digest.matches(&piped),
            "an explicit false is not an absent field"
        );
        let mut other_cwd = start;
        other_cwd.cwd = serde_json::from_value(serde_json::json!("/tmp")).expect("a path");
        assert!(!digest.matches(&other_cwd));
    }

    #[test]
    fn a_digest_that_could_not_be_made_matches_nothing() {
        let start = params(&[]);
        assert!(!StartDigest(None).matches(&start));
    }
}
