//! An RTMP viewer: connect, play the stream, and hand every video message to its recorder
//! with the time the bytes carrying it were read, until told to stop or disconnected.
//! Over plain TCP the socket is read by a reader thread once the play is requested; over
//! TLS by the viewer's own task.

use crate::media::CLASSIFY_PREFIX;
use crate::readers::{Demux, Readers};
use crate::rtmp::{self, RtmpClient};
use crate::rtmp_scan::RtmpScan;
use crate::stats::{ViewerRecorder, ViewerResult};
use crate::target::RtmpTarget;
use anyhow::{bail, Context, Result};
use rml_rtmp::sessions::ClientSessionEvent;
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
        r = setup(&target, &mut rec) => Some(r),
        _ = stopped.changed() => None,
    };
    let client = match setup {
        None => return rec.finish(None),
        Some(Err(e)) => return rec.finish(Some(format!("{e:#}"))),
        Some(Ok(client)) => client,
    };
    match client.into_plain() {
        Ok((sock, given)) => {
            let scan = match RtmpScan::resume(CLASSIFY_PREFIX, &given) {
                Ok(scan) => scan,
                Err(e) => return rec.finish(Some(format!("replaying the set-up: {e}"))),
            };
            readers
                .read(sock, Box::new(RtmpPlay(scan)), rec, stop)
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

/// Connected and playing: the session sends createStream, then play, and the set-up
/// ends at the play's acceptance (any video read with it is recorded).
async fn setup(target: &RtmpTarget, rec: &mut ViewerRecorder) -> Result<RtmpClient> {
    let mut client = timeout(SETUP_TIMEOUT, RtmpClient::connect(target))
        .await
        .context("connect timed out")??;
    let req = client.session.request_playback(target.stream.clone())?;
    client.send(req).await?;
    let clock = rec.clock();
    let accepted = async {
        loop {
            let n = client.read_some().await?;
            let now = clock.now_ns();
            rec.on_bytes(n);
            let mut accepted = false;
            for event in client.process().await? {
                accepted |= matches!(event, ClientSessionEvent::PlaybackRequestAccepted);
                on_event(&event, now, rec)?;
            }
            if accepted {
                return Ok::<_, anyhow::Error>(());
            }
        }
    };
    timeout(SETUP_TIMEOUT, accepted)
        .await
        .context("play not accepted in time")??;
    Ok(client)
}

/// The play's chunk stream, scanned (the scanner also answers the server:
/// acknowledgements, pongs).
struct RtmpPlay(RtmpScan);

impl Demux for RtmpPlay {
    fn feed(
        &mut self,
        data: &[u8],
        now_ns: u64,
        rec: &mut ViewerRecorder,
        reply: &mut Vec<u8>,
    ) -> Result<()> {
        self.0
            .push(data, |body| rec.on_video(body, now_ns), reply)?;
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
