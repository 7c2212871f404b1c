//! FLV files with H.264/AAC as a source, without re-encoding: tags are read with the
//! shared push-style demuxer; sequence headers are found up front (within the first 256
//! tags) so the stream can be described before it starts. Other codecs are refused by name.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use onair_shared::aac::AudioTagHeader;
use onair_shared::avc::{AvcDecoderConfig, VideoTagHeader, AVC_END_OF_SEQUENCE};
use onair_shared::flv::TagFrame;
use onair_shared::flv::{FlvDemuxer, FlvEvent, TAG_AUDIO, TAG_VIDEO};
use onair_shared::Codec;

use super::{EncodedInfo, EncodedSource};
use crate::PushError;

/// Largest tag accepted from a file.
const MAX_TAG: usize = 16 << 20;
const PROBE_TAGS: usize = 256;

pub struct FlvFileSource {
    file: File,
    path: PathBuf,
    demux: FlvDemuxer,
    info: EncodedInfo,
    /// Frames read while probing, replayed first.
    ahead: VecDeque<TagFrame>,
    eof: bool,
}

impl FlvFileSource {
    pub fn open(path: &Path) -> Result<Self, PushError> {
        let file = File::open(path).map_err(|e| PushError::io(path, e))?;
        let mut s = Self {
            file,
            path: path.to_path_buf(),
            demux: FlvDemuxer::new(MAX_TAG),
            info: EncodedInfo::default(),
            ahead: VecDeque::new(),
            eof: false,
        };
        let (mut seen_video, mut seen_audio) = (false, false);
        for _ in 0..PROBE_TAGS {
            let Some(f) = s.read_frame()? else { break };
            if f.sequence_header {
                match f.kind {
                    onair_shared::MediaKind::Video => {
                        let cfg = AvcDecoderConfig::parse(f.payload.get(5..).unwrap_or(&[]))
                            .map_err(|e| s.bad(format!("AVC sequence header: {e}")))?;
                        s.info.video = Some(cfg);
                    }
                    _ => s.info.audio = Some(f.payload.get(2..).unwrap_or(&[]).to_vec()),
                }
            }
            match f.kind {
                onair_shared::MediaKind::Video => seen_video = true,
                _ => seen_audio = true,
            }
            s.ahead.push_back(f);
            if (s.info.video.is_some() || !seen_video)
                && (s.info.audio.is_some() || !seen_audio)
                && s.ahead.len() > 16
            {
                break;
            }
        }
        if s.info.video.is_none() && s.info.audio.is_none() {
            return Err(s.bad("no H.264 or AAC sequence header in the first tags".into()));
        }
        if let Some(v) = &s.info.video {
            s.info.fps = v.sps_info().ok().and_then(|i| i.fps);
        }
        Ok(s)
    }

    fn bad(&self, reason: String) -> PushError {
        PushError::format(format!("FLV {}", self.path.display()), reason)
    }

    /// The next audio/video frame of the file (script tags are skipped).
    fn read_frame(&mut self) -> Result<Option<TagFrame>, PushError> {
        loop {
            match self
                .demux
                .next_event()
                .map_err(|e| self.bad(e.to_string()))?
            {
                Some(FlvEvent::Header { .. }) => continue,
                Some(FlvEvent::Tag(tag)) => {
                    let ts = tag.timestamp as u64;
                    match tag.tag_type {
                        TAG_VIDEO => {
                            let h = VideoTagHeader::parse(&tag.body)
                                .map_err(|e| self.bad(e.to_string()))?;
                            if h.codec != Codec::H264 {
                                return Err(self.bad(format!(
                                    "video codec {} (only H.264 is pushed)",
                                    h.codec.name()
                                )));
                            }
                            if h.packet_type == AVC_END_OF_SEQUENCE {
                                // ffmpeg ends its FLV files with one; mid-stream (looping, or
                                // to a server) it would end the viewers' decoding.
                                continue;
                            }
                            let f = TagFrame::video(ts, tag.body)
                                .map_err(|e| self.bad(e.to_string()))?;
                            return Ok(Some(f));
                        }
                        TAG_AUDIO => {
                            let h = AudioTagHeader::parse(&tag.body)
                                .map_err(|e| self.bad(e.to_string()))?;
                            if h.codec() != Codec::Aac {
                                return Err(self.bad(format!(
                                    "audio codec {} (only AAC is pushed)",
                                    h.codec().name()
                                )));
                            }
                            let f = TagFrame::audio(ts, tag.body)
                                .map_err(|e| self.bad(e.to_string()))?;
                            return Ok(Some(f));
                        }
                        _ => continue,
                    }
                }
                None if self.eof => return Ok(None),
                None => {
                    let mut buf = [0u8; 64 * 1024];
                    let n = self
                        .file
                        .read(&mut buf)
                        .map_err(|e| PushError::io(&self.path, e))?;
                    if n == 0 {
                        self.eof = true;
                    } else {
                        self.demux.push(&buf[..n]);
                    }
                }
            }
        }
    }
}

impl EncodedSource for FlvFileSource {
    fn info(&self) -> &EncodedInfo {
        &self.info
    }

    fn next_frame(&mut self) -> Result<Option<TagFrame>, PushError> {
        if let Some(f) = self.ahead.pop_front() {
            return Ok(Some(f));
        }
        self.read_frame()
    }
}
