//! Hub behaviour with synthetic frames: start order, lag recovery, publisher lifecycle.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use onair_shared::avc::AvcDecoderConfig;

use super::*;

const SPS: [u8; 26] = [
    0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00,
    0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83, 0x19, 0x60,
];
const PPS: [u8; 6] = [0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];

pub fn avc_seq() -> Bytes {
    let mut v = vec![0x17, 0, 0, 0, 0];
    v.extend(
        AvcDecoderConfig::from_parameter_sets(&SPS, &PPS)
            .unwrap()
            .to_bytes(),
    );
    Bytes::from(v)
}
pub fn key(n: u8) -> Bytes {
    Bytes::from(vec![0x17, 1, 0, 0, 0, 0, 0, 0, 2, 0x65, n])
}
pub fn inter(n: u8) -> Bytes {
    Bytes::from(vec![0x27, 1, 0, 0, 0, 0, 0, 0, 2, 0x41, n])
}
pub fn aac_seq() -> Bytes {
    Bytes::from_static(&[0xaf, 0, 0x12, 0x10])
}
pub fn aac(n: u8) -> Bytes {
    Bytes::from(vec![0xaf, 1, n])
}

/// Publishes FLV tag bodies the way the RTMP connection does: parsed at ingest, then
/// handed to the hub as configurations and frames.
pub(crate) trait PushTags {
    fn video(&self, ts: u32, body: Bytes) -> Result<(), PushError>;
    fn audio(&self, ts: u32, body: Bytes) -> Result<(), PushError>;
}

impl PushTags for Publisher {
    fn video(&self, ts: u32, body: Bytes) -> Result<(), PushError> {
        let got = onair_shared::ingest::TagReader::new().video_tag(ts, &body)?;
        push(self, got)
    }

    fn audio(&self, ts: u32, body: Bytes) -> Result<(), PushError> {
        let got = onair_shared::ingest::TagReader::new().audio_tag(ts, &body)?;
        push(self, got)
    }
}

fn push(p: &Publisher, got: onair_shared::ingest::Ingested) -> Result<(), PushError> {
    if let Some(c) = got.config {
        p.config(c)?;
    }
    if let Some(f) = got.frame {
        p.frame(f)?;
    }
    Ok(())
}

fn addr() -> SocketAddr {
    "127.0.0.1:1".parse().unwrap()
}

fn hub(f: impl FnOnce(&mut HubConfig)) -> Hub {
    let mut c = HubConfig::default();
    f(&mut c);
    Hub::new(c)
}

async fn batch(sub: &mut Subscription) -> Vec<Arc<SharedFrame>> {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), sub.next_batch(&mut out))
        .await
        .expect("a batch within 5 s")
        .expect("stream still live");
    out
}

fn describe(frames: &[Arc<SharedFrame>]) -> Vec<String> {
    frames
        .iter()
        .map(|f| {
            let kind = if f.is_video() {
                "v"
            } else if f.is_audio() {
                "a"
            } else {
                "d"
            };
            let what = match f.as_frame() {
                None => "seq".to_string(),
                Some(fr) if fr.keyframe => format!("key{}", fr.data.last().unwrap()),
                Some(fr) => format!("{}", fr.data.last().unwrap()),
            };
            format!("{kind}:{what}")
        })
        .collect()
}

#[tokio::test]
async fn new_viewer_starts_with_sequence_headers_then_keyframe() {
    let hub = hub(|_| {});
    let p = hub.publish(StreamKey::new("live", "t"), addr()).unwrap();
    p.video(0, inter(9)).unwrap(); // before the configuration: dropped
    p.video(0, avc_seq()).unwrap();
    p.audio(0, aac_seq()).unwrap();
    p.video(0, inter(1)).unwrap(); // before any keyframe: not cached
    p.video(33, key(2)).unwrap();
    p.audio(40, aac(3)).unwrap();
    p.video(66, inter(4)).unwrap();
    let mut sub = hub
        .subscribe(&StreamKey::new("live", "t"), Protocol::Flv)
        .unwrap();
    assert_eq!(
        describe(&batch(&mut sub).await),
        vec!["v:seq", "a:seq", "v:key2", "a:3", "v:4"]
    );
    p.video(100, key(5)).unwrap();
    assert_eq!(describe(&batch(&mut sub).await), vec!["v:key5"]);
}

