//! Raw sources behind two small traits, so the pipeline paces and stamps every source the
//! same way: the test pattern, Y4M files, the tone and WAV files here; camera, microphone
//! and screen in their feature-gated modules.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use super::test_pattern::TestPattern;
use super::tone::Tone;
use super::wav::WavReader;
use super::y4m::Y4mReader;
use crate::media::I420;
use crate::process::audio::{remix, Resampler};
use crate::PushError;

pub trait RawVideo: Send {
    /// True for devices that block until their next frame (the pipeline then stamps the
    /// capture time); false for sources the pipeline paces at the frame rate.
    fn self_paced(&self) -> bool {
        false
    }
    /// The next picture; `None` at the end.
    fn next(&mut self, index: u64, wallclock_us: u64) -> Result<Option<I420>, PushError>;
}

pub trait RawAudio: Send {
    fn self_paced(&self) -> bool {
        false
    }
    /// The next `frames` sample frames at the output rate and channel count; `None` at the end.
    fn next(&mut self, frames: usize) -> Result<Option<Vec<i16>>, PushError>;
}

pub struct TestVideo(pub TestPattern);

impl RawVideo for TestVideo {
    fn next(&mut self, index: u64, wallclock_us: u64) -> Result<Option<I420>, PushError> {
        Ok(Some(self.0.render(index, wallclock_us)))
    }
}

pub struct Y4mVideo {
    path: PathBuf,
    reader: Y4mReader<BufReader<File>>,
    looped: bool,
}

impl Y4mVideo {
    pub fn open(path: &Path, looped: bool) -> Result<Self, PushError> {
        let f = File::open(path).map_err(|e| PushError::io(path, e))?;
        let reader = Y4mReader::new(BufReader::new(f), &path.display().to_string())?;
        Ok(Self {
            path: path.to_path_buf(),
            reader,
            looped,
        })
    }

    pub fn header(&self) -> &super::y4m::Y4mHeader {
        &self.reader.header
    }
}

impl RawVideo for Y4mVideo {
    fn next(&mut self, _index: u64, _wall: u64) -> Result<Option<I420>, PushError> {
        // Bounded: a file that loops but yields no frame ends instead of spinning.
        for _ in 0..2 {
            if let Some(p) = self.reader.next_frame()? {
                return Ok(Some(p));
            }
            if !self.looped {
                return Ok(None);
            }
            *self = Self::open(&self.path.clone(), true)?;
        }
        Ok(None)
    }
}

pub struct ToneAudio(pub Tone);

impl RawAudio for ToneAudio {
    fn next(&mut self, frames: usize) -> Result<Option<Vec<i16>>, PushError> {
        Ok(Some(self.0.next_block(frames)))
    }
}

/// A WAV file converted on the fly to the output rate and channels.
pub struct WavAudio {
    path: PathBuf,
    reader: WavReader<BufReader<File>>,
    looped: bool,
    channels: u8,
    resampler: Resampler,
    buffered: Vec<i16>,
}

impl WavAudio {
    pub fn open(
        path: &Path,
        looped: bool,
        sample_rate: u32,
        channels: u8,
    ) -> Result<Self, PushError> {
        let f = File::open(path).map_err(|e| PushError::io(path, e))?;
        let reader = WavReader::new(BufReader::new(f), &path.display().to_string())?;
        let resampler = Resampler::new(reader.format.sample_rate, sample_rate, channels);
        Ok(Self {
            path: path.to_path_buf(),
            reader,
            looped,
            channels,
            resampler,
            buffered: Vec::new(),
        })
    }

    /// The whole file converted (for `--mix`), at most `max_seconds` long.
    pub fn read_all(
        path: &Path,
        sample_rate: u32,
        channels: u8,
        max_seconds: u32,
    ) -> Result<Vec<i16>, PushError> {
        let mut w = Self::open(path, false, sample_rate, channels)?;
        let max = (w.reader.format.sample_rate * max_seconds) as usize;
        let raw = w.reader.read_all(max)?;
        let mixed = remix(&raw, w.reader.format.channels, channels);
        Ok(w.resampler.process(&mixed))
    }
}

impl RawAudio for WavAudio {
    fn next(&mut self, frames: usize) -> Result<Option<Vec<i16>>, PushError> {
        let want = frames * self.channels as usize;
        let mut reopened = false;
        while self.buffered.len() < want {
            let block = self.reader.read_frames(4096)?;
            if block.is_empty() {
                if !self.looped || reopened {
                    if self.buffered.is_empty() {
                        return Ok(None);
                    }
                    self.buffered.resize(want, 0);
                    break;
                }
                let f = File::open(&self.path).map_err(|e| PushError::io(&self.path, e))?;
                self.reader = WavReader::new(BufReader::new(f), &self.path.display().to_string())?;
                reopened = true;
                continue;
            }
            reopened = false;
            let mixed = remix(&block, self.reader.format.channels, self.channels);
            self.buffered.extend(self.resampler.process(&mixed));
        }
        Ok(Some(self.buffered.drain(..want).collect()))
    }
}
