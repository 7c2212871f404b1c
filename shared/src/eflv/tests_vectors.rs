//! Byte-vector tests: real Enhanced FLV written by FFmpeg 8.1 (testdata/, see its README)
//! and hand-built messages for the framings FFmpeg does not write (ManyTracks, ModEx).

use bytes::Bytes;

use super::*;
use crate::av1::Av1Config;
use crate::flac::FlacStreamInfo;
use crate::flv::{FlvDemuxer, FlvEvent, TAG_AUDIO, TAG_VIDEO};
use crate::hevc::HevcDecoderConfig;
use crate::opus::OpusHead;
use crate::vp9::VpcConfig;

fn lim() -> ParseLimits {
    ParseLimits::default()
}

fn v(bytes: &[u8]) -> Result<VideoMessage, ExError> {
    parse_video(&Bytes::copy_from_slice(bytes), &lim())
}

fn a(bytes: &[u8]) -> Result<AudioMessage, ExError> {
    parse_audio(&Bytes::copy_from_slice(bytes), &lim())
}

/// The (tag type, body) of every tag of an FLV file.
fn tags(file: &[u8]) -> Vec<(u8, Bytes)> {
    let mut d = FlvDemuxer::new(1 << 20);
    d.push(file);
    let mut out = Vec::new();
    while let Some(ev) = d.next_event().unwrap() {
        if let FlvEvent::Tag(t) = ev {
            out.push((t.tag_type, t.body));
        }
    }
    out
}

fn video_packets(file: &[u8]) -> Vec<(VideoMessage, Bytes)> {
    tags(file)
        .into_iter()
        .filter(|(t, _)| *t == TAG_VIDEO)
        .map(|(_, b)| (parse_video(&b, &lim()).unwrap(), b))
        .collect()
}

fn audio_messages(file: &[u8]) -> Vec<AudioMessage> {
    tags(file)
        .into_iter()
        .filter(|(t, _)| *t == TAG_AUDIO)
        .map(|(_, b)| parse_audio(&b, &lim()).unwrap())
        .collect()
}

/// The payload is a view into the message, not a copy.
fn is_slice_of(part: &Bytes, whole: &Bytes) -> bool {
    let (p, w) = (part.as_ptr() as usize, whole.as_ptr() as usize);
    part.is_empty() || (p >= w && p + part.len() <= w + whole.len())
}

#[test]
fn ffmpeg8_hevc_sequence_start_metadata_and_frames() {
    let msgs = video_packets(include_bytes!("testdata/hevc.flv"));
    let (start, body) = &msgs[0];
    assert!(start.enhanced);
    assert_eq!(start.frame_type, FrameType::Key);
    assert_eq!(start.packets.len(), 1);
    let p = &start.packets[0];
    assert_eq!(
        (p.track, p.codec, p.kind),
        (0, Codec::Hevc, PacketKind::Config)
    );
    assert!(is_slice_of(&p.payload, body));
    let cfg = HevcDecoderConfig::parse(&p.payload).unwrap();
    let sps = cfg.sps_info().unwrap();
    assert_eq!((sps.width, sps.height), (322, 182));
    assert_eq!((cfg.general_profile_idc, cfg.general_level_idc), (1, 60));
    // FFmpeg sends colorInfo as a Command-frame Metadata packet: frame type is ignored there.
    let (meta, _) = &msgs[1];
    assert!(meta.packets.is_empty() && meta.command.is_none());
    assert_eq!(meta.metadata.len(), 1);
    assert_eq!(
        meta.metadata[0].color_info,
        Some(Some(ColorInfo::default()))
    );
    // Inter frames: CodedFrames with a composition offset (B-frames reorder here).
    let (frame, body) = &msgs[2];
    let p = &frame.packets[0];
    assert_eq!((p.kind, p.keyframe), (PacketKind::Frame, false));
    assert_eq!(p.composition_offset_ms, 0x64);
    assert!(is_slice_of(&p.payload, body));
    // The access unit is length-prefixed NAL units that fill the payload exactly.
    let n = crate::avc::split_length_prefixed(&p.payload, cfg.nal_length_size).unwrap();
    assert!(!n.is_empty());
}

