//! `edge_publish = "forward"`: a publish that reaches an edge is served locally and
//! relayed to an origin over RTMP publish (rml_rtmp's `ClientSession`, as the pusher and
//! the pull client use it), so viewers anywhere in the cluster find it there. The relay
//! subscribes to the local stream like the HLS segmenter (not counted as a viewer),
//! reconnects with backoff to the next origin, and ends with the stream. It never blocks
//! the publisher: a slow origin makes the relay lag and skip, as any viewer would.

use std::sync::Arc;
use std::time::Duration;

use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult, PublishRequestType,
};
use rml_rtmp::time::RtmpTimestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Cluster;
use crate::hub::{Item, Stream, Subscription};
use crate::pull::{redact, PullError};

/// Relays `stream` (published here) to the first origin that takes it, until it ends.
pub async fn run(cluster: Arc<Cluster>, stream: Arc<Stream>, via: Vec<String>) {
    let cfg = cluster.config().clone();
    let min = Duration::from_millis(cfg.retry_min_ms.max(1));
    let max = Duration::from_millis(cfg.retry_max_ms.max(cfg.retry_min_ms.max(1)));
    let mut backoff = min;
    let mut sub = Subscription::internal(&stream);
    let name = super::hops::play_name(&stream.key.name, &via, &cfg.origin_credential);
    loop {
        for origin in cluster.candidates(&stream.key).await {
            match relay(&origin, &stream.key.app, &name, &mut sub, &cfg).await {
                Ok(()) => {
                    tracing::info!(parent: &stream.span, origin = %redact(&origin), "publish relay ended with the stream");
                    return;
                }
                Err(e) => {
                    tracing::warn!(parent: &stream.span, origin = %redact(&origin), error = %e, "publish relay failed");
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(max);
        // A new subscription starts again from the GOP cache (the origin needs a keyframe).
        match stream_alive(&stream) {
            true => sub = Subscription::internal(&stream),
            false => return,
        }
    }
}

fn stream_alive(stream: &Stream) -> bool {
    stream.publisher().is_some()
}

async fn write(
    sock: &mut TcpStream,
    results: Vec<ClientSessionResult>,
) -> Result<Vec<ClientSessionEvent>, PullError> {
    let mut events = Vec::new();
    for r in results {
        match r {
            ClientSessionResult::OutboundResponse(p) => sock.write_all(&p.bytes).await?,
            ClientSessionResult::RaisedEvent(e) => events.push(e),
            ClientSessionResult::UnhandleableMessageReceived(_) => {}
        }
    }
    Ok(events)
}

fn proto(e: impl std::fmt::Display) -> PullError {
    PullError::Protocol(e.to_string())
}

/// One connection: handshake, connect, publish, then the stream's frames. `Ok` when the
/// stream ended.
async fn relay(
    origin: &str,
    app: &str,
    name: &str,
    sub: &mut Subscription,
    cfg: &super::config::ClusterConfig,
) -> Result<(), PullError> {
    let target = crate::pull::rtmp::Target::origin(origin, app, name)?;
    let setup = Duration::from_millis(cfg.connect_timeout_ms);
    let mut buf = vec![0u8; 64 * 1024];
    let (mut sock, mut session) = tokio::time::timeout(setup, async {
        let mut sock = TcpStream::connect(&target.host_port)
            .await
            .map_err(PullError::Connect)?;
        let _ = sock.set_nodelay(true);
        let leftover = crate::pull::rtmp::client_handshake(&mut sock, &mut buf).await?;
        let mut config = ClientSessionConfig::new();
        config.tc_url = Some(target.tc_url.clone());
        let (mut session, initial) = ClientSession::new(config).map_err(proto)?;
        write(&mut sock, initial).await?;
        let req = session.request_connection(app.to_string()).map_err(proto)?;
        write(&mut sock, vec![req]).await?;
        let mut events = write(&mut sock, session.handle_input(&leftover).map_err(proto)?).await?;
        let mut asked = false;
        loop {
            for e in events.drain(..) {
                match e {
                    ClientSessionEvent::ConnectionRequestAccepted if !asked => {
                        asked = true;
                        let req = session
                            .request_publishing(name.to_string(), PublishRequestType::Live)
                            .map_err(proto)?;
                        write(&mut sock, vec![req]).await?;
                    }
                    ClientSessionEvent::PublishRequestAccepted => return Ok((sock, session)),
                    ClientSessionEvent::ConnectionRequestRejected { description } => {
                        return Err(PullError::Refused(description))
                    }
                    ClientSessionEvent::UnhandleableOnStatusCode { code }
                        if crate::pull::rtmp::is_refusal(&code) =>
                    {
                        return Err(PullError::Refused(code))
                    }
                    _ => {}
                }
            }
            let n = sock.read(&mut buf).await?;
            if n == 0 {
                return Err(PullError::Closed);
            }
            events = write(&mut sock, session.handle_input(&buf[..n]).map_err(proto)?).await?;
        }
    })
    .await
    .map_err(|_| PullError::SetupTimeout(setup))??;
    loop {
        tokio::select! {
            item = sub.next_item() => {
                let Ok(item) = item else { return Ok(()) };
                let Item::Frame(f) = item else { continue };
                let Some((tag_type, body)) = f.flv_message() else { continue };
                let ts = RtmpTimestamp::new(f.wire_timestamp());
                let r = match tag_type {
                    8 => session.publish_audio_data(body, ts, false),
                    9 => session.publish_video_data(body, ts, false),
                    _ => continue,
                }
                .map_err(proto)?;
                write(&mut sock, vec![r]).await?;
            }
            n = sock.read(&mut buf) => {
                let n = n?;
                if n == 0 {
                    return Err(PullError::Closed);
                }
                let events = write(&mut sock, session.handle_input(&buf[..n]).map_err(proto)?).await?;
                if let Some(code) = events.iter().find_map(|e| match e {
                    ClientSessionEvent::UnhandleableOnStatusCode { code }
                        if crate::pull::rtmp::is_refusal(code) =>
                    {
                        Some(code.clone())
                    }
                    _ => None,
                }) {
                    return Err(PullError::Refused(code));
                }
            }
        }
    }
}
