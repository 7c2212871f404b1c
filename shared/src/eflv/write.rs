//! Builds single-track FLV/RTMP message bodies from a packet: legacy form for H.264, AAC and
//! MP3 (what every player reads), the Enhanced RTMP ex-header for every other codec. An output
//! calls it once per frame and shares the bytes; it never writes Multitrack, ModEx or Metadata.

use bytes::{BufMut, Bytes, BytesMut};

use super::{LegacySoundInfo, PacketKind};
use crate::codec::Codec;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    #[error("{0} has no FLV form onair writes")]
    NoFlvForm(&'static str),
    #[error("{kind:?} packets are not defined for {codec}")]
    KindNotForCodec {
        kind: PacketKind,
        codec: &'static str,
    },
    #[error("composition offset {0} ms does not fit in 24 bits")]
    CompositionOffset(i32),
}

const SI24_MIN: i32 = -(1 << 23);
const SI24_MAX: i32 = (1 << 23) - 1;

fn put_si24(out: &mut BytesMut, v: i32) -> Result<(), WriteError> {
    if !(SI24_MIN..=SI24_MAX).contains(&v) {
        return Err(WriteError::CompositionOffset(v));
    }
    let b = v.to_be_bytes();
    out.put_slice(&b[1..]);
    Ok(())
}

/// A video message body. H.264 is written in legacy form (codec id 7), everything else with
/// the ex-header; H.264/HEVC frames carry `composition_offset_ms` as SI24 (CodedFrames).
pub fn video_body(
    codec: Codec,
    kind: PacketKind,
    keyframe: bool,
    composition_offset_ms: i32,
    payload: &[u8],
) -> Result<Bytes, WriteError> {
    let frame_type: u8 = if keyframe { 1 } else { 2 };
    let mut out = BytesMut::with_capacity(payload.len() + 8);
    if codec == Codec::H264 {
        let packet_type = match kind {
            PacketKind::Config => 0,
            PacketKind::Frame => 1,
            PacketKind::End => 2,
            PacketKind::Mpeg2TsConfig => {
                return Err(WriteError::KindNotForCodec {
                    kind,
                    codec: codec.name(),
                })
            }
        };
        out.put_u8((frame_type << 4) | 7);
        out.put_u8(packet_type);
        put_si24(
            &mut out,
            if kind == PacketKind::Frame {
                composition_offset_ms
            } else {
                0
            },
        )?;
    } else {
        let fourcc = match codec {
            Codec::Hevc | Codec::Av1 | Codec::Vp9 => codec.fourcc(),
            _ => None,
        }
        .ok_or(WriteError::NoFlvForm(codec.name()))?;
        let packet_type = match kind {
            PacketKind::Config => 0,
            PacketKind::Frame => 1,
            PacketKind::End => 2,
            PacketKind::Mpeg2TsConfig if codec == Codec::Av1 => 5,
            PacketKind::Mpeg2TsConfig => {
                return Err(WriteError::KindNotForCodec {
                    kind,
                    codec: codec.name(),
                })
            }
        };
        out.put_u8(0x80 | (frame_type << 4) | packet_type);
        out.put_slice(&fourcc);
        if kind == PacketKind::Frame && codec == Codec::Hevc {
            put_si24(&mut out, composition_offset_ms)?;
        }
    }
    out.put_slice(payload);
    Ok(out.freeze())
}

/// An audio message body. AAC and MP3 are written in legacy form (MP3 needs `mp3` for its
/// rate and channel bits; `mp3_legacy_info` makes one), every other codec with SoundFormat 9.
pub fn audio_body(
    codec: Codec,
    kind: PacketKind,
    mp3: Option<LegacySoundInfo>,
    payload: &[u8],
) -> Result<Bytes, WriteError> {
    let mut out = BytesMut::with_capacity(payload.len() + 5);
    let not_for = || WriteError::KindNotForCodec {
        kind,
        codec: codec.name(),
    };
    match codec {
        Codec::Aac => {
            // 0xAF: AAC, 44 kHz, 16-bit, stereo, as the legacy spec fixes them for AAC.
            out.put_u8(0xaf);
            out.put_u8(match kind {
                PacketKind::Config => 0,
                PacketKind::Frame => 1,
                _ => return Err(not_for()),
            });
        }
        Codec::Mp3 => {
            if kind != PacketKind::Frame {
                return Err(not_for());
            }
            let info = mp3.ok_or(WriteError::NoFlvForm("mp3 without its rate and channels"))?;
            out.put_u8(
                (info.sound_format << 4)
                    | ((info.rate_code & 3) << 2)
                    | ((info.sample_size_16bit as u8) << 1)
                    | info.stereo as u8,
            );
        }
        Codec::Opus | Codec::Flac | Codec::Ac3 | Codec::Eac3 => {
            let packet_type = match kind {
                PacketKind::Config => 0,
                PacketKind::Frame => 1,
                PacketKind::End => 2,
                PacketKind::Mpeg2TsConfig => return Err(not_for()),
            };
            out.put_u8(0x90 | packet_type);
            out.put_slice(&codec.fourcc().ok_or(WriteError::NoFlvForm(codec.name()))?);
        }
        _ => return Err(WriteError::NoFlvForm(codec.name())),
    }
    out.put_slice(payload);
    Ok(out.freeze())
}

