//! MPEG-TS muxing of H.264, HEVC, AAC and MP3 frames (sans-IO): PAT/PMT, PES with
//! PTS/DTS, PCR, continuity counters, AUD and parameter sets (SPS/PPS; VPS/SPS/PPS for
//! HEVC) ahead of every IDR/IRAP, NAL units in Annex B, AAC in ADTS, MP3 frames as they are. Frames (access units) and parsed configurations in, 188-byte packets out;
//! it never reads a container format. Packet serialization is the mpeg2ts crate's.

use mpeg2ts::es::{StreamId, StreamType};
use mpeg2ts::pes::PesHeader;
use mpeg2ts::time::{ClockReference, Timestamp};
use mpeg2ts::ts::payload::{Bytes as TsBytes, Pat, Pes, Pmt};
use mpeg2ts::ts::{
    AdaptationField, ContinuityCounter, EsInfo, Pid, ProgramAssociation,
    TransportScramblingControl, TsHeader, TsPacket, TsPacketWriter, TsPayload, VersionNumber,
    WriteTsPacket,
};
use onair_shared::avc::{split_length_prefixed, AvcDecoderConfig, NAL_AUD, NAL_PPS, NAL_SPS};
use onair_shared::hevc::HevcDecoderConfig;
use onair_shared::mp3::MpegVersion;
use onair_shared::{Codec, CodecConfig, CodecParams, Frame};

pub const PID_PMT: u16 = 0x1000;
pub const PID_VIDEO: u16 = 0x100;
pub const PID_AUDIO: u16 = 0x101;
/// Added to every timestamp so PTS = DTS + a negative composition offset stays positive,
/// as ffmpeg's muxer does.
pub const TS_OFFSET_MS: u64 = 1400;
const TS_MASK: u64 = (1 << 33) - 1;

