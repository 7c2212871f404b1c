//! An FLV stream read in passing: the header, each tag's header, and no more of a video
//! tag's body than the caller asks for (what `classify_video` reads), taken straight from
//! the bytes given when the prefix lies within them and copied only when it straddles two
//! reads. The rest of each body is skipped, never buffered: a viewer of the bench costs
//! a few dozen bytes of state however large its frames. Sans-IO: bytes in, prefixes out.

use onair_shared::flv::{FlvError, TAG_VIDEO};

/// The FLV header's fixed part: "FLV", version, flags, header size.
const FILE_HEADER: usize = 9;
const TAG_HEADER: usize = 11;
const PREV_SIZE: usize = 4;
/// The longest prefix a scanner keeps.
pub const MAX_PREFIX: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Gathering the file header's fixed part into `head`.
    FileHeader,
    /// Skipping the rest of the header (if its size says it is longer) and
    /// PreviousTagSize0.
    SkipHeader(usize),
    /// Gathering a tag header into `head`.
    TagHeader,
    /// In a tag's body of `len` bytes and the PreviousTagSize after it, `pos` bytes of
    /// the two passed.
    Body { video: bool, len: usize, pos: usize },
}

#[derive(Debug)]
pub struct FlvScan {
    phase: Phase,
    head: [u8; TAG_HEADER],
    head_len: usize,
    /// The current video tag's body prefix so far (when it straddles two reads).
    prefix: [u8; MAX_PREFIX],
    /// How much of a video body's start is wanted.
    want: usize,
    max_tag: usize,
}

impl FlvScan {
    /// A scanner handing out the first `want` bytes (at most `MAX_PREFIX`) of each video
    /// tag's body (all of a shorter one), and refusing tags over `max_tag` bytes.
    pub fn new(want: usize, max_tag: usize) -> Self {
        Self {
            phase: Phase::FileHeader,
            head: [0; TAG_HEADER],
            head_len: 0,
            prefix: [0; MAX_PREFIX],
            want: want.min(MAX_PREFIX),
            max_tag,
        }
    }

    /// Takes the next bytes of the stream; `on_video` gets each video tag's body prefix
    /// once the prefix (or the whole, shorter body) is in.
    pub fn push(
        &mut self,
        mut data: &[u8],
        mut on_video: impl FnMut(&[u8]),
    ) -> Result<(), FlvError> {
        while !data.is_empty() {
            match self.phase {
                Phase::FileHeader => {
                    if !self.gather(&mut data, FILE_HEADER) {
                        return Ok(());
                    }
                    if &self.head[..3] != b"FLV" {
                        return Err(FlvError::BadSignature([
                            self.head[0],
                            self.head[1],
                            self.head[2],
                        ]));
                    }
                    let size = u32::from_be_bytes([
                        self.head[5],
                        self.head[6],
                        self.head[7],
                        self.head[8],
                    ]);
                    if size < FILE_HEADER as u32 {
                        return Err(FlvError::BadHeaderSize(size));
                    }
                    self.head_len = 0;
                    self.phase = Phase::SkipHeader(size as usize - FILE_HEADER + PREV_SIZE);
                }
                Phase::SkipHeader(left) => {
                    let n = left.min(data.len());
                    data = &data[n..];
                    self.phase = if n == left {
                        Phase::TagHeader
                    } else {
                        Phase::SkipHeader(left - n)
                    };
                }
                Phase::TagHeader => {
                    if !self.gather(&mut data, TAG_HEADER) {
                        return Ok(());
                    }
                    let h = &self.head;
                    let len = (h[1] as usize) << 16 | (h[2] as usize) << 8 | h[3] as usize;
                    if len > self.max_tag {
                        return Err(FlvError::TagTooLarge {
                            len,
                            max: self.max_tag,
                        });
                    }
                    let video = h[0] & 0x1f == TAG_VIDEO;
                    self.head_len = 0;
                    if video && len == 0 {
                        on_video(&[]);
                    }
                    self.phase = Phase::Body { video, len, pos: 0 };
                }
                Phase::Body { video, len, pos } => {
                    let want = self.want.min(len);
                    if video && pos < want {
                        let take = (want - pos).min(data.len());
                        if pos == 0 && take == want {
                            // The whole prefix lies in these bytes: no copy.
                            on_video(&data[..want]);
                        } else {
                            self.prefix[pos..pos + take].copy_from_slice(&data[..take]);
                            if pos + take == want {
                                on_video(&self.prefix[..want]);
                            }
                        }
                    }
                    let total = len + PREV_SIZE;
                    let n = (total - pos).min(data.len());
                    data = &data[n..];
                    self.phase = if pos + n == total {
                        Phase::TagHeader
                    } else {
                        Phase::Body {
                            video,
                            len,
                            pos: pos + n,
                        }
                    };
                }
            }
        }
        Ok(())
    }

