//! Byte-level tests of the fMP4 writer: exact box sizes read with a small box walker, and
//! the whole output decoded by `mp4-atom`, a decoder written by other people.

use super::*;
use crate::avc::AvcDecoderConfig;
use crate::eflv::hex;
use mp4_atom::{Any, Codec as AtomCodec, Decode, Moof, Moov};

// SPS of x264 1280x720 high profile (ffmpeg testsrc2), with VUI timing 30 fps.
const SPS_720P: [u8; 26] = [
    0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00,
    0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83, 0x19, 0x60,
];
const PPS: [u8; 6] = [0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];
/// hvcC of 1280x720 yuv420p from x265 3.5 (the vector of hevc.rs).
const HVCC_720P: &str = "0101600000009000000000005df000fcfdf8f800000f03a00001001840010c01ffff\
    01600000030090000003000003005d959809a10001002b42010101600000030090000003000003005da0\
    0280802d165959a4932bc05a020000030002000003003c10a2000100074401c172b46240";
/// av1C of 1280x720 yuv420p10le from libaom (the vector of av1.rs).
const AV1C_720P_10BIT: &str = "81054c000a0b0000002d4cffb3cdaf9404";
/// vpcC as FFmpeg writes it: FullBox version 1 and flags, then profile 0, level 3.1,
/// 8-bit 4:2:0 colocated, BT.709.
const VPCC_FULLBOX: &str = "01000000001f820101010000";
const OPUS_HEAD: &str = "4f707573486561640102380180bb0000000000";
/// STREAMINFO of 44.1 kHz mono 16-bit FLAC, with "fLaC" and the block header.
const FLAC_START: &str =
    "664c614300000022120012000004b20004b20ac440f00000113a970a8602eaca9fdde598307ea787674b";

fn avcc() -> Bytes {
    Bytes::from(
        AvcDecoderConfig::from_parameter_sets(&SPS_720P, &PPS)
            .unwrap()
            .to_bytes(),
    )
}

fn video(id: u32, codec: Codec, config: Vec<u8>) -> Track {
    Track {
        id,
        codec,
        timescale: 90_000,
        config: Bytes::from(config),
        media: TrackMedia::Video {
            width: 1280,
            height: 720,
        },
    }
}

fn audio(id: u32, codec: Codec, timescale: u32, config: Vec<u8>, channels: u16) -> Track {
    Track {
        id,
        codec,
        timescale,
        config: Bytes::from(config),
        media: TrackMedia::Audio {
            sample_rate: timescale,
            channels,
        },
    }
}

fn h264() -> Track {
    video(1, Codec::H264, avcc().to_vec())
}

fn aac() -> Track {
    audio(2, Codec::Aac, 44_100, vec![0x12, 0x10], 2)
}

/// Top-level boxes: (fourcc, start, size).
fn walk(data: &[u8]) -> Vec<([u8; 4], usize, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 8 <= data.len() {
        let size = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
        let kind: [u8; 4] = data[at + 4..at + 8].try_into().unwrap();
        assert!(
            size >= 8 && at + size <= data.len(),
            "box {kind:?} of {size} at {at}"
        );
        out.push((kind, at, size));
        at += size;
    }
    assert_eq!(at, data.len(), "trailing bytes after the last box");
    out
}

/// The body of the first box of this kind anywhere inside `data` (a naive search,
/// enough for configs whose fourcc does not occur elsewhere).
fn body_of<'a>(data: &'a [u8], kind: &[u8; 4]) -> &'a [u8] {
    let at = data
        .windows(4)
        .position(|w| w == kind)
        .unwrap_or_else(|| panic!("no {kind:?} box"));
    let size = u32::from_be_bytes(data[at - 4..at].try_into().unwrap()) as usize;
    &data[at + 4..at - 4 + size]
}

fn decode_all(data: &[u8]) -> Vec<Any> {
    let mut buf = data;
    let mut out = Vec::new();
    while !buf.is_empty() {
        out.push(Any::decode(&mut buf).expect("mp4-atom decodes what we wrote"));
    }
    out
}

