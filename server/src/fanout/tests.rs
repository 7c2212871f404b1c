//! How a stream spreads its fan-out viewers over loops.

use std::sync::Arc;
use std::time::Duration;

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
