//! One keep-alive HTTP/1.1 connection for the HLS clients: GET after GET on the same socket,
//! reconnecting when the server closed it, each request bounded in time and head size. The
//! body is handed out as it arrives, so a segment never has to be held whole.

use crate::http::{self, ChunkedDecoder, HttpError};
use crate::target::HttpTarget;
use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

const READ_BUF: usize = 64 * 1024;

#[derive(Debug)]
pub enum GetError {
    Connect(io::Error),
    Io(io::Error),
    /// The server closed the connection; `before_response` if not a byte of the response came.
    Closed {
        before_response: bool,
    },
    Http(HttpError),
    HeadTooLong,
    Timeout(Duration),
}

impl fmt::Display for GetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect(e) => write!(f, "connect: {}", e.kind()),
            Self::Io(e) => write!(f, "i/o: {}", e.kind()),
            Self::Closed {
                before_response: true,
            } => write!(f, "closed before the response"),
            Self::Closed { .. } => write!(f, "closed mid-response"),
            Self::Http(e) => write!(f, "{e}"),
            Self::HeadTooLong => write!(f, "response head over {} bytes", http::MAX_HEAD),
            Self::Timeout(d) => write!(f, "timeout after {d:?}"),
        }
    }
}

impl std::error::Error for GetError {}

impl From<HttpError> for GetError {
    fn from(e: HttpError) -> Self {
        Self::Http(e)
    }
}

/// What a completed GET returned (the body went to the caller's callback).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body_bytes: u64,
}

pub struct HttpConn {
    target: Arc<HttpTarget>,
    sock: Option<TcpStream>,
    /// Bytes read past the end of the previous response (none from a server that does not
    /// pipeline, but kept rather than lost).
    pending: Vec<u8>,
    read_buf: Box<[u8]>,
    /// Whether the current exchange has read any byte of its response.
    responded: bool,
    /// TCP connections opened so far.
    pub connects: u64,
}

enum Framing {
    Chunked(ChunkedDecoder),
    Length(u64),
    UntilClose,
}

impl HttpConn {
    pub fn new(target: Arc<HttpTarget>) -> Self {
        Self {
            target,
            sock: None,
            pending: Vec::new(),
            read_buf: vec![0u8; READ_BUF].into_boxed_slice(),
            responded: false,
            connects: 0,
        }
    }

    /// GETs `path` within `limit`. `on_wire` gets the count of every read (head included),
    /// `on_body` the body bytes in order. On any error the connection is dropped, and the
    /// next call opens a new one; a reused connection the server had closed while idle is
    /// reopened once, within the same limit.
    pub async fn get(
        &mut self,
        path: &str,
        limit: Duration,
        mut on_wire: impl FnMut(usize),
        mut on_body: impl FnMut(&[u8]),
    ) -> Result<Response, GetError> {
        let r = timeout(limit, async {
            let reused = self.sock.is_some();
            match self.exchange(path, &mut on_wire, &mut on_body).await {
                // Nothing of a response reached the caller, so asking again is safe.
                Err(GetError::Closed { .. } | GetError::Io(_)) if reused && !self.responded => {
                    self.close();
                    self.exchange(path, &mut on_wire, &mut on_body).await
                }
                r => r,
            }
        })
        .await
        .unwrap_or(Err(GetError::Timeout(limit)));
        if r.is_err() {
            self.close();
        }
        r
    }

    fn close(&mut self) {
        self.sock = None;
        self.pending.clear();
    }