#[tokio::test]
async fn gop_cache_restarts_at_each_keyframe_and_respects_bounds() {
    let hub = hub(|c| c.gop_cache_max_frames = 3);
    let p = hub.publish(StreamKey::new("live", "t"), addr()).unwrap();
    p.video(0, avc_seq()).unwrap();
    p.video(0, key(1)).unwrap();
    p.video(33, inter(2)).unwrap();
    p.video(66, key(3)).unwrap();
    assert_eq!(p.stream().gop_cache_len().0, 1);
    for i in 0..5 {
        p.video(100 + i * 33, inter(i as u8)).unwrap();
    }
    // Past the bound the cache empties; a new viewer then waits for the next keyframe.
    assert_eq!(p.stream().gop_cache_len().0, 0);
    let mut sub = hub
        .subscribe(&StreamKey::new("live", "t"), Protocol::Rtmp)
        .unwrap();
    assert_eq!(describe(&batch(&mut sub).await), vec!["v:seq"]);
    p.video(400, inter(7)).unwrap();
    p.video(433, key(8)).unwrap();
    assert_eq!(describe(&batch(&mut sub).await), vec!["v:key8"]);
}

/// A stream with its sequence header and first keyframe, and one RTMP viewer whose queue
/// holds 16 frames, with the hub that holds the stream.
fn viewer_with_a_16_frame_queue() -> (Hub, Publisher, Subscription) {
    let hub = hub(|c| c.viewer_queue_frames = 16);
    let k = StreamKey::new("live", "t");
    let p = hub.publish(k.clone(), addr()).unwrap();
    p.video(0, avc_seq()).unwrap();
    p.video(0, key(0)).unwrap();
    let sub = hub.subscribe(&k, Protocol::Rtmp).unwrap();
    (hub, p, sub)
}

#[tokio::test]
async fn lagging_viewer_resumes_at_a_keyframe() {
    let (_hub, p, mut sub) = viewer_with_a_16_frame_queue();
    assert_eq!(describe(&batch(&mut sub).await), vec!["v:seq", "v:key0"]);
    // The viewer reads nothing while 40 frames go by: more than the queue holds.
    for i in 1..=40u8 {
        p.video(i as u32 * 33, inter(i)).unwrap();
        p.audio(i as u32 * 33, aac(i)).unwrap();
    }
    p.video(41 * 33, key(41)).unwrap();
    p.video(42 * 33, inter(42)).unwrap();
    let got = describe(&batch(&mut sub).await);
    assert_eq!(got, vec!["v:key41", "v:42"]);
    assert!(sub.dropped > 0);
    assert!(
        p.stream()
            .counters
            .frames_dropped
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    );
}

/// The fan-out loop's call: the same start frames and the same lag policy, never waiting.
#[tokio::test]
async fn try_batch_takes_what_is_there_and_resumes_a_lagging_viewer_at_a_keyframe() {
    let (hub, p, mut sub) = viewer_with_a_16_frame_queue();
    let mut out = Vec::new();
    sub.try_batch(&mut out).unwrap();
    assert_eq!(describe(&out), vec!["v:seq", "v:key0"]);
    out.clear();
    sub.try_batch(&mut out).unwrap();
    assert!(out.is_empty(), "nothing new: nothing, at once");
    p.video(33, inter(1)).unwrap();
    sub.try_batch(&mut out).unwrap();
    assert_eq!(describe(&out), vec!["v:1"]);
    out.clear();
    // Blocked on its socket, the viewer takes nothing while 40 frames go by.
    for i in 2..=40u8 {
        p.video(i as u32 * 33, inter(i)).unwrap();
        p.audio(i as u32 * 33, aac(i)).unwrap();
    }
    p.video(41 * 33, key(41)).unwrap();
    p.video(42 * 33, inter(42)).unwrap();
    sub.try_batch(&mut out).unwrap();
    assert_eq!(describe(&out), vec!["v:key41", "v:42"]);
    assert!(sub.dropped > 0);
    out.clear();
    hub.close_all();
    assert!(
        sub.try_batch(&mut out).is_err(),
        "the end is seen without waiting"
    );
}