/// The legacy header bits for MP3 at a sample rate: 8 kHz is SoundFormat 14; other rates
/// take the nearest legacy rate code (players read the rate from the MP3 frames).
pub fn mp3_legacy_info(sample_rate: u32, stereo: bool) -> LegacySoundInfo {
    let (sound_format, rate_code) = match sample_rate {
        8000 => (14, 0),
        0..=8000 => (2, 0),
        8001..=16_000 => (2, 1),
        16_001..=32_000 => (2, 2),
        _ => (2, 3),
    };
    LegacySoundInfo {
        sound_format,
        rate_code,
        sample_size_16bit: true,
        stereo,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eflv::{parse_audio, parse_video, ParseLimits};

    #[test]
    fn video_round_trips_through_the_parser() {
        let payload = [0, 0, 0, 2, 0x26, 0x01];
        for codec in [Codec::H264, Codec::Hevc, Codec::Av1, Codec::Vp9] {
            for kind in [PacketKind::Config, PacketKind::Frame, PacketKind::End] {
                for (keyframe, cts) in [(true, 0), (false, 66), (false, -33)] {
                    let body = video_body(codec, kind, keyframe, cts, &payload).unwrap();
                    let m = parse_video(&body, &ParseLimits::default()).unwrap();
                    assert_eq!(m.enhanced, codec != Codec::H264);
                    let p = &m.packets[0];
                    assert_eq!((p.codec, p.kind, p.keyframe), (codec, kind, keyframe));
                    assert_eq!(&p.payload[..], &payload[..]);
                    let carries_cts =
                        kind == PacketKind::Frame && matches!(codec, Codec::H264 | Codec::Hevc);
                    assert_eq!(p.composition_offset_ms, if carries_cts { cts } else { 0 });
                }
            }
        }
        // FFmpeg's bytes for an HEVC inter frame with CTS 100 ms.
        let b = video_body(Codec::Hevc, PacketKind::Frame, false, 100, &[0xaa]).unwrap();
        assert_eq!(&b[..], b"\xa1hvc1\x00\x00\x64\xaa");
        let b = video_body(Codec::H264, PacketKind::Config, true, 0, &[1]).unwrap();
        assert_eq!(&b[..], b"\x17\x00\x00\x00\x00\x01");
        let b = video_body(Codec::Av1, PacketKind::Mpeg2TsConfig, true, 0, &[0x80]).unwrap();
        assert_eq!(&b[..], b"\x95av01\x80");
    }

    #[test]
    fn audio_round_trips_through_the_parser() {
        for codec in [
            Codec::Opus,
            Codec::Flac,
            Codec::Ac3,
            Codec::Eac3,
            Codec::Aac,
        ] {
            for kind in [PacketKind::Config, PacketKind::Frame, PacketKind::End] {
                let Ok(body) = audio_body(codec, kind, None, &[7, 8]) else {
                    assert_eq!((codec, kind), (Codec::Aac, PacketKind::End));
                    continue;
                };
                let m = parse_audio(&body, &ParseLimits::default()).unwrap();
                let p = &m.packets[0];
                assert_eq!(
                    (p.codec, p.kind, &p.payload[..]),
                    (codec, kind, &[7u8, 8][..])
                );
            }
        }
        let info = mp3_legacy_info(44_100, true);
        let body = audio_body(Codec::Mp3, PacketKind::Frame, Some(info), &[0xff, 0xfb]).unwrap();
        assert_eq!(&body[..], b"\x2f\xff\xfb");
        let m = parse_audio(&body, &ParseLimits::default()).unwrap();
        assert_eq!(m.legacy, Some(info));
        assert_eq!(mp3_legacy_info(8000, false).sound_format, 14);
        assert_eq!(
            audio_body(Codec::Aac, PacketKind::Config, None, &[0x12, 0x10]).unwrap()[..2],
            [0xaf, 0]
        );
    }

    #[test]
    fn what_cannot_be_written() {
        assert_eq!(
            video_body(Codec::Hevc, PacketKind::Frame, true, 1 << 23, &[]),
            Err(WriteError::CompositionOffset(1 << 23))
        );
        assert!(video_body(Codec::Other(2), PacketKind::Frame, true, 0, &[]).is_err());
        assert!(video_body(Codec::Opus, PacketKind::Frame, true, 0, &[]).is_err());
        assert!(video_body(Codec::Hevc, PacketKind::Mpeg2TsConfig, true, 0, &[]).is_err());
        assert!(audio_body(Codec::Mp3, PacketKind::Frame, None, &[]).is_err());
        assert!(audio_body(
            Codec::Mp3,
            PacketKind::Config,
            Some(mp3_legacy_info(44_100, true)),
            &[]
        )
        .is_err());
        assert!(audio_body(Codec::Hevc, PacketKind::Frame, None, &[]).is_err());
    }
}