#[derive(Debug, thiserror::Error)]
pub enum TsError {
    #[error("video frame before the AVC configuration")]
    NoAvcConfig,
    #[error("TS carries no {0} audio")]
    AudioCodec(&'static str),
    #[error(transparent)]
    Avc(#[from] onair_shared::avc::AvcError),
    #[error(transparent)]
    Aac(#[from] onair_shared::aac::AacError),
    #[error("TS packet writer: {0}")]
    Write(String),
}

/// Muxer state that must survive across segments: continuity counters.
#[derive(Debug, Default)]
pub struct TsMuxer {
    cc_pat: u8,
    cc_pmt: u8,
    cc_video: u8,
    cc_audio: u8,
    /// The elementary stream of the frame being written, kept between frames: a buffer
    /// made per frame was a fresh allocation (and page faults) 80 times a second.
    es: Vec<u8>,
}

fn ts90(ms: i64) -> Timestamp {
    let ticks = ((ms.max(0) as u64) * 90) & TS_MASK;
    Timestamp::new(ticks).expect("masked to 33 bits")
}

/// Why HLS with MPEG-TS segments cannot serve a stream of these (track 0) codecs, or
/// `None` when it can: TS here carries H.264, HEVC, AAC and MP3.
pub fn ts_refusal(codecs: impl IntoIterator<Item = Codec>) -> Option<String> {
    let bad: Vec<&str> = codecs
        .into_iter()
        .filter(|c| matches!(c, Codec::Av1 | Codec::Vp9 | Codec::Opus | Codec::Flac))
        .map(Codec::name)
        .collect();
    (!bad.is_empty()).then(|| {
        format!(
            "HLS here uses MPEG-TS segments, which cannot carry {}; play this stream over \
             HTTP-FLV or RTMP (HLS with fMP4 segments is not served yet)",
            bad.join(" or ")
        )
    })
}

/// HEVC access unit delimiter (NAL type 35, pic_type 2: any slice type).
const HEVC_AUD: [u8; 3] = [0x46, 0x01, 0x50];

/// The TS stream type for an audio configuration, if TS can carry it: ADTS AAC (0x0f),
/// MPEG-1 audio (0x03) or MPEG-2 half-rate audio (0x04, also used for MPEG-2.5).
pub fn audio_stream_type(config: &CodecConfig) -> Option<StreamType> {
    match &config.params {
        CodecParams::Aac(_) => Some(StreamType::AdtsAac),
        CodecParams::Mp3(h) => Some(match h.version {
            MpegVersion::Mpeg1 => StreamType::Mpeg1Audio,
            MpegVersion::Mpeg2 | MpegVersion::Mpeg25 => StreamType::Mpeg2HalvedSampleRateAudio,
        }),
        _ => None,
    }
}

fn pid(v: u16) -> Pid {
    Pid::new(v).expect("constant PIDs are 13-bit")
}

fn next_cc(cc: &mut u8) -> ContinuityCounter {
    let c = ContinuityCounter::from_u8(*cc).expect("kept below 16");
    *cc = (*cc + 1) & 0x0f;
    c
}

fn header(p: u16, cc: &mut u8) -> TsHeader {
    TsHeader {
        transport_error_indicator: false,
        transport_priority: false,
        pid: pid(p),
        transport_scrambling_control: TransportScramblingControl::NotScrambled,
        continuity_counter: next_cc(cc),
    }
}

fn write(out: &mut Vec<u8>, packet: &TsPacket) -> Result<(), TsError> {
    let mut w = TsPacketWriter::new(out);
    w.write_ts_packet(packet)
        .map_err(|e| TsError::Write(e.to_string()))
}

impl TsMuxer {
    /// PAT and PMT, written at the start of every segment so each stands alone. `audio`
    /// is the stream type from `audio_stream_type`.
    pub fn write_tables(
        &mut self,
        out: &mut Vec<u8>,
        has_video: bool,
        audio: Option<StreamType>,
    ) -> Result<(), TsError> {
        self.write_tables_for(out, has_video.then_some(StreamType::H264), audio)
    }

    /// PAT and PMT with the video stream type (H.264 0x1b or HEVC 0x24).
    pub fn write_tables_for(
        &mut self,
        out: &mut Vec<u8>,
        video: Option<StreamType>,
        audio: Option<StreamType>,
    ) -> Result<(), TsError> {
        let has_video = video.is_some();
        let pat = TsPacket {
            header: header(0, &mut self.cc_pat),
            adaptation_field: None,
            payload: Some(TsPayload::Pat(Pat {
                transport_stream_id: 1,
                version_number: VersionNumber::new(),
                table: vec![ProgramAssociation {
                    program_num: 1,
                    program_map_pid: pid(PID_PMT),
                }],
            })),
        };
        write(out, &pat)?;
        let mut es_info = Vec::new();
        if let Some(stream_type) = video {
            es_info.push(EsInfo {
                stream_type,
                elementary_pid: pid(PID_VIDEO),
                descriptors: vec![],
            });
        }
        if let Some(stream_type) = audio {
            es_info.push(EsInfo {
                stream_type,
                elementary_pid: pid(PID_AUDIO),
                descriptors: vec![],
            });
        }
        let pmt = TsPacket {
            header: header(PID_PMT, &mut self.cc_pmt),
            adaptation_field: None,
            payload: Some(TsPayload::Pmt(Pmt {
                program_num: 1,
                pcr_pid: Some(pid(if has_video { PID_VIDEO } else { PID_AUDIO })),
                version_number: VersionNumber::new(),
                program_info: vec![],
                es_info,
            })),
        };
        write(out, &pmt)
    }

    /// One H.264 access unit: AUD, then SPS/PPS before an IDR, then the frame's NAL units.
    /// The PCR rides on its first packet.
    pub fn write_video(
        &mut self,
        out: &mut Vec<u8>,
        frame: &Frame,
        config: &AvcDecoderConfig,
    ) -> Result<(), TsError> {
        let body = &frame.data[..];
        let nals = split_length_prefixed(body, config.nalu_length_size)?;
        let mut es = self.take_es();
        es.extend_from_slice(&[0, 0, 0, 1, NAL_AUD, 0xf0]);
        if frame.keyframe {
            for ps in config.sps.iter().chain(config.pps.iter()) {
                es.extend_from_slice(&[0, 0, 0, 1]);
                es.extend_from_slice(ps);
            }
        }
        for nal in nals {
            let t = onair_shared::avc::nal_type(nal);
            // The encoder's own AUDs and parameter sets would repeat ours.
            if t == NAL_AUD || (frame.keyframe && (t == NAL_SPS || t == NAL_PPS)) {
                continue;
            }
            es.extend_from_slice(&[0, 0, 1]);
            es.extend_from_slice(nal);
        }
        self.write_video_es(out, frame, es)
    }

    /// One HEVC access unit: AUD, then VPS/SPS/PPS before each IRAP picture, then the
    /// frame's NAL units in Annex B. The PCR rides on its first packet.
    pub fn write_hevc(
        &mut self,
        out: &mut Vec<u8>,
        frame: &Frame,
        config: &HevcDecoderConfig,
    ) -> Result<(), TsError> {
        use onair_shared::hevc::{is_irap, nal_type, NAL_PPS, NAL_SPS, NAL_VPS};
        const NAL_AUD_HEVC: u8 = 35;
        let body = &frame.data[..];
        let nals = split_length_prefixed(body, config.nal_length_size)?;
        let irap = frame.keyframe || nals.iter().any(|n| is_irap(nal_type(n)));
        let mut es = self.take_es();
        es.extend_from_slice(&[0, 0, 0, 1]);
        es.extend_from_slice(&HEVC_AUD);
        if irap {
            for ps in config.vps.iter().chain(&config.sps).chain(&config.pps) {
                es.extend_from_slice(&[0, 0, 0, 1]);
                es.extend_from_slice(ps);
            }
        }
        for nal in nals {
            let t = nal_type(nal);
            if t == NAL_AUD_HEVC || (irap && matches!(t, NAL_VPS | NAL_SPS | NAL_PPS)) {
                continue;
            }
            es.extend_from_slice(&[0, 0, 1]);
            es.extend_from_slice(nal);
        }
        let frame = Frame {
            keyframe: irap,
            ..frame.clone()
        };
        self.write_video_es(out, &frame, es)
    }

    fn write_video_es(
        &mut self,
        out: &mut Vec<u8>,
        frame: &Frame,
        es: Vec<u8>,
    ) -> Result<(), TsError> {
        let dts = frame.dts as i64 + TS_OFFSET_MS as i64;
        let pes = PesHeader {
            stream_id: StreamId::new(StreamId::VIDEO_MIN),
            priority: false,
            data_alignment_indicator: true,
            copyright: false,
            original_or_copy: false,
            pts: Some(ts90(dts + frame.cts as i64)),
            dts: Some(ts90(dts)),
            escr: None,
        };
        let pcr =
            ClockReference::new(ts90(dts).as_u64() * 300).expect("33-bit base times 300 fits");
        self.write_pes(out, PID_VIDEO, pes, 0, es, Some(pcr), frame.keyframe)
    }

    /// One audio frame: AAC as ADTS, MP3 as the frame itself. Audio-only streams carry
    /// the PCR here.
    pub fn write_audio(
        &mut self,
        out: &mut Vec<u8>,
        frame: &Frame,
        config: &CodecConfig,
        carries_pcr: bool,
    ) -> Result<(), TsError> {
        let raw = &frame.data[..];
        let adts = match &config.params {
            CodecParams::Aac(asc) => Some(asc.adts_header(raw.len())?),
            CodecParams::Mp3(_) => None,
            _ => return Err(TsError::AudioCodec(config.codec.name())),
        };
        let mut es = self.take_es();
        es.extend_from_slice(adts.as_ref().map_or(&[][..], |h| &h[..]));
        es.extend_from_slice(raw);
        let pts = ts90(frame.dts as i64 + TS_OFFSET_MS as i64);
        let pes = PesHeader {
            stream_id: StreamId::new(StreamId::AUDIO_MIN),
            priority: false,
            data_alignment_indicator: true,
            copyright: false,
            original_or_copy: false,
            pts: Some(pts),
            dts: None,
            escr: None,
        };
        let pes_len = (3 + 5 + es.len()).min(u16::MAX as usize) as u16;
        let pcr = carries_pcr.then(|| ClockReference::new(pts.as_u64() * 300).expect("fits"));
        self.write_pes(out, PID_AUDIO, pes, pes_len, es, pcr, false)
    }

    /// The buffer for a frame's elementary stream, empty; `write_pes` gives it back.
    fn take_es(&mut self) -> Vec<u8> {
        let mut es = std::mem::take(&mut self.es);
        es.clear();
        es
    }

    /// Packetizes `es` and keeps its buffer for the next frame.
    #[allow(clippy::too_many_arguments)]
    fn write_pes(
        &mut self,
        out: &mut Vec<u8>,
        p: u16,
        pes: PesHeader,
        pes_len: u16,
        es: Vec<u8>,
        pcr: Option<ClockReference>,
        random_access: bool,
    ) -> Result<(), TsError> {
        let written = self.packetize(out, p, pes, pes_len, &es, pcr, random_access);
        self.es = es;
        written
    }

    #[allow(clippy::too_many_arguments)]
    fn packetize(
        &mut self,
        out: &mut Vec<u8>,
        p: u16,
        pes: PesHeader,
        pes_len: u16,
        es: &[u8],
        pcr: Option<ClockReference>,
        random_access: bool,
    ) -> Result<(), TsError> {
        let cc = if p == PID_VIDEO {
            &mut self.cc_video
        } else {
            &mut self.cc_audio
        };
        let adaptation = (pcr.is_some() || random_access).then(|| AdaptationField {
            discontinuity_indicator: false,
            random_access_indicator: random_access,
            es_priority_indicator: false,
            pcr,
            opcr: None,
            splice_countdown: None,
            transport_private_data: vec![],
            extension: None,
        });
        let adaptation_len = match &adaptation {
            Some(a) if a.pcr.is_some() => 8,
            Some(_) => 2,
            None => 0,
        };
        let pes_header_len = 9 + pes.pts.map_or(0, |_| 5) + pes.dts.map_or(0, |_| 5);
        let first_room = 184 - adaptation_len - pes_header_len;
        let (first, mut rest) = es.split_at(es.len().min(first_room));
        let packet = TsPacket {
            header: header(p, cc),
            adaptation_field: adaptation,
            payload: Some(TsPayload::PesStart(Pes {
                header: pes,
                pes_packet_len: pes_len,
                data: TsBytes::new(first).map_err(|e| TsError::Write(e.to_string()))?,
            })),
        };
        write(out, &packet)?;
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at(rest.len().min(TsBytes::MAX_SIZE));
            rest = tail;
            let packet = TsPacket {
                header: header(p, cc),
                adaptation_field: None,
                payload: Some(TsPayload::PesContinuation(
                    TsBytes::new(chunk).map_err(|e| TsError::Write(e.to_string()))?,
                )),
            };
            write(out, &packet)?;
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bytes::Bytes;
    use onair_shared::aac::AudioSpecificConfig;

    pub const SPS: [u8; 26] = [
        0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03,
        0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83, 0x19, 0x60,
    ];
    pub const PPS: [u8; 6] = [0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];

    pub fn avc() -> AvcDecoderConfig {
        AvcDecoderConfig::from_parameter_sets(&SPS, &PPS).unwrap()
    }

    pub fn avc_config() -> CodecConfig {
        onair_shared::ingest::avc_config(Bytes::from(avc().to_bytes())).unwrap()
    }

    pub fn aac_config(sample_rate: u32, channels: u8) -> CodecConfig {
        let mut r = onair_shared::ingest::TagReader::new();
        let asc = AudioSpecificConfig::aac_lc(sample_rate, channels).unwrap();
        let body = [&[0xaf, 0][..], &asc.to_bytes()].concat();
        r.audio_tag(0, &Bytes::from(body)).unwrap().config.unwrap()
    }

    /// An MP3 configuration as ingest makes it from a frame with this 4-byte header.
    pub fn mp3_config(header: [u8; 4]) -> CodecConfig {
        let mut r = onair_shared::ingest::TagReader::new();
        let body = [&[0x2f][..], &header].concat();
        r.audio_tag(0, &Bytes::from(body)).unwrap().config.unwrap()
    }

    pub fn video(dts: u64, cts: i32, key: bool, nal_len: usize) -> Frame {
        let mut b = (nal_len as u32).to_be_bytes().to_vec();
        b.push(if key { 0x65 } else { 0x41 });
        b.resize(4 + nal_len, 0xab);
        Frame {
            kind: onair_shared::MediaKind::Video,
            track: 0,
            codec: onair_shared::Codec::H264,
            dts,
            cts,
            nanos: 0,
            keyframe: key,
            data: Bytes::from(b),
        }
    }

    pub fn audio_of(codec: onair_shared::Codec, dts: u64, data: Vec<u8>) -> Frame {
        Frame {
            kind: onair_shared::MediaKind::Audio,
            track: 0,
            codec,
            dts,
            cts: 0,
            nanos: 0,
            keyframe: false,
            data: Bytes::from(data),
        }
    }

    pub fn audio(dts: u64, len: usize) -> Frame {
        audio_of(onair_shared::Codec::Aac, dts, vec![0x21; len])
    }

    /// (pid, payload_unit_start, cc, adaptation field bytes, payload bytes) of a packet.
    pub type Parsed = (u16, bool, u8, Vec<u8>, Vec<u8>);

    pub fn packets(ts: &[u8]) -> Vec<Parsed> {
        assert_eq!(ts.len() % 188, 0, "whole packets");
        ts.chunks(188)
            .map(|p| {
                assert_eq!(p[0], 0x47, "sync byte");
                let pid = ((p[1] as u16 & 0x1f) << 8) | p[2] as u16;
                let pusi = p[1] & 0x40 != 0;
                let afc = (p[3] >> 4) & 3;
                let cc = p[3] & 0x0f;
                let (af, payload) = if afc & 2 != 0 {
                    let len = p[4] as usize;
                    (p[5..5 + len].to_vec(), p[5 + len..].to_vec())
                } else {
                    (vec![], p[4..].to_vec())
                };
                (
                    pid,
                    pusi,
                    cc,
                    af,
                    if afc & 1 != 0 { payload } else { vec![] },
                )
            })
            .collect()
    }

    fn read_ts(b: &[u8]) -> u64 {
        (((b[0] as u64 >> 1) & 7) << 30)
            | ((b[1] as u64) << 22)
            | (((b[2] as u64) >> 1) << 15)
            | ((b[3] as u64) << 7)
            | (b[4] as u64 >> 1)
    }

    #[test]
    fn one_elementary_stream_buffer_serves_every_frame() {
        let mut m = TsMuxer::default();
        let mut out = Vec::new();
        m.write_video(&mut out, &video(0, 0, true, 5000), &avc())
            .unwrap();
        let (ptr, cap) = (m.es.as_ptr(), m.es.capacity());
        assert!(cap >= 5000, "the keyframe's buffer is kept: capacity {cap}");
        m.write_video(&mut out, &video(33, 0, false, 300), &avc())
            .unwrap();
        m.write_audio(&mut out, &audio(40, 300), &aac_config(44100, 2), false)
            .unwrap();
        assert_eq!(
            (m.es.as_ptr(), m.es.capacity()),
            (ptr, cap),
            "no new buffer"
        );
    }

    #[test]
    fn tables_video_and_audio_packets_carry_pids_cc_pcr_pts_dts() {
        let mut m = TsMuxer::default();
        let mut out = Vec::new();
        m.write_tables(&mut out, true, Some(StreamType::AdtsAac))
            .unwrap();
        m.write_video(&mut out, &video(1000, 66, true, 500), &avc())
            .unwrap();
        m.write_audio(&mut out, &audio(1010, 300), &aac_config(44100, 2), false)
            .unwrap();
        m.write_video(&mut out, &video(1033, 0, false, 100), &avc())
            .unwrap();
        let ps = packets(&out);
        assert_eq!(ps[0].0, 0);
        assert_eq!(ps[1].0, PID_PMT);
        // PMT lists H.264 (0x1b) on 0x100 and ADTS AAC (0x0f) on 0x101 with the PCR on video.
        let pmt = &ps[1].4;
        assert!(pmt.windows(3).any(|w| w == [0x1b, 0xe1, 0x00]));
        assert!(pmt.windows(3).any(|w| w == [0x0f, 0xe1, 0x01]));

        let video: Vec<_> = ps.iter().filter(|p| p.0 == PID_VIDEO).collect();
        // Continuity counters count 0,1,2,... per PID.
        for (i, p) in video.iter().enumerate() {
            assert_eq!(p.2 as usize, i % 16);
        }
        let first = video[0];
        assert!(
            first.1,
            "payload unit start on the first packet of the access unit"
        );
        // Adaptation field: random access + PCR flags, PCR base = (1000 + 1400) * 90.
        assert_eq!(first.3[0] & 0x50, 0x50);
        let pcr_base = ((first.3[1] as u64) << 25)
            | ((first.3[2] as u64) << 17)
            | ((first.3[3] as u64) << 9)
            | ((first.3[4] as u64) << 1)
            | (first.3[5] as u64 >> 7);
        assert_eq!(pcr_base, 2400 * 90);
        // PES: start code, stream id 0xe0, PTS and DTS flags, PTS = DTS + 66 ms.
        let pes = &first.4;
        assert_eq!(&pes[..4], &[0, 0, 1, 0xe0]);
        assert_eq!(pes[7] & 0xc0, 0xc0);
        assert_eq!(read_ts(&pes[9..14]), (2400 + 66) * 90);
        assert_eq!(read_ts(&pes[14..19]), 2400 * 90);
        // AUD, then SPS and PPS before the IDR slice.
        assert_eq!(&pes[19..25], &[0, 0, 0, 1, 9, 0xf0]);
        assert_eq!(&pes[25..30], &[0, 0, 0, 1, 0x67]);

        let audio: Vec<_> = ps.iter().filter(|p| p.0 == PID_AUDIO).collect();
        let apes = &audio[0].4;
        assert_eq!(&apes[..4], &[0, 0, 1, 0xc0]);
        assert_eq!(apes[7] & 0xc0, 0x80, "audio has PTS only");
        assert_eq!(read_ts(&apes[9..14]), 2410 * 90);
        assert_eq!(&apes[14..16], &[0xff, 0xf1], "ADTS sync");
        // A non-key video frame has no SPS and no random access flag.
        let inter = video
            .iter()
            .find(|p| p.1 && read_ts(&p.4[14..19]) == 2433 * 90)
            .unwrap();
        assert_eq!(&inter.4[19..25], &[0, 0, 0, 1, 9, 0xf0]);
        assert_eq!(&inter.4[25..29], &[0, 0, 1, 0x41]);
    }

    #[test]
    fn continuity_counters_wrap_and_continue_across_segments() {
        let mut m = TsMuxer::default();
        let mut out = Vec::new();
        for i in 0..40 {
            m.write_video(&mut out, &video(i * 33, 0, i == 0, 200), &avc())
                .unwrap();
        }
        let ccs: Vec<u8> = packets(&out).iter().map(|p| p.2).collect();
        for w in ccs.windows(2) {
            assert_eq!(w[1], (w[0] + 1) % 16);
        }
    }

    #[test]
    fn timestamps_wrap_at_33_bits() {
        // 26.5 hours is past 2^33 ticks at 90 kHz.
        let dts_ms = (1u64 << 33) / 90 + 5000;
        let mut m = TsMuxer::default();
        let mut out = Vec::new();
        m.write_video(&mut out, &video(dts_ms, 0, true, 10), &avc())
            .unwrap();
        let p = &packets(&out)[0];
        assert_eq!(
            read_ts(&p.4[14..19]),
            ((dts_ms + TS_OFFSET_MS) * 90) & TS_MASK
        );
    }

    #[test]
    fn audio_only_stream_puts_pcr_on_audio() {
        let mut m = TsMuxer::default();
        let mut out = Vec::new();
        m.write_tables(&mut out, false, Some(StreamType::AdtsAac))
            .unwrap();
        m.write_audio(&mut out, &audio(0, 50), &aac_config(48000, 1), true)
            .unwrap();
        let ps = packets(&out);
        assert!(ps[1].4.windows(3).any(|w| w == [0x0f, 0xe1, 0x01]));
        assert!(!ps[1].4.windows(1).any(|w| w == [0x1b]));
        assert_eq!(ps[2].3[0] & 0x10, 0x10, "PCR flag on the audio packet");
    }

    #[test]
    fn mp3_goes_out_as_mpeg_audio_with_raw_frames() {
        // MPEG-1 layer III at 44.1 kHz: stream type 0x03; MPEG-2 at 22.05 kHz: 0x04.
        let mpeg1 = mp3_config([0xff, 0xfb, 0x90, 0x64]);
        let mpeg2 = mp3_config([0xff, 0xf3, 0x80, 0xc4]);
        assert_eq!(audio_stream_type(&mpeg1), Some(StreamType::Mpeg1Audio));
        assert_eq!(
            audio_stream_type(&mpeg2),
            Some(StreamType::Mpeg2HalvedSampleRateAudio)
        );
        let mut m = TsMuxer::default();
        let mut out = Vec::new();
        m.write_tables(&mut out, true, audio_stream_type(&mpeg1))
            .unwrap();
        let mut frame = vec![0xff, 0xfb, 0x90, 0x64];
        frame.resize(417, 0x55);
        m.write_audio(
            &mut out,
            &audio_of(onair_shared::Codec::Mp3, 1026, frame.clone()),
            &mpeg1,
            false,
        )
        .unwrap();
        let ps = packets(&out);
        // PMT: H.264 on 0x100 and MPEG-1 audio (0x03) on 0x101.
        let pmt = &ps[1].4;
        assert!(pmt.windows(3).any(|w| w == [0x1b, 0xe1, 0x00]));
        assert!(pmt.windows(3).any(|w| w == [0x03, 0xe1, 0x01]));
        let apkts: Vec<_> = ps.iter().filter(|p| p.0 == PID_AUDIO).collect();
        assert!(apkts[0].1, "payload unit start");
        let pes = &apkts[0].4;
        assert_eq!(&pes[..4], &[0, 0, 1, 0xc0], "audio stream id");
        let pes_len = u16::from_be_bytes([pes[4], pes[5]]) as usize;
        assert_eq!(
            pes_len,
            3 + 5 + frame.len(),
            "PES length: header and the frame"
        );
        assert_eq!(pes[7] & 0xc0, 0x80, "PTS only");
        assert_eq!(read_ts(&pes[9..14]), (1026 + TS_OFFSET_MS) * 90);
        // The payload is the MP3 frame itself, no ADTS or other framing.
        let mut es = pes[14..].to_vec();
        for p in &apkts[1..] {
            es.extend_from_slice(&p.4);
        }
        assert_eq!(es, frame);
        // TS cannot carry audio it has no stream type for.
        let speex = {
            let mut r = onair_shared::ingest::TagReader::new();
            r.audio_tag(0, &Bytes::from_static(&[0xb6, 1]))
                .unwrap()
                .config
                .unwrap()
        };
        assert_eq!(audio_stream_type(&speex), None);
        assert!(m
            .write_audio(&mut out, &audio(0, 5), &speex, false)
            .is_err());
    }

    /// HEVC: PMT stream type 0x24 on the video PID; an IRAP access unit goes out as AUD,
    /// VPS, SPS, PPS (from hvcC), then its slice, all Annex B; an inter frame gets the AUD
    /// and its slice only. hvcC is FFmpeg 8's (from the eflv test vectors).
    #[test]
    fn hevc_gets_stream_type_0x24_and_parameter_sets_before_each_irap() {
        use onair_shared::flv::{FlvDemuxer, FlvEvent};
        let mut d = FlvDemuxer::new(1 << 20);
        d.push(include_bytes!("../../../shared/src/eflv/testdata/hevc.flv"));
        let mut r = onair_shared::ingest::TagReader::new();
        let mut config = None;
        while let Some(ev) = d.next_event().unwrap() {
            if let FlvEvent::Tag(t) = ev {
                if t.tag_type == onair_shared::flv::TAG_VIDEO {
                    if let Some(c) = r.video_tag(t.timestamp, &t.body).unwrap().config {
                        config = Some(c);
                        break;
                    }
                }
            }
        }
        let config = config.expect("hvcC");
        let hvcc = config.hevc().expect("HEVC params").clone();
        let frame = |key: bool, nal_type: u8| Frame {
            kind: onair_shared::MediaKind::Video,
            track: 0,
            codec: Codec::Hevc,
            dts: 40,
            cts: 80,
            nanos: 0,
            keyframe: key,
            data: Bytes::from(vec![0, 0, 0, 3, nal_type << 1, 1, 0xaf]),
        };
        let mut m = TsMuxer::default();
        let mut out = Vec::new();
        m.write_tables_for(&mut out, Some(StreamType::H265), None)
            .unwrap();
        m.write_hevc(&mut out, &frame(true, 19), &hvcc).unwrap();
        let key_end = out.len();
        m.write_hevc(&mut out, &frame(false, 1), &hvcc).unwrap();
        let ps = packets(&out);
        // PMT: stream type 0x24 on PID 0x100 (after the 12-byte section header + pointer).
        let pmt = &ps[1].4;
        let es = &pmt[13..];
        assert_eq!(es[0], 0x24, "HEVC stream type");
        assert_eq!((((es[1] as u16) & 0x1f) << 8) | es[2] as u16, PID_VIDEO);
        // The IRAP PES: random access flagged, PTS and DTS, then the Annex B stream.
        let key: Vec<_> = packets(&out[188 * 2..key_end]);
        assert!(key.iter().all(|p| p.0 == PID_VIDEO));
        assert_eq!(key[0].3[0] & 0x40, 0x40, "random access indicator");
        let pes: Vec<u8> = key.iter().flat_map(|p| p.4.clone()).collect();
        assert_eq!(&pes[..3], &[0, 0, 1], "PES start code");
        assert_eq!(pes[7] >> 6, 3, "PTS and DTS");
        let annexb = &pes[9 + pes[8] as usize..];
        let mut want = vec![0, 0, 0, 1, 0x46, 0x01, 0x50];
        for ps in hvcc.vps.iter().chain(&hvcc.sps).chain(&hvcc.pps) {
            want.extend_from_slice(&[0, 0, 0, 1]);
            want.extend_from_slice(ps);
        }
        want.extend_from_slice(&[0, 0, 1, 19 << 1, 1, 0xaf]);
        assert_eq!(annexb, &want[..]);
        let inter: Vec<u8> = packets(&out[key_end..])
            .iter()
            .flat_map(|p| p.4.clone())
            .collect();
        let annexb = &inter[9 + inter[8] as usize..];
        assert_eq!(annexb, &[0, 0, 0, 1, 0x46, 0x01, 0x50, 0, 0, 1, 2, 1, 0xaf]);
    }
}
