//! Loading certificates and keys: what is refused, and why.
#![cfg(all(feature = "tls", target_os = "linux"))]

#[path = "support/certs.rs"]
mod certs;

use peerpipe_host::{TlsClient, TlsError, TlsServer};

#[test]
fn good_pem_loads_and_bad_pem_is_refused_with_its_reason() {
    let ca = certs::Ca::new("test CA");
    let id = ca.issue(&["localhost"]);
    let other = ca.issue(&["other"]);
    TlsServer::new(id.cert_pem.as_bytes(), id.key_pem.as_bytes())
        .unwrap()
        .require_client_cert(ca.pem.as_bytes())
        .unwrap();
    TlsClient::new(ca.pem.as_bytes(), "localhost")
        .unwrap()
        .with_client_cert(id.cert_pem.as_bytes(), id.key_pem.as_bytes())
        .unwrap();
    TlsClient::new(ca.pem.as_bytes(), "127.0.0.1").unwrap();

    assert!(matches!(
        TlsClient::new(b"not PEM", "localhost"),
        Err(TlsError::NoCertificate { what: "CA" })
    ));
    assert!(matches!(
        TlsClient::new(ca.pem.as_bytes(), "bad name!"),
        Err(TlsError::BadServerName(_))
    ));
    assert!(matches!(
        TlsServer::new(id.cert_pem.as_bytes(), id.cert_pem.as_bytes()),
        Err(TlsError::NoKey)
    ));
    // A key that is not the certificate's.
    let mismatch = TlsServer::new(id.cert_pem.as_bytes(), other.key_pem.as_bytes());
    assert!(matches!(mismatch, Err(TlsError::Rustls(_))), "{mismatch:?}");
    let missing = TlsClient::from_file(std::path::Path::new("/nonexistent/ca.pem"), "x");
    assert!(matches!(missing, Err(TlsError::Read { .. })));
    assert!(missing
        .unwrap_err()
        .to_string()
        .contains("/nonexistent/ca.pem"));
}
