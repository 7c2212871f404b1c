//! FLV/RTMP audio and video message bodies, legacy and Enhanced RTMP (veovera v1 and v2),
//! parsed into per-track packets whose payloads are zero-copy slices of the message.
//! Sans-IO: bytes in, typed values out. It never trusts a length it has not checked, never
//! panics on peer bytes, and never guesses past a malformed field: the message ends in an error.

mod audio;
pub mod connect;
mod video;
pub mod write;

pub use audio::{parse_audio, AudioMessage, ChannelOrder, LegacySoundInfo, MultichannelConfig};
pub use video::{
    parse_video, ColorInfo, FrameType, MasteringDisplay, VideoCommand, VideoMessage, VideoMetadata,
};

use bytes::Bytes;

use crate::codec::Codec;
use crate::metadata::AmfError;

/// What one track's packet carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketKind {
    /// Codec configuration: avcC, hvcC, av1C, vpcC, AudioSpecificConfig, OpusHead,
    /// FLAC STREAMINFO (legacy sequence headers included).
    Config,
    /// AV1 only: the AV1 video descriptor of MPEG-2 TS carriage instead of an av1C.
    Mpeg2TsConfig,
    /// One access unit (video) or audio frame(s).
    Frame,
    /// End of sequence; the payload is whatever followed (normally nothing).
    End,
}

/// One track's packet out of an audio or video message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// 0 outside multitrack messages.
    pub track: u8,
    pub codec: Codec,
    pub kind: PacketKind,
    /// Video: frame type key (1) or generated key (4). Audio: always true.
    pub keyframe: bool,
    /// PTS - DTS in ms: the SI24 of H.264/HEVC CodedFrames (and legacy AVC/HEVC); 0 for
    /// CodedFramesX and for codecs whose coded frames carry none (AV1, VP9, audio).
    pub composition_offset_ms: i32,
    /// ModEx TimestampOffsetNano of the message (0 when absent): add it to the message
    /// timestamp, which stays in ms on the wire. Always below 1 ms.
    pub timestamp_offset_ns: u32,
    /// The access unit / config record / audio frame: a slice of the message, not a copy.
    pub payload: Bytes,
}

impl Packet {
    /// Decode time in ns from the message timestamp in ms, with the nano offset applied.
    pub fn dts_ns(&self, message_timestamp_ms: u64) -> u64 {
        message_timestamp_ms
            .saturating_mul(1_000_000)
            .saturating_add(self.timestamp_offset_ns as u64)
    }
}

/// How an Enhanced RTMP Multitrack message lays out its tracks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MultitrackType {
    /// One track, with a track id, no size: the rest of the message is its body.
    OneTrack,
    /// Several tracks of one FourCC, each with a track id and a UI24 size.
    ManyTracks,
    /// Several tracks, each with its own FourCC, track id and UI24 size.
    ManyTracksManyCodecs,
}

impl MultitrackType {
    fn from_bits(v: u8) -> Result<Self, ExError> {
        Ok(match v {
            0 => MultitrackType::OneTrack,
            1 => MultitrackType::ManyTracks,
            2 => MultitrackType::ManyTracksManyCodecs,
            other => return Err(ExError::ReservedMultitrackType(other)),
        })
    }
}

/// Bounds on what one message may ask of the parser. Defaults suit every known encoder;
/// the server maps them to named config keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseLimits {
    /// Tracks in one Multitrack message.
    pub max_tracks: usize,
    /// ModEx entries chained in one message.
    pub max_modex: usize,
    /// Bytes of one ModEx entry's data (the wire allows 65536).
    pub max_modex_len: usize,
    /// AMF0 nesting in a Metadata packet.
    pub max_amf_depth: usize,
}

impl Default for ParseLimits {
    fn default() -> Self {
        Self {
            max_tracks: 16,
            max_modex: 4,
            max_modex_len: 64,
            max_amf_depth: 8,
        }
    }
}

/// A FourCC as text for messages: printable ASCII as is, other bytes escaped.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FourCc(pub [u8; 4]);

