//! The Enhanced RTMP fields of the `connect` command: what a client says it can take
//! (`fourCcList`, `videoFourCcInfoMap`, `audioFourCcInfoMap`, `capsEx`) and the fields of
//! our `_result` answer. It reads already-decoded AMF0 values; malformed fields are ignored.

use std::collections::HashMap;

use crate::codec::Codec;
use crate::metadata::Amf0Value;

/// FourCcInfoMask bits.
pub const FOURCC_CAN_DECODE: u8 = 0x01;
pub const FOURCC_CAN_ENCODE: u8 = 0x02;
pub const FOURCC_CAN_FORWARD: u8 = 0x04;

/// CapsExMask bits.
pub const CAPS_EX_RECONNECT: u32 = 0x01;
pub const CAPS_EX_MULTITRACK: u32 = 0x02;
pub const CAPS_EX_MODEX: u32 = 0x04;
pub const CAPS_EX_TIMESTAMP_NANO_OFFSET: u32 = 0x08;

/// More entries than any codec list needs are not looked at.
const MAX_ENTRIES: usize = 64;

/// One media type's FourCcInfoMap: flags per FourCC, and the "*" wildcard's flags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FourCcInfoMap {
    pub wildcard: Option<u8>,
    pub by_fourcc: HashMap<[u8; 4], u8>,
}

impl FourCcInfoMap {
    /// The flags for a FourCC. "*" overrides the per-codec entries, as the spec says.
    pub fn flags(&self, fourcc: [u8; 4]) -> u8 {
        match self.wildcard {
            Some(w) => w,
            None => self.by_fourcc.get(&fourcc).copied().unwrap_or(0),
        }
    }

    fn from_amf(v: Option<&Amf0Value>) -> Option<Self> {
        let Some(Amf0Value::Object(o)) = v else {
            return None;
        };
        let mut map = FourCcInfoMap::default();
        for (k, v) in o.iter().take(MAX_ENTRIES) {
            let Amf0Value::Number(n) = v else { continue };
            let flags = if n.is_finite() && *n >= 0.0 {
                (*n as u32 & 0xff) as u8
            } else {
                continue;
            };
            if k == "*" {
                map.wildcard = Some(flags);
            } else if let Ok(f) = <[u8; 4]>::try_from(k.as_bytes()) {
                map.by_fourcc.insert(f, flags);
            }
        }
        Some(map)
    }
}

/// What a client announced in its connect command object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientCaps {
    /// `fourCcList`: FourCCs of either media type the client takes; "*" is `list_wildcard`.
    pub fourcc_list: Vec<[u8; 4]>,
    pub list_wildcard: bool,
    pub video: Option<FourCcInfoMap>,
    pub audio: Option<FourCcInfoMap>,
    /// `capsEx` bits (0 when absent).
    pub caps_ex: u32,
}

impl ClientCaps {
    /// Reads the fields from the connect command object (the first argument of `connect`).
    pub fn from_connect_object(obj: &HashMap<String, Amf0Value>) -> Self {
        let mut caps = ClientCaps::default();
        if let Some(Amf0Value::StrictArray(list)) = obj.get("fourCcList") {
            for v in list.iter().take(MAX_ENTRIES) {
                let Amf0Value::Utf8String(s) = v else {
                    continue;
                };
                if s == "*" {
                    caps.list_wildcard = true;
                } else if let Ok(f) = <[u8; 4]>::try_from(s.as_bytes()) {
                    caps.fourcc_list.push(f);
                }
            }
        }
        caps.video = FourCcInfoMap::from_amf(obj.get("videoFourCcInfoMap"));
        caps.audio = FourCcInfoMap::from_amf(obj.get("audioFourCcInfoMap"));
        if let Some(Amf0Value::Number(n)) = obj.get("capsEx") {
            if n.is_finite() && *n >= 0.0 && *n <= u32::MAX as f64 {
                caps.caps_ex = *n as u32;
            }
        }
        caps
    }

