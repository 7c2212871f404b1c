//! The beacon a player POSTs to `/api/qoe`, parsed strictly: bytes in, a checked `Beacon`
//! or a typed error out. No clock, no socket, no hub; whether the stream exists is the
//! caller's question. Unknown fields, missing fields and out-of-range values are errors.

use serde::Deserialize;

use crate::hub::{parse_stream_name, StreamKey};

/// Largest figure in milliseconds a beacon may carry (ten minutes): an interval, a
/// latency or a stall longer than that is not a live viewer's report.
pub const MAX_MS: f64 = 600_000.0;
/// Largest |A/V offset| accepted, in ms.
pub const MAX_AV_OFFSET_MS: f64 = 60_000.0;
/// Largest count (stalls, dropped frames) in one interval.
pub const MAX_COUNT: u32 = 1_000_000;

/// Which player transport the viewer used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BeaconProtocol {
    Flv,
    Hls,
}

/// One checked beacon: counts are for the interval since that session's previous beacon.
#[derive(Debug, Clone, PartialEq)]
pub struct Beacon {
    pub stream: StreamKey,
    pub protocol: BeaconProtocol,
    /// The player's random session id (16 hex digits), kept only to count sessions.
    pub session: u64,
    pub interval_ms: f64,
    /// The player's end-to-end latency; `None` when it has no trustworthy figure.
    pub latency_ms: Option<f64>,
    pub stalls: u32,
    pub stall_ms: f64,
    pub dropped_frames: u32,
    pub av_offset_ms: Option<f64>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BeaconError {
    #[error("beacon is not the expected JSON: {0}")]
    Json(String),
    #[error("stream must be APP/NAME: {0}")]
    Stream(&'static str),
    #[error("session must be 16 hex digits")]
    Session,
    #[error("{field} out of range: {value}")]
    Range { field: &'static str, value: f64 },
}

/// The wire form. Optional figures must be present (as a number or null): a
/// `deserialize_with` makes serde require them instead of defaulting a missing one.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    stream: String,
    protocol: BeaconProtocol,
    session: String,
    interval_ms: f64,
    #[serde(deserialize_with = "Option::deserialize")]
    latency_ms: Option<f64>,
    stalls: u32,
    stall_ms: f64,
    dropped_frames: u32,
    #[serde(deserialize_with = "Option::deserialize")]
    av_offset_ms: Option<f64>,
}

fn in_range(field: &'static str, value: f64, lo: f64, hi: f64) -> Result<f64, BeaconError> {
    if value.is_finite() && (lo..=hi).contains(&value) {
        Ok(value)
    } else {
        Err(BeaconError::Range { field, value })
    }
}

fn count(field: &'static str, value: u32) -> Result<u32, BeaconError> {
    if value <= MAX_COUNT {
        Ok(value)
    } else {
        Err(BeaconError::Range {
            field,
            value: f64::from(value),
        })
    }
}

impl Beacon {
    pub fn parse(body: &[u8]) -> Result<Beacon, BeaconError> {
        let w: Wire = serde_json::from_slice(body).map_err(|e| BeaconError::Json(e.to_string()))?;
        let (app, name) = w
            .stream
            .split_once('/')
            .ok_or(BeaconError::Stream("no '/' between app and name"))?;
        let (app, app_query) = parse_stream_name(app).map_err(BeaconError::Stream)?;
        let (name, name_query) = parse_stream_name(name).map_err(BeaconError::Stream)?;
        if app_query.is_some() || name_query.is_some() {
            return Err(BeaconError::Stream("no query in a stream name"));
        }
        if w.session.len() != 16 || !w.session.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(BeaconError::Session);
        }
        let session = u64::from_str_radix(&w.session, 16).map_err(|_| BeaconError::Session)?;
        let interval_ms = in_range("interval_ms", w.interval_ms, 0.0, MAX_MS)?;
        if interval_ms <= 0.0 {
            return Err(BeaconError::Range {
                field: "interval_ms",
                value: interval_ms,
            });
        }
        Ok(Beacon {
            stream: StreamKey::new(app, name),
            protocol: w.protocol,
            session,
            interval_ms,
            latency_ms: w
                .latency_ms
                .map(|v| in_range("latency_ms", v, 0.0, MAX_MS))
                .transpose()?,
            stalls: count("stalls", w.stalls)?,
            stall_ms: in_range("stall_ms", w.stall_ms, 0.0, MAX_MS)?,
            dropped_frames: count("dropped_frames", w.dropped_frames)?,
            av_offset_ms: w
                .av_offset_ms
                .map(|v| in_range("av_offset_ms", v, -MAX_AV_OFFSET_MS, MAX_AV_OFFSET_MS))
                .transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"stream":"live/cam","protocol":"flv","session":"0123456789abcdef","interval_ms":10000,"latency_ms":812.5,"stalls":1,"stall_ms":420,"dropped_frames":3,"av_offset_ms":-12}"#;

    #[test]
    fn a_good_beacon_parses() {
        let b = Beacon::parse(GOOD.as_bytes()).unwrap();
        assert_eq!(b.stream, StreamKey::new("live", "cam"));
        assert_eq!(b.protocol, BeaconProtocol::Flv);
        assert_eq!(b.session, 0x0123_4567_89ab_cdef);
        assert_eq!(b.interval_ms, 10_000.0);
        assert_eq!(b.latency_ms, Some(812.5));
        assert_eq!((b.stalls, b.stall_ms, b.dropped_frames), (1, 420.0, 3));
        assert_eq!(b.av_offset_ms, Some(-12.0));
    }

    #[test]
    fn nulls_are_allowed_where_the_schema_says() {
        let body = GOOD
            .replace("812.5", "null")
            .replace("-12", "null")
            .replace("flv", "hls");
        let b = Beacon::parse(body.as_bytes()).unwrap();
        assert_eq!((b.latency_ms, b.av_offset_ms), (None, None));
        assert_eq!(b.protocol, BeaconProtocol::Hls);
    }

    #[test]
    fn garbage_and_wrong_shapes_are_refused() {
        for body in [
            "",
            "not json",
            "[]",
            "{}",
            "\u{0}\u{1}\u{2}",
            // missing latency_ms (must be present, even as null)
            r#"{"stream":"live/cam","protocol":"flv","session":"0123456789abcdef","interval_ms":10000,"stalls":1,"stall_ms":420,"dropped_frames":3,"av_offset_ms":null}"#,
        ] {
            assert!(
                matches!(Beacon::parse(body.as_bytes()), Err(BeaconError::Json(_))),
                "{body:?}"
            );
        }
        let unknown = GOOD.replace("\"stalls\"", "\"extra\":1,\"stalls\"");
        assert!(matches!(
            Beacon::parse(unknown.as_bytes()),
            Err(BeaconError::Json(_))
        ));
        let proto = GOOD.replace("\"flv\"", "\"rtmp\"");
        assert!(Beacon::parse(proto.as_bytes()).is_err());
        let negative = GOOD.replace("\"stalls\":1", "\"stalls\":-1");
        assert!(Beacon::parse(negative.as_bytes()).is_err());
    }

    #[test]
    fn streams_and_sessions_are_checked() {
        for s in [
            "cam",
            "live/../cam",
            "live/a/b",
            "/cam",
            "live/",
            "live/c?key=1",
        ] {
            let body = GOOD.replace("live/cam", s);
            assert!(
                matches!(Beacon::parse(body.as_bytes()), Err(BeaconError::Stream(_))),
                "{s}"
            );
        }
        for s in [
            "0123456789abcde",
            "0123456789abcdefa",
            "0123456789abcdeg",
            "+123456789abcdef",
        ] {
            let body = GOOD.replace("0123456789abcdef", s);
            assert_eq!(
                Beacon::parse(body.as_bytes()),
                Err(BeaconError::Session),
                "{s}"
            );
        }
    }

    #[test]
    fn out_of_range_values_are_refused() {
        for (from, to) in [
            ("\"interval_ms\":10000", "\"interval_ms\":0"),
            ("\"interval_ms\":10000", "\"interval_ms\":600001"),
            ("\"latency_ms\":812.5", "\"latency_ms\":-1"),
            ("\"latency_ms\":812.5", "\"latency_ms\":1e300"),
            ("\"stall_ms\":420", "\"stall_ms\":-5"),
            ("\"stalls\":1", "\"stalls\":1000001"),
            ("\"dropped_frames\":3", "\"dropped_frames\":2000000"),
            ("\"av_offset_ms\":-12", "\"av_offset_ms\":-60001"),
        ] {
            let body = GOOD.replace(from, to);
            assert!(
                matches!(
                    Beacon::parse(body.as_bytes()),
                    Err(BeaconError::Range { .. })
                ),
                "{to}"
            );
        }
    }
}
