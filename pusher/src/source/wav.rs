//! WAV (RIFF PCM, 16-bit) reading: the `fmt ` chunk, then sample frames from the `data`
//! chunk in blocks. Works over any `Read`; other chunks are skipped with bounded reads.

use std::io::Read;

use crate::PushError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavFormat {
    pub sample_rate: u32,
    pub channels: u8,
}

pub struct WavReader<R> {
    r: R,
    pub format: WavFormat,
    /// Bytes left in the data chunk.
    remaining: u64,
    name: String,
}

fn bad(name: &str, reason: impl Into<String>) -> PushError {
    PushError::format(format!("WAV {name}"), reason)
}

impl<R: Read> WavReader<R> {
    pub fn new(mut r: R, name: &str) -> Result<Self, PushError> {
        let io = |e| PushError::io(name, e);
        let mut riff = [0u8; 12];
        r.read_exact(&mut riff).map_err(io)?;
        if &riff[..4] != b"RIFF" || &riff[8..] != b"WAVE" {
            return Err(bad(name, "not a RIFF/WAVE file"));
        }
        let mut format = None;
        // At most 64 chunks before `data`.
        for _ in 0..64 {
            let mut head = [0u8; 8];
            r.read_exact(&mut head).map_err(io)?;
            let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as u64;
            match &head[..4] {
                b"fmt " => {
                    if !(16..=1024).contains(&len) {
                        return Err(bad(name, format!("fmt chunk of {len} bytes")));
                    }
                    let mut f = vec![0u8; len as usize + (len as usize & 1)];
                    r.read_exact(&mut f).map_err(io)?;
                    let tag = u16::from_le_bytes([f[0], f[1]]);
                    let channels = u16::from_le_bytes([f[2], f[3]]);
                    let sample_rate = u32::from_le_bytes([f[4], f[5], f[6], f[7]]);
                    let bits = u16::from_le_bytes([f[14], f[15]]);
                    // 1 = PCM; 0xFFFE = extensible (its subformat's first two bytes are the tag).
                    let pcm = tag == 1 || (tag == 0xfffe && len >= 26 && f[24] == 1 && f[25] == 0);
                    if !pcm || bits != 16 {
                        return Err(bad(
                            name,
                            format!("format tag {tag:#x}, {bits} bits: only 16-bit PCM is read"),
                        ));
                    }
                    if !(1..=2).contains(&channels) || !(8_000..=192_000).contains(&sample_rate) {
                        return Err(bad(
                            name,
                            format!("{channels} channels at {sample_rate} Hz"),
                        ));
                    }
                    format = Some(WavFormat {
                        sample_rate,
                        channels: channels as u8,
                    });
                }
                b"data" => {
                    let format = format.ok_or_else(|| bad(name, "data before fmt"))?;
                    return Ok(Self {
                        r,
                        format,
                        remaining: len,
                        name: name.to_string(),
                    });
                }
                _ => {
                    let skip = len + (len & 1);
                    let copied = std::io::copy(&mut r.by_ref().take(skip), &mut std::io::sink())
                        .map_err(io)?;
                    if copied < skip {
                        return Err(bad(name, "truncated chunk"));
                    }
                }
            }
        }
        Err(bad(name, "no data chunk in the first 64 chunks"))
    }

    /// Up to `frames` sample frames (interleaved); empty at the end of the data.
    pub fn read_frames(&mut self, frames: usize) -> Result<Vec<i16>, PushError> {
        let frame_bytes = 2 * self.format.channels as usize;
        let want = (frames * frame_bytes).min(self.remaining as usize);
        let want = want - want % frame_bytes;
        let mut buf = vec![0u8; want];
        let mut got = 0;
        while got < want {
            match self.r.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(PushError::io(&self.name, e)),
            }
        }
        got -= got % frame_bytes;
        self.remaining = if got < want {
            0
        } else {
            self.remaining - got as u64
        };
        Ok(buf[..got]
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect())
    }

    /// Every remaining sample (bounded by `max_frames`).
    pub fn read_all(&mut self, max_frames: usize) -> Result<Vec<i16>, PushError> {
        let mut all = Vec::new();
        while all.len() / (self.format.channels as usize) < max_frames {
            let block = self.read_frames(65_536)?;
            if block.is_empty() {
                break;
            }
            all.extend_from_slice(&block);
        }
        Ok(all)
    }
}

/// A 16-bit PCM WAV file (for tests and tools).
pub fn encode_wav(format: WavFormat, samples: &[i16]) -> Vec<u8> {
    let data_len = samples.len() as u32 * 2;
    let ch = format.channels as u32;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&(ch as u16).to_le_bytes());
    out.extend_from_slice(&format.sample_rate.to_le_bytes());
    out.extend_from_slice(&(format.sample_rate * ch * 2).to_le_bytes());
    out.extend_from_slice(&((ch * 2) as u16).to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_with_an_extra_chunk() {
        let f = WavFormat {
            sample_rate: 44_100,
            channels: 2,
        };
        let samples: Vec<i16> = (0..100).map(|i| i * 300 - 15_000).collect();
        let mut file = encode_wav(f, &samples);
        // Insert a LIST chunk (odd length, padded) before data.
        let at = 36;
        let list = [b"LIST".as_slice(), &3u32.to_le_bytes(), b"abc\0"].concat();
        file.splice(at..at, list);
        let mut r = WavReader::new(&file[..], "t").unwrap();
        assert_eq!(r.format, f);
        assert_eq!(r.read_frames(10).unwrap(), samples[..20]);
        assert_eq!(r.read_all(1000).unwrap(), samples[20..]);
        assert!(r.read_frames(10).unwrap().is_empty());
    }

    #[test]
    fn refuses_other_formats() {
        let mut f = encode_wav(
            WavFormat {
                sample_rate: 8000,
                channels: 1,
            },
            &[1, 2],
        );
        f[34] = 24; // bits per sample
        assert!(WavReader::new(&f[..], "t").is_err());
        assert!(WavReader::new(&b"RIFF\0\0\0\0AVI "[..], "t").is_err());
        assert!(WavReader::new(&b"RIF"[..], "t").is_err());
    }
}
