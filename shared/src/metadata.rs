//! AMF0 script data: `onMetaData` parsing and building, and a nesting check that runs
//! before any recursive AMF0 decoder sees peer bytes (deep nesting would overflow the
//! stack, which aborts the whole process rather than one connection).

use std::collections::HashMap;
use std::io::Cursor;

use bytes::Bytes;
pub use rml_amf0::Amf0Value;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmfError {
    #[error("AMF0 nesting deeper than {max} levels")]
    TooDeep { max: usize },
    #[error("AMF0 data truncated at byte {0}")]
    Truncated(usize),
    #[error("AMF0 marker {marker:#04x} at byte {at} is not supported")]
    UnsupportedMarker { marker: u8, at: usize },
    #[error("AMF0 decode failed: {0}")]
    Decode(String),
    #[error("script data is not onMetaData")]
    NotMetadata,
}

/// Walks AMF0 values iteratively and fails if containers nest deeper than `max_depth`.
/// Only the markers rml_amf0 understands are accepted, so a value that passes here
/// decodes there without surprises.
pub fn check_amf0(data: &[u8], max_depth: usize) -> Result<(), AmfError> {
    // What the walker expects next inside each open container.
    enum Open {
        Object,
        Array(u32),
    }
    let mut stack: Vec<Open> = Vec::new();
    let mut at = 0usize;
    let need = |at: usize, n: usize| -> Result<(), AmfError> {
        if at + n > data.len() {
            Err(AmfError::Truncated(at))
        } else {
            Ok(())
        }
    };
    loop {
        match stack.last_mut() {
            Some(Open::Object) => {
                need(at, 2)?;
                let key_len = u16::from_be_bytes([data[at], data[at + 1]]) as usize;
                at += 2;
                if key_len == 0 {
                    need(at, 1)?;
                    if data[at] != 0x09 {
                        return Err(AmfError::UnsupportedMarker {
                            marker: data[at],
                            at,
                        });
                    }
                    at += 1;
                    stack.pop();
                    continue;
                }
                need(at, key_len)?;
                at += key_len;
            }
            Some(Open::Array(left)) => {
                if *left == 0 {
                    stack.pop();
                    continue;
                }
                *left -= 1;
            }
            None => {
                if at == data.len() {
                    return Ok(());
                }
            }
        }
        need(at, 1)?;
        let marker = data[at];
        at += 1;
        match marker {
            0x00 => {
                need(at, 8)?;
                at += 8;
            }
            0x01 => {
                need(at, 1)?;
                at += 1;
            }
            0x02 => {
                need(at, 2)?;
                let len = u16::from_be_bytes([data[at], data[at + 1]]) as usize;
                need(at + 2, len)?;
                at += 2 + len;
            }
            0x03 | 0x08 => {
                if marker == 0x08 {
                    need(at, 4)?;
                    at += 4;
                }
                stack.push(Open::Object);
            }
            0x05 | 0x06 => {}
            0x0a => {
                need(at, 4)?;
                let count =
                    u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
                at += 4;
                stack.push(Open::Array(count));
            }
            other => {
                return Err(AmfError::UnsupportedMarker {
                    marker: other,
                    at: at - 1,
                })
            }
        }
        if stack.len() > max_depth {
            return Err(AmfError::TooDeep { max: max_depth });
        }
    }
}

/// Decodes AMF0 values after `check_amf0` has bounded their nesting.
pub fn decode_amf0(data: &[u8], max_depth: usize) -> Result<Vec<Amf0Value>, AmfError> {
    check_amf0(data, max_depth)?;
    rml_amf0::deserialize(&mut Cursor::new(data)).map_err(|e| AmfError::Decode(e.to_string()))
}

/// The fields of `onMetaData` that the server reports and the pusher writes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metadata {
    pub width: Option<f64>,
    pub height: Option<f64>,
    pub framerate: Option<f64>,
    /// kbit/s, as encoders write it.
    pub video_data_rate: Option<f64>,
    pub audio_data_rate: Option<f64>,
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
    pub audio_sample_rate: Option<f64>,
    pub audio_channels: Option<f64>,
    pub encoder: Option<String>,
}

