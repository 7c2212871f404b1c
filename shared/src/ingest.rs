//! FLV tag bodies, as RTMP messages and FLV files carry them, to `Frame`s and
//! `CodecConfig`s, once per message at ingest. One `TagReader` per publisher keeps what a
//! tag does not repeat (the current audio configuration). Pure: bytes in, values out; it
//! never panics on peer input. Enhanced RTMP (ex-header) parsing plugs in at `video_tag`
//! and `audio_tag` where the ex-header bit or SoundFormat 9 is seen.

use std::collections::HashMap;

use bytes::Bytes;

use crate::aac::{AacError, AudioSpecificConfig, AudioTagHeader, AAC_RAW, AAC_SEQUENCE_HEADER};
use crate::av1::{Av1Config, Av1Error};
use crate::avc::{AvcDecoderConfig, AvcError};
use crate::codec::Codec;
use crate::codec_config::{
    av1_profile_name, avc_profile_name, hevc_profile_name, CodecConfig, CodecParams, MediaSummary,
};
use crate::eflv::{parse_audio, parse_video, ExError, Packet, PacketKind, ParseLimits};
use crate::flac::{FlacError, FlacStreamInfo};
use crate::frame::{Frame, MediaKind, TrackId};
use crate::hevc::{HevcDecoderConfig, HevcError};
use crate::mp3::Mp3Header;
use crate::opus::{OpusError, OpusHead};
use crate::vp9::{Vp9Error, Vp9FrameHeader, VpcConfig};

