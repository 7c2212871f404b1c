//! A small MPEG-TS demuxer for the HLS clients: 188-byte packets (fed in any split) → PAT →
//! PMT → the H.264 elementary stream's PES packets → the NAL unit carrying our magic and
//! frame sequence number. Only the first `PES_HEAD_MAX` bytes of each PES are kept (the magic
//! follows the AUD and parameter sets), so memory and work per segment are bounded and the
//! filler is never scanned. Nothing here panics on any input; problems are reported as
//! `TsError`s (the first one kept, all counted).

use crate::media::MAGIC;
use std::fmt;

pub const PACKET: usize = 188;
const SYNC: u8 = 0x47;
/// Bytes kept from the start of each video PES: header, AUD, SPS, PPS and the slice's first bytes.
pub const PES_HEAD_MAX: usize = 512;
/// Longest PSI section (section_length is at most 1021) with its 3-byte header.
const SECTION_MAX: usize = 1024;
/// Frames one segment may hold before we stop listing them.
pub const MAX_FRAMES: usize = 100_000;
const STREAM_TYPE_H264: u8 = 0x1b;
const NAL_SLICE: u8 = 1;
const NAL_IDR: u8 = 5;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TsError {
    /// A packet did not start with 0x47; parsing stops there.
    Sync {
        offset: u64,
    },
    /// The input ended inside a packet.
    Trailing {
        bytes: usize,
    },
    TransportError {
        packet: u64,
    },
    ReservedAdaptationControl {
        packet: u64,
    },
    AdaptationLength {
        packet: u64,
    },
    ContinuityJump {
        pid: u16,
        expected: u8,
        got: u8,
    },
    Section {
        pid: u16,
        what: &'static str,
    },
    Pes {
        what: &'static str,
    },
    NoVideoStream,
    TooManyFrames,
}

impl fmt::Display for TsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sync { offset } => write!(f, "lost sync at byte {offset}"),
            Self::Trailing { bytes } => write!(f, "{bytes} bytes of a partial packet at the end"),
            Self::TransportError { packet } => {
                write!(f, "transport error indicator on packet {packet}")
            }
            Self::ReservedAdaptationControl { packet } => {
                write!(f, "reserved adaptation_field_control on packet {packet}")
            }
            Self::AdaptationLength { packet } => {
                write!(f, "adaptation field too long on packet {packet}")
            }
            Self::ContinuityJump { pid, expected, got } => write!(
                f,
                "continuity counter on PID {pid:#x}: expected {expected}, got {got}"
            ),
            Self::Section { pid, what } => write!(f, "PSI on PID {pid:#x}: {what}"),
            Self::Pes { what } => write!(f, "video PES: {what}"),
            Self::NoVideoStream => write!(f, "no H.264 stream in the PMT"),
            Self::TooManyFrames => write!(f, "over {MAX_FRAMES} frames in one segment"),
        }
    }
}

impl std::error::Error for TsError {}

impl TsError {
    /// The kind of problem, without the numbers (for counting).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Sync { .. } => "lost sync",
            Self::Trailing { .. } => "partial packet at the end",
            Self::TransportError { .. } => "transport error indicator",
            Self::ReservedAdaptationControl { .. } => "reserved adaptation_field_control",
            Self::AdaptationLength { .. } => "adaptation field too long",
            Self::ContinuityJump { .. } => "continuity counter jump",
            Self::Section { what, .. } | Self::Pes { what } => what,
            Self::NoVideoStream => "no H.264 stream",
            Self::TooManyFrames => "too many frames",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqFrame {
    pub seq: u64,
    pub keyframe: bool,
}

/// What one segment held.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Demuxed {
    /// Measured frames, in stream order.
    pub frames: Vec<SeqFrame>,
    /// Video PES packets (access units) seen.
    pub access_units: u64,
    /// Access units without our magic.
    pub foreign: u64,
    /// The first problem, and how many there were.
    pub error: Option<TsError>,
    pub errors: u64,
}