#[test]
fn ffmpeg8_av1_has_no_composition_offset() {
    let msgs = video_packets(include_bytes!("testdata/av1.flv"));
    let p = &msgs[0].0.packets[0];
    assert_eq!((p.codec, p.kind), (Codec::Av1, PacketKind::Config));
    let cfg = Av1Config::parse(&p.payload).unwrap();
    let sh = cfg.sequence_header().unwrap();
    assert_eq!((sh.max_frame_width, sh.max_frame_height), (322, 182));
    assert_eq!(
        (cfg.seq_profile, cfg.seq_level_idx_0, cfg.bit_depth()),
        (0, 0, 8)
    );
    let frames: Vec<_> = msgs
        .iter()
        .flat_map(|(m, _)| m.packets.iter())
        .filter(|p| p.kind == PacketKind::Frame)
        .collect();
    assert!(!frames.is_empty());
    for f in frames {
        assert_eq!(f.composition_offset_ms, 0);
        // The payload starts with an OBU header, not an SI24.
        assert!(crate::av1::obus(&f.payload).all(|o| o.is_ok()));
    }
}

#[test]
fn ffmpeg8_vp9_config() {
    let msgs = video_packets(include_bytes!("testdata/vp9.flv"));
    let p = &msgs[0].0.packets[0];
    assert_eq!((p.codec, p.kind), (Codec::Vp9, PacketKind::Config));
    let c = VpcConfig::parse(&p.payload).unwrap();
    assert_eq!(
        (c.profile, c.level, c.bit_depth, c.chroma_subsampling),
        (0, 11, 8, 1)
    );
    assert!(msgs[2..]
        .iter()
        .all(|(m, _)| m.packets[0].composition_offset_ms == 0));
}

#[test]
fn ffmpeg8_multitrack_video_one_track_framing() {
    let msgs = video_packets(include_bytes!("testdata/hevc2.flv"));
    // Track 0 is sent plain; track 1 in OneTrack Multitrack messages.
    let (m, _) = &msgs[1];
    assert_eq!(m.multitrack, Some(MultitrackType::OneTrack));
    let p = &m.packets[0];
    assert_eq!(
        (p.track, p.codec, p.kind),
        (1, Codec::Hevc, PacketKind::Config)
    );
    let cfg = HevcDecoderConfig::parse(&p.payload).unwrap();
    let sps = cfg.sps_info().unwrap();
    assert_eq!((cfg.general_profile_idc, sps.bit_depth_luma), (2, 10));
    assert_eq!((sps.width, sps.height), (322, 182));
    let t1_frames: Vec<_> = msgs
        .iter()
        .flat_map(|(m, _)| m.packets.iter())
        .filter(|p| p.track == 1 && p.kind == PacketKind::Frame)
        .collect();
    assert_eq!(t1_frames.len(), 2);
    assert_eq!(t1_frames[0].composition_offset_ms, 0x64);
}

#[test]
fn ffmpeg8_opus_head_and_multichannel_config() {
    let msgs = audio_messages(include_bytes!("testdata/opus.flv"));
    let p = &msgs[0].packets[0];
    assert_eq!((p.codec, p.kind), (Codec::Opus, PacketKind::Config));
    let h = OpusHead::parse(&p.payload).unwrap();
    assert_eq!(
        (h.channels, h.pre_skip, h.input_sample_rate),
        (2, 312, 48000)
    );
    assert_eq!(h.mapping_family, 0);
    assert_eq!(
        msgs[1].multichannel,
        vec![MultichannelConfig {
            track: 0,
            codec: Codec::Opus,
            channel_count: 2,
            order: ChannelOrder::Native { channel_mask: 3 },
        }]
    );
    let f = &msgs[2].packets[0];
    assert_eq!((f.kind, f.keyframe), (PacketKind::Frame, true));
    // An Opus packet's TOC byte comes first: no header bytes left in the payload.
    assert_eq!(f.payload[0], 0xfc);
}

