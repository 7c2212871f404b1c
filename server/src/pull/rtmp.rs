//! RTMP play client for pulls: TCP, the handshake, `connect`, `play`, then every audio and
//! video message into a `Feed`. The protocol is rml_rtmp's sans-IO `ClientSession` (the
//! one the benchmark's viewers and the pusher's publisher drive); this file only moves its
//! bytes, with a deadline on setup and a stall timeout on media. It never retries:
//! the caller (`super::PullTask`) owns backoff and origin choice.

use std::time::Duration;

use onair_shared::metadata::{Metadata, ScriptData};
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::{Ended, Feed, PullError, Watch};
use crate::cluster::config::ClusterConfig;
use crate::cluster::hops;

const READ_BUF: usize = 64 * 1024;

/// Where to play from.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port` (1935 when the URL has none).
    pub host_port: String,
    pub app: String,
    /// The play name, with its query (hop list, token).
    pub play: String,
    pub tc_url: String,
}

impl Target {
    /// An origin base URL (`rtmp://host:port`) and the stream to play there.
    pub fn origin(base: &str, app: &str, play: &str) -> Result<Target, PullError> {
        let host_port = host_port(base)?;
        Ok(Target {
            tc_url: format!("rtmp://{host_port}/{app}"),
            host_port,
            app: app.to_string(),
            play: play.to_string(),
        })
    }

    /// A full `rtmp://host[:port]/app/stream[?query]` URL; the hop list is added to the query.
    pub fn parse(url: &str, via: &[String]) -> Result<Target, PullError> {
        let bad = |why| PullError::BadUrl(super::redact(url), why);
        let rest = url
            .strip_prefix("rtmp://")
            .ok_or_else(|| bad("not rtmp://"))?;
        let (authority, path) = rest.split_once('/').ok_or_else(|| bad("no app/stream"))?;
        let (app, stream) = path.split_once('/').ok_or_else(|| bad("no stream name"))?;
        if app.is_empty() || stream.is_empty() {
            return Err(bad("empty app or stream"));
        }
        let host_port = host_port(&format!("rtmp://{authority}"))?;
        let (name, query) = match stream.split_once('?') {
            Some((n, q)) => (n, Some(q)),
            None => (stream, None),
        };
        let mut play = hops::play_name(name, via, "");
        if let Some(q) = query {
            play.push('&');
            play.push_str(q);
        }
        Ok(Target {
            tc_url: format!("rtmp://{host_port}/{app}"),
            host_port,
            app: app.to_string(),
            play,
        })
    }
}

fn host_port(base: &str) -> Result<String, PullError> {
    let rest = base
        .strip_prefix("rtmp://")
        .ok_or_else(|| PullError::BadUrl(super::redact(base), "not rtmp://"))?;
    let authority = rest.split('/').next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') {
        return Err(PullError::BadUrl(
            super::redact(base),
            "no host (or user info, which RTMP has no use for)",
        ));
    }
    // A bracketed IPv6 address without a port, or a host without one, gets RTMP's port.
    let has_port = match authority.rfind(']') {
        Some(i) => authority[i..].contains(':'),
        None => authority.contains(':'),
    };
    Ok(if has_port {
        authority.to_string()
    } else {
        format!("{authority}:1935")
    })
}

struct Conn {
    sock: TcpStream,
    session: ClientSession,
    buf: Box<[u8]>,
}

impl Conn {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), PullError> {
        self.sock.write_all(bytes).await?;
        Ok(())
    }

    async fn send(
        &mut self,
        results: Vec<ClientSessionResult>,
    ) -> Result<Vec<ClientSessionEvent>, PullError> {
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

    async fn read(&mut self) -> Result<usize, PullError> {
        let n = self.sock.read(&mut self.buf).await?;
        if n == 0 {
            return Err(PullError::Closed);
        }
        Ok(n)
    }

    async fn input(&mut self, n: usize) -> Result<Vec<ClientSessionEvent>, PullError> {
        let results = self
            .session
            .handle_input(&self.buf[..n])
            .map_err(|e| PullError::Protocol(e.to_string()))?;
        self.send(results).await
    }
}