/// Push-style demuxer of one segment.
#[derive(Debug, Default)]
pub struct TsDemuxer {
    carry: Vec<u8>,
    offset: u64,
    packets: u64,
    pmt_pid: Option<u16>,
    video_pid: Option<u16>,
    /// PSI section being assembled: (pid, bytes).
    section: Option<(u16, Vec<u8>)>,
    /// Head of the video PES being received.
    pes: Option<Vec<u8>>,
    video_cc: Option<u8>,
    stopped: bool,
    out: Demuxed,
}

impl TsDemuxer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Consumes bytes of the segment, in order, split anywhere.
    pub fn push(&mut self, mut data: &[u8]) {
        if self.stopped {
            return;
        }
        if !self.carry.is_empty() {
            let take = (PACKET - self.carry.len()).min(data.len());
            self.carry.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.carry.len() < PACKET {
                return;
            }
            let mut p = [0u8; PACKET];
            p.copy_from_slice(&self.carry);
            self.carry.clear();
            self.packet(&p);
        }
        let mut chunks = data.chunks_exact(PACKET);
        for p in &mut chunks {
            if self.stopped {
                return;
            }
            self.packet(p);
        }
        if !self.stopped {
            self.carry.extend_from_slice(chunks.remainder());
        }
    }

    /// Ends the segment: closes the last PES and reports.
    pub fn finish(mut self) -> Demuxed {
        if !self.stopped {
            self.close_pes();
            if !self.carry.is_empty() {
                let bytes = self.carry.len();
                self.fail(TsError::Trailing { bytes });
            }
            if self.video_pid.is_none() {
                self.fail(TsError::NoVideoStream);
            }
        }
        self.out
    }

    fn fail(&mut self, e: TsError) {
        self.out.errors += 1;
        self.out.error.get_or_insert(e);
    }

    fn packet(&mut self, p: &[u8]) {
        let n = self.packets;
        self.packets += 1;
        let at = self.offset;
        self.offset += PACKET as u64;
        if p.len() != PACKET || p[0] != SYNC {
            self.fail(TsError::Sync { offset: at });
            self.stopped = true;
            return;
        }
        if p[1] & 0x80 != 0 {
            self.fail(TsError::TransportError { packet: n });
            return;
        }
        let pusi = p[1] & 0x40 != 0;
        let pid = (u16::from(p[1] & 0x1f) << 8) | u16::from(p[2]);
        let afc = (p[3] >> 4) & 3;
        let cc = p[3] & 0x0f;
        if afc == 0 {
            self.fail(TsError::ReservedAdaptationControl { packet: n });
            return;
        }
        let mut start = 4;
        let mut discontinuity = false;
        if afc & 2 != 0 {
            let len = usize::from(p[4]);
            let max = if afc == 2 { PACKET - 5 } else { PACKET - 6 };
            if len > max {
                self.fail(TsError::AdaptationLength { packet: n });
                return;
            }
            discontinuity = len > 0 && p[5] & 0x80 != 0;
            start = 5 + len;
        }
        let payload = if afc & 1 != 0 { &p[start..] } else { &[][..] };
        if pid == 0 || Some(pid) == self.pmt_pid {
            if afc & 1 != 0 {
                self.psi(pid, pusi, payload);
            }
        } else if Some(pid) == self.video_pid {
            if afc & 1 != 0 {
                if let Some(last) = self.video_cc {
                    let expected = (last + 1) & 0x0f;
                    if cc == last && !pusi {
                        // A duplicate packet (allowed once): same payload again.
                        return;
                    }
                    if cc != expected && !discontinuity {
                        self.fail(TsError::ContinuityJump {
                            pid,
                            expected,
                            got: cc,
                        });
                    }
                }
                self.video_cc = Some(cc);
            }
            self.video(pusi, payload);
        }
    }

    fn psi(&mut self, pid: u16, pusi: bool, payload: &[u8]) {
        let body = if pusi {
            let Some((&pointer, rest)) = payload.split_first() else {
                self.fail(TsError::Section {
                    pid,
                    what: "empty payload",
                });
                return;
            };
            // Bytes before the pointer end a previous section: sections here are whole or
            // start in this packet, so they are dropped.
            let Some(section) = rest.get(usize::from(pointer)..) else {
                self.fail(TsError::Section {
                    pid,
                    what: "pointer past the packet",
                });
                return;
            };
            self.section = Some((pid, Vec::new()));
            section
        } else {
            payload
        };
        let Some((spid, buf)) = &mut self.section else {
            return;
        };
        if *spid != pid {
            return;
        }
        let room = SECTION_MAX.saturating_sub(buf.len());
        buf.extend_from_slice(&body[..body.len().min(room)]);
        if buf.len() < 3 {
            return;
        }
        let total = 3 + ((usize::from(buf[1] & 0x0f) << 8) | usize::from(buf[2]));
        if buf.first() == Some(&0xff) {
            // Stuffing: no section here.
            self.section = None;
            return;
        }
        if total > SECTION_MAX {
            self.section = None;
            self.fail(TsError::Section {
                pid,
                what: "section_length over 1021",
            });
            return;
        }
        if buf.len() < total {
            return;
        }
        let section = buf[..total].to_vec();
        self.section = None;
        if let Err(what) = self.table(pid, &section) {
            self.fail(TsError::Section { pid, what });
        }
    }

    fn table(&mut self, pid: u16, s: &[u8]) -> Result<(), &'static str> {
        if s.len() < 12 {
            return Err("section shorter than its header and CRC");
        }
        if crc32_mpeg2(s) != 0 {
            return Err("CRC mismatch");
        }
        let body = &s[8..s.len() - 4];
        match (pid, s[0]) {
            (0, 0x00) => {
                for e in body.chunks_exact(4) {
                    let program = u16::from_be_bytes([e[0], e[1]]);
                    if program != 0 {
                        self.pmt_pid = Some((u16::from(e[2] & 0x1f) << 8) | u16::from(e[3]));
                        return Ok(());
                    }
                }
                Err("PAT lists no program")
            }
            (_, 0x02) => {
                let info_len = body
                    .get(2..4)
                    .map(|b| (usize::from(b[0] & 0x0f) << 8) | usize::from(b[1]))
                    .ok_or("PMT too short")?;
                let mut es = body
                    .get(4 + info_len..)
                    .ok_or("program_info past the end")?;
                while es.len() >= 5 {
                    let stream_type = es[0];
                    let es_pid = (u16::from(es[1] & 0x1f) << 8) | u16::from(es[2]);
                    let info = (usize::from(es[3] & 0x0f) << 8) | usize::from(es[4]);
                    if stream_type == STREAM_TYPE_H264 && self.video_pid.is_none() {
                        self.video_pid = Some(es_pid);
                    }
                    es = es.get(5 + info..).ok_or("ES_info past the end")?;
                }
                Ok(())
            }
            (0, _) => Err("PID 0 carries no PAT"),
            _ => Err("PMT PID carries no PMT"),
        }
    }

    fn video(&mut self, pusi: bool, payload: &[u8]) {
        if pusi {
            self.close_pes();
            self.pes = Some(Vec::with_capacity(PES_HEAD_MAX));
        }
        // Continuation packets of a PES whose start we did not see are ignored.
        if let Some(head) = &mut self.pes {
            let room = PES_HEAD_MAX - head.len();
            head.extend_from_slice(&payload[..payload.len().min(room)]);
        }
    }

    fn close_pes(&mut self) {
        let Some(head) = self.pes.take() else {
            return;
        };
        self.out.access_units += 1;
        let es = match pes_payload(&head) {
            Ok(es) => es,
            Err(what) => {
                self.fail(TsError::Pes { what });
                return;
            }
        };
        match find_seq(es) {
            Some(f) if self.out.frames.len() < MAX_FRAMES => self.out.frames.push(f),
            Some(_) => {
                if self.out.frames.len() == MAX_FRAMES {
                    self.fail(TsError::TooManyFrames);
                }
            }
            None => self.out.foreign += 1,
        }
    }
}

