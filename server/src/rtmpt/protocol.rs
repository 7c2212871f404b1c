//! The RTMPT protocol, sans-IO: request paths to commands, session ids, the per-session
//! order of request numbers, the polling-interval byte that opens every reply, and the
//! table of sessions with their idle deadlines. No socket, no clock (time is a parameter),
//! no task: the HTTP glue in `super` moves the bytes.
//!
//! As Red5 and FFmpeg's `rtmphttp.c` speak it: `POST /open/1` answers a session id and a
//! newline; then `POST /send/{id}/{n}` (body: RTMP bytes), `/idle/{id}/{n}` (body ignored)
//! and `/close/{id}/{n}`, with `n` counting up by one per request from 0 (FFmpeg) or 1
//! (Flash). Each reply is one polling-interval byte followed by the RTMP bytes the server
//! has for the client. `/fcs/ident2` is answered 404, as Red5 does without an ident.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The content type of every RTMPT request and reply.
pub const CONTENT_TYPE: &str = "application/x-fcs";

/// Longest session id a client accepts: FFmpeg keeps it in 64 bytes with its terminator.
pub const MAX_ID_LEN: usize = 63;

/// The polling-interval byte: 1 while bytes flow, rising by one per empty reply after
/// `POLL_EMPTY_BEFORE_SLOWER` of them, up to `POLL_MAX` (Red5 and FMS stay within 0x21).
pub const POLL_MIN: u8 = 1;
pub const POLL_MAX: u8 = 0x21;
pub const POLL_EMPTY_BEFORE_SLOWER: u32 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// `/fcs/ident2`: Flash asks who the server is before opening.
    Ident,
    /// `/open/1`: a new session.
    Open,
    /// `/send/{id}/{n}`: RTMP bytes from the client; the reply carries the server's.
    Send,
    /// `/idle/{id}/{n}`: a poll for the server's bytes.
    Idle,
    /// `/close/{id}/{n}`: the client is done.
    Close,
}

impl Command {
    pub fn name(self) -> &'static str {
        match self {
            Command::Ident => "ident",
            Command::Open => "open",
            Command::Send => "send",
            Command::Idle => "idle",
            Command::Close => "close",
        }
    }
}

/// One parsed RTMPT request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestPath<'a> {
    pub command: Command,
    /// The session id and request number (none for `Ident` and `Open`).
    pub session: Option<(&'a str, u64)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("RTMPT path {0} is not /send|idle|close/{{session}}/{{number}}")]
    Malformed(&'static str),
    #[error("RTMPT session id is not 1 to {MAX_ID_LEN} letters and digits")]
    BadId,
    #[error("RTMPT request number is not a decimal number")]
    BadNumber,
}

/// The first path segments that belong to RTMPT; any path under them is RTMPT's, so these
/// fixed routes win over `/{app}/{stream}` (and the names are reserved as apps).
pub const PREFIXES: [&str; 5] = ["fcs", "open", "send", "idle", "close"];

/// `None` when `path` is not under an RTMPT prefix; otherwise the request or why it is bad.
pub fn parse_path(path: &str) -> Option<Result<RequestPath<'_>, PathError>> {
    let rest = path.strip_prefix('/')?;
    let (first, tail) = rest.split_once('/').unwrap_or((rest, ""));
    if !PREFIXES.contains(&first) {
        return None;
    }
    let with_session = |command, what| -> Result<RequestPath<'_>, PathError> {
        let (id, n) = tail.split_once('/').ok_or(PathError::Malformed(what))?;
        if id.is_empty() || id.len() > MAX_ID_LEN || !id.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(PathError::BadId);
        }
        if n.is_empty() || n.len() > 19 || !n.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PathError::BadNumber);
        }
        let n = n.parse().map_err(|_| PathError::BadNumber)?;
        Ok(RequestPath {
            command,
            session: Some((id, n)),
        })
    };
    Some(match first {
        "fcs" if tail == "ident2" || tail == "ident" => Ok(RequestPath {
            command: Command::Ident,
            session: None,
        }),
        "fcs" => Err(PathError::Malformed("/fcs/ident2")),
        "open" if tail == "1" => Ok(RequestPath {
            command: Command::Open,
            session: None,
        }),
        "open" => Err(PathError::Malformed("/open/1")),
        "send" => with_session(Command::Send, "/send"),
        "idle" => with_session(Command::Idle, "/idle"),
        _ => with_session(Command::Close, "/close"),
    })
}

/// A session id from 16 random bytes: 32 hex digits, unguessable, so that nobody else can
/// feed or read a session.
pub fn session_id(random: [u8; 16]) -> String {
    random.iter().map(|b| format!("{b:02x}")).collect()
}