/// Connects, plays `target`, and feeds its media until idle, shutdown or an error.
pub async fn pull(
    target: &Target,
    cfg: &ClusterConfig,
    feed: &mut Feed,
    watch: &mut Watch<'_>,
) -> Result<Ended, PullError> {
    let setup = Duration::from_millis(cfg.connect_timeout_ms);
    let deadline = Instant::now() + setup;
    let (mut conn, early) = tokio::time::timeout_at(deadline, connect(target))
        .await
        .map_err(|_| PullError::SetupTimeout(setup))??;
    if let Ok(peer) = conn.sock.peer_addr() {
        feed.set_peer(peer);
    }
    let stall = Duration::from_millis(cfg.read_timeout_ms);
    let mut events = early;
    let mut playing = false;
    let mut tick = tokio::time::interval(watch.tick());
    let mut last_read = Instant::now();
    loop {
        for e in events.drain(..) {
            match e {
                ClientSessionEvent::PlaybackRequestAccepted => playing = true,
                ClientSessionEvent::VideoDataReceived {
                    data, timestamp, ..
                } => feed.flv_video(timestamp.value, &data)?,
                ClientSessionEvent::AudioDataReceived {
                    data, timestamp, ..
                } => feed.flv_audio(timestamp.value, &data)?,
                ClientSessionEvent::StreamMetadataReceived { metadata } => {
                    feed.metadata(script_data(&metadata))?
                }
                ClientSessionEvent::UnhandleableOnStatusCode { code } if is_refusal(&code) => {
                    return Err(PullError::Refused(code));
                }
                _ => {}
            }
        }
        // Until play is accepted the setup deadline holds; then the stall timeout does.
        let read_limit = if playing { last_read + stall } else { deadline };
        let n = tokio::select! {
            r = tokio::time::timeout_at(read_limit, conn.read()) => match r {
                Ok(n) => n?,
                Err(_) if playing => return Err(PullError::Stalled(stall)),
                Err(_) => return Err(PullError::SetupTimeout(setup)),
            },
            _ = tick.tick() => {
                if let Some(ended) = watch.check() {
                    return Ok(ended);
                }
                continue;
            }
            _ = watch.shutdown.cancelled() => return Ok(Ended::Shutdown),
        };
        last_read = Instant::now();
        events = conn.input(n).await?;
    }
}

/// The upstream's `onMetaData`, as rml_rtmp parsed it, in the hub's form (rebuilt: the
/// client session does not keep the raw body).
fn script_data(m: &rml_rtmp::sessions::StreamMetadata) -> ScriptData {
    let metadata = Metadata {
        width: m.video_width.map(f64::from),
        height: m.video_height.map(f64::from),
        framerate: m.video_frame_rate.map(f64::from),
        video_data_rate: m.video_bitrate_kbps.map(f64::from),
        audio_data_rate: m.audio_bitrate_kbps.map(f64::from),
        video_codec: m.video_codec_id.map(|c| match c {
            7 => "h264".to_string(),
            other => other.to_string(),
        }),
        audio_codec: m.audio_codec_id.map(|c| match c {
            10 => "aac".to_string(),
            2 => "mp3".to_string(),
            other => other.to_string(),
        }),
        audio_sample_rate: m.audio_sample_rate.map(f64::from),
        audio_channels: m
            .audio_channels
            .map(f64::from)
            .or(m.audio_is_stereo.map(|s| if s { 2.0 } else { 1.0 })),
        encoder: m.encoder.clone(),
    };
    ScriptData {
        body: metadata.to_script_body(),
        metadata,
    }
}

pub(crate) fn is_refusal(code: &str) -> bool {
    const ENDINGS: [&str; 6] = [
        "Failed",
        "NotFound",
        "BadName",
        "Rejected",
        "Forbidden",
        "Unauthorized",
    ];
    ENDINGS.iter().any(|s| code.ends_with(s))
}

