//! YUV4MPEG2 (`.y4m`) reading: the header (size, frame rate, 4:2:0 chroma) and raw I420
//! frames. Works over any `Read`; sizes are bounded before anything is allocated.

use std::io::{BufRead, Read};

use crate::media::I420;
use crate::PushError;

/// Largest picture side accepted.
pub const MAX_SIDE: usize = 8192;

#[derive(Debug, Clone, PartialEq)]
pub struct Y4mHeader {
    pub width: usize,
    pub height: usize,
    /// Frames per second from the `F` field (`None` when absent).
    pub fps: Option<f64>,
}

pub struct Y4mReader<R> {
    r: R,
    pub header: Y4mHeader,
    name: String,
}

fn bad(name: &str, reason: impl Into<String>) -> PushError {
    PushError::format(format!("Y4M {name}"), reason)
}

impl<R: BufRead> Y4mReader<R> {
    pub fn new(mut r: R, name: &str) -> Result<Self, PushError> {
        let line = read_line(&mut r, name)?.ok_or_else(|| bad(name, "empty file"))?;
        let mut fields = line.split(' ');
        if fields.next() != Some("YUV4MPEG2") {
            return Err(bad(name, "no YUV4MPEG2 signature"));
        }
        let (mut width, mut height, mut fps) = (0usize, 0usize, None);
        for f in fields {
            // The tag is the first character (which may be any UTF-8 character in a bad file).
            let mut chars = f.chars();
            let tag = chars.next().map(String::from).unwrap_or_default();
            let val = chars.as_str();
            match tag.as_str() {
                "W" => {
                    width = val
                        .parse()
                        .map_err(|_| bad(name, format!("width {val:?}")))?
                }
                "H" => {
                    height = val
                        .parse()
                        .map_err(|_| bad(name, format!("height {val:?}")))?
                }
                "F" => {
                    let (n, d) = val.split_once(':').unwrap_or((val, "1"));
                    let (n, d): (f64, f64) = (
                        n.parse().map_err(|_| bad(name, format!("rate {val:?}")))?,
                        d.parse().map_err(|_| bad(name, format!("rate {val:?}")))?,
                    );
                    if n > 0.0 && d > 0.0 {
                        fps = Some(n / d);
                    }
                }
                "C" if !val.starts_with("420") => {
                    return Err(bad(name, format!("chroma C{val}: only 4:2:0 is supported")))
                }
                "I" if val != "p" && val != "?" => {
                    return Err(bad(name, format!("interlacing I{val}: only progressive")))
                }
                _ => {}
            }
        }
        if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
            return Err(bad(name, format!("size {width}x{height}")));
        }
        if width % 2 != 0 || height % 2 != 0 {
            return Err(bad(name, format!("odd size {width}x{height}")));
        }
        Ok(Self {
            r,
            header: Y4mHeader { width, height, fps },
            name: name.to_string(),
        })
    }

    /// The next frame, or `None` at the end of the file.
    pub fn next_frame(&mut self) -> Result<Option<I420>, PushError> {
        let Some(line) = read_line(&mut self.r, &self.name)? else {
            return Ok(None);
        };
        if !line.starts_with("FRAME") {
            return Err(bad(&self.name, format!("expected FRAME, got {line:?}")));
        }
        let (w, h) = (self.header.width, self.header.height);
        let mut data = vec![0u8; w * h * 3 / 2];
        match self.r.read_exact(&mut data) {
            Ok(()) => Ok(I420::from_vec(w, h, data)),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(PushError::io(&self.name, e)),
        }
    }
}

/// Reads one `\n`-terminated header line of at most 1 KiB.
fn read_line<R: BufRead>(r: &mut R, name: &str) -> Result<Option<String>, PushError> {
    let mut buf = Vec::new();
    let n = r
        .by_ref()
        .take(1024)
        .read_until(b'\n', &mut buf)
        .map_err(|e| PushError::io(name, e))?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') {
        return Err(bad(name, "header line too long or truncated"));
    }
    buf.pop();
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| bad(name, "header is not text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_header_and_frames() {
        let mut file = b"YUV4MPEG2 W4 H2 F25:1 Ip A1:1 C420jpeg\n".to_vec();
        for i in 0..2u8 {
            file.extend_from_slice(b"FRAME\n");
            file.extend_from_slice(&[i; 12]);
        }
        let mut r = Y4mReader::new(&file[..], "t").unwrap();
        assert_eq!(
            r.header,
            Y4mHeader {
                width: 4,
                height: 2,
                fps: Some(25.0)
            }
        );
        assert_eq!(r.next_frame().unwrap().unwrap().data, vec![0; 12]);
        assert_eq!(r.next_frame().unwrap().unwrap().data, vec![1; 12]);
        assert!(r.next_frame().unwrap().is_none());
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        assert!(Y4mReader::new(&b"YUV4MPEG2 W4 H2 C444\n"[..], "t").is_err());
        assert!(Y4mReader::new(&b"YUV4MPEG2 W3 H2\n"[..], "t").is_err());
        assert!(Y4mReader::new(&b"YUV4MPEG2 W99999 H2\n"[..], "t").is_err());
        assert!(Y4mReader::new(&b"RIFF"[..], "t").is_err());
        // A multi-byte character where a tag is expected is just an unknown tag.
        assert!(Y4mReader::new("YUV4MPEG2 W4 H2 \u{e9}x\n".as_bytes(), "t").is_ok());
        let mut r = Y4mReader::new(&b"YUV4MPEG2 W2 H2\nJUNK\n"[..], "t").unwrap();
        assert!(r.next_frame().is_err());
    }
}
