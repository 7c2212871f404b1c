//! Messages the server builds itself, outside rml_rtmp's session: media chunks shared
//! by all players, status replies for refusals, acknowledgements, and the fix-ups we
//! apply to commands before rml_rtmp sees them. Pure functions over bytes.

use bytes::{Bytes, BytesMut};
use onair_shared::eflv::connect::{
    server_connect_fields, CAPS_EX_MODEX, CAPS_EX_MULTITRACK, CAPS_EX_TIMESTAMP_NANO_OFFSET,
};
use onair_shared::flv::{FlvTag, TAG_AUDIO, TAG_VIDEO};
use onair_shared::metadata::{decode_amf0, Amf0Value, AmfError};
use onair_shared::Codec;

use super::chunk::encode_message;
use crate::hub::SharedFrame;

pub const TYPE_ACK: u8 = 3;
pub const TYPE_USER_CONTROL: u8 = 4;
pub const TYPE_WINDOW_ACK_SIZE: u8 = 5;
pub const TYPE_SET_PEER_BANDWIDTH: u8 = 6;
pub const TYPE_AUDIO: u8 = 8;
pub const TYPE_VIDEO: u8 = 9;
pub const TYPE_AMF3_DATA: u8 = 15;
pub const TYPE_AMF3_COMMAND: u8 = 17;
pub const TYPE_AMF0_DATA: u8 = 18;
pub const TYPE_AMF0_COMMAND: u8 = 20;
pub const TYPE_AGGREGATE: u8 = 22;

/// Chunk streams of our own. rml_rtmp compresses its headers against what it last sent
/// on chunk streams 2..=6, so nothing of ours may share those.
pub const CSID_CONTROL: u32 = 2;
pub const CSID_STATUS: u32 = 9;
pub const CSID_DATA: u32 = 20;
pub const CSID_VIDEO: u32 = 21;
pub const CSID_AUDIO: u32 = 22;

/// A hub unit as RTMP chunks for one message stream id at one chunk size: the message
/// body is its FLV tag body (built once per unit). Built with full headers only, so the
/// bytes do not depend on what the player received before. Empty for a unit with no
/// FLV form (an MP3 configuration).
pub fn frame_chunks(frame: &SharedFrame, stream_id: u32, chunk_size: u32) -> Bytes {
    let Some((tag_type, body)) = frame.flv_message() else {
        return Bytes::new();
    };
    let csid = match tag_type {
        TAG_VIDEO => CSID_VIDEO,
        TAG_AUDIO => CSID_AUDIO,
        _ => CSID_DATA,
    };
    let mut out =
        BytesMut::with_capacity(body.len() + 32 + body.len() / chunk_size.max(1) as usize * 5);
    encode_message(
        &mut out,
        csid,
        tag_type,
        stream_id,
        frame.wire_timestamp(),
        &body,
        chunk_size,
    );
    out.freeze()
}

/// An `onStatus` message, for refusals rml_rtmp has no call for.
pub fn on_status(
    stream_id: u32,
    level: &str,
    code: &str,
    description: &str,
    chunk_size: u32,
) -> Bytes {
    status_command(
        "onStatus",
        0.0,
        stream_id,
        level,
        code,
        description,
        chunk_size,
    )
}

/// An `_error` reply to a command transaction.
pub fn command_error(transaction_id: f64, code: &str, description: &str, chunk_size: u32) -> Bytes {
    status_command(
        "_error",
        transaction_id,
        0,
        "error",
        code,
        description,
        chunk_size,
    )
}

/// `[name, transaction, null, {level, code, description}]` as one AMF0 command message.
fn status_command(
    name: &str,
    transaction_id: f64,
    stream_id: u32,
    level: &str,
    code: &str,
    description: &str,
    chunk_size: u32,
) -> Bytes {
    let info = [
        ("level", level),
        ("code", code),
        ("description", description),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), Amf0Value::Utf8String(v.into())))
    .collect();
    let values = vec![
        Amf0Value::Utf8String(name.into()),
        Amf0Value::Number(transaction_id),
        Amf0Value::Null,
        Amf0Value::Object(info),
    ];
    let payload = rml_amf0::serialize(&values).unwrap_or_default();
    let mut out = BytesMut::new();
    encode_message(
        &mut out,
        CSID_STATUS,
        TYPE_AMF0_COMMAND,
        stream_id,
        0,
        &payload,
        chunk_size,
    );
    out.freeze()
}

