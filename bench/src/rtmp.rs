//! An RTMP client connection for publisher and viewers: TCP with TCP_NODELAY (and TLS for
//! rtmps://), the handshake,
//! `connect` to the app, and a read/process loop over rml_rtmp's `ClientSession`.

use crate::rtmp_scan::is_ending_status;
use crate::target::RtmpTarget;
use anyhow::{bail, Context, Result};
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult,
};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Bound on one write to the server; a server that stops reading for this long is stuck.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
const READ_BUF: usize = 64 * 1024;

/// The code of an `onStatus` that ends a play or publish attempt (stream not found, bad name...).
pub fn error_status(e: &ClientSessionEvent) -> Option<&str> {
    match e {
        ClientSessionEvent::UnhandleableOnStatusCode { code } if is_ending_status(code) => {
            Some(code)
        }
        _ => None,
    }
}

/// TCP, or TLS over TCP.
trait Transport: AsyncRead + AsyncWrite + Unpin + Send {
    /// The plain TCP socket it is, or itself back if it is not one.
    fn into_tcp(self: Box<Self>) -> std::result::Result<TcpStream, Box<dyn Transport>>;
}

impl Transport for TcpStream {
    fn into_tcp(self: Box<Self>) -> std::result::Result<TcpStream, Box<dyn Transport>> {
        Ok(*self)
    }
}

impl Transport for tokio_rustls::client::TlsStream<TcpStream> {
    fn into_tcp(self: Box<Self>) -> std::result::Result<TcpStream, Box<dyn Transport>> {
        Err(self)
    }
}

pub struct RtmpClient {
    pub session: ClientSession,
    sock: Box<dyn Transport>,
    buf: Box<[u8]>,
    filled: usize,
    /// What a scanner taking over replays (`into_plain`).
    given: Given,
}

/// Every byte after the handshake the session was given, while under `MAX_GIVEN`.
#[derive(Default)]
struct Given {
    bytes: Vec<u8>,
    overflow: bool,
}

impl Given {
    fn keep(&mut self, bytes: &[u8]) {
        if self.overflow {
            return;
        }
        if self.bytes.len() + bytes.len() > MAX_GIVEN {
            self.overflow = true;
            self.bytes = Vec::new();
        } else {
            self.bytes.extend_from_slice(bytes);
        }
    }
}

/// The set-up's bytes kept for a scanner: connect's and play's answers (about 600 bytes)
/// and what came with them (at most a read's worth of the cached GOP); a client given
/// more (a publisher, over its run) stops keeping them.
const MAX_GIVEN: usize = 2 * READ_BUF;

impl RtmpClient {
    /// TCP connect, handshake and `connect` to the target's app; returns once it is accepted.
    pub async fn connect(target: &RtmpTarget) -> Result<Self> {
        let sock = TcpStream::connect(target.addr)
            .await
            .with_context(|| format!("tcp connect to {}", target.addr))?;
        sock.set_nodelay(true)?;
        let sock: Box<dyn Transport> = if target.tls {
            Box::new(crate::tls::connect(sock).await?)
        } else {
            Box::new(sock)
        };
        let mut config = ClientSessionConfig::new();
        config.tc_url = Some(target.tc_url.clone());
        let (session, initial) = ClientSession::new(config)?;
        let mut client = Self {
            session,
            sock,
            buf: vec![0u8; READ_BUF].into_boxed_slice(),
            filled: 0,
            given: Given::default(),
        };
        let leftover = client.handshake().await?;
        client.send_all(initial).await?;
        let req = client.session.request_connection(target.app.clone())?;
        client.send(req).await?;
        let mut events = client.process_bytes(&leftover).await?;
        loop {
            for e in events.drain(..) {
                match e {
                    ClientSessionEvent::ConnectionRequestAccepted => return Ok(client),
                    ClientSessionEvent::ConnectionRequestRejected { description } => {
                        bail!("connect rejected: {description}")
                    }
                    _ => {}
                }
            }
            client.read_some().await?;
            events = client.process().await?;
        }
    }