#[test]
fn ffmpeg8_flac_streaminfo() {
    let msgs = audio_messages(include_bytes!("testdata/flac.flv"));
    let p = &msgs[0].packets[0];
    assert_eq!((p.codec, p.kind), (Codec::Flac, PacketKind::Config));
    let s = FlacStreamInfo::parse(&p.payload).unwrap();
    assert_eq!(
        (s.sample_rate, s.channels, s.bits_per_sample),
        (48000, 1, 16)
    );
    let f = msgs.iter().find(|m| {
        m.packets
            .first()
            .is_some_and(|p| p.kind == PacketKind::Frame)
    });
    // FLAC frames start with the 14-bit sync code 0xfff8.
    assert_eq!(&f.unwrap().packets[0].payload[..2], &[0xff, 0xf8]);
}

#[test]
fn ffmpeg8_second_aac_track_in_multitrack_messages() {
    let msgs = audio_messages(include_bytes!("testdata/aac2.flv"));
    assert!(!msgs[0].enhanced);
    let p = &msgs[0].packets[0];
    assert_eq!(
        (p.track, p.codec, p.kind),
        (0, Codec::Aac, PacketKind::Config)
    );
    assert_eq!(&p.payload[..], &[0x11, 0x88, 0x56, 0xe5, 0x00]);
    let p = &msgs[1].packets[0];
    assert_eq!(msgs[1].multitrack, Some(MultitrackType::OneTrack));
    assert_eq!(
        (p.track, p.codec, p.kind),
        (1, Codec::Aac, PacketKind::Config)
    );
    let asc = crate::aac::AudioSpecificConfig::parse(&p.payload).unwrap();
    assert_eq!((asc.sample_rate, asc.channel_config), (48000, 1));
    assert_eq!(msgs[2].multichannel[0].track, 1);
    let last = msgs.last().unwrap();
    assert_eq!(
        (last.packets[0].track, last.packets[0].kind),
        (1, PacketKind::Frame)
    );
}

// ---- hand-built messages ----

const EX_KEY: u8 = 0x80 | (1 << 4);
const EX_INTER: u8 = 0x80 | (2 << 4);

#[test]
fn every_video_fourcc() {
    for (fourcc, codec) in [
        (*b"avc1", Codec::H264),
        (*b"hvc1", Codec::Hevc),
        (*b"av01", Codec::Av1),
        (*b"vp09", Codec::Vp9),
    ] {
        let mut m = vec![EX_KEY];
        m.extend_from_slice(&fourcc);
        m.extend_from_slice(&[9, 9]);
        let msg = v(&m).unwrap();
        assert_eq!(msg.packets[0].codec, codec);
        assert_eq!(msg.packets[0].kind, PacketKind::Config);
        assert_eq!(&msg.packets[0].payload[..], &[9, 9]);
    }
    for unknown in [*b"vp08", *b"vvc1", *b"HVC1", [0, 1, 2, 3]] {
        let mut m = vec![EX_KEY];
        m.extend_from_slice(&unknown);
        assert_eq!(v(&m), Err(ExError::UnknownVideoFourCc(FourCc(unknown))));
    }
    // The error names the FourCC.
    let e = v(b"\x90vp08").unwrap_err().to_string();
    assert!(e.contains("\"vp08\""), "{e}");
}

#[test]
fn every_audio_fourcc() {
    for (fourcc, codec) in [
        (*b"mp4a", Codec::Aac),
        (*b"Opus", Codec::Opus),
        (*b"fLaC", Codec::Flac),
        (*b".mp3", Codec::Mp3),
        (*b"ac-3", Codec::Ac3),
        (*b"ec-3", Codec::Eac3),
    ] {
        let mut m = vec![0x91];
        m.extend_from_slice(&fourcc);
        m.push(7);
        let msg = a(&m).unwrap();
        assert!(msg.enhanced);
        let p = &msg.packets[0];
        assert_eq!(
            (p.codec, p.kind, &p.payload[..]),
            (codec, PacketKind::Frame, &[7][..])
        );
    }
    assert_eq!(
        a(b"\x91opus"),
        Err(ExError::UnknownAudioFourCc(FourCc(*b"opus")))
    );
    assert!(a(b"\x90Vorb").unwrap_err().to_string().contains("\"Vorb\""));
}