/// Codecs a publisher may send and players are served (what our connect `_result` lists).
pub const SERVED_VIDEO: [Codec; 4] = [Codec::H264, Codec::Hevc, Codec::Av1, Codec::Vp9];
pub const SERVED_AUDIO: [Codec; 4] = [Codec::Aac, Codec::Mp3, Codec::Opus, Codec::Flac];

/// The Enhanced RTMP extensions our ingest parses (capsEx of our connect `_result`):
/// Multitrack and ModEx with TimestampOffsetNano. Reconnect requests are not sent.
pub const SERVER_CAPS_EX: u32 = CAPS_EX_MULTITRACK | CAPS_EX_MODEX | CAPS_EX_TIMESTAMP_NANO_OFFSET;

/// Connect's `_result`, as rml_rtmp writes it (fmsVer, capabilities, the status object)
/// plus the Enhanced RTMP fields saying which codecs onair takes and serves
/// (`fourCcList`, `videoFourCcInfoMap`, `audioFourCcInfoMap`) and `capsEx`: the AMF0
/// command body.
pub fn connect_result(transaction_id: f64, object_encoding: f64, app: &str) -> Vec<u8> {
    let mut props: std::collections::HashMap<String, Amf0Value> = [
        ("fmsVer", Amf0Value::Utf8String("FMS/3,0,1,123".into())),
        ("capabilities", Amf0Value::Number(31.0)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    props.extend(server_connect_fields(
        &SERVED_VIDEO,
        &SERVED_AUDIO,
        SERVER_CAPS_EX,
    ));
    let info = [
        ("level", Amf0Value::Utf8String("status".into())),
        (
            "code",
            Amf0Value::Utf8String("NetConnection.Connect.Success".into()),
        ),
        (
            "description",
            Amf0Value::Utf8String(format!("Successfully connected on app: {app}")),
        ),
        ("objectEncoding", Amf0Value::Number(object_encoding)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let values = vec![
        Amf0Value::Utf8String("_result".into()),
        Amf0Value::Number(transaction_id),
        Amf0Value::Object(props),
        Amf0Value::Object(info),
    ];
    rml_amf0::serialize(&values).unwrap_or_default()
}

/// Acknowledgement of `total` bytes received (the sequence number wraps at 2^32).
pub fn acknowledgement(total: u64, chunk_size: u32) -> Bytes {
    let mut out = BytesMut::new();
    encode_message(
        &mut out,
        CSID_CONTROL,
        TYPE_ACK,
        0,
        0,
        &(total as u32).to_be_bytes(),
        chunk_size,
    );
    out.freeze()
}

/// What the connection does with a command before rml_rtmp sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum CommandCheck {
    /// Pass these (possibly rewritten) AMF0 bytes to rml_rtmp.
    Forward(Bytes),
    /// A command we answer by ignoring it (FCPublish and friends need no reply).
    Ignore(String),
    /// Unknown to us and to rml_rtmp: refuse with `_error` and close.
    Unknown { name: String, transaction_id: f64 },
}

/// Commands rml_rtmp handles.
const HANDLED: [&str; 7] = [
    "connect",
    "createStream",
    "releaseStream",
    "publish",
    "play",
    "deleteStream",
    "closeStream",
];
/// Commands real clients send that need no answer from a live server.
const HARMLESS: [&str; 12] = [
    "FCPublish",
    "FCUnpublish",
    "FCSubscribe",
    "FCUnsubscribe",
    "getStreamLength",
    "_checkbw",
    "_result",
    "_error",
    "onBWDone",
    "receiveAudio",
    "receiveVideo",
    "pause",
];

/// Validates an AMF0 command (bounded nesting) and normalizes what rml_rtmp 0.8 gets
/// wrong: it refuses an upper-case publish type such as "LIVE".
pub fn check_command(payload: &Bytes, max_depth: usize) -> Result<CommandCheck, AmfError> {
    let mut values = decode_amf0(payload, max_depth)?;
    let name = match values.first() {
        Some(Amf0Value::Utf8String(s)) => s.clone(),
        _ => {
            return Err(AmfError::Decode(
                "command does not start with its name".into(),
            ))
        }
    };
    let transaction_id = match values.get(1) {
        Some(Amf0Value::Number(n)) => *n,
        _ => 0.0,
    };
    if HARMLESS.contains(&name.as_str()) {
        return Ok(CommandCheck::Ignore(name));
    }
    if !HANDLED.contains(&name.as_str()) {
        return Ok(CommandCheck::Unknown {
            name,
            transaction_id,
        });
    }
    // rml_rtmp 0.8 panics on a command of fewer than three values (its `drain(..3)`), so
    // what it gets must have the name, a numeric transaction id and a command object.
    if values.len() < 3 || !matches!(values[1], Amf0Value::Number(_)) {
        return Err(AmfError::Decode(format!(
            "{name} command without a transaction id and a command object"
        )));
    }
    if name == "publish" {
        if let Some(Amf0Value::Utf8String(kind)) = values.get_mut(4) {
            if kind.chars().any(|c| c.is_ascii_uppercase()) {
                *kind = kind.to_ascii_lowercase();
                let bytes =
                    rml_amf0::serialize(&values).map_err(|e| AmfError::Decode(e.to_string()))?;
                return Ok(CommandCheck::Forward(Bytes::from(bytes)));
            }
        }
    }
    Ok(CommandCheck::Forward(payload.clone()))
}

/// Splits an aggregate message (type 22) into its FLV tags, with timestamps rebased
/// onto the aggregate message's own timestamp.
pub fn split_aggregate(payload: &Bytes, message_ts: u32) -> Vec<FlvTag> {
    let mut out = Vec::new();
    let mut at = 0usize;
    let mut first_ts: Option<u32> = None;
    while at + 11 <= payload.len() {
        let h = &payload[at..at + 11];
        let len = ((h[1] as usize) << 16) | ((h[2] as usize) << 8) | h[3] as usize;
        let ts = ((h[7] as u32) << 24) | ((h[4] as u32) << 16) | ((h[5] as u32) << 8) | h[6] as u32;
        let end = at + 11 + len;
        if end > payload.len() {
            break;
        }
        let first = *first_ts.get_or_insert(ts);
        out.push(FlvTag {
            tag_type: h[0] & 0x1f,
            timestamp: message_ts.wrapping_add(ts.wrapping_sub(first)),
            body: payload.slice(at + 11..end),
        });
        at = end + 4;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtmp::chunk::{ChunkDecoder, ChunkLimits};

    fn decode_all(bytes: &[u8], chunk_size: u32) -> Vec<crate::rtmp::chunk::RtmpMessage> {
        let mut d = ChunkDecoder::new(ChunkLimits {
            max_chunk_size: 1 << 20,
            max_message_size: 1 << 24,
            max_chunk_streams: 64,
        });
        // Tell the decoder the chunk size the way a peer would.
        let mut set = BytesMut::new();
        encode_message(&mut set, 2, 1, 0, 0, &chunk_size.to_be_bytes(), 128);
        d.push(&set);
        d.push(bytes);
        let mut out = Vec::new();
        while let Some(m) = d.next_message().unwrap() {
            if m.type_id != 1 {
                out.push(m);
            }
        }
        out
    }

    #[test]
    fn frame_chunks_decode_back() {
        let body = Bytes::from([&[0x17u8, 1, 0, 0, 0][..], &[7u8; 10_000][..]].concat());
        let f = onair_shared::ingest::TagReader::new()
            .video_tag(0x0100_0000, &body)
            .unwrap()
            .frame
            .unwrap();
        let f = SharedFrame::frame(f, None);
        let chunks = frame_chunks(&f, 1, 4096);
        let msgs = decode_all(&chunks, 4096);
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].type_id, TYPE_VIDEO);
        assert_eq!(msgs[0].stream_id, 1);
        assert_eq!(msgs[0].timestamp, 0x0100_0000);
        assert_eq!(
            msgs[0].payload, body,
            "the tag body as the publisher sent it"
        );
        assert_eq!(msgs[0].csid, CSID_VIDEO);
    }

    #[test]
    fn status_message_is_amf0_on_status() {
        let b = on_status(1, "error", "NetStream.Publish.BadName", "taken", 4096);
        let msgs = decode_all(&b, 4096);
        let v = decode_amf0(&msgs[0].payload, 8).unwrap();
        assert_eq!(v[0], Amf0Value::Utf8String("onStatus".into()));
        let Amf0Value::Object(o) = &v[3] else {
            panic!()
        };
        assert_eq!(
            o["code"],
            Amf0Value::Utf8String("NetStream.Publish.BadName".into())
        );
    }

    fn command(values: Vec<Amf0Value>) -> Bytes {
        Bytes::from(rml_amf0::serialize(&values).unwrap())
    }

    #[test]
    fn upper_case_publish_type_is_lowered() {
        let cmd = command(vec![
            Amf0Value::Utf8String("publish".into()),
            Amf0Value::Number(5.0),
            Amf0Value::Null,
            Amf0Value::Utf8String("t".into()),
            Amf0Value::Utf8String("LIVE".into()),
        ]);
        let CommandCheck::Forward(b) = check_command(&cmd, 8).unwrap() else {
            panic!()
        };
        assert_eq!(
            decode_amf0(&b, 8).unwrap()[4],
            Amf0Value::Utf8String("live".into())
        );
    }

    #[test]
    fn commands_are_sorted_into_forward_ignore_unknown() {
        let c = |n: &str| {
            command(vec![
                Amf0Value::Utf8String(n.into()),
                Amf0Value::Number(3.0),
                Amf0Value::Null,
            ])
        };
        assert!(matches!(
            check_command(&c("connect"), 8).unwrap(),
            CommandCheck::Forward(_)
        ));
        assert_eq!(
            check_command(&c("FCPublish"), 8).unwrap(),
            CommandCheck::Ignore("FCPublish".into())
        );
        assert_eq!(
            check_command(&c("rm -rf"), 8).unwrap(),
            CommandCheck::Unknown {
                name: "rm -rf".into(),
                transaction_id: 3.0
            }
        );
        assert!(check_command(&Bytes::from_static(b"\x00\x00"), 8).is_err());
        assert!(check_command(&Bytes::from_static(&[0x03; 100]), 8).is_err());
    }

    #[test]
    fn command_without_command_object_is_refused_before_rml_rtmp() {
        // Found by the rtmp_ingest fuzz target: "createStream" and a number, no command
        // object. rml_rtmp's command parser panicked on it (`drain(..3)` of two values).
        let crash =
            Bytes::from_static(b"\x02\x00\x0ccreateStream\x00\x00\x02\x00\x04\x70\x6c\x00\x00");
        assert!(check_command(&crash, 8).is_err());
        let two = command(vec![
            Amf0Value::Utf8String("connect".into()),
            Amf0Value::Number(1.0),
        ]);
        assert!(check_command(&two, 8).is_err());
        let no_id = command(vec![
            Amf0Value::Utf8String("publish".into()),
            Amf0Value::Null,
            Amf0Value::Null,
        ]);
        assert!(check_command(&no_id, 8).is_err());
        // Commands rml_rtmp does not see may stay short.
        let short = command(vec![Amf0Value::Utf8String("FCPublish".into())]);
        assert!(matches!(
            check_command(&short, 8),
            Ok(CommandCheck::Ignore(_))
        ));
    }

    #[test]
    fn aggregate_split_rebases_timestamps() {
        let mut agg = Vec::new();
        for (ts, body) in [(100u32, &[0xaf, 1, 1][..]), (123, &[0xaf, 1, 2][..])] {
            agg.extend_from_slice(&onair_shared::flv::encode_tag(8, ts, body));
        }
        let tags = split_aggregate(&Bytes::from(agg), 5000);
        assert_eq!(tags.len(), 2);
        assert_eq!((tags[0].timestamp, tags[1].timestamp), (5000, 5023));
        assert_eq!(&tags[1].body[..], &[0xaf, 1, 2]);
        assert!(split_aggregate(&Bytes::from_static(&[9, 0, 0, 50, 0]), 0).is_empty());
    }

    #[test]
    fn connect_result_lists_our_codecs_and_extensions() {
        let v = decode_amf0(&connect_result(1.0, 0.0, "live"), 8).unwrap();
        assert_eq!(v[0], Amf0Value::Utf8String("_result".into()));
        assert_eq!(v[1], Amf0Value::Number(1.0));
        let Amf0Value::Object(props) = &v[2] else {
            panic!("{v:?}")
        };
        let Some(Amf0Value::StrictArray(list)) = props.get("fourCcList") else {
            panic!("{props:?}")
        };
        let list: Vec<_> = list
            .iter()
            .filter_map(|v| match v {
                Amf0Value::Utf8String(s) => Some(s.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(
            list,
            ["avc1", "hvc1", "av01", "vp09", "mp4a", ".mp3", "Opus", "fLaC"]
        );
        let Some(Amf0Value::Object(video)) = props.get("videoFourCcInfoMap") else {
            panic!("{props:?}")
        };
        assert_eq!(video.get("av01"), Some(&Amf0Value::Number(4.0)), "forward");
        assert_eq!(props.get("capsEx"), Some(&Amf0Value::Number(14.0)));
        assert_eq!(props.get("capabilities"), Some(&Amf0Value::Number(31.0)));
        let Amf0Value::Object(info) = &v[3] else {
            panic!("{v:?}")
        };
        assert_eq!(
            info.get("code"),
            Some(&Amf0Value::Utf8String(
                "NetConnection.Connect.Success".into()
            ))
        );
    }
}
