//! Low-Latency HLS clients for the benchmark: each keeps one keep-alive connection, asks for
//! the next part with a blocking playlist reload (`_HLS_msn`/`_HLS_part` of the preload
//! hint), then fetches every part listed since its last one, in order. A part's
//! availability is the send time of the frame that closes it (the first frame of the next
//! part: its last frame's sequence number + 1, read from the `ONAIRSEQ` marks in its mdat).

use crate::http_conn::HttpConn;
use crate::media::MAGIC;
use crate::stats::{Clock, SendLog};
use crate::target::HttpTarget;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Bound on one request; a blocking reload waits at most a few part targets on the server.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest playlist or part read (bytes); past it the request counts as an error.
const MAX_BODY: usize = 8 << 20;
/// Parts remembered per client.
const MAX_PARTS: usize = 100_000;

/// One part a client fetched.
#[derive(Debug, Clone, Copy)]
pub struct PartFetch {
    pub msn: u64,
    pub index: u32,
    /// When its last byte arrived.
    pub done_ns: u64,
    /// Sequence number of the frame that closed it (its last video frame + 1).
    pub closing_seq: Option<u64>,
}

/// One completed request.
#[derive(Debug, Clone, Copy)]
pub struct Request {
    pub done_ns: u64,
    pub ok: bool,
}

#[derive(Debug, Default)]
pub struct LlClientResult {
    pub parts: Vec<PartFetch>,
    pub requests: Vec<Request>,
    pub errors: u64,
    pub bytes: u64,
}

/// `…part{msn}.{index}.m4s` in a URI.
fn part_of(uri: &str) -> Option<(u64, u32)> {
    let stem = uri.split('?').next()?.strip_suffix(".m4s")?;
    let at = stem.rfind("part")?;
    let (m, i) = stem[at + 4..].split_once('.')?;
    Some((m.parse().ok()?, i.parse().ok()?))
}

/// A listed part: msn, index, URI.
pub type ListedPart = (u64, u32, String);

/// The parts listed (in order) and the preload hint's part.
pub fn parse_ll_playlist(text: &str) -> (Vec<ListedPart>, Option<(u64, u32)>) {
    let uri = |l: &str| -> Option<String> {
        Some(l.split("URI=\"").nth(1)?.split('"').next()?.to_string())
    };
    let mut parts = Vec::new();
    let mut hint = None;
    for l in text.lines() {
        if l.starts_with("#EXT-X-PART:") {
            if let Some(u) = uri(l) {
                if let Some((m, i)) = part_of(&u) {
                    parts.push((m, i, u));
                }
            }
        } else if l.starts_with("#EXT-X-PRELOAD-HINT:") {
            hint = uri(l).and_then(|u| part_of(&u));
        }
    }
    (parts, hint)
}

/// The last `ONAIRSEQ` sequence number in a part (its last video frame).
pub fn last_seq(data: &[u8]) -> Option<u64> {
    let mut at = data.len().checked_sub(MAGIC.len() + 8)?;
    loop {
        if data[at..].starts_with(&MAGIC) {
            let b: [u8; 8] = data[at + 8..at + 16].try_into().ok()?;
            return Some(u64::from_be_bytes(b));
        }
        at = at.checked_sub(1)?;
    }
}

/// Plays until `stop` changes.
pub async fn run(
    target: Arc<HttpTarget>,
    clock: Clock,
    mut stop: watch::Receiver<bool>,
) -> LlClientResult {
    let mut out = LlClientResult::default();
    tokio::select! {
        _ = play(&target, &clock, &mut out) => {}
        _ = stop.changed() => {}
    }
    out
}

async fn get(
    conn: &mut HttpConn,
    path: &str,
    clock: &Clock,
    out: &mut LlClientResult,
) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    let mut wire = 0u64;
    let r = conn
        .get(
            path,
            REQUEST_TIMEOUT,
            |n| wire += n as u64,
            |b| {
                if body.len() + b.len() <= MAX_BODY {
                    body.extend_from_slice(b);
                }
            },
        )
        .await;
    out.bytes += wire;
    let ok = matches!(r, Ok(ref x) if x.status == 200);
    if out.requests.len() < MAX_PARTS * 3 {
        out.requests.push(Request {
            done_ns: clock.now_ns(),
            ok,
        });
    }
    if !ok {
        out.errors += 1;
        // A refused or failed request: do not spin on it.
        tokio::time::sleep(Duration::from_millis(100)).await;
        return None;
    }
    Some(body)
}

