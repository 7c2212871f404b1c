//! A deliberately minimal, blocking RTMP client for sending exactly the bytes a test
//! wants (well-formed or not) and watching how the server answers.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use onair_server::rtmp::chunk::encode_message;
use rml_amf0::Amf0Value;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};

pub struct RawRtmp {
    pub s: TcpStream,
    pub received: Vec<u8>,
}

impl RawRtmp {
    pub fn connect(addr: SocketAddr) -> RawRtmp {
        Self::over(TcpStream::connect(addr).expect("connect rtmp"))
    }

    /// A client on an established connection (see `super::connect_from`).
    pub fn over(s: TcpStream) -> RawRtmp {
        s.set_nodelay(true).unwrap();
        RawRtmp {
            s,
            received: Vec::new(),
        }
    }

    pub fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.s.write_all(bytes)
    }

    /// A real client handshake (C0+C1, then C2).
    pub fn handshake(&mut self) {
        let mut hs = Handshake::new(PeerType::Client);
        let c0c1 = hs.generate_outbound_p0_and_p1().unwrap();
        self.s.write_all(&c0c1).unwrap();
        self.s
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 8192];
        loop {
            let n = self.s.read(&mut buf).expect("handshake read");
            assert!(n > 0, "server closed during handshake");
            match hs.process_bytes(&buf[..n]).expect("handshake") {
                HandshakeProcessResult::InProgress { response_bytes } => {
                    self.s.write_all(&response_bytes).unwrap()
                }
                HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                } => {
                    self.s.write_all(&response_bytes).unwrap();
                    self.received.extend_from_slice(&remaining_bytes);
                    return;
                }
            }
        }
    }

    /// One message, chunked at the initial 128-byte chunk size.
    pub fn message(
        &mut self,
        csid: u32,
        type_id: u8,
        stream_id: u32,
        timestamp: u32,
        payload: &[u8],
    ) {
        let mut out = BytesMut::new();
        encode_message(&mut out, csid, type_id, stream_id, timestamp, payload, 128);
        let _ = self.s.write_all(&out);
    }

    pub fn command(&mut self, stream_id: u32, values: Vec<Amf0Value>) {
        let payload = rml_amf0::serialize(&values).unwrap();
        self.message(3, 20, stream_id, 0, &payload);
    }

    pub fn connect_app(&mut self, app: &str) {
        let mut obj = HashMap::new();
        obj.insert("app".to_string(), Amf0Value::Utf8String(app.into()));
        obj.insert(
            "tcUrl".to_string(),
            Amf0Value::Utf8String(format!("rtmp://127.0.0.1/{app}")),
        );
        self.command(
            0,
            vec![s("connect"), Amf0Value::Number(1.0), Amf0Value::Object(obj)],
        );
        self.command(
            0,
            vec![s("createStream"), Amf0Value::Number(2.0), Amf0Value::Null],
        );
    }

    pub fn publish(&mut self, name: &str) {
        self.command(
            1,
            vec![
                s("publish"),
                Amf0Value::Number(3.0),
                Amf0Value::Null,
                s(name),
                s("live"),
            ],
        );
    }

    pub fn play(&mut self, name: &str) {
        self.command(
            1,
            vec![s("play"), Amf0Value::Number(3.0), Amf0Value::Null, s(name)],
        );
    }

    /// Reads until the server closes; Err if it is still open after `limit`.
    pub fn read_until_closed(&mut self, limit: Duration) -> Result<&[u8], StillOpen> {
        let deadline = Instant::now() + limit;
        let mut buf = [0u8; 65536];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(StillOpen(limit));
            }
            self.s
                .set_read_timeout(Some(left.min(Duration::from_millis(200))))
                .unwrap();
            match self.s.read(&mut buf) {
                Ok(0) => return Ok(&self.received),
                Ok(n) => self.received.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                // A reset is a close too.
                Err(_) => return Ok(&self.received),
            }
        }
    }

    /// Reads until `text` arrived (true), the server closed or `limit` passed (false).
    pub fn wait_for(&mut self, text: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut buf = [0u8; 65536];
        while !self.saw(text) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.s
                .set_read_timeout(Some(left.min(Duration::from_millis(200))))
                .unwrap();
            match self.s.read(&mut buf) {
                Ok(0) => return self.saw(text),
                Ok(n) => self.received.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return self.saw(text),
            }
        }
        true
    }

    pub fn saw(&self, text: &str) -> bool {
        self.received
            .windows(text.len())
            .any(|w| w == text.as_bytes())
    }
}

pub fn s(v: &str) -> Amf0Value {
    Amf0Value::Utf8String(v.into())
}

/// The server kept a connection open past the limit the test gave it.
#[derive(Debug)]
pub struct StillOpen(pub Duration);

impl std::fmt::Display for StillOpen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "still open after {:?}", self.0)
    }
}