#[test]
fn every_video_packet_type() {
    // SequenceStart, CodedFrames (with SI24), SequenceEnd, CodedFramesX.
    let m = v(b"\x90hvc1\x01\x02").unwrap();
    assert_eq!(m.packets[0].kind, PacketKind::Config);
    let m = v(b"\x91hvc1\xff\xff\xfe\x00\x00\x00\x01\x65").unwrap();
    let p = &m.packets[0];
    assert_eq!(
        (p.kind, p.keyframe, p.composition_offset_ms),
        (PacketKind::Frame, true, -2)
    );
    assert_eq!(&p.payload[..], b"\x00\x00\x00\x01\x65");
    let m = v(b"\xa2hvc1").unwrap();
    assert_eq!(m.packets[0].kind, PacketKind::End);
    assert!(m.packets[0].payload.is_empty());
    let m = v(b"\xa3avc1\x00\x00\x00\x01\x41").unwrap();
    let p = &m.packets[0];
    assert_eq!(
        (p.kind, p.keyframe, p.composition_offset_ms),
        (PacketKind::Frame, false, 0)
    );
    assert_eq!(&p.payload[..], b"\x00\x00\x00\x01\x41");
    // CodedFrames of AVC too short for its SI24.
    assert!(matches!(
        v(b"\x91avc1\x00\x01"),
        Err(ExError::Truncated { .. })
    ));
    // VP9 CodedFrames carry no SI24: the frame starts right after the FourCC.
    let m = v(b"\x91vp09\x82\x49\x83\x42").unwrap();
    assert_eq!(&m.packets[0].payload[..], b"\x82\x49\x83\x42");
    // MPEG2TSSequenceStart: AV1 only.
    let m = v(b"\x95av01\x80\x04").unwrap();
    assert_eq!(m.packets[0].kind, PacketKind::Mpeg2TsConfig);
    assert!(matches!(
        v(b"\x95hvc1\x80"),
        Err(ExError::PacketTypeNotForCodec { packet_type: 5, .. })
    ));
    // Reserved packet types.
    for pt in 8..=15u8 {
        assert_eq!(
            v(&[0x90 | pt, b'h', b'v', b'c', b'1']),
            Err(ExError::ReservedVideoPacketType(pt))
        );
    }
    // Reserved frame type outside Metadata.
    assert_eq!(
        v(b"\x81hvc1\x00\x00\x00"),
        Err(ExError::ReservedFrameType(0))
    );
    assert_eq!(v(b""), Err(ExError::EmptyVideo));
    assert!(matches!(v(b"\x90hv"), Err(ExError::Truncated { .. })));
}

/// AMF0: "colorInfo" then an object with colorConfig and hdrCll.
fn color_info_amf() -> Vec<u8> {
    fn key(out: &mut Vec<u8>, k: &str) {
        out.extend_from_slice(&(k.len() as u16).to_be_bytes());
        out.extend_from_slice(k.as_bytes());
    }
    fn num(out: &mut Vec<u8>, k: &str, n: f64) {
        key(out, k);
        out.push(0);
        out.extend_from_slice(&n.to_be_bytes());
    }
    let mut o = vec![2, 0, 9];
    o.extend_from_slice(b"colorInfo");
    o.push(3);
    key(&mut o, "colorConfig");
    o.push(3);
    num(&mut o, "bitDepth", 10.0);
    num(&mut o, "colorPrimaries", 9.0);
    num(&mut o, "transferCharacteristics", 16.0);
    num(&mut o, "matrixCoefficients", 9.0);
    o.extend_from_slice(&[0, 0, 9]);
    key(&mut o, "hdrCll");
    o.push(3);
    num(&mut o, "maxFall", 400.0);
    num(&mut o, "maxCLL", 1000.0);
    o.extend_from_slice(&[0, 0, 9]);
    o.extend_from_slice(&[0, 0, 9]);
    o
}

