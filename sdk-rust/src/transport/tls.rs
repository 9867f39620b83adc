//! TLS for `wss://` URLs: rustls with the ring provider, verifying the
//! server's certificate against the system's trusted roots, or, when a CA
//! file is given ([`ConnectOptions::ca_file`](crate::ConnectOptions::ca_file),
//! else the [`CA_FILE_ENV`] variable), against the certificates of that
//! file only (as `curl --cacert` does), so that a private CA is all it
//! takes and nothing else is trusted for it.
//!
//! The system's roots are loaded once per process (they are a few hundred
//! files); a CA file is read at every connect, so that a renewed file is
//! picked up by a reconnect.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio_tungstenite::Connector;
use tokio_tungstenite::tungstenite::Error as WebSocketError;

use crate::error::ClientError;

/// The environment variable naming a PEM file of CA certificates that
/// `wss://` servers are verified against, instead of the system's roots,
/// when [`ConnectOptions::ca_file`](crate::ConnectOptions::ca_file) is unset.
pub const CA_FILE_ENV: &str = "EXEC_SERVER_CA_FILE";

/// How to dial `url`: in the clear for `ws://`, with TLS verified against
/// `ca_file` (else [`CA_FILE_ENV`], else the system's roots) for `wss://`.
///
/// # Errors
/// [`ClientError::Tls`] when the CA file is unreadable or holds no
/// certificate, or the system has no trusted roots.
pub(crate) fn connector(url: &str, ca_file: Option<&Path>) -> Result<Connector, ClientError> {
    if !is_secure(url) {
        return Ok(Connector::Plain);
    }
    let from_env = std::env::var_os(CA_FILE_ENV)
        .filter(|value| !value.is_empty())
        .map(PathBuf::from);
    let config = match ca_file.map(Path::to_owned).or(from_env) {
        Some(path) => config_for_ca_file(&path),
        None => system_config(),
    }
    .map_err(|reason| ClientError::Tls {
        url: url.to_owned(),
        reason,
    })?;
    Ok(Connector::Rustls(config))
}

/// Whether `url` asks for TLS (`wss://`, in any case).
fn is_secure(url: &str) -> bool {
    url.get(..6)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("wss://"))
}

/// A client configuration trusting the CA certificates of the PEM file at `path`.
fn config_for_ca_file(path: &Path) -> Result<Arc<ClientConfig>, String> {
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
        .map_err(|error| format!("cannot read the CA file {}: {error}", path.display()))?;
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certificates);
    if added == 0 {
        return Err(format!(
            "the CA file {} holds no usable PEM certificate",
            path.display()
        ));
    }
    client_config(roots)
}

/// The client configuration trusting the system's roots, made once.
fn system_config() -> Result<Arc<ClientConfig>, String> {
    static SYSTEM: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    SYSTEM
        .get_or_init(|| {
            // Unreadable files among the roots are skipped, as every TLS
            // client does; only an empty store is an error.
            let found = rustls_native_certs::load_native_certs();
            let mut roots = RootCertStore::empty();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(format!(
                    "this system has no trusted root certificates to verify the server \
                     with; give a CA file ({CA_FILE_ENV}){}",
                    found
                        .errors
                        .first()
                        .map(|error| format!(" ({error})"))
                        .unwrap_or_default()
                ));
            }
            client_config(roots)
        })
        .clone()
}

/// TLS 1.3 and 1.2 with rustls's safe defaults, the ring provider, no
/// client certificate.
fn client_config(roots: RootCertStore) -> Result<Arc<ClientConfig>, String> {
    // The provider is named rather than taken from the process default,
    // which the application may have set to another (or not at all).
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|error| error.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A connect failure said plainly when TLS caused it: a certificate the
/// client does not trust (with what to do about it), or a server that
/// closed the handshake (most likely one that serves plain `ws://`).
/// `None` for any other failure, and for any failure of a `ws://` `url`.
pub(crate) fn explain_failure(url: &str, error: &WebSocketError) -> Option<String> {
    let WebSocketError::Io(io_error) = error else {
        return None;
    };
    if !is_secure(url) {
        return None;
    }
    if let Some(rustls::Error::InvalidCertificate(reason)) = io_error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return Some(format!(
            "the server's TLS certificate is not trusted ({reason:?}); give the CA that \
             signed it as a CA file ({CA_FILE_ENV})"
        ));
    }
    if io_error.kind() == std::io::ErrorKind::UnexpectedEof {
        return Some(String::from(
            "the server closed the connection during the TLS handshake \
             (does it serve plain ws:// rather than wss://?)",
        ));
    }
    None
}
