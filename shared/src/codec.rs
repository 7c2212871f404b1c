//! The codecs onair knows by name, and their Enhanced RTMP FourCCs. Knowing a codec is
//! not carrying it: outputs decide what they can hold; this module only names things.

/// Codec of a frame. Every codec an Enhanced RTMP publisher may announce is named, so a
/// stream onair cannot carry is refused by name rather than mangled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    H264,
    Hevc,
    Av1,
    Vp9,
    Aac,
    Mp3,
    Opus,
    Flac,
    Ac3,
    Eac3,
    /// An FLV codec id we do not handle (the raw id for video or sound format for audio).
    Other(u8),
    Script,
}

impl Codec {
    pub fn name(self) -> &'static str {
        match self {
            Codec::H264 => "h264",
            Codec::Hevc => "hevc",
            Codec::Av1 => "av1",
            Codec::Vp9 => "vp9",
            Codec::Aac => "aac",
            Codec::Mp3 => "mp3",
            Codec::Opus => "opus",
            Codec::Flac => "flac",
            Codec::Ac3 => "ac3",
            Codec::Eac3 => "eac3",
            Codec::Other(_) => "unknown",
            Codec::Script => "script",
        }
    }

    /// The Enhanced RTMP FourCC (veovera/enhanced-rtmp v1/v2) of a codec that has one.
    pub fn fourcc(self) -> Option<[u8; 4]> {
        Some(match self {
            Codec::H264 => *b"avc1",
            Codec::Hevc => *b"hvc1",
            Codec::Av1 => *b"av01",
            Codec::Vp9 => *b"vp09",
            Codec::Aac => *b"mp4a",
            Codec::Mp3 => *b".mp3",
            Codec::Opus => *b"Opus",
            Codec::Flac => *b"fLaC",
            Codec::Ac3 => *b"ac-3",
            Codec::Eac3 => *b"ec-3",
            Codec::Other(_) | Codec::Script => return None,
        })
    }

    /// The codec a video FourCC names, if onair knows it.
    pub fn from_video_fourcc(fourcc: [u8; 4]) -> Option<Codec> {
        [Codec::H264, Codec::Hevc, Codec::Av1, Codec::Vp9]
            .into_iter()
            .find(|c| c.fourcc() == Some(fourcc))
    }

    /// The codec an audio FourCC names, if onair knows it.
    pub fn from_audio_fourcc(fourcc: [u8; 4]) -> Option<Codec> {
        [
            Codec::Aac,
            Codec::Mp3,
            Codec::Opus,
            Codec::Flac,
            Codec::Ac3,
            Codec::Eac3,
        ]
        .into_iter()
        .find(|c| c.fourcc() == Some(fourcc))
    }

    pub fn is_video(self) -> bool {
        matches!(self, Codec::H264 | Codec::Hevc | Codec::Av1 | Codec::Vp9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fourccs_round_trip_and_stay_on_their_side() {
        for c in [Codec::H264, Codec::Hevc, Codec::Av1, Codec::Vp9] {
            assert_eq!(Codec::from_video_fourcc(c.fourcc().unwrap()), Some(c));
            assert_eq!(Codec::from_audio_fourcc(c.fourcc().unwrap()), None);
        }
        for c in [
            Codec::Aac,
            Codec::Mp3,
            Codec::Opus,
            Codec::Flac,
            Codec::Ac3,
            Codec::Eac3,
        ] {
            assert_eq!(Codec::from_audio_fourcc(c.fourcc().unwrap()), Some(c));
            assert_eq!(Codec::from_video_fourcc(c.fourcc().unwrap()), None);
        }
        assert_eq!(Codec::from_video_fourcc(*b"xxxx"), None);
        // FourCCs are case-sensitive: "opus" is not "Opus".
        assert_eq!(Codec::from_audio_fourcc(*b"opus"), None);
    }
}
