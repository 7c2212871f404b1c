//! How a stream spreads its fan-out viewers over loops.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::config::HubConfig;
use crate::hub::tests::{avc_seq, inter, key, PushTags};
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
    /// What each viewer's end read and `watch_until` did not parse yet.
    unread: Vec<Vec<u8>>,
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
            unread: Vec::new(),
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
    async fn watch_until(&mut self, last: &str) -> Vec<Vec<String>> {
        self.unread.resize(self.peers.len(), Vec::new());
        let mut seen = Vec::new();
        for (peer, buf) in self.peers.iter_mut().zip(self.unread.iter_mut()) {
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

    /// Publishes the configuration and keyframe 0, then offers `viewers` HTTP-FLV viewers
    /// to one loop; returns once each has read both.
    async fn start(&mut self, publisher: &Publisher, viewers: usize) -> Vec<Ticket> {
        publisher.video(0, avc_seq()).unwrap();
        push(publisher, 0);
        let mut tickets = Vec::new();
        for _ in 0..viewers {
            tickets.push(self.join(1).await.0);
        }
        let start = self.watch_until("key0").await;
        assert!(start.iter().all(|s| s == &["seq", "key0"]), "{start:?}");
        tickets
    }

    /// Publishes frames `from..=to` one at a time; every viewer must read each one alone.
    async fn one_by_one(&mut self, publisher: &Publisher, from: u8, to: u8) {
        for n in from..=to {
            push(publisher, n);
            let seen = self.watch_until(&name(n)).await;
            assert!(seen.iter().all(|s| s == &[name(n)]), "frame {n}: {seen:?}");
        }
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

/// Publishes frame `n` at `n` × 33 ms: a keyframe when `n` is a multiple of 10.
fn push(publisher: &Publisher, n: u8) {
    let body = if n.is_multiple_of(10) {
        key(n)
    } else {
        inter(n)
    };
    publisher.video(n as u32 * 33, body).unwrap();
}

/// How `video_tags` names frame `n` of `push`.
fn name(n: u8) -> String {
    if n.is_multiple_of(10) {
        format!("key{n}")
    } else {
        format!("{n}")
    }
}

fn names(from: u8, to: u8) -> Vec<String> {
    (from..=to).map(name).collect()
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
    let tickets = room.start(&publisher, 3).await;
    room.one_by_one(&publisher, 1, 25).await;
    assert_eq!(room.in_step(), vec![3], "served from the loop's own read");
    // A new publisher within the grace period: every viewer gets its configuration, then
    // its frames from its first keyframe; the frame before that would not decode.
    drop(publisher);
    let publisher = room
        .hub
        .publish(room.key.clone(), "127.0.0.1:2".parse().unwrap())
        .unwrap();
    publisher.video(0, avc_seq()).unwrap();
    push(&publisher, 41);
    push(&publisher, 50);
    let seen = room.watch_until("key50").await;
    assert!(
        seen.iter()
            .all(|s| s.last().unwrap() == "key50" && !s.contains(&"41".into())),
        "{seen:?}"
    );
    room.one_by_one(&publisher, 51, 55).await;
    assert_eq!(room.in_step(), vec![3], "back in step after the change");
    drop(tickets);
}

#[tokio::test]
async fn a_loop_that_fell_behind_the_ring_resumes_its_viewers_at_a_keyframe() {
    let (mut room, publisher) = Room::new(HubConfig {
        viewer_queue_frames: 16,
        ..HubConfig::default()
    });
    let tickets = room.start(&publisher, 2).await;
    room.one_by_one(&publisher, 1, 3).await;
    assert_eq!(room.in_step(), vec![2]);
    // 37 frames while the loop cannot run (this test's runtime has one thread): more than
    // the ring holds, so the loop and its viewers all lagged. They resume at the first
    // keyframe still in the ring, 30, not with the frames before it.
    for n in 4..=40u8 {
        push(&publisher, n);
    }
    let seen = room.watch_until("key40").await;
    assert!(seen.iter().all(|s| s == &names(30, 40)), "{seen:?}");
    let stream = room.hub.get(&room.key).unwrap();
    assert!(
        stream.metrics().frames_dropped.get() > 0,
        "the skipped frames are counted"
    );
    room.one_by_one(&publisher, 41, 43).await;
    assert_eq!(room.in_step(), vec![2], "back in step after the lag");
    drop(tickets);
}

#[tokio::test]
async fn at_the_end_of_the_stream_viewers_get_its_last_frames_then_are_handed_back() {
    let (mut room, publisher) = Room::new(HubConfig {
        publisher_grace_ms: 0,
        ..HubConfig::default()
    });
    let mut tickets = room.start(&publisher, 2).await;
    room.one_by_one(&publisher, 1, 3).await;
    assert_eq!(room.in_step(), vec![2]);
    // The last frames and the end, read by the loop in one wake-up.
    push(&publisher, 4);
    push(&publisher, 5);
    drop(publisher);
    let seen = room.watch_until("5").await;
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
