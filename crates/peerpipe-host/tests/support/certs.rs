// Certificates for the TLS tests, made at test time with rcgen (no key is ever committed): a
// certificate authority, and certificates it signs. Shared by the TLS tests of peerpipe-host,
// peerpipe-std, peerpipe-tokio, peerpipe-cli and the examples (`#[path]`, or `include!` where
// `#[path]` cannot reach it: so plain comments, no inner attributes). Not every user needs every
// item.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// A certificate authority.
#[allow(dead_code)]
pub struct Ca {
    /// Its certificate, in PEM: what the other side trusts.
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate the authority signed, with its key.
#[allow(dead_code)]
pub struct Identity {
    pub cert_pem: String,
    pub key_pem: String,
}

#[allow(dead_code)]
impl Ca {
    /// A new authority named `name`.
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A certificate for `names` (DNS names or IP addresses), good for a server and a client.
    pub fn issue(&self, names: &[&str]) -> Identity {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).unwrap();
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Identity {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}
