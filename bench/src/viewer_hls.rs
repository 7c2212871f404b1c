//! An HLS client, polling like a player: one keep-alive connection; the live playlist every
//! half target duration (as hls.js reloads a live playlist), with ±10 % jitter; each new
//! segment fetched once, in order, starting at the live edge (at most the last
//! `JOIN_SEGMENTS` on join). Each segment is demuxed as it arrives; its frames count as
//! received when its last byte is read. A probe client polls the playlist only, at a fixed
//! short interval, to time when segments appear.

use crate::http_conn::{GetError, HttpConn};
use crate::playlist::{self, MediaPlaylist, MAX_PLAYLIST};
use crate::stats::{Clock, ViewerRecorder, ViewerResult};
use crate::target::HttpTarget;
use crate::ts::TsDemuxer;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::{sleep_until, Instant};

/// Segments a player fetches when it joins: the live edge, at most this many back.
pub const JOIN_SEGMENTS: u64 = 3;
/// Bound on one request, connect to last byte.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Target duration assumed before the first playlist arrives.
pub const DEFAULT_TARGET_MS: u64 = 2_000;
/// Poll interval bounds, whatever the playlist says.
const MIN_POLL: Duration = Duration::from_millis(100);
const MAX_POLL: Duration = Duration::from_secs(30);
/// Requests remembered per client (a 1 ms probe fills this in 200 s); later ones are counted.
pub const MAX_REQUEST_RECORDS: usize = 200_000;
/// Distinct error kinds kept per client; further kinds count as "other".
const MAX_ERROR_KINDS: usize = 32;
const MAX_POLLS: u64 = 10_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientOptions {
    /// Fixed poll interval (the probe); `None`: half the target duration, jittered.
    pub poll_every: Option<Duration>,
    pub fetch_segments: bool,
    /// Seed of this client's jitter.
    pub seed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Playlist,
    Segment,
}

/// One completed request (any status): send of the request to its last byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestRecord {
    pub kind: Kind,
    pub sent_ns: u64,
    pub done_ns: u64,
    pub status: u16,
}

/// Everything an HLS client measured besides its frames.
#[derive(Debug, Clone, Default)]
pub struct HlsRecord {
    pub requests: Vec<RequestRecord>,
    pub requests_dropped: u64,
    /// Media sequence number → when this client first saw it listed (playlist's last byte).
    pub first_listed: BTreeMap<u64, u64>,
    /// Media sequence number → first and last frame sequence number it held.
    pub segment_frames: BTreeMap<u64, (u64, u64)>,
    /// Error kind → occurrences.
    pub errors: BTreeMap<String, u64>,
    pub non_200: u64,
    pub timeouts: u64,
    pub ts_failures: u64,
    /// Segments that left the playlist before this client got to them.
    pub skipped_segments: u64,
    pub connects: u64,
}

pub struct HlsClientResult {
    pub viewer: ViewerResult,
    pub hls: HlsRecord,
}

/// Shared with the orchestrator: the largest target duration any client has seen, in ms.
#[derive(Debug, Default)]
pub struct HlsShared {
    pub target_ms: AtomicU64,
}

pub async fn run(
    target: Arc<HttpTarget>,
    rec: ViewerRecorder,
    opts: ClientOptions,
    shared: Arc<HlsShared>,
    mut stop: watch::Receiver<bool>,
) -> HlsClientResult {
    let mut c = Client {
        clock: rec.clock(),
        conn: HttpConn::new(target.clone()),
        target,
        rec,
        opts,
        shared,
        next_msn: None,
        max_listed: None,
        target_ms: DEFAULT_TARGET_MS,
        rng: opts.seed | 1,
        out: HlsRecord::default(),
    };
    c.rec.connecting();
    tokio::select! {
        _ = c.play() => {}
        _ = stop.changed() => {}
    }
    c.out.connects = c.conn.connects;
    HlsClientResult {
        viewer: c.rec.finish(None),
        hls: c.out,
    }
}

