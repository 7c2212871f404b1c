//! How a stream spreads its fan-out viewers over loops.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::config::HubConfig;
use crate::hub::{Hub, Protocol, Publisher, StreamKey};

/// A connected pair: the server's end (for the loop) and the viewer's.
async fn socket_pair() -> (Arc<TcpStream>, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let viewer = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, _) = listener.accept().await.unwrap();
    (Arc::new(server), viewer)
}

struct Room {
    hub: Hub,
    key: StreamKey,
    /// The viewers' ends, kept open for as long as the test runs.
    peers: Vec<TcpStream>,
}

impl Room {
    /// A hub of `cfg` with one published stream; the publisher keeps the stream alive.
    fn new(cfg: HubConfig) -> (Self, Publisher) {
        let hub = Hub::new(cfg);
        let key = StreamKey::new("live", "t");
        let publisher = hub
            .publish(key.clone(), "127.0.0.1:1".parse().unwrap())
            .unwrap();
        let room = Room {
            hub,
            key,
            peers: Vec::new(),
        };
        (room, publisher)
    }

    /// Offers one HTTP-FLV viewer to a stream of at most `loops` loops; returns its ticket
    /// and the loads of the stream's loops just after.
    async fn join(&mut self, loops: usize) -> (Ticket, Vec<usize>) {
        let sub = self.hub.subscribe(&self.key, Protocol::Flv).unwrap();
        let stream = sub.stream().clone();
        let (sock, peer) = socket_pair().await;
        self.peers.push(peer);
        let viewer = Viewer {
            sub,
            sock,
            format: Format::Flv,
            client: None,
            write_timeout: Duration::from_secs(5),
        };
        let Ok(ticket) = attach(viewer, loops) else {
            panic!("a loop takes the viewer");
        };
        (ticket, stream.fanout.loads())
    }

    /// The viewers each of the stream's loops served in step in its last pass.
    fn in_step(&self) -> Vec<usize> {
        self.hub.get(&self.key).unwrap().fanout.in_step()
    }

    /// Reads every viewer's socket until its last video tag is `last`; returns what each
    /// saw since the previous call, as `describe_tag` names it.
    async fn watch_until(&mut self, last: &str, bufs: &mut Vec<Vec<u8>>) -> Vec<Vec<String>> {
        bufs.resize(self.peers.len(), Vec::new());
        let mut seen = Vec::new();
        for (peer, buf) in self.peers.iter_mut().zip(bufs.iter_mut()) {
            let mut tags = Vec::new();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while tags.last().map(String::as_str) != Some(last) {
                let mut chunk = [0u8; 4096];
                let n = tokio::time::timeout_at(deadline, peer.read(&mut chunk))
                    .await
                    .unwrap_or_else(|_| panic!("no {last} within 5 s; saw {tags:?}"))
                    .unwrap();
                assert!(n > 0, "the loop closed the socket; saw {tags:?}");
                buf.extend_from_slice(&chunk[..n]);
                tags.extend(video_tags(buf));
            }
            seen.push(tags);
        }
        seen
    }
}

/// Takes the whole FLV tags off the front of `buf`; names each video tag: `seq` for a
/// configuration, `key{n}` or `{n}` for a frame whose last byte is `n`.
fn video_tags(buf: &mut Vec<u8>) -> Vec<String> {
    let mut names = Vec::new();
    loop {
        if buf.len() < 11 {
            return names;
        }
        let size = u32::from_be_bytes([0, buf[1], buf[2], buf[3]]) as usize;
        let whole = 11 + size + 4;
        if buf.len() < whole {
            return names;
        }
        let body = &buf[11..11 + size];
        if buf[0] == 9 && body.len() >= 2 {
            let n = body[body.len() - 1];
            names.push(match (body[0] >> 4, body[1]) {
                (_, 0) => "seq".to_string(),
                (1, _) => format!("key{n}"),
                _ => format!("{n}"),
            });
        }
        buf.drain(..whole);
    }
}