#[test]
fn metadata_color_info_is_parsed_and_kept() {
    let mut m = b"\x94hvc1".to_vec();
    let amf = color_info_amf();
    m.extend_from_slice(&amf);
    let msg = v(&m).unwrap();
    assert!(msg.packets.is_empty());
    let md = &msg.metadata[0];
    assert_eq!(&md.raw[..], &amf[..]);
    let ci = md.color_info.unwrap().unwrap();
    assert_eq!(ci.bit_depth, Some(10.0));
    assert_eq!(ci.transfer_characteristics, Some(16.0));
    assert_eq!((ci.max_fall, ci.max_cll), (Some(400.0), Some(1000.0)));
    assert_eq!(ci.mastering, None);
    // colorInfo = Undefined resets.
    let mut m = b"\x94hvc1\x02\x00\x09colorInfo\x06".to_vec();
    assert_eq!(v(&m).unwrap().metadata[0].color_info, Some(None));
    // Broken AMF is an error, not a silent skip.
    m.truncate(10);
    assert!(matches!(v(&m), Err(ExError::Metadata(_))));
}

#[test]
fn command_frames_carry_no_video() {
    let m = v(b"\xd1\x00").unwrap();
    assert_eq!(m.command, Some(VideoCommand::StartSeek));
    assert!(m.packets.is_empty());
    let m = v(b"\x57\x01").unwrap();
    assert_eq!(
        (m.enhanced, m.command),
        (false, Some(VideoCommand::EndSeek))
    );
}

#[test]
fn modex_timestamp_offset_nano_is_applied() {
    // ModEx (7): size-1 = 2 (3 bytes), 0x01e240 = 123456 ns, then type 0 / CodedFrames.
    let m = v(b"\x97\x02\x01\xe2\x40\x01hvc1\x00\x00\x05\xaa").unwrap();
    let p = &m.packets[0];
    assert_eq!(p.timestamp_offset_ns, 123_456);
    assert_eq!(p.composition_offset_ms, 5);
    assert_eq!(p.dts_ns(1000), 1_000_123_456);
    assert_eq!(&p.payload[..], &[0xaa]);
    // The same for audio.
    let m = a(b"\x97\x02\x00\x00\x07\x01Opus\xfc").unwrap();
    assert_eq!(m.packets[0].timestamp_offset_ns, 7);
    // An unknown ModEx type is skipped (its data is sized), then parsing goes on.
    let m = v(b"\x97\x00\xee\x51hvc1\x00\x00\x00").unwrap();
    assert_eq!(m.packets[0].timestamp_offset_ns, 0);
    // The 16-bit size form: UI8 0xff, then UI16 size-1.
    let mut long = vec![0x97, 0xff, 0x00, 0x02, 0, 0, 9, 0x01];
    long.extend_from_slice(b"hvc1\x00\x00\x00");
    let m = v(&long).unwrap();
    assert_eq!(m.packets[0].timestamp_offset_ns, 9);
}

#[test]
fn modex_bad_input_is_refused() {
    // Too short for a UI24.
    assert_eq!(
        v(b"\x97\x01\x00\x01\x01hvc1"),
        Err(ExError::NanoOffsetTooShort(2))
    );
    // 1,000,000 ns is not below 1 ms.
    assert_eq!(
        v(b"\x97\x02\x0f\x42\x40\x01hvc1"),
        Err(ExError::NanoOffsetTooLarge(1_000_000))
    );
    // A chain of ModEx entries beyond the limit.
    let mut chain = vec![0x97];
    for _ in 0..5 {
        chain.extend_from_slice(&[0x00, 0xee, 0x57]);
    }
    assert_eq!(v(&chain), Err(ExError::TooManyModEx { count: 5, max: 4 }));
    // Twice the nano offset.
    assert_eq!(
        v(b"\x97\x02\x00\x00\x01\x07\x02\x00\x00\x02\x01hvc1"),
        Err(ExError::DuplicateNanoOffset)
    );
    // An entry longer than the limit (the 16-bit form allows 64 KiB).
    let mut big = vec![0x97, 0xff, 0xff, 0xff];
    big.extend(std::iter::repeat_n(0u8, 70_000));
    assert_eq!(
        v(&big),
        Err(ExError::ModExTooLong {
            len: 65_536,
            max: 64
        })
    );
    // A size that runs past the message.
    assert!(matches!(v(b"\x97\x09\x00"), Err(ExError::Truncated { .. })));
}