/// A parsed script tag: the metadata fields and the body to forward to viewers
/// (`onMetaData` + object, with any `@setDataFrame` prefix removed).
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptData {
    pub metadata: Metadata,
    pub body: Bytes,
}

/// AMF0 string "@setDataFrame" as encoders prefix it.
const SET_DATA_FRAME: &[u8] = b"\x02\x00\x0d@setDataFrame";

/// Parses an RTMP data message or FLV script tag carrying `onMetaData`.
pub fn parse_script(payload: &Bytes, max_depth: usize) -> Result<ScriptData, AmfError> {
    let body = if payload.starts_with(SET_DATA_FRAME) {
        payload.slice(SET_DATA_FRAME.len()..)
    } else {
        payload.clone()
    };
    let mut values = decode_amf0(&body, max_depth)?.into_iter();
    match values.next() {
        Some(Amf0Value::Utf8String(name)) if name == "onMetaData" => {}
        _ => return Err(AmfError::NotMetadata),
    }
    let props = match values.next() {
        Some(Amf0Value::Object(props)) => props,
        _ => HashMap::new(),
    };
    Ok(ScriptData {
        metadata: Metadata::from_properties(&props),
        body,
    })
}

fn codec_name(v: &Amf0Value, video: bool) -> Option<String> {
    match v {
        Amf0Value::Number(n) => Some(
            match (video, *n as u32) {
                (true, 7) => "h264",
                (true, 12) => "hevc",
                (false, 10) => "aac",
                (false, 2) => "mp3",
                _ => return Some(format!("{n}")),
            }
            .to_string(),
        ),
        Amf0Value::Utf8String(s) => Some(
            match s.as_str() {
                "avc1" => "h264",
                "hvc1" => "hevc",
                "av01" => "av1",
                "mp4a" => "aac",
                other => other,
            }
            .to_string(),
        ),
        _ => None,
    }
}

impl Metadata {
    pub fn from_properties(props: &HashMap<String, Amf0Value>) -> Self {
        let num = |k: &str| match props.get(k) {
            Some(Amf0Value::Number(n)) if n.is_finite() => Some(*n),
            _ => None,
        };
        let audio_channels = num("audiochannels").or(match props.get("stereo") {
            Some(Amf0Value::Boolean(true)) => Some(2.0),
            Some(Amf0Value::Boolean(false)) => Some(1.0),
            _ => None,
        });
        Self {
            width: num("width"),
            height: num("height"),
            framerate: num("framerate").or(num("fps")),
            video_data_rate: num("videodatarate"),
            audio_data_rate: num("audiodatarate"),
            video_codec: props.get("videocodecid").and_then(|v| codec_name(v, true)),
            audio_codec: props.get("audiocodecid").and_then(|v| codec_name(v, false)),
            audio_sample_rate: num("audiosamplerate"),
            audio_channels,
            encoder: match props.get("encoder") {
                Some(Amf0Value::Utf8String(s)) => Some(s.clone()),
                _ => None,
            },
        }
    }