/// TCP, handshake, `connect` accepted, `play` sent; returns events that came along.
async fn connect(target: &Target) -> Result<(Conn, Vec<ClientSessionEvent>), PullError> {
    let sock = TcpStream::connect(&target.host_port)
        .await
        .map_err(PullError::Connect)?;
    let _ = sock.set_nodelay(true);
    let mut config = ClientSessionConfig::new();
    config.tc_url = Some(target.tc_url.clone());
    let (session, initial) =
        ClientSession::new(config).map_err(|e| PullError::Protocol(e.to_string()))?;
    let mut conn = Conn {
        sock,
        session,
        buf: vec![0u8; READ_BUF].into_boxed_slice(),
    };
    let leftover = handshake(&mut conn).await?;
    conn.send(initial).await?;
    let req = conn
        .session
        .request_connection(target.app.clone())
        .map_err(|e| PullError::Protocol(e.to_string()))?;
    conn.send(vec![req]).await?;
    let results = conn
        .session
        .handle_input(&leftover)
        .map_err(|e| PullError::Protocol(e.to_string()))?;
    let mut events = conn.send(results).await?;
    loop {
        let mut accepted = false;
        for e in events.drain(..) {
            match e {
                ClientSessionEvent::ConnectionRequestAccepted => accepted = true,
                ClientSessionEvent::ConnectionRequestRejected { description } => {
                    return Err(PullError::Refused(format!("connect: {description}")));
                }
                _ => {}
            }
        }
        if accepted {
            break;
        }
        let n = conn.read().await?;
        events = conn.input(n).await?;
    }
    let req = conn
        .session
        .request_playback(target.play.clone())
        .map_err(|e| PullError::Protocol(e.to_string()))?;
    let events = conn.send(vec![req]).await?;
    Ok((conn, events))
}

async fn handshake(conn: &mut Conn) -> Result<Vec<u8>, PullError> {
    client_handshake(&mut conn.sock, &mut conn.buf).await
}

/// The client side of the RTMP handshake; returns the bytes that came after it.
pub(crate) async fn client_handshake(
    sock: &mut TcpStream,
    buf: &mut [u8],
) -> Result<Vec<u8>, PullError> {
    let mut hs = Handshake::new(PeerType::Client);
    let p0p1 = hs
        .generate_outbound_p0_and_p1()
        .map_err(|e| PullError::Handshake(e.to_string()))?;
    sock.write_all(&p0p1).await?;
    loop {
        let n = sock.read(buf).await?;
        if n == 0 {
            return Err(PullError::Closed);
        }
        match hs
            .process_bytes(&buf[..n])
            .map_err(|e| PullError::Handshake(e.to_string()))?
        {
            HandshakeProcessResult::InProgress { response_bytes } => {
                sock.write_all(&response_bytes).await?;
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                sock.write_all(&response_bytes).await?;
                return Ok(remaining_bytes);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t = Target::origin("rtmp://127.0.0.1:1936", "live", "x?onair_via=a").unwrap();
        assert_eq!(t.host_port, "127.0.0.1:1936");
        assert_eq!(t.tc_url, "rtmp://127.0.0.1:1936/live");
        let t = Target::parse("rtmp://srv/live/cam?key=k", &["n1".into()]).unwrap();
        assert_eq!(t.host_port, "srv:1935");
        assert_eq!(t.app, "live");
        assert_eq!(t.play, "cam?onair_via=n1&key=k");
        assert!(Target::parse("rtmp://srv/live", &[]).is_err());
        assert!(Target::origin("http://x", "live", "x").is_err());
        assert!(Target::origin("rtmp://u:p@x", "live", "x").is_err());
    }

    #[test]
    fn refusals() {
        assert!(is_refusal("NetStream.Play.StreamNotFound"));
        assert!(is_refusal("NetStream.Play.Unauthorized"));
        assert!(!is_refusal("NetStream.Play.UnpublishNotify"));
    }
}