/// Legacy FLV SoundFormat 9: the Enhanced RTMP audio ex-header.
const SOUND_FORMAT_EX_HEADER: u8 = 9;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IngestError {
    #[error("unsupported video codec {0}: onair relays H.264, HEVC, AV1 and VP9")]
    UnsupportedVideoCodec(&'static str),
    #[error("unsupported audio codec {0}: onair relays AAC, MP3, Opus and FLAC")]
    UnsupportedAudioCodec(&'static str),
    #[error(
        "codec change on {kind:?} track {track} from {from} to {to}: publish a new stream instead"
    )]
    CodecChanged {
        kind: MediaKind,
        track: TrackId,
        from: &'static str,
        to: &'static str,
    },
    #[error("malformed Enhanced RTMP message: {0}")]
    Enhanced(#[from] ExError),
    #[error("malformed Video frame: {0}")]
    Video(#[from] AvcError),
    #[error("malformed Audio frame: {0}")]
    Audio(#[from] AacError),
    #[error("malformed hevc configuration: {0}")]
    Hevc(#[from] HevcError),
    #[error("malformed av1 configuration: {0}")]
    Av1(#[from] Av1Error),
    #[error("malformed vp9 configuration: {0}")]
    Vp9(#[from] Vp9Error),
    #[error("malformed opus configuration: {0}")]
    Opus(#[from] OpusError),
    #[error("malformed flac configuration: {0}")]
    Flac(#[from] FlacError),
}

/// One configuration or frame of a track other than the first of a message.
#[derive(Debug, Clone, PartialEq)]
pub enum TrackItem {
    Config(CodecConfig),
    Frame(Frame),
}

/// What one tag body yields: a configuration (first, when it changed or was announced)
/// and/or a frame of its first track, and (Enhanced RTMP multitrack) the items of its
/// other tracks. All empty for tags that carry nothing for viewers (end of sequence,
/// command frames, metadata).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ingested {
    pub config: Option<CodecConfig>,
    pub frame: Option<Frame>,
    /// Further tracks of a multitrack message, in message order.
    pub more: Vec<TrackItem>,
}

impl Ingested {
    fn add_config(&mut self, c: CodecConfig) {
        if self.config.is_none() && self.frame.is_none() && self.more.is_empty() {
            self.config = Some(c);
        } else {
            self.more.push(TrackItem::Config(c));
        }
    }

    fn add_frame(&mut self, f: Frame) {
        let first_track = self.config.as_ref().map(|c| c.track);
        if self.frame.is_none() && self.more.is_empty() && first_track.is_none_or(|t| t == f.track)
        {
            self.frame = Some(f);
        } else {
            self.more.push(TrackItem::Frame(f));
        }
    }

    /// Every configuration and frame, in order.
    pub fn into_items(self) -> impl Iterator<Item = TrackItem> {
        self.config
            .map(TrackItem::Config)
            .into_iter()
            .chain(self.frame.map(TrackItem::Frame))
            .chain(self.more)
    }
}

/// Per-publisher reader of FLV tag bodies.
#[derive(Debug, Default)]
pub struct TagReader {
    /// The audio configuration last announced for a codec without a sequence header
    /// (MP3, opaque legacy formats), to announce it again only when it changes.
    implicit_audio: Option<CodecConfig>,
    /// The codec each track was configured with: a later configuration of another
    /// codec is a mid-stream codec change, which is refused.
    codecs: HashMap<(MediaKind, TrackId), Codec>,
    /// VP9 tracks whose picture size is not known yet (vpcC does not carry it; the
    /// first keyframe does), with their configuration to announce again with the size.
    vp9_unsized: HashMap<TrackId, CodecConfig>,
    /// Enhanced MP3 tracks' last announced configuration (no sequence header either).
    enhanced_mp3: HashMap<TrackId, CodecConfig>,
    /// Each video track's last configuration, announced again when its colorInfo changes.
    video_configs: HashMap<TrackId, CodecConfig>,
    /// The colorInfo each video track's Metadata last gave (`None`: reset).
    colors: HashMap<TrackId, Option<crate::eflv::ColorInfo>>,
    limits: ParseLimits,
}

impl TagReader {
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks a new configuration against the track's codec so far.
    fn configured(&mut self, c: &CodecConfig) -> Result<(), IngestError> {
        match self.codecs.get(&(c.kind, c.track)) {
            Some(&old) if old != c.codec => Err(IngestError::CodecChanged {
                kind: c.kind,
                track: c.track,
                from: old.name(),
                to: c.codec.name(),
            }),
            _ => {
                self.codecs.insert((c.kind, c.track), c.codec);
                Ok(())
            }
        }
    }

    /// One video tag body at wire timestamp `ts`: legacy H.264 (codec id 7), legacy HEVC
    /// (codec id 12, as some CDNs send it) or Enhanced RTMP (ex-header, any FourCC onair
    /// knows, Multitrack and ModEx included).
    pub fn video_tag(&mut self, ts: u32, body: &Bytes) -> Result<Ingested, IngestError> {
        let msg = parse_video(body, &self.limits)?;
        let mut out = Ingested::default();
        if msg.command.is_some() {
            return Ok(out);
        }
        for p in msg.packets {
            if !matches!(p.codec, Codec::H264 | Codec::Hevc | Codec::Av1 | Codec::Vp9) {
                return Err(IngestError::UnsupportedVideoCodec(p.codec.name()));
            }
            match p.kind {
                PacketKind::Config => {
                    let mut c = video_config(p.codec, p.payload)?;
                    c.track = p.track;
                    self.configured(&c)?;
                    c.color = self.colors.get(&c.track).copied().flatten().map(Box::new);
                    self.video_configs.insert(c.track, c.clone());
                    if c.codec == Codec::Vp9 && c.summary.width.is_none() {
                        self.vp9_unsized.insert(c.track, c.clone());
                    } else {
                        self.vp9_unsized.remove(&c.track);
                    }
                    out.add_config(c);
                }
                PacketKind::Frame => {
                    if p.codec == Codec::Vp9 && p.keyframe {
                        if let Some(c) = self.vp9_sized(p.track, &p.payload) {
                            out.add_config(c);
                        }
                    }
                    out.add_frame(frame(MediaKind::Video, ts, p));
                }
                // AV1's MPEG-2 TS form of the configuration repeats what av1C said, and
                // an end of sequence carries nothing for viewers.
                PacketKind::Mpeg2TsConfig | PacketKind::End => {}
            }
        }
        // colorInfo is kept on the track's configuration, which is announced again with it.
        for m in msg.metadata {
            let Some(color) = m.color_info else { continue };
            // An empty colorInfo (FFmpeg sends one when nothing is tagged) says nothing.
            let color = color.filter(|c| *c != crate::eflv::ColorInfo::default());
            self.colors.insert(m.track, color);
            if let Some(c) = self.video_configs.get_mut(&m.track) {
                if c.color.as_deref() != color.as_ref() {
                    c.color = color.map(Box::new);
                    out.add_config(c.clone());
                }
            }
        }
        Ok(out)
    }

    /// The VP9 configuration again, with the size a keyframe gives, the first time.
    fn vp9_sized(&mut self, track: TrackId, data: &[u8]) -> Option<CodecConfig> {
        let h = Vp9FrameHeader::parse(data).ok()?;
        let (w, hgt) = (h.width?, h.height?);
        let mut c = self.vp9_unsized.remove(&track)?;
        c.summary.width = Some(w);
        c.summary.height = Some(hgt);
        self.video_configs.insert(track, c.clone());
        Some(c)
    }

    /// One audio tag body at wire timestamp `ts`.
    pub fn audio_tag(&mut self, ts: u32, body: &Bytes) -> Result<Ingested, IngestError> {
        if body.first().map(|b| b >> 4) == Some(SOUND_FORMAT_EX_HEADER) {
            return self.enhanced_audio(ts, body);
        }
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
                let c = CodecConfig {
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
                    color: None,
                };
                self.configured(&c)?;
                Ok(Ingested {
                    config: Some(c),
                    ..Ingested::default()
                })
            }
            (Codec::Aac, Some(AAC_RAW)) => Ok(Ingested {
                frame: Some(frame(payload)),
                ..Ingested::default()
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
                    let c = CodecConfig {
                        kind: MediaKind::Audio,
                        track: 0,
                        codec,
                        record: Bytes::new(),
                        summary: audio_summary(&params),
                        params,
                        flv_sound_flags: flags,
                        color: None,
                    };
                    self.implicit_audio = Some(c.clone());
                    c
                });
                Ok(Ingested {
                    config,
                    frame: Some(frame(payload)),
                    more: Vec::new(),
                })
            }
        }
    }

    /// An Enhanced RTMP audio message (SoundFormat 9): `mp4a`, `Opus`, `fLaC`, `.mp3`;
    /// `ac-3` and `ec-3` are refused by name.
    fn enhanced_audio(&mut self, ts: u32, body: &Bytes) -> Result<Ingested, IngestError> {
        let msg = parse_audio(body, &self.limits)?;
        let mut out = Ingested::default();
        for p in msg.packets {
            if !matches!(p.codec, Codec::Aac | Codec::Mp3 | Codec::Opus | Codec::Flac) {
                return Err(IngestError::UnsupportedAudioCodec(p.codec.name()));
            }
            match p.kind {
                PacketKind::Config if p.codec == Codec::Mp3 => {}
                PacketKind::Config => {
                    let mut c = audio_config(p.codec, p.payload)?;
                    c.track = p.track;
                    self.configured(&c)?;
                    out.add_config(c);
                }
                PacketKind::Frame => {
                    if p.codec == Codec::Mp3 {
                        if let Some(c) = self.enhanced_mp3_config(p.track, &p.payload)? {
                            out.add_config(c);
                        }
                    }
                    out.add_frame(frame(MediaKind::Audio, ts, p));
                }
                PacketKind::End | PacketKind::Mpeg2TsConfig => {}
            }
        }
        Ok(out)
    }

    /// MP3 has no sequence header in Enhanced RTMP either: a configuration when the
    /// frame header changes.
    fn enhanced_mp3_config(
        &mut self,
        track: TrackId,
        data: &[u8],
    ) -> Result<Option<CodecConfig>, IngestError> {
        let Ok(h) = Mp3Header::parse(data) else {
            return Ok(None);
        };
        let params = CodecParams::Mp3(h);
        if self
            .enhanced_mp3
            .get(&track)
            .is_some_and(|c| c.params == params)
        {
            return Ok(None);
        }
        let c = CodecConfig {
            kind: MediaKind::Audio,
            track,
            codec: Codec::Mp3,
            record: Bytes::new(),
            summary: audio_summary(&params),
            params,
            flv_sound_flags: None,
            color: None,
        };
        self.configured(&c)?;
        self.enhanced_mp3.insert(track, c.clone());
        Ok(Some(c))
    }
}

fn frame(kind: MediaKind, ts: u32, p: Packet) -> Frame {
    Frame {
        kind,
        track: p.track,
        codec: p.codec,
        dts: ts as u64,
        cts: p.composition_offset_ms,
        nanos: p.timestamp_offset_ns,
        keyframe: kind == MediaKind::Video && p.keyframe,
        data: p.payload,
    }
}

fn audio_summary(params: &CodecParams) -> MediaSummary {
    let (rate, channels) = match params {
        CodecParams::Mp3(m) => (m.sample_rate, m.channels),
        CodecParams::Aac(a) => (a.sample_rate, a.channel_config),
        // Opus always decodes at 48 kHz; the ID header's rate is the input's, for info.
        CodecParams::Opus(o) => (48_000, o.channels),
        CodecParams::Flac(f) => (f.sample_rate, f.channels),
        _ => return MediaSummary::default(),
    };
    MediaSummary {
        sample_rate: Some(rate),
        channels: Some(channels),
        ..MediaSummary::default()
    }
}

/// A video configuration from its record (avcC, hvcC, av1C, vpcC). The summary comes
/// from the SPS or sequence header inside; one we cannot read leaves it empty (the
/// stream still plays), a record we cannot read is an error.
pub fn video_config(codec: Codec, record: Bytes) -> Result<CodecConfig, IngestError> {
    let (params, summary) = match codec {
        Codec::H264 => return Ok(avc_config(record)?),
        Codec::Hevc => {
            let h = HevcDecoderConfig::parse(&record)?;
            let summary = match h.sps_info() {
                Ok(sps) => MediaSummary {
                    width: Some(sps.width),
                    height: Some(sps.height),
                    profile: Some(hevc_profile_name(sps.profile_idc).to_string()),
                    level: Some(sps.level_idc as f64 / 30.0),
                    ..MediaSummary::default()
                },
                Err(_) => MediaSummary {
                    profile: Some(hevc_profile_name(h.general_profile_idc).to_string()),
                    level: Some(h.general_level_idc as f64 / 30.0),
                    ..MediaSummary::default()
                },
            };
            (CodecParams::Hevc(h), summary)
        }
        Codec::Av1 => {
            let a = Av1Config::parse(&record)?;
            let mut summary = MediaSummary {
                profile: Some(av1_profile_name(a.seq_profile).to_string()),
                level: Some(av1_level(a.seq_level_idx_0)),
                ..MediaSummary::default()
            };
            if let Ok(sh) = a.sequence_header() {
                summary.width = Some(sh.max_frame_width);
                summary.height = Some(sh.max_frame_height);
            }
            (CodecParams::Av1(a), summary)
        }
        Codec::Vp9 => {
            let v = VpcConfig::parse(&record)?;
            let summary = MediaSummary {
                profile: Some(format!("Profile {}", v.profile)),
                level: (v.level != 0).then_some(v.level as f64 / 10.0),
                ..MediaSummary::default()
            };
            (CodecParams::Vp9(v), summary)
        }
        other => return Err(IngestError::UnsupportedVideoCodec(other.name())),
    };
    Ok(CodecConfig {
        kind: MediaKind::Video,
        track: 0,
        codec,
        record,
        params,
        summary,
        flv_sound_flags: None,
        color: None,
    })
}

/// An audio configuration from an Enhanced RTMP SequenceStart record.
pub fn audio_config(codec: Codec, record: Bytes) -> Result<CodecConfig, IngestError> {
    let params = match codec {
        Codec::Aac => CodecParams::Aac(AudioSpecificConfig::parse(&record)?),
        Codec::Opus => CodecParams::Opus(OpusHead::parse(&record)?),
        Codec::Flac => CodecParams::Flac(FlacStreamInfo::parse(&record)?),
        other => return Err(IngestError::UnsupportedAudioCodec(other.name())),
    };
    Ok(CodecConfig {
        kind: MediaKind::Audio,
        track: 0,
        codec,
        record,
        summary: audio_summary(&params),
        params,
        flv_sound_flags: None,
        color: None,
    })
}

/// AV1 `seq_level_idx` as the level number (AV1 spec annex A: 2.0 + idx/4, minor idx%4).
fn av1_level(idx: u8) -> f64 {
    2.0 + (idx >> 2) as f64 + (idx & 3) as f64 / 10.0
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
        color: None,
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
        // An hvcC too short to read is a malformed configuration, named.
        let hevc = Bytes::from_static(&[0x90, b'h', b'v', b'c', b'1', 1, 2, 3, 4]);
        let e = r.video_tag(0, &hevc).unwrap_err();
        assert!(matches!(e, IngestError::Hevc(_)), "{e:?}");
        assert!(e.to_string().contains("hevc"), "{e}");
        // AC-3 and E-AC-3 are known by name and refused by name.
        let ac3 = Bytes::from_static(&[0x90, b'a', b'c', b'-', b'3', 1]);
        assert_eq!(
            r.audio_tag(0, &ac3),
            Err(IngestError::UnsupportedAudioCodec("ac3"))
        );
        // Unknown FourCCs are errors naming the FourCC.
        let xx = Bytes::from_static(&[0x90, b'x', b'v', b'i', b'd', 1]);
        let e = r.video_tag(0, &xx).unwrap_err();
        assert!(e.to_string().contains("xvid"), "{e}");
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

    /// Every tag of an FLV file through one reader, as the session feeds them.
    fn read_file(file: &[u8]) -> (Vec<CodecConfig>, Vec<Frame>) {
        let mut d = crate::flv::FlvDemuxer::new(1 << 20);
        d.push(file);
        let mut r = TagReader::new();
        let (mut configs, mut frames) = (Vec::new(), Vec::new());
        while let Some(ev) = d.next_event().unwrap() {
            let crate::flv::FlvEvent::Tag(t) = ev else {
                continue;
            };
            let got = match t.tag_type {
                TAG_VIDEO => r.video_tag(t.timestamp, &t.body),
                TAG_AUDIO => r.audio_tag(t.timestamp, &t.body),
                _ => continue,
            }
            .unwrap();
            for item in got.into_items() {
                match item {
                    TrackItem::Config(c) => configs.push(c),
                    TrackItem::Frame(f) => frames.push(f),
                }
            }
        }
        (configs, frames)
    }

    /// FFmpeg 8's Enhanced FLV becomes configs with summaries and frames, and the
    /// Enhanced FLV writer gives back what FFmpeg wrote for the frames and SequenceStart.
    #[test]
    fn ffmpeg8_enhanced_video_and_audio() {
        use crate::eflv::testdata_tags;
        for (file, codec, want) in [
            (
                &include_bytes!("eflv/testdata/hevc.flv")[..],
                Codec::Hevc,
                (Some(322), Some(182), Some("Main"), Some(2.0)),
            ),
            (
                &include_bytes!("eflv/testdata/av1.flv")[..],
                Codec::Av1,
                (Some(322), Some(182), Some("Main"), Some(2.0)),
            ),
            (
                &include_bytes!("eflv/testdata/vp9.flv")[..],
                Codec::Vp9,
                (None, None, Some("Profile 0"), Some(1.1)),
            ),
        ] {
            let (configs, frames) = read_file(file);
            let c = &configs[0];
            assert_eq!((c.kind, c.codec, c.track), (MediaKind::Video, codec, 0));
            let s = &c.summary;
            assert_eq!(
                (s.width, s.height, s.profile.as_deref(), s.level),
                want,
                "{codec:?}"
            );
            assert!(!frames.is_empty());
            assert!(frames.iter().all(|f| f.codec == codec));
            // SequenceStart and frames come back as FFmpeg wrote them (HEVC's CTS too).
            let written: Vec<Bytes> = testdata_tags(file)
                .into_iter()
                .filter(|(t, b)| *t == TAG_VIDEO && b[0] & 0x0f != 4)
                .map(|(_, b)| b)
                .collect();
            let cfg_tag = crate::flv::encode_enhanced_config_tag(c, 0).unwrap();
            assert_eq!(&cfg_tag[11..cfg_tag.len() - 4], &written[0][..]);
            for (f, body) in frames.iter().zip(&written[1..]) {
                let tag = crate::flv::encode_enhanced_frame_tag(f).unwrap();
                assert_eq!(&tag[11..tag.len() - 4], &body[..], "{codec:?}");
            }
        }
        let (configs, frames) = read_file(include_bytes!("eflv/testdata/opus.flv"));
        let c = &configs[0];
        assert_eq!(c.codec, Codec::Opus);
        assert!(matches!(c.params, CodecParams::Opus(_)));
        assert_eq!(
            (c.summary.sample_rate, c.summary.channels),
            (Some(48000), Some(2))
        );
        assert!(frames
            .iter()
            .all(|f| f.codec == Codec::Opus && !f.data.is_empty()));
        let (configs, frames) = read_file(include_bytes!("eflv/testdata/flac.flv"));
        assert_eq!(configs[0].codec, Codec::Flac);
        assert_eq!(
            (configs[0].summary.sample_rate, configs[0].summary.channels),
            (Some(48000), Some(1))
        );
        assert_eq!(&frames[0].data[..2], &[0xff, 0xf8]);
    }

    /// Multitrack: every track's configuration and frames, each with its track id.
    #[test]
    fn ffmpeg8_multitrack_tracks_are_kept_apart() {
        let (configs, frames) = read_file(include_bytes!("eflv/testdata/aac2.flv"));
        let tracks: Vec<_> = configs.iter().map(|c| (c.track, c.codec)).collect();
        assert_eq!(tracks, vec![(0, Codec::Aac), (1, Codec::Aac)]);
        assert_eq!(configs[1].summary.sample_rate, Some(48000));
        assert!(frames.iter().any(|f| f.track == 1));
        let (configs, _) = read_file(include_bytes!("eflv/testdata/hevc2.flv"));
        let tracks: Vec<_> = configs.iter().map(|c| (c.track, c.codec)).collect();
        assert_eq!(tracks, vec![(0, Codec::Hevc), (1, Codec::Hevc)]);
        assert_eq!(configs[1].summary.profile.as_deref(), Some("Main 10"));
    }

    #[test]
    fn legacy_hevc_id_12_and_modex_nanos() {
        let hevc = read_file(include_bytes!("eflv/testdata/hevc.flv")).0[0].clone();
        let mut r = TagReader::new();
        let mut legacy = vec![0x1c, 0, 0, 0, 0];
        legacy.extend_from_slice(&hevc.record);
        let c = r
            .video_tag(0, &Bytes::from(legacy))
            .unwrap()
            .config
            .unwrap();
        assert_eq!((c.codec, c.summary.width), (Codec::Hevc, Some(322)));
        let f = r
            .video_tag(
                40,
                &Bytes::from_static(&[0x2c, 1, 0, 0, 5, 0, 0, 0, 1, 0x02]),
            )
            .unwrap()
            .frame
            .unwrap();
        assert_eq!((f.codec, f.cts, f.keyframe), (Codec::Hevc, 5, false));
        // ModEx TimestampOffsetNano (size 3 -> byte 2, 500_000 ns) before CodedFramesX.
        let mut m = vec![0x80 | (2 << 4) | 7, 2, 0x07, 0xa1, 0x20, 0x03];
        m.extend_from_slice(b"hvc1");
        m.extend_from_slice(&[0, 0, 0, 1, 0x02]);
        let f = r.video_tag(80, &Bytes::from(m)).unwrap().frame.unwrap();
        assert_eq!((f.dts, f.nanos, f.cts), (80, 500_000, 0));
    }

    #[test]
    fn color_info_metadata_is_kept_on_the_track_configuration() {
        let hevc = read_file(include_bytes!("eflv/testdata/hevc.flv")).0[0].clone();
        assert_eq!(hevc.color, None, "FFmpeg's empty colorInfo says nothing");
        let mut r = TagReader::new();
        let mut seq = b"\x90hvc1".to_vec();
        seq.extend_from_slice(&hevc.record);
        r.video_tag(0, &Bytes::from(seq.clone())).unwrap();
        // Metadata (packet type 4): colorInfo { colorConfig { bitDepth 10, BT.2020, PQ } }.
        let key = |o: &mut Vec<u8>, k: &str| {
            o.extend_from_slice(&(k.len() as u16).to_be_bytes());
            o.extend_from_slice(k.as_bytes());
        };
        let mut m = b"\x94hvc1\x02\x00\x09colorInfo\x03".to_vec();
        key(&mut m, "colorConfig");
        m.push(3);
        for (k, n) in [
            ("bitDepth", 10.0f64),
            ("colorPrimaries", 9.0),
            ("transferCharacteristics", 16.0),
            ("matrixCoefficients", 9.0),
        ] {
            key(&mut m, k);
            m.push(0);
            m.extend_from_slice(&n.to_be_bytes());
        }
        m.extend_from_slice(&[0, 0, 9, 0, 0, 9]);
        let got = r.video_tag(10, &Bytes::from(m.clone())).unwrap();
        let c = got
            .config
            .expect("the configuration, announced again with its colour");
        let color = **c.color.as_ref().expect("colorInfo kept");
        assert_eq!(
            (
                color.bit_depth,
                color.color_primaries,
                color.transfer_characteristics
            ),
            (Some(10.0), Some(9.0), Some(16.0))
        );
        assert!(c.same_as(&hevc), "the same decoder configuration");
        // The same colorInfo again changes nothing; a later sequence start keeps it.
        assert!(r.video_tag(20, &Bytes::from(m)).unwrap().config.is_none());
        let again = r.video_tag(30, &Bytes::from(seq)).unwrap().config.unwrap();
        assert_eq!(again.color.as_deref(), Some(&color));
        // colorInfo = Undefined resets it.
        let reset = r
            .video_tag(
                40,
                &Bytes::from_static(b"\x94hvc1\x02\x00\x09colorInfo\x06"),
            )
            .unwrap()
            .config
            .unwrap();
        assert_eq!(reset.color, None);
    }

    #[test]
    fn a_codec_change_mid_stream_is_refused_by_name() {
        let mut r = TagReader::new();
        r.video_tag(0, &avc_seq()).unwrap();
        let hevc = read_file(include_bytes!("eflv/testdata/hevc.flv")).0[0].clone();
        let mut seq = b"\x90hvc1".to_vec();
        seq.extend_from_slice(&hevc.record);
        let e = r.video_tag(100, &Bytes::from(seq)).unwrap_err();
        assert_eq!(
            e,
            IngestError::CodecChanged {
                kind: MediaKind::Video,
                track: 0,
                from: "h264",
                to: "hevc"
            }
        );
        assert!(e.to_string().contains("hevc"));
        // The same codec again is a new configuration, not a change.
        assert!(r.video_tag(200, &avc_seq()).unwrap().config.is_some());
    }
}
