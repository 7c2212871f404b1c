//! TLS for the RTMPS and HTTPS listeners: the certificate (PEM files or one generated at
//! start), swapped whole on reload so open connections keep theirs, and the bounded server
//! handshake that tells a plain RTMP or HTTP client and garbage apart from a TLS client.
//! It never reads past the handshake: what follows belongs to the RTMP driver or hyper.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;

/// The first byte of a TLS record carrying a handshake (the ClientHello).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;
/// The first byte a plain RTMP client sends (C0, the version).
const RTMP_VERSION: u8 = 0x03;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS needs tls.cert and tls.key, or tls.self_signed = true")]
    NoCertificate,
    #[error("set either tls.cert and tls.key, or tls.self_signed, not both")]
    Ambiguous,
    #[error("reading {what} {path}: {error}")]
    Pem {
        what: &'static str,
        path: String,
        error: rustls_pki_types::pem::Error,
    },
    #[error("{0} holds no certificate")]
    EmptyChain(String),
    #[error("certificate and key do not make a TLS config: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("generating a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// Why a connection to a TLS port was closed before its handshake finished. Each is
/// counted in `/metrics` under `reason()`.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeRefusal {
    #[error("TLS handshake not finished within {0:?}")]
    Timeout(Duration),
    #[error("plain RTMP sent to a TLS port")]
    PlainRtmp,
    #[error("plain HTTP sent to a TLS port")]
    PlainHttp,
    #[error("closed before a TLS handshake")]
    Closed,
    #[error("TLS handshake failed: {0}")]
    Failed(io::Error),
}

impl HandshakeRefusal {
    pub fn reason(&self) -> &'static str {
        match self {
            HandshakeRefusal::Timeout(_) => "tls_handshake_timeout",
            HandshakeRefusal::PlainRtmp => "tls_plain_rtmp",
            HandshakeRefusal::PlainHttp => "tls_plain_http",
            HandshakeRefusal::Closed | HandshakeRefusal::Failed(_) => "tls_bad_handshake",
        }
    }
}

/// The running certificate. Each handshake takes the config current at its start.
pub struct Tls {
    config: ArcSwap<ServerConfig>,
    fingerprint: ArcSwap<String>,
}

/// A certificate chain and its key, with the leaf's SHA-256 fingerprint.
struct Loaded {
    config: ServerConfig,
    fingerprint: String,
}

impl Tls {
    /// Reads (or generates) the certificate that `cfg` names.
    pub fn new(cfg: &TlsConfig) -> Result<Self, TlsError> {
        let loaded = load(cfg)?;
        Ok(Self {
            config: ArcSwap::from_pointee(loaded.config),
            fingerprint: ArcSwap::from_pointee(loaded.fingerprint),
        })
    }

    /// Checks the files `cfg` names; `install` them with `Prepared::install`. A generated
    /// certificate stays as it is (there is nothing to re-read).
    pub fn prepare(&self, cfg: &TlsConfig) -> Result<Option<Prepared>, TlsError> {
        if cfg.self_signed && cfg.cert.is_none() && cfg.key.is_none() {
            return Ok(None);
        }
        Ok(Some(Prepared(load(cfg)?)))
    }

    /// SHA-256 of the leaf certificate served now, as `AB:CD:…`.
    pub fn fingerprint(&self) -> String {
        self.fingerprint.load().as_ref().clone()
    }

    /// The server side of the handshake on `socket`, within `limit`. Plain RTMP, plain
    /// HTTP (answered with a 400 that says to use https) and garbage are refused.
    pub async fn accept(
        &self,
        socket: TcpStream,
        limit: Duration,
    ) -> Result<TlsStream<TcpStream>, HandshakeRefusal> {
        let acceptor = TlsAcceptor::from(self.config.load_full());
        let handshake = async {
            let mut first = [0u8; 1];
            let n = socket
                .peek(&mut first)
                .await
                .map_err(HandshakeRefusal::Failed)?;
            match (n, first[0]) {
                (0, _) => Err(HandshakeRefusal::Closed),
                (_, TLS_HANDSHAKE_RECORD) => acceptor
                    .accept(socket)
                    .await
                    .map_err(HandshakeRefusal::Failed),
                (_, RTMP_VERSION) => Err(HandshakeRefusal::PlainRtmp),
                (_, b) if b.is_ascii_uppercase() => {
                    refuse_plain_http(socket).await;
                    Err(HandshakeRefusal::PlainHttp)
                }
                _ => Err(HandshakeRefusal::Failed(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "not a TLS record",
                ))),
            }
        };
        tokio::time::timeout(limit, handshake)
            .await
            .map_err(|_| HandshakeRefusal::Timeout(limit))?
    }
}

