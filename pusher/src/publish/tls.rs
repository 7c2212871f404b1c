//! The TLS side of rtmps://: a rustls client that verifies the server against the public
//! roots (webpki-roots), or, with `--insecure`, accepts any certificate while still
//! checking the handshake signatures. It only wraps the socket; RTMP is the caller's.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// Why a TLS connection failed, and whether trying again could help.
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct TlsFailure {
    pub reason: String,
    /// A certificate the client refuses stays refused: no point reconnecting.
    pub permanent: bool,
}

/// The client side of the handshake with `host` (the name or address the URL gave).
pub async fn connect(
    sock: TcpStream,
    host: &str,
    insecure: bool,
) -> Result<TlsStream<TcpStream>, TlsFailure> {
    let fail = |reason: String, permanent| TlsFailure { reason, permanent };
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| fail(format!("TLS server name {host:?}: {e}"), true))?;
    let config = client_config(insecure).map_err(|e| fail(format!("TLS config: {e}"), true))?;
    TlsConnector::from(Arc::new(config))
        .connect(name, sock)
        .await
        .map_err(|e| {
            let cert_problem = e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .is_some_and(|r| matches!(r, rustls::Error::InvalidCertificate(_)));
            if cert_problem {
                fail(
                    format!(
                        "TLS handshake with {host}: the server's certificate is refused ({e}); \
                         --insecure accepts any certificate (self-signed, local tests only)"
                    ),
                    true,
                )
            } else {
                fail(format!("TLS handshake with {host}: {e}"), false)
            }
        })
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn client_config(insecure: bool) -> Result<ClientConfig, rustls::Error> {
    let builder =
        ClientConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let config = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
            .with_no_client_auth()
    } else {
        let roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(config)
}

/// `--insecure`: any certificate is taken as the server's; the handshake signatures are
/// still checked against it, so the connection is encrypted to whoever holds its key.
/// Also what the TLS tests use to read whichever certificate a server presents.
#[derive(Debug)]
pub struct AnyCertificate(pub Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
