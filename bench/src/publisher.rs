//! The publisher: one RTMP connection sending the synthetic 720p30 stream in real time, paced
//! against a fixed schedule, logging each video frame's send time just before it is written.
//! Its audio is real AAC (a 1 kHz tone), so a server that decodes audio does real work.

use crate::media;
use crate::rtmp::RtmpClient;
use crate::stats::{Clock, SendLog};
use crate::target::RtmpTarget;
use anyhow::{bail, Context, Result};
use rml_rtmp::sessions::{ClientSessionEvent, PublishRequestType, StreamMetadata};
use rml_rtmp::time::RtmpTimestamp;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use tokio::time::{sleep_until, timeout, Instant};

const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PublisherReport {
    pub video_frames: u64,
    pub audio_frames: u64,
    /// Largest delay of a send behind its schedule, in ms.
    pub max_lag_ms: f64,
    /// Frames sent more than one frame interval behind schedule.
    pub late_frames: u64,
    pub error: Option<String>,
}

/// Publishes until `stop` changes; `live` is answered once the stream is set up (or failed).
pub async fn run(
    target: RtmpTarget,
    clock: Clock,
    log: Arc<SendLog>,
    live: oneshot::Sender<anyhow::Result<()>>,
    stop: watch::Receiver<bool>,
) -> PublisherReport {
    run_sample(target, media::SAMPLE_720P, clock, log, live, stop).await
}

/// `run` with the frame sizes and rates of `sample`.
pub async fn run_sample(
    target: RtmpTarget,
    sample: media::Sample,
    clock: Clock,
    log: Arc<SendLog>,
    live: oneshot::Sender<anyhow::Result<()>>,
    mut stop: watch::Receiver<bool>,
) -> PublisherReport {
    let mut report = PublisherReport::default();
    // The stream never came up: the waiting bench and the report both say why.
    let fail =
        |live: oneshot::Sender<anyhow::Result<()>>, mut report: PublisherReport, msg: String| {
            let _ = live.send(Err(anyhow::anyhow!("{msg}")));
            report.error = Some(msg);
            report
        };
    let mut client = match timeout(SETUP_TIMEOUT, setup(&target, &sample)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return fail(live, report, format!("publisher setup: {e:#}")),
        Err(_) => {
            return fail(
                live,
                report,
                format!("publisher setup took over {SETUP_TIMEOUT:?}"),
            )
        }
    };
    // The frames' bodies (the AAC tone is encoded here, tens of milliseconds) are made
    // before the stream is said to be up: viewers the bench starts then would otherwise
    // wait for them, and their time to first frame would be the bench's, not the server's.
    let media = match Media::new(&sample) {
        Ok(m) => m,
        Err(e) => return fail(live, report, format!("publisher media: {e:#}")),
    };
    let _ = live.send(Ok(()));
    if let Err(e) = stream(
        &mut client,
        &sample,
        &media,
        clock,
        &log,
        &mut stop,
        &mut report,
    )
    .await
    {
        report.error = Some(format!("publisher: {e:#}"));
        return report;
    }
    // Say goodbye politely; a server that does not listen any more is no error of ours.
    if let Ok(results) = client.session.stop_publishing() {
        for r in results {
            if client.send(r).await.is_err() {
                break;
            }
        }
    }
    report
}

async fn setup(target: &RtmpTarget, sample: &media::Sample) -> Result<RtmpClient> {
    let mut client = RtmpClient::connect(target).await?;
    let req = client
        .session
        .request_publishing(target.stream.clone(), PublishRequestType::Live)?;
    client.send(req).await?;
    client
        .wait_for("NetStream.Publish.Start", |e| {
            matches!(e, ClientSessionEvent::PublishRequestAccepted)
        })
        .await?;
    let mut meta = StreamMetadata::new();
    meta.video_width = Some(sample.width);
    meta.video_height = Some(sample.height);
    meta.video_frame_rate = Some(media::FPS as f32);
    meta.video_codec_id = Some(7);
    meta.video_bitrate_kbps = Some(sample.video_kbps);
    meta.audio_codec_id = Some(10);
    meta.audio_bitrate_kbps = Some(sample.audio_kbps);
    meta.audio_sample_rate = Some(media::AUDIO_RATE as u32);
    meta.audio_channels = Some(2);
    meta.audio_is_stereo = Some(true);
    meta.encoder = Some("onair-bench".into());
    let r = client.session.publish_metadata(&meta)?;
    client.send(r).await?;
    let ts0 = RtmpTimestamp::new(0);
    let r = client
        .session
        .publish_video_data(media::video_sequence_header()?, ts0, false)?;
    client.send(r).await?;
    let r = client
        .session
        .publish_audio_data(media::audio_sequence_header()?, ts0, false)?;
    client.send(r).await?;
    Ok(client)
}

fn due(start: Instant, interval: Duration, n: u64) -> Instant {
    start + Duration::from_nanos(interval.as_nanos() as u64 * n)
}

/// The bodies the stream's frames are made of.
struct Media {
    filler: Vec<u8>,
    tone: Vec<bytes::Bytes>,
}

impl Media {
    fn new(sample: &media::Sample) -> Result<Self> {
        Ok(Self {
            filler: media::filler(),
            tone: media::aac_tone_frames_at(sample.audio_kbps)?,
        })
    }
}

async fn stream(
    client: &mut RtmpClient,
    sample: &media::Sample,
    media: &Media,
    clock: Clock,
    log: &SendLog,
    stop: &mut watch::Receiver<bool>,
    report: &mut PublisherReport,
) -> Result<()> {
    let (filler, tone) = (&media.filler, &media.tone);
    let (v_int, a_int) = (media::video_interval(), media::audio_interval());
    let start = Instant::now();
    let (mut v, mut a) = (0u64, 0u64);
    let mut max_lag = Duration::ZERO;
    loop {
        let (v_due, a_due) = (due(start, v_int, v), due(start, a_int, a));
        let next = v_due.min(a_due);
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            r = client.read_some() => {
                r?;
                client.process().await?;
            }
            _ = sleep_until(next) => {
                let lag = Instant::now().saturating_duration_since(next);
                max_lag = max_lag.max(lag);
                if v_due <= a_due {
                    if lag > v_int {
                        report.late_frames += 1;
                    }
                    let body = sample.video_frame(v, filler);
                    let ts = RtmpTimestamp::new(media::video_ms(v));
                    let packet = client.session.publish_video_data(body, ts, false)?;
                    if !log.record(v, clock.now_ns()) {
                        bail!("send log full after {v} frames");
                    }
                    client.send(packet).await.context("sending video")?;
                    v += 1;
                    report.video_frames = v;
                } else {
                    let body = tone[(a % tone.len() as u64) as usize].clone();
                    let ts = RtmpTimestamp::new(media::audio_ms(a));
                    let packet = client.session.publish_audio_data(body, ts, false)?;
                    client.send(packet).await.context("sending audio")?;
                    a += 1;
                    report.audio_frames = a;
                }
                report.max_lag_ms = max_lag.as_secs_f64() * 1000.0;
            }
        }
    }
    Ok(())
}