    /// Moves bytes from `data` into `head` until it holds `n`; whether it does.
    fn gather(&mut self, data: &mut &[u8], n: usize) -> bool {
        let take = (n - self.head_len).min(data.len());
        self.head[self.head_len..self.head_len + take].copy_from_slice(&data[..take]);
        self.head_len += take;
        *data = &data[take..];
        self.head_len == n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onair_shared::flv::{encode_tag, header, FlvDemuxer, FlvEvent, TAG_AUDIO, TAG_SCRIPT};

    /// A stream of the header, a script tag, video tags of these bodies and audio between.
    fn stream(bodies: &[Vec<u8>]) -> Vec<u8> {
        let mut s = header(true, true).to_vec();
        s.extend_from_slice(&encode_tag(TAG_SCRIPT, 0, b"script"));
        for (i, b) in bodies.iter().enumerate() {
            s.extend_from_slice(&encode_tag(TAG_VIDEO, i as u32, b));
            s.extend_from_slice(&encode_tag(TAG_AUDIO, i as u32, &[0xaf, 1, 7, 7]));
        }
        s
    }

    fn bodies() -> Vec<Vec<u8>> {
        vec![
            (0..200u8).collect(),
            vec![],
            vec![9, 8, 7],
            (0..=255u8).cycle().take(5000).collect(),
        ]
    }

    /// What the scanner hands out, fed in pieces of `step` bytes.
    fn scanned(s: &[u8], want: usize, step: usize) -> Vec<Vec<u8>> {
        let mut scan = FlvScan::new(want, 1 << 20);
        let mut out = Vec::new();
        for piece in s.chunks(step) {
            scan.push(piece, |p| out.push(p.to_vec())).unwrap();
        }
        out
    }

    #[test]
    fn video_prefixes_match_the_demuxers_bodies_however_the_bytes_are_split() {
        let s = stream(&bodies());
        let mut d = FlvDemuxer::new(1 << 20);
        d.push(&s);
        let mut whole = Vec::new();
        while let Some(e) = d.next_event().unwrap() {
            if let FlvEvent::Tag(t) = e {
                if t.tag_type == TAG_VIDEO {
                    whole.push(t.body.to_vec());
                }
            }
        }
        let want = 30;
        let expected: Vec<Vec<u8>> = whole
            .iter()
            .map(|b| b[..b.len().min(want)].to_vec())
            .collect();
        for step in [1, 2, 3, 7, 11, 64, 1000, s.len()] {
            assert_eq!(scanned(&s, want, step), expected, "pieces of {step}");
        }
    }

    #[test]
    fn a_longer_header_is_skipped_and_bad_input_is_refused() {
        let mut s = header(true, true).to_vec();
        s[8] = 12;
        s.splice(9..9, [0u8, 0, 0]);
        s.extend_from_slice(&encode_tag(TAG_VIDEO, 0, &[1, 2, 3]));
        assert_eq!(scanned(&s, 8, 5), vec![vec![1, 2, 3]]);

        let mut scan = FlvScan::new(8, 1 << 20);
        assert!(matches!(
            scan.push(b"FLX\x01\x05\0\0\0\x09", |_| {}),
            Err(FlvError::BadSignature(_))
        ));
        let mut scan = FlvScan::new(8, 1 << 20);
        assert!(matches!(
            scan.push(b"FLV\x01\x05\0\0\0\x05", |_| {}),
            Err(FlvError::BadHeaderSize(5))
        ));
        let mut scan = FlvScan::new(8, 100);
        let mut big = header(true, true).to_vec();
        big.extend_from_slice(&encode_tag(TAG_VIDEO, 0, &[0; 101]));
        assert!(matches!(
            scan.push(&big, |_| {}),
            Err(FlvError::TagTooLarge { len: 101, max: 100 })
        ));
    }
}