    async fn handshake(&mut self) -> Result<Vec<u8>> {
        let mut hs = Handshake::new(PeerType::Client);
        let p0p1 = hs.generate_outbound_p0_and_p1()?;
        self.write(&p0p1).await?;
        loop {
            let n = self.read_some().await?;
            match hs.process_bytes(&self.buf[..n])? {
                HandshakeProcessResult::InProgress { response_bytes } => {
                    self.write(&response_bytes).await?;
                }
                HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                } => {
                    self.write(&response_bytes).await?;
                    return Ok(remaining_bytes);
                }
            }
        }
    }

    /// The plain TCP socket and every byte after the handshake the session was given, for
    /// a scanner to take the stream over elsewhere; the client back if it runs over TLS or
    /// was given too much to replay.
    pub fn into_plain(self) -> std::result::Result<(TcpStream, Vec<u8>), Box<Self>> {
        if self.given.overflow {
            return Err(Box::new(self));
        }
        let Self {
            session,
            sock,
            buf,
            filled,
            given,
        } = self;
        match sock.into_tcp() {
            Ok(tcp) => Ok((tcp, given.bytes)),
            Err(sock) => Err(Box::new(Self {
                session,
                sock,
                buf,
                filled,
                given,
            })),
        }
    }

    /// Waits for bytes from the server (cancel-safe); returns how many, never 0.
    pub async fn read_some(&mut self) -> Result<usize> {
        let n = self.sock.read(&mut self.buf).await.context("read")?;
        if n == 0 {
            bail!("server closed the connection");
        }
        self.filled = n;
        Ok(n)
    }

    /// Runs the bytes of the last `read_some` through the session, sends its responses
    /// (acknowledgements, pongs) and returns its events.
    pub async fn process(&mut self) -> Result<Vec<ClientSessionEvent>> {
        let input = &self.buf[..self.filled];
        self.given.keep(input);
        let results = self.session.handle_input(input)?;
        self.filled = 0;
        self.handle_results(results).await
    }

    async fn process_bytes(&mut self, bytes: &[u8]) -> Result<Vec<ClientSessionEvent>> {
        self.given.keep(bytes);
        let results = self.session.handle_input(bytes)?;
        self.handle_results(results).await
    }

    async fn handle_results(
        &mut self,
        results: Vec<ClientSessionResult>,
    ) -> Result<Vec<ClientSessionEvent>> {
        let mut events = Vec::new();
        for r in results {
            match r {
                ClientSessionResult::OutboundResponse(p) => self.write(&p.bytes).await?,
                ClientSessionResult::RaisedEvent(e) => events.push(e),
                ClientSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        Ok(events)
    }

    /// Reads and processes until `want` matches an event; other events are dropped.
    pub async fn wait_for(
        &mut self,
        what: &str,
        want: fn(&ClientSessionEvent) -> bool,
    ) -> Result<()> {
        loop {
            self.read_some()
                .await
                .with_context(|| format!("waiting for {what}"))?;
            if self.process().await?.iter().any(want) {
                return Ok(());
            }
        }
    }

    /// Sends one result of a session call (only outbound packets carry bytes).
    pub async fn send(&mut self, r: ClientSessionResult) -> Result<()> {
        if let ClientSessionResult::OutboundResponse(p) = r {
            self.write(&p.bytes).await?;
        }
        Ok(())
    }

    async fn send_all(&mut self, results: Vec<ClientSessionResult>) -> Result<()> {
        for r in results {
            self.send(r).await?;
        }
        Ok(())
    }

    pub async fn write(&mut self, bytes: &[u8]) -> Result<()> {
        // Flushed: TLS may hold the last record back (a no-op on TCP).
        let write = async {
            self.sock.write_all(bytes).await?;
            self.sock.flush().await
        };
        match timeout(WRITE_TIMEOUT, write).await {
            Ok(r) => r.context("write"),
            Err(_) => bail!("write blocked for {WRITE_TIMEOUT:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_statuses() {
        let status =
            |code: &str| ClientSessionEvent::UnhandleableOnStatusCode { code: code.into() };
        let e = status("NetStream.Play.StreamNotFound");
        assert_eq!(error_status(&e), Some("NetStream.Play.StreamNotFound"));
        assert!(error_status(&status("NetStream.Publish.BadName")).is_some());
        assert!(error_status(&status("NetStream.Play.Reset")).is_none());
        assert!(error_status(&status("NetStream.Play.UnpublishNotify")).is_none());
        assert!(error_status(&ClientSessionEvent::PlaybackRequestAccepted).is_none());
    }
}