/// Pushes one FLV video tag body the way the RTMP connection does.
fn video(p: &Publisher, ts: u32, body: Bytes) {
    let got = onair_shared::ingest::TagReader::new()
        .video_tag(ts, &body)
        .unwrap();
    if let Some(c) = got.config {
        p.config(c).unwrap();
    }
    if let Some(f) = got.frame {
        p.frame(f).unwrap();
    }
}

fn frame(n: u8) -> Bytes {
    let kind = if n.is_multiple_of(10) { 0x17 } else { 0x27 };
    Bytes::from(vec![kind, 1, 0, 0, 0, 0, 0, 0, 2, 0x41, n])
}

fn avc_seq() -> Bytes {
    crate::hub::tests::avc_seq()
}

/// `{n}` for `from..=to`, `key{n}` where `frame` makes a keyframe.
fn names(from: u8, to: u8) -> Vec<String> {
    (from..=to)
        .map(|n| {
            if n.is_multiple_of(10) {
                format!("key{n}")
            } else {
                format!("{n}")
            }
        })
        .collect()
}

#[tokio::test]
async fn another_loop_starts_only_when_each_holds_viewers_per_loop() {
    let (mut room, _publisher) = Room::new(HubConfig {
        fanout_viewers_per_loop: 2,
        ..HubConfig::default()
    });
    let mut tickets = Vec::new();
    let mut seen = Vec::new();
    for _ in 0..7 {
        let (ticket, loads) = room.join(3).await;
        tickets.push(ticket);
        seen.push(loads);
    }
    assert_eq!(
        seen,
        vec![
            vec![1],
            vec![2],
            vec![2, 1],
            vec![2, 2],
            vec![2, 2, 1],
            vec![2, 2, 2],
            // At the most loops, the least loaded (the first of them) takes it.
            vec![3, 2, 2],
        ]
    );
    // Viewers that leave are counted out at once: the next one fills the gap.
    let (first, second) = (tickets.remove(0), tickets.remove(0));
    assert!(first.recall().await.is_some());
    assert!(second.recall().await.is_some());
    let (ticket, loads) = room.join(3).await;
    tickets.push(ticket);
    assert_eq!(loads, vec![2, 2, 2]);
    // A dropped ticket also lets its viewer go (the loop notices on its own time).
    drop(tickets);
}

#[tokio::test]
async fn by_default_a_few_viewers_share_one_loop() {
    let (mut room, _publisher) = Room::new(HubConfig::default());
    let mut tickets = Vec::new();
    let mut loads = Vec::new();
    for _ in 0..3 {
        let (ticket, now) = room.join(4).await;
        tickets.push(ticket);
        loads = now;
    }
    // Not one loop per viewer up to the four allowed: one loop until it holds 500.
    assert_eq!(loads, vec![3]);
}

#[tokio::test]
async fn viewers_in_step_get_every_frame_once_in_order_and_a_new_publisher_from_its_keyframe() {
    let (mut room, publisher) = Room::new(HubConfig::default());
    video(&publisher, 0, avc_seq());
    video(&publisher, 0, frame(0));
    let mut tickets = Vec::new();
    for _ in 0..3 {
        tickets.push(room.join(1).await.0);
    }
    let mut bufs = Vec::new();
    let start = room.watch_until("key0", &mut bufs).await;
    assert!(start.iter().all(|s| s == &["seq", "key0"]), "{start:?}");
    for n in 1..=25u8 {
        video(&publisher, n as u32 * 33, frame(n));
        let seen = room.watch_until(&names(n, n)[0], &mut bufs).await;
        let want = names(n, n);
        assert!(seen.iter().all(|s| s == &want), "frame {n}: {seen:?}");
    }
    assert_eq!(room.in_step(), vec![3], "served from the loop's own read");
    // A new publisher within the grace period: every viewer gets its configuration, then
    // its frames from its first keyframe; the frame before that would not decode.
    drop(publisher);
    let publisher = room
        .hub
        .publish(room.key.clone(), "127.0.0.1:2".parse().unwrap())
        .unwrap();
    video(&publisher, 0, avc_seq());
    video(&publisher, 0, frame(41));
    video(&publisher, 33, frame(50));
    let seen = room.watch_until("key50", &mut bufs).await;
    assert!(
        seen.iter()
            .all(|s| s.last().unwrap() == "key50" && !s.contains(&"41".into())),
        "{seen:?}"
    );
    for n in 51..=55u8 {
        video(&publisher, n as u32 * 33, frame(n));
        let seen = room.watch_until(&names(n, n)[0], &mut bufs).await;
        assert!(
            seen.iter().all(|s| s == &names(n, n)),
            "frame {n}: {seen:?}"
        );
    }
    assert_eq!(room.in_step(), vec![3], "back in step after the change");
    drop(tickets);
}

