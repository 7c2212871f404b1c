//! An RTMP viewer: connect, play the stream, and hand every video message to its recorder
//! with the time the bytes carrying it were read, until told to stop or disconnected.

use crate::rtmp::{self, RtmpClient};
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
    mut stop: watch::Receiver<bool>,
) -> ViewerResult {
    rec.connecting();
    let error = tokio::select! {
        r = session(&target, &mut rec) => r.err().map(|e| format!("{e:#}")),
        _ = stop.changed() => None,
    };
    rec.finish(error)
}

async fn session(target: &RtmpTarget, rec: &mut ViewerRecorder) -> Result<()> {
    let mut client = timeout(SETUP_TIMEOUT, RtmpClient::connect(target))
        .await
        .context("connect timed out")??;
    let req = client.session.request_playback(target.stream.clone())?;
    client.send(req).await?;
    let clock = rec.clock();
    loop {
        let n = client.read_some().await?;
        let now = clock.now_ns();
        rec.on_bytes(n);
        for event in client.process().await? {
            if let ClientSessionEvent::VideoDataReceived { data, .. } = &event {
                rec.on_video(data, now);
            } else if let Some(code) = rtmp::error_status(&event) {
                bail!("server answered {code}");
            }
        }
    }
}
