//! TLS for the WebSocket listener (`serve --tls-cert PATH --tls-key PATH`):
//! rustls with the ring provider, loaded once at start-up from PEM files.
//! The handshake itself runs in `ws`, inside the upgrade's deadline and
//! under its cap on handshakes in progress.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// Why the certificate or key files cannot serve TLS.
#[derive(Debug, thiserror::Error)]
pub enum TlsFilesError {
    /// The certificate file is unreadable or not PEM.
    #[error("cannot read the TLS certificate file {path}: {reason}")]
    Certificate {
        /// The `--tls-cert` path.
        path: PathBuf,
        /// What reading or parsing it said (kept out of the error chain:
        /// the message shows it).
        reason: rustls_pki_types::pem::Error,
    },
    /// The certificate file holds no `CERTIFICATE` section.
    #[error("the TLS certificate file {path} holds no PEM certificate")]
    NoCertificate {
        /// The `--tls-cert` path.
        path: PathBuf,
    },
    /// The key file is unreadable, not PEM, or holds no private key
    /// (PKCS#8, PKCS#1 or SEC1).
    #[error("cannot read a private key from the TLS key file {path}: {reason}")]
    Key {
        /// The `--tls-key` path.
        path: PathBuf,
        /// What reading or parsing it said.
        reason: rustls_pki_types::pem::Error,
    },
    /// rustls refused the pair: the key is of an unsupported kind, or it
    /// does not belong to the certificate.
    #[error("the TLS key {key} does not fit the certificate {certificate}: {reason}")]
    Mismatch {
        /// The `--tls-cert` path.
        certificate: PathBuf,
        /// The `--tls-key` path.
        key: PathBuf,
        /// rustls's reason.
        reason: rustls::Error,
    },
}

/// What the listener needs to terminate TLS: the certificate chain and key,
/// ready to accept connections. Cheap to clone.
#[derive(Clone)]
pub struct ServerTls {
    /// The rustls acceptor, sharing one configuration among connections.
    acceptor: TlsAcceptor,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The configuration holds the private key: show nothing of it.
        formatter.debug_struct("ServerTls").finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Loads the certificate chain (`certificate`, PEM, the server's
    /// certificate first) and its private key (`key`, PEM: PKCS#8, PKCS#1 or
    /// SEC1), and offers TLS 1.3 and 1.2 with rustls's safe defaults.
    ///
    /// # Errors
    /// [`TlsFilesError`] naming the file that is unreadable, holds no
    /// certificate or key, or whose key does not fit the certificate.
    pub fn load(certificate: &Path, key: &Path) -> Result<Self, TlsFilesError> {
        let chain = CertificateDer::pem_file_iter(certificate)
            .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
            .map_err(|reason| TlsFilesError::Certificate {
                path: certificate.to_owned(),
                reason,
            })?;
        if chain.is_empty() {
            return Err(TlsFilesError::NoCertificate {
                path: certificate.to_owned(),
            });
        }
        let private_key =
            PrivateKeyDer::from_pem_file(key).map_err(|reason| TlsFilesError::Key {
                path: key.to_owned(),
                reason,
            })?;
        let mismatch = |reason| TlsFilesError::Mismatch {
            certificate: certificate.to_owned(),
            key: key.to_owned(),
            reason,
        };
        // The provider is named here rather than taken from the process
        // default, which another crate in the same process could have set
        // (or left unset, which would panic).
        let config =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(mismatch)?
                .with_no_client_auth()
                .with_single_cert(chain, private_key)
                .map_err(mismatch)?;
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// Runs the server's side of the TLS handshake on `stream`. A client
    /// that speaks plain HTTP instead (`ws://` or `http://` to a `wss://`
    /// listener) gets an HTTP 400 saying to use `wss://`, and `Ok(None)`.
    ///
    /// # Errors
    /// The handshake failed (rustls's reason), or the socket did.
    pub(crate) async fn accept(
        &self,
        mut stream: TcpStream,
    ) -> io::Result<Option<TlsStream<TcpStream>>> {
        if speaks_plain_http(&mut stream).await? {
            return Ok(None);
        }
        self.acceptor.accept(stream).await.map(Some)
    }
}

/// The answer to plain HTTP on a TLS listener.
const USE_TLS: &str = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n\
    Content-Length: 58\r\nConnection: close\r\n\r\n\
    this server speaks TLS: connect with wss:// (or https://)\n";

/// Whether the client opened with plain HTTP (a request starts with an
/// upper-case method name; a TLS record with the byte 0x16), in which case
/// it was answered [`USE_TLS`]: a clear refusal instead of a TLS alert the
/// client cannot read.
async fn speaks_plain_http(stream: &mut TcpStream) -> io::Result<bool> {
    let mut first = [0u8; 1];
    if stream.peek(&mut first).await? == 0 || !first[0].is_ascii_uppercase() {
        return Ok(false);
    }
    // Read the request head before answering: closing a socket with
    // unread bytes resets the connection, and the client would see the
    // reset rather than the answer.
    let mut head = Vec::new();
    while !head.windows(4).any(|window| window == b"\r\n\r\n") && head.len() < MAX_PLAIN_HEAD {
        let mut chunk = [0u8; 1024];
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Ok(true);
        }
        head.extend_from_slice(&chunk[..read]);
    }
    stream.write_all(USE_TLS.as_bytes()).await?;
    stream.shutdown().await?;
    Ok(true)
}

/// How much of a plain HTTP request head is read before it is refused.
const MAX_PLAIN_HEAD: usize = 16 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_of_plain_http_has_the_length_it_says() {
        let (head, body) = USE_TLS.split_once("\r\n\r\n").expect("a head and a body");
        assert!(
            head.contains(&format!("Content-Length: {}", body.len())),
            "{USE_TLS}"
        );
    }
}
