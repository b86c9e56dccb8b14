//! A throw-away certificate authority for TLS tests, made with rcgen: the three files QEMU's
//! `x509-dir=` (and our server's `--x509-dir`) expect — `ca-cert.pem`, `server-cert.pem`,
//! `server-key.pem` — for a server on `127.0.0.1` / `localhost`.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

use crate::PeerError;

/// The subject common name of the server certificate.
pub const SERVER_CN: &str = "localhost";

/// A test CA and a server certificate signed by it, written into a directory.
#[derive(Debug, Clone)]
pub struct TestPki {
    dir: PathBuf,
    /// The CA certificate (PEM).
    pub ca_pem: String,
    /// The server certificate (PEM).
    pub server_cert_pem: String,
    /// The server's private key (PEM, PKCS#8).
    pub server_key_pem: String,
}

fn tls_err(e: rcgen::Error) -> PeerError {
    PeerError::io("generating test certificates", std::io::Error::other(e))
}

impl TestPki {
    /// Generates the CA and the server certificate (SANs `localhost` and `127.0.0.1`, CN
    /// [`SERVER_CN`]) and writes the three PEM files into `dir` (created if needed).
    pub fn generate(dir: &Path) -> Result<Self, PeerError> {
        std::fs::create_dir_all(dir).map_err(|e| PeerError::io("creating the x509 dir", e))?;
        let ca_key = KeyPair::generate().map_err(tls_err)?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(tls_err)?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "spice-rs test CA");
        let ca_cert = ca_params.self_signed(&ca_key).map_err(tls_err)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let key = KeyPair::generate().map_err(tls_err)?;
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .map_err(tls_err)?;
        params
            .distinguished_name
            .push(DnType::CommonName, SERVER_CN);
        let cert = params.signed_by(&key, &issuer).map_err(tls_err)?;

        let pki = TestPki {
            dir: dir.to_path_buf(),
            ca_pem: ca_cert.pem(),
            server_cert_pem: cert.pem(),
            server_key_pem: key.serialize_pem(),
        };
        for (name, body) in [
            ("ca-cert.pem", &pki.ca_pem),
            ("server-cert.pem", &pki.server_cert_pem),
            ("server-key.pem", &pki.server_key_pem),
        ] {
            std::fs::write(dir.join(name), body)
                .map_err(|e| PeerError::io(format!("writing {name}"), e))?;
        }
        Ok(pki)
    }

    /// The directory holding the three files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of `ca-cert.pem`.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca-cert.pem")
    }
}
