//! An RTMP viewer: connect, play the stream, and hand every video message to its recorder
//! with the time the bytes carrying it were read, until told to stop or disconnected.
//! Over plain TCP the socket is read by a reader thread once the play is requested; over
//! TLS by the viewer's own task.

use crate::readers::{Demux, Readers};
use crate::rtmp::{self, RtmpClient};
use crate::stats::{ViewerRecorder, ViewerResult};
use crate::target::RtmpTarget;
use anyhow::{bail, Context, Result};
use rml_rtmp::sessions::{ClientSession, ClientSessionEvent, ClientSessionResult};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::timeout;

const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn run(
    target: Arc<RtmpTarget>,
    mut rec: ViewerRecorder,
    stop: watch::Receiver<bool>,
    readers: Arc<Readers>,
) -> ViewerResult {
    rec.connecting();
    let mut stopped = stop.clone();
    let setup = tokio::select! {
        r = setup(&target) => Some(r),
        _ = stopped.changed() => None,
    };
    let client = match setup {
        None => return rec.finish(None),
        Some(Err(e)) => return rec.finish(Some(format!("{e:#}"))),
        Some(Ok(client)) => client,
    };
    match client.into_plain() {
        Ok((sock, session)) => {
            readers
                .read(sock, Box::new(RtmpPlay { session }), rec, stop)
                .await
        }
        Err(client) => {
            let error = tokio::select! {
                r = play_here(*client, &mut rec) => r.err().map(|e| format!("{e:#}")),
                _ = stopped.changed() => None,
            };
            rec.finish(error)
        }
    }
}

/// Connected, and the play requested.
async fn setup(target: &RtmpTarget) -> Result<RtmpClient> {
    let mut client = timeout(SETUP_TIMEOUT, RtmpClient::connect(target))
        .await
        .context("connect timed out")??;
    let req = client.session.request_playback(target.stream.clone())?;
    client.send(req).await?;
    Ok(client)
}

/// The play's messages, through the client session (which also answers the server:
/// acknowledgements, pongs).
struct RtmpPlay {
    session: ClientSession,
}

impl Demux for RtmpPlay {
    fn feed(
        &mut self,
        data: &[u8],
        now_ns: u64,
        rec: &mut ViewerRecorder,
        reply: &mut Vec<u8>,
    ) -> Result<()> {
        for r in self.session.handle_input(data)? {
            match r {
                ClientSessionResult::OutboundResponse(p) => reply.extend_from_slice(&p.bytes),
                ClientSessionResult::RaisedEvent(e) => on_event(&e, now_ns, rec)?,
                ClientSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        Ok(())
    }
}

fn on_event(e: &ClientSessionEvent, now_ns: u64, rec: &mut ViewerRecorder) -> Result<()> {
    if let ClientSessionEvent::VideoDataReceived { data, .. } = e {
        rec.on_video(data, now_ns);
    } else if let Some(code) = rtmp::error_status(e) {
        bail!("server answered {code}");
    }
    Ok(())
}

/// Reads the play on this task (TLS).
async fn play_here(mut client: RtmpClient, rec: &mut ViewerRecorder) -> Result<()> {
    let clock = rec.clock();
    loop {
        let n = client.read_some().await?;
        let now = clock.now_ns();
        rec.on_bytes(n);
        for event in client.process().await? {
            on_event(&event, now, rec)?;
        }
    }
}