#[tokio::test]
async fn skip_passes_over_what_another_reader_delivered_and_counts_only_its_own_lag() {
    let (_hub, p, mut sub) = viewer_with_a_16_frame_queue();
    let mut out = Vec::new();
    assert!(sub.started(), "its start frames hold a keyframe");
    sub.pull().unwrap();
    sub.take_pending(&mut out);
    assert_eq!(describe(&out), vec!["v:seq", "v:key0"]);
    out.clear();
    // Five frames a fan-out loop delivered for this viewer, then two it did not.
    for i in 1..=7u8 {
        p.video(i as u32 * 33, inter(i)).unwrap();
    }
    sub.skip(5).unwrap();
    sub.try_batch(&mut out).unwrap();
    assert_eq!(describe(&out), vec!["v:6", "v:7"]);
    assert_eq!(sub.dropped, 0, "skipped frames are not dropped ones");
    out.clear();
    // Delivered for it: 20 frames, more than the queue holds; the overwritten ones are
    // among them, so nothing is lost.
    for i in 8..=27u8 {
        p.video(i as u32 * 33, inter(i)).unwrap();
    }
    sub.skip(20).unwrap();
    assert_eq!(sub.dropped, 0);
    assert!(sub.started());
    p.video(28 * 33, inter(28)).unwrap();
    sub.try_batch(&mut out).unwrap();
    assert_eq!(describe(&out), vec!["v:28"]);
    out.clear();
    // Delivered for it: 2 frames of 30 sent. The broadcast overwrote the first 14: the 2
    // delivered and 12 that this viewer never got.
    for i in 29..=58u8 {
        p.video(i as u32 * 33, inter(i)).unwrap();
    }
    sub.skip(2).unwrap();
    assert_eq!(sub.dropped, 12, "its own lag, beyond what was delivered");
    assert!(!sub.started(), "a lag waits for the next keyframe");
    p.video(59 * 33, key(59)).unwrap();
    sub.try_batch(&mut out).unwrap();
    assert_eq!(describe(&out), vec!["v:key59"]);
}

#[tokio::test]
async fn pull_queues_what_is_there_and_take_pending_reads_nothing_new() {
    let (_hub, p, mut sub) = viewer_with_a_16_frame_queue();
    p.video(33, inter(1)).unwrap();
    sub.pull().unwrap();
    p.video(66, inter(2)).unwrap();
    let mut out = Vec::new();
    sub.take_pending(&mut out);
    assert_eq!(describe(&out), vec!["v:seq", "v:key0", "v:1"]);
    out.clear();
    sub.try_batch(&mut out).unwrap();
    assert_eq!(describe(&out), vec!["v:2"], "left for the next read");
}

#[tokio::test]
async fn audio_only_stream_plays_without_waiting_for_video() {
    let hub = hub(|_| {});
    let k = StreamKey::new("radio", "r");
    let p = hub.publish(k.clone(), addr()).unwrap();
    p.audio(0, aac_seq()).unwrap();
    p.audio(23, aac(1)).unwrap();
    let mut sub = hub.subscribe(&k, Protocol::Flv).unwrap();
    assert_eq!(describe(&batch(&mut sub).await), vec!["a:seq"]);
    p.audio(46, aac(2)).unwrap();
    assert_eq!(describe(&batch(&mut sub).await), vec!["a:2"]);
}