/// A ManyTracks message of HEVC coded frames with the given (track, declared size, body).
fn many_tracks(tracks: &[(u8, u32, &[u8])]) -> Vec<u8> {
    let mut m = vec![EX_INTER | 6, (1 << 4) | 1];
    m.extend_from_slice(b"hvc1");
    for (id, size, body) in tracks {
        m.push(*id);
        m.extend_from_slice(&size.to_be_bytes()[1..]);
        m.extend_from_slice(body);
    }
    m
}

#[test]
fn multitrack_many_tracks_with_sizes() {
    let t0: &[u8] = b"\x00\x00\x02AAAA";
    let t2: &[u8] = b"\x00\x00\x00BB";
    let body = Bytes::from(many_tracks(&[(0, 7, t0), (2, 5, t2)]));
    let m = parse_video(&body, &lim()).unwrap();
    assert_eq!(m.multitrack, Some(MultitrackType::ManyTracks));
    let got: Vec<_> = m
        .packets
        .iter()
        .map(|p| (p.track, p.codec, p.composition_offset_ms, &p.payload[..]))
        .collect();
    assert_eq!(
        got,
        vec![
            (0, Codec::Hevc, 2, &b"AAAA"[..]),
            (2, Codec::Hevc, 0, &b"BB"[..])
        ]
    );
    assert!(m.packets.iter().all(|p| is_slice_of(&p.payload, &body)));
}

#[test]
fn multitrack_wrong_sizes_end_the_message_with_an_error() {
    // The second track declares more than is left.
    assert_eq!(
        v(&many_tracks(&[
            (0, 4, b"\x00\x00\x00A"),
            (1, 9, b"\x00\x00\x00B")
        ])),
        Err(ExError::TrackSizeOverrun {
            track: 1,
            size: 9,
            left: 4
        })
    );
    // A size too small for the SI24 inside it: the track is truncated, not misread.
    assert!(matches!(
        v(&many_tracks(&[(0, 2, b"\x00\x00\x00A")])),
        Err(ExError::Truncated {
            what: "composition time offset",
            ..
        })
    ));
    // Trailing bytes too short to be another track header.
    let mut m = many_tracks(&[(0, 4, b"\x00\x00\x00A")]);
    m.extend_from_slice(&[3, 0]);
    assert!(matches!(
        v(&m),
        Err(ExError::Truncated {
            what: "track size",
            ..
        })
    ));
    // The same track twice.
    assert_eq!(
        v(&many_tracks(&[
            (1, 3, b"\x00\x00\x00"),
            (1, 3, b"\x00\x00\x00")
        ])),
        Err(ExError::DuplicateTrack(1))
    );
    // More tracks than the limit.
    let many: Vec<(u8, u32, &[u8])> = (0..17).map(|i| (i, 3, &b"\x00\x00\x00"[..])).collect();
    assert_eq!(
        v(&many_tracks(&many)),
        Err(ExError::TooManyTracks { max: 16 })
    );
    // Truncated UI24 size.
    let mut m = vec![0xa6, 0x11];
    m.extend_from_slice(b"hvc1\x00\x00");
    assert!(matches!(
        v(&m),
        Err(ExError::Truncated {
            what: "track size",
            ..
        })
    ));
}