/// The body of the `/open/1` reply.
pub fn open_reply(id: &str) -> Vec<u8> {
    format!("{id}\n").into_bytes()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SeqError {
    #[error("RTMPT request number {got} was already used (expected {expected})")]
    Replayed { got: u64, expected: u64 },
    #[error("RTMPT request number {got} skips ahead (expected {expected})")]
    OutOfOrder { got: u64, expected: u64 },
}

/// The order of one session's request numbers: the first is 0 or 1, each next one is the
/// previous plus one. A gap means lost RTMP bytes and a repeat means bytes fed twice;
/// either breaks the RTMP stream, so both end the session.
#[derive(Debug, Clone, Default)]
pub struct Sequence {
    next: Option<u64>,
}

impl Sequence {
    pub fn accept(&mut self, n: u64) -> Result<(), SeqError> {
        let expected = self.next.unwrap_or(0);
        match self.next {
            None if n <= 1 => {}
            Some(next) if n == next => {}
            Some(next) if n < next => return Err(SeqError::Replayed { got: n, expected }),
            _ => return Err(SeqError::OutOfOrder { got: n, expected }),
        }
        self.next = Some(n + 1);
        Ok(())
    }
}

/// The polling-interval byte of each reply: how long the client may wait before its next
/// poll. It stays at `POLL_MIN` while bytes flow and backs off on a run of empty replies.
#[derive(Debug, Clone)]
pub struct PollInterval {
    empty_run: u32,
    value: u8,
}

impl Default for PollInterval {
    fn default() -> Self {
        Self {
            empty_run: 0,
            value: POLL_MIN,
        }
    }
}

impl PollInterval {
    /// The byte for a reply that carries `data_len` bytes after it.
    pub fn next(&mut self, data_len: usize) -> u8 {
        if data_len > 0 {
            self.empty_run = 0;
            self.value = POLL_MIN;
        } else {
            self.empty_run = self.empty_run.saturating_add(1);
            if self.empty_run > POLL_EMPTY_BEFORE_SLOWER && self.value < POLL_MAX {
                self.value += 1;
            }
        }
        self.value
    }
}

/// A `/send` or `/idle` reply: the polling byte, then the server's bytes.
pub fn reply(poll: u8, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + data.len());
    out.push(poll);
    out.extend_from_slice(data);
    out
}

/// The reply to `/close`: a lone zero byte, as Red5 answers.
pub const CLOSE_REPLY: [u8; 1] = [0];

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("the server already holds its limit of {0} RTMPT sessions")]
    TooMany(usize),
    #[error("session id already in use")]
    IdTaken,
}

/// The live sessions by id, each with the time of its last request. Bounded by `max`.
#[derive(Debug)]
pub struct Table<T> {
    max: usize,
    sessions: HashMap<String, (T, Instant)>,
}

impl<T: Clone> Table<T> {
    pub fn new(max: usize) -> Self {
        Self {
            max,
            sessions: HashMap::new(),
        }
    }