/// The elementary-stream bytes of a PES packet (its head, at least).
fn pes_payload(pes: &[u8]) -> Result<&[u8], &'static str> {
    if pes.len() < 9 {
        return Err("shorter than a PES header");
    }
    if pes[..3] != [0, 0, 1] {
        return Err("no packet_start_code_prefix");
    }
    if pes[3] & 0xf0 != 0xe0 {
        return Err("stream_id is not a video stream");
    }
    if pes[6] & 0xc0 != 0x80 {
        return Err("no optional PES header");
    }
    pes.get(9 + usize::from(pes[8])..)
        .ok_or("PES header longer than the data")
}

/// The first slice NAL (Annex B) whose payload starts with the magic and a sequence number.
pub fn find_seq(es: &[u8]) -> Option<SeqFrame> {
    let mut i = 0;
    while let Some(at) = es.get(i..)?.windows(3).position(|w| w == [0, 0, 1]) {
        let nal = es.get(i + at + 3..)?;
        let t = nal.first()? & 0x1f;
        if (t == NAL_SLICE || t == NAL_IDR) && nal.get(1..9) == Some(&MAGIC[..]) {
            let mut n = [0u8; 8];
            n.copy_from_slice(nal.get(9..17)?);
            return Some(SeqFrame {
                seq: u64::from_be_bytes(n),
                keyframe: t == NAL_IDR,
            });
        }
        i += at + 3;
    }
    None
}