#[tokio::test]
async fn a_loop_that_fell_behind_the_ring_resumes_its_viewers_at_a_keyframe() {
    let (mut room, publisher) = Room::new(HubConfig {
        viewer_queue_frames: 16,
        ..HubConfig::default()
    });
    video(&publisher, 0, avc_seq());
    video(&publisher, 0, frame(0));
    let mut tickets = Vec::new();
    for _ in 0..2 {
        tickets.push(room.join(1).await.0);
    }
    let mut bufs = Vec::new();
    room.watch_until("key0", &mut bufs).await;
    for n in 1..=3u8 {
        video(&publisher, n as u32 * 33, frame(n));
        room.watch_until(&names(n, n)[0], &mut bufs).await;
    }
    assert_eq!(room.in_step(), vec![2]);
    // 37 frames while the loop cannot run (this test's runtime has one thread): more than
    // the ring holds, so the loop and its viewers all lagged. They resume at the first
    // keyframe still in the ring, 30, not with the frames before it.
    for n in 4..=40u8 {
        video(&publisher, n as u32 * 33, frame(n));
    }
    let seen = room.watch_until("key40", &mut bufs).await;
    assert!(seen.iter().all(|s| s == &names(30, 40)), "{seen:?}");
    let stream = room.hub.get(&room.key).unwrap();
    assert!(
        stream.metrics().frames_dropped.get() > 0,
        "the skipped frames are counted"
    );
    for n in 41..=43u8 {
        video(&publisher, n as u32 * 33, frame(n));
        let seen = room.watch_until(&names(n, n)[0], &mut bufs).await;
        assert!(
            seen.iter().all(|s| s == &names(n, n)),
            "frame {n}: {seen:?}"
        );
    }
    assert_eq!(room.in_step(), vec![2], "back in step after the lag");
    drop(tickets);
}

#[tokio::test]
async fn at_the_end_of_the_stream_viewers_get_its_last_frames_then_are_handed_back() {
    let (mut room, publisher) = Room::new(HubConfig {
        publisher_grace_ms: 0,
        ..HubConfig::default()
    });
    video(&publisher, 0, avc_seq());
    video(&publisher, 0, frame(0));
    let mut tickets = Vec::new();
    for _ in 0..2 {
        tickets.push(room.join(1).await.0);
    }
    let mut bufs = Vec::new();
    for n in 1..=3u8 {
        video(&publisher, n as u32 * 33, frame(n));
        room.watch_until(&names(n, n)[0], &mut bufs).await;
    }
    assert_eq!(room.in_step(), vec![2]);
    // The last frames and the end, read by the loop in one wake-up.
    video(&publisher, 4 * 33, frame(4));
    video(&publisher, 5 * 33, frame(5));
    drop(publisher);
    let seen = room.watch_until("5", &mut bufs).await;
    assert!(seen.iter().all(|s| s == &names(4, 5)), "{seen:?}");
    for t in &mut tickets {
        let back = tokio::time::timeout(Duration::from_secs(5), t.returned())
            .await
            .expect("handed back within 5 s")
            .expect("the loop answers");
        assert!(matches!(back.why, Why::Ended), "{:?}", back.why);
        assert!(back.unsent.is_empty());
    }
}