struct Client {
    target: Arc<HttpTarget>,
    conn: HttpConn,
    rec: ViewerRecorder,
    clock: Clock,
    opts: ClientOptions,
    shared: Arc<HlsShared>,
    /// The next segment to fetch; `None` until joined.
    next_msn: Option<u64>,
    /// Highest media sequence number seen listed.
    max_listed: Option<u64>,
    target_ms: u64,
    rng: u64,
    out: HlsRecord,
}

impl Client {
    async fn play(&mut self) {
        for _ in 0..MAX_POLLS {
            let poll_start = Instant::now();
            if let Some(pl) = self.poll_playlist().await {
                if self.opts.fetch_segments {
                    self.fetch_new(&pl).await;
                }
            }
            sleep_until(poll_start + self.interval()).await;
        }
    }

    fn interval(&mut self) -> Duration {
        if let Some(d) = self.opts.poll_every {
            return d;
        }
        // xorshift64: uniform in [0.9, 1.1) of half the target duration.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let factor = 0.9 + 0.2 * (self.rng >> 11) as f64 / (1u64 << 53) as f64;
        Duration::from_millis(self.target_ms / 2)
            .mul_f64(factor)
            .clamp(MIN_POLL, MAX_POLL)
    }

    fn error(&mut self, kind: String) {
        let key =
            if self.out.errors.len() >= MAX_ERROR_KINDS && !self.out.errors.contains_key(&kind) {
                "other".to_string()
            } else {
                kind
            };
        *self.out.errors.entry(key).or_insert(0) += 1;
    }

    fn request_failed(&mut self, what: &str, e: &GetError) {
        if matches!(e, GetError::Timeout(_)) {
            self.out.timeouts += 1;
        }
        self.error(format!("{what}: {e}"));
    }

    fn record(&mut self, kind: Kind, sent_ns: u64, done_ns: u64, status: u16) {
        if self.out.requests.len() < MAX_REQUEST_RECORDS {
            self.out.requests.push(RequestRecord {
                kind,
                sent_ns,
                done_ns,
                status,
            });
        } else {
            self.out.requests_dropped += 1;
        }
    }

    async fn poll_playlist(&mut self) -> Option<MediaPlaylist> {
        let mut body = Vec::new();
        let mut too_big = false;
        let sent = self.clock.now_ns();
        let rec = &self.rec;
        let r = self
            .conn
            .get(
                &self.target.path,
                REQUEST_TIMEOUT,
                |n| rec.on_bytes(n),
                |s| {
                    if body.len() + s.len() <= MAX_PLAYLIST {
                        body.extend_from_slice(s);
                    } else {
                        too_big = true;
                    }
                },
            )
            .await;
        let done = self.clock.now_ns();
        let status = match r {
            Ok(r) => r.status,
            Err(e) => {
                self.request_failed("playlist", &e);
                return None;
            }
        };
        self.record(Kind::Playlist, sent, done, status);
        if status != 200 {
            self.out.non_200 += 1;
            self.error(format!("playlist: HTTP {status}"));
            return None;
        }
        if too_big {
            self.error(format!("playlist: over {MAX_PLAYLIST} bytes"));
            return None;
        }
        let pl = match playlist::parse(&body) {
            Ok(pl) => pl,
            Err(e) => {
                self.error(format!("playlist: {e}"));
                return None;
            }
        };
        self.target_ms = pl.target_duration_ms;
        self.shared
            .target_ms
            .fetch_max(pl.target_duration_ms, Ordering::Relaxed);
        for s in &pl.segments {
            if self.max_listed.is_none_or(|m| s.msn > m) {
                self.out.first_listed.insert(s.msn, done);
                self.max_listed = Some(s.msn);
            }
        }
        Some(pl)
    }