async fn play(target: &Arc<HttpTarget>, clock: &Clock, out: &mut LlClientResult) {
    let mut conn = HttpConn::new(target.clone());
    let playlist = target.path.clone();
    let dir = playlist.rsplit_once('/').map_or("", |(d, _)| d).to_string();
    let sep = if playlist.contains('?') { '&' } else { '?' };
    // Join at the live edge: the first request is a plain reload.
    let mut want: Option<(u64, u32)> = None;
    let mut last: Option<(u64, u32)> = None;
    let mut fetched = BTreeSet::new();
    loop {
        let path = match want {
            Some((m, p)) => format!("{playlist}{sep}_HLS_msn={m}&_HLS_part={p}"),
            None => playlist.clone(),
        };
        let Some(body) = get(&mut conn, &path, clock, out).await else {
            want = None;
            continue;
        };
        let text = String::from_utf8_lossy(&body);
        let (parts, hint) = parse_ll_playlist(&text);
        // On join, start with the newest listed part; then every part after the last one.
        let from = match last {
            Some(l) => parts
                .iter()
                .position(|&(m, i, _)| (m, i) > l)
                .unwrap_or(parts.len()),
            None => parts.len().saturating_sub(1),
        };
        for (m, i, uri) in &parts[from..] {
            let Some(data) = get(&mut conn, &format!("{dir}/{uri}"), clock, out).await else {
                continue;
            };
            let done_ns = clock.now_ns();
            last = Some((*m, *i));
            if fetched.insert((*m, *i)) && out.parts.len() < MAX_PARTS {
                out.parts.push(PartFetch {
                    msn: *m,
                    index: *i,
                    done_ns,
                    closing_seq: last_seq(&data).map(|s| s + 1),
                });
            }
        }
        if hint.is_none() {
            // No part on its way (the publisher left): poll gently until one is.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        want = hint;
    }
}

/// Part-available-to-fetched latencies (µs) of the parts fetched in `[w0, w1)`.
pub fn latencies_us(results: &[LlClientResult], log: &SendLog, w0: u64, w1: u64) -> Vec<u32> {
    let mut v = Vec::new();
    for r in results {
        for p in &r.parts {
            if p.done_ns < w0 || p.done_ns >= w1 {
                continue;
            }
            if let Some(sent) = p.closing_seq.and_then(|s| log.get(s)) {
                v.push((p.done_ns.saturating_sub(sent) / 1000).min(u32::MAX as u64) as u32);
            }
        }
    }
    v
}

/// Parts some client fetched in `[w0, w1)` that another client never got, summed over
/// clients (0: every client got every part).
pub fn parts_missed(results: &[LlClientResult], w0: u64, w1: u64) -> (usize, u64) {
    let all: BTreeSet<(u64, u32)> = results
        .iter()
        .flat_map(|r| r.parts.iter())
        .filter(|p| p.done_ns >= w0 && p.done_ns < w1)
        .map(|p| (p.msn, p.index))
        .collect();
    let mut missed = 0;
    for r in results {
        let got: BTreeSet<(u64, u32)> = r.parts.iter().map(|p| (p.msn, p.index)).collect();
        missed += all.difference(&got).count() as u64;
    }
    (all.len(), missed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn playlists_and_parts() {
        let text = "#EXTM3U\n#EXT-X-PART:DURATION=0.20000,URI=\"b-part4.3.m4s\",INDEPENDENT=YES\n\
                    #EXTINF:1.0,\nb-seg4.m4s\n#EXT-X-PART:DURATION=0.20000,URI=\"b-part5.0.m4s\"\n\
                    #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"b-part5.1.m4s\"\n";
        let (parts, hint) = parse_ll_playlist(text);
        assert_eq!(
            parts.iter().map(|p| (p.0, p.1)).collect::<Vec<_>>(),
            vec![(4, 3), (5, 0)]
        );
        assert_eq!(hint, Some((5, 1)));
        let mut data = vec![0u8; 40];
        data.extend_from_slice(&MAGIC);
        data.extend_from_slice(&7u64.to_be_bytes());
        data.extend_from_slice(&[1, 2, 3]);
        data.extend_from_slice(&MAGIC);
        data.extend_from_slice(&9u64.to_be_bytes());
        data.extend_from_slice(&[0; 100]);
        assert_eq!(last_seq(&data), Some(9));
        assert_eq!(last_seq(b"short"), None);
    }
}