#[tokio::test]
async fn second_publisher_is_refused_unless_takeover() {
    let hub = hub(|_| {});
    let k = StreamKey::new("live", "t");
    let _p = hub.publish(k.clone(), addr()).unwrap();
    assert_eq!(
        hub.publish(k.clone(), addr()).err(),
        Some(PublishError::AlreadyPublishing(k.clone()))
    );

    let hub = self::hub(|c| c.publisher_takeover = true);
    let old = hub.publish(k.clone(), addr()).unwrap();
    let new = hub.publish(k.clone(), addr()).unwrap();
    assert_eq!(old.video(0, avc_seq()), Err(PushError::Replaced));
    assert!(new.video(0, avc_seq()).is_ok());
    drop(old); // the replaced one leaving must not end the stream
    assert!(hub.get(&k).unwrap().publisher().is_some());
}

#[tokio::test]
async fn reserved_app_names_are_refused_saying_so() {
    let hub = hub(|_| {});
    for app in RESERVED_APPS {
        let err = hub.publish(StreamKey::new(app, "t"), addr()).err();
        assert_eq!(err, Some(PublishError::ReservedApp(app.to_string())));
        assert!(err.unwrap().to_string().contains("reserved"));
    }
    assert!(hub.get(&StreamKey::new("send", "t")).is_none());
    // Names that merely start like one are free.
    assert!(hub.publish(StreamKey::new("sender", "t"), addr()).is_ok());
}

#[tokio::test]
async fn stream_limit_is_enforced() {
    let hub = hub(|c| c.max_streams = 1);
    let _a = hub.publish(StreamKey::new("live", "a"), addr()).unwrap();
    assert_eq!(
        hub.publish(StreamKey::new("live", "b"), addr()).err(),
        Some(PublishError::TooManyStreams(1))
    );
}

#[tokio::test]
async fn unsupported_codec_is_refused_by_name() {
    let hub = hub(|_| {});
    let p = hub.publish(StreamKey::new("live", "h"), addr()).unwrap();
    // Legacy FLV VP6 (codec id 4): a codec onair does not carry.
    let vp6 = Bytes::from_static(&[0x14, 0, 0]);
    assert_eq!(
        p.video(0, vp6),
        Err(PushError::Ingest(
            onair_shared::ingest::IngestError::UnsupportedVideoCodec("unknown")
        ))
    );
    // Enhanced RTMP AC-3: known, refused by name.
    let ac3 = Bytes::from_static(&[0x90, b'a', b'c', b'-', b'3', 1]);
    assert_eq!(
        p.audio(0, ac3),
        Err(PushError::Ingest(
            onair_shared::ingest::IngestError::UnsupportedAudioCodec("ac3")
        ))
    );
}

#[tokio::test(start_paused = true)]
async fn publisher_leave_and_return_within_grace_keeps_viewers() {
    let hub = hub(|c| c.publisher_grace_ms = 5_000);
    let k = StreamKey::new("live", "t");
    let p = hub.publish(k.clone(), addr()).unwrap();
    p.video(0, avc_seq()).unwrap();
    p.video(0, key(1)).unwrap();
    p.video(1000, inter(1)).unwrap();
    let mut sub = hub.subscribe(&k, Protocol::Rtmp).unwrap();
    batch(&mut sub).await;
    drop(p);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(hub.get(&k).is_some(), "stream kept during grace");
    let p2 = hub.publish(k.clone(), addr()).unwrap();
    p2.video(0, avc_seq()).unwrap();
    p2.video(0, inter(2)).unwrap(); // not decodable for this viewer yet
    p2.video(33, key(3)).unwrap();
    let frames = batch(&mut sub).await;
    assert_eq!(describe(&frames), vec!["v:key3"]);
    // Timestamps continue after the old publisher's instead of restarting at 0.
    let dts = frames[0].as_frame().unwrap().dts;
    assert!(dts > 1000, "dts {dts}");
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(
        hub.get(&k).is_some(),
        "stale grace timer must not end a live stream"
    );
}