    /// Fetches the segments not fetched yet, oldest first (the last few on join).
    async fn fetch_new(&mut self, pl: &MediaPlaylist) {
        let (Some(first), Some(last)) = (pl.segments.first().map(|s| s.msn), pl.last_msn()) else {
            return;
        };
        let join = || last.saturating_sub(JOIN_SEGMENTS - 1).max(first);
        let start = match self.next_msn {
            None => join(),
            Some(n) if n < first => {
                self.out.skipped_segments += first - n;
                first
            }
            Some(n) if n > last + 1 => {
                self.error("playlist: media sequence went back; rejoining".into());
                join()
            }
            Some(n) => n,
        };
        for seg in pl.segments.iter().filter(|s| s.msn >= start) {
            self.next_msn = Some(seg.msn + 1);
            match playlist::resolve(&self.target.path, &self.target.host, &seg.uri) {
                Some(path) => self.fetch_segment(seg.msn, &path).await,
                None => self.error(format!("segment URI refused: {:.80}", seg.uri)),
            }
        }
    }

    async fn fetch_segment(&mut self, msn: u64, path: &str) {
        let mut demux = TsDemuxer::new();
        let sent = self.clock.now_ns();
        let rec = &self.rec;
        let r = self
            .conn
            .get(
                path,
                REQUEST_TIMEOUT,
                |n| rec.on_bytes(n),
                |s| demux.push(s),
            )
            .await;
        let done = self.clock.now_ns();
        let status = match r {
            Ok(r) => r.status,
            Err(e) => {
                self.request_failed("segment", &e);
                return;
            }
        };
        self.record(Kind::Segment, sent, done, status);
        if status != 200 {
            self.out.non_200 += 1;
            self.error(format!("segment: HTTP {status}"));
            return;
        }
        let d = demux.finish();
        if let Some(e) = &d.error {
            self.out.ts_failures += 1;
            self.error(format!("segment: TS {}", e.kind()));
        }
        for f in &d.frames {
            self.rec.on_frame(f.seq, f.keyframe, done);
        }
        for _ in 0..d.foreign {
            self.rec.on_foreign();
        }
        let lo = d.frames.iter().map(|f| f.seq).min();
        let hi = d.frames.iter().map(|f| f.seq).max();
        if let (Some(lo), Some(hi)) = (lo, hi) {
            self.out.segment_frames.insert(msn, (lo, hi));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http;
    use crate::stats::{SendLog, ViewerLive, NOT_RECEIVED, NO_SAMPLE};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// Serves a playlist of `live` segments (msn 10..=12 then 10..=13 after the first poll)
    /// and segments with frames from `ts::tests`-like muxing: here, empty-bodied 404s for
    /// the ones not listed, and a fixed one-frame segment for the others.
    async fn server(listener: TcpListener, segment: Vec<u8>) -> Vec<String> {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut paths = Vec::new();
        let mut req = Vec::new();
        let mut b = [0u8; 2048];
        let mut polls = 0;
        while paths.len() < 12 {
            while http::head_end(&req).is_none() {
                let n = s.read(&mut b).await.unwrap();
                if n == 0 {
                    return paths;
                }
                req.extend_from_slice(&b[..n]);
            }
            let end = http::head_end(&req).unwrap();
            let head = String::from_utf8(req.drain(..end).collect()).unwrap();
            let path = head.split(' ').nth(1).unwrap().to_string();
            paths.push(path.clone());
            let (status, body): (u16, Vec<u8>) = if path.ends_with(".m3u8") {
                polls += 1;
                let (first, last) = if polls == 1 { (8, 12) } else { (9, 13) };
                let mut t =
                    format!("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:{first}\n");
                for m in first..=last {
                    t.push_str(&format!("#EXTINF:1,\nt-{m}.ts\n"));
                }
                (200, t.into_bytes())
            } else if path == "/live/t-13.ts" {
                (404, b"gone".to_vec())
            } else {
                (200, segment.clone())
            };
            s.write_all(
                format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
            )
            .await
            .unwrap();
            s.write_all(&body).await.unwrap();
        }
        paths
    }

    #[tokio::test]
    async fn joins_at_the_live_edge_and_fetches_each_new_segment_once() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let segment = crate::ts::tests::segment(0..2);
        let srv = tokio::spawn(server(listener, segment));
        let clock = Clock::new();
        let log = Arc::new(SendLog::new(10));
        log.record(0, 1);
        log.record(1, 2);
        let live = Arc::new(ViewerLive::default());
        let rec = ViewerRecorder::new(clock, log, live.clone());
        let target = Arc::new(HttpTarget {
            addr,
            host: addr.to_string(),
            path: "/live/t.m3u8".into(),
        });
        let (stop_tx, stop) = watch::channel(false);
        let shared = Arc::new(HlsShared::default());
        let opts = ClientOptions {
            poll_every: None,
            fetch_segments: true,
            seed: 7,
        };
        let task = tokio::spawn(run(target, rec, opts, shared.clone(), stop));
        // Two polls at ~500 ms apart, then stop during the third interval.
        tokio::time::sleep(Duration::from_millis(1_300)).await;
        stop_tx.send(true).unwrap();
        let r = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
        let paths = srv.await.unwrap();
        assert_eq!(
            &paths[..6],
            [
                "/live/t.m3u8",
                "/live/t-10.ts",
                "/live/t-11.ts",
                "/live/t-12.ts",
                "/live/t.m3u8",
                "/live/t-13.ts"
            ]
        );
        assert_eq!(shared.target_ms.load(Ordering::Relaxed), 1_000);
        let h = &r.hls;
        assert_eq!(h.connects, 1);
        assert_eq!(h.non_200, 1);
        assert_eq!(h.errors.get("segment: HTTP 404"), Some(&1));
        assert_eq!(h.ts_failures, 0);
        assert_eq!(
            h.first_listed.keys().copied().collect::<Vec<_>>(),
            (8..=13).collect::<Vec<_>>()
        );
        assert_eq!(h.segment_frames.get(&10), Some(&(0, 1)));
        assert_eq!(
            h.requests
                .iter()
                .filter(|q| q.kind == Kind::Segment)
                .count(),
            4
        );
        assert!(h.requests.iter().all(|q| q.done_ns >= q.sent_ns));
        // The same frames in three segments: received once, then duplicates; all sent before
        // the first fetch, so no latency sample.
        assert_eq!(r.viewer.per_seq[0], NO_SAMPLE);
        assert_eq!(r.viewer.per_seq[2], NOT_RECEIVED);
        assert_eq!(r.viewer.duplicates, 4);
        assert!(live.bytes.load(Ordering::Relaxed) > 3 * 40_000);
    }

    #[test]
    fn poll_interval_is_half_the_target_with_jitter() {
        let mut c = Client {
            target: Arc::new(HttpTarget {
                addr: "127.0.0.1:1".parse().unwrap(),
                host: "127.0.0.1:1".into(),
                path: "/a.m3u8".into(),
            }),
            conn: HttpConn::new(Arc::new(HttpTarget {
                addr: "127.0.0.1:1".parse().unwrap(),
                host: "127.0.0.1:1".into(),
                path: "/a.m3u8".into(),
            })),
            rec: ViewerRecorder::new(
                Clock::new(),
                Arc::new(SendLog::new(1)),
                Arc::new(ViewerLive::default()),
            ),
            clock: Clock::new(),
            opts: ClientOptions {
                poll_every: None,
                fetch_segments: true,
                seed: 3,
            },
            shared: Arc::new(HlsShared::default()),
            next_msn: None,
            max_listed: None,
            target_ms: 2_000,
            rng: 3,
            out: HlsRecord::default(),
        };
        let v: Vec<Duration> = (0..1000).map(|_| c.interval()).collect();
        assert!(v.iter().all(|d| (900..1100).contains(&d.as_millis())));
        let mean = v.iter().sum::<Duration>() / 1000;
        assert!((980..1020).contains(&mean.as_millis()), "{mean:?}");
        c.target_ms = 0;
        assert_eq!(c.interval(), MIN_POLL);
        c.opts.poll_every = Some(Duration::from_millis(5));
        assert_eq!(c.interval(), Duration::from_millis(5));
    }
}
