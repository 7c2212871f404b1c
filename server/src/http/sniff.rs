//! The first request of a plain HTTP connection, looked at before hyper sees it: a
//! `GET /{app}/{stream}.flv` is served by onair itself (its socket then goes to the
//! stream's fan-out loops, like an RTMP player's); anything else goes to hyper with the
//! bytes already read put back. Sans-IO: bytes in, a verdict out; and the response heads
//! written for the requests served here.

use hyper::Response;

/// What the bytes read so far from a new connection call for.
#[derive(Debug, PartialEq, Eq)]
pub enum Sniff {
    /// Not enough to tell yet.
    NeedMore,
    /// Hyper serves the connection (the bytes read so far go to it first).
    Hyper,
    /// A live HTTP-FLV request with its head complete: `head_len` bytes of it.
    FlvGet {
        head_len: usize,
        path: String,
        query: String,
    },
}

/// Most headers looked at in an HTTP-FLV request head; more goes to hyper, which answers
/// it with its own limits.
const MAX_HEADERS: usize = 64;

/// Classifies the start of a connection. `max_head` bounds the head looked at: a longer
/// one is hyper's to refuse. The request line decides as soon as it is complete, so any
/// other request reaches hyper without waiting for the rest of its head.
pub fn sniff(buf: &[u8], max_head: usize) -> Sniff {
    let Some(line_end) = buf.iter().position(|&b| b == b'\n') else {
        return if buf.len() >= max_head || !could_be_get(buf) {
            Sniff::Hyper
        } else {
            Sniff::NeedMore
        };
    };
    let line = &buf[..line_end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let Some(target) = flv_target(line) else {
        return Sniff::Hyper;
    };
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(&buf[..buf.len().min(max_head)]) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() < max_head => return Sniff::NeedMore,
        // Too long, too many headers, or malformed: hyper answers it.
        _ => return Sniff::Hyper,
    };
    // A GET with a body is odd enough to leave to hyper, which knows how to skip it.
    let has_body = req.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("content-length") && h.value != b"0"
            || h.name.eq_ignore_ascii_case("transfer-encoding")
    });
    if has_body {
        return Sniff::Hyper;
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Sniff::FlvGet {
        head_len,
        path: path.to_string(),
        query: query.to_string(),
    }
}

/// Whether a partial request line may still turn out to start with `GET `.
fn could_be_get(buf: &[u8]) -> bool {
    let n = buf.len().min(4);
    buf[..n] == b"GET "[..n]
}

/// The target of `GET /{app}/{stream}.flv[?query] HTTP/1.x`, if that is the line.
fn flv_target(line: &[u8]) -> Option<&str> {
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split(' ');
    let (Some("GET"), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return None;
    }
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    // Every route hyper's router puts before `/{app}/{stream}` stays hyper's: RTMPT's
    // fixed paths, WHEP, and the server's reserved apps.
    if crate::rtmpt::protocol::parse_path(path).is_some() || super::whep::is_whep_path(path) {
        return None;
    }
    match super::media_path(path) {
        Some((key, "flv")) if !crate::hub::RESERVED_APPS.contains(&key.app.as_str()) => {
            Some(target)
        }
        _ => None,
    }
}

/// A response head for a connection that closes after the body: the status line, the
/// response's headers, `Connection: close`, and the body's length when it has one (a
/// live FLV body has none and ends with the connection).
pub fn encode_head<B>(res: &Response<B>, content_length: Option<usize>) -> Vec<u8> {
    let status = res.status();
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in res.headers() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(n) = content_length {
        out.extend_from_slice(format!("content-length: {n}\r\n").as_bytes());
    }
    out.extend_from_slice(b"connection: close\r\n\r\n");
    out
}