#[tokio::test(start_paused = true)]
async fn publisher_gone_past_grace_ends_stream() {
    let hub = hub(|c| c.publisher_grace_ms = 3_000);
    let k = StreamKey::new("live", "t");
    let p = hub.publish(k.clone(), addr()).unwrap();
    p.video(0, avc_seq()).unwrap();
    let mut sub = hub.subscribe(&k, Protocol::Flv).unwrap();
    batch(&mut sub).await;
    drop(p);
    let mut out = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if sub.next_batch(&mut out).await.is_err() {
                return;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "viewer told the stream ended");
    assert!(hub.get(&k).is_none());
    assert!(matches!(
        hub.subscribe(&k, Protocol::Flv),
        Err(SubscribeError::NotFound(_))
    ));
}

#[tokio::test]
async fn viewer_counts_follow_subscriptions() {
    let hub = hub(|_| {});
    let k = StreamKey::new("live", "t");
    let p = hub.publish(k.clone(), addr()).unwrap();
    let a = hub.subscribe(&k, Protocol::Rtmp).unwrap();
    let b = hub.subscribe(&k, Protocol::Flv).unwrap();
    assert_eq!(p.stream().counters.viewers(Protocol::Rtmp), 1);
    assert_eq!(p.stream().counters.viewers(Protocol::Flv), 1);
    drop((a, b));
    assert_eq!(p.stream().counters.viewers(Protocol::Flv), 0);
}

#[test]
fn stream_names() {
    assert_eq!(
        parse_stream_name("t?key=abc").unwrap(),
        ("t".into(), Some("key=abc".into()))
    );
    assert!(parse_stream_name("").is_err());
    assert!(parse_stream_name("?key=1").is_err());
    assert!(parse_stream_name("../etc").is_err());
    assert!(parse_stream_name("a/b").is_err());
}

