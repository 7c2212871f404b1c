//! First look at a WHEP offer before str0m parses it: size, text, and which codecs each
//! m-section offers, so an offer the stream cannot be played with gets a clear 4xx that
//! names what is missing. Sans-IO; reads only the SDP text it is given.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OfferError {
    #[error("the offer is {0} bytes, over this server's limit of {1}")]
    TooLarge(usize, usize),
    #[error("the offer is not UTF-8 SDP text")]
    NotText,
    #[error("the offer is not SDP (it must start with v=0)")]
    NotSdp,
    #[error(
        "the offer has no video m-line with H.264 (packetization-mode 1), which this stream needs"
    )]
    NoH264,
    #[error("the offer has no audio m-line with Opus/48000/2, which this stream needs")]
    NoOpus,
    #[error("the offer has no video m-line with AV1, which this stream needs")]
    NoAv1,
    #[error("this stream's video is {0}; onair serves H.264 and AV1 video over WebRTC")]
    VideoCodec(&'static str),
}

/// What an offer can receive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OfferCodecs {
    pub h264: bool,
    pub av1: bool,
    pub opus: bool,
}

/// Checks size and form, and reads the codecs offered in video and audio sections.
pub fn inspect(body: &[u8], max_bytes: usize) -> Result<(&str, OfferCodecs), OfferError> {
    if body.len() > max_bytes {
        return Err(OfferError::TooLarge(body.len(), max_bytes));
    }
    let text = std::str::from_utf8(body).map_err(|_| OfferError::NotText)?;
    if !text.trim_start().starts_with("v=0") {
        return Err(OfferError::NotSdp);
    }
    let mut codecs = OfferCodecs::default();
    let mut section = "";
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(m) = line.strip_prefix("m=") {
            section = m.split(' ').next().unwrap_or("");
            continue;
        }
        let Some(rtpmap) = line.strip_prefix("a=rtpmap:") else {
            continue;
        };
        let Some((_pt, enc)) = rtpmap.split_once(' ') else {
            continue;
        };
        let enc = enc.to_ascii_lowercase();
        match section {
            "video" if enc.starts_with("h264/90000") => codecs.h264 = true,
            "video" if enc.starts_with("av1/90000") => codecs.av1 = true,
            "audio" if enc.starts_with("opus/48000") => codecs.opus = true,
            _ => {}
        }
    }
    Ok((text, codecs))
}

/// Whether an offer can play a stream with these tracks (video codec, has audio).
pub fn check_playable(
    codecs: &OfferCodecs,
    video: Option<onair_shared::Codec>,
    has_audio: bool,
) -> Result<(), OfferError> {
    match video {
        Some(onair_shared::Codec::H264) if !codecs.h264 => return Err(OfferError::NoH264),
        Some(onair_shared::Codec::Av1) if !codecs.av1 => return Err(OfferError::NoAv1),
        Some(onair_shared::Codec::H264 | onair_shared::Codec::Av1) | None => {}
        Some(other) => return Err(OfferError::VideoCodec(other.name())),
    }
    if has_audio && !codecs.opus {
        return Err(OfferError::NoOpus);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use onair_shared::Codec;

    const CHROME_LIKE: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96 102\r\na=rtpmap:96 VP8/90000\r\na=rtpmap:102 H264/90000\r\n";

    #[test]
    fn reads_codecs_per_section() {
        let (_, c) = inspect(CHROME_LIKE.as_bytes(), 10_000).unwrap();
        assert_eq!(
            c,
            OfferCodecs {
                h264: true,
                av1: false,
                opus: true
            }
        );
        assert_eq!(check_playable(&c, Some(Codec::H264), true), Ok(()));
        assert_eq!(
            check_playable(&c, Some(Codec::Av1), true),
            Err(OfferError::NoAv1)
        );
    }

    #[test]
    fn names_what_is_missing() {
        let vp8_only = CHROME_LIKE.replace("a=rtpmap:102 H264/90000\r\n", "");
        let (_, c) = inspect(vp8_only.as_bytes(), 10_000).unwrap();
        assert_eq!(
            check_playable(&c, Some(Codec::H264), true),
            Err(OfferError::NoH264)
        );
        // An audio-only stream plays without H.264.
        assert_eq!(check_playable(&c, None, true), Ok(()));
        let no_opus = CHROME_LIKE.replace("opus/48000/2", "PCMU/8000");
        let (_, c) = inspect(no_opus.as_bytes(), 10_000).unwrap();
        assert_eq!(
            check_playable(&c, Some(Codec::H264), true),
            Err(OfferError::NoOpus)
        );
        assert_eq!(check_playable(&c, Some(Codec::H264), false), Ok(()));
        assert_eq!(
            check_playable(&c, Some(Codec::Hevc), false),
            Err(OfferError::VideoCodec("hevc"))
        );
        // Opus offered in a video section does not count.
        let misplaced = "v=0\r\nm=video 9 X 1\r\na=rtpmap:1 opus/48000/2\r\n";
        assert_eq!(
            inspect(misplaced.as_bytes(), 100).unwrap().1,
            OfferCodecs::default()
        );
    }

    #[test]
    fn refuses_huge_binary_and_non_sdp_bodies() {
        assert_eq!(
            inspect(&vec![b'a'; 100_001], 100_000).unwrap_err(),
            OfferError::TooLarge(100_001, 100_000)
        );
        assert_eq!(
            inspect(&[0xff, 0xfe], 100).unwrap_err(),
            OfferError::NotText
        );
        assert_eq!(inspect(b"hello", 100).unwrap_err(), OfferError::NotSdp);
    }
}