    pub fn set_max(&mut self, max: usize) {
        self.max = max;
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    pub fn has_room(&self) -> Result<(), OpenError> {
        if self.sessions.len() >= self.max {
            return Err(OpenError::TooMany(self.max));
        }
        Ok(())
    }

    pub fn insert(&mut self, id: String, value: T, now: Instant) -> Result<(), OpenError> {
        self.has_room()?;
        if self.sessions.contains_key(&id) {
            return Err(OpenError::IdTaken);
        }
        self.sessions.insert(id, (value, now));
        Ok(())
    }

    /// The session `id`, its last-request time moved to `now`.
    pub fn touch(&mut self, id: &str, now: Instant) -> Option<T> {
        let (value, seen) = self.sessions.get_mut(id)?;
        *seen = now;
        Some(value.clone())
    }

    pub fn remove(&mut self, id: &str) -> Option<T> {
        self.sessions.remove(id).map(|(v, _)| v)
    }

    /// Takes out every session with no request for `idle` or longer before `now`.
    pub fn take_idle(&mut self, now: Instant, idle: Duration) -> Vec<(String, T)> {
        let gone: Vec<String> = self
            .sessions
            .iter()
            .filter(|(_, (_, seen))| now.saturating_duration_since(*seen) >= idle)
            .map(|(id, _)| id.clone())
            .collect();
        gone.into_iter()
            .filter_map(|id| self.sessions.remove(&id).map(|(v, _)| (id, v)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(path: &str) -> RequestPath<'_> {
        parse_path(path).unwrap().unwrap()
    }

    #[test]
    fn paths_of_every_command() {
        assert_eq!(ok("/fcs/ident2").command, Command::Ident);
        assert_eq!(ok("/open/1").command, Command::Open);
        assert_eq!(ok("/open/1").session, None);
        let r = ok("/send/3fa9c0/0");
        assert_eq!((r.command, r.session), (Command::Send, Some(("3fa9c0", 0))));
        let r = ok("/idle/ABC123/17");
        assert_eq!(
            (r.command, r.session),
            (Command::Idle, Some(("ABC123", 17)))
        );
        let r = ok("/close/x/18");
        assert_eq!((r.command, r.session), (Command::Close, Some(("x", 18))));
    }

    #[test]
    fn other_paths_are_not_rtmpt() {
        for p in [
            "/live/t.flv",
            "/sender/x/1",
            "/api/streams",
            "/",
            "",
            "/openx",
        ] {
            assert!(parse_path(p).is_none(), "{p}");
        }
    }

    #[test]
    fn bad_rtmpt_paths_are_errors_not_other_routes() {
        let err = |p: &str| parse_path(p).unwrap().unwrap_err();
        assert_eq!(err("/open/2"), PathError::Malformed("/open/1"));
        assert_eq!(err("/open"), PathError::Malformed("/open/1"));
        assert_eq!(err("/fcs/x"), PathError::Malformed("/fcs/ident2"));
        assert_eq!(err("/send/abc"), PathError::Malformed("/send"));
        assert_eq!(err("/send//1"), PathError::BadId);
        assert_eq!(err("/send/a.b/1"), PathError::BadId);
        assert_eq!(
            err(&format!("/idle/{}/1", "a".repeat(64))),
            PathError::BadId
        );
        assert_eq!(err("/idle/a/"), PathError::BadNumber);
        assert_eq!(err("/idle/a/-1"), PathError::BadNumber);
        assert_eq!(err("/idle/a/1/2"), PathError::BadNumber);
        assert_eq!(err("/idle/a/99999999999999999999"), PathError::BadNumber);
        // A stream named like a session under a reserved app stays RTMPT's.
        assert_eq!(err("/send/t.flv"), PathError::Malformed("/send"));
    }

    #[test]
    fn session_ids_are_hex_of_the_random_bytes() {
        let id = session_id([
            0x00, 0x01, 0xab, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ]);
        assert_eq!(id, "0001abff000000000000000000000010");
        assert!(id.len() <= MAX_ID_LEN);
        assert_eq!(open_reply("ab12"), b"ab12\n".to_vec());
        // An id it hands out parses back.
        let path = format!("/idle/{id}/1");
        assert_eq!(ok(&path).session, Some((id.as_str(), 1)));
    }

    #[test]
    fn sequence_from_zero_or_one_then_by_one() {
        let mut s = Sequence::default();
        assert_eq!(s.accept(0), Ok(()));
        assert_eq!(s.accept(1), Ok(()));
        assert_eq!(s.accept(2), Ok(()));
        assert_eq!(
            s.accept(2),
            Err(SeqError::Replayed {
                got: 2,
                expected: 3
            })
        );
        assert_eq!(
            s.accept(0),
            Err(SeqError::Replayed {
                got: 0,
                expected: 3
            })
        );
        assert_eq!(
            s.accept(5),
            Err(SeqError::OutOfOrder {
                got: 5,
                expected: 3
            })
        );
        assert_eq!(s.accept(3), Ok(()));

        let mut flash = Sequence::default();
        assert_eq!(flash.accept(1), Ok(()));
        assert_eq!(flash.accept(2), Ok(()));
        let mut late = Sequence::default();
        assert_eq!(
            late.accept(7),
            Err(SeqError::OutOfOrder {
                got: 7,
                expected: 0
            })
        );
    }

    #[test]
    fn polling_byte_backs_off_on_empty_replies_and_resets_on_data() {
        let mut p = PollInterval::default();
        for _ in 0..POLL_EMPTY_BEFORE_SLOWER {
            assert_eq!(p.next(0), POLL_MIN);
        }
        assert_eq!(p.next(0), POLL_MIN + 1);
        assert_eq!(p.next(0), POLL_MIN + 2);
        for _ in 0..100 {
            p.next(0);
        }
        assert_eq!(p.next(0), POLL_MAX);
        assert_eq!(p.next(10), POLL_MIN);
        assert_eq!(p.next(0), POLL_MIN);
    }

    #[test]
    fn replies_start_with_the_polling_byte() {
        assert_eq!(reply(1, &[3, 0xde, 0xad]), vec![1, 3, 0xde, 0xad]);
        assert_eq!(reply(9, &[]), vec![9]);
        assert_eq!(CLOSE_REPLY, [0]);
    }

    #[test]
    fn table_is_bounded_and_forgets_idle_sessions() {
        let t0 = Instant::now();
        let mut t: Table<u32> = Table::new(2);
        t.insert("a".into(), 1, t0).unwrap();
        assert_eq!(t.insert("a".into(), 9, t0), Err(OpenError::IdTaken));
        t.insert("b".into(), 2, t0).unwrap();
        assert_eq!(t.insert("c".into(), 3, t0), Err(OpenError::TooMany(2)));
        let idle = Duration::from_secs(10);
        // `a` is used at 6 s; at 12 s only `b` has been idle for 10 s.
        assert_eq!(t.touch("a", t0 + Duration::from_secs(6)), Some(1));
        assert_eq!(t.touch("zz", t0), None);
        let gone = t.take_idle(t0 + Duration::from_secs(12), idle);
        assert_eq!(gone, vec![("b".to_string(), 2)]);
        assert_eq!(t.len(), 1);
        assert!(t.take_idle(t0 + Duration::from_secs(15), idle).is_empty());
        assert_eq!(t.take_idle(t0 + Duration::from_secs(16), idle).len(), 1);
        assert!(t.is_empty());
        t.insert("c".into(), 3, t0).unwrap();
        assert_eq!(t.remove("c"), Some(3));
        assert_eq!(t.remove("c"), None);
    }
}