#[tokio::test(start_paused = true)]
async fn audio_waits_for_the_next_video_frame_to_share_a_write() {
    let hub = hub(|c| c.merge_wait_ms = 40);
    let k = StreamKey::new("live", "m");
    let p = hub.publish(k.clone(), addr()).unwrap();
    p.video(0, avc_seq()).unwrap();
    p.audio(0, aac_seq()).unwrap();
    p.video(0, key(0)).unwrap();
    let mut sub = hub.subscribe(&k, Protocol::Rtmp).unwrap();
    batch(&mut sub).await;
    let publisher = tokio::spawn(async move {
        for (i, (audio, delay)) in [(true, 5), (true, 10), (false, 10), (true, 100)]
            .into_iter()
            .enumerate()
        {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            if audio {
                p.audio(i as u32 * 10, aac(i as u8)).unwrap();
            } else {
                p.video(i as u32 * 10, inter(i as u8)).unwrap();
            }
        }
        p
    });
    // Two audio frames, then video: one batch.
    assert_eq!(describe(&batch(&mut sub).await), vec!["a:0", "a:1", "v:2"]);
    // Audio with no video behind it goes out alone once the wait is over.
    assert_eq!(describe(&batch(&mut sub).await), vec!["a:3"]);
    drop(publisher.await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn video_never_waits_for_a_later_frame() {
    let hub = hub(|c| c.merge_wait_ms = 40);
    let k = StreamKey::new("live", "m");
    let p = hub.publish(k.clone(), addr()).unwrap();
    p.video(0, avc_seq()).unwrap();
    p.audio(0, aac_seq()).unwrap();
    p.video(0, key(0)).unwrap();
    let mut sub = hub.subscribe(&k, Protocol::Rtmp).unwrap();
    batch(&mut sub).await;
    p.video(33, inter(1)).unwrap();
    p.audio(40, aac(2)).unwrap();
    let started = tokio::time::Instant::now();
    assert_eq!(describe(&batch(&mut sub).await), vec!["v:1", "a:2"]);
    assert_eq!(
        started.elapsed(),
        Duration::ZERO,
        "a batch with video is not held back"
    );
}

#[tokio::test]
async fn viewers_per_stream_limit() {
    let hub = hub(|c| c.max_viewers_per_stream = 2);
    let k = StreamKey::new("live", "v");
    let _p = hub.publish(k.clone(), addr()).unwrap();
    let a = hub.subscribe(&k, Protocol::Rtmp).unwrap();
    let _b = hub.subscribe(&k, Protocol::Flv).unwrap();
    assert!(matches!(
        hub.subscribe(&k, Protocol::Flv),
        Err(SubscribeError::TooManyViewers(_, 2))
    ));
    assert_eq!(hub.metrics().refusals("max_viewers_per_stream"), 1);
    drop(a);
    assert!(hub.subscribe(&k, Protocol::Rtmp).is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_silent_publisher_is_replaced_by_its_reconnecting_encoder() {
    let hub = hub(|c| c.publisher_stale_ms = 3000);
    let k = StreamKey::new("live", "s");
    let old = hub.publish(k.clone(), addr()).unwrap();
    old.video(0, avc_seq()).unwrap();
    // Still sending: a second publisher is refused.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(matches!(
        hub.publish(k.clone(), addr()),
        Err(PublishError::AlreadyPublishing(_))
    ));
    // Silent for the stale time (its TCP connection died without a FIN): the newcomer takes over.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let new = hub
        .publish(k.clone(), addr())
        .expect("stale publisher replaced");
    assert_eq!(old.video(40, key(1)), Err(PushError::Replaced));
    assert!(new.video(0, avc_seq()).is_ok());
    let off = self::hub(|c| c.publisher_stale_ms = 0);
    let _a = off.publish(k.clone(), addr()).unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(
        off.publish(k.clone(), addr()).is_err(),
        "0 disables the stale takeover"
    );
}

#[tokio::test]
async fn further_tracks_are_known_but_outputs_get_track_0() {
    let hub = hub(|_| {});
    let k = StreamKey::new("live", "mt");
    let p = hub.publish(k.clone(), addr()).unwrap();
    p.video(0, avc_seq()).unwrap();
    p.audio(0, aac_seq()).unwrap();
    // A second audio track, as Enhanced RTMP multitrack would announce it.
    let mut second = onair_shared::ingest::TagReader::new()
        .audio_tag(0, &Bytes::from_static(&[0xaf, 0, 0x11, 0x90]))
        .unwrap()
        .config
        .unwrap();
    second.track = 1;
    p.config(second).unwrap();
    p.video(33, key(1)).unwrap();
    // Its frame, inside the GOP the cache holds: were it carried, a new viewer would get it.
    let mut frame = onair_shared::ingest::TagReader::new()
        .audio_tag(10, &aac(7))
        .unwrap()
        .frame
        .unwrap();
    frame.track = 1;
    p.frame(frame).unwrap();
    p.audio(40, aac(8)).unwrap();
    let mut sub = hub.subscribe(&k, Protocol::Rtmp).unwrap();
    assert_eq!(
        describe(&batch(&mut sub).await),
        vec!["v:seq", "a:seq", "v:key1", "a:8"]
    );
    let tracks = hub.get(&k).unwrap().tracks();
    let described: Vec<_> = tracks
        .iter()
        .map(|c| (c.codec.name(), c.track, c.summary.sample_rate))
        .collect();
    assert_eq!(
        described,
        vec![
            ("h264", 0, None),
            ("aac", 0, Some(44100)),
            ("aac", 1, Some(48000))
        ]
    );
    // The stream's media description is track 0's.
    assert_eq!(hub.get(&k).unwrap().media().audio_sample_rate, Some(44100));
}

#[tokio::test(start_paused = true)]
async fn without_track_0_outputs_serve_the_lowest_track() {
    let hub = hub(|_| {});
    let k = StreamKey::new("live", "mt1");
    let p = hub.publish(k.clone(), addr()).unwrap();
    p.video(0, avc_seq()).unwrap();
    // Audio only on tracks 2 and 1 (a multitrack publisher need not use track 0).
    for (track, asc) in [(2u8, [0x11u8, 0x90]), (1, [0x12, 0x10])] {
        let mut c = onair_shared::ingest::TagReader::new()
            .audio_tag(0, &Bytes::from(vec![0xaf, 0, asc[0], asc[1]]))
            .unwrap()
            .config
            .unwrap();
        c.track = track;
        p.config(c).unwrap();
    }
    p.video(33, key(1)).unwrap();
    for (track, n) in [(2u8, 7u8), (1, 8)] {
        let mut f = onair_shared::ingest::TagReader::new()
            .audio_tag(40, &aac(n))
            .unwrap()
            .frame
            .unwrap();
        f.track = track;
        p.frame(f).unwrap();
    }
    let mut sub = hub.subscribe(&k, Protocol::Rtmp).unwrap();
    // Track 1's configuration and frame, not track 2's.
    assert_eq!(
        describe(&batch(&mut sub).await),
        vec!["v:seq", "a:seq", "v:key1", "a:8"]
    );
    assert_eq!(hub.get(&k).unwrap().media().audio_sample_rate, Some(44100));
}

/// The VP9/AV1 frame clock (`onFrameTime` script data) reaches viewers on the frames'
/// timeline, in order after its frame, in the GOP cache with it; its FLV tag is built once.
#[tokio::test]
async fn frame_clocks_travel_with_their_frames_on_the_timeline() {
    use onair_shared::frame_time::{self, FrameTime};
    use onair_shared::MediaKind;
    let clock = |pts_ms| {
        Frame::data(
            pts_ms,
            frame_time::encode(FrameTime {
                wallclock_us: 1_000 + pts_ms,
                frame: pts_ms as u32,
                pts_ms,
            }),
        )
    };
    let hub = hub(|_| {});
    let p = hub.publish(StreamKey::new("live", "t"), addr()).unwrap();
    p.video(5000, avc_seq()).unwrap();
    p.video(5000, inter(1)).unwrap();
    p.frame(clock(5000)).unwrap(); // before any keyframe: not cached
    p.video(5033, key(2)).unwrap();
    p.frame(clock(5033)).unwrap();
    p.video(5066, inter(3)).unwrap();
    p.frame(clock(5066)).unwrap();
    let mut sub = hub
        .subscribe(&StreamKey::new("live", "t"), Protocol::Flv)
        .unwrap();
    let got = batch(&mut sub).await;
    let kinds: Vec<_> = got
        .iter()
        .map(|f| (f.kind(), f.as_frame().map(|fr| fr.dts)))
        .collect();
    // The stream's timeline starts at its first frame (5000 -> 0).
    assert_eq!(
        kinds,
        vec![
            (MediaKind::Video, None),
            (MediaKind::Video, Some(33)),
            (MediaKind::Data, Some(33)),
            (MediaKind::Video, Some(66)),
            (MediaKind::Data, Some(66)),
        ]
    );
    let tag = got[2].flv_tag();
    assert_eq!(tag[0], onair_shared::flv::TAG_SCRIPT);
    assert_eq!(&tag[4..7], &[0, 0, 33], "FLV timestamp on the timeline");
    assert!(std::ptr::eq(tag, got[2].flv_tag()), "built once");
    assert_eq!(
        frame_time::parse(&tag[11..tag.len() - 4], 8).map(|t| t.pts_ms),
        Some(5033)
    );
    p.frame(clock(5100)).unwrap();
    let live = batch(&mut sub).await;
    assert_eq!(live.len(), 1);
    assert_eq!(
        live[0].as_frame().map(|f| (f.kind, f.dts)),
        Some((MediaKind::Data, 100))
    );
}

/// Without a GOP cache to start from, a new viewer waits for the next keyframe, and so do
/// the frame clocks: its first clock is its first frame's.
#[tokio::test]
async fn frame_clocks_wait_for_the_viewers_first_keyframe() {
    use onair_shared::frame_time::{self, FrameTime};
    let clock = |pts_ms| {
        Frame::data(
            pts_ms,
            frame_time::encode(FrameTime {
                wallclock_us: pts_ms,
                frame: 0,
                pts_ms,
            }),
        )
    };
    let hub = hub(|_| {});
    let p = hub.publish(StreamKey::new("live", "t"), addr()).unwrap();
    p.video(0, avc_seq()).unwrap();
    let mut sub = hub
        .subscribe(&StreamKey::new("live", "t"), Protocol::Flv)
        .unwrap();
    assert_eq!(describe(&batch(&mut sub).await), vec!["v:seq"]);
    p.video(33, inter(1)).unwrap();
    p.frame(clock(33)).unwrap();
    p.video(66, key(2)).unwrap();
    p.frame(clock(66)).unwrap();
    let mut got = Vec::new();
    while got.len() < 2 {
        got.extend(batch(&mut sub).await);
    }
    assert_eq!(describe(&got), vec!["v:key2", "d:9"], "{got:?}");
    let dts = |i: usize| got[i].as_frame().map(|f| f.dts);
    assert_eq!(dts(1), dts(0), "the keyframe's own clock");
}

/// A tap that writes down what it is given, as `describe` names frames.
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<String>>);

impl Tap for Recorder {
    fn on_event(&self, event: &Event, served_video: bool) {
        let line = match event {
            Event::Frame(f) => describe(std::slice::from_ref(f)).remove(0),
            Event::PublisherLeft => "left".into(),
            Event::PublisherReturned => "returned".into(),
            Event::Ended => "ended".into(),
        };
        let video = if served_video { "" } else { " (no video)" };
        self.0.lock().unwrap().push(format!("{line}{video}"));
    }
}

impl Recorder {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

#[tokio::test(start_paused = true)]
async fn a_tap_gets_the_start_frames_then_every_event_in_order_until_removed() {
    let hub = hub(|c| c.publisher_grace_ms = 1_000);
    let k = StreamKey::new("live", "t");
    let p = hub.publish(k.clone(), addr()).unwrap();
    p.audio(0, aac_seq()).unwrap();
    p.video(0, avc_seq()).unwrap();
    p.video(0, key(1)).unwrap();
    p.audio(10, aac(2)).unwrap();
    let stream = hub.get(&k).unwrap();
    let rec = Arc::new(Recorder::default());
    let tap: Arc<dyn Tap> = rec.clone();
    stream.add_tap(tap.clone());
    // What a new viewer starts with, once, and nothing twice.
    assert_eq!(rec.take(), vec!["v:seq", "a:seq", "v:key1", "a:2"]);
    p.video(33, inter(3)).unwrap();
    p.audio(40, aac(4)).unwrap();
    drop(p);
    let p2 = hub.publish(k.clone(), addr()).unwrap();
    p2.video(0, avc_seq()).unwrap();
    p2.video(0, key(5)).unwrap();
    assert_eq!(
        rec.take(),
        vec!["v:3", "a:4", "left", "returned", "v:key5"],
        "the repeated configuration is no change"
    );
    stream.remove_tap(&tap);
    p2.video(33, inter(6)).unwrap();
    drop(p2);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(hub.get(&k).is_none(), "stream ended after the grace period");
    assert_eq!(
        rec.take(),
        Vec::<String>::new(),
        "a removed tap hears nothing"
    );
}

#[tokio::test(start_paused = true)]
async fn a_tap_hears_the_end_and_an_audio_only_stream_says_it_has_no_video() {
    let hub = hub(|c| c.publisher_grace_ms = 1_000);
    let k = StreamKey::new("live", "a");
    let p = hub.publish(k.clone(), addr()).unwrap();
    p.audio(0, aac_seq()).unwrap();
    let rec = Arc::new(Recorder::default());
    hub.get(&k).unwrap().add_tap(rec.clone());
    p.audio(21, aac(1)).unwrap();
    drop(p);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        rec.take(),
        vec![
            "a:seq (no video)",
            "a:1 (no video)",
            "left (no video)",
            "ended (no video)"
        ]
    );
}