fn moov_of(data: &[u8]) -> Moov {
    decode_all(data)
        .into_iter()
        .find_map(|a| match a {
            Any::Moov(m) => Some(m),
            _ => None,
        })
        .expect("a moov")
}

fn moof_of(data: &[u8]) -> Moof {
    match decode_all(data).into_iter().next() {
        Some(Any::Moof(m)) => m,
        other => panic!("expected moof, got {other:?}"),
    }
}

fn codec_of(moov: &Moov, i: usize) -> &AtomCodec {
    &moov.trak[i].mdia.minf.stbl.stsd.codecs[0]
}

#[test]
fn h264_aac_init_segment() {
    let init = init_segment(&[h264(), aac()]).unwrap();
    let top = walk(&init);
    assert_eq!(top.len(), 2);
    assert_eq!((top[0].0, top[0].2), (*b"ftyp", 8 + 8 + 3 * 4));
    assert_eq!(top[1].0, *b"moov");
    assert_eq!(&init[8..12], b"iso6");
    assert_eq!(&init[16..28], b"iso6cmfcmp41");

    let moov = moov_of(&init);
    assert_eq!(moov.mvhd.next_track_id, 3);
    assert_eq!(moov.trak.len(), 2);
    let v = &moov.trak[0];
    assert_eq!(v.tkhd.track_id, 1);
    assert_eq!(
        (v.tkhd.width.integer(), v.tkhd.height.integer()),
        (1280, 720)
    );
    assert_eq!(v.mdia.mdhd.timescale, 90_000);
    assert_eq!(v.mdia.hdlr.handler, b"vide".into());
    assert!(v.mdia.minf.vmhd.is_some());
    assert!(v.mdia.minf.stbl.stts.entries.is_empty());
    assert!(v.mdia.minf.stbl.stsc.entries.is_empty());
    match codec_of(&moov, 0) {
        AtomCodec::Avc1(a) => {
            assert_eq!((a.visual.width, a.visual.height), (1280, 720));
            assert_eq!(a.avcc.avc_profile_indication, 0x64);
            assert_eq!(a.avcc.sequence_parameter_sets, vec![SPS_720P.to_vec()]);
            assert_eq!(a.avcc.picture_parameter_sets, vec![PPS.to_vec()]);
        }
        other => panic!("expected avc1, got {other:?}"),
    }
    // The record goes in verbatim.
    assert_eq!(body_of(&init, b"avcC"), &avcc()[..]);

    let a = &moov.trak[1];
    assert_eq!(a.tkhd.track_id, 2);
    assert_eq!(a.mdia.mdhd.timescale, 44_100);
    assert_eq!(a.mdia.hdlr.handler, b"soun".into());
    assert!(a.mdia.minf.smhd.is_some());
    match codec_of(&moov, 1) {
        AtomCodec::Mp4a(m) => {
            assert_eq!(m.audio.channel_count, 2);
            assert_eq!(m.audio.sample_rate.integer(), 44_100);
            let dc = &m.esds.es_desc.dec_config;
            assert_eq!((dc.object_type_indication, dc.stream_type), (0x40, 5));
            assert_eq!(dc.dec_specific.as_ref().unwrap().raw, vec![0x12, 0x10]);
        }
        other => panic!("expected mp4a, got {other:?}"),
    }
    let mvex = moov.mvex.as_ref().unwrap();
    assert_eq!(
        mvex.trex.iter().map(|t| t.track_id).collect::<Vec<_>>(),
        vec![1, 2]
    );
}