/// A certificate read and checked, not yet served.
pub struct Prepared(Loaded);

impl Prepared {
    /// Serves it to handshakes from now on; returns whether it differs from the old one.
    pub fn install(self, tls: &Tls) -> bool {
        let changed = *tls.fingerprint.load().as_ref() != self.0.fingerprint;
        tls.config.store(Arc::new(self.0.config));
        tls.fingerprint.store(Arc::new(self.0.fingerprint));
        changed
    }
}

/// A browser or curl on the wrong scheme learns why, instead of a bare close.
async fn refuse_plain_http(mut socket: TcpStream) {
    let body = "this port speaks HTTPS\n";
    let res = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    // The request is read (one bounded read) so the close is not a reset over unread bytes.
    let mut sink = [0u8; 4096];
    let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut sink).await;
    let _ = socket.write_all(res.as_bytes()).await;
    let _ = socket.shutdown().await;
}

fn load(cfg: &TlsConfig) -> Result<Loaded, TlsError> {
    let (chain, key) = match (&cfg.cert, &cfg.key, cfg.self_signed) {
        (Some(_), _, true) | (_, Some(_), true) => return Err(TlsError::Ambiguous),
        (Some(cert), Some(key), false) => (read_chain(cert)?, read_key(key)?),
        (None, None, true) => generate()?,
        _ => return Err(TlsError::NoCertificate),
    };
    let fingerprint = fingerprint(&chain[0]);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    Ok(Loaded {
        config,
        fingerprint,
    })
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = |error| TlsError::Pem {
        what: "certificate",
        path: path.display().to_string(),
        error,
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(pem)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem)?;
    if chain.is_empty() {
        return Err(TlsError::EmptyChain(path.display().to_string()));
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|error| TlsError::Pem {
        what: "key",
        path: path.display().to_string(),
        error,
    })
}

/// A certificate for `localhost` and the loopback addresses.
fn generate() -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let names = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    let rcgen::CertifiedKey { cert, key_pair } = rcgen::generate_simple_self_signed(names)?;
    let key = PrivatePkcs8KeyDer::from(key_pair.serialize_der());
    Ok((vec![cert.der().clone()], key.into()))
}

/// SHA-256 of a DER certificate, as `openssl x509 -fingerprint -sha256` prints it.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let hex: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn files_self_signed_and_their_mistakes() {
        let dir = std::env::temp_dir().join(format!("onair-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert = write(&dir, "c.pem", &ck.cert.pem());
        let key = write(&dir, "k.pem", &ck.key_pair.serialize_pem());
        let files = TlsConfig {
            cert: Some(cert.clone()),
            key: Some(key.clone()),
            ..Default::default()
        };
        let tls = Tls::new(&files).unwrap();
        assert_eq!(tls.fingerprint(), fingerprint(ck.cert.der()));
        assert_eq!(tls.fingerprint().len(), 32 * 3 - 1);

        // Reload with a new certificate in the same files.
        let ck2 = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        write(&dir, "c.pem", &ck2.cert.pem());
        write(&dir, "k.pem", &ck2.key_pair.serialize_pem());
        assert!(tls.prepare(&files).unwrap().unwrap().install(&tls));
        assert_eq!(tls.fingerprint(), fingerprint(ck2.cert.der()));

        // A key that is not the certificate's is refused, and changes nothing.
        write(&dir, "k.pem", &ck.key_pair.serialize_pem());
        assert!(tls.prepare(&files).is_err());
        assert_eq!(tls.fingerprint(), fingerprint(ck2.cert.der()));
        write(&dir, "c.pem", "not pem\n");
        assert!(matches!(
            tls.prepare(&files),
            Err(TlsError::EmptyChain(_) | TlsError::Pem { .. })
        ));

        assert!(matches!(
            Tls::new(&TlsConfig::default()),
            Err(TlsError::NoCertificate)
        ));
        let both = TlsConfig {
            self_signed: true,
            ..files
        };
        assert!(matches!(Tls::new(&both), Err(TlsError::Ambiguous)));
        let generated = TlsConfig {
            self_signed: true,
            ..Default::default()
        };
        let tls = Tls::new(&generated).unwrap();
        assert!(tls.prepare(&generated).unwrap().is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
