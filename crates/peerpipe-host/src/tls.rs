//! TLS for TCP links (feature `tls`): certificates and keys in PEM, loaded into the rustls
//! configurations that peerpipe-std and peerpipe-tokio connect and accept with.
//!
//! TLS 1.3 only, with rustls and its `ring` provider. The client always checks the server's
//! certificate against the certificate authorities it is given, for the name it is given;
//! the server asks for a client certificate, and refuses a client without one signed by its
//! client authorities, when it is given those authorities (mutual authentication).
//!
//! ```no_run
//! use std::path::Path;
//! use peerpipe_host::{TlsClient, TlsServer};
//!
//! // The server: its certificate chain and key; clients need a certificate signed by ca.pem.
//! let server = TlsServer::from_files(Path::new("server.pem"), Path::new("server.key"))?
//!     .require_client_cert_file(Path::new("ca.pem"))?;
//! // The client: trusts ca.pem for the server named "localhost", shows its own certificate.
//! let client = TlsClient::from_file(Path::new("ca.pem"), "localhost")?
//!     .with_client_cert_files(Path::new("client.pem"), Path::new("client.key"))?;
//! # Ok::<(), peerpipe_host::TlsError>(())
//! ```

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

pub use rustls;

/// Why a TLS configuration could not be made.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A PEM text held no certificate (`what` says which: "CA", "certificate chain").
    NoCertificate {
        /// Which certificates were expected.
        what: &'static str,
    },
    /// A PEM text held no private key (PKCS#8, PKCS#1 or SEC1), or one that could not be
    /// read.
    NoKey,
    /// The server name is neither a DNS name nor an IP address.
    BadServerName(String),
    /// rustls refused the certificates or the key (e.g. a key that does not match the
    /// certificate, a CA certificate it cannot parse).
    Rustls(rustls::Error),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Read { path, source } => write!(f, "cannot read {path}: {source}"),
            TlsError::NoCertificate { what } => write!(f, "no {what} certificate in the PEM text"),
            TlsError::NoKey => write!(f, "no private key in the PEM text"),
            TlsError::BadServerName(n) => write!(f, "not a DNS name or IP address: {n:?}"),
            TlsError::Rustls(e) => write!(f, "TLS configuration refused: {e}"),
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsError::Read { source, .. } => Some(source),
            TlsError::Rustls(e) => Some(e),
            _ => None,
        }
    }
}

impl From<rustls::Error> for TlsError {
    fn from(e: rustls::Error) -> Self {
        TlsError::Rustls(e)
    }
}

/// Reads a file's bytes, the error naming the file.
pub fn read_pem_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(pem: &[u8], what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { what });
    }
    Ok(certs)
}

fn key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|_| TlsError::NoKey)
}

fn roots(ca_pem: &[u8]) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certs(ca_pem, "CA")? {
        roots.add(cert)?;
    }
    Ok(roots)
}

/// The client side (the ACTIVE end of a TCP link): which authorities to trust for the
/// server's certificate, the name the certificate must carry, and optionally the client's
/// own certificate for a server that asks for one.
#[derive(Clone)]
pub struct TlsClient {
    roots: Arc<RootCertStore>,
    server_name: ServerName<'static>,
    identity: Option<(Vec<CertificateDer<'static>>, Arc<PrivateKeyDer<'static>>)>,
}

impl fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClient")
            .field("server_name", &self.server_name)
            .field("client_cert", &self.identity.is_some())
            .finish_non_exhaustive()
    }
}

impl TlsClient {
    /// Trusts the CA certificates in `ca_pem` for a server whose certificate names
    /// `server_name` (a DNS name or an IP address).
    pub fn new(ca_pem: &[u8], server_name: &str) -> Result<Self, TlsError> {
        let server_name = ServerName::try_from(server_name.to_string())
            .map_err(|_| TlsError::BadServerName(server_name.to_string()))?;
        Ok(TlsClient {
            roots: Arc::new(roots(ca_pem)?),
            server_name,
            identity: None,
        })
    }

    /// [`new`](Self::new) with the CA certificates read from a PEM file.
    pub fn from_file(ca: &Path, server_name: &str) -> Result<Self, TlsError> {
        Self::new(&read_pem_file(ca)?, server_name)
    }

