//! A replay of an RTMP connection: the bytes a client sends go through the same driver
//! and session as a TCP connection (`super::driver`), over an in-memory transport, into
//! a real hub, on a single-threaded runtime of its own. For fuzzing and for
//! tests on captured bytes. It must never panic; a panic the server catches (in
//! rml_rtmp) is caught and reported.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::CancellationToken;

use super::driver::{Driver, READ_CHUNK};
use super::error::ConnError;
use crate::config::{HubConfig, RtmpConfig};
use crate::hub::{Hub, MediaInfo, StreamKey};

/// A stream that is live before the replay starts, so `play` requests can succeed.
pub const LIVE_APP: &str = "live";
pub const LIVE_NAME: &str = "t";

/// What the server would have done with one connection's bytes.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub handshake_done: bool,
    /// Bytes the server would have sent back (handshake and replies).
    pub bytes_out: usize,
    /// `app/name` this connection was allowed to publish.
    pub published: Option<String>,
    pub played: bool,
    /// What the hub made of the published stream when the bytes ran out.
    pub media: Option<MediaInfo>,
    /// Frames and bytes in the published stream's GOP cache at the end.
    pub gop_cache: (usize, usize),
    /// Why the server would have closed the connection; `None` if it would wait for more.
    pub closed: Option<String>,
    /// The close was a library panic that the server catches (`ConnError::Panicked`).
    pub caught_panic: bool,
    /// Client bytes the server never read (a refusal reads the rest before closing).
    pub unread: usize,
}

impl Summary {
    fn close(&mut self, e: ConnError) {
        self.caught_panic = matches!(e, ConnError::Panicked(_));
        self.closed = Some(e.to_string());
    }
}

/// The client's bytes as a transport: reads of at most `read_size`, then, once they are
/// used up, a read that never completes (a client that sends nothing more), or the end
/// of the stream once the server shut its side down (a client that leaves when it sees
/// the server leave). Writes are counted and dropped.
struct Replayed<'a> {
    input: &'a [u8],
    read_size: usize,
    shut_down: bool,
    drained: Rc<Cell<bool>>,
    written: Rc<Cell<usize>>,
    unread: Rc<Cell<usize>>,
}

impl AsyncRead for Replayed<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.input.is_empty() {
            if self.shut_down {
                return Poll::Ready(Ok(()));
            }
            self.drained.set(true);
            return Poll::Pending;
        }
        let n = self.input.len().min(self.read_size).min(buf.remaining());
        let (read, rest) = self.input.split_at(n);
        buf.put_slice(read);
        self.input = rest;
        self.unread.set(rest.len());
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Replayed<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.written.set(self.written.get() + data.len());
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.shut_down = true;
        Poll::Ready(Ok(()))
    }
}

/// Replays `bytes` as one client's whole side of a connection, read the way the server
/// reads a socket that always has data (4 KiB reads during the handshake, 16 KiB after).
pub fn ingest(bytes: &[u8], cfg: &RtmpConfig) -> Summary {
    ingest_with_reads(bytes, cfg, READ_CHUNK)
}

/// Like `ingest`, with reads of at most `read_size` bytes (at least 1), as a slow or
/// fragmenting network delivers them.
pub fn ingest_with_reads(bytes: &[u8], cfg: &RtmpConfig, read_size: usize) -> Summary {
    let mut summary = Summary::default();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            summary.close(ConnError::Io(e));
            return summary;
        }
    };
    rt.block_on(replay(bytes, cfg, read_size.max(1), &mut summary));
    summary
}