impl std::fmt::Display for FourCc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            if b.is_ascii_graphic() || b == b' ' {
                write!(f, "{}", b as char)?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

impl std::fmt::Debug for FourCc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// Why a message was refused. Each names the field and where it went wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ExError {
    #[error("empty video message")]
    EmptyVideo,
    #[error("{what} truncated at byte {at}: need {need} bytes, {have} left")]
    Truncated {
        what: &'static str,
        at: usize,
        need: usize,
        have: usize,
    },
    #[error("video FourCC \"{0}\" is not a codec onair knows")]
    UnknownVideoFourCc(FourCc),
    #[error("audio FourCC \"{0}\" is not a codec onair knows")]
    UnknownAudioFourCc(FourCc),
    #[error("reserved video packet type {0}")]
    ReservedVideoPacketType(u8),
    #[error("reserved audio packet type {0}")]
    ReservedAudioPacketType(u8),
    #[error("reserved video frame type {0}")]
    ReservedFrameType(u8),
    #[error("reserved {codec} packet type {packet_type} in a legacy tag")]
    ReservedLegacyPacketType {
        codec: &'static str,
        packet_type: u8,
    },
    #[error("reserved multitrack type {0}")]
    ReservedMultitrackType(u8),
    #[error("packet type {0} inside a Multitrack message (Multitrack or ModEx cannot nest)")]
    NestedMultitrack(u8),
    #[error("{count} ModEx entries in one message, the limit is {max}")]
    TooManyModEx { count: usize, max: usize },
    #[error("ModEx entry of {len} bytes, the limit is {max}")]
    ModExTooLong { len: usize, max: usize },
    #[error("TimestampOffsetNano needs 3 bytes, got {0}")]
    NanoOffsetTooShort(usize),
    #[error("TimestampOffsetNano {0} ns is not below 1 ms")]
    NanoOffsetTooLarge(u32),
    #[error("TimestampOffsetNano given twice in one message")]
    DuplicateNanoOffset,
    #[error("track {track} declares {size} bytes but {left} are left in the message")]
    TrackSizeOverrun { track: u8, size: usize, left: usize },
    #[error("more than {max} tracks in one message")]
    TooManyTracks { max: usize },
    #[error("track {0} appears twice in one message")]
    DuplicateTrack(u8),
    #[error("packet type {packet_type} is not defined for {codec}")]
    PacketTypeNotForCodec {
        packet_type: u8,
        codec: &'static str,
    },
    #[error("reserved audio channel order {0}")]
    ReservedChannelOrder(u8),
    #[error("video metadata: {0}")]
    Metadata(#[from] AmfError),
}

/// A bounds-checked cursor over one message.
struct Reader<'a> {
    data: &'a Bytes,
    pos: usize,
    /// Where this reader's window ends (a track's declared size ends before the message).
    end: usize,
}

impl<'a> Reader<'a> {
    fn new(data: &'a Bytes, pos: usize) -> Self {
        Self {
            data,
            pos,
            end: data.len(),
        }
    }

    fn left(&self) -> usize {
        self.end - self.pos
    }

