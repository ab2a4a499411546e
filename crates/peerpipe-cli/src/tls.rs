//! TLS options of tcp: and tcp-listen: links (`--tls`, `--tls-ca`, `--tls-cert`, `--tls-key`,
//! `--tls-server-name`), turned into the driver's TLS configurations.

use std::path::PathBuf;

use clap::Args;
use peerpipe_std::{Config, PipeListener, TcpTransport};

use crate::exit::CliError;

/// What `--help` says about TLS, with an example.
pub const HELP: &str = "\
TLS (tcp: and tcp-listen: links): without it, anyone who can reach the port can talk to the
peer and read what crosses. --tls turns it on (any --tls-* option implies it). A tcp: link
checks the server's certificate against --tls-ca, for the link's HOST (or --tls-server-name),
and shows --tls-cert/--tls-key if the server asks for a client certificate. A tcp-listen: link
serves --tls-cert/--tls-key, and with --tls-ca requires every client to show a certificate
signed by it (mutual authentication). A refused peer exits 3 with the reason.
  peerpipe listen tcp-listen:7000 --echo --tls-cert server.pem --tls-key server.key --tls-ca ca.pem
  peerpipe request tcp:localhost:7000 ping hi --tls-ca ca.pem --tls-cert client.pem --tls-key client.key";

/// The TLS options (global: they apply to the command's tcp: or tcp-listen: link).
#[derive(Args, Debug, Clone, Default)]
pub struct TlsArgs {
    /// Use TLS on tcp: and tcp-listen: links (implied by any --tls-* option).
    #[arg(long, global = true)]
    tls: bool,
    /// CA certificates (PEM). tcp: trusts them for the server's certificate (required);
    /// tcp-listen: requires a client certificate signed by them.
    #[arg(long, global = true, value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// This end's certificate chain (PEM): required on tcp-listen:; on tcp:, the client
    /// certificate for a server that asks for one.
    #[arg(long, global = true, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, global = true, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The name the server's certificate must carry (tcp:; default: the link's HOST).
    #[arg(long, global = true, value_name = "NAME")]
    tls_server_name: Option<String>,
}

impl TlsArgs {
    /// Whether TLS was asked for.
    pub fn enabled(&self) -> bool {
        self.tls
            || self.tls_ca.is_some()
            || self.tls_cert.is_some()
            || self.tls_key.is_some()
            || self.tls_server_name.is_some()
    }

    /// The ACTIVE end of a tcp: link over TLS.
    pub fn connect(&self, host: &str, port: u16) -> Result<TcpTransport, CliError> {
        imp::connect(self, host, port)
    }

    /// The PASSIVE end of a tcp-listen: link over TLS (one peer).
    pub fn listen(&self, host: &str, port: u16) -> Result<TcpTransport, CliError> {
        imp::listen(self, host, port)
    }

    /// A listener for many peers over TLS.
    pub fn bind(&self, host: &str, port: u16, config: Config) -> Result<PipeListener, CliError> {
        imp::bind(self, host, port, config)
    }
}

#[cfg(feature = "tls")]
mod imp {
    use peerpipe_std::{Config, PipeListener, TcpTransport, TlsClient, TlsError, TlsServer};

    use super::TlsArgs;
    use crate::exit::{CliError, Code};
    use crate::link::{link_error, LinkSpec};

    pub(super) fn connect(a: &TlsArgs, host: &str, port: u16) -> Result<TcpTransport, CliError> {
        TcpTransport::connect_tls((host, port), &client(a, host)?).map_err(|e| {
            link_error(
                &LinkSpec::Tcp {
                    host: host.into(),
                    port,
                },
                e,
            )
        })
    }

    pub(super) fn listen(a: &TlsArgs, host: &str, port: u16) -> Result<TcpTransport, CliError> {
        TcpTransport::listen_tls((host, port), &server(a)?).map_err(|e| {
            link_error(
                &LinkSpec::TcpListen {
                    host: host.into(),
                    port,
                },
                e,
            )
        })
    }

    pub(super) fn bind(
        a: &TlsArgs,
        host: &str,
        port: u16,
        config: Config,
    ) -> Result<PipeListener, CliError> {
        PipeListener::bind_tls((host, port), &server(a)?, config).map_err(|e| {
            link_error(
                &LinkSpec::TcpListen {
                    host: host.into(),
                    port,
                },
                e,
            )
        })
    }

    /// The client side, for a tcp: link to `host`.
    fn client(a: &TlsArgs, host: &str) -> Result<TlsClient, CliError> {
        let ca = a.tls_ca.as_ref().ok_or_else(|| {
            CliError::new(
                Code::Usage,
                "TLS on a tcp: link needs --tls-ca FILE: the CA certificate that signed the server's",
            )
        })?;
        let name = a.tls_server_name.as_deref().unwrap_or(host);
        let client = TlsClient::from_file(ca, name).map_err(tls_error)?;
        match (&a.tls_cert, &a.tls_key) {
            (Some(cert), Some(key)) => client.with_client_cert_files(cert, key).map_err(tls_error),
            _ => Ok(client),
        }
    }

    /// The server side, for a tcp-listen: link.
    fn server(a: &TlsArgs) -> Result<TlsServer, CliError> {
        let (Some(cert), Some(key)) = (&a.tls_cert, &a.tls_key) else {
            return Err(CliError::new(
                Code::Usage,
                "TLS on a tcp-listen: link needs --tls-cert FILE and --tls-key FILE",
            ));
        };
        let server = TlsServer::from_files(cert, key).map_err(tls_error)?;
        match &a.tls_ca {
            Some(ca) => server.require_client_cert_file(ca).map_err(tls_error),
            None => Ok(server),
        }
    }

    fn tls_error(e: TlsError) -> CliError {
        let code = match e {
            TlsError::Read { .. } => Code::Other,
            _ => Code::Usage,
        };
        CliError::new(code, format!("TLS: {e}"))
    }
}

#[cfg(not(feature = "tls"))]
mod imp {
    use peerpipe_std::{Config, PipeListener, TcpTransport};

    use super::TlsArgs;
    use crate::exit::{CliError, Code};

    fn unsupported() -> CliError {
        CliError::new(
            Code::Usage,
            "this peerpipe was built without TLS (cargo feature `tls`)",
        )
    }

    pub(super) fn connect(_: &TlsArgs, _: &str, _: u16) -> Result<TcpTransport, CliError> {
        Err(unsupported())
    }

    pub(super) fn listen(_: &TlsArgs, _: &str, _: u16) -> Result<TcpTransport, CliError> {
        Err(unsupported())
    }

    pub(super) fn bind(_: &TlsArgs, _: &str, _: u16, _: Config) -> Result<PipeListener, CliError> {
        Err(unsupported())
    }
}
