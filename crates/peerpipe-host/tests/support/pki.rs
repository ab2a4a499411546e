// The TLS tests' certificates, as the drivers' TLS tests use them: an authority, a server
// identity for `localhost` and `127.0.0.1`, a client identity, and the TLS configurations
// made of them. Shared by the TLS tests of peerpipe-std and peerpipe-tokio (`#[path]`, beside
// `certs`, which it uses as `crate::certs`).

use crate::certs;
use peerpipe_host::{TlsClient, TlsServer};

/// The server's authority and identity, and a client identity of the same authority.
pub struct Pki {
    pub ca: certs::Ca,
    pub server: certs::Identity,
    pub client: certs::Identity,
}

/// A new authority and the two identities it signs.
pub fn pki() -> Pki {
    let ca = certs::Ca::new("peerpipe test CA");
    let server = ca.issue(&["localhost", "127.0.0.1"]);
    let client = ca.issue(&["client"]);
    Pki { ca, server, client }
}

/// The server's TLS: its identity, requiring a client certificate of its authority.
pub fn server_tls(p: &Pki) -> TlsServer {
    TlsServer::new(p.server.cert_pem.as_bytes(), p.server.key_pem.as_bytes())
        .unwrap()
        .require_client_cert(p.ca.pem.as_bytes())
        .unwrap()
}

/// A client's TLS: trusting `ca_pem` for the name `localhost`, with the identity `id` if any.
pub fn client_tls(ca_pem: &str, id: Option<&certs::Identity>) -> TlsClient {
    let tls = TlsClient::new(ca_pem.as_bytes(), "localhost").unwrap();
    match id {
        Some(id) => tls
            .with_client_cert(id.cert_pem.as_bytes(), id.key_pem.as_bytes())
            .unwrap(),
        None => tls,
    }
}