    async fn exchange(
        &mut self,
        path: &str,
        on_wire: &mut impl FnMut(usize),
        on_body: &mut impl FnMut(&[u8]),
    ) -> Result<Response, GetError> {
        self.responded = false;
        let mut sock = match self.sock.take() {
            Some(s) => s,
            None => {
                let s = TcpStream::connect(self.target.addr)
                    .await
                    .map_err(GetError::Connect)?;
                s.set_nodelay(true).map_err(GetError::Connect)?;
                self.connects += 1;
                self.pending.clear();
                s
            }
        };
        sock.write_all(http::get_request_keep_alive(&self.target.host, path).as_bytes())
            .await
            .map_err(GetError::Io)?;

        let mut buf = std::mem::take(&mut self.pending);
        let end = loop {
            if let Some(end) = http::head_end(&buf) {
                break end;
            }
            if buf.len() > http::MAX_HEAD {
                return Err(GetError::HeadTooLong);
            }
            let n = sock.read(&mut self.read_buf).await.map_err(GetError::Io)?;
            if n == 0 {
                return Err(GetError::Closed {
                    before_response: buf.is_empty(),
                });
            }
            self.responded = true;
            on_wire(n);
            buf.extend_from_slice(&self.read_buf[..n]);
        };
        let head = http::parse_head(&buf[..end])?;
        let mut framing = if head.chunked {
            Framing::Chunked(ChunkedDecoder::new())
        } else if let Some(n) = head.content_length {
            Framing::Length(n)
        } else {
            Framing::UntilClose
        };
        let mut body_bytes = 0u64;
        let mut deliver = |s: &[u8]| {
            body_bytes += s.len() as u64;
            on_body(s);
        };
        // Body bytes that came with the head, then reads until the body is complete.
        let mut rest = buf.split_off(end);
        let mut done = match &mut framing {
            Framing::Chunked(d) => {
                d.feed(&rest, &mut deliver)?;
                rest.clear();
                d.is_done()
            }
            Framing::Length(left) => {
                let n = (*left).min(rest.len() as u64) as usize;
                deliver(&rest[..n]);
                *left -= n as u64;
                rest.drain(..n);
                *left == 0
            }
            Framing::UntilClose => {
                deliver(&rest);
                rest.clear();
                false
            }
        };
        while !done {
            let n = sock.read(&mut self.read_buf).await.map_err(GetError::Io)?;
            if n == 0 {
                if matches!(framing, Framing::UntilClose) {
                    break;
                }
                return Err(GetError::Closed {
                    before_response: false,
                });
            }
            on_wire(n);
            let data = &self.read_buf[..n];
            done = match &mut framing {
                Framing::Chunked(d) => {
                    d.feed(data, &mut deliver)?;
                    d.is_done()
                }
                Framing::Length(left) => {
                    let take = (*left).min(n as u64) as usize;
                    deliver(&data[..take]);
                    *left -= take as u64;
                    rest.extend_from_slice(&data[take..]);
                    *left == 0
                }
                Framing::UntilClose => {
                    deliver(data);
                    false
                }
            };
        }
        let keep = !head.close && !matches!(framing, Framing::UntilClose);
        if keep && rest.len() <= http::MAX_HEAD {
            self.pending = rest;
            self.sock = Some(sock);
        }
        Ok(Response {
            status: head.status,
            body_bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// Serves `responses` in order on one connection per element of `conns`, recording the
    /// request lines it read.
    async fn server(listener: TcpListener, conns: Vec<Vec<&'static [u8]>>) -> Vec<String> {
        let mut lines = Vec::new();
        for responses in conns {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut req = Vec::new();
            for r in responses {
                let mut b = [0u8; 1024];
                while http::head_end(&req).is_none() {
                    let n = s.read(&mut b).await.unwrap();
                    assert!(n > 0);
                    req.extend_from_slice(&b[..n]);
                }
                let end = http::head_end(&req).unwrap();
                let head = String::from_utf8(req.drain(..end).collect()).unwrap();
                lines.push(head.lines().next().unwrap().to_string());
                // Written in two pieces, so the client sees a body split across reads.
                let (a, b) = r.split_at(r.len() / 2);
                s.write_all(a).await.unwrap();
                s.flush().await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
                s.write_all(b).await.unwrap();
            }
        }
        lines
    }

    async fn get(c: &mut HttpConn, path: &str) -> (Result<Response, GetError>, Vec<u8>, usize) {
        let mut body = Vec::new();
        let mut wire = 0;
        let r = c
            .get(
                path,
                Duration::from_secs(5),
                |n| wire += n,
                |s| body.extend_from_slice(s),
            )
            .await;
        (r, body, wire)
    }

    #[tokio::test]
    async fn keep_alive_then_reconnect_after_close() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let srv = tokio::spawn(server(
            listener,
            vec![
                vec![
                    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
                    b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nno!\r\n0\r\n\r\n",
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                ],
                vec![b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"],
            ],
        ));
        let mut c = HttpConn::new(Arc::new(HttpTarget {
            addr,
            host: addr.to_string(),
            path: "/".into(),
        }));
        let (r, body, wire) = get(&mut c, "/a.m3u8").await;
        assert_eq!(
            r.unwrap(),
            Response {
                status: 200,
                body_bytes: 5
            }
        );
        assert_eq!((body.as_slice(), wire), (&b"hello"[..], 43));
        let (r, body, _) = get(&mut c, "/b.ts").await;
        assert_eq!(r.unwrap().status, 404);
        assert_eq!(body, b"no!");
        let (r, body, _) = get(&mut c, "/c.ts").await;
        assert_eq!(r.unwrap().status, 200);
        assert_eq!(body, b"ok");
        assert_eq!(c.connects, 1);
        let (r, _, _) = get(&mut c, "/d.ts").await;
        assert_eq!(r.unwrap().body_bytes, 0);
        assert_eq!(c.connects, 2);
        assert_eq!(
            srv.await.unwrap(),
            [
                "GET /a.m3u8 HTTP/1.1",
                "GET /b.ts HTTP/1.1",
                "GET /c.ts HTTP/1.1",
                "GET /d.ts HTTP/1.1"
            ]
        );
    }

    #[tokio::test]
    async fn truncated_body_and_timeout_are_errors() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let srv = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut b = [0u8; 1024];
            let _ = s.read(&mut b).await.unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
                .await
                .unwrap();
            drop(s);
            // Second connection: accept and say nothing.
            let (s, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_millis(500)).await;
            drop(s);
        });
        let mut c = HttpConn::new(Arc::new(HttpTarget {
            addr,
            host: addr.to_string(),
            path: "/".into(),
        }));
        let (r, body, _) = get(&mut c, "/x").await;
        assert!(matches!(
            r,
            Err(GetError::Closed {
                before_response: false
            })
        ));
        assert_eq!(body, b"abc");
        let r = c
            .get("/y", Duration::from_millis(100), |_| {}, |_| {})
            .await;
        assert!(matches!(r, Err(GetError::Timeout(_))), "{r:?}");
        srv.await.unwrap();
    }
}