/// A whole response (status, headers, body) for a connection that closes after it.
pub fn encode_full(res: &Response<bytes::Bytes>) -> Vec<u8> {
    let mut out = encode_head(res, Some(res.body().len()));
    out.extend_from_slice(res.body());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::StatusCode;

    const MAX: usize = 16 << 10;

    fn flv(head_len: usize, path: &str, query: &str) -> Sniff {
        Sniff::FlvGet {
            head_len,
            path: path.into(),
            query: query.into(),
        }
    }

    #[test]
    fn an_flv_get_is_recognized_once_its_head_is_complete() {
        let req = b"GET /live/cam.flv?token=abc HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\n\r\n";
        assert_eq!(
            sniff(req, MAX),
            flv(req.len(), "/live/cam.flv", "token=abc")
        );
        // Every split before the blank line waits for more.
        for cut in 0..req.len() {
            assert_eq!(sniff(&req[..cut], MAX), Sniff::NeedMore, "cut at {cut}");
        }
        // A pipelined second request is not part of the head.
        let mut two = req.to_vec();
        two.extend_from_slice(b"GET /api/streams HTTP/1.1\r\n\r\n");
        assert_eq!(
            sniff(&two, MAX),
            flv(req.len(), "/live/cam.flv", "token=abc")
        );
    }

    #[test]
    fn bare_line_feeds_and_http_1_0_are_served_too() {
        let req = b"GET /live/a.flv HTTP/1.0\n\n";
        assert_eq!(sniff(req, MAX), flv(req.len(), "/live/a.flv", ""));
    }

    #[test]
    fn everything_else_goes_to_hyper_as_soon_as_the_line_says_so() {
        for req in [
            &b"HEAD /live/a.flv HTTP/1.1\r\n"[..],
            b"GET /live/a.m3u8 HTTP/1.1\r\n",
            b"GET /api/streams HTTP/1.1\r\n",
            b"GET /live/a/b.flv HTTP/1.1\r\n",
            b"GET /live/../a.flv HTTP/1.1\r\n",
            b"GET http://host/live/a.flv HTTP/1.1\r\n",
            b"GET /live/a.flv HTTP/2.0\r\n",
            b"GET /send/t.flv HTTP/1.1\r\n",
            b"GET /recordings/t.flv HTTP/1.1\r\n",
            b"GET /api/t.flv HTTP/1.1\r\n",
            b"GET /live/a.flv\r\n",
            b"POST /whep/live/a HTTP/1.1\r\n",
            b"PRI * HTTP/2.0\r\n",
            b"\xff\xfe\r\n",
        ] {
            assert_eq!(
                sniff(req, MAX),
                Sniff::Hyper,
                "{:?}",
                String::from_utf8_lossy(req)
            );
        }
        // A partial line that cannot become a GET does not wait for its end.
        assert_eq!(sniff(b"POS", MAX), Sniff::Hyper);
        assert_eq!(sniff(b"GE", MAX), Sniff::NeedMore);
    }

    #[test]
    fn a_head_past_the_limit_or_with_a_body_goes_to_hyper() {
        let mut long = b"GET /live/a.flv HTTP/1.1\r\nX-Pad: ".to_vec();
        long.resize(MAX + 10, b'a');
        assert_eq!(sniff(&long, MAX), Sniff::Hyper);
        let mut no_line_end = b"GET /live/".to_vec();
        no_line_end.resize(MAX, b'a');
        assert_eq!(sniff(&no_line_end, MAX), Sniff::Hyper);
        let body = b"GET /live/a.flv HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(sniff(body, MAX), Sniff::Hyper);
        let chunked = b"GET /live/a.flv HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(sniff(chunked, MAX), Sniff::Hyper);
        let zero = b"GET /live/a.flv HTTP/1.1\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(sniff(zero, MAX), flv(zero.len(), "/live/a.flv", ""));
        let bad_header = b"GET /live/a.flv HTTP/1.1\r\nno colon here\r\n\r\n";
        assert_eq!(sniff(bad_header, MAX), Sniff::Hyper);
    }

    #[test]
    fn heads_close_the_connection_and_give_lengths() {
        let mut res = Response::new(bytes::Bytes::from_static(b"no such stream\n"));
        *res.status_mut() = StatusCode::NOT_FOUND;
        res.headers_mut()
            .insert("content-type", "text/plain".parse().unwrap());
        assert_eq!(
            encode_full(&res),
            b"HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\ncontent-length: 15\r\n\
              connection: close\r\n\r\nno such stream\n"
        );
        let live = Response::new(());
        assert_eq!(
            encode_head(&live, None),
            b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n"
        );
    }
}