#[test]
fn hevc_av1_vp9_sample_entries() {
    let hvcc = hex(HVCC_720P);
    let av1c = hex(AV1C_720P_10BIT);
    let vpcc = hex(VPCC_FULLBOX);
    for (codec, cfg, entry, child) in [
        (Codec::Hevc, hvcc.clone(), b"hvc1", b"hvcC"),
        (Codec::Av1, av1c.clone(), b"av01", b"av1C"),
        (Codec::Vp9, vpcc.clone(), b"vp09", b"vpcC"),
    ] {
        let init = init_segment(&[video(1, codec, cfg.clone())]).unwrap();
        let moov = moov_of(&init);
        let e = body_of(&init, entry);
        // VisualSampleEntry: 78 bytes of fields, then the config box.
        assert_eq!(&e[24..28], &[0x05, 0x00, 0x02, 0xd0], "1280x720");
        assert_eq!(&e[82..86], child);
        // (vpcC is a FullBox: the test vector has its version and flags already.)
        assert_eq!(body_of(&init, child), &cfg[..], "{codec:?} config verbatim");
        match (codec, codec_of(&moov, 0)) {
            (Codec::Hevc, AtomCodec::Hvc1(h)) => {
                assert_eq!(h.hvcc.general_profile_idc, 1);
                assert_eq!(h.hvcc.general_level_idc, 93);
                assert_eq!(h.hvcc.arrays.len(), 3);
            }
            (Codec::Av1, AtomCodec::Av01(a)) => {
                assert_eq!(a.av1c.seq_profile, 0);
                assert_eq!(a.av1c.seq_level_idx_0, 5);
                assert!(a.av1c.high_bitdepth);
            }
            (Codec::Vp9, AtomCodec::Vp09(v)) => {
                assert_eq!((v.vpcc.profile, v.vpcc.level, v.vpcc.bit_depth), (0, 31, 8));
                assert_eq!(v.vpcc.color_primaries, 1);
            }
            (c, other) => panic!("{c:?}: unexpected {other:?}"),
        }
    }
    // A bare vpcC record gets the FullBox header added.
    let bare = vpcc[4..].to_vec();
    let init = init_segment(&[video(1, Codec::Vp9, bare)]).unwrap();
    assert_eq!(body_of(&init, b"vpcC"), &vpcc[..]);
}

#[test]
fn opus_flac_mp3_sample_entries() {
    let init = init_segment(&[audio(1, Codec::Opus, 48_000, hex(OPUS_HEAD), 2)]).unwrap();
    // dOps is big-endian where OpusHead is little-endian: version 0, 2 channels,
    // pre-skip 312, input rate 48000, gain 0, family 0.
    assert_eq!(
        body_of(&init, b"dOps"),
        &[0, 2, 0x01, 0x38, 0, 0, 0xbb, 0x80, 0, 0, 0]
    );
    match codec_of(&moov_of(&init), 0) {
        AtomCodec::Opus(o) => {
            assert_eq!(o.audio.channel_count, 2);
            assert_eq!(o.audio.sample_rate.integer(), 48_000);
            assert_eq!((o.dops.pre_skip, o.dops.input_sample_rate), (312, 48_000));
        }
        other => panic!("expected Opus, got {other:?}"),
    }

    let flac = hex(FLAC_START);
    let init = init_segment(&[audio(1, Codec::Flac, 44_100, flac.clone(), 1)]).unwrap();
    let dfla = body_of(&init, b"dfLa");
    assert_eq!(&dfla[..8], &[0, 0, 0, 0, 0x80, 0, 0, 34]);
    assert_eq!(&dfla[8..], &flac[8..]);
    match codec_of(&moov_of(&init), 0) {
        AtomCodec::Flac(f) => match &f.dfla.blocks[0] {
            mp4_atom::FlacMetadataBlock::StreamInfo {
                sample_rate,
                num_channels_minus_one,
                ..
            } => assert_eq!((*sample_rate, *num_channels_minus_one), (44_100, 0)),
            other => panic!("expected STREAMINFO, got {other:?}"),
        },
        other => panic!("expected fLaC, got {other:?}"),
    }

    let init = init_segment(&[audio(1, Codec::Mp3, 44_100, vec![], 2)]).unwrap();
    match codec_of(&moov_of(&init), 0) {
        AtomCodec::Mp4a(m) => {
            let dc = &m.esds.es_desc.dec_config;
            assert_eq!(dc.object_type_indication, 0x6b);
            assert!(dc.dec_specific.is_none());
        }
        other => panic!("expected mp4a, got {other:?}"),
    }
}