/// CRC-32/MPEG-2 (poly 0x04c11db7, no reflection, no final xor); 0 over a section with its CRC.
pub fn crc32_mpeg2(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04c1_1db7
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Demuxes a whole segment.
pub fn demux(segment: &[u8]) -> Demuxed {
    let mut d = TsDemuxer::new();
    d.push(segment);
    d.finish()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::media::{filler, video_frame};
    use mpeg2ts::es::{StreamId, StreamType};
    use mpeg2ts::pes::PesHeader;
    use mpeg2ts::time::{ClockReference, Timestamp};
    use mpeg2ts::ts::payload::{Bytes as TsBytes, Pat, Pes, Pmt};
    use mpeg2ts::ts::{
        AdaptationField, ContinuityCounter, EsInfo, Pid, ProgramAssociation,
        TransportScramblingControl, TsHeader, TsPacket, TsPacketWriter, TsPayload, VersionNumber,
        WriteTsPacket,
    };

    const VPID: u16 = 0x100;
    const APID: u16 = 0x101;
    const PMT: u16 = 0x1000;

    /// Writes TS the way onair's muxer does, with an independent implementation (mpeg2ts).
    #[derive(Default)]
    struct Mux {
        out: Vec<u8>,
        cc: [u8; 4],
    }

    impl Mux {
        fn header(&mut self, pid: u16, slot: usize) -> TsHeader {
            let c = ContinuityCounter::from_u8(self.cc[slot]).unwrap();
            self.cc[slot] = (self.cc[slot] + 1) & 0x0f;
            TsHeader {
                transport_error_indicator: false,
                transport_priority: false,
                pid: Pid::new(pid).unwrap(),
                transport_scrambling_control: TransportScramblingControl::NotScrambled,
                continuity_counter: c,
            }
        }

        fn write(&mut self, p: TsPacket) {
            TsPacketWriter::new(&mut self.out)
                .write_ts_packet(&p)
                .unwrap();
        }

        fn tables(&mut self) {
            let h = self.header(0, 0);
            self.write(TsPacket {
                header: h,
                adaptation_field: None,
                payload: Some(TsPayload::Pat(Pat {
                    transport_stream_id: 1,
                    version_number: VersionNumber::new(),
                    table: vec![ProgramAssociation {
                        program_num: 1,
                        program_map_pid: Pid::new(PMT).unwrap(),
                    }],
                })),
            });
            let h = self.header(PMT, 1);
            self.write(TsPacket {
                header: h,
                adaptation_field: None,
                payload: Some(TsPayload::Pmt(Pmt {
                    program_num: 1,
                    pcr_pid: Some(Pid::new(VPID).unwrap()),
                    version_number: VersionNumber::new(),
                    program_info: vec![],
                    es_info: vec![
                        EsInfo {
                            stream_type: StreamType::AdtsAac,
                            elementary_pid: Pid::new(APID).unwrap(),
                            descriptors: vec![],
                        },
                        EsInfo {
                            stream_type: StreamType::H264,
                            elementary_pid: Pid::new(VPID).unwrap(),
                            descriptors: vec![],
                        },
                    ],
                })),
            });
        }

        fn pes(&mut self, pid: u16, es: &[u8], pcr: bool) {
            let slot = if pid == VPID { 2 } else { 3 };
            let ts = Timestamp::new(90_000).unwrap();
            let header = PesHeader {
                stream_id: StreamId::new(if pid == VPID {
                    StreamId::VIDEO_MIN
                } else {
                    StreamId::AUDIO_MIN
                }),
                priority: false,
                data_alignment_indicator: true,
                copyright: false,
                original_or_copy: false,
                pts: Some(ts),
                dts: (pid == VPID).then_some(ts),
                escr: None,
            };
            let af = pcr.then(|| AdaptationField {
                discontinuity_indicator: false,
                random_access_indicator: true,
                es_priority_indicator: false,
                pcr: Some(ClockReference::new(27_000_000).unwrap()),
                opcr: None,
                splice_countdown: None,
                transport_private_data: vec![],
                extension: None,
            });
            let room = 184 - if pcr { 8 } else { 0 } - 9 - 5 - if pid == VPID { 5 } else { 0 };
            let (first, mut rest) = es.split_at(es.len().min(room));
            let h = self.header(pid, slot);
            self.write(TsPacket {
                header: h,
                adaptation_field: af,
                payload: Some(TsPayload::PesStart(Pes {
                    header,
                    pes_packet_len: 0,
                    data: TsBytes::new(first).unwrap(),
                })),
            });
            while !rest.is_empty() {
                let (c, t) = rest.split_at(rest.len().min(TsBytes::MAX_SIZE));
                rest = t;
                let h = self.header(pid, slot);
                self.write(TsPacket {
                    header: h,
                    adaptation_field: None,
                    payload: Some(TsPayload::PesContinuation(TsBytes::new(c).unwrap())),
                });
            }
        }
    }

    /// Annex B access unit as onair muxes it: AUD, SPS+PPS on keyframes, then the frame's NAL.
    fn access_unit(seq: u64, f: &[u8]) -> Vec<u8> {
        let body = video_frame(seq, f);
        let mut es = vec![0, 0, 0, 1, 0x09, 0xf0];
        if crate::media::is_keyframe(seq) {
            es.extend_from_slice(&[0, 0, 0, 1, 0x67, 0x64, 0, 0x1f, 0xac]);
            es.extend_from_slice(&[0, 0, 0, 1, 0x68, 0xeb, 0xe3]);
        }
        es.extend_from_slice(&[0, 0, 1]);
        es.extend_from_slice(&body[9..]);
        es
    }

    /// A segment of frames `seqs` with audio between them.
    pub(crate) fn segment(seqs: std::ops::Range<u64>) -> Vec<u8> {
        let f = filler();
        let mut m = Mux::default();
        m.tables();
        for seq in seqs {
            m.pes(VPID, &access_unit(seq, &f), crate::media::is_keyframe(seq));
            m.pes(
                APID,
                &[0xff, 0xf1, 0x50, 0x80, 0x2e, 0x7f, 0xfc, 1, 2, 3],
                false,
            );
        }
        m.out
    }

    fn seqs(d: &Demuxed) -> Vec<u64> {
        d.frames.iter().map(|f| f.seq).collect()
    }

    #[test]
    fn one_gop_segment_in_any_split() {
        let ts = segment(60..120);
        assert_eq!(ts.len() % PACKET, 0);
        let whole = demux(&ts);
        assert_eq!(whole.error, None);
        assert_eq!(seqs(&whole), (60..120).collect::<Vec<_>>());
        assert_eq!(whole.access_units, 60);
        assert_eq!(whole.foreign, 0);
        assert!(whole.frames[0].keyframe && !whole.frames[1].keyframe);
        for piece in [1, 187, 189, 1000, 65_536] {
            let mut d = TsDemuxer::new();
            for c in ts.chunks(piece) {
                d.push(c);
            }
            assert_eq!(d.finish(), whole, "piece {piece}");
        }
    }

    #[test]
    fn foreign_frames_and_missing_pes_start() {
        let f = filler();
        let mut m = Mux::default();
        m.tables();
        let mut au = access_unit(7, &f);
        let at = au.windows(8).position(|w| w == MAGIC).unwrap();
        au[at] ^= 1;
        m.pes(VPID, &au, false);
        m.pes(VPID, &access_unit(8, &f), false);
        let d = demux(&m.out);
        assert_eq!((seqs(&d), d.foreign, d.access_units), (vec![8], 1, 2));
        assert_eq!(d.error, None);
        // A segment that starts mid-PES: continuation packets before the first start are skipped.
        let ts = segment(0..3);
        let without = |i: usize| -> Vec<u8> {
            ts[..i * PACKET]
                .iter()
                .chain(&ts[(i + 1) * PACKET..])
                .copied()
                .collect()
        };
        let d = demux(&without(2));
        assert_eq!((seqs(&d), d.error), (vec![1, 2], None));
        // A lost packet inside a PES: a continuity jump, the frames still found.
        let d = demux(&without(5));
        assert_eq!(seqs(&d), vec![0, 1, 2]);
        assert_eq!(
            d.error,
            Some(TsError::ContinuityJump {
                pid: VPID,
                expected: 3,
                got: 4
            })
        );
    }

    #[test]
    fn errors_are_reported_not_panicked() {
        let ts = segment(0..2);
        // Lost sync: stops there, keeps what came before.
        let mut bad = ts.clone();
        let n = bad.len() / PACKET - 1;
        bad[n * PACKET] = 0x48;
        let d = demux(&bad);
        assert_eq!(
            d.error,
            Some(TsError::Sync {
                offset: (n * PACKET) as u64
            })
        );
        // Trailing partial packet.
        let d = demux(&ts[..ts.len() - 10]);
        assert_eq!(d.error, Some(TsError::Trailing { bytes: 178 }));
        // Corrupt PAT (mpeg2ts pads it in front, so the section ends the packet): no PMT,
        // so no video stream.
        let mut bad = ts.clone();
        bad[PACKET - 6] ^= 0xff;
        let d = demux(&bad);
        assert!(
            matches!(d.error, Some(TsError::Section { pid: 0, .. })),
            "{:?}",
            d.error
        );
        assert!(d.frames.is_empty());
        // Empty input.
        assert_eq!(demux(&[]).error, Some(TsError::NoVideoStream));
        // Reserved adaptation_field_control and an oversized adaptation field.
        let mut p = [0xffu8; PACKET];
        p[..4].copy_from_slice(&[0x47, 0x01, 0x00, 0x00]);
        assert_eq!(
            demux(&p).error,
            Some(TsError::ReservedAdaptationControl { packet: 0 })
        );
        p[3] = 0x30;
        p[4] = 183;
        assert_eq!(
            demux(&p).error,
            Some(TsError::AdaptationLength { packet: 0 })
        );
    }

    #[test]
    fn garbage_never_panics() {
        let ts = segment(0..3);
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..300 {
            let mut t = ts.clone();
            // Flip bytes only after the sync bytes, so parsing goes deep.
            for _ in 0..1 + next() % 20 {
                let i = (next() % t.len() as u64) as usize;
                if !i.is_multiple_of(PACKET) {
                    t[i] = next() as u8;
                }
            }
            let d = demux(&t);
            assert!(d.frames.len() <= 3);
            let mut d = TsDemuxer::new();
            for c in t.chunks(1 + (next() % 400) as usize) {
                d.push(c);
            }
            d.finish();
        }
        let noise: Vec<u8> = (0..PACKET * 20)
            .map(|i| {
                if i.is_multiple_of(PACKET) {
                    SYNC
                } else {
                    next() as u8
                }
            })
            .collect();
        demux(&noise);
    }

    #[test]
    fn crc_and_nal_search() {
        assert_eq!(crc32_mpeg2(b"123456789"), 0x0376_e6e7);
        let f = filler();
        let au = access_unit(60, &f);
        assert_eq!(
            find_seq(&au),
            Some(SeqFrame {
                seq: 60,
                keyframe: true
            })
        );
        assert_eq!(find_seq(&au[..au.len().min(30)]), None);
        assert_eq!(find_seq(&[0, 0, 1]), None);
        assert_eq!(find_seq(&[]), None);
    }
}
