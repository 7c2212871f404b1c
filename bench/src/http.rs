//! The little HTTP/1.1 client the FLV and HLS viewers need: a GET request (one-shot or
//! keep-alive), the response head, and a push-style decoder for the chunked transfer coding
//! with every line length bounded. The keep-alive connection that uses them is `http_conn`.

use std::fmt;

/// Longest response head accepted.
pub const MAX_HEAD: usize = 16 * 1024;
/// Longest chunk-size or trailer line accepted.
const MAX_LINE: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    BadStatusLine(String),
    BadHeader(String),
    BadChunkSize(String),
    LineTooLong,
    MissingCrlf(u8),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadStatusLine(l) => write!(f, "bad HTTP status line {l:?}"),
            Self::BadHeader(l) => write!(f, "bad HTTP header line {l:?}"),
            Self::BadChunkSize(l) => write!(f, "bad chunk size line {l:?}"),
            Self::LineTooLong => write!(f, "chunk size or trailer line over {MAX_LINE} bytes"),
            Self::MissingCrlf(b) => write!(f, "expected CRLF after chunk data, got byte {b:#04x}"),
        }
    }
}

impl std::error::Error for HttpError {}

pub fn get_request(host: &str, path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: onair-bench\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    )
}

/// A GET that leaves the connection open for the next request (HTTP/1.1 persistence).
pub fn get_request_keep_alive(host: &str, path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: onair-bench\r\nAccept: */*\r\n\r\n")
}

/// A POST of `body` that closes the connection after the response.
pub fn post_request(host: &str, path: &str, content_type: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: onair-bench\r\nAccept: */*\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// The value of the first header `name` (any case) in a response head's text.
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n").skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Index just past the blank line that ends the head, if it has arrived.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub chunked: bool,
    pub content_length: Option<u64>,
    /// The server closes the connection after this response (`Connection: close`, or
    /// HTTP/1.0 without `Connection: keep-alive`).
    pub close: bool,
}

pub fn parse_head(head: &[u8]) -> Result<ResponseHead, HttpError> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let (status, http10) = match (parts.next(), parts.next()) {
        (Some(v), Some(code)) if v.starts_with("HTTP/1.") => (
            code.parse::<u16>()
                .map_err(|_| HttpError::BadStatusLine(status_line.to_string()))?,
            v == "HTTP/1.0",
        ),
        _ => return Err(HttpError::BadStatusLine(status_line.to_string())),
    };
    let mut out = ResponseHead {
        status,
        chunked: false,
        content_length: None,
        close: http10,
    };
    for line in lines.take_while(|l| !l.is_empty()) {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| HttpError::BadHeader(line.to_string()))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            out.chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("chunked"));
        } else if name.eq_ignore_ascii_case("content-length") {
            out.content_length = Some(
                value
                    .parse()
                    .map_err(|_| HttpError::BadHeader(line.to_string()))?,
            );
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    out.close = true;
                } else if token.eq_ignore_ascii_case("keep-alive") && http10 {
                    out.close = false;
                }
            }
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    SizeLine,
    Data(u64),
    DataCr,
    DataLf,
    Trailer,
    Done,
}

/// Decodes `Transfer-Encoding: chunked` as bytes arrive, handing out payload slices.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: State,
    line: Vec<u8>,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    pub fn new() -> Self {
        Self {
            state: State::SizeLine,
            line: Vec::new(),
        }
    }

    /// True once the last (zero-size) chunk and its trailer have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consumes `input`, calling `out` with each run of payload bytes.
    pub fn feed(&mut self, mut input: &[u8], mut out: impl FnMut(&[u8])) -> Result<(), HttpError> {
        while !input.is_empty() {
            match self.state {
                State::Data(remaining) => {
                    let n = (remaining.min(input.len() as u64)) as usize;
                    out(&input[..n]);
                    input = &input[n..];
                    self.state = if remaining == n as u64 {
                        State::DataCr
                    } else {
                        State::Data(remaining - n as u64)
                    };
                }
                State::DataCr | State::DataLf => {
                    let b = input[0];
                    input = &input[1..];
                    self.state = match (self.state, b) {
                        (State::DataCr, b'\r') => State::DataLf,
                        (_, b'\n') => State::SizeLine,
                        _ => return Err(HttpError::MissingCrlf(b)),
                    };
                }
                State::SizeLine | State::Trailer => {
                    let Some(nl) = input.iter().position(|&b| b == b'\n') else {
                        self.push_line(input)?;
                        return Ok(());
                    };
                    self.push_line(&input[..nl])?;
                    input = &input[nl + 1..];
                    let line = std::mem::take(&mut self.line);
                    let line = line.strip_suffix(b"\r").unwrap_or(&line);
                    self.state = if self.state == State::Trailer {
                        if line.is_empty() {
                            State::Done
                        } else {
                            State::Trailer
                        }
                    } else {
                        match parse_chunk_size(line)? {
                            0 => State::Trailer,
                            n => State::Data(n),
                        }
                    };
                }
                State::Done => return Ok(()),
            }
        }
        Ok(())
    }

    fn push_line(&mut self, part: &[u8]) -> Result<(), HttpError> {
        if self.line.len() + part.len() > MAX_LINE {
            return Err(HttpError::LineTooLong);
        }
        self.line.extend_from_slice(part);
        Ok(())
    }
}

