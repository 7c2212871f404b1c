//! FLV tag bodies, as RTMP messages and FLV files carry them, to `Frame`s and
//! `CodecConfig`s, once per message at ingest. One `TagReader` per publisher keeps what a
//! tag does not repeat (the current audio configuration). Pure: bytes in, values out; it
//! never panics on peer input. Enhanced RTMP (ex-header) parsing plugs in at `video_tag`
//! and `audio_tag` where the ex-header bit or SoundFormat 9 is seen.

use bytes::Bytes;

use crate::aac::{AacError, AudioSpecificConfig, AudioTagHeader, AAC_RAW, AAC_SEQUENCE_HEADER};
use crate::avc::{AvcDecoderConfig, AvcError, VideoTagHeader, AVC_NALU, AVC_SEQUENCE_HEADER};
use crate::codec::Codec;
use crate::codec_config::{avc_profile_name, CodecConfig, CodecParams, MediaSummary};
use crate::frame::{Frame, MediaKind};
use crate::mp3::Mp3Header;

/// Legacy FLV video frame type of a command frame (no media).
const FRAME_TYPE_COMMAND: u8 = 5;
/// Enhanced RTMP video PacketTypes (veovera/enhanced-rtmp v1).
const PACKET_SEQUENCE_START: u8 = 0;
const PACKET_CODED_FRAMES: u8 = 1;
const PACKET_CODED_FRAMES_X: u8 = 3;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    #[error("unsupported video codec {0}: onair relays H.264 only")]
    UnsupportedVideoCodec(&'static str),
    #[error("malformed Video frame: {0}")]
    Video(#[from] AvcError),
    #[error("malformed Audio frame: {0}")]
    Audio(#[from] AacError),
}

/// What one tag body yields: a configuration (first, when it changed or was announced)
/// and/or a frame. Both `None` for tags that carry nothing for viewers (end of
/// sequence, command frames, unknown packet types).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ingested {
    pub config: Option<CodecConfig>,
    pub frame: Option<Frame>,
}

/// Per-publisher reader of FLV tag bodies.
#[derive(Debug, Default)]
pub struct TagReader {
    /// The audio configuration last announced for a codec without a sequence header
    /// (MP3, opaque legacy formats), to announce it again only when it changes.
    implicit_audio: Option<CodecConfig>,
}

impl TagReader {
    pub fn new() -> Self {
        Self::default()
    }

    /// One video tag body at wire timestamp `ts`.
    pub fn video_tag(&mut self, ts: u32, body: &Bytes) -> Result<Ingested, IngestError> {
        let h = VideoTagHeader::parse(body)?;
        if h.codec != Codec::H264 {
            return Err(IngestError::UnsupportedVideoCodec(h.codec.name()));
        }
        if !h.enhanced && h.frame_type == FRAME_TYPE_COMMAND {
            return Ok(Ingested::default());
        }
        // Legacy AVC packet types and Enhanced RTMP packet types for `avc1` share 0 and 1
        // (with a composition time); CodedFramesX (3) has none, and its header is 5 bytes.
        let is_sequence = h.packet_type == AVC_SEQUENCE_HEADER
            || (h.enhanced && h.packet_type == PACKET_SEQUENCE_START);
        let is_frame = h.packet_type == AVC_NALU
            || (h.enhanced && matches!(h.packet_type, PACKET_CODED_FRAMES | PACKET_CODED_FRAMES_X));
        let payload = body.slice(h.header_len.min(body.len())..);
        if is_sequence {
            return Ok(Ingested {
                config: Some(avc_config(payload)?),
                frame: None,
            });
        }
        if !is_frame {
            return Ok(Ingested::default());
        }
        Ok(Ingested {
            config: None,
            frame: Some(Frame {
                kind: MediaKind::Video,
                track: 0,
                codec: Codec::H264,
                dts: ts as u64,
                cts: h.composition_time,
                nanos: 0,
                keyframe: h.frame_type == crate::avc::FRAME_TYPE_KEY,
                data: payload,
            }),
        })
    }

    /// One audio tag body at wire timestamp `ts`.
    pub fn audio_tag(&mut self, ts: u32, body: &Bytes) -> Result<Ingested, IngestError> {
        let h = AudioTagHeader::parse(body)?;
        let flags = body.first().map(|b| b & 0x0f);
        let codec = h.codec();
        let payload = body.slice(h.header_len().min(body.len())..);
        let frame = |data: Bytes| Frame {
            kind: MediaKind::Audio,
            track: 0,
            codec,
            dts: ts as u64,
            cts: 0,
            nanos: 0,
            keyframe: false,
            data,
        };
        match (codec, h.aac_packet_type) {
            (Codec::Aac, Some(AAC_SEQUENCE_HEADER)) => {
                let asc = AudioSpecificConfig::parse(&payload)?;
                self.implicit_audio = None;
                Ok(Ingested {
                    config: Some(CodecConfig {
                        kind: MediaKind::Audio,
                        track: 0,
                        codec,
                        record: payload,
                        params: CodecParams::Aac(asc),
                        summary: MediaSummary {
                            sample_rate: Some(asc.sample_rate),
                            channels: Some(asc.channel_config),
                            ..MediaSummary::default()
                        },
                        flv_sound_flags: flags,
                    }),
                    frame: None,
                })
            }
            (Codec::Aac, Some(AAC_RAW)) => Ok(Ingested {
                config: None,
                frame: Some(frame(payload)),
            }),
            (Codec::Aac, _) => Ok(Ingested::default()),
            _ => {
                // No sequence header in FLV: the configuration is what the frame says.
                let params = match codec {
                    Codec::Mp3 => Mp3Header::parse(&payload)
                        .map(CodecParams::Mp3)
                        .unwrap_or(CodecParams::Opaque),
                    _ => CodecParams::Opaque,
                };
                let changed = self.implicit_audio.as_ref().is_none_or(|c| {
                    c.codec != codec
                        || c.flv_sound_flags != flags
                        // A frame whose header cannot be read keeps the last one.
                        || (params != CodecParams::Opaque && c.params != params)
                });
                let config = changed.then(|| {
                    let summary = match &params {
                        CodecParams::Mp3(m) => MediaSummary {
                            sample_rate: Some(m.sample_rate),
                            channels: Some(m.channels),
                            ..MediaSummary::default()
                        },
                        _ => MediaSummary::default(),
                    };
                    let c = CodecConfig {
                        kind: MediaKind::Audio,
                        track: 0,
                        codec,
                        record: Bytes::new(),
                        params,
                        summary,
                        flv_sound_flags: flags,
                    };
                    self.implicit_audio = Some(c.clone());
                    c
                });
                Ok(Ingested {
                    config,
                    frame: Some(frame(payload)),
                })
            }
        }
    }
}

/// An H.264 configuration from its AVCDecoderConfigurationRecord.
pub fn avc_config(record: Bytes) -> Result<CodecConfig, AvcError> {
    let avc = AvcDecoderConfig::parse(&record)?;
    // An SPS we cannot read leaves the summary empty; the stream still plays.
    let summary = match avc.sps_info() {
        Ok(sps) => MediaSummary {
            width: Some(sps.width),
            height: Some(sps.height),
            profile: Some(avc_profile_name(sps.profile_idc).to_string()),
            level: Some(sps.level_idc as f64 / 10.0),
            ..MediaSummary::default()
        },
        Err(_) => MediaSummary::default(),
    };
    Ok(CodecConfig {
        kind: MediaKind::Video,
        track: 0,
        codec: Codec::H264,
        record,
        params: CodecParams::Avc(avc),
        summary,
        flv_sound_flags: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flv::{encode_config_tag, encode_frame_tag, encode_tag, TAG_AUDIO, TAG_VIDEO};

    pub const SPS: [u8; 26] = [
        0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03,
        0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83, 0x19, 0x60,
    ];
    pub const PPS: [u8; 6] = [0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];

    fn avc_seq() -> Bytes {
        let mut v = vec![0x17, 0, 0, 0, 0];
        v.extend(
            AvcDecoderConfig::from_parameter_sets(&SPS, &PPS)
                .unwrap()
                .to_bytes(),
        );
        Bytes::from(v)
    }

    /// Parses a legacy tag body into what the hub carries, serializes it back as the
    /// outputs do, and compares with the tag that came in.
    fn round_trip(r: &mut TagReader, tag_type: u8, ts: u32, body: &[u8]) -> Ingested {
        let body = Bytes::copy_from_slice(body);
        let got = if tag_type == TAG_VIDEO {
            r.video_tag(ts, &body).unwrap()
        } else {
            r.audio_tag(ts, &body).unwrap()
        };
        let want = encode_tag(tag_type, ts, &body);
        match (&got.config, &got.frame) {
            (Some(c), None) => assert_eq!(encode_config_tag(c, ts), Some(want)),
            (c, Some(f)) => {
                let cfg = c.clone().or(r.implicit_audio.clone());
                assert_eq!(encode_frame_tag(f, cfg.as_ref()), Some(want), "{f:?}")
            }
            (None, None) => panic!("tag {body:02x?} yielded nothing"),
        }
        got
    }

    #[test]
    fn legacy_h264_tags_come_back_byte_for_byte() {
        let mut r = TagReader::new();
        let seq = round_trip(&mut r, TAG_VIDEO, 0, &avc_seq());
        let cfg = seq.config.unwrap();
        assert_eq!(cfg.codec, Codec::H264);
        assert_eq!(cfg.summary.width, Some(1280));
        assert_eq!(cfg.summary.profile.as_deref(), Some("High"));
        assert_eq!(cfg.avc().unwrap().nalu_length_size, 4);
        let key = round_trip(
            &mut r,
            TAG_VIDEO,
            40,
            &[0x17, 1, 0, 0, 0x21, 0, 0, 0, 1, 0x65],
        );
        let f = key.frame.unwrap();
        assert!(f.keyframe);
        assert_eq!((f.dts, f.cts), (40, 0x21));
        assert_eq!(
            &f.data[..],
            &[0, 0, 0, 1, 0x65],
            "the access unit, no FLV header"
        );
        // A negative composition time (signed 24 bits) and a 32-bit timestamp.
        let inter = round_trip(
            &mut r,
            TAG_VIDEO,
            0x1234_5678,
            &[0x27, 1, 0xff, 0xff, 0xfe, 0, 0, 0, 1, 0x41],
        );
        let f = inter.frame.unwrap();
        assert!(!f.keyframe);
        assert_eq!(f.cts, -2);
    }

    #[test]
    fn legacy_aac_and_mp3_tags_come_back_byte_for_byte() {
        let mut r = TagReader::new();
        let seq = round_trip(&mut r, TAG_AUDIO, 0, &[0xaf, 0, 0x12, 0x10]);
        let cfg = seq.config.unwrap();
        assert_eq!(cfg.aac().unwrap().sample_rate, 44100);
        // A mono AAC publisher's flags (0xae) are kept.
        let seq = round_trip(&mut r, TAG_AUDIO, 0, &[0xae, 0, 0x11, 0x88]);
        let c = seq.config.unwrap();
        let raw = r
            .audio_tag(23, &Bytes::from_static(&[0xae, 1, 0x21, 0x22]))
            .unwrap();
        let f = raw.frame.unwrap();
        assert_eq!(&f.data[..], &[0x21, 0x22]);
        assert_eq!(
            encode_frame_tag(&f, Some(&c)).unwrap(),
            encode_tag(TAG_AUDIO, 23, &[0xae, 1, 0x21, 0x22])
        );

        let mut r = TagReader::new();
        // MP3 (format 2), 44 kHz flag, 16-bit, stereo: an MPEG-1 layer III frame.
        let first = round_trip(&mut r, TAG_AUDIO, 0, &[0x2f, 0xff, 0xfb, 0x90, 0x64, 1, 2]);
        let c = first
            .config
            .expect("the first MP3 frame announces its configuration");
        assert_eq!(c.codec, Codec::Mp3);
        assert_eq!(c.summary.sample_rate, Some(44100));
        assert!(c.record.is_empty());
        assert_eq!(
            encode_config_tag(&c, 0),
            None,
            "FLV has no MP3 sequence header"
        );
        let next = round_trip(&mut r, TAG_AUDIO, 26, &[0x2f, 0xff, 0xfb, 0x90, 0x64, 3]);
        assert!(
            next.config.is_none(),
            "an unchanged header is not a new config"
        );
        // The publisher switches to 22 kHz mono MPEG-2: a new configuration.
        let changed = round_trip(&mut r, TAG_AUDIO, 52, &[0x2a, 0xff, 0xf3, 0x80, 0xc4, 4]);
        assert_eq!(changed.config.unwrap().summary.sample_rate, Some(22050));
        // Legacy formats onair does not know (Speex, 11) pass through unchanged.
        let speex = round_trip(&mut r, TAG_AUDIO, 60, &[0xb6, 9, 9]);
        assert_eq!(speex.config.unwrap().codec, Codec::Other(11));
    }

    #[test]
    fn enhanced_avc_becomes_the_same_frame_as_legacy() {
        let mut r = TagReader::new();
        let mut seq = vec![0x90, b'a', b'v', b'c', b'1'];
        seq.extend_from_slice(&avc_seq()[5..]);
        let cfg = r.video_tag(0, &Bytes::from(seq)).unwrap().config.unwrap();
        assert_eq!(
            encode_config_tag(&cfg, 0),
            Some(encode_tag(TAG_VIDEO, 0, &avc_seq()))
        );
        let coded = [0x91, b'a', b'v', b'c', b'1', 0, 0, 2, 0, 0, 0, 1, 0x65];
        let f = r
            .video_tag(80, &Bytes::copy_from_slice(&coded))
            .unwrap()
            .frame
            .unwrap();
        assert_eq!(
            (f.cts, f.keyframe, &f.data[..]),
            (2, true, &[0, 0, 0, 1, 0x65][..])
        );
        // CodedFramesX: no composition time.
        let x = [0xa3, b'a', b'v', b'c', b'1', 0, 0, 0, 1, 0x41];
        let f = r
            .video_tag(120, &Bytes::copy_from_slice(&x))
            .unwrap()
            .frame
            .unwrap();
        assert_eq!((f.cts, f.keyframe, f.data.len()), (0, false, 5));
    }

    #[test]
    fn what_is_not_h264_or_not_media() {
        let mut r = TagReader::new();
        let hevc = Bytes::from_static(&[0x90, b'h', b'v', b'c', b'1', 1, 2, 3, 4]);
        assert_eq!(
            r.video_tag(0, &hevc),
            Err(IngestError::UnsupportedVideoCodec("hevc"))
        );
        let vp6 = Bytes::from_static(&[0x14, 0, 0]);
        assert!(matches!(
            r.video_tag(0, &vp6),
            Err(IngestError::UnsupportedVideoCodec(_))
        ));
        // End of sequence and command frames carry nothing for viewers.
        let eos = Bytes::from_static(&[0x17, 2, 0, 0, 0]);
        assert_eq!(r.video_tag(0, &eos), Ok(Ingested::default()));
        let cmd = Bytes::from_static(&[0x57, 0, 0, 0, 0]);
        assert_eq!(r.video_tag(0, &cmd), Ok(Ingested::default()));
        // Truncated tags and bad records are errors, not panics.
        assert!(r.video_tag(0, &Bytes::from_static(&[0x17, 1])).is_err());
        assert!(r
            .video_tag(0, &Bytes::from_static(&[0x17, 0, 0, 0, 0, 9]))
            .is_err());
        assert!(r.audio_tag(0, &Bytes::new()).is_err());
        assert!(r.audio_tag(0, &Bytes::from_static(&[0xaf])).is_err());
        assert!(r
            .audio_tag(0, &Bytes::from_static(&[0xaf, 0, 0xff]))
            .is_err());
    }
}
