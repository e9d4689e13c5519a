//! The TLS settings of the SIP driver: the listener's certificate (PEM
//! files, read again on [`super::Handle::reload_tls`], e.g. on SIGHUP), and
//! the client side of outbound TLS (RFC 3261 section 26.3.1; the server
//! name verified against the system trust store or a configured CA, an
//! optional client certificate). rustls runs on callbridge-tls's aws-lc-rs
//! provider, like every other TLS connection of callbridge.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A certificate chain and its private key, as PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// The certificate chain (leaf first).
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Whom outbound TLS trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// The system trust store or the bundled roots (callbridge-tls).
    Roots(callbridge_tls::TlsRoots),
    /// The CA certificates in this PEM file only (a private trunk CA).
    CaFile(PathBuf),
}

/// The client side of outbound TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsClient {
    /// Whom to trust.
    pub trust: Trust,
    /// A client certificate to present when the server asks.
    pub client_cert: Option<CertFiles>,
}

impl Default for TlsClient {
    /// The system trust store, no client certificate.
    fn default() -> TlsClient {
        TlsClient {
            trust: Trust::Roots(callbridge_tls::TlsRoots::System),
            client_cert: None,
        }
    }
}

/// Why a TLS configuration could not be made. Paths are the operator's own
/// configuration, so they are named; key material never is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsSetupError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("cannot read {what} from {path}")]
    File {
        /// What the file should hold.
        what: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// The trust store could not be loaded.
    #[error(transparent)]
    Roots(#[from] callbridge_tls::TlsError),
    /// rustls refused the certificate, key or CA.
    #[error("unusable TLS {0}")]
    Rejected(&'static str),
}

fn certs(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let err = || TlsSetupError::File {
        what,
        path: path.to_owned(),
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|_| err())?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| err())?;
    if certs.is_empty() {
        return Err(err());
    }
    Ok(certs)
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsSetupError> {
    PrivateKeyDer::from_pem_file(path).map_err(|_| TlsSetupError::File {
        what: "a private key",
        path: path.to_owned(),
    })
}

/// The listener's configuration from `files` (read now).
pub fn server_config(files: &CertFiles) -> Result<Arc<rustls::ServerConfig>, TlsSetupError> {
    let chain = certs(&files.cert, "a certificate chain")?;
    let key = key(&files.key)?;
    let cfg = rustls::ServerConfig::builder_with_provider(callbridge_tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|_| TlsSetupError::Rejected("protocol versions"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|_| TlsSetupError::Rejected("certificate or key"))?;
    Ok(Arc::new(cfg))
}

/// The configuration for outbound connections.
pub fn client_config(client: &TlsClient) -> Result<Arc<rustls::ClientConfig>, TlsSetupError> {
    let roots = match &client.trust {
        Trust::Roots(r) => r.root_store()?,
        Trust::CaFile(path) => {
            let mut store = rustls::RootCertStore::empty();
            for c in certs(path, "CA certificates")? {
                store
                    .add(c)
                    .map_err(|_| TlsSetupError::Rejected("CA certificate"))?;
            }
            Arc::new(store)
        }
    };
    let builder = rustls::ClientConfig::builder_with_provider(callbridge_tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|_| TlsSetupError::Rejected("protocol versions"))?
        .with_root_certificates(roots);
    let cfg = match &client.client_cert {
        None => builder.with_no_client_auth(),
        Some(files) => builder
            .with_client_auth_cert(certs(&files.cert, "a certificate chain")?, key(&files.key)?)
            .map_err(|_| TlsSetupError::Rejected("client certificate or key"))?,
    };
    Ok(Arc::new(cfg))
}