fn parse_chunk_size(line: &[u8]) -> Result<u64, HttpError> {
    let bad = || HttpError::BadChunkSize(String::from_utf8_lossy(line).into_owned());
    let digits = line.split(|&b| b == b';').next().unwrap_or_default();
    let digits = std::str::from_utf8(digits).map_err(|_| bad())?.trim();
    if digits.is_empty() || digits.len() > 15 {
        return Err(bad());
    }
    u64::from_str_radix(digits, 16).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_pieces(input: &[u8], piece: usize) -> Result<(Vec<u8>, bool), HttpError> {
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        for p in input.chunks(piece) {
            d.feed(p, |s| out.extend_from_slice(s))?;
        }
        Ok((out, d.is_done()))
    }

    #[test]
    fn post_and_header_lookup() {
        let r = post_request("h:1", "/a/b/whep", "application/sdp", "v=0\r\n");
        assert!(r.starts_with("POST /a/b/whep HTTP/1.1\r\nHost: h:1\r\n"));
        assert!(r.contains("Content-Type: application/sdp\r\nContent-Length: 5\r\n"));
        assert!(r.ends_with("\r\n\r\nv=0\r\n"));
        let head = "HTTP/1.1 201 Created\r\nContent-Type: application/sdp\r\nlocation: /a/b/whep/x1\r\n\r\n";
        assert_eq!(header(head, "Location"), Some("/a/b/whep/x1"));
        assert_eq!(header(head, "ETag"), None);
        // The status line is not a header, even with a colon in it.
        assert_eq!(
            header("HTTP/1.1 201 Location: no\r\n\r\n", "HTTP/1.1 201 Location"),
            None
        );
    }

    #[test]
    fn chunked_any_split() {
        let input =
            b"4\r\nWiki\r\n5;ext=1\r\npedia\r\nE \r\n in\r\n\r\nchunks.\r\n0\r\nX-T: 1\r\n\r\n";
        for piece in [1, 2, 3, 7, input.len()] {
            let (out, done) = decode_in_pieces(input, piece).unwrap();
            assert_eq!(out, b"Wikipedia in\r\n\r\nchunks.", "piece {piece}");
            assert!(done);
        }
    }

    #[test]
    fn chunked_streaming_and_bare_lf() {
        let (out, done) = decode_in_pieces(b"3\nabc\n2\r\nde", 2).unwrap();
        assert_eq!(out, b"abcde");
        assert!(!done);
    }

    #[test]
    fn chunked_errors() {
        assert!(matches!(
            decode_in_pieces(b"zz\r\n", 1),
            Err(HttpError::BadChunkSize(_))
        ));
        assert!(matches!(
            decode_in_pieces(b"\r\n", 1),
            Err(HttpError::BadChunkSize(_))
        ));
        assert!(matches!(
            decode_in_pieces(b"1ffffffffffffffff\r\n", 4),
            Err(HttpError::BadChunkSize(_))
        ));
        assert_eq!(
            decode_in_pieces(b"2\r\nabX", 1),
            Err(HttpError::MissingCrlf(b'X'))
        );
        assert_eq!(
            decode_in_pieces(&[b'1'; 2000], 100),
            Err(HttpError::LineTooLong)
        );
    }

    #[test]
    fn response_heads() {
        let buf = b"HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\nTransfer-Encoding: gzip, Chunked\r\n\r\nFLV";
        let end = head_end(buf).unwrap();
        assert_eq!(&buf[end..], b"FLV");
        let h = parse_head(&buf[..end]).unwrap();
        assert_eq!(
            h,
            ResponseHead {
                status: 200,
                chunked: true,
                content_length: None,
                close: false,
            }
        );
        let h = parse_head(b"HTTP/1.0 404 Not Found\r\ncontent-length: 9\r\n\r\n").unwrap();
        assert_eq!(
            (h.status, h.content_length, h.chunked, h.close),
            (404, Some(9), false, true)
        );
        let h = parse_head(b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\n\r\n").unwrap();
        assert!(!h.close);
        let h = parse_head(b"HTTP/1.1 200 OK\r\nconnection: upgrade, close\r\n\r\n").unwrap();
        assert!(h.close);
        assert!(parse_head(b"ICY 200 OK\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nnocolon\r\n\r\n").is_err());
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\n"), None);
        assert!(get_request("h:1", "/a.flv").starts_with("GET /a.flv HTTP/1.1\r\nHost: h:1\r\n"));
        let ka = get_request_keep_alive("h:1", "/a.m3u8");
        assert!(ka.starts_with("GET /a.m3u8 HTTP/1.1\r\nHost: h:1\r\n"));
        assert!(!ka.contains("Connection") && ka.ends_with("\r\n\r\n"));
    }
}