    /// Shows the certificate chain `cert_pem` (the client's certificate first) with its
    /// private key `key_pem` to a server that asks for one (mutual authentication).
    pub fn with_client_cert(mut self, cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, TlsError> {
        let chain = certs(cert_pem, "certificate chain")?;
        let key = key(key_pem)?;
        self.identity = Some((chain, Arc::new(key)));
        // A key that does not match the certificate is found here, not at the first
        // connection.
        self.config()?;
        Ok(self)
    }

    /// [`with_client_cert`](Self::with_client_cert) with both read from PEM files.
    pub fn with_client_cert_files(self, cert: &Path, key: &Path) -> Result<Self, TlsError> {
        self.with_client_cert(&read_pem_file(cert)?, &read_pem_file(key)?)
    }

    /// The name the server's certificate must carry.
    pub fn server_name(&self) -> &ServerName<'static> {
        &self.server_name
    }

    /// The rustls configuration to connect with.
    pub fn config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(self.roots.clone());
        let config = match &self.identity {
            Some((chain, key)) => builder.with_client_auth_cert(chain.clone(), key.clone_key())?,
            None => builder.with_no_client_auth(),
        };
        Ok(Arc::new(config))
    }
}

/// The server side (the PASSIVE end of a TCP link): its certificate chain and private key,
/// and optionally the authorities a client's certificate must be signed by (then a client
/// without one is refused).
#[derive(Clone)]
pub struct TlsServer {
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
    client_roots: Option<Arc<RootCertStore>>,
}

impl fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsServer")
            .field("certificates", &self.chain.len())
            .field("client_auth", &self.client_roots.is_some())
            .finish_non_exhaustive()
    }
}

impl TlsServer {
    /// Serves the certificate chain `cert_pem` (the server's certificate first) with its
    /// private key `key_pem`; any client may connect (see
    /// [`require_client_cert`](Self::require_client_cert)).
    pub fn new(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, TlsError> {
        let server = TlsServer {
            chain: certs(cert_pem, "certificate chain")?,
            key: Arc::new(key(key_pem)?),
            client_roots: None,
        };
        server.config()?;
        Ok(server)
    }

    /// [`new`](Self::new) with both read from PEM files.
    pub fn from_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        Self::new(&read_pem_file(cert)?, &read_pem_file(key)?)
    }

    /// Requires every client to show a certificate signed by one of the CA certificates in
    /// `ca_pem` (mutual authentication); a client without one is refused.
    pub fn require_client_cert(mut self, ca_pem: &[u8]) -> Result<Self, TlsError> {
        self.client_roots = Some(Arc::new(roots(ca_pem)?));
        self.config()?;
        Ok(self)
    }

    /// [`require_client_cert`](Self::require_client_cert) with the CA certificates read
    /// from a PEM file.
    pub fn require_client_cert_file(self, ca: &Path) -> Result<Self, TlsError> {
        self.require_client_cert(&read_pem_file(ca)?)
    }

    /// The rustls configuration to accept with. It sends a session ticket after each
    /// handshake: the client waits for it (or for the refusal of its certificate) before it
    /// takes the connection as accepted.
    pub fn config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let provider = provider();
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?;
        let builder = match &self.client_roots {
            Some(roots) => builder.with_client_cert_verifier(
                WebPkiClientVerifier::builder_with_provider(roots.clone(), provider)
                    .build()
                    .map_err(|e| TlsError::Rustls(rustls::Error::General(e.to_string())))?,
            ),
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_single_cert(self.chain.clone(), self.key.clone_key())?;
        config.send_tls13_tickets = config.send_tls13_tickets.max(1);
        Ok(Arc::new(config))
    }
}

/// The I/O error for a TLS handshake that rustls refused: of kind `PermissionDenied` when
/// this end refused the peer (its certificate, none, or bytes that are not TLS), of kind
/// `ConnectionRefused` when the peer refused this end (it sent an alert). Both drivers
/// report a refusal with it.
pub fn refusal(e: &rustls::Error) -> std::io::Error {
    use std::io::{Error, ErrorKind};
    match e {
        rustls::Error::AlertReceived(_) => Error::new(
            ErrorKind::ConnectionRefused,
            format!("TLS: the peer refused this end: {e}"),
        ),
        _ => Error::new(
            ErrorKind::PermissionDenied,
            format!("TLS: refused the peer: {e}"),
        ),
    }
}