async fn replay(bytes: &[u8], cfg: &RtmpConfig, read_size: usize, summary: &mut Summary) {
    let hub = Hub::new(HubConfig::default());
    let peer = SocketAddr::from(([127, 0, 0, 1], 1935));
    let live = hub.publish(StreamKey::new(LIVE_APP, LIVE_NAME), peer).ok();
    let drained = Rc::new(Cell::new(false));
    let written = Rc::new(Cell::new(0));
    let unread = Rc::new(Cell::new(bytes.len()));
    let transport = Replayed {
        input: bytes,
        read_size,
        shut_down: false,
        drained: drained.clone(),
        written: written.clone(),
        unread: unread.clone(),
    };
    // The server's default: no keys, tokens or hook, so every publish and play is allowed.
    let auth = Arc::new(crate::auth::Auth::default());
    let mut driver = Driver::new(transport, peer, Arc::new(cfg.clone()), hub.clone(), auth);
    let shutdown = CancellationToken::new();
    let ended = {
        let mut run = std::pin::pin!(driver.run(&shutdown));
        // Run until the connection ends or waits for input that will never come.
        std::future::poll_fn(|cx| match run.as_mut().poll(cx) {
            Poll::Ready(r) => Poll::Ready(Some(r)),
            Poll::Pending if drained.get() => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        })
        .await
    };
    summary.handshake_done = driver.session().handshake_done();
    summary.bytes_out = written.get();
    summary.unread = unread.get();
    summary.played = driver.is_playing();
    if let Some(p) = driver.publisher() {
        summary.published = Some(p.key().to_string());
        summary.media = Some(p.stream().media());
        summary.gop_cache = p.stream().gop_cache_len();
    }
    match ended {
        Some(Err(e)) => summary.close(e),
        Some(Ok(())) => summary.closed = Some("connection closed".into()),
        // The bytes ran out mid-handshake: the client is gone, as the driver would see it.
        None if !summary.handshake_done => {
            summary.close(ConnError::Handshake("peer closed during handshake".into()))
        }
        None => {}
    }
    drop(driver);
    drop(live);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::rtmp::chunk::encode_message;
    use crate::rtmp::messages::{TYPE_AMF0_COMMAND, TYPE_AMF0_DATA, TYPE_AUDIO, TYPE_VIDEO};
    use onair_shared::metadata::Amf0Value;

    /// C0 + C1 (plain, no digest) + C2.
    pub(crate) fn handshake_bytes() -> Vec<u8> {
        let mut b = vec![3u8];
        b.extend((0..1536).map(|i| (i * 7 % 251) as u8));
        b.extend(std::iter::repeat_n(0u8, 1536));
        b
    }

    pub(crate) fn command(csid: u32, stream_id: u32, values: Vec<Amf0Value>) -> Vec<u8> {
        let payload = rml_amf0::serialize(&values).unwrap();
        let mut out = bytes::BytesMut::new();
        encode_message(
            &mut out,
            csid,
            TYPE_AMF0_COMMAND,
            stream_id,
            0,
            &payload,
            128,
        );
        out.to_vec()
    }

    pub(crate) fn s(v: &str) -> Amf0Value {
        Amf0Value::Utf8String(v.into())
    }

    pub(crate) fn connect(app: &str) -> Vec<u8> {
        let mut props = std::collections::HashMap::new();
        props.insert("app".to_string(), s(app));
        command(
            3,
            0,
            vec![
                s("connect"),
                Amf0Value::Number(1.0),
                Amf0Value::Object(props),
            ],
        )
    }

    pub(crate) fn create_stream() -> Vec<u8> {
        command(
            3,
            0,
            vec![s("createStream"), Amf0Value::Number(2.0), Amf0Value::Null],
        )
    }

    pub(crate) fn message(type_id: u8, ts: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = bytes::BytesMut::new();
        encode_message(&mut out, 6, type_id, 1, ts, payload, 128);
        out.to_vec()
    }

    pub(crate) fn publish_session(name: &str) -> Vec<u8> {
        let mut b = handshake_bytes();
        b.extend(connect("live"));
        b.extend(create_stream());
        b.extend(command(
            4,
            1,
            vec![
                s("publish"),
                Amf0Value::Number(3.0),
                Amf0Value::Null,
                s(name),
                s("LIVE"),
            ],
        ));
        b
    }

    #[test]
    fn a_publisher_is_accepted_and_its_media_reaches_the_hub() {
        let mut b = publish_session("cam");
        let mut meta = std::collections::HashMap::new();
        meta.insert("width".to_string(), Amf0Value::Number(320.0));
        b.extend(message(
            TYPE_AMF0_DATA,
            0,
            &rml_amf0::serialize(&vec![
                s("@setDataFrame"),
                s("onMetaData"),
                Amf0Value::Object(meta),
            ])
            .unwrap(),
        ));
        let mut seq = vec![0x17, 0, 0, 0, 0];
        seq.extend(
            onair_shared::avc::AvcDecoderConfig::from_parameter_sets(
                &crate::hls::ts::tests::SPS,
                &crate::hls::ts::tests::PPS,
            )
            .unwrap()
            .to_bytes(),
        );
        b.extend(message(TYPE_VIDEO, 0, &seq));
        b.extend(message(
            TYPE_VIDEO,
            0,
            &[0x17, 1, 0, 0, 0, 0, 0, 0, 2, 0x65, 0],
        ));
        b.extend(message(TYPE_AUDIO, 0, &[0xaf, 0, 0x12, 0x10]));
        for read_size in [READ_CHUNK, 1, 7, 300] {
            let sum = ingest_with_reads(&b, &crate::config::RtmpConfig::default(), read_size);
            assert!(sum.handshake_done);
            assert_eq!(sum.closed, None, "read size {read_size}");
            assert_eq!(sum.published.as_deref(), Some("live/cam"));
            let media = sum.media.unwrap();
            assert_eq!((media.width, media.height), (Some(1280), Some(720)));
            assert_eq!(media.audio_sample_rate, Some(44100));
            assert_eq!(sum.gop_cache.0, 1, "the keyframe is cached");
        }
    }

    #[test]
    fn play_of_the_live_stream_is_accepted_and_refusals_close() {
        let mut b = handshake_bytes();
        b.extend(connect("live"));
        b.extend(create_stream());
        b.extend(command(
            4,
            1,
            vec![
                s("play"),
                Amf0Value::Number(4.0),
                Amf0Value::Null,
                s(LIVE_NAME),
            ],
        ));
        let sum = ingest(&b, &RtmpConfig::default());
        assert!(sum.played && sum.closed.is_none(), "{sum:?}");

        // Publishing the name that is already live is refused, with the connection closed,
        // after the client's further input was read (so it sees the status, not a reset).
        let mut b = publish_session(LIVE_NAME);
        for i in 0..50 {
            b.extend(message(TYPE_VIDEO, i * 33, &[0x27; 2000]));
        }
        let sum = ingest(&b, &RtmpConfig::default());
        assert!(sum.published.is_none());
        assert!(sum.closed.unwrap().contains("publish refused"));
        assert_eq!(sum.unread, 0, "input drained after the refusal");
        let cfg = RtmpConfig {
            refusal_drain_ms: 0,
            ..RtmpConfig::default()
        };
        assert!(
            ingest(&b, &cfg).unread > 50_000,
            "without a drain, left unread"
        );
    }

    #[test]
    fn captured_ffmpeg_publish_goes_live() {
        // The client side of a real `ffmpeg -f flv rtmp://.../live/cam` (fuzz/seeds/make.py),
        // after the fuzz target's mode byte, cut at 24 KB.
        let seed = include_bytes!("../../../fuzz/seeds/rtmp_ingest/ffmpeg_publish");
        for read_size in [READ_CHUNK, 1, 1000] {
            let sum = ingest_with_reads(&seed[1..], &RtmpConfig::default(), read_size);
            assert_eq!(sum.closed, None, "read size {read_size}");
            assert_eq!(sum.published.as_deref(), Some("live/cam"));
            let media = sum.media.unwrap();
            assert_eq!((media.width, media.height), (Some(160), Some(120)));
            assert_eq!(media.audio_sample_rate, Some(44100));
            assert!(sum.gop_cache.0 > 0);
        }
    }

    #[test]
    fn short_command_closes_without_a_panic_in_rml_rtmp() {
        // The rtmp_ingest fuzz target's first crash, minimized: after the handshake, one
        // chunk with `createStream` and a number only. rml_rtmp panicked on it (caught, so
        // the server closed the connection); now `check_command` refuses it first.
        let mut b = handshake_bytes();
        b.extend_from_slice(b"\x03\x00\x00\x00\x00\x00\x18\x14\x00\x00\x00\x00");
        b.extend_from_slice(b"\x02\x00\x0ccreateStream\x00\x00\x02\x00\x04\x70\x6c\x00\x00");
        let sum = ingest(&b, &RtmpConfig::default());
        assert!(!sum.caught_panic, "{sum:?}");
        assert!(sum.closed.unwrap().contains("without a transaction id"));
    }

    #[test]
    fn garbage_ends_in_an_error_not_a_panic() {
        let sum = ingest(b"GET / HTTP/1.1\r\n\r\n", &RtmpConfig::default());
        assert!(!sum.handshake_done && sum.closed.is_some());
        let mut b = handshake_bytes();
        b.extend([0xc7; 64]);
        let sum = ingest(&b, &RtmpConfig::default());
        assert!(sum.handshake_done);
        assert!(sum.closed.unwrap().contains("chunk stream"));
    }
}
