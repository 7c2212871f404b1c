//! The capture wall clock of a video frame as an AMF0 script data message, `onFrameTime`,
//! for codecs that have no SEI (VP9, AV1): the pusher sends one right after each video
//! frame, at the frame's timestamp; the server relays it in order with the frames; the
//! player reads it (mpegts.js `SCRIPTDATA_ARRIVED`). Pure: bytes in, values out.
//!
//! Layout: AMF0 string `onFrameTime`, then an AMF0 object with three numbers, in this
//! order: `wallclockUs` (capture time, microseconds since the Unix epoch, UTC: exact in a
//! double until the year 2255), `frame` (the pusher's frame counter, wrapping at 2^32) and
//! `pts` (the frame's presentation time in ms on the pusher's timeline). mpegts.js gives
//! script data without the tag's timestamp, so the message carries the frame's time itself.

use std::collections::HashMap;

use bytes::{BufMut, Bytes, BytesMut};
use rml_amf0::Amf0Value;

use crate::metadata::decode_amf0;

/// The message name.
pub const NAME: &str = "onFrameTime";

/// AMF0 string marker, the name's length and the name: how every message starts.
const PREFIX: &[u8] = b"\x02\x00\x0bonFrameTime";

/// The length of every message `encode` builds.
pub const ENCODED_LEN: usize = PREFIX.len() + 1 + (2 + 11 + 9) + (2 + 5 + 9) + (2 + 3 + 9) + 3;

/// What one message carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameTime {
    pub wallclock_us: u64,
    pub frame: u32,
    pub pts_ms: u64,
}

/// The AMF0 body (an RTMP data message's payload, an FLV script tag's body).
pub fn encode(t: FrameTime) -> Bytes {
    let mut out = BytesMut::with_capacity(ENCODED_LEN);
    out.put_slice(PREFIX);
    out.put_u8(0x03);
    for (key, value) in [
        ("wallclockUs", t.wallclock_us as f64),
        ("frame", t.frame as f64),
        ("pts", t.pts_ms as f64),
    ] {
        out.put_u16(key.len() as u16);
        out.put_slice(key.as_bytes());
        out.put_u8(0x00);
        out.put_f64(value);
    }
    out.put_slice(&[0, 0, 0x09]);
    out.freeze()
}

/// True when the body is an `onFrameTime` message (by its name; `parse` checks the rest).
pub fn is_frame_time(body: &[u8]) -> bool {
    body.starts_with(PREFIX)
}

/// The clock in an `onFrameTime` body; `None` for any other or malformed body (nesting
/// deeper than `max_depth`, a missing or non-numeric field).
pub fn parse(body: &[u8], max_depth: usize) -> Option<FrameTime> {
    if !is_frame_time(body) {
        return None;
    }
    let values = decode_amf0(body, max_depth).ok()?;
    let props: &HashMap<String, Amf0Value> = match values.get(1)? {
        Amf0Value::Object(p) => p,
        _ => return None,
    };
    let num = |k: &str| match props.get(k) {
        Some(Amf0Value::Number(n)) if n.is_finite() && *n >= 0.0 => Some(*n),
        _ => None,
    };
    Some(FrameTime {
        wallclock_us: num("wallclockUs")? as u64,
        frame: num("frame")? as u32,
        pts_ms: num("pts")? as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_the_documented_bytes_and_parses_back() {
        let t = FrameTime {
            wallclock_us: 1_764_614_400_123_456,
            frame: 42,
            pts_ms: 1400,
        };
        let b = encode(t);
        assert_eq!(b.len(), ENCODED_LEN);
        let mut want = b"\x02\x00\x0bonFrameTime\x03".to_vec();
        want.extend_from_slice(b"\x00\x0bwallclockUs\x00");
        want.extend_from_slice(&1_764_614_400_123_456f64.to_be_bytes());
        want.extend_from_slice(b"\x00\x05frame\x00");
        want.extend_from_slice(&42f64.to_be_bytes());
        want.extend_from_slice(b"\x00\x03pts\x00");
        want.extend_from_slice(&1400f64.to_be_bytes());
        want.extend_from_slice(&[0, 0, 9]);
        assert_eq!(&b[..], &want[..]);
        assert_eq!(parse(&b, 8), Some(t));
        // Microseconds since 1970 stay exact in a double.
        let max = FrameTime {
            wallclock_us: (1 << 53) - 1,
            frame: u32::MAX,
            pts_ms: 0,
        };
        assert_eq!(parse(&encode(max), 8), Some(max));
    }

    #[test]
    fn other_and_malformed_bodies_are_refused() {
        let b = encode(FrameTime {
            wallclock_us: 1,
            frame: 2,
            pts_ms: 3,
        });
        assert!(is_frame_time(&b));
        assert_eq!(parse(&b[..b.len() - 4], 8), None, "truncated");
        let meta = b"\x02\x00\x0aonMetaData\x03\x00\x00\x09";
        assert!(!is_frame_time(meta));
        assert_eq!(parse(meta, 8), None);
        // The right name, but a string where a number belongs.
        let mut wrong = PREFIX.to_vec();
        wrong.extend_from_slice(b"\x03\x00\x03pts\x02\x00\x01x\x00\x00\x09");
        assert_eq!(parse(&wrong, 8), None);
        assert_eq!(parse(&[], 8), None);
    }
}