#[test]
fn multitrack_many_codecs_and_nesting() {
    // ManyTracksManyCodecs of sequence starts: av01 on track 0, hvc1 on track 1.
    let mut m = vec![0x96, 0x20];
    m.extend_from_slice(b"av01\x00\x00\x00\x02\x81\x00");
    m.extend_from_slice(b"hvc1\x01\x00\x00\x01\x01");
    let msg = v(&m).unwrap();
    assert_eq!(msg.multitrack, Some(MultitrackType::ManyTracksManyCodecs));
    let got: Vec<_> = msg
        .packets
        .iter()
        .map(|p| (p.track, p.codec, p.payload.len()))
        .collect();
    assert_eq!(got, vec![(0, Codec::Av1, 2), (1, Codec::Hevc, 1)]);
    // An unknown FourCC on one track refuses the whole message, naming it.
    let mut m = vec![0x96, 0x20];
    m.extend_from_slice(b"av01\x00\x00\x00\x00vp08\x01\x00\x00\x00");
    assert_eq!(v(&m), Err(ExError::UnknownVideoFourCc(FourCc(*b"vp08"))));
    // Multitrack or ModEx inside Multitrack.
    assert_eq!(v(b"\x96\x06hvc1"), Err(ExError::NestedMultitrack(6)));
    assert_eq!(v(b"\x96\x07hvc1"), Err(ExError::NestedMultitrack(7)));
    assert_eq!(v(b"\x96\x30hvc1"), Err(ExError::ReservedMultitrackType(3)));
    // Audio: ManyTracks of Opus frames, then ManyTracksManyCodecs.
    let msg = a(b"\x95\x11Opus\x00\x00\x00\x01\xfc\x01\x00\x00\x02\xfc\xfd").unwrap();
    let got: Vec<_> = msg
        .packets
        .iter()
        .map(|p| (p.track, p.codec, p.payload.len()))
        .collect();
    assert_eq!(got, vec![(0, Codec::Opus, 1), (1, Codec::Opus, 2)]);
    let msg = a(b"\x95\x21mp4a\x00\x00\x00\x01\x21Opus\x01\x00\x00\x01\xfc").unwrap();
    let got: Vec<_> = msg.packets.iter().map(|p| (p.track, p.codec)).collect();
    assert_eq!(got, vec![(0, Codec::Aac), (1, Codec::Opus)]);
    assert!(matches!(
        a(b"\x95\x11Opus\x00\x00\x00\x05\xfc"),
        Err(ExError::TrackSizeOverrun {
            track: 0,
            size: 5,
            left: 1
        })
    ));
    assert_eq!(a(b"\x95\x05Opus"), Err(ExError::NestedMultitrack(5)));
}

#[test]
fn every_audio_packet_type() {
    let m = a(b"\x90Opus\x01").unwrap();
    assert_eq!(m.packets[0].kind, PacketKind::Config);
    let m = a(b"\x92fLaC").unwrap();
    assert_eq!(m.packets[0].kind, PacketKind::End);
    // MultichannelConfig: unspecified, native mask, custom mapping.
    let m = a(b"\x94ac-3\x00\x06").unwrap();
    assert_eq!(m.multichannel[0].order, ChannelOrder::Unspecified);
    assert_eq!(m.multichannel[0].channel_count, 6);
    let m = a(b"\x94Opus\x01\x02\x00\x00\x00\x03").unwrap();
    assert_eq!(
        m.multichannel[0].order,
        ChannelOrder::Native { channel_mask: 3 }
    );
    let m = a(b"\x94Opus\x02\x03\x00\x01\x02").unwrap();
    assert_eq!(
        m.multichannel[0].order,
        ChannelOrder::Custom {
            mapping: vec![0, 1, 2]
        }
    );
    assert!(matches!(
        a(b"\x94Opus\x02\x03\x00\x01"),
        Err(ExError::Truncated { .. })
    ));
    assert!(matches!(
        a(b"\x94Opus\x01\x02\x00\x00"),
        Err(ExError::Truncated { .. })
    ));
    assert_eq!(
        a(b"\x94Opus\x03\x02"),
        Err(ExError::ReservedChannelOrder(3))
    );
    for pt in [3u8, 6, 8, 15] {
        assert_eq!(
            a(&[0x90 | pt, b'O', b'p', b'u', b's']),
            Err(ExError::ReservedAudioPacketType(pt))
        );
    }
}