    fn need(&self, what: &'static str, n: usize) -> Result<(), ExError> {
        if self.left() < n {
            return Err(ExError::Truncated {
                what,
                at: self.pos,
                need: n,
                have: self.left(),
            });
        }
        Ok(())
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, ExError> {
        self.need(what, 1)?;
        let v = self.data[self.pos];
        self.pos += 1;
        Ok(v)
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, ExError> {
        self.need(what, 2)?;
        let v = u16::from_be_bytes([self.data[self.pos], self.data[self.pos + 1]]);
        self.pos += 2;
        Ok(v)
    }

    fn u24(&mut self, what: &'static str) -> Result<u32, ExError> {
        self.need(what, 3)?;
        let b = &self.data[self.pos..self.pos + 3];
        self.pos += 3;
        Ok(((b[0] as u32) << 16) | ((b[1] as u32) << 8) | b[2] as u32)
    }

    fn fourcc(&mut self, what: &'static str) -> Result<[u8; 4], ExError> {
        self.need(what, 4)?;
        let mut v = [0u8; 4];
        v.copy_from_slice(&self.data[self.pos..self.pos + 4]);
        self.pos += 4;
        Ok(v)
    }

    /// The next `n` bytes as a zero-copy slice.
    fn take(&mut self, what: &'static str, n: usize) -> Result<Bytes, ExError> {
        self.need(what, n)?;
        let v = self.data.slice(self.pos..self.pos + n);
        self.pos += n;
        Ok(v)
    }

    fn rest(&mut self) -> Bytes {
        let v = self.data.slice(self.pos..self.end);
        self.pos = self.end;
        v
    }

    /// A reader over the next `n` bytes; this reader moves past them.
    fn window(&mut self, track: u8, n: usize) -> Result<Reader<'a>, ExError> {
        if n > self.left() {
            return Err(ExError::TrackSizeOverrun {
                track,
                size: n,
                left: self.left(),
            });
        }
        let w = Reader {
            data: self.data,
            pos: self.pos,
            end: self.pos + n,
        };
        self.pos += n;
        Ok(w)
    }
}

/// Signed 24-bit big-endian.
fn si24(v: u32) -> i32 {
    ((v << 8) as i32) >> 8
}

/// The ModEx chain that may follow the packet type (same layout for audio and video).
/// Returns the packet type that ends the chain and the nano offset, if one was given.
fn read_modex(
    r: &mut Reader,
    mut packet_type: u8,
    limits: &ParseLimits,
) -> Result<(u8, u32), ExError> {
    const MODEX: u8 = 7;
    const TIMESTAMP_OFFSET_NANO: u8 = 0;
    let mut count = 0;
    let mut nano: Option<u32> = None;
    while packet_type == MODEX {
        count += 1;
        if count > limits.max_modex {
            return Err(ExError::TooManyModEx {
                count,
                max: limits.max_modex,
            });
        }
        let mut len = r.u8("ModEx size")? as usize + 1;
        if len == 256 {
            len = r.u16("ModEx 16-bit size")? as usize + 1;
        }
        if len > limits.max_modex_len {
            return Err(ExError::ModExTooLong {
                len,
                max: limits.max_modex_len,
            });
        }
        let data = r.take("ModEx data", len)?;
        let b = r.u8("ModEx type")?;
        packet_type = b & 0x0f;
        // Unknown ModEx types only modify; their data is sized, so they are skipped.
        if b >> 4 == TIMESTAMP_OFFSET_NANO {
            if data.len() < 3 {
                return Err(ExError::NanoOffsetTooShort(data.len()));
            }
            let v = ((data[0] as u32) << 16) | ((data[1] as u32) << 8) | data[2] as u32;
            if v >= 1_000_000 {
                return Err(ExError::NanoOffsetTooLarge(v));
            }
            if nano.replace(v).is_some() {
                return Err(ExError::DuplicateNanoOffset);
            }
        }
    }
    Ok((packet_type, nano.unwrap_or(0)))
}

/// Walks the tracks of an enhanced message: calls `each(track, fourcc, body)` once per track.
/// Outside Multitrack there is one call with track 0 and the rest of the message.
fn for_each_track<'a>(
    r: &mut Reader<'a>,
    multitrack: Option<MultitrackType>,
    shared_fourcc: Option<[u8; 4]>,
    limits: &ParseLimits,
    mut each: impl FnMut(u8, [u8; 4], Reader<'a>) -> Result<(), ExError>,
) -> Result<(), ExError> {
    let Some(mt) = multitrack else {
        let fourcc = match shared_fourcc {
            Some(f) => f,
            None => r.fourcc("FourCC")?,
        };
        let body = Reader {
            data: r.data,
            pos: r.pos,
            end: r.end,
        };
        r.pos = r.end;
        return each(0, fourcc, body);
    };
    let mut seen = [false; 256];
    let mut count = 0;
    loop {
        count += 1;
        if count > limits.max_tracks {
            return Err(ExError::TooManyTracks {
                max: limits.max_tracks,
            });
        }
        let fourcc = match (mt, shared_fourcc) {
            (MultitrackType::ManyTracksManyCodecs, _) | (_, None) => r.fourcc("track FourCC")?,
            (_, Some(f)) => f,
        };
        let track = r.u8("track id")?;
        if std::mem::replace(&mut seen[track as usize], true) {
            return Err(ExError::DuplicateTrack(track));
        }
        let body = if mt == MultitrackType::OneTrack {
            let w = Reader {
                data: r.data,
                pos: r.pos,
                end: r.end,
            };
            r.pos = r.end;
            w
        } else {
            let size = r.u24("track size")? as usize;
            r.window(track, size)?
        };
        each(track, fourcc, body)?;
        if mt == MultitrackType::OneTrack || r.left() == 0 {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fourcc_display_escapes_binary() {
        assert_eq!(FourCc(*b"hvc1").to_string(), "hvc1");
        assert_eq!(FourCc([b'a', 0, b'b', 0xff]).to_string(), "a\\x00b\\xff");
    }

    #[test]
    fn si24_sign() {
        assert_eq!(si24(0xffffff), -1);
        assert_eq!(si24(0x7fffff), 8_388_607);
        assert_eq!(si24(0x800000), -8_388_608);
    }

    #[test]
    fn dts_ns_applies_the_offset() {
        let p = Packet {
            track: 0,
            codec: Codec::Hevc,
            kind: PacketKind::Frame,
            keyframe: false,
            composition_offset_ms: 0,
            timestamp_offset_ns: 999_999,
            payload: Bytes::new(),
        };
        assert_eq!(p.dts_ns(40), 40_999_999);
    }
}

#[cfg(test)]
mod tests_vectors;

/// The (tag type, body) of every tag of a test FLV file.
#[cfg(test)]
pub(crate) fn testdata_tags(file: &[u8]) -> Vec<(u8, Bytes)> {
    let mut d = crate::flv::FlvDemuxer::new(1 << 20);
    d.push(file);
    let mut out = Vec::new();
    while let Ok(Some(ev)) = d.next_event() {
        if let crate::flv::FlvEvent::Tag(t) = ev {
            out.push((t.tag_type, t.body));
        }
    }
    out
}

/// Test vectors are written as hex strings (whitespace ignored).
#[cfg(test)]
pub(crate) fn hex(s: &str) -> Vec<u8> {
    let s: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    s.chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}