    /// The `onMetaData` script body (no `@setDataFrame`), as FLV files and RTMP players expect.
    pub fn to_script_body(&self) -> Bytes {
        let mut props = HashMap::new();
        let mut put = |k: &str, v: Option<f64>| {
            if let Some(v) = v {
                props.insert(k.to_string(), Amf0Value::Number(v));
            }
        };
        put("width", self.width);
        put("height", self.height);
        put("framerate", self.framerate);
        put("videodatarate", self.video_data_rate);
        put("audiodatarate", self.audio_data_rate);
        put("audiosamplerate", self.audio_sample_rate);
        put("audiochannels", self.audio_channels);
        if self.video_codec.as_deref() == Some("h264") {
            props.insert("videocodecid".into(), Amf0Value::Number(7.0));
        }
        if self.audio_codec.as_deref() == Some("aac") {
            props.insert("audiocodecid".into(), Amf0Value::Number(10.0));
            props.insert("audiosamplesize".into(), Amf0Value::Number(16.0));
            if let Some(ch) = self.audio_channels {
                props.insert("stereo".into(), Amf0Value::Boolean(ch >= 2.0));
            }
        }
        if let Some(e) = &self.encoder {
            props.insert("encoder".into(), Amf0Value::Utf8String(e.clone()));
        }
        let values = vec![
            Amf0Value::Utf8String("onMetaData".into()),
            Amf0Value::Object(props),
        ];
        // Serializing numbers, strings and a flat object cannot fail.
        Bytes::from(rml_amf0::serialize(&values).expect("flat AMF0 object serializes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ffmpeg_like_metadata() -> Bytes {
        // @setDataFrame, onMetaData, ECMA array {width: 1280, videocodecid: 7, encoder: "Lavf"}
        let mut v = SET_DATA_FRAME.to_vec();
        v.extend_from_slice(b"\x02\x00\x0aonMetaData\x08\x00\x00\x00\x03");
        v.extend_from_slice(b"\x00\x05width\x00");
        v.extend_from_slice(&1280f64.to_be_bytes());
        v.extend_from_slice(b"\x00\x0cvideocodecid\x00");
        v.extend_from_slice(&7f64.to_be_bytes());
        v.extend_from_slice(b"\x00\x07encoder\x02\x00\x04Lavf");
        v.extend_from_slice(b"\x00\x00\x09");
        Bytes::from(v)
    }

    #[test]
    fn parses_set_data_frame_metadata() {
        let s = parse_script(&ffmpeg_like_metadata(), 8).unwrap();
        assert_eq!(s.metadata.width, Some(1280.0));
        assert_eq!(s.metadata.video_codec.as_deref(), Some("h264"));
        assert_eq!(s.metadata.encoder.as_deref(), Some("Lavf"));
        assert!(s.body.starts_with(b"\x02\x00\x0aonMetaData"));
    }

    #[test]
    fn build_then_parse_roundtrip() {
        let m = Metadata {
            width: Some(640.0),
            height: Some(360.0),
            framerate: Some(30.0),
            video_codec: Some("h264".into()),
            audio_codec: Some("aac".into()),
            audio_sample_rate: Some(48000.0),
            audio_channels: Some(2.0),
            encoder: Some("onair".into()),
            ..Default::default()
        };
        let back = parse_script(&m.to_script_body(), 8).unwrap().metadata;
        assert_eq!(back, m);
    }

    #[test]
    fn deep_nesting_refused_before_decoding() {
        let mut deep = b"\x02\x00\x0aonMetaData".to_vec();
        for _ in 0..100_000 {
            deep.extend_from_slice(b"\x03\x00\x01a");
        }
        assert_eq!(check_amf0(&deep, 16), Err(AmfError::TooDeep { max: 16 }));
        let mut arrays = Vec::new();
        for _ in 0..100_000 {
            arrays.extend_from_slice(b"\x0a\x00\x00\x00\x01");
        }
        assert!(parse_script(&Bytes::from(arrays), 16).is_err());
    }

    #[test]
    fn truncated_and_unknown_are_errors() {
        let full = ffmpeg_like_metadata();
        // Cutting right after the "onMetaData" name leaves a valid, empty metadata.
        let name_end = SET_DATA_FRAME.len() + 13;
        for n in (0..full.len()).filter(|&n| n != name_end) {
            assert!(parse_script(&full.slice(..n), 8).is_err(), "prefix {n}");
        }
        assert!(matches!(
            check_amf0(b"\x0b", 8),
            Err(AmfError::UnsupportedMarker { marker: 0x0b, .. })
        ));
        assert_eq!(
            parse_script(&Bytes::from_static(b"\x02\x00\x03foo"), 8),
            Err(AmfError::NotMetadata)
        );
    }
}
