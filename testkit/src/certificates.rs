//! [`TestCertificates`]: a certificate authority and a server certificate
//! for `127.0.0.1` and `localhost` signed by it, made with rcgen for each
//! test, as PEM files a server (`serve --tls-cert --tls-key`) and a client
//! (`--ca-file`, `ConnectOptions::ca_file`, node's `ca`) read.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use tempfile::TempDir;

/// PEM files of a fresh CA, a server certificate it signed, and a second
/// CA that signed nothing (to show an untrusted certificate is refused).
/// The files live in a temporary directory removed on drop.
#[derive(Debug)]
pub struct TestCertificates {
    /// Holds the files.
    directory: TempDir,
}

impl TestCertificates {
    /// Makes the CA, the server certificate (names `localhost`, addresses
    /// `127.0.0.1` and `::1`) with its key, and the other CA, and writes them.
    ///
    /// # Panics
    /// When rcgen or writing the files fails: the test cannot go on.
    pub fn generate() -> Self {
        let directory = tempfile::tempdir().expect("a directory for the certificates");
        let signer = authority("exec-server test CA");
        let server_key = KeyPair::generate().expect("a server key");
        let mut params = CertificateParams::new(vec![
            String::from("localhost"),
            String::from("127.0.0.1"),
            String::from("::1"),
        ])
        .expect("the server's names");
        params
            .distinguished_name
            .push(DnType::CommonName, "exec-server test server");
        let server = params
            .signed_by(&server_key, &signer)
            .expect("the server certificate");
        let other = authority("another CA");
        let write = |name: &str, text: String| {
            std::fs::write(directory.path().join(name), text).expect("writing a PEM file");
        };
        write("ca.pem", signer.pem());
        write("other-ca.pem", other.pem());
        write("server.pem", server.pem());
        write("server.key", server_key.serialize_pem());
        Self { directory }
    }

    /// The CA certificate that signed the server's.
    pub fn ca(&self) -> PathBuf {
        self.path("ca.pem")
    }

    /// A CA certificate that did not sign the server's.
    pub fn other_ca(&self) -> PathBuf {
        self.path("other-ca.pem")
    }

    /// The server's certificate (`serve --tls-cert`).
    pub fn server_certificate(&self) -> PathBuf {
        self.path("server.pem")
    }

    /// The server's private key (`serve --tls-key`).
    pub fn server_key(&self) -> PathBuf {
        self.path("server.key")
    }

    /// The directory holding the files, for files of a test's own.
    pub fn directory(&self) -> &Path {
        self.directory.path()
    }

    /// The `serve` arguments that make a server speak TLS with these files.
    pub fn serve_args(&self) -> [PathBuf; 4] {
        [
            PathBuf::from("--tls-cert"),
            self.server_certificate(),
            PathBuf::from("--tls-key"),
            self.server_key(),
        ]
    }

    fn path(&self, name: &str) -> PathBuf {
        self.directory.path().join(name)
    }
}

/// A self-signed CA that may sign server certificates.
fn authority(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let key = KeyPair::generate().expect("a CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    CertifiedIssuer::self_signed(params, key).expect("the CA certificate")
}
