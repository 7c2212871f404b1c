//! Writing the stream to an FLV file instead of a server: the FLV header (flags from the
//! tracks the stream has), `onMetaData`, then every tag in order. Nothing is dropped.

use std::io::Write;

use bytes::Bytes;
use onair_shared::flv::TagFrame;
use onair_shared::flv::{encode_tag, header, TAG_SCRIPT};

pub struct FlvWriter<W: Write> {
    w: W,
}

impl<W: Write> FlvWriter<W> {
    pub fn new(
        mut w: W,
        has_audio: bool,
        has_video: bool,
        metadata: &Bytes,
    ) -> std::io::Result<Self> {
        w.write_all(&header(has_audio, has_video))?;
        w.write_all(&encode_tag(TAG_SCRIPT, 0, metadata))?;
        Ok(Self { w })
    }

    pub fn write(&mut self, f: &TagFrame) -> std::io::Result<()> {
        self.w
            .write_all(&encode_tag(f.tag_type(), f.wire_timestamp(), &f.payload))
    }

    pub fn finish(mut self) -> std::io::Result<W> {
        self.w.flush()?;
        Ok(self.w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mux::flv;
    use onair_shared::flv::{FlvDemuxer, FlvEvent};

    #[test]
    fn written_file_demuxes_back() {
        let meta = onair_shared::metadata::Metadata {
            width: Some(320.0),
            ..Default::default()
        }
        .to_script_body();
        let mut w = FlvWriter::new(Vec::new(), true, true, &meta).unwrap();
        let f = flv::audio(1234, flv::aac_frame(&[1, 2, 3])).unwrap();
        w.write(&f).unwrap();
        let bytes = w.finish().unwrap();
        let mut d = FlvDemuxer::new(1 << 20);
        d.push(&bytes);
        assert_eq!(
            d.next_event().unwrap(),
            Some(FlvEvent::Header {
                has_audio: true,
                has_video: true
            })
        );
        let Some(FlvEvent::Tag(script)) = d.next_event().unwrap() else {
            panic!("no script tag")
        };
        assert_eq!(script.body, meta);
        let Some(FlvEvent::Tag(tag)) = d.next_event().unwrap() else {
            panic!("no audio tag")
        };
        assert_eq!((tag.timestamp, &tag.body[..]), (1234, &f.payload[..]));
    }
}