    /// Whether the client announced anything of Enhanced RTMP.
    pub fn is_enhanced(&self) -> bool {
        !self.fourcc_list.is_empty()
            || self.list_wildcard
            || self.video.is_some()
            || self.audio.is_some()
            || self.caps_ex != 0
    }

    /// Whether a player may be sent this codec: one it decodes or forwards. H.264, AAC and
    /// MP3 go to every player in legacy form, so they are always accepted.
    pub fn accepts(&self, codec: Codec) -> bool {
        if matches!(codec, Codec::H264 | Codec::Aac | Codec::Mp3) {
            return true;
        }
        let Some(fourcc) = codec.fourcc() else {
            return false;
        };
        if self.list_wildcard || self.fourcc_list.contains(&fourcc) {
            return true;
        }
        let map = if codec.is_video() {
            &self.video
        } else {
            &self.audio
        };
        map.as_ref()
            .is_some_and(|m| m.flags(fourcc) & (FOURCC_CAN_DECODE | FOURCC_CAN_FORWARD) != 0)
    }

    /// Whether the client can parse Enhanced RTMP multitrack messages.
    pub fn multitrack(&self) -> bool {
        self.caps_ex & CAPS_EX_MULTITRACK != 0
    }
}

/// The properties our connect `_result` adds, saying which codecs onair forwards and which
/// extensions it parses: `fourCcList`, `videoFourCcInfoMap`, `audioFourCcInfoMap`, `capsEx`.
/// Codecs without a FourCC are skipped.
pub fn server_connect_fields(
    video: &[Codec],
    audio: &[Codec],
    caps_ex: u32,
) -> Vec<(String, Amf0Value)> {
    let fourcc_str = |c: &Codec| c.fourcc().map(|f| String::from_utf8_lossy(&f).into_owned());
    let info_map = |codecs: &[Codec]| {
        Amf0Value::Object(
            codecs
                .iter()
                .filter_map(fourcc_str)
                .map(|f| (f, Amf0Value::Number(FOURCC_CAN_FORWARD as f64)))
                .collect(),
        )
    };
    let list = video
        .iter()
        .chain(audio)
        .filter_map(fourcc_str)
        .map(Amf0Value::Utf8String)
        .collect();
    vec![
        ("fourCcList".to_string(), Amf0Value::StrictArray(list)),
        ("videoFourCcInfoMap".to_string(), info_map(video)),
        ("audioFourCcInfoMap".to_string(), info_map(audio)),
        ("capsEx".to_string(), Amf0Value::Number(caps_ex as f64)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(pairs: Vec<(&str, Amf0Value)>) -> HashMap<String, Amf0Value> {
        pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    fn s(v: &str) -> Amf0Value {
        Amf0Value::Utf8String(v.to_string())
    }

    #[test]
    fn legacy_client_gets_legacy_codecs_only() {
        let caps = ClientCaps::from_connect_object(&obj(vec![("app", s("live"))]));
        assert!(!caps.is_enhanced());
        assert!(caps.accepts(Codec::H264) && caps.accepts(Codec::Aac) && caps.accepts(Codec::Mp3));
        for c in [
            Codec::Hevc,
            Codec::Av1,
            Codec::Vp9,
            Codec::Opus,
            Codec::Flac,
            Codec::Ac3,
        ] {
            assert!(!caps.accepts(c), "{c:?}");
        }
    }

    #[test]
    fn fourcc_list_as_ffmpeg_sends_it() {
        // rtmp_enhanced_codecs=hvc1,av01,Opus
        let caps = ClientCaps::from_connect_object(&obj(vec![(
            "fourCcList",
            Amf0Value::StrictArray(vec![
                s("hvc1"),
                s("av01"),
                s("Opus"),
                s("bogus"),
                Amf0Value::Null,
            ]),
        )]));
        assert!(caps.is_enhanced());
        assert_eq!(caps.fourcc_list, vec![*b"hvc1", *b"av01", *b"Opus"]);
        assert!(caps.accepts(Codec::Hevc) && caps.accepts(Codec::Av1) && caps.accepts(Codec::Opus));
        assert!(!caps.accepts(Codec::Vp9) && !caps.accepts(Codec::Flac));
        let all = ClientCaps::from_connect_object(&obj(vec![(
            "fourCcList",
            Amf0Value::StrictArray(vec![s("*")]),
        )]));
        assert!(all.accepts(Codec::Vp9) && all.accepts(Codec::Eac3));
        assert!(!all.accepts(Codec::Other(3)));
    }

    #[test]
    fn info_maps_with_wildcard_and_caps_ex() {
        let caps = ClientCaps::from_connect_object(&obj(vec![
            (
                "videoFourCcInfoMap",
                Amf0Value::Object(obj(vec![
                    ("vp09", Amf0Value::Number(3.0)),
                    ("hvc1", Amf0Value::Number(2.0)), // encode only
                ])),
            ),
            (
                "audioFourCcInfoMap",
                Amf0Value::Object(obj(vec![
                    ("*", Amf0Value::Number(4.0)),
                    ("Opus", Amf0Value::Number(0.0)),
                ])),
            ),
            ("capsEx", Amf0Value::Number(2.0 + 4.0)),
        ]));
        assert!(caps.accepts(Codec::Vp9));
        assert!(
            !caps.accepts(Codec::Hevc),
            "CanEncode alone is not CanDecode"
        );
        assert!(!caps.accepts(Codec::Av1));
        // "*" overrides Opus's own 0.
        assert!(caps.accepts(Codec::Opus) && caps.accepts(Codec::Flac));
        assert_eq!(
            caps.audio.as_ref().unwrap().flags(*b"Opus"),
            FOURCC_CAN_FORWARD
        );
        assert!(caps.multitrack());
        assert_eq!(caps.caps_ex, CAPS_EX_MULTITRACK | CAPS_EX_MODEX);
    }

    #[test]
    fn malformed_fields_are_ignored() {
        let caps = ClientCaps::from_connect_object(&obj(vec![
            ("fourCcList", s("hvc1")),
            ("videoFourCcInfoMap", Amf0Value::Number(1.0)),
            (
                "audioFourCcInfoMap",
                Amf0Value::Object(obj(vec![
                    ("Opus", s("x")),
                    ("fLaC", Amf0Value::Number(-1.0)),
                ])),
            ),
            ("capsEx", Amf0Value::Number(f64::NAN)),
        ]));
        assert!(caps.fourcc_list.is_empty() && caps.video.is_none());
        assert!(!caps.accepts(Codec::Opus) && !caps.accepts(Codec::Flac));
        assert_eq!(caps.caps_ex, 0);
    }

    #[test]
    fn our_answer_round_trips_through_a_client_parse() {
        let fields = server_connect_fields(
            &[Codec::H264, Codec::Hevc, Codec::Av1, Codec::Vp9],
            &[
                Codec::Aac,
                Codec::Mp3,
                Codec::Opus,
                Codec::Flac,
                Codec::Other(1),
            ],
            CAPS_EX_MULTITRACK | CAPS_EX_MODEX | CAPS_EX_TIMESTAMP_NANO_OFFSET,
        );
        let names: Vec<_> = fields.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "fourCcList",
                "videoFourCcInfoMap",
                "audioFourCcInfoMap",
                "capsEx"
            ]
        );
        let o: HashMap<String, Amf0Value> = fields.into_iter().collect();
        let Amf0Value::StrictArray(list) = &o["fourCcList"] else {
            panic!("fourCcList is not an array")
        };
        assert_eq!(list.len(), 8, "Other(1) has no FourCC and is left out");
        let back = ClientCaps::from_connect_object(&o);
        assert_eq!(
            back.video.as_ref().unwrap().flags(*b"hvc1"),
            FOURCC_CAN_FORWARD
        );
        assert_eq!(
            back.audio.as_ref().unwrap().flags(*b"Opus"),
            FOURCC_CAN_FORWARD
        );
        assert_eq!(back.caps_ex, 0x0e);
        // The fields encode as AMF0.
        let values: Vec<Amf0Value> = o.into_values().collect();
        assert!(rml_amf0::serialize(&values).is_ok());
    }
}