#[test]
fn legacy_video_and_audio() {
    // AVC keyframe NALU with a negative composition offset.
    let m = v(b"\x17\x01\xff\xff\xf6\x00\x00\x00\x01\x65").unwrap();
    assert!(!m.enhanced);
    let p = &m.packets[0];
    assert_eq!(
        (p.codec, p.kind, p.keyframe, p.composition_offset_ms),
        (Codec::H264, PacketKind::Frame, true, -10)
    );
    assert_eq!(&p.payload[..], b"\x00\x00\x00\x01\x65");
    assert_eq!(
        v(b"\x17\x00\x00\x00\x00\x01").unwrap().packets[0].kind,
        PacketKind::Config
    );
    assert_eq!(
        v(b"\x27\x02\x00\x00\x00").unwrap().packets[0].kind,
        PacketKind::End
    );
    // Legacy HEVC id 12.
    let m = v(b"\x1c\x00\x00\x00\x00\x01").unwrap();
    assert_eq!(
        (m.packets[0].codec, m.packets[0].kind),
        (Codec::Hevc, PacketKind::Config)
    );
    assert!(matches!(v(b"\x17\x01\x00"), Err(ExError::Truncated { .. })));
    assert!(matches!(
        v(b"\x17\x03\x00\x00\x00"),
        Err(ExError::ReservedLegacyPacketType { .. })
    ));
    // Another legacy codec (Sorenson H.263) is named, for the caller to refuse.
    assert_eq!(v(b"\x22\xaa").unwrap().packets[0].codec, Codec::Other(2));
    // AAC: sequence header and raw frame.
    let m = a(b"\xaf\x00\x12\x10").unwrap();
    assert_eq!(
        (m.packets[0].codec, m.packets[0].kind),
        (Codec::Aac, PacketKind::Config)
    );
    let li = m.legacy.unwrap();
    assert_eq!(
        (
            li.sound_format,
            li.rate_code,
            li.sample_size_16bit,
            li.stereo
        ),
        (10, 3, true, true)
    );
    assert_eq!(
        &a(b"\xaf\x01\x21\x00").unwrap().packets[0].payload[..],
        b"\x21\x00"
    );
    assert!(matches!(a(b"\xaf"), Err(ExError::Truncated { .. })));
    // MP3 (2 and 8 kHz 14): the frame follows the one header byte.
    let m = a(b"\x2f\xff\xfb").unwrap();
    assert_eq!(
        (m.packets[0].codec, &m.packets[0].payload[..]),
        (Codec::Mp3, &b"\xff\xfb"[..])
    );
    assert_eq!(a(b"\xe2\xff").unwrap().packets[0].codec, Codec::Mp3);
    assert_eq!(a(b"\xb6\x00").unwrap().packets[0].codec, Codec::Other(11));
    // The empty message is silence.
    assert!(a(b"").unwrap().packets.is_empty());
}

#[test]
fn modex_applies_to_every_track_of_a_multitrack_message() {
    // ModEx nano offset 500 ns, then Multitrack ManyTracks of Opus frames.
    let m = a(b"\x97\x02\x00\x01\xf4\x05\x11Opus\x00\x00\x00\x01\xfc\x01\x00\x00\x01\xfd").unwrap();
    assert_eq!(m.packets.len(), 2);
    assert!(m.packets.iter().all(|p| p.timestamp_offset_ns == 500));
    let mut v_msg = vec![0x97, 0x02, 0x00, 0x00, 0x2a, 0x06, 0x11];
    v_msg.extend_from_slice(b"av01\x00\x00\x00\x01\x12\x03\x00\x00\x01\x12");
    let m = v(&v_msg).unwrap();
    let got: Vec<_> = m
        .packets
        .iter()
        .map(|p| (p.track, p.timestamp_offset_ns))
        .collect();
    assert_eq!(got, vec![(0, 42), (3, 42)]);
}

#[test]
fn hevc_irap_types() {
    assert!(crate::hevc::is_irap(19) && crate::hevc::is_irap(21));
    assert!(!crate::hevc::is_irap(1) && !crate::hevc::is_irap(32));
    assert_eq!(crate::hevc::nal_type(&[0x26, 0x01]), 19);
}