#[test]
fn init_errors_are_typed() {
    assert_eq!(init_segment(&[]), Err(Fmp4Error::NoTracks));
    assert_eq!(
        init_segment(&[h264(), video(1, Codec::H264, avcc().to_vec())]),
        Err(Fmp4Error::BadTrackId(1))
    );
    let mut t = aac();
    t.timescale = 0;
    assert_eq!(init_segment(&[t]), Err(Fmp4Error::ZeroTimescale(2)));
    let mut bad_opus = hex(OPUS_HEAD);
    bad_opus[0] = b'X';
    assert!(matches!(
        init_segment(&[audio(1, Codec::Opus, 48_000, bad_opus, 2)]),
        Err(Fmp4Error::Config {
            track_id: 1,
            source: ConfigError::Opus(_),
            ..
        })
    ));
    assert!(matches!(
        init_segment(&[video(1, Codec::H264, vec![1, 0x64])]),
        Err(Fmp4Error::Config {
            source: ConfigError::Avc(_),
            ..
        })
    ));
    assert!(matches!(
        init_segment(&[audio(1, Codec::Ac3, 48_000, vec![], 2)]),
        Err(Fmp4Error::Unsupported { codec: "ac3", .. })
    ));
    assert!(matches!(
        init_segment(&[audio(1, Codec::H264, 48_000, avcc().to_vec(), 2)]),
        Err(Fmp4Error::Config {
            source: ConfigError::WrongMedia(..),
            ..
        })
    ));
    // Every truncation of every config is an error or a segment, never a panic.
    for cfg in [
        avcc().to_vec(),
        hex(HVCC_720P),
        hex(AV1C_720P_10BIT),
        hex(VPCC_FULLBOX),
    ] {
        for codec in [Codec::H264, Codec::Hevc, Codec::Av1, Codec::Vp9] {
            for n in 0..cfg.len() {
                let _ = init_segment(&[video(1, codec, cfg[..n].to_vec())]);
            }
        }
    }
    for cfg in [hex(OPUS_HEAD), hex(FLAC_START), vec![0x12, 0x10]] {
        for codec in [Codec::Aac, Codec::Opus, Codec::Flac] {
            for n in 0..cfg.len() {
                let _ = init_segment(&[audio(1, codec, 48_000, cfg[..n].to_vec(), 2)]);
            }
        }
    }
}

fn sample(dts: u64, cts: i32, key: bool, len: usize, fill: u8) -> Sample {
    Sample {
        dts,
        cts_offset: cts,
        keyframe: key,
        data: Bytes::from(vec![fill; len]),
    }
}

