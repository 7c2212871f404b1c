//! An HTTP-FLV viewer: GET the stream, then hand the socket to a reader thread, which
//! undoes chunked coding if used, scans the FLV tags and hands every video tag's start to
//! the recorder with the time its bytes were read.

use crate::flv_scan::FlvScan;
use crate::http::{self, ChunkedDecoder, ResponseHead};
use crate::media::CLASSIFY_PREFIX;
use crate::readers::{Demux, Readers};
use crate::stats::{ViewerRecorder, ViewerResult};
use crate::target::HttpTarget;
use anyhow::{bail, Context, Result};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::timeout;

const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_TAG: usize = 16 * 1024 * 1024;

pub async fn run(
    target: Arc<HttpTarget>,
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
    let Some(setup) = setup else {
        return rec.finish(None);
    };
    match setup {
        Ok((sock, play)) => readers.read(sock, Box::new(play), rec, stop).await,
        Err(e) => rec.finish(Some(format!("{e:#}"))),
    }
}

enum Body {
    Chunked(ChunkedDecoder),
    Length(u64),
    UntilClose,
}

/// The response body of a play: its transfer coding and the FLV in it.
struct FlvPlay {
    body: Body,
    scan: FlvScan,
}

impl Demux for FlvPlay {
    fn feed(
        &mut self,
        data: &[u8],
        now_ns: u64,
        rec: &mut ViewerRecorder,
        _reply: &mut Vec<u8>,
    ) -> Result<()> {
        let scan = &mut self.scan;
        let mut on_video = |prefix: &[u8]| rec.on_video(prefix, now_ns);
        match &mut self.body {
            Body::Chunked(d) => {
                let mut bad = None;
                d.feed(data, |s| {
                    if bad.is_none() {
                        bad = scan.push(s, &mut on_video).err();
                    }
                })?;
                if let Some(e) = bad {
                    return Err(e.into());
                }
                if d.is_done() {
                    bail!("server ended the chunked body");
                }
            }
            Body::Length(left) => {
                let n = (*left).min(data.len() as u64);
                scan.push(&data[..n as usize], on_video)?;
                *left -= n;
                if *left == 0 {
                    bail!("server ended the body (Content-Length reached)");
                }
            }
            Body::UntilClose => scan.push(data, on_video)?,
        }
        Ok(())
    }
}

async fn open(target: &HttpTarget) -> Result<(TcpStream, ResponseHead, Vec<u8>)> {
    let mut sock = TcpStream::connect(target.addr)
        .await
        .with_context(|| format!("tcp connect to {}", target.addr))?;
    sock.set_nodelay(true)?;
    sock.write_all(http::get_request(&target.host, &target.path).as_bytes())
        .await
        .context("write request")?;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = http::head_end(&buf) {
            let head = http::parse_head(&buf[..end])?;
            return Ok((sock, head, buf.split_off(end)));
        }
        if buf.len() > http::MAX_HEAD {
            bail!("response head over {} bytes", http::MAX_HEAD);
        }
        let n = sock.read(&mut chunk).await.context("read head")?;
        if n == 0 {
            bail!("server closed the connection before the response head");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The GET and the response head; the body bytes read with the head have been fed.
async fn setup(target: &HttpTarget, rec: &mut ViewerRecorder) -> Result<(TcpStream, FlvPlay)> {
    let (sock, head, first) = timeout(SETUP_TIMEOUT, open(target))
        .await
        .context("connect timed out")??;
    if head.status != 200 {
        bail!("HTTP status {}", head.status);
    }
    let body = if head.chunked {
        Body::Chunked(ChunkedDecoder::new())
    } else if let Some(n) = head.content_length {
        Body::Length(n)
    } else {
        Body::UntilClose
    };
    let mut play = FlvPlay {
        body,
        scan: FlvScan::new(CLASSIFY_PREFIX, MAX_TAG),
    };
    rec.on_bytes(first.len());
    let now = rec.clock().now_ns();
    play.feed(&first, now, rec, &mut Vec::new())?;
    Ok((sock, play))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{audio_frame, filler, video_frame, video_ms, video_sequence_header};
    use crate::stats::{Clock, SendLog, ViewerLive, NOT_RECEIVED};
    use onair_shared::flv::{encode_tag, header, TAG_AUDIO, TAG_VIDEO};
    use std::sync::atomic::Ordering;
    use tokio::net::TcpListener;

    /// A one-shot HTTP server sending a chunked FLV of frames 0..4, then the last chunk.
    async fn serve_once(listener: TcpListener) -> String {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut req = Vec::new();
        let mut b = [0u8; 1024];
        while http::head_end(&req).is_none() {
            let n = s.read(&mut b).await.unwrap();
            assert!(n > 0);
            req.extend_from_slice(&b[..n]);
        }
        let f = filler();
        let mut flv = header(true, true).to_vec();
        flv.extend_from_slice(&encode_tag(TAG_VIDEO, 0, &video_sequence_header().unwrap()));
        for seq in 0..4 {
            flv.extend_from_slice(&encode_tag(TAG_VIDEO, video_ms(seq), &video_frame(seq, &f)));
            flv.extend_from_slice(&encode_tag(TAG_AUDIO, video_ms(seq), &audio_frame(&f)));
        }
        let mut out =
            b"HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\nTransfer-Encoding: chunked\r\n\r\n"
                .to_vec();
        for piece in flv.chunks(3000) {
            out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            out.extend_from_slice(piece);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n\r\n");
        s.write_all(&out).await.unwrap();
        String::from_utf8(req).unwrap()
    }

    #[tokio::test]
    async fn plays_chunked_flv() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve_once(listener));
        let clock = Clock::new();
        let log = Arc::new(SendLog::new(10));
        for seq in 0..4 {
            log.record(seq, clock.now_ns());
        }
        let live = Arc::new(ViewerLive::default());
        let target = Arc::new(HttpTarget {
            addr,
            host: addr.to_string(),
            path: "/live/x.flv".into(),
        });
        let (_stop_tx, stop) = watch::channel(false);
        let rec = ViewerRecorder::new(clock, log, live.clone());
        let readers = Readers::start(1).unwrap();
        let r = timeout(Duration::from_secs(10), run(target, rec, stop, readers))
            .await
            .unwrap();
        assert_eq!(r.error.as_deref(), Some("server ended the chunked body"));
        assert!(r.per_seq[..4].iter().all(|&v| v != NOT_RECEIVED));
        assert_eq!(r.per_seq[4], NOT_RECEIVED);
        assert!(r.first_key_ns.is_some());
        assert!(live.bytes.load(Ordering::Relaxed) > 4 * 9_700);
        let req = server.await.unwrap();
        assert!(req.starts_with("GET /live/x.flv HTTP/1.1\r\nHost: 127.0.0.1:"));
    }
}