#[test]
fn h264_aac_fragment_boxes() {
    let mut f = Fragmenter::new(&[h264(), aac()], 1 << 20);
    // IPBB-like: key, then a frame shown later (+2 frames) and B-frames at 0 offset.
    let v = [
        (0u64, 3003i32, true, 100usize),
        (3003, 9009, false, 50),
        (6006, 0, false, 20),
        (9009, 0, false, 21),
    ];
    for (i, &(dts, cts, key, len)) in v.iter().enumerate() {
        f.push(1, sample(dts, cts, key, len, i as u8)).unwrap();
    }
    for i in 0..4u64 {
        f.push(2, sample(i * 1024, 0, true, 7, 0xa0 + i as u8))
            .unwrap();
    }
    // The next video frame arrives and closes the part.
    f.push(1, sample(12012, 0, true, 90, 9)).unwrap();
    let frag = f.take_fragment().unwrap().unwrap();
    assert_eq!(frag.sequence, 1);
    assert_eq!(f.next_sequence(), 2);
    let fv = frag.track(1).unwrap();
    assert_eq!(
        (fv.base_decode_time, fv.duration, fv.samples),
        (0, 12012, 4)
    );
    assert!(fv.starts_with_keyframe);
    // Audio: the 4th frame waits for its successor.
    let fa = frag.track(2).unwrap();
    assert_eq!((fa.base_decode_time, fa.duration, fa.samples), (0, 3072, 3));

    let top = walk(&frag.bytes);
    assert_eq!(
        top.iter().map(|b| b.0).collect::<Vec<_>>(),
        vec![*b"moof", *b"mdat"]
    );
    // moof = header 8 + mfhd 16 + traf(8 + tfhd 16 + tfdt 20 + trun 20 + 4 x 16)
    //      + traf(8 + 16 + 20 + trun 20 + 3 x 12)
    let video_traf = 8 + 16 + 20 + 20 + 4 * 16;
    let audio_traf = 8 + 16 + 20 + 20 + 3 * 12;
    assert_eq!(top[0].2, 8 + 16 + video_traf + audio_traf);
    assert_eq!(top[1].2, 8 + (100 + 50 + 20 + 21) + 3 * 7);
    // tfhd: flags default-base-is-moof, track 1.
    let moof = &frag.bytes[..top[0].2];
    assert_eq!(body_of(moof, b"tfhd"), &[0, 0x02, 0, 0, 0, 0, 0, 1]);
    // tfdt version 1 (64-bit).
    assert_eq!(
        body_of(moof, b"tfdt"),
        &[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    );
    // trun: version 1, data offset + duration + size + flags + cts.
    assert_eq!(
        &body_of(moof, b"trun")[..8],
        &[1, 0, 0x0f, 0x01, 0, 0, 0, 4]
    );

    let m = moof_of(&frag.bytes);
    assert_eq!(m.mfhd.sequence_number, 1);
    assert_eq!(m.traf.len(), 2);
    let tv = &m.traf[0];
    assert!(tv.tfhd.default_base_is_moof);
    assert_eq!(tv.tfhd.track_id, 1);
    assert_eq!(tv.tfdt.as_ref().unwrap().base_media_decode_time, 0);
    let run = &tv.trun[0];
    let entries: Vec<_> = run.samples.iter().collect();
    assert_eq!(
        entries
            .iter()
            .map(|e| (
                e.duration.unwrap(),
                e.size.unwrap(),
                e.flags.unwrap(),
                e.cts.unwrap()
            ))
            .collect::<Vec<_>>(),
        vec![
            (3003, 100, 0x0200_0000, 3003),
            (3003, 50, 0x0101_0000, 9009),
            (3003, 20, 0x0101_0000, 0),
            (3003, 21, 0x0101_0000, 0),
        ]
    );
    // The data offset points at the first video sample, the audio one after the video data.
    let off = run.data_offset.unwrap() as usize;
    assert_eq!(off, top[0].2 + 8);
    assert_eq!(&frag.bytes[off..off + 100], &[0u8; 100][..]);
    let ta = &m.traf[1];
    let aoff = ta.trun[0].data_offset.unwrap() as usize;
    assert_eq!(aoff, off + 191);
    assert_eq!(&frag.bytes[aoff..aoff + 7], &[0xa0; 7]);
    // Audio has no composition offsets: trun version 0 without the cts field.
    let ae: Vec<_> = ta.trun[0].samples.iter().collect();
    assert_eq!(ae.len(), 3);
    assert!(ae
        .iter()
        .all(|e| e.cts.is_none() && e.flags == Some(0x0200_0000)));
    assert!(ae
        .iter()
        .all(|e| e.duration == Some(1024) && e.size == Some(7)));

    // The next part starts with the frames left waiting.
    f.push(2, sample(4096, 0, true, 7, 0xa4)).unwrap();
    f.push(1, sample(15015, 0, false, 30, 10)).unwrap();
    let next = f.take_fragment().unwrap().unwrap();
    assert_eq!(next.sequence, 2);
    let nv = next.track(1).unwrap();
    assert_eq!(
        (nv.base_decode_time, nv.samples, nv.duration),
        (12012, 1, 3003)
    );
    assert_eq!(next.track(2).unwrap().base_decode_time, 3072);
    let m = moof_of(&next.bytes);
    assert_eq!(m.mfhd.sequence_number, 2);
    assert_eq!(
        m.traf[0].tfdt.as_ref().unwrap().base_media_decode_time,
        12012
    );
    // Nothing whose duration is known is left.
    assert_eq!(f.take_fragment().unwrap(), None);
}

#[test]
fn negative_composition_offsets_and_64_bit_tfdt() {
    let base = (1u64 << 33) + 5; // past 32 bits: 26.5 hours at 90 kHz
    let run = TrackRun {
        track_id: 1,
        base_decode_time: base,
        samples: vec![
            RunSample {
                duration: 3000,
                cts_offset: -3000,
                keyframe: true,
                data: Bytes::from_static(b"abc"),
            },
            RunSample {
                duration: 3000,
                cts_offset: 6000,
                keyframe: false,
                data: Bytes::from_static(b"de"),
            },
        ],
    };
    let frag = write_fragment(7, &[run]).unwrap();
    let moof = moof_of(&frag.bytes);
    assert_eq!(moof.mfhd.sequence_number, 7);
    assert_eq!(
        moof.traf[0].tfdt.as_ref().unwrap().base_media_decode_time,
        base
    );
    let cts: Vec<i64> = moof.traf[0].trun[0]
        .samples
        .iter()
        .map(|e| e.cts.unwrap())
        .collect();
    assert_eq!(cts, vec![-3000, 6000]);
    let trun = body_of(&frag.bytes, b"trun");
    // version 1; -3000 as a two's complement 32-bit field.
    assert_eq!(trun[0], 1);
    assert_eq!(&trun[24..28], &(-3000i32).to_be_bytes());
    assert_eq!(&frag.bytes[frag.bytes.len() - 5..], b"abcde");
    assert_eq!(
        write_fragment(
            1,
            &[TrackRun {
                track_id: 1,
                base_decode_time: 0,
                samples: vec![]
            }]
        ),
        Err(Fmp4Error::EmptyFragment)
    );
}

#[test]
fn hevc_av1_opus_fragments_decode() {
    let hevc = video(1, Codec::Hevc, hex(HVCC_720P));
    let av1 = video(2, Codec::Av1, hex(AV1C_720P_10BIT));
    let opus = audio(3, Codec::Opus, 48_000, hex(OPUS_HEAD), 2);
    let init = init_segment(&[hevc.clone(), av1.clone(), opus.clone()]).unwrap();
    assert_eq!(moov_of(&init).trak.len(), 3);
    let mut f = Fragmenter::new(&[hevc, av1, opus], 1 << 20);
    for i in 0..3u64 {
        f.push(1, sample(i * 1500, 1500, i == 0, 40, 1)).unwrap();
        f.push(2, sample(i * 1500, 0, i == 0, 30, 2)).unwrap();
        f.push(3, sample(i * 960, 0, true, 20, 3)).unwrap();
    }
    let frag = f.flush().unwrap().unwrap();
    let m = moof_of(&frag.bytes);
    assert_eq!(m.traf.len(), 3);
    for (traf, (want_flags, want_cts)) in m.traf.iter().zip([
        (vec![0x0200_0000, 0x0101_0000, 0x0101_0000], Some(1500)),
        (vec![0x0200_0000, 0x0101_0000, 0x0101_0000], None),
        (vec![0x0200_0000; 3], None),
    ]) {
        let e: Vec<_> = traf.trun[0].samples.iter().collect();
        assert_eq!(
            e.iter().map(|e| e.flags.unwrap()).collect::<Vec<_>>(),
            want_flags
        );
        assert!(e.iter().all(|e| e.cts.map(|c| c as i32) == want_cts));
    }
    // flush gives the last sample its predecessor's duration.
    assert_eq!(frag.track(1).unwrap().duration, 4500);
    assert_eq!(frag.track(3).unwrap().duration, 2880);
    let sizes: Vec<usize> = walk(&frag.bytes).iter().map(|b| b.2).collect();
    assert_eq!(sizes[1], 8 + 3 * (40 + 30 + 20));
}

#[test]
fn fragmenter_refuses_bad_samples_and_changes_nothing() {
    let mut f = Fragmenter::new(&[h264(), aac()], 1000);
    assert_eq!(
        f.push(9, sample(0, 0, true, 1, 0)),
        Err(Fmp4Error::UnknownTrack(9))
    );
    f.push(1, sample(3000, 0, true, 600, 0)).unwrap();
    assert_eq!(
        f.push(1, sample(3003, 0, false, 0, 0)),
        Err(Fmp4Error::EmptySample(1))
    );
    assert_eq!(
        f.check(1, &sample(2999, 0, false, 10, 0)),
        Err(Fmp4Error::DtsWentBack {
            track_id: 1,
            dts: 2999,
            previous: 3000
        })
    );
    assert_eq!(f.check(1, &sample(3001, 0, false, 10, 0)), Ok(()));
    assert_eq!(
        f.push(1, sample(2999, 0, false, 10, 0)),
        Err(Fmp4Error::DtsWentBack {
            track_id: 1,
            dts: 2999,
            previous: 3000
        })
    );
    assert_eq!(
        f.push(2, sample(0, 0, true, 401, 0)),
        Err(Fmp4Error::PendingFull {
            track_id: 2,
            pending: 1001,
            limit: 1000
        })
    );
    assert_eq!(
        f.push(1, sample(3000 + (1 << 32), 0, false, 1, 0)),
        Err(Fmp4Error::DurationTooLong {
            track_id: 1,
            ticks: 1 << 32
        })
    );
    assert_eq!(f.pending_bytes(), 600);
    assert_eq!(f.take_fragment().unwrap(), None);
    // A lone sample flushed gets the track's nominal duration (3000 ticks = 1/30 s).
    let frag = f.flush().unwrap().unwrap();
    assert_eq!(frag.track(1).unwrap().duration, 3000);
    assert_eq!(frag.track(1).unwrap().base_decode_time, 3000);
    assert_eq!(f.pending_bytes(), 0);
    assert_eq!(f.flush().unwrap(), None);
}

#[test]
fn nominal_durations() {
    assert_eq!(h264().nominal_sample_duration(), 3000);
    assert_eq!(aac().nominal_sample_duration(), 1024);
    let opus = audio(3, Codec::Opus, 48_000, hex(OPUS_HEAD), 2);
    assert_eq!(opus.nominal_sample_duration(), 960);
    let flac = audio(1, Codec::Flac, 44_100, hex(FLAC_START), 1);
    assert_eq!(flac.nominal_sample_duration(), 4608);
}

#[test]
fn codec_strings() {
    assert_eq!(codec_string(&h264()).unwrap(), "avc1.64001f");
    assert_eq!(
        codec_string(&video(1, Codec::Hevc, hex(HVCC_720P))).unwrap(),
        "hvc1.1.6.L93.90"
    );
    assert_eq!(
        codec_string(&video(1, Codec::Av1, hex(AV1C_720P_10BIT))).unwrap(),
        "av01.0.05M.10"
    );
    assert_eq!(
        codec_string(&video(1, Codec::Vp9, hex(VPCC_FULLBOX))).unwrap(),
        "vp09.00.31.08"
    );
    assert_eq!(codec_string(&aac()).unwrap(), "mp4a.40.2");
    assert_eq!(
        codec_string(&audio(1, Codec::Mp3, 44_100, vec![], 2)).unwrap(),
        "mp4a.6B"
    );
    assert_eq!(
        codec_string(&audio(1, Codec::Opus, 48_000, hex(OPUS_HEAD), 2)).unwrap(),
        "opus"
    );
    assert_eq!(codec_string(&video(1, Codec::H264, vec![1])), None);
}
